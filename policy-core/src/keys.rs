//! Key material: signing keys (secret or PEM private key, algorithm guessed
//! from the key), verifying keys pinned to one algorithm, and key sets.

use std::fmt;
use std::str::FromStr;
use std::sync::Once;

use aws_lc_rs::hmac;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse,
    ThumbprintHash,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

/// Why key material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An HMAC secret so short that brute force is cheap.
    #[error("symmetric secret too short: {len} bytes, need at least {min}")]
    SecretTooShort {
        /// Bytes given.
        len: usize,
        /// Bytes required.
        min: usize,
    },
    /// The algorithm does not fit the key kind (e.g. RS256 for a secret).
    #[error("algorithm {alg:?} cannot be used with {kind}")]
    AlgorithmMismatch {
        /// The algorithm asked for.
        alg: Algorithm,
        /// The kind of key given.
        kind: &'static str,
    },
    /// PEM that is not an RSA, Ed25519, P-256 or P-384 key we can read.
    #[error(
        "unsupported or unreadable PEM key (expected PKCS#8 `PRIVATE KEY`/`PUBLIC KEY` or PKCS#1 RSA): {0}"
    )]
    Pem(String),
    /// A JWKS document that cannot be used at all.
    #[error("invalid JWKS: {0}")]
    Jwks(String),
    /// Fetching a JWKS failed.
    #[error("cannot fetch JWKS from {location}: {reason}")]
    Fetch {
        /// File path or URL.
        location: String,
        /// What went wrong.
        reason: String,
    },
}

/// Selects the aws-lc-rs backend of jsonwebtoken explicitly: jsonwebtoken
/// panics at first use when it cannot tell which backend to use.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means a provider was already installed by the application: keep it.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}

/// The secret length RFC 7518 §3.2 asks for: the hash output size.
fn recommended_secret_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// The shortest secret accepted at all. Airflow generates 24-character secrets
/// (`b64encode(os.urandom(16))`); refusing them would stop operators reusing an
/// Airflow configuration, so shorter-than-recommended secrets only warn.
pub const MIN_SECRET_LEN: usize = 16;

/// A key that signs tokens, with the algorithm it is pinned to and its `kid`.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
    verifying: VerifyingKey,
    public_jwk: Option<Jwk>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A symmetric secret for `alg` (HS256, HS384 or HS512), with an optional `kid`
    /// header. The secret must be at least as long as the hash output.
    pub fn from_secret(
        secret: impl AsRef<[u8]>,
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<SigningKey, KeyError> {
        install_crypto_provider();
        let secret = secret.as_ref();
        let verifying = VerifyingKey::from_secret(secret, alg, kid.clone())?;
        Ok(SigningKey {
            key: EncodingKey::from_secret(secret),
            alg,
            kid,
            verifying,
            public_jwk: None,
        })
    }

    /// A PEM private key; the algorithm is guessed from the key: RSA -> RS256,
    /// Ed25519 -> EdDSA, P-256 -> ES256, P-384 -> ES384. The `kid` is the key's
    /// RFC 7638 thumbprint (SHA-256).
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<SigningKey, KeyError> {
        install_crypto_provider();
        let pem = pem.as_ref();
        let pem_err = |e: jsonwebtoken::errors::Error| KeyError::Pem(e.to_string());
        let (key, alg, jwk) = if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            let jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).map_err(pem_err)?;
            (key, Algorithm::EdDSA, jwk)
        } else if let Ok(key) = EncodingKey::from_ec_pem(pem) {
            // The curve decides: try P-256 first, then P-384.
            match Jwk::from_encoding_key(&key, Algorithm::ES256) {
                Ok(jwk) => (key, Algorithm::ES256, jwk),
                Err(_) => {
                    let jwk = Jwk::from_encoding_key(&key, Algorithm::ES384).map_err(pem_err)?;
                    (key, Algorithm::ES384, jwk)
                }
            }
        } else {
            let key = EncodingKey::from_rsa_pem(pem).map_err(pem_err)?;
            let jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).map_err(pem_err)?;
            (key, Algorithm::RS256, jwk)
        };
        let kid = thumbprint(&jwk)?;
        let jwk = public_jwk(jwk, &kid, alg);
        let verifying = VerifyingKey::from_jwk(&jwk)?;
        Ok(SigningKey {
            key,
            alg,
            kid: Some(kid),
            verifying,
            public_jwk: Some(jwk),
        })
    }

    /// Replaces the `kid` header value (e.g. a configured one instead of the thumbprint).
    pub fn with_kid(mut self, kid: Option<String>) -> SigningKey {
        self.verifying.kid.clone_from(&kid);
        if let Some(jwk) = &mut self.public_jwk {
            jwk.common.key_id.clone_from(&kid);
        }
        self.kid = kid;
        self
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The `kid` header put on generated tokens.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key that verifies this key's signatures (the public half, or the secret).
    pub fn verifying_key(&self) -> VerifyingKey {
        self.verifying.clone()
    }

    /// The public half as a JWK (`kid`, `alg`, `use: sig`), for publishing a JWKS.
    /// `None` for symmetric secrets, which must never be published.
    pub fn public_jwk(&self) -> Option<&Jwk> {
        self.public_jwk.as_ref()
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.key
    }
}

