//! Fernet encryption of variables and connections, as Airflow's `get_fernet()`
//! (`airflow/models/crypto.py`) does it.
//!
//! `[core] fernet_key` is split on `,` into a MultiFernet: the first key encrypts, any key
//! decrypts (so keys can be rotated by prepending a new one). An empty or absent key is the
//! *null* Fernet: values are stored in plain text and flagged `is_encrypted = false`.
//!
//! Tokens are standard Fernet (`cryptography.fernet`), so Airflow reads what we write and we
//! read what it writes. Like Python's `Fernet.decrypt(token)` without a `ttl`, decryption
//! checks neither the token's age nor its timestamp (the `fernet` crate's plain `decrypt`
//! refuses timestamps more than 60 s ahead of our clock, which would break on clock skew
//! between Airflow's hosts and ours).
//!
//! ```
//! use execution_api_server::crypto::Fernet;
//!
//! let fernet = Fernet::from_config(Some("81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=")).unwrap();
//! let token = fernet.encrypt("s3cret");
//! assert!(token.starts_with("gAAAAA"));
//! assert_eq!(fernet.decrypt(&token).unwrap(), "s3cret");
//!
//! let null = Fernet::from_config(None).unwrap();
//! assert!(!null.is_encrypting());
//! assert_eq!(null.encrypt("plain"), "plain");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use crate::private_files::{create_private_dir, publish_once, warn_if_readable_by_others};

/// Name of the generated development key inside the data directory.
pub const DEV_FERNET_KEY_FILE: &str = "dev-fernet-key";

/// Airflow's Fernet: a MultiFernet over the configured keys, or the null Fernet.
#[derive(Clone)]
pub struct Fernet {
    /// Empty for the null Fernet; else the first encrypts.
    keys: Vec<fernet::Fernet>,
}

impl fmt::Debug for Fernet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys.
        f.debug_struct("Fernet")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Why a key could not be used or a value could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// One of the comma-separated keys is not a Fernet key.
    #[error(
        "[core] fernet_key: key {position} of {count} is not a Fernet key (32 url-safe \
         base64-encoded bytes; generate one with `python -c \"from cryptography.fernet import \
         Fernet; print(Fernet.generate_key().decode())\"`)"
    )]
    BadKey {
        /// 1-based position in the comma-separated list.
        position: usize,
        /// How many keys the list has.
        count: usize,
    },
    /// The value is not a Fernet token made with any configured key (or was tampered with).
    #[error("cannot decrypt: not a Fernet token for any configured [core] fernet_key")]
    InvalidToken,
    /// The value decrypted, but is not UTF-8 text.
    #[error("decrypted value is not UTF-8 text")]
    NotUtf8,
    /// The development key file could not be created or read.
    #[error("development Fernet key `{path}`: {reason}")]
    DevKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Fernet {
    /// `get_fernet()` for a `[core] fernet_key` value: `None` or empty is the null Fernet; else
    /// each comma-separated key must be a Fernet key (surrounding whitespace ignored, as
    /// Python's lenient base64 decoding ignores it).
    pub fn from_config(key: Option<&str>) -> Result<Fernet, CryptoError> {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Ok(Fernet { keys: Vec::new() });
        };
        let parts: Vec<&str> = key.split(',').collect();
        let count = parts.len();
        let keys = parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                fernet::Fernet::new(part.trim()).ok_or(CryptoError::BadKey {
                    position: i + 1,
                    count,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fernet { keys })
    }

    /// Whether values are encrypted (Airflow's `fernet.is_encrypted`): false for the null
    /// Fernet. Store it in `is_encrypted` / `is_extra_encrypted` beside the value.
    pub fn is_encrypting(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Encrypts with the first key; the null Fernet returns the text unchanged.
    pub fn encrypt(&self, plaintext: &str) -> String {
        match self.keys.first() {
            Some(key) => key.encrypt(plaintext.as_bytes()),
            None => plaintext.to_owned(),
        }
    }

    /// Decrypts with whichever key works. The null Fernet returns the stored text unchanged,
    /// whatever it is, as Airflow's `_NullFernet.decrypt` does: a caller reading a value flagged
    /// encrypted should check [`is_encrypting`](Fernet::is_encrypting) first and refuse, as
    /// Airflow's connection model does ("FERNET_KEY configuration is missing").
    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        if self.keys.is_empty() {
            return Ok(stored.to_owned());
        }
        // Python: no TTL, so no timestamp check at all. `u64::MAX - 60` keeps the crate's
        // "more than 60 s in the future" check from ever firing (and from overflowing).
        let now = u64::MAX - 60;
        let plaintext = self
            .keys
            .iter()
            .find_map(|key| key.decrypt_at_time(stored, None, now).ok())
            .ok_or(CryptoError::InvalidToken)?;
        String::from_utf8(plaintext).map_err(|_| CryptoError::NotUtf8)
    }

    /// A new random key, in Airflow's format (`Fernet.generate_key()`).
    pub fn generate_key() -> String {
        fernet::Fernet::generate_key()
    }
}

