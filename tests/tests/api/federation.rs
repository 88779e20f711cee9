//! Provider ID tokens from a real OpenID Connect provider on loopback (oauth2-mock-server):
//! discovery and keys fetched over HTTP by the adapters' `OidcKeys`, each token checked by
//! `domain::federation::verify` as native sign-in will check it. A good token verifies; a
//! wrong `aud`, wrong `iss`, an expired token, a wrong nonce, an `alg` swap and a key the
//! provider never published are each refused; the provider rotating its keys mid-test is
//! followed; an email the provider does not mark verified is never taken as verified.

use std::time::Duration;

use api_tests::oidc::OidcProvider;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::federation::{self, FederationError, NonceMode, Provider};
use serde_json::{Value, json};

const CLIENT: &str = "user-api-web";
const NONCE: &str = "n-0S6_WzA2Mj-hdk3";

fn provider(op: &OidcProvider) -> Provider {
    Provider {
        name: "local".into(),
        issuer: op.issuer.clone(),
        client_ids: vec![CLIENT.into(), "user-api-ios".into()],
        nonce: NonceMode::Raw,
        web: None,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn good_claims() -> Value {
    json!({"aud": CLIENT, "sub": "provider-user-1", "nonce": NONCE,
        "email": "ann@example.com", "email_verified": true})
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

/// The token re-headed with `alg: HS256`, its signature kept (an algorithm swap).
fn alg_swapped(token: &str) -> String {
    let mut parts = token.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let swapped = with(header, "alg", json!("HS256"));
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(swapped.to_string()),
        parts.next().unwrap(),
        parts.next().unwrap()
    )
}

#[tokio::test]
async fn tokens_of_a_real_provider_verify_and_each_mismatch_is_refused() {
    let op = OidcProvider::start().await;
    let p = provider(&op);
    let keys = adapters::oidc::provider_keys();
    let check = |token: String, nonce: &'static str| {
        let (keys, p) = (keys.clone(), p.clone());
        async move { federation::verify(keys.as_ref(), &p, &token, nonce, now()).await }
    };
    let ok = check(op.id_token(good_claims(), 300).await, NONCE)
        .await
        .unwrap();
    assert_eq!(
        (
            ok.issuer.as_str(),
            ok.subject.as_str(),
            ok.verified_email.as_deref()
        ),
        (
            op.issuer.as_str(),
            "provider-user-1",
            Some("ann@example.com")
        )
    );

    let table = vec![
        (
            "wrong aud",
            op.id_token(with(good_claims(), "aud", json!("another-app")), 300)
                .await,
            NONCE,
            FederationError::Audience,
        ),
        (
            "wrong iss",
            op.id_token(with(good_claims(), "iss", json!("http://localhost:1")), 300)
                .await,
            NONCE,
            FederationError::Issuer,
        ),
        (
            "expired",
            op.id_token(good_claims(), -120).await,
            NONCE,
            FederationError::Expired,
        ),
        (
            "wrong nonce",
            op.id_token(good_claims(), 300).await,
            "another-nonce",
            FederationError::Nonce,
        ),
        (
            "no nonce",
            op.id_token(with(good_claims(), "nonce", Value::Null), 300)
                .await,
            NONCE,
            FederationError::Nonce,
        ),
        (
            "alg swapped to HS256",
            alg_swapped(&op.id_token(good_claims(), 300).await),
            NONCE,
            FederationError::Algorithm,
        ),
        (
            "a key never published",
            op.rogue_id_token(good_claims(), "never-published").await,
            NONCE,
            FederationError::UnknownKey,
        ),
    ];
    for (what, token, nonce, expected) in table {
        assert_eq!(check(token, nonce).await.err(), Some(expected), "{what}");
    }

    // An unverified address is read but never taken as verified.
    let unverified = check(
        op.id_token(with(good_claims(), "email_verified", json!(false)), 300)
            .await,
        NONCE,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            unverified.verified_email,
            unverified.unverified_email.as_deref()
        ),
        (None, Some("ann@example.com"))
    );
}

#[tokio::test]
async fn a_provider_rotating_its_keys_mid_test_is_followed_and_a_forged_kid_is_not() {
    let op = OidcProvider::start().await;
    let p = provider(&op);
    let keys = adapters::oidc::provider_keys();
    let before = op.id_token(good_claims(), 300).await;
    federation::verify(keys.as_ref(), &p, &before, NONCE, now())
        .await
        .unwrap();
    let new_kid = op.rotate().await;
    // The cache was filled a moment ago; a forced refetch waits out the minimum interval
    // (what keeps a flood of made-up kids from becoming a flood of fetches).
    tokio::time::sleep(Duration::from_secs(
        federation::REFRESH_EVERY_SECS.unsigned_abs() + 1,
    ))
    .await;
    let after = op.id_token(good_claims(), 300).await;
    assert!(after.split('.').next().is_some());
    let id = federation::verify(keys.as_ref(), &p, &after, NONCE, now())
        .await
        .unwrap_or_else(|e| panic!("a token under the new key {new_kid}: {e}"));
    assert_eq!(id.subject, "provider-user-1");
    // Tokens under the old key still verify while it is published.
    federation::verify(keys.as_ref(), &p, &before, NONCE, now())
        .await
        .unwrap();
    // A key the provider never published, even under a kid it did publish, never verifies.
    let forged = op.rogue_id_token(good_claims(), &new_kid).await;
    assert_eq!(
        federation::verify(keys.as_ref(), &p, &forged, NONCE, now())
            .await
            .err(),
        Some(FederationError::Signature)
    );
}

