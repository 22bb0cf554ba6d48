//! The in-memory caller-ID index: every account's numbers, keyed by E.164, in an immutable
//! snapshot that writers replace whole. A lookup loads the current snapshot (lock-free, no
//! allocation), tries the account, then its domain, and copies out what the phone shows. It
//! never waits for a sync, the database or the network.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;

use super::beside;
use super::fold;
use super::names::{Entry, FoldedBook, Matches, NameIndex, Query, Row};
use super::patch::{AccountBook, BookIdentity};
use crate::account::domain_of;
use crate::book::contact::{Contact, Source};
use crate::book::phone::{IncomingNumber, E164};

type FxMap<K, V> = HashMap<K, V, FxBuildHasher>;
pub(super) type FxSet<T> = std::collections::HashSet<T, FxBuildHasher>;

/// The most bytes of a name or company the index keeps: all that `GiContact` can carry
/// (128 bytes with the NUL). Longer text is cut at a character boundary when indexed.
pub const MAX_TEXT_BYTES: usize = 127;
/// The most bytes of a label the index keeps (`GiContact.label` is 32 bytes with the NUL).
pub const MAX_LABEL_BYTES: usize = 31;

/// A national number that more than one contact has: it must not match anyone.
const AMBIGUOUS: u32 = u32::MAX;
/// Slots per number in the exact table: at a load of 0.7 linear probing finds a number in
/// about 2 probes and a miss in about 6, mostly within one or two cache lines.
const TABLE_LOAD: f64 = 0.7;

/// What a lookup found, borrowed from the snapshot for as long as the caller copies it out.
#[derive(Debug, PartialEq, Eq)]
pub struct ContactMatch<'a> {
    pub name: &'a str,
    pub company: &'a str,
    pub label: &'a str,
    pub number: E164,
    pub account: &'a str,
    /// The contact's user contact groups, by name, sorted, joined with ", ".
    pub groups: &'a str,
    /// Where the contact comes from: "contacts", "directory" or "other_contacts".
    pub source: &'a str,
}

/// One number of the exact table, with everything the phone shows, in 16 bytes: a hit costs
/// one cache miss for the slot and one for the text, whatever the number of contacts. The
/// address book's rows have the same shape. `e164` 0 marks an empty slot (no E.164 number is
/// 0); `text` is where the contact's name, then its company, then its groups start in the
/// text arena, the groups' length being the byte just before.
type Slot = Row;

/// The order that settles a number several contacts share.
pub(super) fn tie_break(c: &Contact) -> (&str, &str, &str) {
    (&c.name, &c.company, &c.resource_name)
}

/// One account's contacts, ready for lookups.
pub struct AccountIndex {
    /// Open addressing with linear probing; the length is not a power of two, so the table
    /// is sized to the data rather than doubled.
    slots: Box<[Slot]>,
    /// Sorted national significant numbers and, beside each, the slot of its number (or
    /// `AMBIGUOUS`). Only numbers read without a country code and not found exactly come
    /// here, so a binary search is fast enough and costs 12 bytes a number.
    national_keys: Box<[u64]>,
    national_slots: Box<[u32]>,
    /// Per contact with a number (rows point at nothing else): the length of its groups text
    /// (one byte, under 128, so an ASCII character), then its name, company and groups.
    text: Box<str>,
    labels: Box<[Box<str>]>,
    contact_count: usize,
    number_count: usize,
    /// The address book: search by words, digits or keypad over the same contacts.
    pub(super) names: NameIndex,
    /// The store's ids of the contacts, sorted, and beside each its place in the address
    /// book (`u32::MAX` for a contact without a number): how a patch finds the version a
    /// change replaces. Empty when built without ids: then an index with contacts cannot be
    /// patched, and every change rebuilds it in full.
    ids: Box<[u64]>,
    id_ranks: Box<[u32]>,
}

/// The names of an account's user contact groups, by resource name ("contactGroups/…").
/// System groups (myContacts, starred, …) are not in it, so they are never shown.
pub type GroupNames = HashMap<String, String>;

/// The groups a contact shows, by name, sorted (case ignored), joined with ", " and cut after
/// a whole name to what `GiContact.groups` holds.
pub(super) fn groups_text(contact: &Contact, names: &GroupNames) -> String {
    let mut shown: Vec<&str> = contact
        .groups
        .iter()
        .filter_map(|g| names.get(g).map(String::as_str))
        .collect();
    shown.sort_by_key(|n| (fold::fold(n), n.to_string()));
    shown.dedup();
    let mut text = String::new();
    for name in shown {
        let separator = if text.is_empty() { "" } else { ", " };
        if text.len() + separator.len() + name.len() > MAX_TEXT_BYTES {
            break;
        }
        text.push_str(separator);
        text.push_str(name);
    }
    text
}

/// Whether a name in `contact_groups` names a group: case ignored (Unicode's lower case, so
/// `ÄRZTE` is `Ärzte`), nothing else. Folding as search does (accents removed, other scripts
/// transliterated) would let one name keep the contacts of groups it does not name: `Arzte`
/// those of `Ärzte`, `公式` those of `公事` (both `gong shi`).
fn same_group_name(wanted: &str, group: &str) -> bool {
    wanted.eq_ignore_ascii_case(group) || wanted.to_lowercase() == group.to_lowercase()
}

/// Which contacts `only_groups` keeps (positions, ascending; all of them when it is unset),
/// and the names of every contact's groups.
pub(super) fn kept_by_groups<C: Borrow<Contact>>(
    contacts: &[C],
    group_names: &GroupNames,
    only_groups: Option<&[String]>,
) -> (Vec<usize>, Vec<Vec<String>>) {
    let groups: Vec<Vec<String>> = contacts
        .iter()
        .map(|c| {
            c.borrow()
                .groups
                .iter()
                .filter_map(|g| group_names.get(g).cloned())
                .collect()
        })
        .collect();
    let kept: Vec<usize> = (0..contacts.len())
        .filter(|&i| {
            only_groups.is_none_or(|wanted| {
                groups[i]
                    .iter()
                    .any(|g| wanted.iter().any(|w| same_group_name(w, g)))
            })
        })
        .collect();
    (kept, groups)
}

