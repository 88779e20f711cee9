//! Test support: the servers the setup started, a fresh database per test, and API Gateway
//! events from `events/` fed through the shared handlers.
#![allow(clippy::unwrap_used)]

pub mod dev_server;
pub mod load;
pub mod runtime;

use std::{path::PathBuf, sync::Arc};

use lambda_http::{Body, Request, Response, http::StatusCode};
use serde_json::Value;
use shared::{
    State,
    clock::{Clock, ManualClock, SystemClock},
    config::{JwtKey, KeySet, KeyVersion, Secret, Settings, Vars},
    state::StoreKind,
    store::{
        Store,
        memory::MemoryStore,
        mongo::{MongoOptions, MongoStore},
    },
};

/// Keys used by every test state (32+ bytes, as production requires).
pub const JWT_KEY: &str = "test-jwt-key-0123456789abcdef0123456789";
pub const SESSION_KEY: &str = "test-session-key-0123456789abcdef01234";

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// URI of the MongoDB-protocol server the test setup started (`scripts/test`).
pub fn mongo_uri() -> String {
    std::env::var("TEST_MONGO_URI").unwrap_or_else(|_| {
        panic!("TEST_MONGO_URI is not set: run the tests with scripts/test, which starts the database server")
    })
}

/// A database name no other test uses.
pub fn fresh_db() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    format!(
        "t_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Variables a test state is built from: HS256 with the fixed keys above (the attack tests
/// sign tokens with them by hand); [`rsa_vars`] for RS256.
pub fn vars() -> Vars {
    Vars::from_pairs([
        ("JWT_ALGORITHM", "HS256"),
        ("JWT_SECRET_KEY", JWT_KEY),
        ("SESSION_SECRET_KEY", SESSION_KEY),
    ])
}

/// Test settings: fixed keys, the given database.
pub fn settings(db: &str) -> Settings {
    let mut v = vars();
    v.set("DB_NAME", db);
    Settings::from_vars(&v).unwrap()
}

/// Settings with an explicit key set (rotation tests).
pub fn settings_with_keys(db: &str, keys: KeySet) -> Settings {
    let mut v = vars();
    v.set("DB_NAME", db);
    Settings::with_keys(&v, keys, None).unwrap()
}

/// One key version from fixed strings.
pub fn key_version(kid: &str, jwt: &str, session: &str) -> KeyVersion {
    KeyVersion {
        kid: kid.into(),
        jwt: JwtKey::Hs256(Secret::new(jwt.as_bytes())),
        session: Secret::new(session.as_bytes()),
    }
}

/// A MongoDB store on a fresh database, indexes created.
pub async fn mongo_store(db: &str) -> MongoStore {
    let opts = MongoOptions::default();
    let client = MongoStore::client(&mongo_uri(), &opts).await.unwrap();
    let store = MongoStore::new(&client, db, "User", &opts);
    store.ensure_indexes().await.unwrap();
    store
}

/// Which store a test state runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Mongo,
    Memory,
}

/// A state on a fresh database of `backend`, with a clock the test controls.
pub async fn state_on(
    backend: Backend,
    settings_for: impl FnOnce(&str) -> Settings,
) -> (State, Arc<ManualClock>) {
    let db = fresh_db();
    let settings = settings_for(&db);
    let (store, kind): (Arc<dyn Store>, _) = match backend {
        Backend::Mongo => (Arc::new(mongo_store(&db).await), StoreKind::Mongo),
        Backend::Memory => (Arc::new(MemoryStore::new()), StoreKind::Embedded),
    };
    let clock = Arc::new(ManualClock::new());
    let state = State::new(settings, store, kind, clock.clone() as Arc<dyn Clock>).unwrap();
    (state, clock)
}

/// A state on a fresh MongoDB database.
pub async fn mongo_state() -> (State, Arc<ManualClock>) {
    state_on(Backend::Mongo, settings).await
}

