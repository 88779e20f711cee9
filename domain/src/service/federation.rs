//! Sign-in with an identity provider (native: the app hands us the provider's ID token and the
//! raw nonce it used), and linking and unlinking a provider's identity on a signed-in account.
//!
//! Never a silent merge: a provider's identity that no account holds but whose *verified*
//! address an account does holds is refused with `LinkRequired` (the client signs in to that
//! account and links it there); an address the provider does not vouch for is never stored
//! as proven and never matched. A new account made by a provider holds the identity and, when
//! the provider vouches for it and no account holds it, the address (proven).

use super::{Caller, Ctx, Error, LoginOutcome, session};
use crate::{
    credential::Opened,
    federation::{self, FederationError, Provider, ProviderIdentity},
    identity::{Email, Identifier},
    store::{IdentifierChange, StoreError, UserPatch, UserRecord},
    types::{Name, UserId},
};

/// The RFC 8176-style method of a provider sign-in in `amr` (RFC 8176 names none for it).
pub const METHOD: &str = "fed";

/// What a provider sign-in did.
#[derive(Debug)]
pub struct FederatedSignIn {
    pub outcome: LoginOutcome,
    /// A new account was made for the identity.
    pub created: bool,
}

/// Names the app may pass for a new account (Apple gives them to the app once, not in the
/// token).
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub first_name: Option<Name>,
    pub last_name: Option<Name>,
}

pub(super) fn provider<'a>(cx: &'a Ctx<'_>, name: &str) -> Result<&'a Provider, Error> {
    cx.federation
        .and_then(|f| f.settings.provider(name))
        .ok_or(Error::UnknownProvider)
}

/// Checks a provider's ID token: refused tokens are audited with their reason and answered
/// alike.
pub(super) async fn identity_of(
    cx: &Ctx<'_>,
    provider: &Provider,
    id_token: &str,
    nonce: &str,
) -> Result<ProviderIdentity, Error> {
    let keys = cx.federation.ok_or(Error::UnknownProvider)?.keys.as_ref();
    match federation::verify(keys, provider, id_token, nonce, cx.now).await {
        Ok(id) => Ok(id),
        Err(FederationError::ProviderUnavailable(why)) => {
            tracing::warn!(
                provider = provider.name.as_str(),
                reason = why,
                "provider unavailable"
            );
            Err(Error::ProviderUnavailable(why.to_owned()))
        }
        Err(e) => {
            tracing::info!(target: "audit", event = "federated_token", outcome = "refused",
                provider = provider.name.as_str(), reason = %e);
            Err(Error::ProviderTokenRefused)
        }
    }
}

fn identifier(id: &ProviderIdentity) -> Identifier {
    Identifier::Federated {
        provider: id.issuer.clone(),
        subject: id.subject.clone(),
    }
}

/// The credential id a provider's identity opens sessions as (so removing it can end them).
fn opened(provider: &Provider) -> Opened {
    Opened {
        credential_id: format!("federated:{}", provider.name),
        method: METHOD.to_owned(),
    }
}

/// POST /federation/{provider}/token: signs in the account holding the provider's identity,
/// or makes one.
pub async fn sign_in(
    cx: &Ctx<'_>,
    provider_name: &str,
    id_token: &str,
    nonce: &str,
    names: Names,
) -> Result<FederatedSignIn, Error> {
    let provider = provider(cx, provider_name)?;
    let id = identity_of(cx, provider, id_token, nonce).await?;
    sign_in_as(cx, provider, &id, names).await
}

/// Signs in the account holding `id` (a provider's identity already proven), or makes one:
/// native sign-in after its token check, the browser flow at the app's code exchange.
pub(super) async fn sign_in_as(
    cx: &Ctx<'_>,
    provider: &Provider,
    id: &ProviderIdentity,
    names: Names,
) -> Result<FederatedSignIn, Error> {
    let ident = identifier(id);
    if let Some(user) = cx.store.find_user_by(&ident).await? {
        let outcome = session::sign_in_without_password(cx, &user, opened(provider)).await?;
        tracing::info!(target: "audit", event = "federated_signin", outcome = "signed_in",
            provider = provider.name.as_str(), user_id = %user.id);
        return Ok(FederatedSignIn {
            outcome,
            created: false,
        });
    }
    let email = id
        .verified_email
        .as_deref()
        .and_then(|e| Email::parse(e).ok());
    if let Some(e) = &email
        && let Some(holder) = cx.store.find_user_by(&Identifier::Email(e.clone())).await?
    {
        // The same sign-in racing this one made the account meanwhile: it is this identity's.
        if holder.holds(&ident) {
            let outcome = session::sign_in_without_password(cx, &holder, opened(provider)).await?;
            return Ok(FederatedSignIn {
                outcome,
                created: false,
            });
        }
        tracing::info!(target: "audit", event = "federated_signin", outcome = "link_required",
            provider = provider.name.as_str());
        return Err(Error::LinkRequired);
    }
    let user = new_account(cx, id, ident.clone(), email, names)?;
    let created = match cx.store.insert_user(&user).await {
        Ok(()) => true,
        // Another request made it (the same sign-in racing), or the address was taken
        // meanwhile: sign in to the identity's account if it exists now, else ask to link.
        Err(StoreError::Duplicate) => false,
        Err(e) => return Err(e.into()),
    };
    let user = if created {
        tracing::info!(target: "audit", event = "signup", outcome = "federated",
            provider = provider.name.as_str(), user_id = %user.id);
        user
    } else {
        cx.store
            .find_user_by(&ident)
            .await?
            .ok_or(Error::LinkRequired)?
    };
    let outcome = session::sign_in_without_password(cx, &user, opened(provider)).await?;
    tracing::info!(target: "audit", event = "federated_signin",
        outcome = if created { "created" } else { "signed_in" },
        provider = provider.name.as_str(), user_id = %user.id);
    Ok(FederatedSignIn { outcome, created })
}

