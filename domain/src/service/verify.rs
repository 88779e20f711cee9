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

use super::{Ctx, Error, throttle};
use crate::{
    auth::password,
    identity::{Identifier, IdentifierKind},
    otp::{self, CodeHash, Purpose},
    sms::guard::{Attempt, Budget, Claim, Refusal, idempotency_key},
    store::{
        CodeCheck, CodeRecord, Consumed, IdentifierChange, Issued, StoreError, UserPatch,
        UserRecord,
    },
    types::{Password, Phone, UserId},
};

/// A send the guard let through: the idempotency key it claimed and the counters it holds
/// (given back if the request ends up refused or sends nothing).
pub(super) struct Cleared {
    pub(super) key: String,
    claim: Claim,
    /// Attempt limits reserved (source, phone or address).
    budgets: Vec<Budget>,
    /// Cost budgets (country, daily) that had room: reserved only when a message goes out.
    pub(super) cost: Vec<Budget>,
}

fn refused(cx: &Ctx<'_>, phone: &Phone, purpose: Purpose, reason: &str) {
    tracing::info!(target: "audit", event = "sms_refused", purpose = purpose.as_str(), reason,
        phone_tag = %cx.tokens().audit_tag(phone.as_str()));
}

/// Gives back `budgets`. Best effort: a counter that cannot be given back (the database
/// failed meanwhile) errs on the side of the cost guard and expires with its window.
pub(super) async fn release_all(cx: &Ctx<'_>, budgets: &[Budget]) {
    for b in budgets {
        if let Err(e) = cx.store.release(&b.key, b.window_secs, cx.now).await {
            tracing::warn!(error = %e, "guard counter not given back");
        }
    }
}

/// Reserves `budgets` in order, as one: at the first refusal (or store error) every one
/// reserved so far is given back. `Ok(Err((i, retry_after)))`: `budgets[i]` refused.
pub(super) async fn reserve_all(
    cx: &Ctx<'_>,
    budgets: &[Budget],
) -> Result<Result<(), (usize, i64)>, Error> {
    for (i, b) in budgets.iter().enumerate() {
        let answer = cx
            .store
            .consume(&b.key, b.limit, b.window_secs, cx.now)
            .await;
        match answer {
            Ok(Consumed::Within { .. }) => {}
            Ok(Consumed::Exceeded { retry_after }) => {
                release_all(cx, &budgets[..i]).await;
                return Ok(Err((i, retry_after)));
            }
            Err(e) => {
                release_all(cx, &budgets[..i]).await;
                return Err(e.into());
            }
        }
    }
    Ok(Ok(()))
}

/// A request the guard let through was refused later or sent nothing at all: every counter
/// and the idempotency claim go back, so it costs no one anything and stores nothing.
pub(super) async fn give_back(cx: &Ctx<'_>, cleared: &Cleared) {
    release_all(cx, &cleared.budgets).await;
    if let Err(e) = cx
        .store
        .release(&cleared.claim.key, cleared.claim.ttl_secs, cx.now)
        .await
    {
        tracing::warn!(error = %e, "idempotency claim not given back");
    }
}

/// Reserves the cost budgets (country, then daily) for an SMS about to go out; the one
/// reserved is given back if the next refuses. Refused only when another send took the last
/// of a budget since the guard looked.
async fn reserve_cost(
    cx: &Ctx<'_>,
    cleared: &Cleared,
    phone: &Phone,
    purpose: Purpose,
) -> Result<(), Error> {
    match reserve_all(cx, &cleared.cost).await? {
        Ok(()) => Ok(()),
        Err((i, retry_after)) => {
            refused(cx, phone, purpose, cleared.cost[i].guard.as_str());
            Err(Error::SmsBudgetSpent {
                retry_after_secs: u64::try_from(retry_after).unwrap_or_default().max(1),
            })
        }
    }
}

