//! Identifiers and credentials as records, on every store: every kind unique across accounts
//! (on insert and on update, with nothing half-written), found by kind, pending replacements,
//! credential use times, and racing updates of one user that lose nothing.

use std::sync::Arc;

use domain::{
    identity::{Email, Identifier, IdentifierKind},
    store::{IdentifierChange, Store, StoreError, UserPatch},
    types::Name,
};

use super::{NOW, first_identifier, user};

on_every_store!(
    cases: [
        identifiers_of_every_kind_are_unique_across_accounts,
        pending_and_unproven_identifiers_are_found_by_kind,
        a_credential_use_is_recorded_and_kept_by_later_updates,
        an_account_that_proved_any_identifier_is_never_taken_over,
    ],
    racing: [racing_updates_of_one_user_lose_nothing],
);

fn email(s: &str) -> Identifier {
    Identifier::Email(Email::stored(s.into()))
}

fn add(identifier: Identifier, verified_at: Option<i64>) -> UserPatch {
    UserPatch::identifier(IdentifierChange::Set {
        identifier,
        verified_at,
    })
}

async fn identifiers_of_every_kind_are_unique_across_accounts(store: &dyn Store) {
    let a = user("5550001").build();
    let b = user("5550002").build();
    store.insert_user(&a).await.unwrap();
    store.insert_user(&b).await.unwrap();
    let google = Identifier::Federated {
        provider: "https://accounts.google.com".into(),
        subject: "1234".into(),
    };
    for id in [email("ann@example.com"), google] {
        let held = store
            .find_user(&a.id)
            .await
            .unwrap()
            .unwrap()
            .identifiers
            .len();
        let with = store
            .update_user(&a.id, &add(id.clone(), Some(NOW)), NOW + 1)
            .await
            .unwrap()
            .unwrap();
        assert!(with.holds(&id), "{id}");
        assert_eq!(with.identifiers.len(), held + 1);
        assert_eq!(
            store.find_user_by(&id).await.unwrap().map(|u| u.id),
            Some(a.id),
            "{id}"
        );
        // Another account cannot take it, by update or by insert; nothing half-written.
        let steal = UserPatch {
            last_name: Some(Name::parse("Thief").unwrap()),
            ..add(id.clone(), None)
        };
        assert_eq!(
            store.update_user(&b.id, &steal, NOW + 2).await,
            Err(StoreError::Duplicate),
            "{id}"
        );
        let b_now = store.find_user(&b.id).await.unwrap().unwrap();
        assert_eq!(
            b_now.last_name, b.last_name,
            "{id}: refused update half-written"
        );
        assert!(!b_now.holds(&id));
        let mut c = user("5550003").build();
        c.identifiers
            .push(domain::identity::IdentifierRecord::new(id.clone(), None));
        assert_eq!(
            store.insert_user(&c).await,
            Err(StoreError::Duplicate),
            "{id}"
        );
        assert_eq!(store.find_user(&c.id).await.unwrap(), None);
    }
    // The same value under another kind is another identifier.
    let phone_as_email = email(first_identifier(&b).key().trim_start_matches("phone:"));
    assert!(
        store
            .update_user(&b.id, &add(phone_as_email, None), NOW + 3)
            .await
            .unwrap()
            .is_some()
    );
}

async fn pending_and_unproven_identifiers_are_found_by_kind(store: &dyn Store) {
    let a = user("5550011").build();
    store.insert_user(&a).await.unwrap();
    let new = email("new@example.com");
    store
        .update_user(
            &a.id,
            &UserPatch::identifier(IdentifierChange::Pend(new.clone())),
            NOW + 1,
        )
        .await
        .unwrap()
        .unwrap();
    let found = store.find_user_by_pending(&new).await.unwrap().unwrap();
    assert_eq!(found.id, a.id);
    assert_eq!(found.pending(IdentifierKind::Email), Some(&new));
    assert_eq!(found.pending[0].requested_at, NOW + 1);
    assert_eq!(
        store.find_user_by(&new).await.unwrap(),
        None,
        "pending is not held"
    );
    // Pending phone and email side by side; dropping one keeps the other.
    let phone = Identifier::Phone(domain::types::Phone::parse("5550019").unwrap());
    let both = UserPatch::identifier(IdentifierChange::Pend(phone.clone()));
    store.update_user(&a.id, &both, NOW + 2).await.unwrap();
    let drop_email = UserPatch::identifier(IdentifierChange::Unpend(IdentifierKind::Email));
    let u = store
        .update_user(&a.id, &drop_email, NOW + 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.pending(IdentifierKind::Email), None);
    assert_eq!(u.pending(IdentifierKind::Phone), Some(&phone));
    assert_eq!(store.find_user_by_pending(&new).await.unwrap(), None);

    // An unproven email: its account is deleted only when old enough, and only while it is
    // unproven.
    let b = user("5550012").unverified().build();
    store.insert_user(&b).await.unwrap();
    let mail = email("b@example.com");
    store
        .update_user(&b.id, &add(mail.clone(), None), NOW)
        .await
        .unwrap();
    assert!(!store.delete_unverified_user(&mail, NOW).await.unwrap());
    let proven = UserPatch::identifier(IdentifierChange::Verify(IdentifierKind::Email));
    store.update_user(&b.id, &proven, NOW + 1).await.unwrap();
    assert!(!store.delete_unverified_user(&mail, NOW + 99).await.unwrap());
    let unprove = add(mail.clone(), None);
    store.update_user(&b.id, &unprove, NOW + 2).await.unwrap();
    assert!(store.delete_unverified_user(&mail, NOW + 99).await.unwrap());
    assert_eq!(store.find_user(&b.id).await.unwrap(), None);
}

