//! Incremental syncs patch an account's index instead of rebuilding it: the index built at the
//! last full build (the base) stays as it is, and a patch beside it answers for what changed
//! since. A sync of k changes costs time in proportion to k (and to the few contacts that
//! share a number with them), not to the account's size.
//!
//! - Numbers: the patch keeps who answers each E.164 and national number a change touched,
//!   worked out over every contact that holds it now with the tie-break a full build applies
//!   ("nobody" for a number no one holds any more). To know every holder, it keeps the current
//!   version of each changed contact and of each unchanged one that shares a touched number
//!   (read from the store by number the first time a number is touched). Every other number
//!   no change touched, and the base still answers it rightly.
//! - Names: the base's address book without the contacts replaced since, merged with the
//!   changed contacts' own address book, kept in levels like a binary counter: each sync adds
//!   a level of its changes, and two levels merge when the newer is as big as the older, so a
//!   contact is rebuilt into a level O(log n) times in all and a search reads O(log n) levels.
//!
//! A sync copies the patch's maps of answers (two pointers an entry) rather than changing them
//! in place, since lookups may still read the last patch. Past a sixteenth of the account, the
//! next change builds in full from the store instead, which keeps that copy small and the
//! levels few.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use super::contact::{Contact, Source};
use super::names::Hidden;
use super::numbers::{
    cut, groups_text, kept_by_groups, tie_break, AccountIndex, ContactMatch, FxSet, GroupNames,
    Parts, MAX_LABEL_BYTES, MAX_TEXT_BYTES,
};
use super::phone::{NationalKey, E164};

/// A contact version a sync replaced or deleted, as the store held it: its store id and its
/// numbers (E.164, national number).
#[derive(Clone, Debug)]
pub struct Replaced {
    pub id: u64,
    pub numbers: Vec<(E164, NationalKey)>,
}

/// What an incremental sync changed, as it landed in the store.
pub struct Change<'a> {
    /// The stored versions the sync replaced or deleted.
    pub replaced: &'a [Replaced],
    /// The new versions.
    pub upserts: &'a [Contact],
    /// Resource names deleted.
    pub deletions: &'a [String],
}

/// An account's index: the base, and the patch of the changes since it was built. Cheap to
/// clone (two pointers), and held by value in the snapshot, so that a lookup reaches the base
/// through no more pointers than before patches existed.
#[derive(Clone)]
pub struct AccountBook {
    pub(super) base: Arc<AccountIndex>,
    pub(super) patch: Option<Arc<Patch>>,
    /// Set when a sync starts a full build of the account's index: the store has moved past
    /// this book, so nothing may patch it, even if that build fails and the book stays.
    rebuild_due: Arc<AtomicBool>,
}

/// What the phone shows for a number the patch answers, in one allocation: name, company,
/// label and groups, one after the other.
pub(super) struct Answer {
    text: Box<str>,
    name_len: u8,
    company_len: u8,
    label_len: u8,
    e164: E164,
}

impl Answer {
    /// The row a full build gives `contact`'s first number with `e164`.
    fn new(contact: &Contact, e164: u64, group_names: &GroupNames) -> Answer {
        let number = contact
            .numbers
            .iter()
            .find(|n| n.e164.0 == e164)
            .expect("a holder holds the number");
        let name = cut(&contact.name, MAX_TEXT_BYTES);
        let company = cut(&contact.company, MAX_TEXT_BYTES);
        let label = cut(&number.label, MAX_LABEL_BYTES);
        let groups = groups_text(contact, group_names);
        Answer {
            text: [name, company, label, &groups].concat().into_boxed_str(),
            name_len: name.len() as u8,
            company_len: company.len() as u8,
            label_len: label.len() as u8,
            e164: number.e164,
        }
    }

    fn found<'a>(&'a self, account: &'a str, source: Source) -> ContactMatch<'a> {
        let (name, rest) = self.text.split_at(usize::from(self.name_len));
        let (company, rest) = rest.split_at(usize::from(self.company_len));
        let (label, groups) = rest.split_at(usize::from(self.label_len));
        ContactMatch {
            name,
            company,
            label,
            number: self.e164,
            account,
            groups,
            source: source.name(),
        }
    }
}

