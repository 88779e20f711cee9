//! Users: documents of every shape this service and the Flask service wrote, read leniently;
//! each identifier unique across accounts (by the unique index on `ids`, and on `phone` for
//! version 1 documents, which have no `ids`).

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::{
    bson::{Bson, Document, doc, oid::ObjectId},
    options::ReturnDocument,
};

use domain::claims::Metadata;
use domain::credential::{CredentialKind, CredentialRecord, PASSWORD_ID};
use domain::events::{self, Event, Pending, journal};
use domain::identity::{Email, Identifier, IdentifierKind, IdentifierRecord, PendingIdentifier};
use domain::store::{
    Secret, StoreError, StoredCredential, UserPatch, UserRecord, UserStore, stranded,
};
use domain::types::{Name, Phone, UserId};

use super::{MongoStore, oid};

/// The shape this release writes. Documents without `v` are version 1 (this service's
/// earlier releases and the Flask service's), read the same way.
const VERSION: i32 = 2;

/// A user document as this service writes it: version 2 (identifiers, their keys for the
/// unique index, pending replacements and credentials as arrays), plus the version 1 fields
/// (`phone`, `phone_verified`, `pending_phone`, `password_hash`) that the previous release
/// reads and writes. While a release that reads only those may run (a rollback, a function
/// not yet updated), they are written on every change and they win where they disagree with
/// the arrays (see [`user_from_doc`]); a later release stops writing them.
pub(super) fn user_doc(u: &UserRecord, rev: i64) -> Document {
    let mut d = doc! {
        "_id": oid(&u.id),
        "v": VERSION,
        "rev": rev,
        "first_name": u.first_name.as_str(),
        "last_name": u.last_name.as_str(),
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "identifiers": u.identifiers.iter().map(identifier_doc).collect::<Vec<_>>(),
        "credentials": u.credentials.iter().map(credential_doc).collect::<Vec<_>>(),
    };
    let ids = u.keys();
    // An empty array would be indexed (as one shared key) by the unique index.
    if !ids.is_empty() {
        d.insert("ids", ids);
    }
    if !u.pending.is_empty() {
        let pending: Vec<Document> = u
            .pending
            .iter()
            .map(|p| {
                let mut e = identifier_value(&p.identifier);
                e.insert("requested_at", p.requested_at);
                e
            })
            .collect();
        d.insert("pending", pending);
    }
    if let Some(m) = &u.middle_name {
        d.insert("middle_name", m.as_str());
    }
    // Absent unless set, as in the Flask service's documents.
    if u.disabled {
        d.insert("disabled", true);
    }
    // Version 1 fields.
    if let Some(p) = u.phone() {
        d.insert("phone", p.as_str());
        d.insert("phone_verified", u.phone_verified());
    }
    if let Some(p) = u.pending_phone() {
        d.insert("pending_phone", p.as_str());
    }
    if let Some(c) = u.password() {
        d.insert("password_hash", c.secret.expose());
    }
    // Absent while empty, as in every document made before metadata existed.
    for (field, m) in [
        ("app_metadata", &u.app_metadata),
        ("user_metadata", &u.user_metadata),
    ] {
        if !m.is_empty() {
            match mongodb::bson::to_document(m.as_map()) {
                Ok(doc) => {
                    d.insert(field, doc);
                }
                // Metadata is checked at the edge (`Metadata::parse`); not reached.
                Err(e) => tracing::error!(error = %e, field, "metadata not storable"),
            }
        }
    }
    d
}

/// A metadata object as stored (checked when written; anything unreadable reads as empty).
fn metadata_of(d: &Document, field: &str) -> Metadata {
    d.get_document(field)
        .ok()
        .and_then(|m| serde_json::to_value(m).ok())
        .and_then(|v| match v {
            serde_json::Value::Object(map) => Some(Metadata::stored(map)),
            _ => None,
        })
        .unwrap_or_default()
}

/// The fields that say which identifier it is.
fn identifier_value(i: &Identifier) -> Document {
    let mut d = doc! { "kind": i.kind().as_str() };
    match i {
        Identifier::Phone(p) => {
            d.insert("value", p.as_str());
        }
        Identifier::Email(e) => {
            d.insert("value", e.as_str());
        }
        Identifier::Federated { provider, subject } => {
            d.insert("provider", provider.as_str());
            d.insert("subject", subject.as_str());
        }
    }
    d
}

fn identifier_doc(r: &IdentifierRecord) -> Document {
    let mut d = identifier_value(&r.identifier);
    d.insert("verified_at", r.verified_at.map_or(Bson::Null, Bson::Int64));
    d.insert("primary", r.primary);
    d
}

