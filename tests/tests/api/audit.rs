//! Audit logging, read from the process-wide log capture (`api_tests::logs`): tracing caches
//! per-callsite interest process-wide, so a capture scoped to one test would race with the
//! other tests of this binary hitting the same callsites.

use api_tests::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "current_thread")]
async fn audit_lines_name_the_event_request_and_source_but_no_secret() {
    let logs = logs();
    let (state, clock) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    for _ in 0..5 {
        let a = login_status(&state, "1234567890", "wrong-password").await;
        assert_eq!(a.status, 401, "{:?}", a.body);
    }
    clock.advance(2); // past the lock, which guards password changes too
    let change = update_event(
        &l,
        json!({"password": "a brand new passphrase", "current_password": "securepassword123"}),
    );
    assert_eq!(call(&state, &change).await.status, 200);
    call(
        &state,
        &with_auth(event("logout"), &l.token, &l.session_token),
    )
    .await;

    let text = logs.text();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let audit: Vec<&Value> = lines.iter().filter(|l| l["target"] == "audit").collect();
    for event in ["signup", "login", "lockout", "password_change", "logout"] {
        let line = audit
            .iter()
            .find(|l| l["fields"]["event"] == event)
            .unwrap_or_else(|| panic!("no {event} line in {text}"));
        assert_eq!(line["span"]["source_ip"], "203.0.113.7", "{line}");
        assert!(
            line["span"]["request_id"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{line}"
        );
    }
    assert!(audit.iter().any(
        |l| l["fields"]["event"] == "login" && l["fields"]["outcome"] == "invalid_credentials"
    ));
    for secret in [
        "securepassword123",
        "wrong-password",
        "brand new passphrase",
        &l.token,
        &l.session_token,
        "$argon2id",
        JWT_KEY,
        SESSION_KEY,
    ] {
        assert!(!text.contains(secret), "log contains a secret: {secret}");
    }
}
