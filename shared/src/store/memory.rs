//! The embedded store: the dev server without `MONGO_URI`, and fast unit tests.
//! One lock per collection makes each operation atomic, as a unique index would.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{
    Attempts, LoginAttemptStore, SessionRecord, SessionStore, StoreError, UserPatch, UserRecord,
    UserStore,
};
use crate::types::{Phone, UserId};

/// In-process users and sessions.
#[derive(Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<UserId, UserRecord>>,
    sessions: Mutex<HashMap<String, SessionRecord>>,
    attempts: Mutex<HashMap<String, Attempts>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let mut users = self.users.lock().await;
        if users.contains_key(&user.id) || users.values().any(|u| u.phone == user.phone) {
            return Err(StoreError::Duplicate);
        }
        users.insert(user.id, user.clone());
        Ok(())
    }

    async fn find_user_by_phone(&self, phone: &Phone) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .users
            .lock()
            .await
            .values()
            .find(|u| &u.phone == phone)
            .cloned())
    }

    async fn find_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.users.lock().await.get(id).cloned())
    }

    async fn update_user(
        &self,
        id: &UserId,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserRecord>, StoreError> {
        let mut users = self.users.lock().await;
        if let Some(phone) = &patch.phone
            && users.values().any(|u| &u.phone == phone && &u.id != id)
        {
            return Err(StoreError::Duplicate);
        }
        Ok(users.get_mut(id).map(|user| {
            patch.apply(user, now);
            user.clone()
        }))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut sessions = self.sessions.lock().await;
        if sessions.contains_key(&session.id) {
            return Err(StoreError::Duplicate);
        }
        sessions.insert(session.id.clone(), session.clone());
        Ok(())
    }

    async fn find_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.sessions.lock().await.get(id).cloned())
    }

    async fn touch_session(&self, id: &str, expires_at: i64) -> Result<bool, StoreError> {
        Ok(self
            .sessions
            .lock()
            .await
            .get_mut(id)
            .map(|s| s.expires_at = expires_at)
            .is_some())
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.sessions.lock().await.remove(id).is_some())
    }

    async fn delete_user_sessions(
        &self,
        user: &UserId,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut sessions = self.sessions.lock().await;
        let before = sessions.len();
        sessions.retain(|id, s| &s.user_id != user || Some(id.as_str()) == keep);
        Ok((before - sessions.len()) as u64)
    }
}

#[async_trait]
impl LoginAttemptStore for MemoryStore {
    async fn attempts(&self, key: &str) -> Result<Option<Attempts>, StoreError> {
        Ok(self.attempts.lock().await.get(key).copied())
    }

    async fn record_failure(
        &self,
        key: &str,
        now: i64,
        window: i64,
    ) -> Result<Attempts, StoreError> {
        let mut all = self.attempts.lock().await;
        let a = all.entry(key.to_owned()).or_default();
        if a.failures == 0 || a.last_failure_at <= now - window {
            *a = Attempts {
                failures: 1,
                locked_until: 0,
                last_failure_at: now,
            };
        } else {
            a.failures += 1;
            a.last_failure_at = now;
        }
        Ok(*a)
    }

    async fn lock(&self, key: &str, until: i64, _expires_at: i64) -> Result<(), StoreError> {
        if let Some(a) = self.attempts.lock().await.get_mut(key) {
            a.locked_until = a.locked_until.max(until);
        }
        Ok(())
    }

    async fn clear_attempts(&self, key: &str) -> Result<(), StoreError> {
        self.attempts.lock().await.remove(key);
        Ok(())
    }
}
