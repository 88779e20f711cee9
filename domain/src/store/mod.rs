//! Persistence behind traits, so domain code runs unchanged on MongoDB and in memory.

pub mod ceremony;
pub mod memory;
mod user;

use async_trait::async_trait;

pub use ceremony::{Ceremony, CeremonyId, CeremonyKind, CeremonyStore};
pub use user::{
    CredentialChange, IdentifierChange, Secret, StoredCredential, UserPatch, UserRecord,
};

use crate::{
    credential::{Assurance, Opened},
    identity::Identifier,
    types::{Phone, UserId},
};

/// Whether `user` holds `identifier` and is a signup that proved nothing, made before
/// `created_before`: what a new signup of one of its identifiers may take over.
pub fn stranded(user: &UserRecord, identifier: &Identifier, created_before: i64) -> bool {
    user.holds(identifier)
        && user.identifiers.iter().all(|r| !r.verified())
        && user.created_at < created_before
}

/// A login session. Only keyed digests of its tokens are stored. The session is also its
/// refresh tokens' family: ending it ends them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Digest of the one refresh token that may be used next.
    pub refresh_digest: String,
    /// Digest of the refresh token it replaced, and when (for the concurrent-refresh grace).
    pub refresh_prev: String,
    pub refresh_rotated_at: i64,
    /// Digests of spent refresh tokens (the most recent [`SPENT_REFRESH_KEPT`]): presenting one
    /// again is reuse.
    pub refresh_spent: Vec<String>,
    /// The credential and method that opened it.
    pub opened: Opened,
    /// What the sign-in proved, raised by a step-up. Sessions opened before sessions recorded
    /// it have no methods: [`SessionRecord::assurance`] fills them in.
    pub assurance: Assurance,
}

impl SessionRecord {
    /// The session's assurance; for a session of an earlier release (no methods recorded),
    /// the method that opened it (else a password) at its creation, single-factor.
    pub fn assurance(&self) -> Assurance {
        if self.assurance.amr.is_empty() {
            let method = if self.opened.method.is_empty() {
                crate::credential::CredentialKind::Password.method()
            } else {
                self.opened.method.as_str()
            };
            Assurance::single(method, self.created_at)
        } else {
            self.assurance.clone()
        }
    }
}

/// Spent refresh-token digests kept per session (older ones are forgotten: presenting one of
/// those is an unknown token, 401, but not detected as reuse).
pub const SPENT_REFRESH_KEPT: usize = 64;

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// A unique index refused the write (an identifier is taken).
    #[error("duplicate key")]
    Duplicate,
    /// The database could not be reached in time; worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else; logged, answered with a generic 500.
    #[error("store error: {0}")]
    Other(String),
}

/// Users, each identifier unique across accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a new user; [`StoreError::Duplicate`] when one of its identifiers is held by
    /// another account, decided atomically.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// A hint that [`UserStore::insert_user`] follows once a password is hashed (tens of
    /// milliseconds): a store may get ready for it meanwhile, in the background (MongoDB
    /// creates its indexes, once per instance, instead of after the hash). Never needed for
    /// correctness: `insert_user` waits for whatever it depends on.
    fn prepare_insert(&self) {}
    /// The user holding `identifier`.
    async fn find_user_by(&self, identifier: &Identifier)
    -> Result<Option<UserRecord>, StoreError>;
    /// The user with this id.
    async fn find_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// Applies `patch` atomically and returns the user after it; `None` if there is no such
    /// user; [`StoreError::Duplicate`] (and nothing changed) when it would give the account an
    /// identifier another holds.
    async fn update_user(
        &self,
        id: &UserId,
        patch: &UserPatch,
        now: i64,
    ) -> Result<Option<UserRecord>, StoreError>;
    /// Records that the credential `credential_id` opened a session at `at`, atomically, and
    /// returns the user after it; `None` when the user is gone. (A login calls it after its
    /// session exists, so the answer also tells whether an operator disabled or deleted the
    /// account meanwhile.)
    async fn touch_credential(
        &self,
        id: &UserId,
        credential_id: &str,
        at: i64,
    ) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces the secret of credential `credential_id` with `secret`, only if it is still
    /// `expected`, in one atomic write: of any number of racing swaps from one value on any
    /// number of instances, exactly one wins (how a TOTP step or a recovery code is spent
    /// once). False when it is not `expected` any more, or the credential or user is gone.
    async fn swap_credential_secret(
        &self,
        id: &UserId,
        credential_id: &str,
        expected: &Secret,
        secret: &Secret,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes the user and answers what was deleted; `None` when there was no such user.
    async fn delete_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// Up to `limit` users with ids above `after` (from the first when `None`), in id order:
    /// export and maintenance walk every user a page at a time, in flat memory. A document
    /// that cannot be read as a user is left out.
    async fn users_after(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError>;
    /// Deletes the user holding `identifier` if it is [`stranded`]: none of its identifiers
    /// proven, created before `created_before` (its signup code has expired). An unverified
    /// signup never blocks the real owner for longer than a code lives, and an account that
    /// proved anything is never taken. Atomic (a proof landing meanwhile keeps the account);
    /// true when one went.
    async fn delete_unverified_user(
        &self,
        identifier: &Identifier,
        created_before: i64,
    ) -> Result<bool, StoreError>;
    /// The user waiting to prove `identifier` as a replacement, if any.
    async fn find_user_by_pending(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<UserRecord>, StoreError>;

    /// The user holding `phone`.
    async fn find_user_by_phone(&self, phone: &Phone) -> Result<Option<UserRecord>, StoreError> {
        self.find_user_by(&Identifier::Phone(phone.clone())).await
    }
    /// The user whose pending (unconfirmed) new phone is `phone`, if any.
    async fn find_user_by_pending_phone(
        &self,
        phone: &Phone,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.find_user_by_pending(&Identifier::Phone(phone.clone()))
            .await
    }
}

/// A one-time code as stored: one record per (purpose, phone), only a keyed hash of the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// The E.164 phone the code went to.
    pub phone: String,
    /// `otp::Purpose::as_str`.
    pub purpose: String,
    /// `otp::CodeHash` bytes.
    pub hash: Vec<u8>,
    /// The account the code is for (a signup's or a phone change's user); `None` for
    /// recovery of a phone no account has.
    pub user_id: Option<UserId>,
    /// Unix seconds: when it was issued (the resend cooldown counts from here).
    pub sent_at: i64,
    /// Unix seconds: refused from then on; the TTL index removes it.
    pub expires_at: i64,
    /// Comparisons reserved so far.
    pub attempts: u32,
}

/// The answer to [`CodeStore::issue_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// Stored, replacing (and so invalidating) any previous code for the phone and purpose.
    Stored,
    /// The previous code was sent less than the cooldown ago; nothing changed.
    Cooldown { retry_after: i64 },
}

