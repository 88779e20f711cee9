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
    /// A session opened with `credential`.
    pub fn by(credential: &CredentialRecord) -> Self {
        Self {
            credential_id: credential.id.clone(),
            method: credential.kind.method().to_owned(),
        }
    }
}
