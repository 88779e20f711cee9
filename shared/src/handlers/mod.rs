//! The HTTP edge: each handler parses and validates a request, calls one domain function and
//! maps the outcome to a response. Every handler returns a response, never an error, so a
//! client mistake can never reach the Lambda runtime as a failed invocation.

mod login;
mod logout;
mod signup;
mod user;

pub use login::login;
pub use logout::logout;
pub use signup::signup;
pub use user::user;

use lambda_http::{
    Body, Request, RequestExt, Response,
    http::{HeaderMap, Method, StatusCode},
    request::RequestContext,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    error::ApiError,
    schema,
    service::{self, Caller},
    state::State,
    store::UserRecord,
};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// One route: method, path, and the function (binary) that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub function: &'static str,
}

/// Every route the API serves. `template.yaml` declares the same table; a test keeps them equal.
pub const ROUTES: [Route; 5] = [
    Route {
        method: "POST",
        path: "/signup",
        function: "signup",
    },
    Route {
        method: "POST",
        path: "/login",
        function: "login",
    },
    Route {
        method: "POST",
        path: "/logout",
        function: "logout",
    },
    Route {
        method: "GET",
        path: "/user",
        function: "update",
    },
    Route {
        method: "PUT",
        path: "/user",
        function: "update",
    },
];

/// Dispatches to the handler of `function` (the name of a Lambda binary).
pub async fn dispatch(state: &State, function: &str, req: Request) -> Response<Body> {
    match function {
        "signup" => signup(state, req).await,
        "login" => login(state, req).await,
        "logout" => logout(state, req).await,
        "update" => user(state, req).await,
        _ => ApiError::NotFound.into_response(),
    }
}

/// Routes by method and path, as API Gateway does: 404 for an unknown path, 405 for a known
/// path with another method. The dev server serves everything through this.
pub async fn route(state: &State, req: Request) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().as_str().to_owned();
    let on_path: Vec<&Route> = ROUTES.iter().filter(|r| r.path == path).collect();
    match on_path.iter().find(|r| r.method == method) {
        Some(r) => dispatch(state, r.function, req).await,
        None if on_path.is_empty() => ApiError::NotFound.into_response(),
        None => {
            let allow = on_path
                .iter()
                .map(|r| r.method)
                .collect::<Vec<_>>()
                .join(", ");
            let mut resp = ApiError::MethodNotAllowed.into_response();
            if let Ok(v) = allow.parse() {
                resp.headers_mut().insert("allow", v);
            }
            resp
        }
    }
}

/// Who is asking, for the audit log: API Gateway's request id and the client's address.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: String,
    pub source_ip: String,
}

/// A span carrying the request id and source IP, so every audit line inside names them.
fn span(req: &Request, route: &'static str) -> tracing::Span {
    let meta = RequestMeta::of(req);
    tracing::info_span!("request", route, request_id = %meta.request_id, source_ip = %meta.source_ip)
}

impl RequestMeta {
    fn of(req: &Request) -> Self {
        match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => Self {
                request_id: ctx.request_id.clone().unwrap_or_default(),
                source_ip: ctx.http.source_ip.clone().unwrap_or_default(),
            },
            _ => Self::default(),
        }
    }
}

fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Size, media type and syntax checks, then the body's schema. The result is a JSON object
/// known to match `body`.
fn read_json(state: &State, req: &Request, body: schema::Body) -> Result<Value, ApiError> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    if !is_json(req.headers()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|_| ApiError::MalformedJson)?;
    state.schemas.validate(body, &value)?;
    Ok(value)
}

/// True when the request carries a body at all.
fn has_body(req: &Request) -> bool {
    !body_bytes(req).is_empty()
}

/// `Authorization: <jwt>` (as the Flask service took it) or `Authorization: Bearer <jwt>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    let token = match v.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None => v,
    };
    (!token.is_empty()).then_some(token)
}

fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("session-token")?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Checks both credentials of a request.
async fn caller(state: &State, req: &Request) -> Result<Caller, ApiError> {
    maybe_caller(state, req)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// Checks both credentials; `None` for a valid JWT whose session has already ended.
async fn maybe_caller(state: &State, req: &Request) -> Result<Option<Caller>, ApiError> {
    let headers = req.headers();
    let (Some(jwt), Some(st)) = (bearer(headers), session_token(headers)) else {
        return Err(ApiError::Unauthorized);
    };
    service::session_of(
        state.store.as_ref(),
        &state.keys,
        &state.settings,
        jwt,
        st,
        state.clock.now(),
    )
    .await
}

/// The public view of a user: never the password hash.
fn user_json(u: &UserRecord) -> Value {
    let mut v = json!({
        "_id": u.id.to_wire(),
        "first_name": u.first_name.as_str(),
        "last_name": u.last_name.as_str(),
        "phone": u.phone.as_str(),
    });
    if let (Some(m), Some(obj)) = (&u.middle_name, v.as_object_mut()) {
        obj.insert(
            "middle_name".to_owned(),
            Value::String(m.as_str().to_owned()),
        );
    }
    v
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .body(Body::Text(text))
            .unwrap_or_else(|_| ApiError::Internal.into_response()),
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            ApiError::Internal.into_response()
        }
    }
}

fn no_content() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("cache-control", "no-store")
        .body(Body::Empty)
        .unwrap_or_else(|_| ApiError::Internal.into_response())
}

fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(ApiError::into_response)
}

/// Reads an optional string field of a schema-checked body.
fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

fn method_is(req: &Request, m: &Method) -> bool {
    req.method() == m
}
