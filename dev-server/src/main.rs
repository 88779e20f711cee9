//! Local HTTP server for client development: the four Lambda handlers behind one port, with
//! MongoDB when `MONGO_URI` is set and the embedded store otherwise.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use lambda_http::{
    Body, RequestExt, aws_lambda_events::apigw::ApiGatewayV2httpRequestContext,
    request::RequestContext,
};
use shared::{
    ApiError, State,
    config::{JwtAlgorithm, Vars},
    handlers::{self, MAX_BODY_BYTES},
    state::StoreKind,
};
use tokio::net::TcpListener;

type Resp = hyper::Response<Full<Bytes>>;

fn into_hyper(resp: lambda_http::Response<Body>) -> Resp {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

async fn serve(
    state: Arc<State>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    seq: u64,
) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    // Read one byte past the limit so the handler sees an oversized body and answers 413.
    let bytes = match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Ok(into_hyper(
                ApiError::PayloadTooLarge(MAX_BODY_BYTES).into_response(),
            ));
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
    ctx.request_id = Some(format!("dev-{seq}"));
    ctx.http.method = parts.method.clone();
    ctx.http.path = Some(parts.uri.path().to_owned());
    ctx.http.source_ip = Some(peer.ip().to_string());
    let req = lambda_http::Request::from_parts(parts, body)
        .with_request_context(RequestContext::ApiGatewayV2(ctx));
    Ok(into_hyper(handlers::route(&state, req).await))
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
    let key = rsa::PrivateKey::new(&mut OsRng, 2048)?;
    Ok(key.to_pkcs8_pem(LineEnding::LF)?.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::telemetry::init();
    let state = Arc::new(State::load(&dev_vars(), false).await?);
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let listener = TcpListener::bind((host.as_str(), port)).await?;
    let store = match state.store_kind {
        StoreKind::Mongo => format!("MongoDB (database {})", state.settings.db_name),
        StoreKind::Embedded => "embedded in-memory store (set MONGO_URI for MongoDB)".to_owned(),
    };
    println!(
        "dev-server listening on http://{} using {store}",
        listener.local_addr()?
    );
    let mut seq = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        seq += 1;
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| serve(state.clone(), req, peer, seq));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
