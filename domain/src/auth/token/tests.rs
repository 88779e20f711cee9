use super::*;
use crate::config::KeyVersion;

const K: &str = "0123456789abcdef0123456789abcdef";

fn keys(kid: &str) -> TokenKeys {
    let set = KeySet {
        current: KeyVersion {
            kid: kid.to_owned(),
            jwt: JwtKey::Hs256(Secret::new(K.as_bytes())),
            session: Secret::new(K.as_bytes()),
        },
        previous: None,
        next: None,
    };
    TokenKeys::new(&set, "aud", Duration::from_secs(900))
}

/// An HS256 token with this header and these claims under `K`.
fn signed(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = mac(&Secret::new(K.as_bytes()), &input)
        .finalize()
        .into_bytes();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn claims(iat: u64, nbf: u64, exp: u64) -> serde_json::Value {
    serde_json::json!({"sub": UserId::new().to_hex(), "sid": "s", "iat": iat, "nbf": nbf,
                       "exp": exp, "iss": "iss", "aud": "aud"})
}

#[test]
fn issuing_and_checking_at_the_end_of_time_saturates_instead_of_panicking() {
    let k = keys("a");
    let token = k.issue("iss", &UserId::new(), "s", u64::MAX - 1);
    let token = token.unwrap_or_default();
    assert!(k.check(&token, u64::MAX - 1, "iss").is_ok());
    assert_eq!(
        k.check(&token, 0, "iss"),
        Err(Refusal::Invalid),
        "iat in the future"
    );
}

#[test]
fn time_claims_near_the_maximum_are_refused() {
    let k = keys("a");
    let h = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "a"});
    let now = 1_800_000_000;
    assert!(
        k.check(&signed(&h, &claims(now, now, now + 900)), now, "iss")
            .is_ok()
    );
    for (iat, nbf, exp) in [
        (now, now, u64::MAX - 1),
        (now, now, u64::MAX),
        (u64::MAX - 1, now, now + 900),
        (now, u64::MAX - 1, now + 900),
        (now, now, now + 900 + LEEWAY_SECS + 1),
    ] {
        let t = signed(&h, &claims(iat, nbf, exp));
        assert_eq!(
            k.check(&t, now, "iss"),
            Err(Refusal::Invalid),
            "{iat} {nbf} {exp}"
        );
    }
}

#[test]
fn crit_is_refused_and_only_a_well_formed_unknown_kid_asks_for_a_refresh() {
    let k = keys("a");
    let now = 1_800_000_000;
    let c = claims(now, now, now + 900);
    let crit = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "a", "crit": ["exp"]});
    assert_eq!(
        k.check(&signed(&crit, &c), now, "iss"),
        Err(Refusal::Invalid)
    );
    let other = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "b"});
    assert_eq!(
        k.check(&signed(&other, &c), now, "iss"),
        Err(Refusal::UnknownKid)
    );
    let bad_alg = serde_json::json!({"alg": "HS512", "typ": "JWT", "kid": "b"});
    assert_eq!(
        k.check(&signed(&bad_alg, &c), now, "iss"),
        Err(Refusal::Invalid)
    );
    let crit_unknown = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "b", "crit": []});
    assert_eq!(
        k.check(&signed(&crit_unknown, &c), now, "iss"),
        Err(Refusal::Invalid)
    );
    assert!(k.knows_kid("a") && !k.knows_kid("b"));
}

