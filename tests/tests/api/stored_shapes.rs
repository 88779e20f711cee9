//! Stored shapes: documents of every version (the Flask service's, this service's version 1,
//! version 2) read, log in and update, with no migration step; the version 1 fields are kept
//! beside the arrays for a previous release, and win where that release changed them.

use api_tests::{Login, TestApp, count_users};
use domain::{identity::IdentifierKind, types::UserId};
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::json;

const PASSWORD: &str = "securepassword123";
const NEW_PASSWORD: &str = "a new passphrase 2";

async fn users(app: &TestApp) -> mongodb::Collection<Document> {
    mongodb::Client::with_uri_str(api_tests::mongo_uri())
        .await
        .unwrap()
        .database(&app.state.settings.db_name)
        .collection("User")
}

fn argon2(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

/// The three shapes, each for its own phone: (name, document).
fn documents(hash: &str) -> Vec<(&'static str, Document)> {
    vec![
        (
            "the Flask service's",
            doc! {"_id": ObjectId::new(), "first_name": "Flask", "last_name": "Era",
            "phone": "5551000001", "password": hash},
        ),
        (
            "version 1",
            doc! {"_id": ObjectId::new(), "first_name": "One", "last_name": "Era",
            "phone": "5551000002", "password_hash": hash, "phone_verified": true,
            "created_at": 1_700_000_000_i64, "updated_at": 1_700_000_000_i64},
        ),
        (
            "version 2",
            doc! {"_id": ObjectId::new(), "v": 2, "rev": 3_i64, "first_name": "Two",
            "last_name": "Era", "created_at": 1_700_000_000_i64,
            "updated_at": 1_700_000_000_i64,
            "identifiers": [{"kind": "phone", "value": "5551000003",
                "verified_at": 1_700_000_100_i64, "primary": true}],
            "ids": ["phone:5551000003"],
            "credentials": [{"id": "password", "kind": "password", "label": "Password",
                "hash": hash, "created_at": 1_700_000_000_i64}],
            "phone": "5551000003", "phone_verified": true, "password_hash": hash},
        ),
    ]
}

#[tokio::test]
async fn documents_of_every_version_log_in_update_and_become_version_2_on_a_password_change() {
    let app = TestApp::mongo().await;
    let coll = users(&app).await;
    let hash = argon2(PASSWORD);
    for (shape, d) in documents(&hash) {
        coll.insert_one(d.clone()).await.unwrap();
        let phone = d.get_str("phone").unwrap();
        let login = Login::of(&app.login(phone, PASSWORD).await);
        let got = app.get_user(&login).await;
        assert_eq!(got.status, 200, "{shape}: {:?}", got.body);
        assert_eq!(got.body["phone"], phone, "{shape}");
        let put = app.put_user(&login, json!({"last_name": "Updated"})).await;
        assert_eq!(put.status, 200, "{shape}: {:?}", put.body);
        assert_eq!(put.body["last_name"], "Updated", "{shape}");
        // A password change rewrites the credentials: the document becomes version 2.
        let put = app
            .put_user(
                &login,
                json!({"password": NEW_PASSWORD, "current_password": PASSWORD}),
            )
            .await;
        assert_eq!(put.status, 200, "{shape}: {:?}", put.body);
        let after = coll
            .find_one(doc! {"_id": d.get_object_id("_id").unwrap()})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.get_str("last_name").unwrap(), "Updated", "{shape}");
        assert_eq!(after.get_i32("v").unwrap(), 2, "{shape}");
        assert_eq!(
            after.get_array("ids").unwrap(),
            &vec![Bson::String(format!("phone:{phone}"))],
            "{shape}"
        );
        // The previous release's fields are still there, and right.
        assert_eq!(after.get_str("phone").unwrap(), phone, "{shape}");
        assert!(after.get_bool("phone_verified").unwrap(), "{shape}");
        let new_hash = after.get_str("password_hash").unwrap();
        assert_ne!(new_hash, hash, "{shape}");
        let credential = after.get_array("credentials").unwrap()[0]
            .as_document()
            .unwrap();
        assert_eq!(credential.get_str("hash").unwrap(), new_hash, "{shape}");
        assert!(
            after.get("password").is_none(),
            "{shape}: Flask's field unset"
        );
        // Recorded by the login, kept by the update.
        assert!(
            after
                .get_document("last_used")
                .unwrap()
                .get("password")
                .is_some(),
            "{shape}"
        );
        assert_eq!(app.login(phone, PASSWORD).await.status, 401, "{shape}");
        assert_eq!(
            app.login(phone, NEW_PASSWORD).await.status,
            200,
            "{shape}: logs in with the new password"
        );
    }
}

