//! The one-time code store and the verification user fields, on every store.

use std::sync::Arc;

use domain::{
    identity::{Identifier, IdentifierKind},
    store::{CodeCheck, CodeRecord, IdentifierChange, Issued, Store, UserPatch},
    types::{Phone, UserId},
};

use super::{NOW, first_identifier, user};

on_every_store!(
    cases: [
        codes_are_issued_reserved_and_spent_alike,
        daily_counters_survive_hourly_ones,
        codes_are_deleted_by_phone,
    ],
    racing: [forty_racing_code_attempts_get_five],
);

fn code(phone: &str, hash: u8, sent_at: i64) -> CodeRecord {
    CodeRecord {
        phone: phone.into(),
        purpose: "signup".into(),
        hash: vec![hash; 32],
        user_id: Some(UserId::new()),
        sent_at,
        expires_at: sent_at + 300,
        attempts: 0,
    }
}

async fn codes_are_issued_reserved_and_spent_alike(store: &dyn Store) {
    let p = "+12025550111";
    let first = code(p, 1, NOW);
    assert_eq!(store.live_code("signup", p, NOW).await.unwrap(), None);
    assert_eq!(store.issue_code(&first, 60).await.unwrap(), Issued::Stored);
    // A look at the live code reserves nothing; an expired one is not live.
    let live = store.live_code("signup", p, NOW + 1).await.unwrap();
    assert_eq!(
        live.map(|c| (c.hash, c.attempts)),
        Some((first.hash.clone(), 0))
    );
    assert_eq!(
        store
            .live_code("signup", p, first.expires_at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.live_code("recovery", p, NOW + 1).await.unwrap(), None);
    // Within the cooldown nothing changes; the answer says how long to wait.
    assert_eq!(
        store.issue_code(&code(p, 2, NOW + 20), 60).await.unwrap(),
        Issued::Cooldown { retry_after: 40 }
    );
    // Attempts are reserved (and counted) before any comparison, up to the limit.
    for n in 1..=3 {
        match store
            .reserve_code_attempt("signup", p, 3, NOW + 1)
            .await
            .unwrap()
        {
            CodeCheck::Reserved(c) => {
                assert_eq!(
                    (c.attempts, c.hash.clone(), c.user_id),
                    (n, first.hash.clone(), first.user_id)
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        store
            .reserve_code_attempt("signup", p, 3, NOW + 1)
            .await
            .unwrap(),
        CodeCheck::Unavailable
    );
    // After the cooldown a new code replaces the old one, attempts start again.
    let second = code(p, 3, NOW + 60);
    assert_eq!(store.issue_code(&second, 60).await.unwrap(), Issued::Stored);
    assert!(
        !store.spend_code("signup", p, &first.hash).await.unwrap(),
        "old code is gone"
    );
    assert!(matches!(
        store.reserve_code_attempt("signup", p, 3, NOW + 61).await.unwrap(),
        CodeCheck::Reserved(c) if c.attempts == 1 && c.hash == second.hash
    ));
    // Other purposes and phones are separate records.
    assert_eq!(
        store
            .reserve_code_attempt("password-recovery", p, 3, NOW + 61)
            .await
            .unwrap(),
        CodeCheck::Unavailable
    );
    // Expired: no reservation.
    assert_eq!(
        store
            .reserve_code_attempt("signup", p, 3, NOW + 360)
            .await
            .unwrap(),
        CodeCheck::Unavailable
    );
    // Spent once only.
    assert!(store.spend_code("signup", p, &second.hash).await.unwrap());
    assert!(!store.spend_code("signup", p, &second.hash).await.unwrap());
    assert_eq!(
        store
            .reserve_code_attempt("signup", p, 3, NOW + 62)
            .await
            .unwrap(),
        CodeCheck::Unavailable
    );

    // Users: unverified ones are deleted only when old enough; verified ones never.
    let squat = user("+12025550112").unverified().build();
    store.insert_user(&squat).await.unwrap();
    assert!(
        !store
            .delete_unverified_user(&first_identifier(&squat), NOW)
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_unverified_user(&first_identifier(&squat), NOW + 1)
            .await
            .unwrap()
    );
    assert_eq!(store.find_user(&squat.id).await.unwrap(), None);
    let owner = user("+12025550112").build();
    store.insert_user(&owner).await.unwrap();
    assert!(
        !store
            .delete_unverified_user(&first_identifier(&owner), NOW + 999)
            .await
            .unwrap()
    );
    // Pending phones: set, found, cleared; verification flag set.
    let pending = Phone::parse("+12025550113").unwrap();
    let patch = UserPatch {
        identifiers: vec![
            IdentifierChange::Pend(Identifier::Phone(pending.clone())),
            IdentifierChange::Set {
                identifier: first_identifier(&owner),
                verified_at: None,
            },
        ],
        ..UserPatch::default()
    };
    let u = store
        .update_user(&owner.id, &patch, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (u.pending_phone().cloned(), u.phone_verified()),
        (Some(pending.clone()), false)
    );
    assert_eq!(store.find_user(&owner.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        store
            .find_user_by_pending_phone(&pending)
            .await
            .unwrap()
            .map(|u| u.id),
        Some(owner.id)
    );
    let clear = UserPatch {
        identifiers: vec![
            IdentifierChange::Unpend(IdentifierKind::Phone),
            IdentifierChange::Verify(IdentifierKind::Phone),
        ],
        ..UserPatch::default()
    };
    let u = store
        .update_user(&owner.id, &clear, NOW + 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((u.pending_phone(), u.phone_verified()), (None, true));
    assert_eq!(
        store.find_user_by_pending_phone(&pending).await.unwrap(),
        None
    );
}

/// 40 reservations racing (on as many store handles as given) get exactly the limit.
async fn forty_racing_code_attempts_get_five(stores: Vec<Arc<dyn Store>>) {
    let p = "+12025550114";
    stores[0].issue_code(&code(p, 9, NOW), 60).await.unwrap();
    let tries = (0..40).map(|i| {
        let s = stores[i % stores.len()].clone();
        tokio::spawn(async move {
            s.reserve_code_attempt("signup", p, 5, NOW + 1)
                .await
                .unwrap()
        })
    });
    let granted = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| matches!(r.as_ref().unwrap(), CodeCheck::Reserved(_)))
        .count();
    assert_eq!(granted, 5);
}

/// Counters of different windows live side by side: an hourly counter's use never resets a
/// daily one (the SMS daily budget and the idempotency claims are daily).
async fn daily_counters_survive_hourly_ones(store: &dyn Store) {
    use domain::store::Consumed;
    let day_start = 1_700_006_400; // a multiple of 86 400
    let t = day_start + 7_200; // two hours into the day
    assert_eq!(
        store.consume("daily", 1, 86_400, t).await.unwrap(),
        Consumed::Within { count: 1 }
    );
    assert_eq!(
        store.consume("hourly", 5, 3_600, t).await.unwrap(),
        Consumed::Within { count: 1 }
    );
    assert!(matches!(
        store.consume("daily", 1, 86_400, t + 1).await.unwrap(),
        Consumed::Exceeded { .. }
    ));
}

/// Erasing an account deletes every code sent to its phone, whatever the purpose.
async fn codes_are_deleted_by_phone(store: &dyn Store) {
    let p = "+12025550122";
    let mut recovery = code(p, 7, NOW);
    recovery.purpose = "recovery".into();
    store.issue_code(&code(p, 6, NOW), 60).await.unwrap();
    store.issue_code(&recovery, 60).await.unwrap();
    store
        .issue_code(&code("+12025550123", 8, NOW), 60)
        .await
        .unwrap();
    assert_eq!(store.delete_codes(p).await.unwrap(), 2);
    for purpose in ["signup", "recovery"] {
        assert_eq!(
            store
                .reserve_code_attempt(purpose, p, 5, NOW + 1)
                .await
                .unwrap(),
            CodeCheck::Unavailable
        );
    }
    assert!(matches!(
        store
            .reserve_code_attempt("signup", "+12025550123", 5, NOW + 1)
            .await
            .unwrap(),
        CodeCheck::Reserved(_)
    ));
}
