//! Passkey ceremonies: registration for a signed-in account, sign-in with no identifier or
//! password (a discoverable passkey with user verification is multi-factor on its own: the
//! session opens at AAL2), and a passkey as the second factor of a password sign-in. Each
//! ceremony's state lives in the ceremony store under a random id and is taken once: a
//! replayed answer, a second tab or a second instance finds nothing. A signature counter that
//! moved is written back by one conditional swap of the stored record, so of two racing uses
//! of one assertion at most one opens a session.

use super::{Caller, Ctx, Error, LoginGrant, mfa as factors, session};
use crate::{
    credential::{Assurance, CredentialKind, CredentialRecord, MFA_METHOD, Opened},
    passkey::{Challenge, PasskeyError, PasskeyUser, Passkeys, StoredPasskey},
    store::{
        Ceremony, CeremonyId, CeremonyKind, CredentialChange, Secret, StoredCredential, UserPatch,
        UserRecord,
    },
};

/// How long a ceremony waits for the browser.
const CEREMONY_TTL_SECS: i64 = 300;
/// Sign-in ceremonies one source address may start per minute (each is a stored document).
const STARTS_PER_IP_PER_MINUTE: u32 = 30;

/// A ceremony's first step as the browser needs it.
#[derive(Debug)]
pub struct Started {
    pub ceremony: CeremonyId,
    /// `{"publicKey": ...}` for `navigator.credentials.create` or `.get`.
    pub options: String,
    pub expires_in: i64,
}

fn refused(e: PasskeyError) -> Error {
    match e {
        PasskeyError::Refused(reason) => {
            tracing::info!(target: "audit", event = "passkey_refused", %reason);
            Error::PasskeyRefused
        }
        PasskeyError::Internal(cause) => Error::Internal(format!("passkey: {cause}")),
    }
}

fn stored_of(c: &StoredCredential) -> Option<StoredPasskey> {
    serde_json::from_str(c.secret.expose()).ok()
}

/// The verifier's records of the account's passkeys (what a known-user ceremony allows).
fn records_of(user: &UserRecord) -> Vec<String> {
    passkeys_of(user)
        .filter_map(stored_of)
        .map(|p| p.record)
        .collect()
}

fn passkeys_of(user: &UserRecord) -> impl Iterator<Item = &StoredCredential> {
    user.credentials
        .iter()
        .filter(|c| c.record.kind == CredentialKind::Passkey)
}

/// Keeps a ceremony's state and answers its first step.
async fn started(
    cx: &Ctx<'_>,
    kind: CeremonyKind,
    user: Option<&UserRecord>,
    challenge: Challenge,
) -> Result<Started, Error> {
    let ceremony = CeremonyId::new()?;
    cx.store
        .put_ceremony(
            &Ceremony {
                id: ceremony.clone(),
                kind,
                user_id: user.map(|u| u.id),
                state: challenge.state,
                expires_at: cx.now.saturating_add(CEREMONY_TTL_SECS),
            },
            cx.now,
        )
        .await?;
    Ok(Started {
        ceremony,
        options: challenge.options,
        expires_in: CEREMONY_TTL_SECS,
    })
}

/// Registration options for the caller: the account's other passkeys excluded, at most
/// `PASSKEY_MAX_PER_USER`, and (where the account already has a second factor) a recent
/// step-up.
pub async fn start_registration(
    cx: &Ctx<'_>,
    pk: &Passkeys,
    caller: &Caller,
) -> Result<Started, Error> {
    let user = factors::caller_user(cx, caller).await?;
    factors::require_step_up(cx, caller, &user)?;
    if passkeys_of(&user).count() >= pk.settings.max_per_user {
        return Err(Error::PasskeyLimit);
    }
    let name = user
        .email()
        .map(|e| e.as_str().to_owned())
        .or_else(|| user.phone().map(|p| p.as_str().to_owned()))
        .unwrap_or_else(|| user.id.to_hex());
    let display_name = format!("{} {}", user.first_name.as_str(), user.last_name.as_str());
    let exclude: Vec<String> = passkeys_of(&user).map(|c| c.record.id.clone()).collect();
    let challenge = pk
        .verifier
        .start_registration(
            &PasskeyUser {
                id: user.id,
                name,
                display_name,
            },
            &exclude,
        )
        .map_err(refused)?;
    started(
        cx,
        CeremonyKind::PasskeyRegistration,
        Some(&user),
        challenge,
    )
    .await
}

