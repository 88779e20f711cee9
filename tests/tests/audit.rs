//! Audit logging, in a test binary of its own: tracing caches per-callsite interest
//! process-wide, so a capture set up in one test races with other tests hitting the same
//! callsites without it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use api_tests::*;
use serde_json::{Value, json};

async fn login_status(state: &shared::State, phone: &str, password: &str) -> Answer {
    call(
        state,
        &with_body(
            event("login"),
            &json!({"phone": phone, "password": password}),
        ),
    )
    .await
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn audit_lines_name_the_event_request_and_source_but_no_secret() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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

    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
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
