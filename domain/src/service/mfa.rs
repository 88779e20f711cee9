//! Second factors: TOTP enrolment, recovery codes, the proof of a second factor (at sign-in,
//! at a step-up), and the step-up rule for sensitive changes.
//!
//! Every proof is throttled on one per-account key (`mfa|<user id>`) with the login's atomic
//! reserve-then-check counters, so racing guesses on any number of instances get at most the
//! lock threshold of checks; a success clears it. A TOTP step and a recovery code are spent by
//! one conditional write of the credential's secret (`swap_credential_secret`): of two
//! requests with one code, one wins and the other is refused.

use serde::{Deserialize, Serialize};

use super::{Caller, Ctx, Error, throttle};
use crate::{
    auth::password,
    credential::{CredentialKind, CredentialRecord},
    mfa::{self, MfaMode, recovery, totp},
    store::{
        Ceremony, CeremonyId, CeremonyKind, CredentialChange, Secret, StoredCredential, UserPatch,
        UserRecord,
    },
    types::{Password, UserId},
};

/// The id of an account's TOTP credential (one per account).
pub const TOTP_ID: &str = "totp";
/// The id of an account's recovery-code set.
pub const RECOVERY_CODES_ID: &str = "recovery_codes";
/// How long a shown TOTP secret waits for its first code.
const ENROLMENT_TTL_SECS: i64 = 600;

/// A second factor as presented.
#[derive(Debug, Clone)]
pub enum Proof {
    /// A TOTP code as typed.
    Totp(String),
    /// A recovery code as typed.
    RecoveryCode(String),
}

/// A TOTP secret shown for enrolment.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The ceremony id the confirming call names.
    pub enrolment: CeremonyId,
    /// Base32, for typing into an app.
    pub secret: String,
    pub otpauth_uri: String,
    pub expires_in: i64,
}

/// A factor enrolled, and the recovery codes made with it (the first factor only).
#[derive(Debug)]
pub struct Enrolled {
    pub factor: CredentialRecord,
    pub recovery_codes: Option<Vec<String>>,
    /// The caller's session, now at AAL2.
    pub caller: Caller,
}

/// The account's factors as its owner may see them.
#[derive(Debug)]
pub struct Factors {
    pub factors: Vec<CredentialRecord>,
    pub recovery_codes_left: usize,
    pub mode: MfaMode,
}

/// The stored secret of a TOTP credential: the sealed seed and the last step spent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TotpSecret {
    sealed: String,
    last_step: Option<i64>,
}

impl TotpSecret {
    fn parse(s: &Secret) -> Option<Self> {
        let (sealed, step) = s.expose().split_once('#')?;
        Some(Self {
            sealed: sealed.to_owned(),
            last_step: if step.is_empty() {
                None
            } else {
                Some(step.parse().ok()?)
            },
        })
    }

    fn to_secret(&self) -> Secret {
        let step = self.last_step.map(|s| s.to_string()).unwrap_or_default();
        Secret::new(format!("{}#{step}", self.sealed))
    }
}

/// What a seed is sealed to: its account (a sealed seed copied to another does not open).
fn seed_context(user: &UserId) -> String {
    format!("totp/{}", user.to_hex())
}

fn throttle_key(user: &UserId) -> String {
    format!("mfa|{}", user.to_hex())
}

fn audit(user: &UserId, outcome: &str) {
    tracing::info!(target: "audit", event = "factor_change", outcome, user_id = %user);
}

pub(super) async fn caller_user(cx: &Ctx<'_>, caller: &Caller) -> Result<UserRecord, Error> {
    cx.store
        .find_user(&caller.user_id)
        .await?
        .ok_or(Error::Unauthorized)
}

/// Refuses a sensitive change (a password, phone or email change, a factor added or
/// removed, new recovery codes, the account's deletion) unless the session proved AAL2
/// within `STEP_UP_MAX_AGE_SECONDS`, where the account has a second factor.
pub fn require_step_up(cx: &Ctx<'_>, caller: &Caller, user: &UserRecord) -> Result<(), Error> {
    if cx.policy.mfa.mode == MfaMode::Off || !mfa::has_second_factor(user) {
        return Ok(());
    }
    if caller
        .assurance
        .fresh_aal2(cx.now, cx.policy.mfa.step_up_max_age)
    {
        Ok(())
    } else {
        Err(Error::StepUpRequired)
    }
}

