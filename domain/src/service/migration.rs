//! Moving users in and out: one exported or imported user at a time, so a file of any size
//! streams through in flat memory (the `user-admin` tool reads and writes the lines).
//!
//! An import record is what another system stored: the Flask service's documents (`password`
//! holding a Werkzeug hash, `phone` as the user typed it), this service's own export, or users
//! from elsewhere with a bcrypt or argon2 hash. The phone is canonicalised here, so imported
//! users are found by the canonical lookup every login uses; the hash is kept as it is and
//! replaced with argon2id at the configured parameters on the first successful login.

use sha2::{Digest, Sha256};

use super::{Ctx, Error};
use crate::{
    auth::legacy::Scheme,
    identity::{Identifier, IdentifierKind, IdentifierRecord},
    store::{IdentifierChange, StoreError, StoredCredential, UserPatch, UserRecord},
    types::{Name, Phone, UserId},
};

/// One user as an import file (or another service's collection) holds it, fields as found.
#[derive(Debug, Default, Clone)]
pub struct ImportRecord {
    /// 24 hex digits, if the source had an ObjectId.
    pub id: Option<String>,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    /// As stored, formatting and all.
    pub phone: Option<String>,
    /// A PHC, bcrypt or Werkzeug hash string.
    pub password_hash: Option<String>,
    pub disabled: bool,
    /// As exported; absent (another service's users) counts as proven.
    pub phone_verified: Option<bool>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// A version 2 export's identifiers (with their proof times); when present they are the
    /// account's identifiers and `phone`/`phone_verified` (written for older tools) are not
    /// read.
    pub identifiers: Vec<ImportIdentifier>,
    /// A version 2 export's password times.
    pub password_created_at: Option<i64>,
    pub password_last_used_at: Option<i64>,
}

/// One identifier of a version 2 export.
#[derive(Debug, Default, Clone)]
pub struct ImportIdentifier {
    /// `phone` (other kinds are refused until this service knows them).
    pub kind: String,
    pub value: String,
    pub verified_at: Option<i64>,
}

/// Why a record was not imported. Reasons name fields, never values: a report may be shared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Skip(pub String);

/// What importing one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// A new user.
    Inserted(UserId),
    /// This user (same id, same phone) is already here: a re-run changes nothing.
    AlreadyPresent(UserId),
    /// Refused, with the reason.
    Skipped(Skip),
}

fn skip(field: &str, why: impl std::fmt::Display) -> Skip {
    Skip(format!("{field}: {why}"))
}

/// The id a record without one gets: derived from the canonical phone and the hash, so
/// importing the same file twice gives the same ids and the second run finds every user
/// already present, while two different records for one phone still collide on the phone.
fn derived_id(phone: &Phone, hash: &str) -> UserId {
    let digest = Sha256::digest(format!("user-api import\0{}\0{hash}", phone.as_str()).as_bytes());
    let mut b = [0u8; 12];
    b.copy_from_slice(&digest[..12]);
    UserId::from_bytes(b)
}

impl ImportRecord {
    /// The account's identifiers: a version 2 export's list, else the phone (proven unless
    /// the export says otherwise: users moved in from another service were proven there).
    fn identifiers(&self, created_at: i64) -> Result<Vec<IdentifierRecord>, Skip> {
        if self.identifiers.is_empty() {
            let raw = self
                .phone
                .as_deref()
                .ok_or_else(|| skip("phone", "missing"))?;
            let phone = Phone::parse(raw).map_err(|e| skip("phone", e))?;
            let verified_at = self.phone_verified.unwrap_or(true).then_some(created_at);
            return Ok(vec![IdentifierRecord::new(
                Identifier::Phone(phone),
                verified_at,
            )]);
        }
        let mut records: Vec<IdentifierRecord> = Vec::new();
        for i in &self.identifiers {
            let identifier = match i.kind.as_str() {
                "phone" => {
                    Identifier::Phone(Phone::parse(&i.value).map_err(|e| skip("identifiers", e))?)
                }
                _ => return Err(skip("identifiers", "a kind this service does not know")),
            };
            if records
                .iter()
                .any(|r| r.identifier.kind() == identifier.kind())
            {
                return Err(skip("identifiers", "two of one kind"));
            }
            records.push(IdentifierRecord::new(identifier, i.verified_at));
        }
        Ok(records)
    }

