//! Accounts: the caller's profile and changes to it (signup is in `signup.rs`).

use super::{Caller, Ctx, Error, throttle};
use crate::{
    auth::password,
    identity::{Email, Identifier, IdentifierKind},
    otp::Purpose,
    store::{IdentifierChange, StoreError, UserPatch, UserRecord},
    types::{Password, Phone, UserId},
};

/// A validated PUT /user: the user it names, the fields to change, and the passwords.
#[derive(Debug)]
pub struct ProfileUpdate {
    pub target: UserId,
    /// Names (`password_hash` is left `None`; it is made here from `new_password`).
    pub patch: UserPatch,
    /// A new phone.
    pub phone: Option<Phone>,
    /// A new email address.
    pub email: Option<Email>,
    /// The locale of mail sent for it.
    pub locale: Option<String>,
    pub new_password: Option<Password>,
    pub current_password: Option<Password>,
}

/// Phone-change budgets are per hour.
const PHONE_CHANGE_WINDOW_SECS: i64 = 3600;

/// A phone change where verification is required: the new phone waits as `pending_phone`
/// and gets a code; the old phone stays the login identifier until POST /verify/phone/confirm
/// with that code, so a mistyped number locks no one out. The other fields in `patch` apply
/// now. A phone another account holds is refused at once (and again, atomically, by the
/// unique index at confirmation).
async fn change_phone_by_code(
    cx: &Ctx<'_>,
    caller: &Caller,
    user: &UserRecord,
    new: crate::types::Phone,
    mut patch: UserPatch,
) -> Result<UserRecord, Error> {
    let purpose = crate::otp::Purpose::PhoneChange;
    let e164 = super::verify::e164_of(cx, &new)?;
    if cx.store.find_user_by_phone(&new).await?.is_some() {
        return Err(Error::PhoneTaken);
    }
    let cleared = super::verify::clear_send(cx, &e164, purpose).await?;
    patch
        .identifiers
        .push(IdentifierChange::Pend(Identifier::Phone(new)));
    let updated = cx
        .store
        .update_user(&user.id, &patch, cx.now)
        .await?
        .ok_or(Error::Unauthorized)?;
    if let Some(cleared) = cleared
        && let Err(e) = super::verify::deliver(cx, &cleared, &e164, purpose, Some(user.id)).await
    {
        let undo = UserPatch::identifier(IdentifierChange::Unpend(IdentifierKind::Phone));
        let _ = cx.store.update_user(&user.id, &undo, cx.now).await;
        return Err(e);
    }
    if patch.password_hash.is_some() {
        end_other_sessions(cx, caller).await?;
    }
    tracing::info!(target: "audit", event = "phone_change_requested", user_id = %user.id,
        new_phone_tag = %cx.tokens().audit_tag(e164.as_str()));
    Ok(updated)
}

/// An email change, after the password check: where verification is required the new
/// address waits as pending and gets a code and link (the old one stays the login identifier
/// until it is proven); otherwise it replaces the old one at once. Budgeted per user per
/// hour like phone changes; an address another account holds is refused (and again,
/// atomically, by the unique index).
async fn change_email(
    cx: &Ctx<'_>,
    user: &UserRecord,
    new: Email,
    locale: Option<&str>,
) -> Result<(), Error> {
    if Some(&new) == user.email() {
        return Ok(());
    }
    throttle::consume(
        cx,
        &format!("email_change:user:{}", user.id),
        cx.policy.phone_change_user_limit,
        PHONE_CHANGE_WINDOW_SECS,
    )
    .await?;
    let identifier = Identifier::Email(new.clone());
    let taken = |e: StoreError| match e {
        StoreError::Duplicate => Error::EmailTaken,
        e => e.into(),
    };
    if !cx.email.required() {
        let patch = UserPatch::identifier(IdentifierChange::Set {
            identifier,
            verified_at: user
                .primary(IdentifierKind::Email)
                .and_then(|r| r.verified_at),
        });
        cx.store
            .update_user(&user.id, &patch, cx.now)
            .await
            .map_err(taken)?;
        tracing::info!(target: "audit", event = "email_change", user_id = %user.id,
            new_email_tag = %cx.tokens().audit_tag(new.as_str()));
        return Ok(());
    }
    if cx.store.find_user_by(&identifier).await?.is_some() {
        return Err(Error::EmailTaken);
    }
    let purpose = Purpose::EmailChange;
    let Some(cleared) = super::email::clear_mail(cx, &new, purpose).await? else {
        return Ok(());
    };
    let pend = UserPatch::identifier(IdentifierChange::Pend(identifier));
    if let Err(e) = cx.store.update_user(&user.id, &pend, cx.now).await {
        super::verify::give_back(cx, &cleared).await;
        return Err(e.into());
    }
    if let Err(e) = super::email::deliver(cx, &cleared, &new, purpose, Some(user.id), locale).await
    {
        let undo = UserPatch::identifier(IdentifierChange::Unpend(IdentifierKind::Email));
        let _ = cx.store.update_user(&user.id, &undo, cx.now).await;
        return Err(e);
    }
    tracing::info!(target: "audit", event = "email_change_requested", user_id = %user.id,
        new_email_tag = %cx.tokens().audit_tag(new.as_str()));
    Ok(())
}

