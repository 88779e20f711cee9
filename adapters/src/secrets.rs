//! Keys from AWS Secrets Manager: read once per cold start, then as the domain's
//! [`KeySource`] (its `KeyCache` refreshes them in the background), rotation-safe
//! (AWSCURRENT signs, AWSCURRENT and AWSPREVIOUS verify).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use aws_config::{
    BehaviorVersion, environment::EnvironmentVariableCredentialsProvider, retry::RetryConfig,
    timeout::TimeoutConfig,
};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::Region;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use domain::{
    auth::rsa::RsaKey,
    config::{ConfigError, JwtAlgorithm, JwtKey, KeySet, KeyVersion, MIN_KEY_BYTES, Secret, Vars},
    keys::KeySource,
};

/// Label domain for deriving a session key from the JWT key when a secret holds only the latter.
const SESSION_KEY_LABEL: &[u8] = b"user-api/session-token-key/v1";

/// A secret's JSON, as stored.
#[derive(Deserialize)]
struct SecretJson {
    #[serde(rename = "MONGO_URI")]
    mongo_uri: Option<String>,
    #[serde(rename = "JWT_SECRET_KEY")]
    jwt: Option<String>,
    /// A PEM string, or a private JWK as a JSON object or as a string.
    #[serde(rename = "JWT_PRIVATE_KEY")]
    private_key: Option<serde_json::Value>,
    #[serde(rename = "SESSION_SECRET_KEY")]
    session: Option<String>,
    /// The hooks' `whsec_` signing secrets, kept here rather than in plain environment
    /// variables.
    #[serde(rename = "HOOK_PRE_TOKEN_SECRET")]
    hook_pre_token: Option<String>,
    #[serde(rename = "HOOK_PRE_SIGNUP_SECRET")]
    hook_pre_signup: Option<String>,
    #[serde(rename = "HOOK_POST_CONFIRMATION_SECRET")]
    hook_post_confirmation: Option<String>,
    #[serde(rename = "HOOK_CUSTOM_MESSAGE_SECRET")]
    hook_custom_message: Option<String>,
    /// Everything else; of it, the identity providers' `FEDERATION_<NAME>_CLIENT_SECRET` and
    /// `FEDERATION_<NAME>_APPLE_*` are read.
    #[serde(flatten)]
    rest: std::collections::HashMap<String, serde_json::Value>,
}

/// What one read of the secret yields.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub keys: KeySet,
    pub mongo_uri: Option<Secret>,
    /// Settings the secret holds (the current version's), by variable: the hooks' signing
    /// secrets and the identity providers' client secrets and keys.
    pub secret_vars: Vec<(String, Secret)>,
}

/// A Secrets Manager secret and the client that reads it.
#[derive(Clone)]
pub struct SecretSource {
    client: Client,
    secret_id: String,
    timeout: Duration,
    algorithm: JwtAlgorithm,
}