#[derive(Clone)]
enum NationalAnswer {
    Nobody,
    Several,
    One(Arc<Answer>),
}

pub(super) struct Patch {
    /// What the next sync's patch starts from. That sync takes it (a move: carrying a patch
    /// over costs nothing per contact); lookups and searches never touch it.
    carried: Mutex<Option<Carried>>,
    /// Who answers each E.164 number a change touched since the base (None: nobody now).
    exact: FxHashMap<u64, Option<Arc<Answer>>>,
    /// The same for national numbers.
    national: FxHashMap<u64, NationalAnswer>,
    /// The base contacts replaced or deleted since: their places and rows in its book.
    base_hidden: Arc<Hidden>,
    /// The changed contacts' address book, oldest and biggest level first.
    levels: Vec<Level>,
    contact_count: usize,
    number_count: usize,
    size: usize,
}

/// A level of the changed contacts' address book: an index of the contacts that changed in a
/// run of syncs, with those that changed again later hidden. A contact's store id in the
/// level's index is its position in `members`.
#[derive(Clone)]
struct Level {
    index: Arc<AccountIndex>,
    hidden: Arc<Hidden>,
    members: Arc<[String]>,
}

/// A contact the patch knows, in its current version.
struct Held {
    contact: Contact,
    /// Kept by `contact_groups` (when set).
    kept: bool,
    /// Changed since the base (else an unchanged holder of a touched number, which the base
    /// still shows in searches).
    changed: bool,
    /// Its level and position there, when it changed and is kept.
    placed: Option<(usize, u32)>,
}

#[derive(Default)]
struct Carried {
    contacts: FxHashMap<String, Held>,
    /// The holders among `contacts`, by E.164 and by national number.
    by_e164: FxHashMap<u64, Vec<String>>,
    by_national: FxHashMap<u64, Vec<String>>,
    /// Numbers whose every holder is in `contacts`: those a change touched.
    touched_e164s: FxSet<u64>,
    touched_nationals: FxSet<u64>,
    /// The base versions replaced or deleted, by store id, and how many numbers they had.
    hidden_ids: FxSet<u64>,
    hidden_numbers: usize,
    /// Changed contacts kept by `contact_groups`, and their numbers.
    changed_kept: usize,
    changed_kept_numbers: usize,
}

impl Carried {
    fn add(&mut self, resource_name: &str, held: Held) {
        let c = &held.contact;
        for number in &c.numbers {
            for (map, key) in [
                (&mut self.by_e164, number.e164.0),
                (&mut self.by_national, number.national.0),
            ] {
                let holders = map.entry(key).or_default();
                if holders.last().is_none_or(|h| h != resource_name) {
                    holders.push(resource_name.to_owned());
                }
            }
        }
        if held.changed && held.kept {
            self.changed_kept += 1;
            self.changed_kept_numbers += c.numbers.len();
        }
        self.contacts.insert(resource_name.to_owned(), held);
    }

    fn remove(&mut self, resource_name: &str) -> Option<Held> {
        let held = self.contacts.remove(resource_name)?;
        for number in &held.contact.numbers {
            for (map, key) in [
                (&mut self.by_e164, number.e164.0),
                (&mut self.by_national, number.national.0),
            ] {
                if let Some(holders) = map.get_mut(&key) {
                    holders.retain(|h| h != resource_name);
                    if holders.is_empty() {
                        map.remove(&key);
                    }
                }
            }
        }
        if held.changed && held.kept {
            self.changed_kept -= 1;
            self.changed_kept_numbers -= held.contact.numbers.len();
        }
        Some(held)
    }

