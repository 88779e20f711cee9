//! Users, sessions, password-check counters and budgets, on every store.

use std::sync::Arc;

use adapters::mongo::MongoStore;
use api_tests::{fresh_db, mongo_store, mongo_uri};
use domain::{
    store::{
        AttemptPolicy, Consumed, IdentifierChange, Reservation, SessionRecord, Store, StoreError,
        UserPatch, UserRecord,
    },
    types::{Name, Phone, UserId},
};

use super::{NOW, first_identifier, user};

on_every_store!(
    cases: [
        users_are_unique_by_phone_and_updated_atomically,
        refresh_tokens_rotate_alike,
        password_checks_are_counted_and_locked_alike,
        budgets_count_within_their_limit_alike,
        users_are_disabled_deleted_and_walked_alike,
        metadata_is_kept_replaced_and_cleared_alike,
        sessions_a_credential_opened_end_with_it_alike,
    ],
    racing: [
        forty_racing_reservations_grant_only_the_threshold,
        forty_racing_uses_of_a_budget_stay_within_its_limit,
    ],
);

/// A session whose expiry times lie far in the future: MongoDB's TTL monitor removes a
/// session past its `expires_at` at any moment, which raced these cases (one ran while a
/// past-dated session vanished between two reads).
pub(super) fn session(id: &str, user: UserId) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_id: user,
        token_digest: format!("digest-{id}"),
        created_at: 1_700_000_000,
        expires_at: 4_000_086_400,
        absolute_expires_at: 4_000_604_800,
        refresh_digest: format!("refresh-{id}"),
        opened: domain::credential::Opened {
            credential_id: "password".into(),
            method: "pwd".into(),
        },
        ..SessionRecord::default()
    }
}