// ---- The routes: native sign-in, linking, unlinking ------------------------------------

/// An app on MongoDB trusting `op` as provider `local`.
async fn app_with(op: &OidcProvider) -> api_tests::TestApp {
    let vars = domain::config::Vars::from_pairs([
        ("FEDERATION_PROVIDERS", "local"),
        ("FEDERATION_LOCAL_ISSUER", op.issuer.as_str()),
        ("FEDERATION_LOCAL_CLIENT_IDS", CLIENT),
    ]);
    let fed = domain::federation::Federation::from_vars(&vars, adapters::oidc::provider_keys_maker)
        .unwrap();
    let app = api_tests::TestApp::mongo().await;
    api_tests::TestApp {
        state: app.state.with_federation(fed),
        clock: app.clock,
    }
}

/// Claims for provider subject `sub` with `email`, verified or not.
fn person(sub: &str, email: &str, verified: bool) -> Value {
    json!({"aud": CLIENT, "sub": sub, "nonce": NONCE, "email": email,
        "email_verified": verified, "given_name": "Ann", "family_name": "Lee"})
}

/// The sample event of `route` (`METHOD /pattern`) at `path`.
fn at(method: &str, pattern: &str, path: &str) -> Value {
    let mut ev = api_tests::event_for(method, pattern);
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev
}

async fn native(app: &api_tests::TestApp, id_token: &str) -> api_tests::Answer {
    app.call(&api_tests::with_json_body(
        at(
            "POST",
            "/federation/{provider}/token",
            "/federation/local/token",
        ),
        &json!({"id_token": id_token, "nonce": NONCE}),
    ))
    .await
}

/// The tokens of a sign-in answered 200 or 201.
fn tokens(a: &api_tests::Answer) -> api_tests::Login {
    assert!(matches!(a.status.as_u16(), 200 | 201), "{:?}", a.body);
    api_tests::Login {
        id: a.body["user_id"]["$oid"].as_str().unwrap().to_owned(),
        token: a.body["token"].as_str().unwrap().to_owned(),
        session_token: a.body["session_token"].as_str().unwrap().to_owned(),
    }
}

fn unique_email() -> String {
    format!("{}@example.com", api_tests::fresh_db().replace('_', "-"))
}

#[tokio::test]
async fn native_sign_in_makes_one_account_then_reuses_it_even_when_racing() {
    let op = OidcProvider::start().await;
    let app = app_with(&op).await;
    let email = unique_email();
    let token = op.id_token(person("sub-race", &email, true), 300).await;
    let answers = futures::future::join_all((0..8).map(|_| native(&app, &token))).await;
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for a in &answers {
        assert!(matches!(a.status.as_u16(), 200 | 201), "{:?}", a.body);
        created += usize::from(a.status.as_u16() == 201);
        ids.insert(a.body["user_id"]["$oid"].as_str().unwrap().to_owned());
    }
    assert_eq!((created, ids.len()), (1, 1), "one account, made once");
    let again = native(
        &app,
        &op.id_token(person("sub-race", &email, true), 300).await,
    )
    .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    let login = tokens(&again);
    let me = app.get_user(&login).await;
    assert_eq!(
        me.body["email"],
        email.as_str(),
        "the provider vouched for it"
    );
    assert_eq!(me.body["identities"][0]["issuer"], op.issuer.as_str());
    assert!(me.body.get("phone").is_none());
    assert_eq!(
        api_tests::count_users(&app.state.settings.db_name, mongodb::bson::doc! {}).await,
        1
    );
}

