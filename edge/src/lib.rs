//! The user API's HTTP edge: the route table (`routes`), request schemas (`schema`), the
//! handlers that turn a request into one domain call (`handlers`), problem+json (`error`, the
//! only home of `ApiError`), the state a process builds (`state`), logging (`telemetry`) and
//! the Lambda runtime glue (`lambda`, `functions`). Layers, outside in: edge -> domain, with
//! the adapters crate plugged in by `state`. ARCHITECTURE.md says what each may import and
//! where a new route goes.

pub mod error;
pub mod functions;
pub mod handlers;
pub mod lambda;
pub mod routes;
pub mod schema;
pub mod state;
pub mod telemetry;

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
