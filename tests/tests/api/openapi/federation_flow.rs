//! The federation routes' part of the flow: a provider (oauth2-mock-server) whose tokens are
//! minted before the flow (the cases are plain functions), an account holding a provider's
//! identity that an operator disabled, and a password account to link and unlink with.
//!
//! The browser sign-in's cases are plain functions too: the states they complete are seeded
//! before the flow (a sign-in's state with a code the provider issued for it, one-time codes
//! of proven identities), as `authorize` and `callback` would have stored them.

use std::collections::HashMap;

use api_tests::oidc::OidcProvider;
use base64::Engine as _;
use domain::{
    federation::browser,
    store::{Ceremony, CeremonyId, CeremonyKind},
};
use serde_json::{Value, json};

use super::*;

pub(super) const NONCE: &str = "flow-nonce-0123456789";
const CLIENT: &str = "flow-client";
/// The address the new provider account gets, and the one another identity then claims.
const FED_MAIL: &str = "fed.flow@example.com";

/// The provider, the federation every state of the flow trusts, and the minted tokens.
pub(super) struct FedSetup {
    pub _op: OidcProvider,
    pub federation: domain::federation::Federation,
    /// The same providers with no browser sign-in set up.
    pub no_browser: domain::federation::Federation,
    pub tokens: HashMap<&'static str, String>,
    pub issuer: String,
}