/// The answer to [`CodeStore::reserve_code_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// One comparison is reserved (already counted); the record as it is now.
    Reserved(CodeRecord),
    /// No live code: none issued, expired, used, or its attempts spent.
    Unavailable,
}

/// One-time codes, shared by every instance.
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores `code`, replacing the previous one for its (purpose, phone), unless that one was
    /// sent less than `cooldown_secs` before `code.sent_at` (decided atomically).
    async fn issue_code(&self, code: &CodeRecord, cooldown_secs: i64)
    -> Result<Issued, StoreError>;
    /// Reserves one comparison against the live code for (purpose, phone), atomically and
    /// before the comparison runs: at most `max_attempts` are ever granted per code, however
    /// many requests race on however many instances.
    async fn reserve_code_attempt(
        &self,
        purpose: &str,
        phone: &str,
        max_attempts: u32,
        now: i64,
    ) -> Result<CodeCheck, StoreError>;
    /// Deletes every code sent to `phone`, whatever its purpose (an account being erased);
    /// returns how many went.
    async fn delete_codes(&self, phone: &str) -> Result<u64, StoreError>;
    /// Deletes the code for (purpose, phone) if its hash is still `hash` (single use: of two
    /// racing correct answers one wins); true when it was deleted.
    async fn spend_code(&self, purpose: &str, phone: &str, hash: &[u8])
    -> Result<bool, StoreError>;
    /// The live (unexpired) code for (purpose, phone), if any; nothing is reserved.
    async fn live_code(
        &self,
        purpose: &str,
        phone: &str,
        now: i64,
    ) -> Result<Option<CodeRecord>, StoreError>;
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
    /// Replaces the session's refresh token, atomically and only if `expected` is still its
    /// current digest: the old digest becomes `refresh_prev` (rotated at `now`) and joins the
    /// spent list; the idle deadline moves to `expires_at`. Returns the session after the
    /// swap, or `None` when the session is gone or another rotation won.
    async fn rotate_refresh(
        &self,
        id: &str,
        expected: &str,
        next: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Records a second factor `method` proven at `at` on session `id` ([`Assurance::stepped_up`]),
    /// in one write; the session as it is after, or `None` if it is gone.
    async fn step_up_session(
        &self,
        id: &str,
        method: &str,
        at: i64,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Deletes every session of `user` except `keep`; returns how many went.
    async fn delete_user_sessions(
        &self,
        user: &UserId,
        keep: Option<&str>,
    ) -> Result<u64, StoreError>;
    /// Deletes the sessions of `user` that credential `credential_id` opened (a credential
    /// removed takes its sessions with it); returns how many went.
    async fn delete_sessions_opened_by(
        &self,
        user: &UserId,
        credential_id: &str,
    ) -> Result<u64, StoreError>;
}

/// Password checks counted against one key (a phone for logins, a user for
/// `current_password`) since its last success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Checks reserved since the last success (or since the memory lapsed).
    pub failures: u32,
    /// Unix seconds; checks are refused before it.
    pub locked_until: i64,
    /// Unix seconds.
    pub last_failure_at: i64,
}

