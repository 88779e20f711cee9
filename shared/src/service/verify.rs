//! Proving a phone with a one-time code: sending one (behind the cost guard), checking one
//! (attempts reserved before the comparison), and the flows built on them: signup
//! verification, its resend, and password recovery.
//!
//! Why this order when sending: the idempotency claim first (a Lambda retry of one request
//! sends nothing more), then the budgets (per phone, per source, per country, per day: a
//! refused send costs nothing), then the code is stored (replacing, so invalidating, the
//! previous one, unless the resend cooldown has not passed), then the sender. Audit lines
//! carry a keyed tag of the phone, never the phone or the code.

use std::time::Instant;

use super::{Ctx, Error};
use crate::{
    auth::password,
    otp::{self, CodeHash, Purpose},
    phone::E164,
    sms::guard::{Attempt, Refusal, idempotency_key},
    store::{CodeCheck, CodeRecord, Consumed, Issued, StoreError, UserPatch, UserRecord},
    types::{Password, Phone, UserId},
};

/// A send the guard let through: the idempotency key it claimed.
pub(super) struct Cleared {
    key: String,
}

fn refused(cx: &Ctx<'_>, phone: &E164, purpose: Purpose, reason: &str) {
    tracing::info!(target: "audit", event = "sms_refused", purpose = purpose.as_str(), reason,
        phone_tag = %cx.tokens().audit_tag(phone.as_str()));
}

/// The guard: allow-list, idempotency claim, budgets. `Ok(None)` for a retry of a request
/// that has already sent (send nothing, answer as it did).
pub(super) async fn clear_send(
    cx: &Ctx<'_>,
    phone: &E164,
    purpose: Purpose,
) -> Result<Option<Cleared>, Error> {
    let v = cx.verification;
    let request_id = match cx.client.request_id.as_str() {
        "" => UserId::new().to_hex(),
        id => id.to_owned(),
    };
    let key = idempotency_key(purpose, &request_id);
    let attempt = Attempt {
        phone,
        source_ip: cx.client.source_ip.parse().ok(),
        idempotency_key: &key,
        now: cx.now,
        test_number: v.sms.test_code(phone).is_some(),
    };
    let plan = match v.sms.guard.plan(&attempt) {
        Ok(plan) => plan,
        Err(Refusal::CountryNotAllowed { .. }) => {
            refused(cx, phone, purpose, "country");
            return Err(Error::CountryNotServed);
        }
        Err(Refusal::BadIdempotencyKey) => {
            return Err(Error::Internal(
                "request id unusable as an idempotency key".into(),
            ));
        }
    };
    let claim = cx
        .store
        .consume(&plan.claim.key, 1, plan.claim.ttl_secs, cx.now)
        .await?;
    if matches!(claim, Consumed::Exceeded { .. }) {
        return Ok(None);
    }
    for b in &plan.budgets {
        if let Consumed::Exceeded { retry_after } = cx
            .store
            .consume(&b.key, b.limit, b.window_secs, cx.now)
            .await?
        {
            let kind = b.key.split(':').nth(1).unwrap_or("budget");
            refused(cx, phone, purpose, kind);
            return Err(Error::TooManyAttempts {
                retry_after_secs: u64::try_from(retry_after).unwrap_or(1).max(1),
            });
        }
    }
    Ok(Some(Cleared { key }))
}

fn message(purpose: Purpose, code: &otp::Code, ttl_secs: i64) -> String {
    let what = match purpose {
        Purpose::PasswordRecovery => "password reset code",
        _ => "verification code",
    };
    format!(
        "Your {what} is {}. It expires in {} minutes. Never share it.",
        code.expose(),
        (ttl_secs + 59) / 60
    )
}