    /// The user this record describes, with the phone canonical and every field checked as
    /// signup checks it; the hash must be a format this service verifies.
    pub fn to_user(&self, now: i64) -> Result<UserRecord, Skip> {
        let created_at = self.created_at.unwrap_or(now);
        let identifiers = self.identifiers(created_at)?;
        let phone = identifiers
            .iter()
            .find_map(|r| match &r.identifier {
                Identifier::Phone(p) => Some(p.clone()),
                _ => None,
            })
            .ok_or_else(|| skip("phone", "missing"))?;
        let name = |field: &str, v: &Option<String>| {
            Name::parse(v.as_deref().unwrap_or_default()).map_err(|e| skip(field, e))
        };
        let hash = self
            .password_hash
            .clone()
            .ok_or_else(|| skip("password", "missing"))?;
        Scheme::of(&hash).map_err(|e| skip("password", e))?;
        let id = match &self.id {
            Some(hex) => UserId::parse_hex(hex).ok_or_else(|| skip("_id", "not an ObjectId"))?,
            None => derived_id(&phone, &hash),
        };
        let mut password =
            StoredCredential::password(hash, self.password_created_at.unwrap_or(created_at));
        password.record.last_used_at = self.password_last_used_at;
        Ok(UserRecord {
            id,
            first_name: name("first_name", &self.first_name)?,
            middle_name: Name::parse_optional(self.middle_name.as_deref())
                .map_err(|e| skip("middle_name", e))?,
            last_name: name("last_name", &self.last_name)?,
            identifiers,
            pending: Vec::new(),
            credentials: vec![password],
            disabled: self.disabled,
            app_metadata: crate::claims::Metadata::default(),
            user_metadata: crate::claims::Metadata::default(),
            created_at,
            updated_at: self.updated_at.unwrap_or(now),
        })
    }
}

/// Imports one record. The unique phone index decides duplicates: a user already here with
/// this id and phone is `AlreadyPresent` (left as it is, even if it has logged in and been
/// rehashed since); any other holder of the phone or the id makes it `Skipped`.
pub async fn import_user(cx: &Ctx<'_>, record: &ImportRecord) -> Result<Imported, Error> {
    let user = match record.to_user(cx.now) {
        Ok(u) => u,
        Err(s) => return Ok(Imported::Skipped(s)),
    };
    match cx.store.insert_user(&user).await {
        Ok(()) => Ok(Imported::Inserted(user.id)),
        Err(StoreError::Duplicate) => Ok(match cx.store.find_user(&user.id).await? {
            Some(existing) if existing.phone() == user.phone() => Imported::AlreadyPresent(user.id),
            Some(_) => Imported::Skipped(Skip(
                "_id: already used by a user with another phone".to_owned(),
            )),
            None => Imported::Skipped(Skip("phone: already registered to another user".to_owned())),
        }),
        Err(e) => Err(e.into()),
    }
}

/// What canonicalising one stored phone did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalized {
    /// Already canonical.
    Unchanged,
    /// Rewritten to the canonical form.
    Changed,
    /// Left as it is, with the reason (not a phone; the canonical form is another user's).
    Skipped(Skip),
}

/// Rewrites `user`'s stored phone in its canonical form (for a collection the Flask service
/// wrote, where phones are as typed). Refuses when another user already holds that form.
pub async fn normalize_phone(cx: &Ctx<'_>, user: &UserRecord) -> Result<Normalized, Error> {
    let Some(record) = user.primary(IdentifierKind::Phone) else {
        return Ok(Normalized::Unchanged);
    };
    let Identifier::Phone(stored) = &record.identifier else {
        return Ok(Normalized::Unchanged);
    };
    let canonical = match Phone::parse(stored.as_str()) {
        Ok(p) => p,
        Err(e) => return Ok(Normalized::Skipped(skip("phone", e))),
    };
    if &canonical == stored {
        return Ok(Normalized::Unchanged);
    }
    let patch = UserPatch::identifier(IdentifierChange::Set {
        identifier: Identifier::Phone(canonical),
        verified_at: record.verified_at,
    });
    match cx.store.update_user(&user.id, &patch, cx.now).await {
        Ok(_) => Ok(Normalized::Changed),
        Err(StoreError::Duplicate) => Ok(Normalized::Skipped(Skip(
            "phone: canonical form already registered to another user".to_owned(),
        ))),
        Err(e) => Err(e.into()),
    }
}
