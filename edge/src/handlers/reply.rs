//! Building responses: JSON bodies, 204, and the public view of a user.

use lambda_http::{Body, Response, http::StatusCode};
use serde::Serialize;

use crate::error::ApiError;
use domain::store::UserRecord;

/// `{"$oid": "<24 hex>"}`, the extended-JSON id the Flask service spoke.
#[derive(Serialize)]
pub(super) struct Oid {
    #[serde(rename = "$oid")]
    pub oid: String,
}

impl Oid {
    pub fn of(id: &domain::types::UserId) -> Self {
        Self { oid: id.to_hex() }
    }
}

/// The public view of a user: never the password hash.
#[derive(Serialize)]
pub(super) struct UserView<'a> {
    #[serde(rename = "_id")]
    id: Oid,
    first_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    middle_name: Option<&'a str>,
    last_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    /// Set by operators (roles, a tenant); absent while empty, as in the seed's answers.
    #[serde(skip_serializing_if = "metadata_empty")]
    app_metadata: &'a serde_json::Map<String, serde_json::Value>,
    /// Set by the user; absent while empty.
    #[serde(skip_serializing_if = "metadata_empty")]
    user_metadata: &'a serde_json::Map<String, serde_json::Value>,
    /// The identity providers linked (their issuers); absent while none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    identities: Vec<IdentityView<'a>>,
}

/// A linked provider's identity: the issuer and when it was linked (never the subject).
#[derive(Serialize)]
pub(super) struct IdentityView<'a> {
    issuer: &'a str,
    linked_at: Option<i64>,
}

fn metadata_empty(m: &&serde_json::Map<String, serde_json::Value>) -> bool {
    m.is_empty()
}

impl<'a> From<&'a UserRecord> for UserView<'a> {
    fn from(u: &'a UserRecord) -> Self {
        Self {
            id: Oid::of(&u.id),
            first_name: u.first_name.as_str(),
            middle_name: u.middle_name.as_ref().map(|m| m.as_str()),
            last_name: u.last_name.as_str(),
            phone: u.phone().map(|p| p.as_str()),
            email: u.email().map(|e| e.as_str()),
            app_metadata: u.app_metadata.as_map(),
            user_metadata: u.user_metadata.as_map(),
            identities: u
                .identifiers
                .iter()
                .filter_map(|r| match &r.identifier {
                    domain::identity::Identifier::Federated { provider, .. } => {
                        Some(IdentityView {
                            issuer: provider,
                            linked_at: r.verified_at,
                        })
                    }
                    _ => None,
                })
                .collect(),
        }
    }
}

/// A JSON response that no cache may keep.
pub(super) fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
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

/// An HTML page (the emailed link's): no cache, no framing, and only its own inline script.
pub(super) fn html(status: StatusCode, page: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "no-referrer")
        .header(
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        )
        .body(Body::Text(page.to_owned()))
        .unwrap_or_else(|_| ApiError::Internal.into_response())
}

/// 204 No Content.
pub(super) fn no_content() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("cache-control", "no-store")
        .body(Body::Empty)
        .unwrap_or_else(|_| ApiError::Internal.into_response())
}
