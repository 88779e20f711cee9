//! The dev server's page at `/app/`: sign up, log in with a password and a second factor,
//! enrol an authenticator app, register a passkey and sign in with it, in plain HTML and JS
//! over the TypeScript client (`clients/typescript`). The page is built into this binary; the
//! client's compiled modules (`npm run build` there) and `openapi-fetch` are read from that
//! directory (`DEV_SERVER_CLIENT_DIR`, default the repository's), so the page always runs
//! the client as built from `openapi.yaml`. Same origin as the API: no CORS, and passkeys
//! work at `http://localhost:<port>/app/` (the dev server's default relying party).

use std::path::{Path, PathBuf};

use http_body_util::Full;
use hyper::{
    StatusCode,
    body::Bytes,
    header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue},
};

use crate::Resp;

const PAGE: &str = include_str!("../page/index.html");

/// Inline scripts (the import map, the page's module) and styles; everything else from here.
const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Where the TypeScript client lives.
fn client_dir() -> PathBuf {
    std::env::var_os("DEV_SERVER_CLIENT_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript"),
        PathBuf::from,
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Resp {
    let mut resp = hyper::Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn not_built(what: &str) -> Resp {
    reply(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        Bytes::from(format!(
            "{what} is not built: run `npm ci && npm run build` in clients/typescript (or set DEV_SERVER_CLIENT_DIR)\n"
        )),
    )
}

/// The answer for `path` under `/app`, or `None` for any other path (the API's).
pub async fn serve(method: &hyper::Method, path: &str) -> Option<Resp> {
    let rest = path.strip_prefix("/app")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    if method != hyper::Method::GET {
        return Some(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"GET only\n"),
        ));
    }
    let file = match rest {
        "" | "/" | "/index.html" => {
            let mut resp = reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(PAGE.as_bytes()),
            );
            resp.headers_mut()
                .insert("content-security-policy", HeaderValue::from_static(CSP));
            return Some(resp);
        }
        "/client/openapi-fetch.mjs" => {
            client_dir().join("node_modules/openapi-fetch/dist/index.mjs")
        }
        other => match other
            .strip_prefix("/client/")
            .and_then(|f| f.strip_suffix(".js"))
        {
            // One flat directory of modules: a name, never a path.
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                client_dir().join("dist/src").join(format!("{name}.js"))
            }
            _ => {
                return Some(reply(
                    StatusCode::NOT_FOUND,
                    "text/plain; charset=utf-8",
                    Bytes::from_static(b"not found\n"),
                ));
            }
        },
    };
    Some(match tokio::fs::read(&file).await {
        Ok(body) => reply(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            Bytes::from(body),
        ),
        Err(_) => not_built("the TypeScript client"),
    })
}