/// RFC 7638 thumbprint (SHA-256, base64url).
fn thumbprint(jwk: &Jwk) -> Result<String, KeyError> {
    jwk.thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| KeyError::Pem(e.to_string()))
}

fn public_jwk(mut jwk: Jwk, kid: &str, alg: Algorithm) -> Jwk {
    jwk.common = CommonParameters {
        public_key_use: Some(PublicKeyUse::Signature),
        key_id: Some(kid.to_owned()),
        key_algorithm: Some(key_algorithm(alg)),
        ..CommonParameters::default()
    };
    jwk
}

fn key_algorithm(alg: Algorithm) -> KeyAlgorithm {
    match alg {
        Algorithm::HS256 => KeyAlgorithm::HS256,
        Algorithm::HS384 => KeyAlgorithm::HS384,
        Algorithm::HS512 => KeyAlgorithm::HS512,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        Algorithm::ES384 => KeyAlgorithm::ES384,
        Algorithm::RS384 => KeyAlgorithm::RS384,
        Algorithm::RS512 => KeyAlgorithm::RS512,
        Algorithm::PS256 => KeyAlgorithm::PS256,
        Algorithm::PS384 => KeyAlgorithm::PS384,
        Algorithm::PS512 => KeyAlgorithm::PS512,
        Algorithm::EdDSA => KeyAlgorithm::EdDSA,
        _ => KeyAlgorithm::RS256,
    }
}

