//! Sign-in with another identity provider (Google, Apple, any OpenID Connect issuer). A
//! provider's identity is an identifier of the account (`Identifier::Federated`, issuer and
//! subject), unique across accounts like a phone or an address; this module says which
//! providers a deployment trusts and checks their ID tokens (`id_token`). Fetching a
//! provider's discovery document and keys is the adapters' (`ProviderKeys`); the keys are
//! cached, and a token naming a key the cache lacks refreshes it once (a provider rotating its
//! keys), never more often than [`REFRESH_EVERY_SECS`] (a flood of made-up `kid`s cannot turn
//! into a flood of fetches).

pub mod apple;
pub mod browser;
pub mod id_token;

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;

use crate::config::{ConfigError, Vars};

pub use browser::{BrowserSettings, ClientAuth, Endpoints, WebClient};
pub use id_token::{FederationError, Jwks, ProviderIdentity};

/// Shortest time between two fetches of one provider's keys forced by unknown `kid`s.
pub const REFRESH_EVERY_SECS: i64 = 5;

/// How a provider carries the app's nonce in its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceMode {
    /// As the app sent it (Google, most providers).
    Raw,
    /// As the lowercase hex SHA-256 of what the app sent (Sign in with Apple on iOS: the app
    /// hands Apple the hash and keeps the raw value).
    Sha256Hex,
}

/// One trusted provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The name in routes and settings (`google`, `apple`, or the deployment's own).
    pub name: String,
    /// Its issuer URL, exactly as its tokens' `iss`.
    pub issuer: String,
    /// Our client ids with it: a token must be for one of them.
    pub client_ids: Vec<String>,
    pub nonce: NonceMode,
    /// The browser flow's client (always set from settings; `None` only in hand-made
    /// providers that serve native sign-in alone).
    pub web: Option<WebClient>,
}

/// The providers a deployment trusts: `FEDERATION_PROVIDERS=google,apple,corp` and for each
/// `FEDERATION_<NAME>_CLIENT_IDS` (comma-separated), `FEDERATION_<NAME>_ISSUER` (Google's and
/// Apple's are known), `FEDERATION_<NAME>_NONCE` (`raw` or `sha256`; Apple's default is
/// `sha256`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FederationSettings {
    pub providers: Vec<Provider>,
    pub browser: BrowserSettings,
}

impl FederationSettings {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let invalid = |name: String, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.to_owned(),
        };
        let mut providers = Vec::new();
        let names = vars.get("FEDERATION_PROVIDERS").unwrap_or("");
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.to_ascii_lowercase();
            if !(1..=32).contains(&name.len())
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(
                    "FEDERATION_PROVIDERS".into(),
                    "names are 1-32 of a-z, 0-9 and -",
                ));
            }
            if providers.iter().any(|p: &Provider| p.name == name) {
                return Err(invalid(
                    "FEDERATION_PROVIDERS".into(),
                    "names a provider twice",
                ));
            }
            let var = |suffix: &str| {
                format!(
                    "FEDERATION_{}_{suffix}",
                    name.to_ascii_uppercase().replace('-', "_")
                )
            };
            let known = match name.as_str() {
                "google" => Some("https://accounts.google.com"),
                "apple" => Some("https://appleid.apple.com"),
                _ => None,
            };
            let issuer = vars
                .get(&var("ISSUER"))
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .or(known)
                .ok_or_else(|| ConfigError::Missing(var("ISSUER")))?
                .trim_end_matches('/')
                .to_owned();
            let loopback = issuer.starts_with("http://127.0.0.1")
                || issuer.starts_with("http://localhost")
                || issuer.starts_with("http://[::1]");
            if !issuer.starts_with("https://") && !loopback {
                return Err(invalid(
                    var("ISSUER"),
                    "must be https:// (or http:// on loopback)",
                ));
            }
            let mut client_ids: Vec<String> = vars
                .get(&var("CLIENT_IDS"))
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            if client_ids.is_empty() {
                return Err(ConfigError::Missing(var("CLIENT_IDS")));
            }
            let nonce = match vars.get(&var("NONCE")).map(str::trim) {
                None if name == "apple" => NonceMode::Sha256Hex,
                None | Some("raw") => NonceMode::Raw,
                Some("sha256") => NonceMode::Sha256Hex,
                Some(_) => return Err(invalid(var("NONCE"), "must be raw or sha256")),
            };
            let web = WebClient::from_vars(vars, &var, &name, &mut client_ids)?;
            providers.push(Provider {
                name,
                issuer,
                client_ids,
                nonce,
                web: Some(web),
            });
        }
        Ok(Self {
            providers,
            browser: BrowserSettings::from_vars(vars)?,
        })
    }

    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }
}

