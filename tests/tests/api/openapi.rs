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

use api_tests::*;
use jsonschema::{Draft, Validator};
use mongodb::bson::{doc, oid::ObjectId};
use serde_json::{Value, json};
use shared::{
    State,
    clock::{Clock, ManualClock},
    error::ApiError,
    routes::Endpoint,
    schema::SOURCES,
    state::StoreKind,
    store::mongo::{MongoOptions, MongoStore},
    types::UserId,
};

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

/// The event in `events/` whose `routeKey` is "METHOD path".
fn event_for(method: &str, path: &str) -> Value {
    let key = format!("{method} {path}");
    for entry in std::fs::read_dir(root().join("events")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let ev: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            if ev["routeKey"] == key.as_str() {
                return ev;
            }
        }
    }
    panic!("no event in events/ has routeKey {key}")
}

fn without_body(mut ev: Value) -> Value {
    ev.as_object_mut().unwrap().remove("body");
    ev
}

fn json_body(ev: Value, body: &Value) -> Value {
    with_header(
        with_body(ev, body),
        "content-type",
        Some("application/json"),
    )
}

fn authed(ev: Value, l: &Login) -> Value {
    with_auth(ev, &format!("Bearer {}", l.token), &l.session_token)
}

fn login_of(a: &Answer) -> Login {
    assert_eq!(a.status, 200, "login failed: {:?}", a.body);
    Login {
        id: a.body["user_id"]["$oid"].as_str().unwrap().to_owned(),
        token: a.body["token"].as_str().unwrap().to_owned(),
        session_token: a.body["session_token"].as_str().unwrap().to_owned(),
    }
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

/// The same request as an unsigned one would arrive: no IAM identity in its context.
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
        &json_body(event_for("POST", "/signup"), &signup_body(&phone)),
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

/// A body over the 16 KiB limit.
fn huge(field: &str) -> Value {
    json!({ field: "x".repeat(20_000) })
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

/// Signup, login, GET and PUT /user and logout, each success and each failure the document
/// lists, through the shared handlers against MongoDB. 503 comes from an unreachable
/// database, 500 from documents the store cannot read and from an insert the database refuses.
async fn full_flow() -> Flow {
    let mut f = Flow::default();
    let (state, _clock) = mongo_state().await;
    let signup = || event_for("POST", "/signup");
    let login = || event_for("POST", "/login");
    let logout = || event_for("POST", "/logout");
    let get_user = || event_for("GET", "/user");

    // POST /signup
    f.send(
        &state,
        "signup",
        json_body(signup(), &signup_body("1234567890")),
    )
    .await;
    f.send(
        &state,
        "signup of a taken phone, formatted",
        json_body(signup(), &signup_body("123-456-7890")),
    )
    .await;
    f.send(
        &state,
        "signup without a middle name",
        json_body(
            signup(),
            &json!({"first_name": "Ann", "middle_name": null, "last_name": "Lee",
                    "password": "securepassword123", "phone": "+1 (202) 555-0101"}),
        ),
    )
    .await;
    f.send(
        &state,
        "signup with operator injection",
        json_body(
            signup(),
            &json!({"first_name": "J", "last_name": "S", "password": "longenough1",
                    "phone": {"$ne": null}}),
        ),
    )
    .await;
    f.send(
        &state,
        "signup with a common password",
        json_body(
            signup(),
            &json!({"first_name": "J", "last_name": "S", "password": "password123",
                    "phone": "5550000001"}),
        ),
    )
    .await;
    f.send(
        &state,
        "signup with malformed JSON",
        with_raw_body(signup(), "{\"first_name\": "),
    )
    .await;
    f.send(
        &state,
        "signup over 16 KiB",
        json_body(signup(), &huge("first_name")),
    )
    .await;
    f.send(
        &state,
        "signup without Content-Type",
        with_header(
            with_body(signup(), &signup_body("5550000002")),
            "content-type",
            None,
        ),
    )
    .await;
    f.send(
        &state,
        "signup as text/plain",
        with_header(
            with_body(signup(), &signup_body("5550000003")),
            "content-type",
            Some("text/plain"),
        ),
    )
    .await;

    // POST /login
    let creds = json!({"phone": "1234567890", "password": "securepassword123"});
    let a = login_of(f.send(&state, "login", json_body(login(), &creds)).await);
    f.send(
        &state,
        "login with a wrong password",
        json_body(
            login(),
            &json!({"phone": "1234567890", "password": "wrong-password"}),
        ),
    )
    .await;
    f.send(
        &state,
        "login of an unknown phone",
        json_body(
            login(),
            &json!({"phone": "9999999999", "password": "securepassword123"}),
        ),
    )
    .await;
    f.send(
        &state,
        "login with an unknown field",
        json_body(
            login(),
            &json!({"phone": "1234567890", "password": "x", "admin": true}),
        ),
    )
    .await;
    f.send(
        &state,
        "login with malformed JSON",
        with_raw_body(login(), "phone=1234567890"),
    )
    .await;
    f.send(
        &state,
        "login over 16 KiB",
        json_body(login(), &huge("password")),
    )
    .await;
    f.send(
        &state,
        "login without Content-Type",
        with_header(with_body(login(), &creds), "content-type", None),
    )
    .await;
    let ghost = json!({"phone": "5550009999", "password": "wrong-password"});
    for _ in 0..5 {
        f.send(
            &state,
            "login failure towards the lock",
            json_body(login(), &ghost),
        )
        .await;
    }
    f.send(&state, "login while locked", json_body(login(), &ghost))
        .await;

    // GET /user
    f.send(&state, "profile with Bearer", authed(get_user(), &a))
        .await;
    f.send(
        &state,
        "profile with the bare JWT",
        with_auth(get_user(), &a.token, &a.session_token),
    )
    .await;
    f.send(
        &state,
        "profile without credentials",
        with_header(
            with_header(get_user(), "authorization", None),
            "session-token",
            None,
        ),
    )
    .await;
    f.send(
        &state,
        "profile with another session's token",
        with_auth(get_user(), &a.token, &"A".repeat(43)),
    )
    .await;

    // PUT /user
    f.send(
        &state,
        "signup of a second user",
        json_body(signup(), &signup_body("2222222222")),
    )
    .await;
    let b_creds = json!({"phone": "2222222222", "password": "securepassword123"});
    let b = login_of(
        f.send(
            &state,
            "login of the second user",
            json_body(login(), &b_creds),
        )
        .await,
    );
    f.send(
        &state,
        "update names",
        update_event(&a, json!({"last_name": "Smithers", "first_name": "Jon"})),
    )
    .await;
    f.send(
        &state,
        "update removing the middle name",
        update_event(&a, json!({"middle_name": null})),
    )
    .await;
    f.send(
        &state,
        "update without credentials",
        with_header(
            update_event(&a, json!({"last_name": "X"})),
            "authorization",
            None,
        ),
    )
    .await;
    f.send(&state, "update with no field", update_event(&a, json!({})))
        .await;
    f.send(
        &state,
        "update with a password and no current_password",
        update_event(&a, json!({"password": "a-new-password-1"})),
    )
    .await;
    f.send(
        &state,
        "update of the phone without current_password",
        update_event(&a, json!({"phone": "5550000077"})),
    )
    .await;
    f.send(
        &state,
        "update to a common password",
        update_event(
            &a,
            json!({"password": "password123", "current_password": "securepassword123"}),
        ),
    )
    .await;
    f.send(
        &state,
        "update with malformed JSON",
        with_raw_body(update_event(&a, json!({})), "{\"_id\""),
    )
    .await;
    f.send(
        &state,
        "update of another user's _id",
        with_body(
            update_event(&a, json!({})),
            &json!({"_id": {"$oid": b.id}, "last_name": "Evil"}),
        ),
    )
    .await;
    f.send(
        &state,
        "update to a taken phone",
        update_event(
            &a,
            json!({"phone": "222-222-2222", "current_password": "securepassword123"}),
        ),
    )
    .await;
    f.send(
        &state,
        "update over 16 KiB",
        update_event(&a, huge("last_name")),
    )
    .await;
    f.send(
        &state,
        "update without Content-Type",
        with_header(
            update_event(&a, json!({"last_name": "X"})),
            "content-type",
            None,
        ),
    )
    .await;
    let wrong_current =
        json!({"password": "a-new-password-1", "current_password": "not-the-password"});
    for _ in 0..5 {
        f.send(
            &state,
            "password change with a wrong current_password",
            update_event(&b, wrong_current.clone()),
        )
        .await;
    }
    f.send(
        &state,
        "password change while locked",
        update_event(&b, wrong_current.clone()),
    )
    .await;

    // POST /logout
    f.send(
        &state,
        "logout with an unknown scope",
        json_body(authed(logout(), &a), &json!({"scope": "everywhere"})),
    )
    .await;
    f.send(
        &state,
        "logout with malformed JSON",
        with_header(
            with_raw_body(authed(logout(), &a), "scope=global"),
            "content-type",
            Some("application/json"),
        ),
    )
    .await;
    f.send(
        &state,
        "logout over 16 KiB",
        json_body(authed(logout(), &a), &huge("scope")),
    )
    .await;
    f.send(
        &state,
        "logout with a body and no Content-Type",
        with_body(authed(logout(), &a), &json!({"scope": "global"})),
    )
    .await;
    f.send(
        &state,
        "logout without credentials",
        with_header(
            with_header(logout(), "authorization", None),
            "session-token",
            None,
        ),
    )
    .await;
    f.send(&state, "logout", authed(logout(), &a)).await;
    f.send(&state, "profile after logout", authed(get_user(), &a))
        .await;
    f.send(
        &state,
        "global logout",
        json_body(authed(logout(), &b), &json!({"scope": "global"})),
    )
    .await;

    // DELETE /user
    let del = || event_for("DELETE", "/user");
    let pw = |p: &str| json!({ "current_password": p });
    let d = signed_in(&state, "5550000401").await;
    f.send(
        &state,
        "delete without credentials",
        json_body(
            with_header(
                with_header(del(), "authorization", None),
                "session-token",
                None,
            ),
            &pw("securepassword123"),
        ),
    )
    .await;
    f.send(
        &state,
        "delete without current_password",
        json_body(authed(del(), &d), &json!({})),
    )
    .await;
    f.send(
        &state,
        "delete with malformed JSON",
        with_raw_body(authed(del(), &d), "{"),
    )
    .await;
    f.send(
        &state,
        "delete over 16 KiB",
        json_body(authed(del(), &d), &huge("current_password")),
    )
    .await;
    f.send(
        &state,
        "delete as text/plain",
        with_header(
            json_body(authed(del(), &d), &pw("x")),
            "content-type",
            Some("text/plain"),
        ),
    )
    .await;
    for _ in 0..5 {
        f.send(
            &state,
            "delete with a wrong password",
            json_body(authed(del(), &d), &pw("wrong-password")),
        )
        .await;
    }
    f.send(
        &state,
        "delete while locked",
        json_body(authed(del(), &d), &pw("securepassword123")),
    )
    .await;
    let e = signed_in(&state, "5550000402").await;
    f.send(
        &state,
        "delete",
        json_body(authed(del(), &e), &pw("securepassword123")),
    )
    .await;

    // Admin routes, with and without an IAM identity.
    let (tid, tphone) = throwaway(&state).await;
    let find = "/admin/users";
    f.send(
        &state,
        "admin find",
        admin_event_for("GET", find, &tid, &tphone),
    )
    .await;
    f.send(
        &state,
        "admin find, no such phone",
        admin_event_for("GET", find, &tid, "+19995550000"),
    )
    .await;
    f.send(
        &state,
        "admin find, not a phone",
        admin_event_for("GET", find, &tid, "abc"),
    )
    .await;
    f.send(
        &state,
        "admin find without IAM",
        without_iam(admin_event_for("GET", find, &tid, &tphone)),
    )
    .await;
    let by_id = [
        ("GET", "/admin/users/{id}"),
        ("POST", "/admin/users/{id}/logout"),
        ("POST", "/admin/users/{id}/enable"),
        ("POST", "/admin/users/{id}/disable"),
    ];
    for (m, p) in by_id {
        f.send(&state, "admin op", admin_event_for(m, p, &tid, &tphone))
            .await;
        f.send(
            &state,
            "admin op, bad id",
            admin_event_for(m, p, "xyz", &tphone),
        )
        .await;
        f.send(
            &state,
            "admin op, unknown id",
            admin_event_for(m, p, &UserId::new().to_hex(), &tphone),
        )
        .await;
        f.send(
            &state,
            "admin op without IAM",
            without_iam(admin_event_for(m, p, &tid, &tphone)),
        )
        .await;
    }
    f.send(
        &state,
        "login to a disabled account",
        json_body(
            login(),
            &json!({"phone": tphone, "password": "securepassword123"}),
        ),
    )
    .await;
    let gone = "/admin/users/{id}";
    f.send(
        &state,
        "admin delete",
        admin_event_for("DELETE", gone, &tid, &tphone),
    )
    .await;
    f.send(
        &state,
        "admin delete again",
        admin_event_for("DELETE", gone, &tid, &tphone),
    )
    .await;
    f.send(
        &state,
        "admin delete, bad id",
        admin_event_for("DELETE", gone, "xyz", &tphone),
    )
    .await;
    f.send(
        &state,
        "admin delete without IAM",
        without_iam(admin_event_for("DELETE", gone, &tid, &tphone)),
    )
    .await;

    // 503: the database cannot be reached. The JWT is valid, so the session lookup is what fails.
    let down = unreachable_db_state().await;
    let uid = UserId::new();
    let nobody = Login {
        id: uid.to_hex(),
        token: down
            .tokens()
            .issue(&uid, "some-session", down.clock.now() as u64)
            .unwrap(),
        session_token: "A".repeat(43),
    };
    f.send(
        &down,
        "signup, database down",
        json_body(signup(), &signup_body("1234567890")),
    )
    .await;
    f.send(&down, "login, database down", json_body(login(), &creds))
        .await;
    f.send(&down, "logout, database down", authed(logout(), &nobody))
        .await;
    f.send(&down, "profile, database down", authed(get_user(), &nobody))
        .await;
    f.send(
        &down,
        "update, database down",
        update_event(&nobody, json!({"last_name": "X"})),
    )
    .await;
    f.send(
        &down,
        "delete, database down",
        json_body(authed(del(), &nobody), &pw("securepassword123")),
    )
    .await;
    for (m, p) in by_id.into_iter().chain([("GET", find), ("DELETE", gone)]) {
        f.send(
            &down,
            "admin, database down",
            admin_event_for(m, p, &nobody.id, "+12025550000"),
        )
        .await;
    }

    // 500: the database refuses the insert for a reason that is not a duplicate phone...
    let refusing = refusing_inserts_state().await;
    f.send(
        &refusing,
        "signup, insert refused",
        json_body(signup(), &signup_body("1234567890")),
    )
    .await;
    f.send(
        &refusing,
        "login, attempt counter refused",
        json_body(
            login(),
            &json!({"phone": "1234567890", "password": "securepassword123"}),
        ),
    )
    .await;
    // ...or refuses an operator's update of a user it already holds...
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
    for p in ["/admin/users/{id}/disable", "/admin/users/{id}/enable"] {
        f.send(
            &refusing,
            "admin update refused",
            admin_event_for("POST", p, &held.to_hex(), ""),
        )
        .await;
    }
    // ...or holds a user of another shape (read leniently: login still works) and a session
    // the store cannot read.
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
    f.send(
        &broken,
        "login, user document of another shape",
        json_body(
            login(),
            &json!({"phone": "3333333333", "password": "securepassword123"}),
        ),
    )
    .await;
    f.send(
        &broken,
        "profile, unreadable session",
        authed(get_user(), &c),
    )
    .await;
    f.send(
        &broken,
        "update, unreadable session",
        update_event(&c, json!({"last_name": "X"})),
    )
    .await;
    f.send(&broken, "logout, unreadable session", authed(logout(), &c))
        .await;
    f.send(
        &broken,
        "delete, unreadable session",
        json_body(authed(del(), &c), &pw("securepassword123")),
    )
    .await;
    f
}

// ---------------------------------------------------------------------------------------------
// 1. Routes
// ---------------------------------------------------------------------------------------------

/// (METHOD, path) of every HttpApi event in `template.yaml`, read line by line as
/// `tests/routes.rs` does.
fn template_routes() -> BTreeSet<RouteKey> {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let mut routes = BTreeSet::new();
    let mut path = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("Path:") {
            path = p.trim().to_owned();
        } else if let Some(m) = line.strip_prefix("Method:") {
            routes.insert((m.trim().to_uppercase(), path.clone()));
        }
    }
    routes
}

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
    assert_eq!(
        documented,
        template_routes(),
        "openapi.yaml vs template.yaml"
    );
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
        Some(body) => json_body(ev, &body),
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
            let unsigned = authed(
                without_iam(admin_event_for(&method, &path, &id, &phone)),
                &l,
            );
            let a = call(&state, &unsigned).await;
            assert_eq!(
                (a.status.as_u16(), a.code()),
                (403, "forbidden"),
                "{method} {path} without IAM: {:?}",
                a.body
            );
            continue;
        }
        let bare = with_header(
            with_header(event_for(&method, &path), "authorization", None),
            "session-token",
            None,
        );
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
            assert_eq!(
                a.status.is_success(),
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
                a.status.is_success(),
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

/// The schema file (name in `shared/schemas/`) the document gives as the request body of an
/// operation, after checking it is referenced, not copied, and is the file the server embeds.
fn body_schema_file(op: &Value, route: &str) -> Option<String> {
    let body = op.get("requestBody")?;
    let content = body["content"].as_object().unwrap();
    assert_eq!(
        content.keys().collect::<Vec<_>>(),
        ["application/json"],
        "{route}: the handlers read only application/json"
    );
    let reference = body["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{route}: the body schema must $ref a file in shared/schemas/"));
    let file = reference
        .strip_prefix("./shared/schemas/")
        .unwrap_or_else(|| panic!("{route}: {reference} is not in ./shared/schemas/"));
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
        other => panic!("no sample body for {other}: add one"),
    }
}