/// The guard, as one reservation: allow-list, then the budgets in the plan's order (source,
/// phone, country, daily; a refusal gives back what this request reserved), then the
/// idempotency claim. `Ok(None)` for a retry of a request that has already sent (send
/// nothing, answer as it did).
pub(super) async fn clear_send(
    cx: &Ctx<'_>,
    phone: &Phone,
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
    clear_plan(cx, key, plan, |reason| refused(cx, phone, purpose, reason)).await
}

/// The guard's store work for a plan, whatever the channel: the attempt limits reserved now
/// (a refusal gives back what this request reserved), the cost budgets only looked at (a
/// request that sends nothing must not hold them, even for a moment; they are reserved at the
/// send), then the idempotency claim. `refuse` audits a refusal by its reason word. `Ok(None)`
/// for a retry of a request that has already sent.
pub(super) async fn clear_plan(
    cx: &Ctx<'_>,
    key: String,
    plan: crate::sms::guard::Plan,
    refuse: impl Fn(&str),
) -> Result<Option<Cleared>, Error> {
    let (held, cost): (Vec<Budget>, Vec<Budget>) =
        plan.budgets.into_iter().partition(|b| !b.spends());
    if let Err((i, retry_after)) = reserve_all(cx, &held).await? {
        refuse(held[i].guard.as_str());
        return Err(throttle::retry_after(retry_after));
    }
    for b in &cost {
        let used = match cx.store.used(&b.key, b.window_secs, cx.now).await {
            Ok(n) => n,
            Err(e) => {
                release_all(cx, &held).await;
                return Err(e.into());
            }
        };
        if used >= b.limit {
            release_all(cx, &held).await;
            refuse(b.guard.as_str());
            let (_, end) = crate::store::window_of(cx.now, b.window_secs);
            return Err(throttle::retry_after(end - cx.now));
        }
    }
    let claim = match cx
        .store
        .consume(&plan.claim.key, 1, plan.claim.ttl_secs, cx.now)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            release_all(cx, &held).await;
            return Err(e.into());
        }
    };
    if matches!(claim, Consumed::Exceeded { .. }) {
        release_all(cx, &held).await;
        return Ok(None);
    }
    Ok(Some(Cleared {
        key,
        claim: plan.claim,
        budgets: held,
        cost,
    }))
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

/// The record of `code` sent to `destination` (a phone's number or an email address) for
/// `purpose` now, for `user`: only its keyed hash, live for `OTP_TTL_SECONDS`.
pub(super) fn code_record(
    cx: &Ctx<'_>,
    destination: &str,
    purpose: Purpose,
    code: &otp::Code,
    user: Option<UserId>,
) -> CodeRecord {
    let hash = cx
        .tokens()
        .code_hashers()
        .0
        .hash(destination, purpose, code);
    CodeRecord {
        phone: destination.to_owned(),
        purpose: purpose.as_str().to_owned(),
        hash: hash.as_bytes().to_vec(),
        user_id: user,
        sent_at: cx.now,
        expires_at: cx.now.saturating_add(cx.verification.code_ttl_secs),
        attempts: 0,
    }
}

