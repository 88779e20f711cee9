//! The operator routes under `/admin/users`, served by the `admin` function. API Gateway lets
//! a request through only when it is SigV4-signed by a principal the admin policy allows
//! (`AWS_IAM` authorizer); this handler also refuses any request whose context carries no
//! IAM identity, so a route deployed without the authorizer (or the dev server) fails closed.

use lambda_http::{Body, Request, RequestExt, Response, http::StatusCode, request::RequestContext};
use serde::Serialize;

use super::{
    extract::{Input, field},
    reply::{self, UserView},
};
use crate::{
    error::{ApiError, FieldError},
    routes::Endpoint,
};
use domain::{
    claims::Metadata,
    identity::{Email, Identifier},
    service::{
        Ctx,
        admin::{self, Actor},
    },
    store::UserRecord,
    types::{Invalid, Phone, UserId},
};

/// What an operator sees of a user: the public profile and the account's state, never the
/// hash.
#[derive(Serialize)]
struct AdminUserView<'a> {
    #[serde(flatten)]
    profile: UserView<'a>,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl<'a> From<&'a UserRecord> for AdminUserView<'a> {
    fn from(u: &'a UserRecord) -> Self {
        Self {
            profile: UserView::from(u),
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Serialize)]
struct SessionsEnded {
    sessions_ended: u64,
}

/// The IAM principal API Gateway verified (payload 2.0 `requestContext.authorizer.iam`): its
/// ARN, else its caller id or access key. 401 without one (no credentials; behind the
/// AWS_IAM authorizer a request without a valid signature never gets here).
fn actor(req: &Request) -> Result<Actor, ApiError> {
    let iam = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref())
        }
        _ => None,
    };
    let principal = iam.and_then(|iam| {
        [&iam.user_arn, &iam.caller_id, &iam.access_key]
            .into_iter()
            .flatten()
            .find(|s| !s.trim().is_empty())
            .cloned()
    });
    match principal {
        Some(p) => Ok(Actor(p)),
        None => {
            tracing::warn!(target: "audit", event = "admin", outcome = "no_iam_identity");
            Err(ApiError::Unauthorized)
        }
    }
}

fn user_id(endpoint: Endpoint, req: &Request) -> Result<UserId, ApiError> {
    let raw = endpoint.param("id", req.uri().path()).unwrap_or_default();
    field(
        "/id",
        UserId::parse_hex(raw).ok_or(Invalid("user id must be 24 hex digits")),
    )
}

/// `phone` or `email` from the query string, percent-decoded (`+` is `%2B`).
fn identifier_query(req: &Request) -> Result<Identifier, ApiError> {
    let query = req.uri().query().unwrap_or_default();
    let value = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let decoded = |path: &str, raw: &str| {
        field(
            path,
            percent_decode(raw).ok_or(Invalid("not valid percent-encoding")),
        )
    };
    match (value("phone"), value("email")) {
        (Some(raw), None) => {
            field("?phone", Phone::parse(&decoded("?phone", raw)?)).map(Identifier::Phone)
        }
        (None, Some(raw)) => {
            field("?email", Email::parse(&decoded("?email", raw)?)).map(Identifier::Email)
        }
        _ => Err(ApiError::Validation(vec![FieldError {
            path: "?phone".to_owned(),
            message: "exactly one of the phone and email query parameters is required".to_owned(),
        }])),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// One admin endpoint: the principal first, then the target, then one domain call.
pub(super) async fn handle(
    cx: &Ctx<'_>,
    endpoint: Endpoint,
    input: &Input<'_>,
) -> Result<Response<Body>, ApiError> {
    let req = input.req;
    let actor = actor(req)?;
    let view = |u: &UserRecord| reply::json(StatusCode::OK, &AdminUserView::from(u));
    match endpoint {
        Endpoint::AdminFindUser => {
            let identifier = identifier_query(req)?;
            Ok(view(&admin::find_by(cx, &actor, &identifier).await?))
        }
        Endpoint::AdminGetUser => {
            let id = user_id(endpoint, req)?;
            Ok(view(&admin::find_by_id(cx, &actor, &id).await?))
        }
        Endpoint::AdminDisableUser | Endpoint::AdminEnableUser => {
            let id = user_id(endpoint, req)?;
            let disabled = endpoint == Endpoint::AdminDisableUser;
            Ok(view(&admin::set_disabled(cx, &actor, &id, disabled).await?))
        }
        Endpoint::AdminLogoutUser => {
            let id = user_id(endpoint, req)?;
            let sessions_ended = admin::end_sessions(cx, &actor, &id).await?;
            Ok(reply::json(
                StatusCode::OK,
                &SessionsEnded { sessions_ended },
            ))
        }
        Endpoint::AdminDeleteUser => {
            let id = user_id(endpoint, req)?;
            if admin::delete(cx, &actor, &id).await? {
                Ok(reply::no_content())
            } else {
                Err(ApiError::UserNotFound)
            }
        }
        Endpoint::AdminResetMfa => {
            let id = user_id(endpoint, req)?;
            Ok(view(&admin::reset_mfa(cx, &actor, &id).await?))
        }
        Endpoint::AdminSetAppMetadata => {
            let id = user_id(endpoint, req)?;
            // `app_metadata.json` documents what `Metadata::parse_app` checks in full.
            let body = input.json_value()?;
            let m = super::user::metadata(
                "",
                body,
                cx.policy.claims.metadata_max_bytes,
                Metadata::parse_app,
            )?;
            Ok(view(&admin::set_app_metadata(cx, &actor, &id, m).await?))
        }
        _ => Err(ApiError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("%2B1%20202").as_deref(), Some("+1 202"));
        assert_eq!(percent_decode("5550101").as_deref(), Some("5550101"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
    }
}
