//! POST /verify/phone/start, /verify/phone/confirm, /recover/start and /recover/confirm:
//! proving a phone with a one-time code (signup verification, phone change, password
//! recovery). Phones here are always parsed strictly: a code has to be able to reach them.

use lambda_http::{Body, Response, http::StatusCode};
use serde::{Deserialize, Serialize};

use super::{
    extract::{Input, e164, new_password},
    reply::{self, UserView},
};
use crate::{error::ApiError, schema};
use domain::service::{self, Ctx};

/// `{phone}`, as `edge/schemas/phone_start.json` admits it.
#[derive(Deserialize)]
struct StartBody {
    phone: String,
}

/// `{phone, code}`, as `edge/schemas/phone_confirm.json` admits it.
#[derive(Deserialize)]
struct ConfirmBody {
    phone: String,
    code: String,
}

/// `{phone, code, new_password}`, as `edge/schemas/recover_confirm.json` admits it.
#[derive(Deserialize)]
struct RecoverBody {
    phone: String,
    code: String,
    new_password: String,
}

#[derive(Serialize)]
struct Accepted {
    status: &'static str,
}

fn accepted() -> Response<Body> {
    reply::json(
        StatusCode::ACCEPTED,
        &Accepted {
            status: "if the number can receive a code, one is on its way",
        },
    )
}

/// 202 whatever the phone: a code goes out only to an unverified account's phone or a
/// pending new phone.
pub(super) async fn start(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let b = input.body::<StartBody>(schema::Body::PhoneStart)?;
    let phone = e164(cx, "/phone", &b.phone)?;
    service::start_phone_verification(cx, phone).await?;
    Ok(accepted())
}

/// 200 with the user whose phone the code proved; 400 `invalid_code` otherwise.
pub(super) async fn confirm(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let b = input.body::<ConfirmBody>(schema::Body::PhoneConfirm)?;
    let phone = e164(cx, "/phone", &b.phone)?;
    let user = service::confirm_phone(cx, phone, &b.code).await?;
    Ok(reply::json(StatusCode::OK, &UserView::from(&user)))
}

/// 202 whatever the phone (no enumeration).
pub(super) async fn recover_start(
    cx: &Ctx<'_>,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    let b = input.body::<StartBody>(schema::Body::RecoverStart)?;
    let phone = e164(cx, "/phone", &b.phone)?;
    service::recover_start(cx, phone).await?;
    Ok(accepted())
}

/// 204: the password is replaced and every session has ended.
pub(super) async fn recover_confirm(
    cx: &Ctx<'_>,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    let b = input.body::<RecoverBody>(schema::Body::RecoverConfirm)?;
    let phone = e164(cx, "/phone", &b.phone)?;
    let password = new_password("/new_password", b.new_password)?;
    service::recover_confirm(cx, phone, &b.code, password).await?;
    Ok(reply::no_content())
}
