//! A stored user: names, identifiers, credentials, flags and times. Identifiers and
//! credentials are lists of records, so a new kind (email, TOTP, a passkey, a federated
//! account) is a new variant, not a new field in every layer. Changes are described by a
//! [`UserPatch`] and applied by [`UserPatch::apply`], the one definition both stores use.

use std::fmt;

use crate::{
    claims::Metadata,
    credential::{CredentialKind, CredentialRecord, PASSWORD_ID},
    identity::{Email, Identifier, IdentifierKind, IdentifierRecord, PendingIdentifier},
    types::{Name, Phone, UserId},
};

/// A credential's secret as stored (a password's hash). Never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A credential with its secret, as the account holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub record: CredentialRecord,
    pub secret: Secret,
}

impl StoredCredential {
    /// A password credential holding `hash`, made at `now`.
    pub fn password(hash: String, now: i64) -> Self {
        Self {
            record: CredentialRecord {
                id: PASSWORD_ID.to_owned(),
                kind: CredentialKind::Password,
                label: "Password".to_owned(),
                created_at: now,
                last_used_at: None,
            },
            secret: Secret::new(hash),
        }
    }
}

/// A stored user. Secrets never leave the domain layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub first_name: Name,
    pub middle_name: Option<Name>,
    pub last_name: Name,
    /// What the account is found by; at most one primary per kind, each unique across
    /// accounts (the store decides races).
    pub identifiers: Vec<IdentifierRecord>,
    /// Replacements waiting for proof, at most one per kind: the identifier they replace stays
    /// in force until then, so a mistyped one locks no one out.
    pub pending: Vec<PendingIdentifier>,
    pub credentials: Vec<StoredCredential>,
    /// Set by an operator: the account cannot log in and has no sessions.
    pub disabled: bool,
    /// Set by operators only (roles, a tenant): what access tokens carry.
    pub app_metadata: Metadata,
    /// Set by the user (PUT /user).
    pub user_metadata: Metadata,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl UserRecord {
    /// A new account with unproven identifiers (one of each kind) and a password.
    pub fn new(
        id: UserId,
        (first_name, middle_name, last_name): (Name, Option<Name>, Name),
        identifiers: Vec<Identifier>,
        password_hash: String,
        now: i64,
    ) -> Self {
        Self {
            id,
            first_name,
            middle_name,
            last_name,
            identifiers: identifiers
                .into_iter()
                .map(|i| IdentifierRecord::new(i, None))
                .collect(),
            pending: Vec::new(),
            credentials: vec![StoredCredential::password(password_hash, now)],
            disabled: false,
            app_metadata: Metadata::default(),
            user_metadata: Metadata::default(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The primary identifier of `kind`.
    pub fn primary(&self, kind: IdentifierKind) -> Option<&IdentifierRecord> {
        self.identifiers
            .iter()
            .find(|r| r.primary && r.identifier.kind() == kind)
    }

    /// Whether `identifier` is one of the account's.
    pub fn holds(&self, identifier: &Identifier) -> bool {
        self.identifiers.iter().any(|r| &r.identifier == identifier)
    }

    /// The account's phone, if it has one.
    pub fn phone(&self) -> Option<&Phone> {
        match self.primary(IdentifierKind::Phone).map(|r| &r.identifier) {
            Some(Identifier::Phone(p)) => Some(p),
            _ => None,
        }
    }

    /// Whether the account's phone is proven (false when it has none).
    pub fn phone_verified(&self) -> bool {
        self.verified(IdentifierKind::Phone)
    }

    /// Whether the account's identifier of `kind` is proven (false when it has none).
    pub fn verified(&self, kind: IdentifierKind) -> bool {
        self.primary(kind).is_some_and(IdentifierRecord::verified)
    }

    /// The account's email address, if it has one.
    pub fn email(&self) -> Option<&Email> {
        match self.primary(IdentifierKind::Email).map(|r| &r.identifier) {
            Some(Identifier::Email(e)) => Some(e),
            _ => None,
        }
    }

    /// The new address waiting for proof.
    pub fn pending_email(&self) -> Option<&Email> {
        match self.pending(IdentifierKind::Email) {
            Some(Identifier::Email(e)) => Some(e),
            _ => None,
        }
    }

    /// The replacement waiting for proof for `kind`.
    pub fn pending(&self, kind: IdentifierKind) -> Option<&Identifier> {
        self.pending
            .iter()
            .map(|p| &p.identifier)
            .find(|i| i.kind() == kind)
    }

    /// The new phone waiting for its code.
    pub fn pending_phone(&self) -> Option<&Phone> {
        match self.pending(IdentifierKind::Phone) {
            Some(Identifier::Phone(p)) => Some(p),
            _ => None,
        }
    }

    /// The password credential.
    pub fn password(&self) -> Option<&StoredCredential> {
        self.credentials
            .iter()
            .find(|c| c.record.kind == CredentialKind::Password)
    }

    /// The password's hash (empty when the account has none: nothing verifies against it).
    pub fn password_hash(&self) -> &str {
        self.password().map_or("", |c| c.secret.expose())
    }

    /// The account's credentials, without their secrets.
    pub fn credential_records(&self) -> impl Iterator<Item = &CredentialRecord> {
        self.credentials.iter().map(|c| &c.record)
    }

    /// The keys of the identifiers the account holds (each unique across accounts; a pending
    /// replacement is not held, so two accounts may wait for one value and the first to prove
    /// it wins).
    pub fn keys(&self) -> Vec<String> {
        self.identifiers
            .iter()
            .map(|r| r.identifier.key())
            .collect()
    }
}

/// A change to one of an account's identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifierChange {
    /// Makes `identifier` the account's primary of its kind, replacing the one it had (or
    /// adding it), proven at `verified_at` (`None`: not proven).
    Set {
        identifier: Identifier,
        verified_at: Option<i64>,
    },
    /// The primary of this kind is proven now.
    Verify(IdentifierKind),
    /// A replacement waits for proof (replacing any earlier one of its kind).
    Pend(Identifier),
    /// The replacement of this kind is dropped.
    Unpend(IdentifierKind),
    /// Adds `identifier` beside the account's others, proven at the time of the change, not
    /// primary (a provider's identity: nothing is sent there); nothing if it is there.
    Link(Identifier),
    /// Removes `identifier` from the account.
    Unlink(Identifier),
}

/// Fields to change; `None` leaves a field as it is.
/// A change to an account's credentials (the password has its own field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialChange {
    /// Adds the credential, replacing any with its id.
    Add(StoredCredential),
    /// Adds the credential unless the account already holds `cap` of its kind or one with its
    /// id. A store applies a patch to the account as it is at the write (a compare-and-swap
    /// or a lock), so the cap holds however many requests race; the caller reads the answer
    /// to learn whether it was added.
    AddWithin {
        credential: StoredCredential,
        cap: usize,
    },
    /// Adds the credential unless one with its id exists (an account's first recovery codes:
    /// of two racing enrolments, one set is kept, and the other caller can tell).
    AddIfAbsent(StoredCredential),
    /// Removes the credential with this id.
    Remove(String),
    /// Removes every credential of the kind.
    RemoveKind(CredentialKind),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub first_name: Option<Name>,
    /// `Some(None)` removes the middle name.
    pub middle_name: Option<Option<Name>>,
    pub last_name: Option<Name>,
    /// A new hash for the password (the credential is made if the account had none).
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
    /// Applied in order.
    pub identifiers: Vec<IdentifierChange>,
    /// Credentials added or removed, in order.
    pub credentials: Vec<CredentialChange>,
    /// Replaces the operators' metadata.
    pub app_metadata: Option<Metadata>,
    /// Replaces the user's metadata.
    pub user_metadata: Option<Metadata>,
}

impl UserPatch {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// A patch of one identifier change.
    pub fn credential(change: CredentialChange) -> Self {
        Self {
            credentials: vec![change],
            ..Self::default()
        }
    }

    pub fn identifier(change: IdentifierChange) -> Self {
        Self {
            identifiers: vec![change],
            ..Self::default()
        }
    }

    /// The identifier this patch makes primary for `kind`, if it sets one.
    pub fn sets(&self, kind: IdentifierKind) -> Option<&Identifier> {
        self.identifiers.iter().rev().find_map(|c| match c {
            IdentifierChange::Set { identifier, .. } if identifier.kind() == kind => {
                Some(identifier)
            }
            _ => None,
        })
    }

    /// Applies the patch to a record: both stores use this one definition.
    pub fn apply(&self, user: &mut UserRecord, now: i64) {
        if let Some(v) = &self.first_name {
            user.first_name = v.clone();
        }
        if let Some(v) = &self.middle_name {
            user.middle_name = v.clone();
        }
        if let Some(v) = &self.last_name {
            user.last_name = v.clone();
        }
        if let Some(hash) = &self.password_hash {
            user.credentials
                .retain(|c| c.record.kind != CredentialKind::Password);
            user.credentials
                .insert(0, StoredCredential::password(hash.clone(), now));
        }
        if let Some(v) = self.disabled {
            user.disabled = v;
        }
        if let Some(m) = &self.app_metadata {
            user.app_metadata = m.clone();
        }
        if let Some(m) = &self.user_metadata {
            user.user_metadata = m.clone();
        }
        for change in &self.identifiers {
            apply_identifier(user, change, now);
        }
        for change in &self.credentials {
            match change {
                CredentialChange::Add(c) => {
                    user.credentials.retain(|k| k.record.id != c.record.id);
                    user.credentials.push(c.clone());
                }
                CredentialChange::AddWithin { credential: c, cap } => {
                    let held = user
                        .credentials
                        .iter()
                        .filter(|k| k.record.kind == c.record.kind)
                        .count();
                    let exists = user.credentials.iter().any(|k| k.record.id == c.record.id);
                    if held < *cap && !exists {
                        user.credentials.push(c.clone());
                    }
                }
                CredentialChange::AddIfAbsent(c) => {
                    if !user.credentials.iter().any(|k| k.record.id == c.record.id) {
                        user.credentials.push(c.clone());
                    }
                }
                CredentialChange::Remove(id) => user.credentials.retain(|k| &k.record.id != id),
                CredentialChange::RemoveKind(kind) => {
                    user.credentials.retain(|k| k.record.kind != *kind);
                }
            }
        }
        user.updated_at = now;
    }
}

fn apply_identifier(user: &mut UserRecord, change: &IdentifierChange, now: i64) {
    match change {
        IdentifierChange::Set {
            identifier,
            verified_at,
        } => {
            let kind = identifier.kind();
            let record = IdentifierRecord::new(identifier.clone(), *verified_at);
            match user
                .identifiers
                .iter_mut()
                .find(|r| r.primary && r.identifier.kind() == kind)
            {
                Some(r) => *r = record,
                None => user.identifiers.push(record),
            }
        }
        IdentifierChange::Verify(kind) => {
            if let Some(r) = user
                .identifiers
                .iter_mut()
                .find(|r| r.primary && r.identifier.kind() == *kind)
            {
                r.verified_at.get_or_insert(now);
            }
        }
        IdentifierChange::Pend(identifier) => {
            user.pending
                .retain(|p| p.identifier.kind() != identifier.kind());
            user.pending.push(PendingIdentifier {
                identifier: identifier.clone(),
                requested_at: now,
            });
        }
        IdentifierChange::Unpend(kind) => user.pending.retain(|p| p.identifier.kind() != *kind),
        IdentifierChange::Link(identifier) => {
            if !user.holds(identifier) {
                user.identifiers.push(IdentifierRecord {
                    identifier: identifier.clone(),
                    verified_at: Some(now),
                    primary: false,
                });
            }
        }
        IdentifierChange::Unlink(identifier) => {
            user.identifiers.retain(|r| &r.identifier != identifier);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(s: &str) -> Identifier {
        Identifier::Phone(Phone::stored(s.into()))
    }

    fn user() -> UserRecord {
        let n = || Name::stored("A".into());
        UserRecord::new(
            UserId::new(),
            (n(), None, n()),
            vec![phone("+12025550101")],
            "h1".into(),
            10,
        )
    }

    #[test]
    fn a_phone_change_confirmed_replaces_the_primary_and_drops_the_pending_one() {
        let mut u = user();
        UserPatch::identifier(IdentifierChange::Pend(phone("+12025550102"))).apply(&mut u, 20);
        assert_eq!(u.pending_phone().map(Phone::as_str), Some("+12025550102"));
        assert_eq!(u.phone().map(Phone::as_str), Some("+12025550101"));
        let confirm = UserPatch {
            identifiers: vec![
                IdentifierChange::Set {
                    identifier: phone("+12025550102"),
                    verified_at: Some(30),
                },
                IdentifierChange::Unpend(IdentifierKind::Phone),
            ],
            ..UserPatch::default()
        };
        confirm.apply(&mut u, 30);
        assert_eq!(u.phone().map(Phone::as_str), Some("+12025550102"));
        assert!(u.phone_verified());
        assert_eq!(u.pending_phone(), None);
        assert_eq!(u.identifiers.len(), 1);
        assert_eq!(u.updated_at, 30);
    }

    #[test]
    fn verifying_keeps_the_first_proof_time_and_a_new_password_replaces_the_old() {
        let mut u = user();
        assert!(!u.phone_verified());
        UserPatch::identifier(IdentifierChange::Verify(IdentifierKind::Phone)).apply(&mut u, 20);
        UserPatch::identifier(IdentifierChange::Verify(IdentifierKind::Phone)).apply(&mut u, 40);
        assert_eq!(u.identifiers[0].verified_at, Some(20));
        UserPatch {
            password_hash: Some("h2".into()),
            ..UserPatch::default()
        }
        .apply(&mut u, 50);
        assert_eq!(u.password_hash(), "h2");
        assert_eq!(u.credentials.len(), 1);
        assert_eq!(u.credentials[0].record.created_at, 50);
        assert!(!format!("{u:?}").contains("h2"), "Debug prints no secret");
    }

    #[test]
    fn a_capped_add_stops_at_the_cap_and_an_add_if_absent_keeps_the_first() {
        use crate::credential::{CredentialKind, CredentialRecord};
        let cred = |id: &str, kind: CredentialKind, secret: &str| StoredCredential {
            record: CredentialRecord {
                id: id.into(),
                kind,
                label: id.into(),
                created_at: 1,
                last_used_at: None,
            },
            secret: Secret::new(secret.to_owned()),
        };
        let mut u = user();
        let before = u.credentials.len();
        for id in ["pk-1", "pk-2", "pk-3", "pk-1"] {
            UserPatch::credential(CredentialChange::AddWithin {
                credential: cred(id, CredentialKind::Passkey, id),
                cap: 2,
            })
            .apply(&mut u, 2);
        }
        let ids: Vec<&str> = u.credentials[before..]
            .iter()
            .map(|c| c.record.id.as_str())
            .collect();
        assert_eq!(ids, ["pk-1", "pk-2"]);
        for secret in ["first", "second"] {
            UserPatch::credential(CredentialChange::AddIfAbsent(cred(
                "recovery",
                CredentialKind::RecoveryCodes,
                secret,
            )))
            .apply(&mut u, 3);
        }
        let kept: Vec<_> = u
            .credentials
            .iter()
            .filter(|c| c.record.id == "recovery")
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].secret, Secret::new("first".to_owned()));
    }
}
