//! Identifiers: what an account is found by. One enum for every kind (a phone now; an email
//! address and a federated provider's subject next), one string key per kind and value (what a
//! store keeps unique), and a record per identifier saying whether it is proven and which is
//! primary. A `UserRecord` holds a list of them, so the checks written against them (the store
//! invariants, the flows) do not change when a kind is added.

use std::fmt;

pub use crate::email::Email;
use crate::types::Phone;

/// The kinds of identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierKind {
    Phone,
    Email,
    Federated,
}

impl IdentifierKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Email => "email",
            Self::Federated => "federated",
        }
    }
}

/// One way to find an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// A phone number: E.164 when verification is on, the legacy canonical form otherwise.
    Phone(Phone),
    Email(Email),
    /// An account at an OpenID provider: its issuer and the `sub` it gives the user.
    Federated {
        provider: String,
        subject: String,
    },
}

impl Identifier {
    pub fn kind(&self) -> IdentifierKind {
        match self {
            Self::Phone(_) => IdentifierKind::Phone,
            Self::Email(_) => IdentifierKind::Email,
            Self::Federated { .. } => IdentifierKind::Federated,
        }
    }

    /// Where a message for it goes (a phone's number, an email address); `None` for a
    /// federated subject. Also the key of its codes and login counters: a phone's begins with
    /// a digit or `+`, an address holds an `@`, so they never meet.
    pub fn address(&self) -> Option<&str> {
        match self {
            Self::Phone(p) => Some(p.as_str()),
            Self::Email(e) => Some(e.as_str()),
            Self::Federated { .. } => None,
        }
    }

    /// `<kind>:<value>`: one string per kind and value, what a store keeps unique across
    /// accounts (a federated key is `federated:<provider> <subject>`; a provider URL holds no
    /// space).
    pub fn key(&self) -> String {
        let kind = self.kind().as_str();
        match self {
            Self::Phone(p) => format!("{kind}:{}", p.as_str()),
            Self::Email(e) => format!("{kind}:{}", e.as_str()),
            Self::Federated { provider, subject } => format!("{kind}:{provider} {subject}"),
        }
    }
}

/// Logs name the kind only: the value is personal data.
impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind().as_str())
    }
}

/// An identifier of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierRecord {
    pub identifier: Identifier,
    /// When its owner proved it (a code reached the phone), Unix seconds; `None` while
    /// unproven.
    pub verified_at: Option<i64>,
    /// The one of its kind the account is addressed by (messages go there).
    pub primary: bool,
}

impl IdentifierRecord {
    /// A primary identifier, proven at `verified_at`.
    pub fn new(identifier: Identifier, verified_at: Option<i64>) -> Self {
        Self {
            identifier,
            verified_at,
            primary: true,
        }
    }

    pub fn verified(&self) -> bool {
        self.verified_at.is_some()
    }
}

/// A replacement identifier waiting for proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIdentifier {
    pub identifier: Identifier,
    /// Unix seconds.
    pub requested_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_per_kind_and_value() {
        let phone = Identifier::Phone(Phone::stored("+12025550101".into()));
        let email = Identifier::Email(Email::stored("+12025550101".into()));
        let fed = Identifier::Federated {
            provider: "https://accounts.google.com".into(),
            subject: "+12025550101".into(),
        };
        assert_eq!(phone.key(), "phone:+12025550101");
        assert_ne!(phone.key(), email.key());
        assert_eq!(
            fed.key(),
            "federated:https://accounts.google.com +12025550101"
        );
        assert_eq!(phone.to_string(), "phone");
    }
}