/// Stores a new code for (purpose, phone) and sends it; `user` is the account it is for. A
/// send the provider refused leaves no code behind (a retry can start again at once).
pub(super) async fn deliver(
    cx: &Ctx<'_>,
    cleared: &Cleared,
    phone: &Phone,
    purpose: Purpose,
    user: Option<UserId>,
) -> Result<(), Error> {
    let v = cx.verification;
    let test_code = v.sms.test_code(phone).cloned();
    let code = match test_code.clone() {
        Some(c) => c,
        None => otp::generate().map_err(|e| Error::internal("code generation", e))?,
    };
    // The text first (the app's custom_message hook, if any): a hook that fails closed
    // leaves no code stored and nothing reserved.
    let text = if test_code.is_some() {
        String::new()
    } else {
        let default = message(purpose, &code, v.code_ttl_secs);
        match super::hooks::custom_sms(cx, phone, purpose, &code, default).await {
            Ok(t) => t,
            Err(e) => {
                give_back(cx, cleared).await;
                return Err(e);
            }
        }
    };
    let record = code_record(cx, phone.as_str(), purpose, &code, user);
    let issued = match cx.store.issue_code(&record, v.resend_secs).await {
        Ok(issued) => issued,
        Err(e) => {
            give_back(cx, cleared).await;
            return Err(e.into());
        }
    };
    if let Issued::Cooldown { retry_after } = issued {
        give_back(cx, cleared).await;
        refused(cx, phone, purpose, "cooldown");
        return Err(throttle::retry_after(retry_after));
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
        give_back(cx, cleared).await;
        refused(cx, phone, purpose, "no_sender");
        return Err(Error::SmsUnavailable("SMS_SENDER is not set".into()));
    };
    let started = Instant::now();
    if let Err(e) = reserve_cost(cx, cleared, phone, purpose).await {
        let _ = cx
            .store
            .spend_code(&record.purpose, &record.phone, &record.hash)
            .await;
        give_back(cx, cleared).await;
        return Err(e);
    }
    let sent = sender.send(phone, &text, &cleared.key).await;
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
            give_back(cx, cleared).await;
            release_all(cx, &cleared.cost).await;
            refused(cx, phone, purpose, "provider");
            Err(Error::SmsUnavailable(e.to_string()))
        }
    }
}

/// The per-phone failed-code counters (the day's, the window's), across codes and purposes.
fn failure_budgets(cx: &Ctx<'_>, destination: &str) -> [Budget; 2] {
    let cap = cx.verification.failure_cap;
    [
        Budget {
            key: format!("code:fail:d:{destination}"),
            limit: cap.per_day,
            window_secs: crate::sms::guard::DAY,
            guard: crate::sms::guard::Guard::Phone,
        },
        Budget {
            key: format!("code:fail:n:{destination}"),
            limit: cap.total,
            window_secs: cap.window_secs,
            guard: crate::sms::guard::Guard::Phone,
        },
    ]
}

/// Reserves one failure against the phone's caps before a comparison (a comparison counts as
/// failed until it succeeds); refused once either cap is full, whatever code is live.
async fn reserve_failure(
    cx: &Ctx<'_>,
    destination: &str,
    purpose: Purpose,
) -> Result<[Budget; 2], Error> {
    let budgets = failure_budgets(cx, destination);
    if let Err((i, retry_after)) = reserve_all(cx, &budgets).await? {
        tracing::info!(target: "audit", event = "code_failure_cap",
            purpose = purpose.as_str(), cap = ["day", "total"][i],
            tag = %cx.tokens().audit_tag(destination));
        return Err(throttle::retry_after(retry_after));
    }
    Ok(budgets)
}

/// Clears the phone's failed-code counters: a correct code, or an operator
/// (`user-admin clear-code-failures`).
pub async fn clear_code_failures(cx: &Ctx<'_>, destination: &str) -> Result<(), Error> {
    for b in failure_budgets(cx, destination) {
        cx.store.clear_budget(&b.key).await?;
    }
    Ok(())
}

/// Checks `candidate` against the live code for (purpose, phone): one failure reserved
/// against the phone's caps (per day and in total, across resends), then one attempt against
/// the code (at most 5 per code), both before the (constant-time) comparison; the code is
/// spent on success so it works once, and a success clears the phone's failures. Where no
/// code is live nothing is compared, and the failure is given back.
pub(super) async fn check_code(
    cx: &Ctx<'_>,
    destination: &str,
    purpose: Purpose,
    candidate: &str,
) -> Result<CodeRecord, Error> {
    let v = cx.verification;
    let failure = reserve_failure(cx, destination, purpose).await?;
    let reserved = match cx
        .store
        .reserve_code_attempt(purpose.as_str(), destination, v.max_attempts, cx.now)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            release_all(cx, &failure).await;
            return Err(e.into());
        }
    };
    let ok = match &reserved {
        CodeCheck::Reserved(rec) => CodeHash::from_slice(&rec.hash).is_some_and(|stored| {
            let (current, previous) = cx.tokens().code_hashers();
            // Both keys are always tried (no early exit), each comparison constant-time.
            let by_current = current.verify(destination, purpose, candidate, &stored);
            let by_previous =
                previous.is_some_and(|p| p.verify(destination, purpose, candidate, &stored));
            by_current | by_previous
        }),
        CodeCheck::Unavailable => {
            release_all(cx, &failure).await;
            false
        }
    };
    let outcome = match (ok, reserved) {
        (true, CodeCheck::Reserved(rec)) => {
            if cx
                .store
                .spend_code(&rec.purpose, &rec.phone, &rec.hash)
                .await?
            {
                clear_code_failures(cx, destination).await?;
                Ok(rec)
            } else {
                Err(Error::InvalidCode)
            }
        }
        _ => Err(Error::InvalidCode),
    };
    tracing::info!(target: "audit", event = "code_check", purpose = purpose.as_str(),
        outcome = if outcome.is_ok() { "success" } else { "invalid_code" },
        tag = %cx.tokens().audit_tag(destination));
    outcome
}