/// Folds the address book of the `contacts` at `positions` (ascending; see `FoldedBook`),
/// and gives its rows' numbers: a contact's rows are its numbers, in order, after those of
/// the contacts before it, as `CallerIdPart` makes them. `room` is how many contacts and
/// numbers the book will hold once the rest is appended, so that appending it does not
/// copy what is there.
fn fold_book(
    contacts: &[&Contact],
    positions: impl Iterator<Item = usize>,
    room: (usize, usize),
    kept: &[usize],
    groups: &[Vec<String>],
) -> (FoldedBook, Vec<u64>) {
    let mut e164s: Vec<u64> = Vec::with_capacity(room.1);
    let entries = positions.map(|i| {
        let contact = contacts[i];
        let start = e164s.len() as u32;
        e164s.extend(contact.numbers.iter().map(|n| n.e164.0));
        Entry {
            name: cut(&contact.name, MAX_TEXT_BYTES),
            company: cut(&contact.company, MAX_TEXT_BYTES),
            groups: &groups[kept[i]],
            rows: start..e164s.len() as u32,
        }
    });
    let book = FoldedBook::new(entries, room.0);
    (book, e164s)
}

/// The caller-ID part of an account's index, and the rows its address book shows (made in
/// the same pass: a row is a slot's twin).
struct CallerIdPart {
    slots: Box<[Slot]>,
    national_keys: Vec<u64>,
    national_slots: Vec<u32>,
    text: String,
    labels: Vec<Box<str>>,
    book_rows: Vec<Row>,
}

/// From how many contacts an account's caller-ID part is built on a thread of its own, beside
/// the address book's layout (see `build_kept`): below it, starting a thread costs more than
/// it saves.
const BESIDE_FROM: usize = 2_000;

impl CallerIdPart {
    /// Fills the table (unless `parts` is the address book alone) and the text, and makes
    /// the address book's rows (unless it is the caller-ID part alone), contact by contact.
    fn build(contacts: &[&Contact], group_names: &GroupNames, buffers: Buffers) -> CallerIdPart {
        let Buffers {
            parts,
            mut slots,
            mut owners,
            mut national,
            mut book_rows,
        } = buffers;
        let (numbers, names) = (parts.numbers(), parts.names());
        let table_len = slots.len();
        let mut text = String::new();
        let mut labels: Vec<Box<str>> = Vec::new();
        let mut label_ids: HashMap<&str, u16> = HashMap::new();

        for (contact_id, contact) in contacts.iter().enumerate() {
            // No row points at the text of a contact without a number (an email-only one,
            // common in Google address books): it would be kept for nothing.
            if contact.numbers.is_empty() {
                continue;
            }
            let name = cut(&contact.name, MAX_TEXT_BYTES);
            let company = cut(&contact.company, MAX_TEXT_BYTES);
            let shown_groups = groups_text(contact, group_names);
            text.push(char::from(shown_groups.len() as u8));
            let text_start = text.len() as u32;
            text.push_str(name);
            text.push_str(company);
            text.push_str(&shown_groups);
            for number in &contact.numbers {
                let label_text = cut(&number.label, MAX_LABEL_BYTES);
                let label = match label_ids.get(label_text) {
                    Some(&id) => id,
                    None => new_label(label_text, &mut labels, &mut label_ids),
                };
                let row = Row {
                    e164: number.e164.0,
                    text: text_start,
                    name_len: name.len() as u8,
                    company_len: company.len() as u8,
                    label,
                };
                if names {
                    book_rows.push(row);
                }
                if !numbers {
                    continue;
                }
                let mut at = slot_hash(number.e164.0, table_len);
                while slots[at].e164 != 0 && slots[at].e164 != number.e164.0 {
                    at = if at + 1 == table_len { 0 } else { at + 1 };
                }
                let claims = match owners[at] {
                    u32::MAX => true,
                    owner => tie_break(contact) < tie_break(contacts[owner as usize]),
                };
                if claims {
                    owners[at] = contact_id as u32;
                    slots[at] = row;
                }
                national.push((
                    number.national.0,
                    contact_id as u32,
                    number.e164.0,
                    at as u32,
                ));
            }
        }

        // A contact with one national number under two country codes answers with the lower
        // E.164, whatever order its numbers came in (as a patch does).
        national.sort_unstable_by_key(|&(key, contact, e164, _)| (key, contact, e164));
        let mut national_keys = Vec::with_capacity(national.len());
        let mut national_slots = Vec::with_capacity(national.len());
        for group in national.chunk_by(|a, b| a.0 == b.0) {
            let (key, first_contact, _, slot) = group[0];
            let unique = group
                .iter()
                .all(|&(_, contact, _, _)| contact == first_contact);
            national_keys.push(key);
            national_slots.push(if unique { slot } else { AMBIGUOUS });
        }

        CallerIdPart {
            slots,
            national_keys,
            national_slots,
            text,
            labels,
            book_rows,
        }
    }
}

/// The id of a label the account's table does not have yet. A row keeps its label's id in 16
/// bits: past 65,535 distinct labels (only hostile input has them: Google's types are a
/// dozen, custom ones are typed by hand) a number shows no label rather than another one's,
/// under the last id, kept for "".
fn new_label<'c>(
    label: &'c str,
    labels: &mut Vec<Box<str>>,
    ids: &mut HashMap<&'c str, u16>,
) -> u16 {
    let (label, id) = if labels.len() < usize::from(u16::MAX) {
        (label, labels.len() as u16)
    } else if let Some(&id) = ids.get("") {
        return id;
    } else {
        ("", u16::MAX)
    };
    labels.push(label.into());
    ids.insert(label, id);
    id
}

/// The caller-ID part's big buffers, made before it is built: on the thread that starts the
/// build, whose heap glibc lets grow to reuse the memory of the builds before it. Made on
/// the new thread that builds the part beside the address book, they cost a page fault
/// every 4 KiB each time (`perf stat`, 25,000 contacts, a fresh process: 1,200 page faults
/// a build against 780 for the caller-ID part alone; 790 made here, and the build 9.1-10.4
/// ms -> 8.3-8.6 ms).
struct Buffers {
    parts: Parts,
    /// The table, and which contact holds each slot while building.
    slots: Box<[Slot]>,
    owners: Vec<u32>,
    /// (national key, contact, E.164, slot), sorted and reduced to one entry a key.
    national: Vec<(u64, u32, u64, u32)>,
    book_rows: Vec<Row>,
}

impl Buffers {
    fn new(number_count: usize, parts: Parts) -> Buffers {
        let (numbers, names) = (parts.numbers(), parts.names());
        let slot_count = if numbers { number_count } else { 0 };
        let table_len = ((slot_count as f64 / TABLE_LOAD) as usize).max(slot_count + 1);
        Buffers {
            parts,
            slots: vec![Slot::default(); table_len].into_boxed_slice(),
            owners: vec![u32::MAX; table_len],
            national: Vec::with_capacity(number_count),
            book_rows: Vec::with_capacity(if names { number_count } else { 0 }),
        }
    }
}

