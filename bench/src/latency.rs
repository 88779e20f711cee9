//! Runtime-protocol latency: the first and the warm invocations of each release function,
//! on MongoDB and on the embedded store (update and logout through the seeded harness).

use std::time::Duration;

use api_tests::{load, runtime::Function};
use serde_json::{Value, json};

use crate::common::{Table, embedded_config, env_config, lambda_binary, median, ms, phone, spawn};
use api_tests::fresh_db;

pub(crate) async fn latency(table: &mut Table, warm_n: usize) {
    eprintln!("runtime-protocol latency ({warm_n} warm invocations each)");
    let db = fresh_db();
    let config = env_config(&db);
    let signup_ev = |i: usize| {
        api_tests::with_body(
            api_tests::event("signup"),
            &api_tests::signup_body(&phone(i)),
        )
    };
    let login_ev = |p: &str| {
        api_tests::with_body(
            api_tests::event("login"),
            &json!({"phone": p, "password": "securepassword123"}),
        )
    };

    // signup: every invocation a new phone.
    let (first, warm) = measure("signup", &config, 201, warm_n, signup_ev).await;
    report(
        table,
        "signup",
        "MongoDB",
        first,
        warm,
        "201, new phone each time; argon2id hash included",
    );

    // login of phone 0.
    let f = spawn(&lambda_binary("login"), "login", &config).await;
    f.init_time().await;
    let (s, body, first) = f.invoke(&login_ev(&phone(0))).await;
    assert_eq!(s, 200, "{body}");
    let mut warm = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..warm_n {
        let (s, body, t) = f.invoke(&login_ev(&phone(0))).await;
        assert_eq!(s, 200);
        warm.push(ms(t));
        sessions.push(body);
    }
    report(
        table,
        "login",
        "MongoDB",
        first,
        median(warm),
        "200; argon2id verify included",
    );
    let peak = load::peak_rss_kib(f.child.id()).unwrap_or(0);
    table.add(
        "Peak RSS of the login function after logins",
        format!("{:.1}", peak as f64 / 1024.0),
        "MiB",
        "<= 40",
        format!(
            "VmHWM of the release login binary after {} logins",
            warm_n + 1
        ),
    );
    // One more session for the first logout.
    let (_, extra, _) = f.invoke(&login_ev(&phone(0))).await;
    sessions.push(extra);
    drop(f);

    let auth = |ev: Value, body: &Value| {
        api_tests::with_auth(
            ev,
            body["token"].as_str().unwrap(),
            body["session_token"].as_str().unwrap(),
        )
    };
    let id = sessions[0]["user_id"]["$oid"].as_str().unwrap().to_owned();

    // update: one session, many PUTs.
    let put = |i: usize| {
        auth(
            api_tests::with_body(
                api_tests::event("update"),
                &json!({"_id": {"$oid": id}, "last_name": format!("L{i}")}),
            ),
            &sessions[0],
        )
    };
    let (first, warm) = measure("update", &config, 200, warm_n, put).await;
    report(
        table,
        "update (PUT /user)",
        "MongoDB",
        first,
        warm,
        "200; find session + find-and-modify",
    );

    // logout: a different session each time.
    let out = |k: usize| auth(api_tests::event("logout"), &sessions[k]);
    let (first, warm) = measure("logout", &config, 204, sessions.len() - 1, out).await;
    report(
        table,
        "logout",
        "MongoDB",
        first,
        warm,
        "204; find session + delete",
    );

    // keys and whoami read no database: the JWK Set from memory; the claims API Gateway's
    // JWT authorizer verified, from the event.
    let jwks = |_| api_tests::event_for("GET", "/.well-known/jwks.json");
    let (first, warm) = measure("keys", &config, 200, warm_n, jwks).await;
    report(
        table,
        "keys (GET /.well-known/jwks.json)",
        "no database",
        first,
        warm,
        "200; the JWK Set from memory",
    );
    let whoami = |_| api_tests::event_for("GET", "/example/whoami");
    let (first, warm) = measure("whoami", &config, 200, warm_n, whoami).await;
    report(
        table,
        "whoami (GET /example/whoami)",
        "no database",
        first,
        warm,
        "200; claims from the authorizer's context, no secret, no state",
    );

    // The embedded store, to show the database's share where one process can show it.
    let emb = embedded_config();
    let (first, warm) = measure("signup", &emb, 201, warm_n, signup_ev).await;
    report(
        table,
        "signup",
        "embedded store",
        first,
        warm,
        "201, as above without a database",
    );
    // Five attempts at most: the fifth failure sets the lock, after which answers are 429.
    let (first, warm) = measure("login", &emb, 401, warm_n.min(4), |_| {
        login_ev("+19999999999")
    })
    .await;
    report(
        table,
        "login",
        "embedded store",
        first,
        warm,
        "401 for a phone with no account (the store is per process), same argon2 verify as a success; before the lock",
    );

    // update and logout need a session in the function's own process: the seeded harness.
    for (handler, route, status, how) in [
        (
            "update",
            "update (PUT /user)",
            200,
            "200; bench/src/bin/seeded.rs: the same handler and runtime, embedded store seeded in-process",
        ),
        (
            "logout",
            "logout",
            204,
            "204, a different session each time; bench/src/bin/seeded.rs as above",
        ),
    ] {
        let file =
            std::env::temp_dir().join(format!("bench-seed-{}-{handler}.json", std::process::id()));
        let mut cfg = emb.clone();
        cfg.extend([
            ("BENCH_SEED_HANDLER".to_owned(), handler.to_owned()),
            ("BENCH_SEED_SESSIONS".to_owned(), (warm_n + 1).to_string()),
            ("BENCH_SEED_FILE".to_owned(), file.display().to_string()),
        ]);
        let f = spawn(&lambda_binary("seeded"), handler, &cfg).await;
        f.init_time().await;
        let seeded: Vec<Value> =
            serde_json::from_slice(&std::fs::read(&file).expect("seed file")).expect("seed json");
        let _ = std::fs::remove_file(&file);
        let id = seeded[0]["user_id"]["$oid"].as_str().unwrap().to_owned();
        let event = |i: usize| {
            if handler == "logout" {
                auth(api_tests::event("logout"), &seeded[i])
            } else {
                auth(
                    api_tests::with_body(
                        api_tests::event("update"),
                        &json!({"_id": {"$oid": id}, "last_name": format!("L{i}")}),
                    ),
                    &seeded[0],
                )
            }
        };
        let (first, warm) = first_and_warm(&f, status, warm_n, event).await;
        report(table, route, "embedded store", first, warm, how);
    }
}

