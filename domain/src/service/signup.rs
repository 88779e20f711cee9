//! Signup: an account with a phone, an email address or both, and a password.

use super::{Ctx, Error, email, verify};
use crate::{
    auth::password,
    identity::{Email, Identifier, IdentifierKind},
    otp::Purpose,
    store::{StoreError, UserRecord},
    types::{Name, Password, Phone, UserId},
};

/// A validated signup: at least one of `phone` and `email`.
#[derive(Debug)]
pub struct NewUser {
    pub first_name: Name,
    pub middle_name: Option<Name>,
    pub last_name: Name,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub password: Password,
    /// The locale of mail sent for it (`locale` in the body; else `Accept-Language`).
    pub locale: Option<String>,
}

impl NewUser {
    fn identifiers(&self) -> Vec<Identifier> {
        let phone = self.phone.clone().map(Identifier::Phone);
        let email = self.email.clone().map(Identifier::Email);
        phone.into_iter().chain(email).collect()
    }
}

/// Creates a user. The unique indexes decide races: the loser gets `PhoneTaken` or
/// `EmailTaken`.
///
/// With phone verification required the account starts unverified and a code goes to the
/// phone; the cost guard runs before the insert, so a refused send creates no account, and a
/// signup refused after the guard gives back what it reserved. A phone held by an unverified
/// account that has no live code is taken over (that account is deleted, atomically, and the
/// insert tried once more; the same for an address where email verification is required): a
/// squatter never blocks the real owner for longer than a code lives, and a signup that failed between its two writes (the account stored, the code
/// not) can be retried at once.
pub async fn signup(cx: &Ctx<'_>, user: NewUser) -> Result<UserRecord, Error> {
    if user.phone.is_none() && user.email.is_none() {
        return Err(Error::IdentifierRequired);
    }
    // The app's say first, before any budget is reserved or anything written.
    let proven = super::hooks::pre_signup(cx, &user).await?;
    let e164 = match &user.phone {
        Some(p) if cx.verification.required && !proven.contains(&IdentifierKind::Phone) => {
            Some(verify::e164_of(cx, p)?)
        }
        _ => None,
    };
    let mail_to = user
        .email
        .clone()
        .filter(|_| cx.email.required() && !proven.contains(&IdentifierKind::Email));
    // Without a phone, a taken address gets the answer a free one gets (and its owner a
    // note): signup tells no one which addresses have accounts.
    let conceal = mail_to.is_some() && user.phone.is_none();
    let cleared = match &e164 {
        Some(p) => verify::clear_send(cx, p, Purpose::Signup).await?,
        None => None,
    };
    let mail_cleared = match &mail_to {
        Some(e) => match email::clear_mail(cx, e, Purpose::Signup).await {
            Ok(c) => c,
            Err(err) => {
                if let Some(c) = &cleared {
                    verify::give_back(cx, c).await;
                }
                return Err(err);
            }
        },
        None => None,
    };
    let locale = user.locale.clone();
    let record = match insert_account(cx, user, &proven).await {
        Ok(r) => r,
        Err((e, record)) => {
            if let Some(c) = &cleared {
                verify::give_back(cx, c).await;
            }
            return match (e, &mail_to, &mail_cleared) {
                (Error::EmailTaken, Some(address), Some(c)) if conceal => {
                    email::notify_exists(cx, c, address, locale.as_deref()).await;
                    // Not stored: what a new account's answer would carry.
                    Ok(*record)
                }
                (e, _, Some(c)) => {
                    verify::give_back(cx, c).await;
                    Err(e)
                }
                (e, _, None) => Err(e),
            };
        }
    };
    if let (Some(phone), Some(cleared)) = (&e164, &cleared) {
        let sent = verify::deliver(cx, cleared, phone, Purpose::Signup, Some(record.id)).await;
        if let Err(e) = sent {
            // No code reached the phone: take the account back so the signup can be retried.
            take_back(cx, &record).await;
            if let Some(c) = &mail_cleared {
                verify::give_back(cx, c).await;
            }
            return Err(e);
        }
    }
    if let (Some(address), Some(c)) = (&mail_to, &mail_cleared) {
        let sent = email::deliver(
            cx,
            c,
            address,
            Purpose::Signup,
            Some(record.id),
            locale.as_deref(),
        )
        .await;
        if let Err(e) = sent {
            take_back(cx, &record).await;
            return Err(e);
        }
    }
    Ok(record)
}

