//! Proving an email address: a code from the one-time-code machinery phones use (the same
//! store, hashing, attempt limits and failure caps, keyed by the address), and in the same
//! message a link carrying a one-time token. The token is a ceremony that names the code: a
//! GET of the link only shows a page (mail scanners that fetch links spend nothing); the page
//! or app POSTs the token, which takes the ceremony and spends the code, so the code and the
//! link are one proof, good once.
//!
//! Guards, as one reservation, nothing charged by refused or non-sending requests: per source
//! address and per address (hourly), then the daily budget (looked at by the guard, reserved
//! only when a message goes out), then the idempotency claim.

use std::time::Instant;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{
    Ctx, Error, throttle,
    verify::{self, Cleared},
};
use crate::{
    email::{
        Email,
        template::{Fill, MailKind, Templates},
    },
    identity::{Identifier, IdentifierKind},
    otp::{self, Purpose},
    sms::guard::{Budget, CLAIM_TTL_SECS, Claim, DAY, Guard, Plan},
    store::{
        Ceremony, CeremonyId, CeremonyKind, CodeRecord, IdentifierChange, Issued, StoreError,
        UserPatch, UserRecord,
    },
    types::UserId,
};

const HOUR: i64 = 3600;

fn refused(cx: &Ctx<'_>, email: &Email, purpose: Purpose, reason: &str) {
    tracing::info!(target: "audit", event = "email_refused", purpose = purpose.as_str(), reason,
        email_tag = %cx.tokens().audit_tag(email.as_str()));
}

/// The guard for one message to `email`: `Ok(None)` for a retry of a request that has
/// already sent.
pub(super) async fn clear_mail(
    cx: &Ctx<'_>,
    email: &Email,
    purpose: Purpose,
) -> Result<Option<Cleared>, Error> {
    let s = &cx.email.settings;
    let request_id = match cx.client.request_id.as_str() {
        "" => UserId::new().to_hex(),
        id => id.to_owned(),
    };
    let key = format!("mail:{}:{request_id}", purpose.as_str());
    let mut budgets = Vec::new();
    if !cx.client.source_ip.is_empty() {
        budgets.push(Budget {
            key: format!("mail:ip:{}", cx.client.source_ip),
            limit: s.per_source,
            window_secs: HOUR,
            guard: Guard::Source,
        });
    }
    budgets.push(Budget {
        key: format!("mail:addr:{}", email.as_str()),
        limit: s.per_address,
        window_secs: HOUR,
        guard: Guard::Address,
    });
    budgets.push(Budget {
        key: "mail:day".to_owned(),
        limit: s.daily,
        window_secs: DAY,
        guard: Guard::Daily,
    });
    let plan = Plan {
        claim: Claim {
            key: format!("mail:once:{key}"),
            ttl_secs: CLAIM_TTL_SECS,
        },
        budgets,
    };
    verify::clear_plan(cx, key, plan, |reason| refused(cx, email, purpose, reason)).await
}

/// What a link's token stands for: the code it spends.
struct LinkState {
    purpose: Purpose,
    email: Email,
    hash: Vec<u8>,
}

impl LinkState {
    fn encode(&self) -> Vec<u8> {
        serde_json::json!({
            "p": self.purpose.as_str(),
            "e": self.email.as_str(),
            "h": URL_SAFE_NO_PAD.encode(&self.hash),
        })
        .to_string()
        .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        Some(Self {
            purpose: Purpose::from_name(v.get("p")?.as_str()?)?,
            email: Email::stored(v.get("e")?.as_str()?.to_owned()),
            hash: URL_SAFE_NO_PAD.decode(v.get("h")?.as_str()?).ok()?,
        })
    }
}

/// Where links point: `EMAIL_LINK_URL`, else this API's own page.
fn link_base(cx: &Ctx<'_>) -> String {
    match &cx.email.settings.link_url {
        Some(url) => url.clone(),
        None => format!(
            "{}/verify/email/link",
            cx.client.api_url.as_deref().unwrap_or(cx.issuer())
        ),
    }
}

/// Takes the code back (a send that failed leaves nothing usable) and gives back what the
/// guard reserved.
async fn undo(cx: &Ctx<'_>, cleared: &Cleared, record: &CodeRecord) {
    let _ = cx
        .store
        .spend_code(&record.purpose, &record.phone, &record.hash)
        .await;
    verify::give_back(cx, cleared).await;
}

