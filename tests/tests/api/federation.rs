//! Provider ID tokens from a real OpenID Connect provider on loopback (oauth2-mock-server):
//! discovery and keys fetched over HTTP by the adapters' `OidcKeys`, each token checked by
//! `domain::federation::verify` as native sign-in will check it. A good token verifies; a
//! wrong `aud`, wrong `iss`, an expired token, a wrong nonce, an `alg` swap and a key the
//! provider never published are each refused; the provider rotating its keys mid-test is
//! followed; an email the provider does not mark verified is never taken as verified.

use std::time::Duration;

use api_tests::oidc::OidcProvider;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::federation::{self, FederationError, NonceMode, Provider};
use serde_json::{Value, json};

const CLIENT: &str = "user-api-web";
const NONCE: &str = "n-0S6_WzA2Mj-hdk3";

fn provider(op: &OidcProvider) -> Provider {
    Provider {
        name: "local".into(),
        issuer: op.issuer.clone(),
        client_ids: vec![CLIENT.into(), "user-api-ios".into()],
        nonce: NonceMode::Raw,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn good_claims() -> Value {
    json!({"aud": CLIENT, "sub": "provider-user-1", "nonce": NONCE,
        "email": "ann@example.com", "email_verified": true})
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

/// The token re-headed with `alg: HS256`, its signature kept (an algorithm swap).
fn alg_swapped(token: &str) -> String {
    let mut parts = token.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let swapped = with(header, "alg", json!("HS256"));
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(swapped.to_string()),
        parts.next().unwrap(),
        parts.next().unwrap()
    )
}

#[tokio::test]
async fn tokens_of_a_real_provider_verify_and_each_mismatch_is_refused() {
    let op = OidcProvider::start().await;
    let p = provider(&op);
    let keys = adapters::oidc::provider_keys();
    let check = |token: String, nonce: &'static str| {
        let (keys, p) = (keys.clone(), p.clone());
        async move { federation::verify(keys.as_ref(), &p, &token, nonce, now()).await }
    };
    let ok = check(op.id_token(good_claims(), 300).await, NONCE)
        .await
        .unwrap();
    assert_eq!(
        (
            ok.issuer.as_str(),
            ok.subject.as_str(),
            ok.verified_email.as_deref()
        ),
        (
            op.issuer.as_str(),
            "provider-user-1",
            Some("ann@example.com")
        )
    );

    let table = vec![
        (
            "wrong aud",
            op.id_token(with(good_claims(), "aud", json!("another-app")), 300)
                .await,
            NONCE,
            FederationError::Audience,
        ),
        (
            "wrong iss",
            op.id_token(with(good_claims(), "iss", json!("http://localhost:1")), 300)
                .await,
            NONCE,
            FederationError::Issuer,
        ),
        (
            "expired",
            op.id_token(good_claims(), -120).await,
            NONCE,
            FederationError::Expired,
        ),
        (
            "wrong nonce",
            op.id_token(good_claims(), 300).await,
            "another-nonce",
            FederationError::Nonce,
        ),
        (
            "no nonce",
            op.id_token(with(good_claims(), "nonce", Value::Null), 300)
                .await,
            NONCE,
            FederationError::Nonce,
        ),
        (
            "alg swapped to HS256",
            alg_swapped(&op.id_token(good_claims(), 300).await),
            NONCE,
            FederationError::Algorithm,
        ),
        (
            "a key never published",
            op.rogue_id_token(good_claims(), "never-published").await,
            NONCE,
            FederationError::UnknownKey,
        ),
    ];
    for (what, token, nonce, expected) in table {
        assert_eq!(check(token, nonce).await.err(), Some(expected), "{what}");
    }

    // An unverified address is read but never taken as verified.
    let unverified = check(
        op.id_token(with(good_claims(), "email_verified", json!(false)), 300)
            .await,
        NONCE,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            unverified.verified_email,
            unverified.unverified_email.as_deref()
        ),
        (None, Some("ann@example.com"))
    );
}

#[tokio::test]
async fn a_provider_rotating_its_keys_mid_test_is_followed_and_a_forged_kid_is_not() {
    let op = OidcProvider::start().await;
    let p = provider(&op);
    let keys = adapters::oidc::provider_keys();
    let before = op.id_token(good_claims(), 300).await;
    federation::verify(keys.as_ref(), &p, &before, NONCE, now())
        .await
        .unwrap();
    let new_kid = op.rotate().await;
    // The cache was filled a moment ago; a forced refetch waits out the minimum interval
    // (what keeps a flood of made-up kids from becoming a flood of fetches).
    tokio::time::sleep(Duration::from_secs(
        federation::REFRESH_EVERY_SECS.unsigned_abs() + 1,
    ))
    .await;
    let after = op.id_token(good_claims(), 300).await;
    assert!(after.split('.').next().is_some());
    let id = federation::verify(keys.as_ref(), &p, &after, NONCE, now())
        .await
        .unwrap_or_else(|e| panic!("a token under the new key {new_kid}: {e}"));
    assert_eq!(id.subject, "provider-user-1");
    // Tokens under the old key still verify while it is published.
    federation::verify(keys.as_ref(), &p, &before, NONCE, now())
        .await
        .unwrap();
    // A key the provider never published, even under a kid it did publish, never verifies.
    let forged = op.rogue_id_token(good_claims(), &new_kid).await;
    assert_eq!(
        federation::verify(keys.as_ref(), &p, &forged, NONCE, now())
            .await
            .err(),
        Some(FederationError::Signature)
    );
}
