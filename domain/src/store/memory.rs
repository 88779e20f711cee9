//! The embedded store: the dev server without `MONGO_URI`, and fast unit tests.
//! One lock per collection makes each operation atomic, as a unique index would.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{
    AttemptPolicy, Attempts, BudgetStore, Ceremony, CeremonyId, CeremonyKind, CeremonyStore,
    CodeCheck, CodeRecord, CodeStore, Consumed, Issued, LoginAttemptStore, Reservation, Secret,
    SessionRecord, SessionStore, StoreError, UserPatch, UserRecord, UserStore, window_of,
};
use crate::{
    events::{self, Event, EventKind, OutboxStore, Pending, Until},
    identity::Identifier,
    types::UserId,
};

/// In-process users and sessions.
#[derive(Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<UserId, UserRecord>>,
    sessions: Mutex<HashMap<String, SessionRecord>>,
    attempts: Mutex<HashMap<String, Attempts>>,
    /// Use counts by (key, window start), with the window's end.
    budgets: Mutex<HashMap<(String, i64), (u32, i64)>>,
    /// One-time codes by (purpose, phone).
    codes: Mutex<HashMap<(String, String), CodeRecord>>,
    ceremonies: Mutex<HashMap<CeremonyId, Ceremony>>,
    /// Whether changes record lifecycle events (`EVENTS_BUS` set).
    events_on: bool,
    /// Events not yet delivered. Each is recorded under the lock of the change it reports,
    /// so here a deletion's event needs no staging.
    outbox: std::sync::Mutex<Vec<Event>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// This store, recording lifecycle events with every change when `on`.
    pub fn with_events(mut self, on: bool) -> Self {
        self.events_on = on;
        self
    }

    /// Records `events` (taken under the lock of the change they report).
    fn record(&self, events: Vec<Event>) {
        if !self.events_on || events.is_empty() {
            return;
        }
        events::journal::record(events.iter().cloned().map(Pending::Embedded));
        if let Ok(mut o) = self.outbox.lock() {
            o.extend(events);
        }
    }
}

/// Unix seconds now, for a deletion's event (the store calls carry no clock).
fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// True when an account other than `user` holds one of `user`'s identifiers.
fn clashes(users: &HashMap<UserId, UserRecord>, user: &UserRecord) -> bool {
    users
        .values()
        .filter(|u| u.id != user.id)
        .any(|u| user.identifiers.iter().any(|r| u.holds(&r.identifier)))
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let mut users = self.users.lock().await;
        if users.contains_key(&user.id) || clashes(&users, user) {
            return Err(StoreError::Duplicate);
        }
        users.insert(user.id, user.clone());
        self.record(vec![Event::created(user)]);
        Ok(())
    }

    async fn find_user_by(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .users
            .lock()
            .await
            .values()
            .find(|u| u.holds(identifier))
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
        let Some(mut user) = users.get(id).cloned() else {
            return Ok(None);
        };
        patch.apply(&mut user, now);
        if clashes(&users, &user) {
            return Err(StoreError::Duplicate);
        }
        let before = users.insert(*id, user.clone());
        self.record(events::for_update(
            *id,
            patch,
            before.as_ref(),
            Some(&user),
            now,
        ));
        Ok(Some(user))
    }

    async fn touch_credential(
        &self,
        id: &UserId,
        credential_id: &str,
        at: i64,
    ) -> Result<Option<UserRecord>, StoreError> {
        let mut users = self.users.lock().await;
        let Some(user) = users.get_mut(id) else {
            return Ok(None);
        };
        if let Some(c) = user
            .credentials
            .iter_mut()
            .find(|c| c.record.id == credential_id)
        {
            c.record.last_used_at = Some(at);
        }
        Ok(Some(user.clone()))
    }

    async fn swap_credential_secret(
        &self,
        id: &UserId,
        credential_id: &str,
        expected: &Secret,
        secret: &Secret,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut users = self.users.lock().await;
        let Some(user) = users.get_mut(id) else {
            return Ok(false);
        };
        let Some(c) = user
            .credentials
            .iter_mut()
            .find(|c| c.record.id == credential_id && &c.secret == expected)
        else {
            return Ok(false);
        };
        c.secret = secret.clone();
        user.updated_at = now;
        Ok(true)
    }

    async fn delete_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let gone = self.users.lock().await.remove(id);
        if gone.is_some() {
            let e = Event::new(
                EventKind::UserDeleted,
                *id,
                wall_now(),
                serde_json::json!({}),
            );
            self.record(vec![e]);
        }
        Ok(gone)
    }

    async fn users_after(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let users = self.users.lock().await;
        let mut page: Vec<UserRecord> = users
            .values()
            .filter(|u| after.is_none_or(|a| u.id > *a))
            .cloned()
            .collect();
        page.sort_by_key(|u| u.id);
        page.truncate(limit);
        Ok(page)
    }

    async fn delete_unverified_user(
        &self,
        identifier: &Identifier,
        created_before: i64,
    ) -> Result<bool, StoreError> {
        let mut users = self.users.lock().await;
        let gone: Vec<UserId> = users
            .values()
            .filter(|u| super::stranded(u, identifier, created_before))
            .map(|u| u.id)
            .collect();
        for id in &gone {
            users.remove(id);
            let data = serde_json::json!({"reason": "unproven_signup_replaced"});
            self.record(vec![Event::new(
                EventKind::UserDeleted,
                *id,
                wall_now(),
                data,
            )]);
        }
        Ok(!gone.is_empty())
    }

    async fn find_user_by_pending(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .users
            .lock()
            .await
            .values()
            .find(|u| u.pending.iter().any(|p| &p.identifier == identifier))
            .cloned())
    }
}

