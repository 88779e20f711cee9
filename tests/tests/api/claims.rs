//! Roles and metadata: `app_metadata` set by operators only (the admin route and `user-admin`),
//! `user_metadata` by the user (PUT /user), both within their limits; the access token carries
//! the roles, their `role:<name>` scopes and the mapped claims from the next token on (a
//! refresh included), never over a reserved claim and never over its size limit; and API
//! Gateway's JWT authorizer (the dev server standing in for it) gates a route on a role.

use api_tests::*;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::{
    claims::{Grants, Metadata},
    credential::Assurance,
    types::UserId,
};
use serde_json::{Value, json};

const ARN: &str = "arn:aws:iam::123456789012:user/ops-alice";

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// PUT /admin/users/{id}/app-metadata of `body`, IAM-signed.
fn set_app_metadata(id: &str, body: &Value) -> Value {
    let mut ev = event("admin_set_app_metadata");
    let path = ev["rawPath"]
        .as_str()
        .unwrap()
        .replace("000000000000000000000000", id);
    ev["rawPath"] = path.clone().into();
    ev["requestContext"]["http"]["path"] = path.into();
    ev["pathParameters"]["id"] = id.into();
    ev["requestContext"]["authorizer"]["iam"]["userArn"] = ARN.into();
    with_json_body(ev, body)
}

async fn refreshed(app: &TestApp, refresh_token: &str) -> Answer {
    app.call(&with_body(
        event("refresh"),
        &json!({"refresh_token": refresh_token}),
    ))
    .await
}

