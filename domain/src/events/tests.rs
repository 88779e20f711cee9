use super::*;
use crate::{
    identity::Identifier,
    store::{IdentifierChange, StoredCredential},
    types::{Name, Phone},
};

fn user() -> UserRecord {
    UserRecord::new(
        UserId::from_bytes([1; 12]),
        (
            Name::parse("Ann").unwrap(),
            None,
            Name::parse("Lee").unwrap(),
        ),
        vec![Identifier::Phone(Phone::parse("+12025550100").unwrap())],
        "hash".into(),
        1,
    )
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[test]
fn a_patch_makes_the_events_of_what_it_changes_and_no_others() {
    let before = user();
    let table: Vec<(UserPatch, Vec<&str>)> = vec![
        (UserPatch::default(), vec![]),
        (
            UserPatch {
                last_name: Some(Name::parse("Smythe").unwrap()),
                ..Default::default()
            },
            vec!["user.updated"],
        ),
        (
            UserPatch {
                password_hash: Some("h2".into()),
                disabled: Some(true),
                ..Default::default()
            },
            vec!["user.disabled", "password.changed"],
        ),
        (
            UserPatch::identifier(IdentifierChange::Verify(IdentifierKind::Phone)),
            vec!["user.verified"],
        ),
        (
            UserPatch::identifier(IdentifierChange::Pend(Identifier::Phone(
                Phone::parse("+12025550101").unwrap(),
            ))),
            vec![],
        ),
        (
            UserPatch::identifier(IdentifierChange::Set {
                identifier: Identifier::Phone(Phone::parse("+12025550101").unwrap()),
                verified_at: Some(5),
            }),
            vec!["identifier.changed"],
        ),
    ];
    for (patch, expected) in table {
        let mut after = before.clone();
        patch.apply(&mut after, 5);
        let events = for_update(before.id, &patch, Some(&before), Some(&after), 5);
        assert_eq!(kinds(&events), expected, "{patch:?}");
    }
    // Proving what is proven already says nothing.
    let mut proven = before.clone();
    UserPatch::identifier(IdentifierChange::Verify(IdentifierKind::Phone)).apply(&mut proven, 2);
    let patch = UserPatch::identifier(IdentifierChange::Verify(IdentifierKind::Phone));
    let mut again = proven.clone();
    patch.apply(&mut again, 3);
    assert!(for_update(before.id, &patch, Some(&proven), Some(&again), 3).is_empty());
}

#[test]
fn factors_added_and_removed_are_events_but_the_password_is_not_a_factor() {
    let before = user();
    let mut totp = StoredCredential::password("secret".into(), 4);
    totp.record.id = "totp-1".into();
    totp.record.kind = CredentialKind::Totp;
    let add = UserPatch::credential(crate::store::CredentialChange::Add(totp));
    let mut after = before.clone();
    add.apply(&mut after, 4);
    let events = for_update(before.id, &add, Some(&before), Some(&after), 4);
    assert_eq!(kinds(&events), ["factor.added"]);
    assert_eq!(events[0].data["kind"], "totp");
    let remove = UserPatch::credential(crate::store::CredentialChange::Remove("totp-1".into()));
    let mut gone = after.clone();
    remove.apply(&mut gone, 5);
    assert_eq!(
        kinds(&for_update(
            before.id,
            &remove,
            Some(&after),
            Some(&gone),
            5
        )),
        ["factor.removed"]
    );
}

/// A bus that accepts what `accept` says and records what it took.
struct Bus {
    accept: fn(&Event) -> bool,
    down: std::sync::atomic::AtomicBool,
    took: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl EventPublisher for Bus {
    async fn publish(&self, events: &[Event]) -> Result<Vec<String>, PublishError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PublishError("down".into()));
        }
        let ids: Vec<String> = events
            .iter()
            .filter(|e| (self.accept)(e))
            .map(|e| e.id.clone())
            .collect();
        self.took.lock().unwrap().extend(ids.clone());
        Ok(ids)
    }
}

#[tokio::test]
async fn only_what_the_bus_accepted_is_marked_sent_and_the_rest_waits_for_the_drain() {
    use crate::store::{UserStore, memory::MemoryStore};
    let store = Arc::new(MemoryStore::new().with_events(true));
    let bus = Arc::new(Bus {
        accept: |e| e.kind != EventKind::UserUpdated,
        down: std::sync::atomic::AtomicBool::new(true),
        took: Default::default(),
    });
    let relay = Relay {
        publisher: bus.clone(),
        store: store.clone(),
    };
    let u = user();
    let ((), written) = journal::scope(async {
        store.insert_user(&u).await.unwrap();
        let patch = UserPatch {
            last_name: Some(Name::parse("Smythe").unwrap()),
            ..Default::default()
        };
        store.update_user(&u.id, &patch, 2).await.unwrap();
    })
    .await;
    assert_eq!(written.len(), 2, "the journal holds what the request wrote");
    let d = relay.deliver(written, 2).await;
    assert_eq!(
        (d.sent, d.failed),
        (0, 2),
        "the bus is down: nothing is lost"
    );
    assert_eq!(store.pending_events(i64::MAX, 10).await.unwrap().len(), 2);
    bus.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let far = tokio::time::Instant::now() + Duration::from_millis(300);
    let d = relay.drain(i64::MAX, 3, far).await;
    assert_eq!((d.sent, d.failed), (1, 1), "{d:?}");
    let left = store.pending_events(i64::MAX, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].event().kind,
        EventKind::UserUpdated,
        "the refused one waits"
    );
    assert_eq!(bus.took.lock().unwrap().len(), 1);
}

#[test]
fn every_event_has_its_own_id_and_a_detail_without_secrets() {
    let u = user();
    let (a, b) = (Event::created(&u), Event::created(&u));
    assert_ne!(a.id, b.id);
    assert!(a.id.starts_with("evt_") && a.id.len() == 36);
    let d = a.detail().to_string();
    assert!(!d.contains("hash") && !d.contains("+1202"), "{d}");
    assert_eq!(a.detail()["type"], "user.created");
}