pub(super) async fn setup() -> FedSetup {
    let op = OidcProvider::start().await;
    let mut vars = domain::config::Vars::from_pairs([
        ("FEDERATION_PROVIDERS", "local"),
        ("FEDERATION_LOCAL_ISSUER", op.issuer.as_str()),
        ("FEDERATION_LOCAL_CLIENT_IDS", CLIENT),
    ]);
    let no_browser =
        domain::federation::Federation::from_vars(&vars, adapters::oidc::provider_keys_maker)
            .unwrap()
            .unwrap();
    vars.set("FEDERATION_REDIRECT_URLS", APP);
    vars.set("FEDERATION_CALLBACK_BASE_URL", CALLBACK_BASE);
    let federation =
        domain::federation::Federation::from_vars(&vars, adapters::oidc::provider_keys_maker)
            .unwrap()
            .unwrap();
    let claims = |sub: &str, email: Option<&str>| {
        let mut c = json!({"aud": CLIENT, "sub": sub, "nonce": NONCE});
        if let Some(e) = email {
            c["email"] = json!(e);
            c["email_verified"] = json!(true);
        }
        c
    };
    let mut tokens = HashMap::new();
    for (name, c) in [
        ("new", claims("flow-new", Some(FED_MAIL))),
        ("link_required", claims("flow-other", Some(FED_MAIL))),
        ("disabled", claims("flow-disabled", None)),
        ("refusing", claims("flow-refusing", None)),
        ("down", claims("flow-down", None)),
        ("for_link", claims("flow-link", None)),
        (
            "wrong_aud",
            json!({"aud": "someone-else", "sub": "x", "nonce": NONCE}),
        ),
    ] {
        tokens.insert(name, op.id_token(c, 600).await);
    }
    // The code the provider issued for the seeded sign-in (`SEED_STATE`), and who it signs in.
    op.login_as(json!({"aud": CLIENT, "sub": "flow-browser"}))
        .await;
    let at_provider = browser::with_query(
        &format!("{}/authorize", op.issuer),
        &[
            ("response_type", "code"),
            ("client_id", CLIENT),
            (
                "redirect_uri",
                &format!("{CALLBACK_BASE}/federation/local/callback"),
            ),
            ("state", SEED_STATE),
            ("nonce", SEED_NONCE),
            ("code_challenge", &browser::s256(SEED_VERIFIER)),
            ("code_challenge_method", "S256"),
        ],
    );
    let back = op.visit(&at_provider).await;
    let code = form_urlencoded::parse(back.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    tokens.insert("browser_code", code);
    FedSetup {
        no_browser,
        issuer: op.issuer.clone(),
        _op: op,
        federation,
        tokens,
    }
}

/// An account holding the identity `flow-disabled`, disabled by an operator.
pub(super) async fn disabled_holder(state: &State, issuer: &str) {
    let mut u = domain::store::UserRecord::new(
        domain::types::UserId::new(),
        (
            domain::types::Name::parse("Dee").unwrap(),
            None,
            domain::types::Name::parse("Abled").unwrap(),
        ),
        vec![],
        String::new(),
        state.clock.now(),
    );
    u.credentials.clear();
    u.disabled = true;
    u.identifiers.push(domain::identity::IdentifierRecord {
        identifier: domain::identity::Identifier::Federated {
            provider: issuer.to_owned(),
            subject: "flow-disabled".into(),
        },
        verified_at: Some(1),
        primary: false,
    });
    state.store.insert_user(&u).await.unwrap();
}

fn token_ev(path: &str, body: Value) -> Value {
    let mut ev = event_for("POST", "/federation/{provider}/token");
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    without_auth(with_json_body(ev, &body))
}

fn sign_in(c: &Ctx, token: &str) -> Value {
    token_ev(
        "/federation/local/token",
        json!({"id_token": c.fed_token(token), "nonce": NONCE}),
    )
}

fn link_ev(l: Option<&Login>, body: Value) -> Value {
    let ev = with_json_body(event_for("POST", "/user/identities"), &body);
    match l {
        Some(l) => with_bearer(ev, l),
        None => without_auth(ev),
    }
}

fn link(c: &Ctx, l: &Login, token: &str) -> Value {
    link_ev(
        Some(l),
        json!({"provider": "local", "id_token": c.fed_token(token), "nonce": NONCE}),
    )
}

fn unlink(l: Option<&Login>, provider: &str) -> Value {
    let path = format!("/user/identities/{provider}");
    let mut ev = event_for("DELETE", "/user/identities/{provider}");
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    match l {
        Some(l) => with_bearer(ev, l),
        None => without_auth(ev),
    }
}

/// A body the link route's schema admits whatever the token (the session is checked first).
fn any_link_body() -> Value {
    json!({"provider": "local", "id_token": "a.b.c", "nonce": NONCE})
}

const APP: &str = "https://app.example.com/signed-in";
const CALLBACK_BASE: &str = "https://api.example.test";
/// Seeded sign-in states (ceremony ids: 16 bytes, base64url) and their browser's binding.
const SEED_STATE: &str = "Zmxvdy1zdGF0ZS1vbmUtMQ";
const SEED_STATE_2: &str = "Zmxvdy1zdGF0ZS10d28tMg";
const SEED_BINDING: &str = "the-binding-cookie-of-the-flow-browser";
const SEED_NONCE: &str = "flow-browser-nonce-0123456789";
const SEED_VERIFIER: &str = "flow-browser-verifier-0123456789012345678901234";
/// Seeded one-time codes of proven identities.
const CODE_NEW: &str = "Zmxvdy1jb2RlLW5ldy0wMQ";
const CODE_AGAIN: &str = "Zmxvdy1jb2RlLWFnYWluMQ";
const CODE_LINK_REQUIRED: &str = "Zmxvdy1jb2RlLWxpbmtyZQ";
const CODE_DISABLED: &str = "Zmxvdy1jb2RlLWRpc2FibA";
const CODE_REFUSING: &str = "Zmxvdy1jb2RlLXJlZnVzZQ";
const CODE_FOR_LINK: &str = "Zmxvdy1jb2RlLWZvcmxpbg";
/// Unreadable sign-in states the broken database holds (see `broken_documents_state`).
pub(super) const BROKEN_STATE_GET: &str = "YnJva2VuLXN0YXRlLWdldA";
pub(super) const BROKEN_STATE_POST: &str = "YnJva2VuLXN0YXRlLXBzdA";

async fn seed(state: &State, id: &str, kind: CeremonyKind, json: Value) {
    let now = state.clock.now();
    state
        .store
        .put_ceremony(
            &Ceremony {
                id: CeremonyId::parse(id).unwrap(),
                kind,
                user_id: None,
                state: serde_json::to_vec(&json).unwrap(),
                expires_at: now + 86_400,
            },
            now,
        )
        .await
        .unwrap();
}

fn handoff(issuer: &str, subject: &str, email: Option<&str>) -> Value {
    json!({"provider": "local", "issuer": issuer, "subject": subject,
        "verified_email": email, "given_name": null, "family_name": null, "app_challenge": null})
}

/// The sign-in states and one-time codes the browser cases complete: on the federation
/// database, and one code on the database refusing inserts.
pub(super) async fn browser_seeds(fed: &State, refusing: &State, issuer: &str) {
    for id in [SEED_STATE, SEED_STATE_2] {
        seed(
            fed,
            id,
            CeremonyKind::FederatedLogin,
            json!({"provider": "local", "nonce": SEED_NONCE, "verifier": SEED_VERIFIER,
                "redirect_uri": APP, "binding": browser::s256(SEED_BINDING),
                "app_challenge": null}),
        )
        .await;
    }
    for (id, subject, email) in [
        (CODE_NEW, "flow-browser-new", None),
        (CODE_AGAIN, "flow-browser-new", None),
        (CODE_LINK_REQUIRED, "flow-browser-other", Some(FED_MAIL)),
        (CODE_DISABLED, "flow-disabled", None),
        (CODE_FOR_LINK, "flow-browser-link", None),
    ] {
        seed(
            fed,
            id,
            CeremonyKind::FederatedHandoff,
            handoff(issuer, subject, email),
        )
        .await;
    }
    seed(
        refusing,
        CODE_REFUSING,
        CeremonyKind::FederatedHandoff,
        handoff(issuer, "flow-browser-refusing", None),
    )
    .await;
}

/// `GET /federation/{provider}/{step}` with `query`, the browser holding `cookie`.
fn browser_ev(step: &str, provider: &str, query: &str, cookie: Option<(&str, &str)>) -> Value {
    let mut ev = event_for("GET", &format!("/federation/{{provider}}/{step}"));
    let path = format!("/federation/{provider}/{step}");
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["rawQueryString"] = json!(query);
    ev["queryStringParameters"] = Value::Null;
    ev["cookies"] = match cookie {
        Some((state, binding)) => json!([format!("fed-{state}={binding}")]),
        None => Value::Null,
    };
    without_auth(ev)
}

fn authorize(provider: &str, target: Option<&str>) -> Value {
    let query = target.map_or(String::new(), |t| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect_uri", t)
            .finish()
    });
    browser_ev("authorize", provider, &query, None)
}

