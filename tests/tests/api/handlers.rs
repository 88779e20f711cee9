//! The four handlers fed API Gateway HTTP API (payload 2.0) events from `events/`, against
//! MongoDB, a fresh database per test.

use api_tests::*;
use serde_json::{Value, json};

fn assert_problem(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.content_type(), "application/problem+json");
    assert_eq!(a.code(), code, "{:?}", a.body);
    assert_eq!(a.body["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(
            a.body[field].is_string(),
            "problem lacks {field}: {:?}",
            a.body
        );
    }
}

#[tokio::test]
async fn signup_returns_201_with_the_user_and_no_password() {
    let (state, _) = mongo_state().await;
    let a = call(&state, &event("signup")).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let oid = a.body["_id"]["$oid"].as_str().unwrap();
    assert_eq!(oid.len(), 24);
    assert!(oid.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a.body["first_name"], "John");
    assert_eq!(a.body["middle_name"], "Doe");
    assert_eq!(a.body["phone"], "1234567890");
    let text = a.body.to_string();
    assert!(
        !text.contains("password") && !text.contains("argon2"),
        "{text}"
    );
}

#[tokio::test]
async fn signup_stores_an_argon2id_hash_not_the_password() {
    let (state, _) = mongo_state().await;
    call(&state, &event("signup")).await;
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    let doc = client
        .database(&state.settings.db_name)
        .collection::<mongodb::bson::Document>("User")
        .find_one(mongodb::bson::doc! {"phone": "1234567890"})
        .await
        .unwrap()
        .unwrap();
    let hash = doc.get_str("password_hash").unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!doc.to_string().contains("securepassword123"));
}

#[tokio::test]
async fn signup_returns_409_when_phone_is_taken() {
    let (state, _) = mongo_state().await;
    assert_eq!(call(&state, &event("signup")).await.status, 201);
    let again = with_body(event("signup"), &signup_body("123-456-7890"));
    assert_problem(&call(&state, &again).await, 409, "phone_taken");
}

#[tokio::test]
async fn signup_rejects_bad_bodies_with_field_errors() {
    let (state, _) = mongo_state().await;
    let cases = [
        (
            json!({"first_name": "J", "last_name": "S", "password": "", "phone": "1234567890"}),
            "/password",
        ),
        (
            json!({"first_name": "J", "last_name": "S", "password": "longenough1", "phone": "12ab"}),
            "/phone",
        ),
        (
            json!({"first_name": "J", "last_name": "S", "password": "longenough1", "phone": {"$gt": ""}}),
            "/phone",
        ),
        (
            json!({"first_name": "x".repeat(101), "last_name": "S", "password": "longenough1", "phone": "1234567890"}),
            "/first_name",
        ),
        (
            json!({"first_name": "J", "password": "longenough1", "phone": "1234567890"}),
            "",
        ),
        (
            json!({"first_name": "J", "last_name": "S", "password": "longenough1", "phone": "1234567890", "admin": true}),
            "",
        ),
        (
            json!({"first_name": "J", "last_name": "S", "password": "longenough1", "phone": "123"}),
            "/phone",
        ),
        (
            json!({"first_name": "Ann\u{202E}", "last_name": "S", "password": "longenough1", "phone": "1234567890"}),
            "/first_name",
        ),
        (
            json!({"first_name": "J", "last_name": "\u{200B}", "password": "longenough1", "phone": "1234567890"}),
            "/last_name",
        ),
    ];
    for (body, path) in cases {
        let a = call(&state, &with_body(event("signup"), &body)).await;
        assert_problem(&a, 400, "validation_failed");
        let errors = a.body["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e["path"] == path && e["message"].is_string()),
            "{body}: {errors:?}"
        );
    }
    let n = count_users(&state.settings.db_name, mongodb::bson::doc! {}).await;
    assert_eq!(n, 0, "rejected signups must write nothing");
}