/// The caller's factors.
pub async fn factors(cx: &Ctx<'_>, caller: &Caller) -> Result<Factors, Error> {
    let user = caller_user(cx, caller).await?;
    Ok(Factors {
        factors: mfa::second_factors(&user)
            .map(|c| c.record.clone())
            .collect(),
        recovery_codes_left: mfa::credential(&user, CredentialKind::RecoveryCodes).map_or(0, |c| {
            recovery::StoredCodes::parse(c.secret.expose()).remaining()
        }),
        mode: cx.policy.mfa.mode,
    })
}

/// Starts a TOTP enrolment: a fresh seed, shown once, kept sealed in a ceremony until the
/// first code confirms it.
pub async fn start_totp(cx: &Ctx<'_>, caller: &Caller) -> Result<TotpEnrolment, Error> {
    if cx.policy.mfa.mode == MfaMode::Off {
        return Err(Error::MfaDisabled);
    }
    let user = caller_user(cx, caller).await?;
    require_step_up(cx, caller, &user)?;
    if mfa::credential(&user, CredentialKind::Totp).is_some() {
        return Err(Error::FactorExists);
    }
    let seed = totp::new_seed().map_err(|e| Error::internal("totp seed", e))?;
    let sealed = cx
        .tokens()
        .seal_keys()
        .seal(&seed, &seed_context(&user.id))
        .map_err(|e| Error::internal("totp seal", e))?;
    let enrolment = CeremonyId::new()?;
    cx.store
        .put_ceremony(
            &Ceremony {
                id: enrolment.clone(),
                kind: CeremonyKind::TotpEnrolment,
                user_id: Some(user.id),
                state: sealed.into_bytes(),
                expires_at: cx.now.saturating_add(ENROLMENT_TTL_SECS),
            },
            cx.now,
        )
        .await?;
    let account = user
        .email()
        .map(|e| e.as_str().to_owned())
        .or_else(|| user.phone().map(|p| p.as_str().to_owned()))
        .unwrap_or_else(|| user.id.to_hex());
    Ok(TotpEnrolment {
        enrolment,
        secret: totp::base32(&seed),
        otpauth_uri: totp::otpauth_uri(&cx.policy.mfa.totp_issuer, &account, &seed),
        expires_in: ENROLMENT_TTL_SECS,
    })
}

/// Confirms a TOTP enrolment with a first code: the factor is stored (its step spent), the
/// account gets recovery codes if it has none, and the session, having just proven the
/// factor, is at AAL2.
pub async fn confirm_totp(
    cx: &Ctx<'_>,
    caller: &Caller,
    enrolment: &CeremonyId,
    code: &str,
    label: Option<String>,
) -> Result<Enrolled, Error> {
    let key = throttle_key(&caller.user_id);
    throttle::reserve(cx, &key).await?;
    let kind = CeremonyKind::TotpEnrolment;
    let ceremony = cx
        .store
        .find_ceremony(enrolment, kind, cx.now)
        .await?
        .filter(|c| c.user_id == Some(caller.user_id))
        .ok_or(Error::InvalidCode)?;
    let sealed = String::from_utf8(ceremony.state).map_err(|_| Error::InvalidCode)?;
    let (seed, _) = cx
        .tokens()
        .seal_keys()
        .open(&sealed, &seed_context(&caller.user_id))
        .map_err(|_| Error::InvalidCode)?;
    let step = totp::parse_code(code)
        .and_then(|c| totp::matching_step(&seed, c, cx.now, None))
        .ok_or(Error::InvalidCode)?;
    if cx
        .store
        .take_ceremony(enrolment, kind, cx.now)
        .await?
        .is_none()
    {
        return Err(Error::InvalidCode);
    }
    let user = caller_user(cx, caller).await?;
    if mfa::credential(&user, CredentialKind::Totp).is_some() {
        return Err(Error::FactorExists);
    }
    let factor = CredentialRecord {
        id: TOTP_ID.to_owned(),
        kind: CredentialKind::Totp,
        label: label.unwrap_or_else(|| "Authenticator app".to_owned()),
        created_at: cx.now,
        last_used_at: Some(cx.now),
    };
    let secret = TotpSecret {
        sealed,
        last_step: Some(step),
    }
    .to_secret();
    let credential = StoredCredential {
        record: factor,
        secret,
    };
    let enrolled = enrol(
        cx,
        caller,
        &user,
        credential,
        CredentialKind::Totp.method(),
        None,
    )
    .await?;
    cx.store.clear_attempts(&key).await?;
    audit(&user.id, "totp_added");
    Ok(enrolled)
}

