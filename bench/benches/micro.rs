//! In-process costs, with the embedded store so the database takes no part: the PUT /user and
//! POST /logout handlers end to end (routing, header parsing, JWT and session checks, schema
//! validation, response), and the primitives they are made of.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use api_tests::{
    Backend, EVENT_ISSUER, event, request, settings, signed_in, state_on, update_event, with_auth,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use domain::{
    auth::{password, token},
    mfa,
    passkey::PasskeyVerifier,
    store::SessionRecord,
    types::{Password, UserId},
};
use edge::{handlers, schema::Body};
use serde_json::json;

fn micro(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (state, _) = rt.block_on(state_on(Backend::Memory, settings));
    let l = rt.block_on(signed_in(&state, "1234567890"));
    let now = state.clock.now();
    let keys = state.tokens();
    let user = UserId::parse_hex(&l.id).unwrap();

    let put = update_event(&l, json!({"last_name": "Bench"}));
    c.bench_function("put_user_handler", |b| {
        b.iter_batched(
            || request(&put),
            |req| rt.block_on(handlers::route(&state, req)),
            BatchSize::SmallInput,
        )
    });

    let logout = event("logout");
    c.bench_function("logout_handler", |b| {
        b.iter_batched(
            || {
                // A fresh session per iteration, made directly (no argon2), as login would.
                let st = token::new_session_token().unwrap();
                let sid = token::new_session_id().unwrap();
                let session = SessionRecord {
                    id: sid.clone(),
                    user_id: user,
                    token_digest: keys.session_digest(&st),
                    created_at: now,
                    expires_at: now + 3600,
                    absolute_expires_at: now + 7200,
                    ..SessionRecord::default()
                };
                rt.block_on(state.store.insert_session(&session)).unwrap();
                let jwt = keys.issue(EVENT_ISSUER, &user, &sid, now as u64).unwrap();
                request(&with_auth(logout.clone(), &jwt, &st))
            },
            |req| rt.block_on(handlers::route(&state, req)),
            BatchSize::SmallInput,
        )
    });

    c.bench_function("jwt_sign", |b| {
        b.iter(|| {
            keys.issue(EVENT_ISSUER, &user, "session-id", now as u64)
                .unwrap()
        })
    });
    c.bench_function("jwt_verify", |b| {
        b.iter(|| keys.verify(&l.token, now as u64, EVENT_ISSUER).unwrap())
    });
    // The default algorithm: RS256 on ring, signing at login and refresh only.
    let (rs, _) = rt.block_on(state_on(Backend::Memory, |db| {
        let mut v = api_tests::rsa_vars("a");
        v.set("DB_NAME", db);
        domain::config::Settings::from_vars(&v).unwrap()
    }));
    let rs_keys = rs.tokens();
    let rs_token = rs_keys
        .issue(EVENT_ISSUER, &user, "session-id", now as u64)
        .unwrap();
    c.bench_function("jwt_sign_rs256", |b| {
        b.iter(|| {
            rs_keys
                .issue(EVENT_ISSUER, &user, "session-id", now as u64)
                .unwrap()
        })
    });
    c.bench_function("jwt_verify_rs256", |b| {
        b.iter(|| rs_keys.verify(&rs_token, now as u64, EVENT_ISSUER).unwrap())
    });
    // Tokens the keys have not verified before: four times more distinct tokens, in turn,
    // than the keys remember, so every verify does the RSA work.
    let fresh: Vec<String> = (0..4 * token::VERIFIED_TOKENS_REMEMBERED)
        .map(|_| {
            rs_keys
                .issue(EVENT_ISSUER, &UserId::new(), "session-id", now as u64)
                .unwrap()
        })
        .collect();
    let mut next = 0;
    c.bench_function("jwt_verify_rs256_first_seen", |b| {
        b.iter(|| {
            next = (next + 1) % fresh.len();
            rs_keys
                .verify(&fresh[next], now as u64, EVENT_ISSUER)
                .unwrap()
        })
    });
    let rs_login = rt.block_on(signed_in(&rs, "1234567890"));
    let rs_put = update_event(&rs_login, json!({"last_name": "Bench"}));
    c.bench_function("put_user_handler_rs256", |b| {
        b.iter_batched(
            || request(&rs_put),
            |req| rt.block_on(handlers::route(&rs, req)),
            BatchSize::SmallInput,
        )
    });
    let signup = json!({"first_name": "John", "middle_name": "Doe", "last_name": "Smith", "password": "securepassword123", "phone": "1234567890"});
    c.bench_function("schema_validate_signup", |b| {
        b.iter(|| state.schemas.validate(Body::Signup, &signup).unwrap())
    });
    // A second factor's check, the database aside: opening the sealed TOTP seed (AES-256-GCM)
    // and comparing the code of each step in the window (three HMAC-SHA1), as
    // `service::mfa::prove` does before its one conditional write.
    let seed = mfa::totp::new_seed().unwrap();
    let sealed = keys.seal_keys().seal(&seed, "totp/bench").unwrap();
    let code = mfa::totp::code_at(&seed, mfa::totp::step_of(now));
    c.bench_function("totp_check", |b| {
        b.iter(|| {
            let (seed, _) = keys.seal_keys().open(&sealed, "totp/bench").unwrap();
            assert!(mfa::totp::matching_step(&seed, code, now, None).is_some());
        })
    });
    // A recovery code's check: one argon2id verify at the password's parameters (the tag
    // picks the one hash a code can match).
    let recovery = mfa::recovery::generate().unwrap().remove(0);
    let typed = Password::unchecked(recovery.expose().to_owned());
    let phc = password::hash_blocking(&typed).unwrap();
    c.bench_function("recovery_code_check", |b| {
        b.iter(|| assert!(password::verify_blocking(&typed, &phc)))
    });
    // A passkey sign-in's check: the relying party (webauthn-rs) verifying one assertion
    // (ECDSA P-256, the soft authenticator's algorithm) against its challenge and the stored
    // record; each iteration signs a fresh challenge outside the measurement.
    let origin = "https://app.example.com";
    let rp = relying_party::WebauthnVerifier::new(&domain::passkey::PasskeySettings {
        rp_id: "example.com".into(),
        rp_name: "Bench".into(),
        origins: vec![origin.into()],
        max_per_user: 10,
    })
    .unwrap();
    let mut auth = api_tests::passkey::Authenticator::new();
    let reg = rp
        .start_registration(
            &domain::passkey::PasskeyUser {
                id: user,
                name: "bench".into(),
                display_name: "Bench".into(),
            },
            &[],
        )
        .unwrap();
    let key = rp
        .finish_registration(&auth.create(&reg.options, origin), &reg.state)
        .unwrap();
    c.bench_function("passkey_verify", |b| {
        b.iter_batched(
            || {
                let ch = rp.start_authentication(&[]).unwrap();
                let answer = auth.get(&ch.options, origin);
                (ch, answer)
            },
            |(ch, answer)| {
                rp.finish_authentication(&answer, &ch.state, &key.stored)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    let digest = keys.session_digest(&l.session_token);
    c.bench_function("session_hmac_check", |b| {
        b.iter(|| assert!(keys.session_matches(&l.session_token, &digest)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(30);
    targets = micro
}
criterion_main!(benches);
