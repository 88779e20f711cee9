//! Domain operations: signup, login, sessions and profile changes over the store traits.
//!
//! Nothing here sees HTTP: operations take a [`Ctx`] and domain values (built at the edge) and
//! answer with domain records or an [`Error`]. The HTTP layer (`crate::handlers`) turns those
//! into responses.

mod account;
pub mod admin;
mod email;
mod error;
pub mod federation;
pub mod federation_browser;
mod hooks;
mod lifecycle;
pub mod mfa;
pub mod migration;
pub mod passkey;
mod session;
mod signup;
mod throttle;
mod verify;

use std::sync::Arc;

pub use account::{ProfileUpdate, profile, update_user};
pub use email::{
    RecoveryProof, confirm_email, confirm_email_link, recover_confirm_email, recover_start_email,
    start_email_verification,
};
pub use error::Error;
pub use lifecycle::delete_account;
pub use session::{
    Caller, LoginGrant, LoginOutcome, MfaChallenge, RefreshGrant, access_token,
    account_of_ended_session, login, login_second_factor, logout, refresh, session_of,
};
pub use signup::{NewUser, signup};
pub use throttle::{attempt_policy, lock_delay};
pub use verify::{confirm_phone, recover_confirm, recover_start, start_phone_verification};

use crate::{
    auth::token::TokenKeys, config::Settings, email::Mail, hooks::Hooks, keys::KeyCache,
    passkey::Passkeys, store::Store, verification::Verification,
};

/// Who is asking, as far as the network says: for audit lines and per-address limits.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// API Gateway's request id (the dev server makes its own).
    pub request_id: String,
    /// The caller's address as API Gateway saw it; empty when unknown.
    pub source_ip: String,
    /// The URL the request came in on, `https://` + API Gateway's `domainName`; the issuer
    /// when `JWT_ISSUER` is unset. `None` outside API Gateway.
    pub api_url: Option<String>,
    /// The `Accept-Language` header, for the locale of mail sent for the request.
    pub accept_language: Option<String>,
}

/// The issuer named when neither `JWT_ISSUER` nor the request gives one (a function invoked
/// directly, not through API Gateway).
pub const FALLBACK_ISSUER: &str = "user-api";

/// One request's view of the world: the store, the keys, the policy, the time and the
/// caller's address. Built once per request by the HTTP layer; every operation takes it.
/// The request's deadline is not here: it bounds every store call through
/// [`crate::store::deadline`], set around the whole request.
pub struct Ctx<'a> {
    pub store: &'a dyn Store,
    pub keys: &'a Arc<KeyCache>,
    pub policy: &'a Settings,
    /// Unix seconds, read once per request.
    pub now: i64,
    pub client: &'a Client,
    /// Phone verification: the switch, the codes' hasher and limits, the SMS sender.
    pub verification: &'a Verification,
    /// Email: whether addresses must be proven, the sender, templates and limits.
    pub email: &'a Mail,
    /// Passkeys: the relying party, or `None` where this process serves no passkey route
    /// (or `PASSKEY_RP_ID` is unset).
    pub passkeys: Option<&'a Passkeys>,
    /// The hooks this process runs (none configured: nothing runs).
    pub hooks: &'a Hooks,
    /// Identity providers, where this process serves their routes and some are configured.
    pub federation: Option<&'a crate::federation::Federation>,
}

impl Ctx<'_> {
    /// The token keys in force.
    pub fn tokens(&self) -> Arc<TokenKeys> {
        self.keys.get(self.now)
    }

    /// The `iss` tokens are issued with and must carry: `JWT_ISSUER`, else the URL the
    /// request came in on.
    pub fn issuer(&self) -> &str {
        self.policy
            .issuer
            .as_deref()
            .or(self.client.api_url.as_deref())
            .unwrap_or(FALLBACK_ISSUER)
    }
}
