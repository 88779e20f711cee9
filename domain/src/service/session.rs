//! Login, the proof of a caller on every request, and logout.

use super::{
    Ctx, Error,
    mfa::{Pending, Proof, prove},
    throttle,
};
use crate::{
    auth::{device, password, token},
    claims::Grants,
    credential::{Assurance, CredentialKind, Opened},
    identity::{Identifier, IdentifierKind},
    mfa::{self, MfaMode},
    store::{Ceremony, CeremonyId, CeremonyKind, SessionRecord, UserPatch, UserRecord},
    types::{Password, UserId},
};

/// What a password sign-in answers: a session, or a challenge for the second factor.
#[derive(Debug)]
pub enum LoginOutcome {
    Granted(LoginGrant),
    SecondFactor(MfaChallenge),
}

/// A password accepted, a second factor awaited (POST /login/mfa).
#[derive(Debug)]
pub struct MfaChallenge {
    /// The ceremony id the second call names.
    pub mfa_token: CeremonyId,
    /// What the account can complete it with: `totp`, `passkey`, `recovery_code`.
    pub methods: Vec<&'static str>,
    pub expires_in: i64,
}

/// What a successful login hands back.
#[derive(Debug)]
pub struct LoginGrant {
    pub token: String,
    pub session_token: String,
    /// `<session id>.<secret>`: renews `token` at POST /token/refresh.
    pub refresh_token: String,
    pub expires_in: u64,
    pub user_id: UserId,
    /// Marks the client as a known device of this phone (`auth::device`): presented with the
    /// next logins, its failures count against its own budget, not the unknown devices'.
    pub device_token: String,
}

/// How long a device token lasts: 180 days (each login renews it).
pub const DEVICE_TOKEN_TTL_SECS: i64 = 180 * 86_400;

/// What a successful refresh hands back: a new access token and the refresh token to use next.
#[derive(Debug)]
pub struct RefreshGrant {
    pub token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub user_id: UserId,
}

/// The caller proven by a JWT and its session token together.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub session_id: String,
    /// What the session's sign-in (and any step-up since) proved.
    pub assurance: Assurance,
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Keyed tags of the identifier for audit lines: `phone_tag` for a phone, `email_tag` for an
/// address (lines about one can be joined without the log holding it).
pub(super) fn audit_tags(
    cx: &Ctx<'_>,
    identifier: &Identifier,
) -> (Option<String>, Option<String>) {
    let tag = |s: &str| Some(cx.tokens().audit_tag(s).to_string());
    match identifier {
        Identifier::Phone(p) => (tag(p.as_str()), None),
        Identifier::Email(e) => (None, tag(e.as_str())),
        Identifier::Federated { .. } => (None, None),
    }
}

