//! Newtypes built once at the edge, so domain code never sees unchecked input.

use std::fmt;

use mongodb::bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, FieldError};

fn invalid(path: &str, message: &str) -> ApiError {
    ApiError::Validation(vec![FieldError {
        path: path.to_owned(),
        message: message.to_owned(),
    }])
}

/// A phone number in canonical form: an optional leading `+` and 7–15 digits.
///
/// Spaces, dashes, dots and parentheses are formatting and are dropped, so
/// `+1 (202) 555-0101` and `+12025550101` name one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Normalises `raw`; `path` names the field in the error.
    pub fn parse(raw: &str, path: &str) -> Result<Self, ApiError> {
        let trimmed = raw.trim();
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
                    return Err(invalid(
                        path,
                        "phone may contain only digits, a leading '+', spaces, dashes, dots and parentheses",
                    ));
                }
            }
        }
        let digits = canonical.len() - usize::from(plus);
        if !(7..=15).contains(&digits) {
            return Err(invalid(path, "phone must have 7 to 15 digits"));
        }
        Ok(Self(canonical))
    }

    /// The canonical string stored and indexed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
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
    /// composition rules, as NIST advises.
    pub fn parse(raw: String, path: &str) -> Result<Self, ApiError> {
        let normalised = Self::unchecked(raw);
        let n = normalised.0.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&n) {
            return Err(invalid(path, "password must be 8 to 128 characters"));
        }
        if crate::auth::common::is_common(&normalised.0) {
            return Err(invalid(path, "this password is too common; choose another"));
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

/// A person's name part: trimmed, 1–100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Maximum length in Unicode code points.
    pub const MAX_CHARS: usize = 100;

    /// Trims and checks length; `path` names the field in the error.
    pub fn parse(raw: &str, path: &str) -> Result<Self, ApiError> {
        let trimmed = raw.trim();
        let n = trimmed.chars().count();
        if n == 0 || n > Self::MAX_CHARS {
            return Err(invalid(path, "must be 1 to 100 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(invalid(path, "must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The stored string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's id: a MongoDB ObjectId, written `{"$oid": "<24 hex>"}` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub ObjectId);

impl UserId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(ObjectId::new())
    }

    /// Parses 24 hex digits.
    pub fn parse_hex(hex: &str) -> Option<Self> {
        ObjectId::parse_str(hex).ok().map(Self)
    }

    /// 24 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// The extended-JSON form clients send and receive.
    pub fn to_wire(&self) -> serde_json::Value {
        serde_json::json!({ "$oid": self.to_hex() })
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
        let a = Phone::parse("+1 (202) 555-0101", "/phone").map(|p| p.0);
        let b = Phone::parse("+12025550101", "/phone").map(|p| p.0);
        assert_eq!(a.ok(), Some("+12025550101".to_owned()));
        assert_eq!(b.ok(), Some("+12025550101".to_owned()));
    }

    #[test]
    fn seed_phone_is_accepted_unchanged() {
        assert_eq!(
            Phone::parse("1234567890", "/phone").map(|p| p.0).ok(),
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
            assert!(Phone::parse(bad, "/phone").is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn password_length_counts_code_points_not_bytes() {
        assert!(Password::parse("ééééééé".into(), "/password").is_err());
        assert!(Password::parse("éééééééé".into(), "/password").is_ok());
        assert!(Password::parse("x".repeat(129), "/password").is_err());
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
            assert!(
                Password::parse(pw.into(), "/password").is_err(),
                "{pw} accepted"
            );
        }
        assert!(Password::parse("correct horse battery staple".into(), "/password").is_ok());
    }

    #[test]
    fn passwords_are_nfkc_normalised_before_counting_and_hashing() {
        // U+FB01 (the "fi" ligature) is one code point that NFKC turns into two.
        let lig = Password::unchecked("\u{FB01}ne-print-pw".into());
        let plain = Password::unchecked("fine-print-pw".into());
        assert_eq!(lig.expose(), plain.expose());
        // Seven code points, eight after NFKC: accepted.
        assert!(Password::parse("\u{FB01}zzwxyq".into(), "/p").is_ok());
    }

    #[test]
    fn password_debug_never_shows_the_secret() {
        let p = Password::parse("hunter2-hunter2-x".into(), "/p").ok();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("  Ann ", "/n").ok().map(|n| n.0),
            Some("Ann".to_owned())
        );
        assert!(Name::parse("   ", "/n").is_err());
        assert!(Name::parse(&"a".repeat(101), "/n").is_err());
    }
}
