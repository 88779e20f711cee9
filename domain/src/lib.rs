//! The user API's domain: identifiers and passwords parsed once (`types`, `phone`), token and
//! password code (`auth`), the service operations over the store traits (`service`, `store`),
//! the SMS sender trait and its guards (`sms`, `verification`), and the keys in force
//! (`keys`). Nothing here knows HTTP, MongoDB or an AWS SDK: the crate does not depend on
//! them (scripts/check-layers fails CI if it starts to), so adapters implement these traits
//! in the `adapters` crate and the `edge` crate maps requests onto these operations.

pub mod auth;
pub mod claims;
pub mod clock;
pub mod config;
pub mod credential;
pub mod email;
pub mod events;
pub mod federation;
pub mod hooks;
pub mod identity;
pub mod keys;
pub mod mfa;
pub mod otp;
pub mod passkey;
pub mod phone;
pub mod service;
pub mod sms;
pub mod store;
pub mod types;
pub mod verification;
