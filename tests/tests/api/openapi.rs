//! `openapi.yaml` held against the code. Its routes are the router's and the template's; its
//! request bodies are the schema files the server compiles, and the routes accept exactly
//! what those schemas accept; its problem codes are exactly `ApiError`'s; every (route,
//! status, code) it documents is produced by the shared handlers against MongoDB; and every
//! response of a full flow matches the documented status, media type, body schema and headers.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use adapters::mongo::{MongoOptions, MongoStore};
use api_tests::{
    passkey::{Authenticator, ORIGIN, relying_party},
    *,
};
use domain::{
    clock::{Clock, ManualClock},
    types::UserId,
};
use edge::{State, error::ApiError, routes::Endpoint, schema::SOURCES, state::StoreKind};
use jsonschema::{Draft, Validator};
use mongodb::bson::{doc, oid::ObjectId};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Reading the document
// ---------------------------------------------------------------------------------------------

const OPERATION_KEYS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `openapi.yaml`, parsed.
fn doc() -> Value {
    let text = std::fs::read_to_string(root().join("openapi.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("openapi.yaml: {e}"))
}

/// A route as (METHOD, path).
type RouteKey = (String, String);

/// Every operation of the document by (METHOD, path).
fn operations(doc: &Value) -> BTreeMap<RouteKey, Value> {
    let mut ops = BTreeMap::new();
    let paths = doc["paths"].as_object().expect("openapi.yaml has no paths");
    for (path, item) in paths {
        for (key, op) in item.as_object().unwrap() {
            if OPERATION_KEYS.contains(&key.as_str()) {
                ops.insert((key.to_uppercase(), path.clone()), op.clone());
            }
        }
    }
    ops
}

/// Follows local `$ref`s (`#/...`) until a value without one.
fn deref<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with('#') => {
                v = doc
                    .pointer(&r[1..])
                    .unwrap_or_else(|| panic!("openapi.yaml: unresolved $ref {r}"));
            }
            _ => return v,
        }
    }
    panic!("openapi.yaml: $ref chain too long")
}

/// The documented response of (method, path) for `status`, `$ref`s followed.
fn response<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> Option<&'a Value> {
    let op = doc["paths"][path].get(method.to_lowercase())?;
    op["responses"]
        .get(status.to_string())
        .map(|r| deref(doc, r))
}

/// A validator for `schema`, a schema inside the document: it is wrapped in a root that holds
/// the document's `components/schemas`, so its `#/components/schemas/X` references resolve.
fn validator(doc: &Value, schema: &Value) -> Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": {"schemas": doc["components"]["schemas"]},
        "allOf": [schema],
    });
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(&root)
        .unwrap_or_else(|e| panic!("openapi.yaml schema {schema}: {e}"))
}

/// The problem codes a documented error response allows: the `code` `const`/`enum` that
/// narrows `Problem` in its schema's `allOf`.
fn response_codes(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = deref(doc, schema);
    let parts: Vec<&Value> = match schema.get("allOf").and_then(Value::as_array) {
        Some(all) => all.iter().map(|s| deref(doc, s)).collect(),
        None => vec![schema],
    };
    let mut codes = BTreeSet::new();
    for part in parts {
        let code = &part["properties"]["code"];
        if let Some(c) = code.get("const").and_then(Value::as_str) {
            codes.insert(c.to_owned());
        }
        for c in code
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            codes.insert(c.as_str().unwrap().to_owned());
        }
    }
    codes
}

/// Every documented (METHOD, path, status, code): `code` is empty for a success, and an error
/// response contributes one entry per problem code it allows.
fn documented(doc: &Value) -> BTreeSet<(String, String, u16, String)> {
    let mut out = BTreeSet::new();
    for ((method, path), op) in operations(doc) {
        let responses = op["responses"]
            .as_object()
            .expect("operation without responses");
        for (status, r) in responses {
            let status: u16 = status
                .parse()
                .unwrap_or_else(|_| panic!("{method} {path}: status {status} is not a number"));
            let r = deref(doc, r);
            // API Gateway's own answers never reach a handler (the dev server's stand-in is
            // tested in `mfa`).
            if r["x-answered-by"] == "api-gateway" {
                continue;
            }
            match r["content"].get("application/problem+json") {
                Some(media) => {
                    let codes = response_codes(doc, &media["schema"]);
                    assert!(
                        !codes.is_empty(),
                        "{method} {path} {status}: the problem schema must narrow `code`"
                    );
                    for code in codes {
                        out.insert((method.clone(), path.clone(), status, code));
                    }
                }
                None => {
                    out.insert((method.clone(), path.clone(), status, String::new()));
                }
            }
        }
    }
    out
}

