//! The one `main` of every Lambda function: logging and metrics set-up, the cold-start init
//! (settings, secret, store) run inside the async runtime so that its failure is reported to
//! Lambda's `/runtime/init/error` with an error type (the invoke answer and Lambda's own log
//! then name the cause, instead of a bare "Runtime exited"), and a span per invocation that
//! gives every log line the Lambda `requestId`, the API Gateway request id, the function name,
//! the X-Ray trace id and whether this invocation paid the cold start.
//!
//! lambda_runtime 1.5 reports init errors only for its SnapStart hooks, not for work done
//! before `run`, so the error is posted here with the crate's own Runtime API client.

use std::{
    convert::Infallible,
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use lambda_http::{
    Body, Error, IntoResponse, Request, RequestExt, Response, request::RequestContext, service_fn,
};
use tracing::Instrument;

use crate::{
    handlers::{self, Handler},
    routes::Function,
    state::{InitError, State, Wiring},
    telemetry,
};
use adapters::metrics;
use domain::config::ConfigError;

/// A cold-start failure as Lambda is told it: an error type for `Lambda-Runtime-Function-
/// Error-Type` and `errorType`, and a message that names variables, never their values.
#[derive(Debug, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct InitFailure {
    pub error_type: &'static str,
    pub message: String,
}

impl From<&InitError> for InitFailure {
    fn from(e: &InitError) -> Self {
        let error_type = match e {
            InitError::Config(ConfigError::Secret { .. }) => "Init.SecretsManager",
            InitError::Config(_) => "Init.Configuration",
            InitError::Store(_) => "Init.Database",
            InitError::Verification(_) | InitError::Mail(_) => "Init.Configuration",
        };
        Self {
            error_type,
            message: e.to_string(),
        }
    }
}

impl From<telemetry::LogConfigError> for InitFailure {
    fn from(e: telemetry::LogConfigError) -> Self {
        Self {
            error_type: "Init.Logging",
            message: e.to_string(),
        }
    }
}

/// True until the first invocation of this process has started.
static COLD: AtomicBool = AtomicBool::new(true);

/// The function's name: `AWS_LAMBDA_FUNCTION_NAME` when Lambda runs it, else the binary's.
fn function_name(binary: &str) -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| binary.to_owned())
}

/// Runs the Lambda function `function`: its endpoints of the route table, through `handler`
/// (its table in `handlers::table`), over a state built with `wiring`. `functions.rs` calls
/// this once per function with constants, so each binary links only its own handlers and
/// adapters.
pub fn serve(function: Function, wiring: Wiring, handler: Handler) -> Result<(), Error> {
    let name = function_name(function.name());
    let logging = telemetry::try_init(Some(name.clone()));
    // Boxed: the futures of the cold start and of the runtime loop are tens of KB; built on the
    // stack, each poll frame holding one is probed page by page (a page fault each, ~2 us in a
    // microVM) though the path taken uses a fraction of it.
    crate::lambda_runtime()?.block_on(Box::pin(async move {
        let state = match init(logging, Box::pin(State::init(wiring))).await {
            Ok(state) => state,
            Err(failure) => return Err(failed(failure).await),
        };
        let (state, name) = (&state, name.as_str());
        lambda_http::run(service_fn(move |req| async move {
            let served = invoke(name, req, |req| {
                handlers::dispatch_with(state, function, handler, req)
            });
            Ok::<_, Infallible>(Reply(served.await))
        }))
        .await
    }))
}

/// Runs a function that needs neither the secret nor the database
/// ([`Function::needs_state`] is false): its cold start reads neither, and its handler reads
/// only the request.
pub fn serve_stateless(function: Function) -> Result<(), Error> {
    let name = function_name(function.name());
    let logging = telemetry::try_init(Some(name.clone()));
    crate::lambda_runtime()?.block_on(async move {
        if let Err(failure) = init(logging, async { Ok(()) }).await {
            return Err(failed(failure).await);
        }
        let name = name.as_str();
        lambda_http::run(service_fn(move |req| async move {
            let served = invoke(name, req, |req| handlers::stateless(function, req));
            Ok::<_, Infallible>(Reply(served.await))
        }))
        .await
    })
}

/// Runs the scheduled drain of the event outbox (`events-drain`): each invocation (an
/// EventBridge Scheduler or rule event, whatever its body) delivers the events requests left
/// behind, until none is left or the invocation's deadline is near, and answers what it did.
pub fn serve_drain() -> Result<(), Error> {
    use lambda_http::{LambdaEvent, lambda_runtime};
    let name = function_name("events-drain");
    let logging = telemetry::try_init(Some(name.clone()));
    // Boxed as in `serve`.
    crate::lambda_runtime()?.block_on(Box::pin(async move {
        let state = match init(logging, Box::pin(State::init(Wiring::DATABASE))).await {
            Ok(state) => state,
            Err(failure) => return Err(failed(failure).await),
        };
        let state = &state;
        lambda_runtime::run(lambda_http::service_fn(
            move |event: LambdaEvent<serde_json::Value>| async move {
                let left = event.context.deadline.saturating_sub(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                );
                let budget = if left == 0 {
                    state.settings.request_budget
                } else {
                    Duration::from_millis(left)
                        .saturating_sub(crate::handlers::router::RESPONSE_MARGIN)
                };
                let d = state.drain_events(budget).await;
                Ok::<_, Error>(serde_json::json!({
                    "sent": d.sent, "dropped": d.dropped, "failed": d.failed, "waiting": d.waiting,
                }))
            },
        ))
        .await
    }))
}

