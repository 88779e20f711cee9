//! POST /login.

use lambda_http::{Body, Response, http::StatusCode};
use serde::{Deserialize, Serialize};

use super::{
    extract::{Input, account_phone, email, field},
    mfa::ProofBody,
    reply::{self, Oid},
};
use crate::{error::ApiError, schema};
use domain::{
    identity::Identifier,
    service::{self, Ctx, LoginGrant, LoginOutcome, mfa::Proof},
    store::CeremonyId,
    types::{Invalid, Password, Phone},
};

/// The body, as `edge/schemas/login.json` admits it.
#[derive(Deserialize)]
struct LoginBody {
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    password: String,
    /// The device token an earlier login on this client handed out, if any.
    device_token: Option<String>,
}

/// A login attempt: the phone or email address, and any password at all (length rules
/// belong to signup; a short guess is just a wrong password).
struct Credentials {
    identifier: Identifier,
    password: Password,
    device_token: Option<String>,
}

impl TryFrom<LoginBody> for Credentials {
    type Error = ApiError;

    fn try_from(b: LoginBody) -> Result<Self, ApiError> {
        let identifier = match (b.phone, b.email) {
            (Some(p), None) => Identifier::Phone(field("/phone", Phone::parse(&p))?),
            (None, Some(e)) => Identifier::Email(email("/email", &e)?),
            _ => {
                return Err(field(
                    "",
                    Err(Invalid("exactly one of phone and email is required")),
                )?);
            }
        };
        Ok(Self {
            identifier,
            password: Password::unchecked(b.password),
            device_token: b.device_token,
        })
    }
}

#[derive(Serialize)]
struct Tokens {
    token: String,
    session_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
    user_id: Oid,
    device_token: String,
}

/// A JWT and a session token, or one 401 for any wrong phone/password pair.
pub(super) async fn login(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let mut c = Credentials::try_from(input.body::<LoginBody>(schema::Body::Login)?)?;
    // Strict where verification is on, but a phone that is not a valid number stays as typed:
    // accounts made under the legacy rule keep logging in.
    if let Identifier::Phone(p) = &c.identifier
        && let Ok(strict) = account_phone(cx, "/phone", p.clone())
    {
        c.identifier = Identifier::Phone(strict);
    }
    let outcome = service::login(cx, c.identifier, c.password, c.device_token.as_deref())
        .await
        .map_err(ApiError::from);
    signed_in(outcome)
}

/// The answer to a sign-in: its tokens, or the second factor it waits for.
pub(super) fn signed_in(
    outcome: Result<LoginOutcome, ApiError>,
) -> Result<Response<Body>, ApiError> {
    match outcome {
        Ok(LoginOutcome::Granted(g)) => granted(Ok(g)),
        Ok(LoginOutcome::SecondFactor(m)) => Ok(reply::json(
            StatusCode::OK,
            &Challenge {
                mfa_required: true,
                mfa_token: m.mfa_token.as_str().to_owned(),
                methods: m.methods,
                expires_in: m.expires_in,
            },
        )),
        Err(e) => granted(Err(e)),
    }
}

/// A password accepted, a second factor awaited.
#[derive(Serialize)]
struct Challenge {
    mfa_required: bool,
    mfa_token: String,
    methods: Vec<&'static str>,
    expires_in: i64,
}

/// The tokens of a sign-in, audited either way.
pub(super) fn granted(grant: Result<LoginGrant, ApiError>) -> Result<Response<Body>, ApiError> {
    match &grant {
        Ok(g) => {
            tracing::info!(target: "audit", event = "login", outcome = "success", user_id = %g.user_id)
        }
        Err(e) => tracing::info!(target: "audit", event = "login", outcome = e.code()),
    }
    let g = grant?;
    Ok(reply::json(
        StatusCode::OK,
        &Tokens {
            token: g.token,
            session_token: g.session_token,
            refresh_token: g.refresh_token,
            token_type: "Bearer",
            expires_in: g.expires_in,
            user_id: Oid::of(&g.user_id),
            device_token: g.device_token,
        },
    ))
}

/// The body, as `edge/schemas/login_mfa.json` admits it.
#[derive(Deserialize)]
struct LoginMfaBody {
    mfa_token: String,
    #[serde(flatten)]
    proof: ProofBody,
}

/// POST /login/mfa: the second factor of a sign-in the password started.
pub(super) async fn login_mfa(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let body = input.body::<LoginMfaBody>(schema::Body::LoginMfa)?;
    let proof = Proof::try_from(body.proof)?;
    let token = CeremonyId::parse(&body.mfa_token).ok_or(ApiError::Unauthorized)?;
    granted(
        service::login_second_factor(cx, &token, &proof)
            .await
            .map_err(ApiError::from),
    )
}
