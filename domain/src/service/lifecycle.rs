//! Leaving: a user deletes their own account, after proving the password (throttled like
//! every password check). Deletion erases everything the service keeps about the account, so
//! a retry finds nothing left to do and the phone is free at once.

use super::{Caller, Ctx, Error, account::check_current_password};
use crate::{
    store::UserRecord,
    types::{Password, Phone, UserId},
};

/// Deletes the caller's account once `current` is proven to be its password.
pub async fn delete_account(cx: &Ctx<'_>, caller: &Caller, current: Password) -> Result<(), Error> {
    // Gone already: a racing retry of this same delete got there first.
    let Some(user) = cx.store.find_user(&caller.user_id).await? else {
        return Ok(());
    };
    super::mfa::require_step_up(cx, caller, &user)?;
    check_current_password(cx, &user, current).await?;
    let erased = erase(cx, &user.id, user.phone()).await?;
    tracing::info!(target: "audit", event = "account_delete", actor = "self", user_id = %user.id,
        found = erased.is_some(), phone_tag = %cx.tokens().audit_tag(user.phone().map_or("", Phone::as_str)));
    Ok(())
}

/// Per-user budget keys that name the account (see `account::update_user`).
fn budget_keys(id: &UserId) -> [String; 1] {
    [format!("phone_change:user:{id}")]
}

/// Removes the user document, then every session, attempt counter and per-user budget of the
/// account. Each step is idempotent, so a retry after a failure part-way finishes the job.
/// The user document goes first: from then on no login can find the account, and a login
/// that raced it re-reads the user after opening its session and ends it (see
/// `session::login`).
pub(super) async fn erase(
    cx: &Ctx<'_>,
    id: &UserId,
    phone: Option<&Phone>,
) -> Result<Option<UserRecord>, Error> {
    let user = cx.store.delete_user(id).await?;
    cx.store.delete_user_sessions(id, None).await?;
    cx.store.clear_attempts(&format!("user:{id}")).await?;
    cx.store.clear_attempts(&format!("mfa|{id}")).await?;
    if let Some(phone) = phone.or(user.as_ref().and_then(UserRecord::phone)) {
        cx.store.clear_attempts(phone.as_str()).await?;
        cx.store.delete_codes(phone.as_str()).await?;
    }
    // A code sent to a phone the user was moving to is theirs too.
    if let Some(pending) = user.as_ref().and_then(UserRecord::pending_phone) {
        cx.store.delete_codes(pending.as_str()).await?;
    }
    for key in budget_keys(id) {
        cx.store.clear_budget(&key).await?;
    }
    Ok(user)
}
