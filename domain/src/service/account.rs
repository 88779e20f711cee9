//! Accounts: signup, the caller's profile and changes to it.

use super::{Caller, Ctx, Error, throttle};
use crate::{
    auth::password,
    identity::{Identifier, IdentifierKind},
    store::{IdentifierChange, StoreError, UserPatch, UserRecord},
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

/// A validated PUT /user: the user it names, the fields to change, and the passwords.
#[derive(Debug)]
pub struct ProfileUpdate {
    pub target: UserId,
    /// Names (`password_hash` is left `None`; it is made here from `new_password`).
    pub patch: UserPatch,
    /// A new phone.
    pub phone: Option<Phone>,
    pub new_password: Option<Password>,
    pub current_password: Option<Password>,
}

/// Phone-change budgets are per hour.
const PHONE_CHANGE_WINDOW_SECS: i64 = 3600;

/// Creates a user. The unique phone index decides races: the loser gets `PhoneTaken`.
///
/// With verification required the account starts unverified and a code goes to the phone;
/// the cost guard runs before the insert, so a refused send creates no account, and a signup
/// refused after the guard gives back what it reserved. A phone held by an unverified
/// account that has no live code is taken over (that account is deleted, atomically, and the
/// insert tried once more): a squatter never blocks the real owner for longer than a code
/// lives, and a signup that failed between its two writes (the account stored, the code
/// not) can be retried at once.
pub async fn signup(cx: &Ctx<'_>, user: NewUser) -> Result<UserRecord, Error> {
    let required = cx.verification.required;
    let e164 = if required {
        Some(super::verify::e164_of(cx, &user.phone)?)
    } else {
        None
    };
    let cleared = match &e164 {
        Some(p) => super::verify::clear_send(cx, p, crate::otp::Purpose::Signup).await?,
        None => None,
    };
    let record = match insert_account(cx, user).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(c) = &cleared {
                super::verify::give_back(cx, c).await;
            }
            return Err(e);
        }
    };
    if let (Some(phone), Some(cleared)) = (&e164, &cleared) {
        let sent = super::verify::deliver(
            cx,
            cleared,
            phone,
            crate::otp::Purpose::Signup,
            Some(record.id),
        )
        .await;
        if let Err(e) = sent {
            // No code reached the phone: take the account back so the signup can be retried.
            let _ = cx
                .store
                .delete_unverified_user(&Identifier::Phone(phone.clone()), cx.now.saturating_add(1))
                .await;
            return Err(e);
        }
    }
    Ok(record)
}

/// Hashes the password and inserts the account, taking the phone over from a stranded
/// unverified account where verification is required.
async fn insert_account(cx: &Ctx<'_>, user: NewUser) -> Result<UserRecord, Error> {
    let password_hash = password::hash(user.password).await?;
    let phone = user.phone;
    let record = UserRecord::new(
        UserId::new(),
        (user.first_name, user.middle_name, user.last_name),
        Identifier::Phone(phone.clone()),
        password_hash,
        cx.now,
    );
    let mut inserted = cx.store.insert_user(&record).await;
    if cx.verification.required
        && inserted == Err(StoreError::Duplicate)
        && take_over_stranded(cx, &phone).await?
    {
        tracing::info!(target: "audit", event = "unverified_signup_replaced",
            phone_tag = %cx.tokens().audit_tag(phone.as_str()));
        inserted = cx.store.insert_user(&record).await;
    }
    match inserted {
        Ok(()) => Ok(record),
        Err(StoreError::Duplicate) => Err(Error::PhoneTaken),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the unverified account holding `phone` if no live signup code is waiting for it
/// (its code expired, or was never stored because the signup failed between its writes).
/// Only an account made in an earlier second qualifies, so a signup racing this one between
/// its insert and its code (one round trip) is never taken. True when one went.
async fn take_over_stranded(cx: &Ctx<'_>, phone: &Phone) -> Result<bool, Error> {
    let Some(held) = cx.store.find_user_by_phone(phone).await? else {
        return Ok(false);
    };
    if held.phone_verified() || held.created_at >= cx.now {
        return Ok(false);
    }
    let purpose = crate::otp::Purpose::Signup.as_str();
    let waiting = cx
        .store
        .live_code(purpose, phone.as_str(), cx.now)
        .await?
        .is_some_and(|c| c.user_id == Some(held.id));
    if waiting {
        return Ok(false);
    }
    Ok(cx
        .store
        .delete_unverified_user(
            &Identifier::Phone(phone.clone()),
            held.created_at.saturating_add(1),
        )
        .await?)
}

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
        new_password,
        current_password,
    } = update;
    if target != caller.user_id {
        return Err(Error::Forbidden);
    }
    if patch.is_empty() && phone.is_none() && new_password.is_none() {
        return Err(Error::NothingToUpdate);
    }
    let mut old_phone = None;
    if phone.is_some() || new_password.is_some() {
        let current = current_password.ok_or(Error::CurrentPasswordRequired)?;
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
        let user = profile(cx, caller).await?;
        check_current_password(cx, &user, current).await?;
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