/// Which parts of an account's index a build makes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Parts {
    /// Numbers and address book: an account's index.
    Both,
    /// The address book alone: a patch's level (the patch answers numbers itself).
    AddressBook,
    /// The numbers alone: the benchmarks' baseline.
    CallerId,
}

impl Parts {
    /// Whether the build fills the number table.
    fn numbers(self) -> bool {
        self != Parts::AddressBook
    }

    /// Whether the build makes the address book.
    fn names(self) -> bool {
        self != Parts::CallerId
    }
}

fn slot_hash(e164: u64, len: usize) -> usize {
    // Multiplicative hashing, then the high bits mapped onto the table ("fastrange").
    let hash = e164.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((u128::from(hash) * len as u128) >> 64) as usize
}

pub(super) fn cut(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}

impl AccountIndex {
    /// Builds the index of one account. When several contacts share a number, the one whose
    /// name sorts first answers (then company, then Google's resource name), so every call
    /// and every restart gives the same answer whatever order the contacts come in. Only
    /// contacts that collide on a number are compared: sorting every contact first took 88%
    /// of the build (criterion, 25,000 contacts: 5.5 ms against 0.7 ms).
    pub fn build(contacts: &[Contact]) -> AccountIndex {
        AccountIndex::build_with(contacts, &GroupNames::new(), None)
    }

    /// Builds the index of one account's contacts with their groups' names; `only_groups`,
    /// when set, keeps only the contacts in one of those groups (names, case ignored).
    pub fn build_with(
        contacts: &[Contact],
        group_names: &GroupNames,
        only_groups: Option<&[String]>,
    ) -> AccountIndex {
        AccountIndex::build_stored(contacts, &[], group_names, only_groups)
    }

    /// As `build_with`, for contacts read from the store with their ids (`ids[i]` is
    /// `contacts[i]`'s), so that later syncs can patch the index instead of rebuilding it.
    pub fn build_stored(
        contacts: &[Contact],
        ids: &[u64],
        group_names: &GroupNames,
        only_groups: Option<&[String]>,
    ) -> AccountIndex {
        let (kept, groups) = kept_by_groups(contacts, group_names, only_groups);
        AccountIndex::build_kept(contacts, &kept, &groups, group_names, ids, Parts::Both)
    }

    /// The caller-ID part alone, without the address book: not for use, only the baseline
    /// against which the benchmarks weigh what building the address book adds.
    #[doc(hidden)]
    pub fn build_caller_id_only(contacts: &[Contact]) -> AccountIndex {
        let (kept, groups) = kept_by_groups(contacts, &GroupNames::new(), None);
        AccountIndex::build_kept(
            contacts,
            &kept,
            &groups,
            &GroupNames::new(),
            &[],
            Parts::CallerId,
        )
    }

    /// Builds the `parts` of the index of the contacts `kept` (positions in `all`);
    /// `groups[i]` holds the names of `all[i]`'s groups.
    pub(super) fn build_kept<C: Borrow<Contact>>(
        all: &[C],
        kept: &[usize],
        groups: &[Vec<String>],
        group_names: &GroupNames,
        ids: &[u64],
        parts: Parts,
    ) -> AccountIndex {
        let contacts: Vec<&Contact> = kept.iter().map(|&i| all[i].borrow()).collect();
        let number_count: usize = contacts.iter().map(|c| c.numbers.len()).sum();

        let room = (contacts.len(), number_count);
        let lay_out = || {
            parts.names().then(|| {
                let (book, e164s) = fold_book(&contacts, 0..contacts.len(), room, kept, groups);
                book.lay_out(&e164s)
            })
        };
        let caller_id = |buffers| CallerIdPart::build(&contacts, group_names, buffers);
        let buffers = || Buffers::new(number_count, parts);
        let beside = (parts == Parts::Both && contacts.len() >= BESIDE_FROM)
            .then(|| {
                let fold_claimed = |claimed: beside::Claimed<'_>| {
                    let room = match claimed.only() {
                        None => room,
                        Some(block) => (
                            block.len(),
                            contacts[block].iter().map(|c| c.numbers.len()).sum(),
                        ),
                    };
                    fold_book(&contacts, claimed, room, kept, groups)
                };
                beside::build_beside(contacts.len(), fold_claimed, buffers, caller_id)
            })
            .flatten();
        let (layout, part) = match beside {
            Some((layout, part)) => (Some(layout), part),
            // A small book, one part, or no thread to be had: all on this one.
            None => (lay_out(), caller_id(buffers())),
        };
        let (names, ranks) = match layout {
            Some(layout) => layout.index(part.book_rows),
            None => (NameIndex::default(), Vec::new()),
        };

        let mut by_id: Vec<(u64, u32)> = if ids.is_empty() {
            Vec::new()
        } else {
            kept.iter()
                .zip(&ranks)
                .map(|(&i, &rank)| (ids[i], rank))
                .collect()
        };
        by_id.sort_unstable();