    /// The kept holders of `key` in `map`.
    fn kept_holders<'a>(
        &'a self,
        map: &'a FxHashMap<u64, Vec<String>>,
        key: u64,
    ) -> impl Iterator<Item = &'a Contact> + 'a {
        map.get(&key)
            .into_iter()
            .flatten()
            .map(|rn| &self.contacts[rn])
            .filter(|h| h.kept)
            .map(|h| &h.contact)
    }

    /// Who answers `e164` now, by the tie-break of a full build.
    fn exact(&self, e164: u64, group_names: &GroupNames) -> Option<Arc<Answer>> {
        let winner = self
            .kept_holders(&self.by_e164, e164)
            .min_by(|a, b| tie_break(a).cmp(&tie_break(b)))?;
        Some(Arc::new(Answer::new(winner, e164, group_names)))
    }

    /// Who answers `national` now: only a single contact, with its lowest E.164 of it.
    fn national(&self, national: u64, group_names: &GroupNames) -> NationalAnswer {
        let mut holders = self.kept_holders(&self.by_national, national);
        let Some(only) = holders.next() else {
            return NationalAnswer::Nobody;
        };
        if holders.next().is_some() {
            return NationalAnswer::Several;
        }
        let e164 = only
            .numbers
            .iter()
            .filter(|n| n.national.0 == national)
            .map(|n| n.e164.0)
            .min()
            .expect("a holder holds the number");
        NationalAnswer::One(Arc::new(Answer::new(only, e164, group_names)))
    }
}

/// Where no contact is hidden.
static NO_ONE: Hidden = Hidden {
    ranks: Vec::new(),
    rows: Vec::new(),
};

/// How big a patch may grow before the next change builds in full: a sixteenth of the
/// account (at least 64), measured by what it holds and what it hides, and by the numbers it
/// answers for (two to a contact: contacts created and deleted again leave those behind).
fn patch_limit(base: &AccountIndex) -> usize {
    (base.contact_count() / 16).max(64)
}

impl Carried {
    /// The patch's size against `patch_limit`, with `more` contacts to come.
    fn weight(&self, more: usize) -> usize {
        (self.contacts.len() + more)
            .max(self.hidden_ids.len() + more)
            .max(self.touched_e164s.len() / 2)
    }
}

/// Which book an `AccountBook` is, without keeping it alive (its memory is freed as usual;
/// only the two allocations' headers stay while this does, so no later book can take their
/// address and pass for it).
#[derive(Clone)]
pub struct BookIdentity {
    base: Weak<AccountIndex>,
    patch: Option<Weak<Patch>>,
}

impl BookIdentity {
    /// Whether `book` is the very book this identifies (not merely an equal one).
    pub fn is(&self, book: &AccountBook) -> bool {
        let same_patch = match (&self.patch, &book.patch) {
            (None, None) => true,
            (Some(was), Some(now)) => std::ptr::eq(was.as_ptr(), Arc::as_ptr(now)),
            _ => false,
        };
        same_patch && std::ptr::eq(self.base.as_ptr(), Arc::as_ptr(&book.base))
    }
}

impl AccountBook {
    /// This book's identity (see `BookIdentity`).
    pub fn identity(&self) -> BookIdentity {
        BookIdentity {
            base: Arc::downgrade(&self.base),
            patch: self.patch.as_ref().map(Arc::downgrade),
        }
    }

    pub fn new(base: AccountIndex) -> AccountBook {
        AccountBook {
            base: Arc::new(base),
            patch: None,
            rebuild_due: Arc::default(),
        }
    }

    /// Says that a full build of the account has begun: this book must not be patched again
    /// (see `rebuild_due`).
    pub fn mark_rebuild_due(&self) {
        self.rebuild_due.store(true, Ordering::Relaxed);
    }

    /// Whether a full build was begun and has not replaced this book yet.
    pub fn rebuild_due(&self) -> bool {
        self.rebuild_due.load(Ordering::Relaxed)
    }

    /// (contacts, numbers), as a full build would count them.
    pub fn counts(&self) -> (usize, usize) {
        match &self.patch {
            Some(p) => (p.contact_count, p.number_count),
            None => (self.base.contact_count(), self.base.number_count()),
        }
    }

    /// How many contacts the patch holds (0 without one), for the logs and the benches.
    pub fn patch_size(&self) -> usize {
        self.patch.as_ref().map_or(0, |p| p.size)
    }

