//! Phone numbers for verification: E.164 parsing and validation with the `phonenumber` crate
//! (Google's libphonenumber metadata), and the lenient legacy rule used while verification is
//! off.
//!
//! Why two modes: a code is only worth sending to a number that can receive it, so when SMS
//! verification is on a phone must be a valid number for its country, stored in one E.164 form
//! (`+12025550101`), and national input is read in a default region. Accounts created before
//! that (the seed's `1234567890` is not a valid number anywhere) must keep working while
//! verification is off, so the legacy rule stays as it was: an optional `+`, formatting
//! characters dropped, 7 to 15 digits.
//!
//! Both modes accept the same characters only (digits, a leading `+`, spaces, dashes, dots,
//! parentheses): libphonenumber would also read vanity letters (`1-800-FLOWERS`), extensions
//! and `tel:` URIs, none of which can receive a code.

use std::{collections::BTreeSet, str::FromStr};

use phonenumber::{Mode, country};

use crate::types::Phone;

/// Region for numbers typed without a country code, unless configured otherwise.
pub const DEFAULT_REGION: &str = "US";

/// Longest raw input looked at; anything longer is refused before parsing.
const MAX_RAW_CHARS: usize = 40;

/// Why a phone number was refused. Messages are fit for an API client and never repeat the
/// input.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone is empty")]
    Empty,
    #[error("phone is too long")]
    TooLong,
    #[error("phone may contain only digits, a leading '+', spaces, dashes, dots and parentheses")]
    BadCharacters,
    #[error("phone must have 7 to 15 digits")]
    DigitCount,
    #[error("phone has no country code: start it with '+' and the country code")]
    NoCountryCode,
    #[error("phone's country code does not exist")]
    UnknownCountryCode,
    #[error("phone is not a valid number for its country")]
    Invalid,
    #[error("phone's country is not served")]
    CountryNotAllowed,
    /// A configuration error rather than bad input: the default region is not an ISO 3166
    /// alpha-2 code libphonenumber knows.
    #[error("the default phone region is not a known ISO 3166 alpha-2 code")]
    UnknownRegion,
}

/// An E.164-shaped number that libphonenumber does not hold valid, such as the reserved
/// `+1 555 555 01xx` range: only for configured test numbers, which are never sent to.
/// Needs a `+`, 7 to 15 digits and an existing country code.
pub fn unchecked_e164(raw: &str) -> Result<Phone, PhoneError> {
    let digits = strip_formatting(raw)?;
    let Some(digits) = digits.strip_prefix('+') else {
        return Err(PhoneError::NoCountryCode);
    };
    if !(7..=15).contains(&digits.len()) {
        return Err(PhoneError::DigitCount);
    }
    let text = format!("+{digits}");
    let number = phonenumber::parse(None, &text).map_err(map_parse_error)?;
    let calling_code = number.code().value();
    // libphonenumber may have dropped a national prefix; only a verbatim reading counts.
    if number.format().mode(Mode::E164).to_string() != text {
        return Err(PhoneError::Invalid);
    }
    Ok(Phone::e164(text, calling_code))
}

/// Keeps a leading `+` and the digits, drops formatting, refuses anything else.
pub(crate) fn strip_formatting(raw: &str) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    if trimmed.chars().count() > MAX_RAW_CHARS {
        return Err(PhoneError::TooLong);
    }
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut out = String::with_capacity(trimmed.len());
    if plus {
        out.push('+');
    }
    for c in rest.chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(PhoneError::BadCharacters),
        }
    }
    if out.len() == usize::from(plus) {
        return Err(PhoneError::DigitCount);
    }
    Ok(out)
}

fn map_parse_error(e: phonenumber::ParseError) -> PhoneError {
    use phonenumber::ParseError as P;
    match e {
        P::InvalidCountryCode => PhoneError::UnknownCountryCode,
        P::TooLong => PhoneError::TooLong,
        P::TooShortNsn | P::TooShortAfterIdd => PhoneError::DigitCount,
        _ => PhoneError::Invalid,
    }
}

