//! One suite, every store: each case runs on a fresh embedded store and on a fresh MongoDB
//! database, by one macro, and every run ends with a check of the whole store's invariants
//! (as kanidm's testkit ends every test with a consistency check). A new store trait gets a
//! file here; a new store implementation gets a constructor in [`Stores`].

use std::{collections::HashMap, sync::Arc};

use api_tests::{fresh_db, mongo_store};
use domain::{
    identity::{Identifier, IdentifierKind},
    store::{Store, UserRecord, memory::MemoryStore},
    types::{Name, Phone, UserId},
};

/// Expands each case into `<case>::in_memory` and `<case>::on_mongodb`. A case under `cases`
/// takes `&dyn Store`; one under `racing` takes two handles on one store (two clients on one
/// database for MongoDB, as two Lambda instances would be; the one store twice in memory).
macro_rules! on_every_store {
    (cases: [$($case:ident),* $(,)?] $(, racing: [$($racing:ident),* $(,)?])? $(,)?) => {
        $( on_every_store!(@case $case, single); )*
        $($( on_every_store!(@case $racing, both); )*)?
    };
    // `$handles` is the `Stores` method that gives the case its argument.
    (@case $case:ident, $handles:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn in_memory() {
                let s = crate::conformance::Stores::memory();
                super::$case(s.$handles()).await;
                s.check_invariants().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_mongodb() {
                let s = crate::conformance::Stores::mongodb().await;
                super::$case(s.$handles()).await;
                s.check_invariants().await;
            }
        }
    };
}

mod ceremonies;
mod codes;
mod credentials;
mod events;
mod identifiers;
mod users;

/// Two handles on one fresh store.
pub struct Stores {
    pub one: Arc<dyn Store>,
    pub two: Arc<dyn Store>,
}

impl Stores {
    pub fn memory() -> Self {
        // Events on: every case also proves that recording them changes nothing else.
        let one: Arc<dyn Store> = Arc::new(MemoryStore::new().with_events(true));
        Self {
            two: Arc::clone(&one),
            one,
        }
    }

    pub async fn mongodb() -> Self {
        Self::mongodb_in(&fresh_db()).await
    }

    async fn mongodb_in(db: &str) -> Self {
        Self {
            one: Arc::new(mongo_store(db).await.with_events(true)),
            two: Arc::new(mongo_store(db).await.with_events(true)),
        }
    }

    /// The first handle, for plain cases.
    pub fn single(&self) -> &dyn Store {
        self.one.as_ref()
    }

    /// Both handles, for racing cases.
    pub fn both(&self) -> Vec<Arc<dyn Store>> {
        vec![Arc::clone(&self.one), Arc::clone(&self.two)]
    }

    /// The invariants every store keeps whatever a case did, read through the second handle
    /// (so on MongoDB through another client than the one that wrote):
    /// - every user reads back by its id as it is walked;
    /// - each identifier belongs to an existing user: looking it up finds that user;
    /// - no verified identifier is shared by two users, nor is any identifier at all;
    /// - at most one primary identifier per kind per user.
    pub async fn check_invariants(&self) {
        let store = self.two.as_ref();
        let mut after: Option<UserId> = None;
        let mut owners: HashMap<String, UserId> = HashMap::new();
        loop {
            let page = store.users_after(after.as_ref(), 100).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for user in &page {
                assert_eq!(
                    store.find_user(&user.id).await.unwrap().as_ref(),
                    Some(user),
                    "invariant: a walked user reads back by id"
                );
                let mut primaries: HashMap<IdentifierKind, usize> = HashMap::new();
                for record in &user.identifiers {
                    let key = record.identifier.key();
                    if let Some(other) = owners.insert(key.clone(), user.id) {
                        panic!("invariant: {key} is held by {other} and {}", user.id);
                    }
                    let found = store.find_user_by(&record.identifier).await.unwrap();
                    assert_eq!(
                        found.map(|u| u.id),
                        Some(user.id),
                        "invariant: {key} leads to its user"
                    );
                    if record.primary {
                        *primaries.entry(record.identifier.kind()).or_default() += 1;
                    }
                }
                assert!(
                    primaries.values().all(|n| *n <= 1),
                    "invariant: one primary per kind, {} has {primaries:?}",
                    user.id
                );
            }
        }
    }
}

/// A user to insert, built by steps: `user("5550101").unverified().build()`.
pub struct UserBuilder(UserRecord);

/// A verified user with this phone (legacy rule), names Ann B. Lee, created at [`NOW`].
pub fn user(phone: &str) -> UserBuilder {
    let mut u = UserRecord::new(
        UserId::new(),
        (
            Name::parse("Ann").unwrap(),
            Some(Name::parse("B").unwrap()),
            Name::parse("Lee").unwrap(),
        ),
        vec![Identifier::Phone(Phone::parse(phone).unwrap())],
        "$argon2id$fake".into(),
        NOW,
    );
    u.identifiers[0].verified_at = Some(NOW);
    UserBuilder(u)
}

/// The time fixtures are made at.
pub const NOW: i64 = 1_700_000_000;

impl UserBuilder {
    pub fn unverified(mut self) -> Self {
        self.0.identifiers[0].verified_at = None;
        self
    }

    pub fn build(self) -> UserRecord {
        self.0
    }
}

/// The identifier a fixture was built with.
pub fn first_identifier(u: &UserRecord) -> Identifier {
    u.identifiers[0].identifier.clone()
}

/// The check can fail: with the unique index dropped behind the store's back, a second
/// document holding a user's phone is caught.
#[tokio::test]
async fn the_invariant_check_catches_a_phone_held_by_two_users() {
    use futures::FutureExt;
    let db = fresh_db();
    let stores = Stores::mongodb_in(&db).await;
    let a = user("5550001").build();
    stores.one.insert_user(&a).await.unwrap();
    stores.check_invariants().await;
    let users = mongodb::Client::with_uri_str(api_tests::mongo_uri())
        .await
        .unwrap()
        .database(&db)
        .collection::<mongodb::bson::Document>("User");
    users
        .drop_index(adapters::mongo::PHONE_INDEX)
        .await
        .unwrap();
    let b = user("5550001").build();
    users
        .insert_one(mongodb::bson::doc! {
            "_id": mongodb::bson::oid::ObjectId::from_bytes(b.id.bytes()),
            "first_name": "Eve", "last_name": "Lee", "phone": "5550001",
            "password_hash": "x", "created_at": NOW, "updated_at": NOW,
        })
        .await
        .unwrap();
    let caught = std::panic::AssertUnwindSafe(stores.check_invariants())
        .catch_unwind()
        .await;
    assert!(
        caught.is_err(),
        "a phone held twice passed the invariant check"
    );
}
