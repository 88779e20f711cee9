//! Proven phones, end to end against MongoDB and the AWS emulator: signup sends a code by SNS
//! (read back from the emulator), confirm verifies it, login waits for it; codes expire, are
//! single-use and allow 5 attempts however many requests race on two instances; resends wait
//! for the cooldown and invalidate the previous code; an unverified signup never blocks the
//! phone's owner past its code's life; recovery resets the password and ends every session;
//! every cost guard refuses with 429 and sends nothing.

use api_tests::*;
use domain::{config::Vars, verification::Verification};
use mongodb::bson::doc;
use serde_json::{Value, json};

const PASSWORD: &str = "securepassword123";

/// A valid US number no other test uses (moto's SMS log is shared by every test).
pub(crate) fn phone() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    // 202 (Washington DC) numbers with a random area-local part; libphonenumber holds them valid.
    format!("+1202{:07}", 2_000_000 + u32::from_le_bytes(b) % 7_000_000)
}

/// The event of `method path` with `body` and a request id of its own (a repeated request id
/// is a retry of one request, which sends at most one SMS).
pub(crate) fn ev(path: &str, body: Value) -> Value {
    let mut e = with_json_body(event_for("POST", path), &body);
    e["requestContext"]["requestId"] = json!(format!("req-{}", fresh_db()));
    e
}

/// A Mongo-backed app with verification required and `extra` variables (SNS to the emulator
/// unless `extra` names another sender).
pub(crate) async fn app(extra: &[(&str, &str)]) -> TestApp {
    let endpoint = aws_endpoint();
    let mut vars = Vars::from_pairs([
        ("REQUIRE_PHONE_VERIFICATION", "true"),
        ("SMS_SENDER", "sns"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ]);
    for (k, v) in extra {
        vars.set(k, *v);
    }
    let app = TestApp::mongo().await;
    let v = Verification::from_vars(&vars, adapters::sms_sender).unwrap();
    TestApp {
        state: app.state.with_verification(v),
        clock: app.clock,
    }
}

/// A second instance on the same database and clock, with the same verification settings.
pub(crate) async fn second(app: &TestApp) -> TestApp {
    let other = app.second_instance().await;
    TestApp {
        state: other
            .state
            .with_verification(app.state.verification.clone()),
        clock: other.clock,
    }
}

/// Every SMS moto recorded to `phone`, oldest first.
pub(crate) async fn sms_to(phone: &str) -> Vec<String> {
    moto_sms()
        .await
        .into_iter()
        .filter(|m| m["phone_number"] == phone)
        .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The six digits of the last SMS to `phone`.
pub(crate) async fn last_code(phone: &str) -> String {
    let all = sms_to(phone).await;
    code_in(all.last().unwrap_or_else(|| panic!("no SMS to {phone}")))
}

pub(crate) async fn signup(app: &TestApp, phone: &str) -> Answer {
    app.call(&ev("/signup", signup_body(phone))).await
}

pub(crate) async fn confirm(app: &TestApp, phone: &str, code: &str) -> Answer {
    app.call(&ev(
        "/verify/phone/confirm",
        json!({"phone": phone, "code": code}),
    ))
    .await
}

async fn start(app: &TestApp, phone: &str) -> Answer {
    app.call(&ev("/verify/phone/start", json!({"phone": phone})))
        .await
}

/// The stored code document of (purpose, phone), read straight from the server.
async fn code_doc(app: &TestApp, purpose: &str, phone: &str) -> Option<mongodb::bson::Document> {
    mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&app.state.settings.db_name)
        .collection::<mongodb::bson::Document>("User_codes")
        .find_one(doc! {"_id": format!("{purpose}:{phone}")})
        .await
        .unwrap()
}

#[tokio::test]
async fn signup_sends_a_code_by_sns_and_confirming_it_opens_login() {
    let _ = logs();
    let app = app(&[]).await;
    let p = phone();
    // National input in the default region (US) is the same account as E.164.
    let national = format!("({}) {}-{}", &p[2..5], &p[5..8], &p[8..]);
    let a = signup(&app, &national).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["phone"], p.as_str(), "stored in E.164");
    assert_eq!(sms_to(&p).await.len(), 1, "one SMS, to the E.164 number");
    let code = last_code(&p).await;

    let before = app.login(&p, PASSWORD).await;
    assert_eq!(
        (before.status.as_u16(), before.code()),
        (403, "phone_unverified")
    );
    // The code is stored only as a keyed hash.
    let stored = code_doc(&app, "signup", &p).await.unwrap();
    assert!(!format!("{stored:?}").contains(&code));

    let c = confirm(&app, &p[1..], &code).await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(app.login(&p, PASSWORD).await.status, 200);
    assert_eq!(app.login(&national, PASSWORD).await.status, 200);
    // Single use: the same code again is refused.
    assert_eq!(confirm(&app, &p, &code).await.code(), "invalid_code");
    // No log line carries the code or the phone.
    let logs = logs().text();
    assert!(
        !logs.contains(&code) && !logs.contains(&p[2..]),
        "code or phone logged"
    );
}

