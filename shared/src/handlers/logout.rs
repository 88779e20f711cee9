use lambda_http::{Body, Request, Response};

use super::{RequestMeta, caller, has_body, no_content, read_json, respond, str_field};
use crate::{schema, service, state::State};

/// POST /logout: 204, and the session (or with `{"scope": "global"}` every session of the
/// user) is dead at once.
pub async fn logout(state: &State, req: Request) -> Response<Body> {
    let meta = RequestMeta::of(&req);
    respond(async {
        let caller = caller(state, &req).await?;
        let global = if has_body(&req) {
            let body = read_json(state, &req, schema::Body::Logout)?;
            str_field(&body, "scope") == Some("global")
        } else {
            false
        };
        service::logout(state.store.as_ref(), &caller, global).await?;
        tracing::info!(target: "audit", event = "logout", outcome = "success", global, user_id = %caller.user_id, request_id = %meta.request_id, source_ip = %meta.source_ip);
        Ok(no_content())
    }
    .await)
}