/// Logs and reports a cold-start failure; the process then exits with it.
async fn failed(failure: InitFailure) -> Error {
    tracing::error!(error_type = failure.error_type, error = %failure.message, "init failed");
    report_init_error(&failure).await;
    failure.into()
}

/// Everything a cold start does before the first poll for work: logging, metrics, then
/// `build` (the state, for a function that has one).
async fn init<T>(
    logging: Result<(), telemetry::LogConfigError>,
    build: impl Future<Output = Result<T, InitError>>,
) -> Result<T, InitFailure> {
    logging?;
    metrics::init_from_env();
    build.await.map_err(|e| InitFailure::from(&e))
}

/// The Runtime API's base URI from `AWS_LAMBDA_RUNTIME_API`: `host:port` in Lambda; a whole
/// URL with a path under `cargo lambda watch` (`http://127.0.0.1:9000/.rt/<function>`), whose
/// path the requests go under.
fn runtime_api_uri(value: &str) -> Option<lambda_http::http::Uri> {
    let url = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    url.parse().ok()
}

/// Posts `failure` to `/runtime/init/error` (documented body `{errorMessage, errorType}`).
/// Without `AWS_LAMBDA_RUNTIME_API` (run by hand) there is no one to tell. Where the Runtime
/// API refuses it (`cargo lambda watch` answers 500 and leaves the invoker waiting), the
/// pending invocation is answered with the same error instead, so whoever invoked sees why
/// rather than a hang; Lambda itself accepts the report, and the process exits as before.
pub async fn report_init_error(failure: &InitFailure) {
    let Some(api) = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .ok()
        .and_then(|a| runtime_api_uri(&a))
    else {
        return;
    };
    let client = lambda_runtime_api_client::PooledClient::builder()
        .with_endpoint(api)
        .build();
    let post = |path: String| {
        let body = serde_json::json!({
            "errorMessage": failure.message,
            "errorType": failure.error_type,
        })
        .to_string();
        lambda_runtime_api_client::build_request()
            .method("POST")
            .uri(path)
            .header("Lambda-Runtime-Function-Error-Type", failure.error_type)
            .header("content-type", "application/json")
            .body(lambda_runtime_api_client::body::Body::from(body))
    };
    let Ok(request) = post("/2018-06-01/runtime/init/error".to_owned()) else {
        tracing::error!("could not build the init error request");
        return;
    };
    // Bounded: the Runtime API is local and answers at once; a process that cannot report
    // must still exit rather than hang until Lambda's init timeout.
    match tokio::time::timeout(Duration::from_secs(2), client.call(request)).await {
        Ok(Ok(r)) if r.status().is_success() => return,
        Ok(Ok(r)) => {
            tracing::error!(status = %r.status(), "the Runtime API refused the init error")
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not report the init error");
            return;
        }
        Err(_) => {
            tracing::error!("the Runtime API did not answer the init error in 2 s");
            return;
        }
    }
    // An emulator: take the invocation waiting for this process and fail it with the cause.
    let Ok(next) = lambda_runtime_api_client::build_request()
        .method("GET")
        .uri("/2018-06-01/runtime/invocation/next")
        .body(lambda_runtime_api_client::body::Body::empty())
    else {
        return;
    };
    let Ok(Ok(pending)) = tokio::time::timeout(Duration::from_secs(5), client.call(next)).await
    else {
        return;
    };
    let Some(id) = pending
        .headers()
        .get("lambda-runtime-aws-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return;
    };
    if let Ok(request) = post(format!("/2018-06-01/runtime/invocation/{id}/error")) {
        let _ = tokio::time::timeout(Duration::from_secs(2), client.call(request)).await;
    }
}

/// A handler's response as lambda_http hands it to API Gateway. lambda_http's own
/// `IntoResponse` for `Response<B>` decodes every text body again by its `charset` through
/// encoding_rs, which links every legacy encoding's decoder and tables (~130 KB) into each
/// function. The bodies here are UTF-8 text already (or empty), so they pass as they are; an
/// empty one becomes `""`, as that decoding made it.
struct Reply(Response<Body>);

impl IntoResponse for Reply {
    // lambda_http's `ResponseFuture`, which it does not export by name.
    fn into_response(self) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        let (parts, body) = self.0.into_parts();
        let body = match body {
            Body::Empty => Body::Text(String::new()),
            body => body,
        };
        Box::pin(std::future::ready(Response::from_parts(parts, body)))
    }
}

