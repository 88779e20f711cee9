//! Second factors, served by the `mfa` function: GET /mfa, TOTP enrolment (POST /mfa/totp,
//! POST /mfa/totp/confirm), DELETE /mfa/factors/{id}, POST /mfa/recovery-codes and the step-up
//! (POST /session/step-up). Each needs the caller's session; none needs AAL2 to reach (so
//! an account that must enrol a factor can), and the changes ask for a fresh step-up where
//! the account already has a factor.

use lambda_http::{Body, Response, http::StatusCode};
use serde::{Deserialize, Serialize};

use super::{
    extract::{Input, enrolling_caller},
    reply,
};
use crate::{error::ApiError, routes::Endpoint, schema};
use domain::{
    credential::CredentialRecord,
    mfa::MfaMode,
    service::{
        self, Caller, Ctx,
        mfa::{self, Proof},
    },
    store::CeremonyId,
};

/// A code or a recovery code, as `step_up.json` and `login_mfa.json` admit them.
#[derive(Deserialize)]
pub(super) struct ProofBody {
    code: Option<String>,
    recovery_code: Option<String>,
}

impl TryFrom<ProofBody> for Proof {
    type Error = ApiError;

    fn try_from(b: ProofBody) -> Result<Self, ApiError> {
        match (b.code, b.recovery_code) {
            (Some(c), None) => Ok(Self::Totp(c)),
            (None, Some(r)) => Ok(Self::RecoveryCode(r)),
            // The schema's oneOf admits nothing else.
            _ => Err(ApiError::InvalidCode),
        }
    }
}

#[derive(Serialize)]
pub(super) struct FactorView<'a> {
    id: &'a str,
    kind: &'static str,
    label: &'a str,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl<'a> From<&'a CredentialRecord> for FactorView<'a> {
    fn from(c: &'a CredentialRecord) -> Self {
        Self {
            id: &c.id,
            kind: c.kind.as_str(),
            label: &c.label,
            created_at: c.created_at,
            last_used_at: c.last_used_at,
        }
    }
}

#[derive(Serialize)]
struct FactorsView<'a> {
    factors: Vec<FactorView<'a>>,
    recovery_codes_left: usize,
    /// `off`, `optional` or `required` (`REQUIRE_MFA`).
    mfa: &'static str,
    /// The session's level now: 1, or 2 after a second factor.
    aal: u8,
}

/// A new access token after the session's level rose.
#[derive(Serialize)]
pub(super) struct Raised {
    token: String,
    token_type: &'static str,
    expires_in: u64,
    aal: u8,
}

pub(super) async fn raised(cx: &Ctx<'_>, caller: &Caller) -> Result<Raised, ApiError> {
    let (token, expires_in) = service::access_token(cx, caller).await?;
    Ok(Raised {
        token,
        token_type: "Bearer",
        expires_in,
        aal: caller.assurance.aal(),
    })
}

const fn mode_name(mode: MfaMode) -> &'static str {
    match mode {
        MfaMode::Off => "off",
        MfaMode::Optional => "optional",
        MfaMode::Required => "required",
    }
}

/// GET /mfa: the caller's factors.
async fn list(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = enrolling_caller(cx, input.req).await?;
    let f = mfa::factors(cx, &caller).await?;
    Ok(reply::json(
        StatusCode::OK,
        &FactorsView {
            factors: f.factors.iter().map(FactorView::from).collect(),
            recovery_codes_left: f.recovery_codes_left,
            mfa: mode_name(f.mode),
            aal: caller.assurance.aal(),
        },
    ))
}

#[derive(Serialize)]
struct EnrolmentView {
    enrolment: String,
    secret: String,
    otpauth_uri: String,
    expires_in: i64,
}

/// POST /mfa/totp: a secret to put in an authenticator app.
async fn totp_start(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = enrolling_caller(cx, input.req).await?;
    let e = mfa::start_totp(cx, &caller).await?;
    Ok(reply::json(
        StatusCode::OK,
        &EnrolmentView {
            enrolment: e.enrolment.as_str().to_owned(),
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
            expires_in: e.expires_in,
        },
    ))
}

#[derive(Deserialize)]
struct ConfirmBody {
    enrolment: String,
    code: String,
    label: Option<String>,
}

#[derive(Serialize)]
pub(super) struct EnrolledView<'a> {
    pub(super) factor: FactorView<'a>,
    /// Shown once, with the account's first factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) recovery_codes: Option<Vec<String>>,
    #[serde(flatten)]
    pub(super) session: Raised,
}

/// POST /mfa/totp/confirm: the first code proves the app holds the secret.
async fn totp_confirm(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<ConfirmBody>(schema::Body::TotpConfirm)?;
    let caller = enrolling_caller(cx, input.req).await?;
    let id = CeremonyId::parse(&body.enrolment).ok_or(ApiError::InvalidCode)?;
    let label = body
        .label
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    let e = mfa::confirm_totp(cx, &caller, &id, &body.code, label).await?;
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

/// DELETE /mfa/factors/{id}.
async fn remove(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = enrolling_caller(cx, input.req).await?;
    let id = Endpoint::MfaRemove
        .param("id", input.req.uri().path())
        .ok_or(ApiError::FactorNotFound)?;
    mfa::remove_factor(cx, &caller, id).await?;
    Ok(reply::no_content())
}

#[derive(Serialize)]
struct CodesView {
    recovery_codes: Vec<String>,
}

/// POST /mfa/recovery-codes: a new set; the old one stops working.
async fn recovery_codes(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = enrolling_caller(cx, input.req).await?;
    let codes = mfa::regenerate_recovery_codes(cx, &caller).await?;
    Ok(reply::json(
        StatusCode::OK,
        &CodesView {
            recovery_codes: codes,
        },
    ))
}

/// POST /session/step-up: a second factor raises the session to AAL2.
async fn step_up(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let proof = Proof::try_from(input.body::<ProofBody>(schema::Body::StepUp)?)?;
    let caller = enrolling_caller(cx, input.req).await?;
    let raised_caller = mfa::step_up(cx, &caller, &proof).await?;
    Ok(reply::json(
        StatusCode::OK,
        &raised(cx, &raised_caller).await?,
    ))
}

/// The `mfa` function's endpoints.
pub(super) async fn handle(
    cx: &Ctx<'_>,
    e: Endpoint,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    match e {
        Endpoint::MfaFactors => list(cx, input).await,
        Endpoint::TotpStart => totp_start(cx, input).await,
        Endpoint::TotpConfirm => totp_confirm(cx, input).await,
        Endpoint::MfaRemove => remove(cx, input).await,
        Endpoint::RecoveryCodes => recovery_codes(cx, input).await,
        Endpoint::StepUp => step_up(cx, input).await,
        _ => Err(ApiError::NotFound),
    }
}
