//! The outbox, on every store: each change leaves exactly its events pending, a deletion's
//! only once it happened, and marking them sent takes exactly those away.

use domain::{
    events::Pending,
    store::{Store, UserPatch},
    types::{Name, UserId},
};

use super::{NOW, user};

on_every_store!(cases: [each_change_leaves_its_events_pending_until_marked_sent]);

async fn pending(store: &dyn Store) -> Vec<Pending> {
    store.pending_events(i64::MAX, 100).await.unwrap()
}

fn kinds(p: &[Pending]) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = p.iter().map(|p| p.event().kind.as_str()).collect();
    k.sort_unstable();
    k
}

async fn each_change_leaves_its_events_pending_until_marked_sent(store: &dyn Store) {
    let u = user("+12025550190").build();
    store.insert_user(&u).await.unwrap();
    assert_eq!(kinds(&pending(store).await), ["user.created"]);
    let patch = UserPatch {
        last_name: Some(Name::parse("Smythe").unwrap()),
        disabled: Some(true),
        ..UserPatch::default()
    };
    store.update_user(&u.id, &patch, NOW + 1).await.unwrap();
    // Disabled again (an operator's retry): not a change, so no second `user.disabled`.
    let again = UserPatch {
        disabled: Some(true),
        ..UserPatch::default()
    };
    let still = store.update_user(&u.id, &again, NOW + 1).await.unwrap();
    assert!(still.is_some_and(|u| u.disabled));
    // No such user: no change, no event.
    store
        .update_user(&UserId::new(), &patch, NOW + 1)
        .await
        .unwrap();
    let all = pending(store).await;
    assert_eq!(
        kinds(&all),
        ["user.created", "user.disabled", "user.updated"]
    );
    assert!(all.iter().all(|p| p.event().user_id == u.id));
    let mut s = super::users::session("s-events-1", u.id);
    store.insert_session(&s).await.unwrap();
    s.id = "s-events-2".into();
    store.insert_session(&s).await.unwrap();
    assert!(store.delete_session("s-events-1").await.unwrap());
    assert!(
        !store.delete_session("s-events-1").await.unwrap(),
        "gone already"
    );
    assert_eq!(store.delete_user_sessions(&u.id, None).await.unwrap(), 1);
    assert_eq!(store.delete_user_sessions(&u.id, None).await.unwrap(), 0);
    assert!(store.delete_user(&u.id).await.unwrap().is_some());
    assert!(store.delete_user(&u.id).await.unwrap().is_none());
    let all = pending(store).await;
    assert_eq!(
        kinds(&all),
        [
            "session.revoked",
            "session.revoked",
            "user.created",
            "user.deleted",
            "user.disabled",
            "user.updated",
        ],
        "one event per change that happened, none for those that found nothing"
    );
    for p in &all {
        if let Pending::Staged(e, until) = p {
            assert!(store.deletion_done(e, until).await.unwrap(), "{e:?}");
        }
        let d = p.event().detail().to_string();
        assert!(!d.contains("s-events") && !d.contains("2025550190"), "{d}");
    }
    let (sent, rest) = all.split_at(2);
    store.mark_sent(sent).await.unwrap();
    let left = pending(store).await;
    assert_eq!(left.len(), rest.len());
    assert!(
        left.iter()
            .all(|p| rest.iter().any(|r| r.event().id == p.event().id))
    );
    store.mark_sent(&left).await.unwrap();
    assert!(pending(store).await.is_empty());
}
