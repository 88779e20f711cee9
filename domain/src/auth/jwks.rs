//! The two discovery documents a JWT consumer (API Gateway's JWT authorizer, any OIDC-aware
//! library) reads to verify our RS256 tokens without sharing a secret: the JWK Set (RFC 7517
//! §5) and the OpenID Provider metadata (OpenID Connect Discovery 1.0 §3). Pure functions of
//! the keys and settings, so a route serves them and tests check them without a server.

use serde_json::{Value, json};

use super::rsa::RsaPublicKey;

/// Path of the JWK Set under the issuer URL.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Path of the discovery document under the issuer URL.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// `Cache-Control` for both documents. API Gateway's authorizer keeps fetched keys for up to
/// two hours whatever this says, which is why a new key is published (as the secret's
/// AWSPENDING version) before it signs; other clients re-read within five minutes, which
/// bounds how long they can miss a key published since.
pub const CACHE_CONTROL: &str = "public, max-age=300";

/// `{"keys": [...]}`: one public JWK per distinct `kid`, in the order given (signing key
/// first). An HS256-only deployment publishes an empty set: its keys are secrets.
pub fn jwks<'a>(keys: impl IntoIterator<Item = (&'a str, &'a RsaPublicKey)>) -> Value {
    let mut seen = Vec::new();
    let mut list = Vec::new();
    for (kid, key) in keys {
        if !seen.contains(&kid) {
            seen.push(kid);
            list.push(key.jwk(kid));
        }
    }
    json!({ "keys": list })
}

/// The JWK Set's URL for `issuer` (the deployed API's https base URL).
pub fn jwks_uri(issuer: &str) -> String {
    format!("{}{JWKS_PATH}", issuer.trim_end_matches('/'))
}

/// OpenID Provider metadata for `issuer`, listing `algorithms` (the ones tokens are signed
/// with). This API issues access tokens from its own login, so only the members a verifier
/// uses are given: issuer, jwks_uri and the signing algorithms.
pub fn openid_configuration(issuer: &str, algorithms: &[&str]) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri(issuer),
        "id_token_signing_alg_values_supported": algorithms,
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "sid", "iss", "aud", "iat", "nbf", "exp"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_lists_each_kid_once_with_public_members_only() {
        let a = RsaPublicKey::new(vec![0, 0xc3, 1, 2], vec![1, 0, 1]);
        let b = RsaPublicKey::new(vec![0xd4, 5, 6], vec![3]);
        let doc = jwks([("a", &a), ("b", &b), ("a", &a)]);
        let keys = doc["keys"].as_array().cloned().unwrap_or_default();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys[0],
            json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "a", "n": "wwEC", "e": "AQAB"})
        );
        assert_eq!(keys[1]["kid"], "b");
        assert_eq!(jwks([]), json!({"keys": []}));
    }

    #[test]
    fn discovery_points_at_the_jwks_under_the_issuer() {
        let doc = openid_configuration("https://api.example.com/", &["RS256"]);
        assert_eq!(doc["issuer"], "https://api.example.com/");
        assert_eq!(
            doc["jwks_uri"],
            "https://api.example.com/.well-known/jwks.json"
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["RS256"])
        );
    }
}
