//! RS256 access tokens, checked from the outside: a second JWT implementation (jwt-simple,
//! with its own RSA and JWK code) verifies our tokens using only our JWKS, in process and
//! fetched over HTTP from running dev servers (two instances on one secret), before and after
//! a rotation in the emulator's secret; and algorithm/key confusion between the HS256 and
//! RS256 keys of one deployment is refused on two instances at once.

use std::{collections::HashSet, sync::Arc};

use api_tests::*;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::{
    auth::{jwks, rsa::RsaKey},
    clock::{Clock, ManualClock},
    config::{JwtKey, KeySet, KeyVersion, Secret, Settings},
};
use edge::{State, state::StoreKind};
use hmac::{Hmac, Mac};
use jwt_simple::prelude::{
    JWTClaims, RS256KeyPair, RS256PublicKey, RSAPublicKeyLike, Token, VerificationOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Serialize, Deserialize)]
struct Sid {
    sid: String,
}

/// Verifies `token` the way a third party would: the `kid` from the token, the matching key
/// parsed from our JWKS text by jwt-simple (whose own thumbprint must equal the `kid`), and
/// jwt-simple's checks of signature, algorithm, issuer (`issuer`) and audience.
fn third_party_verify(
    jwks_text: &str,
    token: &str,
    issuer: &str,
) -> Result<JWTClaims<Sid>, String> {
    let meta = Token::decode_metadata(token).map_err(|e| e.to_string())?;
    if meta.algorithm() != "RS256" {
        return Err(format!("alg {}", meta.algorithm()));
    }
    let kid = meta.key_id().ok_or("no kid")?.to_owned();
    let set: Value = serde_json::from_str(jwks_text).map_err(|e| e.to_string())?;
    let jwk = set["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let key = RS256PublicKey::from_jwk(&jwk.to_string()).map_err(|e| e.to_string())?;
    assert_eq!(key.jwk_thumbprint(), kid, "kid is the RFC 7638 thumbprint");
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([issuer.to_owned()])),
        allowed_audiences: Some(HashSet::from(["user-api".to_owned()])),
        required_key_id: Some(kid),
        ..VerificationOptions::default()
    };
    key.with_key_id(jwk["kid"].as_str().unwrap_or_default())
        .verify_token::<Sid>(token, Some(options))
        .map_err(|e| e.to_string())
}