fn credential_doc(c: &StoredCredential) -> Document {
    doc! {
        "id": c.record.id.as_str(),
        "kind": c.record.kind.as_str(),
        "label": c.record.label.as_str(),
        "hash": c.secret.expose(),
        "created_at": c.record.created_at,
    }
}

pub(super) fn int(d: &Document, k: &str) -> Option<i64> {
    d.get_i64(k)
        .ok()
        .or_else(|| d.get_i32(k).ok().map(i64::from))
}

fn text(d: &Document, k: &str) -> Option<String> {
    d.get_str(k).ok().map(str::to_owned)
}

/// An identifier of a kind this release knows; `None` for one it does not (written by a
/// later release: kept out of this read rather than failing it).
fn identifier_from(d: &Document) -> Option<Identifier> {
    match d.get_str("kind").ok()? {
        "phone" => Some(Identifier::Phone(Phone::stored(text(d, "value")?))),
        "email" => Some(Identifier::Email(Email::stored(text(d, "value")?))),
        "federated" => Some(Identifier::Federated {
            provider: text(d, "provider")?,
            subject: text(d, "subject")?,
        }),
        _ => None,
    }
}

fn credential_from(d: &Document, last_used: Option<&Document>) -> Option<StoredCredential> {
    let kind = CredentialKind::from_name(d.get_str("kind").ok()?)?;
    let id = text(d, "id")?;
    Some(StoredCredential {
        record: CredentialRecord {
            last_used_at: last_used.and_then(|u| int(u, &id)),
            id,
            kind,
            label: text(d, "label").unwrap_or_default(),
            created_at: int(d, "created_at").unwrap_or_default(),
        },
        secret: Secret::new(text(d, "hash").unwrap_or_default()),
    })
}

fn docs<'a>(d: &'a Document, k: &str) -> impl Iterator<Item = &'a Document> {
    d.get_array(k)
        .into_iter()
        .flatten()
        .filter_map(Bson::as_document)
}

/// Reads a user document of any version leniently: a missing or oddly typed field becomes
/// empty rather than an error, so a document written by another service (the Flask service
/// stores `password`, not `password_hash`, and no timestamps) never turns a request into a
/// 500. A document without an ObjectId `_id` cannot be addressed and is an error.
///
/// The arrays of version 2 are read first; then the version 1 fields, where present, decide
/// the phone, whether it is proven, the pending phone and the password hash (a version 1
/// document has nothing else; on a version 2 one they differ from the arrays only when the
/// previous release changed them since).
pub(super) fn user_from_doc(d: &Document) -> Result<UserRecord, StoreError> {
    let id = d
        .get_object_id("_id")
        .map_err(|_| StoreError::Other("user document without an ObjectId _id".to_owned()))?;
    let created_at = int(d, "created_at").unwrap_or_default();
    let mut identifiers: Vec<IdentifierRecord> = docs(d, "identifiers")
        .filter_map(|e| {
            Some(IdentifierRecord {
                identifier: identifier_from(e)?,
                verified_at: int(e, "verified_at"),
                primary: e.get_bool("primary").unwrap_or(true),
            })
        })
        .collect();
    let mut pending: Vec<PendingIdentifier> = docs(d, "pending")
        .filter_map(|e| {
            Some(PendingIdentifier {
                identifier: identifier_from(e)?,
                requested_at: int(e, "requested_at").unwrap_or_default(),
            })
        })
        .collect();
    let last_used = d.get_document("last_used").ok();
    let mut credentials: Vec<StoredCredential> = docs(d, "credentials")
        .filter_map(|e| credential_from(e, last_used))
        .collect();

    let is_phone = |i: &Identifier| i.kind() == IdentifierKind::Phone;
    if let Some(phone) = text(d, "phone") {
        let phone = Identifier::Phone(Phone::stored(phone));
        // Absent on accounts made before verification existed: those stay able to log in.
        let verified = d.get_bool("phone_verified").unwrap_or(true);
        let before = identifiers
            .iter()
            .position(|r| r.primary && is_phone(&r.identifier));
        let kept = before
            .map(|i| &identifiers[i])
            .filter(|r| r.identifier == phone)
            .and_then(|r| r.verified_at);
        let record = IdentifierRecord::new(phone, verified.then(|| kept.unwrap_or(created_at)));
        match before {
            Some(i) => identifiers[i] = record,
            None => identifiers.insert(0, record),
        }
        let was = pending.iter().find(|p| is_phone(&p.identifier)).cloned();
        pending.retain(|p| !is_phone(&p.identifier));
        if let Some(p) = text(d, "pending_phone") {
            let identifier = Identifier::Phone(Phone::stored(p));
            let requested_at = was.filter(|w| w.identifier == identifier).map_or_else(
                || int(d, "updated_at").unwrap_or_default(),
                |w| w.requested_at,
            );
            pending.push(PendingIdentifier {
                identifier,
                requested_at,
            });
        }
    }
    if let Some(hash) = text(d, "password_hash").or_else(|| text(d, "password")) {
        match credentials
            .iter_mut()
            .find(|c| c.record.kind == CredentialKind::Password)
        {
            Some(c) => c.secret = Secret::new(hash),
            None => {
                let mut c = StoredCredential::password(hash, created_at);
                c.record.last_used_at = last_used.and_then(|u| int(u, PASSWORD_ID));
                credentials.insert(0, c);
            }
        }
    }
    Ok(UserRecord {
        id: UserId::from_bytes(id.bytes()),
        first_name: Name::stored(text(d, "first_name").unwrap_or_default()),
        middle_name: text(d, "middle_name")
            .filter(|m| !m.trim().is_empty())
            .map(Name::stored),
        last_name: Name::stored(text(d, "last_name").unwrap_or_default()),
        identifiers,
        pending,
        credentials,
        disabled: d.get_bool("disabled").unwrap_or(false),
        app_metadata: metadata_of(d, "app_metadata"),
        user_metadata: metadata_of(d, "user_metadata"),
        created_at,
        updated_at: int(d, "updated_at").unwrap_or_default(),
    })
}

