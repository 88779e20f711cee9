//! One error type for every failure a client can see, rendered as RFC 9457
//! `application/problem+json`. Domain errors ([`domain::service::Error`]) become these with
//! `From`, which is also where causes of 5xx answers are logged, once.

use lambda_http::{Body, Response, http::StatusCode};
use serde::Serialize;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One schema violation: where in the body, and what is wrong (never the value itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON Pointer into the request body, `""` for the body itself.
    pub path: String,
    /// Human-readable reason.
    pub message: String,
}

/// Every failure a handler can answer with. Each variant owns one status and one stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body failed validation")]
    Validation(Vec<FieldError>),
    #[error("phone is not a number that can receive a code")]
    InvalidPhone(Vec<FieldError>),
    #[error("email is not an address this service accepts")]
    InvalidEmail(Vec<FieldError>),
    #[error("the code is wrong, expired or used up; request a new one")]
    InvalidCode,
    #[error("the phone number is not verified yet: confirm the code sent to it")]
    PhoneUnverified,
    #[error("the email address is not verified yet: confirm the code or link sent to it")]
    EmailUnverified,
    #[error("password does not meet the password rules")]
    WeakPassword(Vec<FieldError>),
    #[error("request body is not valid JSON")]
    MalformedJson,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("invalid phone, email or password")]
    InvalidCredentials,
    #[error("not allowed to act on this user")]
    Forbidden,
    #[error("current_password is not the account's password")]
    CurrentPasswordIncorrect,
    #[error("phone number is already registered")]
    PhoneTaken,
    #[error("email address is already registered")]
    EmailTaken,
    #[error("this account has been disabled")]
    AccountDisabled,
    #[error("no such user")]
    UserNotFound,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("this change needs a second factor proven recently: step up at POST /session/step-up")]
    StepUpRequired,
    #[error("a second factor must be enrolled before anything else (POST /mfa/totp)")]
    MfaEnrolmentRequired,
    #[error("second factors are not enabled on this service")]
    MfaDisabled,
    #[error("the account already has this factor")]
    FactorExists,
    #[error("the account has no such factor")]
    FactorNotFound,
    #[error("the passkey was refused; start the ceremony again")]
    PasskeyRefused,
    #[error("the account holds the most passkeys it may; remove one first")]
    PasskeyLimit,
    #[error("passkeys are not enabled on this service")]
    PasskeysDisabled,
    #[error("no such identity provider on this service")]
    UnknownProvider,
    #[error("the identity provider's token was not accepted")]
    ProviderTokenRefused,
    #[error(
        "an account with this email address exists: sign in to it, then link this provider (POST /user/identities)"
    )]
    LinkRequired,
    #[error("this identity is linked to another account")]
    IdentityTaken,
    #[error("the account's last way to sign in cannot be removed")]
    LastSignInMethod,
    #[error("redirect_uri is not on this service's allow-list (FEDERATION_REDIRECT_URLS)")]
    RedirectNotAllowed,
    #[error(
        "the sign-in's state is missing, used, expired or was started in another browser: start again"
    )]
    FederationStateInvalid,
    #[error("browser sign-in with providers is not configured on this service")]
    BrowserSignInOff,
    /// The app's `pre_signup` hook refused; its message is the detail.
    #[error("{0}")]
    SignupRefused(String),
    #[error("too many failed attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("service temporarily unavailable")]
    Unavailable,
    /// The cause is logged where the error is made; the body never carries it.
    #[error("internal error")]
    Internal,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_)
            | Self::WeakPassword(_)
            | Self::MalformedJson
            | Self::InvalidPhone(_)
            | Self::InvalidEmail(_)
            | Self::InvalidCode
            | Self::PasskeyRefused
            | Self::RedirectNotAllowed
            | Self::FederationStateInvalid => StatusCode::BAD_REQUEST,
            Self::PhoneUnverified | Self::EmailUnverified => StatusCode::FORBIDDEN,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized | Self::InvalidCredentials | Self::ProviderTokenRefused => {
                StatusCode::UNAUTHORIZED
            }
            Self::LinkRequired | Self::IdentityTaken | Self::LastSignInMethod => {
                StatusCode::CONFLICT
            }
            Self::UnknownProvider | Self::BrowserSignInOff => StatusCode::NOT_FOUND,
            Self::Forbidden | Self::CurrentPasswordIncorrect => StatusCode::FORBIDDEN,
            Self::PhoneTaken | Self::EmailTaken | Self::FactorExists | Self::PasskeyLimit => {
                StatusCode::CONFLICT
            }
            Self::StepUpRequired
            | Self::MfaEnrolmentRequired
            | Self::MfaDisabled
            | Self::PasskeysDisabled
            | Self::SignupRefused(_) => StatusCode::FORBIDDEN,
            Self::FactorNotFound => StatusCode::NOT_FOUND,
            Self::AccountDisabled => StatusCode::FORBIDDEN,
            Self::UserNotFound => StatusCode::NOT_FOUND,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code; clients may switch on it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::WeakPassword(_) => "weak_password",
            Self::InvalidPhone(_) => "invalid_phone",
            Self::InvalidEmail(_) => "invalid_email",
            Self::InvalidCode => "invalid_code",
            Self::PhoneUnverified => "phone_unverified",
            Self::EmailUnverified => "email_unverified",
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden => "forbidden",
            Self::CurrentPasswordIncorrect => "current_password_incorrect",
            Self::PhoneTaken => "phone_taken",
            Self::EmailTaken => "email_taken",
            Self::AccountDisabled => "account_disabled",
            Self::UserNotFound => "user_not_found",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::StepUpRequired => "step_up_required",
            Self::MfaEnrolmentRequired => "mfa_enrolment_required",
            Self::MfaDisabled => "mfa_disabled",
            Self::FactorExists => "factor_exists",
            Self::FactorNotFound => "factor_not_found",
            Self::PasskeyRefused => "passkey_refused",
            Self::PasskeyLimit => "passkey_limit",
            Self::PasskeysDisabled => "passkeys_disabled",
            Self::UnknownProvider => "unknown_provider",
            Self::ProviderTokenRefused => "provider_token_refused",
            Self::LinkRequired => "link_required",
            Self::IdentityTaken => "identity_taken",
            Self::LastSignInMethod => "last_sign_in_method",
            Self::RedirectNotAllowed => "redirect_not_allowed",
            Self::FederationStateInvalid => "state_invalid",
            Self::BrowserSignInOff => "browser_sign_in_off",
            Self::SignupRefused(_) => "signup_refused",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::Unavailable => "service_unavailable",
            Self::Internal => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Validation(_) => "Invalid request body",
            Self::WeakPassword(_) => "Password refused",
            Self::InvalidPhone(_) => "Invalid phone number",
            Self::InvalidEmail(_) => "Invalid email address",
            Self::InvalidCode => "Invalid code",
            Self::PhoneUnverified => "Phone not verified",
            Self::EmailUnverified => "Email not verified",
            Self::MalformedJson => "Malformed JSON",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::PayloadTooLarge(_) => "Payload too large",
            Self::Unauthorized => "Unauthorized",
            Self::InvalidCredentials => "Invalid credentials",
            Self::Forbidden => "Forbidden",
            Self::CurrentPasswordIncorrect => "Current password incorrect",
            Self::PhoneTaken => "Phone already registered",
            Self::EmailTaken => "Email already registered",
            Self::AccountDisabled => "Account disabled",
            Self::UserNotFound => "User not found",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::StepUpRequired => "Step-up required",
            Self::MfaEnrolmentRequired => "Second factor required",
            Self::MfaDisabled => "Second factors disabled",
            Self::FactorExists => "Factor exists",
            Self::FactorNotFound => "Factor not found",
            Self::PasskeyRefused => "Passkey refused",
            Self::PasskeyLimit => "Passkey limit reached",
            Self::PasskeysDisabled => "Passkeys disabled",
            Self::UnknownProvider => "Unknown identity provider",
            Self::ProviderTokenRefused => "Provider token refused",
            Self::LinkRequired => "Sign in and link",
            Self::IdentityTaken => "Identity already linked",
            Self::LastSignInMethod => "Last way to sign in",
            Self::RedirectNotAllowed => "Redirect target not allowed",
            Self::FederationStateInvalid => "Sign-in state not valid",
            Self::BrowserSignInOff => "Browser sign-in off",
            Self::SignupRefused(_) => "Signup refused",
            Self::TooManyAttempts { .. } => "Too many attempts",
            Self::Unavailable => "Service unavailable",
            Self::Internal => "Internal server error",
        }
    }

    /// Renders the problem+json response. Infallible: a response is always produced.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let errors = match &self {
            Self::Validation(errors)
            | Self::WeakPassword(errors)
            | Self::InvalidPhone(errors)
            | Self::InvalidEmail(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let problem = Problem {
            kind: format!(
                "https://user-api.dev/problems/{}",
                self.code().replace('_', "-")
            ),
            title: self.title(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code(),
            errors,
        };
        // Serialising plain strings and numbers cannot fail; fall back to a fixed body anyway.
        let body = serde_json::to_string(&problem).unwrap_or_else(|_| {
            r#"{"type":"about:blank","title":"Internal server error","status":500}"#.to_owned()
        });
        let mut builder = Response::builder()
            .status(status)
            .header("content-type", PROBLEM_JSON)
            .header("cache-control", "no-store");
        match &self {
            Self::TooManyAttempts { retry_after_secs } => {
                builder = builder.header("retry-after", retry_after_secs.to_string());
            }
            Self::Unavailable => builder = builder.header("retry-after", "1"),
            Self::Unauthorized => builder = builder.header("www-authenticate", "Bearer"),
            _ => {}
        }
        builder
            .body(Body::Text(body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

impl From<domain::service::Error> for ApiError {
    fn from(e: domain::service::Error) -> Self {
        use domain::service::Error as E;
        match e {
            E::NothingToUpdate => Self::Validation(vec![FieldError {
                path: String::new(),
                message: "no field to update".to_owned(),
            }]),
            E::CurrentPasswordRequired => Self::Validation(vec![FieldError {
                path: "/current_password".to_owned(),
                message: "required to change the password or the phone".to_owned(),
            }]),
            E::InvalidCredentials => Self::InvalidCredentials,
            E::Unauthorized => Self::Unauthorized,
            E::Forbidden => Self::Forbidden,
            E::CurrentPasswordIncorrect => Self::CurrentPasswordIncorrect,
            E::PhoneTaken => Self::PhoneTaken,
            E::EmailTaken => Self::EmailTaken,
            E::IdentifierRequired => Self::Validation(vec![FieldError {
                path: String::new(),
                message: "a phone or an email is required".to_owned(),
            }]),
            E::AccountDisabled => Self::AccountDisabled,
            E::UserNotFound => Self::UserNotFound,
            E::InvalidCode => Self::InvalidCode,
            E::StepUpRequired => Self::StepUpRequired,
            E::MfaEnrolmentRequired => Self::MfaEnrolmentRequired,
            E::MfaDisabled => Self::MfaDisabled,
            E::FactorExists => Self::FactorExists,
            E::FactorNotFound => Self::FactorNotFound,
            E::PasskeyRefused => Self::PasskeyRefused,
            E::TokenTooLarge => Self::Internal,
            E::HookFailed => Self::Unavailable,
            E::SignupRefused(m) => Self::SignupRefused(m),
            E::ClaimsTooLarge => Self::Validation(vec![FieldError {
                path: String::new(),
                message:
                    "the roles and claims would make an access token over ACCESS_TOKEN_MAX_BYTES"
                        .to_owned(),
            }]),
            E::PasskeyLimit => Self::PasskeyLimit,
            E::UnknownProvider => Self::UnknownProvider,
            E::ProviderTokenRefused => Self::ProviderTokenRefused,
            E::ProviderUnavailable(_) => Self::Unavailable,
            E::LinkRequired => Self::LinkRequired,
            E::IdentityTaken => Self::IdentityTaken,
            E::LastSignInMethod => Self::LastSignInMethod,
            E::RedirectNotAllowed => Self::RedirectNotAllowed,
            E::FederationStateInvalid => Self::FederationStateInvalid,
            E::BrowserSignInOff => Self::BrowserSignInOff,
            E::PhoneUnverified => Self::PhoneUnverified,
            E::EmailUnverified => Self::EmailUnverified,
            E::CountryNotServed => Self::InvalidPhone(vec![FieldError {
                path: "/phone".to_owned(),
                message: "phone's country is not served".to_owned(),
            }]),
            E::SmsUnavailable(cause) => {
                tracing::warn!(%cause, "no SMS could be sent");
                Self::Unavailable
            }
            E::MailUnavailable(cause) => {
                tracing::warn!(%cause, "no email could be sent");
                Self::Unavailable
            }
            E::TooManyAttempts { retry_after_secs } | E::SmsBudgetSpent { retry_after_secs } => {
                Self::TooManyAttempts { retry_after_secs }
            }
            E::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Self::Unavailable
            }
            E::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Self::Internal
            }
        }
    }
}
