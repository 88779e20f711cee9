//! What the dev server prints while it runs. On a terminal: readable lines, one per request
//! (method, path, status, duration, user) and the audit and warning lines in plain text, for
//! a developer watching it. Otherwise (a pipe, a file, CI): the JSON lines the functions write
//! in Lambda (`edge::telemetry`), the request line included, for tools. `DEV_SERVER_LOG`
//! (`text` or `json`) overrides the choice.

use std::{
    io::IsTerminal,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use hyper::{HeaderMap, Method, StatusCode, header::AUTHORIZATION};

static READABLE: AtomicBool = AtomicBool::new(false);

/// Installs the logger: readable on a terminal, JSON otherwise.
pub fn init() {
    let readable = match std::env::var("DEV_SERVER_LOG").as_deref() {
        Ok("json") => false,
        Ok("text") => true,
        _ => std::io::stdout().is_terminal(),
    };
    READABLE.store(readable, Ordering::Relaxed);
    if readable {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .compact()
            .with_target(false)
            .try_init();
    } else {
        edge::telemetry::init();
    }
}

/// The `sub` of the access token in `Authorization`, read without verifying it: for the log
/// line only (the handlers verify it), so a developer sees whose request it was.
pub fn user_of(headers: &HeaderMap) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let raw = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let token = raw.strip_prefix("Bearer ").unwrap_or(raw);
    let claims = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    let sub = claims.get("sub")?.as_str()?;
    (sub.len() == 24 && sub.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sub.to_owned())
}

/// One line for one request.
pub fn request(
    method: &Method,
    path: &str,
    status: StatusCode,
    took: Duration,
    user: Option<&str>,
) {
    let ms = took.as_secs_f64() * 1000.0;
    let user = user.unwrap_or("-");
    if READABLE.load(Ordering::Relaxed) {
        tracing::info!("{method} {path} {} {ms:.1} ms user={user}", status.as_u16());
    } else {
        tracing::info!(target: "request", method = %method, path, status = status.as_u16(),
            duration_ms = ms, user, "request");
    }
}
