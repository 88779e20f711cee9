//! Domain operations. They take the store trait and plain values, never HTTP types.

use crate::{
    auth::{
        password,
        token::{self, TokenKeys},
    },
    config::Settings,
    error::ApiError,
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

/// Checks a phone and password and opens a session. Unknown phone and wrong password cost
/// the same argon2 verify and end in the same error.
pub async fn login(
    store: &dyn Store,
    tokens: &TokenKeys,
    settings: &Settings,
    phone: Phone,
    password: Password,
    now: i64,
) -> Result<LoginGrant, ApiError> {
    let user = store
        .find_user_by_phone(&phone)
        .await
        .map_err(store_failure)?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let user = match (password::verify(password, hash).await?, user) {
        (true, Some(user)) => user,
        _ => return Err(ApiError::InvalidCredentials),
    };
    let session_token = token::new_session_token()?;
    let session = SessionRecord {
        id: token::new_session_id()?,
        user_id: user.id,
        token_digest: tokens.session_digest(&session_token),
        created_at: now,
        expires_at: now + settings.session_idle_ttl.as_secs() as i64,
        absolute_expires_at: now + settings.session_absolute_ttl.as_secs() as i64,
    };
    let session = SessionRecord {
        expires_at: session.expires_at.min(session.absolute_expires_at),
        ..session
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

/// Proves the caller: a valid JWT, a live session it names, and the session token that
/// session was opened with. Use refreshes the idle deadline.
pub async fn authenticate(
    store: &dyn Store,
    tokens: &TokenKeys,
    settings: &Settings,
    jwt: &str,
    session_token: &str,
    now: i64,
) -> Result<Caller, ApiError> {
    let claims = tokens.verify(jwt, now.max(0) as u64)?;
    let session = store
        .find_session(&claims.sid)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::Unauthorized)?;
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
    Ok(Caller {
        user_id: session.user_id,
        session_id: session.id,
    })
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

/// Applies `patch` to `target`, which must be the caller. A phone already held by another
/// user is refused by the unique index, atomically.
pub async fn update_user(
    store: &dyn Store,
    caller: &Caller,
    target: UserId,
    patch: UserPatch,
    now: i64,
) -> Result<UserRecord, ApiError> {
    if target != caller.user_id {
        return Err(ApiError::Forbidden);
    }
    if patch.is_empty() {
        return Err(ApiError::Validation(vec![crate::error::FieldError {
            path: String::new(),
            message: "no field to update".to_owned(),
        }]));
    }
    match store.update_user(&target, &patch, now).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(ApiError::Unauthorized),
        Err(StoreError::Duplicate) => Err(ApiError::PhoneTaken),
        Err(e) => Err(store_failure(e)),
    }
}