#[tokio::test]
async fn malformed_json_wrong_content_type_and_huge_bodies_get_clear_4xx() {
    let (state, _) = mongo_state().await;
    assert_problem(
        &call(&state, &with_raw_body(event("signup"), "{\"first_name\": ")).await,
        400,
        "malformed_json",
    );
    assert_problem(
        &call(&state, &with_raw_body(event("signup"), "")).await,
        400,
        "malformed_json",
    );
    assert_problem(
        &call(&state, &with_header(event("signup"), "content-type", None)).await,
        415,
        "unsupported_media_type",
    );
    assert_problem(
        &call(
            &state,
            &with_header(event("signup"), "content-type", Some("text/plain")),
        )
        .await,
        415,
        "unsupported_media_type",
    );
    let ok = with_header(
        event("signup"),
        "content-type",
        Some("application/json; charset=utf-8"),
    );
    assert_eq!(call(&state, &ok).await.status, 201);
    let huge = json!({"first_name": "x".repeat(20_000), "last_name": "S", "password": "longenough1", "phone": "1234567891"});
    assert_problem(
        &call(&state, &with_body(event("signup"), &huge)).await,
        413,
        "payload_too_large",
    );
    assert_problem(
        &call(&state, &with_raw_body(event("signup"), "[1,2,3]")).await,
        400,
        "validation_failed",
    );
}