        AccountIndex {
            slots: part.slots,
            national_keys: part.national_keys.into_boxed_slice(),
            national_slots: part.national_slots.into_boxed_slice(),
            text: part.text.into_boxed_str(),
            labels: part.labels.into_boxed_slice(),
            contact_count: contacts.len(),
            number_count,
            names,
            ids: by_id.iter().map(|p| p.0).collect(),
            id_ranks: by_id.iter().map(|p| p.1).collect(),
        }
    }

    /// The index with the store's ids in place of the positions it was built with: a full
    /// sync builds its index from the contacts it fetched, with `ids` 0..n, before they are
    /// stored (so the build runs outside the store's lock), and gives it the ids the store
    /// assigned them (`stored[position]`) once they are.
    pub fn with_store_ids(mut self, stored: &[u64]) -> AccountIndex {
        let mut by_id: Vec<(u64, u32)> = self
            .ids
            .iter()
            .zip(&self.id_ranks)
            .filter_map(|(&position, &rank)| Some((*stored.get(position as usize)?, rank)))
            .collect();
        by_id.sort_unstable();
        self.ids = by_id.iter().map(|p| p.0).collect();
        self.id_ranks = by_id.iter().map(|p| p.1).collect();
        self
    }

    /// Whether a patch can find the contacts of this index by their store ids.
    pub(super) fn patchable(&self) -> bool {
        self.ids.len() == self.contact_count
    }

    /// The place in the address book of the contact with store id `id` (`u32::MAX` when it
    /// has no number), or None when this index does not hold it.
    pub(super) fn rank_of_id(&self, id: u64) -> Option<u32> {
        self.ids.binary_search(&id).ok().map(|at| self.id_ranks[at])
    }

    pub fn contact_count(&self) -> usize {
        self.contact_count
    }

    pub fn number_count(&self) -> usize {
        self.number_count
    }

    pub(super) fn exact(&self, e164: E164) -> Option<&Slot> {
        let len = self.slots.len();
        if len == 0 {
            return None;
        }
        let mut at = slot_hash(e164.0, len);
        loop {
            let slot = &self.slots[at];
            if slot.e164 == e164.0 {
                return Some(slot);
            }
            if slot.e164 == 0 {
                return None;
            }
            at = if at + 1 == len { 0 } else { at + 1 };
        }
    }

    /// The slot a national number finds: Ok(None) when no contact has it, Err(()) when more
    /// than one does.
    pub(super) fn national(&self, key: u64) -> Result<Option<&Slot>, ()> {
        match self.national_keys.binary_search(&key) {
            Err(_) => Ok(None),
            Ok(i) if self.national_slots[i] == AMBIGUOUS => Err(()),
            Ok(i) => Ok(Some(&self.slots[self.national_slots[i] as usize])),
        }
    }

    pub(super) fn found<'a>(
        &'a self,
        slot: &Slot,
        account: &'a str,
        source: Source,
    ) -> ContactMatch<'a> {
        let start = slot.text as usize;
        let name_end = start + slot.name_len as usize;
        let company_end = name_end + slot.company_len as usize;
        let groups_len = self.text.as_bytes()[start - 1] as usize;
        ContactMatch {
            name: &self.text[start..name_end],
            company: &self.text[name_end..company_end],
            label: &self.labels[slot.label as usize],
            number: E164(slot.e164),
            account,
            groups: &self.text[company_end..company_end + groups_len],
            source: source.name(),
        }
    }
}

/// An account's books, one per source, at `Source as usize`: a lookup tries them in that
/// order. Held by value in the snapshot, so that a lookup follows no more pointers than with
/// one source.
#[derive(Clone, Default)]
struct SourceBooks([Option<AccountBook>; 3]);

impl SourceBooks {
    /// The account's books in lookup order, with their sources.
    #[inline]
    fn iter(&self) -> impl Iterator<Item = (Source, &AccountBook)> {
        Source::ALL
            .into_iter()
            .zip(&self.0)
            .filter_map(|(source, book)| Some((source, book.as_ref()?)))
    }
}

/// Every account's books by name. A writer copies the map to swap one account's book; with
/// shared names and books that copy is reference counts only, no text and no index.
type Snapshot = FxMap<Arc<str>, SourceBooks>;

/// Every account's index, swapped whole by writers and read without locks.
pub struct ContactIndex {
    current: ArcSwap<Snapshot>,
    /// Serialises writers so that two swaps cannot lose each other's account.
    writer: Mutex<()>,
}

impl Default for ContactIndex {
    fn default() -> Self {
        ContactIndex {
            current: ArcSwap::from_pointee(Snapshot::default()),
            writer: Mutex::new(()),
        }
    }
}

impl ContactIndex {
    /// Replaces every account at once (at open, from the store).
    pub fn replace_all(&self, books: impl IntoIterator<Item = (String, Source, AccountIndex)>) {
        let _writer = self.writer.lock();
        let mut snapshot = Snapshot::default();
        for (account, source, index) in books {
            let books = snapshot.entry(Arc::from(account)).or_default();
            books.0[source as usize] = Some(AccountBook::new(index));
        }
        self.current.store(Arc::new(snapshot));
    }

    /// Replaces one source's index of an account in a single swap: a lookup sees the old one
    /// or the new one, never a mix.
    pub fn replace(&self, account: &str, source: Source, index: AccountIndex) {
        self.replace_book(account, source, AccountBook::new(index));
    }

    /// Replaces one source's book of an account (a patched one, say) in a single swap.
    pub fn replace_book(&self, account: &str, source: Source, book: AccountBook) {
        self.update(account, |books| books.0[source as usize] = Some(book));
    }

    /// One source's book of the account as lookups read it now, for patching.
    pub fn book(&self, account: &str, source: Source) -> Option<AccountBook> {
        self.current.load().get(account)?.0[source as usize].clone()
    }

    /// Forgets every source of the account.
    pub fn remove(&self, account: &str) {
        let _writer = self.writer.lock();
        if !self.current.load().contains_key(account) {
            return;
        }
        let mut snapshot = Snapshot::clone(&self.current.load());
        snapshot.remove(account);
        self.current.store(Arc::new(snapshot));
    }

    /// Forgets one source of the account (dropped from the configuration).
    pub fn remove_source(&self, account: &str, source: Source) {
        if self.book(account, source).is_some() {
            self.update(account, |books| books.0[source as usize] = None);
        }
    }

    /// Replaces one source's book of the account (None: removes it) only if it is still the
    /// book `expected` identifies (None: the account had no book of the source): a writer
    /// that read a book, or the store, and finds that another writer swapped the book
    /// meanwhile must not undo that writer's change. Says whether it replaced it.
    pub fn replace_book_if(
        &self,
        account: &str,
        source: Source,
        expected: Option<&BookIdentity>,
        book: Option<AccountBook>,
    ) -> bool {
        let _writer = self.writer.lock();
        let snapshot = self.current.load();
        let current = snapshot
            .get(account)
            .and_then(|books| books.0[source as usize].as_ref());
        let still = match (expected, current) {
            (Some(expected), Some(current)) => expected.is(current),
            (None, None) => true,
            _ => false,
        };
        if still && (book.is_some() || current.is_some()) {
            self.swap_locked(account, |books| books.0[source as usize] = book);
        }
        still
    }

    fn update(&self, account: &str, change: impl FnOnce(&mut SourceBooks)) {
        let _writer = self.writer.lock();
        self.swap_locked(account, change);
    }

    /// Swaps in a copy of the snapshot with `change` made to the account's books; an account
    /// left without a book leaves the map. The writer's lock is held by the caller.
    fn swap_locked(&self, account: &str, change: impl FnOnce(&mut SourceBooks)) {
        let mut snapshot = Snapshot::clone(&self.current.load());
        let books = snapshot.entry(Arc::from(account)).or_default();
        change(books);
        if books.0.iter().all(Option::is_none) {
            snapshot.remove(account);
        }
        self.current.store(Arc::new(snapshot));
    }

    /// (contacts, numbers) of one account, over every source, for the status.
    pub fn counts(&self, account: &str) -> (usize, usize) {
        let snapshot = self.current.load();
        let Some(books) = snapshot.get(account) else {
            return (0, 0);
        };
        books.iter().fold((0, 0), |(contacts, numbers), (_, book)| {
            let (c, n) = book.counts();
            (contacts + c, numbers + n)
        })
    }