/// One invocation: the span every line inside carries, the handler, the metrics flush.
async fn invoke<F: Future<Output = Response<Body>>>(
    name: &str,
    req: Request,
    serve: impl FnOnce(Request) -> F,
) -> Response<Body> {
    let cold_start = COLD.swap(false, Ordering::Relaxed);
    let (request_id, trace_id) = req
        .lambda_context_ref()
        .map(|c| (c.request_id.clone(), c.xray_trace_id.clone()))
        .unwrap_or_default();
    let trace_id = trace_id.or_else(|| std::env::var("_X_AMZN_TRACE_ID").ok());
    let apigw_request_id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.clone().unwrap_or_default(),
        _ => String::new(),
    };
    // `requestId` and `xrayTraceId` are the keys Lambda's JSON logs and lambda_runtime's own
    // span use, so the same field joins application lines, platform lines and traces.
    let span = tracing::info_span!(
        "invoke",
        requestId = %request_id,
        apigwRequestId = %apigw_request_id,
        function = name,
        cold_start,
        xrayTraceId = trace_id.as_deref().unwrap_or(""),
    );
    if cold_start {
        metrics::cold_start();
    }
    let started = Instant::now();
    let response = serve(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "invocation done"
        );
    });
    metrics::flush(&request_id, trace_id.as_deref(), name);
    response
}

/// Peak MongoDB connections of a deployment, the formula the README's budget uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// Connections the primary sees (Atlas limits connections per node, so this is the
    /// number to hold against the tier's limit).
    pub primary: u64,
    /// Connections across all nodes of the replica set.
    pub total: u64,
}

/// Each Lambda instance holds at most `pool` application connections (`maxPoolSize`; with the
/// default primary read preference they all go to the primary) and one monitoring connection
/// per node: on Lambda the driver's `serverMonitoringMode=auto` polls, so no extra RTT
/// connection. Every concurrent instance of every function holds its own, so with
/// `functions` = (reserved concurrency, pool) pairs and `nodes` replica-set members:
/// primary = sum of concurrency x (pool + 1); total = sum of concurrency x (pool + nodes).
pub fn mongo_connection_budget(functions: &[(u32, u32)], nodes: u32) -> ConnectionBudget {
    let sum = |per: &dyn Fn(u64) -> u64| -> u64 {
        functions
            .iter()
            .map(|&(concurrency, pool)| u64::from(concurrency) * per(u64::from(pool)))
            .sum()
    };
    ConnectionBudget {
        primary: sum(&|pool| pool + 1),
        total: sum(&|pool| pool + u64::from(nodes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What lambda_http's own conversion made of each body is what `Reply` passes on: text
    /// as it is, an empty body as `""`, status and headers untouched.
    #[tokio::test]
    async fn a_reply_keeps_status_headers_and_text_and_sends_an_empty_body_as_empty_text() {
        let cases = [
            (200, Body::Text("{\"a\":\"é\"}".to_owned()), "{\"a\":\"é\"}"),
            (204, Body::Empty, ""),
            (302, Body::Empty, ""),
        ];
        for (status, body, text) in cases {
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header("location", "https://app.example/cb")
                .body(body)
                .expect("a response");
            let sent = Reply(response).into_response().await;
            assert_eq!(sent.status().as_u16(), status);
            assert_eq!(sent.headers()["content-type"], "application/json");
            assert_eq!(sent.headers()["location"], "https://app.example/cb");
            assert!(
                matches!(sent.body(), Body::Text(t) if t == text),
                "{status}"
            );
        }
    }

    #[test]
    fn connection_budget_follows_the_documented_formula() {
        // The template's defaults: signup 20, login 50, logout 20, update 20 reserved
        // instances, pool 2, an Atlas 3-node replica set.
        let defaults = [(20, 2), (50, 2), (20, 2), (20, 2)];
        let b = mongo_connection_budget(&defaults, 3);
        assert_eq!(b.primary, 110 * 3);
        assert_eq!(b.total, 110 * 5);
        // An M10 allows 1,500 connections per node: the defaults fit even while a canary
        // keeps old and new instances alive together (twice the peak).
        assert!(2 * b.primary <= 1500);
        // One instance, pool 1, standalone server.
        let one = mongo_connection_budget(&[(1, 1)], 1);
        assert_eq!((one.primary, one.total), (2, 2));
        assert_eq!(mongo_connection_budget(&[], 3).total, 0);
    }

    #[test]
    fn init_failures_are_typed_by_cause() {
        let missing = InitError::Config(ConfigError::Missing("JWT_SECRET_KEY".into()));
        let f = InitFailure::from(&missing);
        assert_eq!(f.error_type, "Init.Configuration");
        assert!(f.message.contains("JWT_SECRET_KEY is not set"), "{f}");
        let secret = InitError::Config(ConfigError::Secret {
            secret_id: "s".into(),
            reason: "not found".into(),
        });
        assert_eq!(InitFailure::from(&secret).error_type, "Init.SecretsManager");
    }
}
