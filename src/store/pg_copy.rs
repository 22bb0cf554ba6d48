//! Reading PostgreSQL's binary COPY format (`COPY (query) TO STDOUT (FORMAT binary)`): a
//! header, then per row a field count and each field as a length and its bytes, big-endian.
//! The open reads every stored contact this way: decoding a million rows through the client's
//! row type cost an allocation or two a row, and as much time as the server's scan.

use std::io::{BufReader, Read};

use crate::error::{Error, Result};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

pub struct CopyReader<R: Read> {
    input: BufReader<R>,
    /// The current row's fields not yet read.
    left: i16,
}

impl<R: Read> CopyReader<R> {
    /// Reads the header.
    pub fn new(input: R) -> Result<CopyReader<R>> {
        let mut reader = CopyReader {
            input: BufReader::with_capacity(1 << 16, input),
            left: 0,
        };
        let mut signature = [0u8; 11];
        reader.read_exact(&mut signature)?;
        if &signature != SIGNATURE {
            return Err(malformed("the header"));
        }
        let _flags = reader.u32()?;
        let extension = reader.u32()? as usize;
        let mut skipped = vec![0u8; extension.min(1 << 16)];
        reader.read_exact(&mut skipped)?;
        Ok(reader)
    }

    /// Starts the next row, expecting `fields` fields; false at the end.
    pub fn next_row(&mut self, fields: i16) -> Result<bool> {
        if self.left != 0 {
            return Err(malformed("a row read only in part"));
        }
        let count = self.u16()? as i16;
        if count == -1 {
            return Ok(false);
        }
        if count != fields {
            return Err(malformed("a row of another width"));
        }
        self.left = count;
        Ok(true)
    }

    pub fn i64(&mut self) -> Result<i64> {
        self.field_of(8)?;
        let mut bytes = [0u8; 8];
        self.read_exact(&mut bytes)?;
        Ok(i64::from_be_bytes(bytes))
    }

    /// A text field into `into` (cleared first), checked to be UTF-8.
    pub fn text_into<'a>(&mut self, into: &'a mut Vec<u8>) -> Result<&'a str> {
        let bytes = self.bytes_into(into)?;
        std::str::from_utf8(bytes).map_err(|_| malformed("text that is not UTF-8"))
    }

    /// A binary field into `into` (cleared first).
    pub fn bytes_into<'a>(&mut self, into: &'a mut Vec<u8>) -> Result<&'a [u8]> {
        let length = self.field_length()?;
        into.clear();
        into.resize(length, 0);
        self.read_exact(into)?;
        Ok(into)
    }

    pub fn text(&mut self) -> Result<String> {
        let mut bytes = Vec::new();
        self.text_into(&mut bytes)?;
        Ok(String::from_utf8(bytes).expect("checked by text_into"))
    }

    fn field_of(&mut self, size: usize) -> Result<()> {
        if self.field_length()? != size {
            return Err(malformed("a number of another size"));
        }
        Ok(())
    }

    /// The next field's length; NULL is refused (the columns read this way are NOT NULL).
    fn field_length(&mut self) -> Result<usize> {
        if self.left == 0 {
            return Err(malformed("more fields than the row has"));
        }
        self.left -= 1;
        let length = self.u32()? as i32;
        usize::try_from(length).map_err(|_| malformed("a NULL"))
    }

    fn u16(&mut self) -> Result<u16> {
        let mut bytes = [0u8; 2];
        self.read_exact(&mut bytes)?;
        Ok(u16::from_be_bytes(bytes))
    }

    fn u32(&mut self) -> Result<u32> {
        let mut bytes = [0u8; 4];
        self.read_exact(&mut bytes)?;
        Ok(u32::from_be_bytes(bytes))
    }

    fn read_exact(&mut self, into: &mut [u8]) -> Result<()> {
        self.input.read_exact(into).map_err(|e| {
            Error::storage(format!(
                "reading the contacts from the PostgreSQL store failed ({e}); the plugin reconnects at the next call"
            ))
        })
    }
}

fn malformed(what: &str) -> Error {
    Error::storage(format!(
        "the PostgreSQL store sent {what} in a binary COPY; please report this with the server's version"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn reads_rows_of_numbers_and_text_and_refuses_what_does_not_fit() {
        let mut stream = SIGNATURE.to_vec();
        stream.extend_from_slice(&0u32.to_be_bytes());
        stream.extend_from_slice(&0u32.to_be_bytes());
        stream.extend_from_slice(&2u16.to_be_bytes());
        stream.extend(field(&(-5i64).to_be_bytes()));
        stream.extend(field("Müller".as_bytes()));
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        let mut reader = CopyReader::new(&stream[..]).unwrap();
        assert!(reader.next_row(2).unwrap());
        assert_eq!(reader.i64().unwrap(), -5);
        assert_eq!(reader.text().unwrap(), "Müller");
        assert!(!reader.next_row(2).unwrap());

        let mut reader = CopyReader::new(&stream[..]).unwrap();
        assert!(reader.next_row(3).is_err(), "a row of another width");
        let mut reader = CopyReader::new(&stream[..]).unwrap();
        reader.next_row(2).unwrap();
        reader.i64().unwrap();
        assert!(reader.i64().is_err(), "text (7 bytes) read as an int8");
        assert!(CopyReader::new(&stream[1..]).is_err(), "no signature");
        let cut = &stream[..stream.len() - 4];
        let mut reader = CopyReader::new(cut).unwrap();
        reader.next_row(2).unwrap();
        reader.i64().unwrap();
        assert!(reader.text().is_err(), "a truncated stream");
    }

    #[test]
    fn a_binary_field_reads_as_its_bytes_and_a_null_is_refused() {
        let mut stream = SIGNATURE.to_vec();
        stream.extend_from_slice(&[0; 8]);
        stream.extend_from_slice(&2u16.to_be_bytes());
        stream.extend(field(b"\x00\xff"));
        stream.extend_from_slice(&(-1i32).to_be_bytes());
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        let mut reader = CopyReader::new(&stream[..]).unwrap();
        let mut into = Vec::new();
        assert!(reader.next_row(2).unwrap());
        assert_eq!(reader.bytes_into(&mut into).unwrap(), b"\x00\xff");
        let refused = reader.bytes_into(&mut into).unwrap_err();
        assert!(
            refused.message().contains("a NULL"),
            "{}",
            refused.message()
        );
    }
}