impl SecretSource {
    /// Builds a client from the standard AWS environment (region, credentials, and the
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SECRETS_MANAGER` overrides) with a bounded timeout.
    pub async fn new(secret_id: &str, vars: &Vars) -> Result<Self, ConfigError> {
        let algorithm = JwtAlgorithm::from_vars(vars)?;
        let timeout = Duration::from_secs(
            vars.get("SECRET_TIMEOUT_SECONDS")
                .and_then(|s| s.parse().ok())
                .unwrap_or(3),
        );
        // Credentials and region from the environment, as Lambda provides them. Building the
        // client directly, rather than through aws-config's full default chain (profiles, SSO,
        // STS web identity, IMDS), keeps those providers out of the binary and off the cold start.
        let region = vars
            .get("AWS_REGION")
            .or_else(|| vars.get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| ConfigError::Missing("AWS_REGION".to_owned()))?;
        let mut config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(EnvironmentVariableCredentialsProvider::new())
            .http_client(https_client())
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_timeout(timeout)
                    .build(),
            );
        // The endpoint overrides the SDK documents, for emulators and VPC endpoints.
        if let Some(url) = vars
            .get("AWS_ENDPOINT_URL_SECRETS_MANAGER")
            .or_else(|| vars.get("AWS_ENDPOINT_URL"))
        {
            config = config.endpoint_url(url);
        }
        Ok(Self {
            client: Client::from_conf(config.build()),
            secret_id: secret_id.to_owned(),
            timeout,
            algorithm,
        })
    }

    /// The secret's name or ARN.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    fn err(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::Secret {
            secret_id: self.secret_id.clone(),
            reason: reason.into(),
        }
    }

    async fn version(&self, stage: &str) -> Result<Option<(String, SecretJson)>, ConfigError> {
        let call = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send();
        let out = match tokio::time::timeout(self.timeout + Duration::from_secs(1), call).await {
            Err(_) => return Err(self.err("Secrets Manager did not answer in time")),
            Ok(Err(e)) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| s.is_resource_not_found_exception()) {
                    return if stage == "AWSCURRENT" {
                        Err(self.err("secret not found"))
                    } else {
                        Ok(None)
                    };
                }
                // The SDK's Display for dispatch failures is terse; the debug chain names the
                // cause (connection refused, timeout) and carries no secret material.
                let cause = service
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| format!("{e}"));
                return Err(self.err(format!("could not read {stage}: {cause}")));
            }
            Ok(Ok(out)) => out,
        };
        let text = out
            .secret_string()
            .ok_or_else(|| self.err("secret has no string value"))?;
        let json: SecretJson = serde_json::from_str(text)
            .map_err(|_| self.err("secret is not a JSON object of strings"))?;
        let version = out.version_id().unwrap_or(stage).to_owned();
        Ok(Some((version, json)))
    }

    /// The keys of one secret version for `algorithm`: an HS256 key is named by the version
    /// id, an RSA key by its thumbprint.
    fn key_version(
        &self,
        version: &str,
        json: &SecretJson,
        algorithm: JwtAlgorithm,
    ) -> Result<KeyVersion, ConfigError> {
        let key = |name: &str, v: Option<&String>| -> Result<Secret, ConfigError> {
            let v = v.ok_or_else(|| self.err(format!("key {name} is missing")))?;
            if v.len() < MIN_KEY_BYTES {
                return Err(self.err(format!("key {name} is shorter than {MIN_KEY_BYTES} bytes")));
            }
            Ok(Secret::new(v.as_bytes()))
        };
        let (kid, jwt, material) = match algorithm {
            JwtAlgorithm::Hs256 => {
                let secret = key("JWT_SECRET_KEY", json.jwt.as_ref())?;
                (version.to_owned(), JwtKey::Hs256(secret.clone()), secret)
            }
            JwtAlgorithm::Rs256 => {
                let parsed = match &json.private_key {
                    None => Err(
                        "key JWT_PRIVATE_KEY is missing (JWT_ALGORITHM is RS256, the default)"
                            .to_owned(),
                    ),
                    Some(serde_json::Value::String(text)) => RsaKey::parse(text)
                        .map(|k| (k, Secret::new(text.as_bytes())))
                        .map_err(|r| format!("key JWT_PRIVATE_KEY {r}")),
                    Some(jwk) => RsaKey::from_jwk(jwk)
                        .map(|k| (k, Secret::new(jwk.to_string().into_bytes())))
                        .map_err(|r| format!("key JWT_PRIVATE_KEY {r}")),
                };
                let (rsa, material) = parsed.map_err(|r| self.err(r))?;
                (rsa.kid().to_owned(), JwtKey::Rs256(Arc::new(rsa)), material)
            }
        };
        let session = match &json.session {
            Some(_) => key("SESSION_SECRET_KEY", json.session.as_ref())?,
            None => derive_session_key(&material),
        };
        Ok(KeyVersion { kid, jwt, session })
    }

    /// A version other than AWSCURRENT: it only verifies, so it may still hold the other
    /// algorithm's key (the previous version during a move from HS256 to RS256).
    fn other_version(&self, version: &str, json: &SecretJson) -> Option<KeyVersion> {
        let other = match self.algorithm {
            JwtAlgorithm::Rs256 => JwtAlgorithm::Hs256,
            JwtAlgorithm::Hs256 => JwtAlgorithm::Rs256,
        };
        self.key_version(version, json, self.algorithm)
            .or_else(|_| self.key_version(version, json, other))
            .ok()
    }

    /// Reads AWSCURRENT, AWSPREVIOUS and AWSPENDING together. The last two are optional and
    /// a malformed one is ignored (they only verify, and are published); a malformed current
    /// one fails.
    pub async fn fetch(&self) -> Result<Fetched, ConfigError> {
        let (current, previous, pending) = tokio::join!(
            self.version("AWSCURRENT"),
            self.version("AWSPREVIOUS"),
            self.version("AWSPENDING")
        );
        let (version, json) = current?.ok_or_else(|| self.err("secret not found"))?;
        let mongo_uri = json
            .mongo_uri
            .as_ref()
            .filter(|u| !u.trim().is_empty())
            .map(|u| Secret::new(u.as_bytes()));
        let federation = json.rest.iter().filter_map(|(name, v)| {
            let provider_secret = name.starts_with("FEDERATION_")
                && (name.ends_with("_CLIENT_SECRET") || name.contains("_APPLE_"));
            let value = v.as_str().filter(|s| !s.trim().is_empty())?;
            provider_secret.then(|| (name.clone(), Secret::new(value.as_bytes())))
        });
        let secret_vars = [
            ("HOOK_PRE_TOKEN_SECRET", &json.hook_pre_token),
            ("HOOK_PRE_SIGNUP_SECRET", &json.hook_pre_signup),
            (
                "HOOK_POST_CONFIRMATION_SECRET",
                &json.hook_post_confirmation,
            ),
            ("HOOK_CUSTOM_MESSAGE_SECRET", &json.hook_custom_message),
        ]
        .into_iter()
        .filter_map(|(name, s)| {
            s.as_ref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| (name.to_owned(), Secret::new(s.as_bytes())))
        })
        .chain(federation)
        .collect();
        let current = self.key_version(&version, &json, self.algorithm)?;
        let other = |read: Result<Option<(String, SecretJson)>, ConfigError>| match read {
            Ok(Some((v, json))) if v != version => self.other_version(&v, &json),
            _ => None,
        };
        let (previous, next) = (other(previous), other(pending));
        Ok(Fetched {
            keys: KeySet {
                current,
                previous,
                next,
            },
            mongo_uri,
            secret_vars,
        })
    }
}

/// The AWS SDK's HTTP client: the process's [`crate::http`] client (rustls with ring: no
/// OpenSSL, no aws-lc C build, no HTTP/2).
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    crate::http::sdk_client()
}

/// HMAC-SHA256(jwt key, label): a session key independent of the JWT key in use, for
/// secrets made by CloudFormation, which can generate only one value (for an RSA key, the
/// input is the private key's text as stored).
pub fn derive_session_key(jwt: &Secret) -> Secret {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(jwt.expose())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(SESSION_KEY_LABEL);
    Secret::new(mac.finalize().into_bytes().to_vec())
}

#[async_trait]
impl KeySource for SecretSource {
    async fn fetch_keys(&self) -> Result<KeySet, ConfigError> {
        self.fetch().await.map(|f| f.keys)
    }

    fn name(&self) -> &str {
        &self.secret_id
    }
}
