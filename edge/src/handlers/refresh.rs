//! POST /token/refresh.

use lambda_http::{Body, Response, http::StatusCode};
use serde::{Deserialize, Serialize};

use super::{extract::Input, reply};
use crate::{error::ApiError, schema};
use domain::service::{self, Ctx};

/// The body, as `edge/schemas/refresh.json` admits it.
#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Serialize)]
struct Renewed {
    token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// A new access token and the refresh token to use next; 401 for an unknown, expired or spent
/// refresh token (a spent one also ends its session).
pub(super) async fn refresh(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<RefreshBody>(schema::Body::Refresh)?;
    let g = service::refresh(cx, &body.refresh_token).await?;
    Ok(reply::json(
        StatusCode::OK,
        &Renewed {
            token: g.token,
            refresh_token: g.refresh_token,
            token_type: "Bearer",
            expires_in: g.expires_in,
        },
    ))
}
