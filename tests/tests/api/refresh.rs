//! Refresh tokens: rotation, reuse detection (the whole session ends), the concurrent-refresh
//! grace, and every way a session ends ending its refresh tokens too.

use api_tests::*;
use futures::future::join_all;
use serde_json::json;

/// Logs in and returns the tokens and the refresh token.
async fn login_with_refresh(app: &TestApp, phone: &str) -> (Login, String) {
    app.signup(phone).await;
    let a = app.login(phone, "securepassword123").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let l = Login {
        id: a.body["user_id"]["$oid"].as_str().unwrap().to_owned(),
        token: a.body["token"].as_str().unwrap().to_owned(),
        session_token: a.body["session_token"].as_str().unwrap().to_owned(),
    };
    (l, a.body["refresh_token"].as_str().unwrap().to_owned())
}

async fn refresh(app: &TestApp, token: &str) -> Answer {
    app.call(&with_body(
        event("refresh"),
        &json!({"refresh_token": token}),
    ))
    .await
}

fn renewed(a: &Answer) -> (String, String) {
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["token_type"], "Bearer");
    (
        a.body["token"].as_str().unwrap().to_owned(),
        a.body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn login_then_a_chain_of_refreshes_each_renewing_the_access_token() {
    let app = TestApp::mongo().await;
    let (mut l, mut rt) = login_with_refresh(&app, "1234567890").await;
    for _ in 0..3 {
        app.clock.advance(600);
        let (token, next) = renewed(&refresh(&app, &rt).await);
        assert_ne!(next, rt);
        assert_ne!(token, l.token);
        l.token = token;
        rt = next;
        assert_eq!(app.get_user(&l).await.status, 200);
    }
    // Twenty minutes after the first access token would have expired, the renewed one works.
    app.clock.advance(600);
    assert_eq!(app.get_user(&l).await.status, 200);
}

#[tokio::test]
async fn a_spent_refresh_token_presented_again_ends_the_whole_session() {
    let app = TestApp::mongo().await;
    let (l, first) = login_with_refresh(&app, "1234567890").await;
    let (token, second) = renewed(&refresh(&app, &first).await);
    app.clock.advance(6); // past the 5 s grace
    let reuse = refresh(&app, &first).await;
    assert_eq!((reuse.status.as_u16(), reuse.code()), (401, "unauthorized"));
    // The thief's and the owner's tokens are all dead now.
    assert_eq!(refresh(&app, &second).await.status, 401);
    let renewed_login = Login { token, ..l.clone() };
    assert_eq!(app.get_user(&renewed_login).await.status, 401);
    assert_eq!(app.get_user(&l).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_within_the_grace_get_the_same_successor() {
    let app = TestApp::mongo().await;
    let other = app.second_instance().await;
    let (_, rt) = login_with_refresh(&app, "1234567890").await;
    let answers = join_all((0..10).map(|i| {
        let on = if i % 2 == 0 { &app } else { &other };
        refresh(on, &rt)
    }))
    .await;
    let successors: std::collections::BTreeSet<String> =
        answers.iter().map(|a| renewed(a).1).collect();
    assert_eq!(successors.len(), 1, "one successor for one token");
    let next = successors.into_iter().next().unwrap();
    renewed(&refresh(&app, &next).await);
}

#[tokio::test]
async fn logout_global_logout_and_a_password_change_end_refresh_tokens() {
    let app = TestApp::mongo().await;
    // Logout.
    let (l, rt) = login_with_refresh(&app, "1234567890").await;
    let out = app
        .call(&with_auth(event("logout"), &l.token, &l.session_token))
        .await;
    assert_eq!(out.status, 204);
    assert_eq!(refresh(&app, &rt).await.status, 401);
    // Global logout from another session.
    let a = app.login("1234567890", "securepassword123").await;
    let rt_a = a.body["refresh_token"].as_str().unwrap().to_owned();
    let b = login(&app.state, "1234567890", "securepassword123").await;
    let global = app
        .call(&with_header(
            with_body(
                with_auth(event("logout"), &b.token, &b.session_token),
                &json!({"scope": "global"}),
            ),
            "content-type",
            Some("application/json"),
        ))
        .await;
    assert_eq!(global.status, 204);
    assert_eq!(refresh(&app, &rt_a).await.status, 401);
    // A password change ends the other sessions' refresh tokens, not its own.
    let c = app.login("1234567890", "securepassword123").await;
    let rt_c = c.body["refresh_token"].as_str().unwrap().to_owned();
    let d_answer = app.login("1234567890", "securepassword123").await;
    let d = Login {
        id: d_answer.body["user_id"]["$oid"]
            .as_str()
            .unwrap()
            .to_owned(),
        token: d_answer.body["token"].as_str().unwrap().to_owned(),
        session_token: d_answer.body["session_token"].as_str().unwrap().to_owned(),
    };
    let rt_d = d_answer.body["refresh_token"].as_str().unwrap().to_owned();
    let changed = app
        .put_user(
            &d,
            json!({"password": "a brand new passphrase", "current_password": "securepassword123"}),
        )
        .await;
    assert_eq!(changed.status, 200);
    assert_eq!(refresh(&app, &rt_c).await.status, 401);
    renewed(&refresh(&app, &rt_d).await);
}

#[tokio::test]
async fn refresh_tokens_obey_the_sessions_idle_and_absolute_limits() {
    let app = TestApp::with(Backend::Mongo, |v| {
        v.set("SESSION_IDLE_TTL_SECONDS", "3600");
        v.set("SESSION_ABSOLUTE_TTL_SECONDS", "7200");
    })
    .await;
    let (_, rt) = login_with_refresh(&app, "1234567890").await;
    app.clock.advance(3601);
    assert_eq!(refresh(&app, &rt).await.status, 401, "idle past its limit");
    let a = app.login("1234567890", "securepassword123").await;
    let mut rt = a.body["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        app.clock.advance(2000);
        rt = renewed(&refresh(&app, &rt).await).1;
    }
    app.clock.advance(1201); // 7201 s after login: past the absolute limit, though in use
    assert_eq!(refresh(&app, &rt).await.status, 401);
}

#[tokio::test]
async fn malformed_or_forged_refresh_tokens_are_refused() {
    let app = TestApp::mongo().await;
    let (_, rt) = login_with_refresh(&app, "1234567890").await;
    let (sid, secret) = rt.split_once('.').unwrap();
    let forged = format!("{sid}.{}", "A".repeat(secret.len()));
    let other_sid = format!("{}.{secret}", "B".repeat(sid.len()));
    for (body, status) in [
        (json!({"refresh_token": forged}), 401),
        (json!({"refresh_token": other_sid}), 401),
        (json!({"refresh_token": "not-a-token"}), 400),
        (json!({"refresh_token": {"$ne": null}}), 400),
        (json!({}), 400),
        (json!({"refresh_token": rt, "extra": 1}), 400),
    ] {
        let a = app.call(&with_body(event("refresh"), &body)).await;
        assert_eq!(a.status, status, "{body}: {:?}", a.body);
    }
    // None of that spent or ended the real one.
    renewed(&refresh(&app, &rt).await);
}
