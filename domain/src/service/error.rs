//! What a domain operation can answer besides success. No HTTP here: the edge crate maps
//! each variant to a status and a problem code.

use crate::store::StoreError;

/// A domain outcome other than success, or a failure underneath.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nothing to update")]
    NothingToUpdate,
    #[error("current_password is required to change the password or the phone")]
    CurrentPasswordRequired,
    #[error("invalid identifier or password")]
    InvalidCredentials,
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("not allowed to act on this user")]
    Forbidden,
    #[error("current_password is not the account's password")]
    CurrentPasswordIncorrect,
    #[error("phone number is already registered")]
    PhoneTaken,
    #[error("email address is already registered")]
    EmailTaken,
    /// A signup named neither a phone nor an email address.
    #[error("a phone or an email address is required")]
    IdentifierRequired,
    /// The password was right, but an operator has disabled the account.
    #[error("account disabled")]
    AccountDisabled,
    /// An operator named a user that does not exist.
    #[error("no such user")]
    UserNotFound,
    /// The code is wrong, expired, already used or out of attempts (one answer for all).
    #[error("the code is wrong, expired or used up")]
    InvalidCode,
    /// The password is right but the account's phone is not verified yet.
    #[error("the phone number is not verified yet")]
    PhoneUnverified,
    /// The password is right but the address it logged in with is not verified yet.
    #[error("the email address is not verified yet")]
    EmailUnverified,
    /// SMS may not go to this phone's country.
    #[error("phone's country is not served")]
    CountryNotServed,
    /// No code could be sent (no sender, or the provider failed); worth retrying later.
    #[error("sms unavailable: {0}")]
    SmsUnavailable(String),
    /// No mail could be sent (no sender, or the provider failed); worth retrying later.
    #[error("mail unavailable: {0}")]
    MailUnavailable(String),
    /// The change needs a second factor proven recently (POST /session/step-up).
    #[error("a recent second-factor authentication is required")]
    StepUpRequired,
    /// Second factors are required and the account has none: enrol one first.
    #[error("a second factor must be enrolled first")]
    MfaEnrolmentRequired,
    /// Second factors are switched off (`REQUIRE_MFA=off`).
    #[error("second factors are not enabled")]
    MfaDisabled,
    /// The account already has a factor of this kind.
    #[error("the account already has this factor")]
    FactorExists,
    /// The account has no such factor.
    #[error("no such factor")]
    FactorNotFound,
    /// The browser's passkey answer was refused (the reason is logged, not told).
    #[error("the passkey was refused")]
    PasskeyRefused,
    /// The account holds the most passkeys it may (`PASSKEY_MAX_PER_USER`).
    #[error("the account holds the most passkeys it may")]
    PasskeyLimit,
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    /// The account's claims make an access token over `ACCESS_TOKEN_MAX_BYTES`.
    #[error("the access token would exceed ACCESS_TOKEN_MAX_BYTES")]
    TokenTooLarge,
    /// The `pre_signup` hook refused the signup, with this message for the client.
    #[error("signup refused: {0}")]
    SignupRefused(String),
    /// A hook that fails closed failed (unreachable, too slow, or an answer it may not
    /// give): the step is not taken.
    #[error("a hook that fails closed failed")]
    HookFailed,
    /// No such identity provider here (or federation is off).
    #[error("no such identity provider")]
    UnknownProvider,
    /// The provider's token was refused (signature, issuer, audience, time or nonce; the
    /// reason is logged, not told).
    #[error("the provider's token was refused")]
    ProviderTokenRefused,
    /// The provider's keys could not be had; worth retrying.
    #[error("identity provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// A provider's identity with a verified address an existing account holds: the client
    /// signs in to that account and links the identity there (never merged silently).
    #[error("an account with this email exists: sign in to it and link the provider")]
    LinkRequired,
    /// The provider's identity belongs to another account.
    #[error("this identity is linked to another account")]
    IdentityTaken,
    /// The browser sign-in's app redirect target is not on `FEDERATION_REDIRECT_URLS`.
    #[error("the redirect target is not on the allow-list")]
    RedirectNotAllowed,
    /// The browser sign-in's callback carries a `state` that is missing, forged, used,
    /// expired or another browser's.
    #[error("the sign-in state is not valid here")]
    FederationStateInvalid,
    /// The browser sign-in is not set up (no `FEDERATION_REDIRECT_URLS`, or no URL for the
    /// provider to call back).
    #[error("browser sign-in is not configured")]
    BrowserSignInOff,
    /// Unlinking would leave the account no way to sign in.
    #[error("the account's last way to sign in cannot be removed")]
    LastSignInMethod,
    /// Metadata an operator set would make the account's tokens too large.
    #[error("the roles and claims would make an access token over ACCESS_TOKEN_MAX_BYTES")]
    ClaimsTooLarge,
    /// The country or daily SMS budget ran out between the guard's look and the send: 429
    /// where it is answered, and where the answer must not tell whether the phone has an
    /// account (recovery), answered as if nothing had been sent.
    #[error("SMS budget spent")]
    SmsBudgetSpent { retry_after_secs: u64 },
    /// The database could not be reached in time; worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the cause is for the log, never for the client.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// An internal failure with its cause.
    pub fn internal(what: &str, cause: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{what}: {cause}"))
    }
}

impl From<crate::auth::password::PasswordError> for Error {
    fn from(e: crate::auth::password::PasswordError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            // A duplicate that an operation expects is matched before this conversion.
            StoreError::Duplicate => Self::Internal("unexpected duplicate key".to_owned()),
            StoreError::Other(cause) => Self::Internal(cause),
        }
    }
}
