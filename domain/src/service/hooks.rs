//! Running the app's hooks inside a flow: the payload each kind sends, the answer it may
//! give, and what a failure does (`domain::hooks` has the rules; this is where a step calls
//! them, always before the step's first write).

use serde_json::json;

use super::{Ctx, Error};
use crate::{
    claims::Grants,
    credential::Assurance,
    hooks::{FailurePolicy, HookError, HookSpec, SignupDecision, apply_pre_token, read_pre_signup},
    identity::IdentifierKind,
    store::UserRecord,
    types::UserId,
};

/// Audits and counts a failed hook; fails the step where the hook fails closed.
fn failed(spec: &HookSpec, user: Option<&UserId>, e: &HookError) -> Result<(), Error> {
    let user_id = user.map(UserId::to_hex);
    match spec.policy {
        FailurePolicy::Closed => {
            tracing::warn!(target: "audit", event = "hook", hook = spec.kind.as_str(),
                outcome = "failed_closed", user_id = user_id.as_deref(), reason = %e);
            Err(Error::HookFailed)
        }
        FailurePolicy::Open => {
            tracing::warn!(target: "audit", event = "hook", hook = spec.kind.as_str(),
                outcome = "failed_open", user_id = user_id.as_deref(), reason = %e);
            Ok(())
        }
    }
}

/// The `pre_signup` hook, if configured, before anything of a signup is reserved or written:
/// the identifiers and names asked for, and the caller's address. It answers which of the
/// identifiers it has proven already (they are stored verified and get no code), or refuses
/// with a message the client sees (403 `signup_refused`, audited).
pub(super) async fn pre_signup(
    cx: &Ctx<'_>,
    user: &super::NewUser,
) -> Result<Vec<IdentifierKind>, Error> {
    let Some((spec, caller)) = cx.hooks.pre_signup() else {
        return Ok(Vec::new());
    };
    let payload = json!({
        "type": spec.kind.as_str(),
        "phone": user.phone.as_ref().map(|p| p.as_str()),
        "email": user.email.as_ref().map(|e| e.as_str()),
        "first_name": user.first_name.as_str(),
        "middle_name": user.middle_name.as_ref().map(|m| m.as_str()),
        "last_name": user.last_name.as_str(),
        "locale": user.locale,
        "source_ip": cx.client.source_ip,
    });
    let id = format!("{}-{}", spec.kind.as_str(), cx.client.request_id);
    let decision = caller
        .call(spec, &id, &payload)
        .await
        .and_then(|a| read_pre_signup(&a));
    match decision {
        Ok(SignupDecision::Allow { verified }) => Ok(verified),
        Ok(SignupDecision::Refuse { message }) => {
            tracing::info!(target: "audit", event = "signup", outcome = "refused_by_hook");
            Err(Error::SignupRefused(message))
        }
        Err(e) => failed(spec, None, &e).map(|()| Vec::new()),
    }
}

/// The `pre_token` hook, if configured: it sees the account's id, roles, mapped claims and
/// operators' metadata and the session's assurance, and its `{"claims": {...}}` answer sets or
/// removes (`null`) claims that are not reserved. Nothing is sent where no hook is set.
pub(super) async fn pre_token(
    cx: &Ctx<'_>,
    user: &UserRecord,
    sid: &str,
    assurance: &Assurance,
    grants: &mut Grants,
) -> Result<(), Error> {
    let Some((spec, caller)) = cx.hooks.pre_token() else {
        return Ok(());
    };
    let payload = json!({
        "type": spec.kind.as_str(),
        "user_id": user.id.to_hex(),
        "session_id": sid,
        "aal": assurance.aal(),
        "amr": assurance.amr,
        "roles": grants.roles,
        "claims": grants.claims,
        "app_metadata": user.app_metadata.as_map(),
    });
    // One id per token request: a receiver may deduplicate retries on it.
    let id = format!("{}-{sid}-{}", spec.kind.as_str(), cx.now);
    let answer = caller.call(spec, &id, &payload).await.and_then(|a| {
        let mut next = grants.clone();
        apply_pre_token(&a, &mut next).map(|()| next)
    });
    match answer {
        Ok(next) => {
            *grants = next;
            Ok(())
        }
        Err(e) => failed(spec, Some(&user.id), &e),
    }
}