/// Starts the release binary `name` with `config`, waits for its cold init, measures it with
/// [`first_and_warm`] and stops it.
pub(crate) async fn measure(
    name: &str,
    config: &[(String, String)],
    status: u16,
    n: usize,
    event: impl Fn(usize) -> Value,
) -> (Duration, f64) {
    let f = spawn(&lambda_binary(name), name, config).await;
    f.init_time().await;
    first_and_warm(&f, status, n, event).await
}

/// Invokes `event(0)` (the first invocation after start) and then `event(1..=n)`; every answer
/// must have `status`. Returns the first latency and the median of the rest, in ms.
pub(crate) async fn first_and_warm(
    f: &Function,
    status: u16,
    n: usize,
    event: impl Fn(usize) -> Value,
) -> (Duration, f64) {
    let (s, body, first) = f.invoke(&event(0)).await;
    assert_eq!(s, status, "{body}");
    let mut warm = Vec::new();
    for i in 1..=n {
        let (s, body, t) = f.invoke(&event(i)).await;
        assert_eq!(s, status, "{body}");
        warm.push(ms(t));
    }
    (first, median(warm))
}

pub(crate) fn report(
    table: &mut Table,
    function: &str,
    store: &str,
    first: Duration,
    warm: f64,
    what: &str,
) {
    table.add(
        format!("First invocation, {function}, {store}"),
        format!("{:.2}", ms(first)),
        "ms",
        "",
        format!("runtime protocol, invoke to posted response: {what}"),
    );
    table.add(
        format!("Warm invocation, {function}, {store}"),
        format!("{warm:.2}"),
        "ms",
        "",
        "median of the following invocations",
    );
}
