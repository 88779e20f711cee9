//! The browser flow's pieces (authorization code with PKCE, OpenID Connect core §3.1): what
//! the settings say about it, the state kept between the redirect to the provider and its
//! callback, and the URLs built on the way. The flow itself is `service::federation_browser`.
//!
//! - `state` is a ceremony id (one-time, ten minutes), and the browser that started the
//!   sign-in holds a random binding in a cookie named after it, kept here only as a hash: a
//!   callback carrying another browser's state (login CSRF, a leaked callback URL) or a
//!   replayed one finds nothing to complete.
//! - `nonce` and the PKCE verifier are made here, kept in the ceremony and never leave the
//!   server except as the provider must see them (the nonce, as the provider's mode wants it;
//!   the verifier only at the code exchange, to the provider's token endpoint).
//! - The app's redirect target must be on an allow-list, matched exactly; it receives a
//!   one-time code (60 s), never a token, and the app exchanges it with a POST, proving with
//!   its own PKCE verifier where it sent a challenge.

use std::{collections::HashMap, sync::Arc};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Provider, ProviderIdentity, apple::AppleKey};
use crate::config::{ConfigError, Vars};

/// How long a sign-in at a provider may take, from our redirect to its callback.
pub const LOGIN_TTL_SECS: i64 = 600;
/// How long the app has to exchange the one-time code it was sent.
pub const HANDOFF_TTL_SECS: i64 = 60;
/// The binding cookie's name is this plus the state.
pub const COOKIE_PREFIX: &str = "fed-";

/// How the provider answers the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// A redirect with the code in the query (a GET).
    Query,
    /// An auto-submitted form (a cross-site POST): what Apple requires once scopes are asked.
    FormPost,
}

/// The browser flow's settings for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebClient {
    /// The client id the browser flow signs in as (one of the provider's client ids).
    pub client_id: String,
    pub scope: String,
    pub response_mode: ResponseMode,
}

impl WebClient {
    /// `FEDERATION_<NAME>_WEB_CLIENT_ID` (default: the first client id), `_SCOPE` (default
    /// `openid email profile`; Apple `openid email name`), `_RESPONSE_MODE` (`query` or
    /// `form_post`; Apple's default `form_post`).
    pub fn from_vars(
        vars: &Vars,
        var: &dyn Fn(&str) -> String,
        name: &str,
        client_ids: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let apple = name == "apple";
        let client_id = match vars.get(&var("WEB_CLIENT_ID")).map(str::trim) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => client_ids.first().cloned().unwrap_or_default(),
        };
        if !client_ids.contains(&client_id) {
            client_ids.push(client_id.clone());
        }
        let scope = vars
            .get(&var("SCOPE"))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(if apple {
                "openid email name"
            } else {
                "openid email profile"
            })
            .to_owned();
        if !scope.split(' ').any(|s| s == "openid")
            || !scope.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(ConfigError::Invalid {
                name: var("SCOPE"),
                reason: "must include openid, in plain ASCII".into(),
            });
        }
        let response_mode = match vars.get(&var("RESPONSE_MODE")).map(str::trim) {
            None | Some("") if apple => ResponseMode::FormPost,
            None | Some("" | "query") => ResponseMode::Query,
            Some("form_post") => ResponseMode::FormPost,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: var("RESPONSE_MODE"),
                    reason: "must be query or form_post".into(),
                });
            }
        };
        Ok(Self {
            client_id,
            scope,
            response_mode,
        })
    }
}

/// How we authenticate to a provider's token endpoint.
#[derive(Clone, Default)]
pub enum ClientAuth {
    /// A public client: PKCE alone.
    #[default]
    None,
    /// `client_secret` in the form (`client_secret_post`).
    Secret(crate::config::Secret),
    /// Sign in with Apple: a client secret signed at run time with the team's key.
    Apple(Arc<AppleKey>),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "ClientAuth::None",
            Self::Secret(_) => "ClientAuth::Secret(<redacted>)",
            Self::Apple(_) => "ClientAuth::Apple(<key>)",
        })
    }
}

