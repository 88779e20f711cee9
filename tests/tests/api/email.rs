//! Email as an identifier, on MongoDB with mail sent through SES to the AWS emulator and read
//! back from it: signup by email, phone or both, login by either, one account per mailbox
//! whatever the spelling, verification by code and by link (a GET spends nothing), recovery
//! and change by email, answers that tell no one which addresses have accounts, and guards.

use std::sync::Arc;

use api_tests::*;
use domain::{config::Vars, email::Mail};
use serde_json::{Value, json};

use super::verification::ev;

mod binaries_and_senders;

const PASSWORD: &str = "securepassword123";

/// A unique address at a test domain.
fn address() -> String {
    format!("{}@example.com", fresh_db().replace('_', "-"))
}

/// A MongoDB app whose email goes through SES to the emulator, with `extra` variables.
async fn app(extra: &[(&str, &str)]) -> TestApp {
    ses_identity().await;
    let endpoint = aws_endpoint();
    let from = format!("no-reply@{MAIL_DOMAIN}");
    let mut vars = Vars::from_pairs([
        ("EMAIL_SENDER", "ses"),
        ("EMAIL_FROM", from.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ]);
    for (k, v) in extra {
        vars.set(k, *v);
    }
    let app = TestApp::mongo().await;
    let mail = Mail::from_vars(&vars, adapters::mail_sender).unwrap();
    TestApp {
        state: app.state.with_email(mail),
        clock: app.clock,
    }
}

async fn verifying() -> TestApp {
    app(&[("REQUIRE_EMAIL_VERIFICATION", "true")]).await
}

fn signup_body_with(fields: Value) -> Value {
    let mut body = json!({"first_name": "Ann", "last_name": "Lee", "password": PASSWORD});
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn signup(app: &TestApp, fields: Value) -> Answer {
    app.call(&ev("/signup", signup_body_with(fields))).await
}

async fn login(app: &TestApp, by: Value) -> Answer {
    let mut body = by;
    body["password"] = json!(PASSWORD);
    app.call(&ev("/login", body)).await
}

/// The code and link token of the last mail to `to`.
async fn last_mail(to: &str) -> (String, String) {
    let all = mail_to(to).await;
    let (_, body) = all.last().unwrap_or_else(|| panic!("no mail to {to}"));
    (code_in(body), token_in(body))
}

fn link_page(token: &str) -> Value {
    let mut e = event_for("GET", "/verify/email/link");
    e["rawQueryString"] = json!(format!("token={token}"));
    e["queryStringParameters"] = json!({ "token": token });
    e
}

#[tokio::test]
async fn signup_by_email_by_phone_or_by_both_and_login_by_either() {
    let app = app(&[]).await;
    let (a, b) = (address(), address());
    let by_email = signup(&app, json!({ "email": a })).await;
    assert_eq!(by_email.status.as_u16(), 201, "{:?}", by_email.body);
    assert_eq!(by_email.body["email"], a.as_str());
    assert!(by_email.body.get("phone").is_none());
    // The seed flow, unchanged.
    let by_phone = app.signup("5550000101").await;
    assert_eq!(by_phone.status.as_u16(), 201);
    assert!(by_phone.body.get("email").is_none());
    let both = signup(&app, json!({"email": b, "phone": "5550000102"})).await;
    assert_eq!(both.status.as_u16(), 201, "{:?}", both.body);

    assert_eq!(login(&app, json!({ "email": a })).await.status, 200);
    assert_eq!(
        login(&app, json!({"phone": "5550000101"})).await.status,
        200
    );
    let (by_b, by_p) = (
        login(&app, json!({ "email": b })).await,
        login(&app, json!({"phone": "5550000102"})).await,
    );
    assert_eq!((by_b.status.as_u16(), by_p.status.as_u16()), (200, 200));
    assert_eq!(by_b.body["user_id"], by_p.body["user_id"], "one account");

    // Unknown address and wrong password: one answer.
    let unknown = login(&app, json!({"email": address()})).await;
    let mut wrong = json!({"email": a, "password": "not the password"});
    let wrong = app.call(&ev("/login", wrong.take())).await;
    assert_eq!((unknown.status.as_u16(), wrong.status.as_u16()), (401, 401));
    assert_eq!(unknown.body, wrong.body);
    // Neither identifier, or both, in one login: 400.
    for body in [
        json!({"password": PASSWORD}),
        json!({"phone": "5550000102", "email": b, "password": PASSWORD}),
    ] {
        assert_eq!(app.call(&ev("/login", body)).await.status, 400);
    }
    assert_eq!(signup(&app, json!({})).await.status, 400, "no identifier");
}

#[tokio::test]
async fn spellings_of_one_address_are_one_account() {
    let app = app(&[]).await;
    let local = fresh_db().replace('_', "-");
    let cases = [
        (
            format!("{}@Example.COM", local.to_uppercase()),
            format!("  {local}@example.com "),
        ),
        (
            format!("{local}@bücher.example"),
            format!("{local}@xn--bcher-kva.example"),
        ),
    ];
    for (first, second) in cases {
        let made = signup(&app, json!({ "email": first })).await;
        assert_eq!(made.status.as_u16(), 201, "{first}: {:?}", made.body);
        let again = signup(&app, json!({ "email": second })).await;
        assert_eq!(
            (again.status.as_u16(), again.body["code"].as_str()),
            (409, Some("email_taken")),
            "{second}"
        );
        assert_eq!(login(&app, json!({ "email": second })).await.status, 200);
    }
}

#[tokio::test]
async fn fifty_racing_signups_of_one_address_on_two_instances_give_one_201() {
    let one = Arc::new(app(&[]).await);
    let two = Arc::new(one.second_instance().await);
    let local = fresh_db().replace('_', "-");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let app = Arc::clone(if i % 2 == 0 { &one } else { &two });
            let email = if i % 2 == 0 {
                format!("{}@Example.com", local.to_uppercase())
            } else {
                format!("{local}@example.com")
            };
            tokio::spawn(async move { signup(&app, json!({ "email": email })).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let db = &one.state.settings.db_name;
    let key = format!("email:{local}@example.com");
    assert_eq!(count_users(db, mongodb::bson::doc! {"ids": key}).await, 1);
}

#[tokio::test]
async fn malformed_addresses_answer_400_naming_the_field() {
    let app = app(&[]).await;
    for bad in [
        "Ann <ann@example.com>",
        "ann(x)@example.com",
        "\"ann lee\"@example.com",
        "ann@[192.0.2.1]",
        "ann@localhost",
        "ann..lee@example.com",
        "ann@example.123",
        "\u{a1}nn@example.com",
    ] {
        let a = signup(&app, json!({ "email": bad })).await;
        assert_eq!(a.status.as_u16(), 400, "{bad}");
        // The schema refuses most; the canonical form's own rules answer `invalid_email`.
        assert!(
            ["validation_failed", "invalid_email"].contains(&a.code()),
            "{bad}: {:?}",
            a.body
        );
        assert_eq!(a.body["errors"][0]["path"], "/email", "{bad}");
        assert!(
            !a.body.to_string().contains(bad),
            "the value is never echoed"
        );
    }
    let long = format!(
        "{}@{}.com",
        "a".repeat(60),
        vec!["b".repeat(60); 4].join(".")
    );
    assert_eq!(signup(&app, json!({ "email": long })).await.status, 400);
}

#[tokio::test]
async fn a_signup_mails_a_code_and_a_link_and_the_address_logs_in_once_proven() {
    let logs = logs();
    let app = verifying().await;
    let (a, b) = (address(), address());
    assert_eq!(signup(&app, json!({ "email": a })).await.status, 201);
    assert_eq!(signup(&app, json!({ "email": b })).await.status, 201);
    let unproven = login(&app, json!({ "email": a })).await;
    assert_eq!(
        (unproven.status.as_u16(), unproven.code()),
        (403, "email_unverified")
    );
    let mail = mail_to(&a).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].0, "Confirm your email address");

    // By code.
    let (code, token) = last_mail(&a).await;
    let confirm = |body: Value| ev("/verify/email/confirm", body);
    let ok = app.call(&confirm(json!({"email": a, "code": code}))).await;
    assert_eq!(ok.status.as_u16(), 200, "{:?}", ok.body);
    assert_eq!(login(&app, json!({ "email": a })).await.status, 200);
    // The code and the link are one proof: the link no longer works.
    let spent = app.call(&confirm(json!({ "token": token }))).await;
    assert_eq!((spent.status.as_u16(), spent.code()), (400, "invalid_code"));

    // By link: fetching the page (as a mail scanner would) spends nothing.
    let (code_b, token_b) = last_mail(&b).await;
    for _ in 0..2 {
        let page = app.call(&link_page(&token_b)).await;
        assert_eq!(page.status.as_u16(), 200);
    }
    let ok = app.call(&confirm(json!({ "token": token_b }))).await;
    assert_eq!(ok.status.as_u16(), 200, "{:?}", ok.body);
    assert_eq!(ok.body["email"], b.as_str());
    assert_eq!(login(&app, json!({ "email": b })).await.status, 200);
    let again = app.call(&confirm(json!({ "token": token_b }))).await;
    assert_eq!(again.status.as_u16(), 400, "a token works once");
    // Audited (and so counted as EmailsSent / EmailsVerified), never with the address, the
    // code or the token.
    let lines: Vec<Value> = logs
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let tag = app.state.tokens().audit_tag(&b);
    for event in ["email_sent", "email_verified"] {
        assert!(
            lines
                .iter()
                .any(|l| l["fields"]["event"] == event && l["fields"]["email_tag"] == tag.as_str()),
            "{event}"
        );
    }
    let text = logs.text();
    for secret in [b.as_str(), token_b.as_str()] {
        assert!(!text.contains(secret), "{secret} logged");
    }
    let code_after = app
        .call(&confirm(json!({"email": b, "code": code_b})))
        .await;
    assert_eq!(code_after.status.as_u16(), 400, "and the code went with it");
}

#[tokio::test]
async fn the_link_page_carries_only_a_token_shaped_value_and_is_not_cached() {
    let app = verifying().await;
    let page = app.call(&link_page("AAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(page.status.as_u16(), 200);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    let mut hostile = event_for("GET", "/verify/email/link");
    hostile["rawQueryString"] = json!("token=%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    let page = app.call(&hostile).await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(
        !page.body.to_string().contains("alert(1)"),
        "{:?}",
        page.body
    );
}

#[tokio::test]
async fn a_taken_address_gets_the_same_signup_answer_and_its_owner_a_note() {
    let app = verifying().await;
    let a = address();
    let first = signup(&app, json!({ "email": a })).await;
    let second = signup(&app, json!({ "email": a.to_uppercase() })).await;
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (201, 201));
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&first.body), keys(&second.body));
    assert_ne!(first.body["_id"], second.body["_id"]);
    let db = &app.state.settings.db_name;
    assert_eq!(
        count_users(db, mongodb::bson::doc! {}).await,
        1,
        "nothing stored"
    );
    let mail = mail_to(&a).await;
    assert_eq!(mail.len(), 2);
    assert_eq!(mail[1].0, "Someone tried to sign up with your address");
}

#[tokio::test]
async fn recovery_by_email_answers_alike_and_works_by_code_and_by_link() {
    let app = app(&[]).await;
    let (a, nobody) = (address(), address());
    assert_eq!(signup(&app, json!({ "email": a })).await.status, 201);
    let session = Login::of(&login(&app, json!({ "email": a })).await);
    let start = |email: &str| ev("/recover/start", json!({ "email": email }));
    let known = app.call(&start(&a)).await;
    let unknown = app.call(&start(&nobody)).await;
    assert_eq!((known.status.as_u16(), unknown.status.as_u16()), (202, 202));
    assert_eq!(known.body, unknown.body);
    assert!(mail_to(&nobody).await.is_empty());
    let (subject, body) = mail_to(&a).await.pop().unwrap();
    assert_eq!(subject, "Reset your password");
    assert!(body.contains("purpose=recover"), "{body}");

    let reset = |proof: Value, password: &str| {
        let mut body = proof;
        body["new_password"] = json!(password);
        ev("/recover/confirm", body)
    };
    let code = code_in(&body);
    let done = app
        .call(&reset(
            json!({"email": a, "code": code}),
            "a new passphrase one",
        ))
        .await;
    assert_eq!(done.status.as_u16(), 204, "{:?}", done.body);
    assert_eq!(app.get_user(&session).await.status, 401, "sessions ended");
    let mut by_new = json!({"email": a, "password": "a new passphrase one"});
    assert_eq!(app.call(&ev("/login", by_new.take())).await.status, 200);

    // By the link's token, after the cooldown.
    app.clock.advance(61);
    assert_eq!(app.call(&start(&a)).await.status, 202);
    let (_, token) = last_mail(&a).await;
    let done = app
        .call(&reset(json!({ "token": token }), "a new passphrase two"))
        .await;
    assert_eq!(done.status.as_u16(), 204, "{:?}", done.body);
    let again = app
        .call(&reset(json!({ "token": token }), "a new passphrase three"))
        .await;
    assert_eq!(again.status.as_u16(), 400);
    let mut by_new = json!({"email": a, "password": "a new passphrase two"});
    assert_eq!(app.call(&ev("/login", by_new.take())).await.status, 200);
}

#[tokio::test]
async fn an_email_change_keeps_the_old_address_until_the_new_one_is_proven() {
    let app = verifying().await;
    let (old, new) = (address(), address());
    assert_eq!(
        signup(&app, json!({"email": old, "phone": "5550000201"}))
            .await
            .status,
        201
    );
    let (code, _) = last_mail(&old).await;
    let proof = ev("/verify/email/confirm", json!({"email": old, "code": code}));
    assert_eq!(app.call(&proof).await.status, 200);
    let session = Login::of(&login(&app, json!({ "email": old })).await);
    let no_password = app.put_user(&session, json!({ "email": new })).await;
    assert_eq!(
        no_password.status.as_u16(),
        400,
        "current_password is required"
    );
    let changed = app
        .put_user(
            &session,
            json!({"email": new, "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(changed.status.as_u16(), 200, "{:?}", changed.body);
    assert_eq!(changed.body["email"], old.as_str(), "old until proven");
    assert_eq!(login(&app, json!({ "email": old })).await.status, 200);
    assert_eq!(login(&app, json!({ "email": new })).await.status, 401);
    let (_, token) = last_mail(&new).await;
    assert_eq!(mail_to(&new).await[0].0, "Confirm your new email address");
    let moved = app
        .call(&ev("/verify/email/confirm", json!({ "token": token })))
        .await;
    assert_eq!(moved.status.as_u16(), 200, "{:?}", moved.body);
    assert_eq!(moved.body["email"], new.as_str());
    assert_eq!(login(&app, json!({ "email": old })).await.status, 401);
    assert_eq!(login(&app, json!({ "email": new })).await.status, 200);
    assert_eq!(
        login(&app, json!({"phone": "5550000201"})).await.status,
        200
    );
}

#[tokio::test]
async fn mail_guards_refuse_past_the_limit_and_refused_requests_cost_nothing() {
    let app = app(&[
        ("REQUIRE_EMAIL_VERIFICATION", "true"),
        ("EMAIL_MAX_PER_ADDRESS_PER_HOUR", "2"),
    ])
    .await;
    app.at_start_of_a_day();
    let a = address();
    assert_eq!(signup(&app, json!({ "email": a })).await.status, 201);
    let start = || ev("/verify/email/start", json!({ "email": a }));
    app.clock.advance(61);
    assert_eq!(app.call(&start()).await.status, 202);
    app.clock.advance(61);
    let refused = app.call(&start()).await;
    assert_eq!(refused.status.as_u16(), 429, "{:?}", refused.body);
    assert_eq!(mail_to(&a).await.len(), 2);
    // An unknown address sends nothing and holds no daily budget.
    let db = &app.state.settings.db_name;
    let budgets = || async {
        mongodb::Client::with_uri_str(mongo_uri())
            .await
            .unwrap()
            .database(db)
            .collection::<mongodb::bson::Document>("User_budgets")
            .count_documents(mongodb::bson::doc! {"_id": {"$gte": "mail:day#", "$lt": "mail:day$"}})
            .await
            .unwrap()
    };
    let before = budgets().await;
    let nobody = ev("/verify/email/start", json!({"email": address()}));
    assert_eq!(app.call(&nobody).await.status, 202);
    assert_eq!(budgets().await, before);
}
