//! Browser sign-in with a real OpenID Connect provider on loopback (oauth2-mock-server, made
//! as strict as a real provider: codes redeemed once, PKCE verifiers required, client secrets
//! checked): GET authorize → the provider → our callback → the app's redirect target with a
//! one-time code → POST /federation/exchange. Each hop is driven as a browser would, through
//! the router; headless Chromium runs the same flow against the dev server
//! (clients/typescript/browser/run.mjs).

use std::collections::HashMap;

use api_tests::{Answer, TestApp, oidc::OidcProvider};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use domain::federation::browser::{random, s256};
use serde_json::{Value, json};

mod callbacks;

const CLIENT: &str = "user-api-web";
const APP: &str = "https://app.example.com/signed-in";
const CALLBACK_BASE: &str = "https://api.example.test";

/// An app on MongoDB trusting `op` as provider `local` for browser sign-in; `extra` settings
/// over the defaults.
async fn app_with(op: &OidcProvider, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = domain::config::Vars::from_pairs([
        ("FEDERATION_PROVIDERS", "local"),
        ("FEDERATION_LOCAL_ISSUER", op.issuer.as_str()),
        ("FEDERATION_LOCAL_CLIENT_IDS", CLIENT),
        (
            "FEDERATION_REDIRECT_URLS",
            "https://app.example.com/signed-in,myapp://signed-in",
        ),
        ("FEDERATION_CALLBACK_BASE_URL", CALLBACK_BASE),
    ]);
    for (k, v) in extra {
        vars.set(k, *v);
    }
    let fed = domain::federation::Federation::from_vars(&vars, adapters::oidc::provider_keys_maker)
        .unwrap();
    let app = TestApp::mongo().await;
    TestApp {
        state: app.state.with_federation(fed),
        clock: app.clock,
    }
}

fn person(sub: &str, email: &str) -> Value {
    json!({"aud": CLIENT, "sub": sub, "email": email, "email_verified": true,
        "given_name": "Ann", "family_name": "Lee"})
}

fn unique_email() -> String {
    format!("{}@example.com", api_tests::fresh_db().replace('_', "-"))
}