/// Stores a new factor `credential` of `user` (with a set of recovery codes if the account
/// has none) and raises the caller's session to AAL2 by `method`: the enrolment just proved
/// the factor, in a session the password opened. With `cap`, the factor is added only while
/// the account holds fewer than `cap` of its kind, checked by the store at the write (so
/// racing enrolments cannot pass it): `PasskeyLimit` otherwise. Recovery codes are shown
/// only when this enrolment's set is the one stored (a racing first enrolment may have
/// stored its own).
pub(super) async fn enrol(
    cx: &Ctx<'_>,
    caller: &Caller,
    user: &UserRecord,
    credential: StoredCredential,
    method: &str,
    cap: Option<usize>,
) -> Result<Enrolled, Error> {
    let factor = credential.record.clone();
    let mut patch = UserPatch::credential(match cap {
        Some(cap) => CredentialChange::AddWithin { credential, cap },
        None => CredentialChange::Add(credential),
    });
    let codes = if mfa::credential(user, CredentialKind::RecoveryCodes).is_none() {
        let (codes, set) = new_recovery_codes(cx.now).await?;
        let secret = set.secret.clone();
        patch.credentials.push(CredentialChange::AddIfAbsent(set));
        Some((codes, secret))
    } else {
        None
    };
    let after = cx
        .store
        .update_user(&user.id, &patch, cx.now)
        .await?
        .ok_or(Error::Unauthorized)?;
    if !after.credentials.iter().any(|c| c.record.id == factor.id) {
        return Err(Error::PasskeyLimit);
    }
    let codes = codes.and_then(|(codes, secret)| {
        mfa::credential(&after, CredentialKind::RecoveryCodes)
            .is_some_and(|kept| kept.secret == secret)
            .then_some(codes)
    });
    let session = cx
        .store
        .step_up_session(&caller.session_id, method, cx.now)
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Enrolled {
        factor,
        recovery_codes: codes,
        caller: Caller {
            user_id: caller.user_id,
            session_id: caller.session_id.clone(),
            assurance: session.assurance(),
        },
    })
}

/// A fresh set of recovery codes: as shown, and as stored.
async fn new_recovery_codes(now: i64) -> Result<(Vec<String>, StoredCredential), Error> {
    let codes = recovery::generate().map_err(|e| Error::internal("recovery codes", e))?;
    let mut stored = Vec::with_capacity(codes.len());
    for c in &codes {
        let phc = password::hash(Password::unchecked(c.expose().to_owned())).await?;
        stored.push((c.tag().to_owned(), phc));
    }
    let credential = StoredCredential {
        record: CredentialRecord {
            id: RECOVERY_CODES_ID.to_owned(),
            kind: CredentialKind::RecoveryCodes,
            label: "Recovery codes".to_owned(),
            created_at: now,
            last_used_at: None,
        },
        secret: Secret::new(recovery::StoredCodes(stored).to_stored()),
    };
    Ok((
        codes.iter().map(recovery::RecoveryCode::display).collect(),
        credential,
    ))
}