/// Stores the passkey the browser made (its credential id is the factor's id), with
/// recovery codes if the account had none, and raises the session to AAL2: the ceremony
/// verified the user on a device the account now holds.
pub async fn finish_registration(
    cx: &Ctx<'_>,
    pk: &Passkeys,
    caller: &Caller,
    ceremony: &CeremonyId,
    answer: &str,
    label: Option<String>,
) -> Result<factors::Enrolled, Error> {
    let taken = cx
        .store
        .take_ceremony(ceremony, CeremonyKind::PasskeyRegistration, cx.now)
        .await?
        .filter(|c| c.user_id == Some(caller.user_id))
        .ok_or(Error::PasskeyRefused)?;
    let new = pk
        .verifier
        .finish_registration(answer, &taken.state)
        .map_err(refused)?;
    let user = factors::caller_user(cx, caller).await?;
    if passkeys_of(&user).count() >= pk.settings.max_per_user {
        return Err(Error::PasskeyLimit);
    }
    // The same authenticator answering twice (the options excluded it): nothing new to store.
    if user
        .credentials
        .iter()
        .any(|c| c.record.id == new.credential_id)
    {
        return Err(Error::PasskeyRefused);
    }
    let factor = CredentialRecord {
        id: new.credential_id.clone(),
        kind: CredentialKind::Passkey,
        label: label.unwrap_or_else(|| "Passkey".to_owned()),
        created_at: cx.now,
        last_used_at: None,
    };
    let stored = StoredPasskey {
        record: new.stored,
        aaguid: new.aaguid,
        backup_eligible: new.backup_eligible,
        backed_up: new.backed_up,
    };
    let secret =
        Secret::new(serde_json::to_string(&stored).map_err(|e| Error::internal("passkey", e))?);
    let credential = StoredCredential {
        record: factor,
        secret,
    };
    let enrolled = factors::enrol(
        cx,
        caller,
        &user,
        credential,
        method_of(&stored),
        Some(pk.settings.max_per_user),
    )
    .await?;
    tracing::info!(target: "audit", event = "factor_change", outcome = "passkey_added",
        user_id = %user.id, aaguid = %stored.aaguid, backup_eligible = stored.backup_eligible);
    Ok(enrolled)
}

/// RFC 8176: a key that may be synced off the device is software-secured (`swk`); one bound
/// to its authenticator, hardware-secured (`hwk`).
fn method_of(p: &StoredPasskey) -> &'static str {
    if p.backup_eligible { "swk" } else { "hwk" }
}

/// Sign-in options. Without `mfa_token`: for any discoverable passkey (no identifier
/// typed); each source address may start a bounded number per minute. With it (a password
/// sign-in waiting for its second factor): for that account's passkeys.
pub async fn start_login(
    cx: &Ctx<'_>,
    pk: &Passkeys,
    mfa_token: Option<&CeremonyId>,
) -> Result<Started, Error> {
    let (allow, user) = match mfa_token {
        Some(token) => {
            let pending = cx
                .store
                .find_ceremony(token, CeremonyKind::SecondFactor, cx.now)
                .await?
                .and_then(|c| c.user_id)
                .ok_or(Error::Unauthorized)?;
            let user = cx
                .store
                .find_user(&pending)
                .await?
                .ok_or(Error::Unauthorized)?;
            let allow = records_of(&user);
            if allow.is_empty() {
                return Err(Error::FactorNotFound);
            }
            (allow, Some(user))
        }
        None => {
            let ip = match cx.client.source_ip.as_str() {
                "" => "unknown",
                ip => ip,
            };
            super::throttle::consume(
                cx,
                &format!("passkey_start:ip:{ip}"),
                STARTS_PER_IP_PER_MINUTE,
                60,
            )
            .await?;
            (Vec::new(), None)
        }
    };
    let challenge = pk.verifier.start_authentication(&allow).map_err(refused)?;
    started(cx, CeremonyKind::PasskeyLogin, user.as_ref(), challenge).await
}

