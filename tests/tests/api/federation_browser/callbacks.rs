//! Browser sign-in, continued: a form_post callback and linking an existing account, Apple's
//! client secret from Secrets Manager, a provider account's refresh and second factor, and a
//! state and code raced on two instances.

use super::*;

#[tokio::test]
async fn a_form_post_callback_signs_in_and_a_browser_sign_in_can_link_an_existing_account() {
    let op = OidcProvider::start().await;
    let app = app_with(&op, &[("FEDERATION_LOCAL_RESPONSE_MODE", "form_post")]).await;
    let email = unique_email();
    // An account holding the address, proven.
    let owner = app
        .call(&api_tests::with_json_body(
            api_tests::event_for("POST", "/signup"),
            &json!({"email": email, "password": "a long passphrase 1", "first_name": "Ann", "last_name": "Lee"}),
        ))
        .await;
    assert_eq!(owner.status, 201, "{:?}", owner.body);

    // The provider posts its answer (Apple's form_post), base64-encoded as API Gateway
    // delivers a form body.
    op.login_as(person("browser-5", &email)).await;
    let mut b = Browser::default();
    let a = b.authorize(&app, &app_query(None)).await;
    assert_eq!(query_of(&location(&a))["response_mode"], "form_post");
    let back = op.visit(&location(&a)).await;
    let form = back.split_once('?').unwrap().1.to_owned();
    let mut ev = event(
        "POST",
        "/federation/{provider}/callback",
        "/federation/local/callback",
        "",
        &b.cookie_list(),
    );
    ev["headers"]["content-type"] = json!("application/x-www-form-urlencoded");
    ev["body"] = json!(STANDARD.encode(&form));
    ev["isBase64Encoded"] = json!(true);
    let a = app.call(&ev).await;
    assert_eq!(a.status, 302, "{:?}", a.body);
    let code = query_of(&location(&a))["code"].clone();
    let a = exchange(&app, json!({"code": code})).await;
    assert_eq!((a.status.as_u16(), a.code()), (409, "link_required"));

    // The owner signs in and links with a fresh browser sign-in's code.
    let login = app
        .call(&api_tests::with_json_body(
            api_tests::event_for("POST", "/login"),
            &json!({"email": email, "password": "a long passphrase 1"}),
        ))
        .await;
    let login = api_tests::Login::of(&login);
    let to_app = {
        let mut b = Browser::default();
        let a = b.authorize(&app, &app_query(None)).await;
        let back = op.visit(&location(&a)).await;
        b.callback(&app, &back).await
    };
    let code = query_of(&location(&to_app))["code"].clone();
    let mut ev = api_tests::with_json_body(
        api_tests::event_for("POST", "/user/identities"),
        &json!({"code": code}),
    );
    ev["headers"]["authorization"] = json!(login.token);
    ev["headers"]["session-token"] = json!(login.session_token);
    let linked = app.call(&ev).await;
    assert_eq!(linked.status, 200, "{:?}", linked.body);
    let to_app = Browser::default()
        .sign_in(&app, &op, &app_query(None))
        .await;
    let a = exchange(&app, json!({"code": query_of(&to_app)["code"]})).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["user_id"]["$oid"].as_str().unwrap(), login.id);
}

/// Sign in with Apple's client secret, as the real thing wants it: the provider refuses every
/// code exchange whose `client_secret` is not an ES256 JWT by the team's key (`kid`, `iss`
/// the team, `sub` the client, `aud` Apple, at most six months). The key, its id and the team
/// id come from the stack's secret in Secrets Manager (the emulator); without them the
/// provider says no.
#[tokio::test]
async fn apples_client_secret_is_signed_from_the_key_in_secrets_manager_per_exchange() {
    use api_tests::{create_secret, secret_json, secret_vars, secrets_client};
    const P8: &str = include_str!("../../../fixtures/apple-test.p8");
    let op = OidcProvider::start().await;
    op.require_apple_client_secret(P8, "ABC123DEFG", "TEAM123456", CLIENT)
        .await;
    op.login_as(person("apple-1", &unique_email())).await;
    let endpoint = api_tests::aws_endpoint();
    let client = secrets_client(&endpoint).await;
    let load = |secret: Value| {
        let (client, op) = (&client, &op);
        let endpoint = endpoint.clone();
        async move {
            let name = format!("user-api/{}", api_tests::fresh_db());
            create_secret(client, &name, &secret.to_string()).await;
            let mut vars = secret_vars(&name, &endpoint);
            for (k, v) in [
                ("FEDERATION_PROVIDERS", "local"),
                ("FEDERATION_LOCAL_ISSUER", op.issuer.as_str()),
                ("FEDERATION_LOCAL_CLIENT_IDS", CLIENT),
                ("FEDERATION_REDIRECT_URLS", APP),
                ("FEDERATION_CALLBACK_BASE_URL", CALLBACK_BASE),
            ] {
                vars.set(k, v);
            }
            let state = edge::State::load(&vars, true)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            TestApp {
                state,
                clock: std::sync::Arc::new(domain::clock::ManualClock::new()),
            }
        }
    };
    let mut secret: Value =
        serde_json::from_str(&secret_json(api_tests::JWT_KEY, api_tests::SESSION_KEY)).unwrap();
    let without = load(secret.clone()).await;
    let to_app = Browser::default()
        .sign_in(&without, &op, &app_query(None))
        .await;
    assert_eq!(query_of(&to_app)["error"], "provider_refused");

    secret["FEDERATION_LOCAL_APPLE_PRIVATE_KEY"] = json!(P8);
    secret["FEDERATION_LOCAL_APPLE_KEY_ID"] = json!("ABC123DEFG");
    secret["FEDERATION_LOCAL_APPLE_TEAM_ID"] = json!("TEAM123456");
    let with = load(secret).await;
    for round in [201, 200] {
        let to_app = Browser::default()
            .sign_in(&with, &op, &app_query(None))
            .await;
        let a = exchange(&with, json!({"code": query_of(&to_app)["code"]})).await;
        assert_eq!(a.status, round, "{:?}", a.body);
    }
    assert!(!api_tests::logs().text().contains("PRIVATE KEY"));
}

