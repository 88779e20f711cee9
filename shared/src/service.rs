//! Domain operations. They take the store trait and plain values, never HTTP types.

use std::sync::Arc;

use crate::{
    auth::{
        password,
        token::{self, TokenKeys},
    },
    config::Settings,
    error::ApiError,
    secrets::KeyCache,
    store::{SessionRecord, Store, StoreError, UserPatch, UserRecord},
    types::{Name, Password, Phone, UserId},
};

/// A validated signup.
#[derive(Debug)]
pub struct NewUser {
    pub first_name: Name,
    pub middle_name: Option<Name>,
    pub last_name: Name,
    pub phone: Phone,
    pub password: Password,
}

/// What a successful login hands back.
#[derive(Debug)]
pub struct LoginGrant {
    pub token: String,
    pub session_token: String,
    pub expires_in: u64,
    pub user_id: UserId,
}

/// The caller proven by a JWT and its session token together.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub session_id: String,
}

/// Maps store failures that are not domain outcomes: unavailability to 503, the rest to 500,
/// with the cause logged and kept out of the body.
pub fn store_failure(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(cause) => {
            tracing::warn!(%cause, "database unavailable");
            ApiError::Unavailable
        }
        other => {
            tracing::error!(cause = %other, "database error");
            ApiError::Internal
        }
    }
}

/// Creates a user. The unique phone index decides races: the loser gets 409.
pub async fn signup(store: &dyn Store, user: NewUser, now: i64) -> Result<UserRecord, ApiError> {
    let password_hash = password::hash(user.password).await?;
    let record = UserRecord {
        id: UserId::new(),
        first_name: user.first_name,
        middle_name: user.middle_name,
        last_name: user.last_name,
        phone: user.phone,
        password_hash,
        created_at: now,
        updated_at: now,
    };
    match store.insert_user(&record).await {
        Ok(()) => Ok(record),
        Err(StoreError::Duplicate) => Err(ApiError::PhoneTaken),
        Err(e) => Err(store_failure(e)),
    }
}

/// Delay imposed after `failures` consecutive failures: 1 s at the threshold, doubling with
/// each further failure, capped.
pub fn lock_delay(failures: u32, threshold: u32, max_secs: u64) -> Option<u64> {
    let over = failures.checked_sub(threshold)?;
    Some(1u64.checked_shl(over).unwrap_or(u64::MAX).min(max_secs))
}

/// Refuses with 429 while `key` is locked; returns the counter, if any.
async fn check_lock(
    store: &dyn Store,
    key: &str,
    now: i64,
) -> Result<Option<crate::store::Attempts>, ApiError> {
    let attempts = store.attempts(key).await.map_err(store_failure)?;
    match attempts {
        Some(a) if a.locked_until > now => Err(ApiError::TooManyAttempts {
            retry_after_secs: (a.locked_until - now) as u64,
        }),
        other => Ok(other),
    }
}

/// Counts a failed password check for `key` and locks it once past the threshold.
async fn count_failure(
    store: &dyn Store,
    settings: &Settings,
    key: &str,
    now: i64,
) -> Result<(), ApiError> {
    let window = settings.failure_window.as_secs() as i64;
    let a = store
        .record_failure(key, now, window)
        .await
        .map_err(store_failure)?;
    if let Some(delay) = lock_delay(
        a.failures,
        settings.lockout_threshold,
        settings.lockout_max.as_secs(),
    ) {
        let until = now + delay as i64;
        store
            .lock(key, until, until.max(now + window))
            .await
            .map_err(store_failure)?;
        tracing::info!(target: "audit", event = "lockout", failures = a.failures, lock_seconds = delay);
    }
    Ok(())
}

/// Checks a phone and password and opens a session. Unknown phone and wrong password cost
/// the same argon2 verify and end in the same error; a locked phone is refused the same way
/// whether or not an account has it.
pub async fn login(
    store: &dyn Store,
    tokens: &TokenKeys,
    settings: &Settings,
    phone: Phone,
    password: Password,
    now: i64,
) -> Result<LoginGrant, ApiError> {
    let key = phone.as_str();
    let attempts = check_lock(store, key, now).await?;
    let user = store
        .find_user_by_phone(&phone)
        .await
        .map_err(store_failure)?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = password::verify(password.clone(), hash).await?;
    let user = match (verified, user) {
        (true, Some(user)) => user,
        _ => {
            count_failure(store, settings, key, now).await?;
            return Err(ApiError::InvalidCredentials);
        }
    };
    if attempts.is_some() {
        store.clear_attempts(key).await.map_err(store_failure)?;
    }
    if password::needs_rehash(&user.password_hash) {
        rehash(store, &user, password, now).await;
    }
    let session_token = token::new_session_token()?;
    let absolute = now + settings.session_absolute_ttl.as_secs() as i64;
    let session = SessionRecord {
        id: token::new_session_id()?,
        user_id: user.id,
        token_digest: tokens.session_digest(&session_token),
        created_at: now,
        expires_at: (now + settings.session_idle_ttl.as_secs() as i64).min(absolute),
        absolute_expires_at: absolute,
    };
    store
        .insert_session(&session)
        .await
        .map_err(store_failure)?;
    let token = tokens.issue(&user.id, &session.id, now.max(0) as u64)?;
    Ok(LoginGrant {
        token,
        session_token,
        expires_in: tokens.ttl().as_secs(),
        user_id: user.id,
    })
}

