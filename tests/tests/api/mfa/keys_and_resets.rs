//! Second factors and what surrounds them: a TOTP seed sealed at rest across key rotations and
//! the reseal sweep, the operator's and the CLI's resets, and the route that demands aal2.

use super::*;

#[tokio::test]
async fn a_totp_seed_is_sealed_at_rest_and_still_opens_after_a_key_rotation() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550171").await;
    let e = enrol(&app, &l).await;
    let stored = || async {
        let doc = mongodb::Client::with_uri_str(mongo_uri())
            .await
            .unwrap()
            .database(&app.state.settings.db_name)
            .collection::<mongodb::bson::Document>("User")
            .find_one(mongodb::bson::doc! {})
            .await
            .unwrap()
            .unwrap();
        doc.get_array("credentials").unwrap()[1]
            .as_document()
            .unwrap()
            .get_str("hash")
            .unwrap()
            .to_owned()
    };
    let before = stored().await;
    assert!(before.starts_with("seal1."), "{before}");
    assert!(!before.contains(&e.secret));
    // Rotate: the old version becomes previous.
    let mut keys = app.state.settings.keys.clone();
    keys.previous = Some(keys.current.clone());
    keys.current = key_version("k-next", &"n".repeat(32), &"m".repeat(32));
    let rotated = under_keys(&app, keys).await;
    let ok = signed_in_with_code(&rotated, "4025550171", &e).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let after = stored().await;
    assert_ne!(
        after.split('.').nth(1),
        before.split('.').nth(1),
        "sealed again under the new key"
    );
}

#[tokio::test]
async fn an_operator_reset_removes_every_factor_ends_sessions_notifies_and_is_audited() {
    use crate::verification::{app as sms_app, sms_to};
    let _ = logs();
    let app = sms_app(&[]).await;
    let (p, l, e) = proven_and_enrolled(&app).await;
    let path = format!("/admin/users/{}/mfa/reset", l.id);
    let mut ev = event_for("POST", "/admin/users/{id}/mfa/reset");
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["pathParameters"]["id"] = json!(l.id);
    let a = Answer::of(
        edge::handlers::dispatch(&app.state, edge::routes::Function::Admin, request(&ev)).await,
    );
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        app.get_user(&e.login).await.status,
        401,
        "every session ended"
    );
    let texts = sms_to(&p).await;
    assert!(
        texts
            .last()
            .is_some_and(|t| t.contains("reset the two-step verification")),
        "{texts:?}"
    );
    // The password still signs in, single-factor, and the old codes are gone.
    let fresh = app.login(&p, PASSWORD).await;
    assert!(fresh.body["token"].is_string(), "{:?}", fresh.body);
    let listed = app
        .call(&authed("GET", "/mfa", &Login::of(&fresh), None))
        .await;
    assert_eq!(listed.body["recovery_codes_left"], 0);
    let log = logs().text();
    assert!(log.contains("\"action\":\"reset_mfa\"") && log.contains("ops-alice"));
    assert!(log.contains("\"outcome\":\"admin_reset\""));
    assert!(!log.contains(&e.secret), "no secret in the log");
    assert!(e.recovery_codes.iter().all(|c| !log.contains(c.as_str())));
}