    /// Who answers `e164`, as a full build would say.
    #[inline]
    pub(super) fn exact<'a>(
        &'a self,
        e164: E164,
        account: &'a str,
        source: Source,
    ) -> Option<ContactMatch<'a>> {
        if let Some(patch) = &self.patch {
            if let Some(answer) = patch.exact.get(&e164.0) {
                return answer.as_ref().map(|a| a.found(account, source));
            }
        }
        let slot = self.base.exact(e164)?;
        Some(self.base.found(slot, account, source))
    }

    /// Who answers a national number: Ok(None) when nobody has it, Err(()) when several do.
    pub(super) fn national<'a>(
        &'a self,
        key: u64,
        account: &'a str,
        source: Source,
    ) -> Result<Option<ContactMatch<'a>>, ()> {
        if let Some(patch) = &self.patch {
            if let Some(answer) = patch.national.get(&key) {
                return match answer {
                    NationalAnswer::Nobody => Ok(None),
                    NationalAnswer::Several => Err(()),
                    NationalAnswer::One(a) => Ok(Some(a.found(account, source))),
                };
            }
        }
        Ok(self
            .base
            .national(key)?
            .map(|slot| self.base.found(slot, account, source)))
    }

    /// The address books a search reads, each with the contacts it must leave out.
    pub(super) fn address_books(&self) -> impl Iterator<Item = (&AccountIndex, &Hidden)> {
        let base_hidden = self.patch.as_ref().map_or(&NO_ONE, |p| &*p.base_hidden);
        let levels = self.patch.iter().flat_map(|p| p.levels.iter());
        std::iter::once((&*self.base, base_hidden))
            .chain(levels.map(|level| (&*level.index, &*level.hidden)))
    }

    /// The book after `change`, or None when it is time for a full build: the base has no
    /// store ids, the patch would outgrow its limit (`patch_limit`), a full build was begun
    /// since, or an earlier attempt failed half way. `holders` reads from the store every
    /// contact that now holds one of the given E.164 or national numbers. Call it once per
    /// book (it takes what the patch carries), with each resource name at most once in the
    /// change, as the sync's `last_change_of_each` leaves it.
    pub fn patched<E>(
        &self,
        change: &Change<'_>,
        group_names: &GroupNames,
        only_groups: Option<&[String]>,
        holders: impl FnOnce(&[u64], &[u64]) -> Result<Vec<Contact>, E>,
    ) -> Result<Option<AccountBook>, E> {
        let base = &self.base;
        if !base.patchable() || self.rebuild_due.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (mut carried, mut next) = match &self.patch {
            None => (
                Carried::default(),
                Patch {
                    carried: Mutex::new(None),
                    exact: FxHashMap::default(),
                    national: FxHashMap::default(),
                    base_hidden: Arc::new(Hidden::default()),
                    levels: Vec::new(),
                    contact_count: 0,
                    number_count: 0,
                    size: 0,
                },
            ),
            Some(last) => match last.carried.lock().take() {
                Some(carried) => (
                    carried,
                    Patch {
                        carried: Mutex::new(None),
                        exact: last.exact.clone(),
                        national: last.national.clone(),
                        base_hidden: Arc::clone(&last.base_hidden),
                        levels: last.levels.clone(),
                        contact_count: 0,
                        number_count: 0,
                        size: 0,
                    },
                ),
                None => return Ok(None), // taken by an attempt that failed
            },
        };
        let limit = patch_limit(base);
        if carried.weight(change.upserts.len().max(change.replaced.len())) > limit {
            return Ok(None);
        }

        // Every number this change touches, and those it touches first (whose other holders
        // the patch does not know yet).
        let mut now_e164s = Vec::new();
        let mut now_nationals = Vec::new();
        let mut first_e164s = Vec::new();
        let mut first_nationals = Vec::new();
        let old = change
            .replaced
            .iter()
            .flat_map(|r| r.numbers.iter().copied());
        let new = change
            .upserts
            .iter()
            .flat_map(|c| c.numbers.iter().map(|n| (n.e164, n.national)));
        for (e164, national) in old.chain(new) {
            now_e164s.push(e164.0);
            now_nationals.push(national.0);
            if carried.touched_e164s.insert(e164.0) {
                first_e164s.push(e164.0);
            }
            if carried.touched_nationals.insert(national.0) {
                first_nationals.push(national.0);
            }
        }

        // The base versions go from the base's book. A replaced id the base does not hold is a
        // version the patch brought, or one `contact_groups` left out. One it holds but that
        // is hidden already is a version the patch brought too: SQLite gives the next insert
        // the id of the deleted row when that row had the largest.
        let mut base_hides = Vec::new();
        for replaced in change.replaced {
            let Some(rank) = base.rank_of_id(replaced.id) else {
                continue;
            };
            if !carried.hidden_ids.insert(replaced.id) {
                continue;
            }
            if rank != u32::MAX {
                let rows = base.names.rows_of_contact(rank);
                carried.hidden_numbers += rows.len();
                base_hides.push((rank, rows));
            }
        }
        if !base_hides.is_empty() {
            hide(Arc::make_mut(&mut next.base_hidden), &base_hides);
        }
        // The patch's own earlier versions go from their levels.
        let superseded = change
            .deletions
            .iter()
            .chain(change.upserts.iter().map(|c| &c.resource_name));
        for resource_name in superseded {
            let Some(held) = carried.remove(resource_name) else {
                continue;
            };
            if let Some((level, position)) = held.placed {
                let level = &mut next.levels[level];
                let rank = level
                    .index
                    .rank_of_id(u64::from(position))
                    .expect("placed in the level");
                if rank != u32::MAX {
                    let rows = level.index.names.rows_of_contact(rank);
                    hide(Arc::make_mut(&mut level.hidden), &[(rank, rows)]);
                }
            }
        }
        let kept = kept_flags(change.upserts, group_names, only_groups);
        for (contact, kept) in change.upserts.iter().zip(kept) {
            let held = Held {
                contact: contact.clone(),
                kept,
                changed: true,
                placed: None,
            };
            carried.add(&contact.resource_name, held);
        }
        if !first_e164s.is_empty() || !first_nationals.is_empty() {
            let found = holders(&first_e164s, &first_nationals)?;
            let kept = kept_flags(&found, group_names, only_groups);
            for (holder, kept) in found.into_iter().zip(kept) {
                // A holder the patch knows is there in its current version.
                if !carried.contacts.contains_key(&holder.resource_name) {
                    let name = holder.resource_name.clone();
                    let held = Held {
                        contact: holder,
                        kept,
                        changed: false,
                        placed: None,
                    };
                    carried.add(&name, held);
                }
            }
        }
        if carried.weight(0) > limit {
            return Ok(None);
        }

        // The touched numbers answer anew; no other number's holders changed.
        for e164 in now_e164s {
            next.exact.insert(e164, carried.exact(e164, group_names));
        }
        for national in now_nationals {
            next.national
                .insert(national, carried.national(national, group_names));
        }

        // The new versions make a level of their own, merged with the levels before it while
        // the newer is as big as the older.
        let mut members: Vec<String> = change
            .upserts
            .iter()
            .filter(|c| carried.contacts[&c.resource_name].kept)
            .map(|c| c.resource_name.clone())
            .collect();
        if !members.is_empty() {
            while next
                .levels
                .last()
                .is_some_and(|last| last.members.len() <= members.len())
            {
                let at = next.levels.len() - 1;
                let merged = next.levels.pop().expect("checked above");
                let live = merged.members.iter().enumerate().filter(|(position, rn)| {
                    carried
                        .contacts
                        .get(rn.as_str())
                        .is_some_and(|h| h.placed == Some((at, *position as u32)))
                });
                let mut older: Vec<String> = live.map(|(_, rn)| rn.clone()).collect();
                older.append(&mut members);
                members = older;
            }
            let level = next.levels.len();
            let contacts: Vec<&Contact> = members
                .iter()
                .map(|rn| &carried.contacts[rn].contact)
                .collect();
            let (all, groups) = kept_by_groups(&contacts, group_names, None);
            let positions: Vec<u64> = (0..contacts.len() as u64).collect();
            let index = AccountIndex::build_kept(
                &contacts,
                &all,
                &groups,
                group_names,
                &positions,
                Parts::AddressBook,
            );
            for (position, rn) in members.iter().enumerate() {
                if let Some(held) = carried.contacts.get_mut(rn) {
                    held.placed = Some((level, position as u32));
                }
            }
            next.levels.push(Level {
                index: Arc::new(index),
                hidden: Arc::new(Hidden::default()),
                members: members.into(),
            });
        }

        next.contact_count = base.contact_count() - carried.hidden_ids.len() + carried.changed_kept;
        next.number_count =
            base.number_count() - carried.hidden_numbers + carried.changed_kept_numbers;
        next.size = carried.contacts.len();
        next.carried = Mutex::new(Some(carried));
        Ok(Some(AccountBook {
            base: Arc::clone(base),
            patch: Some(Arc::new(next)),
            rebuild_due: Arc::default(),
        }))
    }
}