#[test]
fn malformed_or_mislabelled_tokens_are_refused() {
    let k = keys("a");
    let now = 1_800_000_000;
    let h = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "a"});
    let good = signed(&h, &claims(now, now, now + 900));
    assert!(k.check(&good, now, "iss").is_ok());
    let with_claims = |c: serde_json::Value| signed(&h, &c);
    let mut aud_list = claims(now, now, now + 900);
    aud_list["aud"] = serde_json::json!(["aud"]);
    let mut other_aud = claims(now, now, now + 900);
    other_aud["aud"] = "someone-else".into();
    let mut no_sid = claims(now, now, now + 900);
    no_sid.as_object_mut().map(|c| c.remove("sid"));
    let mut float_exp = claims(now, now, now + 900);
    float_exp["exp"] = serde_json::json!(1.8e9);
    let header = |h: serde_json::Value| signed(&h, &claims(now, now, now + 900));
    let (head, rest) = good.split_once('.').unwrap_or_default();
    let cases = [
        ("two parts", rest.to_owned()),
        ("four parts", format!("{good}.x")),
        ("padded", format!("{head}=.{rest}")),
        (
            "empty signature",
            format!("{}.", good.rsplit_once('.').unwrap_or_default().0),
        ),
        (
            "header not JSON",
            format!("{}.{rest}", URL_SAFE_NO_PAD.encode("alg")),
        ),
        (
            "alg not a string",
            header(serde_json::json!({"alg": 256, "typ": "JWT", "kid": "a"})),
        ),
        (
            "alg none",
            header(serde_json::json!({"alg": "none", "typ": "JWT", "kid": "a"})),
        ),
        (
            "no typ",
            header(serde_json::json!({"alg": "HS256", "kid": "a"})),
        ),
        (
            "typ jwt+at",
            header(serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": "a"})),
        ),
        (
            "no kid",
            header(serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        ),
        (
            "RS256 label on an HMAC key",
            header(serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "a"})),
        ),
        ("aud a list", with_claims(aud_list)),
        ("another audience", with_claims(other_aud)),
        ("a claim missing", with_claims(no_sid)),
        ("exp not a whole number", with_claims(float_exp)),
    ];
    for (what, token) in cases {
        assert_eq!(k.check(&token, now, "iss"), Err(Refusal::Invalid), "{what}");
    }
    assert_eq!(remembered(&k), 1, "only the good token");
}

fn remembered(k: &TokenKeys) -> usize {
    k.verified.lock().map(|m| m.len()).unwrap_or_default()
}

#[test]
fn a_remembered_token_is_still_refused_once_expired_or_for_another_issuer() {
    let k = keys("a");
    let now = 1_800_000_000;
    let token = k.issue("iss", &UserId::new(), "s", now).unwrap_or_default();
    assert!(k.check(&token, now, "iss").is_ok());
    assert_eq!(remembered(&k), 1);
    assert!(
        k.check(&token, now + 60, "iss").is_ok(),
        "a repeat is answered"
    );
    assert_eq!(remembered(&k), 1);
    assert_eq!(k.check(&token, now, "other"), Err(Refusal::Invalid));
    assert_eq!(
        k.check(&token, now + 900 + LEEWAY_SECS, "iss"),
        Err(Refusal::Invalid)
    );
    assert_eq!(
        k.check(&token, now - 3600, "iss"),
        Err(Refusal::Invalid),
        "iat ahead"
    );
    // Other keys (a refresh builds new ones) remember nothing of it.
    assert_eq!(
        keys("b").check(&token, now, "iss"),
        Err(Refusal::UnknownKid)
    );
}

#[test]
fn only_a_token_whose_signature_verified_is_remembered_and_the_memory_is_bounded() {
    let k = keys("a");
    let now = 1_800_000_000;
    let token = k.issue("iss", &UserId::new(), "s", now).unwrap_or_default();
    let (input, sig) = token.rsplit_once('.').unwrap_or_default();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let forged = format!("{input}.{flipped}{}", &sig[1..]);
    for _ in 0..2 {
        assert_eq!(k.check(&forged, now, "iss"), Err(Refusal::Invalid));
    }
    let h = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "a", "crit": ["x"]});
    let crit = signed(&h, &claims(now, now, now + 900));
    assert_eq!(k.check(&crit, now, "iss"), Err(Refusal::Invalid));
    assert_eq!(remembered(&k), 0);
    for _ in 0..VERIFIED_TOKENS_REMEMBERED + 10 {
        let t = k.issue("iss", &UserId::new(), "s", now).unwrap_or_default();
        assert!(k.check(&t, now, "iss").is_ok());
        assert!(remembered(&k) <= VERIFIED_TOKENS_REMEMBERED);
    }
    assert!(
        k.check(&token, now, "iss").is_ok(),
        "forgotten, verified again"
    );
}

#[test]
fn a_token_names_the_issuer_it_was_issued_by_and_no_other_is_accepted() {
    let k = keys("a");
    let now = 1_800_000_000;
    let api = "https://abc123.execute-api.eu-west-1.amazonaws.com";
    let token = k.issue(api, &UserId::new(), "s", now).unwrap_or_default();
    assert_eq!(k.check(&token, now, api).map(|c| c.iss), Ok(api.to_owned()));
    for other in ["https://other.example.com", "iss", "", &format!("{api}/")] {
        assert_eq!(
            k.check(&token, now, other),
            Err(Refusal::Invalid),
            "{other}"
        );
    }
}
