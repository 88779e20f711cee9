//! Ceremonies: single-use, expiring, kind-bound, and taken once however many race.

use std::sync::Arc;

use domain::{
    store::{Ceremony, CeremonyId, CeremonyKind, Store, StoreError},
    types::UserId,
};

use super::NOW;

fn ceremony(kind: CeremonyKind, ttl: i64) -> Ceremony {
    Ceremony {
        id: CeremonyId::new().unwrap(),
        kind,
        user_id: Some(UserId::new()),
        state: b"challenge and what the flow needs next".to_vec(),
        expires_at: NOW + ttl,
    }
}

on_every_store!(
    cases: [
        a_ceremony_is_taken_once_with_its_state,
        a_ceremony_is_not_found_after_it_expires,
        a_ceremony_is_found_only_as_its_own_kind,
        a_ceremony_id_is_never_reused,
        a_ceremony_found_stays_until_it_is_taken,
    ],
    racing: [twenty_racing_takes_get_one_ceremony],
);

async fn a_ceremony_is_taken_once_with_its_state(store: &dyn Store) {
    let c = ceremony(CeremonyKind::PasskeyLogin, 300);
    store.put_ceremony(&c, NOW).await.unwrap();
    let taken = store.take_ceremony(&c.id, c.kind, NOW + 1).await.unwrap();
    assert_eq!(taken, Some(c.clone()));
    assert_eq!(
        store.take_ceremony(&c.id, c.kind, NOW + 2).await.unwrap(),
        None
    );
    // Without a user, and with empty state.
    let anonymous = Ceremony {
        user_id: None,
        state: Vec::new(),
        ..ceremony(CeremonyKind::FederatedLogin, 60)
    };
    store.put_ceremony(&anonymous, NOW).await.unwrap();
    let taken = store
        .take_ceremony(&anonymous.id, anonymous.kind, NOW)
        .await
        .unwrap();
    assert_eq!(taken, Some(anonymous));
}

async fn a_ceremony_is_not_found_after_it_expires(store: &dyn Store) {
    let c = ceremony(CeremonyKind::TotpEnrolment, 300);
    store.put_ceremony(&c, NOW).await.unwrap();
    // The last second it lives, then the first it does not (here, before any TTL sweep).
    let late = ceremony(CeremonyKind::TotpEnrolment, 300);
    store.put_ceremony(&late, NOW).await.unwrap();
    assert_eq!(
        store.take_ceremony(&c.id, c.kind, NOW + 300).await.unwrap(),
        None
    );
    let taken = store
        .take_ceremony(&late.id, late.kind, NOW + 299)
        .await
        .unwrap();
    assert_eq!(taken.map(|t| t.id), Some(late.id));
}

async fn a_ceremony_is_found_only_as_its_own_kind(store: &dyn Store) {
    let c = ceremony(CeremonyKind::PasskeyRegistration, 300);
    store.put_ceremony(&c, NOW).await.unwrap();
    for other in CeremonyKind::ALL.into_iter().filter(|k| *k != c.kind) {
        assert_eq!(
            store.take_ceremony(&c.id, other, NOW).await.unwrap(),
            None,
            "{other:?}"
        );
    }
    // A wrong-kind take leaves it for the right one.
    assert_eq!(
        store
            .take_ceremony(&c.id, c.kind, NOW)
            .await
            .unwrap()
            .map(|t| t.kind),
        Some(c.kind)
    );
    // An id that was never issued.
    let unknown = CeremonyId::new().unwrap();
    assert_eq!(
        store.take_ceremony(&unknown, c.kind, NOW).await.unwrap(),
        None
    );
}

async fn a_ceremony_id_is_never_reused(store: &dyn Store) {
    let c = ceremony(CeremonyKind::EmailLink, 300);
    store.put_ceremony(&c, NOW).await.unwrap();
    let again = Ceremony {
        state: b"another".to_vec(),
        ..c.clone()
    };
    assert_eq!(
        store.put_ceremony(&again, NOW).await,
        Err(StoreError::Duplicate)
    );
    let taken = store.take_ceremony(&c.id, c.kind, NOW).await.unwrap();
    assert_eq!(taken.map(|t| t.state), Some(c.state));
}

/// Twenty takes of one ceremony on two instances at once: exactly one gets it.
async fn twenty_racing_takes_get_one_ceremony(stores: Vec<Arc<dyn Store>>) {
    let c = ceremony(CeremonyKind::SecondFactor, 300);
    stores[0].put_ceremony(&c, NOW).await.unwrap();
    let takes = (0..20).map(|i| {
        let store = Arc::clone(&stores[i % stores.len()]);
        let (id, kind) = (c.id.clone(), c.kind);
        tokio::spawn(async move { store.take_ceremony(&id, kind, NOW + 1).await.unwrap() })
    });
    let got: Vec<_> = futures::future::join_all(takes)
        .await
        .into_iter()
        .filter_map(Result::unwrap)
        .collect();
    assert_eq!(got, vec![c]);
}

async fn a_ceremony_found_stays_until_it_is_taken(store: &dyn Store) {
    let c = ceremony(CeremonyKind::SecondFactor, 300);
    store.put_ceremony(&c, NOW).await.unwrap();
    for _ in 0..2 {
        let found = store.find_ceremony(&c.id, c.kind, NOW + 1).await.unwrap();
        assert_eq!(found.as_ref(), Some(&c), "a look takes nothing");
    }
    let other = CeremonyKind::PasskeyLogin;
    assert_eq!(store.find_ceremony(&c.id, other, NOW).await.unwrap(), None);
    assert_eq!(
        store.find_ceremony(&c.id, c.kind, NOW + 300).await.unwrap(),
        None,
        "expired"
    );
    assert!(
        store
            .take_ceremony(&c.id, c.kind, NOW + 2)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.find_ceremony(&c.id, c.kind, NOW + 3).await.unwrap(),
        None
    );
}