impl ClientAuth {
    /// `FEDERATION_<NAME>_CLIENT_SECRET`, or for Apple `FEDERATION_<NAME>_APPLE_PRIVATE_KEY`
    /// (the `.p8`) with `_APPLE_KEY_ID` and `_APPLE_TEAM_ID`; both best kept in the stack's
    /// secret (it is read into these variables).
    pub fn from_vars(vars: &Vars, var: &dyn Fn(&str) -> String) -> Result<Self, ConfigError> {
        if let Some(pem) = vars
            .get(&var("APPLE_PRIVATE_KEY"))
            .filter(|p| !p.trim().is_empty())
        {
            let get = |s: &str| {
                vars.get(&var(s))
                    .ok_or_else(|| ConfigError::Missing(var(s)))
            };
            let key = AppleKey::from_p8(pem, get("APPLE_KEY_ID")?, get("APPLE_TEAM_ID")?).map_err(
                |reason| ConfigError::Invalid {
                    name: var("APPLE_PRIVATE_KEY"),
                    reason: reason.into(),
                },
            )?;
            return Ok(Self::Apple(Arc::new(key)));
        }
        Ok(
            match vars.get(&var("CLIENT_SECRET")).filter(|s| !s.is_empty()) {
                Some(s) => Self::Secret(crate::config::Secret::new(s.as_bytes())),
                None => Self::None,
            },
        )
    }

    /// The `client_secret` to send for `client_id` at `now`, if any.
    pub fn secret(&self, client_id: &str, now: i64) -> Result<Option<String>, &'static str> {
        match self {
            Self::None => Ok(None),
            Self::Secret(s) => Ok(Some(String::from_utf8_lossy(s.expose()).into_owned())),
            Self::Apple(key) => key.client_secret(client_id, now).map(Some),
        }
    }
}

/// The browser flow's deployment-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserSettings {
    /// `FEDERATION_REDIRECT_URLS`: where an app may be sent back to, matched exactly.
    pub redirect_urls: Vec<String>,
    /// `FEDERATION_CALLBACK_BASE_URL`: this API's public URL, where the provider sends the
    /// browser back (`<base>/federation/<provider>/callback`, registered at the provider).
    /// Default: the URL the request came in on.
    pub callback_base: Option<String>,
}

impl BrowserSettings {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let redirect_urls: Vec<String> = vars
            .get("FEDERATION_REDIRECT_URLS")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        for u in &redirect_urls {
            // An absolute URL with a scheme (an app's custom scheme is fine), no fragment.
            let scheme_ok = u.split_once("://").is_some_and(|(s, rest)| {
                !s.is_empty()
                    && !rest.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
            });
            if !scheme_ok || u.contains('#') || u.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(ConfigError::Invalid {
                    name: "FEDERATION_REDIRECT_URLS".into(),
                    reason: "each must be an absolute URL with no fragment".into(),
                });
            }
        }
        let callback_base = vars
            .get("FEDERATION_CALLBACK_BASE_URL")
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty());
        if let Some(u) = &callback_base
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(ConfigError::Invalid {
                name: "FEDERATION_CALLBACK_BASE_URL".into(),
                reason: "must be an http(s) URL".into(),
            });
        }
        Ok(Self {
            redirect_urls,
            callback_base,
        })
    }

    /// `target` if it is on the allow-list, exactly.
    pub fn allows(&self, target: &str) -> bool {
        self.redirect_urls.iter().any(|u| u == target)
    }
}

/// A provider's endpoints, from its discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
}

/// What the `FederatedLogin` ceremony keeps between the redirect and the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginState {
    pub provider: String,
    /// The raw nonce (the provider saw it as its nonce mode wants).
    pub nonce: String,
    /// The PKCE verifier sent at the code exchange.
    pub verifier: String,
    /// The app's redirect target, from the allow-list.
    pub redirect_uri: String,
    /// SHA-256 (base64url) of the browser's binding cookie.
    pub binding: String,
    /// The app's own PKCE challenge (S256) for the one-time code, if it sent one.
    pub app_challenge: Option<String>,
}

/// What the `FederatedHandoff` ceremony keeps until the app exchanges its code: the identity
/// the provider vouched for (stored flat, beside the provider's name and the app's challenge).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handoff {
    pub provider: String,
    #[serde(flatten)]
    pub identity: ProviderIdentity,
    pub app_challenge: Option<String>,
}

/// `bytes` random bytes, base64url without padding.
pub fn random(bytes: usize) -> Option<String> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).ok()?;
    Some(URL_SAFE_NO_PAD.encode(b))
}

/// base64url(SHA-256(`value`)): the S256 PKCE challenge of a verifier, and how a binding is
/// kept.
pub fn s256(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// True when `value`'s S256 is `expected`, compared in constant time.
pub fn s256_matches(value: &str, expected: &str) -> bool {
    crate::auth::constant_time_eq(s256(value).as_bytes(), expected.as_bytes())
}

/// An app's PKCE challenge as RFC 7636 shapes it (S256: 43 base64url characters).
pub fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `base` with `params` added to its query.
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", q.finish())
}