/// A key that verifies signatures, pinned to exactly one algorithm: a token whose
/// header names any other algorithm is refused before any cryptography runs
/// (this is what stops `alg: none` and HS256-with-the-public-key confusion).
#[derive(Clone)]
pub struct VerifyingKey {
    pub(crate) key: DecodingKey,
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    /// For HS256/384/512: the HMAC key with its padded-key hash states
    /// computed once, so a verification hashes only the token (the generic
    /// path rebuilds the key, two extra hash blocks, on every call).
    pub(crate) hmac: Option<hmac::Key>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// A symmetric secret for `alg` (HS256, HS384, HS512).
    pub fn from_secret(
        secret: impl AsRef<[u8]>,
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<VerifyingKey, KeyError> {
        install_crypto_provider();
        if alg.family() != AlgorithmFamily::Hmac {
            return Err(KeyError::AlgorithmMismatch {
                alg,
                kind: "a symmetric secret",
            });
        }
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort {
                len: secret.len(),
                min: MIN_SECRET_LEN,
            });
        }
        let recommended = recommended_secret_len(alg);
        if secret.len() < recommended {
            tracing::warn!(
                len = secret.len(),
                recommended,
                "symmetric secret shorter than the {alg:?} hash output; generate one with `openssl rand -hex 64`"
            );
        }
        let hmac_alg = match alg {
            Algorithm::HS256 => hmac::HMAC_SHA256,
            Algorithm::HS384 => hmac::HMAC_SHA384,
            _ => hmac::HMAC_SHA512,
        };
        Ok(VerifyingKey {
            key: DecodingKey::from_secret(secret),
            alg,
            kid,
            hmac: Some(hmac::Key::new(hmac_alg, secret)),
        })
    }

    /// A PEM public key (or a private key, whose public half is used); the
    /// algorithm is guessed as for [`SigningKey::from_pem`] and the `kid` is the
    /// RFC 7638 thumbprint, so it matches tokens made by the private key.
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<VerifyingKey, KeyError> {
        install_crypto_provider();
        let pem = pem.as_ref();
        if let Ok(signing) = SigningKey::from_pem(pem) {
            return Ok(signing.verifying);
        }
        let pem_err = |e: jsonwebtoken::errors::Error| KeyError::Pem(e.to_string());
        let (key, alg) = if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            (key, Algorithm::EdDSA)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            let alg = match key.try_get_as_bytes().map(<[u8]>::len) {
                Ok(97) => Algorithm::ES384,
                _ => Algorithm::ES256,
            };
            (key, alg)
        } else {
            (
                DecodingKey::from_rsa_pem(pem).map_err(pem_err)?,
                Algorithm::RS256,
            )
        };
        let jwk = Jwk::from_decoding_key(&key, Some(alg)).map_err(pem_err)?;
        let kid = thumbprint(&jwk)?;
        VerifyingKey::from_jwk(&public_jwk(jwk, &kid, alg))
    }

    /// A public JWK. The algorithm is the JWK's `alg`, or, when absent, the one
    /// its key type implies (RSA -> RS256, P-256 -> ES256, P-384 -> ES384,
    /// Ed25519 -> EdDSA). Symmetric (`oct`) JWKs are refused: a published key set
    /// must not hold secrets.
    pub fn from_jwk(jwk: &Jwk) -> Result<VerifyingKey, KeyError> {
        install_crypto_provider();
        let bad = |why: String| KeyError::Jwks(why);
        let implied = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                ref other => return Err(bad(format!("unsupported curve {other:?}"))),
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            AlgorithmParameters::OctetKeyPair(p) => {
                return Err(bad(format!("unsupported curve {:?}", p.curve)));
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(bad("symmetric keys are not accepted from a JWKS".into()));
            }
            _ => return Err(bad("unsupported key type".into())),
        };
        let alg = match jwk.common.key_algorithm {
            None => implied,
            Some(ka) => {
                // KeyAlgorithm's names are the JOSE names; encryption ones do not parse.
                let alg = Algorithm::from_str(&format!("{ka:?}"))
                    .map_err(|_| bad(format!("unsupported alg {ka:?}")))?;
                let fits = alg.family() == implied.family()
                    && (implied.family() != AlgorithmFamily::Ec || alg == implied);
                if !fits {
                    return Err(bad(format!("alg {alg:?} does not fit the key type")));
                }
                alg
            }
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return Err(bad("key is not for signatures".into()));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(e.to_string()))?;
        Ok(VerifyingKey {
            key,
            alg,
            kid: jwk.common.key_id.clone(),
            hmac: None,
        })
    }

    /// The one algorithm this key accepts.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// The keys a validator trusts at one moment.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// A set of keys.
    pub fn new(keys: Vec<VerifyingKey>) -> KeySet {
        KeySet { keys }
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token header. With a `kid`, the key with that id (a key
    /// without an id in a one-key set also answers, so a configured secret
    /// accepts tokens from peers that set a `kid` we do not know); without one,
    /// the first key of the header's algorithm.
    pub(crate) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .or_else(|| match self.keys.as_slice() {
                    [only] if only.kid.is_none() => Some(only),
                    _ => None,
                }),
            None => self.keys.iter().find(|k| k.alg == alg),
        }
    }

    /// Whether two sets hold the same keys (by id and algorithm and material).
    pub(crate) fn same_as(&self, other: &KeySet) -> bool {
        self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.kid == b.kid && a.alg == b.alg && same_material(&a.key, &b.key))
    }
}

