//! TOTP (RFC 6238): HMAC-SHA1 over 30-second steps, six digits, the step before and after
//! accepted for clock drift. A seed is 160 random bits (RFC 4226's recommendation), shown
//! once in base32 inside an `otpauth://` URI and stored sealed (`auth::seal`), never in
//! clear. A code is spent with the step it matched: the account remembers the last step
//! used, and only a later step is accepted, so a code observed on the way in (or entered
//! twice) is refused for the rest of its window.

use ring::hmac;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits in a code.
pub const DIGITS: usize = 6;
/// Random bytes in a seed.
pub const SEED_BYTES: usize = 20;
/// Steps either side of now accepted.
const DRIFT_STEPS: i64 = 1;

/// The code of `seed` at step `step` (RFC 4226 dynamic truncation).
pub fn code_at(seed: &[u8], step: i64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
    let counter = u64::try_from(step).unwrap_or_default().to_be_bytes();
    let mac = hmac::sign(&key, &counter);
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    bin % 10u32.pow(DIGITS as u32)
}

/// The step of time `now`.
pub fn step_of(now: i64) -> i64 {
    now.div_euclid(STEP_SECS)
}

/// A code as typed: six digits, spaces ignored (authenticator apps show `123 456`).
pub fn parse_code(raw: &str) -> Option<u32> {
    let digits: String = raw.chars().filter(|c| *c != ' ').collect();
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The step within the drift window at `now` whose code is `code` and which is later than
/// `last_used` (a step already spent, and every earlier one, never matches again). Every
/// candidate is compared, in constant time, whether or not one matched.
pub fn matching_step(seed: &[u8], code: u32, now: i64, last_used: Option<i64>) -> Option<i64> {
    let now = step_of(now);
    let mut found = None;
    for step in now - DRIFT_STEPS..=now + DRIFT_STEPS {
        let same = (code_at(seed, step) ^ code) == 0;
        let fresh = last_used.is_none_or(|l| step > l);
        if same & fresh && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A fresh random seed.
pub fn new_seed() -> Result<[u8; SEED_BYTES], getrandom::Error> {
    let mut seed = [0u8; SEED_BYTES];
    getrandom::fill(&mut seed)?;
    Ok(seed)
}

/// RFC 4648 base32, unpadded: what authenticator apps take.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://totp/` URI an authenticator app scans (Google Authenticator's key-URI
/// format): `issuer:account` as the label, the secret, the issuer again, and the defaults
/// spelled out.
pub fn otpauth_uri(issuer: &str, account: &str, seed: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent(issuer),
        percent(account),
        base32(seed),
        percent(issuer)
    )
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 seed "12345678901234567890", eight-digit codes mod 10^6.
    #[test]
    fn codes_match_the_rfc_6238_vectors() {
        let seed = b"12345678901234567890";
        for (time, eight) in [
            (59, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(code_at(seed, step_of(time)), eight % 1_000_000, "t={time}");
        }
    }

    #[test]
    fn the_window_is_one_step_either_side_and_a_spent_step_never_matches_again() {
        let seed = b"12345678901234567890";
        let now = 1_234_567_890;
        let s = step_of(now);
        for (step, want) in [(s - 1, Some(s - 1)), (s, Some(s)), (s + 1, Some(s + 1))] {
            assert_eq!(matching_step(seed, code_at(seed, step), now, None), want);
        }
        for far in [s - 2, s + 2] {
            assert_eq!(matching_step(seed, code_at(seed, far), now, None), None);
        }
        assert_eq!(matching_step(seed, code_at(seed, s), now, Some(s)), None);
        assert_eq!(
            matching_step(seed, code_at(seed, s - 1), now, Some(s - 1)),
            None
        );
        assert_eq!(
            matching_step(seed, code_at(seed, s + 1), now, Some(s)),
            Some(s + 1)
        );
    }

    #[test]
    fn codes_parse_with_spaces_and_base32_and_uris_are_what_apps_read() {
        assert_eq!(parse_code("123 456"), Some(123_456));
        assert_eq!(parse_code("012345"), Some(12_345));
        for bad in ["12345", "1234567", "12a456", "", "١٢٣٤٥٦"] {
            assert_eq!(parse_code(bad), None, "{bad}");
        }
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(
            otpauth_uri("Acme Co", "ann@example.com", b"12345678901234567890"),
            "otpauth://totp/Acme%20Co:ann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Co&algorithm=SHA1&digits=6&period=30"
        );
    }
}
