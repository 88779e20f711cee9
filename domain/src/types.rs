//! Newtypes built once at the edge, so domain code never sees unchecked input.
//!
//! Parsers return [`Invalid`], a reason with no notion of where in a request the value came
//! from: the HTTP edge attaches the JSON pointer. The rules here are the same ones the JSON
//! Schemas in `edge/schemas/` state (a test fuzzes schema-valid bodies and checks that none is
//! refused here), except the password rules, which need NFKC and the common-password list and so
//! answer with their own error.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was refused. The message never contains the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// A phone number in canonical form: the one phone type, for an account's identifier, a code's
/// destination and an SMS. Two ways in:
/// - [`Phone::parse`], the legacy rule (while verification is off): an optional leading `+`
///   and 7–15 digits; spaces, dashes, dots and parentheses are formatting and are dropped, so
///   `+1 (202) 555-0101` and `+12025550101` name one account;
/// - `crate::phone::parse_e164` (verification on): valid for its country per libphonenumber,
///   in E.164, with its country calling code, which only such a phone carries: SMS guards and
///   senders need it ([`Phone::calling_code`]), so a phone read the legacy way can never be
///   sent to.
///
/// Equality, hashing and serialisation are by the canonical text alone.
#[derive(Debug, Clone)]
pub struct Phone {
    text: String,
    calling_code: Option<u16>,
}

impl PartialEq for Phone {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Phone {}

impl std::hash::Hash for Phone {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl Serialize for Phone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::stored)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Phone {
    /// Longest accepted input, formatting included.
    pub const MAX_CHARS: usize = 32;

    /// Normalises `raw`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(Invalid("phone must be at most 32 characters"));
        }
        let trimmed = raw.trim_start_matches(' ');
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut canonical = String::with_capacity(16);
        if plus {
            canonical.push('+');
        }
        for c in rest.chars() {
            match c {
                '0'..='9' => canonical.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(Invalid(
                        "phone may contain only digits, a leading '+', spaces, dashes, dots and parentheses",
                    ));
                }
            }
        }
        let digits = canonical.len() - usize::from(plus);
        if !(7..=15).contains(&digits) {
            return Err(Invalid("phone must have 7 to 15 digits"));
        }
        Ok(Self::stored(canonical))
    }

    /// A phone as stored by an earlier version or another service: taken as it is, so a
    /// document of an unexpected shape can still be read (and never produce a 500).
    pub fn stored(text: String) -> Self {
        Self {
            text,
            calling_code: None,
        }
    }

    /// An E.164 number and its country calling code, as `crate::phone` checked them.
    pub(crate) fn e164(text: String, calling_code: u16) -> Self {
        Self {
            text,
            calling_code: Some(calling_code),
        }
    }

    /// The canonical string stored and indexed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The country calling code (1 for NANP, 44 for the UK, ...) of a phone checked as E.164:
    /// what per-country limits and the allow-list are keyed on. `None` for a phone read the
    /// legacy way, which nothing may send to.
    pub fn calling_code(&self) -> Option<u16> {
        self.calling_code
    }
}

/// Why a new password was refused (NIST SP 800-63B rules, applied after NFKC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("password must be 8 to 128 characters")]
    Length,
    #[error("this password is too common; choose another")]
    Common,
}

/// A password, NFKC-normalised so one password typed on different keyboards is one password
/// (NIST SP 800-63B §5.1.1.2). Never logged: `Debug` is redacted.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Minimum length in Unicode code points, after normalisation.
    pub const MIN_CHARS: usize = 8;
    /// Maximum length in Unicode code points, after normalisation. Nothing is truncated.
    pub const MAX_CHARS: usize = 128;

    /// A new password: 8–128 code points after NFKC and not a commonly used password. No
    /// composition rules, as NIST advises. This is the one place the rule lives.
    pub fn new(raw: String) -> Result<Self, WeakPassword> {
        let normalised = Self::unchecked(raw);
        let n = normalised.0.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&n) {
            return Err(WeakPassword::Length);
        }
        if crate::auth::common::is_common(&normalised.0) {
            return Err(WeakPassword::Common);
        }
        Ok(normalised)
    }

    /// Normalises without the rules: login checks any guess against the stored hash.
    pub fn unchecked(raw: String) -> Self {
        use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};
        match is_nfkc_quick(raw.chars()) {
            IsNormalized::Yes => Self(raw),
            _ => Self(raw.nfkc().collect()),
        }
    }

    /// The raw bytes handed to the password hasher.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// True for characters that must never appear in a name: controls (Cc) and format characters