/// The E.164 form of a phone stored by a strict signup.
pub(super) fn e164_of(cx: &Ctx<'_>, phone: &Phone) -> Result<Phone, Error> {
    cx.verification
        .parse_phone(phone.as_str())
        .map_err(|_| Error::CountryNotServed)
}

/// POST /verify/phone/start: sends a new code to an unverified account's phone, or to a
/// pending new phone. Answers the same whether or not such an account exists: the guard
/// reserves alike either way; where nothing is sent the cost budgets are never touched and
/// the answer waits as long as a send takes.
pub async fn start_phone_verification(cx: &Ctx<'_>, phone: Phone) -> Result<(), Error> {
    let Some(cleared) = clear_send(cx, &phone, Purpose::Signup).await? else {
        return Ok(());
    };
    if let Some(user) = cx.store.find_user_by_phone(&phone).await?
        && !user.phone_verified()
    {
        return deliver(cx, &cleared, &phone, Purpose::Signup, Some(user.id)).await;
    }
    if let Some(user) = cx.store.find_user_by_pending_phone(&phone).await? {
        return deliver(cx, &cleared, &phone, Purpose::PhoneChange, Some(user.id)).await;
    }
    tokio::time::sleep(cx.verification.last_send()).await;
    Ok(())
}

/// POST /verify/phone/confirm: the code proves the phone. For a signup the account becomes
/// verified; for a phone change the pending phone becomes the login identifier (the unique
/// index decides a race for it).
pub async fn confirm_phone(cx: &Ctx<'_>, phone: Phone, code: &str) -> Result<UserRecord, Error> {
    let change = match cx.store.find_user_by_phone(&phone).await? {
        Some(u) if !u.phone_verified() => false,
        _ => cx.store.find_user_by_pending_phone(&phone).await?.is_some(),
    };
    let purpose = if change {
        Purpose::PhoneChange
    } else {
        Purpose::Signup
    };
    let rec = check_code(cx, phone.as_str(), purpose, code).await?;
    let user_id = rec.user_id.ok_or(Error::InvalidCode)?;
    if change {
        // The code is for the change the user asked for last, not one since replaced.
        let user = cx.store.find_user(&user_id).await?;
        if user.as_ref().and_then(UserRecord::pending_phone) != Some(&phone) {
            return Err(Error::InvalidCode);
        }
    }
    let patch = if change {
        UserPatch {
            identifiers: vec![
                IdentifierChange::Set {
                    identifier: Identifier::Phone(phone.clone()),
                    verified_at: Some(cx.now),
                },
                IdentifierChange::Unpend(IdentifierKind::Phone),
            ],
            ..UserPatch::default()
        }
    } else {
        UserPatch::identifier(IdentifierChange::Verify(IdentifierKind::Phone))
    };
    let user = match cx.store.update_user(&user_id, &patch, cx.now).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(Error::InvalidCode),
        Err(StoreError::Duplicate) => return Err(Error::PhoneTaken),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(target: "audit", event = if change { "phone_change" } else { "phone_verified" },
        user_id = %user.id, phone_tag = %cx.tokens().audit_tag(phone.as_str()));
    super::hooks::post_confirmation(
        cx,
        &user,
        &Identifier::Phone(phone),
        if change { "change" } else { "signup" },
    )
    .await;
    Ok(user)
}

