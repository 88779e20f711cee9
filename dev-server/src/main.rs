//! Local HTTP server for client development: the four Lambda handlers behind one port, with
//! MongoDB when `MONGO_URI` is set and the embedded store otherwise. What API Gateway does in
//! AWS is done here in small: CORS for a browser app on another port (`cors`), time and
//! connection limits so slow or idle clients cannot hold the server (`limits`), and the JWT
//! authorizer in front of the example protected route (`authorizer`); and a page that uses
//! the API through the TypeScript client (`page`, at `/app/`).

mod authorizer;
mod cors;
mod devlog;
mod limits;
mod page;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use domain::config::{JwtAlgorithm, Vars};
use edge::{
    ApiError, State,
    error::PROBLEM_JSON,
    handlers::{self, MAX_BODY_BYTES},
    routes::{Authorization, Endpoint},
    state::StoreKind,
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    StatusCode,
    body::{Bytes, Incoming},
    header::{CONNECTION, CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use lambda_http::{
    Body, RequestExt, aws_lambda_events::apigw::ApiGatewayV2httpRequestContext,
    request::RequestContext,
};
use tokio::{net::TcpListener, sync::Semaphore};

use crate::{cors::Cors, limits::Limits};

pub(crate) type Resp = hyper::Response<Full<Bytes>>;

fn into_hyper(resp: lambda_http::Response<Body>) -> Resp {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

/// What every connection shares.
struct App {
    state: State,
    cors: Cors,
    limits: Limits,
    /// Serving on every interface with no `JWT_ISSUER`: the issuer is the URL each request
    /// came in on (`http://` + its `Host`), so a phone on the LAN gets tokens naming the
    /// address it used.
    issuer_from_host: bool,
}

/// `http://` + the request's `Host`, when it is a plain `host[:port]`.
fn url_of(headers: &hyper::HeaderMap) -> Option<String> {
    let host = headers.get(hyper::header::HOST)?.to_str().ok()?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    plain.then(|| format!("http://{host}"))
}

/// A problem+json body in the shape of `edge::ApiError`'s, for what only the dev server
/// answers.
fn problem_body(status: StatusCode, code: &str, title: &str, detail: &str) -> String {
    serde_json::json!({
        "type": format!("https://user-api.dev/problems/{}", code.replace('_', "-")),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    })
    .to_string()
}

fn problem(status: StatusCode, code: &str, title: &str, detail: &str) -> Resp {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(problem_body(
        status, code, title, detail,
    ))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp
}

/// What a connection over the cap gets before it is closed: a whole HTTP/1.1 503 written
/// straight to the socket, since no hyper connection is started for it.
fn over_capacity_bytes() -> Bytes {
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let body = problem_body(
        status,
        "too_many_connections",
        "Too many connections",
        "the dev server is serving DEV_SERVER_MAX_CONNECTIONS connections already",
    );
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {PROBLEM_JSON}\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// One request: a CORS preflight is answered here, anything else goes to the handlers, and
/// the answer gets CORS headers for an allowed origin.
async fn serve(
    app: Arc<App>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    seq: u64,
) -> Result<Resp, Infallible> {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let user = devlog::user_of(req.headers());
    let resp = if let Some(resp) = app.cors.preflight(&req) {
        resp
    } else if let Some(resp) = page::serve(&method, &path).await {
        resp
    } else {
        let origin = app.cors.allowed_origin(req.headers());
        let mut resp = handle(&app, req, peer, seq).await;
        app.cors.decorate(resp.headers_mut(), origin);
        resp
    };
    devlog::request(
        &method,
        &path,
        resp.status(),
        started.elapsed(),
        user.as_deref(),
    );
    Ok(resp)
}

/// Requests served by this process.
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A random id for this run of the dev server.
fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    })
}

async fn handle(app: &App, req: hyper::Request<Incoming>, peer: SocketAddr, seq: u64) -> Resp {
    let (parts, body) = req.into_parts();
    // Read one byte past the limit so the handler sees an oversized body and answers 413.
    let read = Limited::new(body, MAX_BODY_BYTES + 1).collect();
    let bytes = match tokio::time::timeout(app.limits.body_timeout, read).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => return into_hyper(ApiError::PayloadTooLarge(MAX_BODY_BYTES).into_response()),
        Err(_) => {
            // The rest of the body may still come; closing is the only way to stop reading it.
            let mut resp = problem(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request timeout",
                "the request body did not arrive in time",
            );
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(s) => Body::Text(s),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    // Unique per request and per run: the SMS idempotency claim is keyed on it (and outlives
    // a restart when the store is MongoDB), so a keep-alive connection's second request must
    // not look like a retry of its first.
    ctx.request_id = Some(format!(
        "dev-{}-{seq}-{}",
        run_id(),
        REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    ctx.http.method = parts.method.clone();
    ctx.http.path = Some(parts.uri.path().to_owned());
    ctx.http.source_ip = Some(peer.ip().to_string());
    if app.issuer_from_host {
        ctx.domain_name = url_of(&parts.headers);
    }
    let endpoint = Endpoint::find(parts.method.as_str(), parts.uri.path()).ok();
    if let Some(e) = endpoint.filter(|e| e.authorization() == Authorization::Jwt) {
        let scopes = e.scopes();
        match authorizer::authorize(&app.state, &parts.headers, ctx.domain_name.clone(), scopes) {
            Ok(verified) => ctx.authorizer = Some(verified),
            Err(authorizer::Refused::Unauthorized) => return unauthorized_by_gateway(),
            Err(authorizer::Refused::Forbidden) => return forbidden_by_gateway(),
        }
    }
    let req = lambda_http::Request::from_parts(parts, body)
        .with_request_context(RequestContext::ApiGatewayV2(ctx));
    into_hyper(handlers::route(&app.state, req).await)
}

/// API Gateway's own answer when a valid token lacks a scope the route requires.
fn forbidden_by_gateway() -> Resp {
    let mut resp =
        hyper::Response::new(Full::new(Bytes::from_static(br#"{"message":"Forbidden"}"#)));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// API Gateway's own answer when its JWT authorizer refuses a token.
fn unauthorized_by_gateway() -> Resp {
    let mut resp = hyper::Response::new(Full::new(Bytes::from_static(
        br#"{"message":"Unauthorized"}"#,
    )));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    resp
}

/// Dev-only convenience: without keys configured, make random ones for this run so the
/// server starts with one command. Lambda functions never do this.
fn dev_vars() -> Vars {
    let mut vars = Vars::from_env();
    // Many clients at once, unlike a Lambda instance.
    if vars.get("MONGO_MAX_POOL_SIZE").is_none() {
        vars.set("MONGO_MAX_POOL_SIZE", "16");
    }
    if vars.get("SECRET_ID").is_some() {
        return vars;
    }
    let rs256 = JwtAlgorithm::from_vars(&vars) == Ok(JwtAlgorithm::Rs256);
    if rs256 && vars.get("JWT_PRIVATE_KEY").is_none() {
        match ephemeral_rsa_pem() {
            Ok(pem) => {
                vars.set("JWT_PRIVATE_KEY", pem);
                eprintln!(
                    "dev-server: JWT_PRIVATE_KEY not set; using a random 2048-bit RSA key for this run (tokens end with it)"
                );
            }
            Err(e) => eprintln!("dev-server: could not make an RSA key: {e}"),
        }
    }
    let names: &[&str] = if rs256 {
        &["SESSION_SECRET_KEY"]
    } else {
        &["JWT_SECRET_KEY", "SESSION_SECRET_KEY"]
    };
    for name in names {
        if vars.get(name).is_none() {
            let mut key = [0u8; 32];
            if getrandom::fill(&mut key).is_ok() {
                vars.set(
                    name,
                    key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                );
                eprintln!(
                    "dev-server: {name} not set; using a random key for this run (tokens end with it)"
                );
            }
        }
    }
    vars
}

/// The operating system's random source for the `rsa` crate.
struct OsRng;

impl rsa::rand_core::TryRng for OsRng {
    type Error = getrandom::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        getrandom::u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        getrandom::u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dst)
    }
}

impl rsa::rand_core::TryCryptoRng for OsRng {}

/// A fresh 2048-bit RSA key as PKCS#8 PEM, what `openssl genpkey` would make (ring, which
/// signs, cannot generate RSA keys).
fn ephemeral_rsa_pem() -> Result<String, Box<dyn std::error::Error>> {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::UnwrapErr(OsRng), 2048)?;
    Ok(key.to_pkcs8_pem(LineEnding::LF)?.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    devlog::init();
    let mut vars = dev_vars();
    let limits = Limits::from_vars(&vars)?;
    let cors = Cors::from_setting(vars.get("CORS_ALLOWED_ORIGINS"))?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let listener = TcpListener::bind((host.as_str(), port)).await?;
    // The issuer is this server's own URL, as a deployed API's is its https URL, so the
    // discovery document points at a JWKS a verifier can fetch. On every interface
    // (0.0.0.0, ::) there is no one URL: each request's issuer is the URL it came in on.
    let everywhere = listener.local_addr()?.ip().is_unspecified();
    let issuer_from_host = everywhere && vars.get("JWT_ISSUER").is_none();
    if vars.get("JWT_ISSUER").is_none() && !everywhere {
        vars.set("JWT_ISSUER", format!("http://{}", listener.local_addr()?));
    }
    // Passkeys on by default, for pages served from this server at http://localhost:<port>
    // (a browser allows WebAuthn on plain http only for localhost).
    if vars.get("PASSKEY_RP_ID").is_none() {
        vars.set("PASSKEY_RP_ID", "localhost");
        if vars.get("PASSKEY_ORIGINS").is_none() {
            let port = listener.local_addr()?.port();
            vars.set("PASSKEY_ORIGINS", format!("http://localhost:{port}"));
        }
    }
    let wiring = edge::state::Wiring::ALL.with_passkeys(relying_party::from_vars);
    let state = State::load_dev(&vars, wiring).await?;
    let store = match state.store_kind {
        StoreKind::Mongo => format!("MongoDB (database {})", state.settings.db_name),
        StoreKind::Embedded => "embedded in-memory store (set MONGO_URI for MongoDB)".to_owned(),
    };
    let v = &state.verification;
    // One line: tests (and scripts) read the first line and may close the pipe after it.
    println!(
        "dev-server listening on http://{} using {store}; phone verification {} (REQUIRE_PHONE_VERIFICATION), SMS sender {}; email verification {} (REQUIRE_EMAIL_VERIFICATION), email sender {}{}",
        listener.local_addr()?,
        if v.required { "required" } else { "off" },
        v.sender.as_ref().map_or("none", |s| s.name()),
        if state.email.required() {
            "required"
        } else {
            "off"
        },
        state.email.sender.as_ref().map_or("none", |s| s.name()),
        if issuer_from_host {
            "; on every interface: tokens name the address each request came in on (http://<that address>:PORT); set JWT_ISSUER to name one"
        } else {
            ""
        }
    );
    let app = Arc::new(App {
        state,
        cors,
        limits,
        issuer_from_host,
    });
    if app.state.relay.is_some() {
        // The drain the template schedules for Lambda, every 10 s here.
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                app.state.drain_events(Duration::from_secs(5)).await;
            }
        });
    }
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let over_capacity = over_capacity_bytes();
    let mut seq = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, say: give connections time to close, don't spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Taken after accept, so a connection over the cap is answered and closed now instead
        // of waiting unseen in the listen backlog.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: at DEV_SERVER_MAX_CONNECTIONS");
            // A fresh socket's send buffer takes this without blocking; if not, it just closes.
            let _ = stream.try_write(&over_capacity);
            continue;
        };
        seq += 1;
        let app = app.clone();
        tokio::spawn(async move {
            let header_timeout = app.limits.header_timeout;
            let svc = service_fn(move |req| serve(app.clone(), req, peer, seq));
            // The header timeout runs whenever hyper waits for a request head, so it also
            // closes keep-alive connections idle that long.
            if let Err(e) = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
}
