//! Self-service deletion (DELETE /user) and disabled accounts, against MongoDB: nothing of a
//! deleted user remains in any collection, the phone is free at once, retries are safe, and a
//! disabled account is refused everywhere, also when the disable races a login on another
//! instance.

use api_tests::*;
use domain::{
    service::{Client, Ctx, admin},
    types::UserId,
};
use futures::future::join_all;
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};

/// DELETE /user with the caller's tokens and `current_password`.
fn delete_event(l: &Login, current_password: &str) -> Value {
    with_auth(
        with_body(
            event("delete_user"),
            &json!({ "current_password": current_password }),
        ),
        &l.token,
        &l.session_token,
    )
}

/// Every document of every collection in `db`, as extended JSON text.
async fn everything_in(db: &str) -> Vec<(String, String)> {
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let db = client.database(db);
    let mut out = Vec::new();
    for name in db.list_collection_names().await.unwrap() {
        use futures::TryStreamExt;
        let docs: Vec<Document> = db
            .collection::<Document>(&name)
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for d in docs {
            let text = mongodb::bson::Bson::Document(d)
                .into_relaxed_extjson()
                .to_string();
            out.push((name.clone(), text));
        }
    }
    out
}

#[tokio::test]
async fn deletion_leaves_nothing_of_the_user_in_any_collection_and_frees_the_phone() {
    let app = TestApp::mongo().await;
    let db = app.state.settings.db_name.clone();
    let phone = "+12025550161";
    let l = app.signed_in(phone).await;
    let other_session = app.login(phone, "securepassword123").await;
    assert_eq!(other_session.status, 200);
    // Leave traces everywhere the service keeps something about the account: a failed login
    // (counter by phone), a wrong current_password (counter by user) and a phone-change budget.
    assert_eq!(app.login(phone, "wrong-password").await.status, 401);
    let wrong = app
        .put_user(
            &l,
            json!({"phone": "+12025550162", "current_password": "not-it-at-all"}),
        )
        .await;
    assert_eq!(wrong.status, 403, "{:?}", wrong.body);
    // A bystander whose documents must survive.
    let bystander = app.signed_in("+12025550169").await;
    let before = everything_in(&db).await;
    assert!(before.iter().any(|(_, d)| d.contains(&l.id)));
    assert!(before.iter().any(|(c, _)| c.ends_with("_budgets")));
    assert!(before.iter().any(|(c, _)| c.ends_with("_login_attempts")));

    let a = app.call(&delete_event(&l, "securepassword123")).await;
    assert_eq!(a.status, 204, "{:?}", a.body);

    let after = everything_in(&db).await;
    let digits = phone.trim_start_matches('+');
    for (collection, d) in &after {
        assert!(
            !d.contains(&l.id) && !d.contains(digits),
            "{collection} still holds {d}"
        );
    }
    assert!(
        after.iter().any(|(_, d)| d.contains(&bystander.id)),
        "the bystander's documents survive"
    );
    // The tokens are dead, a retry is still a success, the password no longer logs in, and
    // the phone is free at once.
    assert_eq!(app.get_user(&l).await.status, 401);
    let retry = app.call(&delete_event(&l, "securepassword123")).await;
    assert_eq!(retry.status, 204, "{:?}", retry.body);
    assert_eq!(
        app.login(phone, "securepassword123").await.code(),
        "invalid_credentials"
    );
    assert_eq!(app.signup(phone).await.status, 201);
    assert_eq!(app.get_user(&bystander).await.status, 200);
}