/// Stores a new code for (purpose, phone) and sends it; `user` is the account it is for. A
/// send the provider refused leaves no code behind (a retry can start again at once).
pub(super) async fn deliver(
    cx: &Ctx<'_>,
    cleared: &Cleared,
    phone: &E164,
    purpose: Purpose,
    user: Option<UserId>,
) -> Result<(), Error> {
    let v = cx.verification;
    let test_code = v.sms.test_code(phone).cloned();
    let code = match test_code.clone() {
        Some(c) => c,
        None => otp::generate().map_err(|e| Error::internal("code generation", e))?,
    };
    let (hasher, _) = cx.tokens().code_hashers();
    let hash = hasher.hash(phone, purpose, &code);
    let record = CodeRecord {
        phone: phone.as_str().to_owned(),
        purpose: purpose.as_str().to_owned(),
        hash: hash.as_bytes().to_vec(),
        user_id: user,
        sent_at: cx.now,
        expires_at: cx.now.saturating_add(v.code_ttl_secs),
        attempts: 0,
    };
    if let Issued::Cooldown { retry_after } = cx.store.issue_code(&record, v.resend_secs).await? {
        refused(cx, phone, purpose, "cooldown");
        return Err(Error::TooManyAttempts {
            retry_after_secs: u64::try_from(retry_after).unwrap_or(1).max(1),
        });
    }
    if test_code.is_some() {
        tracing::info!(target: "audit", event = "code_issued", purpose = purpose.as_str(),
            sender = "test_number", phone_tag = %cx.tokens().audit_tag(phone.as_str()));
        return Ok(());
    }
    let Some(sender) = v.sender.as_ref() else {
        let _ = cx
            .store
            .spend_code(&record.purpose, &record.phone, &record.hash)
            .await;
        refused(cx, phone, purpose, "no_sender");
        return Err(Error::SmsUnavailable("SMS_SENDER is not set".into()));
    };
    let started = Instant::now();
    let sent = sender
        .send(
            phone,
            &message(purpose, &code, v.code_ttl_secs),
            &cleared.key,
        )
        .await;
    v.record_send(started.elapsed());
    match sent {
        Ok(_) => {
            tracing::info!(target: "audit", event = "sms_sent", purpose = purpose.as_str(),
                sender = sender.name(), phone_tag = %cx.tokens().audit_tag(phone.as_str()));
            Ok(())
        }
        Err(e) => {
            let _ = cx
                .store
                .spend_code(&record.purpose, &record.phone, &record.hash)
                .await;
            refused(cx, phone, purpose, "provider");
            Err(Error::SmsUnavailable(e.to_string()))
        }
    }
}

/// Checks `candidate` against the live code for (purpose, phone): one attempt reserved
/// before the (constant-time) comparison, and the code spent on success so it works once.
pub(super) async fn check_code(
    cx: &Ctx<'_>,
    phone: &E164,
    purpose: Purpose,
    candidate: &str,
) -> Result<CodeRecord, Error> {
    let v = cx.verification;
    let reserved = cx
        .store
        .reserve_code_attempt(purpose.as_str(), phone.as_str(), v.max_attempts, cx.now)
        .await?;
    let ok = match &reserved {
        CodeCheck::Reserved(rec) => CodeHash::from_slice(&rec.hash).is_some_and(|stored| {
            let (current, previous) = cx.tokens().code_hashers();
            // Both keys are always tried (no early exit), each comparison constant-time.
            let by_current = current.verify(phone, purpose, candidate, &stored);
            let by_previous =
                previous.is_some_and(|p| p.verify(phone, purpose, candidate, &stored));
            by_current | by_previous
        }),
        CodeCheck::Unavailable => false,
    };
    let outcome = match (ok, reserved) {
        (true, CodeCheck::Reserved(rec)) => {
            if cx
                .store
                .spend_code(&rec.purpose, &rec.phone, &rec.hash)
                .await?
            {
                Ok(rec)
            } else {
                Err(Error::InvalidCode)
            }
        }
        _ => Err(Error::InvalidCode),
    };
    tracing::info!(target: "audit", event = "code_check", purpose = purpose.as_str(),
        outcome = if outcome.is_ok() { "success" } else { "invalid_code" },
        phone_tag = %cx.tokens().audit_tag(phone.as_str()));
    outcome
}

/// The E.164 form of a phone stored by a strict signup.
pub(super) fn e164_of(cx: &Ctx<'_>, phone: &Phone) -> Result<E164, Error> {
    cx.verification
        .parse_phone(phone.as_str())
        .map_err(|_| Error::CountryNotServed)
}

/// POST /verify/phone/start: sends a new code to an unverified account's phone, or to a
/// pending new phone. Answers the same whether or not such an account exists: the guard's
/// budgets are spent either way, and only the send is skipped.
pub async fn start_phone_verification(cx: &Ctx<'_>, phone: E164) -> Result<(), Error> {
    let Some(cleared) = clear_send(cx, &phone, Purpose::Signup).await? else {
        return Ok(());
    };
    let as_phone = Phone::stored(phone.as_str().to_owned());
    if let Some(user) = cx.store.find_user_by_phone(&as_phone).await?
        && !user.phone_verified
    {
        return deliver(cx, &cleared, &phone, Purpose::Signup, Some(user.id)).await;
    }
    if let Some(user) = cx.store.find_user_by_pending_phone(&as_phone).await? {
        return deliver(cx, &cleared, &phone, Purpose::PhoneChange, Some(user.id)).await;
    }
    tokio::time::sleep(cx.verification.last_send()).await;
    Ok(())
}