/// (Cf, which include the bidi overrides U+202A–U+202E and U+2066–U+2069, zero-width spaces
/// and joiners, and the BOM). The same set as the schemas' name pattern spells out with
/// `\uXXXX` escapes (Unicode 15.1's Cc and Cf ranges; a portable dialect with no `\p{..}`).
pub fn is_hidden_char(c: char) -> bool {
    const CF: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let u = c as u32;
    c.is_control() || CF.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
}

/// A person's name part: at most 100 characters as sent, trimmed, not blank, with no control,
/// format or bidi-override characters (which let a name display as something it is not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

/// True for characters that render as nothing visible on their own: White_Space, and the
/// fillers and invisible marks (Hangul fillers U+115F, U+1160, U+3164, U+FFA0, the braille
/// blank U+2800, the combining grapheme joiner, Khmer inherent vowels, variation selectors).
/// A name made only of these (and nothing else) is blank; the schemas' name pattern names
/// the same set.
pub fn is_blank_char(c: char) -> bool {
    const FILLERS: &[(u32, u32)] = &[
        (0x034F, 0x034F),
        (0x115F, 0x1160),
        (0x17B4, 0x17B5),
        (0x2800, 0x2800),
        (0x3164, 0x3164),
        (0xFE00, 0xFE0F),
        (0xFFA0, 0xFFA0),
        (0xE0100, 0xE01EF),
    ];
    let u = c as u32;
    c.is_whitespace() || FILLERS.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
}

impl Name {
    /// Maximum length in Unicode code points, counted before trimming (as the schema counts).
    pub const MAX_CHARS: usize = 100;

    /// Checks, trims (spaces and fillers at either end) and normalises to NFC, so one name
    /// typed as precomposed or combining characters is stored one way.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        use unicode_normalization::UnicodeNormalization;
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(Invalid("must be at most 100 characters"));
        }
        if raw.chars().any(is_hidden_char) {
            return Err(Invalid(
                "must not contain control, format or bidi-override characters",
            ));
        }
        let trimmed = raw.trim_matches(is_blank_char);
        if trimmed.is_empty() {
            return Err(Invalid(
                "must not be blank (only spaces or filler characters)",
            ));
        }
        Ok(Self(trimmed.nfc().collect()))
    }

    /// An optional name part: `None` for absent, empty or blank (spaces or fillers only).
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, Invalid> {
        match raw {
            Some(s) if s.chars().any(is_hidden_char) => Err(Invalid(
                "must not contain control, format or bidi-override characters",
            )),
            Some(s) if !s.chars().all(is_blank_char) => Self::parse(s).map(Some),
            _ => Ok(None),
        }
    }

    /// A name as stored by an earlier version or another service, taken as it is.
    pub fn stored(s: String) -> Self {
        Self(s)
    }

    /// The stored string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's id: 12 bytes, written as 24 hex digits (`{"$oid": "<24 hex>"}` on the wire, an
/// ObjectId in MongoDB). The domain does not know the database's id type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId([u8; 12]);

impl UserId {
    /// A fresh id: 4 bytes of seconds (as an ObjectId, so ids sort by creation) and 8 random.
    pub fn new() -> Self {
        let mut b = [0u8; 12];
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or_default();
        b[..4].copy_from_slice(&secs.to_be_bytes());
        if getrandom::fill(&mut b[4..]).is_err() {
            // Uniqueness is still guarded by the database's `_id` index.
            b[4..].copy_from_slice(&std::process::id().to_be_bytes().repeat(2));
        }
        Self(b)
    }

    /// From the 12 raw bytes.
    pub fn from_bytes(b: [u8; 12]) -> Self {
        Self(b)
    }

    /// The 12 raw bytes.
    pub fn bytes(&self) -> [u8; 12] {
        self.0
    }

    /// Parses 24 hex digits (either case).
    pub fn parse_hex(hex: &str) -> Option<Self> {
        let h = hex.as_bytes();
        if h.len() != 24 || !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut b = [0u8; 12];
        for (i, pair) in h.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            b[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Self(b))
    }

