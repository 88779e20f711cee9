//! Passkeys (WebAuthn Level 3) as the domain sees them: opaque JSON for the browser, opaque
//! state for the ceremony store, and the few facts the service decides on (the credential id,
//! the user it names, whether the user was verified, the backup flags, the AAGUID). The
//! cryptography lives behind [`PasskeyVerifier`], implemented by the `passkeys` crate on
//! webauthn-rs, which only the `passkeys` function, the dev server and the tests link: no other
//! function's binary carries it.

use std::fmt;

use crate::{
    config::{ConfigError, Vars},
    types::UserId,
};

/// Why a ceremony step failed. The reason is for the log; a client is told only that the
/// passkey was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// The browser's answer is not one this ceremony accepts: malformed, another challenge,
    /// another origin or RP id, a bad signature, user verification missing, a counter that
    /// went backwards.
    #[error("passkey refused: {0}")]
    Refused(String),
    /// The verifier itself failed (a state it cannot read).
    #[error("passkey verifier: {0}")]
    Internal(String),
}

/// A passkey as registered: what the account stores.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPasskey {
    /// The credential id, base64url: unique across accounts.
    pub credential_id: String,
    /// The verifier's whole record of it (public key, counter, flags), opaque here.
    pub stored: String,
    /// The authenticator model (all zeros when the authenticator does not say).
    pub aaguid: String,
    /// May be synced to other devices.
    pub backup_eligible: bool,
    /// Is synced now.
    pub backed_up: bool,
}

impl fmt::Debug for NewPasskey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPasskey")
            .field("credential_id", &self.credential_id)
            .field("aaguid", &self.aaguid)
            .finish_non_exhaustive()
    }
}

/// A sign-in assertion checked against a stored passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUse {
    /// The stored record with its counter and backup state brought up to date, when they
    /// changed (the caller writes it back conditionally, so a replay racing it loses).
    pub updated: Option<String>,
    /// The authenticator verified the user (PIN, biometrics): a passkey with it is
    /// multi-factor on its own (AAL2).
    pub user_verified: bool,
    pub backed_up: bool,
}

/// The user a passkey is registered for, as the browser shows it.
#[derive(Debug, Clone)]
pub struct PasskeyUser {
    pub id: UserId,
    /// What the account is called (its email or phone).
    pub name: String,
    pub display_name: String,
}

/// A ceremony's first step: options for `navigator.credentials.create/get`, and the state
/// to keep server-side until the browser answers.
#[derive(Clone)]
pub struct Challenge {
    /// JSON for the browser (`{"publicKey": {...}}`).
    pub options: String,
    /// The verifier's state, kept in the ceremony store and consumed once.
    pub state: Vec<u8>,
}

/// The WebAuthn relying party: ceremonies and their checks.
pub trait PasskeyVerifier: Send + Sync {
    /// Registration options for `user`: a discoverable credential, user verification
    /// required, attestation `none`, excluding the credentials in `exclude` (base64url ids).
    fn start_registration(
        &self,
        user: &PasskeyUser,
        exclude: &[String],
    ) -> Result<Challenge, PasskeyError>;

    /// Checks the browser's registration answer (JSON) against `state`.
    fn finish_registration(&self, answer: &str, state: &[u8]) -> Result<NewPasskey, PasskeyError>;

    /// Sign-in options: for any discoverable credential when `allow` is empty (passwordless),
    /// else for those stored records (a second factor for a known user).
    fn start_authentication(&self, allow: &[String]) -> Result<Challenge, PasskeyError>;

    /// The user (its handle, when the authenticator returns one: a discoverable credential
    /// does) and the credential id (base64url) an assertion (JSON) names, before any check:
    /// what to look up.
    fn identify(&self, answer: &str) -> Result<(Option<UserId>, String), PasskeyError>;

    /// Checks the assertion against `state` and the stored record of the credential it
    /// names.
    fn finish_authentication(
        &self,
        answer: &str,
        state: &[u8],
        stored: &str,
    ) -> Result<PasskeyUse, PasskeyError>;
}

