//! One-time codes sent by SMS: six digits drawn from the OS RNG, and only a keyed hash of
//! them is ever stored.
//!
//! Why a keyed hash: a million codes are brute-forced in milliseconds from a plain SHA-256, so
//! a database dump must not be enough to read codes back; HMAC-SHA256 under a server key is.
//! The phone and the purpose are part of the MAC input, so a code issued to verify a signup
//! never verifies a password recovery, nor the same purpose for another phone, even if a flow
//! looked up the wrong record. Comparison is constant-time (`hmac`'s `verify_slice`).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// 10^CODE_DIGITS: the number of distinct codes.
const CODE_SPACE: u32 = 1_000_000;

/// Largest multiple of [`CODE_SPACE`] that fits in a `u32`: draws at or above it are rejected,
/// so every code is exactly equally likely (no modulo bias).
const ACCEPT_BELOW: u32 = (u32::MAX / CODE_SPACE) * CODE_SPACE;

/// Domain label of the MAC input, versioned so a future format never collides with this one.
const MAC_LABEL: &[u8] = b"user-api/otp/v1";

/// Label for deriving the code key from another server key.
const KEY_LABEL: &[u8] = b"user-api/otp-key/v1";

/// Why a code could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OtpError {
    #[error("the operating system's random number generator failed")]
    Rng,
    #[error("the one-time-code key is shorter than {min} bytes")]
    ShortKey { min: usize },
}

/// What a code is for. Part of the MAC input: a code for one purpose never verifies another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Proving the phone given at signup.
    Signup,
    /// Proving a new phone before it replaces the old one.
    PhoneChange,
    /// Proving possession of the phone or address to reset a forgotten password.
    PasswordRecovery,
    /// Proving a new email address before it replaces the old one.
    EmailChange,
}

impl Purpose {
    /// The stable name used in the MAC input and in stored records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::PhoneChange => "phone-change",
            Self::PasswordRecovery => "password-recovery",
            Self::EmailChange => "email-change",
        }
    }

    /// The purpose stored as `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Signup,
            Self::PhoneChange,
            Self::PasswordRecovery,
            Self::EmailChange,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

/// A code in clear: exists only between generation and the SMS. `Debug` is redacted so it
/// cannot reach a log by accident; [`Code::expose`] is for the message text only.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    /// The six digits, for the SMS text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A fixed code (test numbers, whose code is configured rather than drawn). `None` unless
    /// `digits` is exactly six ASCII digits.
    pub fn fixed(digits: &str) -> Option<Self> {
        is_code_shaped(digits).then(|| Self(digits.to_owned()))
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

/// The stored form of a code: HMAC-SHA256 over label, purpose, phone and code.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeHash([u8; 32]);

impl CodeHash {
    /// The 32 bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A stored hash read back; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash(<redacted>)")
    }
}

/// Draws a code: 32 random bits from the OS, redrawn while they fall in the biased tail.
pub fn generate() -> Result<Code, OtpError> {
    generate_with(|buf| getrandom::fill(buf).map_err(|_| OtpError::Rng))
}

/// [`generate`] over any byte source (tests drive the rejection path with it).
fn generate_with(
    mut fill: impl FnMut(&mut [u8; 4]) -> Result<(), OtpError>,
) -> Result<Code, OtpError> {
    loop {
        let mut buf = [0u8; 4];
        fill(&mut buf)?;
        let n = u32::from_le_bytes(buf);
        // Rejection probability is 4.6e-4 per draw; the loop ends almost surely at once.
        if n < ACCEPT_BELOW {
            return Ok(Code(format!(
                "{:0width$}",
                n % CODE_SPACE,
                width = CODE_DIGITS
            )));
        }
    }
}

fn is_code_shaped(s: &str) -> bool {
    s.len() == CODE_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

/// Hashes and verifies codes under one server key.
#[derive(Clone)]
pub struct CodeHasher {
    key: Secret,
}

impl fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHasher(<redacted>)")
    }
}

