//! The attack suite: every case here must be refused. Against MongoDB, with an injectable clock.

use std::sync::Arc;

use api_tests::*;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::clock::Clock;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

/// Signs by hand, so tokens with algorithms the server must refuse can be made too.
fn sign(alg: &str, typ: Option<&str>, kid: Option<&str>, claims: &Value, key: &str) -> String {
    let mut header = json!({ "alg": alg });
    if let Some(t) = typ {
        header["typ"] = json!(t);
    }
    if let Some(k) = kid {
        header["kid"] = json!(k);
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    fn mac<M: Mac + hmac::digest::KeyInit>(key: &str, input: &str) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key.as_bytes()).unwrap();
        m.update(input.as_bytes());
        m.finalize().into_bytes().to_vec()
    }
    let sig = match alg {
        "HS256" => mac::<Hmac<sha2::Sha256>>(key, &input),
        "HS384" => mac::<Hmac<sha2::Sha384>>(key, &input),
        "HS512" => mac::<Hmac<sha2::Sha512>>(key, &input),
        other => panic!("no signer for {other}"),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn raw_token(header: &Value, claims: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        sig
    )
}

#[tokio::test]
async fn forged_and_malformed_jwts_are_all_refused() {
    let (state, clock) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let good = claims_of(&l.token);
    let now = clock.now();
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };

    // The control: a token we craft the way the server does is accepted, so every refusal
    // below is due to the one thing changed.
    let control = sign("HS256", Some("JWT"), Some("env"), &good, JWT_KEY);
    assert_eq!(put_with_jwt(&state, &l, &control).await, 200);

    let (head, payload, sig) = {
        let mut parts = l.token.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    let mut tampered_claims = good.clone();
    tampered_claims["sub"] = json!("0123456789abcdef01234567");
    let tampered = format!(
        "{head}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string())
    );
    let _ = payload;

    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none",
            raw_token(
                &json!({"alg": "none", "typ": "JWT", "kid": "env"}),
                &good,
                "",
            ),
        ),
        (
            "alg none, signature kept",
            raw_token(
                &json!({"alg": "none", "typ": "JWT", "kid": "env"}),
                &good,
                &sig,
            ),
        ),
        (
            "HS256 with another key",
            sign(
                "HS256",
                Some("JWT"),
                Some("env"),
                &good,
                "attacker-key-0123456789abcdef0123456789",
            ),
        ),
        (
            "HS512 with the right key",
            sign("HS512", Some("JWT"), Some("env"), &good, JWT_KEY),
        ),
        (
            "HS384 with the right key",
            sign("HS384", Some("JWT"), Some("env"), &good, JWT_KEY),
        ),
        (
            "RS256 header over an HMAC signature",
            raw_token(
                &json!({"alg": "RS256", "typ": "JWT", "kid": "env"}),
                &good,
                &sig,
            ),
        ),
        (
            "expired",
            sign(
                "HS256",
                Some("JWT"),
                Some("env"),
                &with("exp", json!(now - 61)),
                JWT_KEY,
            ),
        ),
        (
            "not yet valid",
            sign(
                "HS256",
                Some("JWT"),
                Some("env"),
                &with("nbf", json!(now + 120)),
                JWT_KEY,
            ),
        ),
        (
            "wrong issuer",
            sign(
                "HS256",
                Some("JWT"),
                Some("env"),
                &with("iss", json!("evil")),
                JWT_KEY,
            ),
        ),
        (
            "wrong audience",
            sign(
                "HS256",
                Some("JWT"),
                Some("env"),
                &with("aud", json!("other-api")),
                JWT_KEY,
            ),
        ),
        (
            "no exp",
            sign("HS256", Some("JWT"), Some("env"), &without("exp"), JWT_KEY),
        ),
        (
            "no nbf",
            sign("HS256", Some("JWT"), Some("env"), &without("nbf"), JWT_KEY),
        ),
        (
            "no iss",
            sign("HS256", Some("JWT"), Some("env"), &without("iss"), JWT_KEY),
        ),
        (
            "no aud",
            sign("HS256", Some("JWT"), Some("env"), &without("aud"), JWT_KEY),
        ),
        (
            "no sid",
            sign("HS256", Some("JWT"), Some("env"), &without("sid"), JWT_KEY),
        ),
        (
            "another user's sub",
            sign(
                "HS256",
                Some("JWT"),
                Some("env"),
                &with("sub", json!("0123456789abcdef01234567")),
                JWT_KEY,
            ),
        ),
        ("no typ", sign("HS256", None, Some("env"), &good, JWT_KEY)),
        (
            "typ at+jwt",
            sign("HS256", Some("at+jwt"), Some("env"), &good, JWT_KEY),
        ),
        (
            "unknown kid",
            sign("HS256", Some("JWT"), Some("other"), &good, JWT_KEY),
        ),
        ("no kid", sign("HS256", Some("JWT"), None, &good, JWT_KEY)),
        ("tampered payload", tampered),
        ("two parts", format!("{head}.{sig}")),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (name, token) in attacks {
        assert_eq!(
            put_with_jwt(&state, &l, &token).await,
            401,
            "accepted: {name}"
        );
    }
}