fn callback(provider: &str, query: &str, state: &str) -> Value {
    browser_ev("callback", provider, query, Some((state, SEED_BINDING)))
}

/// The provider posting the browser back with `form` (base64, as API Gateway passes a form).
fn form_callback(provider: &str, form: &str, state: &str) -> Value {
    let mut ev = event_for("POST", "/federation/{provider}/callback");
    let path = format!("/federation/{provider}/callback");
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["cookies"] = json!([format!("fed-{state}={SEED_BINDING}")]);
    ev["body"] = json!(base64::engine::general_purpose::STANDARD.encode(form));
    ev["isBase64Encoded"] = json!(true);
    without_auth(ev)
}

fn exchange(body: Value) -> Value {
    without_auth(with_json_body(
        event_for("POST", "/federation/exchange"),
        &body,
    ))
}

fn browser_cases() -> Vec<Case> {
    use On::*;
    vec![
        // GET /federation/{provider}/authorize
        case("browser sign-in starts", |_| authorize("local", Some(APP))).on(Fed),
        case("browser sign-in to a target off the list", |_| {
            authorize("local", Some("https://evil.example.com/signed-in"))
        })
        .on(Fed),
        case("browser sign-in without a target", |_| {
            authorize("local", None)
        })
        .on(Fed),
        case("browser sign-in, an unknown provider", |_| {
            authorize("nowhere", Some(APP))
        })
        .on(Fed),
        case("browser sign-in, not set up", |_| {
            authorize("local", Some(APP))
        })
        .on(FedNoBrowser),
        case("browser sign-in, database down", |_| {
            authorize("local", Some(APP))
        })
        .on(Down),
        // GET /federation/{provider}/callback
        case("provider callback", |c| {
            callback(
                "local",
                &format!("state={SEED_STATE}&code={}", c.fed_token("browser_code")),
                SEED_STATE,
            )
        })
        .on(Fed),
        case("provider callback, replayed", |c| {
            callback(
                "local",
                &format!("state={SEED_STATE}&code={}", c.fed_token("browser_code")),
                SEED_STATE,
            )
        })
        .on(Fed),
        case("provider callback, an unknown provider", |_| {
            callback("nowhere", &format!("state={SEED_STATE}&code=x"), SEED_STATE)
        })
        .on(Fed),
        case("provider callback, an unreadable state", |_| {
            callback(
                "local",
                &format!("state={BROKEN_STATE_GET}&code=x"),
                BROKEN_STATE_GET,
            )
        })
        .on(Broken),
        case("provider callback, database down", |_| {
            callback("local", &format!("state={SEED_STATE}&code=x"), SEED_STATE)
        })
        .on(Down),
        // POST /federation/{provider}/callback
        case("provider form callback, the user declined", |_| {
            form_callback(
                "local",
                &format!("state={SEED_STATE_2}&error=access_denied"),
                SEED_STATE_2,
            )
        })
        .on(Fed),
        case("provider form callback, a forged state", |_| {
            form_callback(
                "local",
                "state=Zm9yZ2VkLXN0YXRlLTAwMQ&code=x",
                "Zm9yZ2VkLXN0YXRlLTAwMQ",
            )
        })
        .on(Fed),
        case("provider form callback, an unknown provider", |_| {
            form_callback(
                "nowhere",
                &format!("state={SEED_STATE_2}&code=x"),
                SEED_STATE_2,
            )
        })
        .on(Fed),
        case("provider form callback over 16 KiB", |_| {
            form_callback("local", &"x".repeat(20_000), SEED_STATE_2)
        })
        .on(Fed),
        case("provider form callback, an unreadable state", |_| {
            form_callback(
                "local",
                &format!("state={BROKEN_STATE_POST}&code=x"),
                BROKEN_STATE_POST,
            )
        })
        .on(Broken),
        case("provider form callback, database down", |_| {
            form_callback(
                "local",
                &format!("state={SEED_STATE_2}&code=x"),
                SEED_STATE_2,
            )
        })
        .on(Down),
        // POST /federation/exchange
        case("exchange a sign-in code, a new account", |_| {
            exchange(json!({"code": CODE_NEW}))
        })
        .on(Fed),
        case("exchange a sign-in code, again", |_| {
            exchange(json!({"code": CODE_AGAIN}))
        })
        .on(Fed),
        case("exchange a used sign-in code", |_| {
            exchange(json!({"code": CODE_NEW}))
        })
        .on(Fed),
        case(
            "exchange a code, a verified address an account holds",
            |_| exchange(json!({"code": CODE_LINK_REQUIRED})),
        )
        .on(Fed),
        case("exchange a code, a disabled account", |_| {
            exchange(json!({"code": CODE_DISABLED}))
        })
        .on(Fed),
        case("exchange with malformed JSON", |_| {
            with_raw_body(exchange(json!({})), "{\"code")
        })
        .on(Fed),
        case("exchange with an unknown field", |_| {
            exchange(json!({"code": CODE_NEW, "admin": true}))
        })
        .on(Fed),
        case("exchange over 16 KiB", |_| exchange(huge("code"))).on(Fed),
        case("exchange without Content-Type", |_| {
            with_header(exchange(json!({"code": CODE_NEW})), CT, None)
        })
        .on(Fed),
        case("exchange on a database refusing inserts", |_| {
            exchange(json!({"code": CODE_REFUSING}))
        })
        .on(Refusing),
        case("exchange, database down", |_| {
            exchange(json!({"code": CODE_NEW}))
        })
        .on(Down),
        // POST /user/identities with a browser sign-in's code
        case("link with a browser sign-in's code", |c| {
            link_ev(Some(&c.fed_plain), json!({"code": CODE_FOR_LINK}))
        })
        .on(Fed),
        case("link with a used browser sign-in's code", |c| {
            link_ev(Some(&c.fed_plain), json!({"code": CODE_FOR_LINK}))
        })
        .on(Fed),
    ]
}