/// How `answer` (to METHOD `path`) disagrees with the document: an undocumented status, a
/// media type the response does not list, a body its schema refuses, or a documented header
/// missing or not matching its schema. Empty when they agree.
fn disagreements(doc: &Value, method: &str, path: &str, answer: &Answer) -> Vec<String> {
    let status = answer.status.as_u16();
    let Some(resp) = response(doc, method, path, status) else {
        return vec![format!("status {status} is not documented")];
    };
    let mut out = Vec::new();
    let media = answer
        .content_type()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    match resp.get("content").and_then(Value::as_object) {
        Some(content) => match content.get(&media) {
            Some(m) => {
                let v = validator(doc, &m["schema"]);
                out.extend(
                    v.iter_errors(&answer.body)
                        .map(|e| format!("body at {}: {e}", e.instance_path().as_str())),
                );
                if media == "application/problem+json" && answer.body["status"] != status {
                    out.push(format!(
                        "problem status {} in the body",
                        answer.body["status"]
                    ));
                }
            }
            None => out.push(format!(
                "media type {media:?} is not documented (documented: {:?})",
                content.keys().collect::<Vec<_>>()
            )),
        },
        None => {
            if !answer.body.is_null() || !media.is_empty() {
                out.push(format!(
                    "documented without a body, got {media:?} {}",
                    answer.body
                ));
            }
        }
    }
    for (name, header) in resp
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let header = deref(doc, header);
        let value = answer.headers.get(name.to_ascii_lowercase().as_str());
        let Some(value) = value else {
            if header["required"] == true {
                out.push(format!("required header {name} is missing"));
            }
            continue;
        };
        let text = value.to_str().unwrap_or("");
        let schema = &header["schema"];
        let instance = if schema["type"] == "integer" {
            match text.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => {
                    out.push(format!("header {name}: {text:?} is not an integer"));
                    continue;
                }
            }
        } else {
            json!(text)
        };
        let v = validator(doc, schema);
        out.extend(
            v.iter_errors(&instance)
                .map(|e| format!("header {name} {text:?}: {e}")),
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Driving the handlers
// ---------------------------------------------------------------------------------------------

fn without_body(mut ev: Value) -> Value {
    ev.as_object_mut().unwrap().remove("body");
    ev
}

/// A body over the 16 KiB limit.
fn huge(field: &str) -> Value {
    json!({ field: "x".repeat(20_000) })
}

/// The event for an admin route (METHOD, documented path) aimed at user `id`, and for the
/// phone search at `phone`; it carries an IAM identity as API Gateway's authorizer sets it.
fn admin_event_for(method: &str, path: &str, id: &str, phone: &str) -> Value {
    let mut ev = event_for(method, path);
    let raw = path.replace("{id}", id);
    ev["rawPath"] = Value::String(raw.clone());
    ev["requestContext"]["http"]["path"] = Value::String(raw);
    if path == "/admin/users" {
        ev["rawQueryString"] = Value::String(format!("phone={}", phone.replace('+', "%2B")));
        ev["queryStringParameters"] = json!({ "phone": phone });
    }
    ev
}

/// The same request as an unsigned one would arrive: no IAM identity (nor JWT authorizer
/// claims) in its context.
fn without_iam(mut ev: Value) -> Value {
    ev["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    ev
}

/// A user of its own for an admin call to act on: (id, phone).
async fn throwaway(state: &State) -> (String, String) {
    let phone = format!("+1202{:07}", unique() % 10_000_000);
    let a = call(
        state,
        &with_json_body(event_for("POST", "/signup"), &signup_body(&phone)),
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    (a.body["_id"]["$oid"].as_str().unwrap().to_owned(), phone)
}

/// The flows act as user 1234567890; a DELETE /user that succeeded brings them back.
async fn restore_if_deleted(state: &State, method: &str, path: &str, a: &Answer) {
    if method == "DELETE" && path == "/user" && a.status == 204 {
        signed_in(state, "1234567890").await;
    }
}

/// One request of a flow and what the handlers answered.
#[derive(Debug)]
struct Seen {
    what: &'static str,
    method: String,
    path: String,
    answer: Answer,
}

#[derive(Default)]
struct Flow {
    seen: Vec<Seen>,
}

impl Flow {
    /// Routes `ev` through the shared router and records the answer under the event's route.
    async fn send(&mut self, state: &State, what: &'static str, ev: Value) -> &Answer {
        let method = ev["requestContext"]["http"]["method"]
            .as_str()
            .unwrap()
            .to_owned();
        let raw = ev["rawPath"].as_str().unwrap();
        // Recorded under the documented path: `/admin/users/{id}`, not the id it was sent to.
        let path =
            Endpoint::find(&method, raw).map_or_else(|_| raw.to_owned(), |e| e.path().to_owned());
        let answer = call(state, &ev).await;
        self.seen.push(Seen {
            what,
            method,
            path,
            answer,
        });
        &self.seen.last().unwrap().answer
    }

    fn summary(&self) -> String {
        self.seen
            .iter()
            .map(|s| {
                format!(
                    "  {} {} -> {} {} ({})\n",
                    s.method,
                    s.path,
                    s.answer.status.as_u16(),
                    s.answer.code(),
                    s.what
                )
            })
            .collect()
    }
}

/// A state whose MongoDB cannot be reached: nothing listens on its port, and server selection
/// gives up quickly, so every store call fails as unavailable.
async fn unreachable_db_state() -> State {
    let opts = MongoOptions {
        server_selection_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..MongoOptions::default()
    };
    let uri = format!("mongodb://127.0.0.1:{}/?directConnection=true", free_port());
    let client = MongoStore::client(&uri, &opts).await.unwrap();
    let db = fresh_db();
    let store = MongoStore::new(&client, &db, "User", &opts);
    State::new(
        settings(&db),
        Arc::new(store),
        StoreKind::Mongo,
        Arc::new(ManualClock::new()) as Arc<dyn Clock>,
    )
    .unwrap()
}

/// A state on a fresh database whose `User` and login-attempt collections refuse every
/// insert (a collection validator no document satisfies): a database error that is not
/// unavailability.
async fn refusing_inserts_state() -> State {
    let db = fresh_db();
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    for collection in ["User", "User_login_attempts"] {
        client
            .database(&db)
            .create_collection(collection)
            .validator(doc! {"$jsonSchema": {"required": ["a_field_no_document_has"]}})
            .await
            .unwrap();
    }
    State::new(
        settings(&db),
        Arc::new(mongo_store(&db).await),
        StoreKind::Mongo,
        Arc::new(ManualClock::new()) as Arc<dyn Clock>,
    )
    .unwrap()
}

/// The id of the unreadable challenge in [`broken_documents_state`].
const BROKEN_CHALLENGE: &str = "QkJCQkJCQkJCQkJCQkJCQg";

/// A state on a fresh database holding user 3333333333 (logged in: the returned tokens), whose
/// user document is of another shape (read leniently: login still works) and whose session
/// the store cannot read.
async fn broken_documents_state() -> (State, Login) {
    let (broken, _) = mongo_state().await;
    let c = signed_in(&broken, "3333333333").await;
    let db = mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&broken.settings.db_name);
    db.collection::<mongodb::bson::Document>("User")
        .update_many(doc! {}, doc! {"$set": {"first_name": 42}})
        .await
        .unwrap();
    db.collection::<mongodb::bson::Document>("User_sessions")
        .update_many(doc! {}, doc! {"$set": {"expires_at": "not a date"}})
        .await
        .unwrap();
    // A second-factor challenge whose state is not what the flow wrote.
    db.collection::<mongodb::bson::Document>("User_ceremonies")
        .insert_one(doc! {"_id": BROKEN_CHALLENGE, "kind": "second_factor",
        "user": ObjectId::new(), "state": "not bytes", "expires": i64::MAX})
        .await
        .unwrap();
    // And provider sign-in states of the same kind.
    for id in [
        federation_flow::BROKEN_STATE_GET,
        federation_flow::BROKEN_STATE_POST,
    ] {
        db.collection::<mongodb::bson::Document>("User_ceremonies")
            .insert_one(doc! {"_id": id, "kind": "federated_login",
            "state": "not bytes", "expires": i64::MAX})
            .await
            .unwrap();
    }
    // And a passkey sign-in ceremony of the same kind.
    db.collection::<mongodb::bson::Document>("User_ceremonies")
        .insert_one(doc! {"_id": BROKEN_PK_CEREMONY, "kind": "passkey_login",
        "state": "not bytes", "expires": i64::MAX})
        .await
        .unwrap();
    (broken, c)
}

mod federation_flow;

/// The state a case of the flow runs on.
#[derive(Debug, Clone, Copy)]
enum On {
    /// A fresh MongoDB database, shared by the cases in order.
    Db,
    /// A database that cannot be reached (503).
    Down,
    /// A database that refuses every insert (500).
    Refusing,
    /// Documents the store cannot read (500).
    Broken,
    /// Phone verification required, a test number, one SMS per phone and hour.
    Strict,
    /// Phone verification required, two test numbers and the default SMS limits: a phone
    /// change that loses its number to another account.
    Change,
    /// Email verification required, test addresses: proof, unproven logins, an email change
    /// that loses its address to another account.
    Email,
    /// Second factors: a database and a clock of their own (steps and step-ups age).
    Mfa,
    /// `REQUIRE_MFA=off`.
    MfaOff,
    /// `REQUIRE_MFA=required`.
    MfaRequired,
    /// Passkeys on (at most one per account), with a clock of its own.
    Pk,
    /// A `pre_signup` hook that refuses every signup.
    Hooked,
    /// Identity providers on: a local OpenID provider (its tokens minted before the flow).
    Fed,
    /// The same providers, with no browser sign-in set up.
    FedNoBrowser,
}

/// Which login of the flow a case's 200 answer becomes.
#[derive(Debug, Clone, Copy)]
enum Keep {
    Nothing,
    A,
    B,
    /// The answer's `refresh_token` becomes the flow's refresh token.
    Refresh,
    /// The login of the [`On::Change`] cases.
    Changer,
    /// The login of the [`On::Email`] cases.
    Mailer,
    /// The login of the [`On::Mfa`] cases.
    MfaUser,
    /// A TOTP enrolment's id and secret.
    Enrolment,
    /// An answer's `token` replaces the [`On::Mfa`] login's (its session rose to AAL2).
    Raised,
    /// A sign-in's `mfa_token`.
    Challenge,
    /// The login of the [`On::MfaOff`] or [`On::MfaRequired`] cases.
    Other,
    /// The login of the [`On::Pk`] cases.
    PkUser,
    /// A passkey ceremony's id and options.
    Ceremony,
    /// A passkey registration: its id, and its `token` replaces the passkey user's.
    PkEnrolled,
    /// An answer's `token` replaces the passkey user's (a step-up).
    PkRaised,
    /// A sign-in's `mfa_token`, for a passkey second factor.
    PkChallenge,
    /// The account a provider sign-in made (its answer is a 201).
    Fed,
}

/// The logins cases use: `a` and `b` come from the flow's own logins, `nobody` holds a valid
/// JWT for the unreachable database (so the session lookup is what fails), `c` is the user of
/// the broken documents.
struct Ctx {
    a: Option<Login>,
    b: Option<Login>,
    refresh: Option<String>,
    nobody: Login,
    c: Login,
    /// A user made before the flow, signed in for the passkeys-off cases.
    plain: Login,
    /// Users made before the flow for the DELETE /user cases: `d` fails, `e` is deleted.
    d: Login,
    e: Login,
    /// A user for the admin cases to act on: (id, phone).
    target: (String, String),
    /// A user document the refusing database already holds (its updates are refused).
    held: String,
    changer: Option<Login>,
    mailer: Option<Login>,
    mfa: Option<Login>,
    /// (enrolment id, base32 secret) of each TOTP enrolment started.
    enrolments: Vec<(String, String)>,
    challenge: Option<String>,
    other: Option<Login>,
    /// The [`On::Mfa`] clock's time as the case is made (for TOTP codes).
    mfa_now: i64,
    /// The passkey cases' authenticator (it counts its signatures).
    auth: std::cell::RefCell<Authenticator>,
    pk: Option<Login>,
    /// (ceremony id, options JSON) of each passkey ceremony started.
    ceremonies: Vec<(String, String)>,
    pk_id: Option<String>,
    pk_challenge: Option<String>,
    /// The provider's tokens, by name (see `federation_flow::setup`).
    fed_tokens: std::collections::HashMap<&'static str, String>,
    /// The account a provider sign-in made.
    fed: Option<Login>,
    /// A password account on the federation database, to link and unlink with.
    fed_plain: Login,
}

impl Ctx {
    fn fed_token(&self, name: &str) -> String {
        self.fed_tokens
            .get(name)
            .unwrap_or_else(|| panic!("no token {name} minted"))
            .clone()
    }
    fn fed(&self) -> &Login {
        self.fed
            .as_ref()
            .expect("a case uses `fed` before the sign-in that keeps it")
    }
    fn a(&self) -> &Login {
        self.a
            .as_ref()
            .expect("a case uses `a` before the login that keeps it")
    }
    fn b(&self) -> &Login {
        self.b
            .as_ref()
            .expect("a case uses `b` before the login that keeps it")
    }
    fn mailer(&self) -> &Login {
        self.mailer
            .as_ref()
            .expect("a case uses `mailer` before the login that keeps it")
    }
    fn changer(&self) -> &Login {
        self.changer
            .as_ref()
            .expect("a case uses `changer` before the login that keeps it")
    }
    fn mfa(&self) -> &Login {
        self.mfa
            .as_ref()
            .expect("a case uses `mfa` before the login that keeps it")
    }
    fn other(&self) -> &Login {
        self.other
            .as_ref()
            .expect("a case uses `other` before the login that keeps it")
    }
    fn challenge(&self) -> &str {
        self.challenge
            .as_deref()
            .expect("a case uses the challenge before the login that keeps it")
    }
    /// The TOTP code of enrolment `i`'s secret now.
    fn code(&self, i: usize) -> String {
        totp_code(&self.enrolments[i].1, self.mfa_now)
    }
    fn pk(&self) -> &Login {
        self.pk
            .as_ref()
            .expect("a case uses `pk` before the login that keeps it")
    }
    fn pk_id(&self) -> &str {
        self.pk_id
            .as_deref()
            .expect("a case uses the passkey before its registration")
    }
    /// The registration answer to ceremony `i`, from the cases' authenticator.
    fn created(&self, i: usize) -> Value {
        let (id, options) = &self.ceremonies[i];
        let answer = self.auth.borrow_mut().create(options, ORIGIN);
        json!({"ceremony": id, "credential": serde_json::from_str::<Value>(&answer).unwrap()})
    }
    /// The assertion for ceremony `i`.
    fn asserted(&self, i: usize) -> Value {
        let (id, options) = &self.ceremonies[i];
        let answer = self.auth.borrow_mut().get(options, ORIGIN);
        json!({"ceremony": id, "credential": serde_json::from_str::<Value>(&answer).unwrap()})
    }
    fn refresh(&self) -> &str {
        self.refresh
            .as_deref()
            .expect("a case uses the refresh token before the answer that keeps it")
    }
}

/// One request of the flow: what it is, the state it runs on, the event, how many times it
/// is sent and which login its answer becomes.
struct Case {
    what: &'static str,
    on: On,
    request: fn(&Ctx) -> Value,
    times: usize,
    keep: Keep,
    /// Seconds the [`On::Mfa`] clock moves before the case.
    tick: i64,
}

/// A case sent once on the shared database.
fn case(what: &'static str, request: fn(&Ctx) -> Value) -> Case {
    Case {
        what,
        on: On::Db,
        request,
        times: 1,
        keep: Keep::Nothing,
        tick: 0,
    }
}

impl Case {
    fn on(self, on: On) -> Self {
        Self { on, ..self }
    }
    fn times(self, times: usize) -> Self {
        Self { times, ..self }
    }
    fn keep(self, keep: Keep) -> Self {
        Self { keep, ..self }
    }
    fn tick(self, tick: i64) -> Self {
        Self { tick, ..self }
    }
}

fn signup_ev() -> Value {
    event_for("POST", "/signup")
}
fn login_ev() -> Value {
    event_for("POST", "/login")
}
fn logout_ev() -> Value {
    event_for("POST", "/logout")
}
fn get_user_ev() -> Value {
    event_for("GET", "/user")
}
fn delete_ev() -> Value {
    event_for("DELETE", "/user")
}
/// DELETE /user as `l` with `current_password`.
fn delete_as(l: &Login, current_password: &str) -> Value {
    with_json_body(
        with_bearer(delete_ev(), l),
        &json!({ "current_password": current_password }),
    )
}
/// An admin route as API Gateway hands it on with an IAM identity, aimed at the target user.
fn admin(c: &Ctx, method: &str, path: &str) -> Value {
    admin_event_for(method, path, &c.target.0, &c.target.1)
}
fn refresh_ev() -> Value {
    event_for("POST", "/token/refresh")
}
/// POST `path` of `body` as JSON, under a request id of its own (a repeated request id is a
/// retry, which sends no second SMS).
fn code_route(path: &str, body: Value) -> Value {
    let mut ev = with_json_body(event_for("POST", path), &body);
    ev["requestContext"]["requestId"] = json!(format!("req-{}", unique()));
    ev
}
/// The flow's SMS test number and its fixed code.
const TEST_PHONE: &str = "+15555550100";
const TEST_CODE: &str = "123456";
/// The test number of the flow's state with verification required.
const STRICT_PHONE: &str = "+15555550101";
/// Test numbers of the [`On::Change`] cases: the changer's own, and the one it moves to.
const CHANGER_PHONE: &str = "+15555550102";
const CHANGE_TARGET: &str = "+15555550103";
/// Test addresses of the [`On::Email`] cases (fixed code [`TEST_CODE`]): a signup, one that
/// resends too soon, an email changer, and the address it moves to.
const MAIL_SIGNUP: &str = "signup@app.test";
const MAIL_SOON: &str = "soon@app.test";
const MAIL_CHANGER: &str = "changer@app.test";
const MAIL_TARGET: &str = "target@app.test";
/// An address the canonical form refuses though the schema admits it.
const MAIL_BAD: &str = "ann@example.123";
fn signup_by_email(email: &str) -> Value {
    json!({"first_name": "Ann", "last_name": "Lee", "password": PASSWORD, "email": email})
}
fn email_login(email: &str) -> Value {
    with_json_body(login_ev(), &json!({"email": email, "password": PASSWORD}))
}
/// POST /token/refresh of `token`.
fn refresh_with(token: &str) -> Value {
    with_json_body(refresh_ev(), &json!({"refresh_token": token}))
}
/// A well-formed refresh token for the session of `l`'s JWT, with a secret nobody issued.
fn forged_refresh(l: &Login) -> String {
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&l.token)
        .unwrap()
        .claims;
    format!("{}.{}", claims["sid"].as_str().unwrap(), "A".repeat(43))
}
/// POST /signup of `body` as JSON.
fn signup_of(body: &Value) -> Value {
    with_json_body(signup_ev(), body)
}
/// POST /login of these credentials as JSON.
fn login_as(phone: &str, password: &str) -> Value {
    with_json_body(login_ev(), &json!({"phone": phone, "password": password}))
}
/// POST /logout as `l`, with `body` as JSON if given.
fn logout_as(l: &Login, body: Option<Value>) -> Value {
    let ev = with_bearer(logout_ev(), l);
    match body {
        Some(b) => with_json_body(ev, &b),
        None => ev,
    }
}
/// GET /user as `l`.
fn profile_as(l: &Login) -> Value {
    with_bearer(get_user_ev(), l)
}
const MFA_PHONE: &str = "5550000701";
fn mfa_route(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    let ev = with_bearer(event_for(method, path), c.mfa());
    match body {
        Some(b) => with_json_body(ev, &b),
        None => ev,
    }
}
fn confirm_body(c: &Ctx, i: usize, code: &str) -> Value {
    json!({"enrolment": c.enrolments[i].0, "code": code})
}
fn second_factor(c: &Ctx, code: &str) -> Value {
    with_json_body(
        event_for("POST", "/login/mfa"),
        &json!({"mfa_token": c.challenge(), "code": code}),
    )
}
fn step_up(c: &Ctx, code: &str) -> Value {
    mfa_route(c, "POST", "/session/step-up", Some(json!({"code": code})))
}
fn as_nobody(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    let ev = with_bearer(event_for(method, path), &c.nobody);
    body.map_or_else(|| ev.clone(), |b| with_json_body(ev.clone(), &b))
}
fn as_broken(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    let ev = with_bearer(event_for(method, path), &c.c);
    body.map_or_else(|| ev.clone(), |b| with_json_body(ev.clone(), &b))
}
const PK_PHONE: &str = "5550000801";
/// PUT /admin/users/{id}/app-metadata of `body` (as JSON, if any), IAM-signed.
fn app_metadata(id: &str, body: Option<Value>) -> Value {
    let ev = admin_event_for("PUT", "/admin/users/{id}/app-metadata", id, "");
    body.map_or_else(|| ev.clone(), |b| with_json_body(ev.clone(), &b))
}
/// A passkey route (METHOD, documented path, `{id}` filled with `id`) as `l`, or with no
/// session, with `body` as JSON if given.
fn pk_event(method: &str, path: &str, id: &str, l: Option<&Login>, body: Option<Value>) -> Value {
    let mut ev = event_for(method, path);
    let raw = path.replace("{id}", id);
    ev["rawPath"] = Value::String(raw.clone());
    ev["requestContext"]["http"]["path"] = Value::String(raw);
    let ev = match l {
        Some(l) => with_bearer(ev, l),
        None => without_auth(ev),
    };
    body.map_or_else(|| ev.clone(), |b| with_json_body(ev.clone(), &b))
}
/// A passkey route as the passkey user, on its passkey.
fn pk_route(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    pk_event(
        method,
        path,
        c.pk_id.as_deref().unwrap_or("AAAA"),
        Some(c.pk()),
        body,
    )
}
/// A passkey route as the [`On::Mfa`] user (who has no passkey).
fn pk_as_mfa(c: &Ctx, method: &str, path: &str, body: Option<Value>) -> Value {
    pk_event(method, path, "AAAA", Some(c.mfa()), body)
}
/// A passkey route with no session.
fn pk_open(path: &str, body: Option<Value>) -> Value {
    pk_event("POST", path, "", None, body)
}
/// A body for a passkey finish route that its schema admits (an answer no ceremony expects).
fn pk_answer() -> Value {
    json!({"ceremony": "A".repeat(22), "credential": {"id": "AAAA", "type": "public-key", "response": {}}})
}
const BROKEN_PK_CEREMONY: &str = "UFBQUFBQUFBQUFBQUFBQUA";
const SEED_PHONE: &str = "1234567890";
const PASSWORD: &str = "securepassword123";
const CT: &str = "content-type";
fn wrong_current(l: &Login) -> Value {
    update_event(
        l,
        json!({"password": "a-new-password-1", "current_password": "not-the-password"}),
    )
}

/// Signup, login, GET and PUT /user and logout, each success and each failure the document
/// lists, in order. 503 comes from an unreachable database, 500 from documents the store
/// cannot read and from an insert the database refuses. One case a line: formatted by hand.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use On::*;
    vec![
        // POST /signup
        case("signup", |_| signup_of(&signup_body(SEED_PHONE))),
        case("signup of a taken phone, formatted", |_| signup_of(&signup_body("123-456-7890"))),
        case("signup without a middle name", |_| signup_of(&json!({"first_name": "Ann", "middle_name": null,
            "last_name": "Lee", "password": PASSWORD, "phone": "+1 (202) 555-0101"}))),
        case("signup with operator injection", |_| signup_of(&json!({"first_name": "J", "last_name": "S",
            "password": "longenough1", "phone": {"$ne": null}}))),
        case("signup with a common password", |_| signup_of(&json!({"first_name": "J", "last_name": "S",
            "password": "password123", "phone": "5550000001"}))),
        case("signup with malformed JSON", |_| with_raw_body(signup_ev(), "{\"first_name\": ")),
        case("signup over 16 KiB", |_| signup_of(&huge("first_name"))),
        case("signup without Content-Type", |_| with_header(signup_of(&signup_body("5550000002")), CT, None)),
        case("signup as text/plain", |_| with_header(signup_of(&signup_body("5550000003")), CT, Some("text/plain"))),
        // POST /login
        case("login", |_| login_as(SEED_PHONE, PASSWORD)).keep(Keep::A),
        case("login again, for its refresh token", |_| login_as(SEED_PHONE, PASSWORD)).keep(Keep::Refresh),
        case("login with a wrong password", |_| login_as(SEED_PHONE, "wrong-password")),
        case("login of an unknown phone", |_| login_as("9999999999", PASSWORD)),
        case("login with an unknown field", |_| with_json_body(login_ev(),
            &json!({"phone": SEED_PHONE, "password": "x", "admin": true}))),
        case("login with malformed JSON", |_| with_raw_body(login_ev(), "phone=1234567890")),
        case("login over 16 KiB", |_| with_json_body(login_ev(), &huge("password"))),
        case("login without Content-Type", |_| with_header(login_as(SEED_PHONE, PASSWORD), CT, None)),
        case("login failure towards the lock", |_| login_as("5550009999", "wrong-password")).times(5),
        case("login while locked", |_| login_as("5550009999", "wrong-password")),
        // GET /user
        case("profile with Bearer", |c| profile_as(c.a())),
        case("profile with the bare JWT", |c| with_auth(get_user_ev(), &c.a().token, &c.a().session_token)),
        case("profile without credentials", |_| without_auth(get_user_ev())),
        case("profile with another session's token", |c| with_auth(get_user_ev(), &c.a().token, &"A".repeat(43))),
        // GET /.well-known/jwks.json, /.well-known/openid-configuration
        case("jwks", |_| event_for("GET", "/.well-known/jwks.json")),
        case("openid configuration", |_| event_for("GET", "/.well-known/openid-configuration")),
        // GET /example/whoami (API Gateway's JWT authorizer in front)
        case("example whoami with the authorizer's claims", |_| event_for("GET", "/example/whoami")),
        case("example whoami reached without the authorizer", |_| without_iam(event_for("GET", "/example/whoami"))),
        // POST /token/refresh
        case("refresh", |c| refresh_with(c.refresh())).keep(Keep::Refresh),
        case("refresh with a forged secret", |c| refresh_with(&forged_refresh(c.a()))),
        case("refresh with a malformed token", |_| refresh_with("not-a-refresh-token")),
        case("refresh with malformed JSON", |_| with_raw_body(refresh_ev(), "{\"refresh_token\"")),
        case("refresh over 16 KiB", |_| with_json_body(refresh_ev(), &huge("refresh_token"))),
        case("refresh without Content-Type", |c| with_header(refresh_with(c.refresh()), CT, None)),
        // PUT /user
        case("signup of a second user", |_| signup_of(&signup_body("2222222222"))),
        case("login of the second user", |_| login_as("2222222222", PASSWORD)).keep(Keep::B),
        case("update names", |c| update_event(c.a(), json!({"last_name": "Smithers", "first_name": "Jon"}))),
        case("update removing the middle name", |c| update_event(c.a(), json!({"middle_name": null}))),
        case("update without credentials", |c| {
            with_header(update_event(c.a(), json!({"last_name": "X"})), "authorization", None)
        }),
        case("update with no field", |c| update_event(c.a(), json!({}))),
        case("update with a password and no current_password", |c| {
            update_event(c.a(), json!({"password": "a-new-password-1"}))
        }),
        case("update of the phone without current_password", |c| update_event(c.a(), json!({"phone": "5550000077"}))),
        case("update to a common password", |c| {
            update_event(c.a(), json!({"password": "password123", "current_password": PASSWORD}))
        }),
        case("update with malformed JSON", |c| with_raw_body(update_event(c.a(), json!({})), "{\"_id\"")),
        case("update of another user's _id", |c| {
            with_body(update_event(c.a(), json!({})), &json!({"_id": {"$oid": c.b().id}, "last_name": "Evil"}))
        }),
        case("update to a taken phone", |c| {
            update_event(c.a(), json!({"phone": "222-222-2222", "current_password": PASSWORD}))
        }),
        case("update over 16 KiB", |c| update_event(c.a(), huge("last_name"))),
        case("update without Content-Type", |c| with_header(update_event(c.a(), json!({"last_name": "X"})), CT, None)),
        case("password change with a wrong current_password", |c| wrong_current(c.b())).times(5),
        case("password change while locked", |c| wrong_current(c.b())),
        // DELETE /user
        case("delete without credentials", |_| with_json_body(without_auth(delete_ev()), &json!({"current_password": PASSWORD}))),
        case("delete without current_password", |c| with_json_body(with_bearer(delete_ev(), &c.d), &json!({}))),
        case("delete with malformed JSON", |c| with_header(with_raw_body(with_bearer(delete_ev(), &c.d), "{"), CT, Some("application/json"))),
        case("delete over 16 KiB", |c| with_json_body(with_bearer(delete_ev(), &c.d), &huge("current_password"))),
        case("delete as text/plain", |c| with_header(delete_as(&c.d, "x"), CT, Some("text/plain"))),
        case("delete with a wrong password", |c| delete_as(&c.d, "wrong-password")).times(5),
        case("delete while locked", |c| delete_as(&c.d, PASSWORD)),
        case("delete", |c| delete_as(&c.e, PASSWORD)),
        // Admin routes, with and without an IAM identity.
        case("admin find", |c| admin(c, "GET", "/admin/users")),
        case("admin find, no such phone", |c| admin_event_for("GET", "/admin/users", &c.target.0, "+19995550000")),
        case("admin find, not a phone", |c| admin_event_for("GET", "/admin/users", &c.target.0, "abc")),
        case("admin find without IAM", |c| without_iam(admin(c, "GET", "/admin/users"))),
        case("admin get", |c| admin(c, "GET", "/admin/users/{id}")),
        case("admin get, bad id", |_| admin_event_for("GET", "/admin/users/{id}", "xyz", "")),
        case("admin get, unknown id", |_| admin_event_for("GET", "/admin/users/{id}", &UserId::new().to_hex(), "")),
        case("admin get without IAM", |c| without_iam(admin(c, "GET", "/admin/users/{id}"))),
        case("admin logout", |c| admin(c, "POST", "/admin/users/{id}/logout")),
        case("admin logout, bad id", |_| admin_event_for("POST", "/admin/users/{id}/logout", "xyz", "")),
        case("admin logout, unknown id", |_| admin_event_for("POST", "/admin/users/{id}/logout", &UserId::new().to_hex(), "")),
        case("admin logout without IAM", |c| without_iam(admin(c, "POST", "/admin/users/{id}/logout"))),
        case("admin enable", |c| admin(c, "POST", "/admin/users/{id}/enable")),
        case("admin enable, bad id", |_| admin_event_for("POST", "/admin/users/{id}/enable", "xyz", "")),
        case("admin enable, unknown id", |_| admin_event_for("POST", "/admin/users/{id}/enable", &UserId::new().to_hex(), "")),
        case("admin enable without IAM", |c| without_iam(admin(c, "POST", "/admin/users/{id}/enable"))),
        case("admin disable", |c| admin(c, "POST", "/admin/users/{id}/disable")),
        case("admin disable, bad id", |_| admin_event_for("POST", "/admin/users/{id}/disable", "xyz", "")),
        case("admin disable, unknown id", |_| admin_event_for("POST", "/admin/users/{id}/disable", &UserId::new().to_hex(), "")),
        case("admin disable without IAM", |c| without_iam(admin(c, "POST", "/admin/users/{id}/disable"))),
        case("login to a disabled account", |c| with_json_body(login_ev(), &json!({"phone": c.target.1, "password": PASSWORD}))),
        case("admin delete", |c| admin(c, "DELETE", "/admin/users/{id}")),
        case("admin delete again", |c| admin(c, "DELETE", "/admin/users/{id}")),
        case("admin delete, bad id", |_| admin_event_for("DELETE", "/admin/users/{id}", "xyz", "")),
        case("admin delete without IAM", |c| without_iam(admin(c, "DELETE", "/admin/users/{id}"))),
        // POST /verify/phone/start, /verify/phone/confirm (verification off: the account of a
        // test number is made unverified and proves its phone on its own)
        case("signup of a test number", |_| signup_of(&signup_body(TEST_PHONE))),
        case("verification start", |_| code_route("/verify/phone/start", json!({"phone": TEST_PHONE}))),
        case("verification start again at once", |_| code_route("/verify/phone/start", json!({"phone": TEST_PHONE}))),
        case("verification start of an invalid number", |_| code_route("/verify/phone/start", json!({"phone": "5550000001"}))),
        case("verification start with an unknown field", |_| code_route("/verify/phone/start", json!({"phone": TEST_PHONE, "x": 1}))),
        case("verification start with malformed JSON", |_| with_raw_body(code_route("/verify/phone/start", json!({})), "{\"phone")),
        case("verification start over 16 KiB", |_| code_route("/verify/phone/start", huge("phone"))),
        case("verification start without Content-Type", |_| with_header(code_route("/verify/phone/start", json!({"phone": TEST_PHONE})), CT, None)),
        case("verification confirm with a wrong code", |_| code_route("/verify/phone/confirm", json!({"phone": TEST_PHONE, "code": "000000"}))),
        case("verification confirm without a code", |_| code_route("/verify/phone/confirm", json!({"phone": TEST_PHONE}))),
        case("verification confirm of an invalid number", |_| code_route("/verify/phone/confirm", json!({"phone": "5550000001", "code": TEST_CODE}))),
        case("verification confirm", |_| code_route("/verify/phone/confirm", json!({"phone": TEST_PHONE, "code": TEST_CODE}))),
        case("verification confirm with malformed JSON", |_| with_raw_body(code_route("/verify/phone/confirm", json!({})), "{\"code")),
        case("verification confirm over 16 KiB", |_| code_route("/verify/phone/confirm", huge("code"))),
        case("verification confirm without Content-Type", |_| with_header(code_route("/verify/phone/confirm", json!({"phone": TEST_PHONE, "code": TEST_CODE})), CT, None)),
        // POST /recover/start, /recover/confirm
        case("recovery start", |_| code_route("/recover/start", json!({"phone": TEST_PHONE}))),
        case("recovery start of an unknown phone", |_| code_route("/recover/start", json!({"phone": "+12025550177"}))),
        case("recovery start again at once", |_| code_route("/recover/start", json!({"phone": TEST_PHONE}))),
        case("recovery start with an unknown field", |_| code_route("/recover/start", json!({"phone": TEST_PHONE, "x": 1}))),
        case("recovery start of an invalid number", |_| code_route("/recover/start", json!({"phone": "5550000001"}))),
        case("recovery start with malformed JSON", |_| with_raw_body(code_route("/recover/start", json!({})), "{")),
        case("recovery start over 16 KiB", |_| code_route("/recover/start", huge("phone"))),
        case("recovery start without Content-Type", |_| with_header(code_route("/recover/start", json!({"phone": TEST_PHONE})), CT, None)),
        case("recovery confirm with a common password", |_| code_route("/recover/confirm",
            json!({"phone": TEST_PHONE, "code": TEST_CODE, "new_password": "password123"}))),
        case("recovery confirm with a wrong code", |_| code_route("/recover/confirm",
            json!({"phone": TEST_PHONE, "code": "000000", "new_password": "a-new-passphrase-1"}))),
        case("recovery confirm of an invalid number", |_| code_route("/recover/confirm",
            json!({"phone": "5550000001", "code": TEST_CODE, "new_password": "a-new-passphrase-1"}))),
        case("recovery confirm", |_| code_route("/recover/confirm",
            json!({"phone": TEST_PHONE, "code": TEST_CODE, "new_password": "a-new-passphrase-1"}))),
        case("recovery confirm with an unknown field", |_| code_route("/recover/confirm", json!({"phone": TEST_PHONE, "x": 1}))),
        case("recovery confirm with malformed JSON", |_| with_raw_body(code_route("/recover/confirm", json!({})), "{")),
        case("recovery confirm over 16 KiB", |_| code_route("/recover/confirm", huge("code"))),
        case("recovery confirm without Content-Type", |_| with_header(code_route("/recover/confirm", json!({})), CT, None)),
        // Email, verification off: addresses as given.
        case("signup by email", |_| code_route("/signup", signup_by_email("ann@example.com"))),
        case("signup by a taken email, another spelling", |_| code_route("/signup", signup_by_email("ANN@Example.com"))),
        case("signup by an email the canonical form refuses", |_| code_route("/signup", signup_by_email(MAIL_BAD))),
        case("login by an email the canonical form refuses", |_| email_login(MAIL_BAD)),
        case("update to a taken email", |c| update_event(c.a(), json!({"email": "ann@example.com", "current_password": PASSWORD}))),
        case("update to an email the canonical form refuses", |c| update_event(c.a(), json!({"email": MAIL_BAD, "current_password": PASSWORD}))),
        case("recovery start of an email the canonical form refuses", |_| code_route("/recover/start", json!({"email": MAIL_BAD}))),
        case("recovery confirm of an email the canonical form refuses", |_| code_route("/recover/confirm",
            json!({"email": MAIL_BAD, "code": TEST_CODE, "new_password": "a-new-passphrase-1"}))),
        case("email verification start", |_| code_route("/verify/email/start", json!({"email": "nobody@example.com"}))),
        case("email verification start of an address the canonical form refuses", |_| code_route("/verify/email/start", json!({"email": MAIL_BAD}))),
        case("email verification start with an unknown field", |_| code_route("/verify/email/start", json!({"email": "nobody@example.com", "x": 1}))),
        case("email verification start with malformed JSON", |_| with_raw_body(code_route("/verify/email/start", json!({})), "{\"email")),
        case("email verification start over 16 KiB", |_| code_route("/verify/email/start", huge("email"))),
        case("email verification start without Content-Type", |_| with_header(code_route("/verify/email/start", json!({"email": "nobody@example.com"})), CT, None)),
        case("email verification confirm with a wrong code", |_| code_route("/verify/email/confirm", json!({"email": "nobody@example.com", "code": "000000"}))),
        case("email verification confirm with an unused token", |_| code_route("/verify/email/confirm", json!({"token": "A".repeat(22)}))),
        case("email verification confirm of an address the canonical form refuses", |_| code_route("/verify/email/confirm", json!({"email": MAIL_BAD, "code": TEST_CODE}))),
        case("email verification confirm with both forms", |_| code_route("/verify/email/confirm", json!({"email": "nobody@example.com", "code": TEST_CODE, "token": "A".repeat(22)}))),
        case("email verification confirm with malformed JSON", |_| with_raw_body(code_route("/verify/email/confirm", json!({})), "{\"token")),
        case("email verification confirm over 16 KiB", |_| code_route("/verify/email/confirm", huge("code"))),
        case("email verification confirm without Content-Type", |_| with_header(code_route("/verify/email/confirm", json!({"token": "A".repeat(22)})), CT, None)),
        case("email link page", |_| event_for("GET", "/verify/email/link")),
        case("email verification start, database down", |_| code_route("/verify/email/start", json!({"email": "nobody@example.com"}))).on(Down),
        case("email verification confirm, database down", |_| code_route("/verify/email/confirm", json!({"email": "nobody@example.com", "code": TEST_CODE}))).on(Down),
        // Email verification required (test addresses: fixed code, nothing sent).
        case("signup by a test address", |_| code_route("/signup", signup_by_email(MAIL_SIGNUP))).on(Email),
        case("login by an address not proven yet", |_| email_login(MAIL_SIGNUP)).on(Email),
        case("email verification confirm", |_| code_route("/verify/email/confirm", json!({"email": MAIL_SIGNUP, "code": TEST_CODE}))).on(Email),
        case("signup that resends too soon", |_| code_route("/signup", signup_by_email(MAIL_SOON))).on(Email),
        case("email verification start again at once", |_| code_route("/verify/email/start", json!({"email": MAIL_SOON}))).on(Email),
        case("signup of the email changer", |_| code_route("/signup", signup_by_email(MAIL_CHANGER))).on(Email),
        case("email verification confirm of the changer", |_| code_route("/verify/email/confirm", json!({"email": MAIL_CHANGER, "code": TEST_CODE}))).on(Email),
        case("login of the email changer", |_| email_login(MAIL_CHANGER)).on(Email).keep(Keep::Mailer),
        case("update asking to move to a test address", |c| update_event(c.mailer(),
            json!({"email": MAIL_TARGET, "current_password": PASSWORD}))).on(Email),
        case("signup of the address the change asked for", |_| code_route("/signup",
            json!({"first_name": "Bo", "last_name": "Li", "password": PASSWORD, "email": MAIL_TARGET, "phone": "5550000601"}))).on(Email),
        case("email verification confirm by the address's new account", |_| code_route("/verify/email/confirm",
            json!({"email": MAIL_TARGET, "code": TEST_CODE}))).on(Email),
        case("email verification confirm of the change, address taken meanwhile", |_| code_route("/verify/email/confirm",
            json!({"email": MAIL_TARGET, "code": TEST_CODE}))).on(Email),
        // POST /logout
        case("logout with an unknown scope", |c| logout_as(c.a(), Some(json!({"scope": "everywhere"})))),
        case("logout with malformed JSON", |c| {
            with_header(with_raw_body(logout_as(c.a(), None), "scope=global"), CT, Some("application/json"))
        }),
        case("logout over 16 KiB", |c| logout_as(c.a(), Some(huge("scope")))),
        case("logout with a body and no Content-Type", |c| {
            with_body(logout_as(c.a(), None), &json!({"scope": "global"}))
        }),
        case("logout without credentials", |_| without_auth(logout_ev())),
        case("logout", |c| logout_as(c.a(), None)),
        case("profile after logout", |c| profile_as(c.a())),
        case("global logout", |c| logout_as(c.b(), Some(json!({"scope": "global"})))),
        // 503: the database cannot be reached.
        case("signup, database down", |_| signup_of(&signup_body(SEED_PHONE))).on(Down),
        case("login, database down", |_| login_as(SEED_PHONE, PASSWORD)).on(Down),
        case("logout, database down", |c| logout_as(&c.nobody, None)).on(Down),
        case("profile, database down", |c| profile_as(&c.nobody)).on(Down),
        case("update, database down", |c| update_event(&c.nobody, json!({"last_name": "X"}))).on(Down),
        case("delete, database down", |c| delete_as(&c.nobody, PASSWORD)).on(Down),
        case("admin get, database down", |c| admin_event_for("GET", "/admin/users/{id}", &c.nobody.id, "")).on(Down),
        case("admin logout, database down", |c| admin_event_for("POST", "/admin/users/{id}/logout", &c.nobody.id, "")).on(Down),
        case("admin enable, database down", |c| admin_event_for("POST", "/admin/users/{id}/enable", &c.nobody.id, "")).on(Down),
        case("admin disable, database down", |c| admin_event_for("POST", "/admin/users/{id}/disable", &c.nobody.id, "")).on(Down),
        case("admin find, database down", |c| admin_event_for("GET", "/admin/users", &c.nobody.id, "+12025550000")).on(Down),
        case("admin delete, database down", |c| admin_event_for("DELETE", "/admin/users/{id}", &c.nobody.id, "")).on(Down),
        case("refresh, database down", |_| refresh_with(&format!("{}.{}", "A".repeat(22), "A".repeat(43)))).on(Down),
        case("verification start, database down", |_| code_route("/verify/phone/start", json!({"phone": "+12025550123"}))).on(Down),
        case("verification confirm, database down", |_| code_route("/verify/phone/confirm", json!({"phone": "+12025550123", "code": TEST_CODE}))).on(Down),
        case("recovery start, database down", |_| code_route("/recover/start", json!({"phone": "+12025550123"}))).on(Down),
        case("recovery confirm, database down", |_| code_route("/recover/confirm",
            json!({"phone": "+12025550123", "code": TEST_CODE, "new_password": "a-new-passphrase-1"}))).on(Down),
        // Verification required: strict phones, unverified accounts wait, sends are budgeted.
        case("signup, strict, of a number no code can reach", |_| code_route("/signup", signup_body(SEED_PHONE))).on(Strict),
        case("signup, strict, of a test number", |_| code_route("/signup", signup_body(STRICT_PHONE))).on(Strict),
        case("login, strict, before the code is confirmed", |_| login_as(STRICT_PHONE, PASSWORD)).on(Strict),
        case("signup, strict, past the per-phone SMS limit", |_| code_route("/signup", signup_body(STRICT_PHONE))).on(Strict),
        // A phone change that another account's signup beats to the number: 409 at the confirm.
        case("signup, change flow", |_| code_route("/signup", signup_body(CHANGER_PHONE))).on(Change),
        case("verification confirm, change flow", |_| code_route("/verify/phone/confirm",
            json!({"phone": CHANGER_PHONE, "code": TEST_CODE}))).on(Change),
        case("login, change flow", |_| login_as(CHANGER_PHONE, PASSWORD)).on(Change).keep(Keep::Changer),
        case("update to a number no code can reach", |c| update_event(c.changer(),
            json!({"phone": "5550000001", "current_password": PASSWORD}))).on(Change),
        case("update asking to move to a test number", |c| update_event(c.changer(),
            json!({"phone": CHANGE_TARGET, "current_password": PASSWORD}))).on(Change),
        case("signup of the number the change asked for", |_| code_route("/signup", signup_body(CHANGE_TARGET))).on(Change),
        case("verification confirm by the number's new account", |_| code_route("/verify/phone/confirm",
            json!({"phone": CHANGE_TARGET, "code": TEST_CODE}))).on(Change),
        case("verification confirm of the change, number taken meanwhile", |_| code_route("/verify/phone/confirm",
            json!({"phone": CHANGE_TARGET, "code": TEST_CODE}))).on(Change),
        // 500: the database refuses the insert for a reason that is not a duplicate phone...
        case("signup, insert refused", |_| signup_of(&signup_body(SEED_PHONE))).on(Refusing),
        case("login, attempt counter refused", |_| login_as(SEED_PHONE, PASSWORD)).on(Refusing),
        // ...or refuses an operator's update of a user it already holds...
        case("admin disable refused", |c| admin_event_for("POST", "/admin/users/{id}/disable", &c.held, "")).on(Refusing),
        case("admin enable refused", |c| admin_event_for("POST", "/admin/users/{id}/enable", &c.held, "")).on(Refusing),
        // ...or holds a user of another shape and a session the store cannot read.
        case("login, user document of another shape", |_| login_as("3333333333", PASSWORD)).on(Broken),
        case("profile, unreadable session", |c| profile_as(&c.c)).on(Broken),
        case("update, unreadable session", |c| update_event(&c.c, json!({"last_name": "X"}))).on(Broken),
        case("logout, unreadable session", |c| logout_as(&c.c, None)).on(Broken),
        case("delete, unreadable session", |c| delete_as(&c.c, PASSWORD)).on(Broken),
        case("refresh, unreadable session", |c| refresh_with(&forged_refresh(&c.c))).on(Broken),
        // Second factors (their own database and clock).
        case("signup of the MFA user", |_| signup_of(&signup_body(MFA_PHONE))).on(Mfa),
        case("login of the MFA user", |_| login_as(MFA_PHONE, PASSWORD)).on(Mfa).keep(Keep::MfaUser),
        case("factors of an account without one", |c| mfa_route(c, "GET", "/mfa", None)).on(Mfa),
        case("step-up of an account without a factor", |c| step_up(c, "123456")).on(Mfa),
        case("recovery codes of an account without a factor", |c| mfa_route(c, "POST", "/mfa/recovery-codes", None)).on(Mfa),
        case("removing a factor the account lacks", |c| mfa_route(c, "DELETE", "/mfa/factors/{id}", None)).on(Mfa),
        case("update, second factors optional and none enrolled", |c| update_event(c.mfa(), json!({"last_name": "Mfa"}))).on(Mfa),
        case("totp start", |c| mfa_route(c, "POST", "/mfa/totp", None)).on(Mfa).keep(Keep::Enrolment),
        case("totp start of a second enrolment", |c| mfa_route(c, "POST", "/mfa/totp", None)).on(Mfa).keep(Keep::Enrolment),
        case("totp confirm with a wrong code", |c| mfa_route(c, "POST", "/mfa/totp/confirm", Some(confirm_body(c, 0, "000000")))).on(Mfa),
        case("totp confirm", |c| mfa_route(c, "POST", "/mfa/totp/confirm", Some(confirm_body(c, 0, &c.code(0))))).on(Mfa).keep(Keep::Raised),
        case("totp confirm of the second enrolment", |c| mfa_route(c, "POST", "/mfa/totp/confirm", Some(confirm_body(c, 1, &c.code(1))))).on(Mfa),
        case("totp start with a factor", |c| mfa_route(c, "POST", "/mfa/totp", None)).on(Mfa),
        case("totp confirm without credentials", |c| without_auth(mfa_route(c, "POST", "/mfa/totp/confirm", Some(confirm_body(c, 0, "123456"))))).on(Mfa),
        case("totp confirm with malformed JSON", |c| with_raw_body(mfa_route(c, "POST", "/mfa/totp/confirm", Some(json!({}))), "{\"code")).on(Mfa),
        case("totp confirm with an unknown field", |c| mfa_route(c, "POST", "/mfa/totp/confirm", Some(json!({"enrolment": "A".repeat(22), "code": "123456", "x": 1})))).on(Mfa),
        case("totp confirm over 16 KiB", |c| mfa_route(c, "POST", "/mfa/totp/confirm", Some(huge("code")))).on(Mfa),
        case("totp confirm without Content-Type", |c| with_header(mfa_route(c, "POST", "/mfa/totp/confirm", Some(confirm_body(c, 0, "123456"))), CT, None)).on(Mfa),
        case("new recovery codes after a step-up", |c| mfa_route(c, "POST", "/mfa/recovery-codes", None)).on(Mfa),
        case("factors", |c| mfa_route(c, "GET", "/mfa", None)).on(Mfa),
        case("factors without credentials", |c| without_auth(mfa_route(c, "GET", "/mfa", None))).on(Mfa),
        case("totp start without credentials", |c| without_auth(mfa_route(c, "POST", "/mfa/totp", None))).on(Mfa),
        case("recovery codes without credentials", |c| without_auth(mfa_route(c, "POST", "/mfa/recovery-codes", None))).on(Mfa),
        case("removing a factor without credentials", |c| without_auth(mfa_route(c, "DELETE", "/mfa/factors/{id}", None))).on(Mfa),
        case("login of an account with a factor", |_| login_as(MFA_PHONE, PASSWORD)).on(Mfa).keep(Keep::Challenge),
        case("second factor with a wrong code", |c| second_factor(c, "000000")).on(Mfa),
        case("second factor", |c| second_factor(c, &c.code(0))).on(Mfa).tick(30),
        case("second factor of a challenge used", |c| second_factor(c, "123456")).on(Mfa),
        case("second factor with malformed JSON", |_| with_raw_body(event_for("POST", "/login/mfa"), "{\"mfa_token")).on(Mfa),
        case("second factor with both proofs", |c| with_json_body(event_for("POST", "/login/mfa"),
            &json!({"mfa_token": c.challenge(), "code": "123456", "recovery_code": "abcd-efgh-jkmn"}))).on(Mfa),
        case("second factor over 16 KiB", |_| with_json_body(event_for("POST", "/login/mfa"), &huge("code"))).on(Mfa),
        case("second factor without Content-Type", |c| with_header(second_factor(c, "123456"), CT, None)).on(Mfa),
        case("step-up with a wrong code", |c| step_up(c, "000000")).on(Mfa),
        case("step-up", |c| step_up(c, &c.code(0))).on(Mfa).tick(30).keep(Keep::Raised),
        case("step-up without credentials", |c| without_auth(step_up(c, "123456"))).on(Mfa),
        case("step-up with malformed JSON", |c| with_raw_body(step_up(c, "1"), "{\"code")).on(Mfa),
        case("step-up with an unknown field", |c| mfa_route(c, "POST", "/session/step-up", Some(json!({"code": "123456", "x": 1})))).on(Mfa),
        case("step-up over 16 KiB", |c| mfa_route(c, "POST", "/session/step-up", Some(huge("code")))).on(Mfa),
        case("step-up without Content-Type", |c| with_header(step_up(c, "123456"), CT, None)).on(Mfa),
        // Eleven minutes on: the session's proof is stale.
        case("password change, session stale", |c| update_event(c.mfa(),
            json!({"password": "a-new-passphrase-1", "current_password": PASSWORD}))).on(Mfa).tick(660),
        case("delete, session stale", |c| delete_as(c.mfa(), PASSWORD)).on(Mfa),
        case("totp start, session stale", |c| mfa_route(c, "POST", "/mfa/totp", None)).on(Mfa),
        case("recovery codes, session stale", |c| mfa_route(c, "POST", "/mfa/recovery-codes", None)).on(Mfa),
        case("removing the factor, session stale", |c| mfa_route(c, "DELETE", "/mfa/factors/{id}", None)).on(Mfa),
        case("step-up with a wrong code, towards the lock", |c| step_up(c, "000000")).on(Mfa).times(5),
        case("step-up while locked", |c| step_up(c, "000000")).on(Mfa),
        case("totp confirm while locked", |c| mfa_route(c, "POST", "/mfa/totp/confirm", Some(confirm_body(c, 1, "000000")))).on(Mfa),
        case("login during the second-factor lock", |_| login_as(MFA_PHONE, PASSWORD)).on(Mfa).keep(Keep::Challenge),
        case("second factor while locked", |c| second_factor(c, "000000")).on(Mfa),
        case("login once the lock ran out", |_| login_as(MFA_PHONE, PASSWORD)).on(Mfa).tick(1000).keep(Keep::Challenge),
        case("passkey login start for an account with no passkey", |c| pk_open("/passkeys/login/start", Some(json!({"mfa_token": c.challenge()})))).on(Mfa),
        case("admin disable of the MFA user", |c| admin_event_for("POST", "/admin/users/{id}/disable", &c.mfa().id, "")).on(Mfa),
        case("second factor of a disabled account", |c| second_factor(c, &c.code(0))).on(Mfa),
        case("admin enable of the MFA user", |c| admin_event_for("POST", "/admin/users/{id}/enable", &c.mfa().id, "")).on(Mfa),
        case("login of the re-enabled account", |_| login_as(MFA_PHONE, PASSWORD)).on(Mfa).keep(Keep::Challenge),
        case("second factor of the re-enabled account", |c| second_factor(c, &c.code(0))).on(Mfa).tick(30).keep(Keep::MfaUser),
        case("passkey step-up start without a passkey", |c| pk_as_mfa(c, "POST", "/passkeys/step-up/start", None)).on(Mfa),
        case("removing the factor", |c| mfa_route(c, "DELETE", "/mfa/factors/{id}", None)).on(Mfa),
        case("admin mfa reset", |c| admin_event_for("POST", "/admin/users/{id}/mfa/reset", &c.mfa().id, "")).on(Mfa),
        case("admin mfa reset of an unknown user", |_| admin_event_for("POST", "/admin/users/{id}/mfa/reset", &UserId::new().to_hex(), "")).on(Mfa),
        case("admin mfa reset of a malformed id", |_| admin_event_for("POST", "/admin/users/{id}/mfa/reset", "not-an-id", "")).on(Mfa),
        case("admin mfa reset without IAM", |c| without_iam(admin_event_for("POST", "/admin/users/{id}/mfa/reset", &c.mfa().id, ""))).on(Mfa),
        case("admin mfa reset, database down", |c| admin_event_for("POST", "/admin/users/{id}/mfa/reset", &c.nobody.id, "")).on(Down),
        // GET /example/whoami/aal2 (the authorizer requires the aal2 scope)
        case("example aal2 whoami with the authorizer's claims", |_| event_for("GET", "/example/whoami/aal2")),
        case("example aal2 whoami reached without the authorizer", |_| without_iam(event_for("GET", "/example/whoami/aal2"))),
        case("example editor whoami with the authorizer's claims", |_| event_for("GET", "/example/whoami/editor")),
        case("example editor whoami reached without the authorizer", |_| without_iam(event_for("GET", "/example/whoami/editor"))),
        // PUT /admin/users/{id}/app-metadata
        case("admin sets roles", |c| app_metadata(&c.plain.id, Some(json!({"roles": ["editor"], "tenant": "acme"})))),
        case("admin sets roles with a space in one", |c| app_metadata(&c.target.0, Some(json!({"roles": ["an editor"]})))),
        case("admin sets app metadata with malformed JSON", |c| with_raw_body(app_metadata(&c.target.0, None), "{\"roles")),
        case("admin sets app metadata over 16 KiB", |c| app_metadata(&c.target.0, Some(huge("x")))),
        case("admin sets app metadata without Content-Type", |c| with_header(app_metadata(&c.target.0, Some(json!({}))), CT, None)),
        case("admin sets app metadata of an unknown user", |_| app_metadata(&UserId::new().to_hex(), Some(json!({})))),
        case("admin sets app metadata without IAM", |c| without_iam(app_metadata(&c.target.0, Some(json!({}))))),
        case("admin sets app metadata, database down", |c| app_metadata(&c.nobody.id, Some(json!({})))).on(Down),
        // REQUIRE_MFA off and required.
        case("signup, second factors off", |_| signup_of(&signup_body(MFA_PHONE))).on(MfaOff),
        case("login, second factors off", |_| login_as(MFA_PHONE, PASSWORD)).on(MfaOff).keep(Keep::Other),
        case("totp start, second factors off", |c| with_bearer(event_for("POST", "/mfa/totp"), c.other())).on(MfaOff),
        case("signup, second factors required", |_| signup_of(&signup_body(MFA_PHONE))).on(MfaRequired),
        case("login, second factors required", |_| login_as(MFA_PHONE, PASSWORD)).on(MfaRequired).keep(Keep::Other),
        case("update before enrolling, second factors required", |c| update_event(c.other(), json!({"last_name": "X"}))).on(MfaRequired),
        // 503 and 500 on the second-factor routes.
        case("factors, database down", |c| as_nobody(c, "GET", "/mfa", None)).on(Down),
        case("totp start, database down", |c| as_nobody(c, "POST", "/mfa/totp", None)).on(Down),
        case("totp confirm, database down", |c| as_nobody(c, "POST", "/mfa/totp/confirm", Some(json!({"enrolment": "A".repeat(22), "code": "123456"})))).on(Down),
        case("removing a factor, database down", |c| as_nobody(c, "DELETE", "/mfa/factors/{id}", None)).on(Down),
        case("recovery codes, database down", |c| as_nobody(c, "POST", "/mfa/recovery-codes", None)).on(Down),
        case("step-up, database down", |c| as_nobody(c, "POST", "/session/step-up", Some(json!({"code": "123456"})))).on(Down),
        case("second factor, database down", |_| with_json_body(event_for("POST", "/login/mfa"), &json!({"mfa_token": "A".repeat(22), "code": "123456"}))).on(Down),
        case("factors, unreadable session", |c| as_broken(c, "GET", "/mfa", None)).on(Broken),
        case("totp start, unreadable session", |c| as_broken(c, "POST", "/mfa/totp", None)).on(Broken),
        case("totp confirm, unreadable session", |c| as_broken(c, "POST", "/mfa/totp/confirm", Some(json!({"enrolment": "A".repeat(22), "code": "123456"})))).on(Broken),
        case("removing a factor, unreadable session", |c| as_broken(c, "DELETE", "/mfa/factors/{id}", None)).on(Broken),
        case("recovery codes, unreadable session", |c| as_broken(c, "POST", "/mfa/recovery-codes", None)).on(Broken),
        case("step-up, unreadable session", |c| as_broken(c, "POST", "/session/step-up", Some(json!({"code": "123456"})))).on(Broken),
        case("second factor, unreadable challenge", |_| with_json_body(event_for("POST", "/login/mfa"), &json!({"mfa_token": BROKEN_CHALLENGE, "code": "123456"}))).on(Broken),
        // The app's pre_signup hook refuses.
        case("signup refused by the app's hook", |_| signup_of(&signup_body("5550000901"))).on(Hooked),
        // Passkeys off (no relying party): every passkey route.
        case("passkey register start, passkeys off", |c| pk_event("POST", "/passkeys/register/start", "", Some(&c.plain), None)),
        case("passkey register finish, passkeys off", |c| pk_event("POST", "/passkeys/register/finish", "", Some(&c.plain), Some(pk_answer()))),
        case("passkey login start, passkeys off", |_| pk_open("/passkeys/login/start", None)),
        case("passkey login finish, passkeys off", |_| pk_open("/passkeys/login/finish", Some(pk_answer()))),
        case("passkey step-up start, passkeys off", |c| pk_event("POST", "/passkeys/step-up/start", "", Some(&c.plain), None)),
        case("passkey step-up finish, passkeys off", |c| pk_event("POST", "/passkeys/step-up/finish", "", Some(&c.plain), Some(pk_answer()))),
        case("passkeys list, passkeys off", |c| pk_event("GET", "/passkeys", "", Some(&c.plain), None)),
        case("passkey rename, passkeys off", |c| pk_event("PATCH", "/passkeys/{id}", "AAAA", Some(&c.plain), Some(json!({"label": "x"})))),
        case("passkey remove, passkeys off", |c| pk_event("DELETE", "/passkeys/{id}", "AAAA", Some(&c.plain), None)),
        // Passkeys on: registration (at most one per account here).
        case("signup, passkeys", |_| signup_of(&signup_body(PK_PHONE))).on(Pk),
        case("login, passkeys", |_| login_as(PK_PHONE, PASSWORD)).on(Pk).keep(Keep::PkUser),
        case("passkey register start", |c| pk_route(c, "POST", "/passkeys/register/start", None)).on(Pk).keep(Keep::Ceremony),
        case("passkey register start, a second", |c| pk_route(c, "POST", "/passkeys/register/start", None)).on(Pk).keep(Keep::Ceremony),
        case("passkey register start without credentials", |_| pk_open("/passkeys/register/start", None)).on(Pk),
        case("passkey register finish", |c| pk_route(c, "POST", "/passkeys/register/finish", Some(c.created(0)))).on(Pk).keep(Keep::PkEnrolled),
        case("passkey register finish beyond the limit", |c| pk_route(c, "POST", "/passkeys/register/finish", Some(c.created(1)))).on(Pk),
        case("passkey register start at the limit", |c| pk_route(c, "POST", "/passkeys/register/start", None)).on(Pk),
        case("passkey register finish, ceremony used", |c| pk_route(c, "POST", "/passkeys/register/finish", Some(c.created(0)))).on(Pk),
        case("passkey register finish without credentials", |c| pk_open("/passkeys/register/finish", Some(c.created(0)))).on(Pk),
        case("passkey register finish with malformed JSON", |c| with_raw_body(pk_route(c, "POST", "/passkeys/register/finish", None), "{\"ceremony")).on(Pk),
        case("passkey register finish with an unknown field", |c| pk_route(c, "POST", "/passkeys/register/finish", Some(json!({"ceremony": "A".repeat(22), "credential": {}, "x": 1})))).on(Pk),
        case("passkey register finish over 16 KiB", |c| pk_route(c, "POST", "/passkeys/register/finish", Some(huge("credential")))).on(Pk),
        case("passkey register finish without Content-Type", |c| with_header(pk_route(c, "POST", "/passkeys/register/finish", Some(pk_answer())), CT, None)).on(Pk),
        // The owner's passkeys.
        case("passkeys list", |c| pk_route(c, "GET", "/passkeys", None)).on(Pk),
        case("passkeys list without credentials", |_| pk_event("GET", "/passkeys", "", None, None)).on(Pk),
        case("passkey rename", |c| pk_route(c, "PATCH", "/passkeys/{id}", Some(json!({"label": "Laptop"})))).on(Pk),
        case("passkey rename of an unknown passkey", |c| pk_event("PATCH", "/passkeys/{id}", "AAAA", Some(c.pk()), Some(json!({"label": "Laptop"})))).on(Pk),
        case("passkey rename without credentials", |c| pk_event("PATCH", "/passkeys/{id}", c.pk_id(), None, Some(json!({"label": "Laptop"})))).on(Pk),
        case("passkey rename with malformed JSON", |c| with_raw_body(pk_route(c, "PATCH", "/passkeys/{id}", None), "{\"label")).on(Pk),
        case("passkey rename with a blank label", |c| pk_route(c, "PATCH", "/passkeys/{id}", Some(json!({"label": " "})))).on(Pk),
        case("passkey rename over 16 KiB", |c| pk_route(c, "PATCH", "/passkeys/{id}", Some(huge("label")))).on(Pk),
        case("passkey rename without Content-Type", |c| with_header(pk_route(c, "PATCH", "/passkeys/{id}", Some(json!({"label": "x"}))), CT, None)).on(Pk),
        // Sign-in with no identifier.
        case("passkey login start", |_| pk_open("/passkeys/login/start", None)).on(Pk).keep(Keep::Ceremony),
        case("passkey login finish", |c| pk_open("/passkeys/login/finish", Some(c.asserted(2)))).on(Pk),
        case("passkey login finish, ceremony used", |c| pk_open("/passkeys/login/finish", Some(c.asserted(2)))).on(Pk),
        case("passkey login finish with malformed JSON", |_| with_raw_body(pk_open("/passkeys/login/finish", None), "{\"ceremony")).on(Pk),
        case("passkey login finish with an unknown field", |_| pk_open("/passkeys/login/finish", Some(json!({"ceremony": "A".repeat(22), "x": 1})))).on(Pk),
        case("passkey login finish over 16 KiB", |_| pk_open("/passkeys/login/finish", Some(huge("credential")))).on(Pk),
        case("passkey login finish without Content-Type", |_| with_header(pk_open("/passkeys/login/finish", Some(pk_answer())), CT, None)).on(Pk),
        case("passkey login start with an unknown mfa_token", |_| pk_open("/passkeys/login/start", Some(json!({"mfa_token": "A".repeat(22)})))).on(Pk),
        case("passkey login start with malformed JSON", |_| with_raw_body(pk_open("/passkeys/login/start", None), "{\"mfa")).on(Pk),
        case("passkey login start with an unknown field", |_| pk_open("/passkeys/login/start", Some(json!({"x": 1})))).on(Pk),
        case("passkey login start over 16 KiB", |_| pk_open("/passkeys/login/start", Some(huge("mfa_token")))).on(Pk),
        case("passkey login start without Content-Type", |_| with_header(pk_open("/passkeys/login/start", Some(json!({}))), CT, None)).on(Pk),
        // A passkey as a password sign-in's second factor.
        case("login of the passkey user", |_| login_as(PK_PHONE, PASSWORD)).on(Pk).keep(Keep::PkChallenge),
        case("passkey login start as a second factor", |c| pk_open("/passkeys/login/start", Some(json!({"mfa_token": c.pk_challenge})))).on(Pk).keep(Keep::Ceremony),
        case("passkey login finish with another mfa_token", |c| { let mut b = c.asserted(3); b["mfa_token"] = json!("A".repeat(22)); pk_open("/passkeys/login/finish", Some(b)) }).on(Pk),
        case("passkey login start as a second factor, again", |c| pk_open("/passkeys/login/start", Some(json!({"mfa_token": c.pk_challenge})))).on(Pk).keep(Keep::Ceremony),
        case("passkey login finish as a second factor", |c| { let mut b = c.asserted(4); b["mfa_token"] = json!(c.pk_challenge); pk_open("/passkeys/login/finish", Some(b)) }).on(Pk).keep(Keep::PkUser),
        case("admin disable of the passkey user", |c| admin_event_for("POST", "/admin/users/{id}/disable", &c.pk().id, "")).on(Pk),
        case("passkey login start, account disabled", |_| pk_open("/passkeys/login/start", None)).on(Pk).keep(Keep::Ceremony),
        case("passkey login finish of a disabled account", |c| pk_open("/passkeys/login/finish", Some(c.asserted(5)))).on(Pk),
        case("admin enable of the passkey user", |c| admin_event_for("POST", "/admin/users/{id}/enable", &c.pk().id, "")).on(Pk),
        case("passkey login start, re-enabled", |_| pk_open("/passkeys/login/start", None)).on(Pk).keep(Keep::Ceremony),
        case("passkey login finish, re-enabled", |c| pk_open("/passkeys/login/finish", Some(c.asserted(6)))).on(Pk).keep(Keep::PkUser),
        // Eleven minutes on: the session's proof is stale, a passkey raises it.
        case("passkey remove, session stale", |c| pk_route(c, "DELETE", "/passkeys/{id}", None)).on(Pk).tick(660),
        case("passkey register start, session stale", |c| pk_route(c, "POST", "/passkeys/register/start", None)).on(Pk),
        case("passkey step-up start", |c| pk_route(c, "POST", "/passkeys/step-up/start", None)).on(Pk).keep(Keep::Ceremony),
        case("passkey step-up start without credentials", |_| pk_open("/passkeys/step-up/start", None)).on(Pk),
        case("passkey step-up finish", |c| pk_route(c, "POST", "/passkeys/step-up/finish", Some(c.asserted(7)))).on(Pk).keep(Keep::PkRaised),
        case("passkey step-up finish, ceremony used", |c| pk_route(c, "POST", "/passkeys/step-up/finish", Some(c.asserted(7)))).on(Pk),
        case("passkey step-up finish without credentials", |c| pk_open("/passkeys/step-up/finish", Some(c.asserted(7)))).on(Pk),
        case("passkey step-up finish with malformed JSON", |c| with_raw_body(pk_route(c, "POST", "/passkeys/step-up/finish", None), "{\"ceremony")).on(Pk),
        case("passkey step-up finish with an unknown field", |c| pk_route(c, "POST", "/passkeys/step-up/finish", Some(json!({"ceremony": "A".repeat(22), "x": 1})))).on(Pk),
        case("passkey step-up finish over 16 KiB", |c| pk_route(c, "POST", "/passkeys/step-up/finish", Some(huge("credential")))).on(Pk),
        case("passkey step-up finish without Content-Type", |c| with_header(pk_route(c, "POST", "/passkeys/step-up/finish", Some(pk_answer())), CT, None)).on(Pk),
        case("passkey remove", |c| pk_route(c, "DELETE", "/passkeys/{id}", None)).on(Pk),
        case("passkey remove, gone", |c| pk_route(c, "DELETE", "/passkeys/{id}", None)).on(Pk),
        case("passkey remove without credentials", |c| pk_event("DELETE", "/passkeys/{id}", c.pk_id(), None, None)).on(Pk),
        // A minute on: 30 sign-in starts a minute from one address, then 429.
        case("passkey login starts from one address", |_| pk_open("/passkeys/login/start", None)).on(Pk).tick(61).times(31),
        // 503 and 500 on the passkey routes.
        case("passkey register start, database down", |c| as_nobody(c, "POST", "/passkeys/register/start", None)).on(Down),
        case("passkey register finish, database down", |c| as_nobody(c, "POST", "/passkeys/register/finish", Some(pk_answer()))).on(Down),
        case("passkey login start, database down", |_| pk_open("/passkeys/login/start", None)).on(Down),
        case("passkey login finish, database down", |_| pk_open("/passkeys/login/finish", Some(pk_answer()))).on(Down),
        case("passkey step-up start, database down", |c| as_nobody(c, "POST", "/passkeys/step-up/start", None)).on(Down),
        case("passkey step-up finish, database down", |c| as_nobody(c, "POST", "/passkeys/step-up/finish", Some(pk_answer()))).on(Down),
        case("passkeys list, database down", |c| as_nobody(c, "GET", "/passkeys", None)).on(Down),
        case("passkey rename, database down", |c| pk_event("PATCH", "/passkeys/{id}", "AAAA", Some(&c.nobody), Some(json!({"label": "x"})))).on(Down),
        case("passkey remove, database down", |c| pk_event("DELETE", "/passkeys/{id}", "AAAA", Some(&c.nobody), None)).on(Down),
        case("passkey register start, unreadable session", |c| as_broken(c, "POST", "/passkeys/register/start", None)).on(Broken),
        case("passkey register finish, unreadable session", |c| as_broken(c, "POST", "/passkeys/register/finish", Some(pk_answer()))).on(Broken),
        case("passkey login start, unreadable challenge", |_| pk_open("/passkeys/login/start", Some(json!({"mfa_token": BROKEN_CHALLENGE})))).on(Broken),
        case("passkey login finish, unreadable ceremony", |_| { let mut b = pk_answer(); b["ceremony"] = json!(BROKEN_PK_CEREMONY); pk_open("/passkeys/login/finish", Some(b)) }).on(Broken),
        case("passkey step-up start, unreadable session", |c| as_broken(c, "POST", "/passkeys/step-up/start", None)).on(Broken),
        case("passkey step-up finish, unreadable session", |c| as_broken(c, "POST", "/passkeys/step-up/finish", Some(pk_answer()))).on(Broken),
        case("passkeys list, unreadable session", |c| as_broken(c, "GET", "/passkeys", None)).on(Broken),
        case("passkey rename, unreadable session", |c| pk_event("PATCH", "/passkeys/{id}", "AAAA", Some(&c.c), Some(json!({"label": "x"})))).on(Broken),
        case("passkey remove, unreadable session", |c| pk_event("DELETE", "/passkeys/{id}", "AAAA", Some(&c.c), None)).on(Broken),
    ]
    .into_iter()
    .chain(federation_flow::cases())
    .collect()
}

