//! Browser sign-in with a provider (authorization code with PKCE; the pieces and why they are
//! shaped so are in `federation::browser`): `authorize` sends the browser to the provider,
//! `callback` takes the state back (once, and only in the browser that started it), redeems
//! the code and checks the ID token, then sends the browser to the app with a one-time code;
//! `exchange` turns that code into our tokens, as native sign-in does (201 for a new account,
//! `LinkRequired` where a verified address belongs to another account), and `link` links the
//! identity to a signed-in account instead. Tokens never travel in a URL.

use super::{Caller, Ctx, Error, federation};
use crate::{
    federation::{
        FederationError, Provider,
        browser::{self, Endpoints, Handoff, LoginState, WebClient},
    },
    store::{Ceremony, CeremonyId, CeremonyKind, UserRecord},
};

/// Where the browser goes next, and the binding cookie to set (name, value, max-age).
#[derive(Debug)]
pub struct Redirect {
    pub location: String,
    pub cookie: Option<(String, String, i64)>,
}

/// GET /federation/{provider}/authorize, as parsed.
#[derive(Debug)]
pub struct AuthorizeRequest<'a> {
    pub provider: &'a str,
    /// The app's redirect target (on the allow-list).
    pub redirect_uri: &'a str,
    /// The app's own S256 PKCE challenge for the one-time code.
    pub app_challenge: Option<&'a str>,
}

/// The provider's callback, as the edge read it (query or form), with the binding cookie the
/// browser holds for its `state`.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    /// Apple's `user` (names, on a first sign-in).
    pub user: Option<String>,
    pub binding: Option<String>,
}

fn web(provider: &Provider) -> Result<&WebClient, Error> {
    provider.web.as_ref().ok_or(Error::BrowserSignInOff)
}

/// Where the provider sends the browser back for `provider`.
fn callback_url(cx: &Ctx<'_>, provider: &Provider) -> Result<String, Error> {
    let fed = cx.federation.ok_or(Error::UnknownProvider)?;
    let base = fed
        .settings
        .browser
        .callback_base
        .as_deref()
        .or(cx.client.api_url.as_deref())
        .ok_or(Error::BrowserSignInOff)?;
    Ok(format!(
        "{}/federation/{}/callback",
        base.trim_end_matches('/'),
        provider.name
    ))
}

fn unavailable(provider: &Provider, e: &FederationError) -> Error {
    tracing::warn!(provider = provider.name.as_str(), reason = %e, "provider unavailable");
    Error::ProviderUnavailable(e.to_string())
}

async fn endpoints(cx: &Ctx<'_>, provider: &Provider) -> Result<Endpoints, Error> {
    let fed = cx.federation.ok_or(Error::UnknownProvider)?;
    fed.keys
        .endpoints(provider)
        .await
        .map_err(|e| unavailable(provider, &e))
}

fn random(bytes: usize) -> Result<String, Error> {
    browser::random(bytes).ok_or_else(|| Error::internal("random", "no entropy"))
}