/// Checks a sign-in assertion and opens a session: passwordless at AAL2, or, with
/// `mfa_token`, the second factor of that password sign-in. The ceremony is taken first
/// (once); the passkey's moved counter is written back conditionally, and a lost race is a
/// refusal.
pub async fn finish_login(
    cx: &Ctx<'_>,
    pk: &Passkeys,
    ceremony: &CeremonyId,
    answer: &str,
    mfa_token: Option<&CeremonyId>,
) -> Result<LoginGrant, Error> {
    let taken = cx
        .store
        .take_ceremony(ceremony, CeremonyKind::PasskeyLogin, cx.now)
        .await?
        .ok_or(Error::PasskeyRefused)?;
    let (named, credential_id) = pk.verifier.identify(answer).map_err(refused)?;
    let user_id = match (taken.user_id, named) {
        // A second factor: the account the password proved; a handle, if any, must agree.
        (Some(u), n) if n.is_none_or(|n| n == u) => u,
        (None, Some(n)) => n,
        _ => return Err(Error::PasskeyRefused),
    };
    let user = cx
        .store
        .find_user(&user_id)
        .await?
        .ok_or(Error::PasskeyRefused)?;
    let credential = passkeys_of(&user)
        .find(|c| c.record.id == credential_id)
        .ok_or(Error::PasskeyRefused)?;
    if user.disabled {
        return Err(Error::AccountDisabled);
    }
    let stored = check(cx, pk, &user, credential, answer, &taken.state).await?;
    let method = method_of(&stored);
    match mfa_token {
        Some(token) => {
            if taken.user_id != Some(user.id) {
                return Err(Error::PasskeyRefused);
            }
            session::complete_second_factor(cx, token, &user, method).await
        }
        None => {
            // Possession of the key and the user verification it did: multi-factor at once.
            let assurance = Assurance {
                amr: vec![method.to_owned(), MFA_METHOD.to_owned()],
                auth_time: cx.now,
                aal2_at: Some(cx.now),
            };
            let opened = Opened::by(&credential.record);
            session::open_passwordless(cx, &user, opened, assurance).await
        }
    }
}

/// Step-up options for the caller: its own passkeys.
pub async fn start_step_up(cx: &Ctx<'_>, pk: &Passkeys, caller: &Caller) -> Result<Started, Error> {
    let user = factors::caller_user(cx, caller).await?;
    let allow = records_of(&user);
    if allow.is_empty() {
        return Err(Error::FactorNotFound);
    }
    let challenge = pk.verifier.start_authentication(&allow).map_err(refused)?;
    started(cx, CeremonyKind::PasskeyLogin, Some(&user), challenge).await
}