/// Runs [`cases`] through the shared handlers against MongoDB, in order.
async fn full_flow() -> Flow {
    let (db, _clock) = mongo_state().await;
    // Verification stays off (the seed flow is unchanged); a test number lets the code routes
    // succeed without a sender.
    let sms = domain::config::Vars::from_pairs([(
        "SMS_TEST_NUMBERS",
        format!("{TEST_PHONE}:{TEST_CODE}"),
    )]);
    let verification =
        domain::verification::Verification::from_vars(&sms, adapters::sms_sender).unwrap();
    let db = db.with_verification(verification);
    let (strict, _clock) = mongo_state().await;
    let strict_vars = domain::config::Vars::from_pairs([
        ("REQUIRE_PHONE_VERIFICATION", "true".to_owned()),
        ("SMS_TEST_NUMBERS", format!("{STRICT_PHONE}:{TEST_CODE}")),
        ("SMS_PER_PHONE_PER_HOUR", "1".to_owned()),
    ]);
    let verification =
        domain::verification::Verification::from_vars(&strict_vars, adapters::sms_sender).unwrap();
    let strict = strict.with_verification(verification);
    let (change, _clock) = mongo_state().await;
    let change_vars = domain::config::Vars::from_pairs([
        ("REQUIRE_PHONE_VERIFICATION", "true".to_owned()),
        (
            "SMS_TEST_NUMBERS",
            format!("{CHANGER_PHONE}:{TEST_CODE},{CHANGE_TARGET}:{TEST_CODE}"),
        ),
    ]);
    let verification =
        domain::verification::Verification::from_vars(&change_vars, adapters::sms_sender).unwrap();
    let change = change.with_verification(verification);
    let (email, _clock) = mongo_state().await;
    let email_vars = domain::config::Vars::from_pairs([
        ("REQUIRE_EMAIL_VERIFICATION", "true".to_owned()),
        ("EMAIL_SENDER", "log".to_owned()),
        ("EMAIL_ALLOW_LOG_SENDER", "1".to_owned()),
        (
            "EMAIL_TEST_ADDRESSES",
            [MAIL_SIGNUP, MAIL_SOON, MAIL_CHANGER, MAIL_TARGET]
                .map(|a| format!("{a}:{TEST_CODE}"))
                .join(","),
        ),
    ]);
    let mail = domain::email::Mail::from_vars(&email_vars, domain::email::log_mailer).unwrap();
    let email = email.with_email(mail);
    let (mfa, mfa_clock) = mongo_state().await;
    let mfa = mfa.with_passkeys(Some(relying_party(1)));
    let refuser = crate::sms::Receiver::start(crate::sms::Answer::Json(
        r#"{"decision": "refuse", "message": "Invitation only."}"#,
    ))
    .await;
    let (hooked, _clock) = mongo_state().await;
    let hooked = hooked.with_hooks(
        domain::hooks::Hooks::from_vars(
            &domain::config::Vars::from_pairs([
                ("HOOK_PRE_SIGNUP_URL", refuser.url()),
                (
                    "HOOK_PRE_SIGNUP_SECRET",
                    format!("whsec_{}", crate::sms::SECRET_B64),
                ),
            ]),
            adapters::hook_caller,
        )
        .unwrap(),
    );
    let (pk, pk_clock) = mongo_state().await;
    let pk = pk.with_passkeys(Some(relying_party(1)));
    let mode = |m: &str| {
        let mut v = api_tests::vars();
        v.set("DB_NAME", fresh_db());
        v.set("REQUIRE_MFA", m);
        domain::config::Settings::from_vars(&v).unwrap()
    };
    let (mfa_off, _clock) = state_on(Backend::Mongo, |_| mode("off")).await;
    let (mfa_required, _clock) = state_on(Backend::Mongo, |_| mode("required")).await;
    let fed_setup = federation_flow::setup().await;
    let fedn = || Some(fed_setup.federation.clone());
    let (fed, _clock) = mongo_state().await;
    let fed = fed.with_federation(fedn());
    federation_flow::disabled_holder(&fed, &fed_setup.issuer).await;
    let (fed_no_browser, _clock) = mongo_state().await;
    let fed_no_browser = fed_no_browser.with_federation(Some(fed_setup.no_browser.clone()));
    let mfa_required = mfa_required.with_federation(fedn());
    let down = unreachable_db_state()
        .await
        .with_passkeys(Some(relying_party(1)))
        .with_federation(fedn());
    let refusing = refusing_inserts_state().await.with_federation(fedn());
    federation_flow::browser_seeds(&fed, &refusing, &fed_setup.issuer).await;
    let (broken, c) = broken_documents_state().await;
    let broken = broken
        .with_passkeys(Some(relying_party(1)))
        .with_federation(fedn());
    let uid = UserId::new();
    let nobody = Login {
        id: uid.to_hex(),
        token: down
            .tokens()
            .issue(EVENT_ISSUER, &uid, "some-session", down.clock.now() as u64)
            .unwrap(),
        session_token: "A".repeat(43),
    };
    let held = ObjectId::new();
    mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&refusing.settings.db_name)
        .collection::<mongodb::bson::Document>("User")
        .insert_one(
            doc! {"_id": held, "first_name": "A", "last_name": "B", "phone": "5550000403",
            "password": "x"},
        )
        .bypass_document_validation(true)
        .await
        .unwrap();
    let mut ctx = Ctx {
        a: None,
        b: None,
        refresh: None,
        nobody,
        c,
        plain: signed_in(&db, "5550000404").await,
        d: signed_in(&db, "5550000401").await,
        e: signed_in(&db, "5550000402").await,
        target: throwaway(&db).await,
        held: held.to_hex(),
        changer: None,
        mailer: None,
        mfa: None,
        enrolments: Vec::new(),
        challenge: None,
        other: None,
        mfa_now: 0,
        auth: std::cell::RefCell::new(Authenticator::new()),
        pk: None,
        ceremonies: Vec::new(),
        pk_id: None,
        pk_challenge: None,
        fed_tokens: fed_setup.tokens.clone(),
        fed: None,
        fed_plain: signed_in(&fed, "5550000477").await,
    };
    let mut f = Flow::default();
    for case in cases() {
        let state = match case.on {
            On::Db => &db,
            On::Down => &down,
            On::Refusing => &refusing,
            On::Broken => &broken,
            On::Strict => &strict,
            On::Change => &change,
            On::Email => &email,
            On::Mfa => &mfa,
            On::MfaOff => &mfa_off,
            On::MfaRequired => &mfa_required,
            On::Pk => &pk,
            On::Hooked => &hooked,
            On::Fed => &fed,
            On::FedNoBrowser => &fed_no_browser,
        };
        mfa_clock.advance(case.tick);
        pk_clock.advance(case.tick);
        ctx.mfa_now = mfa_clock.now();
        for _ in 0..case.times {
            let answer = f.send(state, case.what, (case.request)(&ctx)).await;
            match case.keep {
                Keep::Nothing => {}
                Keep::A => ctx.a = Some(Login::of(answer)),
                Keep::B => ctx.b = Some(Login::of(answer)),
                Keep::Changer => ctx.changer = Some(Login::of(answer)),
                Keep::Mailer => ctx.mailer = Some(Login::of(answer)),
                Keep::MfaUser => ctx.mfa = Some(Login::of(answer)),
                Keep::Other => ctx.other = Some(Login::of(answer)),
                Keep::Enrolment => ctx.enrolments.push((
                    answer.body["enrolment"].as_str().unwrap().to_owned(),
                    answer.body["secret"].as_str().unwrap().to_owned(),
                )),
                Keep::Raised => {
                    let token = answer.body["token"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}: no token in {:?}", case.what, answer.body));
                    ctx.mfa.as_mut().unwrap().token = token.to_owned();
                }
                Keep::Challenge => {
                    ctx.challenge = answer.body["mfa_token"].as_str().map(str::to_owned);
                }
                Keep::Refresh => {
                    ctx.refresh = answer.body["refresh_token"].as_str().map(str::to_owned);
                }
                Keep::PkUser => ctx.pk = Some(Login::of(answer)),
                Keep::Ceremony => ctx.ceremonies.push((
                    answer.body["ceremony"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}: {:?}", case.what, answer.body))
                        .to_owned(),
                    answer.body["options"].to_string(),
                )),
                Keep::PkEnrolled => {
                    ctx.pk_id = answer.body["factor"]["id"].as_str().map(str::to_owned);
                    ctx.pk.as_mut().unwrap().token =
                        answer.body["token"].as_str().unwrap().to_owned();
                }
                Keep::PkRaised => {
                    ctx.pk.as_mut().unwrap().token =
                        answer.body["token"].as_str().unwrap().to_owned();
                }
                Keep::PkChallenge => {
                    ctx.pk_challenge = answer.body["mfa_token"].as_str().map(str::to_owned);
                }
                Keep::Fed => {
                    let b = &answer.body;
                    let s = |k: &str| {
                        b[k].as_str()
                            .unwrap_or_else(|| panic!("{}: {b}", case.what))
                    };
                    ctx.fed = Some(Login {
                        id: b["user_id"]["$oid"].as_str().unwrap().to_owned(),
                        token: s("token").to_owned(),
                        session_token: s("session_token").to_owned(),
                    });
                }
            }
        }
    }
    f
}

