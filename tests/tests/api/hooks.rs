//! Hooks through a signed webhook receiver on 127.0.0.1 (the SMS tests' Standard Webhooks
//! receiver, which verifies each signature): `pre_token` adds and removes claims at login and
//! refresh, an answer naming a reserved claim is refused, and each failure policy holds when
//! the hook hangs or answers an error: fail closed answers 503 with nothing written (no
//! session, the refresh token unspent), fail open goes on without the hook and audits it.

use std::time::{Duration, Instant};

use api_tests::*;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::{config::Vars, hooks::Hooks};
use serde_json::{Value, json};

use crate::sms::{Answer, Receiver, SECRET_B64};

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The pre_token hook at `rx`, failing `policy`, with a `timeout_ms` budget.
fn pre_token(rx: &Receiver, policy: &str, timeout_ms: &str) -> Hooks {
    let secret = format!("whsec_{SECRET_B64}");
    let vars = Vars::from_pairs([
        ("HOOK_PRE_TOKEN_URL", rx.url()),
        ("HOOK_PRE_TOKEN_SECRET", secret),
        ("HOOK_PRE_TOKEN_FAILURE", policy.to_owned()),
        ("HOOK_PRE_TOKEN_TIMEOUT_MS", timeout_ms.to_owned()),
    ]);
    Hooks::from_vars(&vars, adapters::hook_caller).unwrap()
}

async fn app_with(hooks: Hooks) -> TestApp {
    let app = TestApp::with(Backend::Mongo, |v| v.set("TOKEN_CLAIMS", "tenant")).await;
    TestApp {
        state: app.state.with_hooks(hooks),
        clock: app.clock,
    }
}

async fn sessions_of(app: &TestApp, phone: &str) -> u64 {
    let user = app
        .state
        .store
        .find_user_by_phone(&domain::types::Phone::parse(phone).unwrap())
        .await
        .unwrap()
        .unwrap();
    count_sessions(&app.state.settings.db_name, &user.id.to_hex()).await
}