#[tokio::test]
async fn deletion_needs_the_password_and_is_throttled_like_every_password_check() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("+12025550171").await;
    for _ in 0..5 {
        let a = app.call(&delete_event(&l, "wrong-password-x")).await;
        assert_eq!(a.code(), "current_password_incorrect", "{:?}", a.body);
    }
    let locked = app.call(&delete_event(&l, "securepassword123")).await;
    assert_eq!(locked.status, 429, "{:?}", locked.body);
    assert!(locked.headers.contains_key("retry-after"));
    assert_eq!(app.get_user(&l).await.status, 200, "still there");
    app.clock.advance(2);
    // A body the schema refuses, and no credentials at all.
    let no_body = with_raw_body(delete_event(&l, ""), "{}");
    assert_eq!(app.call(&no_body).await.code(), "validation_failed");
    let anonymous = with_header(
        with_header(delete_event(&l, "securepassword123"), "authorization", None),
        "session-token",
        None,
    );
    assert_eq!(app.call(&anonymous).await.status, 401);
    // Credentials are checked before the body, as on every authenticated route.
    assert_eq!(
        app.call(&with_raw_body(anonymous, "{not json"))
            .await
            .status,
        401
    );
    assert_eq!(
        app.call(&delete_event(&l, "securepassword123"))
            .await
            .status,
        204
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_deletes_on_two_instances_both_succeed_once_and_a_logged_out_session_is_not_a_delete()
 {
    let a = TestApp::mongo().await;
    let b = a.second_instance().await;
    let l = a.signed_in("+12025550181").await;
    let ev = delete_event(&l, "securepassword123");
    // One on each instance: each reserves a password check.
    let answers = join_all((0..2).map(|i| {
        let (app, ev) = (if i % 2 == 0 { &a } else { &b }, ev.clone());
        async move { app.call(&ev).await }
    }))
    .await;
    for ans in &answers {
        assert_eq!(ans.status, 204, "{:?}", ans.body);
    }
    assert_eq!(
        count_users(&a.state.settings.db_name, doc! {"phone": "+12025550181"}).await,
        0
    );
    // A session that merely ended is no proof that the account is gone: 401, account kept.
    let m = a.signed_in("+12025550182").await;
    a.call(&with_auth(event("logout"), &m.token, &m.session_token))
        .await;
    let after_logout = a.call(&delete_event(&m, "securepassword123")).await;
    assert_eq!(after_logout.status, 401, "{:?}", after_logout.body);
    assert_eq!(
        a.login("+12025550182", "securepassword123").await.status,
        200
    );
}

fn operator() -> admin::Actor {
    admin::Actor("arn:aws:iam::123456789012:user/test-operator".to_owned())
}

/// A domain context on `app`'s state, as the admin handler or the CLI builds one.
async fn as_operator<T>(app: &TestApp, f: impl AsyncFnOnce(&Ctx<'_>) -> T) -> T {
    let client = Client::default();
    let cx = app.state.ctx(&client);
    f(&cx).await
}

#[tokio::test]
async fn a_disabled_account_is_refused_everywhere_until_enabled() {
    let app = TestApp::mongo().await;
    let phone = "+12025550191";
    let l = app.signed_in(phone).await;
    let id = UserId::parse_hex(&l.id).unwrap();
    as_operator(&app, async |cx| {
        admin::set_disabled(cx, &operator(), &id, true)
            .await
            .unwrap()
    })
    .await;
    // Its sessions ended; login, profile, update and delete are refused.
    assert_eq!(app.get_user(&l).await.status, 401);
    assert_eq!(
        app.put_user(&l, json!({"last_name": "X"})).await.status,
        401
    );
    assert_eq!(
        app.call(&delete_event(&l, "securepassword123"))
            .await
            .status,
        401
    );
    let refused = app.login(phone, "securepassword123").await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(refused.code(), "account_disabled");
    // A wrong password says nothing about the account's state.
    assert_eq!(
        app.login(phone, "wrong-password").await.code(),
        "invalid_credentials"
    );
    as_operator(&app, async |cx| {
        admin::set_disabled(cx, &operator(), &id, false)
            .await
            .unwrap()
    })
    .await;
    app.clock.advance(2);
    let back = app.login(phone, "securepassword123").await;
    assert_eq!(back.status, 200, "{:?}", back.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disable_racing_logins_on_another_instance_leaves_no_live_session() {
    let a = TestApp::mongo().await;
    let b = a.second_instance().await;
    let phone = "+12025550195";
    let l = a.signed_in(phone).await;
    let id = UserId::parse_hex(&l.id).unwrap();
    let db = a.state.settings.db_name.clone();
    let sessions = || async {
        mongodb::Client::with_uri_str(mongo_uri())
            .await
            .unwrap()
            .database(&db)
            .collection::<Document>("User_sessions")
            .count_documents(
                doc! {"user_id": mongodb::bson::oid::ObjectId::parse_str(&l.id).unwrap()},
            )
            .await
            .unwrap()
    };
    for round in 0..10u64 {
        let logins = join_all((0..3).map(|_| b.login(phone, "securepassword123")));
        // Landing at a different point of the logins each round: before their lookup,
        // during the password check, or after their session exists.
        let disable = async {
            tokio::time::sleep(std::time::Duration::from_millis(round * 7 % 40)).await;
            as_operator(&a, async |cx| {
                admin::set_disabled(cx, &operator(), &id, true)
                    .await
                    .unwrap()
            })
            .await
        };
        let (answers, _) = tokio::join!(logins, disable);
        assert_eq!(
            sessions().await,
            0,
            "round {round}: a session outlived the disable"
        );
        for ans in answers {
            assert!(
                ans.status == 200 || ans.code() == "account_disabled",
                "{:?}",
                ans.body
            );
        }
        as_operator(&a, async |cx| {
            admin::set_disabled(cx, &operator(), &id, false)
                .await
                .unwrap()
        })
        .await;
    }
}