/// For each contact, whether `contact_groups` keeps it.
fn kept_flags(
    contacts: &[Contact],
    group_names: &GroupNames,
    only_groups: Option<&[String]>,
) -> Vec<bool> {
    let mut kept = vec![false; contacts.len()];
    for i in kept_by_groups(contacts, group_names, only_groups).0 {
        kept[i] = true;
    }
    kept
}

/// Adds contacts (each its rank and rows) to a hidden set, keeping both sorted: one sort for
/// the lot, however many a sync hides.
fn hide(hidden: &mut Hidden, contacts: &[(u32, &[u32])]) {
    for &(rank, rows) in contacts {
        hidden.ranks.push(rank);
        hidden.rows.extend_from_slice(rows);
    }
    hidden.ranks.sort_unstable();
    hidden.ranks.dedup();
    hidden.rows.sort_unstable();
    hidden.rows.dedup();
}

#[cfg(test)]
mod tests {
    //! A patched book must answer exactly as a full build of the same contacts: every number,
    //! every national number, the counts and the address book, after every step of random
    //! change sequences (proptest).

    use proptest::prelude::*;

    use super::*;
    use crate::book::contact::ContactNumber;
    use crate::book::fold;
    use crate::book::names::Query;
    use crate::book::numbers::ContactIndex;
    use crate::book::phone::IncomingNumber;

