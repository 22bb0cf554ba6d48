//! Tokens at rest: every refresh and access token is sealed with XChaCha20-Poly1305 (an AEAD,
//! a fresh random 192-bit nonce per value, so nonces never repeat in practice) under a 256-bit
//! key kept in a file beside, not inside, the database: a copy of the database alone reveals
//! no token. The account and the field are bound in as associated data, so a sealed value
//! moved to another row does not open.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};

/// The key file's name in `data_dir` when the configuration names none.
pub const KEY_FILE: &str = "token.key";
/// The key: exactly 32 raw bytes.
pub const KEY_BYTES: usize = 32;
/// Marks a sealed value, so that plain tokens of an older store are recognised (and sealed).
const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 24;

pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// Where the key came from, for messages.
    key_path: PathBuf,
}

impl Sealer {
    /// Reads the key from `named` (the configuration's `token_key_file`), or from
    /// `data_dir/token.key`, which is created (0600, 32 random bytes) on first open. A key file
    /// that is missing when named, unreadable, readable by group or others, or not 32 bytes
    /// fails, naming the file.
    pub fn load(named: Option<&Path>, data_dir: &Path) -> Result<Sealer> {
        let key_path = match named {
            Some(path) => path.to_path_buf(),
            None => data_dir.join(KEY_FILE),
        };
        if named.is_none() && !key_path.exists() {
            create_key(&key_path)?;
            log::info!(
                "created the token key {} (keep it with backups of data_dir: without it the stored tokens cannot be read)",
                key_path.display()
            );
        }
        let shown = key_path.display();
        let meta = fs::metadata(&key_path).map_err(|e| {
            Error::config(format!(
                "configuration: token_key_file {shown} cannot be read ({e}); give the path of the 32-byte key file (create one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE)"
            ))
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::config(format!(
                "configuration: the token key {shown} is readable by group or others (mode {mode:o}); chmod 600 it"
            )));
        }
        let key = fs::read(&key_path).map_err(|e| {
            Error::config(format!(
                "configuration: the token key {shown} cannot be read ({e}); check its owner and permissions"
            ))
        })?;
        if key.len() != KEY_BYTES {
            return Err(Error::config(format!(
                "configuration: the token key {shown} holds {} bytes; it must hold exactly {KEY_BYTES} raw bytes (head -c 32 /dev/urandom > FILE)",
                key.len()
            )));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&key).map_err(|_| {
            Error::config(format!("configuration: the token key {shown} is not a key"))
        })?;
        Ok(Sealer { cipher, key_path })
    }

    /// Seals a token of `account`'s `field` ("refresh_token", "access_token").
    pub fn seal(&self, account: &str, field: &str, plain: &str) -> String {
        let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let aad = associated_data(account, field);
        let sealed = self
            .cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length a token has");
        let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
        bytes.extend_from_slice(&nonce_bytes);
        bytes.extend_from_slice(&sealed);
        format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// Where the key was read from, for messages.
    pub fn key_path(&self) -> &std::path::Path {
        &self.key_path
    }

    /// Opens a sealed token. A value this key did not seal (another key, another row, a
    /// damaged file) is an error, never a garbage token to send to Google.
    pub fn open(&self, account: &str, field: &str, stored: &str) -> Result<String> {
        let refused = || {
            Error::config(format!(
                "the token key {} does not open the tokens stored for {account}: they were sealed with another key. Put back the key file they were sealed with, in place of this one (or set token_key_file to it). Without it they are lost: to start over, move the database aside (data_dir/google-integration.sqlite3; with PostgreSQL, the plugin's database) and connect every account again",
                self.key_path.display()
            ))
        };
        let encoded = stored.strip_prefix(SEALED_PREFIX).ok_or_else(refused)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| refused())?;
        if bytes.len() < NONCE_BYTES {
            return Err(refused());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &associated_data(account, field),
                },
            )
            .map_err(|_| refused())?;
        String::from_utf8(plain).map_err(|_| refused())
    }

    /// Whether a stored value is sealed (an older store kept tokens in plain text).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }
}

