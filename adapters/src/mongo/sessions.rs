//! Sessions and their refresh-token families in `<collection>_sessions`.

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::{
    bson::{DateTime, doc, oid::ObjectId},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

use domain::store::{SessionRecord, SessionStore, StoreError};
use domain::{
    credential::{Assurance, Opened},
    types::UserId,
};

use super::{MongoStore, oid, to_dt};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SessionDoc {
    #[serde(rename = "_id")]
    id: String,
    user_id: ObjectId,
    token_digest: String,
    created_at: DateTime,
    expires_at: DateTime,
    absolute_expires_at: DateTime,
    #[serde(default)]
    refresh_digest: String,
    #[serde(default)]
    refresh_prev: String,
    #[serde(default)]
    refresh_rotated_at: i64,
    #[serde(default)]
    refresh_spent: Vec<String>,
    /// Absent on sessions opened before sessions recorded it.
    #[serde(default)]
    credential_id: String,
    #[serde(default)]
    method: String,
    /// RFC 8176 methods; absent on sessions opened before sessions recorded them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    amr: Vec<String>,
    #[serde(default)]
    auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aal2_at: Option<i64>,
}

impl From<&SessionRecord> for SessionDoc {
    fn from(s: &SessionRecord) -> Self {
        Self {
            id: s.id.clone(),
            user_id: oid(&s.user_id),
            token_digest: s.token_digest.clone(),
            created_at: to_dt(s.created_at),
            expires_at: to_dt(s.expires_at),
            absolute_expires_at: to_dt(s.absolute_expires_at),
            refresh_digest: s.refresh_digest.clone(),
            refresh_prev: s.refresh_prev.clone(),
            refresh_rotated_at: s.refresh_rotated_at,
            refresh_spent: s.refresh_spent.clone(),
            credential_id: s.opened.credential_id.clone(),
            method: s.opened.method.clone(),
            amr: s.assurance.amr.clone(),
            auth_time: s.assurance.auth_time,
            aal2_at: s.assurance.aal2_at,
        }
    }
}

impl From<SessionDoc> for SessionRecord {
    fn from(d: SessionDoc) -> Self {
        Self {
            id: d.id,
            user_id: UserId::from_bytes(d.user_id.bytes()),
            token_digest: d.token_digest,
            created_at: d.created_at.timestamp_millis() / 1000,
            expires_at: d.expires_at.timestamp_millis() / 1000,
            absolute_expires_at: d.absolute_expires_at.timestamp_millis() / 1000,
            refresh_digest: d.refresh_digest,
            refresh_prev: d.refresh_prev,
            refresh_rotated_at: d.refresh_rotated_at,
            refresh_spent: d.refresh_spent,
            opened: Opened {
                credential_id: d.credential_id,
                method: d.method,
            },
            assurance: Assurance {
                amr: d.amr,
                auth_time: d.auth_time,
                aal2_at: d.aal2_at,
            },
        }
    }
}

#[async_trait]
impl SessionStore for MongoStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let c = self.db()?;
        let d = SessionDoc::from(session);
        self.timed(async { c.sessions.insert_one(&d).await })
            .await
            .map(|_| ())
    }

    async fn find_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let c = self.db()?;
        Ok(self
            .timed(async { c.sessions.find_one(doc! { "_id": id }).await })
            .await?
            .map(SessionRecord::from))
    }

    async fn touch_session(&self, id: &str, expires_at: i64) -> Result<bool, StoreError> {
        let c = self.db()?;
        let r = self
            .timed(async {
                c.sessions
                    .update_one(
                        doc! { "_id": id },
                        doc! { "$set": { "expires_at": to_dt(expires_at) } },
                    )
                    .await
            })
            .await?;
        Ok(r.matched_count == 1)
    }

    /// With events on, the session is read for its user and `session.revoked` staged first.
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let c = self.db()?;
        let staged = match self.events_on {
            false => None,
            true => match self.find_session(id).await? {
                Some(s) => self.stage_revoked(s.user_id, vec![id.to_owned()]).await?,
                None => return Ok(false),
            },
        };
        let r = self
            .timed(async { c.sessions.delete_one(doc! { "_id": id }).await })
            .await?;
        self.staged_done(staged, r.deleted_count == 1).await?;
        Ok(r.deleted_count == 1)
    }

    async fn rotate_refresh(
        &self,
        id: &str,
        expected: &str,
        next: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let c = self.db()?;
        let kept = i32::try_from(domain::store::SPENT_REFRESH_KEPT).unwrap_or(i32::MAX);
        Ok(self
            .timed(async {
                c.sessions
                    .find_one_and_update(
                        doc! { "_id": id, "refresh_digest": expected },
                        doc! {
                            "$set": {
                                "refresh_digest": next,
                                "refresh_prev": expected,
                                "refresh_rotated_at": now,
                                "expires_at": to_dt(expires_at),
                            },
                            "$push": { "refresh_spent": { "$each": [expected], "$slice": -kept } },
                        },
                    )
                    .return_document(ReturnDocument::After)
                    .await
            })
            .await?
            .map(SessionRecord::from))
    }

    async fn step_up_session(
        &self,
        id: &str,
        method: &str,
        at: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let c = self.db()?;
        let Some(before) = self.find_session(id).await? else {
            return Ok(None);
        };
        // The methods as recorded (or as an earlier release's session implies), then the new
        // ones: `$addToSet` keeps the order and adds each once, whatever races it.
        let mut amr = before.assurance().amr;
        amr.extend([method.to_owned(), domain::credential::MFA_METHOD.to_owned()]);
        let after = self
            .timed(async {
                c.sessions
                    .find_one_and_update(
                        doc! { "_id": id },
                        doc! {
                            "$addToSet": { "amr": { "$each": amr } },
                            "$set": { "auth_time": at, "aal2_at": at },
                        },
                    )
                    .return_document(ReturnDocument::After)
                    .await
            })
            .await?;
        Ok(after.map(SessionRecord::from))
    }

    async fn delete_user_sessions(
        &self,
        user: &UserId,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut filter = doc! { "user_id": oid(user) };
        if let Some(keep) = keep {
            filter.insert("_id", doc! { "$ne": keep });
        }
        self.delete_sessions_matching(user, filter).await
    }

    async fn delete_sessions_opened_by(
        &self,
        user: &UserId,
        credential_id: &str,
    ) -> Result<u64, StoreError> {
        let filter = doc! { "user_id": oid(user), "credential_id": credential_id };
        self.delete_sessions_matching(user, filter).await
    }
}