/// The provider's authorization URL for one sign-in.
pub fn authorize_url(
    endpoints: &Endpoints,
    provider: &Provider,
    web: &WebClient,
    callback: &str,
    state: &str,
    login: &LoginState,
) -> String {
    let nonce = super::id_token::expected_nonce(provider.nonce, &login.nonce);
    let challenge = s256(&login.verifier);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", web.client_id.as_str()),
        ("redirect_uri", callback),
        ("scope", web.scope.as_str()),
        ("state", state),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if web.response_mode == ResponseMode::FormPost {
        params.push(("response_mode", "form_post"));
    }
    with_query(&endpoints.authorization, &params)
}

/// The form of the code exchange at the provider's token endpoint.
pub fn token_form(
    web: &WebClient,
    code: &str,
    callback: &str,
    verifier: &str,
    client_secret: Option<&str>,
) -> HashMap<&'static str, String> {
    let mut form = HashMap::from([
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", callback.to_owned()),
        ("client_id", web.client_id.clone()),
        ("code_verifier", verifier.to_owned()),
    ]);
    if let Some(s) = client_secret {
        form.insert("client_secret", s.to_owned());
    }
    form
}

/// The names Apple posts once, on a user's first sign-in (`user` in the callback form:
/// `{"name": {"firstName": .., "lastName": ..}}`); nothing else is read from it.
pub fn apple_user_names(user: &str) -> (Option<String>, Option<String>) {
    let v: serde_json::Value = serde_json::from_str(user).unwrap_or_default();
    let get = |k: &str| v["name"][k].as_str().map(str::to_owned);
    (get("firstName"), get("lastName"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::federation::NonceMode;

    fn provider(nonce: NonceMode) -> Provider {
        Provider {
            name: "corp".into(),
            issuer: "https://sso.example.com".into(),
            client_ids: vec!["web".into()],
            nonce,
            web: None,
        }
    }

    #[test]
    fn the_authorize_url_carries_state_nonce_and_an_s256_challenge_never_the_verifier() {
        let login = LoginState {
            provider: "corp".into(),
            nonce: "raw-nonce".into(),
            verifier: random(32).unwrap(),
            redirect_uri: "https://app.example.com/cb".into(),
            binding: s256("b"),
            app_challenge: None,
        };
        let web = WebClient {
            client_id: "web".into(),
            scope: "openid email".into(),
            response_mode: ResponseMode::FormPost,
        };
        let ep = Endpoints {
            authorization: "https://sso.example.com/auth?x=1".into(),
            token: "https://sso.example.com/token".into(),
        };
        for (mode, nonce) in [
            (NonceMode::Raw, "raw-nonce".to_owned()),
            (
                NonceMode::Sha256Hex,
                super::super::id_token::expected_nonce(NonceMode::Sha256Hex, "raw-nonce"),
            ),
        ] {
            let url = authorize_url(&ep, &provider(mode), &web, "https://api/cb", "st", &login);
            assert!(
                url.starts_with("https://sso.example.com/auth?x=1&"),
                "{url}"
            );
            let q: HashMap<String, String> =
                form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
                    .into_owned()
                    .collect();
            assert_eq!(q["nonce"], nonce);
            assert_eq!(q["state"], "st");
            assert_eq!(q["code_challenge"], s256(&login.verifier));
            assert_eq!(q["code_challenge_method"], "S256");
            assert_eq!(q["response_mode"], "form_post");
            assert_eq!(q["redirect_uri"], "https://api/cb");
            assert!(!url.contains(&login.verifier));
        }
    }

    #[test]
    fn redirect_targets_match_the_allow_list_exactly() {
        let s = BrowserSettings::from_vars(&Vars::from_pairs([(
            "FEDERATION_REDIRECT_URLS",
            "https://app.example.com/cb, myapp://signed-in",
        )]))
        .unwrap();
        assert!(s.allows("https://app.example.com/cb"));
        assert!(s.allows("myapp://signed-in"));
        for off in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://app.example.com.evil.com/cb",
            "https://APP.example.com/cb",
            "//app.example.com/cb",
            "",
        ] {
            assert!(!s.allows(off), "{off}");
        }
        for bad in ["app.example.com/cb", "https://a/#x", "https://a/ b"] {
            assert!(
                BrowserSettings::from_vars(&Vars::from_pairs([("FEDERATION_REDIRECT_URLS", bad)]))
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn pkce_shapes_and_constant_time_matching() {
        let v = random(32).unwrap();
        assert!(v.len() == 43 && is_s256_challenge(&s256(&v)));
        assert!(s256_matches(&v, &s256(&v)));
        assert!(!s256_matches(&format!("{v}x"), &s256(&v)));
        assert!(!is_s256_challenge("short"));
        assert_eq!(
            apple_user_names(r#"{"name":{"firstName":"Ann","lastName":"Lee"},"email":"x"}"#),
            (Some("Ann".into()), Some("Lee".into()))
        );
        assert_eq!(apple_user_names("not json"), (None, None));
    }
}