    /// (contacts, numbers) of one source of an account, for the status.
    pub fn source_counts(&self, account: &str, source: Source) -> (usize, usize) {
        self.book(account, source)
            .map_or((0, 0), |book| book.counts())
    }

    /// Finds who is calling `account` from `number` and hands it to `copy_out`, which runs
    /// while the snapshot is held. The account's own contacts answer first, then its
    /// domain's, each source in the contract's order; no other account is ever searched. A
    /// number read without a country code may match on its national number, but only when
    /// exactly one contact fits; failing that, on its digits read as E.164 without the '+'.
    pub fn lookup<R>(
        &self,
        account: &str,
        number: &IncomingNumber,
        copy_out: impl FnOnce(ContactMatch<'_>) -> R,
    ) -> Option<R> {
        let snapshot = self.current.load();
        let domain = domain_of(account);
        let own = snapshot.get_key_value(account);
        let shared = if domain == account {
            None
        } else {
            snapshot.get_key_value(domain)
        };
        let scopes = [own, shared];
        let books = || {
            scopes.iter().flatten().flat_map(|(name, books)| {
                books
                    .iter()
                    .map(move |(source, book)| (&***name, source, book))
            })
        };

        for (name, source, book) in books() {
            if let Some(found) = book.exact(number.e164, name, source) {
                return Some(copy_out(found));
            }
        }
        // "Exactly one contact fits" over all the lookup sees: one in the account's contacts
        // and another in its directory, other contacts or its domain's are two, and the
        // national number a guess between countries that is not made.
        if let Some(national) = number.national {
            let mut only = None;
            for (name, source, book) in books() {
                match book.national(national.0, name, source) {
                    Ok(None) => continue,
                    Ok(Some(found)) if only.is_none() => only = Some(found),
                    Ok(Some(_)) | Err(()) => {
                        only = None; // several fit: no national match
                        break;
                    }
                }
            }
            if let Some(found) = only {
                return Some(copy_out(found));
            }
        }
        // The digits read as E.164 without their '+', when no national reading matched.
        let international = number.international?;
        for (name, source, book) in books() {
            if let Some(found) = book.exact(international, name, source) {
                return Some(copy_out(found));
            }
        }
        None
    }
}

impl ContactIndex {
    /// Searches what a lookup on `account` sees (its own contacts, then its domain's, every
    /// source) and hands rows `offset..offset + cap` of the result, in the address book's
    /// order, to `each`; returns how many rows match in all. Reads the current snapshot only.
    pub fn search(
        &self,
        account: &str,
        query: &Query,
        offset: usize,
        cap: usize,
        mut each: impl FnMut(ContactMatch<'_>),
    ) -> usize {
        let snapshot = self.current.load();
        let domain = domain_of(account);
        let own = snapshot.get_key_value(account);
        let shared = if domain == account {
            None
        } else {
            snapshot.get_key_value(domain)
        };
        // Own first: on a tie the account's own row comes before its domain's (and within
        // each, the sources in lookup order). Each book's base is searched without the
        // contacts its patch replaced, and the patch's levels of changed contacts beside it.
        let need = offset.saturating_add(cap);
        let scopes: Vec<(&str, Source, &AccountIndex, Matches)> = [own, shared]
            .into_iter()
            .flatten()
            .flat_map(|(name, books)| {
                books.iter().flat_map(move |(source, book)| {
                    book.address_books().map(move |(index, hidden)| {
                        let matches = index.names.matching(query, need, hidden);
                        (name.as_ref(), source, index, matches)
                    })
                })
            })
            .collect();
        let total: usize = scopes.iter().map(|(_, _, _, m)| m.total).sum();
        let mut next = vec![0usize; scopes.len()];
        for position in 0..total.min(need) {
            let mut pick: Option<usize> = None;
            for (s, (_, _, index, matches)) in scopes.iter().enumerate() {
                let Some(&candidate) = matches.first.get(next[s]) else {
                    continue;
                };
                let row = index.names.row(candidate);
                let better = match pick {
                    None => true,
                    Some(p) => {
                        let (_, _, best_index, best_matches) = &scopes[p];
                        let best = best_index.names.row(best_matches.first[next[p]]);
                        index.row_order(row, best_index, best) == Ordering::Less
                    }
                };
                if better {
                    pick = Some(s);
                }
            }
            let Some(p) = pick else { break };
            let (name, source, index, matches) = &scopes[p];
            if position >= offset {
                each(index.found(index.names.row(matches.first[next[p]]), name, *source));
            }
            next[p] += 1;
        }
        total
    }
}

impl AccountIndex {
    /// The address book's order between a row of this index and one of another.
    fn row_order(&self, row: &Row, other: &AccountIndex, other_row: &Row) -> Ordering {
        let a = self.found(row, "", Source::Contacts);
        let b = other.found(other_row, "", Source::Contacts);
        fold::fold(a.name)
            .cmp(&fold::fold(b.name))
            .then_with(|| fold::fold(a.company).cmp(&fold::fold(b.company)))
            .then_with(|| super::names::number_text_order(row.e164, other_row.e164))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::contact::ContactNumber;
    use crate::book::phone::RegionRules;

    fn contact(resource: &str, name: &str, numbers: &[(&str, &str)]) -> Contact {
        let us = RegionRules::new("US").unwrap();
        Contact {
            resource_name: resource.into(),
            name: name.into(),
            company: String::new(),
            numbers: numbers
                .iter()
                .map(|(value, label)| {
                    let stored = us.normalise_stored(value, None).unwrap();
                    ContactNumber {
                        e164: stored.e164,
                        national: stored.national,
                        label: (*label).into(),
                    }
                })
                .collect(),
            groups: Vec::new(),
        }
    }

    fn incoming(region: &str, number: &str) -> IncomingNumber {
        RegionRules::new(region)
            .unwrap()
            .read_incoming(number)
            .unwrap()
    }

    fn name_of(index: &ContactIndex, account: &str, region: &str, number: &str) -> Option<String> {
        index.lookup(account, &incoming(region, number), |m| {
            format!("{}|{}|{}", m.name, m.label, m.account)
        })
    }

    fn search(
        index: &ContactIndex,
        account: &str,
        query: &str,
        offset: usize,
        cap: usize,
    ) -> (Vec<String>, usize) {
        let query = Query::parse(query, false).unwrap();
        let mut rows = Vec::new();
        let total = index.search(account, &query, offset, cap, |m| {
            rows.push(format!(
                "{} {} {}",
                m.name,
                m.number.to_string_e164(),
                m.account
            ))
        });
        (rows, total)
    }

    /// A large book is folded in blocks on two threads and the blocks joined: the address
    /// book must be the very one a single pass makes, however the blocks fell, with words
    /// (short, long, of groups) and names shared across the blocks, and contacts without a
    /// number in them.
    #[test]
    fn a_book_folded_on_two_threads_is_the_book_folded_in_one_pass() {
        let us = RegionRules::new("US").unwrap();
        let count = BESIDE_FROM + 700;
        let contacts: Vec<Contact> = (0..count)
            .map(|i| Contact {
                resource_name: format!("people/c{i}"),
                name: format!(
                    "{} {} {}",
                    ["Anna", "Jürgen", "Zoë", "Straße"][i % 4],
                    ["Müller", "Ngu", "Extraordinarilylongfamilyname"][i % 3],
                    i % 700
                ),
                company: if i % 5 == 0 {
                    format!("Firma{}", i % 9)
                } else {
                    String::new()
                },
                numbers: (0..[1, 0, 2, 3][i % 4])
                    .map(|n| {
                        let stored = us
                            .normalise_stored(
                                // A contact's second number sorts before its first.
                                &format!("+1{}{:07}", [212, 201, 646][n], (i * 7919) % 9_999_991),
                                None,
                            )
                            .unwrap();
                        ContactNumber {
                            e164: stored.e164,
                            national: stored.national,
                            label: "work".into(),
                        }
                    })
                    .collect(),
                groups: Vec::new(),
            })
            .collect();
        let groups: Vec<Vec<String>> = (0..count)
            .map(|i| match i % 6 {
                0 => vec!["Kunden Nord".to_string()],
                1 => vec![
                    "Lieferantenbeziehungsmanagement".to_string(),
                    "Anna".to_string(),
                ],
                _ => Vec::new(),
            })
            .collect();
        // Not every contact kept (as `contact_groups` leaves some out), so that positions
        // among the kept contacts and in `groups` differ.
        let kept: Vec<usize> = (0..count).filter(|i| i % 7 != 3).collect();
        let ids: Vec<u64> = (0..count as u64).collect();
        let refs: Vec<&Contact> = kept.iter().map(|&i| &contacts[i]).collect();
        let numbers = refs.iter().map(|c| c.numbers.len()).sum();

        let (book, e164s) = fold_book(&refs, 0..refs.len(), (refs.len(), numbers), &kept, &groups);
        let part = CallerIdPart::build(
            &refs,
            &GroupNames::new(),
            Buffers::new(numbers, Parts::Both),
        );
        let (one_pass, ranks) = book.lay_out(&e164s).index(part.book_rows.clone());

        // However the threads share the fold (as fast as each turns out to be), the book is
        // the same: several builds, so that a late start may show.
        for _ in 0..8 {
            let index = AccountIndex::build_kept(
                &contacts,
                &kept,
                &groups,
                &GroupNames::new(),
                &ids,
                Parts::Both,
            );
            assert!(index.names == one_pass, "the address books differ");
            for (&i, &rank) in kept.iter().zip(&ranks) {
                let expected = (rank != u32::MAX).then_some(rank);
                assert_eq!(
                    index.rank_of_id(ids[i]).filter(|&r| r != u32::MAX),
                    expected
                );
            }
        }
    }

    /// A follower read the book, patched it, and finds that the node swapped in another book
    /// meanwhile (its own sync's), even one with the very same contacts: its patch must not
    /// land over it. The book it read is told apart by identity, not by content.
    #[test]
    fn a_book_is_replaced_only_if_it_is_still_the_very_book_that_was_read() {
        let index = ContactIndex::default();
        let build = |name: &str| {
            AccountIndex::build(&[contact("people/b", name, &[("2125550101", "work")])])
        };
        index.replace("example.com/40", Source::Contacts, build("Bea"));
        let read = index.book("example.com/40", Source::Contacts).unwrap();
        let identity = read.identity();
        // Meanwhile: the same contacts, built anew.
        index.replace("example.com/40", Source::Contacts, build("Bea"));
        let late = AccountBook::new(build("Late Patch"));
        assert!(!index.replace_book_if(
            "example.com/40",
            Source::Contacts,
            Some(&identity),
            Some(late)
        ));
        let answer = || name_of(&index, "example.com/40", "US", "2125550101");
        assert_eq!(answer().as_deref(), Some("Bea|work|example.com/40"));

        let current = index.book("example.com/40", Source::Contacts).unwrap();
        let fresh = AccountBook::new(build("Fresh Patch"));
        assert!(index.replace_book_if(
            "example.com/40",
            Source::Contacts,
            Some(&current.identity()),
            Some(fresh)
        ));
        assert_eq!(answer().as_deref(), Some("Fresh Patch|work|example.com/40"));
        // A source the account does not have is not the book that was read either.
        let other = AccountBook::new(build("Other"));
        let directory = Source::Directory;
        assert!(!index.replace_book_if("example.com/40", directory, Some(&identity), Some(other)));
        assert!(index.book("example.com/40", directory).is_none());

        // A source that had no book when the store was read gets the book read only while it
        // still has none: a book swapped in meanwhile (this node's own sync's) stands.
        let read_then = AccountBook::new(build("Read Then"));
        assert!(index.replace_book_if("example.com/40", directory, None, Some(read_then)));
        assert!(index.book("example.com/40", directory).is_some());
        let stale = AccountBook::new(build("Stale"));
        assert!(!index.replace_book_if("example.com/40", directory, None, Some(stale)));
        // Removing (the store had no contacts of the source) is guarded the same way.
        let current = index.book("example.com/40", directory).unwrap().identity();
        assert!(!index.replace_book_if("example.com/40", directory, Some(&identity), None));
        assert!(index.book("example.com/40", directory).is_some());
        assert!(index.replace_book_if("example.com/40", directory, Some(&current), None));
        assert!(index.book("example.com/40", directory).is_none());
        assert!(index.replace_book_if("example.com/40", directory, None, None));
    }

    #[test]
    fn an_index_built_before_the_write_takes_the_store_ids_as_one_built_after() {
        let contacts = [
            contact("people/b", "Bea", &[("2125550101", "work")]),
            contact("people/n", "Nobody", &[]),
            contact("people/a", "Al", &[("2125550102", ""), ("2125550103", "")]),
        ];
        let stored = [907, 908, 912];
        let before = AccountIndex::build_stored(&contacts, &[0, 1, 2], &GroupNames::new(), None)
            .with_store_ids(&stored);
        let after = AccountIndex::build_stored(&contacts, &stored, &GroupNames::new(), None);
        assert_eq!(before.ids, after.ids);
        assert_eq!(before.id_ranks, after.id_ranks);
        assert!(before.patchable());
        for id in stored {
            assert_eq!(before.rank_of_id(id), after.rank_of_id(id));
        }
    }

    #[test]
    fn a_search_merges_the_account_and_its_domain_in_order_own_first_and_pages() {
        let index = ContactIndex::default();
        index.replace(
            "example.com",
            Source::Contacts,
            AccountIndex::build(&[
                contact("people/d1", "Bea Desk", &[("2125550101", "work")]),
                contact("people/d2", "anna Desk", &[("2125550102", "work")]),
                contact("people/d3", "Carl", &[("2125550103", "work")]),
            ]),
        );
        index.replace(
            "example.com/40",
            Source::Contacts,
            AccountIndex::build(&[
                contact("people/o1", "Anna Desk", &[("2125550102", "mobile")]),
                contact("people/o2", "Bob", &[("2125550104", "mobile")]),
            ]),
        );
        index.replace(
            "other.com",
            Source::Contacts,
            AccountIndex::build(&[contact("people/x", "Anna Other", &[("2125550109", "")])]),
        );
        let (rows, total) = search(&index, "example.com/40", "", 0, 10);
        assert_eq!(total, 5);
        assert_eq!(
            rows,
            [
                "Anna Desk +12125550102 example.com/40",
                "anna Desk +12125550102 example.com",
                "Bea Desk +12125550101 example.com",
                "Bob +12125550104 example.com/40",
                "Carl +12125550103 example.com",
            ]
        );
        let (page, total) = search(&index, "example.com/40", "", 2, 2);
        assert_eq!((page.as_slice(), total), (&rows[2..4], 5));
        let (desk, total) = search(&index, "example.com/40", "desk", 0, 1);
        assert_eq!((desk.len(), total), (1, 3));
        let (none, total) = search(&index, "example.com/40", "other", 0, 10);
        assert!(none.is_empty() && total == 0, "never another tenant's");
        let (domain_only, _) = search(&index, "example.com", "anna", 0, 10);
        assert_eq!(domain_only, ["anna Desk +12125550102 example.com"]);
    }

    #[test]
    fn groups_show_by_name_sorted_and_filter_when_configured() {
        let mut customer = contact("people/c1", "Ann", &[("2125550101", "")]);
        customer.groups = vec![
            "contactGroups/b".into(),
            "contactGroups/myContacts".into(),
            "contactGroups/a".into(),
        ];
        let other = contact("people/c2", "Bo", &[("2125550102", "")]);
        let names: GroupNames = [
            ("contactGroups/a".to_string(), "VIP".to_string()),
            ("contactGroups/b".to_string(), "customers".to_string()),
        ]
        .into_iter()
        .collect();
        let index = ContactIndex::default();
        let all = AccountIndex::build_with(&[customer.clone(), other.clone()], &names, None);
        index.replace("example.com", Source::Contacts, all);
        let groups = index.lookup("example.com", &incoming("US", "2125550101"), |m| {
            m.groups.to_owned()
        });
        assert_eq!(
            groups.as_deref(),
            Some("customers, VIP"),
            "system groups hidden"
        );
        assert_eq!(
            search(&index, "example.com", "vip", 0, 10).1,
            1,
            "groups are searched"
        );
        let only = vec!["Customers".to_string()];
        index.replace(
            "example.com",
            Source::Contacts,
            AccountIndex::build_with(&[customer, other], &names, Some(&only)),
        );
        assert_eq!(search(&index, "example.com", "", 0, 10).1, 1);
        assert!(name_of(&index, "example.com", "US", "2125550102").is_none());
    }

    #[test]
    fn a_group_filter_ignores_case_only() {
        assert!(same_group_name("Customers", "customers"));
        assert!(same_group_name("ÄRZTE", "Ärzte"));
        assert!(same_group_name("клиенты", "Клиенты"));
        assert!(!same_group_name("Arzte", "Ärzte"));
        assert!(
            !same_group_name("公式", "公事"),
            "both transliterate to gong shi"
        );
        assert!(!same_group_name("Klienty", "Клиенты"));
        // Through a build: the contact of 公事 is not kept by 公式.
        let mut c = contact("people/c1", "Ann", &[("2125550101", "")]);
        c.groups = vec!["contactGroups/b".into()];
        let names: GroupNames = [("contactGroups/b".to_string(), "公事".to_string())]
            .into_iter()
            .collect();
        let only = vec!["公式".to_string()];
        let index = AccountIndex::build_with(&[c], &names, Some(&only));
        assert_eq!(index.contact_count(), 0);
    }

    #[test]
    fn a_shared_number_resolves_to_the_name_that_sorts_first_whatever_the_order() {
        let a = contact("people/c1", "Zoe", &[("212-555-0100", "work")]);
        let b = contact("people/c2", "Adam", &[("(212) 555-0100", "mobile")]);
        for contacts in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
            let index = ContactIndex::default();
            index.replace(
                "example.com",
                Source::Contacts,
                AccountIndex::build(&contacts),
            );
            assert_eq!(
                name_of(&index, "example.com", "US", "+12125550100").as_deref(),
                Some("Adam|mobile|example.com")
            );
        }
    }

