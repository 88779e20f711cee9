//! A provider's keys over HTTPS: its discovery document (`<issuer>/.well-known/openid-configuration`,
//! whose `issuer` must be exactly the configured one) names its `jwks_uri`; the JWK Set found
//! there is cached for an hour per provider. A token naming a key the cache lacks may force
//! one refetch, at most once per `REFRESH_EVERY_SECS` per provider: a provider rotating its
//! keys is followed within a request, and a stream of made-up `kid`s costs one fetch per 5 s.
//! The HTTP client is the AWS SDK's connector already linked for Secrets Manager.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use aws_smithy_http_client::{
    Connector,
    tls::{Provider as TlsProvider, rustls_provider::CryptoMode},
};
use aws_smithy_runtime_api::client::{http::HttpConnector, orchestrator::HttpRequest};
use aws_smithy_types::{body::SdkBody, byte_stream::ByteStream};
use serde_json::Value;

use domain::federation::{FederationError, Jwks, Provider, ProviderKeys, REFRESH_EVERY_SECS};

/// How long fetched keys are used before they are fetched again.
const TTL: Duration = Duration::from_secs(3600);
/// One fetch's limit (discovery and the JWKS each).
const TIMEOUT: Duration = Duration::from_secs(3);
/// Largest document read.
const MAX_BYTES: usize = 256 * 1024;

struct Cached {
    jwks: Arc<Jwks>,
    fetched: Instant,
}

/// Provider keys fetched over HTTPS and cached per issuer.
pub struct OidcKeys {
    connector: Connector,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Default for OidcKeys {
    fn default() -> Self {
        Self {
            connector: Connector::builder()
                .tls_provider(TlsProvider::Rustls(CryptoMode::Ring))
                .build(),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl OidcKeys {
    async fn get_json(&self, url: &str) -> Result<Value, FederationError> {
        let request = http::Request::builder()
            .method("GET")
            .uri(url)
            .header("accept", "application/json")
            .body(SdkBody::empty())
            .ok()
            .and_then(|r| HttpRequest::try_from(r).ok())
            .ok_or(FederationError::ProviderUnavailable("a bad provider URL"))?;
        let exchange = async {
            let response =
                self.connector.call(request).await.map_err(|_| {
                    FederationError::ProviderUnavailable("the provider is unreachable")
                })?;
            if !response.status().is_success() {
                return Err(FederationError::ProviderUnavailable(
                    "the provider answered an error",
                ));
            }
            let body = ByteStream::new(response.into_body())
                .collect()
                .await
                .map(|b| b.into_bytes())
                .map_err(|_| FederationError::ProviderUnavailable("the answer was cut off"))?;
            if body.len() > MAX_BYTES {
                return Err(FederationError::ProviderUnavailable(
                    "the answer is too long",
                ));
            }
            serde_json::from_slice(&body)
                .map_err(|_| FederationError::ProviderUnavailable("the answer is not JSON"))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| FederationError::ProviderUnavailable("the provider timed out"))?
    }

    async fn fetch(&self, provider: &Provider) -> Result<Jwks, FederationError> {
        let discovery = self
            .get_json(&format!(
                "{}/.well-known/openid-configuration",
                provider.issuer
            ))
            .await?;
        if discovery.get("issuer").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
            return Err(FederationError::ProviderUnavailable(
                "the discovery document names another issuer",
            ));
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") || provider.issuer.starts_with("http://"))
            .ok_or(FederationError::ProviderUnavailable("no usable jwks_uri"))?
            .to_owned();
        Jwks::parse(&self.get_json(&jwks_uri).await?)
    }
}

#[async_trait]
impl ProviderKeys for OidcKeys {
    async fn jwks(&self, provider: &Provider, refresh: bool) -> Result<Arc<Jwks>, FederationError> {
        let now = Instant::now();
        let cached = self.cache.lock().ok().and_then(|c| {
            c.get(&provider.issuer)
                .map(|e| (e.jwks.clone(), now.duration_since(e.fetched)))
        });
        if let Some((jwks, age)) = &cached {
            let forced_too_soon = age.as_secs() < REFRESH_EVERY_SECS.unsigned_abs();
            if *age < TTL && (!refresh || forced_too_soon) {
                return Ok(jwks.clone());
            }
        }
        match self.fetch(provider).await {
            Ok(jwks) => {
                let jwks = Arc::new(jwks);
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(
                        provider.issuer.clone(),
                        Cached {
                            jwks: jwks.clone(),
                            fetched: Instant::now(),
                        },
                    );
                }
                Ok(jwks)
            }
            // Keys that could not be refreshed stay good until the provider is back.
            Err(e) => cached.map(|(j, _)| j).ok_or(e),
        }
    }
}

/// The process's provider-key source.
pub fn provider_keys() -> Arc<dyn ProviderKeys> {
    Arc::new(OidcKeys::default())
}

/// The provider-key source as a [`domain::federation::MakeProviderKeys`].
pub fn provider_keys_maker() -> Option<Arc<dyn ProviderKeys>> {
    Some(provider_keys())
}