// ---------------------------------------------------------------------------------------------
// 1. Routes
// ---------------------------------------------------------------------------------------------

#[test]
fn the_document_the_router_and_the_template_declare_the_same_routes() {
    let documented: BTreeSet<RouteKey> = operations(&doc()).into_keys().collect();
    let router: BTreeSet<RouteKey> = Endpoint::ALL
        .iter()
        .map(|r| (r.method().to_owned(), r.path().to_owned()))
        .collect();
    assert_eq!(
        router.len(),
        Endpoint::ALL.len(),
        "the router repeats a route"
    );
    assert_eq!(documented, router, "openapi.yaml vs the router's ROUTES");
    let template: BTreeSet<RouteKey> = template_routes()
        .into_iter()
        .map(|(_, method, path)| (method, path))
        .collect();
    assert_eq!(documented, template, "openapi.yaml vs template.yaml");
}

/// Sends `ev` with a body the route accepts, if it documents one.
async fn with_sample_body(
    doc: &Value,
    method: &str,
    path: &str,
    state: &State,
    ev: Value,
) -> Answer {
    let ev = match sample_for(doc, method, path, state).await {
        Some(body) => with_json_body(ev, &body),
        None => ev,
    };
    let a = call(state, &ev).await;
    restore_if_deleted(state, method, path, &a).await;
    a
}