/// The region code for national input, checked. `None` for an unknown code.
pub fn region(code: &str) -> Option<country::Id> {
    country::Id::from_str(&code.trim().to_ascii_uppercase()).ok()
}

/// Parses a phone number strictly: valid for its country per libphonenumber, returned in E.164.
///
/// Input with a leading `+` is international. Input without one is read as a national number
/// of `default_region` (an ISO 3166 alpha-2 code such as [`DEFAULT_REGION`]); so in region US,
/// `12025550101` and `(202) 555-0101` are both `+12025550101`. With no default region, national
/// input is refused ([`PhoneError::NoCountryCode`]).
pub fn parse_e164(raw: &str, default_region: Option<&str>) -> Result<Phone, PhoneError> {
    let cleaned = strip_formatting(raw)?;
    let digits = cleaned.trim_start_matches('+').len();
    // E.164 allows 15 digits; a national number plus a trunk prefix may not exceed 17.
    if digits > 17 {
        return Err(PhoneError::TooLong);
    }
    let region = match (cleaned.starts_with('+'), default_region) {
        (true, _) => None,
        (false, None) => return Err(PhoneError::NoCountryCode),
        (false, Some(code)) => Some(region(code).ok_or(PhoneError::UnknownRegion)?),
    };
    let number = phonenumber::parse(region, &cleaned).map_err(map_parse_error)?;
    if !phonenumber::is_valid(&number) {
        return Err(PhoneError::Invalid);
    }
    let text = number.format().mode(Mode::E164).to_string();
    if text.len() > 16 {
        return Err(PhoneError::TooLong);
    }
    Ok(Phone::e164(text, number.code().value()))
}

/// [`parse_e164`] restricted to the country calling codes in `allowed` (`None`: all).
///
/// Why before parsing: libphonenumber compiles each region's patterns on first use into an LRU
/// of 100 regexes, so input cycling through many countries recompiles on every request (about
/// 10 ms of CPU each, against well under 1 ms for a country already seen). Calling codes are
/// prefix-free (ITU-T E.164), so the leading digits of `+` input decide the country exactly,
/// and numbers of other countries are refused without touching the parser.
pub fn parse_e164_in(
    raw: &str,
    default_region: Option<&str>,
    allowed: Option<&BTreeSet<u16>>,
) -> Result<Phone, PhoneError> {
    if let Some(codes) = allowed {
        let cleaned = strip_formatting(raw)?;
        if let Some(digits) = cleaned.strip_prefix('+')
            && !codes.iter().any(|c| digits.starts_with(&c.to_string()))
        {
            return Err(PhoneError::CountryNotAllowed);
        }
    }
    let phone = parse_e164(raw, default_region)?;
    match allowed {
        Some(codes) if !phone.calling_code().is_some_and(|c| codes.contains(&c)) => {
            Err(PhoneError::CountryNotAllowed)
        }
        _ => Ok(phone),
    }
}

