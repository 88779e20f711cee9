//! Sign-in with an identity provider and linking, served by the `federation` function (the
//! one binary that fetches providers' keys, through `Ctx::federation`). Native sign-in: the
//! app posts the provider's ID token and the raw nonce it used, and gets our tokens (201 for
//! a new account). Linking needs a live session and a fresh provider token; unlinking is
//! refused where it would leave the account no way to sign in.
//!
//! Browser sign-in (`service::federation_browser`): GET authorize answers 302 to the provider
//! with the state's binding cookie; the provider's callback (a GET, or Apple's form POST)
//! answers 302 to the app with a one-time code; the app POSTs the code to /federation/exchange.

use lambda_http::{Body, Response, http::StatusCode};
use serde::Deserialize;

use super::{
    extract::{Input, caller, url_pairs},
    login::signed_in,
    reply::{self, UserView},
};
use crate::{error::ApiError, routes::Endpoint, schema};
use domain::{
    federation::browser,
    service::{
        Ctx, federation,
        federation_browser::{self, AuthorizeRequest, CallbackParams, Redirect},
    },
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
    answer(federation::sign_in(cx, &provider, &body.id_token, &body.nonce, names).await)
}

/// A provider sign-in's answer: our tokens (201 where the account is new), or the second
/// factor's challenge.
fn answer(
    done: Result<federation::FederatedSignIn, domain::service::Error>,
) -> Result<Response<Body>, ApiError> {
    let created = done.as_ref().is_ok_and(|d| d.created);
    let mut response = signed_in(done.map(|d| d.outcome).map_err(ApiError::from))?;
    if created {
        *response.status_mut() = StatusCode::CREATED;
    }
    Ok(response)
}

/// The body, as `edge/schemas/identity_link.json` admits it: a fresh provider token, or the
/// one-time code of a browser sign-in.
#[derive(Deserialize)]
struct LinkBody {
    provider: Option<String>,
    id_token: Option<String>,
    nonce: Option<String>,
    code: Option<String>,
    code_verifier: Option<String>,
}

/// POST /user/identities.
async fn link(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<LinkBody>(schema::Body::IdentityLink)?;
    let who = caller(cx, input.req).await?;
    let user = match (body.provider, body.id_token, body.nonce, body.code) {
        (Some(p), Some(t), Some(n), None) => federation::link(cx, &who, &p, &t, &n).await?,
        (None, None, None, Some(code)) => {
            federation_browser::link(cx, &who, &code, body.code_verifier.as_deref()).await?
        }
        // The schema admits only the two shapes above.
        _ => return Err(ApiError::Validation(Vec::new())),
    };
    Ok(reply::json(StatusCode::OK, &UserView::from(&user)))
}

/// The value of cookie `name` the request carries.
fn cookie(input: &Input<'_>, name: &str) -> Option<String> {
    input
        .req
        .headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

/// 302 to `r.location`, setting or clearing the binding cookie. The cookie is `Secure`,
/// `HttpOnly` and `SameSite=None` (a provider's form POST back is cross-site), and has no
/// `Path`, so it is sent only under the provider's own `/federation/{provider}/` (behind any
/// stage prefix).
fn redirect(r: Redirect) -> Result<Response<Body>, ApiError> {
    let mut builder = Response::builder()
        .status(StatusCode::FOUND)
        .header("location", r.location)
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer");
    if let Some((name, value, max_age)) = r.cookie {
        builder = builder.header(
            "set-cookie",
            format!("{name}={value}; Max-Age={max_age}; Secure; HttpOnly; SameSite=None"),
        );
    }
    builder.body(Body::Empty).map_err(|_| ApiError::Internal)
}

fn bad_query(path: &str, message: &str) -> ApiError {
    ApiError::Validation(vec![crate::error::FieldError {
        path: path.to_owned(),
        message: message.to_owned(),
    }])
}

/// GET /federation/{provider}/authorize?redirect_uri=..[&code_challenge=..[&code_challenge_method=S256]].
async fn authorize(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let provider = provider_param(Endpoint::FederationAuthorize, input)?;
    // An unknown provider is told before anything about the query.
    if cx
        .federation
        .and_then(|f| f.settings.provider(&provider))
        .is_none()
    {
        return Err(ApiError::UnknownProvider);
    }
    let q = url_pairs(input.req.uri().query().unwrap_or_default().as_bytes());
    let redirect_uri = q
        .get("redirect_uri")
        .filter(|u| !u.is_empty() && u.len() <= 2048)
        .ok_or_else(|| bad_query("/redirect_uri", "required: where the app is sent back"))?;
    let app_challenge = q.get("code_challenge").map(String::as_str);
    if let Some(c) = app_challenge {
        // S256 is the only method; a challenge without one is taken as S256 (never `plain`).
        if q.get("code_challenge_method").is_some_and(|m| m != "S256") {
            return Err(bad_query("/code_challenge_method", "must be S256"));
        }
        if !browser::is_s256_challenge(c) {
            return Err(bad_query(
                "/code_challenge",
                "must be a base64url SHA-256 (43 characters)",
            ));
        }
    }
    let r = federation_browser::authorize(
        cx,
        AuthorizeRequest {
            provider: &provider,
            redirect_uri,
            app_challenge,
        },
    )
    .await?;
    redirect(r)
}

/// GET or POST /federation/{provider}/callback: the provider sending the browser back.
async fn callback(
    cx: &Ctx<'_>,
    e: Endpoint,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    let provider = provider_param(e, input)?;
    let mut q = if e == Endpoint::FederationCallbackForm {
        let raw: &[u8] = match input.req.body() {
            Body::Text(t) => t.as_bytes(),
            Body::Binary(b) => b,
            _ => &[],
        };
        if raw.len() > super::extract::MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(super::extract::MAX_BODY_BYTES));
        }
        url_pairs(raw)
    } else {
        url_pairs(input.req.uri().query().unwrap_or_default().as_bytes())
    };
    let state = q.remove("state");
    let binding = state
        .as_deref()
        .and_then(|s| cookie(input, &format!("{}{s}", browser::COOKIE_PREFIX)));
    let params = CallbackParams {
        state,
        code: q.remove("code"),
        error: q.remove("error"),
        user: q.remove("user"),
        binding,
    };
    redirect(federation_browser::callback(cx, &provider, params).await?)
}

/// The body, as `edge/schemas/federation_exchange.json` admits it.
#[derive(Deserialize)]
struct ExchangeBody {
    code: String,
    code_verifier: Option<String>,
}

/// POST /federation/exchange: the one-time code for our tokens (201 for a new account).
async fn exchange(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<ExchangeBody>(schema::Body::FederationExchange)?;
    answer(federation_browser::exchange(cx, &body.code, body.code_verifier.as_deref()).await)
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
        Endpoint::FederationAuthorize => authorize(cx, input).await,
        Endpoint::FederationCallback | Endpoint::FederationCallbackForm => {
            callback(cx, e, input).await
        }
        Endpoint::FederationExchange => exchange(cx, input).await,
        _ => Err(ApiError::NotFound),
    }
}
