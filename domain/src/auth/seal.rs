//! Secrets the service must read back (a TOTP seed), sealed with AES-256-GCM under a key
//! derived from the key set in force: a database dump alone reads none of them. Each sealed
//! value names the key version that sealed it (its `kid`), so it still opens after a rotation
//! while that version is `previous` (or `next`); the flow that opens one seals it again under
//! the current key whenever it writes it back, and `user-admin reseal` does so for every
//! account before a second rotation retires the old key. The associated data binds a sealed
//! value to its account and credential: copied into another account, it does not open.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Sha256;

use crate::config::{KeySet, Secret};

/// Label of the key derivation, versioned.
const KEY_LABEL: &[u8] = b"user-api/seal-key/v1";
/// Prefix of a sealed value's text, versioned.
const PREFIX: &str = "seal1";

/// The sealing keys of a key set: the current version's first.
pub struct SealKeys(Vec<(String, LessSafeKey)>);

impl std::fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "SealKeys({kids:?})")
    }
}

fn derive(session: &Secret) -> LessSafeKey {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(session.expose()) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(KEY_LABEL);
    let key = mac.finalize().into_bytes();
    let Ok(unbound) = UnboundKey::new(&AES_256_GCM, &key) else {
        unreachable!("a SHA-256 output is an AES-256 key")
    };
    LessSafeKey::new(unbound)
}

impl SealKeys {
    /// The keys of `keys`: current, then previous and next.
    pub fn new(keys: &KeySet) -> Self {
        let versions = [
            Some(&keys.current),
            keys.previous.as_ref(),
            keys.next.as_ref(),
        ];
        Self(
            versions
                .into_iter()
                .flatten()
                .map(|v| (v.kid.clone(), derive(&v.session)))
                .collect(),
        )
    }

    /// `plain` sealed under the current key, bound to `context`.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<String, SealError> {
        let (kid, key) = self.0.first().ok_or(SealError)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError)?;
        let mut data = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut data,
        )
        .map_err(|_| SealError)?;
        Ok(format!(
            "{PREFIX}.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(kid),
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(data)
        ))
    }

    /// The plain bytes of `sealed` and whether they were sealed under the current key; an
    /// error when no key held opens it (a retired key, another context, a forgery).
    pub fn open(&self, sealed: &str, context: &str) -> Result<(Vec<u8>, bool), SealError> {
        let mut parts = sealed.split('.');
        let (Some(PREFIX), Some(kid), Some(nonce), Some(data), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SealError);
        };
        let kid = String::from_utf8(URL_SAFE_NO_PAD.decode(kid).map_err(|_| SealError)?)
            .map_err(|_| SealError)?;
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError)?;
        let mut data = URL_SAFE_NO_PAD.decode(data).map_err(|_| SealError)?;
        let at = self
            .0
            .iter()
            .position(|(k, _)| *k == kid)
            .ok_or(SealError)?;
        let plain = self.0[at]
            .1
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| SealError)?;
        Ok((plain.to_vec(), at == 0))
    }
}

/// A value could not be sealed or opened (the reason is not told: it would help a forger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed value could not be sealed or opened")]
pub struct SealError;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{JwtKey, KeyVersion};

    fn version(kid: &str, session: &str) -> KeyVersion {
        KeyVersion {
            kid: kid.into(),
            jwt: JwtKey::Hs256(Secret::new(b"j".repeat(32).as_slice())),
            session: Secret::new(session.as_bytes()),
        }
    }

    #[test]
    fn a_sealed_value_opens_in_its_context_and_after_one_rotation_only() {
        let one = KeySet {
            current: version("k1", &"a".repeat(32)),
            previous: None,
            next: None,
        };
        let sealed = SealKeys::new(&one).seal(b"seed", "user/totp").unwrap();
        assert!(!sealed.contains("seed"));
        assert_eq!(
            SealKeys::new(&one).open(&sealed, "user/totp").unwrap(),
            (b"seed".to_vec(), true)
        );
        assert_eq!(
            SealKeys::new(&one).open(&sealed, "other/totp"),
            Err(SealError)
        );
        let rotated = KeySet {
            current: version("k2", &"b".repeat(32)),
            previous: Some(one.current.clone()),
            next: None,
        };
        assert_eq!(
            SealKeys::new(&rotated).open(&sealed, "user/totp").unwrap(),
            (b"seed".to_vec(), false)
        );
        let twice = KeySet {
            current: version("k3", &"c".repeat(32)),
            previous: Some(rotated.current.clone()),
            next: None,
        };
        assert_eq!(
            SealKeys::new(&twice).open(&sealed, "user/totp"),
            Err(SealError)
        );
        let mut forged = sealed.clone();
        forged.replace_range(sealed.len() - 2.., "AA");
        assert_eq!(
            SealKeys::new(&one).open(&forged, "user/totp"),
            Err(SealError)
        );
    }
}