/// Raises the caller's session to AAL2 with one of its passkeys (the ceremony taken once,
/// the counter written back conditionally), as `POST /session/step-up` does with a code.
pub async fn finish_step_up(
    cx: &Ctx<'_>,
    pk: &Passkeys,
    caller: &Caller,
    ceremony: &CeremonyId,
    answer: &str,
) -> Result<Caller, Error> {
    let taken = cx
        .store
        .take_ceremony(ceremony, CeremonyKind::PasskeyLogin, cx.now)
        .await?
        .filter(|c| c.user_id == Some(caller.user_id))
        .ok_or(Error::PasskeyRefused)?;
    let user = factors::caller_user(cx, caller).await?;
    let (_, credential_id) = pk.verifier.identify(answer).map_err(refused)?;
    let credential = passkeys_of(&user)
        .find(|c| c.record.id == credential_id)
        .ok_or(Error::PasskeyRefused)?;
    let stored = check(cx, pk, &user, credential, answer, &taken.state).await?;
    let session = cx
        .store
        .step_up_session(&caller.session_id, method_of(&stored), cx.now)
        .await?
        .ok_or(Error::Unauthorized)?;
    tracing::info!(target: "audit", event = "step_up", outcome = "success", user_id = %user.id,
        method = method_of(&stored));
    Ok(Caller {
        user_id: caller.user_id,
        session_id: caller.session_id.clone(),
        assurance: session.assurance(),
    })
}

/// Verifies `answer` against the ceremony `state` and `credential`'s record, and writes a
/// moved counter back by one conditional swap (a lost race is a refusal). The stored passkey.
async fn check(
    cx: &Ctx<'_>,
    pk: &Passkeys,
    user: &UserRecord,
    credential: &StoredCredential,
    answer: &str,
    state: &[u8],
) -> Result<StoredPasskey, Error> {
    let stored = stored_of(credential).ok_or_else(|| Error::internal("passkey", "record"))?;
    let used = pk
        .verifier
        .finish_authentication(answer, state, &stored.record)
        .map_err(refused)?;
    if let Some(record) = used.updated {
        let next = StoredPasskey {
            record,
            backed_up: used.backed_up,
            ..stored.clone()
        };
        let next =
            Secret::new(serde_json::to_string(&next).map_err(|e| Error::internal("passkey", e))?);
        let swapped = cx
            .store
            .swap_credential_secret(
                &user.id,
                &credential.record.id,
                &credential.secret,
                &next,
                cx.now,
            )
            .await?;
        if !swapped {
            return Err(Error::PasskeyRefused);
        }
    }
    cx.store
        .touch_credential(&user.id, &credential.record.id, cx.now)
        .await?;
    Ok(stored)
}

/// Renames one of the caller's passkeys.
pub async fn rename(
    cx: &Ctx<'_>,
    caller: &Caller,
    id: &str,
    label: String,
) -> Result<CredentialRecord, Error> {
    let user = factors::caller_user(cx, caller).await?;
    let credential = passkeys_of(&user)
        .find(|c| c.record.id == id)
        .ok_or(Error::FactorNotFound)?;
    let mut renamed = credential.clone();
    renamed.record.label = label;
    cx.store
        .update_user(
            &user.id,
            &UserPatch::credential(CredentialChange::Add(renamed.clone())),
            cx.now,
        )
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(renamed.record)
}

/// One of the caller's passkeys as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub record: CredentialRecord,
    /// The authenticator model (all zeros when it did not say).
    pub aaguid: String,
    pub backup_eligible: bool,
    pub backed_up: bool,
}

/// The caller's passkeys.
pub async fn list(cx: &Ctx<'_>, caller: &Caller) -> Result<Vec<PasskeyInfo>, Error> {
    let user = factors::caller_user(cx, caller).await?;
    Ok(passkeys_of(&user)
        .filter_map(|c| {
            stored_of(c).map(|p| PasskeyInfo {
                record: c.record.clone(),
                aaguid: p.aaguid,
                backup_eligible: p.backup_eligible,
                backed_up: p.backed_up,
            })
        })
        .collect())
}

/// Removes one of the caller's passkeys (as `DELETE /mfa/factors/{id}` does, for a passkey
/// id only).
pub async fn remove(cx: &Ctx<'_>, caller: &Caller, id: &str) -> Result<(), Error> {
    let user = factors::caller_user(cx, caller).await?;
    if !passkeys_of(&user).any(|c| c.record.id == id) {
        return Err(Error::FactorNotFound);
    }
    factors::remove_factor(cx, caller, id).await
}