#[tokio::test]
async fn expired_wrong_and_sixth_attempt_codes_are_refused() {
    let app = app(&[]).await;
    let p = phone();
    assert_eq!(signup(&app, &p).await.status, 201);
    let code = last_code(&p).await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(confirm(&app, &p, wrong).await.code(), "invalid_code");
    }
    // The 6th attempt is refused even with the right code.
    assert_eq!(confirm(&app, &p, &code).await.code(), "invalid_code");
    assert_eq!(app.login(&p, PASSWORD).await.status, 403);

    // A new code (after the cooldown) is good for 5 minutes, not one second more.
    app.clock.advance(61);
    assert_eq!(start(&app, &p).await.status, 202);
    let fresh = last_code(&p).await;
    app.clock.advance(300);
    assert_eq!(confirm(&app, &p, &fresh).await.code(), "invalid_code");
}

#[tokio::test]
async fn twenty_concurrent_wrong_codes_on_two_instances_get_at_most_five_comparisons() {
    let a = app(&[]).await;
    let b = second(&a).await;
    let p = phone();
    assert_eq!(signup(&a, &p).await.status, 201);
    let code = last_code(&p).await;
    let wrong = if code == "999999" { "999998" } else { "999999" };
    let tries = (0..20).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        confirm(app, &p, wrong)
    });
    let answers = futures::future::join_all(tries).await;
    assert!(answers.iter().all(|x| x.code() == "invalid_code"));
    let stored = code_doc(&a, "signup", &p).await.unwrap();
    assert_eq!(stored.get_i32("attempts").unwrap(), 5, "{stored:?}");
    assert_eq!(confirm(&a, &p, &code).await.code(), "invalid_code");
}