/// Loads libphonenumber's metadata and the default region's patterns now (about 0.1-0.3 s of
/// CPU on first use), so a cold start pays it during init rather than inside the first request
/// that carries a phone. Call it at init when verification is on.
pub fn warm_up(default_region: &str) {
    let _ = parse_e164("0", Some(default_region));
    let _ = parse_e164("+12025550101", None);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The legacy rule (while verification is off) is `Phone::parse`'s.
    fn legacy(raw: &str) -> Option<String> {
        Phone::parse(raw).ok().map(|p| p.as_str().to_owned())
    }

    /// Input, default region, and the E.164 form with its calling code or the error.
    type Case = (
        &'static str,
        Option<&'static str>,
        Result<(&'static str, u16), PhoneError>,
    );

    #[test]
    fn table_of_inputs_regions_and_outcomes() {
        use PhoneError::*;
        let us = Some("US");
        let cases: &[Case] = &[
            // One US number in the formats people type.
            ("+12025550101", us, Ok(("+12025550101", 1))),
            ("+12025550101", None, Ok(("+12025550101", 1))),
            ("12025550101", us, Ok(("+12025550101", 1))),
            ("2025550101", us, Ok(("+12025550101", 1))),
            ("(202) 555-0101", us, Ok(("+12025550101", 1))),
            ("202.555.0101", us, Ok(("+12025550101", 1))),
            (" +1 (202) 555-0101 ", None, Ok(("+12025550101", 1))),
            ("+1-202-555-0101", Some("gb"), Ok(("+12025550101", 1))),
            // Other countries, international and national.
            ("+44 20 7946 0958", None, Ok(("+442079460958", 44))),
            ("020 7946 0958", Some("GB"), Ok(("+442079460958", 44))),
            ("07400 123456", Some("GB"), Ok(("+447400123456", 44))),
            ("+49 30 901820", None, Ok(("+4930901820", 49))),
            ("030 901820", Some("DE"), Ok(("+4930901820", 49))),
            ("+33 6 12 34 56 78", None, Ok(("+33612345678", 33))),
            ("+91 98765 43210", None, Ok(("+919876543210", 91))),
            // National input without a region.
            ("2025550101", None, Err(NoCountryCode)),
            ("(202) 555-0101", None, Err(NoCountryCode)),
            // Not valid numbers: the seed's phone, unassigned ranges, short, wrong country.
            ("1234567890", us, Err(Invalid)),
            ("+1234567890", None, Err(Invalid)),
            ("+15555550100", None, Err(Invalid)),
            ("+1202555010", None, Err(Invalid)),
            ("555-0101", us, Err(Invalid)),
            ("+999 1234567", None, Err(UnknownCountryCode)),
            // Too long, letters, other characters, empty.
            ("+1202555010112345678", None, Err(TooLong)),
            (
                "+1 202 555 0101 0101 0101 0101 0101 0101 01",
                None,
                Err(TooLong),
            ),
            ("1-800-FLOWERS", us, Err(BadCharacters)),
            ("+1 202 555 0101 ext. 7", None, Err(BadCharacters)),
            ("tel:+12025550101", None, Err(BadCharacters)),
            ("+1 202 555 0101\u{0}", None, Err(BadCharacters)),
            ("++12025550101", None, Err(BadCharacters)),
            ("1+2025550101", us, Err(BadCharacters)),
            ("+١٢٠٢٥٥٥٠١٠١", None, Err(BadCharacters)),
            ("", us, Err(Empty)),
            ("   ", us, Err(Empty)),
            ("+", None, Err(DigitCount)),
            ("()-.", us, Err(DigitCount)),
            // A region that does not exist.
            ("2025550101", Some("XX"), Err(UnknownRegion)),
        ];
        for (raw, region, want) in cases {
            let got = parse_e164(raw, *region).map(|p| (p.to_string(), p.calling_code()));
            let want = want.clone().map(|(s, c)| (s.to_owned(), Some(c)));
            assert_eq!(got, want, "{raw:?} in {region:?}");
        }
    }

    #[test]
    fn legacy_rule_accepts_what_it_accepted_before() {
        let cases: &[(&str, Option<&str>)] = &[
            ("1234567890", Some("1234567890")),
            ("+1 (202) 555-0101", Some("+12025550101")),
            ("+12025550101", Some("+12025550101")),
            ("(202) 555-0101", Some("2025550101")),
            ("1234567", Some("1234567")),
            ("123456789012345", Some("123456789012345")),
            ("+15555550100", Some("+15555550100")),
            ("123456", None),
            ("1234567890123456", None),
            ("12345abc", None),
            ("", None),
        ];
        for (raw, want) in cases {
            let got = legacy(raw);
            assert_eq!(got.as_deref(), *want, "{raw:?}");
        }
    }

    #[test]
    fn strict_and_legacy_agree_on_international_input() {
        // An account made with verification off and "+..." input is found again when it is on.
        for raw in ["+1 (202) 555-0101", "+44 20 7946 0958", "+4930901820"] {
            let strict = parse_e164(raw, Some(DEFAULT_REGION)).map(|p| p.to_string());
            assert_eq!(strict.ok(), legacy(raw), "{raw}");
        }
    }

    #[test]
    fn unchecked_numbers_need_a_plus_and_a_real_country_code() {
        let p = unchecked_e164("+1 555 555 0100");
        assert_eq!(
            p.as_ref().map(|p| (p.as_str(), p.calling_code())),
            Ok(("+15555550100", Some(1)))
        );
        assert_eq!(unchecked_e164("5555550100"), Err(PhoneError::NoCountryCode));
        assert_eq!(unchecked_e164("+123456"), Err(PhoneError::DigitCount));
        assert_eq!(
            unchecked_e164("+9991234567"),
            Err(PhoneError::UnknownCountryCode)
        );
    }

    #[test]
    fn an_allow_list_refuses_other_countries_before_parsing() {
        let allowed = BTreeSet::from([1, 44]);
        let parse = |raw: &str| {
            parse_e164_in(raw, Some("US"), Some(&allowed)).map(|p| p.as_str().to_owned())
        };
        assert_eq!(parse("+1 202 555 0101"), Ok("+12025550101".into()));
        assert_eq!(parse("(202) 555-0101"), Ok("+12025550101".into()));
        assert_eq!(parse("+44 20 7946 0958"), Ok("+442079460958".into()));
        // +49 (Germany) and +4x codes that merely share the 4: refused by prefix.
        assert_eq!(parse("+49 30 901820"), Err(PhoneError::CountryNotAllowed));
        assert_eq!(
            parse("+41 44 123 45 67"),
            Err(PhoneError::CountryNotAllowed)
        );
        // Invalid numbers of allowed countries are still invalid; bad characters still bad.
        assert_eq!(parse("+1 555 555 0100"), Err(PhoneError::Invalid));
        assert_eq!(parse("+49 abc"), Err(PhoneError::BadCharacters));
        // National input in a region outside the list.
        let de = parse_e164_in("030 901820", Some("DE"), Some(&allowed));
        assert_eq!(de, Err(PhoneError::CountryNotAllowed));
        // No list: as parse_e164.
        assert_eq!(
            parse_e164_in("+49 30 901820", None, None).map(|p| p.calling_code()),
            Ok(Some(49))
        );
        warm_up("US");
    }

    #[test]
    fn errors_never_repeat_the_input() {
        for raw in ["+1 202 555 0101 ext. 7", "1234567890", "+99912345678"] {
            if let Err(e) = parse_e164(raw, Some("US")) {
                assert!(!e.to_string().contains("555"), "{e}");
                assert!(!e.to_string().contains("1234"), "{e}");
            }
        }
    }

    #[test]
    fn random_input_is_refused_or_parsed_never_a_panic() {
        // Random strings over the accepted alphabet (where libphonenumber's parser actually
        // runs) plus a few other characters, in every length up to the cap.
        const ALPHABET: &[u8] = b"0123456789+ -.()0123456789x#*";
        let mut bytes = [0u8; 64];
        for round in 0..3000 {
            getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("{e}"));
            let len = usize::from(bytes[0]) % 45;
            let s: String = bytes[1..=len]
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .collect();
            let region = ["US", "GB", "DE", "IN"][round % 4];
            if let Ok(p) = parse_e164(&s, Some(region)) {
                assert!(
                    p.as_str().starts_with('+') && p.as_str().len() <= 16,
                    "{s:?}"
                );
                assert!(p.as_str()[1..].bytes().all(|b| b.is_ascii_digit()), "{s:?}");
            }
            let _ = unchecked_e164(&s);
            let _ = legacy(&s);
        }
    }
}