#[tokio::test]
async fn documented_security_matches_what_each_route_demands() {
    let doc = doc();
    let schemes = &doc["components"]["securitySchemes"];
    let (state, _) = mongo_state().await;
    let state = state.with_passkeys(Some(relying_party(10)));
    signed_in(&state, "1234567890").await;
    for ((method, path), op) in operations(&doc) {
        let requirements = op
            .get("security")
            .unwrap_or(&doc["security"])
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path}: no security requirements"))
            .clone();
        if requirements.iter().any(|alt| alt.get("iamSigV4").is_some()) {
            // IAM-signed: API Gateway checks the signature; the function needs the identity
            // it leaves in the context, and an end user's tokens are no substitute.
            assert_eq!(requirements.len(), 1, "{method} {path}: IAM or nothing");
            let (id, phone) = throwaway(&state).await;
            let a = call(&state, &admin_event_for(&method, &path, &id, &phone)).await;
            assert!(
                a.status.is_success(),
                "{method} {path}: {} {:?}",
                a.status,
                a.body
            );
            let (id, phone) = throwaway(&state).await;
            let l = login(&state, "1234567890", "securepassword123").await;
            let unsigned = with_bearer(
                without_iam(admin_event_for(&method, &path, &id, &phone)),
                &l,
            );
            let a = call(&state, &unsigned).await;
            assert_eq!(
                (a.status.as_u16(), a.code()),
                (401, "unauthorized"),
                "{method} {path} without IAM: {:?}",
                a.body
            );
            continue;
        }
        if requirements
            .iter()
            .any(|alt| alt.get("issuerJwt").is_some())
        {
            // Behind API Gateway's JWT authorizer: the function needs the claims the
            // authorizer leaves in the context; a JWT in the header is no substitute.
            assert_eq!(
                requirements.len(),
                1,
                "{method} {path}: the authorizer or nothing"
            );
            let verified = event_for(&method, &path);
            let a = call(&state, &verified).await;
            assert!(
                a.status.is_success(),
                "{method} {path}: {} {:?}",
                a.status,
                a.body
            );
            let l = login(&state, "1234567890", "securepassword123").await;
            let a = call(&state, &with_bearer(without_iam(verified), &l)).await;
            assert_eq!(
                (a.status.as_u16(), a.code()),
                (401, "unauthorized"),
                "{method} {path} without the authorizer: {:?}",
                a.body
            );
            continue;
        }
        let bare = without_auth(event_for(&method, &path));
        let a = with_sample_body(&doc, &method, &path, &state, bare.clone()).await;
        let public = requirements.is_empty();
        assert_eq!(
            a.status == 401 && a.code() == "unauthorized",
            !public,
            "{method} {path}: documented {}, without credentials got {} {:?}",
            if public { "public" } else { "secured" },
            a.status,
            a.body
        );
        if public {
            continue;
        }
        // The two Authorization forms the handlers take: each works iff the document offers it.
        let offers = |form: &str| {
            requirements.iter().any(|alt| {
                alt.as_object().unwrap().keys().any(|name| {
                    let s = &schemes[name];
                    match form {
                        "Bearer" => s["type"] == "http" && s["scheme"] == "bearer",
                        _ => {
                            s["type"] == "apiKey"
                                && s["in"] == "header"
                                && s["name"].as_str().map(str::to_ascii_lowercase)
                                    == Some("authorization".to_owned())
                        }
                    }
                })
            })
        };
        for form in ["Bearer", "bare"] {
            let l = login(&state, "1234567890", "securepassword123").await;
            let authorization = match form {
                "Bearer" => format!("Bearer {}", l.token),
                _ => l.token.clone(),
            };
            let ev = with_auth(bare.clone(), &authorization, &l.session_token);
            let a = with_sample_body(&doc, &method, &path, &state, ev).await;
            // Authenticated is what is asked here: a sample body may still be refused for what
            // it says (a second-factor code of an account without one).
            let authenticated = !(a.status == 401 && a.code() == "unauthorized");
            assert_eq!(
                authenticated,
                offers(form),
                "{method} {path}: Authorization as {form} JWT answered {} {:?}; documented: {}",
                a.status,
                a.body,
                offers(form)
            );
        }
        // Each documented alternative, headers built from its schemes, is enough on its own.
        for alternative in requirements {
            let l = login(&state, "1234567890", "securepassword123").await;
            let mut ev = bare.clone();
            for name in alternative.as_object().unwrap().keys() {
                let s = &schemes[name];
                let (header, value) = match (s["type"].as_str(), s["in"].as_str()) {
                    (Some("http"), _) => {
                        assert_eq!(s["scheme"], "bearer", "{name}");
                        ("authorization".to_owned(), format!("Bearer {}", l.token))
                    }
                    (Some("apiKey"), Some("header")) => {
                        let h = s["name"].as_str().unwrap().to_ascii_lowercase();
                        let v = match h.as_str() {
                            "authorization" => l.token.clone(),
                            "session-token" => l.session_token.clone(),
                            other => panic!("{name}: the API reads no {other} header"),
                        };
                        (h, v)
                    }
                    other => panic!("{name}: unexpected security scheme {other:?}"),
                };
                ev = with_header(ev, &header, Some(&value));
            }
            let a = with_sample_body(&doc, &method, &path, &state, ev).await;
            assert!(
                !(a.status == 401 && a.code() == "unauthorized"),
                "{method} {path} with {alternative}: {} {:?}",
                a.status,
                a.body
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Request bodies
// ---------------------------------------------------------------------------------------------

/// The schema file (name in `edge/schemas/`) the document gives as the request body of an
/// operation, after checking it is referenced, not copied, and is the file the server embeds.
fn body_schema_file(op: &Value, route: &str) -> Option<String> {
    let body = op.get("requestBody")?;
    let content = body["content"].as_object().unwrap();
    // A provider posting the browser back (OpenID's `form_post`) sends the one form body; its
    // handler reads the fields it knows and there is no JSON schema to compile.
    if route == "POST /federation/{provider}/callback" {
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["application/x-www-form-urlencoded"]
        );
        return None;
    }
    assert_eq!(
        content.keys().collect::<Vec<_>>(),
        ["application/json"],
        "{route}: the handlers read only application/json"
    );
    let reference = body["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{route}: the body schema must $ref a file in edge/schemas/"));
    let file = reference
        .strip_prefix("./edge/schemas/")
        .unwrap_or_else(|| panic!("{route}: {reference} is not in ./edge/schemas/"));
    let on_disk = std::fs::read_to_string(root().join(reference))
        .unwrap_or_else(|e| panic!("{route}: {reference}: {e}"));
    let (_, _, compiled) = SOURCES
        .iter()
        .find(|(_, name, _)| *name == file)
        .unwrap_or_else(|| panic!("{route}: {file} is not a schema the server compiles"));
    assert_eq!(
        on_disk, *compiled,
        "{route}: {reference} differs from what the server embeds"
    );
    Some(file.to_owned())
}

fn compiled_schema(file: &str) -> Validator {
    let (_, _, src) = SOURCES.iter().find(|(_, name, _)| *name == file).unwrap();
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(&serde_json::from_str(src).unwrap())
        .unwrap()
}

/// A body valid for schema `file`, for a caller with id `id`.
fn sample(file: &str, id: &str, fresh_phone: &str) -> Value {
    match file {
        "signup.json" => signup_body(fresh_phone),
        "login.json" => json!({"phone": "1234567890", "password": "securepassword123"}),
        "logout.json" => json!({"scope": "current"}),
        "update_user.json" => json!({"_id": {"$oid": id}, "last_name": "Smith"}),
        "delete_user.json" => json!({"current_password": "securepassword123"}),
        "refresh.json" => {
            json!({"refresh_token": format!("{}.{}", "A".repeat(22), "A".repeat(43))})
        }
        "phone_start.json" | "recover_start.json" => json!({"phone": "+12025550123"}),
        "phone_confirm.json" => json!({"phone": "+12025550123", "code": "123456"}),
        "email_start.json" => json!({"email": "ann@example.com"}),
        "email_confirm.json" => json!({"email": "ann@example.com", "code": "123456"}),
        "recover_confirm.json" => {
            json!({"phone": "+12025550123", "code": "123456", "new_password": "a-new-passphrase-1"})
        }
        "login_mfa.json" => json!({"mfa_token": "A".repeat(22), "code": "123456"}),
        "step_up.json" => json!({"recovery_code": "abcd-efgh-jkmn"}),
        "totp_confirm.json" => json!({"enrolment": "A".repeat(22), "code": "123 456"}),
        "passkey_register.json" | "passkey_login.json" | "passkey_step_up.json" => pk_answer(),
        "passkey_login_start.json" => json!({}),
        "passkey_rename.json" => json!({"label": "Laptop"}),
        "app_metadata.json" => json!({"roles": ["editor"]}),
        "federation_token.json" => {
            json!({"id_token": "aaa.bbb.ccc", "nonce": federation_flow::NONCE})
        }
        "identity_link.json" => {
            json!({"provider": "google", "id_token": "aaa.bbb.ccc", "nonce": federation_flow::NONCE})
        }
        "federation_exchange.json" => {
            json!({"code": "A".repeat(22), "code_verifier": "v".repeat(43)})
        }
        other => panic!("no sample body for {other}: add one"),
    }
}

/// A body the route accepts, from its documented schema, for user 1234567890 of `state`.
async fn sample_for(doc: &Value, method: &str, path: &str, state: &State) -> Option<Value> {
    let op = &doc["paths"][path][method.to_lowercase()];
    let file = body_schema_file(op, &format!("{method} {path}"))?;
    if file == "login_mfa.json" {
        // The body is the credential: a live challenge of an account with a factor.
        return Some(json!({"mfa_token": live_challenge(state).await, "code": "000000"}));
    }
    if file == "refresh.json" {
        // The body is the credential: a live refresh token from a login.
        let a = login_status(state, "1234567890", "securepassword123").await;
        return Some(json!({"refresh_token": a.body["refresh_token"]}));
    }
    let id = login(state, "1234567890", "securepassword123").await.id;
    Some(sample(
        &file,
        &id,
        &format!("55512{:05}", unique() % 100_000),
    ))
}

/// A sign-in waiting for its second factor: a fresh account enrols TOTP and logs in.
async fn live_challenge(state: &State) -> String {
    let phone = format!("55513{:05}", unique() % 100_000);
    let l = signed_in(state, &phone).await;
    let start = call(state, &with_bearer(event_for("POST", "/mfa/totp"), &l)).await;
    let secret = start.body["secret"].as_str().unwrap();
    let code = totp_code(secret, state.clock.now());
    let body = json!({"enrolment": start.body["enrolment"], "code": code});
    let done = call(
        state,
        &with_json_body(
            with_bearer(event_for("POST", "/mfa/totp/confirm"), &l),
            &body,
        ),
    )
    .await;
    assert_eq!(done.status, 201, "{:?}", done.body);
    let a = login_status(state, &phone, "securepassword123").await;
    a.body["mfa_token"].as_str().unwrap().to_owned()
}

fn unique() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    u32::from_le_bytes(b)
}

