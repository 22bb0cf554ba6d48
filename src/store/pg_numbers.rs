//! A contact's numbers packed into one column of its `contacts` row (PostgreSQL's
//! `contacts.packed_numbers`), so that the open reads every contact in one stream. The `numbers`
//! table stays the truth the store searches by number (who else holds a number a sync
//! touched); this column is a copy written in the same statement as the row, which is never
//! updated in place (a changed contact is deleted and inserted anew).
//!
//! Per number, in the contact's order: E.164 and national key as big-endian 8-byte integers,
//! the label's length as a big-endian 4-byte integer, then the label's UTF-8 bytes. The same
//! layout is written in SQL twice (`int8send`, `int4send`): by migration 3 for the rows that
//! were there before, and by every read for a row an older node wrote without the column
//! (`PACKED_NUMBERS` in `postgres.rs`). All three must keep to it.

use crate::book::contact::ContactNumber;
use crate::book::phone::{NationalKey, E164};
use crate::error::{Error, Result};

/// The column's value for `numbers`.
pub fn pack(numbers: &[ContactNumber]) -> Vec<u8> {
    let mut packed = Vec::with_capacity(numbers.iter().map(|n| 20 + n.label.len()).sum());
    for number in numbers {
        packed.extend_from_slice(&(number.e164.0 as i64).to_be_bytes());
        packed.extend_from_slice(&(number.national.0 as i64).to_be_bytes());
        packed.extend_from_slice(&(number.label.len() as u32).to_be_bytes());
        packed.extend_from_slice(number.label.as_bytes());
    }
    packed
}

/// The numbers in a column's value; a value that does not parse is named as contact `id`'s.
pub fn unpack(mut packed: &[u8], id: i64) -> Result<Vec<ContactNumber>> {
    let cut = || corrupt(id, "it ends inside a number");
    let mut numbers = Vec::with_capacity(1);
    while !packed.is_empty() {
        let (head, rest) = packed.split_at_checked(20).ok_or_else(cut)?;
        let be_i64 = |at: usize| i64::from_be_bytes(head[at..at + 8].try_into().expect("8 bytes"));
        let label_len = u32::from_be_bytes(head[16..].try_into().expect("4 bytes")) as usize;
        let (label, rest) = rest.split_at_checked(label_len).ok_or_else(cut)?;
        let label = std::str::from_utf8(label)
            .map_err(|_| corrupt(id, "a label is not UTF-8"))?
            .to_owned();
        numbers.push(ContactNumber {
            e164: E164(be_i64(0) as u64),
            national: NationalKey(be_i64(8) as u64),
            label,
        });
        packed = rest;
    }
    Ok(numbers)
}

fn corrupt(id: i64, why: &str) -> Error {
    Error::storage(format!(
        "contact {id}'s numbers in the PostgreSQL store cannot be read ({why}); a full sync of its account rewrites them. Please report this with the server's version"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(e164: u64, national: u64, label: &str) -> ContactNumber {
        ContactNumber {
            e164: E164(e164),
            national: NationalKey(national),
            label: label.into(),
        }
    }

    #[test]
    fn numbers_come_back_as_packed_in_their_order() {
        let numbers = vec![
            number(4_930_123_456, 30_123_456, "mobile"),
            number(u64::MAX, 0, ""),
            number(1, 2, "Büro"),
        ];
        let packed = pack(&numbers);
        assert_eq!(packed.len(), 3 * 20 + 6 + 5);
        assert_eq!(unpack(&packed, 7).unwrap(), numbers);
        assert_eq!(unpack(&[], 7).unwrap(), []);
    }

    #[test]
    fn a_value_cut_short_or_not_utf8_is_refused_naming_the_contact() {
        let packed = pack(&[number(1, 2, "work")]);
        for cut in 1..packed.len() {
            let error = unpack(&packed[..cut], 42).unwrap_err();
            assert!(
                error.message().contains("contact 42"),
                "{}",
                error.message()
            );
        }
        let mut bad = pack(&[number(1, 2, "ab")]);
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert!(unpack(&bad, 42).unwrap_err().message().contains("UTF-8"));
    }
}
