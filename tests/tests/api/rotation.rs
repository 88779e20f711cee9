//! Key rotation across instances, against moto and MongoDB: two instances read one secret, a
//! rotation lands between their starts, and each must accept the other's tokens at once (not
//! after the cache TTL). Also: tokens naming keys that do not exist cannot make an instance
//! read the secret more than once per interval, however many arrive at once.

use std::sync::Arc;

use api_tests::*;
use domain::keys::FORCED_REFRESH_INTERVAL_SECS;
use domain::{
    clock::{Clock, ManualClock},
    config::Vars,
};
use edge::State;
use serde_json::{Value, json};

const K1: &str = "two-instances-one-jwt-key-0123456789abcdef";
const S1: &str = "two-instances-one-session-key-0123456789ab";
const K2: &str = "two-instances-two-jwt-key-0123456789abcdef";
const S2: &str = "two-instances-two-session-key-0123456789ab";

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn instance(vars: &Vars, clock: &Arc<ManualClock>) -> State {
    State::load_with_clock(vars, true, clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn put(state: &State, l: &Login, last_name: &str) -> u16 {
    call(state, &update_event(l, json!({ "last_name": last_name })))
        .await
        .status
        .as_u16()
}

/// `n` concurrent authenticated requests as `l` on `state`; their statuses.
async fn burst(state: &State, l: &Login, n: usize) -> Vec<u16> {
    futures::future::join_all((0..n).map(|i| put(state, l, if i % 2 == 0 { "A" } else { "B" })))
        .await
}

/// A secret with keys K1/S1, and the variables both instances start from (one database).
async fn one_secret() -> (aws_sdk_secretsmanager::Client, String, String, Vars) {
    let client = secrets_client(&aws_endpoint()).await;
    let name = format!("user-api/{}", fresh_db());
    let v1 = create_secret(&client, &name, &secret_json(K1, S1)).await;
    let vars = secret_vars(&name, &aws_endpoint());
    (client, name, v1, vars)
}

#[tokio::test]
async fn after_a_rotation_between_two_starts_each_instance_accepts_the_others_tokens_at_once() {
    let (client, name, v1, vars) = one_secret().await;
    // One clock for both, never moved: nothing here waits for a TTL.
    let clock = Arc::new(ManualClock::new());
    let old = instance(&vars, &clock).await;
    let from_old = signed_in(&old, "1234567890").await;
    assert_eq!(kid_of(&from_old.token), v1);

    let v2 = rotate_secret(&client, &name, &secret_json(K2, S2)).await;
    let new = instance(&vars, &clock).await;
    let from_new = login(&new, "1234567890", "securepassword123").await;
    assert_eq!(
        kid_of(&from_new.token),
        v2,
        "the new instance signs with v2"
    );
    // The old instance still holds v1 only and signs with it.
    assert_eq!(
        kid_of(&login(&old, "1234567890", "securepassword123").await.token),
        v1
    );

    // The new instance's tokens on the stale one, many at once: all accepted, and the stale
    // instance read the secret once for all of them (single flight).
    let reads = old.keys.secret_reads();
    assert!(burst(&old, &from_new, 16).await.iter().all(|s| *s == 200));
    assert_eq!(old.keys.secret_reads(), reads + 1, "one read for the burst");
    // Having refreshed, it signs with v2 itself.
    assert_eq!(
        kid_of(&login(&old, "1234567890", "securepassword123").await.token),
        v2
    );

    // The old instance's token (JWT under v1, session digest under S1) on the new instance,
    // which holds v1 as AWSPREVIOUS: accepted without any read.
    let reads = new.keys.secret_reads();
    assert!(burst(&new, &from_old, 8).await.iter().all(|s| *s == 200));
    assert_eq!(new.keys.secret_reads(), reads);

    // And both tokens still work on both instances.
    for (state, l) in [
        (&old, &from_old),
        (&old, &from_new),
        (&new, &from_old),
        (&new, &from_new),
    ] {
        assert_eq!(put(state, l, "C").await, 200);
    }
}

#[tokio::test]
async fn session_tokens_made_under_the_new_session_key_verify_on_the_stale_instance() {
    // The JWT alone is not enough: its session's digest was made under S2, which the stale
    // instance learns only from the refresh the JWT's kid triggers.
    let (client, name, _, vars) = one_secret().await;
    let clock = Arc::new(ManualClock::new());
    let old = instance(&vars, &clock).await;
    signed_in(&old, "1234567890").await;
    rotate_secret(&client, &name, &secret_json(K2, S2)).await;
    let new = instance(&vars, &clock).await;
    let from_new = login(&new, "1234567890", "securepassword123").await;
    let wrong_session = Login {
        session_token: "A".repeat(43),
        ..from_new.clone()
    };
    assert_eq!(put(&old, &wrong_session, "X").await, 401);
    assert_eq!(put(&old, &from_new, "Y").await, 200);
}

/// An HS256 token signed with `key` under `kid` (an attacker guessing kids).
fn forged(claims: &Value, kid: &str, key: &str) -> String {
    hs256_token(
        &json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
        claims,
        key,
    )
}

/// Sends every token at once as `l`'s JWT; the statuses.
async fn send(state: &State, tokens: &[String], l: &Login) -> Vec<u16> {
    let events: Vec<Value> = tokens
        .iter()
        .map(|t| {
            with_auth(
                update_event(l, json!({"last_name": "X"})),
                t,
                &l.session_token,
            )
        })
        .collect();
    futures::future::join_all(events.iter().map(|ev| call(state, ev)))
        .await
        .into_iter()
        .map(|a| a.status.as_u16())
        .collect()
}

#[tokio::test]
async fn unknown_kids_in_a_flood_cause_at_most_one_secret_read_per_interval() {
    let (client, name, _, vars) = one_secret().await;
    let clock = Arc::new(ManualClock::new());
    let a = instance(&vars, &clock).await;
    let b = instance(&vars, &clock).await;
    let l = signed_in(&a, "1234567890").await;
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&l.token)
        .unwrap()
        .claims;
    let flood = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| forged(&claims, &format!("kid-{i}-{}", fresh_db()), K1))
            .collect()
    };
    // Both instances flooded at once with 40 forged kids each: every token refused, and each
    // instance read the secret once.
    let (ra, rb) = (a.keys.secret_reads(), b.keys.secret_reads());
    let (fa, fb) = (flood(40), flood(40));
    let (sa, sb) = tokio::join!(send(&a, &fa, &l), send(&b, &fb, &l));
    assert!(sa.iter().chain(&sb).all(|s| *s == 401), "{sa:?} {sb:?}");
    assert_eq!(a.keys.secret_reads(), ra + 1);
    assert_eq!(b.keys.secret_reads(), rb + 1);

    // Within the interval, more of them cause no read at all...
    clock.advance(FORCED_REFRESH_INTERVAL_SECS - 1);
    assert!(send(&a, &flood(20), &l).await.iter().all(|s| *s == 401));
    assert_eq!(a.keys.secret_reads(), ra + 1);

    // ...and once it has passed, a real rotation is picked up by the next unknown kid.
    let v2 = rotate_secret(&client, &name, &secret_json(K2, S2)).await;
    clock.advance(1);
    let from_b = {
        b.keys.refresh(clock.now()).await;
        login(&b, "1234567890", "securepassword123").await
    };
    assert_eq!(kid_of(&from_b.token), v2);
    assert_eq!(put(&a, &from_b, "Z").await, 200);
    assert_eq!(a.keys.secret_reads(), ra + 2);
    // The valid token from before the rotation still verifies on both.
    assert_eq!(put(&a, &l, "W").await, 200);
    assert_eq!(put(&b, &l, "V").await, 200);
}
