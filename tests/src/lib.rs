//! Test support: the servers the setup started, a fresh database per test, and API Gateway
//! events from `events/` fed through the shared handlers.
#![allow(clippy::unwrap_used)]

pub mod bus;
pub mod dev_server;
pub mod lambda_watch;
pub mod load;
pub mod oidc;
pub mod passkey;
pub mod runtime;

mod aws;
mod events;
mod proxy;

pub use aws::*;
pub use events::*;
pub use proxy::*;

use std::{path::PathBuf, sync::Arc};

use adapters::mongo::{MongoOptions, MongoStore};
use aws_sdk_secretsmanager::Client as SecretsClient;
use domain::store::{Store, memory::MemoryStore};
use domain::{
    clock::{Clock, ManualClock, SystemClock},
    config::{JwtKey, KeySet, KeyVersion, Secret, Settings, Vars},
};
use edge::{State, state::StoreKind};
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde_json::Value;

/// Log output of the whole test process, in memory.
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Everything logged so far, by every test of the process.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

/// The process-wide log capture, installed on first use as the global subscriber (JSON lines,
/// as the functions write them). Process-wide because tracing caches per-callsite interest
/// process-wide: a capture scoped to one test races with other tests hitting the same
/// callsites without it.
pub fn logs() -> &'static Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .unwrap_or_else(|e| panic!("a global subscriber was already set: {e}"));
        logs
    })
}

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
    let events = settings.events.enabled();
    let (store, kind): (Arc<dyn Store>, _) = match backend {
        Backend::Mongo => (
            Arc::new(mongo_store(&db).await.with_events(events)),
            StoreKind::Mongo,
        ),
        Backend::Memory => (
            Arc::new(MemoryStore::new().with_events(events)),
            StoreKind::Embedded,
        ),
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
    Answer::of(edge::handlers::route(state, request(ev)).await)
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

impl Login {
    /// The tokens of a login answer; panics unless it is a 200.
    pub fn of(a: &Answer) -> Self {
        assert_eq!(a.status, 200, "login failed: {:?}", a.body);
        Self {
            id: a.body["user_id"]["$oid"].as_str().unwrap().to_owned(),
            token: a.body["token"].as_str().unwrap().to_owned(),
            session_token: a.body["session_token"].as_str().unwrap().to_owned(),
        }
    }
}

/// Signs up `phone` and logs in.
pub async fn signed_in(state: &State, phone: &str) -> Login {
    let a = call(state, &with_body(event("signup"), &signup_body(phone))).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    login(state, phone, "securepassword123").await
}

/// Logs in; panics unless 200.
pub async fn login(state: &State, phone: &str, password: &str) -> Login {
    Login::of(&login_status(state, phone, password).await)
}

/// A login attempt's answer, whatever it is.
pub async fn login_status(state: &State, phone: &str, password: &str) -> Answer {
    call(
        state,
        &with_body(
            event("login"),
            &serde_json::json!({"phone": phone, "password": password}),
        ),
    )
    .await
}

/// The API with a state on a fresh database and a clock the test moves: what most tests
/// need, with one method per route.
pub struct TestApp {
    pub state: State,
    pub clock: Arc<ManualClock>,
}

impl TestApp {
    /// On a fresh MongoDB database, default settings.
    pub async fn mongo() -> Self {
        Self::with(Backend::Mongo, |_| {}).await
    }

    /// On `backend`, with settings from the test variables changed by `vars`.
    pub async fn with(backend: Backend, vars: impl FnOnce(&mut Vars)) -> Self {
        let mut v = self::vars();
        vars(&mut v);
        let (state, clock) = state_on(backend, |db| {
            v.set("DB_NAME", db);
            Settings::from_vars(&v).unwrap()
        })
        .await;
        Self { state, clock }
    }

    /// Another instance (its own store client and caches) on this app's database and clock,
    /// as a second Lambda instance would be.
    pub async fn second_instance(&self) -> Self {
        let store = mongo_store(&self.state.settings.db_name)
            .await
            .with_events(self.state.settings.events.enabled());
        let state = State::new(
            self.state.settings.clone(),
            Arc::new(store),
            StoreKind::Mongo,
            self.clock.clone() as Arc<dyn Clock>,
        )
        .unwrap();
        Self {
            state,
            clock: self.clock.clone(),
        }
    }

    /// This app with passkeys on (the `passkeys` function's relying party).
    pub fn with_passkeys(self, passkeys: domain::passkey::Passkeys) -> Self {
        Self {
            state: self.state.with_passkeys(Some(passkeys)),
            clock: self.clock,
        }
    }

    /// Moves the clock to the start of the next day (so of an hour too): a test that counts
    /// against a fixed hourly or daily window then stays in one window whatever the time of
    /// day it runs (a window boundary between its requests would reset the count).
    pub fn at_start_of_a_day(&self) {
        use domain::clock::Clock;
        let now = self.clock.now();
        self.clock.advance(86_400 - now.rem_euclid(86_400));
    }

    /// Routes one event.
    pub async fn call(&self, ev: &Value) -> Answer {
        call(&self.state, ev).await
    }

    /// POST /signup of the seed body with `phone`.
    pub async fn signup(&self, phone: &str) -> Answer {
        self.call(&with_body(event("signup"), &signup_body(phone)))
            .await
    }

    /// Signs up `phone` and logs in (the seed password).
    pub async fn signed_in(&self, phone: &str) -> Login {
        signed_in(&self.state, phone).await
    }

    /// POST /login, whatever it answers.
    pub async fn login(&self, phone: &str, password: &str) -> Answer {
        login_status(&self.state, phone, password).await
    }

    /// PUT /user with `fields` beside the caller's `_id`.
    pub async fn put_user(&self, login: &Login, fields: Value) -> Answer {
        self.call(&update_event(login, fields)).await
    }

    /// GET /user.
    pub async fn get_user(&self, login: &Login) -> Answer {
        self.call(&with_auth(
            event("get_user"),
            &login.token,
            &login.session_token,
        ))
        .await
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

/// A child process that is killed (and reaped) when dropped, so a failing test leaves no
/// server behind.
pub struct Process(pub std::process::Child);

impl std::ops::Deref for Process {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// A MongoDB store on `db` reached through `uri` (a proxy), short timeouts.
pub async fn store_at(uri: &str, db: &str) -> MongoStore {
    let opts = MongoOptions {
        server_selection_timeout: std::time::Duration::from_millis(500),
        connect_timeout: std::time::Duration::from_millis(500),
        ..MongoOptions::default()
    };
    let client = MongoStore::client(uri, &opts).await.unwrap();
    MongoStore::new(&client, db, "User", &opts)
}

/// Runs the `user-admin` tool against `db` on the test server, with no keys configured (it
/// makes throwaway ones); (exit code, stdout lines as JSON, stderr).
pub fn user_admin(db: &str, args: &[&str]) -> (i32, Vec<Value>, String) {
    user_admin_with(db, &[], args)
}

/// [`user_admin`] with `env` added (events settings, say).
pub fn user_admin_with(
    db: &str,
    env: &[(String, String)],
    args: &[&str],
) -> (i32, Vec<Value>, String) {
    let out = std::process::Command::new(runtime::binary("user-admin"))
        .args(args)
        .envs(env.iter().cloned())
        .env("MONGO_URI", mongo_uri())
        .env("DB_NAME", db)
        .env("USER_ADMIN_ACTOR", "cli:test-operator")
        .env_remove("SECRET_ID")
        .env_remove("JWT_SECRET_KEY")
        .env_remove("SESSION_SECRET_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An HS256 token over exactly this header and these claims, signed with `key` (tokens the
/// server must refuse, or must accept only under the right key).
pub fn hs256_token(header: &Value, claims: &Value, key: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use hmac::Mac;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap();
    m.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    )
}

/// PUT /user (a last-name change) with `jwt` in place of the login's own JWT and the login's
/// session token: the status.
pub async fn put_with_jwt(state: &State, l: &Login, jwt: &str) -> u16 {
    let ev = with_auth(
        update_event(l, serde_json::json!({"last_name": "X"})),
        jwt,
        &l.session_token,
    );
    call(state, &ev).await.status.as_u16()
}

/// Every SMS moto recorded, oldest first, whatever the account/region nesting of its data dump.
pub async fn moto_sms() -> Vec<Value> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", aws_endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    fn collect(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Array(items) if items.iter().any(|i| i.get("phone_number").is_some()) => {
                out.extend(items.iter().cloned())
            }
            Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            Value::Object(m) => m.values().for_each(|i| collect(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    collect(&data["sns"]["SMS"], &mut out);
    out
}

/// The six-digit code in an SMS text; panics if there is none.
pub fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_owned()
}

/// The length of the HTTP/1.1 message at the start of `buf` (head and `Content-Length` body),
/// once all of it has arrived.
pub fn http_message_len(buf: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(buf);
    let end = text.find("\r\n\r\n")?;
    let body: usize = text[..end]
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= end + 4 + body).then_some(end + 4 + body)
}

/// The TOTP code pyotp (RFC 6238, an implementation independent of this service's) makes for
/// the base32 `secret` at Unix time `at`. `TEST_PYTHON` (set by scripts/servers.sh) names a
/// Python with pyotp installed.
pub fn totp_code(secret: &str, at: i64) -> String {
    let python = std::env::var("TEST_PYTHON")
        .expect("TEST_PYTHON: a Python with pyotp (scripts/servers.sh sets it)");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &at.to_string(),
        ])
        .output()
        .expect("run pyotp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