/// A password change ends every other session of the caller (and so their refresh tokens);
/// audited.
async fn end_other_sessions(cx: &Ctx<'_>, caller: &Caller) -> Result<(), Error> {
    let ended = cx
        .store
        .delete_user_sessions(&caller.user_id, Some(&caller.session_id))
        .await?;
    tracing::info!(target: "audit", event = "password_change", user_id = %caller.user_id, other_sessions_ended = ended);
    Ok(())
}

/// The caller's own profile.
pub async fn profile(cx: &Ctx<'_>, caller: &Caller) -> Result<UserRecord, Error> {
    cx.store
        .find_user(&caller.user_id)
        .await?
        .ok_or(Error::Unauthorized)
}

/// Checks `current` against the user's password, the check reserved first against a counter
/// keyed by the user (not the phone, which the caller could change to get fresh guesses).
pub(super) async fn check_current_password(
    cx: &Ctx<'_>,
    user: &UserRecord,
    current: Password,
) -> Result<(), Error> {
    let key = format!("user:{}", user.id);
    let attempt = throttle::reserve(cx, &key).await?;
    if !password::verify(current, Some(user.password_hash().to_owned())).await? {
        if let Some(lock) = throttle::locked_for(cx, attempt) {
            tracing::info!(target: "audit", event = "lockout", scope = "current_password",
                user_id = %user.id, phone_tag = %cx.tokens().audit_tag(user.phone().map_or("", Phone::as_str)),
                failures = attempt, lock_seconds = lock);
        }
        return Err(Error::CurrentPasswordIncorrect);
    }
    cx.store.clear_attempts(&key).await?;
    Ok(())
}

/// Applies an update to the caller's own account. A phone or password change is as
/// sensitive as a login: it needs `current_password` (checks reserved against the user's
/// counter); phone changes are also budgeted per user and per source address, so PUT /user
/// is no phone-registration oracle. A phone already held by another user is refused by the
/// unique index, atomically. A password change ends every other session. Both are audited.
pub async fn update_user(
    cx: &Ctx<'_>,
    caller: &Caller,
    update: ProfileUpdate,
) -> Result<UserRecord, Error> {
    let ProfileUpdate {
        target,
        mut patch,
        mut phone,
        email,
        locale,
        new_password,
        current_password,
    } = update;
    if target != caller.user_id {
        return Err(Error::Forbidden);
    }
    if patch.is_empty() && phone.is_none() && email.is_none() && new_password.is_none() {
        return Err(Error::NothingToUpdate);
    }
    let mut old_phone = None;
    if phone.is_some() || email.is_some() || new_password.is_some() {
        let current = current_password.ok_or(Error::CurrentPasswordRequired)?;
        let user = profile(cx, caller).await?;
        super::mfa::require_step_up(cx, caller, &user)?;
        if phone.is_some() {
            let p = cx.policy;
            throttle::consume(
                cx,
                &format!("phone_change:user:{}", caller.user_id),
                p.phone_change_user_limit,
                PHONE_CHANGE_WINDOW_SECS,
            )
            .await?;
            let ip = match cx.client.source_ip.as_str() {
                "" => "unknown",
                ip => ip,
            };
            throttle::consume(
                cx,
                &format!("phone_change:ip:{ip}"),
                p.phone_change_ip_limit,
                PHONE_CHANGE_WINDOW_SECS,
            )
            .await?;
        }
        check_current_password(cx, &user, current).await?;
        if let Some(new) = email {
            change_email(cx, &user, new, locale.as_deref()).await?;
            if patch.is_empty() && phone.is_none() && new_password.is_none() {
                return profile(cx, caller).await;
            }
        }
        if let Some(new) = new_password {
            patch.password_hash = Some(password::hash(new).await?);
        }
        if cx.verification.required
            && let Some(new) = phone.take_if(|new| Some(&*new) != user.phone())
        {
            return change_phone_by_code(cx, caller, &user, new, patch).await;
        }
        old_phone = user.phone().cloned();
        if let Some(new) = &phone {
            // Without verification a new phone stands as the one it replaces stood.
            patch.identifiers.push(IdentifierChange::Set {
                identifier: Identifier::Phone(new.clone()),
                verified_at: user
                    .primary(IdentifierKind::Phone)
                    .and_then(|r| r.verified_at),
            });
        }
    }
    let user = match cx.store.update_user(&target, &patch, cx.now).await {
        Ok(Some(user)) => user,
        Ok(None) => return Err(Error::Unauthorized),
        Err(StoreError::Duplicate) => return Err(Error::PhoneTaken),
        Err(e) => return Err(e.into()),
    };
    if patch.password_hash.is_some() {
        end_other_sessions(cx, caller).await?;
    }
    if let (Some(new), Some(old)) = (&phone, &old_phone)
        && new != old
    {
        let tokens = cx.tokens();
        tracing::info!(target: "audit", event = "phone_change", user_id = %user.id,
            old_phone_tag = %tokens.audit_tag(old.as_str()),
            new_phone_tag = %tokens.audit_tag(new.as_str()));
    }
    Ok(user)
}
