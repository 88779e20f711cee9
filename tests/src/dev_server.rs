//! Starts the dev-server binary on a free port for end-to-end tests, load tests and benches.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

/// The dev-server binary of the debug build, found as the function binaries are
/// (`scripts/test` builds every binary before testing).
pub fn bin() -> std::path::PathBuf {
    crate::runtime::binary("dev-server")
}

/// A running dev server; killed on drop.
pub struct Server {
    pub child: crate::Process,
    pub base: String,
    /// The first line it printed (says which store it uses).
    pub banner: String,
}

/// Starts `bin` on a free loopback port in a directory without a `.env.development`, with a
/// fresh database name; `configure` adds the rest of the environment.
pub fn start(bin: &Path, configure: impl FnOnce(&mut Command)) -> Server {
    let port = crate::free_port();
    let mut cmd = Command::new(bin);
    cmd.current_dir(std::env::temp_dir())
        .env("PORT", port.to_string())
        .env("DB_NAME", crate::fresh_db())
        .env("RUST_LOG", "warn")
        // The test keys are HMAC keys; `configure` may remove this for RS256.
        .env("JWT_ALGORITHM", "HS256")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    configure(&mut cmd);
    let mut child = crate::Process(cmd.spawn().expect("dev-server starts"));
    let mut banner = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut banner);
    }
    assert!(
        banner.contains("listening"),
        "dev-server did not start: {banner}"
    );
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        banner,
    }
}

/// Starts `bin` with the test keys, on MongoDB when `mongo`, else on the embedded store.
pub fn start_with_keys(bin: &Path, mongo: bool) -> Server {
    start(bin, |cmd| {
        cmd.env("JWT_SECRET_KEY", crate::JWT_KEY)
            .env("SESSION_SECRET_KEY", crate::SESSION_KEY);
        if mongo {
            cmd.env("MONGO_URI", crate::mongo_uri());
        } else {
            cmd.env_remove("MONGO_URI");
        }
    })
}

/// A user signed up and logged in over HTTP: id, JWT, session token.
pub type HttpUser = (String, String, String);

/// Logs `phone` in (the test password) on the server at `base`: the answer's JSON.
pub async fn login_over_http(http: &reqwest::Client, base: &str, phone: &str) -> serde_json::Value {
    http.post(format!("{base}/login"))
        .json(&serde_json::json!({"phone": phone, "password": "securepassword123"}))
        .send()
        .await
        .expect("login sent")
        .json()
        .await
        .expect("login answered JSON")
}

/// Signs `phone` up (201 or panic) and logs it in on the server at `base`: the login's JSON.
pub async fn signed_in_over_http(
    http: &reqwest::Client,
    base: &str,
    phone: &str,
) -> serde_json::Value {
    let status = http
        .post(format!("{base}/signup"))
        .json(&crate::signup_body(phone))
        .send()
        .await
        .expect("signup sent")
        .status();
    assert_eq!(status, 201, "signup of {phone}");
    login_over_http(http, base, phone).await
}

/// Signs up and logs in one user per phone on the server at `base`.
pub async fn sign_up_users(
    http: &reqwest::Client,
    base: &str,
    phones: impl IntoIterator<Item = String>,
) -> Vec<HttpUser> {
    let mut users = Vec::new();
    for phone in phones {
        let login = signed_in_over_http(http, base, &phone).await;
        let field = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        users.push((
            field(&login["user_id"]["$oid"]),
            field(&login["token"]),
            field(&login["session_token"]),
        ));
    }
    users
}

/// One authenticated PUT /user changing the last name; the status, or 0 if it never arrived.
pub async fn put_last_name(
    http: &reqwest::Client,
    base: &str,
    user: &HttpUser,
    last_name: &str,
) -> u16 {
    let (id, jwt, st) = user;
    let body = serde_json::json!({"_id": {"$oid": id}, "last_name": last_name});
    match http
        .put(format!("{base}/user"))
        .header("Authorization", jwt)
        .header("Session-Token", st)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// A dev server signing RS256 with fixture key `a`, on the test MongoDB server, its issuer the
/// URL it is reached on: what the JWT-authorizer example routes need.
pub fn start_rs256() -> Server {
    start(&bin(), |cmd| {
        cmd.env("JWT_ALGORITHM", "RS256")
            .env("JWT_PRIVATE_KEY", crate::rsa_pem("a"))
            .env("SESSION_SECRET_KEY", crate::SESSION_KEY)
            .env("MONGO_URI", crate::mongo_uri())
            .env_remove("JWT_ISSUER")
            .env_remove("SECRET_ID");
    })
}

/// GET `url` with `token` as the bearer: the status and the JSON body (null if none).
pub async fn get_as(http: &reqwest::Client, url: &str, token: &str) -> (u16, serde_json::Value) {
    let resp = http
        .get(url)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("request sent");
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// POST `body` as JSON to `url`; the JSON answer (null if none).
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    http.post(url)
        .json(body)
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .unwrap_or(serde_json::Value::Null)
}

/// The JSON at `url` (a GET without credentials).
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url)
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .unwrap_or(serde_json::Value::Null)
}
