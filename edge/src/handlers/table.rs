//! Which handler serves which endpoint, one table per Lambda function. Each is a
//! [`Handler`](super::Handler) that names only its own endpoints' handlers, so a function
//! built with its table links nothing of the others (`functions.rs`); [`any`] names them all,
//! for the dev server and the tests.

use futures::future::BoxFuture;

use super::{
    admin, delete_user, extract::Input, federation, keys, login, logout, mfa, passkey, refresh,
    router::Reply, signup, user, verify,
};
use crate::{error::ApiError, routes::Endpoint};
use domain::service::Ctx;

/// An endpoint the table does not serve: the router never sends one (it picks among the
/// function's own endpoints), so this is only a guard.
fn not_here<'a>() -> BoxFuture<'a, Reply> {
    Box::pin(async { Err(ApiError::NotFound) })
}

pub fn signup<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::Signup => Box::pin(signup::signup(cx, input)),
        _ => not_here(),
    }
}

pub fn login<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::Login => Box::pin(login::login(cx, input)),
        Endpoint::LoginMfa => Box::pin(login::login_mfa(cx, input)),
        _ => not_here(),
    }
}

pub fn logout<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::Logout => Box::pin(logout::logout(cx, input)),
        _ => not_here(),
    }
}

/// The `update` function: the caller's own account (GET, PUT and DELETE /user).
pub fn update<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::GetUser => Box::pin(user::get_user(cx, input)),
        Endpoint::PutUser => Box::pin(user::put_user(cx, input)),
        Endpoint::DeleteUser => Box::pin(delete_user::delete_user(cx, input)),
        _ => not_here(),
    }
}

pub fn refresh<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::Refresh => Box::pin(refresh::refresh(cx, input)),
        _ => not_here(),
    }
}

pub fn admin<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::AdminFindUser
        | Endpoint::AdminGetUser
        | Endpoint::AdminDisableUser
        | Endpoint::AdminEnableUser
        | Endpoint::AdminLogoutUser
        | Endpoint::AdminDeleteUser
        | Endpoint::AdminResetMfa
        | Endpoint::AdminSetAppMetadata => Box::pin(admin::handle(cx, e, input)),
        _ => not_here(),
    }
}

pub fn verify<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::VerifyPhoneStart => Box::pin(verify::start(cx, input)),
        Endpoint::VerifyPhoneConfirm => Box::pin(verify::confirm(cx, input)),
        Endpoint::VerifyEmailStart => Box::pin(verify::email_start(cx, input)),
        Endpoint::VerifyEmailConfirm => Box::pin(verify::email_confirm(cx, input)),
        Endpoint::VerifyEmailLink => Box::pin(verify::email_link(input)),
        _ => not_here(),
    }
}

pub fn recover<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::RecoverStart => Box::pin(verify::recover_start(cx, input)),
        Endpoint::RecoverConfirm => Box::pin(verify::recover_confirm(cx, input)),
        _ => not_here(),
    }
}

pub fn keys<'a>(cx: &'a Ctx<'a>, e: Endpoint, _: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::Jwks => Box::pin(keys::jwks(cx)),
        Endpoint::OpenidConfiguration => Box::pin(keys::openid_configuration(cx)),
        _ => not_here(),
    }
}

/// The `mfa` function: second factors and the step-up.
pub fn mfa<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::MfaFactors
        | Endpoint::TotpStart
        | Endpoint::TotpConfirm
        | Endpoint::MfaRemove
        | Endpoint::RecoveryCodes
        | Endpoint::StepUp => Box::pin(mfa::handle(cx, e, input)),
        _ => not_here(),
    }
}

/// The `passkeys` function: passkey ceremonies and the owner's passkeys.
pub fn passkeys<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::PasskeyRegisterStart
        | Endpoint::PasskeyRegisterFinish
        | Endpoint::PasskeyLoginStart
        | Endpoint::PasskeyLoginFinish
        | Endpoint::PasskeyStepUpStart
        | Endpoint::PasskeyStepUpFinish
        | Endpoint::PasskeyList
        | Endpoint::PasskeyRename
        | Endpoint::PasskeyRemove => Box::pin(passkey::handle(cx, e, input)),
        _ => not_here(),
    }
}

/// The `federation` function: sign-in with a provider, and linking providers.
pub fn federation<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    match e {
        Endpoint::FederationToken
        | Endpoint::IdentityLink
        | Endpoint::IdentityUnlink
        | Endpoint::FederationAuthorize
        | Endpoint::FederationCallback
        | Endpoint::FederationCallbackForm
        | Endpoint::FederationExchange => Box::pin(federation::handle(cx, e, input)),
        _ => not_here(),
    }
}

/// Every endpoint with state (the dev server, the tests). `whoami` needs none: the router's
/// `stateless` serves it.
pub fn any<'a>(cx: &'a Ctx<'a>, e: Endpoint, input: &'a Input<'a>) -> BoxFuture<'a, Reply> {
    let table = match e.function() {
        crate::routes::Function::Signup => signup,
        crate::routes::Function::Login => login,
        crate::routes::Function::Logout => logout,
        crate::routes::Function::Update => update,
        crate::routes::Function::Refresh => refresh,
        crate::routes::Function::Admin => admin,
        crate::routes::Function::Verify => verify,
        crate::routes::Function::Recover => recover,
        crate::routes::Function::Keys => keys,
        crate::routes::Function::Mfa => mfa,
        crate::routes::Function::Passkeys => passkeys,
        crate::routes::Function::Federation => federation,
        crate::routes::Function::Whoami => {
            return Box::pin(async move { super::example::whoami(input.req) });
        }
    };
    table(cx, e, input)
}