async fn users_are_unique_by_phone_and_updated_atomically(store: &dyn Store) {
    // Users: insert, find by phone and id, uniqueness.
    let a = user("5550001").build();
    store.insert_user(&a).await.unwrap();
    assert_eq!(store.find_user(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.find_user_by(&first_identifier(&a)).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store
            .find_user_by_phone(&Phone::parse("5550009").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.find_user(&UserId::new()).await.unwrap(), None);
    assert_eq!(
        store.insert_user(&user("5550001").build()).await,
        Err(StoreError::Duplicate)
    );

    // Updates: fields change, middle name can be removed, phone stays unique.
    let b = user("5550002").build();
    store.insert_user(&b).await.unwrap();
    let patch = UserPatch {
        last_name: Some(Name::parse("Park").unwrap()),
        middle_name: Some(None),
        ..UserPatch::default()
    };
    let updated = store
        .update_user(&a.id, &patch, 1_700_000_100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.last_name.as_str(), "Park");
    assert_eq!(updated.middle_name, None);
    assert_eq!(updated.updated_at, 1_700_000_100);
    assert_eq!(updated.first_name, a.first_name);
    assert_eq!(store.find_user(&a.id).await.unwrap(), Some(updated.clone()));
    let set = |u: &UserRecord| {
        UserPatch::identifier(IdentifierChange::Set {
            identifier: first_identifier(u),
            verified_at: Some(NOW),
        })
    };
    let steal = set(&b);
    assert_eq!(
        store.update_user(&a.id, &steal, 1).await,
        Err(StoreError::Duplicate)
    );
    assert_eq!(
        store.find_user(&a.id).await.unwrap().unwrap().phone(),
        a.phone(),
        "failed update must not half-write"
    );
    let own = set(&a);
    assert!(
        store.update_user(&a.id, &own, 2).await.unwrap().is_some(),
        "keeping one's own phone is not a conflict"
    );
    assert_eq!(
        store.update_user(&UserId::new(), &patch, 3).await.unwrap(),
        None
    );

    // Sessions: insert, find, touch, delete one, delete all but one.
    let s1 = session("s1", a.id);
    store.insert_session(&s1).await.unwrap();
    store.insert_session(&session("s2", a.id)).await.unwrap();
    store.insert_session(&session("s3", a.id)).await.unwrap();
    store.insert_session(&session("t1", b.id)).await.unwrap();
    assert_eq!(store.insert_session(&s1).await, Err(StoreError::Duplicate));
    assert_eq!(store.find_session("s1").await.unwrap(), Some(s1.clone()));
    assert_eq!(store.find_session("nope").await.unwrap(), None);
    assert!(store.touch_session("s1", 4_000_090_000).await.unwrap());
    assert_eq!(
        store.find_session("s1").await.unwrap().unwrap().expires_at,
        4_000_090_000
    );
    assert!(!store.touch_session("nope", 1).await.unwrap());
    assert!(store.delete_session("s2").await.unwrap());
    assert!(
        !store.delete_session("s2").await.unwrap(),
        "second delete reports nothing deleted"
    );
    assert_eq!(
        store.delete_user_sessions(&a.id, Some("s1")).await.unwrap(),
        1
    );
    assert!(store.find_session("s1").await.unwrap().is_some());
    assert!(store.find_session("s3").await.unwrap().is_none());
    assert_eq!(store.delete_user_sessions(&a.id, None).await.unwrap(), 1);
    assert!(
        store.find_session("t1").await.unwrap().is_some(),
        "other users' sessions survive"
    );
}

/// Refresh rotation: only from the current digest, once; the spent list keeps the newest.
async fn refresh_tokens_rotate_alike(store: &dyn Store) {
    let s = session("r1", UserId::new());
    store.insert_session(&s).await.unwrap();
    let after = store
        .rotate_refresh("r1", "refresh-r1", "next-1", 1_700_000_100, 4_000_090_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (after.refresh_digest.as_str(), after.refresh_prev.as_str()),
        ("next-1", "refresh-r1")
    );
    assert_eq!(after.refresh_rotated_at, 1_700_000_100);
    assert_eq!(after.expires_at, 4_000_090_000);
    assert_eq!(after.refresh_spent, vec!["refresh-r1".to_owned()]);
    assert_eq!(
        store.find_session("r1").await.unwrap().as_ref(),
        Some(&after)
    );
    assert_eq!(
        store
            .rotate_refresh("r1", "refresh-r1", "next-x", 1_700_000_101, 4_000_090_000)
            .await
            .unwrap(),
        None,
        "a spent digest cannot rotate again"
    );
    assert_eq!(
        store
            .rotate_refresh("gone", "refresh-r1", "next-x", 1_700_000_101, 4_000_090_000)
            .await
            .unwrap(),
        None
    );
    let mut current = "next-1".to_owned();
    for i in 0..(domain::store::SPENT_REFRESH_KEPT + 5) {
        let next = format!("n{i}");
        store
            .rotate_refresh("r1", &current, &next, 1_700_000_200, 4_000_090_000)
            .await
            .unwrap()
            .unwrap();
        current = next;
    }
    let spent = store
        .find_session("r1")
        .await
        .unwrap()
        .unwrap()
        .refresh_spent;
    assert_eq!(spent.len(), domain::store::SPENT_REFRESH_KEPT);
    assert_eq!(spent.last().map(String::as_str), Some("n67"));
}

#[tokio::test]
async fn mongo_indexes_are_created_idempotently() {
    let db = fresh_db();
    let store = mongo_store(&db).await;
    store.ensure_indexes().await.unwrap();
    store.ensure_indexes().await.unwrap();
    let names = adapters::mongo::user_index_names(&store).await.unwrap();
    assert!(
        names.iter().any(|n| n == adapters::mongo::PHONE_INDEX),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "phone_unique"),
        "replaced: {names:?}"
    );
}

#[tokio::test]
async fn a_prepared_insert_creates_the_indexes_in_the_background_once() {
    use domain::store::UserStore;
    let db = fresh_db();
    let opts = adapters::mongo::MongoOptions::default();
    let client = MongoStore::client(&mongo_uri(), &opts).await.unwrap();
    let store = MongoStore::new(&client, &db, "User", &opts);
    assert!(!store.indexes_ready());
    store.prepare_insert();
    store.prepare_insert();
    let started = std::time::Instant::now();
    while !store.indexes_ready() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no index creation started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let names = adapters::mongo::user_index_names(&store).await.unwrap();
    for unique in [adapters::mongo::PHONE_INDEX, "ids_unique"] {
        assert!(names.iter().any(|n| n == unique), "{names:?}");
    }
}

/// What a function's cold start builds: the URI parsed, no driver client (so no monitor
/// connecting and sending its handshake before the runtime's first poll) until
/// `connect_soon`'s task has let the tasks ready now, and those they wake, run first; or until
/// the first call, which builds it itself. Both stores then serve.
#[tokio::test(flavor = "current_thread")]
async fn a_deferred_store_builds_its_client_after_the_ready_tasks_or_on_its_first_call() {
    use domain::store::SessionStore;
    let (db, opts) = (fresh_db(), adapters::mongo::MongoOptions::default());
    let soon = MongoStore::deferred(&mongo_uri(), &db, "User", &opts)
        .await
        .unwrap();
    assert!(!soon.client_built());
    soon.connect_soon();
    tokio::task::yield_now().await;
    assert!(!soon.client_built(), "built before the ready tasks ran");
    let started = std::time::Instant::now();
    while !soon.client_built() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "never built"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(soon.find_session("none").await, Ok(None));

    let first_call = MongoStore::deferred(&mongo_uri(), &db, "User", &opts)
        .await
        .unwrap();
    assert_eq!(first_call.find_session("none").await, Ok(None));
    assert!(first_call.client_built());
    let bad = MongoStore::deferred("mongodb://h/?maxPoolSize=x", &db, "User", &opts).await;
    assert!(bad.is_err(), "a bad URI fails when the store is made");
}

const POLICY: AttemptPolicy = AttemptPolicy {
    threshold: 5,
    max_lock_secs: 900,
    memory_secs: 1800,
};

async fn reserve(store: &dyn Store, key: &str, now: i64) -> Reservation {
    store.reserve_attempt(key, now, &POLICY).await.unwrap()
}

/// Password-check reservations: counted before the check, locking from the threshold on.
async fn password_checks_are_counted_and_locked_alike(store: &dyn Store) {
    use Reservation::{Granted, Locked};
    for n in 1..=5 {
        assert_eq!(reserve(store, "k", 1000).await, Granted { attempt: n });
    }
    assert_eq!(
        reserve(store, "k", 1000).await,
        Locked { until: 1001 },
        "the 5th reservation locks at once, before its check has run"
    );
    let a = store.attempts("k").await.unwrap().unwrap();
    assert_eq!(
        (a.failures, a.locked_until),
        (5, 1001),
        "a refusal counts nothing"
    );
    assert_eq!(reserve(store, "k", 1001).await, Granted { attempt: 6 });
    assert_eq!(reserve(store, "k", 1002).await, Locked { until: 1003 });
    // Past the longest lock (900 s) but inside the memory (1800 s): the count goes on, so a
    // lock running out never hands out a fresh set of guesses.
    assert_eq!(reserve(store, "k", 2000).await, Granted { attempt: 7 });
    // After a quiet memory, it starts again.
    assert_eq!(
        reserve(store, "k", 2004 + 1800).await,
        Granted { attempt: 1 }
    );
    store.clear_attempts("k").await.unwrap();
    assert_eq!(store.attempts("k").await.unwrap(), None);
    assert_eq!(reserve(store, "k", 5000).await, Granted { attempt: 1 });
    assert_eq!(reserve(store, "other", 5000).await, Granted { attempt: 1 });
    // The lock is capped.
    for _ in 0..30 {
        if let Locked { until } = reserve(store, "cap", 10_000).await {
            assert!(until <= 10_000 + 900, "{until}");
        }
    }
}

/// Fixed-window budgets.
async fn budgets_count_within_their_limit_alike(store: &dyn Store) {
    for n in 1..=3 {
        assert_eq!(
            store.consume("b", 3, 60, 1200).await.unwrap(),
            Consumed::Within { count: n }
        );
    }
    assert_eq!(
        store.consume("b", 3, 60, 1210).await.unwrap(),
        Consumed::Exceeded { retry_after: 50 }
    );
    assert_eq!(
        store.consume("b", 3, 60, 1260).await.unwrap(),
        Consumed::Within { count: 1 },
        "a new window starts a new count"
    );
    assert_eq!(
        store.consume("c", 3, 60, 1210).await.unwrap(),
        Consumed::Within { count: 1 }
    );
    // A refused use is not counted: the count stays at the limit, and giving one back makes
    // room for exactly one more.
    for _ in 0..4 {
        store.consume("d", 3, 60, 1270).await.unwrap();
    }
    assert_eq!(store.used("d", 60, 1270).await.unwrap(), 3);
    store.release("d", 60, 1270).await.unwrap();
    assert_eq!(store.used("d", 60, 1271).await.unwrap(), 2);
    assert!(matches!(
        store.consume("d", 3, 60, 1271).await.unwrap(),
        Consumed::Within { count: 3 }
    ));
    assert!(matches!(
        store.consume("d", 3, 60, 1272).await.unwrap(),
        Consumed::Exceeded { .. }
    ));
    // Given back to zero, a counter is gone (a refused request leaves no document), and
    // giving back what was never taken changes nothing.
    store.consume("e", 3, 60, 1272).await.unwrap();
    store.release("e", 60, 1272).await.unwrap();
    assert_eq!(store.used("e", 60, 1272).await.unwrap(), 0);
    store.release("e", 60, 1272).await.unwrap();
    store.release("never", 60, 1272).await.unwrap();
    assert_eq!(store.used("never", 60, 1272).await.unwrap(), 0);
    assert_eq!(
        store.consume("e", 3, 60, 1272).await.unwrap(),
        Consumed::Within { count: 1 }
    );
}

/// 40 reservations at once, spread over `stores` (instances sharing one database): exactly
/// the threshold are granted, the rest refused.
async fn forty_racing_reservations_grant_only_the_threshold(stores: Vec<Arc<dyn Store>>) {
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = stores[i % stores.len()].clone();
            tokio::spawn(async move { s.reserve_attempt("race", 5000, &POLICY).await.unwrap() })
        })
        .collect();
    let mut granted = Vec::new();
    for t in tasks {
        if let Reservation::Granted { attempt } = t.await.unwrap() {
            granted.push(attempt);
        }
    }
    granted.sort();
    assert_eq!(
        granted,
        vec![1, 2, 3, 4, 5],
        "at most the threshold of checks may run"
    );
}

