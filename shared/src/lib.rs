//! The user API's shared crate: everything the Lambda functions and the dev server have in
//! common. Layers, outside in: `handlers` (HTTP) -> `service` (domain) -> `auth` and `store`.
//! ARCHITECTURE.md says what each may import and where a new route goes.

pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod handlers;
pub mod lambda;
pub mod metrics;
pub mod otp;
pub mod phone;
pub mod routes;
pub mod schema;
pub mod secrets;
pub mod service;
pub mod sms;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod types;
pub mod verification;

/// The async runtime a Lambda function needs: one thread, since an instance serves one
/// request at a time (no worker threads to start on a cold start), and one blocking thread for
/// argon2, so at most one 19 MiB argon2 buffer is ever held.
pub fn lambda_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
}

pub use error::ApiError;
pub use state::State;