/// Checks an identifier (a phone or an email address) and password and opens a session. The check is reserved before it runs
/// (at most the lock threshold of checks per key before the first lock, however many
/// requests race). The key is the phone's "unknown devices" budget, or, when the client
/// presents a valid device token for this phone, that device's own budget: guesses from
/// anywhere else lock unknown devices only, and the owner's known device still logs in.
/// Unknown phone and wrong password cost the same argon2 verify and end in the same error; a
/// locked key is refused the same way whether or not an account has the phone.
pub async fn login(
    cx: &Ctx<'_>,
    identifier: Identifier,
    password: Password,
    device_token: Option<&str>,
) -> Result<LoginOutcome, Error> {
    // A phone's counters are keyed by the number, an address's by the address.
    let address = identifier.address().ok_or(Error::InvalidCredentials)?;
    let (phone_tag, email_tag) = audit_tags(cx, &identifier);
    let known = device_token.and_then(|t| device::verify(&cx.tokens(), address, t, cx.now));
    let key = match known {
        Some(d) => format!("{address}|device:{}", d.to_hex()),
        None => address.to_owned(),
    };
    let key = key.as_str();
    let device_kind = if known.is_some() { "known" } else { "unknown" };
    let attempt = throttle::reserve(cx, key).await.inspect_err(|_| {
        tracing::info!(target: "audit", event = "login_locked", device = device_kind,
            phone_tag = phone_tag.as_deref(), email_tag = email_tag.as_deref());
    })?;
    let user = cx.store.find_user_by(&identifier).await?;
    let hash = user.as_ref().map(|u| u.password_hash().to_owned());
    let verified = password::verify(password.clone(), hash).await?;
    let user = match (verified, user) {
        (true, Some(user)) => user,
        (_, user) => {
            if let Some(lock) = throttle::locked_for(cx, attempt) {
                tracing::info!(target: "audit", event = "lockout", scope = "login",
                    device = device_kind,
                    user_id = user.as_ref().map(|u| u.id.to_hex()),
                    phone_tag = phone_tag.as_deref(), email_tag = email_tag.as_deref(),
                    failures = attempt, lock_seconds = lock);
            }
            return Err(Error::InvalidCredentials);
        }
    };
    cx.store.clear_attempts(key).await?;
    if user.disabled {
        tracing::info!(target: "audit", event = "login", outcome = "account_disabled", user_id = %user.id);
        return Err(Error::AccountDisabled);
    }
    match identifier.kind() {
        IdentifierKind::Phone if cx.verification.required && !user.phone_verified() => {
            return Err(Error::PhoneUnverified);
        }
        IdentifierKind::Email if cx.email.required() && !user.verified(IdentifierKind::Email) => {
            return Err(Error::EmailUnverified);
        }
        _ => {}
    }
    if password::needs_rehash(user.password_hash()) {
        rehash(cx, &user, password).await;
    }
    let device = match known {
        Some(d) => d,
        None => device::DeviceId::new().map_err(|e| Error::internal("device id", e))?,
    };
    let opened = user.password().map_or_else(
        || Opened::by_kind(CredentialKind::Password),
        |c| Opened::by(&c.record),
    );
    if cx.policy.mfa.mode != MfaMode::Off && mfa::has_second_factor(&user) {
        return second_factor_challenge(cx, &user, address, device, opened).await;
    }
    let assurance = Assurance::single(&opened.method, cx.now);
    finish_login(cx, &user, opened, assurance, address, device)
        .await
        .map(LoginOutcome::Granted)
}

/// A password accepted for an account with a second factor: a short-lived challenge (a
/// ceremony) the second call completes, instead of tokens.
async fn second_factor_challenge(
    cx: &Ctx<'_>,
    user: &UserRecord,
    address: &str,
    device: device::DeviceId,
    opened: Opened,
) -> Result<LoginOutcome, Error> {
    let pending = Pending {
        address: address.to_owned(),
        device: device.to_hex(),
        credential_id: opened.credential_id,
        method: opened.method,
    };
    let state = serde_json::to_vec(&pending).map_err(|e| Error::internal("mfa state", e))?;
    let id = CeremonyId::new()?;
    let ttl = cx.policy.mfa.challenge_ttl;
    cx.store
        .put_ceremony(
            &Ceremony {
                id: id.clone(),
                kind: CeremonyKind::SecondFactor,
                user_id: Some(user.id),
                state,
                expires_at: cx.now.saturating_add(ttl),
            },
            cx.now,
        )
        .await?;
    let mut methods = Vec::new();
    if mfa::credential(user, CredentialKind::Totp).is_some() {
        methods.push("totp");
    }
    if mfa::credential(user, CredentialKind::Passkey).is_some() {
        methods.push("passkey");
    }
    if mfa::credential(user, CredentialKind::RecoveryCodes).is_some() {
        methods.push("recovery_code");
    }
    tracing::info!(target: "audit", event = "login", outcome = "second_factor_required", user_id = %user.id);
    Ok(LoginOutcome::SecondFactor(MfaChallenge {
        mfa_token: id,
        methods,
        expires_in: ttl,
    }))
}