fn header_of(token: &str) -> Value {
    let head = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn fixture_key(name: &str) -> RsaKey {
    RsaKey::parse(&rsa_pem(name)).unwrap()
}

/// A state signing RS256 with fixture key `key`, on a fresh MongoDB database.
async fn rs256_state(key: &str) -> State {
    let (state, _) = state_on(Backend::Mongo, |db| {
        let mut v = rsa_vars(key);
        v.set("DB_NAME", db);
        Settings::from_vars(&v).unwrap()
    })
    .await;
    state
}

#[tokio::test]
async fn login_gives_an_rs256_token_a_third_party_library_verifies_from_our_jwks() {
    let state = rs256_state("a").await;
    let l = signed_in(&state, "1234567890").await;
    let header = header_of(&l.token);
    let kid = fixture_key("a").kid().to_owned();
    assert_eq!(header, json!({"typ": "JWT", "alg": "RS256", "kid": kid}));

    let set = state.tokens().jwks();
    let text = set.to_string();
    assert_eq!(set["keys"].as_array().map(Vec::len), Some(1));
    let jwk = &set["keys"][0];
    assert_eq!(
        (
            &jwk["kty"],
            &jwk["alg"],
            &jwk["use"],
            &jwk["kid"],
            &jwk["e"]
        ),
        (
            &json!("RSA"),
            &json!("RS256"),
            &json!("sig"),
            &json!(kid),
            &json!("AQAB")
        )
    );
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(jwk.get(private).is_none(), "{private} published");
    }

    let claims = third_party_verify(&text, &l.token, EVENT_ISSUER).unwrap();
    assert_eq!(claims.subject.as_deref(), Some(l.id.as_str()));
    assert_eq!(claims.custom.sid, claims_of(&l.token)["sid"]);
    assert_eq!(
        call(&state, &update_event(&l, json!({"last_name": "X"})))
            .await
            .status,
        200
    );
    // The control: a JWKS of another key does not verify it.
    let other = rs256_state("b").await.tokens().jwks().to_string();
    assert!(third_party_verify(&other, &l.token, EVENT_ISSUER).is_err());

    // Discovery points a verifier at that JWKS; HS256 deployments publish no key.
    let doc = jwks::openid_configuration("https://api.example.com", &[state.tokens().algorithm()]);
    assert_eq!(
        doc["jwks_uri"],
        "https://api.example.com/.well-known/jwks.json"
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let (hs, _) = mongo_state().await;
    assert_eq!(hs.tokens().jwks(), json!({"keys": []}));
}

async fn instance(vars: &domain::config::Vars) -> State {
    let clock = Arc::new(ManualClock::new()) as Arc<dyn Clock>;
    State::load_with_clock(vars, true, clock)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn kids(set: &Value) -> Vec<String> {
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn across_a_rotation_the_jwks_lists_both_keys_and_old_and_new_tokens_verify() {
    let client = secrets_client(&aws_endpoint()).await;
    let name = format!("user-api/{}", fresh_db());
    let secret = |key: Value, session: &str| {
        json!({"MONGO_URI": mongo_uri(), "JWT_PRIVATE_KEY": key, "SESSION_SECRET_KEY": session})
            .to_string()
    };
    let (a, b, c) = (fixture_key("a"), fixture_key("b"), fixture_key("attacker"));
    // Version 1 holds key A as PKCS#8 PEM; version 2 key B as a JWK object.
    create_secret(&client, &name, &secret(json!(rsa_pem("a")), SESSION_KEY)).await;
    let mut vars = secret_vars(&name, &aws_endpoint());
    vars.set("JWT_ALGORITHM", "RS256");
    let old = instance(&vars).await;
    let from_old = signed_in(&old, "1234567890").await;
    assert_eq!(header_of(&from_old.token)["kid"], a.kid());
    assert_eq!(kids(&old.tokens().jwks()), [a.kid()]);

    let jwk_b: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/rsa-b.jwk.json")).unwrap(),
    )
    .unwrap();
    rotate_secret(
        &client,
        &name,
        &secret(jwk_b, "rotated-session-key-0123456789abcdef0123"),
    )
    .await;
    let new = instance(&vars).await;
    let from_new = login(&new, "1234567890", "securepassword123").await;
    assert_eq!(header_of(&from_new.token)["kid"], b.kid());
    // Signing key first, the previous one still published.
    let published = new.tokens().jwks().to_string();
    assert_eq!(kids(&new.tokens().jwks()), [b.kid(), a.kid()]);
    for l in [&from_old, &from_new] {
        let claims = third_party_verify(&published, &l.token, EVENT_ISSUER).unwrap();
        assert_eq!(claims.subject.as_deref(), Some(l.id.as_str()));
    }
    // Both tokens work on both instances at once: the stale one refreshes on B's kid.
    for (state, l) in [(&old, &from_new), (&new, &from_old), (&old, &from_old)] {
        assert_eq!(
            call(state, &update_event(l, json!({"last_name": "Y"})))
                .await
                .status,
            200
        );
    }
    assert_eq!(kids(&old.tokens().jwks()), [b.kid(), a.kid()]);

    // The next key, staged as AWSPENDING, is published before anything signs with it.
    client
        .put_secret_value()
        .secret_id(&name)
        .secret_string(secret(json!(rsa_pem("attacker")), SESSION_KEY))
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    new.keys.refresh(new.clock.now()).await;
    let set = new.tokens().jwks();
    assert!(kids(&set).contains(&c.kid().to_owned()), "{set}");
    assert_eq!(kids(&set)[0], b.kid());
    let token = login(&new, "1234567890", "securepassword123").await.token;
    assert_eq!(
        header_of(&token)["kid"],
        b.kid(),
        "still signed by the current key"
    );
}

/// A token over exactly this header and these claims, signed by `sign`.
fn jws(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn hmac(key: &[u8]) -> impl FnOnce(&[u8]) -> Vec<u8> + '_ {
    move |msg| {
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
}

fn rsa(key: &RsaKey) -> impl FnOnce(&[u8]) -> Vec<u8> + '_ {
    move |msg| key.sign(msg).unwrap()
}

#[tokio::test]
async fn alg_and_kid_confusion_between_hs256_and_rs256_keys_is_refused_on_two_instances() {
    // A deployment moving from HS256 to RS256: the current key is RSA key A, the previous an
    // HMAC key still verifying its own tokens. Two instances share one database.
    let a = fixture_key("a");
    let attacker = fixture_key("attacker");
    let keys = KeySet {
        current: KeyVersion {
            kid: a.kid().to_owned(),
            jwt: JwtKey::Rs256(Arc::new(fixture_key("a"))),
            session: Secret::new(SESSION_KEY.as_bytes()),
        },
        previous: Some(key_version("old-hs", JWT_KEY, SESSION_KEY)),
        next: None,
    };
    let db = fresh_db();
    let mut v = vars();
    v.set("JWT_ALGORITHM", "RS256");
    v.set("DB_NAME", &db);
    let settings = Settings::with_keys(&v, keys, None).unwrap();
    let store = mongo_store(&db).await;
    let clock = Arc::new(ManualClock::new());
    let one = State::new(
        settings.clone(),
        Arc::new(store.clone()),
        StoreKind::Mongo,
        clock.clone() as Arc<dyn Clock>,
    )
    .unwrap();
    let two = State::new(
        settings,
        Arc::new(store),
        StoreKind::Mongo,
        clock as Arc<dyn Clock>,
    )
    .unwrap();
    let l = signed_in(&one, "1234567890").await;
    let claims = claims_of(&l.token);
    let head = |alg: &str, kid: &str| json!({"typ": "JWT", "alg": alg, "kid": kid});

    // Controls: our RS256 token, one signed the same way by hand, and an HS256 token under
    // the previous HMAC key's own kid are all accepted.
    let by_hand = jws(&head("RS256", a.kid()), &claims, rsa(&a));
    let old_hs = jws(&head("HS256", "old-hs"), &claims, hmac(JWT_KEY.as_bytes()));
    for t in [&l.token, &by_hand, &old_hs] {
        assert_eq!(put_with_jwt(&one, &l, t).await, 200);
        assert_eq!(put_with_jwt(&two, &l, t).await, 200);
    }

    let public = RS256KeyPair::from_pem(&rsa_pem("a")).unwrap().public_key();
    let spki_pem = public.to_pem().unwrap();
    let spki_der = public.to_der().unwrap();
    let jwk_text = one.tokens().jwks()["keys"][0].to_string();
    let n = a.public().n.clone();
    let attacker_jwk = attacker.public().jwk(attacker.kid());
    let mut with_jwk = head("RS256", attacker.kid());
    with_jwk["jwk"] = attacker_jwk;
    let mut with_jku = head("RS256", a.kid());
    with_jku["jku"] = json!("https://attacker.example/jwks.json");
    let valid_sig = l.token.rsplit('.').next().unwrap().to_owned();
    let resigned_header = |alg: &str| {
        let h = URL_SAFE_NO_PAD.encode(head(alg, a.kid()).to_string());
        let p = l.token.split('.').nth(1).unwrap();
        format!("{h}.{p}.{valid_sig}")
    };
    let attacks: Vec<(&str, String)> = vec![
        (
            "HS256 under the RSA kid, HMAC keyed with the public key PEM",
            jws(&head("HS256", a.kid()), &claims, hmac(spki_pem.as_bytes())),
        ),
        (
            "HS256 under the RSA kid, HMAC keyed with the public key DER",
            jws(&head("HS256", a.kid()), &claims, hmac(&spki_der)),
        ),
        (
            "HS256 under the RSA kid, HMAC keyed with the published JWK",
            jws(&head("HS256", a.kid()), &claims, hmac(jwk_text.as_bytes())),
        ),
        (
            "HS256 under the RSA kid, HMAC keyed with the modulus",
            jws(&head("HS256", a.kid()), &claims, hmac(&n)),
        ),
        (
            "HS256 under the RSA kid with the real HMAC key",
            jws(&head("HS256", a.kid()), &claims, hmac(JWT_KEY.as_bytes())),
        ),
        (
            "RS256 under the HMAC kid, signed by another RSA key",
            jws(&head("RS256", "old-hs"), &claims, rsa(&attacker)),
        ),
        (
            "RS256 under the HMAC kid, signed by the real RSA key",
            jws(&head("RS256", "old-hs"), &claims, rsa(&a)),
        ),
        (
            "RS256 under the HMAC kid, an HMAC for signature",
            jws(&head("RS256", "old-hs"), &claims, hmac(JWT_KEY.as_bytes())),
        ),
        (
            "RS256 under the RSA kid, signed by another RSA key",
            jws(&head("RS256", a.kid()), &claims, rsa(&attacker)),
        ),
        (
            "an embedded jwk of the attacker's key",
            jws(&with_jwk, &claims, rsa(&attacker)),
        ),
        (
            "a jku header over another key's signature",
            jws(&with_jku, &claims, rsa(&attacker)),
        ),
        (
            "alg none under the RSA kid",
            jws(&head("none", a.kid()), &claims, |_| vec![]),
        ),
        (
            "RS512 header over a valid RS256 signature",
            resigned_header("RS512"),
        ),
        (
            "PS256 header over a valid RS256 signature",
            resigned_header("PS256"),
        ),
        (
            "no typ, otherwise valid",
            jws(&json!({"alg": "RS256", "kid": a.kid()}), &claims, rsa(&a)),
        ),
        (
            "no kid, otherwise valid",
            jws(&json!({"typ": "JWT", "alg": "RS256"}), &claims, rsa(&a)),
        ),
    ];
    let (first, second) = tokio::join!(
        futures::future::join_all(attacks.iter().map(|(_, t)| put_with_jwt(&one, &l, t))),
        futures::future::join_all(attacks.iter().map(|(_, t)| put_with_jwt(&two, &l, t)))
    );
    for (((name, _), s1), s2) in attacks.iter().zip(first).zip(second) {
        assert_eq!((s1, s2), (401, 401), "accepted: {name}");
    }
}

#[tokio::test]
async fn the_dev_server_without_keys_signs_rs256_with_a_key_of_its_own() {
    let server = dev_server::start(&runtime::binary("dev-server"), |cmd| {
        for name in [
            "JWT_ALGORITHM",
            "JWT_PRIVATE_KEY",
            "JWT_SECRET_KEY",
            "SESSION_SECRET_KEY",
            "SECRET_ID",
            "MONGO_URI",
        ] {
            cmd.env_remove(name);
        }
    });
    let http = reqwest::Client::new();
    let login = dev_server::signed_in_over_http(&http, &server.base, "1234567890").await;
    let header = header_of(login["token"].as_str().unwrap());
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"].as_str().map(str::len), Some(43));
    // The way API Gateway's JWT authorizer and OIDC libraries verify: from the token's `iss`
    // to `{iss}/.well-known/openid-configuration`, whose `issuer` must equal it, to its
    // `jwks_uri`, fetched over HTTP; then a library of their own checks the token.
    let token = login["token"].as_str().unwrap();
    let issuer = claims_of(token)["iss"].as_str().unwrap().to_owned();
    assert_eq!(
        issuer, server.base,
        "the dev server's issuer is its own URL"
    );
    let discovery = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), 200);
    assert_eq!(discovery.headers()["cache-control"], "public, max-age=300");
    let discovery: Value = discovery.json().await.unwrap();
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{issuer}/.well-known/jwks.json"));
    let jwks = http.get(jwks_uri).send().await.unwrap();
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=300");
    let jwks_text = jwks.text().await.unwrap();
    let claims = third_party_verify(&jwks_text, token, &issuer).unwrap();
    // The same token named as another issuer's is refused by the library too.
    assert!(third_party_verify(&jwks_text, token, EVENT_ISSUER).is_err());
    assert_eq!(claims.subject.as_deref(), login["user_id"]["$oid"].as_str());
    // A token this server did not sign does not verify against its keys.
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let flipped = if sig.as_bytes()[10] == b'A' { "B" } else { "A" };
    let forged = format!("{signed}.{}{flipped}{}", &sig[..10], &sig[11..]);
    assert!(third_party_verify(&jwks_text, &forged, &issuer).is_err());
}