#[tokio::test]
async fn login_returns_tokens_in_the_documented_shape() {
    let (state, _) = mongo_state().await;
    let signup = call(&state, &event("signup")).await;
    let a = call(&state, &event("login")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 900);
    assert_eq!(a.body["user_id"], signup.body["_id"]);
    let st = a.body["session_token"].as_str().unwrap();
    assert_eq!(st.len(), 43, "256 bits in unpadded base64url");
    let header = jsonwebtoken::decode_header(a.body["token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
}

#[tokio::test]
async fn login_with_formatted_phone_finds_the_same_account() {
    let (state, _) = mongo_state().await;
    call(
        &state,
        &with_body(event("signup"), &signup_body("+1 (202) 555-0101")),
    )
    .await;
    login(&state, "+12025550101", "securepassword123").await;
}

#[tokio::test]
async fn unknown_phone_and_wrong_password_get_the_identical_401() {
    let (state, _) = mongo_state().await;
    call(&state, &event("signup")).await;
    let wrong_pw = call(
        &state,
        &with_body(
            event("login"),
            &json!({"phone": "1234567890", "password": "nope-nope-nope"}),
        ),
    )
    .await;
    let unknown = call(
        &state,
        &with_body(
            event("login"),
            &json!({"phone": "9999999999", "password": "securepassword123"}),
        ),
    )
    .await;
    assert_problem(&wrong_pw, 401, "invalid_credentials");
    assert_eq!(wrong_pw.status, unknown.status);
    assert_eq!(wrong_pw.body, unknown.body);
}

#[tokio::test]
async fn update_with_raw_jwt_as_in_the_flask_service_returns_the_updated_user() {
    let (state, _) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let mut ev = update_event(&l, json!({"last_name": "Smithers", "first_name": "Jon"}));
    ev = with_header(ev, "authorization", Some(&l.token));
    let a = call(&state, &ev).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["last_name"], "Smithers");
    assert_eq!(a.body["first_name"], "Jon");
    assert_eq!(a.body["_id"]["$oid"], l.id.as_str());
    let get = with_auth(
        event("get_user"),
        &format!("Bearer {}", l.token),
        &l.session_token,
    );
    let profile = call(&state, &get).await;
    assert_eq!(profile.status, 200);
    assert_eq!(profile.body, a.body, "GET /user shows what PUT stored");
}

#[tokio::test]
async fn update_can_change_phone_and_refuses_a_taken_one() {
    let (state, _) = mongo_state().await;
    let a = signed_in(&state, "1111111111").await;
    signed_in(&state, "2222222222").await;
    let current = "securepassword123";
    assert_problem(
        &call(
            &state,
            &update_event(
                &a,
                json!({"phone": "222-222-2222", "current_password": current}),
            ),
        )
        .await,
        409,
        "phone_taken",
    );
    let ok = call(
        &state,
        &update_event(
            &a,
            json!({"phone": "3333333333", "current_password": current}),
        ),
    )
    .await;
    assert_eq!(ok.body["phone"], "3333333333");
    login(&state, "3333333333", "securepassword123").await;
}

#[tokio::test]
async fn signup_with_a_short_or_common_password_is_400_weak_password() {
    let (state, _) = mongo_state().await;
    for (password, message) in [
        ("short", "8 to 128"),
        ("\u{FB01}zzwxy", "8 to 128"), // 7 code points after NFKC
        ("password123", "too common"),
    ] {
        let mut body = signup_body("1234567890");
        body["password"] = json!(password);
        let a = call(&state, &with_body(event("signup"), &body)).await;
        assert_problem(&a, 400, "weak_password");
        let e = &a.body["errors"][0];
        assert_eq!(e["path"], "/password", "{:?}", a.body);
        assert!(
            e["message"].as_str().unwrap().contains(message),
            "{:?}",
            a.body
        );
        assert!(!a.body.to_string().contains(password));
    }
}

#[tokio::test]
async fn a_body_with_a_duplicate_key_is_refused_whichever_copy_would_win() {
    let (state, _) = mongo_state().await;
    for raw in [
        r#"{"first_name": "J", "last_name": "S", "password": "longenough1", "phone": "1234567890", "phone": "5550001111"}"#,
        r#"{"first_name": "J", "first_name": "K", "last_name": "S", "password": "longenough1", "phone": "1234567890"}"#,
    ] {
        let a = call(&state, &with_raw_body(event("signup"), raw)).await;
        assert_problem(&a, 400, "malformed_json");
    }
    assert_eq!(
        count_users(&state.settings.db_name, mongodb::bson::doc! {}).await,
        0,
        "nothing was created"
    );
    let l = signed_in(&state, "1234567890").await;
    let raw = format!(
        r#"{{"_id": {{"$oid": "{0}", "$oid": "{0}"}}, "last_name": "X"}}"#,
        l.id
    );
    let ev = with_raw_body(update_event(&l, json!({})), &raw);
    assert_problem(&call(&state, &ev).await, 400, "malformed_json");
}

#[tokio::test]
async fn update_of_another_users_id_is_403() {
    let (state, _) = mongo_state().await;
    let a = signed_in(&state, "1111111111").await;
    let b = signed_in(&state, "2222222222").await;
    let mut ev = update_event(&a, json!({"last_name": "Evil"}));
    ev = with_body(ev, &json!({"_id": {"$oid": b.id}, "last_name": "Evil"}));
    assert_problem(&call(&state, &ev).await, 403, "forbidden");
}

#[tokio::test]
async fn update_without_fields_with_unknown_fields_or_a_password_is_400() {
    let (state, _) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    for fields in [
        json!({}),
        json!({"nickname": "JJ"}),
        json!({"password": "newpassword123"}),
        json!({"last_name": {"$set": "x"}}),
    ] {
        let a = call(&state, &update_event(&l, fields.clone())).await;
        assert_problem(&a, 400, "validation_failed");
        if fields.get("password").is_some() {
            assert!(
                a.body["errors"].to_string().contains("current_password"),
                "{:?}",
                a.body
            );
        }
    }
    let bad_id = with_body(
        update_event(&l, json!({})),
        &json!({"_id": "not-an-oid", "last_name": "x"}),
    );
    assert_problem(&call(&state, &bad_id).await, 400, "validation_failed");
}

#[tokio::test]
async fn missing_or_garbage_credentials_are_401() {
    let (state, _) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let good = update_event(&l, json!({"last_name": "X"}));
    for ev in [
        with_header(good.clone(), "authorization", None),
        with_header(good.clone(), "session-token", None),
        with_header(good.clone(), "authorization", Some("Basic abc")),
        with_header(good.clone(), "authorization", Some("Bearer not.a.jwt")),
        with_header(good.clone(), "session-token", Some("AAAA")),
    ] {
        assert_problem(&call(&state, &ev).await, 401, "unauthorized");
    }
    assert_eq!(call(&state, &good).await.status, 200);
}

#[tokio::test]
async fn logout_ends_the_session_everywhere_at_once() {
    let (state, _) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let other = login(&state, "1234567890", "securepassword123").await;
    let logout = with_auth(
        event("logout"),
        &format!("Bearer {}", l.token),
        &l.session_token,
    );
    let a = call(&state, &logout).await;
    assert_eq!(a.status, 204);
    assert_problem(
        &call(&state, &update_event(&l, json!({"last_name": "X"}))).await,
        401,
        "unauthorized",
    );
    assert_eq!(
        call(&state, &logout).await.status,
        204,
        "a retried logout is a success"
    );
    let get = with_auth(event("get_user"), &l.token, &l.session_token);
    assert_problem(&call(&state, &get).await, 401, "unauthorized");
    assert_eq!(
        call(&state, &update_event(&other, json!({"last_name": "Y"})))
            .await
            .status,
        200,
        "other sessions live on"
    );
}

#[tokio::test]
async fn global_logout_ends_every_session_of_the_user() {
    let (state, _) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    let other = login(&state, "1234567890", "securepassword123").await;
    let ev = with_body(
        with_auth(event("logout"), &l.token, &l.session_token),
        &json!({"scope": "global"}),
    );
    let ev = with_header(ev, "content-type", Some("application/json"));
    assert_eq!(call(&state, &ev).await.status, 204);
    assert_eq!(
        call(&state, &update_event(&other, json!({"last_name": "Y"})))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_jwt_is_only_good_with_its_own_session_token() {
    let (state, _) = mongo_state().await;
    let a = signed_in(&state, "1111111111").await;
    let b = signed_in(&state, "2222222222").await;
    let mixed = with_auth(
        update_event(&a, json!({"last_name": "X"})),
        &a.token,
        &b.session_token,
    );
    assert_problem(&call(&state, &mixed).await, 401, "unauthorized");
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_absolute_lifetime() {
    let (state, clock) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    // Within the JWT lifetime the session is refreshed by use...
    clock.advance(600);
    assert_eq!(
        call(&state, &update_event(&l, json!({"last_name": "A"})))
            .await
            .status,
        200
    );
    // ...but an idle day later it is dead, even with a fresh JWT for it.
    clock.advance(24 * 3600 + 1);
    let fresh = state
        .tokens()
        .issue(
            EVENT_ISSUER,
            &domain::types::UserId::parse_hex(&l.id).unwrap(),
            &sid(&l.token),
            clock_now(&state),
        )
        .unwrap();
    let ev = with_auth(
        update_event(&l, json!({"last_name": "B"})),
        &fresh,
        &l.session_token,
    );
    assert_problem(&call(&state, &ev).await, 401, "unauthorized");
}

#[tokio::test]
async fn expired_jwts_are_refused_after_the_leeway() {
    let (state, clock) = mongo_state().await;
    let l = signed_in(&state, "1234567890").await;
    clock.advance(900 + 59);
    assert_eq!(
        call(&state, &update_event(&l, json!({"last_name": "A"})))
            .await
            .status,
        200,
        "within 60 s leeway"
    );
    clock.advance(2);
    assert_eq!(
        call(&state, &update_event(&l, json!({"last_name": "A"})))
            .await
            .status,
        401
    );
}

fn clock_now(state: &edge::State) -> u64 {
    state.clock.now() as u64
}

fn sid(token: &str) -> String {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims;
    claims["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn unknown_routes_and_methods_get_404_and_405() {
    let (state, _) = mongo_state().await;
    let mut ev = event("signup");
    ev["rawPath"] = json!("/admin");
    ev["requestContext"]["http"]["path"] = json!("/admin");
    assert_problem(&call(&state, &ev).await, 404, "not_found");
    let mut ev = event("signup");
    ev["requestContext"]["http"]["method"] = json!("DELETE");
    let a = call(&state, &ev).await;
    assert_problem(&a, 405, "method_not_allowed");
    assert_eq!(a.headers.get("allow").unwrap(), "POST");
}

/// A session names the credential and method that opened it (for `amr`, and so that removing
/// a credential can end its sessions), on both stores.
#[tokio::test]
async fn a_login_session_remembers_the_password_that_opened_it() {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    for backend in [Backend::Mongo, Backend::Memory] {
        let (state, _) = state_on(backend, settings).await;
        let l = signed_in(&state, "1234567890").await;
        let payload = l.token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let sid = claims["sid"].as_str().unwrap();
        let session = state.store.find_session(sid).await.unwrap().unwrap();
        assert_eq!(
            (
                session.opened.credential_id.as_str(),
                session.opened.method.as_str()
            ),
            ("password", "pwd"),
            "{backend:?}"
        );
    }
}