/// Completes a sign-in waiting for its second factor: the proof is checked (throttled, and
/// spent once) while the challenge stays, so a mistyped code can be typed again; then the
/// challenge is taken, atomically, and only the request that took it opens a session, at
/// AAL2.
pub async fn login_second_factor(
    cx: &Ctx<'_>,
    mfa_token: &CeremonyId,
    proof: &Proof,
) -> Result<LoginGrant, Error> {
    let kind = CeremonyKind::SecondFactor;
    let ceremony = cx
        .store
        .find_ceremony(mfa_token, kind, cx.now)
        .await?
        .ok_or(Error::Unauthorized)?;
    let user_id = ceremony.user_id.ok_or(Error::Unauthorized)?;
    // Read now, so a challenge this release cannot read fails before a code is spent.
    let _: Pending =
        serde_json::from_slice(&ceremony.state).map_err(|e| Error::internal("mfa state", e))?;
    let user = cx
        .store
        .find_user(&user_id)
        .await?
        .ok_or(Error::Unauthorized)?;
    if user.disabled {
        return Err(Error::AccountDisabled);
    }
    let method = prove(cx, &user, proof).await?;
    complete_second_factor(cx, mfa_token, &user, method).await
}

/// Takes the challenge `mfa_token` of `user` (once: only the request that takes it goes on)
/// and opens the session the password sign-in asked for, with the second factor `method`
/// proven: at AAL2.
pub(super) async fn complete_second_factor(
    cx: &Ctx<'_>,
    mfa_token: &CeremonyId,
    user: &UserRecord,
    method: &str,
) -> Result<LoginGrant, Error> {
    let taken = cx
        .store
        .take_ceremony(mfa_token, CeremonyKind::SecondFactor, cx.now)
        .await?
        .filter(|c| c.user_id == Some(user.id))
        .ok_or(Error::Unauthorized)?;
    let pending: Pending =
        serde_json::from_slice(&taken.state).map_err(|e| Error::internal("mfa state", e))?;
    let device = device::DeviceId::from_hex(&pending.device)
        .ok_or_else(|| Error::internal("mfa state", "device id"))?;
    let opened = Opened {
        credential_id: pending.credential_id,
        method: if pending.method.is_empty() {
            CredentialKind::Password.method().to_owned()
        } else {
            pending.method
        },
    };
    let assurance = Assurance::single(&opened.method, cx.now).stepped_up(method, cx.now);
    finish_login(cx, user, opened, assurance, &pending.address, device).await
}

/// A sign-in by something other than a password (a provider's identity): a second-factor
/// challenge where the account has a factor and second factors are on, else a session at
/// the method's single-factor assurance.
pub(super) async fn sign_in_without_password(
    cx: &Ctx<'_>,
    user: &UserRecord,
    opened: Opened,
) -> Result<LoginOutcome, Error> {
    if user.disabled {
        tracing::info!(target: "audit", event = "login", outcome = "account_disabled", user_id = %user.id);
        return Err(Error::AccountDisabled);
    }
    if cx.policy.mfa.mode != MfaMode::Off && mfa::has_second_factor(user) {
        let address = user_address(user);
        let device = device::DeviceId::new().map_err(|e| Error::internal("device id", e))?;
        return second_factor_challenge(cx, user, &address, device, opened).await;
    }
    let assurance = Assurance::single(&opened.method, cx.now);
    open_passwordless(cx, user, opened, assurance)
        .await
        .map(LoginOutcome::Granted)
}

/// The address a sign-in without one keys its device token by: the primary phone, else the
/// address, else the account id.
fn user_address(user: &UserRecord) -> String {
    user.phone()
        .map(|p| p.as_str().to_owned())
        .or_else(|| user.email().map(|e| e.as_str().to_owned()))
        .unwrap_or_else(|| user.id.to_hex())
}

/// A session opened by a passkey alone (no identifier, no password), with a fresh device
/// token for the account's primary phone or address.
pub(super) async fn open_passwordless(
    cx: &Ctx<'_>,
    user: &UserRecord,
    opened: Opened,
    assurance: Assurance,
) -> Result<LoginGrant, Error> {
    let address = user_address(user);
    let device = device::DeviceId::new().map_err(|e| Error::internal("device id", e))?;
    let outcome = match opened.method.as_str() {
        "fed" => "federated",
        _ => "passkey",
    };
    tracing::info!(target: "audit", event = "login", outcome, user_id = %user.id);
    finish_login(cx, user, opened, assurance, &address, device).await
}

