//! Correctly signed tokens that must still be refused: claims sized to overflow the server's
//! time arithmetic, and headers that demand extensions (`crit`). Signed by hand, as an
//! attacker holding a leaked or guessed key would, and sent concurrently.

use api_tests::*;
use domain::clock::Clock;
use serde_json::{Value, json};

fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

/// An HS256 token over exactly this header and these claims.
fn sign(header: &Value, claims: &Value, key: &str) -> String {
    hs256_token(header, claims, key)
}

fn header() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "kid": "env"})
}

/// Sends every attack at once and expects 401 for each; a panic in the server would fail the
/// test (debug builds check overflow), a 500 would show as the wrong status.
async fn all_refused(state: &edge::State, l: &Login, attacks: Vec<(&str, String)>) {
    let statuses = futures::future::join_all(
        attacks
            .iter()
            .map(|(_, token)| put_with_jwt(state, l, token)),
    )
    .await;
    for ((name, _), status) in attacks.iter().zip(statuses) {
        assert_eq!(status, 401, "{name}");
    }
}

#[tokio::test]
async fn time_claims_near_u64_max_are_refused_not_a_panic() {
    let (state, clock) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let good = claims_of(&l.token);
    let now = clock.now() as u64;
    let with = |pairs: &[(&str, u64)]| {
        let mut c = good.clone();
        for (k, v) in pairs {
            c[*k] = json!(v);
        }
        sign(&header(), &c, JWT_KEY)
    };
    // The control: the same claims signed the same way are accepted.
    assert_eq!(put_with_jwt(&state, &l, &with(&[])).await, 200);
    let max = u64::MAX;
    let attacks = vec![
        ("exp = u64::MAX - 1", with(&[("exp", max - 1)])),
        ("exp = u64::MAX", with(&[("exp", max)])),
        ("exp = u64::MAX - 59", with(&[("exp", max - 59)])),
        ("iat = u64::MAX - 1", with(&[("iat", max - 1)])),
        ("nbf = u64::MAX - 1", with(&[("nbf", max - 1)])),
        (
            "all three near the maximum",
            with(&[("iat", max - 2), ("nbf", max - 2), ("exp", max - 1)]),
        ),
        // Not an overflow, but as dangerous: a lifetime no token of ours has.
        ("exp a year ahead", with(&[("exp", now + 365 * 24 * 3600)])),
        ("exp zero", with(&[("exp", 0)])),
    ];
    all_refused(&state, &l, attacks).await;
    // The server is still up and the real token still works.
    assert_eq!(put_with_jwt(&state, &l, &l.token).await, 200);
}

#[tokio::test]
async fn a_header_with_crit_is_refused_whatever_it_lists() {
    let (state, _) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let good = claims_of(&l.token);
    let with_header = |extra: Value| {
        let mut h = header();
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        sign(&h, &good, JWT_KEY)
    };
    // The control: an unknown header field outside `crit` may be ignored (RFC 7515 §4).
    assert_eq!(
        put_with_jwt(&state, &l, &with_header(json!({"x-note": "ignored"}))).await,
        200
    );
    let attacks = vec![
        ("crit [exp]", with_header(json!({"crit": ["exp"]}))),
        (
            "crit [b64], b64 false",
            with_header(json!({"crit": ["b64"], "b64": false})),
        ),
        ("crit [b64] alone", with_header(json!({"crit": ["b64"]}))),
        ("crit empty", with_header(json!({"crit": []}))),
        ("crit a string", with_header(json!({"crit": "exp"}))),
        ("crit null", with_header(json!({"crit": null}))),
        (
            "crit naming an unknown extension",
            with_header(json!({"crit": ["urn:example:x"], "urn:example:x": 1})),
        ),
    ];
    all_refused(&state, &l, attacks).await;
}