/// How reservations lock: from the `threshold`-th check on, each reserved check locks the key
/// for 1 s, doubling per further check, capped at `max_lock_secs`. A count whose last check is
/// `memory_secs` old starts again (the memory outlives the longest lock, so a lock running
/// out never hands out a fresh set of guesses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    pub threshold: u32,
    pub max_lock_secs: i64,
    pub memory_secs: i64,
}

impl AttemptPolicy {
    /// Seconds the `attempt`-th check locks for, if any: 1 s at the threshold, doubling, capped.
    pub fn lock_secs(&self, attempt: u32) -> Option<i64> {
        let over = attempt.checked_sub(self.threshold)?;
        let max = self.max_lock_secs.max(1);
        Some(
            1i64.checked_shl(over)
                .filter(|d| *d > 0)
                .unwrap_or(max)
                .min(max),
        )
    }
}

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The check may run; it is the `attempt`-th since the last success, and is already
    /// counted (and, past the threshold, already locked for) as a failure.
    Granted { attempt: u32 },
    /// Locked until this Unix second; nothing was counted.
    Locked { until: i64 },
}

/// Password-check counters, shared by every instance so a limit holds across them.
#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    /// The counter for `key`, if any (inspection and tests).
    async fn attempts(&self, key: &str) -> Result<Option<Attempts>, StoreError>;
    /// Reserves one password check for `key` at `now`, atomically, before the check runs:
    /// refused while the key is locked; otherwise counted as a failure and, from the policy's
    /// threshold on, locking the key at once. However many reservations race, on however many
    /// instances, at most `threshold` are granted before the first lock.
    async fn reserve_attempt(
        &self,
        key: &str,
        now: i64,
        policy: &AttemptPolicy,
    ) -> Result<Reservation, StoreError>;
    /// Forgets the counter (after a successful check).
    async fn clear_attempts(&self, key: &str) -> Result<(), StoreError>;
}

/// The answer to [`BudgetStore::consume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// Counted; `count` uses of the window so far, this one included.
    Within { count: u32 },
    /// Over the limit until the window ends, `retry_after` seconds from now. This use is not
    /// counted and nothing is written (a refused request costs no storage); the window is
    /// fixed, so hammering a spent budget does not reopen it either.
    Exceeded { retry_after: i64 },
}

/// Fixed-window use counters (phone changes per user and per address; SMS budgets).
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Counts one use of `key` in the current `window_secs` window if it is within `limit`,
    /// atomically: at most `limit` uses are ever granted per window, however many requests
    /// race on however many instances. A refused use is not counted.
    async fn consume(
        &self,
        key: &str,
        limit: u32,
        window_secs: i64,
        now: i64,
    ) -> Result<Consumed, StoreError>;
    /// Uses of `key` counted in the window holding `now` (a look; nothing is counted).
    async fn used(&self, key: &str, window_secs: i64, now: i64) -> Result<u32, StoreError>;
    /// Gives back one use granted by [`BudgetStore::consume`] in the window holding `now` (a
    /// request that reserved it and was then refused elsewhere, or sent nothing). A counter
    /// given back to zero is deleted.
    async fn release(&self, key: &str, window_secs: i64, now: i64) -> Result<(), StoreError>;
    /// Forgets every window of `key` (a deleted account's per-user budgets).
    async fn clear_budget(&self, key: &str) -> Result<(), StoreError>;
}

/// Everything the handlers need from persistence.
pub trait Store:
    UserStore
    + SessionStore
    + LoginAttemptStore
    + BudgetStore
    + CodeStore
    + CeremonyStore
    + crate::events::OutboxStore
{
}
impl<T> Store for T where
    T: UserStore
        + SessionStore
        + LoginAttemptStore
        + BudgetStore
        + CodeStore
        + CeremonyStore
        + crate::events::OutboxStore
{
}

/// The start of the fixed window holding `now`, and its end.
pub fn window_of(now: i64, window_secs: i64) -> (i64, i64) {
    let w = window_secs.max(1);
    let start = now - now.rem_euclid(w);
    (start, start.saturating_add(w))
}

/// One deadline for every store call a request makes: a request's calls share its budget
/// instead of each getting the full per-call timeout, so a request that meets a slow database
/// ends in a 503 before the function's own timeout.
pub mod deadline {
    use std::{future::Future, time::Duration};

    use tokio::time::Instant;

    tokio::task_local! {
        static DEADLINE: Instant;
    }

    /// Runs `f` with every store call inside it bounded by `deadline`.
    pub async fn within<F: Future>(deadline: Instant, f: F) -> F::Output {
        DEADLINE.scope(deadline, f).await
    }

    /// Time a store call may take: `cap`, or less when the request's deadline is nearer.
    pub fn remaining(cap: Duration) -> Duration {
        DEADLINE
            .try_with(|d| d.saturating_duration_since(Instant::now()))
            .map_or(cap, |left| left.min(cap))
    }
}