/// Stores a hash at the current parameters. Best effort: the login succeeds either way.
async fn rehash(store: &dyn Store, user: &UserRecord, password: Password, now: i64) {
    let result = match password::hash(password).await {
        Ok(hash) => {
            let patch = UserPatch {
                password_hash: Some(hash),
                ..UserPatch::default()
            };
            store
                .update_user(&user.id, &patch, now)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(_) => tracing::info!(target: "audit", event = "password_rehash", user_id = %user.id),
        Err(e) => tracing::warn!(error = %e, user_id = %user.id, "password rehash failed"),
    }
}

/// Proves the caller: a valid JWT, a live session it names, and the session token that
/// session was opened with. Use refreshes the idle deadline.
pub async fn authenticate(
    store: &dyn Store,
    keys: &Arc<KeyCache>,
    settings: &Settings,
    jwt: &str,
    session_token: &str,
    now: i64,
) -> Result<Caller, ApiError> {
    session_of(store, keys, settings, jwt, session_token, now)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// Like [`authenticate`], but a valid JWT whose session no longer exists gives `Ok(None)`
/// instead of 401, so logout can be repeated (a client retrying after a timeout) and still
/// succeed. Every other route treats `None` as 401. The keys come from the cache, which
/// refreshes them first when the JWT names a key it does not hold yet (a rotation another
/// instance saw first); the session token is checked against those same keys.
pub async fn session_of(
    store: &dyn Store,
    keys: &Arc<KeyCache>,
    settings: &Settings,
    jwt: &str,
    session_token: &str,
    now: i64,
) -> Result<Option<Caller>, ApiError> {
    let (claims, tokens) = keys.verify(jwt, now).await?;
    let Some(session) = store
        .find_session(&claims.sid)
        .await
        .map_err(store_failure)?
    else {
        return Ok(None);
    };
    let live = now < session.expires_at && now < session.absolute_expires_at;
    if !live
        || session.user_id.to_hex() != claims.sub
        || !tokens.session_matches(session_token, &session.token_digest)
    {
        return Err(ApiError::Unauthorized);
    }
    let idle = (now + settings.session_idle_ttl.as_secs() as i64).min(session.absolute_expires_at);
    // Skip the write when the deadline would move by under a minute: one write per request
    // buys nothing an idle timeout measured in hours can see.
    if idle - session.expires_at >= 60
        && !store
            .touch_session(&session.id, idle)
            .await
            .map_err(store_failure)?
    {
        return Err(ApiError::Unauthorized);
    }
    Ok(Some(Caller {
        user_id: session.user_id,
        session_id: session.id,
    }))
}

/// Ends the caller's session, or all of the user's sessions when `global`.
pub async fn logout(store: &dyn Store, caller: &Caller, global: bool) -> Result<(), ApiError> {
    if global {
        store
            .delete_user_sessions(&caller.user_id, None)
            .await
            .map_err(store_failure)?;
    } else {
        store
            .delete_session(&caller.session_id)
            .await
            .map_err(store_failure)?;
    }
    Ok(())
}

/// The caller's own profile.
pub async fn profile(store: &dyn Store, caller: &Caller) -> Result<UserRecord, ApiError> {
    store
        .find_user(&caller.user_id)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::Unauthorized)
}

/// A password change: the new password (already checked against the rules) and the current
/// one, which must be right.
#[derive(Debug)]
pub struct PasswordChange {
    pub new: Password,
    pub current: Password,
}

/// Applies `patch` to `target`, which must be the caller. A phone already held by another
/// user is refused by the unique index, atomically. A password change needs the current
/// password (failures count towards the login lock) and ends every other session.
pub async fn update_user(
    store: &dyn Store,
    settings: &Settings,
    caller: &Caller,
    target: UserId,
    mut patch: UserPatch,
    password_change: Option<PasswordChange>,
    now: i64,
) -> Result<UserRecord, ApiError> {
    if target != caller.user_id {
        return Err(ApiError::Forbidden);
    }
    if patch.is_empty() && password_change.is_none() {
        return Err(ApiError::Validation(vec![crate::error::FieldError {
            path: String::new(),
            message: "no field to update".to_owned(),
        }]));
    }
    if let Some(change) = &password_change {
        let user = profile(store, caller).await?;
        let key = user.phone.as_str();
        check_lock(store, key, now).await?;
        if !password::verify(change.current.clone(), Some(user.password_hash.clone())).await? {
            count_failure(store, settings, key, now).await?;
            return Err(ApiError::CurrentPasswordIncorrect);
        }
        patch.password_hash = Some(password::hash(change.new.clone()).await?);
    }
    let user = match store.update_user(&target, &patch, now).await {
        Ok(Some(user)) => user,
        Ok(None) => return Err(ApiError::Unauthorized),
        Err(StoreError::Duplicate) => return Err(ApiError::PhoneTaken),
        Err(e) => return Err(store_failure(e)),
    };
    if password_change.is_some() {
        let ended = store
            .delete_user_sessions(&user.id, Some(&caller.session_id))
            .await
            .map_err(store_failure)?;
        tracing::info!(target: "audit", event = "password_change", user_id = %user.id, other_sessions_ended = ended);
    }
    Ok(user)
}
