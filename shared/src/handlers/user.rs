use lambda_http::{
    Body, Request, Response,
    http::{Method, StatusCode},
};
use serde_json::Value;

use super::{caller, json_response, method_is, read_json, respond, str_field, user_json};
use crate::{
    error::{ApiError, FieldError},
    schema, service,
    state::State,
    store::UserPatch,
    types::{Name, Phone, UserId},
};

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
            let body = read_json(state, &req, schema::Body::UpdateUser)
                .map_err(|e| password_hint(&req, e))?;
            let (target, patch) = parse_patch(&body)?;
            let user = service::update_user(
                state.store.as_ref(),
                &caller,
                target,
                patch,
                state.clock.now(),
            )
            .await?;
            Ok(json_response(StatusCode::OK, &user_json(&user)))
        }
        .await,
    )
}

/// A password in an update body is refused by the schema; say why in words a client can act on.
fn password_hint(req: &Request, e: ApiError) -> ApiError {
    let body = super::body_bytes(req);
    let has_password = serde_json::from_slice::<Value>(body)
        .ok()
        .is_some_and(|v| v.get("password").is_some());
    match e {
        ApiError::Validation(mut errors) if has_password => {
            errors.insert(
                0,
                FieldError {
                    path: "/password".into(),
                    message: "the password cannot be changed through this endpoint".into(),
                },
            );
            ApiError::Validation(errors)
        }
        other => other,
    }
}
