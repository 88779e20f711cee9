//! Checking a provider's ID token (OpenID Connect Core 1.0, 3.1.3.7): the signature against
//! the provider's published keys, RS256 only (an `alg` of `none`, `HS256` or anything else is
//! refused before any key is looked at, so an HMAC can never be checked with a public key as
//! its secret), `iss` exactly the provider's, `aud` one of our client ids (and `azp`, when
//! several audiences are named, ours), `exp`/`iat`/`nbf` within a bounded skew, and the nonce
//! the app sent (hashed first where the provider hashes it). Only then are the subject and
//! the email read; an email the provider does not mark verified is never treated as verified.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{NonceMode, Provider};

/// Seconds of clock skew allowed either way on `exp`, `nbf` and `iat`.
pub const SKEW_SECS: u64 = 60;

/// How old an ID token may be (its `iat`) to sign in with: a token captured and replayed later
/// is refused even within its `exp`.
pub const MAX_AGE_SECS: i64 = 600;

/// A provider's signing keys (its JWKS), by `kid`: RSA keys for RS256 only.
#[derive(Clone, Default)]
pub struct Jwks {
    keys: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Jwks").field("kids", &kids).finish()
    }
}

impl Jwks {
    /// The RS256 signing keys of a JWK Set document (`{"keys": [...]}`): each RSA key with a
    /// `kid` whose `use` is absent or `sig` and whose `alg` is absent or `RS256`. Keys of
    /// other types are skipped; a document that is not a JWK Set is an error.
    pub fn parse(doc: &Value) -> Result<Self, FederationError> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(FederationError::ProviderUnavailable("the JWKS has no keys"))?;
        let mut out = HashMap::new();
        for k in keys {
            let s = |name: &str| k.get(name).and_then(Value::as_str);
            if s("kty") != Some("RSA")
                || s("use").is_some_and(|u| u != "sig")
                || s("alg").is_some_and(|a| a != "RS256")
            {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) = (s("kid"), s("n"), s("e")) else {
                continue;
            };
            // 2048 bits at least, as for our own keys.
            let modulus = URL_SAFE_NO_PAD.decode(n).unwrap_or_default();
            if modulus.len() < 256 {
                continue;
            }
            if let Ok(key) = DecodingKey::from_rsa_components(n, e) {
                out.insert(kid.to_owned(), key);
            }
        }
        Ok(Self { keys: out })
    }

    pub fn has(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why a provider token was refused; the reason is for the log, the answer says only that it
/// was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's alg is not RS256")]
    Algorithm,
    /// Signed by a key the provider's JWKS does not hold (yet: the caller refreshes once).
    #[error("the token names an unknown key")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("the token is from another issuer")]
    Issuer,
    #[error("the token is for another client")]
    Audience,
    #[error("the token has expired or is not yet valid")]
    Expired,
    #[error("the token is too old to sign in with")]
    TooOld,
    #[error("the nonce does not match")]
    Nonce,
    /// The provider's token endpoint refused the authorization code (used, expired, or the
    /// PKCE verifier or client secret did not match).
    #[error("the provider refused the code")]
    CodeRefused,
    /// Discovery or the JWKS could not be had.
    #[error("provider unavailable: {0}")]
    ProviderUnavailable(&'static str),
}

/// Who the provider says the token is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderIdentity {
    /// The provider's issuer URL: with `subject`, the federated identifier.
    pub issuer: String,
    /// `sub`: stable and unique per issuer.
    pub subject: String,
    /// `email`, only where the provider marks it verified (`email_verified` true or "true").
    pub verified_email: Option<String>,
    /// `email` the provider does not vouch for: shown, never trusted (and never kept).
    #[serde(skip)]
    pub unverified_email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    aud: Value,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Value,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    family_name: Option<String>,
}