#[async_trait]
impl CodeStore for MemoryStore {
    async fn issue_code(
        &self,
        code: &CodeRecord,
        cooldown_secs: i64,
    ) -> Result<Issued, StoreError> {
        let mut codes = self.codes.lock().await;
        let key = (code.purpose.clone(), code.phone.clone());
        if let Some(prev) = codes.get(&key)
            && prev.sent_at > code.sent_at - cooldown_secs
        {
            return Ok(Issued::Cooldown {
                retry_after: prev.sent_at + cooldown_secs - code.sent_at,
            });
        }
        codes.insert(key, code.clone());
        Ok(Issued::Stored)
    }

    async fn reserve_code_attempt(
        &self,
        purpose: &str,
        phone: &str,
        max_attempts: u32,
        now: i64,
    ) -> Result<CodeCheck, StoreError> {
        let mut codes = self.codes.lock().await;
        match codes.get_mut(&(purpose.to_owned(), phone.to_owned())) {
            Some(c) if c.expires_at > now && c.attempts < max_attempts => {
                c.attempts += 1;
                Ok(CodeCheck::Reserved(c.clone()))
            }
            _ => Ok(CodeCheck::Unavailable),
        }
    }

    async fn delete_codes(&self, phone: &str) -> Result<u64, StoreError> {
        let mut codes = self.codes.lock().await;
        let before = codes.len();
        codes.retain(|(_, p), _| p != phone);
        Ok((before - codes.len()) as u64)
    }