#[tokio::test]
async fn an_operator_s_roles_reach_the_next_token_as_claims_and_scopes_a_refresh_included() {
    let app = TestApp::with(Backend::Mongo, |v| v.set("TOKEN_CLAIMS", "tenant")).await;
    app.signup("4025550301").await;
    let first = app.login("4025550301", "securepassword123").await;
    let l = Login::of(&first);
    let c = claims_of(&l.token);
    assert_eq!(c["scope"], "aal1");
    assert!(c.get("roles").is_none() && c.get("tenant").is_none(), "{c}");

    let body = json!({"roles": ["editor", "billing:read"], "tenant": "acme", "internal": {"x": 1}});
    let a = app.call(&set_app_metadata(&l.id, &body)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["app_metadata"], body);
    // The next token, by refresh, says so; the token in hand does not (it expires).
    let r = refreshed(&app, first.body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let c = claims_of(r.body["token"].as_str().unwrap());
    assert_eq!(c["roles"], json!(["editor", "billing:read"]));
    assert_eq!(c["scope"], "aal1 role:editor role:billing:read");
    assert_eq!(c["tenant"], "acme");
    assert!(
        c.get("internal").is_none(),
        "only TOKEN_CLAIMS are copied: {c}"
    );
    // The user sees the operators' metadata and cannot set it.
    let me = app.get_user(&l).await;
    assert_eq!(me.body["app_metadata"]["tenant"], "acme");
    let put = app
        .put_user(&l, json!({"app_metadata": {"roles": ["admin"]}}))
        .await;
    assert_eq!(
        (put.status.as_u16(), put.code()),
        (400, "validation_failed"),
        "{:?}",
        put.body
    );
    // Roles removed: the next token has none.
    let a = app.call(&set_app_metadata(&l.id, &json!({}))).await;
    assert_eq!(a.status, 200);
    assert!(a.body.get("app_metadata").is_none(), "{:?}", a.body);
    let again = app.login("4025550301", "securepassword123").await;
    let c = claims_of(again.body["token"].as_str().unwrap());
    assert_eq!(c["scope"], "aal1");
    assert!(c.get("roles").is_none(), "{c}");
}

#[tokio::test]
async fn operators_metadata_is_checked_and_a_refusal_writes_nothing() {
    let app = TestApp::with(Backend::Mongo, |v| {
        v.set("TOKEN_CLAIMS", "blob");
        v.set("ACCESS_TOKEN_MAX_BYTES", "1024");
    })
    .await;
    let l = app.signed_in("4025550302").await;
    let ok = app
        .call(&set_app_metadata(&l.id, &json!({"roles": ["editor"]})))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let cases = [
        (json!({"roles": "editor"}), "roles not a list"),
        (json!({"roles": ["two words"]}), "a role with a space"),
        (json!({"$set": {"roles": ["admin"]}}), "an operator key"),
        (json!({"a.b": 1}), "a dotted key"),
        (json!({"n": u64::MAX}), "an integer MongoDB cannot hold"),
        (json!({"big": "x".repeat(5000)}), "over METADATA_MAX_BYTES"),
        (
            json!({"blob": "x".repeat(900)}),
            "a token over ACCESS_TOKEN_MAX_BYTES",
        ),
        (json!([1, 2]), "not an object"),
    ];
    for (body, what) in cases {
        let a = app.call(&set_app_metadata(&l.id, &body)).await;
        assert_eq!(
            (a.status.as_u16(), a.code()),
            (400, "validation_failed"),
            "{what}: {:?}",
            a.body
        );
    }
    let me = app.get_user(&l).await;
    assert_eq!(
        me.body["app_metadata"],
        json!({"roles": ["editor"]}),
        "nothing refused was written"
    );
    let unknown = app
        .call(&set_app_metadata(&UserId::new().to_hex(), &json!({})))
        .await;
    assert_eq!(unknown.code(), "user_not_found");
    let mut no_iam = set_app_metadata(&l.id, &json!({}));
    no_iam["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    assert_eq!(app.call(&no_iam).await.status, 401);
}

#[tokio::test]
async fn a_user_keeps_metadata_of_their_own_within_its_limits() {
    let app = TestApp::mongo().await;
    let l = app.signed_in("4025550303").await;
    let prefs = json!({"theme": "dark", "langs": ["en", "fr"], "n": 1.5});
    let a = app.put_user(&l, json!({"user_metadata": prefs})).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["user_metadata"], prefs);
    assert_eq!(app.get_user(&l).await.body["user_metadata"], prefs);
    // Never in the token.
    let again = app.login("4025550303", "securepassword123").await;
    assert!(
        claims_of(again.body["token"].as_str().unwrap())
            .get("theme")
            .is_none()
    );
    for (body, what) in [
        (
            json!({"user_metadata": {"x": "y".repeat(5000)}}),
            "too large",
        ),
        (json!({"user_metadata": {"$gt": 1}}), "an operator key"),
        (json!({"user_metadata": "dark"}), "not an object"),
    ] {
        let r = app.put_user(&l, body).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "validation_failed"),
            "{what}: {:?}",
            r.body
        );
        assert!(
            r.body["errors"][0]["path"]
                .as_str()
                .unwrap()
                .starts_with("/user_metadata"),
            "{what}: {:?}",
            r.body
        );
    }
    assert_eq!(app.get_user(&l).await.body["user_metadata"], prefs);
    // Cleared with an empty object.
    let a = app.put_user(&l, json!({"user_metadata": {}})).await;
    assert!(a.body.get("user_metadata").is_none(), "{:?}", a.body);
}

#[test]
fn a_reserved_claim_never_reaches_a_token_whatever_the_grants_say() {
    let settings = settings(&fresh_db());
    let keys =
        domain::auth::token::TokenKeys::new(&settings.keys, &settings.audience, settings.jwt_ttl);
    let mut grants = Grants::of(
        &Metadata::parse_app(json!({"roles": ["editor"]}), 4096).unwrap(),
        &settings.claims,
    );
    for (k, v) in [
        ("sub", json!("someone-else")),
        ("aal", json!(2)),
        ("scope", json!("aal2")),
        ("exp", json!(9_999_999_999u64)),
        ("tenant", json!("acme")),
    ] {
        grants.claims.insert(k.to_owned(), v);
    }
    let user = UserId::new();
    let token = keys
        .issue_for(
            "iss",
            &user,
            "sid",
            1_000,
            &Assurance::single("pwd", 1_000),
            &grants,
        )
        .unwrap();
    let c = claims_of(&token);
    assert_eq!(c["sub"], user.to_hex().as_str());
    assert_eq!(
        (c["aal"].clone(), c["scope"].clone()),
        (json!(1), json!("aal1 role:editor"))
    );
    assert!(c["exp"].as_u64().unwrap() < 9_999_999_999);
    assert_eq!(c["tenant"], "acme");
    // One `sub` in the JSON text, not two.
    let payload = String::from_utf8(
        URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload.matches("\"sub\"").count(), 1, "{payload}");
}

