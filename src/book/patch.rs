//! Incremental syncs patch an account's index instead of rebuilding it: the index built at the
//! last full build (the base) stays as it is, and a small patch beside it answers for what
//! changed since. A sync of k changes costs time in proportion to k and to the patch, never
//! to the account's size; once the patch grows past a sixteenth of the account, the next
//! sync builds in full again, so a patch stays cheap to rebuild.
//!
//! The patch holds the current version of every changed contact and of every unchanged
//! contact that shares a number (E.164 or national) with a change, as the store reads them.
//! It answers every number a change touched over all the contacts that hold it now, with the
//! same tie-break a full build applies, and "nobody" for a number no one holds any more; the
//! base answers every other number, which no change touched. Searches read the base without
//! the contacts the patch replaced, merged with the patch's changed contacts.

use std::sync::Arc;

use parking_lot::Mutex;

use super::contact::Contact;
use super::names::Hidden;
use super::numbers::{
    is_tombstone, kept_by_groups, AccountIndex, Cover, FxSet, GroupNames, NationalAnswer,
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
}

pub(super) struct Patch {
    /// What the next sync's patch starts from. That sync takes it (a move: carrying a patch
    /// over costs nothing per contact); lookups and searches never touch it.
    carried: Mutex<Option<Carried>>,
    /// The base contacts replaced or deleted: their places and rows in the base's book.
    pub(super) hidden: Hidden,
    pub(super) index: AccountIndex,
    contact_count: usize,
    number_count: usize,
    size: usize,
}

#[derive(Default)]
struct Carried {
    /// Current versions of the contacts the patch answers for, by resource name, each marked
    /// whether it changed since the base (searched here; its base version hidden) or only
    /// shares a number with a change (still searched in the base).
    contacts: rustc_hash::FxHashMap<String, (Contact, bool)>,
    /// Every E.164 and national number of every version a change brought or took away since
    /// the base: the numbers the patch answers for.
    e164s: FxSet<u64>,
    nationals: FxSet<u64>,
    /// The base versions replaced or deleted, by store id.
    hidden_ids: FxSet<u64>,
}

/// Where a lookup found a number: the index whose text it is in, and the slot.
pub(super) type Hit<'a> = Option<(&'a AccountIndex, &'a super::names::Row)>;

/// The most contacts a patch holds before the next change builds in full: an eighth of the
/// account was measured at 5-6 ms a sync for 25,000 contacts at the limit; a sixteenth keeps
/// it near 1 ms, and a full build (about 50 ms from the store at 25,000) every 150 syncs of
/// 10 changes costs a third of a millisecond a sync.
fn patch_limit(base: &AccountIndex) -> usize {
    (base.contact_count() / 16).max(64)
}

impl AccountBook {
    pub fn new(base: AccountIndex) -> AccountBook {
        AccountBook {
            base: Arc::new(base),
            patch: None,
        }
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
    pub(super) fn exact(&self, e164: E164) -> Hit<'_> {
        if let Some(patch) = &self.patch {
            if let Some(slot) = patch.index.exact(e164) {
                return (!is_tombstone(slot)).then_some((&patch.index, slot));
            }
        }
        self.base.exact(e164).map(|slot| (&*self.base, slot))
    }