#[tokio::test]
async fn one_code_confirmed_by_twenty_racing_requests_verifies_once() {
    let a = app(&[]).await;
    let b = second(&a).await;
    let p = phone();
    assert_eq!(signup(&a, &p).await.status, 201);
    let code = last_code(&p).await;
    let tries = (0..20).map(|i| confirm(if i % 2 == 0 { &a } else { &b }, &p, &code));
    let answers = futures::future::join_all(tries).await;
    let ok = answers.iter().filter(|x| x.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        answers.iter().map(|x| x.status).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_resend_waits_for_the_cooldown_and_invalidates_the_previous_code() {
    let app = app(&[]).await;
    let p = phone();
    assert_eq!(signup(&app, &p).await.status, 201);
    let first = last_code(&p).await;
    let again = start(&app, &p).await;
    assert_eq!(again.status, 429, "{:?}", again.body);
    assert!(again.headers.get("retry-after").is_some());
    assert_eq!(sms_to(&p).await.len(), 1, "nothing sent in the cooldown");
    app.clock.advance(61);
    assert_eq!(start(&app, &p).await.status, 202);
    assert_eq!(sms_to(&p).await.len(), 2);
    let second = last_code(&p).await;
    if first != second {
        assert_eq!(confirm(&app, &p, &first).await.code(), "invalid_code");
    }
    assert_eq!(confirm(&app, &p, &second).await.status, 200);
    // Verified: a start now sends nothing, and answers as for any phone.
    app.clock.advance(61);
    assert_eq!(start(&app, &p).await.status, 202);
    assert_eq!(start(&app, &phone()).await.status, 202, "unknown phone");
    assert_eq!(sms_to(&p).await.len(), 2);
}

#[tokio::test]
async fn an_unverified_signup_of_someone_elses_phone_blocks_its_owner_only_while_its_code_lives() {
    let app = app(&[]).await;
    let p = phone();
    let squatter = app
        .call(&ev(
            "/signup",
            json!({"first_name": "Sq", "last_name": "Uatter", "password": "squatters-pass-1", "phone": p}),
        ))
        .await;
    assert_eq!(squatter.status, 201);
    assert_eq!(
        signup(&app, &p).await.code(),
        "phone_taken",
        "code still live"
    );
    app.clock.advance(301);
    let owner = signup(&app, &p).await;
    assert_eq!(owner.status, 201, "{:?}", owner.body);
    assert_ne!(owner.body["_id"], squatter.body["_id"]);
    assert_eq!(confirm(&app, &p, &last_code(&p).await).await.status, 200);
    assert_eq!(app.login(&p, PASSWORD).await.status, 200);
    assert_eq!(app.login(&p, "squatters-pass-1").await.status, 401);
    // A verified phone is never taken over.
    app.clock.advance(301);
    assert_eq!(signup(&app, &p).await.code(), "phone_taken");
}

#[tokio::test]
async fn recovery_sets_a_new_password_ends_every_session_and_never_tells_who_exists() {
    let _ = logs();
    let app = app(&[]).await;
    let p = phone();
    assert_eq!(signup(&app, &p).await.status, 201);
    assert_eq!(confirm(&app, &p, &last_code(&p).await).await.status, 200);
    let session = Login::of(&app.login(&p, PASSWORD).await);

    let known = app.call(&ev("/recover/start", json!({"phone": p}))).await;
    let unknown = app
        .call(&ev("/recover/start", json!({"phone": phone()})))
        .await;
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    assert_eq!(known.status, 202);
    assert_eq!(sms_to(&p).await.len(), 2);
    let code = last_code(&p).await;
    // A signup code does not reset a password, nor a recovery code with a weak password.
    let weak = app
        .call(&ev(
            "/recover/confirm",
            json!({"phone": p, "code": code, "new_password": "password123"}),
        ))
        .await;
    assert_eq!(weak.code(), "weak_password");
    let done = app
        .call(&ev(
            "/recover/confirm",
            json!({"phone": p, "code": code, "new_password": "a-brand-new-passphrase"}),
        ))
        .await;
    assert_eq!(done.status, 204, "{:?}", done.body);
    assert_eq!(app.get_user(&session).await.status, 401, "sessions ended");
    assert_eq!(app.login(&p, PASSWORD).await.status, 401);
    assert_eq!(app.login(&p, "a-brand-new-passphrase").await.status, 200);
    let again = app
        .call(&ev(
            "/recover/confirm",
            json!({"phone": p, "code": code, "new_password": "yet-another-passphrase"}),
        ))
        .await;
    assert_eq!(again.code(), "invalid_code", "single use");
    assert!(logs().text().contains("\"event\":\"password_recovery\""));
}

#[tokio::test]
async fn the_per_phone_limit_refuses_with_retry_after_and_sends_nothing_more() {
    let app = app(&[("SMS_PER_PHONE_PER_HOUR", "2"), ("OTP_RESEND_SECONDS", "1")]).await;
    app.at_start_of_a_day();
    let p = phone();
    assert_eq!(signup(&app, &p).await.status, 201);
    app.clock.advance(2);
    assert_eq!(start(&app, &p).await.status, 202);
    app.clock.advance(2);
    let refused = start(&app, &p).await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    assert!(refused.headers.get("retry-after").is_some());
    assert_eq!(sms_to(&p).await.len(), 2);
}

#[tokio::test]
async fn the_daily_budget_and_the_per_source_limit_refuse_and_send_nothing() {
    let app = app(&[("SMS_DAILY_BUDGET", "2")]).await;
    let phones: Vec<String> = (0..3).map(|_| phone()).collect();
    let mut statuses = Vec::new();
    for p in &phones {
        statuses.push(signup(&app, p).await.status.as_u16());
    }
    assert_eq!(statuses, [201, 201, 429]);
    assert!(sms_to(&phones[2]).await.is_empty());
    // The refused signup made no account.
    assert_eq!(
        count_users(&app.state.settings.db_name, doc! {"phone": &phones[2]}).await,
        0
    );

    let app = app_with_ip_limit().await;
    let phones: Vec<String> = (0..3).map(|_| phone()).collect();
    let mut statuses = Vec::new();
    for p in &phones {
        statuses.push(signup(&app, p).await.status.as_u16());
    }
    assert_eq!(statuses, [201, 201, 429], "one source address");
    assert!(sms_to(&phones[2]).await.is_empty());
}

async fn app_with_ip_limit() -> TestApp {
    let app = app(&[("SMS_PER_IP_PER_HOUR", "2")]).await;
    app.at_start_of_a_day();
    app
}

#[tokio::test]
async fn the_per_country_limit_and_the_allow_list_refuse_and_send_nothing() {
    let app = app(&[("SMS_PER_COUNTRY_PER_HOUR", "1")]).await;
    app.at_start_of_a_day();
    let (a, b) = (phone(), phone());
    assert_eq!(signup(&app, &a).await.status, 201);
    assert_eq!(signup(&app, &b).await.status, 429);
    assert!(sms_to(&b).await.is_empty());

    let app = self::app(&[("SMS_ALLOWED_COUNTRY_CODES", "44")]).await;
    let p = phone();
    let a = signup(&app, &p).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, "invalid_phone"));
    let a = start(&app, &p).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, "invalid_phone"));
    assert!(sms_to(&p).await.is_empty());
}

