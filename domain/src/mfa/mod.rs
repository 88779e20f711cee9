//! Second factors and the settings of multi-factor authentication: which credentials count
//! as a second factor, whether a sign-in must use one (`REQUIRE_MFA`), how fresh an AAL2
//! proof must be for a sensitive change (`STEP_UP_MAX_AGE_SECONDS`), and how long a
//! password-accepted sign-in waits for its second factor (`MFA_CHALLENGE_TTL_SECONDS`).
//! The flows are in `service::mfa`; the factors' own rules in [`totp`] and [`recovery`].

pub mod recovery;
pub mod totp;

use crate::{
    config::{ConfigError, Vars},
    credential::CredentialKind,
    store::{StoredCredential, UserRecord},
};

/// Whether sign-ins use second factors (`REQUIRE_MFA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaMode {
    /// No second factor is asked for or can be enrolled.
    Off,
    /// A user who enrolled one is asked for it at every password sign-in (the default).
    Optional,
    /// As `Optional`, and a user without one gets a single-factor session that may only
    /// enrol one (every other route answers 403 `mfa_enrolment_required`).
    Required,
}

/// The settings of multi-factor authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaSettings {
    pub mode: MfaMode,
    /// How old an AAL2 proof may be for a sensitive change, seconds (default 600).
    pub step_up_max_age: i64,
    /// How long a sign-in waits for its second factor, seconds (default 300).
    pub challenge_ttl: i64,
    /// The issuer shown in authenticator apps (`TOTP_ISSUER`, default `User API`).
    pub totp_issuer: String,
}

impl Default for MfaSettings {
    fn default() -> Self {
        Self {
            mode: MfaMode::Optional,
            step_up_max_age: 600,
            challenge_ttl: 300,
            totp_issuer: "User API".to_owned(),
        }
    }
}

impl MfaSettings {
    /// Reads `REQUIRE_MFA`, `STEP_UP_MAX_AGE_SECONDS`, `MFA_CHALLENGE_TTL_SECONDS` and
    /// `TOTP_ISSUER`.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let d = Self::default();
        let mode = match vars
            .get("REQUIRE_MFA")
            .map(|m| m.trim().to_ascii_lowercase())
        {
            None => d.mode,
            Some(m) => match m.as_str() {
                "off" => MfaMode::Off,
                "optional" => MfaMode::Optional,
                "required" => MfaMode::Required,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "REQUIRE_MFA".to_owned(),
                        reason: "must be off, optional or required".to_owned(),
                    });
                }
            },
        };
        let secs = |name: &str, default: i64| -> Result<i64, ConfigError> {
            let d = u64::try_from(default).unwrap_or_default();
            Ok(i64::try_from(vars.seconds(name, d)?.as_secs()).unwrap_or(default))
        };
        Ok(Self {
            mode,
            step_up_max_age: secs("STEP_UP_MAX_AGE_SECONDS", d.step_up_max_age)?,
            challenge_ttl: secs("MFA_CHALLENGE_TTL_SECONDS", d.challenge_ttl)?,
            totp_issuer: vars
                .get("TOTP_ISSUER")
                .map(|i| i.trim().to_owned())
                .filter(|i| !i.is_empty())
                .unwrap_or(d.totp_issuer),
        })
    }
}

/// Whether a credential of `kind` is a second factor (recovery codes stand in for one but
/// do not make an account multi-factor on their own).
pub const fn is_second_factor(kind: CredentialKind) -> bool {
    matches!(kind, CredentialKind::Totp | CredentialKind::Passkey)
}

/// The account's second factors.
pub fn second_factors(user: &UserRecord) -> impl Iterator<Item = &StoredCredential> {
    user.credentials
        .iter()
        .filter(|c| is_second_factor(c.record.kind))
}

/// Whether the account has a second factor.
pub fn has_second_factor(user: &UserRecord) -> bool {
    second_factors(user).next().is_some()
}

/// The credential of `kind`, if the account has one.
pub fn credential(user: &UserRecord, kind: CredentialKind) -> Option<&StoredCredential> {
    user.credentials.iter().find(|c| c.record.kind == kind)
}
