use lambda_http::{
    Body, Request, Response,
    http::{Method, StatusCode},
};
use serde_json::Value;

use tracing::Instrument;

use super::{caller, json_response, method_is, read_json, respond, span, str_field, user_json};
use crate::{
    error::{ApiError, FieldError},
    schema,
    service::{self, PasswordChange},
    state::State,
    store::UserPatch,
    types::{Name, Password, Phone, UserId},
};

fn parse_password_change(v: &Value) -> Result<Option<PasswordChange>, ApiError> {
    // The schema makes the two fields come together.
    match (str_field(v, "password"), str_field(v, "current_password")) {
        (Some(new), Some(current)) => Ok(Some(PasswordChange {
            new: Password::parse(new.to_owned(), "/password")?,
            current: Password::unchecked(current.to_owned()),
        })),
        _ => Ok(None),
    }
}

fn parse_patch(v: &Value) -> Result<(UserId, UserPatch), ApiError> {
    let id = v
        .get("_id")
        .and_then(|id| id.get("$oid"))
        .and_then(Value::as_str)
        .and_then(UserId::parse_hex)
        .ok_or_else(|| {
            ApiError::Validation(vec![FieldError {
                path: "/_id".into(),
                message: "must be {\"$oid\": \"<24 hex digits>\"}".into(),
            }])
        })?;
    let name = |field: &str| -> Result<Option<Name>, ApiError> {
        str_field(v, field)
            .map(|s| Name::parse(s, &format!("/{field}")))
            .transpose()
    };
    let middle_name = match v.get("middle_name") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(m) => match m.as_str().map(str::trim) {
            Some("") => Some(None),
            Some(s) => Some(Some(Name::parse(s, "/middle_name")?)),
            None => None,
        },
    };
    let patch = UserPatch {
        first_name: name("first_name")?,
        middle_name,
        last_name: name("last_name")?,
        phone: str_field(v, "phone")
            .map(|p| Phone::parse(p, "/phone"))
            .transpose()?,
        password_hash: None,
    };
    Ok((id, patch))
}

/// GET /user returns the caller's profile; PUT /user updates it.
pub async fn user(state: &State, req: Request) -> Response<Body> {
    let span = span(&req, "user");
    respond(
        async {
            let caller = caller(state, &req).await?;
            if method_is(&req, &Method::GET) {
                let user = service::profile(state.store.as_ref(), &caller).await?;
                return Ok(json_response(StatusCode::OK, &user_json(&user)));
            }
            if !method_is(&req, &Method::PUT) {
                return Err(ApiError::MethodNotAllowed);
            }
            let body = read_json(state, &req, schema::Body::UpdateUser)?;
            let (target, patch) = parse_patch(&body)?;
            let change = parse_password_change(&body)?;
            let user = service::update_user(
                state.store.as_ref(),
                &state.settings,
                &caller,
                target,
                patch,
                change,
                state.clock.now(),
            )
            .await?;
            Ok(json_response(StatusCode::OK, &user_json(&user)))
        }
        .instrument(span)
        .await,
    )
}