/// 40 uses at once against a limit of 10: exactly 10 are within it.
async fn forty_racing_uses_of_a_budget_stay_within_its_limit(stores: Vec<Arc<dyn Store>>) {
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = stores[i % stores.len()].clone();
            tokio::spawn(async move { s.consume("burst", 10, 3600, 7200).await.unwrap() })
        })
        .collect();
    let mut within = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Consumed::Within { .. }) {
            within += 1;
        }
    }
    assert_eq!(within, 10);
}

/// Disabling, deleting, walking every user in pages and forgetting a key's budgets.
async fn users_are_disabled_deleted_and_walked_alike(store: &dyn Store) {
    let a = user("5550101").build();
    let b = user("5550102").build();
    store.insert_user(&a).await.unwrap();
    store.insert_user(&b).await.unwrap();
    let disable = UserPatch {
        disabled: Some(true),
        ..UserPatch::default()
    };
    let d = store
        .update_user(&a.id, &disable, 5)
        .await
        .unwrap()
        .unwrap();
    assert!(d.disabled);
    assert!(store.find_user(&a.id).await.unwrap().unwrap().disabled);
    let enable = UserPatch {
        disabled: Some(false),
        ..UserPatch::default()
    };
    store.update_user(&a.id, &enable, 6).await.unwrap();
    assert!(!store.find_user(&a.id).await.unwrap().unwrap().disabled);

    // Pages in id order, each id once, with a bound.
    let mut ids = vec![a.id, b.id];
    for n in 0..5 {
        let u = user(&format!("555020{n}")).build();
        store.insert_user(&u).await.unwrap();
        ids.push(u.id);
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.users_after(after.as_ref(), 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|u| u.id));
    }
    assert_eq!(seen, ids);

    // Delete answers the user once; the phone is free at once.
    let gone = store.delete_user(&a.id).await.unwrap();
    assert_eq!(gone.map(|u| u.id), Some(a.id));
    assert_eq!(store.delete_user(&a.id).await.unwrap(), None);
    assert_eq!(store.find_user(&a.id).await.unwrap(), None);
    assert_eq!(
        store.find_user_by(&first_identifier(&a)).await.unwrap(),
        None
    );
    store.insert_user(&user("5550101").build()).await.unwrap();

    // Budgets: every window of one key goes, other keys stay.
    store.consume("k:user:1", 5, 60, 1_000).await.unwrap();
    store.consume("k:user:1", 5, 60, 2_000).await.unwrap();
    store.consume("k:user:10", 5, 60, 1_000).await.unwrap();
    store.clear_budget("k:user:1").await.unwrap();
    assert_eq!(
        store.consume("k:user:1", 5, 60, 1_000).await.unwrap(),
        Consumed::Within { count: 1 }
    );
    assert_eq!(
        store.consume("k:user:10", 5, 60, 1_000).await.unwrap(),
        Consumed::Within { count: 2 },
        "a key sharing the prefix keeps its count"
    );
}