#[tokio::test]
async fn retries_of_one_request_send_one_sms() {
    let app = app(&[]).await;
    let p = phone();
    let one = ev("/recover/start", json!({"phone": p}));
    assert_eq!(signup(&app, &p).await.status, 201);
    assert_eq!(confirm(&app, &p, &last_code(&p).await).await.status, 200);
    let other = second(&app).await;
    let (x, y) = tokio::join!(app.call(&one), other.call(&one));
    assert_eq!((x.status.as_u16(), y.status.as_u16()), (202, 202));
    assert_eq!(sms_to(&p).await.len(), 2, "signup code + one recovery code");
}

#[tokio::test]
async fn test_numbers_get_their_fixed_code_without_a_sender_but_keep_the_attempt_limit() {
    let app = app(&[("SMS_TEST_NUMBERS", "+15555550100:246810")]).await;
    let p = "+15555550100";
    assert_eq!(signup(&app, p).await.status, 201);
    assert!(sms_to(p).await.is_empty(), "nothing sent to a test number");
    for _ in 0..5 {
        assert_eq!(confirm(&app, p, "111111").await.code(), "invalid_code");
    }
    assert_eq!(confirm(&app, p, "246810").await.code(), "invalid_code");
    app.clock.advance(301);
    assert_eq!(start(&app, p).await.status, 202);
    assert_eq!(confirm(&app, p, "246810").await.status, 200);
    assert_eq!(app.login(p, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn with_verification_off_the_seed_phone_works_unchanged() {
    let app = TestApp::mongo().await;
    assert_eq!(app.signup("1234567890").await.status, 201);
    assert_eq!(app.login("1234567890", PASSWORD).await.status, 200);
    // Accounts made before verification existed (no field) keep logging in when it is on.
    let strict = self::app(&[]).await;
    let db = &strict.state.settings.db_name;
    let users = mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(db)
        .collection::<mongodb::bson::Document>("User");
    let hash = domain::auth::password::hash(domain::types::Password::unchecked(PASSWORD.into()))
        .await
        .unwrap();
    users
        .insert_one(doc! {"first_name": "Old", "last_name": "Timer", "phone": "1234567890", "password_hash": hash})
        .await
        .unwrap();
    assert_eq!(strict.login("1234567890", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_phone_change_keeps_the_old_number_working_until_the_new_one_is_confirmed() {
    let app = app(&[]).await;
    let (old, new) = (phone(), phone());
    assert_eq!(signup(&app, &old).await.status, 201);
    assert_eq!(
        confirm(&app, &old, &last_code(&old).await).await.status,
        200
    );
    let me = Login::of(&app.login(&old, PASSWORD).await);

    let put = app
        .put_user(&me, json!({"phone": new, "current_password": PASSWORD}))
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(put.body["phone"], old.as_str(), "still the old phone");
    assert_eq!(sms_to(&new).await.len(), 1, "a code went to the new number");
    let code = last_code(&new).await;
    // A mistyped (or not yet confirmed) number locks no one out.
    assert_eq!(app.login(&old, PASSWORD).await.status, 200);
    assert_eq!(app.login(&new, PASSWORD).await.status, 401);
    assert_eq!(confirm(&app, &new, "000000").await.code(), "invalid_code");

    let done = confirm(&app, &new, &code).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["phone"], new.as_str());
    assert_eq!(app.login(&new, PASSWORD).await.status, 200);
    assert_eq!(app.login(&old, PASSWORD).await.status, 401);
    assert_eq!(app.get_user(&me).await.body["phone"], new.as_str());
    // The freed number can be signed up again.
    assert_eq!(signup(&app, &old).await.status, 201);
}

#[tokio::test]
async fn a_phone_change_to_a_number_taken_meanwhile_loses_to_the_unique_index() {
    let app = app(&[]).await;
    let (mine, target) = (phone(), phone());
    assert_eq!(signup(&app, &mine).await.status, 201);
    assert_eq!(
        confirm(&app, &mine, &last_code(&mine).await).await.status,
        200
    );
    let me = Login::of(&app.login(&mine, PASSWORD).await);
    let put = app
        .put_user(&me, json!({"phone": target, "current_password": PASSWORD}))
        .await;
    assert_eq!(put.status, 200);
    let change_code = last_code(&target).await;
    // Someone signs up with the target number and proves it first.
    app.clock.advance(61);
    assert_eq!(signup(&app, &target).await.status, 201);
    let signup_code = last_code(&target).await;
    assert_eq!(confirm(&app, &target, &signup_code).await.status, 200);
    // The change code now meets a verified account on that phone: the unique index refuses.
    assert_eq!(
        confirm(&app, &target, &change_code).await.code(),
        "phone_taken"
    );
    assert_eq!(app.login(&mine, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn the_webhook_sender_delivers_a_signed_code_the_flow_accepts() {
    use super::sms::{Answer, Receiver, SECRET_B64};
    let receiver = Receiver::start(Answer::Ok).await;
    let secret = format!("whsec_{SECRET_B64}");
    let url = receiver.url();
    let app = app(&[
        ("SMS_SENDER", "webhook"),
        ("SMS_WEBHOOK_URL", url.as_str()),
        ("SMS_WEBHOOK_SECRET", secret.as_str()),
    ])
    .await;
    let p = phone();
    assert_eq!(signup(&app, &p).await.status, 201);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].signature_ok, "Standard Webhooks signature verifies");
    assert_eq!(seen[0].body["phone"], p.as_str());
    let code = code_in(seen[0].body["message"].as_str().unwrap());
    assert!(sms_to(&p).await.is_empty(), "nothing went through SNS");
    assert_eq!(confirm(&app, &p, &code).await.status, 200);
    assert_eq!(app.login(&p, PASSWORD).await.status, 200);
}

/// A webhook receiver that answers 200 after `delay`: an SMS provider that takes its time.
async fn slow_receiver(delay: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut got = Vec::new();
                loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if http_message_len(&got).is_some() {
                        break;
                    }
                }
                tokio::time::sleep(delay).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    format!("http://{addr}/sms")
}

#[tokio::test]
async fn recovery_of_an_unknown_phone_takes_as_long_as_a_send() {
    let url = slow_receiver(std::time::Duration::from_millis(400)).await;
    let secret = format!("whsec_{}", super::sms::SECRET_B64);
    let app = app(&[
        ("SMS_SENDER", "webhook"),
        ("SMS_WEBHOOK_URL", url.as_str()),
        ("SMS_WEBHOOK_SECRET", secret.as_str()),
        ("REQUIRE_PHONE_VERIFICATION", "false"),
    ])
    .await;
    let p = phone();
    assert_eq!(signup(&app, &p).await.status, 201);
    let timed = |phone: String| {
        let app = &app;
        async move {
            let t = std::time::Instant::now();
            let a = app
                .call(&ev("/recover/start", json!({"phone": phone})))
                .await;
            (a.status.as_u16(), a.body, t.elapsed())
        }
    };
    let (ks, kb, known) = timed(p.clone()).await;
    let (us, ub, unknown) = timed(phone()).await;
    assert_eq!((ks, kb), (us, ub), "the same answer");
    assert!(known >= std::time::Duration::from_millis(400), "{known:?}");
    assert!(
        unknown >= std::time::Duration::from_millis(350),
        "an unknown phone answered in {unknown:?}, a known one in {known:?}"
    );
}

#[tokio::test]
async fn a_code_sent_before_a_key_rotation_still_verifies_after_it() {
    use std::sync::Arc;

    use domain::{clock::Clock, config::KeySet};
    use edge::state::{State, StoreKind};
    let old = key_version("k1", JWT_KEY, SESSION_KEY);
    let new = key_version(
        "k2",
        "rotated-jwt-key-0123456789abcdef0123456",
        "rotated-session-key-0123456789abcdef01",
    );
    let before = app(&[("SMS_TEST_NUMBERS", "+15555550100:112233")]).await;
    let db = before.state.settings.db_name.clone();
    let rotated = KeySet {
        current: new,
        previous: Some(old),
        next: None,
    };
    let after = State::new(
        settings_with_keys(&db, rotated),
        Arc::new(mongo_store(&db).await),
        StoreKind::Mongo,
        before.clock.clone() as Arc<dyn Clock>,
    )
    .unwrap()
    .with_verification(before.state.verification.clone());
    let after = TestApp {
        state: after,
        clock: before.clock.clone(),
    };
    let p = "+15555550100";
    assert_eq!(signup(&before, p).await.status, 201);
    let stored = code_doc(&before, "signup", p).await.unwrap();
    assert_eq!(confirm(&after, p, "112233").await.status, 200, "{stored:?}");
}
