//! The operator surface, both ways in: the IAM-signed routes (API Gateway v2 events with
//! `requestContext.authorizer.iam`, through the `admin` function's dispatch) and the
//! `user-admin` command-line tool run against the test MongoDB. Every action is audited
//! with the acting principal; a request without an IAM identity is refused.

use api_tests::*;
use edge::routes::Function;
use mongodb::bson::doc;
use serde_json::{Value, json};

const ARN: &str = "arn:aws:iam::123456789012:user/ops-alice";

/// An admin event from `events/admin_<name>.json` aimed at user `id` (or the phone query).
fn admin_event(name: &str, id: &str) -> Value {
    let mut ev = event(&format!("admin_{name}"));
    let path = ev["rawPath"]
        .as_str()
        .unwrap()
        .replace("000000000000000000000000", id);
    ev["rawPath"] = Value::String(path.clone());
    ev["requestContext"]["http"]["path"] = Value::String(path);
    if ev.get("pathParameters").is_some() {
        ev["pathParameters"]["id"] = Value::String(id.to_owned());
    }
    ev
}

fn find_event(phone_query: &str) -> Value {
    let mut ev = event("admin_find_user");
    ev["rawQueryString"] = Value::String(format!("phone={phone_query}"));
    ev["queryStringParameters"] = json!({ "phone": phone_query });
    ev
}

fn without_iam(mut ev: Value) -> Value {
    ev["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    ev
}

/// Through the admin function's own entry point, as its Lambda runs it.
async fn admin_call(app: &TestApp, ev: &Value) -> Answer {
    Answer::of(edge::handlers::dispatch(&app.state, Function::Admin, request(ev)).await)
}

#[tokio::test]
async fn every_admin_route_works_with_an_iam_identity_and_is_audited_with_it() {
    let logs = logs();
    let app = TestApp::mongo().await;
    let phone = "+12025550101";
    let l = app.signed_in(phone).await;
    let second = app.login(phone, "securepassword123").await;
    assert_eq!(second.status, 200);

    // Find by phone (any formatting, '+' percent-encoded) and by id: never the hash.
    for q in ["%2B12025550101", "%2B1%20(202)%20555-0101"] {
        let a = admin_call(&app, &find_event(q)).await;
        assert_eq!(a.status, 200, "{q}: {:?}", a.body);
        assert_eq!(a.body["_id"]["$oid"], l.id.as_str());
        assert_eq!(a.body["disabled"], false);
        assert!(!a.body.to_string().contains("argon2"), "{}", a.body);
    }
    let got = admin_call(&app, &admin_event("get_user", &l.id)).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!(got.body["phone"], phone);

    // End all sessions: both die.
    let out = admin_call(&app, &admin_event("logout_user", &l.id)).await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(out.body["sessions_ended"], 2);
    assert_eq!(app.get_user(&l).await.status, 401);

    // Disable: login refused; enable: login works again.
    let l = app.login(phone, "securepassword123").await;
    let d = admin_call(
        &app,
        &admin_event("disable_user", l.body["user_id"]["$oid"].as_str().unwrap()),
    )
    .await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    assert_eq!(d.body["disabled"], true);
    let id = d.body["_id"]["$oid"].as_str().unwrap().to_owned();
    assert_eq!(
        app.login(phone, "securepassword123").await.code(),
        "account_disabled"
    );
    let e = admin_call(&app, &admin_event("enable_user", &id)).await;
    assert_eq!(e.body["disabled"], false, "{:?}", e.body);
    app.clock.advance(2);
    assert_eq!(app.login(phone, "securepassword123").await.status, 200);

    // Delete: gone, phone free; a second delete says so.
    let del = admin_call(&app, &admin_event("delete_user", &id)).await;
    assert_eq!(del.status, 204, "{:?}", del.body);
    assert_eq!(
        count_users(&app.state.settings.db_name, doc! {"phone": phone}).await,
        0
    );
    let again = admin_call(&app, &admin_event("delete_user", &id)).await;
    assert_eq!(again.code(), "user_not_found");
    assert_eq!(app.signup(phone).await.status, 201);

    let text = logs.text();
    for action in ["find", "logout_all", "disable", "enable", "delete"] {
        assert!(
            text.lines()
                .any(|line| line.contains("\"target\":\"audit\"")
                    && line.contains(&format!("\"action\":\"{action}\""))
                    && line.contains(ARN)),
            "no audit line for {action} naming {ARN}"
        );
    }
    assert!(!text.contains("securepassword123"));
}

#[tokio::test]
async fn admin_routes_fail_closed_without_an_iam_identity_and_refuse_bad_targets() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("+12025550111").await;
    let user_session = |ev: Value| with_auth(ev, &l.token, &l.session_token);
    for name in [
        "get_user",
        "disable_user",
        "enable_user",
        "logout_user",
        "delete_user",
    ] {
        // No authorizer context (a route deployed without AWS_IAM, or the dev server), even
        // with an end user's valid tokens: 401 (no credentials for this route), and nothing
        // happens.
        let a = admin_call(&app, &user_session(without_iam(admin_event(name, &l.id)))).await;
        assert_eq!(a.status, 401, "{name}: {:?}", a.body);
        assert_eq!(a.content_type(), "application/problem+json");
        // Through the router too (what the dev server serves).
        let r = app.call(&without_iam(admin_event(name, &l.id))).await;
        assert_eq!(r.status, 401, "{name}: {:?}", r.body);
    }
    assert_eq!(
        admin_call(&app, &without_iam(find_event("%2B12025550111")))
            .await
            .status,
        401
    );
    // An empty IAM block is no identity either.
    let mut empty = admin_event("disable_user", &l.id);
    empty["requestContext"]["authorizer"]["iam"] = json!({});
    assert_eq!(admin_call(&app, &empty).await.status, 401);
    assert_eq!(
        app.get_user(&l).await.status,
        200,
        "the account is untouched"
    );

    // Bad ids, unknown ids, bad and missing phones: 4xx problems, never 500.
    let bad = admin_call(&app, &admin_event("get_user", "not-an-id")).await;
    assert_eq!(bad.code(), "validation_failed", "{:?}", bad.body);
    let unknown = admin_call(
        &app,
        &admin_event("disable_user", "0123456789abcdef01234567"),
    )
    .await;
    assert_eq!(unknown.code(), "user_not_found", "{:?}", unknown.body);
    assert_eq!(
        admin_call(
            &app,
            &admin_event("logout_user", "0123456789abcdef01234567")
        )
        .await
        .status,
        404
    );
    assert_eq!(
        admin_call(&app, &find_event("abc")).await.code(),
        "validation_failed"
    );
    assert_eq!(
        admin_call(&app, &find_event("%2B19995550000")).await.status,
        404
    );
    let mut no_query = find_event("x");
    no_query["rawQueryString"] = Value::String(String::new());
    no_query
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    assert_eq!(
        admin_call(&app, &no_query).await.code(),
        "validation_failed"
    );
}

