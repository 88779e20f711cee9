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

/// Audit lines written by this process so far.
fn audit_lines() -> Vec<Value> {
    logs()
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "audit")
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn phone_changes_and_lockouts_name_the_user_and_a_keyed_tag_of_the_phone_never_the_phone() {
    logs();
    let app = TestApp::mongo().await;
    let l = app.signed_in("2025550177").await;
    let tag = |p: &str| app.state.tokens().audit_tag(p);
    let moved = app
        .put_user(
            &l,
            json!({"phone": "+1 202 555 0188", "current_password": "securepassword123"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    for _ in 0..5 {
        app.login("+12025550188", "wrong-password").await;
    }
    for _ in 0..5 {
        app.put_user(
            &l,
            json!({"password": "a brand new passphrase", "current_password": "wrong-one"}),
        )
        .await;
    }
    let audit = audit_lines();
    let change = audit
        .iter()
        .find(|a| a["fields"]["event"] == "phone_change" && a["fields"]["user_id"] == l.id)
        .unwrap_or_else(|| panic!("no phone_change line for {}", l.id));
    assert_eq!(
        change["fields"]["old_phone_tag"],
        tag("2025550177").as_str()
    );
    assert_eq!(
        change["fields"]["new_phone_tag"],
        tag("+12025550188").as_str()
    );
    for scope in ["login", "current_password"] {
        let lockout = audit
            .iter()
            .find(|a| {
                a["fields"]["event"] == "lockout"
                    && a["fields"]["scope"] == scope
                    && a["fields"]["user_id"] == l.id
            })
            .unwrap_or_else(|| panic!("no {scope} lockout line naming {}", l.id));
        assert_eq!(lockout["fields"]["phone_tag"], tag("+12025550188").as_str());
    }
    let text = audit.iter().map(Value::to_string).collect::<String>();
    for phone in ["2025550177", "2025550188"] {
        assert!(
            !text.contains(phone),
            "an audit line holds the phone {phone}"
        );
    }
}