#[tokio::test]
async fn request_bodies_are_the_schemas_the_server_compiles_for_each_route() {
    let doc = doc();
    let (state, _) = mongo_state().await;
    let state = state.with_passkeys(Some(relying_party(10)));
    signed_in(&state, "1234567890").await;
    let ops = operations(&doc);
    let mut referenced = BTreeSet::new();
    for ((method, path), op) in &ops {
        let route = format!("{method} {path}");
        let file = body_schema_file(op, &route);
        let state = &state;
        let fresh = move || async move {
            if path.starts_with("/admin") {
                let (id, phone) = throwaway(state).await;
                return admin_event_for(method, path, &id, &phone);
            }
            let l = login(state, "1234567890", "securepassword123").await;
            with_bearer(event_for(method, path), &l)
        };
        if route == "POST /federation/{provider}/callback" {
            // A form the provider posts, not JSON: its cases are the flow's (federation_flow).
            continue;
        }
        let Some(file) = file else {
            // No documented body: the route must ignore one, even garbage.
            let ev = with_header(
                with_raw_body(fresh().await, "{not json"),
                "content-type",
                Some("application/json"),
            );
            let a = call(state, &ev).await;
            // Ignored: whatever the route answers, it is not about the body.
            assert!(
                !matches!(a.status.as_u16(), 400 | 413 | 415),
                "{route} documents no body but answered one with {} {:?}",
                a.status,
                a.body
            );
            continue;
        };
        referenced.insert(file.clone());
        // `required` says whether the route refuses an empty body.
        let a = call(state, &without_body(fresh().await)).await;
        assert_eq!(
            op["requestBody"]["required"] == true,
            a.status.is_client_error(),
            "{route}: requestBody.required vs an empty body answered {} {:?}",
            a.status,
            a.body
        );
        // The documented schema accepts exactly the sample bodies the route accepts.
        let schema = compiled_schema(&file);
        for (_, sample_file, _) in SOURCES {
            let id = login(state, "1234567890", "securepassword123").await.id;
            let body = sample(sample_file, &id, &format!("55500{:05}", unique() % 100_000));
            assert!(
                compiled_schema(sample_file).is_valid(&body),
                "the sample for {sample_file} is not valid for it"
            );
            let a = call(state, &with_json_body(fresh().await, &body)).await;
            restore_if_deleted(state, method, path, &a).await;
            let route_accepts = !(a.status == 400 && a.code() == "validation_failed");
            assert_eq!(
                route_accepts,
                schema.is_valid(&body),
                "{route} (documented body {file}) with a {sample_file} body {body}: {} {:?}",
                a.status,
                a.body
            );
        }
    }
    let compiled: BTreeSet<String> = SOURCES.iter().map(|(_, f, _)| f.to_string()).collect();
    assert_eq!(
        referenced, compiled,
        "every compiled schema is some route's documented body"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Problem codes
// ---------------------------------------------------------------------------------------------

/// One value of every `ApiError` variant.
fn every_api_error() -> Vec<ApiError> {
    let all = vec![
        ApiError::Validation(vec![]),
        ApiError::MalformedJson,
        ApiError::UnsupportedMediaType,
        ApiError::PayloadTooLarge(16 * 1024),
        ApiError::Unauthorized,
        ApiError::InvalidCredentials,
        ApiError::Forbidden,
        ApiError::CurrentPasswordIncorrect,
        ApiError::PhoneTaken,
        ApiError::NotFound,
        ApiError::MethodNotAllowed,
        ApiError::TooManyAttempts {
            retry_after_secs: 7,
        },
        ApiError::Unavailable,
        ApiError::Internal,
        ApiError::WeakPassword(vec![]),
        ApiError::AccountDisabled,
        ApiError::UserNotFound,
        ApiError::InvalidPhone(vec![]),
        ApiError::InvalidCode,
        ApiError::PhoneUnverified,
        ApiError::EmailTaken,
        ApiError::EmailUnverified,
        ApiError::InvalidEmail(vec![]),
        ApiError::StepUpRequired,
        ApiError::MfaEnrolmentRequired,
        ApiError::MfaDisabled,
        ApiError::FactorExists,
        ApiError::FactorNotFound,
        ApiError::PasskeyRefused,
        ApiError::PasskeyLimit,
        ApiError::PasskeysDisabled,
        ApiError::SignupRefused("Invitation only.".into()),
        ApiError::UnknownProvider,
        ApiError::ProviderTokenRefused,
        ApiError::LinkRequired,
        ApiError::IdentityTaken,
        ApiError::LastSignInMethod,
        ApiError::RedirectNotAllowed,
        ApiError::FederationStateInvalid,
        ApiError::BrowserSignInOff,
    ];
    // No wildcard arm: a new variant stops this compiling until it is listed above too.
    let listed: BTreeSet<usize> = all
        .iter()
        .map(|e| match e {
            ApiError::Validation(_) => 0,
            ApiError::MalformedJson => 1,
            ApiError::UnsupportedMediaType => 2,
            ApiError::PayloadTooLarge(_) => 3,
            ApiError::Unauthorized => 4,
            ApiError::InvalidCredentials => 5,
            ApiError::Forbidden => 6,
            ApiError::CurrentPasswordIncorrect => 7,
            ApiError::PhoneTaken => 8,
            ApiError::NotFound => 9,
            ApiError::MethodNotAllowed => 10,
            ApiError::TooManyAttempts { .. } => 11,
            ApiError::Unavailable => 12,
            ApiError::Internal => 13,
            ApiError::WeakPassword(_) => 14,
            ApiError::AccountDisabled => 15,
            ApiError::UserNotFound => 16,
            ApiError::InvalidPhone(_) => 17,
            ApiError::InvalidCode => 18,
            ApiError::PhoneUnverified => 19,
            ApiError::EmailTaken => 20,
            ApiError::EmailUnverified => 21,
            ApiError::InvalidEmail(_) => 22,
            ApiError::StepUpRequired => 23,
            ApiError::MfaEnrolmentRequired => 24,
            ApiError::MfaDisabled => 25,
            ApiError::FactorExists => 26,
            ApiError::FactorNotFound => 27,
            ApiError::PasskeyRefused => 28,
            ApiError::PasskeyLimit => 29,
            ApiError::PasskeysDisabled => 30,
            ApiError::SignupRefused(_) => 31,
            ApiError::UnknownProvider => 32,
            ApiError::ProviderTokenRefused => 33,
            ApiError::LinkRequired => 34,
            ApiError::IdentityTaken => 35,
            ApiError::LastSignInMethod => 36,
            ApiError::RedirectNotAllowed => 37,
            ApiError::FederationStateInvalid => 38,
            ApiError::BrowserSignInOff => 39,
        })
        .collect();
    assert_eq!(listed, (0..40).collect(), "a variant is missing above");
    all
}

#[test]
fn problem_codes_are_exactly_the_codes_api_error_produces() {
    let doc = doc();
    let enumerated: Vec<String> = doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .expect("ProblemCode enum")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let documented: BTreeSet<String> = enumerated.iter().cloned().collect();
    assert_eq!(
        documented.len(),
        enumerated.len(),
        "ProblemCode repeats a code"
    );
    let produced: Vec<&str> = every_api_error().iter().map(ApiError::code).collect();
    let produced_set: BTreeSet<String> = produced.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        produced_set.len(),
        produced.len(),
        "two variants share a code"
    );
    assert_eq!(documented, produced_set);
    // The Problem schema's `code` is that enum.
    assert_eq!(
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["$ref"],
        "#/components/schemas/ProblemCode"
    );
}

/// Every documented error response lists codes whose variant has that status, and each such
/// variant, rendered, matches the response (body and headers). This is also the check for
/// 500 and 503 in their rendered form; `full_flow` produces them for real as well.
#[test]
fn each_documented_error_code_renders_as_its_response() {
    let doc = doc();
    let errors = every_api_error();
    let mut problems = Vec::new();
    for (method, path, status, code) in documented(&doc) {
        if code.is_empty() {
            continue;
        }
        let Some(variant) = errors.iter().find(|e| e.code() == code) else {
            problems.push(format!(
                "{method} {path} {status}: {code} is no ApiError code"
            ));
            continue;
        };
        if variant.status().as_u16() != status {
            problems.push(format!(
                "{method} {path} {status}: {code} is status {}",
                variant.status()
            ));
        }
        let rendered = every_api_error()
            .into_iter()
            .find(|e| e.code() == code)
            .unwrap()
            .into_response();
        for d in disagreements(&doc, &method, &path, &Answer::of(rendered)) {
            problems.push(format!("{method} {path} {status} {code}: {d}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. Every documented response happens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_documented_status_and_code_is_produced_by_the_handlers() {
    let doc = doc();
    let flow = full_flow().await;
    let produced: BTreeSet<(String, String, u16, String)> = flow
        .seen
        .iter()
        .map(|s| {
            (
                s.method.clone(),
                s.path.clone(),
                s.answer.status.as_u16(),
                s.answer.code().to_owned(),
            )
        })
        .collect();
    let missing: Vec<_> = documented(&doc).difference(&produced).cloned().collect();
    assert!(
        missing.is_empty(),
        "documented but never produced: {missing:?}\nthe flow gave:\n{}",
        flow.summary()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Every response matches the document
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_response_of_the_full_flow_matches_its_documented_schema_and_headers() {
    let doc = doc();
    let flow = full_flow().await;
    let mut problems = Vec::new();
    for s in &flow.seen {
        for d in disagreements(&doc, &s.method, &s.path, &s.answer) {
            problems.push(format!(
                "{} {} -> {} ({}): {d}\n    body {}",
                s.method,
                s.path,
                s.answer.status.as_u16(),
                s.what,
                s.answer.body
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checks above are not vacuous: answers the API must never give are refused.
#[test]
fn the_document_refuses_answers_the_api_must_not_give() {
    let doc = doc();
    let json_answer = |status: u16, content_type: &str, body: Value| {
        Answer::of(
            lambda_http::Response::builder()
                .status(status)
                .header("content-type", content_type)
                .header("cache-control", "no-store")
                .body(lambda_http::Body::Text(body.to_string()))
                .unwrap(),
        )
    };
    let user = json!({"_id": {"$oid": "0123456789abcdef01234567"}, "first_name": "John",
                      "last_name": "Smith", "phone": "1234567890"});
    let good = json_answer(201, "application/json", user.clone());
    assert_eq!(
        disagreements(&doc, "POST", "/signup", &good),
        Vec::<String>::new()
    );
    let mut leaky = user.clone();
    leaky["password_hash"] = json!("$argon2id$...");
    let mut bad_id = user.clone();
    bad_id["_id"] = json!("0123456789abcdef01234567");
    let bad_problem = json!({"type": "https://user-api.dev/problems/teapot", "title": "t",
                             "status": 400, "detail": "d", "code": "teapot"});
    let validation_without_errors = json!({"type": "https://user-api.dev/problems/validation-failed",
        "title": "t", "status": 400, "detail": "d", "code": "validation_failed"});
    let phone_taken_as_400 = json!({"type": "https://user-api.dev/problems/phone-taken",
        "title": "t", "status": 400, "detail": "d", "code": "phone_taken"});
    let mut no_retry_after = Answer::of(
        ApiError::TooManyAttempts {
            retry_after_secs: 3,
        }
        .into_response(),
    );
    assert_eq!(
        disagreements(&doc, "POST", "/login", &no_retry_after),
        Vec::<String>::new()
    );
    no_retry_after.headers.remove("retry-after");
    let mut no_www_authenticate = Answer::of(ApiError::Unauthorized.into_response());
    no_www_authenticate.headers.remove("www-authenticate");
    let refused = |method: &str, path: &str, answer: Answer| {
        assert!(
            !disagreements(&doc, method, path, &answer).is_empty(),
            "{method} {path} accepted {} {:?} {}",
            answer.status,
            answer.headers,
            answer.body
        );
    };
    let (json, problem) = ("application/json", "application/problem+json");
    refused("POST", "/signup", json_answer(201, json, leaky));
    refused("POST", "/signup", json_answer(201, json, bad_id));
    refused("POST", "/signup", json_answer(201, problem, user.clone()));
    refused("POST", "/signup", json_answer(200, json, user.clone()));
    refused(
        "GET",
        "/user",
        json_answer(400, problem, validation_without_errors),
    );
    refused("POST", "/signup", json_answer(400, problem, bad_problem));
    refused(
        "POST",
        "/signup",
        json_answer(400, problem, phone_taken_as_400),
    );
    refused("POST", "/logout", json_answer(204, json, json!({})));
    refused("POST", "/login", no_retry_after);
    refused("GET", "/user", no_www_authenticate);
}

// ---------------------------------------------------------------------------------------------
// 6. Every body the schema accepts gets past the edge
// ---------------------------------------------------------------------------------------------

/// A validator for `schema` on its own (a property's schema: no references).
fn standalone(schema: &Value) -> Arc<Validator> {
    Arc::new(
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .build(schema)
            .unwrap_or_else(|e| panic!("schema {schema}: {e}")),
    )
}

/// Values `schema` accepts: generated from its `enum`, `type`, `pattern`, lengths and
/// `properties`, then filtered through the schema itself, so every value is valid.
fn valid_values(schema: &Value) -> BoxedStrategy<Value> {
    let shapes = schema
        .get("oneOf")
        .and_then(Value::as_array)
        .filter(|b| b.iter().all(|b| b.get("type").is_some()));
    let strategy = if let Some(branches) = shapes {
        // Each alternative shape on its own (a link by provider token or by a sign-in code);
        // a `oneOf` of `required` lists only narrows the object its schema describes.
        prop::strategy::Union::new(branches.iter().map(valid_values)).boxed()
    } else if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        prop::sample::select(values.clone()).boxed()
    } else {
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
            other => panic!("the body fuzzer needs a type or enum, got {other} in {schema}"),
        };
        let options: Vec<BoxedStrategy<Value>> = types
            .into_iter()
            .map(|t| match t {
                "null" => Just(Value::Null).boxed(),
                "string" => valid_strings(schema),
                "object" => valid_objects(schema),
                "array" => {
                    let max = schema["maxItems"].as_u64().unwrap_or(3).min(3) as usize;
                    prop::collection::vec(valid_values(&schema["items"]), 0..=max)
                        .prop_map(Value::Array)
                        .boxed()
                }
                other => panic!("the body fuzzer has no generator for type {other}: add one"),
            })
            .collect();
        prop::strategy::Union::new(options).boxed()
    };
    let check = standalone(schema);
    strategy
        .prop_filter("valid for its schema", move |v| check.is_valid(v))
        .boxed()
}

/// Strings matching the `pattern` (anchors dropped: proptest generates whole strings), pieces of
/// them joined so the lengths reach `maxLength` and past it. An unbounded `*` repeats at most
/// `maxLength / 16` times, so short fields (a phone) mostly fit their limit.
fn valid_strings(schema: &Value) -> BoxedStrategy<Value> {
    let max = schema["maxLength"].as_u64().unwrap_or(64) as usize;
    let piece = match schema.get("pattern").and_then(Value::as_str) {
        Some(p) => {
            let inner = p
                .strip_prefix('^')
                .and_then(|p| p.strip_suffix('$'))
                .unwrap_or_else(|| panic!("pattern {p} is not anchored at both ends"));
            assert!(!inner.contains("\\*"), "pattern {p}: escaped '*'");
            let inner = inner.replace('*', &format!("{{0,{}}}", (max / 16).max(1)));
            let strings = |inner: &str| {
                proptest::string::string_regex(inner)
                    .unwrap_or_else(|e| panic!("pattern {p}: {e}"))
                    .boxed()
            };
            // A random character of `\u0080-\uFFFF` is rarely a letter or a valid IDNA
            // label, so nearly every address from the whole pattern is (rightly) refused by
            // the parser: half come from its ASCII part, which mostly parses.
            let ascii = inner.replace("\\u0080-\\uFFFF", "");
            if ascii == inner {
                strings(&inner)
            } else {
                prop_oneof![strings(&inner), strings(&ascii)].boxed()
            }
        }
        None => proptest::string::string_regex("(?s).{0,32}")
            .unwrap()
            .boxed(),
    };
    // An address is one piece: two joined hold two `@` and match nothing.
    let pieces = if schema["pattern"].as_str().is_some_and(|p| p.contains('@')) {
        1..=1
    } else {
        1..=max / 16 + 2
    };
    prop::collection::vec(piece, pieces)
        .prop_map(|pieces| Value::String(pieces.concat()))
        .boxed()
}

/// Objects with every required property and each optional one or not. An open object (a
/// browser's `PublicKeyCredential`, whose members grow with the spec) gets its declared
/// properties only: whatever else a client adds is not the fuzzer's to invent.
fn valid_objects(schema: &Value) -> BoxedStrategy<Value> {
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_str().unwrap())
        .collect();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| {
            let is_required = required.contains(name.as_str());
            let (name, values) = (name.clone(), valid_values(s));
            let field = values.prop_map(move |v| (name.clone(), v));
            if is_required {
                field.prop_map(Some).boxed()
            } else {
                prop::option::of(field).boxed()
            }
        })
        .collect();
    fields
        .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect()))
        .boxed()
}

/// Random bodies valid for each documented request schema, sent with valid credentials to a
/// fresh API on the embedded store: the schema and the edge's parsers (`domain/src/types.rs`)
/// must agree, so none is answered 400 `validation_failed`. `SCHEMA_FUZZ_CASES` sets the cases
/// per route (default 300).
#[test]
fn bodies_the_documented_schema_accepts_are_never_refused_as_invalid() {
    let doc = doc();
    let cases = std::env::var("SCHEMA_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut fuzzed = 0;
    for ((method, path), op) in operations(&doc) {
        let route = format!("{method} {path}");
        let Some(file) = body_schema_file(&op, &route) else {
            continue;
        };
        fuzzed += 1;
        let (_, _, src) = SOURCES.iter().find(|(_, name, _)| *name == file).unwrap();
        let schema: Value = serde_json::from_str(src).unwrap();
        let whole = compiled_schema(&file);
        let bodies = valid_values(&schema)
            .prop_filter("valid for the route's schema", move |b| whole.is_valid(b));
        let secured = !op
            .get("security")
            .unwrap_or(&doc["security"])
            .as_array()
            .is_none_or(Vec::is_empty);
        let app = rt
            .block_on(TestApp::with(Backend::Memory, |_| {}))
            .with_passkeys(relying_party(10));
        let caller = std::sync::Mutex::new(rt.block_on(app.signed_in("1234567890")));
        let seen = std::sync::Mutex::new(BTreeMap::<(u16, String), u32>::new());
        // A body sent once is not sent again (logout's schema admits three bodies in all).
        let sent = std::sync::Mutex::new(BTreeSet::<String>::new());
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        });
        runner
            .run(&(bodies, any::<bool>()), |(mut body, own_id)| {
                let l = caller.lock().unwrap().clone();
                if own_id && body.get("_id").is_some() {
                    // Half the updates name the caller, so they reach the service too.
                    body["_id"] = json!({"$oid": l.id});
                }
                if !sent.lock().unwrap().insert(body.to_string()) {
                    return Ok(());
                }
                let mut ev = with_json_body(event_for(&method, &path), &body);
                if secured {
                    ev = with_bearer(ev, &l);
                }
                let a = rt.block_on(app.call(&ev));
                *seen
                    .lock()
                    .unwrap()
                    .entry((a.status.as_u16(), a.code().to_owned()))
                    .or_default() += 1;
                if a.status == 204 {
                    // A logout ended the session: later cases get a live one.
                    *caller.lock().unwrap() =
                        rt.block_on(login(&app.state, "1234567890", "securepassword123"));
                }
                prop_assert!(
                    !(a.status == 400 && a.code() == "validation_failed"),
                    "{route}: the schema accepts {body} but the route refused it: {:?}",
                    a.body
                );
                prop_assert!(
                    a.status.as_u16() < 500,
                    "{route}: {} {:?}",
                    a.status,
                    a.body
                );
                // (A refresh body is itself a credential: a random one is refused, rightly.)
                prop_assert!(
                    !secured || a.code() != "unauthorized",
                    "{route}: the credentials were refused: {:?}",
                    a.body
                );
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let seen = seen.into_inner().unwrap();
        eprintln!("schema fuzz {route}: {seen:?}");
        // Not vacuous: bodies reach past the edge to the service.
        assert!(
            // (`invalid_code` comes from the service: the code was compared.)
            // (`passkey_refused` too: the relying party read the credential and checked it.)
            seen.keys().any(|(status, code)| *status != 400
                || code == "weak_password"
                || code == "invalid_code"
                || code == "passkey_refused"),
            "{route}: no body got past the edge: {seen:?}"
        );
    }
    assert_eq!(fuzzed, SOURCES.len(), "every request schema is fuzzed");
}