/// The update that writes `after` over `before` (a document read as `after` was made):
/// every field of [`user_doc`] set, and the fields it leaves out unset (a removed middle
/// name, the Flask service's `password`, a confirmed pending phone). Fields this release
/// does not know, and the credentials' use times, are left as they are.
fn replace_update(after: &UserRecord, rev: i64) -> Document {
    let mut set = user_doc(after, rev);
    set.remove("_id");
    let mut unset = Document::new();
    for field in [
        "middle_name",
        "disabled",
        "pending",
        "ids",
        "phone",
        "phone_verified",
        "pending_phone",
        "password_hash",
        "password",
        "app_metadata",
        "user_metadata",
    ] {
        if !set.contains_key(field) {
            unset.insert(field, "");
        }
    }
    let mut update = doc! { "$set": set };
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    update
}

/// Tries of an update's read-and-swap before giving up as contended (each lost try means
/// another update of the same user won; a user's own requests rarely race at all).
pub(super) const UPDATE_TRIES: usize = 32;

/// The filter finding the account holding `identifier`. A phone is found by the version 1
/// field, which every document holding a phone has (version 1 documents have no `ids`).
fn holder(identifier: &Identifier) -> Document {
    match identifier {
        Identifier::Phone(p) => doc! { "phone": p.as_str() },
        other => doc! { "ids": other.key() },
    }
}

impl MongoStore {
    /// The one user `filter` matches, read; a document of a shape this service cannot address
    /// (a string `_id`) is no account here: logged and skipped, so a login fails as for an
    /// unknown identifier instead of with a 500.
    async fn find_one_user(&self, filter: Document) -> Result<Option<UserRecord>, StoreError> {
        let c = self.db()?;
        let found = self.timed(async { c.users.find_one(filter).await }).await?;
        Ok(found.as_ref().and_then(|d| match user_from_doc(d) {
            Ok(user) => Some(user),
            Err(e) => {
                tracing::warn!(error = %e, "user document skipped: unexpected shape");
                None
            }
        }))
    }
}

