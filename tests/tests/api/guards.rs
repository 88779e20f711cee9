//! Guards that cannot be turned against the users they protect, tried as an attacker would:
//! concurrently, on two instances over one MongoDB database, SMS through the AWS emulator,
//! from many client addresses. Floods of unknown numbers leave the cost budgets untouched; a
//! throttled address cannot move a victim's counter; refused requests store nothing; failed
//! codes are capped per phone across resends; a signup cut between its two writes can be
//! retried; wrong passwords from anywhere lock unknown devices only, never the owner's.

use std::sync::Arc;

use api_tests::*;
use domain::clock::Clock;
use edge::state::{State, StoreKind};
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};

use crate::verification::{app, ev, last_code, phone, second, sms_to};

const PASSWORD: &str = "securepassword123";

/// `POST path` with `body` from the client address `ip`.
fn from(ip: &str, path: &str, body: Value) -> Value {
    let mut e = ev(path, body);
    e["requestContext"]["http"]["sourceIp"] = json!(ip);
    e
}

/// Every document of the app's collection `name` (`User_budgets`, `User_codes`, ...).
async fn docs(app: &TestApp, name: &str) -> Vec<Document> {
    use futures::TryStreamExt;
    mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&app.state.settings.db_name)
        .collection::<Document>(name)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The budget counters whose ids start with `prefix` (`sms:cc:`, `sms:phone:+1...`).
async fn counters(app: &TestApp, prefix: &str) -> Vec<(String, i64)> {
    docs(app, "User_budgets")
        .await
        .into_iter()
        .filter_map(|d| {
            let id = d.get_str("_id").ok()?.to_owned();
            let n = d
                .get_i64("count")
                .or_else(|_| d.get_i32("count").map(i64::from))
                .ok()?;
            id.starts_with(prefix).then_some((id, n))
        })
        .collect()
}

#[tokio::test]
async fn unknown_number_floods_leave_the_country_and_daily_budgets_untouched() {
    let app = app(&[("SMS_PER_COUNTRY_PER_HOUR", "3"), ("SMS_DAILY_BUDGET", "3")]).await;
    app.at_start_of_a_day();
    let other = second(&app).await;
    // 100 recoveries of numbers no account has, from 10 addresses, on two instances at once.
    let answers = futures::future::join_all((0..100).map(|i| {
        let instance = if i % 2 == 0 { &app } else { &other };
        let ev = from(
            &format!("198.51.100.{}", i % 10),
            "/recover/start",
            json!({"phone": phone()}),
        );
        async move { instance.call(&ev).await.status.as_u16() }
    }))
    .await;
    assert!(answers.iter().all(|s| *s == 202), "{answers:?}");
    assert_eq!(
        counters(&app, "sms:cc:").await,
        vec![],
        "country budget drained"
    );
    assert_eq!(
        counters(&app, "sms:all:").await,
        vec![],
        "daily budget drained"
    );
    // The three SMS the budgets allow still go to real signups.
    for i in 0..3 {
        let p = phone();
        let a = app
            .call(&from(&format!("203.0.113.{i}"), "/signup", signup_body(&p)))
            .await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        assert_eq!(sms_to(&p).await.len(), 1);
    }
    assert_eq!(counters(&app, "sms:cc:").await.len(), 1);
    assert_eq!(counters(&app, "sms:cc:").await[0].1, 3, "counts SMS sent");
    // And the fourth is refused by them, known or unknown phone alike.
    let p = phone();
    let a = app
        .call(&from("203.0.113.9", "/signup", signup_body(&p)))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (429, "too_many_attempts"));
    let b = app
        .call(&from(
            "203.0.113.9",
            "/recover/start",
            json!({"phone": phone()}),
        ))
        .await;
    assert_eq!(b.status, 429);
}

