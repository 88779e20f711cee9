//! The `admin` Lambda function (IAM-signed operator routes): one cold start builds the state, every invocation borrows it.

use lambda_http::{Error, run, service_fn};
use shared::{State, handlers};

fn main() -> Result<(), Error> {
    shared::telemetry::init();
    shared::lambda_runtime()?.block_on(async {
        let state = State::init()
            .await
            .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
        let state = &state;
        run(service_fn(move |req| async move {
            Ok::<_, std::convert::Infallible>(
                handlers::dispatch(state, shared::routes::Function::Admin, req).await,
            )
        }))
        .await
    })
}
