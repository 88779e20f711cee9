//! One loader for every setting: the process environment over `.env.development`.
//!
//! Secret values are wrapped in [`Secret`], whose `Debug` is redacted, and errors name
//! the variable, never its value.

use std::{collections::HashMap, fmt, path::Path, sync::Arc, time::Duration};

use crate::auth::rsa::RsaKey;

/// Shortest accepted key: HS256 and HMAC-SHA256 want at least the hash size (RFC 7518 §3.2).
pub const MIN_KEY_BYTES: usize = 32;

/// Bytes that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The key bytes, for the crypto that needs them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why start-up was refused. Messages name variables, never values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(String),
    #[error("{name} is too short: at least {min} bytes are required")]
    TooShort { name: String, min: usize },
    #[error("{name} is not a valid positive number")]
    BadNumber { name: String },
    #[error("secret {secret_id}: {reason}")]
    Secret { secret_id: String, reason: String },
    #[error("{name} {reason}")]
    Invalid { name: String, reason: String },
    #[error(
        "JWT_PRIVATE_KEY is not set: JWT_ALGORITHM is RS256 (the default), which signs with an RSA \
         private key (make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`); \
         set JWT_ALGORITHM=HS256 to keep signing with JWT_SECRET_KEY"
    )]
    NoRsaKey,
}

/// How access tokens are signed (`JWT_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 SHA-256 with a 2048-bit or larger key from `JWT_PRIVATE_KEY`: anyone
    /// can verify from the published JWKS (API Gateway's JWT authorizer among them).
    #[default]
    Rs256,
    /// HMAC-SHA256 with `JWT_SECRET_KEY`, for deployments made before RS256; only holders of
    /// the secret can verify.
    Hs256,
}

impl JwtAlgorithm {
    /// `JWT_ALGORITHM`: RS256 (default) or HS256, in any case.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        match vars.get("JWT_ALGORITHM").map(str::trim) {
            None => Ok(Self::Rs256),
            Some(v) if v.eq_ignore_ascii_case("RS256") => Ok(Self::Rs256),
            Some(v) if v.eq_ignore_ascii_case("HS256") => Ok(Self::Hs256),
            Some(_) => Err(ConfigError::Invalid {
                name: "JWT_ALGORITHM".to_owned(),
                reason: "must be RS256 or HS256".to_owned(),
            }),
        }
    }

    /// The JOSE name (RFC 7518).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Hs256 => "HS256",
        }
    }
}

/// The key of one key version that signs and verifies JWTs. Its variant is its algorithm: a
/// token is verified only with the algorithm of the key its `kid` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// HMAC-SHA256 secret (`JWT_SECRET_KEY`).
    Hs256(Secret),
    /// RSA private key (`JWT_PRIVATE_KEY`), parsed once.
    Rs256(Arc<RsaKey>),
}

impl JwtKey {
    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> JwtAlgorithm {
        match self {
            Self::Hs256(_) => JwtAlgorithm::Hs256,
            Self::Rs256(_) => JwtAlgorithm::Rs256,
        }
    }
}

/// One generation of signing keys. `kid` goes in every JWT header so a rotated key can
/// still verify the tokens it signed: the secret version for HS256 keys, the RFC 7638
/// thumbprint for RSA keys (the same on every instance, and across secret versions that keep
/// the key, so a JWKS consumer's cache stays valid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersion {
    /// Key id written into JWT headers.
    pub kid: String,
    /// Signs (current) and verifies JWTs.
    pub jwt: JwtKey,
    /// HMAC-SHA256 key for session tokens.
    pub session: Secret,
}

/// The keys in force: new tokens use `current`; `previous` still verifies during rotation;
/// `next` (a secret's AWSPENDING version) is published and verifies before it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    /// Signs and verifies.
    pub current: KeyVersion,
    /// Verifies only.
    pub previous: Option<KeyVersion>,
    /// Verifies only, until it becomes `current`.
    pub next: Option<KeyVersion>,
}

impl KeySet {
    /// Validates the signing key in full (RS256: ring's key-pair checks, `RsaKey::check`):
    /// what a process that signs tokens does before it serves, and what a rotation does before
    /// a new key replaces the old one. A process that only verifies skips it.
    pub fn check_signing_key(&self) -> Result<(), ConfigError> {
        match &self.current.jwt {
            JwtKey::Hs256(_) => Ok(()),
            JwtKey::Rs256(key) => key.check().map_err(|reason| ConfigError::Invalid {
                name: "JWT_PRIVATE_KEY".to_owned(),
                reason,
            }),
        }
    }
}