/// A new account for a provider's identity: no password; the provider's verified address,
/// proven; names from the app, else the token, else the provider's name.
fn new_account(
    cx: &Ctx<'_>,
    id: &ProviderIdentity,
    ident: Identifier,
    email: Option<Email>,
    names: Names,
) -> Result<UserRecord, Error> {
    let name = |given: Option<Name>, claim: Option<&str>, fallback: &str| {
        given
            .or_else(|| claim.and_then(|c| Name::parse(c).ok()))
            .or_else(|| Name::parse(fallback).ok())
            .ok_or_else(|| Error::internal("name", "no usable name"))
    };
    let first = name(names.first_name, id.given_name.as_deref(), "User")?;
    let last = name(names.last_name, id.family_name.as_deref(), "User")?;
    let mut identifiers = Vec::new();
    if let Some(e) = email {
        identifiers.push(Identifier::Email(e));
    }
    let mut user = UserRecord::new(
        UserId::new(),
        (first, None, last),
        identifiers,
        String::new(),
        cx.now,
    );
    for r in &mut user.identifiers {
        r.verified_at = Some(cx.now);
    }
    user.credentials.clear();
    user.identifiers.push(crate::identity::IdentifierRecord {
        identifier: ident,
        verified_at: Some(cx.now),
        primary: false,
    });
    Ok(user)
}

/// POST /user/identities: links a provider's identity (a fresh token for it) to the caller's
/// account.
pub async fn link(
    cx: &Ctx<'_>,
    caller: &Caller,
    provider_name: &str,
    id_token: &str,
    nonce: &str,
) -> Result<UserRecord, Error> {
    let provider = provider(cx, provider_name)?;
    let id = identity_of(cx, provider, id_token, nonce).await?;
    link_as(cx, caller, provider, &id).await
}

/// Links `id` (a provider's identity already proven) to the caller's account.
pub(super) async fn link_as(
    cx: &Ctx<'_>,
    caller: &Caller,
    provider: &Provider,
    id: &ProviderIdentity,
) -> Result<UserRecord, Error> {
    let ident = identifier(id);
    match cx.store.find_user_by(&ident).await? {
        Some(holder) if holder.id == caller.user_id => return Ok(holder),
        Some(_) => return Err(Error::IdentityTaken),
        None => {}
    }
    let patch = UserPatch::identifier(IdentifierChange::Link(ident));
    let user = match cx.store.update_user(&caller.user_id, &patch, cx.now).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(Error::Unauthorized),
        Err(StoreError::Duplicate) => return Err(Error::IdentityTaken),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(target: "audit", event = "identity_linked", provider = provider.name.as_str(),
        user_id = %user.id);
    Ok(user)
}

/// DELETE /user/identities/{provider}: unlinks the provider's identity, unless it is the
/// account's last way to sign in (no password, no passkey, no other provider).
pub async fn unlink(
    cx: &Ctx<'_>,
    caller: &Caller,
    provider_name: &str,
) -> Result<UserRecord, Error> {
    let provider = provider(cx, provider_name)?;
    let user = cx
        .store
        .find_user(&caller.user_id)
        .await?
        .ok_or(Error::Unauthorized)?;
    let mine: Vec<Identifier> = user
        .identifiers
        .iter()
        .filter(|r| matches!(&r.identifier, Identifier::Federated { provider: p, .. } if *p == provider.issuer))
        .map(|r| r.identifier.clone())
        .collect();
    if mine.is_empty() {
        return Err(Error::FactorNotFound);
    }
    let others = user
        .identifiers
        .iter()
        .filter(|r| {
            matches!(&r.identifier, Identifier::Federated { .. }) && !mine.contains(&r.identifier)
        })
        .count();
    let can_sign_in = user.password().is_some()
        || user
            .credentials
            .iter()
            .any(|c| c.record.kind == crate::credential::CredentialKind::Passkey)
        || others > 0;
    if !can_sign_in {
        return Err(Error::LastSignInMethod);
    }
    let patch = UserPatch {
        identifiers: mine.into_iter().map(IdentifierChange::Unlink).collect(),
        ..UserPatch::default()
    };
    let user = cx
        .store
        .update_user(&user.id, &patch, cx.now)
        .await?
        .ok_or(Error::Unauthorized)?;
    // The sessions the identity opened end with it.
    let ended = cx
        .store
        .delete_sessions_opened_by(&user.id, &opened(provider).credential_id)
        .await?;
    tracing::info!(target: "audit", event = "identity_unlinked", provider = provider.name.as_str(),
        user_id = %user.id, sessions_ended = ended);
    Ok(user)
}