/// POST /recover/start: a recovery code to the phone if an account has it. Same answer and,
/// as far as the work goes, the same time either way: the guard runs, a code record is
/// stored (so the resend cooldown behaves alike), and where nothing is sent the answer waits
/// as long as the last send took. A provider failure is logged, not answered.
pub async fn recover_start(cx: &Ctx<'_>, phone: Phone) -> Result<(), Error> {
    let purpose = Purpose::PasswordRecovery;
    let Some(cleared) = clear_send(cx, &phone, purpose).await? else {
        return Ok(());
    };
    match cx.store.find_user_by_phone(&phone).await? {
        Some(user) => match deliver(cx, &cleared, &phone, purpose, Some(user.id)).await {
            Err(Error::SmsUnavailable(cause)) => {
                tracing::warn!(%cause, "recovery code not sent");
                Ok(())
            }
            // As an unknown phone would be answered: the refusal is audited, not told.
            Err(Error::SmsBudgetSpent { .. }) => Ok(()),
            other => other,
        },
        None => answer_as_if_sent(cx, &cleared, phone.as_str(), purpose).await,
    }
}

/// The answer to a recovery of a destination no account has, with the work of a real one:
/// a decoy code is stored (so the resend cooldown behaves alike; no one knows it, so it
/// proves nothing) and the answer waits as long as the last real send took. The attempt
/// limits the guard reserved stay spent, as for a known destination; the cost budgets were
/// only looked at.
pub(super) async fn answer_as_if_sent(
    cx: &Ctx<'_>,
    cleared: &Cleared,
    destination: &str,
    purpose: Purpose,
) -> Result<(), Error> {
    let started = Instant::now();
    let decoy = otp::generate().map_err(|e| Error::internal("code generation", e))?;
    let v = cx.verification;
    let record = code_record(cx, destination, purpose, &decoy, None);
    if let Issued::Cooldown { retry_after } = cx.store.issue_code(&record, v.resend_secs).await? {
        give_back(cx, cleared).await;
        return Err(throttle::retry_after(retry_after));
    }
    tokio::time::sleep(v.last_send().saturating_sub(started.elapsed())).await;
    Ok(())
}

/// POST /recover/confirm: the code proves the phone; the password is replaced, every
/// session ends, the login throttle for the phone is cleared, and the phone counts as
/// verified (its owner just proved it).
pub async fn recover_confirm(
    cx: &Ctx<'_>,
    phone: Phone,
    code: &str,
    new_password: Password,
) -> Result<(), Error> {
    let rec = check_code(cx, phone.as_str(), Purpose::PasswordRecovery, code).await?;
    let user_id = rec.user_id.ok_or(Error::InvalidCode)?;
    reset_password(cx, user_id, &Identifier::Phone(phone), new_password).await
}

/// A proven recovery: the password is replaced, every session ends, the login throttle of
/// the identifier that proved it is cleared and that identifier counts as proven; audited.
pub(super) async fn reset_password(
    cx: &Ctx<'_>,
    user_id: UserId,
    proven: &Identifier,
    new_password: Password,
) -> Result<(), Error> {
    let patch = UserPatch {
        password_hash: Some(password::hash(new_password).await?),
        identifiers: vec![IdentifierChange::Verify(proven.kind())],
        ..UserPatch::default()
    };
    let user = cx
        .store
        .update_user(&user_id, &patch, cx.now)
        .await?
        .ok_or(Error::InvalidCode)?;
    let ended = cx.store.delete_user_sessions(&user.id, None).await?;
    if let Some(address) = proven.address() {
        cx.store.clear_attempts(address).await?;
    }
    tracing::info!(target: "audit", event = "password_recovery", channel = proven.kind().as_str(),
        user_id = %user.id, sessions_ended = ended);
    Ok(())
}