/// The session of a successful sign-in, with a fresh device token for `address`.
async fn finish_login(
    cx: &Ctx<'_>,
    user: &UserRecord,
    opened: Opened,
    assurance: Assurance,
    address: &str,
    device: device::DeviceId,
) -> Result<LoginGrant, Error> {
    let device_token = device::issue(
        &cx.tokens(),
        address,
        device,
        cx.now.saturating_add(DEVICE_TOKEN_TTL_SECS),
    );
    let (grant, session_id) = open_session(cx, user, opened, assurance, device_token).await?;
    // An operator's disable or delete sets the flag (or removes the user) and then ends every
    // session. Reading the user again after the session exists closes the race: either that
    // sweep sees this session, or this read sees the flag and ends it here. The read is the
    // write that records the credential's use.
    let after = match user.password() {
        Some(c) => {
            cx.store
                .touch_credential(&user.id, &c.record.id, cx.now)
                .await?
        }
        None => cx.store.find_user(&user.id).await?,
    };
    match after {
        Some(u) if !u.disabled => Ok(grant),
        after => {
            cx.store.delete_session(&session_id).await?;
            Err(if after.is_some() {
                Error::AccountDisabled
            } else {
                Error::InvalidCredentials
            })
        }
    }
}

/// A new session for `user`, its tokens (with `device_token`, the login's) and the session's
/// id.
async fn open_session(
    cx: &Ctx<'_>,
    user: &UserRecord,
    opened: Opened,
    assurance: Assurance,
    device_token: String,
) -> Result<(LoginGrant, String), Error> {
    let tokens = cx.tokens();
    let session_token =
        token::new_session_token().map_err(|e| Error::internal("session token", e))?;
    let refresh_secret =
        token::new_session_token().map_err(|e| Error::internal("refresh token", e))?;
    let absolute = cx.now.saturating_add(secs(cx.policy.session_absolute_ttl));
    let session = SessionRecord {
        id: token::new_session_id().map_err(|e| Error::internal("session id", e))?,
        user_id: user.id,
        token_digest: tokens.session_digest(&session_token),
        created_at: cx.now,
        expires_at: cx
            .now
            .saturating_add(secs(cx.policy.session_idle_ttl))
            .min(absolute),
        absolute_expires_at: absolute,
        refresh_digest: tokens.refresh_digest(&refresh_secret),
        opened,
        assurance,
        ..SessionRecord::default()
    };
    // Signed (and the pre_token hook run) before the session is written: a hook that fails
    // closed, or a token over the size limit, leaves nothing behind.
    let token = sign(cx, user, &session.id, &session.assurance).await?;
    cx.store.insert_session(&session).await?;
    Ok((
        LoginGrant {
            token,
            session_token,
            refresh_token: format!("{}.{refresh_secret}", session.id),
            expires_in: tokens.ttl().as_secs(),
            user_id: user.id,
            device_token,
        },
        session.id,
    ))
}