pub(super) fn cases() -> Vec<Case> {
    use On::*;
    vec![
        // POST /federation/{provider}/token
        case("provider sign-in, a new account", |c| sign_in(c, "new"))
            .on(Fed)
            .keep(Keep::Fed),
        case("provider sign-in, again", |c| sign_in(c, "new")).on(Fed),
        case(
            "provider sign-in, a verified address an account holds",
            |c| sign_in(c, "link_required"),
        )
        .on(Fed),
        case("provider sign-in, a refused token", |c| {
            sign_in(c, "wrong_aud")
        })
        .on(Fed),
        case("provider sign-in, a disabled account", |c| {
            sign_in(c, "disabled")
        })
        .on(Fed),
        case("provider sign-in, an unknown provider", |c| {
            token_ev(
                "/federation/nowhere/token",
                json!({"id_token": c.fed_token("new"), "nonce": NONCE}),
            )
        })
        .on(Fed),
        case("provider sign-in with malformed JSON", |_| {
            with_raw_body(
                token_ev("/federation/local/token", json!({})),
                "{\"id_token",
            )
        })
        .on(Fed),
        case("provider sign-in with an unknown field", |c| {
            token_ev(
                "/federation/local/token",
                json!({"id_token": c.fed_token("new"), "nonce": NONCE, "admin": true}),
            )
        })
        .on(Fed),
        case("provider sign-in over 16 KiB", |_| {
            token_ev("/federation/local/token", huge("id_token"))
        })
        .on(Fed),
        case("provider sign-in without Content-Type", |c| {
            with_header(sign_in(c, "new"), CT, None)
        })
        .on(Fed),
        case("provider sign-in on a database refusing inserts", |c| {
            sign_in(c, "refusing")
        })
        .on(Refusing),
        case("provider sign-in, database down", |c| sign_in(c, "down")).on(Down),
        // POST /user/identities
        case("link a provider", |c| link(c, &c.fed_plain, "for_link")).on(Fed),
        case("link an identity another account holds", |c| {
            link(c, &c.fed_plain, "new")
        })
        .on(Fed),
        case("link with a refused token", |c| {
            link(c, &c.fed_plain, "wrong_aud")
        })
        .on(Fed),
        case("link without credentials", |_| {
            link_ev(None, any_link_body())
        })
        .on(Fed),
        case("link to an unknown provider", |c| {
            link_ev(
                Some(&c.fed_plain),
                json!({"provider": "nowhere", "id_token": c.fed_token("for_link"), "nonce": NONCE}),
            )
        })
        .on(Fed),
        case("link with malformed JSON", |c| {
            with_raw_body(link_ev(Some(&c.fed_plain), json!({})), "{\"provider")
        })
        .on(Fed),
        case("link with an unknown field", |c| {
            link_ev(Some(&c.fed_plain), json!({"provider": "local", "x": 1}))
        })
        .on(Fed),
        case("link over 16 KiB", |c| {
            link_ev(Some(&c.fed_plain), huge("id_token"))
        })
        .on(Fed),
        case("link without Content-Type", |c| {
            with_header(link_ev(Some(&c.fed_plain), any_link_body()), CT, None)
        })
        .on(Fed),
        case("link, second factors required and none enrolled", |c| {
            link_ev(Some(c.other()), any_link_body())
        })
        .on(MfaRequired),
        case("link, unreadable session", |c| {
            link_ev(Some(&c.c), any_link_body())
        })
        .on(Broken),
        case("link, database down", |c| {
            link_ev(Some(&c.nobody), any_link_body())
        })
        .on(Down),
        // DELETE /user/identities/{provider}
        case("unlink the last way in", |c| unlink(Some(c.fed()), "local")).on(Fed),
        case("unlink a provider", |c| unlink(Some(&c.fed_plain), "local")).on(Fed),
        case("unlink a provider not linked", |c| {
            unlink(Some(&c.fed_plain), "local")
        })
        .on(Fed),
        case("unlink an unknown provider", |c| {
            unlink(Some(&c.fed_plain), "nowhere")
        })
        .on(Fed),
        case("unlink without credentials", |_| unlink(None, "local")).on(Fed),
        case("unlink, second factors required and none enrolled", |c| {
            unlink(Some(c.other()), "local")
        })
        .on(MfaRequired),
        case("unlink, unreadable session", |c| {
            unlink(Some(&c.c), "local")
        })
        .on(Broken),
        case("unlink, database down", |c| {
            unlink(Some(&c.nobody), "local")
        })
        .on(Down),
    ]
    .into_iter()
    .chain(browser_cases())
    .collect()
}