/// Starts a sign-in: keeps the state and sends the browser to the provider.
pub async fn authorize(cx: &Ctx<'_>, req: AuthorizeRequest<'_>) -> Result<Redirect, Error> {
    let provider = federation::provider(cx, req.provider)?;
    let web = web(provider)?;
    let fed = cx.federation.ok_or(Error::UnknownProvider)?;
    if fed.settings.browser.redirect_urls.is_empty() {
        return Err(Error::BrowserSignInOff);
    }
    if !fed.settings.browser.allows(req.redirect_uri) {
        tracing::info!(target: "audit", event = "federated_authorize", outcome = "refused",
            provider = provider.name.as_str(), reason = "redirect target off the allow-list");
        return Err(Error::RedirectNotAllowed);
    }
    let callback = callback_url(cx, provider)?;
    let endpoints = endpoints(cx, provider).await?;
    let binding = random(32)?;
    let login = LoginState {
        provider: provider.name.clone(),
        nonce: random(32)?,
        verifier: random(32)?,
        redirect_uri: req.redirect_uri.to_owned(),
        binding: browser::s256(&binding),
        app_challenge: req.app_challenge.map(str::to_owned),
    };
    let state = CeremonyId::new()?;
    let location =
        browser::authorize_url(&endpoints, provider, web, &callback, state.as_str(), &login);
    cx.store
        .put_ceremony(
            &Ceremony {
                id: state.clone(),
                kind: CeremonyKind::FederatedLogin,
                user_id: None,
                state: serde_json::to_vec(&login).map_err(|e| Error::internal("state", e))?,
                expires_at: cx.now.saturating_add(browser::LOGIN_TTL_SECS),
            },
            cx.now,
        )
        .await?;
    Ok(Redirect {
        location,
        cookie: Some((
            format!("{}{}", browser::COOKIE_PREFIX, state.as_str()),
            binding,
            browser::LOGIN_TTL_SECS,
        )),
    })
}

fn refused(provider: &str, reason: &str) -> Error {
    tracing::info!(target: "audit", event = "federated_callback", outcome = "refused",
        provider, reason);
    Error::FederationStateInvalid
}

/// The provider's callback: the state taken (once, by the browser that holds its binding),
/// the code redeemed with the PKCE verifier, the ID token checked with the nonce; then the
/// browser goes to the app with a one-time code, or with `error` where the provider or its
/// token said no.
pub async fn callback(
    cx: &Ctx<'_>,
    provider_name: &str,
    params: CallbackParams,
) -> Result<Redirect, Error> {
    let provider = federation::provider(cx, provider_name)?;
    let web = web(provider)?;
    let state = params
        .state
        .as_deref()
        .and_then(CeremonyId::parse)
        .ok_or_else(|| refused(provider_name, "no state"))?;
    let binding = params
        .binding
        .as_deref()
        .ok_or_else(|| refused(provider_name, "no binding cookie"))?;
    let taken = cx
        .store
        .take_ceremony(&state, CeremonyKind::FederatedLogin, cx.now)
        .await?
        .ok_or_else(|| refused(provider_name, "state unknown, used or expired"))?;
    let login: LoginState = serde_json::from_slice(&taken.state)
        .map_err(|e| Error::internal("stored sign-in state", e))?;
    if !browser::s256_matches(binding, &login.binding) {
        return Err(refused(provider_name, "another browser's state"));
    }
    if login.provider != provider.name {
        return Err(refused(provider_name, "state of another provider"));
    }
    let cookie_gone = Some((
        format!("{}{}", browser::COOKIE_PREFIX, state.as_str()),
        String::new(),
        0,
    ));
    let to_app = |params: &[(&str, &str)]| Redirect {
        location: browser::with_query(&login.redirect_uri, params),
        cookie: cookie_gone.clone(),
    };
    let code = match (params.code.as_deref(), params.error.as_deref()) {
        (Some(code), None) if !code.is_empty() => code,
        (_, error) => {
            // Only a known error word is passed on to the app.
            let error = match error {
                Some("access_denied" | "user_cancelled_authorize") => "access_denied",
                _ => "provider_error",
            };
            tracing::info!(target: "audit", event = "federated_callback", outcome = error,
                provider = provider.name.as_str());
            return Ok(to_app(&[("error", error)]));
        }
    };
    let callback = callback_url(cx, provider)?;
    let fed = cx.federation.ok_or(Error::UnknownProvider)?;
    let secret = fed
        .client_auth
        .get(&provider.name)
        .map(|a| a.secret(&web.client_id, cx.now))
        .transpose()
        .map_err(|e| Error::internal("client secret", e))?
        .flatten();
    let form = browser::token_form(web, code, &callback, &login.verifier, secret.as_deref());
    let endpoints = endpoints(cx, provider).await?;
    let id_token = match fed.keys.redeem(&endpoints.token, &form).await {
        Ok(t) => t,
        Err(FederationError::CodeRefused) => {
            tracing::info!(target: "audit", event = "federated_callback", outcome = "refused",
                provider = provider.name.as_str(), reason = "the provider refused the code");
            return Ok(to_app(&[("error", "provider_refused")]));
        }
        Err(e) => {
            let _ = unavailable(provider, &e);
            return Ok(to_app(&[("error", "provider_unavailable")]));
        }
    };
    let mut id = match federation::identity_of(cx, provider, &id_token, &login.nonce).await {
        Ok(id) => id,
        Err(Error::ProviderUnavailable(_)) => {
            return Ok(to_app(&[("error", "provider_unavailable")]));
        }
        Err(_) => return Ok(to_app(&[("error", "provider_refused")])),
    };
    if let Some(user) = params.user.as_deref() {
        let (first, last) = browser::apple_user_names(user);
        id.given_name = id.given_name.or(first);
        id.family_name = id.family_name.or(last);
    }
    let handoff = CeremonyId::new()?;
    let kept = Handoff {
        provider: provider.name.clone(),
        identity: id,
        app_challenge: login.app_challenge.clone(),
    };
    cx.store
        .put_ceremony(
            &Ceremony {
                id: handoff.clone(),
                kind: CeremonyKind::FederatedHandoff,
                user_id: None,
                state: serde_json::to_vec(&kept).map_err(|e| Error::internal("handoff", e))?,
                expires_at: cx.now.saturating_add(browser::HANDOFF_TTL_SECS),
            },
            cx.now,
        )
        .await?;
    Ok(to_app(&[("code", handoff.as_str())]))
}