async fn count_sessions(db: &str, user: &str) -> u64 {
    mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(db)
        .collection::<mongodb::bson::Document>("User_sessions")
        .count_documents(mongodb::bson::doc! {
            "user_id": mongodb::bson::oid::ObjectId::parse_str(user).unwrap()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_pre_token_hook_adds_and_removes_claims_at_login_and_refresh_signed_and_seen() {
    let rx = Receiver::start(Answer::Json(
        r#"{"claims": {"plan": "pro", "tenant": null}}"#,
    ))
    .await;
    let app = app_with(pre_token(&rx, "closed", "2000")).await;
    app.signup("4025550401").await;
    let a = app.login("4025550401", "securepassword123").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let c = claims_of(a.body["token"].as_str().unwrap());
    assert_eq!(c["plan"], "pro");
    assert!(c.get("tenant").is_none());
    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].signature_ok, "the receiver verified the signature");
    let p = &seen[0].body;
    assert_eq!(p["type"], "pre_token");
    assert_eq!(p["user_id"], a.body["user_id"]["$oid"]);
    assert_eq!(
        (p["aal"].clone(), p["amr"].clone()),
        (json!(1), json!(["pwd"]))
    );
    let r = app
        .call(&with_body(
            event("refresh"),
            &json!({"refresh_token": a.body["refresh_token"]}),
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(claims_of(r.body["token"].as_str().unwrap())["plan"], "pro");
    assert_eq!(rx.seen().len(), 2, "the refresh ran the hook too");
}

#[tokio::test]
async fn a_hook_answer_naming_a_reserved_claim_is_refused_and_fails_closed_with_nothing_written() {
    let rx = Receiver::start(Answer::Json(r#"{"claims": {"sub": "someone-else"}}"#)).await;
    let app = app_with(pre_token(&rx, "closed", "2000")).await;
    app.signup("4025550402").await;
    let a = app.login("4025550402", "securepassword123").await;
    assert_eq!(
        (a.status.as_u16(), a.code()),
        (503, "service_unavailable"),
        "{:?}",
        a.body
    );
    assert_eq!(
        sessions_of(&app, "4025550402").await,
        0,
        "no session was written"
    );
}

#[tokio::test]
async fn each_failure_policy_holds_when_the_hook_hangs_or_errs() {
    let _ = logs();
    for (answer, what) in [
        (Answer::Hang, "hangs"),
        (Answer::Status(500), "answers 500"),
    ] {
        // Closed: 503 within the hook's timeout, nothing written.
        let rx = Receiver::start(answer).await;
        let app = app_with(pre_token(&rx, "closed", "300")).await;
        app.signup("4025550403").await;
        let t = Instant::now();
        let a = app.login("4025550403", "securepassword123").await;
        assert_eq!(a.status, 503, "{what}: {:?}", a.body);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{what}: bounded by the timeout"
        );
        assert_eq!(sessions_of(&app, "4025550403").await, 0, "{what}");
        // Open: the sign-in goes on without the hook's claims, and the failure is audited.
        let app = app_with(pre_token(&rx, "open", "300")).await;
        app.signup("4025550404").await;
        let a = app.login("4025550404", "securepassword123").await;
        assert_eq!(a.status, 200, "{what}: {:?}", a.body);
        assert!(
            claims_of(a.body["token"].as_str().unwrap())
                .get("plan")
                .is_none()
        );
        let id = a.body["user_id"]["$oid"].as_str().unwrap().to_owned();
        assert!(
            logs()
                .text()
                .lines()
                .any(|l| l.contains("failed_open") && l.contains(&id)),
            "{what}: the open failure is audited"
        );
    }
}

#[tokio::test]
async fn a_refresh_refused_by_a_closed_hook_leaves_its_refresh_token_unspent() {
    let ok = Receiver::start(Answer::Json(r#"{"claims": {"plan": "pro"}}"#)).await;
    let down = Receiver::start(Answer::Status(503)).await;
    let app = app_with(pre_token(&ok, "closed", "2000")).await;
    app.signup("4025550405").await;
    let a = app.login("4025550405", "securepassword123").await;
    let refresh = json!({"refresh_token": a.body["refresh_token"]});
    // Another instance on the same database whose hook is down.
    let other = app.second_instance().await;
    let other = TestApp {
        state: other.state.with_hooks(pre_token(&down, "closed", "2000")),
        clock: other.clock,
    };
    let r = other.call(&with_body(event("refresh"), &refresh)).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    // The hook back: the same refresh token still renews.
    let r = app.call(&with_body(event("refresh"), &refresh)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// In AWS the signing secret lives in the stack's secret beside the keys, never in a plain
/// variable: a state loaded from such a secret signs its hook calls with it, and a hook URL
/// with no secret anywhere stops the start, naming the variable.
#[tokio::test]
async fn the_hook_s_signing_secret_is_read_from_secrets_manager() {
    let rx = Receiver::start(Answer::Json(r#"{"claims": {"plan": "team"}}"#)).await;
    let client = secrets_client(&aws_endpoint()).await;
    let name = format!("user-api/{}", fresh_db());
    let mut value: Value = serde_json::from_str(&secret_json(JWT_KEY, SESSION_KEY)).unwrap();
    value["HOOK_PRE_TOKEN_SECRET"] = format!("whsec_{SECRET_B64}").into();
    create_secret(&client, &name, &value.to_string()).await;
    let mut vars = secret_vars(&name, &aws_endpoint());
    vars.set("HOOK_PRE_TOKEN_URL", rx.url());
    let state = edge::State::load(&vars, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let l = signed_in(&state, "4025550406").await;
    assert_eq!(claims_of(&l.token)["plan"], "team");
    assert!(rx.seen()[0].signature_ok);

    let bare = format!("user-api/{}", fresh_db());
    create_secret(&client, &bare, &secret_json(JWT_KEY, SESSION_KEY)).await;
    let mut vars = secret_vars(&bare, &aws_endpoint());
    vars.set("HOOK_PRE_TOKEN_URL", rx.url());
    let err = edge::State::load(&vars, true)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("HOOK_PRE_TOKEN_SECRET"), "{err}");
    assert!(!err.contains(SECRET_B64), "{err}");
}

/// The pre_signup hook at `rx`, failing `policy`.
fn pre_signup(rx: &Receiver, policy: &str) -> Hooks {
    let vars = Vars::from_pairs([
        ("HOOK_PRE_SIGNUP_URL", rx.url()),
        ("HOOK_PRE_SIGNUP_SECRET", format!("whsec_{SECRET_B64}")),
        ("HOOK_PRE_SIGNUP_FAILURE", policy.to_owned()),
        ("HOOK_PRE_SIGNUP_TIMEOUT_MS", "300".to_owned()),
    ]);
    Hooks::from_vars(&vars, adapters::hook_caller).unwrap()
}

async fn exists(app: &TestApp, phone: &str) -> bool {
    app.state
        .store
        .find_user_by_phone(&domain::types::Phone::parse(phone).unwrap())
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_pre_signup_hook_refuses_with_its_message_and_nothing_is_written() {
    let rx = Receiver::start(Answer::Json(
        r#"{"decision": "refuse", "message": "Sign-ups are by invitation only."}"#,
    ))
    .await;
    let app = app_with(pre_signup(&rx, "closed")).await;
    let a = app.signup("4025550407").await;
    assert_eq!((a.status.as_u16(), a.code()), (403, "signup_refused"));
    assert_eq!(a.body["detail"], "Sign-ups are by invitation only.");
    assert!(!exists(&app, "4025550407").await);
    let seen = rx.seen();
    assert!(seen[0].signature_ok);
    assert_eq!(seen[0].body["phone"], "4025550407");
    assert!(
        seen[0].body.get("password").is_none(),
        "the password never leaves"
    );
}

#[tokio::test]
async fn a_pre_signup_hook_marks_an_address_proven_so_no_code_is_needed() {
    let rx = Receiver::start(Answer::Json(
        r#"{"decision": "allow", "verified": ["email"]}"#,
    ))
    .await;
    let app = TestApp::with(Backend::Mongo, |v| {
        v.set("REQUIRE_EMAIL_VERIFICATION", "true");
        v.set("EMAIL_SENDER", "log");
        v.set("EMAIL_ALLOW_LOG_SENDER", "1");
    })
    .await;
    let mail = domain::email::Mail::from_vars(
        &Vars::from_pairs([
            ("REQUIRE_EMAIL_VERIFICATION", "true"),
            ("EMAIL_SENDER", "log"),
            ("EMAIL_ALLOW_LOG_SENDER", "1"),
        ]),
        domain::email::log_mailer,
    )
    .unwrap();
    let app = TestApp {
        state: app
            .state
            .with_email(mail)
            .with_hooks(pre_signup(&rx, "closed")),
        clock: app.clock,
    };
    let body = json!({"first_name": "Ann", "last_name": "Lee", "email": "ann@corp.test",
        "password": "securepassword123"});
    let a = app.call(&with_body(event("signup"), &body)).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    // Proven by the app: the address logs in at once, with no code sent.
    let login = app
        .call(&with_body(
            event("login"),
            &json!({"email": "ann@corp.test", "password": "securepassword123"}),
        ))
        .await;
    assert_eq!(login.status, 200, "{:?}", login.body);
}

#[tokio::test]
async fn a_pre_signup_hook_that_is_down_fails_closed_or_open_as_declared() {
    let rx = Receiver::start(Answer::Hang).await;
    let app = app_with(pre_signup(&rx, "closed")).await;
    let a = app.signup("4025550408").await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert!(!exists(&app, "4025550408").await, "nothing written");
    let app = app_with(pre_signup(&rx, "open")).await;
    let a = app.signup("4025550409").await;
    assert_eq!(a.status, 201, "{:?}", a.body);
}

/// A state whose SMS go to the webhook receiver `sms` (phone verification required) and whose
/// custom_message hook is `hook`, failing `policy`.
async fn sms_app(sms: &Receiver, hook: &Receiver, policy: &str) -> TestApp {
    let secret = format!("whsec_{SECRET_B64}");
    let verification = domain::verification::Verification::from_vars(
        &Vars::from_pairs([
            ("REQUIRE_PHONE_VERIFICATION", "true".to_owned()),
            ("SMS_SENDER", "webhook".to_owned()),
            ("SMS_WEBHOOK_URL", sms.url()),
            ("SMS_WEBHOOK_SECRET", secret.clone()),
        ]),
        adapters::sms_sender,
    )
    .unwrap();
    let hooks = Hooks::from_vars(
        &Vars::from_pairs([
            ("HOOK_CUSTOM_MESSAGE_URL", hook.url()),
            ("HOOK_CUSTOM_MESSAGE_SECRET", secret),
            ("HOOK_CUSTOM_MESSAGE_FAILURE", policy.to_owned()),
            ("HOOK_CUSTOM_MESSAGE_TIMEOUT_MS", "300".to_owned()),
        ]),
        adapters::hook_caller,
    )
    .unwrap();
    let app = TestApp::mongo().await;
    TestApp {
        state: app.state.with_verification(verification).with_hooks(hooks),
        clock: app.clock,
    }
}

#[tokio::test]
async fn a_custom_message_hook_writes_the_sms_text_and_the_code_still_works() {
    let (sms, hook) = (
        Receiver::start(Answer::Ok).await,
        Receiver::start(Answer::CustomSms).await,
    );
    let app = sms_app(&sms, &hook, "closed").await;
    let a = app.signup("+12025550410").await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let asked = hook.seen();
    assert_eq!(asked[0].body["channel"], "sms");
    assert_eq!(asked[0].body["purpose"], "signup");
    let code = asked[0].body["code"].as_str().unwrap().to_owned();
    let sent = sms.seen();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body["message"],
        format!("Acme: {code} is your code.")
    );
    let confirm = app
        .call(&with_body(
            event("verify_phone_confirm"),
            &json!({"phone": "+12025550410", "code": code}),
        ))
        .await;
    assert_eq!(confirm.status, 200, "{:?}", confirm.body);
}

#[tokio::test]
async fn a_custom_message_without_the_code_fails_closed_with_nothing_sent_or_kept() {
    let (sms, hook) = (
        Receiver::start(Answer::Ok).await,
        Receiver::start(Answer::Json(r#"{"message": "Welcome to Acme!"}"#)).await,
    );
    let app = sms_app(&sms, &hook, "closed").await;
    let a = app.signup("+12025550411").await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert!(sms.seen().is_empty(), "no SMS went out");
    assert!(
        !exists(&app, "+12025550411").await,
        "the account was taken back"
    );
    // Failing open, the default text goes out instead.
    let app = sms_app(&sms, &hook, "open").await;
    let a = app.signup("+12025550412").await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let sent = sms.seen();
    assert!(
        sent[0].body["message"]
            .as_str()
            .unwrap()
            .starts_with("Your verification code is "),
        "{sent:?}"
    );
}

/// A MongoDB app whose mail goes by SES to the emulator (address proof required), with
/// `hooks`.
pub(crate) async fn mail_app_with(hooks: Hooks) -> TestApp {
    ses_identity().await;
    let endpoint = aws_endpoint();
    let from = format!("no-reply@{MAIL_DOMAIN}");
    let mail = domain::email::Mail::from_vars(
        &Vars::from_pairs([
            ("EMAIL_SENDER", "ses"),
            ("EMAIL_FROM", from.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("REQUIRE_EMAIL_VERIFICATION", "true"),
        ]),
        adapters::mail_sender,
    )
    .unwrap();
    let app = TestApp::mongo().await;
    TestApp {
        state: app.state.with_email(mail).with_hooks(hooks),
        clock: app.clock,
    }
}

/// [`mail_app_with`] whose custom_message and post_confirmation hooks are `hook`,
/// custom_message failing `policy`.
async fn mail_app(hook: &Receiver, policy: &str) -> TestApp {
    let secret = format!("whsec_{SECRET_B64}");
    let hooks = Hooks::from_vars(
        &Vars::from_pairs([
            ("HOOK_CUSTOM_MESSAGE_URL", hook.url()),
            ("HOOK_CUSTOM_MESSAGE_SECRET", secret.clone()),
            ("HOOK_CUSTOM_MESSAGE_FAILURE", policy.to_owned()),
            ("HOOK_CUSTOM_MESSAGE_TIMEOUT_MS", "300".to_owned()),
            ("HOOK_POST_CONFIRMATION_URL", hook.url()),
            ("HOOK_POST_CONFIRMATION_SECRET", secret),
            ("HOOK_POST_CONFIRMATION_TIMEOUT_MS", "300".to_owned()),
        ]),
        adapters::hook_caller,
    )
    .unwrap();
    mail_app_with(hooks).await
}

fn mail_signup(to: &str) -> Value {
    crate::verification::ev(
        "/signup",
        json!({"email": to, "password": "securepassword123", "first_name": "Ann", "last_name": "Lee"}),
    )
}

#[tokio::test]
async fn a_custom_message_hook_writes_the_mail_and_post_confirmation_hears_the_proof() {
    let hook = Receiver::start(Answer::CustomSms).await;
    let app = mail_app(&hook, "closed").await;
    let to = format!("{}@example.com", fresh_db().replace('_', "-"));
    let a = app.call(&mail_signup(&to)).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let asked = hook.seen();
    assert_eq!(
        (&asked[0].body["channel"], &asked[0].body["kind"]),
        (&json!("email"), &json!("verify"))
    );
    assert!(asked[0].body["link"].as_str().unwrap().contains("token="));
    let code = asked[0].body["code"].as_str().unwrap().to_owned();
    let mails = mail_to(&to).await;
    assert_eq!(
        mails,
        vec![(
            "Acme sign-in".to_owned(),
            format!("<p>Acme: <b>{code}</b></p>")
        )]
    );
    let c = app
        .call(&crate::verification::ev(
            "/verify/email/confirm",
            json!({"email": to, "code": code}),
        ))
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    let seen = hook.seen();
    let heard = &seen.last().unwrap().body;
    assert!(seen.last().unwrap().signature_ok);
    assert_eq!(
        (&heard["type"], &heard["trigger"], &heard["user_id"]),
        (
            &json!("post_confirmation"),
            &json!("signup"),
            &a.body["_id"]["$oid"]
        )
    );
    assert_eq!(heard["identifier"], json!({"kind": "email", "value": to}));
}

#[tokio::test]
async fn a_post_confirmation_hook_that_is_down_never_holds_back_the_proof() {
    let _ = logs();
    for answer in [Answer::Hang, Answer::Status(500)] {
        let hook = Receiver::start(answer).await;
        let app = mail_app(&hook, "open").await;
        let to = format!("{}@example.com", fresh_db().replace('_', "-"));
        let a = app.call(&mail_signup(&to)).await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        let (_, html) = mail_to(&to).await.pop().unwrap();
        let t = Instant::now();
        let c = app
            .call(&crate::verification::ev(
                "/verify/email/confirm",
                json!({"email": to, "code": code_in(&html)}),
            ))
            .await;
        assert_eq!(c.status, 200, "{:?}", c.body);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "bounded by the timeout"
        );
        let id = a.body["_id"]["$oid"].as_str().unwrap().to_owned();
        assert!(
            logs().text().lines().any(|l| l.contains("failed_open")
                && l.contains("post_confirmation")
                && l.contains(&id)),
            "the failure is audited"
        );
    }
}

#[tokio::test]
async fn a_custom_mail_without_the_code_fails_closed_with_nothing_sent_or_kept() {
    let hook = Receiver::start(Answer::Json(r#"{"text": "Welcome to Acme!"}"#)).await;
    let app = mail_app(&hook, "closed").await;
    let to = format!("{}@example.com", fresh_db().replace('_', "-"));
    let a = app.call(&mail_signup(&to)).await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert!(mail_to(&to).await.is_empty(), "no mail went out");
    let db = &app.state.settings.db_name;
    assert_eq!(
        count_users(db, mongodb::bson::doc! {}).await,
        0,
        "the account was taken back"
    );
}