    const ACCOUNT: &str = "example.com";
    /// Few names, companies and numbers, so that contacts collide on numbers, national
    /// numbers (one under +1 and +44) and names, and the tie-breaks are exercised.
    const NAMES: [&str; 5] = ["Ann", "ann", "Bob", "Åsa", ""];
    const COMPANIES: [&str; 2] = ["", "Acme"];
    const LABELS: [&str; 3] = ["", "work", "mobile"];

    fn number(pick: u8) -> ContactNumber {
        let national = 2_125_550_100 + u64::from(pick % 6);
        let e164 = if pick >= 6 {
            440_000_000_000 + national
        } else {
            10_000_000_000 + national
        };
        ContactNumber {
            e164: E164(e164),
            national: NationalKey(national),
            label: LABELS[usize::from(pick) % 3].into(),
        }
    }

    fn group_names() -> GroupNames {
        [("contactGroups/a", "VIP"), ("contactGroups/b", "Team")]
            .into_iter()
            .map(|(r, n)| (r.to_string(), n.to_string()))
            .collect()
    }

    /// (resource, name, company, numbers, groups), as small integers.
    type Shape = (u8, u8, u8, Vec<u8>, u8);

    fn contact((resource, name, company, numbers, groups): &Shape) -> Contact {
        Contact {
            resource_name: format!("people/{resource}"),
            name: NAMES[usize::from(*name) % NAMES.len()].into(),
            company: COMPANIES[usize::from(*company) % 2].into(),
            numbers: numbers.iter().map(|&n| number(n)).collect(),
            groups: match groups % 4 {
                0 => vec![],
                1 => vec!["contactGroups/a".into()],
                2 => vec!["contactGroups/b".into(), "contactGroups/myContacts".into()],
                _ => vec!["contactGroups/a".into(), "contactGroups/b".into()],
            },
        }
    }

    fn shape() -> impl Strategy<Value = Shape> {
        (
            0u8..12,
            0u8..5,
            0u8..2,
            prop::collection::vec(0u8..12, 0..4),
            0u8..4,
        )
    }

    /// The store: contacts by resource name with the ids a delete-and-insert gives them.
    #[derive(Default)]
    struct Stored {
        rows: Vec<(u64, Contact)>,
    }