#[tokio::test]
async fn a_throttled_address_cannot_move_a_victims_counter_and_refusals_store_nothing() {
    let app = app(&[("SMS_PER_IP_PER_HOUR", "2")]).await;
    app.at_start_of_a_day();
    let other = second(&app).await;
    let victim = phone();
    let a = app
        .call(&from("192.0.2.1", "/signup", signup_body(&victim)))
        .await;
    assert_eq!(a.status, 201);
    let c = app
        .call(&ev(
            "/verify/phone/confirm",
            json!({"phone": victim, "code": last_code(&victim).await}),
        ))
        .await;
    assert_eq!(c.status, 200);
    // The attacker's address spends its own limit on other numbers...
    for _ in 0..2 {
        let a = app
            .call(&from(
                "198.51.100.66",
                "/recover/start",
                json!({"phone": phone()}),
            ))
            .await;
        assert_eq!(a.status, 202);
    }
    let before = (
        docs(&app, "User_budgets").await,
        docs(&app, "User_codes").await,
    );
    // ...then sends 6 for the victim's phone, on two instances at once: all refused.
    let refused = futures::future::join_all((0..6).map(|i| {
        let instance = if i % 2 == 0 { &app } else { &other };
        let ev = from("198.51.100.66", "/recover/start", json!({"phone": victim}));
        async move { instance.call(&ev).await.status.as_u16() }
    }))
    .await;
    assert_eq!(refused, vec![429; 6]);
    let victim_counter = counters(&app, &format!("sms:phone:{victim}:")).await;
    assert_eq!(victim_counter.len(), 1);
    assert_eq!(victim_counter[0].1, 1, "only the signup's send counts");
    // Storage per refused request: nothing at all.
    let after = (
        docs(&app, "User_budgets").await,
        docs(&app, "User_codes").await,
    );
    assert_eq!(before, after, "a refused request wrote something");
    // The victim's own recovery goes through.
    let sent = sms_to(&victim).await.len();
    let r = app
        .call(&from(
            "192.0.2.1",
            "/recover/start",
            json!({"phone": victim}),
        ))
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(sms_to(&victim).await.len(), sent + 1);
}

/// Signs `p` up from a fresh address and answers the code sent.
async fn signed_up(app: &TestApp, p: &str) -> String {
    let a = app.call(&ev("/signup", signup_body(p))).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    last_code(p).await
}

async fn confirm(app: &TestApp, p: &str, code: &str) -> Answer {
    app.call(&ev(
        "/verify/phone/confirm",
        json!({"phone": p, "code": code}),
    ))
    .await
}

#[tokio::test]
async fn the_failed_code_cap_holds_across_resends_and_instances() {
    let _ = logs();
    let app = app(&[("OTP_MAX_FAILURES_PER_DAY", "7")]).await;
    let other = second(&app).await;
    let p = phone();
    let first = signed_up(&app, &p).await;
    let wrong = if first == "000000" {
        "111111"
    } else {
        "000000"
    };
    let round = |n: usize| {
        futures::future::join_all((0..n).map(|i| {
            let instance = if i % 2 == 0 { &app } else { &other };
            let p = p.clone();
            async move { confirm(instance, &p, wrong).await.status.as_u16() }
        }))
    };
    // 20 wrong codes at once on two instances: 5 compared against this code (its own limit);
    // the rest find no code to compare and count nothing (some see the cap held for a moment
    // by requests in flight: 429).
    let one = round(20).await;
    assert!(one.iter().all(|s| *s == 400 || *s == 429), "{one:?}");
    let day = format!("code:fail:d:{p}#");
    assert_eq!(counters(&app, &day).await[0].1, 5, "only comparisons count");
    // A resend brings a fresh code with 5 attempts of its own, but only 2 failures are left.
    app.clock.advance(61);
    let s = app
        .call(&ev("/verify/phone/start", json!({"phone": p})))
        .await;
    assert_eq!(s.status, 202);
    let fresh = last_code(&p).await;
    assert_ne!(fresh, first);
    let two = round(20).await;
    assert_eq!(two.iter().filter(|s| **s == 400).count(), 2, "{two:?}");
    assert_eq!(two.iter().filter(|s| **s == 429).count(), 18, "{two:?}");
    // Capped: even the right code is refused until the day ends or an operator clears it.
    let capped = confirm(&app, &p, &fresh).await;
    assert_eq!(
        (capped.status.as_u16(), capped.code()),
        (429, "too_many_attempts")
    );
    assert!(logs().text().contains("\"code_failure_cap\""));
    let (status, out, err) = user_admin(
        &app.state.settings.db_name,
        &["clear-code-failures", "--phone", &p],
    );
    assert_eq!(status, 0, "{err}");
    assert_eq!(out[0]["code_failures_cleared"], true);
    let ok = confirm(&app, &p, &fresh).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    // A success clears the phone's failures.
    assert_eq!(counters(&app, "code:fail:").await, vec![]);
}

