use lambda_http::{Body, Request, Response, http::StatusCode};

use tracing::Instrument;

use super::{json_response, read_json, respond, span, str_field, user_json};
use crate::{
    error::ApiError,
    schema,
    service::{self, NewUser},
    state::State,
    types::{Name, Password, Phone},
};

fn parse(v: &serde_json::Value) -> Result<NewUser, ApiError> {
    let req = |name: &str| str_field(v, name).unwrap_or_default();
    Ok(NewUser {
        first_name: Name::parse(req("first_name"), "/first_name")?,
        middle_name: match str_field(v, "middle_name").map(str::trim) {
            None | Some("") => None,
            Some(m) => Some(Name::parse(m, "/middle_name")?),
        },
        last_name: Name::parse(req("last_name"), "/last_name")?,
        phone: Phone::parse(req("phone"), "/phone")?,
        password: Password::parse(req("password").to_owned(), "/password")?,
    })
}

/// POST /signup: 201 with the new user, 409 when the phone is taken.
pub async fn signup(state: &State, req: Request) -> Response<Body> {
    let span = span(&req, "signup");
    respond(async {
        let body = read_json(state, &req, schema::Body::Signup)?;
        let new_user = parse(&body)?;
        let user = service::signup(state.store.as_ref(), new_user, state.clock.now()).await;
        match &user {
            Ok(u) => tracing::info!(target: "audit", event = "signup", outcome = "success", user_id = %u.id),
            Err(e) => tracing::info!(target: "audit", event = "signup", outcome = e.code()),
        }
        Ok(json_response(StatusCode::CREATED, &user_json(&user?)))
    }
    .instrument(span)
    .await)
}
