//! One entry point per Lambda function: its handler table and the adapters it builds. Each
//! `main.rs` calls one of these, so each binary links its own handlers and adapters and no
//! others (one dispatch over every route, linked into all ten, had made every binary the
//! same size and every cold start build every client: bench/RESULTS.md, issue 23).

use lambda_http::Error;

use crate::{
    handlers::table,
    lambda::{serve, serve_drain, serve_stateless},
    routes::Function,
    state::{MakePasskeys, Wiring},
};

/// POST /signup: sends a code when phone verification is required.
pub fn signup() -> Result<(), Error> {
    serve(Function::Signup, Wiring::SENDS_CODES, table::signup)
}

pub fn login() -> Result<(), Error> {
    serve(Function::Login, Wiring::SIGNS_HOT, table::login)
}

pub fn logout() -> Result<(), Error> {
    serve(Function::Logout, Wiring::DATABASE, table::logout)
}

/// GET, PUT and DELETE /user: a phone change sends a code when verification is required.
pub fn update() -> Result<(), Error> {
    serve(Function::Update, Wiring::SENDS_CODES, table::update)
}

pub fn refresh() -> Result<(), Error> {
    serve(Function::Refresh, Wiring::SIGNS_HOT, table::refresh)
}

/// The IAM-signed operator routes: a second-factor reset notifies the user.
pub fn admin() -> Result<(), Error> {
    serve(Function::Admin, Wiring::SENDS_CODES, table::admin)
}

pub fn verify() -> Result<(), Error> {
    serve(Function::Verify, Wiring::SENDS_CODES, table::verify)
}

pub fn recover() -> Result<(), Error> {
    serve(Function::Recover, Wiring::SENDS_CODES, table::recover)
}

/// Second factors and the step-up: signs the raised session's tokens.
pub fn mfa() -> Result<(), Error> {
    serve(Function::Mfa, Wiring::SIGNS, table::mfa)
}

/// Passkeys: signs the tokens of a passkey sign-in. `relying_party` is the `passkeys`
/// crate's (webauthn-rs), handed in by the function's `main` so that no other binary links it.
pub fn passkeys(relying_party: MakePasskeys) -> Result<(), Error> {
    serve(
        Function::Passkeys,
        Wiring::SIGNS.with_passkeys(relying_party),
        table::passkeys,
    )
}

/// Sign-in with identity providers and linking: signs tokens, fetches providers' keys.
pub fn federation() -> Result<(), Error> {
    serve(
        Function::Federation,
        Wiring::SIGNS.with_federation(adapters::oidc::provider_keys_maker),
        table::federation,
    )
}

/// The JWK Set and discovery document: keys only, no database.
pub fn keys() -> Result<(), Error> {
    serve(Function::Keys, Wiring::KEYS_ONLY, table::keys)
}

/// The example service behind API Gateway's JWT authorizer: no secret, no database.
pub fn whoami() -> Result<(), Error> {
    serve_stateless(Function::Whoami)
}

/// The scheduled drain of the event outbox: a database and the event bus, no route.
pub fn events_drain() -> Result<(), Error> {
    serve_drain()
}
