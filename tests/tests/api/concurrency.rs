//! Races decided by the database, not by find-then-insert.

use api_tests::{call, event, mongo_state, signed_in, signup_body, update_event, with_body};
use futures::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_signups_with_one_phone_create_exactly_one_user() {
    let (state, _) = mongo_state().await;
    let ev = with_body(event("signup"), &signup_body("2025550123"));
    let answers = join_all((0..50).map(|_| call(&state, &ev))).await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let conflicts = answers
        .iter()
        .filter(|a| a.status == 409 && a.code() == "phone_taken")
        .count();
    assert_eq!(
        (created, conflicts),
        (1, 49),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    // Exactly one document holds the phone.
    let n = api_tests::count_users(
        &state.settings.db_name,
        mongodb::bson::doc! {"phone": "2025550123"},
    )
    .await;
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_phone_changes_to_one_number_have_one_winner() {
    let (state, _) = mongo_state().await;
    let mut logins = Vec::new();
    for i in 0..20 {
        logins.push(signed_in(&state, &format!("30255501{i:02}")).await);
    }
    let events: Vec<_> = logins
        .iter()
        .map(|l| {
            update_event(
                l,
                json!({"phone": "+1 202 555 9999", "current_password": "securepassword123"}),
            )
        })
        .collect();
    let answers = join_all(events.iter().map(|ev| call(&state, ev))).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let conflicts = answers.iter().filter(|a| a.status == 409).count();
    assert_eq!((ok, conflicts), (1, 19));
}

/// Up to the lock threshold (5) of password checks per phone may run at once (a limit that
/// holds under concurrency also applies to the account's owner), and each login gets its
/// own session.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_of_one_user_each_get_a_distinct_session() {
    let (state, _) = mongo_state().await;
    signed_in(&state, "4025550100").await;
    let logins =
        join_all((0..5).map(|_| api_tests::login(&state, "4025550100", "securepassword123"))).await;
    let mut sessions: Vec<_> = logins.iter().map(|l| l.session_token.clone()).collect();
    sessions.sort();
    sessions.dedup();
    assert_eq!(sessions.len(), 5);
    for l in &logins {
        let a = call(&state, &update_event(l, json!({"first_name": "Ann"}))).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
}
