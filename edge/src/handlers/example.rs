//! GET /example/whoami: what another service of a serverless app looks like when it trusts
//! this issuer. API Gateway's JWT authorizer has already checked the token (RS256 signature
//! against our JWKS, `iss`, `aud`, `exp`, `nbf`, `iat`) before the function runs, and hands
//! over the claims; the function holds no secret and reads no database. It therefore accepts a
//! token until its `exp` even after logout: only routes that check the session see that at once.

use std::collections::BTreeMap;

use lambda_http::{Body, Request, RequestExt, Response, request::RequestContext};
use serde::Serialize;

use crate::error::ApiError;

#[derive(Serialize)]
struct Whoami<'a> {
    /// The user id (`sub`), as the rest of the API spells ids.
    user_id: super::reply::Oid,
    /// Every claim the authorizer passed on, as it passed them (strings).
    claims: BTreeMap<&'a str, &'a str>,
}

/// The caller as the JWT authorizer verified them; 401 when the request carries no verified
/// claims (the function reached without the authorizer in front fails closed).
pub(super) fn whoami(req: &Request) -> Result<Response<Body>, ApiError> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims),
        _ => None,
    };
    let Some((claims, user)) = claims.and_then(|c| {
        let sub = c.get("sub")?;
        Some((c, domain::types::UserId::parse_hex(sub)?))
    }) else {
        tracing::warn!("example route reached without JWT authorizer claims");
        return Err(ApiError::Unauthorized);
    };
    Ok(super::reply::json(
        lambda_http::http::StatusCode::OK,
        &Whoami {
            user_id: super::reply::Oid::of(&user),
            claims: claims
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        },
    ))
}