    async fn spend_code(
        &self,
        purpose: &str,
        phone: &str,
        hash: &[u8],
    ) -> Result<bool, StoreError> {
        let mut codes = self.codes.lock().await;
        let key = (purpose.to_owned(), phone.to_owned());
        if codes.get(&key).is_some_and(|c| c.hash == hash) {
            codes.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn live_code(
        &self,
        purpose: &str,
        phone: &str,
        now: i64,
    ) -> Result<Option<CodeRecord>, StoreError> {
        let codes = self.codes.lock().await;
        Ok(codes
            .get(&(purpose.to_owned(), phone.to_owned()))
            .filter(|c| c.expires_at > now)
            .cloned())
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
        let gone = self.sessions.lock().await.remove(id);
        if let Some(s) = &gone {
            self.record(vec![revoked(s.user_id, vec![id.to_owned()])]);
        }
        Ok(gone.is_some())
    }

    async fn rotate_refresh(
        &self,
        id: &str,
        expected: &str,
        next: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut sessions = self.sessions.lock().await;
        let Some(s) = sessions
            .get_mut(id)
            .filter(|s| s.refresh_digest == expected)
        else {
            return Ok(None);
        };
        s.refresh_prev = std::mem::replace(&mut s.refresh_digest, next.to_owned());
        s.refresh_rotated_at = now;
        s.refresh_spent.push(s.refresh_prev.clone());
        let over = s
            .refresh_spent
            .len()
            .saturating_sub(super::SPENT_REFRESH_KEPT);
        s.refresh_spent.drain(..over);
        s.expires_at = expires_at;
        Ok(Some(s.clone()))
    }

    async fn step_up_session(
        &self,
        id: &str,
        method: &str,
        at: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut sessions = self.sessions.lock().await;
        Ok(sessions.get_mut(id).map(|s| {
            s.assurance = s.assurance().stepped_up(method, at);
            s.clone()
        }))
    }

    async fn delete_user_sessions(
        &self,
        user: &UserId,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.end_sessions(user, |id, _| Some(id) != keep).await
    }

    async fn delete_sessions_opened_by(
        &self,
        user: &UserId,
        credential_id: &str,
    ) -> Result<u64, StoreError> {
        self.end_sessions(user, |_, s| s.opened.credential_id == credential_id)
            .await
    }
}

impl MemoryStore {
    /// Ends `user`'s sessions `which` picks, under one lock, with their event.
    async fn end_sessions(
        &self,
        user: &UserId,
        which: impl Fn(&str, &SessionRecord) -> bool,
    ) -> Result<u64, StoreError> {
        let mut sessions = self.sessions.lock().await;
        let ended: Vec<String> = sessions
            .iter()
            .filter(|(id, s)| &s.user_id == user && which(id, s))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ended {
            sessions.remove(id);
        }
        if !ended.is_empty() {
            self.record(vec![revoked(*user, ended.clone())]);
        }
        Ok(ended.len() as u64)
    }
}

/// `session.revoked` for `sessions` of `user`.
pub(crate) fn revoked(user: UserId, sessions: Vec<String>) -> Event {
    // Session ids are handles a token is checked against: the event says how many, not which.
    let data = serde_json::json!({ "sessions": sessions.len() });
    Event::new(EventKind::SessionRevoked, user, wall_now(), data)
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn pending_events(
        &self,
        made_before: i64,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        let o = self
            .outbox
            .lock()
            .map_err(|_| StoreError::Other("outbox lock poisoned".into()))?;
        Ok(o.iter()
            .filter(|e| e.at <= made_before)
            .take(limit)
            .cloned()
            .map(Pending::Embedded)
            .collect())
    }

    async fn deletion_done(&self, event: &Event, until: &Until) -> Result<bool, StoreError> {
        Ok(match until {
            Until::Done => true,
            Until::UserAbsent => !self.users.lock().await.contains_key(&event.user_id),
            Until::SessionsAbsent(ids) => {
                let s = self.sessions.lock().await;
                ids.iter().all(|id| !s.contains_key(id))
            }
        })
    }

    async fn mark_sent(&self, sent: &[Pending]) -> Result<(), StoreError> {
        let mut o = self
            .outbox
            .lock()
            .map_err(|_| StoreError::Other("outbox lock poisoned".into()))?;
        o.retain(|e| !sent.iter().any(|p| p.event().id == e.id));
        Ok(())
    }
}

#[async_trait]
impl LoginAttemptStore for MemoryStore {
    async fn attempts(&self, key: &str) -> Result<Option<Attempts>, StoreError> {
        Ok(self.attempts.lock().await.get(key).copied())
    }

    async fn reserve_attempt(
        &self,
        key: &str,
        now: i64,
        policy: &AttemptPolicy,
    ) -> Result<Reservation, StoreError> {
        let mut all = self.attempts.lock().await;
        let a = all.entry(key.to_owned()).or_default();
        if a.locked_until > now {
            return Ok(Reservation::Locked {
                until: a.locked_until,
            });
        }
        let fresh = a.failures == 0 || a.last_failure_at <= now - policy.memory_secs;
        a.failures = if fresh {
            1
        } else {
            a.failures.saturating_add(1)
        };
        a.last_failure_at = now;
        a.locked_until = policy
            .lock_secs(a.failures)
            .map_or(0, |secs| now.saturating_add(secs));
        Ok(Reservation::Granted {
            attempt: a.failures,
        })
    }

    async fn clear_attempts(&self, key: &str) -> Result<(), StoreError> {
        self.attempts.lock().await.remove(key);
        Ok(())
    }
}

#[async_trait]
impl BudgetStore for MemoryStore {
    async fn consume(
        &self,
        key: &str,
        limit: u32,
        window_secs: i64,
        now: i64,
    ) -> Result<Consumed, StoreError> {
        let (start, end) = window_of(now, window_secs);
        let mut all = self.budgets.lock().await;
        // Each counter expires at its own window's end (counters of hourly and daily windows
        // share this map), as MongoDB's TTL index expires each document.
        all.retain(|_, (_, until)| *until > now);
        let slot = (key.to_owned(), start);
        let count = all.get(&slot).map_or(0, |(c, _)| *c);
        if count >= limit {
            // Refused: nothing counted, nothing stored.
            return Ok(Consumed::Exceeded {
                retry_after: end - now,
            });
        }
        all.insert(slot, (count + 1, end));
        Ok(Consumed::Within { count: count + 1 })
    }

    async fn used(&self, key: &str, window_secs: i64, now: i64) -> Result<u32, StoreError> {
        let (start, end) = window_of(now, window_secs);
        let all = self.budgets.lock().await;
        Ok(all
            .get(&(key.to_owned(), start))
            .filter(|(_, until)| *until > now && *until == end)
            .map_or(0, |(c, _)| *c))
    }

    async fn release(&self, key: &str, window_secs: i64, now: i64) -> Result<(), StoreError> {
        let (start, _) = window_of(now, window_secs);
        let mut all = self.budgets.lock().await;
        let slot = (key.to_owned(), start);
        if let Some((count, _)) = all.get_mut(&slot) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                all.remove(&slot);
            }
        }
        Ok(())
    }

