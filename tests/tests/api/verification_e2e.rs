//! The verification flows through what ships: the real function binaries driven through the
//! Lambda Runtime API (config from a Secrets Manager secret in the emulator, SMS by SNS to the
//! emulator, users in MongoDB), and the dev server over HTTP with a test number.

use api_tests::{
    dev_server,
    runtime::{Function, binary},
    *,
};
use serde_json::{Value, json};

use super::verification::{ev, last_code, phone, sms_to};

const PASSWORD: &str = "securepassword123";

async fn spawn(name: &str, config: &[(String, String)]) -> Function {
    Function::spawn(&binary(name), name, config, "warn").await
}

async fn invoke(f: &Function, event: &Value) -> (u16, Value) {
    let (status, body, _) = f.invoke(event).await;
    (status, body)
}

fn login_ev(phone: &str, password: &str) -> Value {
    ev("/login", json!({"phone": phone, "password": password}))
}

#[tokio::test]
async fn the_function_binaries_run_signup_verification_login_recovery_and_phone_change() {
    let endpoint = aws_endpoint();
    let client = secrets_client(&endpoint).await;
    let name = format!("user-api/verify-{}", fresh_db());
    create_secret(&client, &name, &secret_json(JWT_KEY, SESSION_KEY)).await;
    let config: Vec<(String, String)> = [
        ("SECRET_ID", name),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.clone()),
        ("AWS_ENDPOINT_URL_SNS", endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("DB_NAME", fresh_db()),
        ("REQUIRE_PHONE_VERIFICATION", "true".to_owned()),
        ("SMS_SENDER", "sns".to_owned()),
        ("SMS_ALLOWED_COUNTRY_CODES", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (signup, login, update, verify, recover) = tokio::join!(
        spawn("signup", &config),
        spawn("login", &config),
        spawn("update", &config),
        spawn("verify", &config),
        spawn("recover", &config),
    );
    let p = phone();

    // Signup -> SMS read back from the emulator -> confirm -> login.
    let (status, user) = invoke(&signup, &ev("/signup", signup_body(&p))).await;
    assert_eq!(status, 201, "{user}");
    let code = last_code(&p).await;
    let (status, problem) = invoke(&login, &login_ev(&p, PASSWORD)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("phone_unverified"))
    );
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let confirm = |code: &str| ev("/verify/phone/confirm", json!({"phone": p, "code": code}));
    assert_eq!(invoke(&verify, &confirm(wrong)).await.0, 400);
    let (status, verified) = invoke(&verify, &confirm(&code)).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(invoke(&verify, &confirm(&code)).await.0, 400, "single use");
    let (status, tokens) = invoke(&login, &login_ev(&p, PASSWORD)).await;
    assert_eq!(status, 200, "{tokens}");

    // Phone change: the old number works until the new one is confirmed.
    let new = phone();
    let mut put = with_auth(
        with_body(
            event("update"),
            &json!({"_id": user["_id"], "phone": new, "current_password": PASSWORD}),
        ),
        tokens["token"].as_str().unwrap(),
        tokens["session_token"].as_str().unwrap(),
    );
    put["requestContext"]["requestId"] = json!(format!("req-{}", fresh_db()));
    let (status, changed) = invoke(&update, &put).await;
    assert_eq!(
        (status, changed["phone"].as_str()),
        (200, Some(p.as_str())),
        "{changed}"
    );
    assert_eq!(invoke(&login, &login_ev(&p, PASSWORD)).await.0, 200);
    let change_code = last_code(&new).await;
    let (status, moved) = invoke(
        &verify,
        &ev(
            "/verify/phone/confirm",
            json!({"phone": new, "code": change_code}),
        ),
    )
    .await;
    assert_eq!(
        (status, moved["phone"].as_str()),
        (200, Some(new.as_str())),
        "{moved}"
    );
    assert_eq!(invoke(&login, &login_ev(&p, PASSWORD)).await.0, 401);
    assert_eq!(invoke(&login, &login_ev(&new, PASSWORD)).await.0, 200);

    // Recovery: 202 for any phone, a code to the account's, the password replaced.
    let (status, _) = invoke(&recover, &ev("/recover/start", json!({"phone": new}))).await;
    assert_eq!(status, 202);
    let (status, _) = invoke(&recover, &ev("/recover/start", json!({"phone": phone()}))).await;
    assert_eq!(status, 202);
    let recovery = last_code(&new).await;
    assert_eq!(sms_to(&new).await.len(), 2);
    let reset = ev(
        "/recover/confirm",
        json!({"phone": new, "code": recovery, "new_password": "a-brand-new-passphrase"}),
    );
    assert_eq!(invoke(&recover, &reset).await.0, 204);
    assert_eq!(invoke(&login, &login_ev(&new, PASSWORD)).await.0, 401);
    assert_eq!(
        invoke(&login, &login_ev(&new, "a-brand-new-passphrase"))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn the_dev_server_runs_the_flows_with_a_test_number_when_verification_is_on() {
    let server = dev_server::start(&dev_server::bin(), |cmd| {
        cmd.env("JWT_SECRET_KEY", JWT_KEY)
            .env("SESSION_SECRET_KEY", SESSION_KEY)
            .env_remove("MONGO_URI")
            .env("REQUIRE_PHONE_VERIFICATION", "true")
            .env("SMS_TEST_NUMBERS", "+15555550100:135790");
    });
    assert!(
        server.banner.contains("verification required"),
        "{}",
        server.banner
    );
    assert!(
        server.banner.contains("SMS sender log;"),
        "{}",
        server.banner
    );
    let http = reqwest::Client::new();
    let base = &server.base;
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();
    let p = "+1 555 555 0100";
    assert_eq!(post("/signup", signup_body(p)).await.unwrap().status(), 201);
    let login = json!({"phone": p, "password": PASSWORD});
    assert_eq!(post("/login", login.clone()).await.unwrap().status(), 403);
    let wrong = post(
        "/verify/phone/confirm",
        json!({"phone": p, "code": "000000"}),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 400);
    let ok = post(
        "/verify/phone/confirm",
        json!({"phone": p, "code": "135790"}),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(post("/login", login).await.unwrap().status(), 200);
    assert_eq!(
        post("/recover/start", json!({"phone": p}))
            .await
            .unwrap()
            .status(),
        202
    );
    let reset = json!({"phone": p, "code": "135790", "new_password": "a-brand-new-passphrase"});
    assert_eq!(post("/recover/confirm", reset).await.unwrap().status(), 204);
    let login = json!({"phone": p, "password": "a-brand-new-passphrase"});
    assert_eq!(post("/login", login).await.unwrap().status(), 200);
    // The seed's phone is not a number a code can reach: refused with its own code.
    let seed = post("/signup", signup_body("1234567890")).await.unwrap();
    assert_eq!(seed.status(), 400);
    let body: Value = seed.json().await.unwrap();
    assert_eq!(body["code"], "invalid_phone");
}

#[tokio::test]
async fn the_dev_servers_requests_on_one_connection_are_not_retries_of_each_other() {
    // The SMS idempotency claim is keyed on the request id: were a keep-alive connection's
    // requests to share one, the second start would pass as a retry and never reach the
    // per-phone budget.
    let server = dev_server::start(&dev_server::bin(), |cmd| {
        cmd.env("JWT_SECRET_KEY", JWT_KEY)
            .env("SESSION_SECRET_KEY", SESSION_KEY)
            .env_remove("MONGO_URI")
            .env("REQUIRE_PHONE_VERIFICATION", "true")
            .env("SMS_TEST_NUMBERS", "+15555550100:135790")
            .env("SMS_PER_PHONE_PER_HOUR", "2")
            .env("OTP_RESEND_SECONDS", "1");
    });
    // One TCP connection, requests written one after another on it.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let p = "+15555550100";
    let signed = on_connection(&mut conn, "/signup", &signup_body(p)).await;
    assert_eq!(signed, 201);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        statuses.push(on_connection(&mut conn, "/verify/phone/start", &json!({"phone": p})).await);
    }
    assert_eq!(statuses, [202, 429]);
}

/// Writes one POST of `body` on `conn` and reads its answer; returns the status.
async fn on_connection(conn: &mut tokio::net::TcpStream, path: &str, body: &Value) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if http_message_len(&buf).is_some() {
            return String::from_utf8_lossy(&buf[9..12]).parse().unwrap();
        }
    }
}
