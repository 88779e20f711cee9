//! Email addresses as identifiers: one canonical form, so two spellings of one mailbox are
//! one account. Canonical: trimmed, NFC, the local part lower-cased, the domain lower-cased
//! and IDNA-encoded (`Ann@Bücher.Example` → `ann@xn--bcher-kva.example`). Refused, with a
//! reason: display-name forms (`Ann <ann@example.com>`), comments, quoted local parts, domain
//! literals, spaces and control characters, and anything over 254 octets: what an app means
//! by "an email address" is a mailbox, and the odd RFC 5322 forms are where lookalike and
//! injection tricks live. A local part may hold non-ASCII letters (RFC 6531).
//!
//! Lower-casing the local part departs from RFC 5321 (which lets a server tell `Ann` from
//! `ann`); no mainstream provider does, and the anchors (Cognito with case-insensitive
//! usernames, Supabase, Kratos) compare addresses the same way.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::types::Invalid;

/// A canonical email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Longest address (RFC 5321's path limit less the brackets).
pub const MAX_OCTETS: usize = 254;
/// Longest local part.
const MAX_LOCAL_OCTETS: usize = 64;

/// ASCII characters of a dot-atom besides letters, digits and the dot (RFC 5322 `atext`).
const ATEXT: &str = "!#$%&'*+/=?^_`{|}~-";

impl Email {
    /// Parses and canonicalises `raw`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        // Bounded before any work: NFC and IDNA of a megabyte is not free.
        if raw.len() > MAX_OCTETS * 4 {
            return Err(Invalid("email must be at most 254 octets"));
        }
        let nfc: String = raw.trim_matches([' ', '\t']).nfc().collect();
        if nfc.contains(['<', '>']) {
            return Err(Invalid(
                "email must be a bare address, without a display name or angle brackets",
            ));
        }
        if nfc.contains(['(', ')']) {
            return Err(Invalid("email must not contain comments"));
        }
        if nfc.contains('"') {
            return Err(Invalid("email must not have a quoted local part"));
        }
        if nfc.contains(['[', ']']) {
            return Err(Invalid("email must name a domain, not an address literal"));
        }
        if nfc.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Invalid(
                "email must not contain spaces or control characters",
            ));
        }
        let (local, domain) = nfc
            .rsplit_once('@')
            .ok_or(Invalid("email must contain an @"))?;
        let local = parse_local(local)?;
        let domain = parse_domain(domain)?;
        let canonical = format!("{local}@{domain}");
        if canonical.len() > MAX_OCTETS {
            return Err(Invalid("email must be at most 254 octets"));
        }
        Ok(Self(canonical))
    }

    /// An address as a store holds it.
    pub fn stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part (what a per-domain guard or a log may name).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_local(local: &str) -> Result<String, Invalid> {
    if local.is_empty() {
        return Err(Invalid("email must have a local part before the @"));
    }
    if local.contains('@') {
        return Err(Invalid("email must contain exactly one @"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(Invalid(
            "email's local part must not start or end with a dot or hold two in a row",
        ));
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || c == '.'
            || ATEXT.contains(c)
            || (!c.is_ascii() && c.is_alphanumeric())
    };
    if !local.chars().all(allowed) {
        return Err(Invalid(
            "email's local part may hold letters, digits and !#$%&'*+/=?^_`{|}~-. only",
        ));
    }
    let lower: String = local.to_lowercase();
    if lower.len() > MAX_LOCAL_OCTETS {
        return Err(Invalid("email's local part must be at most 64 octets"));
    }
    Ok(lower)
}

fn parse_domain(domain: &str) -> Result<String, Invalid> {
    let bad = Invalid("email's domain must be a valid domain name, such as example.com");
    if domain.is_empty() || domain.ends_with('.') {
        return Err(bad);
    }
    let ascii = idna::domain_to_ascii_strict(domain).map_err(|_| bad)?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit()));
    if labels.len() < 2 || !labels.iter().all(label_ok) || !tld_ok {
        return Err(bad);
    }
    Ok(ascii.to_ascii_lowercase())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_mailbox_are_one_address() {
        let cases = [
            ("ann@example.com", "ann@example.com"),
            ("  Ann@Example.COM\t", "ann@example.com"),
            ("A@Example.com", "a@example.com"),
            ("ann+news@sub.example.co.uk", "ann+news@sub.example.co.uk"),
            ("ann@bücher.example", "ann@xn--bcher-kva.example"),
            ("ann@BÜCHER.example", "ann@xn--bcher-kva.example"),
            ("ann@xn--bcher-kva.example", "ann@xn--bcher-kva.example"),
            // NFC: e + combining acute is é.
            ("re\u{301}ne@example.com", "r\u{e9}ne@example.com"),
            ("RÉNE@example.com", "réne@example.com"),
            ("o'brien@example.com", "o'brien@example.com"),
        ];
        for (raw, want) in cases {
            let got = Email::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
            assert_eq!(got.as_str(), want.nfc().collect::<String>(), "{raw}");
        }
        assert_eq!(
            Email::parse("ann@bücher.example").unwrap().domain(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn odd_forms_are_refused_with_a_reason() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long = format!(
            "{}@{}.com",
            "a".repeat(60),
            vec!["b".repeat(60); 4].join(".")
        );
        let cases = [
            ("Ann <ann@example.com>", "display name"),
            ("<ann@example.com>", "display name"),
            ("ann(comment)@example.com", "comments"),
            ("\"ann smith\"@example.com", "quoted"),
            ("ann@[192.0.2.1]", "literal"),
            ("ann smith@example.com", "spaces"),
            ("ann\u{0}@example.com", "control"),
            ("annexample.com", "contain an @"),
            ("a@b@example.com", "exactly one @"),
            ("@example.com", "local part"),
            (".ann@example.com", "dot"),
            ("ann.@example.com", "dot"),
            ("an..n@example.com", "dot"),
            ("ann,bob@example.com", "local part may"),
            ("ann@", "domain"),
            ("ann@localhost", "domain"),
            ("ann@example", "domain"),
            ("ann@example.123", "domain"),
            ("ann@-example.com", "domain"),
            ("ann@exa_mple.com", "domain"),
            ("ann@example.com.", "domain"),
            (long_local.as_str(), "64 octets"),
            (long.as_str(), "254"),
        ];
        for (raw, why) in cases {
            match Email::parse(raw) {
                Ok(e) => panic!("{raw:?} accepted as {e}"),
                Err(Invalid(msg)) => assert!(msg.contains(why), "{raw:?}: {msg}"),
            }
        }
    }
}
