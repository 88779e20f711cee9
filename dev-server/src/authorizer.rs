//! API Gateway's JWT authorizer, done here in small for the routes the template puts behind
//! it ([`Authorization::Jwt`]), so the example protected route works locally as deployed: the
//! token from `Authorization` (bare or after `Bearer `), RS256 only, its signature checked
//! with this issuer's public keys and its `iss`, `aud`, `exp`, `nbf` and `iat` checked; the
//! claims handed on as `requestContext.authorizer.jwt.claims` (strings, as API Gateway does).
//! No session is looked up: like any JWT-only verifier, it accepts a token until `exp`.

use std::collections::HashMap;

use domain::{auth::token::TokenKeys, service::Client};
use edge::State;
use hyper::{HeaderMap, header::AUTHORIZATION};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
};

/// The authorizer context for a request whose token verifies; `None` means API Gateway's 401.
/// `api_url` is the URL the request came in on where the issuer follows it (`HOST=0.0.0.0`).
pub fn authorize(
    state: &State,
    headers: &HeaderMap,
    api_url: Option<String>,
) -> Option<ApiGatewayRequestAuthorizer> {
    let raw = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let token = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
    if !TokenKeys::is_rs256(token) {
        return None;
    }
    // The issuer and keys the handlers check with, for a request without API Gateway's context.
    let client = Client {
        api_url,
        ..Client::default()
    };
    let cx = state.ctx(&client);
    let claims = cx
        .tokens()
        .check(
            token,
            u64::try_from(cx.now).unwrap_or_default(),
            cx.issuer(),
        )
        .ok()?;
    let claims: HashMap<String, String> = [
        ("sub", claims.sub),
        ("sid", claims.sid),
        ("iss", claims.iss),
        ("aud", claims.aud),
        ("iat", claims.iat.to_string()),
        ("nbf", claims.nbf.to_string()),
        ("exp", claims.exp.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = claims;
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    Some(authorizer)
}
