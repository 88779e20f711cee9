//! POST /verify/phone/start, /verify/phone/confirm, /verify/email/start,
//! /verify/email/confirm, GET /verify/email/link, POST /recover/start and /recover/confirm:
//! proving a phone or an email address with a one-time code (or, for email, a link's token)
//! for signup verification, a change, or password recovery. Phones here are always parsed
//! strictly: a code has to be able to reach them.

use lambda_http::{Body, Response, http::StatusCode};
use serde::{Deserialize, Serialize};

use super::{
    extract::{Input, e164, email, new_password},
    reply::{self, UserView},
};
use crate::{
    error::{ApiError, FieldError},
    schema,
};
use domain::service::{self, Ctx, RecoveryProof};

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

/// `{phone}` or `{email, locale?}`, as `edge/schemas/recover_start.json` admits it.
#[derive(Deserialize)]
struct RecoverStartBody {
    phone: Option<String>,
    email: Option<String>,
    locale: Option<String>,
}

/// `{phone | email, code, new_password}` or `{token, new_password}`, as
/// `edge/schemas/recover_confirm.json` admits it.
#[derive(Deserialize)]
struct RecoverBody {
    phone: Option<String>,
    email: Option<String>,
    code: Option<String>,
    token: Option<String>,
    new_password: String,
}

/// `{email, locale?}`, as `edge/schemas/email_start.json` admits it.
#[derive(Deserialize)]
struct EmailStartBody {
    email: String,
    locale: Option<String>,
}

/// `{email, code}` or `{token}`, as `edge/schemas/email_confirm.json` admits it.
#[derive(Deserialize)]
struct EmailConfirmBody {
    email: Option<String>,
    code: Option<String>,
    token: Option<String>,
}

/// What the schemas' `oneOf` already refused; a guard for a caller that skipped them.
fn shape() -> ApiError {
    ApiError::Validation(vec![FieldError {
        path: String::new(),
        message: "the body does not match one of the accepted forms".to_owned(),
    }])
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

/// 202 whatever the phone or address (no enumeration).
pub(super) async fn recover_start(
    cx: &Ctx<'_>,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    let b = input.body::<RecoverStartBody>(schema::Body::RecoverStart)?;
    match (b.phone, b.email) {
        (Some(p), None) => service::recover_start(cx, e164(cx, "/phone", &p)?).await?,
        (None, Some(e)) => {
            service::recover_start_email(cx, email("/email", &e)?, b.locale.as_deref()).await?
        }
        _ => return Err(shape()),
    }
    Ok(accepted())
}

/// 202 whatever the address: a code and link go out only to an unverified account's address
/// or a pending new address.
pub(super) async fn email_start(
    cx: &Ctx<'_>,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    let b = input.body::<EmailStartBody>(schema::Body::EmailStart)?;
    let address = email("/email", &b.email)?;
    service::start_email_verification(cx, address, b.locale.as_deref()).await?;
    Ok(reply::json(
        StatusCode::ACCEPTED,
        &Accepted {
            status: "if the address is waiting for proof, a code and a link are on their way",
        },
    ))
}

/// 200 with the user whose address the code or token proved; 400 `invalid_code` otherwise.
pub(super) async fn email_confirm(
    cx: &Ctx<'_>,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    let b = input.body::<EmailConfirmBody>(schema::Body::EmailConfirm)?;
    let user = match (b.email, b.code, b.token) {
        (Some(e), Some(code), None) => {
            service::confirm_email(cx, email("/email", &e)?, &code).await?
        }
        (None, None, Some(token)) => service::confirm_email_link(cx, &token).await?,
        _ => return Err(shape()),
    };
    Ok(reply::json(StatusCode::OK, &UserView::from(&user)))
}

/// GET /verify/email/link: the page an emailed link opens. It spends nothing (mail scanners
/// and previews fetch links): it shows a button that POSTs the token, and for a password
/// reset a field for the new password.
pub(super) async fn email_link(input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let query = super::extract::url_pairs(input.req.uri().query().unwrap_or_default().as_bytes());
    let param = |name: &str| query.get(name).map(String::as_str);
    // Only the shape a token has is echoed into the page.
    let token = param("token")
        .filter(|t| {
            t.len() == 22
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_default();
    let reset = param("purpose") == Some("recover");
    Ok(reply::html(StatusCode::OK, &link_page(token, reset)))
}

fn link_page(token: &str, reset: bool) -> String {
    let (title, fields, route, body) = if reset {
        (
            "Choose a new password",
            r#"<label>New password <input id="pw" type="password" autocomplete="new-password" minlength="8" required></label>"#,
            "../../recover/confirm",
            "{token: TOKEN, new_password: document.getElementById('pw').value}",
        )
    } else {
        (
            "Confirm your email address",
            "",
            "confirm",
            "{token: TOKEN}",
        )
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><meta name="referrer" content="no-referrer"><title>{title}</title></head>
<body><main><h1>{title}</h1><form id="f">{fields}<button type="submit">Confirm</button></form><p id="out" role="status"></p></main>
<script>const TOKEN = "{token}";
document.getElementById('f').addEventListener('submit', async (e) => {{
  e.preventDefault();
  const r = await fetch('{route}', {{method: 'POST', headers: {{'content-type': 'application/json'}}, body: JSON.stringify({body})}});
  document.getElementById('out').textContent = r.ok ? 'Done. You can close this page.' : 'This link is no longer valid: request a new one.';
}});</script></body></html>"#
    )
}

/// 204: the password is replaced and every session has ended.
pub(super) async fn recover_confirm(
    cx: &Ctx<'_>,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    let b = input.body::<RecoverBody>(schema::Body::RecoverConfirm)?;
    let password = new_password("/new_password", b.new_password)?;
    match (b.phone, b.email, b.code, b.token) {
        (Some(p), None, Some(code), None) => {
            let phone = e164(cx, "/phone", &p)?;
            service::recover_confirm(cx, phone, &code, password).await?
        }
        (None, Some(e), Some(code), None) => {
            let proof = RecoveryProof::Code {
                email: email("/email", &e)?,
                code,
            };
            service::recover_confirm_email(cx, proof, password).await?
        }
        (None, None, None, Some(token)) => {
            service::recover_confirm_email(cx, RecoveryProof::Link { token }, password).await?
        }
        _ => return Err(shape()),
    }
    Ok(reply::no_content())
}
