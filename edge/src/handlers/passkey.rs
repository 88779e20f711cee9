//! Passkeys, served by the `passkeys` function (the one binary that links webauthn-rs, handed
//! in through `Ctx::passkeys`): registration for a signed-in account, sign-in with no
//! identifier typed or as a password sign-in's second factor, the step-up, and the owner's
//! list, rename and removal. Each ceremony is a begin/finish pair: the begin answers the
//! options for `navigator.credentials.create/get` and a ceremony id; the finish takes the
//! browser's `PublicKeyCredential` (as JSON) with that id, once.

use lambda_http::{Body, Response, http::StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    extract::{Input, enrolling_caller},
    login::granted,
    mfa::{EnrolledView, FactorView, raised},
    reply,
};
use crate::{
    error::{ApiError, FieldError},
    routes::Endpoint,
    schema,
};
use domain::{
    passkey::Passkeys,
    service::{Ctx, passkey},
    store::CeremonyId,
};

/// The relying party, or 403 `passkeys_disabled` where `PASSKEY_RP_ID` is unset. A route
/// with a session asks after checking it (401 first, as every secured route answers).
fn rp<'a>(cx: &Ctx<'a>) -> Result<&'a Passkeys, ApiError> {
    cx.passkeys.ok_or(ApiError::PasskeysDisabled)
}

/// A ceremony id as the client sent it; one that cannot be ours was never started.
fn ceremony(id: &str) -> Result<CeremonyId, ApiError> {
    CeremonyId::parse(id).ok_or(ApiError::PasskeyRefused)
}

/// A trimmed label, or none.
fn label(l: Option<String>) -> Option<String> {
    l.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty())
}

#[derive(Serialize)]
struct StartedView {
    ceremony: String,
    /// `{"publicKey": ...}` for `navigator.credentials.create()` or `.get()`.
    options: Value,
    expires_in: i64,
}

fn started(s: passkey::Started) -> Result<Response<Body>, ApiError> {
    let options = serde_json::from_str(&s.options).map_err(|e| {
        tracing::error!(error = %e, "passkey options are not JSON");
        ApiError::Internal
    })?;
    Ok(reply::json(
        StatusCode::OK,
        &StartedView {
            ceremony: s.ceremony.as_str().to_owned(),
            options,
            expires_in: s.expires_in,
        },
    ))
}

/// POST /passkeys/register/start.
async fn register_start(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = enrolling_caller(cx, input.req).await?;
    let pk = rp(cx)?;
    started(passkey::start_registration(cx, pk, &caller).await?)
}

#[derive(Deserialize)]
struct RegisterBody {
    ceremony: String,
    credential: Value,
    label: Option<String>,
}

/// POST /passkeys/register/finish: the passkey stored, the session raised to AAL2.
async fn register_finish(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<RegisterBody>(schema::Body::PasskeyRegister)?;
    let caller = enrolling_caller(cx, input.req).await?;
    let pk = rp(cx)?;
    let id = ceremony(&body.ceremony)?;
    let answer = body.credential.to_string();
    let e = passkey::finish_registration(cx, pk, &caller, &id, &answer, label(body.label)).await?;
    let session = raised(cx, &e.caller).await?;
    Ok(reply::json(
        StatusCode::CREATED,
        &EnrolledView {
            factor: FactorView::from(&e.factor),
            recovery_codes: e.recovery_codes,
            session,
        },
    ))
}

#[derive(Deserialize, Default)]
struct LoginStartBody {
    mfa_token: Option<String>,
}

/// The mfa_token of a password sign-in; one that cannot be ours is a 401, as at /login/mfa.
fn mfa_token(t: Option<&str>) -> Result<Option<CeremonyId>, ApiError> {
    t.map(|t| CeremonyId::parse(t).ok_or(ApiError::Unauthorized))
        .transpose()
}

/// POST /passkeys/login/start: options for any discoverable passkey, or with `mfa_token`,
/// for the account's passkeys. The body is optional.
async fn login_start(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let pk = rp(cx)?;
    let body = if input.has_body() {
        input.body::<LoginStartBody>(schema::Body::PasskeyLoginStart)?
    } else {
        LoginStartBody::default()
    };
    let token = mfa_token(body.mfa_token.as_deref())?;
    started(passkey::start_login(cx, pk, token.as_ref()).await?)
}

#[derive(Deserialize)]
struct LoginBody {
    ceremony: String,
    credential: Value,
    mfa_token: Option<String>,
}