    async fn clear_budget(&self, key: &str) -> Result<(), StoreError> {
        self.budgets.lock().await.retain(|(k, _), _| k != key);
        Ok(())
    }
}

#[async_trait]
impl CeremonyStore for MemoryStore {
    async fn put_ceremony(&self, ceremony: &Ceremony, now: i64) -> Result<(), StoreError> {
        let mut all = self.ceremonies.lock().await;
        // What MongoDB's TTL index does in the background: expired ones go.
        all.retain(|_, c| c.expires_at > now);
        if all.contains_key(&ceremony.id) {
            return Err(StoreError::Duplicate);
        }
        all.insert(ceremony.id.clone(), ceremony.clone());
        Ok(())
    }

    async fn take_ceremony(
        &self,
        id: &CeremonyId,
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<Ceremony>, StoreError> {
        let mut all = self.ceremonies.lock().await;
        match all.get(id) {
            Some(c) if c.kind == kind && c.expires_at > now => Ok(all.remove(id)),
            _ => Ok(None),
        }
    }

    async fn find_ceremony(
        &self,
        id: &CeremonyId,
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<Ceremony>, StoreError> {
        let all = self.ceremonies.lock().await;
        Ok(all
            .get(id)
            .filter(|c| c.kind == kind && c.expires_at > now)
            .cloned())
    }
}
