//! CORS for the dev server, so a browser app on another local port can call it. In AWS, API
//! Gateway answers preflight and adds these headers (template.yaml `CorsConfiguration`); the
//! shared handlers add none, so this lives here and not in them.
//!
//! Only listed origins get CORS headers, and always their own origin back, never `*`: clients
//! send credentials headers (Authorization, Session-Token). A preflight from an unlisted origin
//! gets 403 problem+json without CORS headers: the browser refuses the call either way, and a
//! developer reading the response learns which variable to set.

use hyper::{
    HeaderMap, Method, Request, StatusCode,
    header::{
        ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
        ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
        HeaderValue, ORIGIN, VARY,
    },
};

use crate::{Resp, problem};

/// Browser origins allowed by default: the template's `CorsAllowedOrigins` default.
pub const DEFAULT_ORIGINS: &str = "http://localhost:3000";
/// What a preflight may ask for.
const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "authorization, content-type, session-token";
/// Seconds a browser may cache a preflight answer (as the template's `MaxAge`).
const MAX_AGE: &str = "600";
/// Response headers a page may read besides the CORS-safelisted ones (429 and 503 carry it).
const EXPOSE_HEADERS: &str = "retry-after";

/// The allowed origins (`CORS_ALLOWED_ORIGINS`).
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// Parses a comma-separated list of origins (`scheme://host[:port]`); blanks are skipped and
    /// a trailing `/` is dropped, as browsers never send one. `*` is refused: the origin is
    /// always echoed, never wildcarded.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let origin = origin.trim_end_matches('/');
            if origin == "*" {
                return Err(
                    "CORS_ALLOWED_ORIGINS: `*` is not supported; list the origins instead".into(),
                );
            }
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(format!(
                    "CORS_ALLOWED_ORIGINS: `{origin}` is not an origin like http://localhost:3000"
                ));
            }
            origins.push(origin.to_owned());
        }
        Ok(Self { origins })
    }

    /// The request's `Origin` when it is one of ours.
    pub fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|o| o == text)
            .then(|| origin.clone())
    }

    /// The answer to a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), or `None` for any other request.
    pub fn preflight<B>(&self, req: &Request<B>) -> Option<Resp> {
        let headers = req.headers();
        if req.method() != Method::OPTIONS
            || !headers.contains_key(ORIGIN)
            || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let mut resp = match self.allowed_origin(headers) {
            Some(origin) => {
                let mut resp = Resp::default();
                *resp.status_mut() = StatusCode::NO_CONTENT;
                let h = resp.headers_mut();
                h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                h.insert(
                    ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOW_METHODS),
                );
                h.insert(
                    ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOW_HEADERS),
                );
                h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
                resp
            }
            None => problem(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "Origin not allowed",
                "this origin is not in the dev server's CORS_ALLOWED_ORIGINS",
            ),
        };
        resp.headers_mut()
            .append(VARY, HeaderValue::from_static("origin"));
        Some(resp)
    }

    /// Adds the CORS headers to an ordinary response: `Vary: Origin` always (the answer
    /// depends on it), the allow and expose headers only for an allowed `origin`.
    pub fn decorate(&self, headers: &mut HeaderMap, origin: Option<HeaderValue>) {
        headers.append(VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = origin {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            ORIGIN,
            HeaderValue::from_str(origin).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    }

    #[test]
    fn list_is_trimmed_and_matched_exactly() {
        let cors = Cors::parse(" http://localhost:3000/ ,, https://app.example ")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cors.allowed_origin(&headers("http://localhost:3000"))
                .is_some()
        );
        assert!(
            cors.allowed_origin(&headers("https://app.example"))
                .is_some()
        );
        for other in [
            "http://localhost:3001",
            "http://localhost:3000.evil.example",
            "https://localhost:3000",
            "HTTP://LOCALHOST:3000",
            "null",
        ] {
            assert!(cors.allowed_origin(&headers(other)).is_none(), "{other}");
        }
        assert!(cors.allowed_origin(&HeaderMap::new()).is_none());
    }

    #[test]
    fn wildcard_and_non_origins_are_refused_at_start_up() {
        assert!(Cors::parse("*").is_err());
        assert!(Cors::parse("http://localhost:3000,*").is_err());
        assert!(Cors::parse("localhost:3000").is_err());
        assert!(Cors::parse("").is_ok_and(|c| c.origins.is_empty()));
    }
}