/// The identity a one-time code stands for, taken: the app's verifier checked first (a wrong
/// one leaves the code for the app that holds the right one), then the code taken once.
async fn take_handoff<'c>(
    cx: &'c Ctx<'_>,
    code: &str,
    verifier: Option<&str>,
) -> Result<(Handoff, &'c Provider), Error> {
    let id = CeremonyId::parse(code).ok_or(Error::InvalidCode)?;
    let found = cx
        .store
        .find_ceremony(&id, CeremonyKind::FederatedHandoff, cx.now)
        .await?
        .ok_or(Error::InvalidCode)?;
    let kept: Handoff =
        serde_json::from_slice(&found.state).map_err(|e| Error::internal("stored handoff", e))?;
    if let Some(challenge) = &kept.app_challenge
        && !verifier.is_some_and(|v| browser::s256_matches(v, challenge))
    {
        tracing::info!(target: "audit", event = "federated_exchange", outcome = "refused",
            provider = kept.provider.as_str(), reason = "PKCE verifier missing or wrong");
        return Err(Error::InvalidCode);
    }
    cx.store
        .take_ceremony(&id, CeremonyKind::FederatedHandoff, cx.now)
        .await?
        .ok_or(Error::InvalidCode)?;
    let provider = federation::provider(cx, &kept.provider)?;
    Ok((kept, provider))
}

/// POST /federation/exchange: the one-time code for our tokens.
pub async fn exchange(
    cx: &Ctx<'_>,
    code: &str,
    verifier: Option<&str>,
) -> Result<federation::FederatedSignIn, Error> {
    let (kept, provider) = take_handoff(cx, code, verifier).await?;
    federation::sign_in_as(cx, provider, &kept.identity, federation::Names::default()).await
}

/// POST /user/identities with a one-time code: links the identity to the caller's account.
pub async fn link(
    cx: &Ctx<'_>,
    caller: &Caller,
    code: &str,
    verifier: Option<&str>,
) -> Result<UserRecord, Error> {
    let (kept, provider) = take_handoff(cx, code, verifier).await?;
    federation::link_as(cx, caller, provider, &kept.identity).await
}
