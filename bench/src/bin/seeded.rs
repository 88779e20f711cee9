//! Bench harness: the `update` or `logout` handler over the Lambda Runtime API on the embedded
//! store, so runtime-protocol latency can be shown without a database for the two routes that
//! need a session. The embedded store lives in one process, so the real binaries cannot be
//! handed a session from outside; this binary seeds one user and `BENCH_SEED_SESSIONS` logins
//! in-process (through the same handlers), writes them as JSON to `BENCH_SEED_FILE`, then serves
//! `BENCH_SEED_HANDLER` exactly as `functions/<name>/src/main.rs` does.
#![allow(clippy::unwrap_used)]

use edge::{State, handlers, routes::Function};
use lambda_http::{Error, run, service_fn};
use serde_json::json;

fn main() -> Result<(), Error> {
    let handler = std::env::var("BENCH_SEED_HANDLER")?;
    let sessions: usize = std::env::var("BENCH_SEED_SESSIONS")?.parse()?;
    let file = std::env::var("BENCH_SEED_FILE")?;
    edge::lambda_runtime()?.block_on(async {
        let state = State::init(edge::state::Wiring::ALL).await?;
        let first = api_tests::signed_in(&state, "1234567890").await;
        let mut seeded = vec![first];
        while seeded.len() < sessions {
            seeded.push(api_tests::login(&state, "1234567890", "securepassword123").await);
        }
        let out: Vec<_> = seeded
            .iter()
            .map(|l| json!({"user_id": {"$oid": l.id}, "token": l.token, "session_token": l.session_token}))
            .collect();
        std::fs::write(&file, serde_json::to_vec(&out)?)?;
        let state = &state;
        let function = match handler.as_str() {
            "logout" => Function::Logout,
            _ => Function::Update,
        };
        run(service_fn(move |req| async move {
            Ok::<_, std::convert::Infallible>(handlers::dispatch(state, function, req).await)
        }))
        .await
    })
}