/// The dev server stands in for API Gateway's JWT authorizer with the route's
/// `AuthorizationScopes`: a single-factor token is refused with the gateway's own 403, the
/// same user's token after a second factor passes, its claims saying how.
#[tokio::test]
async fn the_aal2_route_refuses_a_single_factor_token_and_admits_one_with_a_second_factor() {
    let server = dev_server::start_rs256();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let login = dev_server::signed_in_over_http(&http, &server.base, "5550003434").await;
    let (token, session) = (
        login["token"].as_str().unwrap(),
        login["session_token"].as_str().unwrap(),
    );
    let aal2 = |token: String| {
        let (http, url) = (&http, url("/example/whoami/aal2"));
        async move { dev_server::get_as(http, &url, &token).await }
    };
    assert_eq!(
        aal2(token.to_owned()).await,
        (403, json!({"message": "Forbidden"}))
    );
    let post = async |path: &str, body: Value| -> Value {
        let sent = http
            .post(url(path))
            .header("authorization", format!("Bearer {token}"))
            .header("session-token", session)
            .json(&body)
            .send();
        sent.await.unwrap().json().await.unwrap()
    };
    let start = post("/mfa/totp", json!({})).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let code = totp_code(start["secret"].as_str().unwrap(), now);
    let done = post(
        "/mfa/totp/confirm",
        json!({"enrolment": start["enrolment"], "code": code}),
    )
    .await;
    let raised = done["token"].as_str().unwrap_or_else(|| panic!("{done}"));
    let (status, body) = aal2(raised.to_owned()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["claims"]["aal"], "2");
    assert_eq!(body["claims"]["scope"], "aal1 aal2");
    assert_eq!(body["claims"]["amr"], r#"["pwd","otp","mfa"]"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_resets_the_second_factors_of_a_user_who_lost_them() {
    let app = TestApp::mongo().await;
    let db = app.state.settings.db_name.clone();
    let l = app.signed_in("4025550172").await;
    let e = enrol(&app, &l).await;
    let (code, out, err) = user_admin(&db, &["reset-mfa", &l.id]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out[0]["_id"]["$oid"], l.id.as_str());
    assert!(err.contains("\"action\":\"reset_mfa\""), "audited: {err}");
    assert!(!err.contains(&e.secret));
    assert_eq!(
        app.get_user(&e.login).await.status,
        401,
        "every session ended"
    );
    assert!(app.login("4025550172", PASSWORD).await.body["token"].is_string());
    let (code, _, err) = user_admin(&db, &["reset-mfa", "xyz"]);
    assert_eq!(code, 2, "{err}");
}

/// The app on `app`'s database and clock under another key set.
async fn under_keys(app: &TestApp, keys: domain::config::KeySet) -> TestApp {
    let db = app.state.settings.db_name.clone();
    TestApp {
        state: edge::state::State::new(
            settings_with_keys(&db, keys),
            std::sync::Arc::new(mongo_store(&db).await),
            edge::state::StoreKind::Mongo,
            app.clock.clone() as std::sync::Arc<dyn Clock>,
        )
        .unwrap(),
        clock: app.clock.clone(),
    }
}

/// After a rotation, the sweep seals every seed under the new key, so the rotation after it
/// (which retires the first key) leaves every factor working; without the sweep, a seed no
/// key opens is counted, not lost silently.
#[tokio::test]
async fn a_reseal_sweep_keeps_every_seed_readable_across_two_rotations() {
    use domain::service::admin::{self, Actor};
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550173").await;
    let e = enrol(&app, &l).await;
    let other = app.signed_in("4025550174").await;
    let stale = enrol(&app, &other).await;
    let k1 = app.state.settings.keys.current.clone();
    let k2 = key_version("k2", &"p".repeat(32), &"q".repeat(32));
    let k3 = key_version("k3", &"r".repeat(32), &"s".repeat(32));
    let second = under_keys(
        &app,
        domain::config::KeySet {
            current: k2.clone(),
            previous: Some(k1),
            next: None,
        },
    )
    .await;
    let client = domain::service::Client::default();
    let cx = second.state.ctx(&client);
    let actor = Actor("cli:test".into());
    let r = admin::reseal_mfa(&cx, &actor).await.unwrap();
    assert_eq!((r.resealed, r.current, r.unreadable), (2, 0, 0));
    let again = admin::reseal_mfa(&cx, &actor).await.unwrap();
    assert_eq!((again.resealed, again.current), (0, 2), "idempotent");
    let third = under_keys(
        &app,
        domain::config::KeySet {
            current: k3,
            previous: Some(k2),
            next: None,
        },
    )
    .await;
    next_step(&third);
    for (phone, secret) in [("4025550173", &e.secret), ("4025550174", &stale.secret)] {
        let a = third.login(phone, PASSWORD).await;
        let token = a.body["mfa_token"].as_str().unwrap();
        let ok = second_factor(
            &third,
            token,
            json!({"code": pyotp(secret, third.clock.now())}),
        )
        .await;
        assert_eq!(ok.status, 200, "{phone}: {:?}", ok.body);
    }
    // A fourth key set that holds none of the sealing keys: every seed is unreadable, counted.
    let fourth = under_keys(
        &app,
        domain::config::KeySet {
            current: key_version("k4", &"t".repeat(32), &"u".repeat(32)),
            previous: None,
            next: None,
        },
    )
    .await;
    let cx = fourth.state.ctx(&client);
    let r = admin::reseal_mfa(&cx, &actor).await.unwrap();
    assert_eq!((r.resealed, r.unreadable), (0, 2));
}
