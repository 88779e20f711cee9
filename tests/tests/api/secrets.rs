//! Keys from Secrets Manager, against moto's server: read, errors, rotation, TTL refresh, and
//! a clean init failure when the service is gone.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use api_tests::*;
use domain::clock::{Clock, ManualClock};
use edge::State;
use serde_json::json;

const K1: &str = "rotation-one-jwt-key-0123456789abcdef0123";
const S1: &str = "rotation-one-session-key-0123456789abcdef";
const K2: &str = "rotation-two-jwt-key-0123456789abcdef0123";
const S2: &str = "rotation-two-session-key-0123456789abcdef";
const K3: &str = "rotation-three-jwt-key-0123456789abcdef01";
const S3: &str = "rotation-three-session-key-0123456789abcd";

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn secret_state(name: &str, clock: Arc<ManualClock>) -> State {
    State::load_with_clock(
        &secret_vars(name, &aws_endpoint()),
        true,
        clock as Arc<dyn Clock>,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn keys_and_mongo_uri_are_read_from_the_secret() {
    let client = secrets_client(&aws_endpoint()).await;
    let name = format!("user-api/{}", fresh_db());
    let version = create_secret(&client, &name, &secret_json(K1, S1)).await;
    let state = secret_state(&name, Arc::new(ManualClock::new())).await;
    assert_eq!(state.store_kind, edge::state::StoreKind::Mongo);
    let l = signed_in(&state, "1234567890").await;
    assert_eq!(
        kid_of(&l.token),
        version,
        "tokens carry the secret version as kid"
    );
    assert_eq!(
        call(&state, &update_event(&l, json!({"last_name": "X"})))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_missing_key_is_named_and_no_value_is_shown() {
    let client = secrets_client(&aws_endpoint()).await;
    let name = format!("user-api/{}", fresh_db());
    create_secret(
        &client,
        &name,
        &json!({"MONGO_URI": mongo_uri(), "SESSION_SECRET_KEY": S1}).to_string(),
    )
    .await;
    let msg = State::load(&secret_vars(&name, &aws_endpoint()), true)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains(&name) && msg.contains("JWT_SECRET_KEY is missing"),
        "{msg}"
    );
    assert!(!msg.contains(S1) && !msg.contains("mongodb://"), "{msg}");
}

#[tokio::test]
async fn a_short_key_or_non_json_secret_is_refused() {
    let client = secrets_client(&aws_endpoint()).await;
    let short = format!("user-api/{}", fresh_db());
    create_secret(&client, &short, &secret_json("short", S1)).await;
    let msg = State::load(&secret_vars(&short, &aws_endpoint()), true)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("JWT_SECRET_KEY is shorter"), "{msg}");
    let garbage = format!("user-api/{}", fresh_db());
    create_secret(&client, &garbage, "not json").await;
    let msg = State::load(&secret_vars(&garbage, &aws_endpoint()), true)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("not a JSON object"), "{msg}");
}

#[tokio::test]
async fn a_missing_secret_is_a_clear_error() {
    let name = format!("user-api/absent-{}", fresh_db());
    let msg = State::load(&secret_vars(&name, &aws_endpoint()), true)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains(&name) && msg.contains("secret not found"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_secret_with_only_a_jwt_key_derives_a_distinct_session_key() {
    let client = secrets_client(&aws_endpoint()).await;
    let name = format!("user-api/{}", fresh_db());
    create_secret(
        &client,
        &name,
        &json!({"MONGO_URI": mongo_uri(), "JWT_SECRET_KEY": K1}).to_string(),
    )
    .await;
    let state = secret_state(&name, Arc::new(ManualClock::new())).await;
    let l = signed_in(&state, "1234567890").await;
    assert_eq!(
        call(&state, &update_event(&l, json!({"last_name": "X"})))
            .await
            .status,
        200
    );
    let derived =
        adapters::secrets::derive_session_key(&domain::config::Secret::new(K1.as_bytes()));
    assert_ne!(derived.expose(), K1.as_bytes());
}

async fn wait_for_kid(state: &State, kid: &str) {
    let start = Instant::now();
    while state
        .tokens()
        .issue(EVENT_ISSUER, &domain::types::UserId::new(), "s", 0)
        .map(|t| kid_of(&t))
        .ok()
        .as_deref()
        != Some(kid)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "keys were not refreshed to {kid}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_kid() {
    let client = secrets_client(&aws_endpoint()).await;
    let name = format!("user-api/{}", fresh_db());
    let v1 = create_secret(&client, &name, &secret_json(K1, S1)).await;
    let clock = Arc::new(ManualClock::new());
    let state = secret_state(&name, clock.clone()).await;
    let before = signed_in(&state, "1234567890").await;
    assert_eq!(kid_of(&before.token), v1);

    let v2 = rotate_secret(&client, &name, &secret_json(K2, S2)).await;
    // Before the TTL the cached keys stay in force.
    clock.advance(120);
    assert_eq!(
        kid_of(&login(&state, "1234567890", "securepassword123").await.token),
        v1
    );
    // After it, the request that notices starts a refresh and is itself served from cache.
    clock.advance(200);
    assert_eq!(
        call(&state, &update_event(&before, json!({"last_name": "A"})))
            .await
            .status,
        200
    );
    wait_for_kid(&state, &v2).await;

    // Tokens from before the rotation (signed and HMAC'd under AWSPREVIOUS) still work...
    assert_eq!(
        call(&state, &update_event(&before, json!({"last_name": "B"})))
            .await
            .status,
        200
    );
    // ...and new ones carry the new kid.
    let after = login(&state, "1234567890", "securepassword123").await;
    assert_eq!(kid_of(&after.token), v2);
    assert_eq!(
        call(&state, &update_event(&after, json!({"last_name": "C"})))
            .await
            .status,
        200
    );

    // A second rotation retires the first keys: their tokens are refused now.
    let v3 = rotate_secret(&client, &name, &secret_json(K3, S3)).await;
    clock.advance(301);
    call(&state, &update_event(&after, json!({"last_name": "D"}))).await;
    wait_for_kid(&state, &v3).await;
    assert_eq!(
        call(&state, &update_event(&before, json!({"last_name": "E"})))
            .await
            .status,
        401
    );
    assert_eq!(
        call(&state, &update_event(&after, json!({"last_name": "F"})))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn init_fails_cleanly_and_quickly_when_the_emulator_is_stopped() {
    // A private emulator, so stopping it cannot disturb other tests.
    let bin = std::env::var("MOTO_SERVER_BIN").expect("MOTO_SERVER_BIN is set by scripts/test");
    let port = free_port();
    let mut moto = std::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = secrets_client(&endpoint).await;
    create_secret(&client, "user-api/stopped", &secret_json(K1, S1)).await;
    assert!(
        State::load(&secret_vars("user-api/stopped", &endpoint), true)
            .await
            .is_ok()
    );

    moto.kill().unwrap();
    moto.wait().unwrap();
    let start = Instant::now();
    let err = State::load(&secret_vars("user-api/stopped", &endpoint), true)
        .await
        .err();
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("user-api/stopped") && msg.contains("could not read"),
        "{msg}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "init took {:?}",
        start.elapsed()
    );
}