async fn a_credential_use_is_recorded_and_kept_by_later_updates(store: &dyn Store) {
    let a = user("5550021").build();
    store.insert_user(&a).await.unwrap();
    let after = store
        .touch_credential(&a.id, "password", NOW + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.password().unwrap().record.last_used_at, Some(NOW + 5));
    let renamed = UserPatch {
        first_name: Some(Name::parse("Bo").unwrap()),
        ..UserPatch::default()
    };
    let u = store
        .update_user(&a.id, &renamed, NOW + 6)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.password().unwrap().record.last_used_at, Some(NOW + 5));
    assert_eq!(
        store.find_user(&a.id).await.unwrap().unwrap(),
        u,
        "what an update answers is what is stored"
    );
    assert_eq!(
        store
            .touch_credential(&domain::types::UserId::new(), "password", NOW)
            .await
            .unwrap(),
        None
    );
}

/// Twelve different changes to one user at once, from two handles (two clients on MongoDB):
/// each is applied, none overwrites another.
async fn racing_updates_of_one_user_lose_nothing(stores: Vec<Arc<dyn Store>>) {
    let a = user("5550031").build();
    stores[0].insert_user(&a).await.unwrap();
    let mut patches = vec![
        UserPatch::identifier(IdentifierChange::Pend(email("p@example.com"))),
        add(email("a@example.com"), Some(NOW)),
        UserPatch {
            last_name: Some(Name::parse("Park").unwrap()),
            ..UserPatch::default()
        },
        UserPatch {
            middle_name: Some(None),
            ..UserPatch::default()
        },
        UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
        UserPatch {
            password_hash: Some("$argon2id$new".into()),
            ..UserPatch::default()
        },
    ];
    for i in 0..6 {
        patches.push(UserPatch {
            first_name: Some(Name::parse(&format!("N{i}")).unwrap()),
            ..UserPatch::default()
        });
    }
    let tasks: Vec<_> = patches
        .into_iter()
        .enumerate()
        .map(|(i, patch)| {
            let store = Arc::clone(&stores[i % stores.len()]);
            let id = a.id;
            tokio::spawn(async move { store.update_user(&id, &patch, NOW + 1).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_some());
    }
    let u = stores[1].find_user(&a.id).await.unwrap().unwrap();
    assert_eq!(
        u.pending(IdentifierKind::Email),
        Some(&email("p@example.com"))
    );
    assert!(u.holds(&email("a@example.com")));
    assert_eq!(u.last_name.as_str(), "Park");
    assert_eq!(u.middle_name, None);
    assert!(u.disabled);
    assert_eq!(u.password_hash(), "$argon2id$new");
    assert!(u.first_name.as_str().starts_with('N'));
    assert!(u.holds(&first_identifier(&a)));
}

async fn an_account_that_proved_any_identifier_is_never_taken_over(store: &dyn Store) {
    // A phone and email signup that proved its email but not its phone.
    let a = user("5550041").unverified().build();
    store.insert_user(&a).await.unwrap();
    let mail = email("proved@example.com");
    store
        .update_user(&a.id, &add(mail.clone(), Some(NOW)), NOW)
        .await
        .unwrap();
    let phone = first_identifier(&a);
    assert!(
        !store
            .delete_unverified_user(&phone, NOW + 999)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_unverified_user(&mail, NOW + 999)
            .await
            .unwrap()
    );
    assert!(store.find_user(&a.id).await.unwrap().is_some());
    // One that proved nothing goes, by either identifier.
    let b = user("5550042").unverified().build();
    store.insert_user(&b).await.unwrap();
    let other = email("squat@example.com");
    store
        .update_user(&b.id, &add(other.clone(), None), NOW)
        .await
        .unwrap();
    assert!(
        store
            .delete_unverified_user(&other, NOW + 999)
            .await
            .unwrap()
    );
    assert_eq!(store.find_user(&b.id).await.unwrap(), None);
}