/// Renews an access token with a refresh token, rotating it: the old one is spent, the new
/// one is returned. A spent token presented again (after `refresh_reuse_grace`) is taken as
/// theft: the whole session (every token of the family) ends at once, audited. Within the
/// grace, a concurrent refresh of the same token gets the same successor. The session's idle
/// and absolute limits apply as to any request.
pub async fn refresh(cx: &Ctx<'_>, refresh_token: &str) -> Result<RefreshGrant, Error> {
    let (sid, secret) = refresh_token.split_once('.').ok_or(Error::Unauthorized)?;
    let Some(session) = cx.store.find_session(sid).await? else {
        return Err(Error::Unauthorized);
    };
    if cx.now >= session.expires_at || cx.now >= session.absolute_expires_at {
        return Err(Error::Unauthorized);
    }
    let tokens = cx.tokens();
    let idle = cx
        .now
        .saturating_add(secs(cx.policy.session_idle_ttl))
        .min(session.absolute_expires_at);
    let session = if tokens.refresh_matches(secret, &session.refresh_digest) {
        // The new access token first (the account read, the hook run): a failure here
        // leaves the refresh token unspent, so the client may simply retry.
        let access = access_for(cx, &session).await?;
        let next = tokens.refresh_successor(secret);
        let rotated = cx
            .store
            .rotate_refresh(
                sid,
                &session.refresh_digest,
                &tokens.refresh_digest(&next),
                cx.now,
                idle,
            )
            .await?;
        match rotated {
            Some(_) => return Ok(grant(cx, &session, next, access)),
            // Another request rotated it first: read what it left and go on below.
            None => cx
                .store
                .find_session(sid)
                .await?
                .ok_or(Error::Unauthorized)?,
        }
    } else {
        session
    };
    let grace = i64::try_from(cx.policy.refresh_reuse_grace.as_secs()).unwrap_or(0);
    if tokens.refresh_matches(secret, &session.refresh_prev)
        && cx.now - session.refresh_rotated_at <= grace
    {
        let next = tokens.refresh_successor(secret);
        if tokens.refresh_matches(&next, &session.refresh_digest) {
            let access = access_for(cx, &session).await?;
            return Ok(grant(cx, &session, next, access));
        }
    }
    if session
        .refresh_spent
        .iter()
        .any(|spent| tokens.refresh_matches(secret, spent))
    {
        cx.store.delete_session(sid).await?;
        tracing::warn!(target: "audit", event = "refresh_reuse", user_id = %session.user_id,
            "a spent refresh token was presented again; the session ended");
    }
    Err(Error::Unauthorized)
}

