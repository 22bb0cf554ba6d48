//! Accounts as the host names them: `example.com` (a domain, or tenant) and `example.com/40`
//! (a user of it). The plugin never interprets them beyond finding the domain.

use crate::error::{Error, Result};

/// The longest account the contract allows, in bytes (it must fit `GiContact.account`).
pub const MAX_ACCOUNT_BYTES: usize = 255;

/// Checks an account string from the host: non-empty, at most 255 bytes, no control characters.
pub fn validate(account: &str) -> Result<()> {
    if account.is_empty() {
        return Err(Error::invalid_argument(
            "the account is empty; pass the PBX domain (\"example.com\") or user (\"example.com/40\")",
        ));
    }
    if account.len() > MAX_ACCOUNT_BYTES {
        return Err(Error::invalid_argument(format!(
            "the account is {} bytes long; at most {MAX_ACCOUNT_BYTES} bytes are allowed",
            account.len()
        )));
    }
    if has_control_character(account) {
        return Err(Error::invalid_argument(
            "the account contains a control character; accounts are plain text like \"example.com/40\"",
        ));
    }
    Ok(())
}

/// Whether `s` holds a control character (Unicode Cc: C0, DEL or C1), found on the bytes,
/// since this runs on every lookup: C0 and DEL are single bytes, and C1 (U+0080..U+009F) is
/// encoded as 0xC2 followed by 0x80..0x9F.
fn has_control_character(s: &str) -> bool {
    let bytes = s.as_bytes();
    // Without a short-circuit, so the compiler can check many bytes at once.
    let c0_or_del = bytes
        .iter()
        .fold(false, |found, &b| found | (b < 0x20) | (b == 0x7f));
    c0_or_del
        || (!s.is_ascii()
            && bytes
                .windows(2)
                .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1])))
}

/// The domain (tenant) of an account: the part before the first `/`, or the whole account.
pub fn domain_of(account: &str) -> &str {
    account
        .split_once('/')
        .map_or(account, |(domain, _)| domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_the_part_before_the_first_slash() {
        assert_eq!(domain_of("example.com/40"), "example.com");
        assert_eq!(domain_of("example.com"), "example.com");
        assert_eq!(domain_of("example.com/40/x"), "example.com");
    }

    #[test]
    fn validation_rejects_empty_long_and_control_characters() {
        assert!(validate("example.com/40").is_ok());
        assert!(validate(&"a".repeat(255)).is_ok());
        assert!(validate(&"a".repeat(256)).is_err());
        assert!(validate("").is_err());
        assert!(validate("a\nb").is_err());
        assert!(validate("a\u{7f}b").is_err());
        assert!(validate("a\u{85}b").is_err(), "C1 controls too");
        assert!(validate("müller.de/ä").is_ok(), "other non-ASCII is fine");
    }

    #[test]
    fn the_byte_check_agrees_with_char_is_control() {
        for c in (0..0x300u32).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(has_control_character(&s), c.is_control(), "{c:?}");
        }
    }
}