/// Federation as a process has it: the trusted providers and where their keys come from.
#[derive(Clone)]
pub struct Federation {
    pub settings: FederationSettings,
    pub keys: Arc<dyn ProviderKeys>,
    /// How each provider's token endpoint is authenticated to, by provider name.
    pub client_auth: HashMap<String, ClientAuth>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Builds the provider-key source of a process (the adapters' HTTPS fetcher, or none).
pub type MakeProviderKeys = fn() -> Option<Arc<dyn ProviderKeys>>;

/// No provider keys: functions that serve no federation route.
pub fn no_federation() -> Option<Arc<dyn ProviderKeys>> {
    None
}

impl Federation {
    /// Federation for `vars` (none when no provider is configured or the process fetches no
    /// keys).
    pub fn from_vars(vars: &Vars, make: MakeProviderKeys) -> Result<Option<Self>, ConfigError> {
        let settings = FederationSettings::from_vars(vars)?;
        if settings.providers.is_empty() {
            return Ok(None);
        }
        let mut client_auth = HashMap::new();
        for p in &settings.providers {
            let var = |suffix: &str| {
                format!(
                    "FEDERATION_{}_{suffix}",
                    p.name.to_ascii_uppercase().replace('-', "_")
                )
            };
            client_auth.insert(p.name.clone(), ClientAuth::from_vars(vars, &var)?);
        }
        Ok(make().map(|keys| Self {
            settings,
            keys,
            client_auth,
        }))
    }
}

/// Where a provider's keys come from: its discovery document's `jwks_uri` (the adapters fetch
/// it over HTTPS and cache it).
#[async_trait]
pub trait ProviderKeys: Send + Sync {
    /// The provider's current keys: cached, or fetched when `refresh` (at most once per
    /// [`REFRESH_EVERY_SECS`]; otherwise the cached ones).
    async fn jwks(&self, provider: &Provider, refresh: bool) -> Result<Arc<Jwks>, FederationError>;
    /// The provider's authorization and token endpoints (from the discovery document, cached
    /// with the keys).
    async fn endpoints(&self, provider: &Provider) -> Result<Endpoints, FederationError>;
    /// Redeems an authorization code: `form` POSTed to `token_endpoint`; the `id_token` of
    /// the answer. A provider refusing the code is [`FederationError::CodeRefused`].
    async fn redeem(
        &self,
        token_endpoint: &str,
        form: &HashMap<&'static str, String>,
    ) -> Result<String, FederationError>;
}

/// Checks `token` for `provider`: against the cached keys, and once more against freshly
/// fetched ones when it names a key the cache lacks (the provider rotated).
pub async fn verify(
    keys: &dyn ProviderKeys,
    provider: &Provider,
    token: &str,
    nonce: &str,
    now: i64,
) -> Result<ProviderIdentity, FederationError> {
    let kid = id_token::key_id(token)?;
    let mut jwks = keys.jwks(provider, false).await?;
    if !jwks.has(&kid) {
        jwks = keys.jwks(provider, true).await?;
    }
    id_token::verify(provider, &jwks, token, nonce, now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn providers_come_from_settings_with_the_known_issuers_filled_in() {
        let s = FederationSettings::from_vars(&Vars::from_pairs([
            ("FEDERATION_PROVIDERS", "google, apple,corp-sso"),
            (
                "FEDERATION_GOOGLE_CLIENT_IDS",
                "web.apps.googleusercontent.com,ios",
            ),
            ("FEDERATION_APPLE_CLIENT_IDS", "com.example.app"),
            ("FEDERATION_CORP_SSO_CLIENT_IDS", "user-api"),
            ("FEDERATION_CORP_SSO_ISSUER", "https://sso.example.com/"),
        ]))
        .unwrap();
        let g = s.provider("google").unwrap();
        assert_eq!(
            (g.issuer.as_str(), g.client_ids.len(), g.nonce),
            ("https://accounts.google.com", 2, NonceMode::Raw)
        );
        assert_eq!(s.provider("apple").unwrap().nonce, NonceMode::Sha256Hex);
        assert_eq!(
            s.provider("corp-sso").unwrap().issuer,
            "https://sso.example.com"
        );
        for bad in [
            vec![("FEDERATION_PROVIDERS", "google")],
            vec![
                ("FEDERATION_PROVIDERS", "corp"),
                ("FEDERATION_CORP_CLIENT_IDS", "x"),
            ],
            vec![
                ("FEDERATION_PROVIDERS", "corp"),
                ("FEDERATION_CORP_CLIENT_IDS", "x"),
                ("FEDERATION_CORP_ISSUER", "http://sso.example.com"),
            ],
            vec![
                ("FEDERATION_PROVIDERS", "Bad Name"),
                ("FEDERATION_BAD NAME_CLIENT_IDS", "x"),
            ],
        ] {
            assert!(
                FederationSettings::from_vars(&Vars::from_pairs(bad.clone())).is_err(),
                "{bad:?}"
            );
        }
    }
}