/// The access token a refresh of `session` answers: the account's grants as they are now (an
/// operator's change of roles shows in the next token), the session's assurance as it stands
/// (a refresh keeps it and never raises it).
async fn access_for(cx: &Ctx<'_>, session: &SessionRecord) -> Result<String, Error> {
    let user = cx
        .store
        .find_user(&session.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(Error::Unauthorized)?;
    sign(cx, &user, &session.id, &session.assurance()).await
}

/// The answer of a refresh: `token` beside the refresh token `next`.
fn grant(cx: &Ctx<'_>, session: &SessionRecord, next: String, token: String) -> RefreshGrant {
    tracing::info!(target: "audit", event = "token_refresh", outcome = "success", user_id = %session.user_id);
    RefreshGrant {
        token,
        refresh_token: format!("{}.{next}", session.id),
        expires_in: cx.tokens().ttl().as_secs(),
        user_id: session.user_id,
    }
}

/// Signs an access token of `user`'s session `sid` with `assurance` and the account's grants
/// (roles, scopes, mapped claims), after the `pre_token` hook, if any, had its say.
pub(super) async fn sign(
    cx: &Ctx<'_>,
    user: &UserRecord,
    sid: &str,
    assurance: &Assurance,
) -> Result<String, Error> {
    let mut grants = Grants::of(&user.app_metadata, &cx.policy.claims);
    super::hooks::pre_token(cx, user, sid, assurance, &mut grants).await?;
    issue(cx, user, sid, assurance, &grants)
}

/// Signs the token of `grants` as they are (no hook). Over `ACCESS_TOKEN_MAX_BYTES` nothing is
/// issued: the caller gets an internal error and the log says which account and why (an
/// operator trims its `app_metadata`), rather than a token some proxy or header limit would
/// cut.
fn issue(
    cx: &Ctx<'_>,
    user: &UserRecord,
    sid: &str,
    assurance: &Assurance,
    grants: &Grants,
) -> Result<String, Error> {
    let token = cx
        .tokens()
        .issue_for(
            cx.issuer(),
            &user.id,
            sid,
            u64::try_from(cx.now).unwrap_or_default(),
            assurance,
            grants,
        )
        .map_err(|e| Error::internal("jwt signing", e))?;
    let max = cx.policy.claims.token_max_bytes;
    if token.len() > max {
        tracing::error!(user_id = %user.id, size = token.len(), max,
            "access token over ACCESS_TOKEN_MAX_BYTES: not issued; trim the account's app_metadata");
        return Err(Error::TokenTooLarge);
    }
    Ok(token)
}

/// A fresh access token for the caller's session, carrying its assurance as it stands (after a
/// step-up) and the account's grants, and its lifetime in seconds.
pub async fn access_token(cx: &Ctx<'_>, caller: &Caller) -> Result<(String, u64), Error> {
    let user = cx
        .store
        .find_user(&caller.user_id)
        .await?
        .ok_or(Error::Unauthorized)?;
    let token = sign(cx, &user, &caller.session_id, &caller.assurance).await?;
    Ok((token, cx.tokens().ttl().as_secs()))
}

/// Stores a hash at the current parameters. Best effort: the login succeeds either way.
async fn rehash(cx: &Ctx<'_>, user: &UserRecord, password: Password) {
    let result = match password::hash(password).await {
        Ok(hash) => {
            let patch = UserPatch {
                password_hash: Some(hash),
                ..UserPatch::default()
            };
            cx.store
                .update_user(&user.id, &patch, cx.now)
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
/// session was opened with. Use refreshes the idle deadline. A valid JWT whose session no
/// longer exists gives `Ok(None)` instead of an error, so logout can be repeated (a client
/// retrying after a timeout) and still succeed; every other route treats `None` as 401.
pub async fn session_of(
    cx: &Ctx<'_>,
    jwt: &str,
    session_token: &str,
) -> Result<Option<Caller>, Error> {
    // The cache re-reads the secret first when the JWT names a key it does not hold yet (a
    // rotation another instance saw first); the session token is checked with those keys.
    let (claims, tokens) = cx
        .keys
        .verify(jwt, cx.now, cx.issuer())
        .await
        .map_err(|_| Error::Unauthorized)?;
    let Some(session) = cx.store.find_session(&claims.sid).await? else {
        return Ok(None);
    };
    let live = cx.now < session.expires_at && cx.now < session.absolute_expires_at;
    if !live
        || session.user_id.to_hex() != claims.sub
        || !tokens.session_matches(session_token, &session.token_digest)
    {
        return Err(Error::Unauthorized);
    }
    let idle_ttl = secs(cx.policy.session_idle_ttl);
    let idle = cx
        .now
        .saturating_add(idle_ttl)
        .min(session.absolute_expires_at);
    // Skip the write when the deadline would move by less than a tenth of the idle TTL (at
    // most a minute): one write per request buys nothing an idle timeout can see, and a
    // fraction keeps short idle timeouts refreshing.
    let granularity = (idle_ttl / 10).min(60);
    if idle - session.expires_at >= granularity.max(1)
        && !cx.store.touch_session(&session.id, idle).await?
    {
        return Err(Error::Unauthorized);
    }
    Ok(Some(Caller {
        user_id: session.user_id,
        assurance: session.assurance(),
        session_id: session.id,
    }))
}

/// For a JWT that is valid but whose session is gone: the user it names, if that user still
/// exists. `None` means the account is gone (a repeated delete is then a success).
pub async fn account_of_ended_session(cx: &Ctx<'_>, jwt: &str) -> Result<Option<UserId>, Error> {
    let claims = cx
        .tokens()
        .verify(jwt, u64::try_from(cx.now).unwrap_or_default(), cx.issuer())
        .map_err(|_| Error::Unauthorized)?;
    let id = UserId::parse_hex(&claims.sub).ok_or(Error::Unauthorized)?;
    Ok(cx.store.find_user(&id).await?.map(|u| u.id))
}

/// Ends the caller's session, or all of the user's sessions when `global`.
pub async fn logout(cx: &Ctx<'_>, caller: &Caller, global: bool) -> Result<(), Error> {
    if global {
        cx.store.delete_user_sessions(&caller.user_id, None).await?;
    } else {
        cx.store.delete_session(&caller.session_id).await?;
    }
    Ok(())
}
