//! CORS for the dev server, so a browser app on another local port can call it. In AWS, API
//! Gateway answers preflight and adds these headers (template.yaml `CorsConfiguration`); the
//! shared handlers add none, so this lives here and not in them.
//!
//! With `CORS_ALLOWED_ORIGINS` unset, any page on this machine may call (`http://localhost`,
//! `http://127.0.0.1` or `http://[::1]`, any port: a Vite app on 5173 as much as a React app on
//! 3000); set, only the origins it lists. This is the dev server only: the template's
//! `CorsAllowedOrigins` stays an explicit list. Allowed origins always get their own origin
//! back, never `*`: clients send credentials headers (Authorization, Session-Token). A
//! preflight from another origin gets 403 problem+json without CORS headers: the browser
//! refuses the call either way, and a developer reading the response learns which variable to
//! set.

use hyper::{
    HeaderMap, Method, Request, StatusCode,
    header::{
        ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
        ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
        HeaderValue, ORIGIN, VARY,
    },
};

use crate::{Resp, problem};

/// What a preflight may ask for.
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "authorization, content-type, session-token";
/// Seconds a browser may cache a preflight answer (as the template's `MaxAge`).
const MAX_AGE: &str = "600";
/// Response headers a page may read besides the CORS-safelisted ones (429 and 503 carry it).
const EXPOSE_HEADERS: &str = "retry-after";

/// The allowed origins (`CORS_ALLOWED_ORIGINS`), or any local one.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Vec<String>,
    any_local: bool,
}

/// True for `http://localhost`, `http://127.0.0.1` and `http://[::1]`, with or without a port.
fn is_local(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let Some(port) = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .find_map(|host| rest.strip_prefix(host))
    else {
        return false;
    };
    port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            (1..=5).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok()
        })
}

impl Cors {
    /// The dev server's default: any page served from this machine over http.
    pub fn any_local() -> Self {
        Self {
            origins: Vec::new(),
            any_local: true,
        }
    }

    /// From `CORS_ALLOWED_ORIGINS` when set, else [`Cors::any_local`].
    pub fn from_setting(list: Option<&str>) -> Result<Self, String> {
        list.map_or_else(|| Ok(Self::any_local()), Self::parse)
    }

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
        Ok(Self {
            origins,
            any_local: false,
        })
    }

    /// The request's `Origin` when it is one of ours.
    pub fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        let text = origin.to_str().ok()?;
        (self.origins.iter().any(|o| o == text) || (self.any_local && is_local(text)))
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
                if self.any_local {
                    "only pages served from this machine (http://localhost, 127.0.0.1 or [::1], any port) may call; set CORS_ALLOWED_ORIGINS to list others"
                } else {
                    "this origin is not in the dev server's CORS_ALLOWED_ORIGINS"
                },
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
    fn by_default_any_page_on_this_machine_may_call_and_nothing_else() {
        let cors = Cors::from_setting(None).unwrap_or_else(|e| panic!("{e}"));
        for ok in [
            "http://localhost:3000",
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "http://[::1]:8080",
            "http://localhost",
        ] {
            assert!(cors.allowed_origin(&headers(ok)).is_some(), "{ok}");
        }
        for other in [
            "http://localhost:3000.evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io:3000",
            "http://localhost:99999",
            "http://localhost:",
            "http://localhost:30a0",
            "https://app.example",
            "http://192.168.1.20:3000",
            "null",
        ] {
            assert!(cors.allowed_origin(&headers(other)).is_none(), "{other}");
        }
        // A list replaces the default.
        let listed =
            Cors::from_setting(Some("https://app.example")).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            listed
                .allowed_origin(&headers("http://localhost:5173"))
                .is_none()
        );
    }

    #[test]
    fn wildcard_and_non_origins_are_refused_at_start_up() {
        assert!(Cors::parse("*").is_err());
        assert!(Cors::parse("http://localhost:3000,*").is_err());
        assert!(Cors::parse("localhost:3000").is_err());
        assert!(Cors::parse("").is_ok_and(|c| c.origins.is_empty()));
    }
}