/// The `nonce` claim a provider puts in its token for the raw `nonce` an app used.
pub fn expected_nonce(mode: NonceMode, raw: &str) -> String {
    match mode {
        NonceMode::Raw => raw.to_owned(),
        NonceMode::Sha256Hex => Sha256::digest(raw.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

/// The `kid` of a token's header, after checking its `alg` is RS256.
pub fn key_id(token: &str) -> Result<String, FederationError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| FederationError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(FederationError::Algorithm);
    }
    header.kid.ok_or(FederationError::UnknownKey)
}

/// Checks `token` from `provider` against `jwks` at `now` (Unix seconds) for the raw `nonce`.
pub fn verify(
    provider: &Provider,
    jwks: &Jwks,
    token: &str,
    nonce: &str,
    now: i64,
) -> Result<ProviderIdentity, FederationError> {
    crate::auth::provider::install();
    let kid = key_id(token)?;
    let key = jwks.keys.get(&kid).ok_or(FederationError::UnknownKey)?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[provider.issuer.as_str()]);
    v.set_audience(&provider.client_ids);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    v.leeway = SKEW_SECS;
    v.validate_nbf = true;
    // jsonwebtoken reads the system clock; checked again below against ours.
    v.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(token, key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => FederationError::Signature,
            K::InvalidIssuer => FederationError::Issuer,
            K::InvalidAudience => FederationError::Audience,
            K::ImmatureSignature | K::ExpiredSignature => FederationError::Expired,
            K::InvalidAlgorithm => FederationError::Algorithm,
            _ => FederationError::Malformed,
        }
    })?;
    let exp = data
        .claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(FederationError::Malformed)?;
    let claims: Claims =
        serde_json::from_value(data.claims).map_err(|_| FederationError::Malformed)?;
    let skew = SKEW_SECS as i64;
    if exp + skew < now || claims.iat > now + skew {
        return Err(FederationError::Expired);
    }
    if now - claims.iat > MAX_AGE_SECS {
        return Err(FederationError::TooOld);
    }
    // Several audiences: the authorized party must be us (Core 3.1.3.7, items 4 and 5).
    if claims.aud.as_array().is_some_and(|a| a.len() > 1)
        && !claims
            .azp
            .as_ref()
            .is_some_and(|azp| provider.client_ids.contains(azp))
    {
        return Err(FederationError::Audience);
    }
    let expected = expected_nonce(provider.nonce, nonce);
    let nonce_ok = claims
        .nonce
        .as_deref()
        .is_some_and(|got| crate::auth::constant_time_eq(got.as_bytes(), expected.as_bytes()));
    if nonce.is_empty() || !nonce_ok {
        return Err(FederationError::Nonce);
    }
    let verified = matches!(&claims.email_verified, Value::Bool(true))
        || claims.email_verified.as_str() == Some("true");
    let (verified_email, unverified_email) = match claims.email {
        Some(e) if verified => (Some(e), None),
        other => (None, other),
    };
    if claims.sub.is_empty() || claims.sub.len() > 255 {
        return Err(FederationError::Malformed);
    }
    Ok(ProviderIdentity {
        issuer: provider.issuer.clone(),
        subject: claims.sub,
        verified_email,
        unverified_email,
        given_name: claims.given_name,
        family_name: claims.family_name,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::rsa::RsaKey;

    const NOW: i64 = 1_800_000_000;

    fn key(name: &str) -> RsaKey {
        let pem = match name {
            "a" => include_str!("../../../tests/fixtures/rsa-a.pem"),
            _ => include_str!("../../../tests/fixtures/rsa-attacker.pem"),
        };
        RsaKey::from_pem(pem).unwrap()
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn sign(key: &RsaKey, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn provider(nonce: NonceMode) -> Provider {
        Provider {
            name: "corp".into(),
            issuer: "https://sso.example.com".into(),
            client_ids: vec!["app-web".into(), "app-ios".into()],
            nonce,
            web: None,
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://sso.example.com", "aud": "app-web", "sub": "u-123",
            "iat": NOW - 5, "exp": NOW + 300, "nonce": "n-0S6_WzA2Mj",
            "email": "ann@example.com", "email_verified": true, "given_name": "Ann"})
    }

    fn header() -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})
    }

    fn jwks() -> Jwks {
        Jwks::parse(&json!({"keys": [key("a").public().jwk("k1")]})).unwrap()
    }

    fn with(mut c: Value, k: &str, v: Value) -> Value {
        c[k] = v;
        c
    }

    #[test]
    fn a_good_token_gives_its_subject_and_only_a_verified_email() {
        let p = provider(NonceMode::Raw);
        let id = verify(
            &p,
            &jwks(),
            &sign(&key("a"), &header(), &claims()),
            "n-0S6_WzA2Mj",
            NOW,
        )
        .unwrap();
        assert_eq!(
            (
                id.subject.as_str(),
                id.verified_email.as_deref(),
                id.given_name.as_deref()
            ),
            ("u-123", Some("ann@example.com"), Some("Ann"))
        );
        // Apple says "true" as a string; "false" or absent is not verified.
        for (flag, verified) in [
            (json!("true"), true),
            (json!("false"), false),
            (json!(null), false),
        ] {
            let t = sign(
                &key("a"),
                &header(),
                &with(claims(), "email_verified", flag),
            );
            let id = verify(&p, &jwks(), &t, "n-0S6_WzA2Mj", NOW).unwrap();
            assert_eq!(id.verified_email.is_some(), verified);
            assert_eq!(id.unverified_email.is_some(), !verified);
        }
    }

    #[test]
    fn every_forgery_and_mismatch_is_refused_for_its_reason() {
        let p = provider(NonceMode::Raw);
        let ok_nonce = "n-0S6_WzA2Mj";
        let good = |c: Value| sign(&key("a"), &header(), &c);
        let hs256 = {
            let h = json!({"alg": "HS256", "typ": "JWT", "kid": "k1"});
            format!("{}.{}.c2ln", b64(&h), b64(&claims()))
        };
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "k1"})),
            b64(&claims())
        );
        let table: Vec<(&str, String, &str, FederationError)> = vec![
            (
                "wrong aud",
                good(with(claims(), "aud", json!("someone-else"))),
                ok_nonce,
                FederationError::Audience,
            ),
            (
                "wrong iss",
                good(with(claims(), "iss", json!("https://evil.example.com"))),
                ok_nonce,
                FederationError::Issuer,
            ),
            (
                "expired",
                good(with(claims(), "exp", json!(NOW - 120))),
                ok_nonce,
                FederationError::Expired,
            ),
            (
                "issued in the future",
                good(with(claims(), "iat", json!(NOW + 300))),
                ok_nonce,
                FederationError::Expired,
            ),
            (
                "too old",
                good(with(
                    with(claims(), "iat", json!(NOW - 3600)),
                    "exp",
                    json!(NOW + 3600),
                )),
                ok_nonce,
                FederationError::TooOld,
            ),
            (
                "wrong nonce",
                good(claims()),
                "another-nonce",
                FederationError::Nonce,
            ),
            (
                "no nonce in the token",
                good(with(claims(), "nonce", json!(null))),
                ok_nonce,
                FederationError::Nonce,
            ),
            ("empty nonce", good(claims()), "", FederationError::Nonce),
            (
                "alg swapped to HS256",
                hs256,
                ok_nonce,
                FederationError::Algorithm,
            ),
            (
                "alg none: not even an algorithm here",
                none,
                ok_nonce,
                FederationError::Malformed,
            ),
            (
                "a key never published",
                sign(
                    &key("attacker"),
                    &json!({"alg": "RS256", "kid": "k9"}),
                    &claims(),
                ),
                ok_nonce,
                FederationError::UnknownKey,
            ),
            (
                "a published kid, another key",
                sign(&key("attacker"), &header(), &claims()),
                ok_nonce,
                FederationError::Signature,
            ),
            (
                "two audiences, azp not ours",
                good(with(
                    with(claims(), "aud", json!(["app-web", "other"])),
                    "azp",
                    json!("other"),
                )),
                ok_nonce,
                FederationError::Audience,
            ),
            (
                "not a JWT",
                "abc".to_owned(),
                ok_nonce,
                FederationError::Malformed,
            ),
        ];
        for (what, token, nonce, expected) in table {
            assert_eq!(
                verify(&p, &jwks(), &token, nonce, NOW).err(),
                Some(expected),
                "{what}"
            );
        }
        let ok = good(with(
            with(claims(), "aud", json!(["app-web", "other"])),
            "azp",
            json!("app-web"),
        ));
        assert!(verify(&p, &jwks(), &ok, ok_nonce, NOW).is_ok(), "azp ours");
    }

    #[test]
    fn a_provider_that_hashes_the_nonce_is_checked_against_the_hash() {
        let p = provider(NonceMode::Sha256Hex);
        let raw = "a-raw-nonce";
        let hashed = expected_nonce(NonceMode::Sha256Hex, raw);
        assert_eq!(hashed.len(), 64);
        let t = sign(
            &key("a"),
            &header(),
            &with(claims(), "nonce", json!(hashed)),
        );
        assert!(verify(&p, &jwks(), &t, raw, NOW).is_ok());
        assert_eq!(
            verify(&p, &jwks(), &t, &hashed, NOW).err(),
            Some(FederationError::Nonce),
            "the hash itself is not the nonce"
        );
    }

    #[test]
    fn a_jwks_keeps_only_rsa_signing_keys_of_2048_bits_or_more() {
        let mut enc = key("a").public().jwk("enc");
        enc["use"] = json!("enc");
        let ec = json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"});
        let small = json!({"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"});
        let j =
            Jwks::parse(&json!({"keys": [key("a").public().jwk("k1"), enc, ec, small]})).unwrap();
        assert_eq!(j.len(), 1);
        assert!(j.has("k1"));
        assert!(Jwks::parse(&json!({"nope": 1})).is_err());
    }
}
