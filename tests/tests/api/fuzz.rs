//! Property-based fuzzing of the HTTP edge: random methods, paths, headers and bodies (garbage,
//! JSON of every shape, near-valid requests) through the shared router. Whatever comes in, the
//! answer is a success or a well-formed problem+json 4xx: never a panic, never a 5xx.
//! `FUZZ_CASES` sets the number of cases (default 10,000).

use api_tests::*;
use base64::{Engine, engine::general_purpose::STANDARD};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use serde_json::{Map, Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "[0-9 ()+.-]{0,20}".prop_map(Value::String),
        Just(json!("$ne")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "first_name",
            "middle_name",
            "last_name",
            "password",
            "phone",
            "_id",
            "$oid",
            "scope",
            "current_password",
            "$ne",
            "$gt",
            "$where",
            "__proto__",
        ])
        .prop_map(str::to_owned),
        "[a-z_$]{1,12}",
    ]
}

/// Bodies shaped like the real ones, with values from anywhere.
fn near_valid() -> impl Strategy<Value = Value> {
    let phone = prop_oneof![
        Just("1234567890".to_owned()),
        "[0-9]{7,15}",
        "\\+[0-9]{1,3} \\([0-9]{3}\\) [0-9]{3}-[0-9]{4}",
        ".{0,20}"
    ];
    let password = prop_oneof![
        "[a-zA-Z0-9 ]{0,20}",
        ".{0,140}",
        Just("securepassword123".to_owned())
    ];
    let name = prop_oneof!["[A-Za-z]{1,12}", ".{0,120}"];
    let email = prop_oneof!["[a-z]{1,10}@example\\.com", ".{0,40}"];
    (phone, password, name.clone(), name, json_value(), any::<u8>(), email).prop_map(|(phone, password, first, last, extra, pick, email)| {
        match pick % 7 {
            0 => json!({"first_name": first, "last_name": last, "password": password, "phone": phone}),
            1 => json!({"phone": phone, "password": password}),
            2 => json!({"_id": {"$oid": "0123456789abcdef01234567"}, "last_name": last, "phone": extra}),
            3 => json!({"scope": extra}),
            4 => json!({"first_name": first, "last_name": last, "password": password, "email": email}),
            5 => json!({"email": email, "password": password}),
            _ => json!({"first_name": extra, "last_name": last, "password": password, "phone": phone}),
        }
    })
}

#[derive(Debug, Clone)]
enum BodyKind {
    None,
    Json(Value),
    Raw(String),
    Base64(Vec<u8>),
}

fn body() -> impl Strategy<Value = BodyKind> {
    prop_oneof![
        1 => Just(BodyKind::None),
        3 => json_value().prop_map(BodyKind::Json),
        4 => near_valid().prop_map(BodyKind::Json),
        2 => ".{0,200}".prop_map(BodyKind::Raw),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(BodyKind::Base64),
    ]
}

#[derive(Debug, Clone)]
struct Input {
    method: String,
    path: String,
    content_type: Option<String>,
    auth: u8,
    session: u8,
    body: BodyKind,
}

fn input() -> impl Strategy<Value = Input> {
    let any_method = prop::sample::select(vec![
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD",
    ])
    .prop_map(str::to_owned);
    let any_path = prop_oneof![
        prop::sample::select(vec!["/signup", "/login", "/logout", "/user", "/user/", "/"])
            .prop_map(str::to_owned),
        "/[a-z/%.]{0,30}",
    ];
    let routes: Vec<(String, String)> = edge::routes::Endpoint::ALL
        .iter()
        .map(|r| (r.method().to_owned(), r.path().to_owned()))
        .collect();
    // Signup gets a weight of its own: with 23 routes a valid signup (201) would otherwise be
    // rare enough that a run could miss it.
    let target = prop_oneof![
        4 => prop::sample::select(routes),
        1 => Just(("POST".to_owned(), "/signup".to_owned())),
        1 => (any_method, any_path),
    ];
    let ct = prop_oneof![
        1 => Just(None),
        6 => Just(Some("application/json".to_owned())),
        1 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ];
    (target, ct, any::<u8>(), any::<u8>(), body()).prop_map(
        |((method, path), content_type, auth, session, body)| Input {
            method,
            path,
            content_type,
            auth,
            session,
            body,
        },
    )
}