/// Stores a code for (purpose, email) and its link, and sends both in one message of `kind`
/// in the request's locale. A send that fails leaves no code behind.
pub(super) async fn deliver(
    cx: &Ctx<'_>,
    cleared: &Cleared,
    email: &Email,
    purpose: Purpose,
    user: Option<UserId>,
    locale: Option<&str>,
) -> Result<(), Error> {
    let v = cx.verification;
    let test_code = cx.email.settings.test_addresses.code_for(email).cloned();
    let code = match test_code.clone() {
        Some(c) => c,
        None => otp::generate().map_err(|e| Error::internal("code generation", e))?,
    };
    let record = verify::code_record(cx, email.as_str(), purpose, &code, user);
    match cx.store.issue_code(&record, v.resend_secs).await {
        Ok(Issued::Stored) => {}
        Ok(Issued::Cooldown { retry_after }) => {
            verify::give_back(cx, cleared).await;
            refused(cx, email, purpose, "cooldown");
            return Err(throttle::retry_after(retry_after));
        }
        Err(e) => {
            verify::give_back(cx, cleared).await;
            return Err(e.into());
        }
    }
    let token = CeremonyId::new()?;
    let ceremony = Ceremony {
        id: token.clone(),
        kind: CeremonyKind::EmailLink,
        user_id: user,
        state: LinkState {
            purpose,
            email: email.clone(),
            hash: record.hash.clone(),
        }
        .encode(),
        expires_at: record.expires_at,
    };
    if let Err(e) = cx.store.put_ceremony(&ceremony, cx.now).await {
        undo(cx, cleared, &record).await;
        return Err(e.into());
    }
    if test_code.is_some() {
        tracing::info!(target: "audit", event = "code_issued", purpose = purpose.as_str(),
            sender = "test_address", email_tag = %cx.tokens().audit_tag(email.as_str()));
        return Ok(());
    }
    let kind = match purpose {
        Purpose::PasswordRecovery => MailKind::Recover,
        Purpose::EmailChange => MailKind::Change,
        _ => MailKind::Verify,
    };
    let base = link_base(cx);
    let join = if base.contains('?') { '&' } else { '?' };
    let mut link = format!("{base}{join}token={}", token.as_str());
    if purpose == Purpose::PasswordRecovery {
        // The page asks for a new password for these.
        link.push_str("&purpose=recover");
    }
    let prefs = Templates::preferences(locale, cx.client.accept_language.as_deref());
    let fill = Fill {
        code: code.expose(),
        link: &link,
        minutes: (v.code_ttl_secs + 59) / 60,
    };
    let sent = send(cx, cleared, email, purpose, kind, &prefs, fill).await;
    if sent.is_err() {
        undo(cx, cleared, &record).await;
    }
    sent
}

/// Renders and sends one message through the configured sender, reserving the daily budget
/// right before it goes out (given back if the provider fails).
async fn send(
    cx: &Ctx<'_>,
    cleared: &Cleared,
    email: &Email,
    purpose: Purpose,
    kind: MailKind,
    prefs: &[String],
    fill: Fill<'_>,
) -> Result<(), Error> {
    let Some(sender) = cx.email.sender.as_ref() else {
        refused(cx, email, purpose, "no_sender");
        return Err(Error::MailUnavailable("EMAIL_SENDER is not set".into()));
    };
    let (code, link) = (fill.code, fill.link);
    let message = cx.email.settings.templates.render(kind, prefs, fill);
    let message = super::hooks::custom_mail(
        cx,
        email,
        (purpose, kind.as_str()),
        (code, link),
        prefs.first().map(String::as_str),
        message,
    )
    .await?;
    if let Err((_, retry_after)) = verify::reserve_all(cx, &cleared.cost).await? {
        refused(cx, email, purpose, "all");
        return Err(throttle::retry_after(retry_after));
    }
    let started = Instant::now();
    let sent = sender.send(email, &message, &cleared.key).await;
    cx.verification.record_send(started.elapsed());
    match sent {
        Ok(_) => {
            tracing::info!(target: "audit", event = "email_sent", purpose = purpose.as_str(),
                kind = kind.as_str(), sender = sender.name(),
                email_tag = %cx.tokens().audit_tag(email.as_str()));
            Ok(())
        }
        Err(e) => {
            verify::release_all(cx, &cleared.cost).await;
            refused(cx, email, purpose, "provider");
            Err(Error::MailUnavailable(e.to_string()))
        }
    }
}

