//! Keys from AWS Secrets Manager: read once per cold start, cached with a TTL, refreshed in
//! the background, and rotation-safe (AWSCURRENT signs, AWSCURRENT and AWSPREVIOUS verify).

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use aws_config::{
    BehaviorVersion, environment::EnvironmentVariableCredentialsProvider, retry::RetryConfig,
    timeout::TimeoutConfig,
};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::Region;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::{
    auth::rsa::RsaKey,
    auth::token::{Claims, Refusal, TokenError, TokenKeys},
    config::{
        ConfigError, JwtAlgorithm, JwtKey, KeySet, KeyVersion, MIN_KEY_BYTES, Secret, Settings,
        Vars,
    },
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
}

/// What one read of the secret yields.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub keys: KeySet,
    pub mongo_uri: Option<Secret>,
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
        })
    }
}

/// The AWS SDK's HTTP client on rustls with ring: no OpenSSL, no aws-lc C build.
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
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

/// Least time between two refreshes forced by an unknown `kid`, per instance: tokens naming
/// keys that do not exist must not turn into a flood of Secrets Manager reads.
pub const FORCED_REFRESH_INTERVAL_SECS: i64 = 5;

/// The token keys in force, refreshed from Secrets Manager after a TTL without making a
/// request wait: the request that notices staleness starts a background refresh and goes on
/// with the cached keys. A token whose `kid` the cache does not hold was most likely signed by
/// an instance that saw a rotation first; [`KeyCache::verify`] then refreshes at once
/// (single-flight, rate-limited) instead of refusing it until the TTL passes.
pub struct KeyCache {
    current: RwLock<Arc<TokenKeys>>,
    source: Option<SecretSource>,
    loaded_at: AtomicI64,
    refreshing: AtomicBool,
    /// One secret read at a time; waiters reuse the result of the read they waited for.
    fetch_lock: tokio::sync::Mutex<()>,
    /// Bumped by every successful refresh.
    generation: AtomicU64,
    /// When the last refresh forced by an unknown `kid` started.
    forced_at: AtomicI64,
    /// Secret reads made by refreshes (not the cold start), for tests and diagnostics.
    reads: AtomicU64,
    ttl_secs: i64,
    audience: String,
    jwt_ttl: Duration,
}

impl KeyCache {
    /// Keys from `settings`; with a `source`, refreshed every `ttl`.
    pub fn new(settings: &Settings, source: Option<SecretSource>, ttl: Duration, now: i64) -> Self {
        let keys = TokenKeys::new(&settings.keys, &settings.audience, settings.jwt_ttl);
        Self {
            current: RwLock::new(Arc::new(keys)),
            source,
            loaded_at: AtomicI64::new(now),
            refreshing: AtomicBool::new(false),
            fetch_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            forced_at: AtomicI64::new(i64::MIN),
            reads: AtomicU64::new(0),
            ttl_secs: ttl.as_secs() as i64,
            audience: settings.audience.clone(),
            jwt_ttl: settings.jwt_ttl,
        }
    }

    /// The cached keys. Never blocks on the network.
    pub fn get(self: &Arc<Self>, now: i64) -> Arc<TokenKeys> {
        if self.source.is_some()
            && now.saturating_sub(self.loaded_at.load(Ordering::Relaxed)) >= self.ttl_secs
            && !self.refreshing.swap(true, Ordering::AcqRel)
        {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let _one_at_a_time = this.fetch_lock.lock().await;
                this.refresh(now).await;
                this.refreshing.store(false, Ordering::Release);
            });
        }
        self.cached()
    }

    fn cached(&self) -> Arc<TokenKeys> {
        self.current
            .read()
            .map(|k| Arc::clone(&k))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Verifies `jwt` at `now` and returns its claims with the keys that verified it (which
    /// also check the session token). A token naming a `kid` the cache lacks makes the cache
    /// re-read the secret first: at most one read in flight, and at most one such read per
    /// [`FORCED_REFRESH_INTERVAL_SECS`]; a request arriving while a read is in flight waits
    /// for it rather than starting another. The token must name `issuer` as its `iss`.
    pub async fn verify(
        self: &Arc<Self>,
        jwt: &str,
        now: i64,
        issuer: &str,
    ) -> Result<(Claims, Arc<TokenKeys>), TokenError> {
        let at = now.max(0) as u64;
        let keys = self.get(now);
        match keys.check(jwt, at, issuer) {
            Ok(claims) => return Ok((claims, keys)),
            Err(Refusal::UnknownKid) if self.source.is_some() => {}
            Err(_) => return Err(TokenError::Refused),
        }
        let seen = self.generation.load(Ordering::Acquire);
        {
            let _one_at_a_time = self.fetch_lock.lock().await;
            // A refresh that finished while this request waited is as good as its own.
            if self.generation.load(Ordering::Acquire) == seen {
                let last = self.forced_at.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= FORCED_REFRESH_INTERVAL_SECS {
                    self.forced_at.store(now, Ordering::Relaxed);
                    // Boxed: the SDK call's state machine is deep, and inlining it into every
                    // authenticated request's future would grow them all for a rare path.
                    Box::pin(self.refresh(now)).await;
                }
            }
        }
        let keys = self.cached();
        let claims = keys.verify(jwt, at, issuer)?;
        Ok((claims, keys))
    }

    /// Secret reads made by refreshes since start (cold-start read excluded).
    pub fn secret_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Re-reads the secret now. On failure the old keys stay and the next TTL retries.
    pub async fn refresh(&self, now: i64) {
        let Some(source) = &self.source else { return };
        self.reads.fetch_add(1, Ordering::Relaxed);
        match source.fetch().await {
            Ok(f) => {
                let keys = Arc::new(TokenKeys::new(&f.keys, &self.audience, self.jwt_ttl));
                match self.current.write() {
                    Ok(mut slot) => *slot = keys,
                    Err(p) => *p.into_inner() = keys,
                }
                self.loaded_at.store(now, Ordering::Relaxed);
                self.generation.fetch_add(1, Ordering::AcqRel);
                tracing::info!(
                    secret_id = source.secret_id(),
                    kid = f.keys.current.kid,
                    "signing keys refreshed"
                );
            }
            Err(e) => {
                // Retry in 30 s rather than on every request while Secrets Manager is down.
                self.loaded_at.store(
                    now - self.ttl_secs + 30.min(self.ttl_secs),
                    Ordering::Relaxed,
                );
                tracing::warn!(error = %e, "secret refresh failed; keeping cached keys");
            }
        }
    }
}