/// A body the route accepts, from its documented schema, for user 1234567890 of `state`.
async fn sample_for(doc: &Value, method: &str, path: &str, state: &State) -> Option<Value> {
    let op = &doc["paths"][path][method.to_lowercase()];
    let file = body_schema_file(op, &format!("{method} {path}"))?;
    let id = login(state, "1234567890", "securepassword123").await.id;
    Some(sample(
        &file,
        &id,
        &format!("55512{:05}", unique() % 100_000),
    ))
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
            authed(event_for(method, path), &l)
        };
        let Some(file) = file else {
            // No documented body: the route must ignore one, even garbage.
            let ev = with_header(
                with_raw_body(fresh().await, "{not json"),
                "content-type",
                Some("application/json"),
            );
            let a = call(state, &ev).await;
            assert!(
                a.status.is_success(),
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
            let a = call(state, &json_body(fresh().await, &body)).await;
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
        })
        .collect();
    assert_eq!(listed, (0..17).collect(), "a variant is missing above");
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
    let cases = [
        (
            "POST",
            "/signup",
            json_answer(201, "application/json", leaky),
        ),
        (
            "POST",
            "/signup",
            json_answer(201, "application/json", bad_id),
        ),
        (
            "POST",
            "/signup",
            json_answer(201, "application/problem+json", user.clone()),
        ),
        (
            "POST",
            "/signup",
            json_answer(200, "application/json", user.clone()),
        ),
        (
            "GET",
            "/user",
            json_answer(400, "application/problem+json", validation_without_errors),
        ),
        (
            "POST",
            "/signup",
            json_answer(400, "application/problem+json", bad_problem),
        ),
        (
            "POST",
            "/signup",
            json_answer(400, "application/problem+json", phone_taken_as_400),
        ),
        (
            "POST",
            "/logout",
            json_answer(204, "application/json", json!({})),
        ),
        ("POST", "/login", no_retry_after),
        ("GET", "/user", no_www_authenticate),
    ];
    for (method, path, answer) in cases {
        assert!(
            !disagreements(&doc, method, path, &answer).is_empty(),
            "{method} {path} accepted {} {:?} {}",
            answer.status,
            answer.headers,
            answer.body
        );
    }
}