/// Replaces the caller's recovery codes (the old ones stop working at once). Needs a fresh
/// AAL2 session: the codes are a second factor themselves.
pub async fn regenerate_recovery_codes(
    cx: &Ctx<'_>,
    caller: &Caller,
) -> Result<Vec<String>, Error> {
    let user = caller_user(cx, caller).await?;
    if !mfa::has_second_factor(&user) {
        return Err(Error::FactorNotFound);
    }
    require_step_up(cx, caller, &user)?;
    let (codes, stored) = new_recovery_codes(cx.now).await?;
    cx.store
        .update_user(
            &user.id,
            &UserPatch::credential(CredentialChange::Add(stored)),
            cx.now,
        )
        .await?
        .ok_or(Error::Unauthorized)?;
    audit(&user.id, "recovery_codes_regenerated");
    Ok(codes)
}

/// Removes the caller's factor `id` (after a step-up). Removing the last second factor
/// removes the recovery codes too. The sessions that factor opened end, except the caller's.
pub async fn remove_factor(cx: &Ctx<'_>, caller: &Caller, id: &str) -> Result<(), Error> {
    let user = caller_user(cx, caller).await?;
    let Some(factor) = mfa::second_factors(&user).find(|c| c.record.id == id) else {
        return Err(Error::FactorNotFound);
    };
    require_step_up(cx, caller, &user)?;
    let mut patch = UserPatch::credential(CredentialChange::Remove(factor.record.id.clone()));
    if mfa::second_factors(&user).count() == 1 {
        patch
            .credentials
            .push(CredentialChange::RemoveKind(CredentialKind::RecoveryCodes));
    }
    cx.store
        .update_user(&user.id, &patch, cx.now)
        .await?
        .ok_or(Error::Unauthorized)?;
    // Every other session: a stolen session that stepped up with this factor must not
    // outlive it (sessions do not record their second factor's id yet).
    cx.store
        .delete_user_sessions(&user.id, Some(&caller.session_id))
        .await?;
    audit(
        &user.id,
        &format!("{}_removed", factor.record.kind.as_str()),
    );
    Ok(())
}

/// Checks `proof` against `user`'s factors, throttled on the account's second-factor key,
/// and spends it (a TOTP step, a recovery code) atomically. The RFC 8176 method proven.
pub async fn prove(cx: &Ctx<'_>, user: &UserRecord, proof: &Proof) -> Result<&'static str, Error> {
    let key = throttle_key(&user.id);
    let attempt = throttle::reserve(cx, &key).await?;
    let proven = match proof {
        Proof::Totp(code) => prove_totp(cx, user, code).await?,
        Proof::RecoveryCode(code) => prove_recovery_code(cx, user, code).await?,
    };
    match proven {
        Some(method) => {
            cx.store.clear_attempts(&key).await?;
            Ok(method)
        }
        None => {
            if let Some(lock) = throttle::locked_for(cx, attempt) {
                tracing::info!(target: "audit", event = "lockout", scope = "mfa",
                    user_id = %user.id, failures = attempt, lock_seconds = lock);
            }
            Err(Error::InvalidCode)
        }
    }
}

async fn prove_totp(
    cx: &Ctx<'_>,
    user: &UserRecord,
    code: &str,
) -> Result<Option<&'static str>, Error> {
    let Some(credential) = mfa::credential(user, CredentialKind::Totp) else {
        return Ok(None);
    };
    let Some(stored) = TotpSecret::parse(&credential.secret) else {
        return Err(Error::internal("totp", "stored secret malformed"));
    };
    let tokens = cx.tokens();
    let context = seed_context(&user.id);
    let Ok((seed, current)) = tokens.seal_keys().open(&stored.sealed, &context) else {
        // Sealed under a key no longer held (two rotations without `user-admin reseal`): the
        // factor cannot be checked; recovery codes or an operator's reset still work.
        tracing::error!(user_id = %user.id, "a TOTP seed no key in force opens");
        return Ok(None);
    };
    let Some(step) = totp::parse_code(code)
        .and_then(|c| totp::matching_step(&seed, c, cx.now, stored.last_step))
    else {
        return Ok(None);
    };
    // Sealed again under the current key when an older one opened it.
    let sealed = if current {
        stored.sealed.clone()
    } else {
        tokens
            .seal_keys()
            .seal(&seed, &context)
            .map_err(|e| Error::internal("totp seal", e))?
    };
    let next = TotpSecret {
        sealed,
        last_step: Some(step),
    };
    let spent = swap_seed(cx, &user.id, &credential.secret, &next).await?;
    if spent {
        cx.store.touch_credential(&user.id, TOTP_ID, cx.now).await?;
    }
    Ok(spent.then_some(CredentialKind::Totp.method()))
}