/// The query of `url` as pairs.
fn query_of(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// A request event for `METHOD pattern` at `path` with `query`, `cookies` and a body.
fn event(method: &str, pattern: &str, path: &str, query: &str, cookies: &[String]) -> Value {
    let mut ev = api_tests::event_for(method, pattern);
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["rawQueryString"] = json!(query);
    ev["queryStringParameters"] = Value::Null;
    ev["cookies"] = json!(cookies);
    ev
}

/// A browser: the cookies our API set on it.
#[derive(Default, Clone)]
struct Browser {
    cookies: HashMap<String, String>,
}

impl Browser {
    fn cookie_list(&self) -> Vec<String> {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    fn keep(&mut self, a: &Answer) {
        for c in a.headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    /// GET /federation/local/authorize with `query`.
    async fn authorize(&mut self, app: &TestApp, query: &str) -> Answer {
        let a = app
            .call(&event(
                "GET",
                "/federation/{provider}/authorize",
                "/federation/local/authorize",
                query,
                &self.cookie_list(),
            ))
            .await;
        self.keep(&a);
        a
    }

    /// Our callback at `url` (where the provider sent the browser), as a GET.
    async fn callback(&mut self, app: &TestApp, url: &str) -> Answer {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let a = app
            .call(&event(
                "GET",
                "/federation/{provider}/callback",
                "/federation/local/callback",
                query,
                &self.cookie_list(),
            ))
            .await;
        self.keep(&a);
        a
    }

    /// The whole trip from our authorize to the app's redirect target: its `Location`.
    async fn sign_in(&mut self, app: &TestApp, op: &OidcProvider, query: &str) -> String {
        let a = self.authorize(app, query).await;
        assert_eq!(a.status, 302, "{:?}", a.body);
        let at_provider = location(&a);
        let back = op.visit(&at_provider).await;
        let a = self.callback(app, &back).await;
        assert_eq!(a.status, 302, "{:?}", a.body);
        location(&a)
    }
}

/// The tokens of a sign-in answered 200 or 201.
fn tokens(a: &Answer) -> api_tests::Login {
    assert!(matches!(a.status.as_u16(), 200 | 201), "{:?}", a.body);
    api_tests::Login {
        id: a.body["user_id"]["$oid"].as_str().unwrap().to_owned(),
        token: a.body["token"].as_str().unwrap().to_owned(),
        session_token: a.body["session_token"].as_str().unwrap().to_owned(),
    }
}

fn location(a: &Answer) -> String {
    a.headers["location"].to_str().unwrap().to_owned()
}

fn app_query(challenge: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("redirect_uri", APP);
    if let Some(c) = challenge {
        q.append_pair("code_challenge", c);
        q.append_pair("code_challenge_method", "S256");
    }
    q.finish()
}

async fn exchange(app: &TestApp, body: Value) -> Answer {
    app.call(&api_tests::with_json_body(
        event(
            "POST",
            "/federation/exchange",
            "/federation/exchange",
            "",
            &[],
        ),
        &body,
    ))
    .await
}

#[tokio::test]
async fn browser_sign_in_makes_one_account_then_reuses_it_and_no_token_travels_in_a_url() {
    let op = OidcProvider::start().await;
    let app = app_with(&op, &[]).await;
    op.login_as(person("browser-1", &unique_email())).await;
    let mut browser = Browser::default();

    let a = browser.authorize(&app, &app_query(None)).await;
    assert_eq!(a.status, 302, "{:?}", a.body);
    let to_provider = query_of(&location(&a));
    assert!(location(&a).starts_with(&op.issuer), "{}", location(&a));
    assert_eq!(to_provider["client_id"], CLIENT);
    assert_eq!(to_provider["response_type"], "code");
    assert_eq!(to_provider["code_challenge_method"], "S256");
    assert_eq!(to_provider["code_challenge"].len(), 43);
    assert!(to_provider["nonce"].len() >= 32);
    assert_eq!(
        to_provider["redirect_uri"],
        format!("{CALLBACK_BASE}/federation/local/callback")
    );
    let set_cookie = a.headers["set-cookie"].to_str().unwrap();
    let state = &to_provider["state"];
    assert!(
        set_cookie.starts_with(&format!("fed-{state}="))
            && ["Secure", "HttpOnly", "SameSite=None", "Max-Age=600"]
                .iter()
                .all(|attr| set_cookie.contains(attr)),
        "{set_cookie}"
    );

    let back = op.visit(&location(&a)).await;
    let a = browser.callback(&app, &back).await;
    assert_eq!(a.status, 302, "{:?}", a.body);
    let to_app = location(&a);
    assert!(to_app.starts_with(&format!("{APP}?")), "{to_app}");
    let params = query_of(&to_app);
    assert_eq!(params.keys().collect::<Vec<_>>(), vec!["code"], "{to_app}");
    assert!(browser.cookies.is_empty(), "the binding cookie is cleared");

    let first = exchange(&app, json!({"code": params["code"]})).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let login = tokens(&first);
    let me = app.get_user(&login).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["first_name"], "Ann");

    // The code works once.
    let again = exchange(&app, json!({"code": params["code"]})).await;
    assert_eq!((again.status.as_u16(), again.code()), (400, "invalid_code"));

    // Signing in again reuses the account.
    let to_app = browser.sign_in(&app, &op, &app_query(None)).await;
    let second = exchange(&app, json!({"code": query_of(&to_app)["code"]})).await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert_eq!(second.body["user_id"], first.body["user_id"]);
}

#[tokio::test]
async fn a_replayed_forged_or_other_browsers_state_is_refused() {
    let op = OidcProvider::start().await;
    let app = app_with(&op, &[]).await;
    op.login_as(person("browser-2", &unique_email())).await;

    // Replayed: the same callback twice.
    let mut browser = Browser::default();
    let a = browser.authorize(&app, &app_query(None)).await;
    let back = op.visit(&location(&a)).await;
    let held = browser.clone();
    assert_eq!(browser.callback(&app, &back).await.status, 302);
    let mut replay = held.clone();
    let a = replay.callback(&app, &back).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, "state_invalid"));

    // Another browser's state: the callback reaches a browser without the binding (login
    // CSRF: an attacker's callback URL opened in the victim's browser), or with a binding of
    // its own sign-in.
    let mut attacker = Browser::default();
    let a = attacker.authorize(&app, &app_query(None)).await;
    let attackers_callback = op.visit(&location(&a)).await;
    let mut victim = Browser::default();
    let a = victim.callback(&app, &attackers_callback).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, "state_invalid"));
    let mut victim = Browser::default();
    victim.authorize(&app, &app_query(None)).await;
    let theirs = query_of(&attackers_callback)["state"].clone();
    let mine = victim.cookies.values().next().unwrap().clone();
    victim.cookies = HashMap::from([(format!("fed-{theirs}"), mine)]);
    let a = victim.callback(&app, &attackers_callback).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, "state_invalid"));
    // That attempt spent the attacker's state too: it cannot be used after.
    let a = attacker.callback(&app, &attackers_callback).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, "state_invalid"));

    // Forged: a state of the right shape we never issued, a malformed one, none.
    let forged = domain::store::CeremonyId::new().unwrap();
    for query in [
        format!("state={}&code=x", forged.as_str()),
        "state=not-a-state&code=x".to_owned(),
        "code=x".to_owned(),
    ] {
        let mut b = Browser::default();
        b.cookies
            .insert(format!("fed-{}", forged.as_str()), "x".into());
        let a = b
            .callback(&app, &format!("{CALLBACK_BASE}/cb?{query}"))
            .await;
        assert_eq!(
            (a.status.as_u16(), a.code()),
            (400, "state_invalid"),
            "{query}"
        );
    }
}

