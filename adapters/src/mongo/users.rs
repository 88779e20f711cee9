//! Users: documents of every shape this service and the Flask service wrote, read leniently;
//! unique by phone.

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::{
    bson::{Document, doc, oid::ObjectId},
    options::ReturnDocument,
};

use domain::store::{StoreError, UserPatch, UserRecord, UserStore};
use domain::types::{Name, Phone, UserId};

use super::{MongoStore, oid};

/// A user document as this service writes it.
pub(super) fn user_doc(u: &UserRecord) -> Document {
    let mut d = doc! {
        "_id": oid(&u.id),
        "first_name": u.first_name.as_str(),
        "last_name": u.last_name.as_str(),
        "phone": u.phone.as_str(),
        "password_hash": u.password_hash.as_str(),
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "phone_verified": u.phone_verified,
    };
    if let Some(m) = &u.middle_name {
        d.insert("middle_name", m.as_str());
    }
    // Absent unless set, as in the Flask service's documents.
    if u.disabled {
        d.insert("disabled", true);
    }
    if let Some(p) = &u.pending_phone {
        d.insert("pending_phone", p.as_str());
    }
    d
}

/// Reads a user document leniently: a missing or oddly typed field becomes empty rather than
/// an error, so a document written by another service (the Flask service stores `password`,
/// not `password_hash`, and no timestamps) never turns a request into a 500. A document
/// without an ObjectId `_id` cannot be addressed and is an error.
pub(super) fn user_from_doc(d: &Document) -> Result<UserRecord, StoreError> {
    let id = d
        .get_object_id("_id")
        .map_err(|_| StoreError::Other("user document without an ObjectId _id".to_owned()))?;
    let text = |k: &str| d.get_str(k).ok().map(str::to_owned);
    let int = |k: &str| {
        d.get_i64(k)
            .ok()
            .or_else(|| d.get_i32(k).ok().map(i64::from))
            .unwrap_or_default()
    };
    Ok(UserRecord {
        id: UserId::from_bytes(id.bytes()),
        first_name: Name::stored(text("first_name").unwrap_or_default()),
        middle_name: text("middle_name")
            .filter(|m| !m.trim().is_empty())
            .map(Name::stored),
        last_name: Name::stored(text("last_name").unwrap_or_default()),
        phone: Phone::stored(text("phone").unwrap_or_default()),
        password_hash: text("password_hash")
            .or_else(|| text("password"))
            .unwrap_or_default(),
        disabled: d.get_bool("disabled").unwrap_or(false),
        created_at: int("created_at"),
        updated_at: int("updated_at"),
        // Absent on accounts made before verification existed: those stay able to log in.
        phone_verified: d.get_bool("phone_verified").unwrap_or(true),
        pending_phone: text("pending_phone").map(Phone::stored),
    })
}

pub(super) fn patch_update(patch: &UserPatch, now: i64) -> Document {
    let mut set = doc! { "updated_at": now };
    let fields = [
        ("first_name", patch.first_name.as_ref().map(|v| v.as_str())),
        ("last_name", patch.last_name.as_ref().map(|v| v.as_str())),
        ("phone", patch.phone.as_ref().map(|v| v.as_str())),
        ("password_hash", patch.password_hash.as_deref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            set.insert(name, value);
        }
    }
    if let Some(v) = patch.phone_verified {
        set.insert("phone_verified", v);
    }
    let mut unset = Document::new();
    match &patch.middle_name {
        Some(Some(v)) => {
            set.insert("middle_name", v.as_str());
        }
        Some(None) => {
            unset.insert("middle_name", "");
        }
        None => {}
    }
    // A document from the Flask service keeps its hash in `password`: a new hash replaces it
    // rather than leaving the old one beside it.
    if patch.password_hash.is_some() {
        unset.insert("password", "");
    }
    match patch.disabled {
        Some(true) => {
            set.insert("disabled", true);
        }
        Some(false) => {
            unset.insert("disabled", "");
        }
        None => {}
    }
    match &patch.pending_phone {
        Some(Some(v)) => {
            set.insert("pending_phone", v.as_str());
        }
        Some(None) => {
            unset.insert("pending_phone", "");
        }
        None => {}
    }
    let mut update = Document::new();
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    update.insert("$set", set);
    update
}

#[async_trait]
impl UserStore for MongoStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        // The unique index, not a lookup, decides whether the phone is free.
        self.ensure_indexes().await?;
        let d = user_doc(user);
        self.timed(async { self.users.insert_one(d).await })
            .await
            .map(|_| ())
    }

    async fn find_user_by_phone(&self, phone: &Phone) -> Result<Option<UserRecord>, StoreError> {
        let found = self
            .timed(async { self.users.find_one(doc! { "phone": phone.as_str() }).await })
            .await?;
        // A document another service wrote with an id this one cannot address (a string
        // `_id`) is no account here: logged, and the login fails as for an unknown phone
        // instead of with a 500.
        Ok(found.as_ref().and_then(|d| match user_from_doc(d) {
            Ok(user) => Some(user),
            Err(e) => {
                tracing::warn!(error = %e, "user document skipped: unexpected shape");
                None
            }
        }))
    }

    async fn find_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.timed(async { self.users.find_one(doc! { "_id": oid(id) }).await })
            .await?
            .as_ref()
            .map(user_from_doc)
            .transpose()
    }

    async fn update_user(
        &self,
        id: &UserId,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserRecord>, StoreError> {
        if patch.phone.is_some() {
            self.ensure_indexes().await?;
        }
        let update = patch_update(patch, now);
        self.timed(async {
            self.users
                .find_one_and_update(doc! { "_id": oid(id) }, update)
                .return_document(ReturnDocument::After)
                .await
        })
        .await?
        .as_ref()
        .map(user_from_doc)
        .transpose()
    }

    async fn delete_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.timed(async {
            self.users
                .find_one_and_delete(doc! { "_id": oid(id) })
                .await
        })
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
        // Only ObjectId ids compare with an ObjectId bound: documents with other ids (which
        // no request can address either) are not walked.
        let filter = match after {
            Some(a) => doc! { "_id": { "$gt": oid(a) } },
            None => doc! { "_id": { "$gte": ObjectId::from_bytes([0; 12]) } },
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let docs: Vec<Document> = self
            .timed(async {
                self.users
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

    async fn delete_unverified_user(
        &self,
        phone: &Phone,
        created_before: i64,
    ) -> Result<bool, StoreError> {
        let filter = doc! {
            "phone": phone.as_str(),
            "phone_verified": false,
            "created_at": { "$lt": created_before },
        };
        let r = self
            .timed(async { self.users.delete_one(filter).await })
            .await?;
        Ok(r.deleted_count == 1)
    }

    async fn find_user_by_pending_phone(
        &self,
        phone: &Phone,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.timed(async {
            self.users
                .find_one(doc! { "pending_phone": phone.as_str() })
                .await
        })
        .await?
        .as_ref()
        .map(user_from_doc)
        .transpose()
    }
}