    /// Who answers a national number: Ok(None) when nobody has it, Err(()) when several do.
    pub(super) fn national(&self, key: u64) -> Result<Hit<'_>, ()> {
        fn answer(index: &AccountIndex, key: u64) -> Result<Hit<'_>, ()> {
            match index.national(key) {
                NationalAnswer::Unknown | NationalAnswer::Nobody => Ok(None),
                NationalAnswer::Several => Err(()),
                NationalAnswer::One(slot) => Ok(Some((index, slot))),
            }
        }
        match &self.patch {
            Some(patch) if !matches!(patch.index.national(key), NationalAnswer::Unknown) => {
                answer(&patch.index, key)
            }
            _ => answer(&self.base, key),
        }
    }

    /// The book after `change`, or None when it is time for a full build: the base has no
    /// store ids, the patch would outgrow its limit (`patch_limit`), or an earlier attempt
    /// failed half way. `holders` reads from the store every contact that now holds one of
    /// the given E.164 or national numbers. Costs time in proportion to the change and the
    /// patch, not to the account. Call it once per book: it takes what the patch carries.
    pub fn patched<E>(
        &self,
        change: &Change<'_>,
        group_names: &GroupNames,
        only_groups: Option<&[String]>,
        holders: impl FnOnce(&[u64], &[u64]) -> Result<Vec<Contact>, E>,
    ) -> Result<Option<AccountBook>, E> {
        let base = &self.base;
        if !base.patchable() {
            return Ok(None);
        }
        let mut carried = match &self.patch {
            None => Carried::default(),
            Some(last) => match last.carried.lock().take() {
                Some(carried) => carried,
                None => return Ok(None), // taken by an attempt that failed
            },
        };
        let limit = patch_limit(base);
        if carried.contacts.len() + change.upserts.len() > limit {
            return Ok(None);
        }
        // The numbers this change touches for the first time: their holders are not in the
        // patch yet. (Holders of numbers touched before are: every later change to them
        // passes through here.)
        let mut new_e164s = Vec::new();
        let mut new_nationals = Vec::new();
        let mut touch = |e164: E164, national: NationalKey| {
            if carried.e164s.insert(e164.0) {
                new_e164s.push(e164.0);
            }
            if carried.nationals.insert(national.0) {
                new_nationals.push(national.0);
            }
        };
        for replaced in change.replaced {
            for &(e164, national) in &replaced.numbers {
                touch(e164, national);
            }
        }
        for contact in change.upserts {
            for number in &contact.numbers {
                touch(number.e164, number.national);
            }
        }
        for replaced in change.replaced {
            if base.rank_of_id(replaced.id).is_some() {
                carried.hidden_ids.insert(replaced.id);
            }
        }
        for resource_name in change.deletions {
            carried.contacts.remove(resource_name);
        }
        for contact in change.upserts {
            carried
                .contacts
                .insert(contact.resource_name.clone(), (contact.clone(), true));
        }
        if !new_e164s.is_empty() || !new_nationals.is_empty() {
            for holder in holders(&new_e164s, &new_nationals)? {
                // A holder already in the patch is there in its current version.
                carried
                    .contacts
                    .entry(holder.resource_name.clone())
                    .or_insert((holder, false));
            }
        }
        if carried.contacts.len() > limit {
            return Ok(None);
        }
        let patch = Patch::build(carried, base, group_names, only_groups);
        Ok(Some(AccountBook {
            base: Arc::clone(base),
            patch: Some(Arc::new(patch)),
        }))
    }
}

impl Patch {
    /// The patch's index, hidden set and counts, from what it carries.
    fn build(
        carried: Carried,
        base: &AccountIndex,
        group_names: &GroupNames,
        only: Option<&[String]>,
    ) -> Patch {
        let (contacts, searchable): (Vec<&Contact>, Vec<bool>) = carried
            .contacts
            .values()
            .map(|(contact, changed)| (contact, *changed))
            .unzip();
        let (kept, groups) = kept_by_groups(&contacts, group_names, only);
        let index = AccountIndex::build_kept(
            &contacts,
            &kept,
            &groups,
            group_names,
            &[],
            &Cover::Patch {
                e164s: &carried.e164s,
                nationals: &carried.nationals,
                searchable: &searchable,
            },
        );
        let mut hidden = Hidden::default();
        let mut hidden_numbers = 0;
        for &id in &carried.hidden_ids {
            let rank = base.rank_of_id(id).expect("hidden ids are the base's");
            if rank != u32::MAX {
                let rows = base.names.rows_of_contact(rank);
                hidden.ranks.push(rank);
                hidden.rows.extend_from_slice(rows);
                hidden_numbers += rows.len();
            }
        }
        hidden.ranks.sort_unstable();
        hidden.rows.sort_unstable();
        let changed: Vec<&Contact> = kept
            .iter()
            .filter(|&&i| searchable[i])
            .map(|&i| contacts[i])
            .collect();
        let contact_count = base.contact_count() - carried.hidden_ids.len() + changed.len();
        let number_count = base.number_count() - hidden_numbers
            + changed.iter().map(|c| c.numbers.len()).sum::<usize>();
        let size = contacts.len();
        Patch {
            carried: Mutex::new(Some(carried)),
            hidden,
            index,
            contact_count,
            number_count,
            size,
        }
    }
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
        next_id: u64,
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

        fn insert(&mut self, contact: Contact) {
            self.next_id += 1;
            self.rows.push((self.next_id, contact));
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn a_patched_book_answers_as_a_full_build(
            initial in prop::collection::vec(shape(), 0..12),
            steps in prop::collection::vec(
                prop::collection::vec((any::<bool>(), shape()), 1..5),
                1..12,
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
                a.replace_book(ACCOUNT, patched);
                b.replace_book(ACCOUNT, full);
                prop_assert_eq!(lookups(&a), lookups(&b));
                prop_assert_eq!(searches(&a), searches(&b));
                book = a.book(ACCOUNT).unwrap();
            }
        }
    }
}
