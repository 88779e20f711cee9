//! Request-body JSON Schemas from `edge/schemas/`, turned into validators at compile time.

use serde_json::Value;

use crate::error::{ApiError, FieldError};

/// A request body with a schema: its file in `edge/schemas/`, and the validator generated
/// from that file at compile time (`jsonschema::validator`). Each handler names its own body,
/// so a function's binary links the validators of its own routes and no JSON Schema compiler
/// at all (a runtime-compiled schema linked jsonschema's keyword compiler and two regex
/// engines into every function: bench/RESULTS.md).
#[derive(Clone, Copy)]
pub struct Body {
    pub file: &'static str,
    errors: fn(&Value) -> Vec<FieldError>,
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file
    }
}

impl Eq for Body {}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Body({})", self.file)
    }
}

/// Every violation (at most 20), each as where and what, never the value itself (a password
/// must never come back in an error).
fn field_errors(errors: jsonschema::ErrorIterator<'_>) -> Vec<FieldError> {
    errors
        .take(20)
        .map(|e| FieldError {
            path: e.instance_path().as_str().to_owned(),
            message: e.masked().to_string(),
        })
        .collect()
}

/// The generated validators, one per file, and a `Body` constant for each.
macro_rules! bodies {
    ($($name:ident => $file:literal, $path:literal, $src:literal;)*) => {
        mod generated {
            $(
                // The `regex` engine, which the phone parser links anyway: no pattern here
                // needs look-around or back-references, so `fancy_regex` would be ~90 KB of
                // code in every function for nothing (bench/RESULTS.md).
                #[jsonschema::validator(
                    path = $path,
                    draft = Draft202012,
                    pattern_options = { engine = regex }
                )]
                pub(super) struct $name;
            )*
        }

        #[allow(non_upper_case_globals)]
        impl Body {
            $(
                pub const $name: Body = Body {
                    file: $file,
                    errors: |v| field_errors(generated::$name::iter_errors(v)),
                };
            )*
        }

        /// Schema sources, by body, as shipped in `edge/schemas/` (the document and the tests
        /// read them; the validators are generated from the same files).
        pub const SOURCES: [(Body, &str, &str); [$($file),*].len()] = [
            $((Body::$name, $file, include_str!($src)),)*
        ];
    };
}

bodies! {
    Signup => "signup.json", "schemas/signup.json", "../schemas/signup.json";
    Login => "login.json", "schemas/login.json", "../schemas/login.json";
    UpdateUser => "update_user.json", "schemas/update_user.json", "../schemas/update_user.json";
    Logout => "logout.json", "schemas/logout.json", "../schemas/logout.json";
    Refresh => "refresh.json", "schemas/refresh.json", "../schemas/refresh.json";
    DeleteUser => "delete_user.json", "schemas/delete_user.json", "../schemas/delete_user.json";
    PhoneStart => "phone_start.json", "schemas/phone_start.json", "../schemas/phone_start.json";
    PhoneConfirm => "phone_confirm.json", "schemas/phone_confirm.json", "../schemas/phone_confirm.json";
    RecoverStart => "recover_start.json", "schemas/recover_start.json", "../schemas/recover_start.json";
    RecoverConfirm => "recover_confirm.json", "schemas/recover_confirm.json", "../schemas/recover_confirm.json";
    EmailStart => "email_start.json", "schemas/email_start.json", "../schemas/email_start.json";
    EmailConfirm => "email_confirm.json", "schemas/email_confirm.json", "../schemas/email_confirm.json";
    LoginMfa => "login_mfa.json", "schemas/login_mfa.json", "../schemas/login_mfa.json";
    StepUp => "step_up.json", "schemas/step_up.json", "../schemas/step_up.json";
    TotpConfirm => "totp_confirm.json", "schemas/totp_confirm.json", "../schemas/totp_confirm.json";
    PasskeyRegister => "passkey_register.json", "schemas/passkey_register.json", "../schemas/passkey_register.json";
    PasskeyLoginStart => "passkey_login_start.json", "schemas/passkey_login_start.json", "../schemas/passkey_login_start.json";
    PasskeyLogin => "passkey_login.json", "schemas/passkey_login.json", "../schemas/passkey_login.json";
    PasskeyStepUp => "passkey_step_up.json", "schemas/passkey_step_up.json", "../schemas/passkey_step_up.json";
    PasskeyRename => "passkey_rename.json", "schemas/passkey_rename.json", "../schemas/passkey_rename.json";
    AppMetadata => "app_metadata.json", "schemas/app_metadata.json", "../schemas/app_metadata.json";
    FederationToken => "federation_token.json", "schemas/federation_token.json", "../schemas/federation_token.json";
    IdentityLink => "identity_link.json", "schemas/identity_link.json", "../schemas/identity_link.json";
    FederationExchange => "federation_exchange.json", "schemas/federation_exchange.json", "../schemas/federation_exchange.json";
}

/// The request-body validators. They hold nothing: each is generated code, ready before the
/// first request (no schema is compiled at run time).
#[derive(Debug, Default, Clone, Copy)]
pub struct Schemas;

impl Schemas {
    pub fn new() -> Self {
        Self
    }

    /// Checks `instance` against the schema for `body`, listing every violation without
    /// echoing submitted values.
    pub fn validate(&self, body: Body, instance: &Value) -> Result<(), ApiError> {
        let errors = (body.errors)(instance);
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
        Schemas::new()
    }

    #[test]
    fn every_shipped_schema_is_json_and_each_body_names_its_own_file() {
        for (body, file, src) in SOURCES {
            assert_eq!(body.file, file);
            assert!(serde_json::from_str::<Value>(src).is_ok(), "{file}");
        }
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
