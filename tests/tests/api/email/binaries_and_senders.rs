//! Email through the function binaries and the dev server, the webhook mail sender, which
//! functions may send mail, and how long an unproven signup holds an address.

use super::*;

/// The real function binaries (config from a Secrets Manager secret in the emulator, mail by
/// SES to the emulator, users in MongoDB): signup by email, the link's page, confirmation by
/// the link's token, login by email, recovery by email.
#[tokio::test]
async fn the_function_binaries_run_email_signup_link_confirmation_login_and_recovery() {
    use api_tests::runtime::{Function, binary};
    ses_identity().await;
    let endpoint = aws_endpoint();
    let client = secrets_client(&endpoint).await;
    let name = format!("user-api/email-{}", fresh_db());
    create_secret(&client, &name, &secret_json(JWT_KEY, SESSION_KEY)).await;
    let config: Vec<(String, String)> = [
        ("SECRET_ID", name),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("DB_NAME", fresh_db()),
        ("REQUIRE_EMAIL_VERIFICATION", "true".to_owned()),
        ("EMAIL_SENDER", "ses".to_owned()),
        ("EMAIL_FROM", format!("no-reply@{MAIL_DOMAIN}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    async fn spawn(n: &str, config: &[(String, String)]) -> Function {
        Function::spawn(&binary(n), n, config, "warn").await
    }
    async fn invoke(f: &Function, e: Value) -> (u16, Value) {
        let (status, body, _) = f.invoke(&e).await;
        (status, body)
    }
    let (signup_fn, login_fn, verify_fn, recover_fn) = tokio::join!(
        spawn("signup", &config),
        spawn("login", &config),
        spawn("verify", &config),
        spawn("recover", &config)
    );
    let a = address();
    let (status, user) = invoke(
        &signup_fn,
        ev("/signup", signup_body_with(json!({"email": a}))),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let login_ev = |password: &str| ev("/login", json!({"email": a, "password": password}));
    let (status, problem) = invoke(&login_fn, login_ev(PASSWORD)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("email_unverified"))
    );
    let (_, token) = last_mail(&a).await;
    let (status, _) = invoke(&verify_fn, link_page(&token)).await;
    assert_eq!(status, 200, "the page");
    let (status, proven) = invoke(
        &verify_fn,
        ev("/verify/email/confirm", json!({"token": token})),
    )
    .await;
    assert_eq!(status, 200, "{proven}");
    assert_eq!(invoke(&login_fn, login_ev(PASSWORD)).await.0, 200);

    let (status, _) = invoke(&recover_fn, ev("/recover/start", json!({"email": a}))).await;
    assert_eq!(status, 202);
    let (code, _) = last_mail(&a).await;
    let reset = json!({"email": a, "code": code, "new_password": "a new passphrase four"});
    assert_eq!(
        invoke(&recover_fn, ev("/recover/confirm", reset)).await.0,
        204
    );
    assert_eq!(
        invoke(&login_fn, login_ev("a new passphrase four")).await.0,
        200
    );
}

/// The dev server (embedded store, the log mail sender): signup and login by email over
/// HTTP, and the link page.
#[tokio::test]
async fn the_dev_server_signs_up_and_logs_in_by_email() {
    let server = api_tests::dev_server::start(&api_tests::dev_server::bin(), |cmd| {
        cmd.env("JWT_SECRET_KEY", JWT_KEY)
            .env("SESSION_SECRET_KEY", SESSION_KEY)
            .env_remove("MONGO_URI");
    });
    assert!(
        server.banner.contains("email sender log"),
        "{}",
        server.banner
    );
    let http = reqwest::Client::new();
    let base = &server.base;
    let a = address();
    let made = http
        .post(format!("{base}/signup"))
        .json(&signup_body_with(json!({"email": a.to_uppercase()})))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["email"], a.as_str());
    let login = http
        .post(format!("{base}/login"))
        .json(&json!({"email": a, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let page = http
        .get(format!(
            "{base}/verify/email/link?token=AAAAAAAAAAAAAAAAAAAAAA"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("AAAAAAAAAAAAAAAAAAAAAA")
    );
}

/// The webhook mail sender: a signup's mail is POSTed signed (Standard Webhooks) with the
/// request's idempotency key as `webhook-id`, and the code in it proves the address.
#[tokio::test]
async fn the_webhook_sender_posts_signed_mail_whose_code_proves_the_address() {
    use crate::sms::{Answer as Reply, Receiver, SECRET_B64};
    let rx = Receiver::start(Reply::Ok).await;
    let secret = format!("whsec_{SECRET_B64}");
    let url = rx.url();
    let from = format!("no-reply@{MAIL_DOMAIN}");
    let vars = Vars::from_pairs([
        ("REQUIRE_EMAIL_VERIFICATION", "true"),
        ("EMAIL_SENDER", "webhook"),
        ("EMAIL_WEBHOOK_URL", url.as_str()),
        ("EMAIL_WEBHOOK_SECRET", secret.as_str()),
        ("EMAIL_FROM", from.as_str()),
    ]);
    let base = TestApp::mongo().await;
    let app = TestApp {
        state: base
            .state
            .with_email(Mail::from_vars(&vars, adapters::mail_sender).unwrap()),
        clock: base.clock,
    };
    let a = address();
    let made = app
        .call(&ev(
            "/signup",
            signup_body_with(json!({ "email": a, "locale": "fr" })),
        ))
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert!(r.signature_ok, "signed with the configured secret");
    assert!(r.id.starts_with("mail:signup:"), "{}", r.id);
    assert_eq!(r.body["to"], a.as_str());
    assert_eq!(r.body["from"], from.as_str());
    assert_eq!(r.body["subject"], "Confirm your email address");
    let text = r.body["text"].as_str().unwrap();
    assert!(r.body["html"].as_str().unwrap().contains("token="));
    let code = code_in(text);
    let ok = app
        .call(&ev(
            "/verify/email/confirm",
            json!({"email": a, "code": code}),
        ))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
}

/// Least privilege in the template: `ses:SendEmail` (and `sns:Publish`) only for the five
/// functions whose routes send codes or notices, and only on this account's SES identities and
/// configuration sets.
#[test]
fn only_the_functions_that_send_may_send_mail() {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let t = serde_json::to_value(&yaml).unwrap();
    let mut senders = Vec::new();
    for (_, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = r["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let statements: Vec<&Value> = r["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["Statement"].as_array().into_iter().flatten())
            .collect();
        let allows = |action: &str| statements.iter().any(|s| s["Action"] == action);
        assert_eq!(allows("ses:SendEmail"), allows("sns:Publish"), "{binary}");
        if let Some(ses) = statements.iter().find(|s| s["Action"] == "ses:SendEmail") {
            let text = ses["Resource"].to_string();
            assert!(
                text.contains(":identity/*") && text.contains(":configuration-set/*"),
                "{binary}: {text}"
            );
            assert!(!text.contains("\"*\""), "{binary}: no wildcard resource");
            senders.push(binary);
        }
    }
    senders.sort();
    // `admin` tells a user their second factors were reset.
    assert_eq!(senders, ["admin", "recover", "signup", "update", "verify"]);
}

/// A squatter's unproven signup of someone's address holds it only while its code lives:
/// then the owner's signup takes the address over (the squatter's account goes), and the
/// owner proves it and logs in.
#[tokio::test]
async fn an_unproven_signup_holds_an_address_only_while_its_code_lives() {
    let app = verifying().await;
    let a = address();
    let squat = signup(&app, json!({ "email": a })).await;
    assert_eq!(squat.status, 201);
    // While the squatter's code lives the address is held (the answer conceals it).
    let early = signup(&app, json!({ "email": a })).await;
    assert_eq!(early.status, 201);
    let db = &app.state.settings.db_name;
    let holder = || async {
        mongodb::Client::with_uri_str(mongo_uri())
            .await
            .unwrap()
            .database(db)
            .collection::<mongodb::bson::Document>("User")
            .find_one(mongodb::bson::doc! {})
            .await
            .unwrap()
            .unwrap()
            .get_object_id("_id")
            .unwrap()
            .to_hex()
    };
    assert_eq!(holder().await, squat.body["_id"]["$oid"].as_str().unwrap());
    app.clock.advance(301);
    let owner = signup(&app, json!({ "email": a })).await;
    assert_eq!(owner.status, 201);
    assert_eq!(count_users(db, mongodb::bson::doc! {}).await, 1);
    assert_eq!(holder().await, owner.body["_id"]["$oid"].as_str().unwrap());
    let (code, _) = last_mail(&a).await;
    let proof = ev("/verify/email/confirm", json!({"email": a, "code": code}));
    assert_eq!(app.call(&proof).await.status, 200);
    assert_eq!(login(&app, json!({ "email": a })).await.status, 200);
}