#[tokio::test]
async fn the_total_failed_code_cap_outlives_the_day() {
    let app = app(&[("OTP_MAX_FAILURES_PER_DAY", "4"), ("OTP_MAX_FAILURES", "6")]).await;
    let p = phone();
    let code = signed_up(&app, &p).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        assert_eq!(confirm(&app, &p, wrong).await.code(), "invalid_code");
    }
    assert_eq!(confirm(&app, &p, wrong).await.status, 429, "day cap");
    app.clock.advance(86_400);
    app.call(&ev("/verify/phone/start", json!({"phone": p})))
        .await;
    let code = last_code(&p).await;
    for _ in 0..2 {
        assert_eq!(confirm(&app, &p, wrong).await.code(), "invalid_code");
    }
    let a = confirm(&app, &p, &code).await;
    assert_eq!(a.status, 429, "total cap: a new day brings no more guesses");
}

#[tokio::test]
async fn a_signup_cut_between_its_two_writes_can_be_retried_at_once() {
    let app = app(&[]).await;
    let db = app.state.settings.db_name.clone();
    let proxy = SlowProxy::start(std::time::Duration::from_millis(150)).await;
    let through = State::new(
        app.state.settings.clone(),
        Arc::new(store_at(&proxy.uri, &db).await),
        StoreKind::Mongo,
        app.clock.clone() as Arc<dyn Clock>,
    )
    .unwrap()
    .with_verification(app.state.verification.clone());
    let p = phone();
    // Cut the database off the moment the account is written, before its code is.
    let watcher = {
        let proxy = proxy.cut_switch();
        let p = p.clone();
        let db = db.clone();
        tokio::spawn(async move {
            let users = mongodb::Client::with_uri_str(mongo_uri())
                .await
                .unwrap()
                .database(&db)
                .collection::<Document>("User");
            for _ in 0..2_000 {
                if users.find_one(doc! {"phone": &p}).await.unwrap().is_some() {
                    proxy.cut();
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            false
        })
    };
    let a = call(&through, &ev("/signup", signup_body(&p))).await;
    assert!(watcher.await.unwrap(), "the account was never written");
    assert_eq!(a.status, 503, "{:?}", a.body);
    // Stranded: an unverified account, and no code for it.
    assert_eq!(
        count_users(&db, doc! {"phone": &p, "phone_verified": false}).await,
        1
    );
    assert!(docs(&app, "User_codes").await.is_empty());
    assert!(sms_to(&p).await.is_empty());
    // The retry (the database back, a second later) answers as a first signup would.
    app.clock.advance(1);
    let retry = app.call(&ev("/signup", signup_body(&p))).await;
    assert_eq!(retry.status, 201, "{:?}", retry.body);
    assert_eq!(count_users(&db, doc! {"phone": &p}).await, 1);
    let code = last_code(&p).await;
    assert_eq!(confirm(&app, &p, &code).await.status, 200);
    assert_eq!(app.login(&p, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn an_unverified_signup_with_a_live_code_still_blocks_a_second_signup() {
    let app = app(&[]).await;
    let p = phone();
    signed_up(&app, &p).await;
    app.clock.advance(1);
    let again = app.call(&ev("/signup", signup_body(&p))).await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "phone_taken"));
}

async fn login_with(
    app: &TestApp,
    ip: &str,
    p: &str,
    password: &str,
    device: Option<&str>,
) -> Answer {
    let mut body = json!({"phone": p, "password": password});
    if let Some(d) = device {
        body["device_token"] = json!(d);
    }
    app.call(&from(ip, "/login", body)).await
}

#[tokio::test]
async fn after_forty_wrong_passwords_from_many_addresses_the_owner_still_logs_in_from_a_known_device()
 {
    let _ = logs();
    let app = TestApp::mongo().await;
    let other = app.second_instance().await;
    let owner = "5550001111";
    app.signup(owner).await;
    let first = login_with(&app, "192.0.2.7", owner, PASSWORD, None).await;
    assert_eq!(first.status, 200);
    let device = first.body["device_token"].as_str().unwrap().to_owned();
    // The attacker's own account and device token, worth nothing against another phone.
    let attacker = "5550002222";
    app.signup(attacker).await;
    let foreign = login_with(&app, "198.51.100.1", attacker, PASSWORD, None).await;
    let foreign = foreign.body["device_token"].as_str().unwrap().to_owned();
    let answers = futures::future::join_all((0..40).map(|i| {
        let instance = if i % 2 == 0 { &app } else { &other };
        let ip = format!("198.51.100.{}", i + 10);
        let token = (i % 4 == 0).then(|| foreign.clone());
        async move {
            login_with(instance, &ip, owner, "wrong-password-1", token.as_deref())
                .await
                .status
                .as_u16()
        }
    }))
    .await;
    assert_eq!(
        answers.iter().filter(|s| **s == 401).count(),
        5,
        "{answers:?}"
    );
    // An unknown device is locked, even with the right password...
    let unknown = login_with(&other, "192.0.2.8", owner, PASSWORD, None).await;
    assert_eq!(unknown.status, 429);
    let stale = login_with(&app, "192.0.2.8", owner, PASSWORD, Some("d1.garbage.token")).await;
    assert_eq!(stale.status, 429);
    // ...while the owner's known device logs in, on either instance, and is told it again.
    let known = login_with(&other, "192.0.2.7", owner, PASSWORD, Some(&device)).await;
    assert_eq!(known.status, 200, "{:?}", known.body);
    let renewed = known.body["device_token"].as_str().unwrap();
    assert!(renewed.starts_with("d1."));
    // A known device has a small budget of its own: a thief of it is still throttled.
    for _ in 0..5 {
        let a = login_with(&app, "192.0.2.7", owner, "wrong-password-1", Some(renewed)).await;
        assert_eq!(a.status, 401);
    }
    let a = login_with(&app, "192.0.2.7", owner, PASSWORD, Some(renewed)).await;
    assert_eq!(a.status, 429);
    let logs = logs().text();
    assert!(
        logs.contains("\"device\":\"unknown\""),
        "lockout of unknown devices audited"
    );
    assert!(!logs.contains(&device), "a device token was logged");
}

/// The code points the name rules care about: every BMP one, and the astral ranges where
/// format characters and variation selectors live, plus a few ordinary astral letters.
fn name_code_points() -> impl Iterator<Item = char> {
    (0u32..=0xFFFF)
        .chain(0x110B0..0x110D0)
        .chain(0x13420..0x13450)
        .chain(0x1BC90..0x1BCB0)
        .chain(0x1D160..0x1D180)
        .chain(0x1F600..0x1F610)
        .chain(0x20000..0x20010)
        .chain(0xE0000..0xE01F0)
        .filter_map(char::from_u32)
}

#[test]
fn the_schemas_name_pattern_and_the_name_rules_agree_on_every_character() {
    let schemas = edge::schema::Schemas::new();
    let body = |name: &str| json!({"first_name": name, "last_name": "B", "password": "x", "phone": "1234567890"});
    let mut disagree = Vec::new();
    for c in name_code_points() {
        for name in [c.to_string(), format!("a{c}"), format!("{c} ")] {
            let by_schema = schemas
                .validate(edge::schema::Body::Signup, &body(&name))
                .is_ok();
            let by_code = domain::types::Name::parse(&name).is_ok();
            if by_schema != by_code {
                disagree.push(format!(
                    "{:04X} in {name:?}: schema {by_schema}, code {by_code}",
                    c as u32
                ));
            }
        }
    }
    assert!(
        disagree.is_empty(),
        "{} disagreements: {:?}",
        disagree.len(),
        &disagree[..disagree.len().min(20)]
    );
    // The patterns use no `\p{..}` class, which common OpenAPI tools cannot generate from.
    for file in ["signup.json", "update_user.json"] {
        let text = std::fs::read_to_string(root().join("edge/schemas").join(file)).unwrap();
        assert!(!text.contains("\\\\p{"), "{file} uses a \\p{{..}} class");
    }
}
