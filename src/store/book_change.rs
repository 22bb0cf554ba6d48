//! An incremental sync's change to one source's book, as a shared store keeps it for the other
//! nodes: what they need to patch their copy of the book as the syncing node patched its own
//! (see `book::patch`), rather than rebuilding it from every stored contact.
//!
//! Kept as one byte string (the latest change of each book only), little-endian:
//! the replaced versions (count, then each: store id, number count, E.164 and national key
//! of each number), the upserts' store ids (count, ids), the deleted resource names (count,
//! then each: byte length, UTF-8).

use crate::book::contact::Contact;
use crate::book::numbers::GroupNames;
use crate::book::patch::Replaced;
use crate::book::phone::{NationalKey, E164};
use crate::error::{Error, Result};

/// One change as another node reads it back, with what patching needs from the same snapshot.
pub struct BookChange {
    /// The stored versions the change replaced or deleted.
    pub replaced: Vec<Replaced>,
    /// The new versions, as stored.
    pub upserts: Vec<Contact>,
    /// Resource names deleted.
    pub deletions: Vec<String>,
    /// The account's contact groups (unchanged by this change: a change of them rebuilds).
    pub group_names: GroupNames,
}

/// How a node's copy of one source's book stands against the store (see `Store::follow_book`).
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    /// Patched to the store's latest change, whose mark is this.
    Patched(i64),
    /// Only a rebuild from the store brings the node's copy up to date (the node missed a
    /// change, or the change was a full sync, new group names or an erase).
    Rebuild,
}

pub fn encode(replaced: &[Replaced], upsert_ids: &[u64], deletions: &[String]) -> Vec<u8> {
    let numbers: usize = replaced.iter().map(|r| r.numbers.len()).sum();
    let names: usize = deletions.iter().map(|d| d.len() + 4).sum();
    let mut out =
        Vec::with_capacity(12 + replaced.len() * 12 + numbers * 16 + upsert_ids.len() * 8 + names);
    let count = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_le_bytes());
    count(&mut out, replaced.len());
    for old in replaced {
        out.extend_from_slice(&old.id.to_le_bytes());
        count(&mut out, old.numbers.len());
        for (e164, national) in &old.numbers {
            out.extend_from_slice(&e164.0.to_le_bytes());
            out.extend_from_slice(&national.0.to_le_bytes());
        }
    }
    count(&mut out, upsert_ids.len());
    for id in upsert_ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    count(&mut out, deletions.len());
    for name in deletions {
        count(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
    }
    out
}

/// What `encode` wrote: (replaced, upsert ids, deletions). Anything else (another version's
/// bytes, a damaged row) is an error, and the node rebuilds instead.
pub fn decode(bytes: &[u8]) -> Result<(Vec<Replaced>, Vec<u64>, Vec<String>)> {
    let mut reader = Reader(bytes);
    let decoded = (|| {
        let mut replaced = Vec::new();
        for _ in 0..reader.count()? {
            let id = reader.u64()?;
            let numbers = (0..reader.count()?)
                .map(|_| Some((E164(reader.u64()?), NationalKey(reader.u64()?))))
                .collect::<Option<Vec<_>>>()?;
            replaced.push(Replaced { id, numbers });
        }
        let upsert_ids = (0..reader.count()?)
            .map(|_| reader.u64())
            .collect::<Option<Vec<_>>>()?;
        let mut deletions = Vec::new();
        for _ in 0..reader.count()? {
            let len = reader.count()?;
            let name = std::str::from_utf8(reader.take(len)?).ok()?;
            deletions.push(name.to_owned());
        }
        reader
            .0
            .is_empty()
            .then_some((replaced, upsert_ids, deletions))
    })();
    decoded.ok_or_else(|| {
        Error::storage("a stored change of a contact book is not in the form this plugin writes (a node of another version?); the book is rebuilt from the store instead")
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A count or length: never more than the bytes left could hold, so a damaged count
    /// cannot make a loop run (or allocate) for long.
    fn count(&mut self) -> Option<usize> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        (n <= self.0.len()).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<Replaced>, Vec<u64>, Vec<String>) {
        (
            vec![
                Replaced {
                    id: 7,
                    numbers: vec![(E164(12125550100), NationalKey(12125550100))],
                },
                Replaced {
                    id: u64::MAX,
                    numbers: Vec::new(),
                },
            ],
            vec![9, 10],
            vec!["people/c1".into(), "people/Müller".into()],
        )
    }

    #[test]
    fn a_change_reads_back_as_written() {
        let (replaced, ids, deletions) = sample();
        let bytes = encode(&replaced, &ids, &deletions);
        let (r, i, d) = decode(&bytes).unwrap();
        assert_eq!(i, ids);
        assert_eq!(d, deletions);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].id, &r[0].numbers), (7, &replaced[0].numbers));
        assert_eq!((r[1].id, r[1].numbers.len()), (u64::MAX, 0));
        let empty = encode(&[], &[], &[]);
        assert_eq!(decode(&empty).unwrap().1, Vec::<u64>::new());
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let (replaced, ids, deletions) = sample();
        let bytes = encode(&replaced, &ids, &deletions);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        // A huge count is refused at once, not looped over.
        assert!(decode(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