/// Tells the owner of `email` that someone tried to sign up with it (sent instead of telling
/// the one signing up that it is taken). Best effort: the answer to the signup is the same
/// whether or not this goes out.
pub(super) async fn notify_exists(
    cx: &Ctx<'_>,
    cleared: &Cleared,
    email: &Email,
    locale: Option<&str>,
) {
    let prefs = Templates::preferences(locale, cx.client.accept_language.as_deref());
    let fill = Fill {
        code: "",
        link: "",
        minutes: 0,
    };
    let kind = MailKind::Exists;
    if send(cx, cleared, email, Purpose::Signup, kind, &prefs, fill)
        .await
        .is_err()
    {
        verify::give_back(cx, cleared).await;
    }
}

/// POST /verify/email/start: a new code and link to an unverified account's address, or to
/// a pending new address. The same answer whether or not such an account exists; where
/// nothing is sent the answer waits as long as a send takes.
pub async fn start_email_verification(
    cx: &Ctx<'_>,
    email: Email,
    locale: Option<&str>,
) -> Result<(), Error> {
    let Some(cleared) = clear_mail(cx, &email, Purpose::Signup).await? else {
        return Ok(());
    };
    let identifier = Identifier::Email(email.clone());
    if let Some(user) = cx.store.find_user_by(&identifier).await?
        && !user.verified(IdentifierKind::Email)
    {
        return deliver(cx, &cleared, &email, Purpose::Signup, Some(user.id), locale).await;
    }
    if let Some(user) = cx.store.find_user_by_pending(&identifier).await? {
        return deliver(
            cx,
            &cleared,
            &email,
            Purpose::EmailChange,
            Some(user.id),
            locale,
        )
        .await;
    }
    // As for a known address: the attempt limits stay reserved (so they tell no one which
    // addresses wait for proof); the daily budget was only looked at.
    let _ = cleared;
    tokio::time::sleep(cx.verification.last_send()).await;
    Ok(())
}

/// How a proof of `email` for `purpose` changes the account: a signup's address becomes
/// proven; a change's pending address becomes the account's (the unique index decides a
/// race for it).
fn proof_patch(cx: &Ctx<'_>, email: &Email, purpose: Purpose) -> UserPatch {
    match purpose {
        Purpose::EmailChange => UserPatch {
            identifiers: vec![
                IdentifierChange::Set {
                    identifier: Identifier::Email(email.clone()),
                    verified_at: Some(cx.now),
                },
                IdentifierChange::Unpend(IdentifierKind::Email),
            ],
            ..UserPatch::default()
        },
        _ => UserPatch::identifier(IdentifierChange::Verify(IdentifierKind::Email)),
    }
}