    #[test]
    fn the_account_beats_its_domain_and_other_tenants_are_never_searched() {
        let index = ContactIndex::default();
        index.replace(
            "example.com",
            Source::Contacts,
            AccountIndex::build(&[
                contact("people/c1", "Domain Desk", &[("2125550100", "work")]),
                contact("people/c3", "Shared", &[("2125550111", "")]),
            ]),
        );
        index.replace(
            "example.com/40",
            Source::Contacts,
            AccountIndex::build(&[contact(
                "people/c2",
                "Own Contact",
                &[("2125550100", "mobile")],
            )]),
        );
        index.replace(
            "other.com",
            Source::Contacts,
            AccountIndex::build(&[contact("people/c9", "Other Tenant", &[("2125550199", "")])]),
        );
        assert_eq!(
            name_of(&index, "example.com/40", "US", "+12125550100").as_deref(),
            Some("Own Contact|mobile|example.com/40")
        );
        assert_eq!(
            name_of(&index, "example.com/40", "US", "+12125550111").as_deref(),
            Some("Shared||example.com")
        );
        assert_eq!(
            name_of(&index, "example.com", "US", "+12125550100").as_deref(),
            Some("Domain Desk|work|example.com")
        );
        assert_eq!(
            name_of(&index, "example.com/40", "US", "+12125550199"),
            None
        );
        assert_eq!(name_of(&index, "other.com/1", "US", "+12125550100"), None);
        assert_eq!(name_of(&index, "example.co", "US", "+12125550100"), None);
    }

