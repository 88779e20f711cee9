//! End to end over HTTP: the dev-server binary on a free port, the Flask README's curl
//! sequence unchanged, then the failure cases. Runs once on MongoDB and once embedded.

use serde_json::{Value, json};

use api_tests::dev_server::{Server, bin, start as start_with_bin, start_with_keys};

fn start(mongo: bool) -> Server {
    start_with_keys(&bin(), mongo)
}

fn start_with(configure: impl FnOnce(&mut std::process::Command)) -> Server {
    start_with_bin(&bin(), configure)
}

async fn seed_sequence_then_failures(server: &Server) {
    let http = reqwest::Client::new();
    let base = &server.base;
    // A JSON text as typed, sent as curl -H "Content-Type: application/json" -d would.
    let post_text = |path: &str, body: String| {
        http.post(format!("{base}{path}"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };

    // Signup (POST), exactly as the Flask README sends it.
    let signup = r#"{
"first_name": "John",
"middle_name": "Doe",
"last_name": "Smith",
"password": "securepassword123",
"phone": "1234567890"
}"#;
    let r = post_text("/signup", signup.into()).await.unwrap();
    assert_eq!(r.status(), 201);
    let user: Value = r.json().await.unwrap();
    let user_id = user["_id"]["$oid"].as_str().unwrap().to_owned();

    // Login (POST).
    let login = r#"{
"phone": "1234567890",
"password": "securepassword123"
}"#;
    let r = post_text("/login", login.into()).await.unwrap();
    assert_eq!(r.status(), 200);
    let login: Value = r.json().await.unwrap();
    let jwt = login["token"].as_str().unwrap().to_owned();
    let session = login["session_token"].as_str().unwrap().to_owned();

    // Update (PUT) with the raw JWT in Authorization, as the Flask service took it.
    let update = |auth: String, body: String| {
        http.put(format!("{base}/user"))
            .header("Authorization", auth)
            .header("Session-Token", session.clone())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let body = format!(
        r#"{{
"_id": {{"$oid": "{user_id}"}},
"last_name": "Smith"
}}"#
    );
    let r = update(jwt.clone(), body.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["_id"]["$oid"], user_id.as_str());
    assert_eq!(updated["last_name"], "Smith");

    // Bearer works too.
    let r = update(format!("Bearer {jwt}"), body.replace("Smith", "Smythe"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Failure cases over the wire.
    let r = post_text("/signup", "{nope".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = http
        .post(format!("{base}/signup"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = post_text("/signup", "x".repeat(17 * 1024)).await.unwrap();
    assert_eq!(r.status(), 413);
    let r = http
        .post(format!("{base}/login"))
        .json(&json!({"phone": {"$ne": null}, "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{base}/login"))
        .json(&json!({"phone": "1234567890", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.post(format!("{base}/signup")).json(&json!({"first_name": "A", "last_name": "B", "password": "securepassword123", "phone": "1234567890"})).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let r = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Logout, then the same tokens are refused.
    let r = http
        .post(format!("{base}/logout"))
        .header("Authorization", format!("Bearer {jwt}"))
        .header("Session-Token", session.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = update(jwt.clone(), body).await.unwrap();
    assert_eq!(r.status(), 401);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "unauthorized");
}

#[tokio::test]
async fn seed_curl_sequence_runs_against_the_dev_server_on_mongodb() {
    let server = start(true);
    assert!(server.banner.contains("MongoDB"), "{}", server.banner);
    seed_sequence_then_failures(&server).await;
}

#[tokio::test]
async fn seed_curl_sequence_runs_against_the_dev_server_with_the_embedded_store() {
    let server = start(false);
    assert!(server.banner.contains("embedded"), "{}", server.banner);
    seed_sequence_then_failures(&server).await;
}

#[tokio::test]
async fn dev_server_runs_from_a_secrets_manager_secret_with_no_key_in_the_environment() {
    let endpoint = api_tests::aws_endpoint();
    let client = api_tests::secrets_client(&endpoint).await;
    let name = format!("user-api/dev-{}", api_tests::fresh_db());
    let secret = api_tests::secret_json(
        "secret-held-jwt-key-0123456789abcdef0123",
        "secret-held-session-key-0123456789abcdef",
    );
    api_tests::create_secret(&client, &name, &secret).await;
    let server = start_with(|cmd| {
        cmd.env_remove("MONGO_URI")
            .env_remove("JWT_SECRET_KEY")
            .env_remove("SESSION_SECRET_KEY")
            .env("SECRET_ID", &name)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &endpoint);
    });
    assert!(server.banner.contains("MongoDB"), "{}", server.banner);
    seed_sequence_then_failures(&server).await;
}

/// Reads the dev server's stdout line by line on a thread of its own.
fn lines_of(child: &mut api_tests::Process) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test]
async fn on_every_interface_tokens_name_the_address_a_request_came_in_on_and_each_request_logs_a_line()
 {
    let port = api_tests::free_port();
    let mut child = api_tests::Process(
        std::process::Command::new(bin())
            .current_dir(std::env::temp_dir())
            .env("HOST", "0.0.0.0")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "info")
            .env_remove("MONGO_URI")
            .env_remove("JWT_ISSUER")
            .env_remove("DEV_SERVER_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(&mut child);
    let banner = lines
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap();
    assert!(banner.contains("set JWT_ISSUER to name one"), "{banner}");
    let http = reqwest::Client::new();
    let via = |host: &str, path: &str| {
        http.get(format!("http://127.0.0.1:{port}{path}"))
            .header("Host", format!("{host}:{port}"))
    };
    // Discovery names the address it was asked through, as a phone on the LAN would use it.
    for host in ["127.0.0.1", "localhost"] {
        let d: Value = via(host, "/.well-known/openid-configuration")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(d["issuer"], format!("http://{host}:{port}"));
    }
    let base = format!("http://127.0.0.1:{port}");
    let l = api_tests::dev_server::signed_in_over_http(&http, &base, "2025550177").await;
    let id = l["user_id"]["$oid"].as_str().unwrap().to_owned();
    let token = l["token"].as_str().unwrap().to_owned();
    let session = l["session_token"].as_str().unwrap().to_owned();
    let get = |host: &str| {
        via(host, "/user")
            .header("Authorization", token.as_str())
            .header("Session-Token", session.as_str())
            .send()
    };
    assert_eq!(get("127.0.0.1").await.unwrap().status(), 200);
    assert_eq!(
        get("localhost").await.unwrap().status(),
        401,
        "another issuer"
    );
    // Piped, the log is JSON: one line per request, with method, path, status, time, user.
    let wanted = |l: &Value| {
        l["target"] == "request"
            && l["path"] == "/user"
            && l["status"] == 200
            && l["user"] == id.as_str()
    };
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(5)) {
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if wanted(&v) {
            assert_eq!(v["method"], "GET");
            assert!(v["duration_ms"].as_f64().is_some());
            return;
        }
        seen.push(line);
    }
    panic!("no request line for GET /user: {seen:#?}");
}

#[tokio::test]
async fn the_example_environment_file_copied_as_it_is_serves_the_seed_sequence() {
    let dir = std::env::temp_dir().join(format!("env-example-{}", api_tests::fresh_db()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        api_tests::root().join(".env.development.example"),
        dir.join(".env.development"),
    )
    .unwrap();
    let server = start_with(|cmd| {
        // Nothing else set: what a newcomer has after copying the file.
        cmd.current_dir(&dir);
        for name in [
            "MONGO_URI",
            "JWT_ALGORITHM",
            "JWT_SECRET_KEY",
            "SESSION_SECRET_KEY",
            "JWT_PRIVATE_KEY",
            "JWT_ISSUER",
        ] {
            cmd.env_remove(name);
        }
    });
    assert!(server.banner.contains("embedded"), "{}", server.banner);
    let http = reqwest::Client::new();
    let l = api_tests::dev_server::signed_in_over_http(&http, &server.base, "2025550188").await;
    let token = l["token"].as_str().unwrap();
    assert!(token.starts_with("eyJ"), "{l}");
    let r = http
        .get(format!("{}/user", server.base))
        .header("Authorization", token)
        .header("Session-Token", l["session_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}
