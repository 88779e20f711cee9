//! GET /user and PUT /user.

use lambda_http::{Body, Response, http::StatusCode};
use serde::{Deserialize, Deserializer};

use super::{
    extract::{Input, account_phone, caller, email, enrolling_caller, field, new_password},
    reply::{self, UserView},
};
use crate::{
    error::{ApiError, FieldError},
    schema,
};
use domain::{
    claims::{Metadata, MetadataError},
    service::{self, Ctx, ProfileUpdate},
    store::UserPatch,
    types::{Invalid, Name, Password, Phone, UserId},
};

/// The caller's profile.
pub(super) async fn get_user(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = enrolling_caller(cx, input.req).await?;
    let user = service::profile(cx, &caller).await?;
    Ok(reply::json(StatusCode::OK, &UserView::from(&user)))
}

/// `{"$oid": "<24 hex>"}`.
#[derive(Deserialize)]
struct OidBody {
    #[serde(rename = "$oid")]
    oid: String,
}

/// The body, as `edge/schemas/update_user.json` admits it.
#[derive(Deserialize)]
struct UpdateBody {
    #[serde(rename = "_id")]
    id: OidBody,
    first_name: Option<String>,
    /// Absent: unchanged; `null` or blank: removed.
    #[serde(default, deserialize_with = "present")]
    middle_name: Option<Option<String>>,
    last_name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    locale: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
    user_metadata: Option<serde_json::Value>,
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`, by `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The user's metadata as `/user_metadata` admits it (an object within `METADATA_MAX_BYTES`).
pub(super) fn metadata(
    path: &str,
    value: serde_json::Value,
    max_bytes: usize,
    parse: fn(serde_json::Value, usize) -> Result<Metadata, MetadataError>,
) -> Result<Metadata, ApiError> {
    parse(value, max_bytes).map_err(|e| {
        ApiError::Validation(vec![FieldError {
            path: path.to_owned(),
            message: e.to_string(),
        }])
    })
}

impl TryFrom<UpdateBody> for ProfileUpdate {
    type Error = ApiError;

    fn try_from(b: UpdateBody) -> Result<Self, ApiError> {
        let name =
            |path: &str, v: Option<String>| v.map(|s| field(path, Name::parse(&s))).transpose();
        let target = field(
            "/_id",
            UserId::parse_hex(&b.id.oid).ok_or(Invalid("must be {\"$oid\": \"<24 hex digits>\"}")),
        )?;
        Ok(Self {
            target,
            patch: UserPatch {
                first_name: name("/first_name", b.first_name)?,
                middle_name: b
                    .middle_name
                    .map(|m| field("/middle_name", Name::parse_optional(m.as_deref())))
                    .transpose()?,
                last_name: name("/last_name", b.last_name)?,
                ..UserPatch::default()
            },
            phone: b
                .phone
                .map(|p| field("/phone", Phone::parse(&p)))
                .transpose()?,
            email: b.email.map(|e| email("/email", &e)).transpose()?,
            locale: b.locale,
            new_password: b
                .password
                .map(|p| new_password("/password", p))
                .transpose()?,
            current_password: b.current_password.map(Password::unchecked),
        })
    }
}

/// Updates the caller's own profile; a phone or password change needs `current_password`.
pub(super) async fn put_user(cx: &Ctx<'_>, input: &Input<'_>) -> Result<Response<Body>, ApiError> {
    let caller = caller(cx, input.req).await?;
    let mut body = input.body::<UpdateBody>(schema::Body::UpdateUser)?;
    let user_metadata = body
        .user_metadata
        .take()
        .map(|m| {
            metadata(
                "/user_metadata",
                m,
                cx.policy.claims.metadata_max_bytes,
                Metadata::parse,
            )
        })
        .transpose()?;
    let mut update = ProfileUpdate::try_from(body)?;
    update.patch.user_metadata = user_metadata;
    if let Some(p) = update.phone.take() {
        update.phone = Some(account_phone(cx, "/phone", p)?);
    }
    let user = service::update_user(cx, &caller, update).await?;
    Ok(reply::json(StatusCode::OK, &UserView::from(&user)))
}