#[tokio::test]
async fn a_verified_address_of_an_existing_account_asks_to_link_and_an_unverified_one_never_links()
{
    let op = OidcProvider::start().await;
    let app = app_with(&op).await;
    let email = unique_email();
    let signup = app
        .call(&api_tests::with_json_body(
            api_tests::event_for("POST", "/signup"),
            &json!({"email": email, "password": "securepassword123", "first_name": "Ann", "last_name": "Lee"}),
        ))
        .await;
    assert_eq!(signup.status, 201, "{:?}", signup.body);
    let owner = signup.body["_id"]["$oid"].as_str().unwrap().to_owned();

    // Verified by the provider: not merged, the client is told to sign in and link.
    let verified = native(&app, &op.id_token(person("sub-v", &email, true), 300).await).await;
    assert_eq!(
        (verified.status.as_u16(), verified.code()),
        (409, "link_required"),
        "{:?}",
        verified.body
    );
    // Not verified by the provider: never matched; a separate account without the address.
    let unverified = native(
        &app,
        &op.id_token(person("sub-u", &email, false), 300).await,
    )
    .await;
    assert_eq!(unverified.status, 201, "{:?}", unverified.body);
    assert_ne!(unverified.body["user_id"]["$oid"], owner.as_str());
    let other = app.get_user(&tokens(&unverified)).await;
    assert!(other.body.get("email").is_none(), "{:?}", other.body);

    // The owner signs in and links; the provider sign-in then opens the owner's account.
    let login = api_tests::Login::of(
        &app.call(&api_tests::with_json_body(
            api_tests::event_for("POST", "/login"),
            &json!({"email": email, "password": "securepassword123"}),
        ))
        .await,
    );
    let link = |token: String| {
        api_tests::with_auth(
            api_tests::with_json_body(
                api_tests::event_for("POST", "/user/identities"),
                &json!({"provider": "local", "id_token": token, "nonce": NONCE}),
            ),
            &login.token,
            &login.session_token,
        )
    };
    let linked = app
        .call(&link(op.id_token(person("sub-v", &email, true), 300).await))
        .await;
    assert_eq!(linked.status, 200, "{:?}", linked.body);
    assert_eq!(linked.body["identities"][0]["issuer"], op.issuer.as_str());
    let by_provider = native(&app, &op.id_token(person("sub-v", &email, true), 300).await).await;
    assert_eq!(by_provider.status, 200, "{:?}", by_provider.body);
    assert_eq!(by_provider.body["user_id"]["$oid"], owner.as_str());
    // An identity another account holds cannot be linked here.
    let taken = app
        .call(&link(
            op.id_token(person("sub-u", &email, false), 300).await,
        ))
        .await;
    assert_eq!(
        (taken.status.as_u16(), taken.code()),
        (409, "identity_taken")
    );
}

#[tokio::test]
async fn unlinking_works_while_another_way_in_remains_and_the_last_one_is_kept() {
    let op = OidcProvider::start().await;
    let app = app_with(&op).await;
    // A provider-only account: its identity is its one way in.
    let only = native(
        &app,
        &op.id_token(person("sub-only", &unique_email(), true), 300)
            .await,
    )
    .await;
    assert_eq!(only.status, 201, "{:?}", only.body);
    let l = tokens(&only);
    let unlink = |l: &api_tests::Login| {
        api_tests::with_auth(
            at(
                "DELETE",
                "/user/identities/{provider}",
                "/user/identities/local",
            ),
            &l.token,
            &l.session_token,
        )
    };
    let refused = app.call(&unlink(&l)).await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (409, "last_sign_in_method")
    );

    // An account with a password and a linked identity may drop the identity.
    let pw = app.signed_in("+12025550466").await;
    let link = api_tests::with_auth(
        api_tests::with_json_body(
            api_tests::event_for("POST", "/user/identities"),
            &json!({"provider": "local", "id_token": op.id_token(person("sub-pw", &unique_email(), false), 300).await, "nonce": NONCE}),
        ),
        &pw.token,
        &pw.session_token,
    );
    assert_eq!(app.call(&link).await.status, 200);
    // A session the identity opens, which must end when the identity is unlinked.
    let by_provider = native(
        &app,
        &op.id_token(person("sub-pw", &unique_email(), false), 300)
            .await,
    )
    .await;
    assert_eq!(by_provider.status, 200, "{:?}", by_provider.body);
    let fed_session = tokens(&by_provider);
    assert_eq!(fed_session.id, pw.id, "the linked account");
    let dropped = app.call(&unlink(&pw)).await;
    assert_eq!(dropped.status, 200, "{:?}", dropped.body);
    assert!(dropped.body.get("identities").is_none());
    assert_eq!(
        app.get_user(&fed_session).await.status,
        401,
        "the identity's session ended with it"
    );
    assert_eq!(
        app.get_user(&pw).await.status,
        200,
        "the password's session stays"
    );
    let gone = app.call(&unlink(&pw)).await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn refused_tokens_and_unknown_providers_get_clear_answers() {
    let op = OidcProvider::start().await;
    let app = app_with(&op).await;
    let wrong_aud = op
        .id_token(
            with(person("s", &unique_email(), true), "aud", json!("other")),
            300,
        )
        .await;
    let a = native(&app, &wrong_aud).await;
    assert_eq!(
        (a.status.as_u16(), a.code()),
        (401, "provider_token_refused")
    );
    let forged = op
        .rogue_id_token(person("s", &unique_email(), true), "never-published")
        .await;
    assert_eq!(native(&app, &forged).await.status, 401);
    let unknown = app
        .call(&api_tests::with_json_body(
            at(
                "POST",
                "/federation/{provider}/token",
                "/federation/nowhere/token",
            ),
            &json!({"id_token": wrong_aud, "nonce": NONCE}),
        ))
        .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.code()),
        (404, "unknown_provider")
    );
    assert_eq!(
        api_tests::count_users(&app.state.settings.db_name, mongodb::bson::doc! {}).await,
        0,
        "nothing was made"
    );
}
