//! POST /logout.

use lambda_http::{Body, Response};
use serde::Deserialize;

use super::{
    extract::{Input, maybe_caller},
    reply,
};
use crate::{error::ApiError, schema};
use domain::service::{self, Ctx};

/// The optional body, as `edge/schemas/logout.json` admits it.
#[derive(Deserialize, Default)]
struct LogoutBody {
    #[serde(default)]
    scope: Scope,
}

#[derive(Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Scope {
    #[default]
    Current,
    Global,
}

/// 204, and the session (or with `{"scope": "global"}` every session of the user) is dead at
/// once. Repeating it with the same tokens is also 204 (idempotent for retries); the tokens
/// get 401 on every other route.
pub(super) async fn logout(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    // The body is checked first: a malformed one is a 400 whether or not the session lives.
    let body = if input.has_body() {
        input.body::<LogoutBody>(schema::Body::Logout)?
    } else {
        LogoutBody::default()
    };
    let Some(caller) = maybe_caller(cx, input.req).await? else {
        tracing::info!(target: "audit", event = "logout", outcome = "already_ended");
        return Ok(reply::no_content());
    };
    let global = body.scope == Scope::Global;
    service::logout(cx, &caller, global).await?;
    tracing::info!(target: "audit", event = "logout", outcome = "success", global, user_id = %caller.user_id);
    Ok(reply::no_content())
}