/// Everything the handlers need to know, read once per cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None` selects the embedded in-process store (dev server only).
    pub mongo_uri: Option<Secret>,
    pub db_name: String,
    pub collection_name: String,
    pub keys: KeySet,
    /// `JWT_ALGORITHM`: what the current key must be.
    pub jwt_algorithm: JwtAlgorithm,
    pub jwt_ttl: Duration,
    pub session_idle_ttl: Duration,
    pub session_absolute_ttl: Duration,
    /// `JWT_ISSUER`: the `iss` of every token and the base of the discovery URLs. Unset, each
    /// request's own API URL (`https://` + API Gateway's `domainName`) is the issuer, which is
    /// the deployed API's URL without any setting; set it when a custom domain fronts the API.
    pub issuer: Option<String>,
    pub audience: String,
    /// Consecutive failures before logins for a phone are delayed.
    pub lockout_threshold: u32,
    /// Longest delay a lock imposes.
    pub lockout_max: Duration,
    /// Quiet time after which the failure count starts again.
    pub failure_window: Duration,
    /// MongoDB connections per process (`MONGO_MAX_POOL_SIZE`, default 2).
    pub mongo_pool_size: u32,
    /// Phone changes one user may attempt per hour (`PHONE_CHANGE_USER_LIMIT`).
    pub phone_change_user_limit: u32,
    /// Phone changes one source address may attempt per hour (`PHONE_CHANGE_IP_LIMIT`).
    pub phone_change_ip_limit: u32,
    /// How long after a refresh token's rotation a concurrent refresh of the same token gets
    /// the same successor instead of counting as reuse (`REFRESH_REUSE_GRACE_SECONDS`, 0-60).
    pub refresh_reuse_grace: Duration,
    /// Time a request may spend on the database when the Lambda context gives no deadline
    /// (`REQUEST_BUDGET_MS`; the dev server and tests).
    pub request_budget: Duration,
    /// Second factors: whether sign-ins use them, step-up freshness, the challenge's life.
    pub mfa: crate::mfa::MfaSettings,
    /// Metadata limits and the claims tokens carry from it.
    pub claims: crate::claims::ClaimSettings,
    /// Lifecycle events: the bus, source and delivery limit (`EVENTS_BUS`, ...).
    pub events: crate::events::EventSettings,
}

/// Variables as read: environment over file.
#[derive(Debug, Default, Clone)]
pub struct Vars(HashMap<String, String>);

impl Vars {
    /// The process environment over `.env.development` in the working directory, if present.
    pub fn from_env() -> Self {
        let mut vars = Self::default();
        if let Ok(text) = std::fs::read_to_string(Path::new(".env.development")) {
            vars.0.extend(parse_dotenv(&text));
        }
        vars.0.extend(std::env::vars());
        vars
    }

    /// Variables from explicit pairs; tests use this instead of mutating the environment.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// A non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Sets one variable (tests and tools).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    fn or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// A whole number above zero, or `default` when unset (the dev server's limits too).
    pub fn positive(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::BadNumber {
                    name: name.to_owned(),
                }),
        }
    }

    pub fn seconds(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(name, default).map(Duration::from_secs)
    }

    /// A count: as [`Self::positive`], and refused rather than truncated past `u32::MAX`.
    fn count(&self, name: &str, default: u32) -> Result<u32, ConfigError> {
        u32::try_from(self.positive(name, default.into())?).map_err(|_| ConfigError::BadNumber {
            name: name.to_owned(),
        })
    }
}

/// Checks a key's presence and length; the error names `name` only.
pub fn key(name: &str, value: Option<&str>) -> Result<Secret, ConfigError> {
    let value = value.ok_or_else(|| ConfigError::Missing(name.to_owned()))?;
    if value.len() < MIN_KEY_BYTES {
        return Err(ConfigError::TooShort {
            name: name.to_owned(),
            min: MIN_KEY_BYTES,
        });
    }
    Ok(Secret::new(value.as_bytes()))
}