#[tokio::test]
async fn tokens_die_after_a_password_change_except_the_session_that_made_it() {
    let (state, _) = mongo_state().await;
    let a = signed_in(&state, "1234567890").await;
    let b = login(&state, "1234567890", "securepassword123").await;
    let change = update_event(
        &a,
        json!({"password": "a brand new passphrase", "current_password": "securepassword123"}),
    );
    let r = call(&state, &change).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(!r.body.to_string().contains("passphrase"));
    assert_eq!(
        call(&state, &update_event(&b, json!({"last_name": "Y"})))
            .await
            .status,
        401,
        "other session ended"
    );
    assert_eq!(
        call(&state, &update_event(&a, json!({"last_name": "Z"})))
            .await
            .status,
        200,
        "own session kept"
    );
    let old = call(
        &state,
        &with_body(
            event("login"),
            &json!({"phone": "1234567890", "password": "securepassword123"}),
        ),
    )
    .await;
    assert_eq!(old.status, 401);
    login(&state, "1234567890", "a brand new passphrase").await;
}

#[tokio::test]
async fn a_password_change_needs_the_right_current_password_and_a_good_new_one() {
    let (state, _) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let wrong = call(
        &state,
        &update_event(
            &l,
            json!({"password": "a brand new passphrase", "current_password": "not-it-at-all"}),
        ),
    )
    .await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code()),
        (403, "current_password_incorrect")
    );
    let common = call(
        &state,
        &update_event(
            &l,
            json!({"password": "password123", "current_password": "securepassword123"}),
        ),
    )
    .await;
    assert_eq!(
        (common.status.as_u16(), common.code()),
        (400, "weak_password")
    );
    let alone = call(
        &state,
        &update_event(&l, json!({"password": "a brand new passphrase"})),
    )
    .await;
    assert_eq!(alone.status, 400);
    login(&state, "1234567890", "securepassword123").await;
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime_even_when_used_daily() {
    let (state, clock) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let user = domain::types::UserId::parse_hex(&l.id).unwrap();
    let sid = claims_of(&l.token)["sid"].as_str().unwrap().to_owned();
    // Used every 20 hours (inside the 24 h idle timeout) with a fresh JWT for the session,
    // it lives while younger than 7 days (168 h) and dies after.
    for hours in (20..=180).step_by(20) {
        clock.advance(20 * 3600);
        let jwt = state
            .tokens()
            .issue(EVENT_ISSUER, &user, &sid, clock.now() as u64)
            .unwrap();
        let expected = if hours < 168 { 200 } else { 401 };
        assert_eq!(
            put_with_jwt(&state, &l, &jwt).await,
            expected,
            "at {hours} h"
        );
    }
}