/// Writes `next` over the TOTP secret `read`, only if it is still that (one conditional write).
async fn swap_seed(
    cx: &Ctx<'_>,
    user: &UserId,
    read: &Secret,
    next: &TotpSecret,
) -> Result<bool, Error> {
    Ok(cx
        .store
        .swap_credential_secret(user, TOTP_ID, read, &next.to_secret(), cx.now)
        .await?)
}

async fn prove_recovery_code(
    cx: &Ctx<'_>,
    user: &UserRecord,
    raw: &str,
) -> Result<Option<&'static str>, Error> {
    let credential = mfa::credential(user, CredentialKind::RecoveryCodes);
    let stored = credential
        .map(|c| recovery::StoredCodes::parse(c.secret.expose()))
        .unwrap_or_default();
    let code = recovery::RecoveryCode::parse(raw);
    let candidates: Vec<(usize, String)> = code
        .as_ref()
        .map(|c| {
            stored
                .candidates(c)
                .map(|(i, phc)| (i, phc.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let typed = Password::unchecked(code.as_ref().map_or(raw, |c| c.expose()).to_owned());
    let mut matched = None;
    if candidates.is_empty() {
        // The same argon2 cost whether or not the code could be one of the account's.
        password::verify(typed.clone(), None).await?;
    }
    for (i, phc) in candidates {
        if password::verify(typed.clone(), Some(phc)).await? {
            matched = Some(i);
            break;
        }
    }
    let (Some(i), Some(credential)) = (matched, credential) else {
        return Ok(None);
    };
    let rest = Secret::new(stored.without(i).to_stored());
    let spent = cx
        .store
        .swap_credential_secret(
            &user.id,
            RECOVERY_CODES_ID,
            &credential.secret,
            &rest,
            cx.now,
        )
        .await?;
    if spent {
        audit(&user.id, "recovery_code_used");
    }
    Ok(spent.then_some(CredentialKind::RecoveryCodes.method()))
}

/// Raises the caller's session to AAL2 with a second factor: its later tokens carry `aal` 2,
/// the `aal2` scope and the method in `amr`, and sensitive changes are allowed until the
/// proof is older than `STEP_UP_MAX_AGE_SECONDS`.
pub async fn step_up(cx: &Ctx<'_>, caller: &Caller, proof: &Proof) -> Result<Caller, Error> {
    let user = caller_user(cx, caller).await?;
    if !mfa::has_second_factor(&user) {
        return Err(Error::FactorNotFound);
    }
    let method = prove(cx, &user, proof).await?;
    let session = cx
        .store
        .step_up_session(&caller.session_id, method, cx.now)
        .await?
        .ok_or(Error::Unauthorized)?;
    tracing::info!(target: "audit", event = "step_up", outcome = "success", user_id = %user.id, method);
    Ok(Caller {
        user_id: caller.user_id,
        session_id: caller.session_id.clone(),
        assurance: session.assurance(),
    })
}

/// What a sweep of sealed seeds did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Seeds sealed again under the current key.
    pub resealed: u64,
    /// Seeds already under it.
    pub current: u64,
    /// Seeds no key in force opens (their accounts need recovery codes or a reset).
    pub unreadable: u64,
}

/// Seals every TOTP seed still under an older key (`previous`, `next`) again under the
/// current one, so the next rotation, which retires the older key, leaves every factor
/// readable. Each account is one conditional swap of the seed it read: a sign-in that spends
/// a step meanwhile wins, and that account is left for the next sweep (its seed was resealed
/// by the sign-in anyway).
pub(super) async fn reseal_all(cx: &Ctx<'_>) -> Result<Resealed, Error> {
    let tokens = cx.tokens();
    let keys = tokens.seal_keys();
    let mut out = Resealed::default();
    let mut after = None;
    loop {
        let page = cx.store.users_after(after.as_ref(), 100).await?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = Some(last.id);
        for user in &page {
            let Some(credential) = mfa::credential(user, CredentialKind::Totp) else {
                continue;
            };
            let Some(stored) = TotpSecret::parse(&credential.secret) else {
                out.unreadable += 1;
                continue;
            };
            let context = seed_context(&user.id);
            match keys.open(&stored.sealed, &context) {
                Ok((_, true)) => out.current += 1,
                Ok((seed, false)) => {
                    let sealed = keys
                        .seal(&seed, &context)
                        .map_err(|e| Error::internal("totp seal", e))?;
                    let next = TotpSecret {
                        sealed,
                        last_step: stored.last_step,
                    };
                    if swap_seed(cx, &user.id, &credential.secret, &next).await? {
                        out.resealed += 1;
                    }
                }
                Err(_) => out.unreadable += 1,
            }
        }
    }
}

/// What a sign-in waiting for its second factor keeps: who, and what the password sign-in
/// would have handed out with the session.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Pending {
    /// The identifier's address the login was keyed by (for the device token).
    pub address: String,
    /// The device id (hex) the device token will name.
    pub device: String,
    /// The id of the credential that opened it (the password, a provider's identity).
    pub credential_id: String,
    /// Its method (`pwd`, `fed`); absent in challenges made before it was kept: `pwd`.
    #[serde(default)]
    pub method: String,
}

/// Removes every second factor and recovery code of `user` (an operator's reset for a user
/// who lost them all), ends every session, and tells the user on every proven channel:
/// audited by the caller. The password stays: the user signs in with it, single-factor, and
/// enrols again.
pub(super) async fn reset_factors(cx: &Ctx<'_>, user: &UserId) -> Result<UserRecord, Error> {
    let patch = UserPatch {
        credentials: vec![
            CredentialChange::RemoveKind(CredentialKind::Totp),
            CredentialChange::RemoveKind(CredentialKind::Passkey),
            CredentialChange::RemoveKind(CredentialKind::RecoveryCodes),
        ],
        ..UserPatch::default()
    };
    let updated = cx
        .store
        .update_user(user, &patch, cx.now)
        .await?
        .ok_or(Error::UserNotFound)?;
    cx.store.delete_user_sessions(user, None).await?;
    cx.store.clear_attempts(&throttle_key(user)).await?;
    audit(user, "admin_reset");
    notify_reset(cx, &updated).await;
    Ok(updated)
}

/// Best effort: the reset stands whether or not a notice goes out (each failure is logged).
async fn notify_reset(cx: &Ctx<'_>, user: &UserRecord) {
    let key = format!("factors-reset:{}:{}", user.id.to_hex(), cx.now);
    if let (Some(email), Some(sender)) = (
        user.email()
            .filter(|_| user.verified(crate::identity::IdentifierKind::Email)),
        cx.email.sender.as_ref(),
    ) {
        let kind = crate::email::template::MailKind::FactorsReset;
        let fill = crate::email::template::Fill {
            code: "",
            link: "",
            minutes: 0,
        };
        let message = cx.email.settings.templates.render(kind, &[], fill);
        match sender.send(email, &message, &key).await {
            Ok(_) => tracing::info!(target: "audit", event = "email_sent", kind = kind.as_str(),
                sender = sender.name(), user_id = %user.id),
            Err(e) => {
                tracing::warn!(error = %e, user_id = %user.id, "factor reset notice not mailed")
            }
        }
    }
    if let (Some(phone), Some(sender)) = (
        user.phone().filter(|_| user.phone_verified()),
        cx.verification.sender.as_ref(),
    ) {
        let text = "Support reset the two-step verification of your account and signed you out. \
                    If you did not ask for this, reset your password and contact support now.";
        match sender.send(phone, text, &key).await {
            Ok(_) => tracing::info!(target: "audit", event = "sms_sent", kind = "factors_reset",
                sender = sender.name(), user_id = %user.id),
            Err(e) => {
                tracing::warn!(error = %e, user_id = %user.id, "factor reset notice not texted")
            }
        }
    }
}