#[tokio::test]
async fn where_a_previous_release_changed_the_version_1_fields_they_win() {
    let app = TestApp::mongo().await;
    let coll = users(&app).await;
    let hash = argon2(PASSWORD);
    let (_, d) = documents(&hash).pop().unwrap();
    coll.insert_one(d.clone()).await.unwrap();
    // A previous release changes the phone and password the only way it knows.
    let new_hash = argon2("another passphrase");
    coll.update_one(
        doc! {"_id": d.get_object_id("_id").unwrap()},
        doc! {"$set": {"phone": "5551000009", "password_hash": &new_hash,
        "pending_phone": "5551000010"}},
    )
    .await
    .unwrap();
    assert_eq!(app.login("5551000003", PASSWORD).await.status, 401);
    let login = Login::of(&app.login("5551000009", "another passphrase").await);
    let id = UserId::parse_hex(&login.id).unwrap();
    let user = app.state.store.find_user(&id).await.unwrap().unwrap();
    assert_eq!(user.phone().unwrap().as_str(), "5551000009");
    assert_eq!(user.pending_phone().unwrap().as_str(), "5551000010");
    assert!(user.phone_verified());
    // The next identifier or password change brings the arrays in line.
    let put = app
        .put_user(
            &login,
            json!({"password": NEW_PASSWORD, "current_password": "another passphrase"}),
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let after = coll
        .find_one(doc! {"_id": d.get_object_id("_id").unwrap()})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.get_array("ids").unwrap(),
        &vec![Bson::String("phone:5551000009".into())]
    );
    assert_eq!(
        after.get_array("pending").unwrap()[0]
            .as_document()
            .unwrap()
            .get_str("value")
            .unwrap(),
        "5551000010"
    );
    assert_eq!(
        after.get_array("credentials").unwrap()[0]
            .as_document()
            .unwrap()
            .get_str("hash")
            .unwrap(),
        after.get_str("password_hash").unwrap()
    );
    assert_ne!(after.get_str("password_hash").unwrap(), new_hash);
    let phone = user.primary(IdentifierKind::Phone).unwrap();
    assert_eq!(
        phone.verified_at,
        Some(1_700_000_000),
        "proof time restarts at creation"
    );
}

#[tokio::test]
async fn a_version_1_phone_and_a_version_2_phone_cannot_be_the_same() {
    let app = TestApp::mongo().await;
    let coll = users(&app).await;
    let hash = argon2(PASSWORD);
    let docs = documents(&hash);
    coll.insert_one(docs[1].1.clone()).await.unwrap();
    // A signup (version 2) of the version 1 document's phone is refused by the phone index.
    let taken = app.signup("5551000002").await;
    assert_eq!(taken.status, 409, "{:?}", taken.body);
    // And a version 2 account cannot move onto it.
    let login = app.signed_in("5551000004").await;
    let moved = app
        .put_user(
            &login,
            json!({"phone": "5551000002", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(moved.status, 409, "{:?}", moved.body);
    assert_eq!(
        count_users(&app.state.settings.db_name, doc! {"phone": "5551000002"}).await,
        1
    );
}