fn associated_data(account: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(account.len() + field.len() + 1);
    aad.extend_from_slice(field.as_bytes());
    aad.push(0);
    aad.extend_from_slice(account.as_bytes());
    aad
}

/// A new key file, 0600 from its first byte, that appears whole: written under a name of its
/// own, then linked to `path`, which fails when the file is there already. Created at `path`
/// and written there, as it was, a second open starting at that moment read it empty ("holds
/// 0 bytes"), and a process killed between the two left a short key that failed every open
/// after it. Of two opens at once, one key wins and both read it.
fn create_key(path: &Path) -> Result<()> {
    let failed = |e: std::io::Error| {
        Error::config(format!(
            "configuration: cannot create the token key {} ({e}); check that data_dir is writable",
            path.display()
        ))
    };
    let key: [u8; KEY_BYTES] = rand::random();
    let suffix: u64 = rand::random();
    let draft = path.with_file_name(format!(".{KEY_FILE}.{suffix:016x}.new"));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&draft)
        .and_then(|mut file| {
            file.write_all(&key)?;
            file.sync_all()
        });
    let linked = written.and_then(|()| fs::hard_link(&draft, path));
    let _ = fs::remove_file(&draft);
    match linked {
        Ok(()) => {
            // The new name lasts once its directory entry does.
            if let Some(dir) = path.parent() {
                fs::File::open(dir)
                    .and_then(|dir| dir.sync_all())
                    .map_err(failed)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(dir: &Path) -> Sealer {
        Sealer::load(None, dir).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_only_with_its_key_row_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let s = sealer(dir.path());
        let sealed = s.seal("example.com", "refresh_token", "1//secret");
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("secret"));
        assert_ne!(
            sealed,
            s.seal("example.com", "refresh_token", "1//secret"),
            "fresh nonce"
        );
        assert_eq!(
            s.open("example.com", "refresh_token", &sealed).unwrap(),
            "1//secret"
        );
        assert!(s.open("example.org", "refresh_token", &sealed).is_err());
        assert!(s.open("example.com", "access_token", &sealed).is_err());
        let other = tempfile::tempdir().unwrap();
        let err = sealer(other.path())
            .open("example.com", "refresh_token", &sealed)
            .err()
            .unwrap();
        assert!(err.message().contains("token.key"), "{err}");
        assert!(s.open("example.com", "refresh_token", "1//plain").is_err());
    }

    #[test]
    fn opens_racing_on_a_new_data_dir_all_read_the_one_whole_key() {
        for _ in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let loaded: Vec<Result<Sealer>> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| Sealer::load(None, dir.path())))
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            let sealed = loaded[0]
                .as_ref()
                .unwrap_or_else(|e| panic!("{e}"))
                .seal("a", "f", "t");
            for sealer in &loaded {
                let sealer = sealer.as_ref().unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(sealer.open("a", "f", &sealed).unwrap(), "t", "one key");
            }
        }
    }

    #[test]
    fn the_key_file_is_created_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        sealer(dir.path());
        let path = dir.path().join(KEY_FILE);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (32, 0o600));

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = Sealer::load(None, dir.path()).err().unwrap();
        assert!(err.message().contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

        fs::write(&path, [7u8; 31]).unwrap();
        let err = Sealer::load(None, dir.path()).err().unwrap();
        assert!(err.message().contains("31 bytes"), "{err}");

        // Nothing but the key is left in data_dir.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE], "{names:?}");

        let missing = dir.path().join("no-such.key");
        let err = Sealer::load(Some(&missing), dir.path()).err().unwrap();
        assert!(err.message().contains("no-such.key"), "{err}");
        assert!(!missing.exists(), "a named key is never created");
    }
}