#[tokio::test]
async fn operator_injection_unknown_fields_huge_strings_and_wrong_content_types_are_refused() {
    let (state, _) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let ops = [
        json!({"$ne": null}),
        json!({"$gt": ""}),
        json!({"$regex": ".*"}),
        json!(["1234567890"]),
        json!(12345678),
        json!(true),
    ];
    for op in &ops {
        for field in [
            "first_name",
            "middle_name",
            "last_name",
            "password",
            "phone",
        ] {
            let mut body = signup_body("5550000001");
            body[field] = op.clone();
            let a = call(&state, &with_body(event("signup"), &body)).await;
            assert_eq!(a.status, 400, "signup {field}={op}");
        }
        for field in ["phone", "password"] {
            let mut body = json!({"phone": "1234567890", "password": "securepassword123"});
            body[field] = op.clone();
            assert_eq!(
                call(&state, &with_body(event("login"), &body)).await.status,
                400,
                "login {field}={op}"
            );
        }
        for field in ["first_name", "middle_name", "last_name", "phone"] {
            let a = call(&state, &update_event(&l, json!({ field: op.clone() }))).await;
            if !(field == "middle_name" && op.is_null()) {
                assert_eq!(a.status, 400, "update {field}={op}");
            }
        }
        let id_attack = with_body(
            update_event(&l, json!({})),
            &json!({"_id": {"$oid": op.clone()}, "last_name": "X"}),
        );
        assert_eq!(call(&state, &id_attack).await.status, 400, "_id.$oid={op}");
        let scope = with_header(
            with_body(
                with_auth(event("logout"), &l.token, &l.session_token),
                &json!({"scope": op.clone()}),
            ),
            "content-type",
            Some("application/json"),
        );
        assert_eq!(call(&state, &scope).await.status, 400, "logout scope={op}");
    }
    // Unknown fields on every body.
    let mut extra = signup_body("5550000002");
    extra["role"] = json!("admin");
    assert_eq!(
        call(&state, &with_body(event("signup"), &extra))
            .await
            .status,
        400
    );
    assert_eq!(
        call(
            &state,
            &with_body(
                event("login"),
                &json!({"phone": "1234567890", "password": "x", "remember": true})
            )
        )
        .await
        .status,
        400
    );
    assert_eq!(
        call(&state, &update_event(&l, json!({"is_admin": true})))
            .await
            .status,
        400
    );
    // Huge strings: under the body limit but over field limits, and over the body limit.
    let mut big = signup_body("5550000003");
    big["last_name"] = json!("x".repeat(10_000));
    assert_eq!(
        call(&state, &with_body(event("signup"), &big)).await.status,
        400
    );
    big["last_name"] = json!("x".repeat(17_000));
    assert_eq!(
        call(&state, &with_body(event("signup"), &big)).await.status,
        413
    );
    // Wrong content types on every body-carrying route.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        for ev in [
            event("signup"),
            event("login"),
            update_event(&l, json!({"last_name": "Q"})),
        ] {
            assert_eq!(
                call(&state, &with_header(ev, "content-type", ct))
                    .await
                    .status,
                415,
                "{ct:?}"
            );
        }
    }
    // Nothing of the above reached the database as a user.
    let n = count_users(&state.settings.db_name, mongodb::bson::doc! {}).await;
    assert_eq!(n, 1);
}