/// `user-admin` on `db`.
fn cli(db: &str, args: &[&str]) -> (i32, Vec<Value>, String) {
    user_admin(db, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_runs_every_admin_operation_against_mongo_uri() {
    let app = TestApp::mongo().await;
    let db = app.state.settings.db_name.clone();
    let phone = "+12025550121";
    let l = app.signed_in(phone).await;

    let (code, out, err) = cli(&db, &["find", "--phone", "+1 (202) 555-0121"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out[0]["_id"]["$oid"], l.id.as_str());
    assert!(!out[0].to_string().contains("argon2"));
    let (code, out, _) = cli(&db, &["find", "--id", &l.id]);
    assert_eq!((code, out[0]["phone"].as_str()), (0, Some(phone)));

    let (code, out, _) = cli(&db, &["logout-all", &l.id]);
    assert_eq!((code, out[0]["sessions_ended"].as_u64()), (0, Some(1)));
    assert_eq!(app.get_user(&l).await.status, 401);

    let l = app.login(phone, "securepassword123").await;
    let (code, out, err) = cli(
        &db,
        &["disable", l.body["user_id"]["$oid"].as_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out[0]["disabled"], true);
    assert!(
        err.contains("\"actor\":\"cli:test-operator\"") && err.contains("\"action\":\"disable\""),
        "audit line on stderr: {err}"
    );
    let id = out[0]["_id"]["$oid"].as_str().unwrap().to_owned();
    assert_eq!(
        app.login(phone, "securepassword123").await.code(),
        "account_disabled"
    );
    let (code, out, _) = cli(&db, &["enable", &id]);
    assert_eq!((code, &out[0]["disabled"]), (0, &json!(false)));
    app.clock.advance(2);
    assert_eq!(app.login(phone, "securepassword123").await.status, 200);

    let (code, out, _) = cli(&db, &["delete", &id]);
    assert_eq!((code, &out[0]["deleted"]), (0, &json!(true)));
    assert_eq!(count_users(&db, doc! {}).await, 0);
    let (code, out, _) = cli(&db, &["delete", &id]);
    assert_eq!((code, &out[0]["deleted"]), (0, &json!(false)), "idempotent");

    // Mistakes are usage errors or clear failures, never a panic.
    let (code, _, err) = cli(&db, &["find", "--id", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no such user"), "{err}");
    for bad in [&["disable", "xyz"][..], &["frobnicate"], &[], &["find"]] {
        let (code, _, err) = cli(&db, bad);
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(err.contains("usage"), "{err}");
    }
}

/// Operators find users by email address too, through the admin route and `user-admin`, by
/// any spelling of the address; the answer and the audit line never carry the hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_find_users_by_email_through_the_route_and_the_cli() {
    let logs = logs();
    let app = TestApp::mongo().await;
    let db = app.state.settings.db_name.clone();
    let email = format!("{}@example.com", fresh_db().replace('_', "-"));
    let body = json!({"first_name": "Ann", "last_name": "Lee", "password": "securepassword123",
        "email": email});
    let made = app.call(&with_body(event("signup"), &body)).await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["_id"]["$oid"].as_str().unwrap().to_owned();

    let mut ev = event("admin_find_user");
    let query = email.to_uppercase();
    ev["rawQueryString"] = Value::String(format!("email={query}"));
    ev["queryStringParameters"] = json!({ "email": query });
    let a = admin_call(&app, &ev).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["_id"]["$oid"], id.as_str());
    assert_eq!(a.body["email"], email.as_str());
    assert!(!a.body.to_string().contains("argon2"));
    assert!(logs.text().contains("\"email_tag\""));

    let (code, out, err) = cli(&db, &["find", "--email", &query]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out[0]["_id"]["$oid"], id.as_str());
    assert_eq!(out[0]["email"], email.as_str());
    assert_eq!(out[0]["email_verified"], false);
    assert!(!out[0].to_string().contains("argon2"));
    let (code, _, err) = cli(&db, &["find", "--email", "nobody@example.com"]);
    assert_ne!(code, 0, "{err}");
}