    impl Stored {
        fn take(&mut self, resource_name: &str) -> Option<Replaced> {
            let at = self
                .rows
                .iter()
                .position(|(_, c)| c.resource_name == resource_name)?;
            let (id, old) = self.rows.remove(at);
            let numbers = old.numbers.iter().map(|n| (n.e164, n.national)).collect();
            Some(Replaced { id, numbers })
        }

        /// As SQLite without AUTOINCREMENT: the largest id in use, plus one (so a deleted
        /// row's id comes back when it was the largest).
        fn insert(&mut self, contact: Contact) {
            let id = self.rows.iter().map(|r| r.0).max().unwrap_or(0) + 1;
            self.rows.push((id, contact));
        }

        /// In the store's order (by resource name), with ids.
        fn all(&self) -> (Vec<Contact>, Vec<u64>) {
            let mut rows = self.rows.clone();
            rows.sort_by(|a, b| a.1.resource_name.cmp(&b.1.resource_name));
            rows.into_iter().map(|(id, c)| (c, id)).unzip()
        }

        fn holders(&self, e164s: &[u64], nationals: &[u64]) -> Vec<Contact> {
            self.rows
                .iter()
                .filter(|(_, c)| {
                    c.numbers
                        .iter()
                        .any(|n| e164s.contains(&n.e164.0) || nationals.contains(&n.national.0))
                })
                .map(|(_, c)| c.clone())
                .collect()
        }
    }

    fn lookups(index: &ContactIndex) -> Vec<Option<String>> {
        let mut answers = Vec::new();
        for pick in 0..12 {
            let n = number(pick);
            for incoming in [
                IncomingNumber {
                    e164: n.e164,
                    national: None,
                    international: None,
                },
                // A number that only the national rule can find.
                IncomingNumber {
                    e164: E164(330_000_000_000 + n.national.0),
                    national: Some(n.national),
                    international: None,
                },
            ] {
                answers.push(index.lookup(ACCOUNT, &incoming, |m| {
                    format!(
                        "{}|{}|{}|{}|{}",
                        m.name, m.company, m.label, m.number.0, m.groups
                    )
                }));
            }
        }
        answers
    }

    /// The search's rows in order (name and company folded, number: the contract's order) and
    /// all of each row's fields, sorted: the contract leaves open the order of rows that tie
    /// on all of that, and so which of them a page boundary falls between.
    fn searches(index: &ContactIndex) -> Vec<(usize, Vec<String>, Vec<String>)> {
        let queries = [
            ("", false),
            ("ann", false),
            ("a", false),
            ("vip", false),
            ("team ann", false),
            ("555", false),
            ("4421", false),
            ("26", true),
            ("2", true),
        ];
        queries
            .iter()
            .flat_map(|&(text, keypad)| {
                let query = Query::parse(text, keypad).unwrap();
                [(0, usize::MAX), (1, 3)].map(|(offset, cap)| {
                    let mut order = Vec::new();
                    let mut rows = Vec::new();
                    let total = index.search(ACCOUNT, &query, offset, cap, |m| {
                        order.push(format!(
                            "{}|{}|{}",
                            fold::fold(m.name),
                            fold::fold(m.company),
                            m.number.0
                        ));
                        rows.push(format!(
                            "{}|{}|{}|{}|{}",
                            m.name, m.company, m.label, m.number.0, m.groups
                        ));
                    });
                    rows.sort();
                    if offset > 0 {
                        // Which of two tied rows ends a page is open: compare the order only.
                        rows.clear();
                    }
                    (total, order, rows)
                })
            })
            .collect()
    }

    fn rebuilt(stored: &Stored, only: Option<&[String]>) -> AccountBook {
        let (contacts, ids) = stored.all();
        AccountBook::new(AccountIndex::build_stored(
            &contacts,
            &ids,
            &group_names(),
            only,
        ))
    }

