use lambda_http::{Body, Request, Response, http::StatusCode};
use serde_json::json;

use tracing::Instrument;

use super::{json_response, read_json, respond, span, str_field};
use crate::{
    schema, service,
    state::State,
    types::{Password, Phone},
};

/// POST /login: a JWT and a session token, or one 401 for any wrong phone/password pair.
pub async fn login(state: &State, req: Request) -> Response<Body> {
    let span = span(&req, "login");
    respond(async {
        let body = read_json(state, &req, schema::Body::Login)?;
        let phone = Phone::parse(str_field(&body, "phone").unwrap_or_default(), "/phone")?;
        // Length rules belong to signup; here any string is checked against the hash, so a
        // short guess is just a wrong password.
        let password = Password::unchecked(str_field(&body, "password").unwrap_or_default().to_owned());
        let grant = service::login(
            state.store.as_ref(),
            &state.tokens(),
            &state.settings,
            phone,
            password,
            state.clock.now(),
        )
        .await;
        match &grant {
            Ok(g) => tracing::info!(target: "audit", event = "login", outcome = "success", user_id = %g.user_id),
            Err(e) => tracing::info!(target: "audit", event = "login", outcome = e.code()),
        }
        let g = grant?;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "token": g.token,
                "session_token": g.session_token,
                "token_type": "Bearer",
                "expires_in": g.expires_in,
                "user_id": g.user_id.to_wire(),
            }),
        ))
    }
    .instrument(span)
    .await)
}
