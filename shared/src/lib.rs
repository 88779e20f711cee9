//! The user API's shared crate: everything the four Lambda functions and the dev server
//! have in common. Handlers are plain async functions from `Request` to `Response`.

pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod handlers;
pub mod schema;
pub mod service;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod types;

pub use error::ApiError;
pub use state::State;
pub mod secrets;
