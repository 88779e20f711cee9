//! Credentials beside the password (a TOTP seed, recovery codes) and session step-ups: added
//! and removed by patch, a secret spent by one conditional swap (of any number racing from
//! one value, exactly one wins), and a step-up that raises a session once.

use std::sync::Arc;

use domain::{
    credential::{Assurance, CredentialKind, CredentialRecord, Opened},
    store::{CredentialChange, Secret, SessionRecord, Store, StoredCredential, UserPatch},
};
use futures::future::join_all;

use super::{NOW, user};

fn totp(secret: &str) -> StoredCredential {
    StoredCredential {
        record: CredentialRecord {
            id: "totp".into(),
            kind: CredentialKind::Totp,
            label: "Phone app".into(),
            created_at: NOW,
            last_used_at: None,
        },
        secret: Secret::new(secret.into()),
    }
}

on_every_store!(
    cases: [
        credentials_are_added_and_removed_by_patch_beside_the_password,
        a_secret_is_swapped_only_from_the_value_it_holds,
        a_step_up_raises_a_session_and_keeps_its_first_methods,
    ],
    racing: [twenty_racing_swaps_from_one_secret_let_exactly_one_win],
);

async fn credentials_are_added_and_removed_by_patch_beside_the_password(store: &dyn Store) {
    let u = user("4025550140").build();
    store.insert_user(&u).await.unwrap();
    let added = store
        .update_user(
            &u.id,
            &UserPatch::credential(CredentialChange::Add(totp("s1"))),
            NOW + 1,
        )
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<CredentialKind> = added.credentials.iter().map(|c| c.record.kind).collect();
    assert_eq!(kinds, [CredentialKind::Password, CredentialKind::Totp]);
    assert_eq!(
        added.password_hash(),
        u.password_hash(),
        "the password untouched"
    );
    let read = store.find_user(&u.id).await.unwrap().unwrap();
    assert_eq!(read.credentials[1].secret, Secret::new("s1".into()));
    assert_eq!(read.credentials[1].record.label, "Phone app");
    // Adding under the same id replaces; removing by kind leaves the password.
    let replaced = store
        .update_user(
            &u.id,
            &UserPatch::credential(CredentialChange::Add(totp("s2"))),
            NOW + 2,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.credentials.len(), 2);
    assert_eq!(replaced.credentials[1].secret, Secret::new("s2".into()));
    let removed = store
        .update_user(
            &u.id,
            &UserPatch::credential(CredentialChange::RemoveKind(CredentialKind::Totp)),
            NOW + 3,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.credentials.len(), 1);
    assert_eq!(removed.password_hash(), u.password_hash());
}

async fn a_secret_is_swapped_only_from_the_value_it_holds(store: &dyn Store) {
    let u = user("4025550141").build();
    store.insert_user(&u).await.unwrap();
    store
        .update_user(
            &u.id,
            &UserPatch::credential(CredentialChange::Add(totp("a"))),
            NOW,
        )
        .await
        .unwrap();
    let (a, b, c) = (
        Secret::new("a".into()),
        Secret::new("b".into()),
        Secret::new("c".into()),
    );
    assert!(
        store
            .swap_credential_secret(&u.id, "totp", &a, &b, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .swap_credential_secret(&u.id, "totp", &a, &c, NOW)
            .await
            .unwrap(),
        "a stale expectation loses"
    );
    assert!(
        !store
            .swap_credential_secret(&u.id, "other", &b, &c, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .swap_credential_secret(&domain::types::UserId::new(), "totp", &b, &c, NOW)
            .await
            .unwrap()
    );
    let read = store.find_user(&u.id).await.unwrap().unwrap();
    assert_eq!(read.credentials[1].secret, b);
    assert_eq!(read.password_hash(), u.password_hash());
}

async fn twenty_racing_swaps_from_one_secret_let_exactly_one_win(stores: Vec<Arc<dyn Store>>) {
    let u = user("4025550142").build();
    stores[0].insert_user(&u).await.unwrap();
    stores[0]
        .update_user(
            &u.id,
            &UserPatch::credential(CredentialChange::Add(totp("code-1"))),
            NOW,
        )
        .await
        .unwrap();
    let from = Secret::new("code-1".into());
    let wins = join_all((0..20).map(|i| {
        let store = Arc::clone(&stores[i % 2]);
        let from = from.clone();
        async move {
            store
                .swap_credential_secret(
                    &u.id,
                    "totp",
                    &from,
                    &Secret::new(format!("spent-{i}")),
                    NOW,
                )
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    let read = stores[1].find_user(&u.id).await.unwrap().unwrap();
    let winner = wins.iter().position(|w| *w).unwrap();
    assert_eq!(
        read.credentials[1].secret,
        Secret::new(format!("spent-{winner}"))
    );
}

async fn a_step_up_raises_a_session_and_keeps_its_first_methods(store: &dyn Store) {
    let u = user("4025550143").build();
    let session = SessionRecord {
        id: "s-step".into(),
        user_id: u.id,
        token_digest: "d".into(),
        created_at: NOW,
        expires_at: NOW + 3600,
        absolute_expires_at: NOW + 7200,
        opened: Opened {
            credential_id: "password".into(),
            method: "pwd".into(),
        },
        assurance: Assurance::single("pwd", NOW),
        ..SessionRecord::default()
    };
    store.insert_session(&session).await.unwrap();
    assert_eq!(
        store
            .find_session("s-step")
            .await
            .unwrap()
            .unwrap()
            .assurance()
            .aal(),
        1
    );
    let up = store
        .step_up_session("s-step", "otp", NOW + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(up.assurance.amr, ["pwd", "otp", "mfa"]);
    assert_eq!((up.assurance.aal(), up.assurance.auth_time), (2, NOW + 5));
    let again = store
        .step_up_session("s-step", "otp", NOW + 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.assurance.amr,
        ["pwd", "otp", "mfa"],
        "each method once"
    );
    assert_eq!(again.assurance.aal2_at, Some(NOW + 9));
    assert_eq!(
        store
            .find_session("s-step")
            .await
            .unwrap()
            .unwrap()
            .assurance,
        again.assurance
    );
    assert_eq!(
        store.step_up_session("gone", "otp", NOW).await.unwrap(),
        None
    );
    // A session of an earlier release (no methods recorded) keeps the method that opened it.
    let old = SessionRecord {
        id: "s-old".into(),
        assurance: Assurance::default(),
        ..session
    };
    store.insert_session(&old).await.unwrap();
    let up = store
        .step_up_session("s-old", "kba", NOW + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(up.assurance().amr, ["pwd", "kba", "mfa"]);
}
