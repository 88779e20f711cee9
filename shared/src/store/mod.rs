//! Persistence behind traits, so domain code runs unchanged on MongoDB and in memory.

pub mod memory;
pub mod mongo;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::types::{Name, Phone, UserId};

/// A stored user. The password hash never leaves the domain layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    #[serde(rename = "_id")]
    pub id: UserId,
    pub first_name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<Name>,
    pub last_name: Name,
    pub phone: Phone,
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub first_name: Option<Name>,
    /// `Some(None)` removes the middle name.
    pub middle_name: Option<Option<Name>>,
    pub last_name: Option<Name>,
    pub phone: Option<Phone>,
    pub password_hash: Option<String>,
}

impl UserPatch {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the patch to a record in memory (the embedded store, and tests).
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
        if let Some(v) = &self.phone {
            user.phone = v.clone();
        }
        if let Some(v) = &self.password_hash {
            user.password_hash = v.clone();
        }
        user.updated_at = now;
    }
}

/// A login session. Only a keyed digest of its token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: UserId,
    pub token_digest: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Idle deadline, never past `absolute_expires_at`; refreshed by use. Unix seconds.
    pub expires_at: i64,
    /// Hard deadline. Unix seconds.
    pub absolute_expires_at: i64,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// A unique index refused the write (the phone is taken).
    #[error("duplicate key")]
    Duplicate,
    /// The database could not be reached in time; worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else; logged, answered with a generic 500.
    #[error("store error: {0}")]
    Other(String),
}

/// Users, unique by phone.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a new user; [`StoreError::Duplicate`] when the phone is taken, decided atomically.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// The user with this canonical phone.
    async fn find_user_by_phone(&self, phone: &Phone) -> Result<Option<UserRecord>, StoreError>;
    /// The user with this id.
    async fn find_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// Applies `patch` atomically and returns the user after it; `None` if there is no such user.
    async fn update_user(
        &self,
        id: &UserId,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserRecord>, StoreError>;
}

/// Login sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The session with this id, expired or not (callers check the deadlines).
    async fn find_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Moves the idle deadline; false when the session is gone.
    async fn touch_session(&self, id: &str, expires_at: i64) -> Result<bool, StoreError>;
    /// Deletes one session; false when it was already gone.
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError>;
    /// Deletes every session of `user` except `keep`; returns how many went.
    async fn delete_user_sessions(
        &self,
        user: &UserId,
        keep: Option<&str>,
    ) -> Result<u64, StoreError>;
}

/// Consecutive failed logins for one phone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    pub failures: u32,
    /// Unix seconds; logins are refused before it.
    pub locked_until: i64,
    /// Unix seconds.
    pub last_failure_at: i64,
}

/// Failed-login counters, shared by every instance so a lock holds across them.
#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    /// The counter for `key`, if any.
    async fn attempts(&self, key: &str) -> Result<Option<Attempts>, StoreError>;
    /// Counts one failure at `now`, atomically. A counter whose last failure is `window`
    /// seconds old or more starts again from one. Returns the counter after the update.
    async fn record_failure(
        &self,
        key: &str,
        now: i64,
        window: i64,
    ) -> Result<Attempts, StoreError>;
    /// Refuses logins until `until` (never moving an existing lock earlier); the record may be
    /// deleted at `expires_at`.
    async fn lock(&self, key: &str, until: i64, expires_at: i64) -> Result<(), StoreError>;
    /// Forgets the counter (after a successful login).
    async fn clear_attempts(&self, key: &str) -> Result<(), StoreError>;
}

/// Everything the handlers need from persistence.
pub trait Store: UserStore + SessionStore + LoginAttemptStore {}
impl<T: UserStore + SessionStore + LoginAttemptStore> Store for T {}
