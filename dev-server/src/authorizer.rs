//! API Gateway's JWT authorizer, done here in small for the routes the template puts behind
//! it ([`Authorization::Jwt`]), so the example protected route works locally as deployed: the
//! token from `Authorization` (bare or after `Bearer `), RS256 only, its signature checked
//! with this issuer's public keys and its `iss`, `aud`, `exp`, `nbf` and `iat` checked; the
//! claims handed on as `requestContext.authorizer.jwt.claims` (strings, as API Gateway does).
//! A route with scopes (`Endpoint::scopes`) needs one of them in the token's `scope` claim,
//! else API Gateway's 403.
//! No session is looked up: like any JWT-only verifier, it accepts a token until `exp`.

use std::collections::HashMap;

use domain::{auth::token::TokenKeys, service::Client};
use edge::State;
use hyper::{HeaderMap, header::AUTHORIZATION};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
};

/// Why the authorizer refused a request.
pub enum Refused {
    /// No token, or one that does not verify: API Gateway's 401.
    Unauthorized,
    /// A valid token without a scope the route requires: API Gateway's 403.
    Forbidden,
}

/// The authorizer context for a request whose token verifies and carries one of `scopes`
/// (when the route names any). `api_url` is the URL the request came in on where the issuer
/// follows it (`HOST=0.0.0.0`).
pub fn authorize(
    state: &State,
    headers: &HeaderMap,
    api_url: Option<String>,
    scopes: &[&str],
) -> Result<ApiGatewayRequestAuthorizer, Refused> {
    let verified = verify(state, headers, api_url).ok_or(Refused::Unauthorized)?;
    let granted = verified
        .jwt
        .as_ref()
        .and_then(|j| j.claims.get("scope"))
        .map(String::as_str)
        .unwrap_or_default();
    if !scopes.is_empty() && !granted.split(' ').any(|s| scopes.contains(&s)) {
        return Err(Refused::Forbidden);
    }
    Ok(verified)
}

fn verify(
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
    // Strings pass as they are; anything else as its JSON text, as API Gateway does.
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut extra: Vec<(String, String)> = claims
        .extra
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    if !claims.roles.is_empty() {
        extra.push((
            "roles".to_owned(),
            serde_json::to_string(&claims.roles).unwrap_or_default(),
        ));
    }
    let claims: HashMap<String, String> = [
        ("sub", claims.sub),
        ("sid", claims.sid),
        ("iss", claims.iss),
        ("aud", claims.aud),
        ("iat", claims.iat.to_string()),
        ("nbf", claims.nbf.to_string()),
        ("exp", claims.exp.to_string()),
        // API Gateway hands arrays on as their JSON text.
        (
            "amr",
            serde_json::to_string(&claims.amr).unwrap_or_default(),
        ),
        ("aal", claims.aal.to_string()),
        ("auth_time", claims.auth_time.to_string()),
        ("scope", claims.scope),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(extra)
    .collect();
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = claims;
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    Some(authorizer)
}
