//! DELETE /user: a user deletes their own account.

use lambda_http::{Body, Response};
use serde::Deserialize;

use super::{
    extract::{Input, maybe_caller},
    reply,
};
use crate::{error::ApiError, schema};
use domain::{
    service::{self, Ctx},
    types::Password,
};

/// The body, as `edge/schemas/delete_user.json` admits it.
#[derive(Deserialize)]
struct DeleteBody {
    current_password: String,
}

/// 204 once the account and everything kept about it is gone. A retry with the same tokens
/// after a success (a client that timed out) finds the session gone with its account and is
/// 204 again, as logout is; a wrong password is 403 and counts towards the account's lock.
pub(super) async fn delete_user(
    cx: &Ctx<'_>,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    // Credentials before the body, as on every authenticated route.
    let Some(caller) = maybe_caller(cx, input.req).await? else {
        // A valid JWT whose session is gone: the account was deleted (or the session ended).
        return match service::account_of_ended_session(cx, jwt_of(input)?).await? {
            None => Ok(reply::no_content()),
            Some(_) => Err(ApiError::Unauthorized),
        };
    };
    let body = input.body::<DeleteBody>(schema::Body::DeleteUser)?;
    let result = service::delete_account(cx, &caller, Password::unchecked(body.current_password))
        .await
        .map_err(ApiError::from);
    if let Err(e) = &result {
        tracing::info!(target: "audit", event = "account_delete", actor = "self", outcome = e.code(),
            user_id = %caller.user_id);
    }
    result?;
    Ok(reply::no_content())
}

fn jwt_of<'a>(input: &'a Input<'_>) -> Result<&'a str, ApiError> {
    super::extract::bearer(input.req.headers()).ok_or(ApiError::Unauthorized)
}
