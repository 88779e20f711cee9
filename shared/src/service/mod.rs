//! Domain operations: signup, login, sessions and profile changes over the store traits.
//!
//! Nothing here sees HTTP: operations take a [`Ctx`] and domain values (built at the edge) and
//! answer with domain records or an [`Error`]. The HTTP layer (`crate::handlers`) turns those
//! into responses.

mod account;
pub mod admin;
mod error;
mod lifecycle;
pub mod migration;
mod session;
mod throttle;
mod verify;

use std::sync::Arc;

pub use account::{NewUser, ProfileUpdate, profile, signup, update_user};
pub use error::Error;
pub use lifecycle::delete_account;
pub use session::{
    Caller, LoginGrant, RefreshGrant, account_of_ended_session, login, logout, refresh, session_of,
};
pub use throttle::{attempt_policy, lock_delay};
pub use verify::{confirm_phone, recover_confirm, recover_start, start_phone_verification};

use crate::{
    auth::token::TokenKeys, config::Settings, secrets::KeyCache, store::Store,
    verification::Verification,
};

/// Who is asking, as far as the network says: for audit lines and per-address limits.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// API Gateway's request id (the dev server makes its own).
    pub request_id: String,
    /// The caller's address as API Gateway saw it; empty when unknown.
    pub source_ip: String,
}

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
}

impl Ctx<'_> {
    /// The token keys in force.
    pub fn tokens(&self) -> Arc<TokenKeys> {
        self.keys.get(self.now)
    }
}