impl MongoStore {
    /// Deletes `user`'s sessions `filter` matches (with events on, `session.revoked` staged
    /// first for the ones read); how many went.
    async fn delete_sessions_matching(
        &self,
        user: &UserId,
        filter: mongodb::bson::Document,
    ) -> Result<u64, StoreError> {
        let c = self.db()?;
        let staged = if self.events_on {
            // The sessions this revokes, read first: the staged event waits for them.
            let ids: Vec<String> = self
                .timed(async {
                    c.sessions
                        .clone_with_type::<mongodb::bson::Document>()
                        .find(filter.clone())
                        .projection(doc! { "_id": 1 })
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await?
                .iter()
                .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
                .collect();
            if ids.is_empty() {
                return Ok(0);
            }
            self.stage_revoked(*user, ids).await?
        } else {
            None
        };
        let r = self
            .timed(async { c.sessions.delete_many(filter).await })
            .await?;
        self.staged_done(staged, r.deleted_count > 0).await?;
        Ok(r.deleted_count)
    }
}

impl MongoStore {
    /// Stages `session.revoked` for `ids` of `user`.
    async fn stage_revoked(
        &self,
        user: UserId,
        ids: Vec<String>,
    ) -> Result<Option<(domain::events::Event, domain::events::Until)>, StoreError> {
        use domain::events::{Event, EventKind, Until};
        // The ids stay in the staged record (the drain's proof); the delivered event says how
        // many sessions ended, not which.
        let e = Event::new(
            EventKind::SessionRevoked,
            user,
            super::wall_now(),
            serde_json::json!({ "sessions": ids.len() }),
        );
        let until = Until::SessionsAbsent(ids);
        self.stage(&e, &until).await?;
        Ok(Some((e, until)))
    }
}