/// Reads `<data_dir>/dev-fernet-key`, creating it (mode 0600) with a new key if missing, so
/// that a development setup with no `[core] fernet_key` still encrypts, with the same key
/// across restarts and CLI commands.
pub fn dev_fernet_key(data_dir: &Path) -> Result<String, CryptoError> {
    let path = data_dir.join(DEV_FERNET_KEY_FILE);
    let err = |reason: String| CryptoError::DevKey {
        path: path.clone(),
        reason,
    };
    match read_key(&path).map_err(&err)? {
        Some(key) => return Ok(key),
        None => {
            create_private_dir(data_dir)
                .map_err(|e| err(format!("cannot create {}: {e}", data_dir.display())))?;
            // If another process won the race, its key stays and ours is discarded, so every
            // process agrees.
            publish_once(&path, &fernet::Fernet::generate_key()).map_err(|e| err(e.to_string()))?;
        }
    }
    read_key(&path)
        .map_err(&err)?
        .ok_or_else(|| err("disappeared after creation".into()))
}

/// `Ok(None)` when the file does not exist; an error when it holds no valid key.
fn read_key(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim();
            if fernet::Fernet::new(key).is_none() {
                return Err("not a Fernet key; delete it to generate a new one (values encrypted with it become unreadable)".into());
            }
            warn_if_readable_by_others(path);
            Ok(Some(key.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors from Python's `cryptography.fernet` (the Airflow 3.3.2 venv), made once with:
    //
    //   from cryptography.fernet import Fernet
    //   f = Fernet(KEY_1.encode())
    //   f.encrypt(b"airflow variable value").decode()
    //   f.encrypt("h\u00e9llo \u2603".encode()).decode()
    //   Fernet(KEY_2.encode()).encrypt(b"old key").decode()
    //   f._encrypt_from_parts(b"future", 2**40, b"\0" * 16).decode()   # far-future timestamp
    //   f._encrypt_from_parts(b"\xff\xfe", 1_700_000_000, b"\1" * 16).decode()  # not UTF-8
    const KEY_1: &str = "81HqDtbqAywKSOumSha3BhWNOdQ26slT6K0YaZeZyPs=";
    const KEY_2: &str = "y1Qq2IYX1D9KHzG9rxWMUEwxwxr7nNzFtKDlKFGxZ3Y=";
    const PY_TOKEN: &str = "gAAAAABrD0mYRJeJOyFhWS8l7E0dASySKXNzBJZfbQ8upFoHkHP_8aKzxISOn3aK-9-fc4vDrmDjMIDDlQt-BbV8OhfzVfQuHAJEk5Mvy74ekNmHielhcyw=";
    const PY_TOKEN_UNICODE: &str = "gAAAAABrD0mYF9Z9broOBrjpSPowdr2NAIclc6v5vQfqlxip1wSAhlJVyYlRsvrdkGKs6gQePablTYEPpxH-lbgXpCAwBoznRQ==";
    const PY_TOKEN_KEY_2: &str = "gAAAAABrD0mYtJZJMDndFGnWu6WfwTDYVZFkRyZa5pYJLwcP8J8hejsxwN6hGOSLk2g7g6ZUT25k7XOV3ohAA8Jz6Mf7V1CJ-Q==";
    const PY_TOKEN_FUTURE: &str = "gAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAO7j_OIaZMjuw_qwfxbTWoH9dDNG7l_1WFrGQfXEqiR01A3BXro8kB1g4GaGdZMbtQ==";
    const PY_TOKEN_NOT_UTF8: &str = "gAAAAABlU_EAAQEBAQEBAQEBAQEBAQEBARsSjfFIsZzA2jec6y5VPiFRMRDiINiGB7ZYAbwy1ycO0oAGrHHTSiG4OyPagz-dXQ==";

    #[test]
    fn round_trip() {
        let fernet = Fernet::from_config(Some(KEY_1)).unwrap();
        assert!(fernet.is_encrypting());
        let token = fernet.encrypt("value with ünïcode");
        assert!(token.starts_with("gAAAAA"), "{token}");
        assert_ne!(fernet.encrypt("value with ünïcode"), token, "random IV");
        assert_eq!(fernet.decrypt(&token).unwrap(), "value with ünïcode");
        assert_eq!(fernet.decrypt(&fernet.encrypt("")).unwrap(), "");
    }

    #[test]
    fn multi_fernet_encrypts_with_the_first_and_decrypts_with_any() {
        let old = Fernet::from_config(Some(KEY_2)).unwrap();
        let rotated = Fernet::from_config(Some(&format!("{KEY_1}, {KEY_2}"))).unwrap();
        let old_token = old.encrypt("before rotation");
        assert_eq!(rotated.decrypt(&old_token).unwrap(), "before rotation");
        let new_token = rotated.encrypt("after rotation");
        assert_eq!(
            Fernet::from_config(Some(KEY_1))
                .unwrap()
                .decrypt(&new_token)
                .unwrap(),
            "after rotation"
        );
        assert!(matches!(
            old.decrypt(&new_token),
            Err(CryptoError::InvalidToken)
        ));
    }

    #[test]
    fn null_fernet_stores_plain_text() {
        for key in [None, Some("")] {
            let null = Fernet::from_config(key).unwrap();
            assert!(!null.is_encrypting());
            assert_eq!(null.encrypt("plain"), "plain");
            assert_eq!(null.decrypt("plain").unwrap(), "plain");
            // A token is returned as it is, like `_NullFernet.decrypt`.
            assert_eq!(null.decrypt(PY_TOKEN).unwrap(), PY_TOKEN);
        }
    }

    #[test]
    fn bad_keys_name_the_position_never_the_key() {
        let err = Fernet::from_config(Some(&format!("{KEY_1},not-a-key-at-all"))).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("key 2 of 2"), "{message}");
        assert!(
            !message.contains("not-a-key-at-all") && !message.contains(KEY_1),
            "{message}"
        );
        // A trailing comma is an empty key, refused as Python refuses it.
        assert!(matches!(
            Fernet::from_config(Some(&format!("{KEY_1},"))),
            Err(CryptoError::BadKey {
                position: 2,
                count: 2
            })
        ));
        // 31 bytes.
        assert!(Fernet::from_config(Some("c2hvcnQgc2hvcnQgc2hvcnQgc2hvcnQgc2hvcnQ=")).is_err());
    }

    #[test]
    fn invalid_tokens_are_errors() {
        let fernet = Fernet::from_config(Some(KEY_1)).unwrap();
        for stored in ["plain text", "", "gAAAAA", &PY_TOKEN[..PY_TOKEN.len() - 4]] {
            assert!(
                matches!(fernet.decrypt(stored), Err(CryptoError::InvalidToken)),
                "{stored}"
            );
        }
        let mut tampered = PY_TOKEN.to_owned().into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        assert!(
            fernet
                .decrypt(std::str::from_utf8(&tampered).unwrap())
                .is_err()
        );
    }

    #[test]
    fn decrypts_what_python_encrypted() {
        let fernet = Fernet::from_config(Some(KEY_1)).unwrap();
        assert_eq!(fernet.decrypt(PY_TOKEN).unwrap(), "airflow variable value");
        assert_eq!(
            fernet.decrypt(PY_TOKEN_UNICODE).unwrap(),
            "h\u{e9}llo \u{2603}"
        );
        let both = Fernet::from_config(Some(&format!("{KEY_1},{KEY_2}"))).unwrap();
        assert_eq!(both.decrypt(PY_TOKEN_KEY_2).unwrap(), "old key");
        // Python without a TTL ignores the timestamp, even far in the future.
        assert_eq!(fernet.decrypt(PY_TOKEN_FUTURE).unwrap(), "future");
        assert!(matches!(
            fernet.decrypt(PY_TOKEN_NOT_UTF8),
            Err(CryptoError::NotUtf8)
        ));
    }

    #[test]
    fn debug_does_not_print_keys() {
        let fernet = Fernet::from_config(Some(&format!("{KEY_1},{KEY_2}"))).unwrap();
        let debug = format!("{fernet:?}");
        assert_eq!(debug, "Fernet { keys: 2 }");
    }

    #[test]
    fn dev_key_is_created_private_valid_and_reused() {
        let temp = crate::temp_dir::TempDir::new("dev-fernet");
        let dir = temp.path();
        let key = dev_fernet_key(&dir.join("nested")).unwrap();
        let path = dir.join("nested").join(DEV_FERNET_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        assert_eq!(dev_fernet_key(&dir.join("nested")).unwrap(), key);
        let fernet = Fernet::from_config(Some(&key)).unwrap();
        assert!(fernet.is_encrypting());
        std::fs::write(&path, "garbage\n").unwrap();
        let err = dev_fernet_key(&dir.join("nested")).unwrap_err();
        assert!(err.to_string().contains("not a Fernet key"), "{err}");
    }
}