/// The JWK Set a running dev server publishes, fetched over HTTP as a verifier would.
async fn jwks_over_http(http: &reqwest::Client, base: &str) -> String {
    let resp = http
        .get(format!("{base}{}", jwks::JWKS_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// Polls `base`'s JWKS until it lists every kid in `want` (the server refreshes its keys
/// from the secret in the background once its cache TTL has passed).
async fn wait_for_kids(http: &reqwest::Client, base: &str, want: &[&str]) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = jwks_over_http(http, base).await;
        let set: Value = serde_json::from_str(&text).unwrap();
        if want.iter().all(|k| kids(&set).iter().any(|have| have == k)) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{base} never published {want:?}: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_third_party_library_verifies_tokens_of_two_instances_from_jwks_fetched_over_http_across_a_rotation()
 {
    let client = secrets_client(&aws_endpoint()).await;
    let name = format!("user-api/http-{}", fresh_db());
    let secret = |pem: String| {
        json!({"MONGO_URI": mongo_uri(), "JWT_PRIVATE_KEY": pem, "SESSION_SECRET_KEY": SESSION_KEY})
            .to_string()
    };
    create_secret(&client, &name, &secret(rsa_pem("a"))).await;
    // Two instances of one API: one secret, one database, one issuer URL.
    let db = fresh_db();
    let issuer = "https://users.test.example";
    let start = || {
        dev_server::start(&dev_server::bin(), |cmd| {
            cmd.env("SECRET_ID", &name)
                .env("AWS_ENDPOINT_URL", aws_endpoint())
                .env("JWT_ALGORITHM", "RS256")
                .env("SECRET_CACHE_TTL_SECONDS", "1")
                .env("JWT_ISSUER", issuer)
                .env("DB_NAME", &db)
                .env_remove("MONGO_URI");
        })
    };
    let (x, y) = (start(), start());
    let http = reqwest::Client::new();
    let first = dev_server::signed_in_over_http(&http, &x.base, "5550004444").await;
    let token_of = |login: Value| login["token"].as_str().unwrap().to_owned();
    let (a, b) = (fixture_key("a"), fixture_key("b"));
    let before = token_of(first);
    assert_eq!(header_of(&before)["kid"], a.kid());
    let published = jwks_over_http(&http, &y.base).await;
    let claims = third_party_verify(&published, &before, issuer).unwrap();
    assert_eq!(claims.custom.sid, claims_of(&before)["sid"]);

    // Rotate: key B becomes current, key A previous.
    rotate_secret(&client, &name, &secret(rsa_pem("b"))).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let on_y = wait_for_kids(&http, &y.base, &[b.kid(), a.kid()]).await;
    let after = token_of(dev_server::login_over_http(&http, &y.base, "5550004444").await);
    assert_eq!(header_of(&after)["kid"], b.kid());
    let on_x = wait_for_kids(&http, &x.base, &[b.kid(), a.kid()]).await;
    // Either instance's published keys verify either token: old (key A) and new (key B).
    for published in [&on_x, &on_y] {
        for token in [&before, &after] {
            let claims = third_party_verify(published, token, issuer)
                .unwrap_or_else(|e| panic!("{e}: {published}"));
            assert_eq!(claims.issuer.as_deref(), Some(issuer));
        }
    }
}