impl MongoStore {
    /// A patch of plain fields (names, the disabled flag) in one atomic update: each field is
    /// independent, so racing ones need no read, and the `rev` bump makes a racing
    /// read-and-swap of the same user read again.
    async fn update_fields(
        &self,
        id: &UserId,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserRecord>, StoreError> {
        let mut set = doc! { "updated_at": now };
        let mut unset = Document::new();
        if let Some(v) = &patch.first_name {
            set.insert("first_name", v.as_str());
        }
        if let Some(v) = &patch.last_name {
            set.insert("last_name", v.as_str());
        }
        match &patch.middle_name {
            Some(Some(v)) => {
                set.insert("middle_name", v.as_str());
            }
            Some(None) => {
                unset.insert("middle_name", "");
            }
            None => {}
        }
        // Each object replaced whole; an empty one removes the field, as documents without
        // metadata have none.
        for (field, m) in [
            ("app_metadata", &patch.app_metadata),
            ("user_metadata", &patch.user_metadata),
        ] {
            match m {
                Some(m) if !m.is_empty() => {
                    let doc = mongodb::bson::to_document(m.as_map())
                        .map_err(|e| StoreError::Other(format!("{field}: {e}")))?;
                    set.insert(field, doc);
                }
                Some(_) => {
                    unset.insert(field, "");
                }
                None => {}
            }
        }
        let mut update = doc! { "$set": set, "$inc": { "rev": 1_i64 } };
        if !unset.is_empty() {
            update.insert("$unset", unset);
        }
        let events = if self.events_on {
            events::for_update(*id, patch, None, None, now)
        } else {
            Vec::new()
        };
        super::outbox::push_events(&mut update, &events);
        let after = self.update_by_id(id, update).await?;
        if after.is_some() {
            journal::record(events.into_iter().map(Pending::Embedded));
        }
        Ok(after)
    }

    /// Applies `update` to the user `id` in one atomic call and reads the user after it.
    async fn update_by_id(
        &self,
        id: &UserId,
        update: Document,
    ) -> Result<Option<UserRecord>, StoreError> {
        let c = self.db()?;
        self.timed(async {
            c.users
                .find_one_and_update(doc! { "_id": oid(id) }, update)
                .return_document(ReturnDocument::After)
                .await
        })
        .await?
        .as_ref()
        .map(user_from_doc)
        .transpose()
    }
}

#[async_trait]
impl UserStore for MongoStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let c = self.db()?;
        // The unique indexes, not a lookup, decide whether the identifiers are free.
        self.ensure_indexes().await?;
        let mut d = user_doc(user, 1);
        let created = self.events_on.then(|| Event::created(user));
        if let Some(e) = &created {
            d.insert("outbox", vec![super::outbox::event_doc(e)]);
        }
        self.timed(async { c.users.insert_one(d).await }).await?;
        journal::record(created.map(Pending::Embedded));
        Ok(())
    }

    /// Starts the index creation in the background unless it is done (a first signup's
    /// password hash then overlaps it); `insert_user` waits for the same creation.
    fn prepare_insert(&self) {
        if self.indexes_ready() {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = store.ensure_indexes().await {
                tracing::warn!(error = %e, "index creation failed; the insert retries it");
            }
        });
    }

    async fn find_user_by(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.find_one_user(holder(identifier)).await
    }

    async fn find_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let c = self.db()?;
        self.timed(async { c.users.find_one(doc! { "_id": oid(id) }).await })
            .await?
            .as_ref()
            .map(user_from_doc)
            .transpose()
    }

    /// Plain fields are set in one update ([`MongoStore::update_fields`]). Identifier and
    /// credential changes: read, apply [`UserPatch::apply`] (the definition the memory store
    /// uses too), and swap the result in only if the document is still the one read (its `rev`; a version 1
    /// document has none until its first update here): of two racing updates one swaps and
    /// the other reads again and reapplies, so none is lost. The unique indexes refuse an
    /// identifier another account holds.
    async fn update_user(
        &self,
        id: &UserId,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserRecord>, StoreError> {
        let c = self.db()?;
        // Field updates go in one blind write. The rest reads the account first and swaps on
        // its revision: identifiers and credentials depend on what is there, and the
        // `disabled` flag reports an event only when it flips (an operator's rare call).
        if patch.identifiers.is_empty()
            && patch.credentials.is_empty()
            && patch.password_hash.is_none()
            && patch.disabled.is_none()
        {
            return self.update_fields(id, patch, now).await;
        }
        if !patch.identifiers.is_empty() {
            self.ensure_indexes().await?;
        }
        for _ in 0..UPDATE_TRIES {
            let Some(before) = self
                .timed(async { c.users.find_one(doc! { "_id": oid(id) }).await })
                .await?
            else {
                return Ok(None);
            };
            let read = user_from_doc(&before)?;
            let mut user = read.clone();
            patch.apply(&mut user, now);
            let rev = int(&before, "rev");
            let filter = match rev {
                Some(r) => doc! { "_id": oid(id), "rev": r },
                None => doc! { "_id": oid(id), "rev": { "$exists": false } },
            };
            let mut update = replace_update(&user, rev.unwrap_or(0).saturating_add(1));
            let events = if self.events_on {
                events::for_update(*id, patch, Some(&read), Some(&user), now)
            } else {
                Vec::new()
            };
            super::outbox::push_events(&mut update, &events);
            let swapped = self
                .timed(async {
                    c.users
                        .find_one_and_update(filter, update)
                        .return_document(ReturnDocument::After)
                        .await
                })
                .await?;
            if let Some(after) = swapped {
                journal::record(events.into_iter().map(Pending::Embedded));
                return user_from_doc(&after).map(Some);
            }
        }
        Err(StoreError::Unavailable(
            "user update contended; try again".to_owned(),
        ))
    }

    async fn touch_credential(
        &self,
        id: &UserId,
        credential_id: &str,
        at: i64,
    ) -> Result<Option<UserRecord>, StoreError> {
        // Use times live in a map of their own: a login records one without a read, and an
        // update (which swaps the rest) never overwrites one.
        let update = doc! { "$set": { format!("last_used.{credential_id}"): at } };
        self.update_by_id(id, update).await
    }

    /// One conditional update: the filter matches only while the credential holds
    /// `expected`, and `$` sets the element it matched.
    async fn swap_credential_secret(
        &self,
        id: &UserId,
        credential_id: &str,
        expected: &Secret,
        secret: &Secret,
        now: i64,
    ) -> Result<bool, StoreError> {
        let c = self.db()?;
        let filter = doc! {
            "_id": oid(id),
            "credentials": { "$elemMatch": { "id": credential_id, "hash": expected.expose() } },
        };
        let update = doc! {
            "$set": { "credentials.$.hash": secret.expose(), "updated_at": now },
            "$inc": { "rev": 1 },
        };
        let r = self
            .timed(async { c.users.update_one(filter, update).await })
            .await?;
        Ok(r.modified_count == 1)
    }

    /// With events on: the document's undelivered events are copied out and `user.deleted`
    /// staged, then the document read is deleted (its `rev`: a change landing in between,
    /// with events of its own, makes the delete miss and the whole go again).
    async fn delete_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let c = self.db()?;
        if !self.events_on {
            return self
                .timed(async { c.users.find_one_and_delete(doc! { "_id": oid(id) }).await })
                .await?
                .as_ref()
                .map(user_from_doc)
                .transpose();
        }
        self.delete_reported(id)
            .await?
            .as_ref()
            .map(user_from_doc)
            .transpose()
    }

    async fn users_after(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let c = self.db()?;
        // Only ObjectId ids compare with an ObjectId bound: documents with other ids (which
        // no request can address either) are not walked.
        let filter = match after {
            Some(a) => doc! { "_id": { "$gt": oid(a) } },
            None => doc! { "_id": { "$gte": ObjectId::from_bytes([0; 12]) } },
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let docs: Vec<Document> = self
            .timed(async {
                c.users
                    .find(filter)
                    .sort(doc! { "_id": 1 })
                    .limit(limit)
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        Ok(docs.iter().filter_map(|d| user_from_doc(d).ok()).collect())
    }

    /// Read the holder, decide in code (no identifier proven, old enough), and delete only the
    /// document that was read (its `rev`): a proof that lands in between bumps `rev`, so the
    /// delete misses and the account stays.
    async fn delete_unverified_user(
        &self,
        identifier: &Identifier,
        created_before: i64,
    ) -> Result<bool, StoreError> {
        let c = self.db()?;
        for _ in 0..UPDATE_TRIES {
            let Some(d) = self
                .timed(async { c.users.find_one(holder(identifier)).await })
                .await?
            else {
                return Ok(false);
            };
            let Ok(user) = user_from_doc(&d) else {
                return Ok(false);
            };
            if !stranded(&user, identifier, created_before) {
                return Ok(false);
            }
            let id = d.get_object_id("_id").map_err(|_| {
                StoreError::Other("user document without an ObjectId _id".to_owned())
            })?;
            let filter = match int(&d, "rev") {
                Some(r) => doc! { "_id": id, "rev": r },
                None => doc! { "_id": id, "rev": { "$exists": false } },
            };
            if self.events_on {
                self.carry_out(&d).await?;
            }
            let data = serde_json::json!({"reason": "unproven_signup_replaced"});
            let staged = self
                .stage_deletion(UserId::from_bytes(id.bytes()), data)
                .await?;
            let r = self
                .timed(async { c.users.delete_one(filter).await })
                .await?;
            self.staged_done(staged, r.deleted_count == 1).await?;
            if r.deleted_count == 1 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn find_user_by_pending(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<UserRecord>, StoreError> {
        let filter = match identifier {
            Identifier::Phone(p) => doc! { "pending_phone": p.as_str() },
            other => doc! { "pending": { "$elemMatch": identifier_value(other) } },
        };
        self.find_one_user(filter).await
    }
}
