//! Reading requests: the body (size, media type, strict JSON, schema, typed struct), the
//! credentials, and who is calling.

use lambda_http::{Body, Request, RequestExt, http::HeaderMap, request::RequestContext};
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Value};

use crate::{
    error::{ApiError, FieldError},
    schema::{self, Schemas},
};
use domain::{
    mfa::MfaMode,
    service::{self, Caller, Client, Ctx},
    types::{Invalid, Password, Phone},
};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A request and what reading it needs (opaque outside the handlers).
pub struct Input<'a> {
    pub(super) req: &'a Request,
    pub(super) schemas: &'a Schemas,
}

impl Input<'_> {
    /// The body as `T`, after the size and media-type checks, a strict JSON parse (duplicate
    /// keys refused, so a proxy and this server can never read different values) and the
    /// body's schema.
    pub fn body<T: DeserializeOwned>(&self, which: schema::Body) -> Result<T, ApiError> {
        let bytes = body_bytes(self.req);
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        if !is_json(self.req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let value = parse_strict(bytes).ok_or(ApiError::MalformedJson)?;
        self.schemas.validate(which, &value)?;
        // The schema has already checked every field's type, so this cannot fail in practice.
        serde_json::from_value(value).map_err(|_| {
            ApiError::Validation(vec![FieldError {
                path: String::new(),
                message: "body does not have the expected shape".to_owned(),
            }])
        })
    }

    /// The body as JSON after the size and media-type checks and the strict parse, with no
    /// schema: for a body whose rules the domain type states in full (an operator's
    /// `app_metadata`: `Metadata::parse_app`), so a function whose only body is that one links
    /// no JSON Schema validator (the admin function: 0.5 MB of its zip).
    pub fn json_value(&self) -> Result<serde_json::Value, ApiError> {
        let bytes = body_bytes(self.req);
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        if !is_json(self.req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_strict(bytes).ok_or(ApiError::MalformedJson)
    }

    /// True when the request carries a body at all.
    pub fn has_body(&self) -> bool {
        !body_bytes(self.req).is_empty()
    }
}

/// The pairs of a URL query or form body, percent-decoded; a repeated name keeps its first
/// value.
pub(super) fn url_pairs(raw: &[u8]) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(raw) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// A parsed field, or a validation error naming where it was.
pub(super) fn field<T>(path: &str, parsed: Result<T, Invalid>) -> Result<T, ApiError> {
    parsed.map_err(|Invalid(message)| {
        ApiError::Validation(vec![FieldError {
            path: path.to_owned(),
            message: message.to_owned(),
        }])
    })
}

/// A phone as an account holds it: with verification required, `legacy` (already parsed by
/// the lenient rule, which every schema-valid phone passes) re-read strictly in E.164, and a
/// number that cannot receive a code answers its own `invalid_phone`; otherwise as it is.
pub(super) fn account_phone(cx: &Ctx<'_>, path: &str, legacy: Phone) -> Result<Phone, ApiError> {
    if !cx.verification.required {
        return Ok(legacy);
    }
    e164(cx, path, legacy.as_str())
}

/// A phone for the verification routes: always strict (a code must be able to reach it).
pub(super) fn e164(cx: &Ctx<'_>, path: &str, raw: &str) -> Result<Phone, ApiError> {
    cx.verification.parse_phone(raw).map_err(|e| {
        ApiError::InvalidPhone(vec![FieldError {
            path: path.to_owned(),
            message: e.to_string(),
        }])
    })
}

/// An email address in canonical form, or `invalid_email` naming the field: the canonical
/// form's rules (one `@`, no display name, comment or quoting, a real domain, IDNA) are more
/// than a JSON Schema can state, as with phones and passwords.
pub(super) fn email(path: &str, raw: &str) -> Result<domain::identity::Email, ApiError> {
    domain::identity::Email::parse(raw).map_err(|e| {
        ApiError::InvalidEmail(vec![FieldError {
            path: path.to_owned(),
            message: e.0.to_owned(),
        }])
    })
}

/// A new password, or why it is refused (its own problem code: the rule needs NFKC and the
/// common-password list, which no schema can state).
pub(super) fn new_password(path: &str, raw: String) -> Result<Password, ApiError> {
    Password::new(raw).map_err(|e| {
        ApiError::WeakPassword(vec![FieldError {
            path: path.to_owned(),
            message: e.to_string(),
        }])
    })
}

/// Who is calling, for audit lines and per-address limits.
pub(super) fn client_of(req: &Request) -> Client {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => Client {
            request_id: ctx.request_id.clone().unwrap_or_default(),
            source_ip: ctx.http.source_ip.clone().unwrap_or_default(),
            // API Gateway's domainName is a bare host; the dev server, serving on every
            // interface, passes the URL a request came in on whole (`http://...`).
            api_url: ctx
                .domain_name
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(|d| {
                    if d.contains("://") {
                        d.to_owned()
                    } else {
                        format!("https://{d}")
                    }
                }),
            accept_language: accept_language(req),
        },
        _ => Client {
            accept_language: accept_language(req),
            ..Client::default()
        },
    }
}

/// The `Accept-Language` header, if it is short enough to be one.
fn accept_language(req: &Request) -> Option<String> {
    req.headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 256)
        .map(str::to_owned)
}

/// Both credentials proven: 401 unless the session is live. Where second factors are
/// required (`REQUIRE_MFA=required`), a single-factor session (an account with no factor yet)
/// is refused with 403 `mfa_enrolment_required`: it may only enrol one.
pub(super) async fn caller(cx: &Ctx<'_>, req: &Request) -> Result<Caller, ApiError> {
    let caller = enrolling_caller(cx, req).await?;
    if cx.policy.mfa.mode == MfaMode::Required && caller.assurance.aal() < 2 {
        return Err(ApiError::MfaEnrolmentRequired);
    }
    Ok(caller)
}

/// Both credentials proven, at any level: the routes a single-factor session may use where
/// second factors are required (enrolling one, reading the profile).
pub(super) async fn enrolling_caller(cx: &Ctx<'_>, req: &Request) -> Result<Caller, ApiError> {
    maybe_caller(cx, req).await?.ok_or(ApiError::Unauthorized)
}

/// Both credentials checked; `None` for a valid JWT whose session has already ended.
pub(super) async fn maybe_caller(cx: &Ctx<'_>, req: &Request) -> Result<Option<Caller>, ApiError> {
    let headers = req.headers();
    let (Some(jwt), Some(st)) = (bearer(headers), session_token(headers)) else {
        return Err(ApiError::Unauthorized);
    };
    Ok(service::session_of(cx, jwt, st).await?)
}

/// `Authorization: <jwt>` (as the Flask service took it) or `Authorization: Bearer <jwt>`.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
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

/// JSON text to a value, refusing duplicate object keys at any depth (RFC 8259 leaves their
/// meaning open; I-JSON forbids them).
fn parse_strict(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Strict>(bytes).ok().map(|s| s.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON without duplicate keys")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.insert(key, v).is_some() {
                return Err(de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_strict;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for bad in [
            r#"{"phone": "1", "phone": "2"}"#,
            r#"{"_id": {"$oid": "a", "$oid": "b"}}"#,
            r#"[{"a": 1, "a": 1}]"#,
        ] {
            assert!(parse_strict(bad.as_bytes()).is_none(), "{bad}");
        }
        let ok = parse_strict(br#"{"a": [1, 2.5, null, true, "x"], "b": {"a": 1}}"#);
        assert_eq!(
            ok,
            Some(serde_json::json!({"a": [1, 2.5, null, true, "x"], "b": {"a": 1}}))
        );
    }
}