impl CodeHasher {
    /// A hasher under `key` (at least [`crate::config::MIN_KEY_BYTES`]).
    pub fn new(key: Secret) -> Result<Self, OtpError> {
        let min = crate::config::MIN_KEY_BYTES;
        if key.expose().len() < min {
            return Err(OtpError::ShortKey { min });
        }
        Ok(Self { key })
    }

    /// A hasher whose key is HMAC-SHA256(`server_key`, label): independent of the key it is
    /// derived from, so no extra secret has to be provisioned and rotated.
    pub fn derived_from(server_key: &Secret) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(server_key.expose())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(KEY_LABEL);
        Self {
            key: Secret::new(mac.finalize().into_bytes().to_vec()),
        }
    }

    fn mac(&self, destination: &str, purpose: Purpose, code: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        // Each field is length-prefixed, so no two (purpose, phone, code) triples share an input.
        for field in [
            MAC_LABEL,
            purpose.as_str().as_bytes(),
            destination.as_bytes(),
            code.as_bytes(),
        ] {
            mac.update(&(field.len() as u32).to_be_bytes());
            mac.update(field);
        }
        mac
    }

    /// The value to store for `code`, sent to `destination` (a phone's number or an email
    /// address) for `purpose`.
    pub fn hash(&self, destination: &str, purpose: Purpose, code: &Code) -> CodeHash {
        CodeHash(
            self.mac(destination, purpose, code.expose())
                .finalize()
                .into_bytes()
                .into(),
        )
    }

    /// Whether `candidate` (as typed; surrounding whitespace ignored) is the code stored as
    /// `stored` for this phone and purpose. The MAC comparison is constant-time; only the
    /// shape check (six digits) returns early, and it depends on the input alone.
    pub fn verify(
        &self,
        destination: &str,
        purpose: Purpose,
        candidate: &str,
        stored: &CodeHash,
    ) -> bool {
        let candidate = candidate.trim();
        if !is_code_shaped(candidate) {
            return false;
        }
        self.mac(destination, purpose, candidate)
            .verify_slice(stored.as_bytes())
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::phone::parse_e164;

    fn phone(s: &str) -> String {
        parse_e164(s, None)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .as_str()
            .to_owned()
    }

    fn hasher() -> CodeHasher {
        CodeHasher::new(Secret::new(*b"otp-test-key-0123456789abcdef0123"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn codes_are_six_ascii_digits_and_vary() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let c = generate().unwrap_or_else(|e| panic!("{e}"));
            assert!(is_code_shaped(c.expose()), "{}", c.expose());
            seen.insert(c.expose().to_owned());
        }
        // 200 draws from a million: a repeat is likely at most once or twice.
        assert!(seen.len() >= 195, "only {} distinct codes", seen.len());
    }

    #[test]
    fn leading_zeros_are_kept() {
        let c = generate_with(|b| {
            *b = 42u32.to_le_bytes();
            Ok(())
        });
        assert_eq!(c.map(|c| c.expose().to_owned()), Ok("000042".to_owned()));
    }

    #[test]
    fn draws_in_the_biased_tail_are_rejected_and_redrawn() {
        // First draws: u32::MAX and ACCEPT_BELOW (both in the tail, which would map to low codes
        // and bias them), then ACCEPT_BELOW - 1, the largest accepted value.
        let draws = [u32::MAX, ACCEPT_BELOW, ACCEPT_BELOW - 1];
        let mut i = 0;
        let c = generate_with(|b| {
            *b = draws[i].to_le_bytes();
            i += 1;
            Ok(())
        });
        assert_eq!(i, 3, "both tail draws were redrawn");
        assert_eq!(c.map(|c| c.expose().to_owned()), Ok("999999".to_owned()));
        const { assert!(ACCEPT_BELOW.is_multiple_of(CODE_SPACE)) };
        const { assert!(u32::MAX - ACCEPT_BELOW < CODE_SPACE) };
    }

    #[test]
    fn rng_failure_is_an_error_not_a_weak_code() {
        assert_eq!(generate_with(|_| Err(OtpError::Rng)), Err(OtpError::Rng));
    }

    #[test]
    fn first_digit_is_roughly_uniform() {
        // A coarse bias check: 20 000 codes, each leading digit expected 2 000 times; a
        // deviation beyond 300 (about 7 sigma) would mean a broken draw.
        let mut counts = [0u32; 10];
        for _ in 0..20_000 {
            let c = generate().unwrap_or_else(|e| panic!("{e}"));
            counts[usize::from(c.expose().as_bytes()[0] - b'0')] += 1;
        }
        for (d, n) in counts.iter().enumerate() {
            assert!((1700..=2300).contains(n), "digit {d}: {n} of 20000");
        }
    }

    #[test]
    fn a_code_verifies_for_its_own_phone_and_purpose_only() {
        let h = hasher();
        let a = phone("+12025550101");
        let b = phone("+12025550102");
        let code = Code::fixed("123456").unwrap_or_else(|| unreachable!());
        let stored = h.hash(&a, Purpose::Signup, &code);
        assert!(h.verify(&a, Purpose::Signup, "123456", &stored));
        assert!(h.verify(&a, Purpose::Signup, " 123456\n", &stored));
        assert!(!h.verify(&a, Purpose::Signup, "123457", &stored));
        assert!(
            !h.verify(&b, Purpose::Signup, "123456", &stored),
            "other phone"
        );
        for other in [Purpose::PhoneChange, Purpose::PasswordRecovery] {
            assert!(!h.verify(&a, other, "123456", &stored), "{other:?}");
        }
    }

    #[test]
    fn another_key_or_a_malformed_candidate_never_verifies() {
        let a = phone("+12025550101");
        let code = Code::fixed("000000").unwrap_or_else(|| unreachable!());
        let stored = hasher().hash(&a, Purpose::Signup, &code);
        let other = CodeHasher::new(Secret::new(*b"another-key-0123456789abcdef01234"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!other.verify(&a, Purpose::Signup, "000000", &stored));
        for bad in [
            "",
            "00000",
            "0000000",
            "00000a",
            "０００００",
            "-00000",
            "00 000",
        ] {
            assert!(
                !hasher().verify(&a, Purpose::Signup, bad, &stored),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_stored_hash_is_not_the_code_and_round_trips() {
        let a = phone("+12025550101");
        let code = Code::fixed("654321").unwrap_or_else(|| unreachable!());
        let stored = hasher().hash(&a, Purpose::PhoneChange, &code);
        assert_ne!(&stored.as_bytes()[..6], b"654321");
        let back = CodeHash::from_slice(stored.as_bytes());
        assert_eq!(back.as_ref(), Some(&stored));
        assert!(CodeHash::from_slice(&[0u8; 31]).is_none());
        assert!(!format!("{code:?}{stored:?}{:?}", hasher()).contains("654321"));
    }

    #[test]
    fn short_keys_are_refused_and_derived_keys_differ_from_their_source() {
        assert_eq!(
            CodeHasher::new(Secret::new(*b"short")).err(),
            Some(OtpError::ShortKey { min: 32 })
        );
        let master = Secret::new(*b"otp-test-key-0123456789abcdef0123");
        let derived = CodeHasher::derived_from(&master);
        assert_ne!(derived.key, master);
        let a = phone("+12025550101");
        let code = Code::fixed("111111").unwrap_or_else(|| unreachable!());
        let stored = derived.hash(&a, Purpose::Signup, &code);
        assert!(CodeHasher::derived_from(&master).verify(&a, Purpose::Signup, "111111", &stored));
        assert!(!hasher().verify(&a, Purpose::Signup, "111111", &stored));
    }

    #[test]
    fn fixed_codes_must_be_six_digits() {
        assert!(Code::fixed("123456").is_some());
        for bad in ["12345", "1234567", "12345a", ""] {
            assert!(Code::fixed(bad).is_none(), "{bad}");
        }
    }
}
