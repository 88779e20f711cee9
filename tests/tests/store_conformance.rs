//! One suite, every store: the embedded store must behave as MongoDB does.
#![allow(clippy::unwrap_used)]

use api_tests::{fresh_db, mongo_store};
use shared::{
    store::{
        LoginAttemptStore, SessionRecord, Store, StoreError, UserPatch, UserRecord,
        memory::MemoryStore,
    },
    types::{Name, Phone, UserId},
};

fn user(phone: &str) -> UserRecord {
    UserRecord {
        id: UserId::new(),
        first_name: Name::parse("Ann", "/f").unwrap(),
        middle_name: Some(Name::parse("B", "/m").unwrap()),
        last_name: Name::parse("Lee", "/l").unwrap(),
        phone: Phone::parse(phone, "/p").unwrap(),
        password_hash: "$argon2id$fake".into(),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

fn session(id: &str, user: UserId) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_id: user,
        token_digest: format!("digest-{id}"),
        created_at: 1_700_000_000,
        expires_at: 1_700_086_400,
        absolute_expires_at: 1_700_604_800,
    }
}

async fn conformance(store: &dyn Store) {
    // Users: insert, find by phone and id, uniqueness.
    let a = user("5550001");
    store.insert_user(&a).await.unwrap();
    assert_eq!(store.find_user(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.find_user_by_phone(&a.phone).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store
            .find_user_by_phone(&Phone::parse("5550009", "/p").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.find_user(&UserId::new()).await.unwrap(), None);
    assert_eq!(
        store.insert_user(&user("5550001")).await,
        Err(StoreError::Duplicate)
    );

    // Updates: fields change, middle name can be removed, phone stays unique.
    let b = user("5550002");
    store.insert_user(&b).await.unwrap();
    let patch = UserPatch {
        last_name: Some(Name::parse("Park", "/l").unwrap()),
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
    let steal = UserPatch {
        phone: Some(b.phone.clone()),
        ..UserPatch::default()
    };
    assert_eq!(
        store.update_user(&a.id, &steal, 1).await,
        Err(StoreError::Duplicate)
    );
    assert_eq!(
        store.find_user(&a.id).await.unwrap().unwrap().phone,
        a.phone,
        "failed update must not half-write"
    );
    let own = UserPatch {
        phone: Some(a.phone.clone()),
        ..UserPatch::default()
    };
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
    assert!(store.touch_session("s1", 1_700_090_000).await.unwrap());
    assert_eq!(
        store.find_session("s1").await.unwrap().unwrap().expires_at,
        1_700_090_000
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

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    conformance(&MemoryStore::new()).await;
}

#[tokio::test]
async fn mongo_store_passes_the_conformance_suite() {
    conformance(&mongo_store(&fresh_db()).await).await;
}

#[tokio::test]
async fn mongo_indexes_are_created_idempotently() {
    let db = fresh_db();
    let store = mongo_store(&db).await;
    store.ensure_indexes().await.unwrap();
    store.ensure_indexes().await.unwrap();
    let names = shared::store::mongo::user_index_names(&store)
        .await
        .unwrap();
    assert!(names.iter().any(|n| n == "phone_unique"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_are_all_counted_on_mongo() {
    let store = std::sync::Arc::new(mongo_store(&fresh_db()).await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.record_failure("race", 5000, 900).await.unwrap().failures })
        })
        .collect();
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<_>>(),
        "each failure counted exactly once"
    );
}
