//! The function binaries, unchanged, driven through the Lambda Runtime API protocol by a local
//! endpoint: config from a Secrets Manager secret in the emulator (or the environment), users in
//! MongoDB; what a cold start does and does not send to the database.

use std::{
    io::Read,
    time::{Duration, Instant},
};

use api_tests::{
    runtime::{Function, binary},
    *,
};
use serde_json::{Value, json};

/// Starts binary `name` with only the Lambda environment and `config` (no inherited keys).
async fn spawn(name: &str, config: &[(&str, String)]) -> Function {
    let config: Vec<(String, String)> = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Function::spawn(&binary(name), name, &config, "warn").await
}

/// Invokes and returns (status, parsed body) of the posted API Gateway response.
async fn invoke(f: &Function, event: &Value) -> (u16, Value) {
    let (status, body, _) = f.invoke(event).await;
    (status, body)
}

#[tokio::test]
async fn the_function_binaries_serve_the_seed_sequence_through_the_runtime_api_from_a_secret() {
    let endpoint = aws_endpoint();
    let client = secrets_client(&endpoint).await;
    let name = format!("user-api/fn-{}", fresh_db());
    create_secret(&client, &name, &secret_json(JWT_KEY, SESSION_KEY)).await;
    let config = [
        ("SECRET_ID", name.clone()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.clone()),
        ("DB_NAME", fresh_db()),
    ];
    let (signup, login, logout, update, refresh) = tokio::join!(
        spawn("signup", &config),
        spawn("login", &config),
        spawn("logout", &config),
        spawn("update", &config),
        spawn("refresh", &config)
    );

    let (status, user) = invoke(&signup, &event("signup")).await;
    assert_eq!(status, 201, "{user}");
    let id = user["_id"]["$oid"].as_str().unwrap().to_owned();
    assert_eq!(invoke(&signup, &event("signup")).await.0, 409);
    assert_eq!(
        invoke(&signup, &with_raw_body(event("signup"), "{oops"))
            .await
            .0,
        400
    );

    let (status, tokens) = invoke(&login, &event("login")).await;
    assert_eq!(status, 200, "{tokens}");
    let jwt = tokens["token"].as_str().unwrap();
    let st = tokens["session_token"].as_str().unwrap();
    assert_eq!(
        invoke(
            &login,
            &with_body(
                event("login"),
                &json!({"phone": "1234567890", "password": "wrong-one"})
            )
        )
        .await
        .0,
        401
    );

    let put = with_auth(
        with_body(
            event("update"),
            &json!({"_id": {"$oid": id}, "last_name": "Smythe"}),
        ),
        jwt,
        st,
    );
    let (status, updated) = invoke(&update, &put).await;
    assert_eq!(
        (status, updated["last_name"].as_str()),
        (200, Some("Smythe")),
        "{updated}"
    );
    let get = with_auth(event("get_user"), &format!("Bearer {jwt}"), st);
    assert_eq!(invoke(&update, &get).await.0, 200);

    let renew = with_body(
        event("refresh"),
        &json!({"refresh_token": tokens["refresh_token"]}),
    );
    let (status, renewed) = invoke(&refresh, &renew).await;
    assert_eq!(status, 200, "{renewed}");
    let renewed_jwt = renewed["token"].as_str().unwrap();
    let get = with_auth(event("get_user"), renewed_jwt, st);
    assert_eq!(invoke(&update, &get).await.0, 200);

    let out = with_auth(event("logout"), &format!("Bearer {jwt}"), st);
    assert_eq!(invoke(&logout, &out).await.0, 204);
    let (status, problem) = invoke(&update, &put).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (401, Some("unauthorized"))
    );
}

#[tokio::test]
async fn a_function_without_a_key_fails_init_naming_the_key_and_never_serves() {
    let mut f = spawn(
        "login",
        &[
            ("MONGO_URI", mongo_uri()),
            ("SESSION_SECRET_KEY", SESSION_KEY.to_owned()),
        ],
    )
    .await;
    let child = &mut f.child;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "function kept running without a key"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).unwrap();
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut out).unwrap();
    }
    assert!(out.contains("JWT_SECRET_KEY is not set"), "{out}");
    assert!(
        !out.contains(SESSION_KEY),
        "a secret value was logged: {out}"
    );
    assert!(
        f.runtime
            .first_poll(Duration::from_millis(10))
            .await
            .is_none()
    );
}

/// Index names per collection of `db` (collections without indexes beyond `_id_` left out).
async fn indexes(db: &str) -> Vec<(String, Vec<String>)> {
    let db = mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(db);
    let mut found = Vec::new();
    let mut names = db.list_collection_names().await.unwrap();
    names.sort();
    for c in names {
        let mut idx = db
            .collection::<mongodb::bson::Document>(&c)
            .list_index_names()
            .await
            .unwrap();
        idx.retain(|n| n != "_id_");
        idx.sort();
        if !idx.is_empty() {
            found.push((c, idx));
        }
    }
    found
}

#[tokio::test]
async fn a_cold_start_creates_no_index_and_the_first_signup_creates_them_all_before_its_insert() {
    let db = fresh_db();
    let config = [
        ("MONGO_URI", mongo_uri()),
        ("DB_NAME", db.clone()),
        ("JWT_PRIVATE_KEY", rsa_pem("a")),
        ("JWT_ALGORITHM", "RS256".to_owned()),
        ("SESSION_SECRET_KEY", SESSION_KEY.to_owned()),
    ];
    let login = spawn("login", &config).await;
    // A failed login writes its attempt counter: the database is in use, and still no DDL.
    let (status, _) = invoke(&login, &event("login")).await;
    assert_eq!(status, 401);
    assert_eq!(indexes(&db).await, Vec::<(String, Vec<String>)>::new());

    let signup = spawn("signup", &config).await;
    assert!(indexes(&db).await.is_empty(), "a cold start made indexes");
    let (status, user) = invoke(&signup, &event("signup")).await;
    assert_eq!(status, 201, "{user}");
    let made = indexes(&db).await;
    let of = |c: &str| {
        made.iter()
            .find(|(name, _)| name == c)
            .map(|(_, idx)| idx.clone())
            .unwrap_or_default()
    };
    for unique in ["ids_unique", "phone_unique_sparse"] {
        assert!(of("User").iter().any(|n| n == unique), "{made:?}");
    }
    assert!(
        of("User_sessions").iter().any(|n| n == "expires_at_ttl"),
        "{made:?}"
    );
    assert!(
        of("User_login_attempts")
            .iter()
            .any(|n| n == "expires_at_ttl"),
        "{made:?}"
    );
    // The unique index decides a second signup with the same phone at once.
    assert_eq!(invoke(&signup, &event("signup")).await.0, 409);
    let (status, _) = invoke(&login, &event("login")).await;
    assert_eq!(status, 200);
}