/// Through the binaries: `user-admin set-roles`, then the dev server's JWT authorizer admits
/// the user's next token on the role-gated route and refuses the one before; a second JWT
/// library verifies the roles and scopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_admin_sets_roles_and_the_role_gated_route_admits_the_next_token() {
    use jwt_simple::prelude::{RS256PublicKey, RSAPublicKeyLike, VerificationOptions};
    let db = fresh_db();
    let server = dev_server::start(&dev_server::bin(), |cmd| {
        cmd.env("JWT_ALGORITHM", "RS256")
            .env("JWT_PRIVATE_KEY", rsa_pem("a"))
            .env("SESSION_SECRET_KEY", SESSION_KEY)
            .env("MONGO_URI", mongo_uri())
            .env("DB_NAME", &db)
            .env_remove("JWT_ISSUER")
            .env_remove("SECRET_ID");
    });
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let login = dev_server::signed_in_over_http(&http, &server.base, "5550003535").await;
    let id = login["user_id"]["$oid"].as_str().unwrap().to_owned();
    let editor = |token: String| {
        let (http, url) = (&http, url("/example/whoami/editor"));
        async move { dev_server::get_as(http, &url, &token).await }
    };
    let before = login["token"].as_str().unwrap().to_owned();
    assert_eq!(
        editor(before.clone()).await,
        (403, json!({"message": "Forbidden"}))
    );
    let (code, out, err) = user_admin(&db, &["set-roles", &id, "editor,viewer"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out[0]["app_metadata"]["roles"], json!(["editor", "viewer"]));
    // The token in hand still says what it said; the next one carries the role.
    assert_eq!(editor(before).await.0, 403);
    let refresh = |token: &Value| {
        let (http, url, body) = (
            &http,
            url("/token/refresh"),
            json!({"refresh_token": token}),
        );
        async move { dev_server::post_json(http, &url, &body).await }
    };
    let r = refresh(&login["refresh_token"]).await;
    let next = r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let (status, body) = editor(next.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["claims"]["scope"], "aal1 role:editor role:viewer");
    let jwks = dev_server::get_json(&http, &url("/.well-known/jwks.json")).await;
    let key = RS256PublicKey::from_jwk(&jwks["keys"][0].to_string()).unwrap();
    let checked = key
        .verify_token::<Value>(&next, Some(VerificationOptions::default()))
        .unwrap();
    assert_eq!(checked.custom["roles"], json!(["editor", "viewer"]));
    // Cleared: the route refuses again from the next token on.
    let (code, _, err) = user_admin(&db, &["set-roles", &id]);
    assert_eq!(code, 0, "{err}");
    let r = refresh(&r["refresh_token"]).await;
    assert_eq!(editor(r["token"].as_str().unwrap().to_owned()).await.0, 403);
}

/// The admin function sizes a token without signing it: its size is the signed token's, for
/// HS256 and for RS256 keys, with and without grants.
#[test]
fn a_token_s_size_is_known_without_signing_it() {
    let rs = {
        let mut v = rsa_vars("a");
        v.set("DB_NAME", fresh_db());
        domain::config::Settings::from_vars(&v).unwrap()
    };
    for settings in [settings(&fresh_db()), rs] {
        let keys = domain::auth::token::TokenKeys::new(
            &settings.keys,
            &settings.audience,
            settings.jwt_ttl,
        );
        let grants = Grants::of(
            &Metadata::parse_app(json!({"roles": ["editor", "x:y"], "tenant": "acme"}), 4096)
                .unwrap(),
            &domain::claims::ClaimSettings {
                mapped: vec!["tenant".into()],
                ..domain::claims::ClaimSettings::default()
            },
        );
        for g in [Grants::default(), grants] {
            let a = Assurance::single("pwd", 1_000);
            let user = UserId::new();
            let signed = keys
                .issue_for("https://issuer.example", &user, "sid-1", 1_000, &a, &g)
                .unwrap();
            let sized = keys
                .encoded_len("https://issuer.example", &user, "sid-1", 1_000, &a, &g)
                .unwrap();
            assert_eq!(sized, signed.len(), "{:?}", settings.jwt_algorithm);
        }
    }
}