/// Deletes a new account whose code could not be sent, so the signup can be retried.
async fn take_back(cx: &Ctx<'_>, record: &UserRecord) {
    if let Some(identifier) = record.identifiers.first() {
        let _ = cx
            .store
            .delete_unverified_user(&identifier.identifier, cx.now.saturating_add(1))
            .await;
    }
}

/// Hashes the password and inserts the account, taking a phone over from a stranded
/// unverified account where verification is required. A refusal comes with the record that
/// was not stored.
async fn insert_account(
    cx: &Ctx<'_>,
    user: NewUser,
    proven: &[IdentifierKind],
) -> Result<UserRecord, (Error, Box<UserRecord>)> {
    let identifiers = user.identifiers();
    cx.store.prepare_insert();
    let password_hash = match password::hash(user.password).await {
        Ok(h) => h,
        Err(e) => {
            let names = (user.first_name, user.middle_name, user.last_name);
            let unsaved = UserRecord::new(UserId::new(), names, identifiers, String::new(), cx.now);
            return Err((e.into(), Box::new(unsaved)));
        }
    };
    let mut record = UserRecord::new(
        UserId::new(),
        (user.first_name, user.middle_name, user.last_name),
        identifiers.clone(),
        password_hash,
        cx.now,
    );
    // What the pre_signup hook proved is stored proven.
    for r in &mut record.identifiers {
        if proven.contains(&r.identifier.kind()) {
            r.verified_at = Some(cx.now);
        }
    }
    let refuse = |e: Error, r: &UserRecord| (e, Box::new(r.clone()));
    let mut inserted = cx.store.insert_user(&record).await;
    if inserted == Err(StoreError::Duplicate) {
        for identifier in &identifiers {
            let proof_required = match identifier {
                Identifier::Phone(_) => cx.verification.required,
                Identifier::Email(_) => cx.email.required(),
                Identifier::Federated { .. } => false,
            };
            if !proof_required {
                continue;
            }
            let taken_over = take_over_stranded(cx, identifier)
                .await
                .map_err(|e| refuse(e, &record))?;
            if taken_over {
                let (phone_tag, email_tag) = super::session::audit_tags(cx, identifier);
                tracing::info!(target: "audit", event = "unverified_signup_replaced",
                    phone_tag = phone_tag.as_deref(), email_tag = email_tag.as_deref());
                inserted = cx.store.insert_user(&record).await;
                if inserted != Err(StoreError::Duplicate) {
                    break;
                }
            }
        }
    }
    match inserted {
        Ok(()) => Ok(record),
        Err(StoreError::Duplicate) => {
            let e = taken(cx, &identifiers).await.unwrap_or_else(|e| e);
            Err(refuse(e, &record))
        }
        Err(e) => Err(refuse(e.into(), &record)),
    }
}

/// Which identifier another account holds, as the error to answer (the phone's when both
/// are, or when the holder went meanwhile).
async fn taken(cx: &Ctx<'_>, identifiers: &[Identifier]) -> Result<Error, Error> {
    let error = |i: &Identifier| match i {
        Identifier::Email(_) => Error::EmailTaken,
        _ => Error::PhoneTaken,
    };
    for identifier in identifiers {
        if cx.store.find_user_by(identifier).await?.is_some() {
            return Ok(error(identifier));
        }
    }
    Ok(identifiers.first().map_or(Error::PhoneTaken, error))
}

/// Deletes the account holding `identifier` if it proved nothing and no live signup code is
/// waiting for it (its code expired, or was never stored because the signup failed between
/// its writes). Only an account made in an earlier second qualifies, so a signup racing this
/// one between its insert and its code (one round trip) is never taken; an account that
/// proved any identifier (a phone and email signup that confirmed one of them) never is.
/// True when one went.
async fn take_over_stranded(cx: &Ctx<'_>, identifier: &Identifier) -> Result<bool, Error> {
    let Some(address) = identifier.address() else {
        return Ok(false);
    };
    let Some(held) = cx.store.find_user_by(identifier).await? else {
        return Ok(false);
    };
    if !crate::store::stranded(&held, identifier, cx.now) {
        return Ok(false);
    }
    let purpose = Purpose::Signup.as_str();
    let waiting = cx
        .store
        .live_code(purpose, address, cx.now)
        .await?
        .is_some_and(|c| c.user_id == Some(held.id));
    if waiting {
        return Ok(false);
    }
    Ok(cx
        .store
        .delete_unverified_user(identifier, held.created_at.saturating_add(1))
        .await?)
}