    /// 24 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_and_plain_phones_normalise_to_one_form() {
        let a = Phone::parse("+1 (202) 555-0101").map(|p| p.as_str().to_owned());
        let b = Phone::parse("+12025550101").map(|p| p.as_str().to_owned());
        assert_eq!(a.ok(), Some("+12025550101".to_owned()));
        assert_eq!(b.ok(), Some("+12025550101".to_owned()));
    }

    #[test]
    fn a_legacy_phone_has_no_country_and_equals_its_e164_reading() {
        let legacy = Phone::parse("+1 (202) 555-0101").unwrap_or_else(|e| panic!("{e}"));
        let strict =
            crate::phone::parse_e164("+1 (202) 555-0101", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(legacy.calling_code(), None);
        assert_eq!(strict.calling_code(), Some(1));
        assert_eq!(legacy, strict, "one account, however the phone was read");
    }

    #[test]
    fn seed_phone_is_accepted_unchanged() {
        assert_eq!(
            Phone::parse("1234567890")
                .map(|p| p.as_str().to_owned())
                .ok(),
            Some("1234567890".to_owned())
        );
    }

    #[test]
    fn phone_with_too_few_or_too_many_digits_or_letters_is_rejected() {
        for bad in [
            "123456",
            "1234567890123456",
            "12345abc90",
            "++1234567",
            "+",
            "",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn password_length_counts_code_points_not_bytes() {
        assert_eq!(
            Password::new("ééééééé".into()).err(),
            Some(WeakPassword::Length)
        );
        assert!(Password::new("éééééééé".into()).is_ok());
        assert!(Password::new("x".repeat(129)).is_err());
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        for pw in [
            "password",
            "Password1",
            "qwertyuiop",
            "iloveyou",
            "PASSWORD123",
        ] {
            assert_eq!(
                Password::new(pw.into()).err(),
                Some(WeakPassword::Common),
                "{pw} accepted"
            );
        }
        assert!(Password::new("correct horse battery staple".into()).is_ok());
    }

    #[test]
    fn passwords_are_nfkc_normalised_before_counting_and_hashing() {
        // U+FB01 (the "fi" ligature) is one code point that NFKC turns into two.
        let lig = Password::unchecked("\u{FB01}ne-print-pw".into());
        let plain = Password::unchecked("fine-print-pw".into());
        assert_eq!(lig.expose(), plain.expose());
        // Seven code points, eight after NFKC: accepted.
        assert!(Password::new("\u{FB01}zzwxyq".into()).is_ok());
    }

    #[test]
    fn password_debug_never_shows_the_secret() {
        let p = Password::new("hunter2-hunter2-x".into()).ok();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("  Ann ").ok().map(|n| n.0),
            Some("Ann".to_owned())
        );
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"a".repeat(101)).is_err());
        assert!(Name::parse(&"a".repeat(100)).is_ok());
    }

    #[test]
    fn names_that_render_blank_are_refused_and_names_are_stored_in_nfc() {
        for blank in [
            "\u{3164}",
            "\u{115F}\u{1160}",
            " \u{FFA0} ",
            "\u{2800}",
            "\u{3000}",
        ] {
            assert!(Name::parse(blank).is_err(), "{blank:?} accepted");
            assert_eq!(Name::parse_optional(Some(blank)), Ok(None), "{blank:?}");
        }
        let stored = |s: &str| Name::parse(s).map(|n| n.0).unwrap_or_default();
        assert_eq!(stored("Jose\u{0301}"), "Jos\u{00E9}");
        assert_eq!(stored("\u{3164}Ann\u{3164}"), "Ann");
        // NFC keeps compatibility forms (a ligature is a different character, not a
        // different encoding of one).
        assert_eq!(stored("\u{FB01}on"), "\u{FB01}on");
        assert_eq!(stored("\u{1100}\u{1161}"), "\u{AC00}");
    }

    #[test]
    fn names_with_invisible_or_bidi_control_characters_are_refused() {
        for bad in [
            "Ann\u{202E}gnp.exe",
            "An\u{200B}n",
            "\u{2066}Ann",
            "Ann\u{0007}",
            "\u{FEFF}Ann",
            "A\u{00AD}nn",
            "Ann\u{E0041}",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Name::parse("José Ñúñez-O'Brien").is_ok());
        assert!(Name::parse("李小龍").is_ok());
    }

    #[test]
    fn user_ids_round_trip_through_hex() {
        let id = UserId::new();
        assert_eq!(UserId::parse_hex(&id.to_hex()), Some(id));
        assert_eq!(
            UserId::parse_hex("0123456789ABCDEF01234567").map(|i| i.to_hex()),
            Some("0123456789abcdef01234567".to_owned())
        );
        for bad in [
            "",
            "0123",
            "0123456789abcdef0123456g",
            "+123456789abcdef01234567",
        ] {
            assert_eq!(UserId::parse_hex(bad), None, "{bad}");
        }
    }
}
