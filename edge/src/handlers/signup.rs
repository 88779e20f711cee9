//! POST /signup.

use lambda_http::{Body, Response, http::StatusCode};
use serde::Deserialize;

use super::{
    extract::{Input, account_phone, email, field, new_password},
    reply::{self, UserView},
};
use crate::{error::ApiError, schema};
use domain::{
    service::{self, Ctx, NewUser},
    types::{Name, Phone},
};

/// The body, as `edge/schemas/signup.json` admits it.
#[derive(Deserialize)]
struct SignupBody {
    first_name: String,
    #[serde(default)]
    middle_name: Option<String>,
    last_name: String,
    password: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    locale: Option<String>,
}

impl TryFrom<SignupBody> for NewUser {
    type Error = ApiError;

    fn try_from(b: SignupBody) -> Result<Self, ApiError> {
        Ok(Self {
            first_name: field("/first_name", Name::parse(&b.first_name))?,
            middle_name: field(
                "/middle_name",
                Name::parse_optional(b.middle_name.as_deref()),
            )?,
            last_name: field("/last_name", Name::parse(&b.last_name))?,
            phone: b
                .phone
                .map(|p| field("/phone", Phone::parse(&p)))
                .transpose()?,
            email: b.email.map(|e| email("/email", &e)).transpose()?,
            password: new_password("/password", b.password)?,
            locale: b.locale,
        })
    }
}

/// 201 with the new user, 409 when the phone (or, where addresses need no proof, the email)
/// is taken.
pub(super) async fn signup(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let mut new_user = NewUser::try_from(input.body::<SignupBody>(schema::Body::Signup)?)?;
    if let Some(p) = new_user.phone.take() {
        new_user.phone = Some(account_phone(cx, "/phone", p)?);
    }
    let user = service::signup(cx, new_user).await.map_err(ApiError::from);
    match &user {
        Ok(u) => {
            tracing::info!(target: "audit", event = "signup", outcome = "success", user_id = %u.id)
        }
        Err(e) => tracing::info!(target: "audit", event = "signup", outcome = e.code()),
    }
    Ok(reply::json(StatusCode::CREATED, &UserView::from(&user?)))
}
