//! The federation routes' part of the flow: a provider (oauth2-mock-server) whose tokens are
//! minted before the flow (the cases are plain functions), an account holding a provider's
//! identity that an operator disabled, and a password account to link and unlink with.

use std::collections::HashMap;

use api_tests::oidc::OidcProvider;
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
    pub tokens: HashMap<&'static str, String>,
    pub issuer: String,
}

pub(super) async fn setup() -> FedSetup {
    let op = OidcProvider::start().await;
    let vars = domain::config::Vars::from_pairs([
        ("FEDERATION_PROVIDERS", "local"),
        ("FEDERATION_LOCAL_ISSUER", op.issuer.as_str()),
        ("FEDERATION_LOCAL_CLIENT_IDS", CLIENT),
    ]);
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
    FedSetup {
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
}
