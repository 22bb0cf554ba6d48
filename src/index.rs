//! The in-memory caller-ID index: every account's numbers, keyed by E.164, in an immutable
//! snapshot that writers replace whole. A lookup loads the current snapshot (lock-free, no
//! allocation), tries the account, then its domain, and copies out what the phone shows. It
//! never waits for a sync, the database or the network.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;

use crate::account::domain_of;
use crate::contact::Contact;
use crate::phone::{IncomingNumber, E164};

type FxMap<K, V> = HashMap<K, V, FxBuildHasher>;

/// A national number that more than one contact has: it must not match anyone.
const AMBIGUOUS: u32 = u32::MAX;

/// What a lookup found, borrowed from the snapshot for as long as the caller copies it out.
#[derive(Debug, PartialEq, Eq)]
pub struct ContactMatch<'a> {
    pub name: &'a str,
    pub company: &'a str,
    pub label: &'a str,
    pub number: E164,
    pub account: &'a str,
}

/// Where a string lives in an account's text arena. One arena instead of a `String` per
/// field keeps the index small: millions of numbers must fit in a PBX's memory.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

struct ContactEntry {
    name: Span,
    company: Span,
}

#[derive(Clone, Copy)]
struct NumberEntry {
    contact: u32,
    label: u16,
}

#[derive(Clone, Copy)]
struct NationalEntry {
    e164: E164,
    entry: NumberEntry,
}

/// One account's contacts, ready for lookups.
pub struct AccountIndex {
    text: String,
    labels: Vec<Box<str>>,
    contacts: Vec<ContactEntry>,
    /// E.164 → the entry that answers for it (the tie-break already applied).
    exact: FxMap<u64, NumberEntry>,
    /// National significant number → the number and entry, or `AMBIGUOUS` as contact.
    national: FxMap<u64, NationalEntry>,
    number_count: usize,
}

impl AccountIndex {
    /// Builds the index of one account. When several contacts share a number, the one whose
    /// name sorts first answers (then company, then Google's resource name), so every call
    /// and every restart gives the same answer.
    pub fn build(contacts: &[Contact]) -> AccountIndex {
        let mut order: Vec<usize> = (0..contacts.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&contacts[a], &contacts[b]);
            (&a.name, &a.company, &a.resource_name).cmp(&(&b.name, &b.company, &b.resource_name))
        });

        let mut index = AccountIndex {
            text: String::new(),
            labels: Vec::new(),
            contacts: Vec::with_capacity(contacts.len()),
            exact: FxMap::default(),
            national: FxMap::default(),
            number_count: 0,
        };
        let number_total: usize = contacts.iter().map(|c| c.numbers.len()).sum();
        index.exact.reserve(number_total);
        index.national.reserve(number_total);
        let mut label_ids: HashMap<&str, u16> = HashMap::new();

        // Contacts are added in tie-break order, so the first to claim a number keeps it.
        for &i in &order {
            let contact = &contacts[i];
            let contact_id = index.contacts.len() as u32;
            let name = index.push_text(&contact.name);
            let company = index.push_text(&contact.company);
            index.contacts.push(ContactEntry { name, company });
            for number in &contact.numbers {
                let label = *label_ids.entry(number.label.as_str()).or_insert_with(|| {
                    index.labels.push(number.label.as_str().into());
                    (index.labels.len() - 1).min(u16::MAX as usize) as u16
                });
                let entry = NumberEntry {
                    contact: contact_id,
                    label,
                };
                index.number_count += 1;
                index.exact.entry(number.e164.0).or_insert(entry);
                index
                    .national
                    .entry(number.national.0)
                    .and_modify(|seen| {
                        if seen.entry.contact != contact_id {
                            seen.entry.contact = AMBIGUOUS;
                        }
                    })
                    .or_insert(NationalEntry {
                        e164: number.e164,
                        entry,
                    });
            }
        }
        index.exact.shrink_to_fit();
        index.national.shrink_to_fit();
        index.text.shrink_to_fit();
        index
    }

    fn push_text(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            start,
            len: s.len() as u32,
        }
    }

    fn text(&self, span: Span) -> &str {
        &self.text[span.start as usize..(span.start + span.len) as usize]
    }

    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    pub fn number_count(&self) -> usize {
        self.number_count
    }

    fn found<'a>(&'a self, entry: NumberEntry, number: E164, account: &'a str) -> ContactMatch<'a> {
        let contact = &self.contacts[entry.contact as usize];
        ContactMatch {
            name: self.text(contact.name),
            company: self.text(contact.company),
            label: &self.labels[entry.label as usize],
            number,
            account,
        }
    }
}

