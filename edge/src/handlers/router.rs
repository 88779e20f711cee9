//! From a request to its endpoint's handler, inside the request's span and deadline.

use lambda_http::{Body, Request, RequestExt, Response};
use tokio::time::{Duration, Instant};
use tracing::Instrument;

use futures::future::BoxFuture;

use super::{
    example,
    extract::{Input, client_of},
    table,
};
use crate::{
    error::ApiError,
    routes::{Endpoint, Function, Miss},
    state::State,
};
use domain::{service::Ctx, store::deadline};

/// Time kept back from the Lambda deadline to write the response.
pub(crate) const RESPONSE_MARGIN: Duration = Duration::from_millis(500);

/// What a handler answers: a response, or an error the caller turns into problem+json.
pub type Reply = Result<Response<Body>, ApiError>;

/// The handlers of one function's endpoints behind one pointer. A Lambda function is served
/// with its own (`handlers::table`), so its binary links its handlers and no other; the dev
/// server and the tests use [`table::any`], which links them all.
pub type Handler = for<'a> fn(&'a Ctx<'a>, Endpoint, &'a Input<'a>) -> BoxFuture<'a, Reply>;

/// Routes by method and path, as API Gateway does: 404 for an unknown path, 405 (with
/// `Allow`) for a known path with another method. The dev server serves everything this way.
pub async fn route(state: &State, req: Request) -> Response<Body> {
    match Endpoint::find(req.method().as_str(), req.uri().path()) {
        Ok(endpoint) => handle(state, endpoint, req, table::any).await,
        Err(Miss::NotFound) => ApiError::NotFound.into_response(),
        Err(Miss::MethodNotAllowed(allow)) => method_not_allowed(&allow),
    }
}

/// A function's entry point with every handler linked (tests, the dev server): as
/// [`dispatch_with`] and [`table::any`].
pub async fn dispatch(state: &State, function: Function, req: Request) -> Response<Body> {
    dispatch_with(state, function, table::any, req).await
}

/// A Lambda function's entry point: API Gateway has routed by path already, so the request
/// goes to the one endpoint of `function` with its method, through `handler`.
pub async fn dispatch_with(
    state: &State,
    function: Function,
    handler: Handler,
    req: Request,
) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let mut own = function.endpoints().filter(|e| e.method() == method);
    match (own.next(), own.next()) {
        (Some(endpoint), None) => handle(state, endpoint, req, handler).await,
        // Two endpoints of one function share a method: the path decides.
        (Some(_), Some(_)) => match Endpoint::find(&method, req.uri().path()) {
            Ok(endpoint) if endpoint.function() == function => {
                handle(state, endpoint, req, handler).await
            }
            Ok(_) | Err(Miss::NotFound) => ApiError::NotFound.into_response(),
            Err(Miss::MethodNotAllowed(allow)) => method_not_allowed(&allow),
        },
        (None, _) => {
            let allow: Vec<&str> = function.endpoints().map(Endpoint::method).collect();
            method_not_allowed(&allow)
        }
    }
}

/// The entry point of a function that needs no [`State`] ([`Function::needs_state`]): its
/// handlers read only the request.
pub async fn stateless(function: Function, req: Request) -> Response<Body> {
    let method = req.method().as_str();
    let Some(endpoint) = function.endpoints().find(|e| e.method() == method) else {
        let allow: Vec<&str> = function.endpoints().map(Endpoint::method).collect();
        return method_not_allowed(&allow);
    };
    let client = client_of(&req);
    let _in_span = request_span(endpoint, &client).entered();
    match endpoint {
        Endpoint::ExampleWhoami => example::whoami(&req),
        _ => Err(ApiError::Internal),
    }
    .unwrap_or_else(ApiError::into_response)
}

/// The span every line of one request carries.
fn request_span(endpoint: Endpoint, client: &domain::service::Client) -> tracing::Span {
    tracing::info_span!("request", route = endpoint.name(),
        request_id = %client.request_id, source_ip = %client.source_ip)
}

fn method_not_allowed(allow: &[&str]) -> Response<Body> {
    let mut resp = ApiError::MethodNotAllowed.into_response();
    if let Ok(v) = allow.join(", ").parse() {
        resp.headers_mut().insert("allow", v);
    }
    resp
}

/// The instant by which every store call of this request must be done: the Lambda
/// invocation's deadline less a margin for the response, or `budget` from now where there is
/// none (the dev server).
fn deadline_of(req: &Request, budget: Duration) -> Instant {
    let now = Instant::now();
    let lambda = req
        .lambda_context_ref()
        .map(|c| c.deadline)
        .filter(|ms| *ms > 0)
        .and_then(|ms| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_millis();
            let left = u128::from(ms).checked_sub(now_ms)?;
            Some(Duration::from_millis(u64::try_from(left).ok()?).saturating_sub(RESPONSE_MARGIN))
        });
    now + lambda.unwrap_or(budget)
}

async fn handle(
    state: &State,
    endpoint: Endpoint,
    req: Request,
    handler: Handler,
) -> Response<Body> {
    let client = client_of(&req);
    let span = request_span(endpoint, &client);
    let cx = state.ctx(&client);
    let input = Input {
        req: &req,
        schemas: &state.schemas,
    };
    let work = handler(&cx, endpoint, &input);
    let deadline = deadline_of(&req, state.settings.request_budget);
    // What the stores wrote to the outbox during the request is delivered once it is done
    // (also after an error: a change written before it still happened); what cannot be
    // delivered now stays for the drain.
    let (answer, written) =
        domain::events::journal::scope(deadline::within(deadline, work.instrument(span))).await;
    if let Some(relay) = &state.relay
        && !written.is_empty()
    {
        deadline::within(deadline, relay.deliver(written, state.clock.now())).await;
    }
    answer.unwrap_or_else(ApiError::into_response)
}
