//! Accounts as the host names them: `example.com` (a domain, or tenant) and `example.com/40`
//! (a user of it). The plugin never interprets them beyond finding the domain, which is a DNS
//! name: compared without regard to ASCII case and a trailing dot, so every account is kept
//! and reported in its canonical form (`ACME.de./40` is `acme.de/40`).

use std::borrow::Cow;

use crate::error::{Error, Result};

/// The longest account the contract allows, in bytes (it must fit `GiContact.account`).
pub const MAX_ACCOUNT_BYTES: usize = 255;

/// Checks an account string from the host: non-empty, at most 255 bytes, no control characters.
pub fn validate(account: &str) -> Result<()> {
    // This runs on every lookup and presence call: an account of printable ASCII (what PBX
    // accounts are) is passed in one branch-free pass over its bytes; anything else is
    // looked at closely, with a message for what is wrong.
    let bytes = account.as_bytes();
    let printable_ascii = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5f));
    // An account that starts with a dot may have no domain but dots: looked at closely.
    let has_domain = !matches!(bytes, [] | [b'/', ..] | [b'.', ..]);
    if printable_ascii && has_domain && bytes.len() <= MAX_ACCOUNT_BYTES {
        return Ok(());
    }
    validate_closely(account)
}

#[cold]
#[inline(never)]
fn validate_closely(account: &str) -> Result<()> {
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
            "the account contains a control character (or a bidirectional-text control); accounts are plain text like \"example.com/40\"",
        ));
    }
    // The domain is empty ("/40") or only trailing dots (".", "./40", "../40").
    if domain_of(account).trim_end_matches('.').is_empty() {
        return Err(Error::invalid_argument(
            "the account has no domain before its '/'; pass \"example.com/40\"",
        ));
    }
    Ok(())
}

/// Whether the account is already in canonical form: its domain has no ASCII capital and
/// no trailing dot. Checked on the bytes: this runs on every lookup.
pub fn is_canonical(account: &str) -> bool {
    let mut last = 0u8;
    for &b in account.as_bytes() {
        if b == b'/' {
            break;
        }
        if b.is_ascii_uppercase() {
            return false;
        }
        last = b;
    }
    last != b'.'
}

/// The canonical form of a valid account (a copy only when it differs).
pub fn canonical(account: &str) -> Cow<'_, str> {
    if is_canonical(account) {
        return Cow::Borrowed(account);
    }
    let mut buf = [0u8; MAX_ACCOUNT_BYTES];
    Cow::Owned(canonical_in(account, &mut buf).to_owned())
}

/// The canonical form of a valid account, written into `buf` when it differs from
/// `account`: no allocation, for the lookup path.
pub fn canonical_in<'a>(account: &'a str, buf: &'a mut [u8; MAX_ACCOUNT_BYTES]) -> &'a str {
    if is_canonical(account) {
        return account;
    }
    let domain = domain_of(account);
    let rest = &account[domain.len()..];
    // Every trailing dot: with one left ("acme.de.." made "acme.de."), the canonical form
    // was not canonical itself, and the account the plugin reported (`account_buf`,
    // `GiContact.account`) named another account when the host passed it back.
    let domain = domain.trim_end_matches('.');
    let len = domain.len() + rest.len();
    buf[..domain.len()].copy_from_slice(domain.as_bytes());
    buf[..domain.len()].make_ascii_lowercase();
    buf[domain.len()..len].copy_from_slice(rest.as_bytes());
    // Lower-casing ASCII and dropping an ASCII dot keep UTF-8 valid.
    std::str::from_utf8(&buf[..len]).expect("ASCII changes keep UTF-8 valid")
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
    c0_or_del || (!s.is_ascii() && (has_c1(bytes) || has_bidi_control(bytes)))
}

fn has_c1(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]))
}

/// U+202A..U+202E (E2 80 AA..AE) and U+2066..U+2069 (E2 81 A6..A9): they make an account
/// display as another in the PBX's pages.
fn has_bidi_control(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| {
        w[0] == 0xe2
            && ((w[1] == 0x80 && (0xaa..=0xae).contains(&w[2]))
                || (w[1] == 0x81 && (0xa6..=0xa9).contains(&w[2])))
    })
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
    fn the_byte_check_agrees_with_char_is_control_and_the_bidi_controls() {
        let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        for c in (0..0x3000u32).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(
                has_control_character(&s),
                c.is_control() || bidi(c),
                "{c:?}"
            );
        }
        assert!(validate("example.com/\u{202e}04").is_err());
        assert!(validate("/40").is_err() && validate(".").is_err());
        for no_domain in ["./40", "../40", "..", "...", "../"] {
            assert!(validate(no_domain).is_err(), "{no_domain}");
        }
        assert!(validate(".acme.de/40").is_ok() && validate("..x").is_ok());
    }

    #[test]
    fn the_domain_is_canonical_in_ascii_case_and_without_a_trailing_dot() {
        assert_eq!(canonical("ACME.de./40"), "acme.de/40");
        assert_eq!(canonical("Acme.DE"), "acme.de");
        assert_eq!(
            canonical("acme.de/Max"),
            "acme.de/Max",
            "the user part is the host's"
        );
        assert!(matches!(canonical("acme.de/40"), Cow::Borrowed(_)));
        assert_eq!(
            canonical("MÜLLER.de/1"),
            "mÜller.de/1",
            "only ASCII case folds"
        );
        // Canonical once is canonical: what the plugin reports names the same account.
        for account in ["ACME.de../40", "acme.de...", "A.b../1", "x..", ".y./2"] {
            let once = canonical(account).into_owned();
            assert!(is_canonical(&once), "{account} -> {once}");
            assert_eq!(canonical(&once), once, "{account}");
        }
        assert_eq!(canonical("ACME.de../40"), "acme.de/40");
        let mut buf = [0u8; MAX_ACCOUNT_BYTES];
        let long = format!("{}./x", "A".repeat(250));
        assert_eq!(
            canonical_in(&long, &mut buf),
            format!("{}/x", "a".repeat(250))
        );
    }
}