impl Settings {
    /// Builds settings whose keys come from `vars`: `JWT_PRIVATE_KEY` (RS256, the default) or
    /// `JWT_SECRET_KEY` (`JWT_ALGORITHM=HS256`), and `SESSION_SECRET_KEY`.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let (kid, jwt) = match JwtAlgorithm::from_vars(vars)? {
            JwtAlgorithm::Hs256 => (
                "env".to_owned(),
                JwtKey::Hs256(key("JWT_SECRET_KEY", vars.get("JWT_SECRET_KEY"))?),
            ),
            JwtAlgorithm::Rs256 => {
                let text = vars.get("JWT_PRIVATE_KEY").ok_or(ConfigError::NoRsaKey)?;
                let rsa = RsaKey::parse(text).map_err(|reason| ConfigError::Invalid {
                    name: "JWT_PRIVATE_KEY".to_owned(),
                    reason,
                })?;
                (rsa.kid().to_owned(), JwtKey::Rs256(Arc::new(rsa)))
            }
        };
        let keys = KeySet {
            current: KeyVersion {
                kid,
                jwt,
                session: key("SESSION_SECRET_KEY", vars.get("SESSION_SECRET_KEY"))?,
            },
            previous: None,
            next: None,
        };
        Self::with_keys(
            vars,
            keys,
            vars.get("MONGO_URI").map(|u| Secret::new(u.as_bytes())),
        )
    }

    /// Builds the non-secret settings from `vars` around keys and a URI found elsewhere.
    pub fn with_keys(
        vars: &Vars,
        keys: KeySet,
        mongo_uri: Option<Secret>,
    ) -> Result<Self, ConfigError> {
        let jwt_algorithm = JwtAlgorithm::from_vars(vars)?;
        if keys.current.jwt.algorithm() != jwt_algorithm {
            return Err(ConfigError::Invalid {
                name: "JWT_ALGORITHM".to_owned(),
                reason: format!(
                    "is {} but the current key is for {}",
                    jwt_algorithm.name(),
                    keys.current.jwt.algorithm().name()
                ),
            });
        }
        Ok(Self {
            mongo_uri,
            db_name: vars.or("DB_NAME", "UserDatabase"),
            collection_name: vars.or("COLLECTION_NAME", "User"),
            keys,
            jwt_algorithm,
            jwt_ttl: vars.seconds("JWT_TTL_SECONDS", 15 * 60)?,
            session_idle_ttl: vars.seconds("SESSION_IDLE_TTL_SECONDS", 24 * 3600)?,
            session_absolute_ttl: vars.seconds("SESSION_ABSOLUTE_TTL_SECONDS", 7 * 24 * 3600)?,
            issuer: vars.get("JWT_ISSUER").map(|i| i.trim().to_owned()),
            audience: vars.or("JWT_AUDIENCE", "user-api"),
            lockout_threshold: vars.count("LOGIN_LOCKOUT_THRESHOLD", 5)?,
            lockout_max: vars.seconds("LOGIN_LOCKOUT_MAX_SECONDS", 15 * 60)?,
            failure_window: vars.seconds("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)?,
            mongo_pool_size: vars.count("MONGO_MAX_POOL_SIZE", 2)?,
            phone_change_user_limit: vars.count("PHONE_CHANGE_USER_LIMIT", 5)?,
            phone_change_ip_limit: vars.count("PHONE_CHANGE_IP_LIMIT", 20)?,
            request_budget: Duration::from_millis(vars.positive("REQUEST_BUDGET_MS", 8_000)?),
            mfa: crate::mfa::MfaSettings::from_vars(vars)?,
            claims: crate::claims::ClaimSettings::from_vars(vars)?,
            events: crate::events::EventSettings::from_vars(vars)?,
            refresh_reuse_grace: match vars.get("REFRESH_REUSE_GRACE_SECONDS") {
                None => Duration::from_secs(5),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= 60)
                    .map(Duration::from_secs)
                    .ok_or_else(|| ConfigError::BadNumber {
                        name: "REFRESH_REUSE_GRACE_SECONDS".to_owned(),
                    })?,
            },
        })
    }
}

