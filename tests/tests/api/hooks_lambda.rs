//! Hooks as AWS Lambda functions: `tests/hook-function` run by `cargo lambda watch`, reached
//! through the Lambda Invoke API with aws-sdk-lambda (`AWS_ENDPOINT_URL_LAMBDA`), from the real
//! function binaries (signup, verify, login under the Lambda Runtime API) and from the app.
//! Every kind runs; a refusal, a proven identifier, added claims and custom texts take effect;
//! a reserved claim, a crash and a hang fail closed with nothing written or open as declared.

use std::time::{Duration, Instant};

use api_tests::{
    lambda_watch::{FUNCTION, LambdaWatch},
    runtime::{Function, binary},
    *,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::{config::Vars, hooks::Hooks};
use serde_json::{Value, json};

use crate::verification::{ev, phone, sms_to};

const PASSWORD: &str = "securepassword123";

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn invoke(f: &Function, event: &Value) -> (u16, Value) {
    let (status, body, _) = f.invoke(event).await;
    (status, body)
}

#[tokio::test]
async fn every_hook_kind_runs_as_a_lambda_function_from_the_function_binaries() {
    let watch = LambdaWatch::start().await;
    let endpoint = aws_endpoint();
    let client = secrets_client(&endpoint).await;
    let name = format!("user-api/hooks-{}", fresh_db());
    create_secret(&client, &name, &secret_json(JWT_KEY, SESSION_KEY)).await;
    let mut config: Vec<(String, String)> = [
        ("SECRET_ID", name),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.clone()),
        ("AWS_ENDPOINT_URL_SNS", endpoint.clone()),
        ("AWS_ENDPOINT_URL_LAMBDA", watch.endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("DB_NAME", fresh_db()),
        ("REQUIRE_PHONE_VERIFICATION", "true".to_owned()),
        ("SMS_SENDER", "sns".to_owned()),
        ("SMS_ALLOWED_COUNTRY_CODES", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for kind in [
        "PRE_SIGNUP",
        "PRE_TOKEN",
        "POST_CONFIRMATION",
        "CUSTOM_MESSAGE",
    ] {
        config.push((format!("HOOK_{kind}_FUNCTION"), FUNCTION.to_owned()));
        config.push((format!("HOOK_{kind}_TIMEOUT_MS"), "10000".to_owned()));
    }
    let spawn = |n: &'static str| {
        let config = config.clone();
        async move { Function::spawn(&binary(n), n, &config, "warn").await }
    };
    let (signup, verify, login) = tokio::join!(spawn("signup"), spawn("verify"), spawn("login"));

    // pre_signup refuses with its message; nothing is made.
    let p = phone();
    let mut body = signup_body(&p);
    body["email"] = json!("ann@blocked.example");
    let (status, problem) = invoke(&signup, &ev("/signup", body)).await;
    assert_eq!(
        (status, problem["code"].as_str(), problem["detail"].as_str()),
        (
            403,
            Some("signup_refused"),
            Some("Signups from blocked.example are closed.")
        ),
        "{problem}"
    );
    assert!(sms_to(&p).await.is_empty(), "no code went out");

    // pre_signup proves the address; custom_message writes the SMS; the code still works.
    let mut body = signup_body(&p);
    body["email"] = json!(format!("{}@trusted.example", fresh_db().replace('_', "-")));
    let (status, user) = invoke(&signup, &ev("/signup", body)).await;
    assert_eq!(status, 201, "{user}");
    let texts = sms_to(&p).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    let code = texts[0]
        .strip_prefix("From the Lambda hook: ")
        .unwrap_or_else(|| panic!("the hook's text: {texts:?}"))
        .to_owned();
    let (status, verified) = invoke(
        &verify,
        &ev("/verify/phone/confirm", json!({"phone": p, "code": code})),
    )
    .await;
    assert_eq!(status, 200, "{verified}");

    // post_confirmation heard of it.
    let heard = watch.confirmations();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(
        (
            &heard[0]["trigger"],
            &heard[0]["identifier"]["kind"],
            &heard[0]["user_id"]
        ),
        (&json!("signup"), &json!("phone"), &user["_id"]["$oid"])
    );
    let mut proven: Vec<&str> = heard[0]["verified"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    proven.sort_unstable();
    assert_eq!(proven, ["email", "phone"], "the hook proved the address");

    // pre_token adds its claims to the token the login binary signs.
    let (status, tokens) = invoke(
        &login,
        &ev("/login", json!({"phone": p, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let claims = claims_of(tokens["token"].as_str().unwrap());
    assert_eq!(
        (&claims["hook"], &claims["plan"]),
        (&json!("lambda"), &json!("pro"))
    );
}

/// An app whose pre_token hook is the Lambda function at `watch`, failing `policy`.
async fn app_with(watch: &LambdaWatch, policy: &str) -> TestApp {
    let hooks = Hooks::from_vars(
        &Vars::from_pairs([
            ("HOOK_PRE_TOKEN_FUNCTION", FUNCTION),
            ("HOOK_PRE_TOKEN_FAILURE", policy),
            ("HOOK_PRE_TOKEN_TIMEOUT_MS", "1500"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_LAMBDA", watch.endpoint.as_str()),
        ]),
        adapters::hook_caller,
    )
    .unwrap();
    let app = TestApp::mongo().await;
    TestApp {
        state: app.state.with_hooks(hooks),
        clock: app.clock,
    }
}

/// Signs up `phone` with `app_metadata.hook = behaviour` (what the function does for it).
async fn account(app: &TestApp, phone: &str, behaviour: &str) {
    assert_eq!(app.signup(phone).await.status, 201);
    let user = app
        .state
        .store
        .find_user_by_phone(&domain::types::Phone::parse(phone).unwrap())
        .await
        .unwrap()
        .unwrap();
    let patch = domain::store::UserPatch {
        app_metadata: Some(
            domain::claims::Metadata::parse_app(json!({"hook": behaviour}), 4096).unwrap(),
        ),
        ..Default::default()
    };
    app.state
        .store
        .update_user(&user.id, &patch, 0)
        .await
        .unwrap()
        .unwrap();
}

async fn sessions(app: &TestApp) -> u64 {
    mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&app.state.settings.db_name)
        .collection::<mongodb::bson::Document>("User_sessions")
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lambda_hook_that_names_a_reserved_claim_crashes_or_hangs_fails_as_declared() {
    let _ = logs();
    let watch = LambdaWatch::start().await;
    // The hang goes last: it holds the function's instance past the test.
    for (behaviour, what) in [
        ("reserved", "names `sub`"),
        ("crash", "fails"),
        ("hang", "hangs"),
    ] {
        let closed = app_with(&watch, "closed").await;
        account(&closed, "4025550501", behaviour).await;
        let t = Instant::now();
        let a = closed.login("4025550501", PASSWORD).await;
        assert_eq!(
            (a.status.as_u16(), a.code()),
            (503, "service_unavailable"),
            "{what}: {:?}",
            a.body
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: bounded by the timeout"
        );
        assert_eq!(sessions(&closed).await, 0, "{what}: no session was written");

        let open = app_with(&watch, "open").await;
        account(&open, "4025550502", behaviour).await;
        let a = open.login("4025550502", PASSWORD).await;
        assert_eq!(a.status, 200, "{what}: {:?}", a.body);
        let claims = claims_of(a.body["token"].as_str().unwrap());
        assert!(
            claims.get("plan").is_none(),
            "{what}: no claim of the hook's"
        );
        assert_eq!(claims["sub"], a.body["user_id"]["$oid"], "{what}");
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
async fn a_lambda_custom_message_writes_the_mail_and_its_link_and_code_still_work() {
    let watch = LambdaWatch::start().await;
    let hooks = Hooks::from_vars(
        &Vars::from_pairs([
            ("HOOK_CUSTOM_MESSAGE_FUNCTION", FUNCTION),
            ("HOOK_POST_CONFIRMATION_FUNCTION", FUNCTION),
            ("HOOK_CUSTOM_MESSAGE_TIMEOUT_MS", "10000"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_LAMBDA", watch.endpoint.as_str()),
        ]),
        adapters::hook_caller,
    )
    .unwrap();
    let app = crate::hooks::mail_app_with(hooks).await;
    let to = format!("{}@example.com", fresh_db().replace('_', "-"));
    let a = app
        .call(&ev(
            "/signup",
            json!({"email": to, "password": PASSWORD, "first_name": "Ann", "last_name": "Lee"}),
        ))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let mails = mail_to(&to).await;
    assert_eq!(mails.len(), 1);
    let (subject, html) = &mails[0];
    let code = subject
        .strip_prefix("Lambda hook: your code ")
        .unwrap_or_else(|| panic!("the hook's subject: {subject}"));
    assert!(html.contains(&format!("<b>{code}</b>")), "{html}");
    let c = app
        .call(&ev(
            "/verify/email/confirm",
            json!({"email": to, "code": code}),
        ))
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    let heard = watch.confirmations();
    assert_eq!(
        (heard.len(), &heard[0]["identifier"]),
        (1, &json!({"kind": "email", "value": to}))
    );
}
