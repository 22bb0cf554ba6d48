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
    if account.chars().any(char::is_control) {
        return Err(Error::invalid_argument(
            "the account contains a control character; accounts are plain text like \"example.com/40\"",
        ));
    }
    Ok(())
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
    }
}
