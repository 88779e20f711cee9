//! Request-body JSON Schemas from `edge/schemas/`, embedded at build time and compiled once
//! per cold start.

use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use serde_json::Value;

use crate::error::{ApiError, FieldError};

/// The request bodies that have a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Signup,
    Login,
    UpdateUser,
    Logout,
    Refresh,
    DeleteUser,
    PhoneStart,
    PhoneConfirm,
    RecoverStart,
    RecoverConfirm,
    EmailStart,
    EmailConfirm,
    LoginMfa,
    StepUp,
    TotpConfirm,
    PasskeyRegister,
    PasskeyLoginStart,
    PasskeyLogin,
    PasskeyStepUp,
    PasskeyRename,
    AppMetadata,
    FederationToken,
    IdentityLink,
    FederationExchange,
}

/// Schema sources, by body, as shipped in `edge/schemas/`.
pub const SOURCES: [(Body, &str, &str); 24] = [
    (
        Body::Signup,
        "signup.json",
        include_str!("../schemas/signup.json"),
    ),
    (
        Body::Login,
        "login.json",
        include_str!("../schemas/login.json"),
    ),
    (
        Body::UpdateUser,
        "update_user.json",
        include_str!("../schemas/update_user.json"),
    ),
    (
        Body::Logout,
        "logout.json",
        include_str!("../schemas/logout.json"),
    ),
    (
        Body::Refresh,
        "refresh.json",
        include_str!("../schemas/refresh.json"),
    ),
    (
        Body::DeleteUser,
        "delete_user.json",
        include_str!("../schemas/delete_user.json"),
    ),
    (
        Body::PhoneStart,
        "phone_start.json",
        include_str!("../schemas/phone_start.json"),
    ),
    (
        Body::PhoneConfirm,
        "phone_confirm.json",
        include_str!("../schemas/phone_confirm.json"),
    ),
    (
        Body::RecoverStart,
        "recover_start.json",
        include_str!("../schemas/recover_start.json"),
    ),
    (
        Body::RecoverConfirm,
        "recover_confirm.json",
        include_str!("../schemas/recover_confirm.json"),
    ),
    (
        Body::EmailStart,
        "email_start.json",
        include_str!("../schemas/email_start.json"),
    ),
    (
        Body::EmailConfirm,
        "email_confirm.json",
        include_str!("../schemas/email_confirm.json"),
    ),
    (
        Body::LoginMfa,
        "login_mfa.json",
        include_str!("../schemas/login_mfa.json"),
    ),
    (
        Body::StepUp,
        "step_up.json",
        include_str!("../schemas/step_up.json"),
    ),
    (
        Body::TotpConfirm,
        "totp_confirm.json",
        include_str!("../schemas/totp_confirm.json"),
    ),
    (
        Body::PasskeyRegister,
        "passkey_register.json",
        include_str!("../schemas/passkey_register.json"),
    ),
    (
        Body::PasskeyLoginStart,
        "passkey_login_start.json",
        include_str!("../schemas/passkey_login_start.json"),
    ),
    (
        Body::PasskeyLogin,
        "passkey_login.json",
        include_str!("../schemas/passkey_login.json"),
    ),
    (
        Body::PasskeyStepUp,
        "passkey_step_up.json",
        include_str!("../schemas/passkey_step_up.json"),
    ),
    (
        Body::PasskeyRename,
        "passkey_rename.json",
        include_str!("../schemas/passkey_rename.json"),
    ),
    (
        Body::AppMetadata,
        "app_metadata.json",
        include_str!("../schemas/app_metadata.json"),
    ),
    (
        Body::FederationToken,
        "federation_token.json",
        include_str!("../schemas/federation_token.json"),
    ),
    (
        Body::IdentityLink,
        "identity_link.json",
        include_str!("../schemas/identity_link.json"),
    ),
    (
        Body::FederationExchange,
        "federation_exchange.json",
        include_str!("../schemas/federation_exchange.json"),
    ),
];

/// Validators, one per body, each compiled once, on first use: a function compiles only the
/// schema its own route needs, and never during a cold start.
pub struct Schemas {
    validators: [OnceLock<Result<Validator, String>>; SOURCES.len()],
}

fn compile(file: &str, src: &str) -> Result<Validator, String> {
    let schema: Value = serde_json::from_str(src).map_err(|e| format!("{file}: {e}"))?;
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(&schema)
        .map_err(|e| format!("{file}: {e}"))
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new()
    }
}

impl Schemas {
    /// Nothing compiled yet.
    pub fn new() -> Self {
        Self {
            validators: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Compiles every schema now, reporting the first broken one (tests, tools).
    pub fn compile() -> Result<Self, String> {
        let schemas = Self::new();
        for (i, (_, file, src)) in SOURCES.iter().enumerate() {
            schemas.validators[i]
                .get_or_init(|| compile(file, src))
                .as_ref()
                .map_err(Clone::clone)?;
        }
        Ok(schemas)
    }

    fn validator(&self, body: Body) -> Result<&Validator, ApiError> {
        let i = SOURCES
            .iter()
            .position(|(b, _, _)| *b == body)
            .ok_or(ApiError::Internal)?;
        let (_, file, src) = SOURCES[i];
        self.validators[i]
            .get_or_init(|| compile(file, src))
            .as_ref()
            .map_err(|e| {
                tracing::error!(error = %e, "shipped schema does not compile");
                ApiError::Internal
            })
    }

    /// Checks `instance` against the schema for `body`, listing every violation without
    /// echoing submitted values (a password must never come back in an error).
    pub fn validate(&self, body: Body, instance: &Value) -> Result<(), ApiError> {
        let errors: Vec<FieldError> = self
            .validator(body)?
            .iter_errors(instance)
            .take(20)
            .map(|e| FieldError {
                path: e.instance_path().as_str().to_owned(),
                message: e.masked().to_string(),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas() -> Schemas {
        Schemas::compile().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_shipped_schema_compiles() {
        assert!(Schemas::compile().is_ok(), "{:?}", Schemas::compile().err());
    }

    #[test]
    fn seed_signup_body_is_valid() {
        let body = json!({"first_name": "John", "middle_name": "Doe", "last_name": "Smith",
                          "password": "securepassword123", "phone": "1234567890"});
        assert!(schemas().validate(Body::Signup, &body).is_ok());
    }

    #[test]
    fn operator_injection_in_phone_is_rejected_with_its_path() {
        let body = json!({"phone": {"$ne": null}, "password": "x"});
        match schemas().validate(Body::Login, &body) {
            Err(ApiError::Validation(errs)) => {
                assert!(errs.iter().any(|e| e.path == "/phone"), "{errs:?}")
            }
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn validation_messages_never_echo_the_password() {
        let body =
            json!({"phone": "1234567890", "password": "x".repeat(200), "extra": "sekrit-value"});
        let Err(ApiError::Validation(errs)) = schemas().validate(Body::Login, &body) else {
            panic!("expected validation error")
        };
        let text = format!("{errs:?}");
        assert!(
            !text.contains("xxxxxxxx") && !text.contains("sekrit-value"),
            "{text}"
        );
    }

    #[test]
    fn update_with_only_an_id_is_rejected() {
        let body = json!({"_id": {"$oid": "0123456789abcdef01234567"}});
        assert!(schemas().validate(Body::UpdateUser, &body).is_err());
    }
}
