use lambda_http::{Body, Request, Response};

use tracing::Instrument;

use super::{caller, has_body, no_content, read_json, respond, span, str_field};
use crate::{schema, service, state::State};

/// POST /logout: 204, and the session (or with `{"scope": "global"}` every session of the
/// user) is dead at once.
pub async fn logout(state: &State, req: Request) -> Response<Body> {
    let span = span(&req, "logout");
    respond(async {
        let caller = caller(state, &req).await?;
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
