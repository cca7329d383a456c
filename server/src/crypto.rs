//! Fernet encryption of variables and connections, as Airflow's `get_fernet()`
//! does it (`airflow/models/crypto.py`): `[core] fernet_key` is a comma-separated
//! list of keys acting as a MultiFernet (the first encrypts, any decrypts); no
//! key is the null Fernet, which stores plaintext.

use std::fmt;

/// Why a key or a stored value could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A key in `[core] fernet_key` is not a Fernet key.
    #[error(
        "[core] fernet_key: key #{position} is not a valid Fernet key (32 url-safe base64-encoded bytes)"
    )]
    BadKey {
        /// 1-based position in the comma-separated list.
        position: usize,
    },
    /// A stored value does not decrypt with any configured key.
    #[error("the value does not decrypt with the configured fernet_key")]
    InvalidToken,
    /// A decrypted value is not UTF-8.
    #[error("the decrypted value is not UTF-8")]
    NotUtf8,
}

/// Airflow's Fernet: a MultiFernet, or the null Fernet when no key is configured.
#[derive(Clone)]
pub struct Fernet {
    keys: Vec<fernet::Fernet>,
}

impl fmt::Debug for Fernet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fernet")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Fernet {
    /// Reads `[core] fernet_key`: `None` or blank is the null Fernet.
    pub fn from_config(key: Option<&str>) -> Result<Fernet, CryptoError> {
        let mut keys = Vec::new();
        if let Some(list) = key.filter(|k| !k.trim().is_empty()) {
            for (i, part) in list.split(',').enumerate() {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                keys.push(
                    fernet::Fernet::new(part).ok_or(CryptoError::BadKey { position: i + 1 })?,
                );
            }
        }
        Ok(Fernet { keys })
    }

    /// Whether values are encrypted (Airflow's `fernet.is_encrypted`).
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

    /// Decrypts with any key; the null Fernet returns the text unchanged, as
    /// Airflow's `_NullFernet.decrypt` does.
    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        if self.keys.is_empty() {
            return Ok(stored.to_owned());
        }
        let plain = self
            .keys
            .iter()
            .find_map(|key| key.decrypt(stored).ok())
            .ok_or(CryptoError::InvalidToken)?;
        String::from_utf8(plain).map_err(|_| CryptoError::NotUtf8)
    }

    /// A new random key, in Airflow's format.
    pub fn generate_key() -> String {
        fernet::Fernet::generate_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_fernet_encrypts_with_the_first_and_decrypts_with_any() {
        let (a, b) = (Fernet::generate_key(), Fernet::generate_key());
        let old = Fernet::from_config(Some(&b)).unwrap();
        let both = Fernet::from_config(Some(&format!("{a}, {b}"))).unwrap();
        let token = old.encrypt("secret");
        assert_eq!(both.decrypt(&token).unwrap(), "secret");
        let new_token = both.encrypt("s2");
        assert!(new_token.starts_with("gAAAAA"));
        assert!(old.decrypt(&new_token).is_err());
        assert_eq!(
            Fernet::from_config(Some(&a))
                .unwrap()
                .decrypt(&new_token)
                .unwrap(),
            "s2"
        );
    }

    #[test]
    fn null_fernet_stores_plaintext() {
        let null = Fernet::from_config(None).unwrap();
        assert!(!null.is_encrypting());
        assert_eq!(null.encrypt("x"), "x");
        assert_eq!(null.decrypt("x").unwrap(), "x");
        assert!(!Fernet::from_config(Some("  ")).unwrap().is_encrypting());
    }

    #[test]
    fn bad_keys_are_named_by_position() {
        let good = Fernet::generate_key();
        let err = Fernet::from_config(Some(&format!("{good},nope"))).unwrap_err();
        assert!(matches!(err, CryptoError::BadKey { position: 2 }), "{err}");
        assert!(!format!("{err}").contains(&good));
    }
}