#[tokio::test]
async fn the_sixth_failure_is_429_with_a_doubling_retry_after_and_success_resets() {
    let (state, clock) = mongo_state().await;
    signed_in(&state, "1234567890").await;
    for i in 1..=5 {
        assert_eq!(
            login_status(&state, "1234567890", "wrong-password")
                .await
                .status,
            401,
            "failure {i}"
        );
    }
    let locked = login_status(&state, "1234567890", "securepassword123").await;
    assert_eq!(
        (locked.status.as_u16(), locked.code()),
        (429, "too_many_attempts")
    );
    assert_eq!(locked.headers["retry-after"], "1");
    // Each further failure after the lock passes doubles it.
    for (waited, next) in [(1, "2"), (2, "4")] {
        clock.advance(waited);
        let failure = login_status(&state, "1234567890", "wrong-password").await;
        assert_eq!(failure.status, 401);
        let refused = login_status(&state, "1234567890", "wrong-password").await;
        assert_eq!(refused.headers["retry-after"], next);
    }
    clock.advance(4);
    assert_eq!(
        login_status(&state, "1234567890", "securepassword123")
            .await
            .status,
        200,
        "success after the lock"
    );
    for _ in 1..=4 {
        assert_eq!(
            login_status(&state, "1234567890", "wrong-password")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        login_status(&state, "1234567890", "securepassword123")
            .await
            .status,
        200,
        "the success reset the count"
    );
}

#[tokio::test]
async fn lockout_delay_doubles_from_one_second_and_caps_at_fifteen_minutes() {
    use domain::service::lock_delay;
    assert_eq!(lock_delay(4, 5, 900), None);
    assert_eq!(lock_delay(5, 5, 900), Some(1));
    assert_eq!(lock_delay(6, 5, 900), Some(2));
    assert_eq!(lock_delay(14, 5, 900), Some(512));
    assert_eq!(lock_delay(15, 5, 900), Some(900));
    assert_eq!(lock_delay(500, 5, 900), Some(900));
}

#[tokio::test]
async fn the_failure_count_outlives_the_longest_lock_and_resets_after_twice_it() {
    let (state, clock) = mongo_state().await;
    signed_in(&state, "1234567890").await;
    for _ in 1..=4 {
        login_status(&state, "1234567890", "wrong-password").await;
    }
    // Fifteen quiet minutes (the failure window and the longest lock) are not enough: the
    // count goes on, so the next failure locks.
    clock.advance(15 * 60 + 1);
    assert_eq!(
        login_status(&state, "1234567890", "wrong-password")
            .await
            .status,
        401
    );
    assert_eq!(
        login_status(&state, "1234567890", "wrong-password")
            .await
            .status,
        429
    );
    // Thirty quiet minutes (twice the longest lock) start it again.
    clock.advance(30 * 60 + 1);
    for _ in 1..=4 {
        assert_eq!(
            login_status(&state, "1234567890", "wrong-password")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        login_status(&state, "1234567890", "securepassword123")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_lock_set_by_one_instance_is_seen_by_another() {
    let db = fresh_db();
    let clock = Arc::new(domain::clock::ManualClock::new());
    let make = || async {
        let store = Arc::new(mongo_store(&db).await);
        edge::State::new(
            settings(&db),
            store,
            edge::state::StoreKind::Mongo,
            clock.clone() as Arc<dyn Clock>,
        )
        .unwrap()
    };
    let (a, b) = (make().await, make().await);
    signed_in(&a, "1234567890").await;
    for _ in 1..=5 {
        assert_eq!(
            login_status(&a, "1234567890", "wrong-password")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        login_status(&b, "1234567890", "securepassword123")
            .await
            .status,
        429
    );
}

#[tokio::test]
async fn unknown_phones_and_real_ones_lock_and_answer_identically() {
    let (state, _) = mongo_state().await;
    signed_in(&state, "1234567890").await;
    for _ in 1..=7 {
        let real = login_status(&state, "1234567890", "wrong-password").await;
        let ghost = login_status(&state, "9876543210", "wrong-password").await;
        assert_eq!(real.status, ghost.status);
        assert_eq!(real.body, ghost.body);
        assert_eq!(
            real.headers.get("retry-after"),
            ghost.headers.get("retry-after")
        );
    }
}

#[tokio::test]
async fn login_rehashes_a_password_stored_at_older_parameters() {
    use argon2::password_hash::PasswordHasher;
    let (state, _) = mongo_state().await;
    let old = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(8192, 1, 1, None).unwrap(),
    )
    .hash_password(b"an older passphrase")
    .unwrap()
    .to_string();
    let mut user = domain::store::UserRecord::new(
        domain::types::UserId::new(),
        (
            domain::types::Name::parse("Old").unwrap(),
            None,
            domain::types::Name::parse("Timer").unwrap(),
        ),
        vec![domain::identity::Identifier::Phone(
            domain::types::Phone::parse("5551234567").unwrap(),
        )],
        old,
        0,
    );
    user.identifiers[0].verified_at = Some(0);
    state.store.insert_user(&user).await.unwrap();
    login(&state, "5551234567", "an older passphrase").await;
    let stored = state
        .store
        .find_user(&user.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash()
        .to_owned();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    login(&state, "5551234567", "an older passphrase").await;
}