#[tokio::test]
async fn pkce_stops_an_injected_code_and_the_apps_verifier_guards_the_one_time_code() {
    let op = OidcProvider::start().await;
    let app = app_with(&op, &[]).await;
    op.login_as(person("browser-3", &unique_email())).await;

    // Code injection: a code the attacker got at the provider under their own PKCE challenge,
    // put into the victim's callback (with the victim's state and binding). We redeem it with
    // the victim's verifier; the provider refuses, and the app is told so.
    let mut victim = Browser::default();
    let a = victim.authorize(&app, &app_query(None)).await;
    let victims_callback = query_of(&op.visit(&location(&a)).await);
    let mut attacker = Browser::default();
    let a = attacker.authorize(&app, &app_query(None)).await;
    let attackers_code = query_of(&op.visit(&location(&a)).await)["code"].clone();
    let injected = format!(
        "{CALLBACK_BASE}/cb?state={}&code={attackers_code}",
        victims_callback["state"]
    );
    let a = victim.callback(&app, &injected).await;
    assert_eq!(a.status, 302, "{:?}", a.body);
    assert_eq!(query_of(&location(&a))["error"], "provider_refused");

    // The app's own PKCE: the one-time code needs the verifier whose challenge the app sent;
    // a missing or wrong one is refused and does not spend the code.
    let verifier = random(32).unwrap();
    let mut browser = Browser::default();
    let to_app = browser
        .sign_in(&app, &op, &app_query(Some(&s256(&verifier))))
        .await;
    let code = query_of(&to_app)["code"].clone();
    for wrong in [
        json!({"code": code}),
        json!({"code": code, "code_verifier": random(32).unwrap()}),
        json!({"code": code, "code_verifier": format!("{verifier}x")}),
    ] {
        let a = exchange(&app, wrong.clone()).await;
        assert_eq!(
            (a.status.as_u16(), a.code()),
            (400, "invalid_code"),
            "{wrong}"
        );
    }
    let a = exchange(&app, json!({"code": code, "code_verifier": verifier})).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
}

