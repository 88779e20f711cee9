use lambda_http::{Body, Request, Response};

use tracing::Instrument;

use super::{has_body, maybe_caller, no_content, read_json, respond, span, str_field};
use crate::{schema, service, state::State};

/// POST /logout: 204, and the session (or with `{"scope": "global"}` every session of the
/// user) is dead at once. Repeating it with the same tokens is also 204 (idempotent for
/// retries); the tokens get 401 on every other route.
pub async fn logout(state: &State, req: Request) -> Response<Body> {
    let span = span(&req, "logout");
    respond(async {
        let Some(caller) = maybe_caller(state, &req).await? else {
            tracing::info!(target: "audit", event = "logout", outcome = "already_ended");
            return Ok(no_content());
        };
        let global = if has_body(&req) {
            let body = read_json(state, &req, schema::Body::Logout)?;
            str_field(&body, "scope") == Some("global")
        } else {
            false
        };
        service::logout(state.store.as_ref(), &caller, global).await?;
        tracing::info!(target: "audit", event = "logout", outcome = "success", global, user_id = %caller.user_id);
        Ok(no_content())
    }
    .instrument(span)
    .await)
}