/// The text of an SMS carrying `code` for `purpose`: the `custom_message` hook's, if one is
/// configured and answers one (holding the code), else `default`. Called before the code is
/// stored, so a hook that fails closed leaves no code behind.
pub(super) async fn custom_sms(
    cx: &Ctx<'_>,
    phone: &crate::types::Phone,
    purpose: crate::otp::Purpose,
    code: &crate::otp::Code,
    default: String,
) -> Result<String, Error> {
    let Some((spec, caller)) = cx.hooks.custom_message() else {
        return Ok(default);
    };
    let payload = json!({
        "type": spec.kind.as_str(),
        "channel": "sms",
        "purpose": purpose.as_str(),
        "to": phone.as_str(),
        "code": code.expose(),
        "minutes": (cx.verification.code_ttl_secs + 59) / 60,
        "default": default,
        "locale": cx.client.accept_language,
    });
    let id = format!("{}-{}", spec.kind.as_str(), cx.client.request_id);
    let answer = caller
        .call(spec, &id, &payload)
        .await
        .and_then(|a| crate::hooks::read_custom_sms(&a, code.expose()));
    match answer {
        Ok(text) => Ok(text.unwrap_or(default)),
        Err(e) => failed(spec, None, &e).map(|()| default),
    }
}

/// The mail carrying `code` (and `link`) for `purpose`: the `custom_message` hook's parts
/// where it answers some (each holding the code), else `default`. Called before the daily
/// budget is charged and the mail sent; a hook that fails closed fails the send, and the
/// caller takes the code back.
pub(super) async fn custom_mail(
    cx: &Ctx<'_>,
    to: &crate::identity::Email,
    (purpose, kind): (crate::otp::Purpose, &str),
    (code, link): (&str, &str),
    locale: Option<&str>,
    default: crate::email::Message,
) -> Result<crate::email::Message, Error> {
    let Some((spec, caller)) = cx.hooks.custom_message() else {
        return Ok(default);
    };
    let payload = json!({
        "type": spec.kind.as_str(),
        "channel": "email",
        "purpose": purpose.as_str(),
        "kind": kind,
        "to": to.as_str(),
        "code": code,
        "link": link,
        "minutes": (cx.verification.code_ttl_secs + 59) / 60,
        "default": {"subject": default.subject, "text": default.text, "html": default.html},
        "locale": locale.or(cx.client.accept_language.as_deref()),
    });
    let id = format!("{}-{}", spec.kind.as_str(), cx.client.request_id);
    let answer = caller.call(spec, &id, &payload).await;
    match answer.and_then(|a| crate::hooks::read_custom_mail(&a, code, default.clone())) {
        Ok(message) => Ok(message),
        Err(e) => failed(spec, None, &e).map(|()| default),
    }
}

/// The `post_confirmation` hook, if configured, once `user`'s `identifier` is proven and the
/// proof written: `trigger` is `signup` (a signup's identifier) or `change` (a replacement
/// became the account's). It can only fail open (see `HookKind::PostConfirmation`): a
/// failure is audited and counted, and the lifecycle event `user.verified` is the channel
/// that is never lost.
pub(super) async fn post_confirmation(
    cx: &Ctx<'_>,
    user: &UserRecord,
    identifier: &crate::identity::Identifier,
    trigger: &str,
) {
    let Some((spec, caller)) = cx.hooks.post_confirmation() else {
        return;
    };
    let payload = json!({
        "type": spec.kind.as_str(),
        "trigger": trigger,
        "user_id": user.id.to_hex(),
        "identifier": {"kind": identifier.kind().as_str(), "value": identifier.address()},
        "verified": user.identifiers.iter().filter(|r| r.verified())
            .map(|r| r.identifier.kind().as_str()).collect::<Vec<_>>(),
        "app_metadata": user.app_metadata.as_map(),
    });
    let id = format!("{}-{}", spec.kind.as_str(), cx.client.request_id);
    if let Err(e) = caller.call(spec, &id, &payload).await {
        let _ = failed(spec, Some(&user.id), &e);
    }
}