/// POST /passkeys/login/finish: the tokens of POST /login.
async fn login_finish(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let pk = rp(cx)?;
    let body = input.body::<LoginBody>(schema::Body::PasskeyLogin)?;
    let id = ceremony(&body.ceremony)?;
    let token = mfa_token(body.mfa_token.as_deref())?;
    let answer = body.credential.to_string();
    granted(
        passkey::finish_login(cx, pk, &id, &answer, token.as_ref())
            .await
            .map_err(ApiError::from),
    )
}

/// POST /passkeys/step-up/start.
async fn step_up_start(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = enrolling_caller(cx, input.req).await?;
    let pk = rp(cx)?;
    started(passkey::start_step_up(cx, pk, &caller).await?)
}

#[derive(Deserialize)]
struct StepUpBody {
    ceremony: String,
    credential: Value,
}

/// POST /passkeys/step-up/finish: a new access token at AAL2.
async fn step_up_finish(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<StepUpBody>(schema::Body::PasskeyStepUp)?;
    let caller = enrolling_caller(cx, input.req).await?;
    let pk = rp(cx)?;
    let id = ceremony(&body.ceremony)?;
    let raised_caller =
        passkey::finish_step_up(cx, pk, &caller, &id, &body.credential.to_string()).await?;
    Ok(reply::json(
        StatusCode::OK,
        &raised(cx, &raised_caller).await?,
    ))
}

#[derive(Serialize)]
struct PasskeyView<'a> {
    #[serde(flatten)]
    factor: FactorView<'a>,
    aaguid: &'a str,
    backup_eligible: bool,
    backed_up: bool,
}

#[derive(Serialize)]
struct PasskeysView<'a> {
    passkeys: Vec<PasskeyView<'a>>,
    max: usize,
}

/// GET /passkeys.
async fn list(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = enrolling_caller(cx, input.req).await?;
    let pk = rp(cx)?;
    let keys = passkey::list(cx, &caller).await?;
    Ok(reply::json(
        StatusCode::OK,
        &PasskeysView {
            passkeys: keys
                .iter()
                .map(|k| PasskeyView {
                    factor: FactorView::from(&k.record),
                    aaguid: &k.aaguid,
                    backup_eligible: k.backup_eligible,
                    backed_up: k.backed_up,
                })
                .collect(),
            max: pk.settings.max_per_user,
        },
    ))
}

#[derive(Deserialize)]
struct RenameBody {
    label: String,
}

fn path_id<'p>(e: Endpoint, input: &'p Input<'_>) -> Result<&'p str, ApiError> {
    e.param("id", input.req.uri().path())
        .ok_or(ApiError::FactorNotFound)
}

/// PATCH /passkeys/{id}.
async fn rename(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<RenameBody>(schema::Body::PasskeyRename)?;
    let caller = enrolling_caller(cx, input.req).await?;
    rp(cx)?;
    let id = path_id(Endpoint::PasskeyRename, input)?;
    let label = label(Some(body.label)).ok_or_else(|| {
        ApiError::Validation(vec![FieldError {
            path: "/label".to_owned(),
            message: "must not be blank".to_owned(),
        }])
    })?;
    let renamed = passkey::rename(cx, &caller, id, label).await?;
    Ok(reply::json(StatusCode::OK, &FactorView::from(&renamed)))
}

/// DELETE /passkeys/{id}: as DELETE /mfa/factors/{id} (a fresh step-up, other sessions end).
async fn remove(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = enrolling_caller(cx, input.req).await?;
    rp(cx)?;
    passkey::remove(cx, &caller, path_id(Endpoint::PasskeyRemove, input)?).await?;
    Ok(reply::no_content())
}

/// The `passkeys` function's endpoints.
pub(super) async fn handle(
    cx: &Ctx<'_>,
    e: Endpoint,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    match e {
        Endpoint::PasskeyRegisterStart => register_start(cx, input).await,
        Endpoint::PasskeyRegisterFinish => register_finish(cx, input).await,
        Endpoint::PasskeyLoginStart => login_start(cx, input).await,
        Endpoint::PasskeyLoginFinish => login_finish(cx, input).await,
        Endpoint::PasskeyStepUpStart => step_up_start(cx, input).await,
        Endpoint::PasskeyStepUpFinish => step_up_finish(cx, input).await,
        Endpoint::PasskeyList => list(cx, input).await,
        Endpoint::PasskeyRename => rename(cx, input).await,
        Endpoint::PasskeyRemove => remove(cx, input).await,
        _ => Err(ApiError::NotFound),
    }
}