/// POST /verify/phone/confirm: the code proves the phone. For a signup the account becomes
/// verified; for a phone change the pending phone becomes the login identifier (the unique
/// index decides a race for it).
pub async fn confirm_phone(cx: &Ctx<'_>, phone: E164, code: &str) -> Result<UserRecord, Error> {
    let as_phone = Phone::stored(phone.as_str().to_owned());
    let change = match cx.store.find_user_by_phone(&as_phone).await? {
        Some(u) if !u.phone_verified => false,
        _ => cx
            .store
            .find_user_by_pending_phone(&as_phone)
            .await?
            .is_some(),
    };
    let purpose = if change {
        Purpose::PhoneChange
    } else {
        Purpose::Signup
    };
    let rec = check_code(cx, &phone, purpose, code).await?;
    let user_id = rec.user_id.ok_or(Error::InvalidCode)?;
    if change {
        // The code is for the change the user asked for last, not one since replaced.
        let pending = cx
            .store
            .find_user(&user_id)
            .await?
            .and_then(|u| u.pending_phone);
        if pending.as_ref() != Some(&as_phone) {
            return Err(Error::InvalidCode);
        }
    }
    let patch = if change {
        UserPatch {
            phone: Some(as_phone.clone()),
            pending_phone: Some(None),
            phone_verified: Some(true),
            ..UserPatch::default()
        }
    } else {
        UserPatch {
            phone_verified: Some(true),
            ..UserPatch::default()
        }
    };
    let user = match cx.store.update_user(&user_id, &patch, cx.now).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(Error::InvalidCode),
        Err(StoreError::Duplicate) => return Err(Error::PhoneTaken),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(target: "audit", event = if change { "phone_change" } else { "phone_verified" },
        user_id = %user.id, phone_tag = %cx.tokens().audit_tag(phone.as_str()));
    Ok(user)
}

/// POST /recover/start: a recovery code to the phone if an account has it. Same answer and,
/// as far as the work goes, the same time either way: the guard runs, a code record is
/// stored (so the resend cooldown behaves alike), and where nothing is sent the answer waits
/// as long as the last send took. A provider failure is logged, not answered.
pub async fn recover_start(cx: &Ctx<'_>, phone: E164) -> Result<(), Error> {
    let purpose = Purpose::PasswordRecovery;
    let Some(cleared) = clear_send(cx, &phone, purpose).await? else {
        return Ok(());
    };
    let as_phone = Phone::stored(phone.as_str().to_owned());
    match cx.store.find_user_by_phone(&as_phone).await? {
        Some(user) => match deliver(cx, &cleared, &phone, purpose, Some(user.id)).await {
            Err(Error::SmsUnavailable(cause)) => {
                tracing::warn!(%cause, "recovery code not sent");
                Ok(())
            }
            other => other,
        },
        None => {
            let started = Instant::now();
            let decoy = otp::generate().map_err(|e| Error::internal("code generation", e))?;
            let record = CodeRecord {
                phone: phone.as_str().to_owned(),
                purpose: purpose.as_str().to_owned(),
                hash: cx
                    .tokens()
                    .code_hashers()
                    .0
                    .hash(&phone, purpose, &decoy)
                    .as_bytes()
                    .to_vec(),
                user_id: None,
                sent_at: cx.now,
                expires_at: cx.now.saturating_add(cx.verification.code_ttl_secs),
                attempts: 0,
            };
            let v = cx.verification;
            if let Issued::Cooldown { retry_after } =
                cx.store.issue_code(&record, v.resend_secs).await?
            {
                return Err(Error::TooManyAttempts {
                    retry_after_secs: u64::try_from(retry_after).unwrap_or(1).max(1),
                });
            }
            let wait = v.last_send().saturating_sub(started.elapsed());
            tokio::time::sleep(wait).await;
            Ok(())
        }
    }
}

/// POST /recover/confirm: the code proves the phone; the password is replaced, every
/// session ends, the login throttle for the phone is cleared, and the phone counts as
/// verified (its owner just proved it).
pub async fn recover_confirm(
    cx: &Ctx<'_>,
    phone: E164,
    code: &str,
    new_password: Password,
) -> Result<(), Error> {
    let rec = check_code(cx, &phone, Purpose::PasswordRecovery, code).await?;
    let user_id = rec.user_id.ok_or(Error::InvalidCode)?;
    let patch = UserPatch {
        password_hash: Some(password::hash(new_password).await?),
        phone_verified: Some(true),
        ..UserPatch::default()
    };
    let user = cx
        .store
        .update_user(&user_id, &patch, cx.now)
        .await?
        .ok_or(Error::InvalidCode)?;
    let ended = cx.store.delete_user_sessions(&user.id, None).await?;
    cx.store.clear_attempts(user.phone.as_str()).await?;
    tracing::info!(target: "audit", event = "password_recovery", user_id = %user.id,
        sessions_ended = ended);
    Ok(())
}