#[tokio::test]
async fn redirect_targets_off_the_allow_list_and_bad_challenges_are_refused() {
    let op = OidcProvider::start().await;
    let app = app_with(&op, &[]).await;
    let q = |pairs: &[(&str, &str)]| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let cases = [
        (
            q(&[("redirect_uri", "https://evil.example.com/x")]),
            "redirect_not_allowed",
        ),
        (
            q(&[("redirect_uri", "https://app.example.com/signed-in/../x")]),
            "redirect_not_allowed",
        ),
        (
            q(&[(
                "redirect_uri",
                "https://app.example.com/signed-in?next=//evil",
            )]),
            "redirect_not_allowed",
        ),
        (
            q(&[("redirect_uri", "https://app.example.com.evil.com/signed-in")]),
            "redirect_not_allowed",
        ),
        (
            q(&[("redirect_uri", "myapp://signed-in-evil")]),
            "redirect_not_allowed",
        ),
        (q(&[]), "validation_failed"),
        (
            q(&[
                ("redirect_uri", APP),
                ("code_challenge", "short"),
                ("code_challenge_method", "S256"),
            ]),
            "validation_failed",
        ),
        (
            q(&[
                ("redirect_uri", APP),
                ("code_challenge", &s256("v")),
                ("code_challenge_method", "plain"),
            ]),
            "validation_failed",
        ),
    ];
    for (query, code) in cases {
        let mut b = Browser::default();
        let a = b.authorize(&app, &query).await;
        assert_eq!((a.status.as_u16(), a.code()), (400, code), "{query}");
        assert!(b.cookies.is_empty(), "{query}: no state kept");
    }
    let mut b = Browser::default();
    let a = b
        .authorize(&app, &q(&[("redirect_uri", "myapp://signed-in")]))
        .await;
    assert_eq!(
        a.status, 302,
        "an app's own scheme on the list: {:?}",
        a.body
    );

    // Off entirely without an allow-list; unknown providers are unknown.
    let off = app_with(&op, &[("FEDERATION_REDIRECT_URLS", "")]).await;
    let a = Browser::default().authorize(&off, &app_query(None)).await;
    assert_eq!((a.status.as_u16(), a.code()), (404, "browser_sign_in_off"));
    let a = app
        .call(&event(
            "GET",
            "/federation/{provider}/authorize",
            "/federation/nope/authorize",
            &app_query(None),
            &[],
        ))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (404, "unknown_provider"));
}

#[tokio::test]
async fn the_provider_saying_no_or_a_bad_token_sends_the_app_an_error_not_a_session() {
    let op = OidcProvider::start().await;
    let app = app_with(&op, &[]).await;
    let email = unique_email();

    // The user declined at the provider.
    let mut b = Browser::default();
    let a = b.authorize(&app, &app_query(None)).await;
    let state = query_of(&location(&a))["state"].clone();
    let a = b
        .callback(
            &app,
            &format!("{CALLBACK_BASE}/cb?state={state}&error=access_denied"),
        )
        .await;
    assert_eq!(query_of(&location(&a))["error"], "access_denied");

    // Tokens the provider's code exchange answers, refused by our checks.
    for (claims, why) in [
        (json!({"aud": "someone-else"}), "another client's token"),
        (
            json!({"nonce": "a-nonce-we-never-sent-000"}),
            "a wrong nonce",
        ),
        (json!({"nonce": null}), "no nonce"),
        (json!({"iss": "https://evil.example.com"}), "another issuer"),
    ] {
        let mut c = person("browser-4", &email);
        for (k, v) in claims.as_object().unwrap() {
            c[k] = v.clone();
        }
        op.login_as(c).await;
        let to_app = Browser::default()
            .sign_in(&app, &op, &app_query(None))
            .await;
        assert_eq!(query_of(&to_app)["error"], "provider_refused", "{why}");
        assert!(!query_of(&to_app).contains_key("code"), "{why}");
    }
    // A client secret the provider wants and we do not send; then sent from the settings.
    op.require_client_secret("s3cret-of-the-client").await;
    op.login_as(person("browser-4", &email)).await;
    let to_app = Browser::default()
        .sign_in(&app, &op, &app_query(None))
        .await;
    assert_eq!(query_of(&to_app)["error"], "provider_refused");
    let with_secret = app_with(
        &op,
        &[("FEDERATION_LOCAL_CLIENT_SECRET", "s3cret-of-the-client")],
    )
    .await;
    let to_app = Browser::default()
        .sign_in(&with_secret, &op, &app_query(None))
        .await;
    let a = exchange(&with_secret, json!({"code": query_of(&to_app)["code"]})).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert!(
        !api_tests::logs().text().contains("s3cret-of-the-client"),
        "the client secret is never logged"
    );
}
