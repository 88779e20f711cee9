//! Sign-in with an identity provider and linking, served by the `federation` function (the
//! one binary that fetches providers' keys, through `Ctx::federation`). Native sign-in: the
//! app posts the provider's ID token and the raw nonce it used, and gets our tokens (201 for
//! a new account). Linking needs a live session and a fresh provider token; unlinking is
//! refused where it would leave the account no way to sign in.

use lambda_http::{Body, Response, http::StatusCode};
use serde::Deserialize;

use super::{
    extract::{Input, caller},
    login::signed_in,
    reply::{self, UserView},
};
use crate::{error::ApiError, routes::Endpoint, schema};
use domain::{
    service::{Ctx, federation},
    types::Name,
};

/// The body, as `edge/schemas/federation_token.json` admits it.
#[derive(Deserialize)]
struct TokenBody {
    id_token: String,
    nonce: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

fn name(path: &str, raw: Option<String>) -> Result<Option<Name>, ApiError> {
    raw.map(|n| super::extract::field(path, Name::parse(&n)))
        .transpose()
}

fn provider_param(e: Endpoint, input: &Input<'_>) -> Result<String, ApiError> {
    e.param("provider", input.req.uri().path())
        .map(str::to_owned)
        .ok_or(ApiError::UnknownProvider)
}

/// POST /federation/{provider}/token.
async fn token(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<TokenBody>(schema::Body::FederationToken)?;
    let names = federation::Names {
        first_name: name("/first_name", body.first_name)?,
        last_name: name("/last_name", body.last_name)?,
    };
    let provider = provider_param(Endpoint::FederationToken, input)?;
    let done = federation::sign_in(cx, &provider, &body.id_token, &body.nonce, names)
        .await
        .map_err(ApiError::from);
    let created = done.as_ref().is_ok_and(|d| d.created);
    let mut response = signed_in(done.map(|d| d.outcome))?;
    if created {
        *response.status_mut() = StatusCode::CREATED;
    }
    Ok(response)
}

/// The body, as `edge/schemas/identity_link.json` admits it.
#[derive(Deserialize)]
struct LinkBody {
    provider: String,
    id_token: String,
    nonce: String,
}

/// POST /user/identities.
async fn link(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<LinkBody>(schema::Body::IdentityLink)?;
    let who = caller(cx, input.req).await?;
    let user = federation::link(cx, &who, &body.provider, &body.id_token, &body.nonce).await?;
    Ok(reply::json(StatusCode::OK, &UserView::from(&user)))
}

/// DELETE /user/identities/{provider}.
async fn unlink(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let who = caller(cx, input.req).await?;
    let provider = provider_param(Endpoint::IdentityUnlink, input)?;
    let user = federation::unlink(cx, &who, &provider).await?;
    Ok(reply::json(StatusCode::OK, &UserView::from(&user)))
}

/// The `federation` function's endpoints.
pub(super) async fn handle(
    cx: &Ctx<'_>,
    e: Endpoint,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    match e {
        Endpoint::FederationToken => token(cx, input).await,
        Endpoint::IdentityLink => link(cx, input).await,
        Endpoint::IdentityUnlink => unlink(cx, input).await,
        _ => Err(ApiError::NotFound),
    }
}