    #[test]
    fn a_national_number_matches_only_when_exactly_one_contact_fits() {
        // Stored in the US; the call arrives without a country code at a German PBX, so it
        // reads as +49…: only the national-number rule can find it.
        let index = ContactIndex::default();
        index.replace(
            "example.com",
            Source::Contacts,
            AccountIndex::build(&[contact(
                "people/c1",
                "Unique",
                &[("2125550100", "work"), ("+1 212 555 0100", "other")],
            )]),
        );
        let hit = index.lookup("example.com", &incoming("DE", "2125550100"), |m| {
            (m.name.to_owned(), m.number)
        });
        assert_eq!(
            hit,
            Some(("Unique".to_owned(), incoming("US", "2125550100").e164))
        );

        index.replace(
            "example.com",
            Source::Contacts,
            AccountIndex::build(&[
                contact("people/c1", "One", &[("2125550100", "")]),
                contact("people/c2", "Two", &[("+44 21 2555 0100", "")]),
            ]),
        );
        // Two contacts (in two countries) share the national number: neither may answer.
        assert_eq!(name_of(&index, "example.com", "DE", "2125550100"), None);
        // But each answers its own full number.
        assert_eq!(
            name_of(&index, "example.com", "DE", "+12125550100").as_deref(),
            Some("One||example.com")
        );
        // With a country code, the national rule never applies.
        assert_eq!(name_of(&index, "example.com", "DE", "+492125550100"), None);
    }