/// Applies a proof to the account it was for, checking a change is still the one asked for.
async fn apply_proof(
    cx: &Ctx<'_>,
    user_id: UserId,
    email: &Email,
    purpose: Purpose,
) -> Result<UserRecord, Error> {
    if purpose == Purpose::EmailChange {
        let user = cx.store.find_user(&user_id).await?;
        if user.as_ref().and_then(UserRecord::pending_email) != Some(email) {
            return Err(Error::InvalidCode);
        }
    }
    let user = match cx
        .store
        .update_user(&user_id, &proof_patch(cx, email, purpose), cx.now)
        .await
    {
        Ok(Some(u)) => u,
        Ok(None) => return Err(Error::InvalidCode),
        Err(StoreError::Duplicate) => return Err(Error::EmailTaken),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(target: "audit",
        event = if purpose == Purpose::EmailChange { "email_change" } else { "email_verified" },
        user_id = %user.id, email_tag = %cx.tokens().audit_tag(email.as_str()));
    let trigger = if purpose == Purpose::EmailChange {
        "change"
    } else {
        "signup"
    };
    super::hooks::post_confirmation(cx, &user, &Identifier::Email(email.clone()), trigger).await;
    Ok(user)
}

/// POST /verify/email/confirm with a code.
pub async fn confirm_email(cx: &Ctx<'_>, email: Email, code: &str) -> Result<UserRecord, Error> {
    let identifier = Identifier::Email(email.clone());
    let change = match cx.store.find_user_by(&identifier).await? {
        Some(u) if !u.verified(IdentifierKind::Email) => false,
        _ => cx.store.find_user_by_pending(&identifier).await?.is_some(),
    };
    let purpose = if change {
        Purpose::EmailChange
    } else {
        Purpose::Signup
    };
    let rec = verify::check_code(cx, email.as_str(), purpose, code).await?;
    let user_id = rec.user_id.ok_or(Error::InvalidCode)?;
    apply_proof(cx, user_id, &email, purpose).await
}

/// Takes a link's token: its ceremony once, then the code it names (spent, so the code and
/// the link work once between them). `None` for an unknown, used or expired token.
async fn take_link(cx: &Ctx<'_>, token: &str) -> Result<Option<(LinkState, UserId)>, Error> {
    let Some(id) = CeremonyId::parse(token) else {
        return Ok(None);
    };
    let Some(c) = cx
        .store
        .take_ceremony(&id, CeremonyKind::EmailLink, cx.now)
        .await?
    else {
        return Ok(None);
    };
    let (Some(state), Some(user)) = (LinkState::decode(&c.state), c.user_id) else {
        return Ok(None);
    };
    let spent = cx
        .store
        .spend_code(state.purpose.as_str(), state.email.as_str(), &state.hash)
        .await?;
    Ok(spent.then_some((state, user)))
}

/// POST /verify/email/confirm with a link's token.
pub async fn confirm_email_link(cx: &Ctx<'_>, token: &str) -> Result<UserRecord, Error> {
    match take_link(cx, token).await? {
        Some((state, user)) if state.purpose != Purpose::PasswordRecovery => {
            apply_proof(cx, user, &state.email, state.purpose).await
        }
        _ => Err(Error::InvalidCode),
    }
}

/// POST /recover/start with an email: a code and link to the address if an account has it.
/// Same answer, and as far as the work goes the same time, either way: where nothing is sent
/// a decoy code is stored (the cooldown behaves alike) and the answer waits as long as a send
/// takes. A provider failure is logged, not answered.
pub async fn recover_start_email(
    cx: &Ctx<'_>,
    email: Email,
    locale: Option<&str>,
) -> Result<(), Error> {
    let purpose = Purpose::PasswordRecovery;
    let Some(cleared) = clear_mail(cx, &email, purpose).await? else {
        return Ok(());
    };
    if let Some(user) = cx
        .store
        .find_user_by(&Identifier::Email(email.clone()))
        .await?
    {
        return match deliver(cx, &cleared, &email, purpose, Some(user.id), locale).await {
            Err(Error::MailUnavailable(cause)) => {
                tracing::warn!(%cause, "recovery email not sent");
                Ok(())
            }
            Err(Error::TooManyAttempts { .. }) => Ok(()),
            other => other,
        };
    }
    verify::answer_as_if_sent(cx, &cleared, email.as_str(), purpose).await
}

/// A recovery proof: an email and its code, or a link's token.
#[derive(Debug)]
pub enum RecoveryProof {
    Code { email: Email, code: String },
    Link { token: String },
}

/// POST /recover/confirm by email: the proof's password replaces the old one, every session
/// ends, the address's login throttle is cleared and the address counts as proven.
pub async fn recover_confirm_email(
    cx: &Ctx<'_>,
    proof: RecoveryProof,
    new_password: crate::types::Password,
) -> Result<(), Error> {
    let (email, user_id) = match proof {
        RecoveryProof::Code { email, code } => {
            let rec =
                verify::check_code(cx, email.as_str(), Purpose::PasswordRecovery, &code).await?;
            (email, rec.user_id.ok_or(Error::InvalidCode)?)
        }
        RecoveryProof::Link { token } => match take_link(cx, &token).await? {
            Some((state, user)) if state.purpose == Purpose::PasswordRecovery => {
                (state.email, user)
            }
            _ => return Err(Error::InvalidCode),
        },
    };
    verify::reset_password(cx, user_id, &Identifier::Email(email), new_password).await
}