/// The system clock, for states that need real time.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// An event from `events/<name>.json`.
pub fn event(name: &str) -> Value {
    let path = root().join("events").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Sets the event's JSON body.
pub fn with_body(mut ev: Value, body: &Value) -> Value {
    ev["body"] = Value::String(body.to_string());
    ev
}

/// Sets the event's raw body text.
pub fn with_raw_body(mut ev: Value, body: &str) -> Value {
    ev["body"] = Value::String(body.to_owned());
    ev
}

/// Sets (or with `None` removes) one header.
pub fn with_header(mut ev: Value, name: &str, value: Option<&str>) -> Value {
    let headers = ev["headers"].as_object_mut().unwrap();
    match value {
        Some(v) => headers.insert(name.to_owned(), Value::String(v.to_owned())),
        None => headers.remove(name),
    };
    ev
}

/// Sets the `Authorization` and `Session-Token` headers.
pub fn with_auth(ev: Value, authorization: &str, session_token: &str) -> Value {
    let ev = with_header(ev, "authorization", Some(authorization));
    with_header(ev, "session-token", Some(session_token))
}

/// Turns an event into the request lambda_http would hand a function.
pub fn request(ev: &Value) -> Request {
    lambda_http::request::from_str(&ev.to_string()).unwrap()
}

/// What a handler answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: lambda_http::http::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Reads a handler response.
    pub fn of(resp: Response<Body>) -> Self {
        let (parts, body) = resp.into_parts();
        let body = match body {
            Body::Text(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            Body::Binary(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// The problem's `code`, if this is an error.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The Content-Type header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Feeds an event through the router, as API Gateway plus the functions would.
pub async fn call(state: &State, ev: &Value) -> Answer {
    Answer::of(shared::handlers::route(state, request(ev)).await)
}

/// A signup body for `phone`.
pub fn signup_body(phone: &str) -> Value {
    serde_json::json!({"first_name": "John", "middle_name": "Doe", "last_name": "Smith",
                       "password": "securepassword123", "phone": phone})
}

/// Tokens of a logged-in user.
#[derive(Debug, Clone)]
pub struct Login {
    pub id: String,
    pub token: String,
    pub session_token: String,
}

/// Signs up `phone` and logs in.
pub async fn signed_in(state: &State, phone: &str) -> Login {
    let a = call(state, &with_body(event("signup"), &signup_body(phone))).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    login(state, phone, "securepassword123").await
}

/// Logs in; panics unless 200.
pub async fn login(state: &State, phone: &str, password: &str) -> Login {
    let a = call(
        state,
        &with_body(
            event("login"),
            &serde_json::json!({"phone": phone, "password": password}),
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    Login {
        id: a.body["user_id"]["$oid"].as_str().unwrap().to_owned(),
        token: a.body["token"].as_str().unwrap().to_owned(),
        session_token: a.body["session_token"].as_str().unwrap().to_owned(),
    }
}

/// A PUT /user event for `login` with `fields` added to the `_id` body.
pub fn update_event(login: &Login, fields: Value) -> Value {
    let mut body = serde_json::json!({"_id": {"$oid": login.id}});
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    with_auth(
        with_body(event("update"), &body),
        &login.token,
        &login.session_token,
    )
}

/// Endpoint of the AWS API emulator the test setup started.
pub fn aws_endpoint() -> String {
    std::env::var("TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("TEST_AWS_ENDPOINT is not set: run the tests with scripts/test, which starts the AWS emulator")
    })
}

/// A Secrets Manager client for the emulator at `endpoint`.
pub async fn secrets_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .http_client(shared::secrets::https_client())
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

/// A secret JSON with these keys and the test database URI.
pub fn secret_json(jwt: &str, session: &str) -> String {
    serde_json::json!({"MONGO_URI": mongo_uri(), "JWT_SECRET_KEY": jwt, "SESSION_SECRET_KEY": session}).to_string()
}

/// Creates secret `name` holding `value`; returns its version id (the JWT `kid`).
pub async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> String {
    let out = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    out.version_id().unwrap().to_owned()
}

/// Stores a new AWSCURRENT version (the old one becomes AWSPREVIOUS); returns its version id.
pub async fn rotate_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> String {
    let out = client
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    out.version_id().unwrap().to_owned()
}

/// Variables that point the state at secret `name` in the emulator at `endpoint` (HS256, as
/// [`secret_json`] holds HMAC keys; remove `JWT_ALGORITHM` for RS256).
pub fn secret_vars(name: &str, endpoint: &str) -> Vars {
    let mut v = Vars::from_pairs([
        ("SECRET_ID", name),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("JWT_ALGORITHM", "HS256"),
    ]);
    v.set("DB_NAME", fresh_db());
    v
}

/// A test-only RSA private key from `tests/fixtures/rsa-<name>.pem` (PKCS#8 PEM).
pub fn rsa_pem(name: &str) -> String {
    std::fs::read_to_string(
        root()
            .join("tests/fixtures")
            .join(format!("rsa-{name}.pem")),
    )
    .unwrap()
}

/// Variables for an RS256 test state signing with fixture key `name`.
pub fn rsa_vars(name: &str) -> Vars {
    Vars::from_pairs([
        ("JWT_PRIVATE_KEY", rsa_pem(name)),
        ("SESSION_SECRET_KEY", SESSION_KEY.to_owned()),
    ])
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Documents in the users collection of `db` matching `filter`, read straight from the server
/// (not through the store under test).
pub async fn count_users(db: &str, filter: mongodb::bson::Document) -> u64 {
    mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(db)
        .collection::<mongodb::bson::Document>("User")
        .count_documents(filter)
        .await
        .unwrap()
}
