//! One-time codes in `<collection>_codes`, one document per (purpose, phone).

use async_trait::async_trait;
use mongodb::{
    bson::{DateTime, doc, oid::ObjectId},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

use domain::store::{CodeCheck, CodeRecord, CodeStore, Issued, StoreError};
use domain::types::UserId;

use super::{MongoStore, oid, to_dt};

/// A one-time code; `_id` is `<purpose>:<phone>`, so a new code replaces the previous one.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CodeDoc {
    #[serde(rename = "_id")]
    id: String,
    phone: String,
    purpose: String,
    hash: mongodb::bson::Binary,
    #[serde(default)]
    user_id: Option<ObjectId>,
    sent_at: i64,
    /// Unix seconds, compared in filters; `expires_at` is the same instant for the TTL index.
    expires: i64,
    expires_at: DateTime,
    attempts: u32,
}

pub(super) fn code_id(purpose: &str, phone: &str) -> String {
    format!("{purpose}:{phone}")
}

impl From<CodeDoc> for CodeRecord {
    fn from(d: CodeDoc) -> Self {
        Self {
            phone: d.phone,
            purpose: d.purpose,
            hash: d.hash.bytes,
            user_id: d.user_id.map(|o| UserId::from_bytes(o.bytes())),
            sent_at: d.sent_at,
            expires_at: d.expires,
            attempts: d.attempts,
        }
    }
}

#[async_trait]
impl CodeStore for MongoStore {
    async fn issue_code(
        &self,
        code: &CodeRecord,
        cooldown_secs: i64,
    ) -> Result<Issued, StoreError> {
        let c = self.db()?;
        // No index decides anything here (`_id` is the key); the expiry index comes with the
        // first account's indexes, so a recovery instance's first code waits for no DDL.
        let id = code_id(&code.purpose, &code.phone);
        let fields = doc! {
            "phone": &code.phone,
            "purpose": &code.purpose,
            "hash": mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: code.hash.clone(),
            },
            "user_id": code.user_id.as_ref().map(oid),
            "sent_at": code.sent_at,
            "expires": code.expires_at,
            "expires_at": to_dt(code.expires_at),
            "attempts": 0_i32,
        };
        // Replace the code only if the previous one is older than the cooldown. A code in its
        // cooldown does not match the filter, so the upsert's insert collides with its `_id`
        // (E11000): that is how "too soon" comes back, decided by the server in one step.
        let replaced = self
            .timed(async {
                c.codes
                    .update_one(
                        doc! { "_id": &id, "sent_at": { "$lte": code.sent_at - cooldown_secs } },
                        doc! { "$set": fields.clone() },
                    )
                    .upsert(true)
                    .await
            })
            .await;
        match replaced {
            Ok(_) => Ok(Issued::Stored),
            Err(StoreError::Duplicate) => {
                let prev = self
                    .timed(async { c.codes.find_one(doc! { "_id": &id }).await })
                    .await?;
                let sent = prev.map_or(code.sent_at, |p| p.sent_at);
                Ok(Issued::Cooldown {
                    retry_after: (sent + cooldown_secs - code.sent_at).max(1),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn reserve_code_attempt(
        &self,
        purpose: &str,
        phone: &str,
        max_attempts: u32,
        now: i64,
    ) -> Result<CodeCheck, StoreError> {
        let c = self.db()?;
        let id = code_id(purpose, phone);
        let reserved = self
            .timed(async {
                c.codes
                    .find_one_and_update(
                        doc! {
                            "_id": &id,
                            "expires": { "$gt": now },
                            "attempts": { "$lt": i64::from(max_attempts) },
                        },
                        doc! { "$inc": { "attempts": 1 } },
                    )
                    .return_document(ReturnDocument::After)
                    .await
            })
            .await?;
        Ok(match reserved {
            Some(d) => CodeCheck::Reserved(d.into()),
            None => CodeCheck::Unavailable,
        })
    }

    async fn delete_codes(&self, phone: &str) -> Result<u64, StoreError> {
        let c = self.db()?;
        let r = self
            .timed(async { c.codes.delete_many(doc! { "phone": phone }).await })
            .await?;
        Ok(r.deleted_count)
    }

    async fn spend_code(
        &self,
        purpose: &str,
        phone: &str,
        hash: &[u8],
    ) -> Result<bool, StoreError> {
        let c = self.db()?;
        let filter = doc! {
            "_id": code_id(purpose, phone),
            "hash": mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: hash.to_vec(),
            },
        };
        let r = self
            .timed(async { c.codes.delete_one(filter).await })
            .await?;
        Ok(r.deleted_count == 1)
    }

    async fn live_code(
        &self,
        purpose: &str,
        phone: &str,
        now: i64,
    ) -> Result<Option<CodeRecord>, StoreError> {
        let c = self.db()?;
        let id = code_id(purpose, phone);
        Ok(self
            .timed(async {
                c.codes
                    .find_one(doc! { "_id": &id, "expires": { "$gt": now } })
                    .await
            })
            .await?
            .map(Into::into))
    }
}
