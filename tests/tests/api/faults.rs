//! Database faults: a private MongoDB-protocol server is stopped mid-run and started again.
//! Every request meanwhile gets a quick 503 with Retry-After, nothing half-written survives,
//! and the same state (no cold start) recovers on its own.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use adapters::mongo::{MongoOptions, MongoStore};
use api_tests::*;
use domain::clock::{Clock, ManualClock};
use edge::{State, state::StoreKind};
use serde_json::{Value, json};

fn start_db(port: u16, dir: &PathBuf) -> Process {
    let bin = std::env::var("SECANTUSD_BIN").expect("SECANTUSD_BIN is set by scripts/test");
    let child = Command::new(bin)
        // Durable commits, so data written before the crash is there after the restart.
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--sync-on-commit",
            "--storage-path",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "database did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Process(child)
}

async fn timed(state: &State, ev: &Value) -> (Answer, Duration) {
    let t = Instant::now();
    let a = call(state, ev).await;
    (a, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_a_quick_503_while_the_database_is_down_and_recover_after() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("faults-{}", fresh_db()));
    let mut db = start_db(port, &dir);
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false");
    let opts = MongoOptions::default();
    let client = MongoStore::client(&uri, &opts).await.unwrap();
    let store = MongoStore::new(&client, "faults", "User", &opts);
    store.ensure_indexes().await.unwrap();
    let state = State::new(
        settings("faults"),
        Arc::new(store),
        StoreKind::Mongo,
        Arc::new(ManualClock::new()) as Arc<dyn Clock>,
    )
    .unwrap();
    let l = signed_in(&state, "1234567890").await;

    // Stop the server mid-run.
    let _ = db.kill();
    let _ = db.wait();

    let attempts = [
        (
            "signup",
            with_body(event("signup"), &signup_body("2025550199")),
        ),
        ("login", event("login")),
        ("put user", update_event(&l, json!({"last_name": "Down"}))),
        (
            "get user",
            with_auth(event("get_user"), &l.token, &l.session_token),
        ),
        (
            "logout",
            with_auth(event("logout"), &l.token, &l.session_token),
        ),
    ];
    for (name, ev) in &attempts {
        let (a, took) = timed(&state, ev).await;
        assert_eq!(
            (a.status.as_u16(), a.code()),
            (503, "service_unavailable"),
            "{name}: {:?}",
            a.body
        );
        assert_eq!(a.content_type(), "application/problem+json");
        assert!(
            a.headers.get("retry-after").is_some(),
            "{name}: no Retry-After"
        );
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
        assert!(
            !a.body.to_string().contains("127.0.0.1"),
            "the 503 body leaks internals: {}",
            a.body
        );
    }

    // Start it again on the same port and data; the same state recovers without a restart.
    let _db = start_db(port, &dir);
    let start = Instant::now();
    loop {
        let a = call(&state, &update_event(&l, json!({"last_name": "Back"}))).await;
        if a.status == 200 {
            break;
        }
        assert_eq!(a.status, 503, "{:?}", a.body);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no recovery after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing from the outage was half-written: the failed signup left no user, the session
    // the failed logout named is still there, and the unique index still decides.
    assert_eq!(
        state
            .store
            .find_user_by_phone(&domain::types::Phone::parse("2025550199").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        call(
            &state,
            &with_auth(event("get_user"), &l.token, &l.session_token)
        )
        .await
        .status,
        200
    );
    let again = with_body(event("signup"), &signup_body("2025550199"));
    assert_eq!(call(&state, &again).await.status, 201);
    assert_eq!(call(&state, &again).await.status, 409);
    assert_eq!(
        call(
            &state,
            &with_auth(event("logout"), &l.token, &l.session_token)
        )
        .await
        .status,
        204
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_retried_signup_cannot_create_a_second_user() {
    let (state, _) = mongo_state().await;
    let ev = with_body(event("signup"), &signup_body("+1 202 555 0142"));
    assert_eq!(call(&state, &ev).await.status, 201);
    // The client timed out and sends the same request again.
    let retry = call(&state, &ev).await;
    assert_eq!((retry.status.as_u16(), retry.code()), (409, "phone_taken"));
    let n = count_users(&state.settings.db_name, mongodb::bson::doc! {}).await;
    assert_eq!(n, 1);
}