/// Both metadata objects: kept as written (nested values, numbers, lists), each replaced whole
/// by a patch without touching the other or any other field, cleared by an empty object, and
/// carried through an update of identifiers (the read-and-swap path) unchanged.
async fn metadata_is_kept_replaced_and_cleared_alike(store: &dyn Store) {
    use domain::claims::Metadata;
    use serde_json::json;
    let m = |v: serde_json::Value| Metadata::parse_app(v, 4096).unwrap();
    let a = user("5550071").build();
    store.insert_user(&a).await.unwrap();
    let app = m(
        json!({"roles": ["editor"], "tenant": "acme", "limits": {"n": 3, "f": 1.5, "on": true, "none": null}}),
    );
    let mine = m(json!({"theme": "dark", "langs": ["en", "fr"]}));
    let update =
        async |patch: &UserPatch| store.update_user(&a.id, patch, NOW).await.unwrap().unwrap();
    let patch = UserPatch {
        app_metadata: Some(app.clone()),
        user_metadata: Some(mine.clone()),
        ..UserPatch::default()
    };
    let after = update(&patch).await;
    assert_eq!((&after.app_metadata, &after.user_metadata), (&app, &mine));
    assert_eq!(after.first_name, a.first_name);
    let read = store.find_user(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (read.app_metadata, read.user_metadata),
        (app.clone(), mine.clone())
    );
    // One replaced, the other left alone.
    let other = m(json!({"theme": "light"}));
    let patch = UserPatch {
        user_metadata: Some(other.clone()),
        ..UserPatch::default()
    };
    let after = update(&patch).await;
    assert_eq!((&after.app_metadata, &after.user_metadata), (&app, &other));
    // Through the read-and-swap path (an identifier change): unchanged.
    let patch = UserPatch {
        identifiers: vec![IdentifierChange::Set {
            identifier: domain::identity::Identifier::Phone(Phone::parse("5550072").unwrap()),
            verified_at: None,
        }],
        ..UserPatch::default()
    };
    let after = update(&patch).await;
    assert_eq!((&after.app_metadata, &after.user_metadata), (&app, &other));
    // Cleared.
    let patch = UserPatch {
        app_metadata: Some(Metadata::default()),
        ..UserPatch::default()
    };
    let after = update(&patch).await;
    assert!(after.app_metadata.is_empty());
    assert!(
        store
            .find_user(&a.id)
            .await
            .unwrap()
            .unwrap()
            .app_metadata
            .is_empty()
    );
}

async fn sessions_a_credential_opened_end_with_it_alike(store: &dyn Store) {
    let u = user("5550000190").build();
    store.insert_user(&u).await.unwrap();
    let mut by_password = session("s-pwd", u.id);
    by_password.opened.credential_id = "password".into();
    let mut by_provider = session("s-fed", u.id);
    by_provider.opened.credential_id = "federated:google".into();
    let mut other_user = session("s-other", UserId::new());
    other_user.opened.credential_id = "federated:google".into();
    for s in [&by_password, &by_provider, &other_user] {
        store.insert_session(s).await.unwrap();
    }
    assert_eq!(
        store
            .delete_sessions_opened_by(&u.id, "federated:google")
            .await
            .unwrap(),
        1
    );
    assert!(store.find_session("s-fed").await.unwrap().is_none());
    assert!(store.find_session("s-pwd").await.unwrap().is_some());
    assert!(
        store.find_session("s-other").await.unwrap().is_some(),
        "another user's stays"
    );
    assert_eq!(
        store
            .delete_sessions_opened_by(&u.id, "federated:google")
            .await
            .unwrap(),
        0
    );
}