fn check(a: &Answer) -> Result<(), TestCaseError> {
    let status = a.status.as_u16();
    prop_assert!(status < 500, "5xx: {} {:?}", status, a.body);
    if status >= 400 {
        prop_assert_eq!(a.content_type(), "application/problem+json");
        prop_assert_eq!(a.body["status"].as_u64(), Some(u64::from(status)));
        for field in ["type", "title", "detail", "code"] {
            prop_assert!(
                a.body[field].is_string(),
                "problem lacks {}: {:?}",
                field,
                a.body
            );
        }
    } else if status == 204 {
        prop_assert!(a.body.is_null());
    } else if a.content_type().starts_with("text/html") {
        // The one page: what an emailed link opens.
        prop_assert_eq!(status, 200);
    } else {
        prop_assert!((200..300).contains(&status), "unexpected {}", status);
        prop_assert_eq!(a.content_type(), "application/json");
        prop_assert!(a.body.is_object(), "{:?}", a.body);
    }
    Ok(())
}

#[test]
fn any_request_gets_a_success_or_a_well_formed_4xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (state, _) = rt.block_on(state_on(Backend::Memory, settings));
    let current = std::sync::Mutex::new(rt.block_on(signed_in(&state, "1234567890")));
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10_000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    runner
        .run(&input(), |inp| {
            let l = current.lock().unwrap().clone();
            let mut ev = event("signup");
            ev["rawPath"] = json!(inp.path);
            ev["requestContext"]["http"]["path"] = json!(inp.path);
            ev["requestContext"]["http"]["method"] = json!(inp.method);
            ev = with_header(ev, "content-type", inp.content_type.as_deref());
            let auth = match inp.auth % 4 {
                0 => None,
                1 => Some(l.token.clone()),
                2 => Some(format!("Bearer {}", l.token)),
                _ => Some(format!("Bearer x{}", inp.auth)),
            };
            ev = with_header(ev, "authorization", auth.as_deref());
            let session = match inp.session % 3 {
                0 => None,
                1 => Some(l.session_token.clone()),
                _ => Some("garbage-session".to_owned()),
            };
            ev = with_header(ev, "session-token", session.as_deref());
            let obj = ev.as_object_mut().unwrap();
            match &inp.body {
                BodyKind::None => {
                    obj.remove("body");
                }
                BodyKind::Json(v) => {
                    obj.insert("body".into(), json!(v.to_string()));
                }
                BodyKind::Raw(s) => {
                    obj.insert("body".into(), json!(s));
                }
                BodyKind::Base64(b) => {
                    obj.insert("body".into(), json!(STANDARD.encode(b)));
                    obj.insert("isBase64Encoded".into(), json!(true));
                }
            }
            let a = rt.block_on(call(&state, &ev));
            *seen.lock().unwrap().entry(a.status.as_u16()).or_default() += 1;
            if a.status == 204 {
                // A case logged the session out; later cases get a live one again.
                let body = json!({"phone": "1234567890", "password": "securepassword123"});
                let again = rt.block_on(call(&state, &with_body(event("login"), &body)));
                // A fuzz case may have moved the user to another phone; then take the number anew.
                *current.lock().unwrap() = if again.status == 200 {
                    rt.block_on(login(&state, "1234567890", "securepassword123"))
                } else {
                    rt.block_on(signed_in(&state, "1234567890"))
                };
            }
            check(&a)
        })
        .unwrap();
    // The generator must reach past the edge, or the property says little.
    let seen = seen.into_inner().unwrap();
    eprintln!("fuzz statuses: {seen:?}");
    for status in [200, 201, 400, 401, 404, 405, 415] {
        assert!(
            seen.contains_key(&status),
            "no case produced {status}: {seen:?}"
        );
    }
}