    #[test]
    fn a_book_whose_full_build_began_is_never_patched_again() {
        let mut stored = Stored::default();
        stored.insert(contact(&(1, 0, 0, vec![1], 0)));
        let book = rebuilt(&stored, None);
        book.mark_rebuild_due();
        let renamed = contact(&(1, 2, 0, vec![1], 0));
        let change = Change {
            replaced: &[],
            upserts: std::slice::from_ref(&renamed),
            deletions: &[],
        };
        let patched = book.patched(&change, &group_names(), None, |_, _| Ok::<_, ()>(vec![]));
        assert!(patched.unwrap().is_none(), "a full build is due");
    }

    #[test]
    fn contacts_created_and_deleted_again_still_bring_the_patch_to_its_limit() {
        // Each passes through and leaves only the numbers it touched behind: the patch holds
        // no contact, but its answers grow, so it must end in a full build.
        let mut book = rebuilt(&Stored::default(), None);
        for round in 0..1000u64 {
            let mut c = contact(&(1, 0, 0, vec![], 0));
            c.numbers = vec![ContactNumber {
                e164: E164(12_000_000_000 + round),
                national: NationalKey(2_000_000_000 + round),
                label: String::new(),
            }];
            let upserts = [c];
            let created = Change {
                replaced: &[],
                upserts: &upserts,
                deletions: &[],
            };
            let gone = [Replaced {
                id: round + 1,
                numbers: vec![(upserts[0].numbers[0].e164, upserts[0].numbers[0].national)],
            }];
            let deletions = [upserts[0].resource_name.clone()];
            let deleted = Change {
                replaced: &gone,
                upserts: &[],
                deletions: &deletions,
            };
            let holders = |_: &[u64], _: &[u64]| Ok::<_, ()>(vec![]);
            for change in [&created, &deleted] {
                let patched = book.patched(change, &group_names(), None, holders).unwrap();
                let Some(next) = patched else {
                    assert!(round > 64, "the limit came at {round}");
                    return;
                };
                book = next;
            }
        }
        panic!("1,000 passing contacts never brought the patch to its limit");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn a_patched_book_answers_as_a_full_build(
            initial in prop::collection::vec(shape(), 0..12),
            steps in prop::collection::vec(
                prop::collection::vec((any::<bool>(), shape()), 1..5),
                1..24,
            ),
            filtered in any::<bool>(),
        ) {
            let only_groups = filtered.then(|| vec!["vip".to_string()]);
            let only = only_groups.as_deref();
            let mut stored = Stored::default();
            for shape in &initial {
                let c = contact(shape);
                if stored.take(&c.resource_name).is_none() {
                    stored.insert(c);
                }
            }
            let mut book = rebuilt(&stored, only);
            for step in steps {
                // One listing per person, as the sync's last_change_of_each leaves it.
                let mut upserts: Vec<Contact> = Vec::new();
                let mut deletions: Vec<String> = Vec::new();
                for (delete, shape) in step.iter().rev() {
                    let c = contact(shape);
                    if upserts.iter().any(|u| u.resource_name == c.resource_name)
                        || deletions.contains(&c.resource_name)
                    {
                        continue;
                    }
                    if *delete {
                        deletions.push(c.resource_name);
                    } else {
                        upserts.push(c);
                    }
                }
                let mut replaced = Vec::new();
                for resource_name in deletions
                    .iter()
                    .chain(upserts.iter().map(|c| &c.resource_name))
                {
                    replaced.extend(stored.take(resource_name));
                }
                for c in &upserts {
                    stored.insert(c.clone());
                }
                let change = Change {
                    replaced: &replaced,
                    upserts: &upserts,
                    deletions: &deletions,
                };
                let patched = book
                    .patched(&change, &group_names(), only, |e, n| {
                        Ok::<_, ()>(stored.holders(e, n))
                    })
                    .unwrap()
                    .expect("a small account patches");

                let full = rebuilt(&stored, only);
                prop_assert_eq!(patched.counts(), full.counts());
                let (a, b) = (ContactIndex::default(), ContactIndex::default());
                a.replace_book(ACCOUNT, Source::Contacts, patched);
                b.replace_book(ACCOUNT, Source::Contacts, full);
                prop_assert_eq!(lookups(&a), lookups(&b));
                prop_assert_eq!(searches(&a), searches(&b));
                book = a.book(ACCOUNT, Source::Contacts).unwrap();
            }
        }
    }
}
