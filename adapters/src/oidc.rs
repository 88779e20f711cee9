//! A provider's keys over HTTPS: its discovery document (`<issuer>/.well-known/openid-configuration`,
//! whose `issuer` must be exactly the configured one) names its `jwks_uri`; the JWK Set found
//! there is cached for an hour per provider. A token naming a key the cache lacks may force
//! one refetch, at most once per `REFRESH_EVERY_SECS` per provider: a provider rotating its
//! keys is followed within a request, and a stream of made-up `kid`s costs one fetch per 5 s.
//! The browser flow's code exchange POSTs to the token endpoint the same document names.
//! The HTTP client is the process's one (`crate::http`), already linked for Secrets Manager.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use aws_smithy_runtime_api::client::{http::HttpConnector, orchestrator::HttpRequest};
use aws_smithy_types::{body::SdkBody, byte_stream::ByteStream};
use serde_json::Value;

use domain::federation::{
    Endpoints, FederationError, Jwks, Provider, ProviderKeys, REFRESH_EVERY_SECS,
};

/// How long fetched keys are used before they are fetched again.
const TTL: Duration = Duration::from_secs(3600);
/// One fetch's limit (discovery and the JWKS each).
const TIMEOUT: Duration = Duration::from_secs(3);
/// Largest document read.
const MAX_BYTES: usize = 256 * 1024;

struct Cached {
    jwks: Arc<Jwks>,
    endpoints: Option<Endpoints>,
    fetched: Instant,
}

/// Provider keys fetched over HTTPS and cached per issuer.
pub struct OidcKeys {
    connector: crate::http::Connector,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Default for OidcKeys {
    fn default() -> Self {
        Self {
            connector: crate::http::shared().connector(Some(TIMEOUT), Some(TIMEOUT)),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl OidcKeys {
    async fn get_json(&self, url: &str) -> Result<Value, FederationError> {
        self.call(url, None).await
    }

    /// GETs `url`, or POSTs `form` to it; its JSON answer. A 4xx to a POST is the provider
    /// refusing what was sent ([`FederationError::CodeRefused`]).
    async fn call(&self, url: &str, form: Option<String>) -> Result<Value, FederationError> {
        let builder = http::Request::builder()
            .uri(url)
            .header("accept", "application/json");
        let request = match &form {
            None => builder.method("GET").body(SdkBody::empty()),
            Some(f) => builder
                .method("POST")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("content-length", f.len().to_string())
                .body(SdkBody::from(f.clone())),
        }
        .ok()
        .and_then(|r| HttpRequest::try_from(r).ok())
        .ok_or(FederationError::ProviderUnavailable("a bad provider URL"))?;
        let exchange = async {
            let response =
                self.connector.call(request).await.map_err(|_| {
                    FederationError::ProviderUnavailable("the provider is unreachable")
                })?;
            if form.is_some() && response.status().is_client_error() {
                return Err(FederationError::CodeRefused);
            }
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

    async fn fetch(
        &self,
        provider: &Provider,
    ) -> Result<(Jwks, Option<Endpoints>), FederationError> {
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
        let url = |name: &str| {
            discovery
                .get(name)
                .and_then(Value::as_str)
                .filter(|u| u.starts_with("https://") || provider.issuer.starts_with("http://"))
                .map(str::to_owned)
        };
        let jwks_uri =
            url("jwks_uri").ok_or(FederationError::ProviderUnavailable("no usable jwks_uri"))?;
        // A provider serving native sign-in alone may publish no endpoints for the browser.
        let endpoints = url("authorization_endpoint")
            .zip(url("token_endpoint"))
            .map(|(authorization, token)| Endpoints {
                authorization,
                token,
            });
        Ok((Jwks::parse(&self.get_json(&jwks_uri).await?)?, endpoints))
    }

    /// The cached entry of `provider`, fetched where there is none or it is older than the
    /// TTL (or `refresh` asks and the last fetch is older than `REFRESH_EVERY_SECS`).
    async fn entry(
        &self,
        provider: &Provider,
        refresh: bool,
    ) -> Result<(Arc<Jwks>, Option<Endpoints>), FederationError> {
        let now = Instant::now();
        let cached = self.cache.lock().ok().and_then(|c| {
            c.get(&provider.issuer).map(|e| {
                (
                    e.jwks.clone(),
                    e.endpoints.clone(),
                    now.duration_since(e.fetched),
                )
            })
        });
        if let Some((jwks, endpoints, age)) = &cached {
            let forced_too_soon = age.as_secs() < REFRESH_EVERY_SECS.unsigned_abs();
            if *age < TTL && (!refresh || forced_too_soon) {
                return Ok((jwks.clone(), endpoints.clone()));
            }
        }
        match self.fetch(provider).await {
            Ok((jwks, endpoints)) => {
                let jwks = Arc::new(jwks);
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(
                        provider.issuer.clone(),
                        Cached {
                            jwks: jwks.clone(),
                            endpoints: endpoints.clone(),
                            fetched: Instant::now(),
                        },
                    );
                }
                Ok((jwks, endpoints))
            }
            // Keys that could not be refreshed stay good until the provider is back.
            Err(e) => cached.map(|(j, ep, _)| (j, ep)).ok_or(e),
        }
    }
}

#[async_trait]
impl ProviderKeys for OidcKeys {
    async fn jwks(&self, provider: &Provider, refresh: bool) -> Result<Arc<Jwks>, FederationError> {
        self.entry(provider, refresh).await.map(|(jwks, _)| jwks)
    }

    async fn endpoints(&self, provider: &Provider) -> Result<Endpoints, FederationError> {
        self.entry(provider, false)
            .await?
            .1
            .ok_or(FederationError::ProviderUnavailable(
                "the provider publishes no authorization or token endpoint",
            ))
    }

    async fn redeem(
        &self,
        token_endpoint: &str,
        form: &HashMap<&'static str, String>,
    ) -> Result<String, FederationError> {
        let body = {
            let mut body = form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                body.append_pair(k, v);
            }
            body.finish()
        };
        let answer = self.call(token_endpoint, Some(body)).await?;
        answer
            .get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(FederationError::ProviderUnavailable(
                "the token endpoint answered no id_token",
            ))
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
