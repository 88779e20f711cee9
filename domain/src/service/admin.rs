//! What an operator may do to any account: find it, disable and re-enable it, end its
//! sessions, delete it. Reached only through IAM-signed routes (`handlers::admin`) and the
//! `user-admin` command-line tool; every action is audited with the acting principal.

use super::{Ctx, Error, lifecycle::erase};
use crate::{
    claims::{Grants, Metadata},
    credential::Assurance,
    identity::Identifier,
    store::{UserPatch, UserRecord},
    types::UserId,
};

/// Who acts: an IAM principal's ARN, or the CLI's operator (`cli:<user>@<host>`).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

impl Actor {
    fn as_str(&self) -> &str {
        &self.0
    }
}

fn audit(actor: &Actor, action: &str, user: &UserId, outcome: &str) {
    tracing::info!(target: "audit", event = "admin", action, actor = actor.as_str(),
        user_id = %user, outcome);
}

/// The user with this canonical phone or email address.
pub async fn find_by(
    cx: &Ctx<'_>,
    actor: &Actor,
    identifier: &Identifier,
) -> Result<UserRecord, Error> {
    let user = cx.store.find_user_by(identifier).await?;
    let (phone_tag, email_tag) = super::session::audit_tags(cx, identifier);
    tracing::info!(target: "audit", event = "admin", action = "find", actor = actor.as_str(),
        phone_tag = phone_tag.as_deref(), email_tag = email_tag.as_deref(),
        found = user.is_some());
    user.ok_or(Error::UserNotFound)
}

/// The user with this id.
pub async fn find_by_id(cx: &Ctx<'_>, actor: &Actor, id: &UserId) -> Result<UserRecord, Error> {
    let user = cx.store.find_user(id).await?;
    audit(
        actor,
        "find",
        id,
        if user.is_some() { "found" } else { "not_found" },
    );
    user.ok_or(Error::UserNotFound)
}

/// Disables (`true`) or re-enables the account. Disabling sets the flag first and then ends
/// every session: a login that read the user before the flag re-reads it after opening its
/// session, so no session outlives the disable.
pub async fn set_disabled(
    cx: &Ctx<'_>,
    actor: &Actor,
    id: &UserId,
    disabled: bool,
) -> Result<UserRecord, Error> {
    let action = if disabled { "disable" } else { "enable" };
    let patch = UserPatch {
        disabled: Some(disabled),
        ..UserPatch::default()
    };
    let Some(user) = cx.store.update_user(id, &patch, cx.now).await? else {
        audit(actor, action, id, "not_found");
        return Err(Error::UserNotFound);
    };
    if disabled {
        let ended = cx.store.delete_user_sessions(id, None).await?;
        tracing::info!(target: "audit", event = "admin", action, actor = actor.as_str(),
            user_id = %id, outcome = "success", sessions_ended = ended);
    } else {
        audit(actor, action, id, "success");
    }
    Ok(user)
}

/// Replaces the operators' metadata of the user (roles, a tenant: what its tokens carry from
/// its next token on, a refresh included). Refused, with nothing written, where the claims
/// would make an access token over `ACCESS_TOKEN_MAX_BYTES` (a token this size is signed
/// once as a trial). Tokens already issued keep their roles until they expire: end the
/// sessions too to cut a role at once.
pub async fn set_app_metadata(
    cx: &Ctx<'_>,
    actor: &Actor,
    id: &UserId,
    app_metadata: Metadata,
) -> Result<UserRecord, Error> {
    let Some(user) = cx.store.find_user(id).await? else {
        audit(actor, "set_app_metadata", id, "not_found");
        return Err(Error::UserNotFound);
    };
    let trial = UserRecord {
        app_metadata: app_metadata.clone(),
        ..user
    };
    // The largest assurance a session can reach, and a session id of full length.
    let widest = Assurance {
        amr: ["pwd", "otp", "hwk", "swk", "sms", "kba", "mfa"]
            .map(str::to_owned)
            .to_vec(),
        auth_time: cx.now,
        aal2_at: Some(cx.now),
    };
    // Sized, not signed (this function never signs), and without the pre_token hook: a
    // check must not reach the app's code.
    let grants = Grants::of(&trial.app_metadata, &cx.policy.claims);
    let len = cx
        .tokens()
        .encoded_len(
            cx.issuer(),
            &trial.id,
            &"A".repeat(22),
            u64::try_from(cx.now).unwrap_or_default(),
            &widest,
            &grants,
        )
        .map_err(|e| Error::internal("token size", e))?;
    if len > cx.policy.claims.token_max_bytes {
        audit(actor, "set_app_metadata", id, "too_large");
        return Err(Error::ClaimsTooLarge);
    }
    let patch = UserPatch {
        app_metadata: Some(app_metadata),
        ..UserPatch::default()
    };
    let user = cx
        .store
        .update_user(id, &patch, cx.now)
        .await?
        .ok_or(Error::UserNotFound)?;
    audit(actor, "set_app_metadata", id, "success");
    Ok(user)
}

/// Ends every session of the user; answers how many there were.
pub async fn end_sessions(cx: &Ctx<'_>, actor: &Actor, id: &UserId) -> Result<u64, Error> {
    if cx.store.find_user(id).await?.is_none() {
        audit(actor, "logout_all", id, "not_found");
        return Err(Error::UserNotFound);
    }
    let ended = cx.store.delete_user_sessions(id, None).await?;
    tracing::info!(target: "audit", event = "admin", action = "logout_all",
        actor = actor.as_str(), user_id = %id, outcome = "success", sessions_ended = ended);
    Ok(ended)
}

/// Removes every second factor and recovery code of the user (who lost them all), ends every
/// session and notifies the user; the password stays.
pub async fn reset_mfa(cx: &Ctx<'_>, actor: &Actor, id: &UserId) -> Result<UserRecord, Error> {
    match super::mfa::reset_factors(cx, id).await {
        Ok(user) => {
            audit(actor, "reset_mfa", id, "success");
            Ok(user)
        }
        Err(e) => {
            audit(actor, "reset_mfa", id, "not_found");
            Err(e)
        }
    }
}

/// Seals every TOTP seed under the current key (run after a rotation, before the next one).
pub async fn reseal_mfa(cx: &Ctx<'_>, actor: &Actor) -> Result<super::mfa::Resealed, Error> {
    let r = super::mfa::reseal_all(cx).await?;
    tracing::info!(target: "audit", event = "admin", action = "reseal_mfa", actor = actor.as_str(),
        outcome = "success", resealed = r.resealed, current = r.current, unreadable = r.unreadable);
    Ok(r)
}

/// Deletes the account and everything kept about it. Idempotent: deleting an account that
/// is already gone still sweeps its sessions and counters and answers `Ok(false)`.
pub async fn delete(cx: &Ctx<'_>, actor: &Actor, id: &UserId) -> Result<bool, Error> {
    let user = erase(cx, id, None).await?;
    audit(
        actor,
        "delete",
        id,
        if user.is_some() {
            "success"
        } else {
            "already_gone"
        },
    );
    Ok(user.is_some())
}

/// Clears a phone's failed-code counters (its code routes refuse once it reached the cap of
/// failed codes; a correct code or this clears it).
pub async fn clear_code_failures(
    cx: &Ctx<'_>,
    actor: &Actor,
    phone: &crate::types::Phone,
) -> Result<(), Error> {
    super::verify::clear_code_failures(cx, phone.as_str()).await?;
    tracing::info!(target: "audit", event = "admin", action = "clear_code_failures",
        actor = actor.as_str(), phone_tag = %cx.tokens().audit_tag(phone.as_str()));
    Ok(())
}