/// `KEY=VALUE` lines; `#` comments, blank lines, `export ` prefixes and surrounding quotes allowed.
pub fn parse_dotenv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn missing_key_error_names_the_variable() {
        let err = Settings::from_vars(&Vars::from_pairs([
            ("JWT_ALGORITHM", "HS256"),
            ("SESSION_SECRET_KEY", K),
        ]))
        .err();
        assert_eq!(err, Some(ConfigError::Missing("JWT_SECRET_KEY".into())));
    }

    #[test]
    fn short_key_error_names_the_variable_but_not_the_value() {
        let vars = Vars::from_pairs([
            ("JWT_ALGORITHM", "HS256"),
            ("JWT_SECRET_KEY", K),
            ("SESSION_SECRET_KEY", "your_session_secret_key"),
        ]);
        let msg = Settings::from_vars(&vars)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("SESSION_SECRET_KEY"), "{msg}");
        assert!(!msg.contains("your_session_secret_key"), "{msg}");
    }

    #[test]
    fn counts_and_durations_take_positive_whole_numbers_only() {
        let with = |name: &str, value: &str| {
            Settings::from_vars(&Vars::from_pairs([
                ("JWT_ALGORITHM", "HS256"),
                ("JWT_SECRET_KEY", K),
                ("SESSION_SECRET_KEY", K),
                (name, value),
            ]))
        };
        let s = with("MONGO_MAX_POOL_SIZE", " 16 ").ok();
        assert_eq!(s.map(|s| s.mongo_pool_size), Some(16));
        let s = with("JWT_TTL_SECONDS", "60").ok();
        assert_eq!(s.map(|s| s.jwt_ttl), Some(Duration::from_secs(60)));
        for (name, bad) in [
            ("MONGO_MAX_POOL_SIZE", "0"),
            ("MONGO_MAX_POOL_SIZE", "4294967297"),
            ("LOGIN_LOCKOUT_THRESHOLD", "-1"),
            ("JWT_TTL_SECONDS", "15m"),
        ] {
            assert_eq!(
                with(name, bad).err(),
                Some(ConfigError::BadNumber { name: name.into() }),
                "{name}={bad}"
            );
        }
    }

    #[test]
    fn settings_debug_redacts_keys_and_uri() {
        let vars = Vars::from_pairs([
            ("JWT_ALGORITHM", "HS256"),
            ("JWT_SECRET_KEY", K),
            ("SESSION_SECRET_KEY", K),
            ("MONGO_URI", "mongodb://u:pw@h"),
        ]);
        let s = format!("{:?}", Settings::from_vars(&vars));
        assert!(!s.contains(K) && !s.contains("pw@h"), "{s}");
    }

    const PEM: &str = include_str!("../../tests/fixtures/rsa-a.pem");

    #[test]
    fn rs256_is_the_default_and_needs_a_private_key() {
        let err = Settings::from_vars(&Vars::from_pairs([
            ("JWT_SECRET_KEY", K),
            ("SESSION_SECRET_KEY", K),
        ]))
        .err();
        assert_eq!(err, Some(ConfigError::NoRsaKey));
        let msg = ConfigError::NoRsaKey.to_string();
        assert!(msg.contains("openssl genpkey") && msg.contains("JWT_ALGORITHM=HS256"));
        let s = Settings::from_vars(&Vars::from_pairs([
            ("JWT_PRIVATE_KEY", PEM),
            ("SESSION_SECRET_KEY", K),
        ]));
        let s = s.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.jwt_algorithm, JwtAlgorithm::Rs256);
        assert_eq!(s.keys.current.jwt.algorithm(), JwtAlgorithm::Rs256);
        assert_eq!(s.keys.current.kid.len(), 43, "a SHA-256 thumbprint");
        assert!(!format!("{s:?}").contains(&PEM[40..80]));
    }

    #[test]
    fn a_bad_algorithm_or_key_is_named_without_its_value() {
        let with = |pairs: &[(&str, &str)]| {
            let mut v = Vars::from_pairs([("SESSION_SECRET_KEY", K)]);
            for (k, val) in pairs {
                v.set(k, *val);
            }
            Settings::from_vars(&v)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let msg = with(&[("JWT_ALGORITHM", "none"), ("JWT_SECRET_KEY", K)]);
        assert!(
            msg.contains("JWT_ALGORITHM must be RS256 or HS256"),
            "{msg}"
        );
        let broken = PEM.replace("MII", "XYZ");
        let msg = with(&[("JWT_PRIVATE_KEY", &broken)]);
        assert!(msg.starts_with("JWT_PRIVATE_KEY is not"), "{msg}");
        assert!(!msg.contains("XYZ"), "{msg}");
    }

    #[test]
    fn dotenv_parser_reads_the_seed_sample() {
        let pairs = parse_dotenv(
            "# c\nMONGO_URI=mongodb://localhost:27017\nexport DB_NAME=\"UserDatabase\"\n\nX='y'\n",
        );
        assert_eq!(
            pairs,
            vec![
                ("MONGO_URI".into(), "mongodb://localhost:27017".into()),
                ("DB_NAME".into(), "UserDatabase".into()),
                ("X".into(), "y".into())
            ]
        );
    }
}