fn same_material(a: &DecodingKey, b: &DecodingKey) -> bool {
    use jsonwebtoken::DecodingKeyKind as K;
    match (a.kind(), b.kind()) {
        (K::SecretOrDer(x), K::SecretOrDer(y)) => x == y,
        (K::RsaModulusExponent { n: n1, e: e1 }, K::RsaModulusExponent { n: n2, e: e2 }) => {
            n1 == n2 && e1 == e2
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod testdata {
    pub(crate) const RSA_PRIVATE: &str = include_str!("testdata/rsa_private.pem");
    pub(crate) const RSA_PUBLIC: &str = include_str!("testdata/rsa_public.pem");
    pub(crate) const RSA2_PRIVATE: &str = include_str!("testdata/rsa2_private.pem");
    pub(crate) const ED25519_PRIVATE: &str = include_str!("testdata/ed25519_private.pem");
    pub(crate) const ED25519_PUBLIC: &str = include_str!("testdata/ed25519_public.pem");
    pub(crate) const P256_PRIVATE: &str = include_str!("testdata/p256_private.pem");
    pub(crate) const P256_PUBLIC: &str = include_str!("testdata/p256_public.pem");
    pub(crate) const P384_PRIVATE: &str = include_str!("testdata/p384_private.pem");
    pub(crate) const P384_PUBLIC: &str = include_str!("testdata/p384_public.pem");
    pub(crate) const SECRET: &[u8] =
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
}

#[cfg(test)]
mod tests {
    use super::testdata::*;
    use super::*;

    #[test]
    fn guesses_the_algorithm_from_the_private_key() {
        for (pem, alg) in [
            (RSA_PRIVATE, Algorithm::RS256),
            (ED25519_PRIVATE, Algorithm::EdDSA),
            (P256_PRIVATE, Algorithm::ES256),
            (P384_PRIVATE, Algorithm::ES384),
        ] {
            let key = SigningKey::from_pem(pem).unwrap();
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.verifying_key().algorithm(), alg);
            // RFC 7638 SHA-256 thumbprint: 43 base64url characters.
            assert_eq!(key.kid().unwrap().len(), 43, "{alg:?}");
            let jwk = key.public_jwk().unwrap();
            assert_eq!(jwk.common.key_id.as_deref(), key.kid());
        }
    }

    #[test]
    fn public_pem_gets_the_same_kid_and_alg_as_its_private_key() {
        for (private, public) in [
            (RSA_PRIVATE, RSA_PUBLIC),
            (ED25519_PRIVATE, ED25519_PUBLIC),
            (P256_PRIVATE, P256_PUBLIC),
            (P384_PRIVATE, P384_PUBLIC),
        ] {
            let s = SigningKey::from_pem(private).unwrap();
            let v = VerifyingKey::from_pem(public).unwrap();
            assert_eq!(v.algorithm(), s.algorithm());
            assert_eq!(v.kid(), s.kid());
        }
    }

    #[test]
    fn refuses_bad_keys() {
        assert!(matches!(
            SigningKey::from_secret(b"short", Algorithm::HS512, None),
            Err(KeyError::SecretTooShort { len: 5, min: 16 })
        ));
        // Airflow's own generated secret (24 characters) is accepted.
        assert!(
            SigningKey::from_secret("q8hK1ODb2l0bW6o8ZQy0Ww==", Algorithm::HS512, None).is_ok()
        );
        assert!(matches!(
            SigningKey::from_secret(SECRET, Algorithm::RS256, None),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(
            SigningKey::from_pem("not a pem"),
            Err(KeyError::Pem(_))
        ));
        // A public key cannot sign.
        assert!(SigningKey::from_pem(RSA_PUBLIC).is_err());
        assert!(
            VerifyingKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }

    #[test]
    fn select_by_kid_then_by_alg() {
        let a = SigningKey::from_pem(RSA_PRIVATE).unwrap().verifying_key();
        let b = SigningKey::from_pem(ED25519_PRIVATE)
            .unwrap()
            .verifying_key();
        let set = KeySet::new(vec![a.clone(), b.clone()]);
        assert_eq!(
            set.select(b.kid(), Algorithm::RS256).unwrap().kid(),
            b.kid()
        );
        assert!(set.select(Some("nope"), Algorithm::RS256).is_none());
        assert_eq!(set.select(None, Algorithm::EdDSA).unwrap().kid(), b.kid());
        let secret = KeySet::new(vec![
            VerifyingKey::from_secret(SECRET, Algorithm::HS512, None).unwrap(),
        ]);
        assert!(secret.select(Some("whatever"), Algorithm::HS512).is_some());
        assert!(set.same_as(&set.clone()));
        assert!(!set.same_as(&KeySet::new(vec![a])));
    }
}
