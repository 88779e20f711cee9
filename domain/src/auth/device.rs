//! Device tokens: the lockout that spares the owner (OWASP's "device cookie" pattern).
//!
//! Why: a per-phone lockout lets anyone who knows a user's phone keep that user locked out
//! with a few wrong passwords an hour. A successful login hands the client a device token
//! (signed, bound to the phone it logged in with, expiring); a login that presents a valid
//! one counts its failures against that device's own budget, and every other login against
//! the phone's "unknown devices" budget. An attacker's guesses then lock unknown devices only;
//! the owner's known device keeps its own small budget and logs in.
//!
//! Format: `d1.<payload>.<mac>`, base64url without padding. The payload is a random 16-byte
//! device id and the expiry (Unix seconds, 8 bytes big-endian); the MAC (HMAC-SHA256 under
//! the session key, truncated to 16 bytes) covers the phone and the payload, so a token taken
//! from one account is worth nothing against another phone.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::token::TokenKeys;

const PREFIX: &str = "d1.";
/// Bytes of the MAC kept: 128 bits.
const TAG_LEN: usize = 16;
/// Longest token a login body may carry (the schema's `maxLength` is the same).
pub const MAX_LEN: usize = 128;

/// A device's id, as carried in its token: counters are keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceId([u8; 16]);

impl DeviceId {
    /// A fresh random id.
    pub fn new() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b)?;
        Ok(Self(b))
    }

    /// The id as hex (counter keys).
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// An id written by [`DeviceId::to_hex`].
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(b))
    }
}

fn message(phone: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(phone.len() + 1 + payload.len());
    m.extend_from_slice(phone.as_bytes());
    m.push(0);
    m.extend_from_slice(payload);
    m
}

/// A token for `device` on `phone`, valid until `expires_at`.
pub fn issue(keys: &TokenKeys, phone: &str, device: DeviceId, expires_at: i64) -> String {
    let mut payload = [0u8; 24];
    payload[..16].copy_from_slice(&device.0);
    payload[16..].copy_from_slice(&expires_at.to_be_bytes());
    let tag = keys.device_mac(&message(phone, &payload));
    format!(
        "{PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
    )
}

/// The device a token names, if the token is well formed, was issued for `phone` under a
/// key in force, and has not expired at `now`; `None` for anything else (an unknown device).
pub fn verify(keys: &TokenKeys, phone: &str, token: &str, now: i64) -> Option<DeviceId> {
    if token.len() > MAX_LEN {
        return None;
    }
    let (payload, tag) = token.strip_prefix(PREFIX)?.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if payload.len() != 24 || tag.len() != TAG_LEN {
        return None;
    }
    if !keys.device_mac_matches(&message(phone, &payload), &tag) {
        return None;
    }
    let mut expires = [0u8; 8];
    expires.copy_from_slice(&payload[16..]);
    if i64::from_be_bytes(expires) <= now {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&payload[..16]);
    Some(DeviceId(id))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{JwtKey, KeySet, KeyVersion, Secret};

    fn keys(session: &str, previous: Option<&str>) -> TokenKeys {
        let version = |kid: &str, key: &str| KeyVersion {
            kid: kid.to_owned(),
            jwt: JwtKey::Hs256(Secret::new(key.as_bytes())),
            session: Secret::new(key.as_bytes()),
        };
        let set = KeySet {
            current: version("now", session),
            previous: previous.map(|p| version("before", p)),
            next: None,
        };
        TokenKeys::new(&set, "aud", Duration::from_secs(900))
    }

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";
    const PHONE: &str = "+12025550101";

    #[test]
    fn a_token_names_its_device_for_its_phone_until_it_expires() {
        let k = keys(A, None);
        let d = DeviceId::new().unwrap_or_else(|e| panic!("{e}"));
        let t = issue(&k, PHONE, d, 1_000);
        assert!(t.len() <= MAX_LEN && t.starts_with("d1."));
        assert_eq!(verify(&k, PHONE, &t, 999), Some(d));
        assert_eq!(verify(&k, PHONE, &t, 1_000), None, "expired");
        assert_eq!(verify(&k, "+12025550102", &t, 0), None, "another phone");
    }

    #[test]
    fn tampered_foreign_and_malformed_tokens_are_unknown_devices() {
        let k = keys(A, None);
        let d = DeviceId::new().unwrap_or_else(|e| panic!("{e}"));
        let t = issue(&k, PHONE, d, 1_000);
        assert_eq!(verify(&keys(B, None), PHONE, &t, 0), None, "other key");
        // Signed before a rotation: still known while the old key is the previous one.
        assert_eq!(verify(&keys(B, Some(A)), PHONE, &t, 0), Some(d));
        let mut flipped = t.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        let short_tag = &t[..t.len() - 2];
        for bad in [
            "",
            "d1.",
            "d1..",
            "x1.AAAA.BBBB",
            flipped.as_str(),
            short_tag,
            &format!("{t}AA"),
            &"d1.".repeat(60),
        ] {
            assert_eq!(verify(&k, PHONE, bad, 0), None, "{bad:?}");
        }
    }
}
