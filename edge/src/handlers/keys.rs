//! GET /.well-known/jwks.json and GET /.well-known/openid-configuration: what other services
//! (API Gateway's JWT authorizer among them) need to verify this issuer's tokens without
//! sharing a secret. Public, cacheable, no database.

use lambda_http::{Body, Response, http::StatusCode};
use serde_json::Value;

use crate::error::ApiError;
use domain::{auth::jwks, service::Ctx};

/// A public JSON document that caches may keep for [`jwks::CACHE_CONTROL`].
fn public_json(body: &Value) -> Result<Response<Body>, ApiError> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("cache-control", jwks::CACHE_CONTROL)
        .body(Body::Text(body.to_string()))
        .map_err(|_| ApiError::Internal)
}

/// The current, next (pending) and previous public keys.
pub(super) async fn jwks(cx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    public_json(&cx.tokens().jwks())
}

/// Issuer, `jwks_uri` and the signing algorithm.
pub(super) async fn openid_configuration(cx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let tokens = cx.tokens();
    public_json(&jwks::openid_configuration(
        cx.issuer(),
        &[tokens.algorithm()],
    ))
}