    #[test]
    fn the_table_finds_every_number_and_nothing_else() {
        for count in [1usize, 2, 7, 1000, 10_000] {
            let contacts: Vec<Contact> = (0..count)
                .map(|i| Contact {
                    resource_name: format!("people/c{i}"),
                    name: format!("N{i}"),
                    company: String::new(),
                    numbers: vec![ContactNumber {
                        e164: E164(12_000_000_000 + i as u64 * 7),
                        national: crate::book::phone::NationalKey(12_000_000_000 + i as u64 * 7),
                        label: String::new(),
                    }],
                    groups: Vec::new(),
                })
                .collect();
            let index = AccountIndex::build(&contacts);
            for i in 0..count {
                let slot = index
                    .exact(E164(12_000_000_000 + i as u64 * 7))
                    .expect("inserted");
                assert_eq!(
                    index.found(slot, "a", Source::Contacts).name,
                    format!("N{i}")
                );
                assert!(index
                    .exact(E164(12_000_000_000 + i as u64 * 7 + 1))
                    .is_none());
            }
            assert_eq!(index.number_count(), count);
        }
        assert!(AccountIndex::build(&[])
            .exact(E164(12_125_550_100))
            .is_none());
    }

    #[test]
    fn text_longer_than_gi_contact_carries_is_cut_at_a_character_boundary() {
        let mut c = contact(
            "people/c1",
            &format!("{}é", "a".repeat(126)),
            &[("2125550100", "a-label-that-is-longer-than-thirty-one-bytes")],
        );
        c.company = "🦀".repeat(40);
        let index = AccountIndex::build(&[c]);
        let slot = index.exact(E164(12_125_550_100)).unwrap();
        let found = index.found(slot, "a", Source::Contacts);
        assert_eq!(found.name, "a".repeat(126));
        assert_eq!(found.company, "🦀".repeat(31));
        assert_eq!(found.label.len(), 31);
    }

    /// A row holds its label's id in 16 bits: an account with more distinct labels than that
    /// (hostile input) shows no label on the numbers past them, never another number's.
    #[test]
    fn labels_past_what_a_row_can_number_show_none_rather_than_another() {
        let count = usize::from(u16::MAX) + 3;
        let contacts: Vec<Contact> = (0..count)
            .map(|i| Contact {
                resource_name: format!("people/c{i}"),
                name: "Someone".into(),
                company: String::new(),
                numbers: vec![ContactNumber {
                    e164: E164(12_000_000_000 + i as u64),
                    national: crate::book::phone::NationalKey(2_000_000_000 + i as u64),
                    label: format!("label {i}"),
                }],
                groups: Vec::new(),
            })
            .collect();
        let index = AccountIndex::build_caller_id_only(&contacts);
        let label_of = |i: usize| {
            let slot = index.exact(E164(12_000_000_000 + i as u64)).unwrap();
            index.found(slot, "a", Source::Contacts).label.to_owned()
        };
        for i in [0, 1, count / 2, usize::from(u16::MAX) - 1] {
            assert_eq!(label_of(i), format!("label {i}"));
        }
        for i in usize::from(u16::MAX)..count {
            assert_eq!(label_of(i), "", "number {i}");
        }
    }

    /// Contacts without a number (email-only ones) are counted, but keep no text: no row
    /// points at it. The others' text, and what a lookup and a search find, are as without
    /// them.
    #[test]
    fn a_contact_without_a_number_keeps_no_text() {
        let with_numbers = [
            contact("people/b", "Bea Example", &[("2125550101", "work")]),
            contact("people/d", "Dan Example", &[("2125550102", "mobile")]),
        ];
        let mut all = with_numbers.to_vec();
        all.insert(1, contact("people/c", "Cy Emailonly", &[]));
        let (index, only) = (
            AccountIndex::build(&all),
            AccountIndex::build(&with_numbers),
        );
        assert_eq!(index.contact_count(), 3);
        assert_eq!(index.text, only.text);
        assert_eq!(index.text.matches("Emailonly").count(), 0);
        let slot = index.exact(E164(12_125_550_102)).unwrap();
        assert_eq!(index.found(slot, "a", Source::Contacts).name, "Dan Example");
        assert!(index.names == only.names);
    }

    #[test]
    fn replacing_and_removing_accounts() {
        let index = ContactIndex::default();
        index.replace(
            "example.com",
            Source::Contacts,
            AccountIndex::build(&[contact("people/c1", "Old", &[("2125550100", "")])]),
        );
        index.replace(
            "example.com",
            Source::Contacts,
            AccountIndex::build(&[contact("people/c1", "New", &[("2125550100", "")])]),
        );
        assert_eq!(
            name_of(&index, "example.com", "US", "2125550100").as_deref(),
            Some("New||example.com")
        );
        assert_eq!(index.counts("example.com"), (1, 1));
        index.remove("example.com");
        assert_eq!(name_of(&index, "example.com", "US", "2125550100"), None);
        assert_eq!(index.counts("example.com"), (0, 0));
    }
}