type Snapshot = FxMap<Box<str>, Arc<AccountIndex>>;

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
    pub fn replace_all(&self, accounts: impl IntoIterator<Item = (String, AccountIndex)>) {
        let _writer = self.writer.lock();
        let snapshot: Snapshot = accounts
            .into_iter()
            .map(|(account, index)| (account.into_boxed_str(), Arc::new(index)))
            .collect();
        self.current.store(Arc::new(snapshot));
    }

    /// Replaces one account's index in a single swap: a lookup sees the old one or the new
    /// one, never a mix.
    pub fn replace(&self, account: &str, index: AccountIndex) {
        let _writer = self.writer.lock();
        let mut snapshot = Snapshot::clone(&self.current.load());
        snapshot.insert(account.into(), Arc::new(index));
        self.current.store(Arc::new(snapshot));
    }

    pub fn remove(&self, account: &str) {
        let _writer = self.writer.lock();
        if !self.current.load().contains_key(account) {
            return;
        }
        let mut snapshot = Snapshot::clone(&self.current.load());
        snapshot.remove(account);
        self.current.store(Arc::new(snapshot));
    }

    /// (contacts, numbers) of one account, for the status.
    pub fn counts(&self, account: &str) -> (usize, usize) {
        self.current
            .load()
            .get(account)
            .map_or((0, 0), |i| (i.contact_count(), i.number_count()))
    }

    /// Finds who is calling `account` from `number` and hands it to `copy_out`, which runs
    /// while the snapshot is held. The account's own contacts answer first, then its
    /// domain's; no other account is ever searched. A number read without a country code may
    /// match on its national number, but only when exactly one contact fits.
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

        for (name, index) in scopes.iter().flatten() {
            if let Some(&entry) = index.exact.get(&number.e164.0) {
                return Some(copy_out(index.found(entry, number.e164, name)));
            }
        }
        let national = number.national?;
        for (name, index) in scopes.iter().flatten() {
            match index.national.get(&national.0) {
                Some(hit) if hit.entry.contact == AMBIGUOUS => return None,
                Some(hit) => return Some(copy_out(index.found(hit.entry, hit.e164, name))),
                None => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::ContactNumber;
    use crate::phone::RegionRules;

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

    #[test]
    fn a_shared_number_resolves_to_the_name_that_sorts_first_whatever_the_order() {
        let a = contact("people/c1", "Zoe", &[("212-555-0100", "work")]);
        let b = contact("people/c2", "Adam", &[("(212) 555-0100", "mobile")]);
        for contacts in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
            let index = ContactIndex::default();
            index.replace("example.com", AccountIndex::build(&contacts));
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
            AccountIndex::build(&[
                contact("people/c1", "Domain Desk", &[("2125550100", "work")]),
                contact("people/c3", "Shared", &[("2125550111", "")]),
            ]),
        );
        index.replace(
            "example.com/40",
            AccountIndex::build(&[contact(
                "people/c2",
                "Own Contact",
                &[("2125550100", "mobile")],
            )]),
        );
        index.replace(
            "other.com",
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
    fn replacing_and_removing_accounts() {
        let index = ContactIndex::default();
        index.replace(
            "example.com",
            AccountIndex::build(&[contact("people/c1", "Old", &[("2125550100", "")])]),
        );
        index.replace(
            "example.com",
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
