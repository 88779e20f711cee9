//! Credentials: what proves an account is yours. Each is a unit with an id, a kind, a label
//! and its times, so an account can hold several (a password now; TOTP, passkeys and recovery
//! codes next, a file each), and a session can name the credential and method that opened it
//! (for `amr` in tokens, and so that removing a credential can end the sessions it opened).
//! A `UserRecord` holds a list of them, each with its secret.

/// The kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    Password,
    Totp,
    Passkey,
    RecoveryCodes,
}

impl CredentialKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "totp",
            Self::Passkey => "passkey",
            Self::RecoveryCodes => "recovery_codes",
        }
    }

    /// The kind stored as `name` ([`CredentialKind::as_str`]); `None` for one this release
    /// does not know.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Password,
            Self::Totp,
            Self::Passkey,
            Self::RecoveryCodes,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// The authentication method reference (RFC 8176) a login with it adds to `amr`.
    pub const fn method(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::Totp => "otp",
            Self::Passkey => "hwk",
            Self::RecoveryCodes => "kba",
        }
    }
}

/// The id of an account's password: an account has at most one.
pub const PASSWORD_ID: &str = "password";

/// One credential of an account (its secret stays in the record that holds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// Unique within the account.
    pub id: String,
    pub kind: CredentialKind,
    /// What the owner calls it ("Password", "YubiKey 5", "Phone authenticator").
    pub label: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last login it opened, when known.
    pub last_used_at: Option<i64>,
}

/// Which credential opened a session, and by which method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opened {
    /// A [`CredentialRecord::id`]; empty for sessions opened before sessions recorded it.
    pub credential_id: String,
    /// RFC 8176 method (`pwd`, `otp`, `hwk`); empty likewise.
    pub method: String,
}

impl Opened {
    /// A session opened by a credential of `kind` the account does not list (an account of
    /// an earlier release).
    pub fn by_kind(kind: CredentialKind) -> Self {
        Self {
            credential_id: String::new(),
            method: kind.method().to_owned(),
        }
    }

    /// A session opened with `credential`.
    pub fn by(credential: &CredentialRecord) -> Self {
        Self {
            credential_id: credential.id.clone(),
            method: credential.kind.method().to_owned(),
        }
    }
}

/// The RFC 8176 method a second factor adds beside the first: the sign-in used more than one.
pub const MFA_METHOD: &str = "mfa";

/// What a session's sign-in proved: the methods used (RFC 8176 `amr` values), when the user
/// last authenticated, and when a second factor (or a multi-factor authenticator such as a
/// passkey with user verification) was last proven. The tokens of a session carry it; a
/// refresh keeps it and never raises it; a step-up raises it on the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assurance {
    pub amr: Vec<String>,
    /// Unix seconds of the last authentication (the sign-in or a step-up).
    pub auth_time: i64,
    /// Unix seconds of the last proof at AAL2; `None` for a single-factor session.
    pub aal2_at: Option<i64>,
}

impl Assurance {
    /// A sign-in by one method at `at`.
    pub fn single(method: &str, at: i64) -> Self {
        Self {
            amr: vec![method.to_owned()],
            auth_time: at,
            aal2_at: None,
        }
    }

    /// `self` with a second factor `method` proven at `at`: AAL2 from then on.
    #[must_use]
    pub fn stepped_up(mut self, method: &str, at: i64) -> Self {
        for m in [method, MFA_METHOD] {
            if !self.amr.iter().any(|a| a == m) {
                self.amr.push(m.to_owned());
            }
        }
        self.auth_time = at;
        self.aal2_at = Some(at);
        self
    }

    /// The authenticator assurance level: 2 once a second factor was proven, else 1.
    pub fn aal(&self) -> u8 {
        if self.aal2_at.is_some() { 2 } else { 1 }
    }

    /// Whether AAL2 was proven at most `max_age_secs` before `now` (a step-up's freshness).
    pub fn fresh_aal2(&self, now: i64, max_age_secs: i64) -> bool {
        self.aal2_at
            .is_some_and(|at| now.saturating_sub(at) <= max_age_secs)
    }

    /// The OAuth `scope` tokens carry, for API Gateway's JWT authorizer to require per route
    /// (`AuthorizationScopes: [aal2]`): each level reached, space-separated.
    pub fn scope(&self) -> &'static str {
        if self.aal() >= 2 { "aal1 aal2" } else { "aal1" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_up_adds_the_factor_and_mfa_once_and_raises_the_level() {
        let a = Assurance::single("pwd", 10);
        assert_eq!((a.aal(), a.scope()), (1, "aal1"));
        assert!(!a.fresh_aal2(10, 600));
        let b = a.stepped_up("otp", 20).stepped_up("otp", 30);
        assert_eq!(b.amr, ["pwd", "otp", "mfa"]);
        assert_eq!((b.aal(), b.scope(), b.auth_time), (2, "aal1 aal2", 30));
        assert!(b.fresh_aal2(630, 600));
        assert!(!b.fresh_aal2(631, 600));
    }
}