/// A provider's account is an account like the others: its refresh token renews, it enrols a
/// second factor, and its next provider sign-in (browser flow) then waits for that factor,
/// completing at AAL2 with `fed` and `otp` in `amr`.
#[tokio::test]
async fn a_provider_account_refreshes_and_its_second_factor_is_asked_after_the_provider() {
    use crate::mfa::{claims_of, enrol, post, pyotp};
    use domain::clock::Clock;
    let op = OidcProvider::start().await;
    let app = app_with(&op, &[]).await;
    op.login_as(person("browser-mfa", &unique_email())).await;
    let to_app = Browser::default()
        .sign_in(&app, &op, &app_query(None))
        .await;
    let first = exchange(&app, json!({"code": query_of(&to_app)["code"]})).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(
        claims_of(first.body["token"].as_str().unwrap())["amr"],
        json!(["fed"])
    );
    let renewed = app
        .call(&post(
            "/token/refresh",
            json!({"refresh_token": first.body["refresh_token"]}),
        ))
        .await;
    assert_eq!(renewed.status, 200, "{:?}", renewed.body);

    let enrolled = enrol(&app, &tokens(&first)).await;
    let to_app = Browser::default()
        .sign_in(&app, &op, &app_query(None))
        .await;
    let again = exchange(&app, json!({"code": query_of(&to_app)["code"]})).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["mfa_required"], true, "{:?}", again.body);
    assert!(
        again.body.get("token").is_none(),
        "no tokens before the factor"
    );
    app.clock.advance(30);
    let done = app
        .call(&post(
            "/login/mfa",
            json!({"mfa_token": again.body["mfa_token"],
                "code": pyotp(&enrolled.secret, app.clock.now())}),
        ))
        .await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    let claims = claims_of(done.body["token"].as_str().unwrap());
    assert_eq!(claims["aal"], 2);
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(amr.contains(&"fed") && amr.contains(&"otp"), "{amr:?}");
    assert_eq!(done.body["user_id"], first.body["user_id"]);
}

/// A sign-in's state and its one-time code are each spent once however many requests race
/// for them on two instances: ten callbacks with one state send one browser on to the app,
/// and ten exchanges of one code open one session.
#[tokio::test]
async fn a_state_and_a_code_raced_on_two_instances_each_complete_once() {
    let op = OidcProvider::start().await;
    let one = app_with(&op, &[]).await;
    let second = one.second_instance().await;
    let two = TestApp {
        state: second.state.with_federation(one.state.federation.clone()),
        clock: second.clock,
    };
    op.login_as(person("browser-race", &unique_email())).await;
    let mut b = Browser::default();
    let a = b.authorize(&one, &app_query(None)).await;
    let back = op.visit(&location(&a)).await;
    let callbacks = futures::future::join_all((0..10).map(|i| {
        let (app, mut b, back) = (if i % 2 == 0 { &one } else { &two }, b.clone(), &back);
        async move { b.callback(app, back).await }
    }))
    .await;
    let codes: Vec<String> = callbacks
        .iter()
        .filter(|a| a.status == 302)
        .map(|a| query_of(&location(a))["code"].clone())
        .collect();
    let refused = callbacks
        .iter()
        .filter(|a| a.status == 400 && a.code() == "state_invalid")
        .count();
    assert_eq!((codes.len(), refused), (1, 9));
    let exchanges = futures::future::join_all((0..10).map(|i| {
        let (app, code) = (if i % 2 == 0 { &one } else { &two }, &codes[0]);
        async move { exchange(app, json!({"code": code})).await }
    }))
    .await;
    let opened = exchanges.iter().filter(|a| a.status == 201).count();
    let spent = exchanges
        .iter()
        .filter(|a| a.status == 400 && a.code() == "invalid_code")
        .count();
    assert_eq!((opened, spent), (1, 9));
}