/// Passkeys as a deployment has them: the settings and the relying party.
pub struct Passkeys {
    pub settings: PasskeySettings,
    pub verifier: Box<dyn PasskeyVerifier>,
}

/// What the account keeps of one passkey, as its credential's secret (JSON): the verifier's
/// record and the facts shown to its owner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredPasskey {
    /// The verifier's record (public key, counter).
    pub record: String,
    pub aaguid: String,
    pub backup_eligible: bool,
    pub backed_up: bool,
}

/// The relying party's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeySettings {
    /// `PASSKEY_RP_ID`: the domain passkeys are bound to (changing it later makes every
    /// passkey unusable).
    pub rp_id: String,
    /// `PASSKEY_RP_NAME`: what the browser shows.
    pub rp_name: String,
    /// `PASSKEY_ORIGINS`: the web origins allowed to run ceremonies (comma-separated).
    pub origins: Vec<String>,
    /// `PASSKEY_MAX_PER_USER`: passkeys one account may hold (default 10).
    pub max_per_user: usize,
}

impl PasskeySettings {
    /// The settings, or `None` when `PASSKEY_RP_ID` is unset (passkeys off).
    pub fn from_vars(vars: &Vars) -> Result<Option<Self>, ConfigError> {
        let Some(rp_id) = vars
            .get("PASSKEY_RP_ID")
            .map(|r| r.trim().to_ascii_lowercase())
            .filter(|r| !r.is_empty())
        else {
            return Ok(None);
        };
        let origins: Vec<String> = vars
            .get("PASSKEY_ORIGINS")
            .map(|o| {
                o.split(',')
                    .map(|x| x.trim().trim_end_matches('/').to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_else(|| vec![format!("https://{rp_id}")]);
        let bad = |reason: &str| ConfigError::Invalid {
            name: "PASSKEY_ORIGINS".to_owned(),
            reason: reason.to_owned(),
        };
        for o in &origins {
            let host = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .ok_or_else(|| bad("each origin is https://host[:port]"))?;
            let host = host.split(':').next().unwrap_or_default();
            if !(host == rp_id || host.ends_with(&format!(".{rp_id}"))) {
                return Err(bad(
                    "each origin's host is PASSKEY_RP_ID or a subdomain of it",
                ));
            }
            if o.starts_with("http://") && host != "localhost" {
                return Err(bad("http:// only for localhost"));
            }
        }
        let max = match vars.get("PASSKEY_MAX_PER_USER") {
            None => 10,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| ConfigError::BadNumber {
                    name: "PASSKEY_MAX_PER_USER".to_owned(),
                })?,
        };
        Ok(Some(Self {
            rp_name: vars
                .get("PASSKEY_RP_NAME")
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| rp_id.clone()),
            rp_id,
            origins,
            max_per_user: max,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn settings_bind_origins_to_the_rp_id() {
        assert_eq!(PasskeySettings::from_vars(&vars(&[])).unwrap(), None);
        let s = PasskeySettings::from_vars(&vars(&[("PASSKEY_RP_ID", "Example.com")]))
            .unwrap()
            .unwrap();
        assert_eq!(s.rp_id, "example.com");
        assert_eq!(s.origins, ["https://example.com"]);
        assert_eq!(s.max_per_user, 10);
        let s = PasskeySettings::from_vars(&vars(&[
            ("PASSKEY_RP_ID", "localhost"),
            (
                "PASSKEY_ORIGINS",
                "http://localhost:8000, http://localhost:5173/",
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            s.origins,
            ["http://localhost:8000", "http://localhost:5173"]
        );
        for (origins, why) in [
            ("https://evil.com", "another site"),
            ("http://app.example.com", "plain http off localhost"),
            ("example.com", "no scheme"),
        ] {
            let r = PasskeySettings::from_vars(&vars(&[
                ("PASSKEY_RP_ID", "example.com"),
                ("PASSKEY_ORIGINS", origins),
            ]));
            assert!(r.is_err(), "{why}");
        }
        let r = PasskeySettings::from_vars(&vars(&[
            ("PASSKEY_RP_ID", "example.com"),
            ("PASSKEY_MAX_PER_USER", "0"),
        ]));
        assert!(r.is_err());
    }
}
