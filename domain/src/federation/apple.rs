//! Sign in with Apple's client secret: not a fixed string but a JWT the client signs itself,
//! ES256 with the team's private key (the `.p8` file Apple hands out once, kept in the
//! stack's secret), `iss` the team id, `sub` the client id (Services ID), `aud` Apple, and a
//! life of at most six months (Apple refuses longer). Made at run time, per the browser flow's
//! code exchange, so no long-lived secret is ever stored beside the key.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair},
};
use serde_json::json;

/// Apple's audience for client secrets.
pub const AUDIENCE: &str = "https://appleid.apple.com";

/// How long a client secret made here lives: Apple allows up to six months; an hour is enough
/// for the one code exchange it is made for.
pub const LIFETIME_SECS: i64 = 3600;
const _: () = assert!(
    LIFETIME_SECS <= 15_777_000,
    "Apple allows six months at most"
);

/// The team's key, parsed once.
pub struct AppleKey {
    pair: EcdsaKeyPair,
    key_id: String,
    team_id: String,
}

impl std::fmt::Debug for AppleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppleKey")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .finish_non_exhaustive()
    }
}

impl AppleKey {
    /// The `.p8` key (a PKCS#8 PEM of a P-256 key) with its key id and the team id; the
    /// reason it is refused, which never quotes the key.
    pub fn from_p8(pem: &str, key_id: &str, team_id: &str) -> Result<Self, &'static str> {
        let body: String = pem
            .replace("\\n", "\n")
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "the Apple key is not a PEM")?;
        let ok_id = |s: &str| s.len() == 10 && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok_id(key_id) || !ok_id(team_id) {
            return Err("the Apple key id and team id are 10 letters or digits");
        }
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
                .map_err(|_| "the Apple key is not a P-256 PKCS#8 private key")?;
        Ok(Self {
            pair,
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
        })
    }

    /// The client secret for `client_id` at `now` (Unix seconds).
    pub fn client_secret(&self, client_id: &str, now: i64) -> Result<String, &'static str> {
        let header = json!({"alg": "ES256", "kid": self.key_id, "typ": "JWT"});
        let claims = json!({
            "iss": self.team_id,
            "iat": now,
            "exp": now + LIFETIME_SECS,
            "aud": AUDIENCE,
            "sub": client_id,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| "signing failed")?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    /// The public key (uncompressed point), for checks.
    pub fn public_key(&self) -> &[u8] {
        use ring::signature::KeyPair;
        self.pair.public_key().as_ref()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    use serde_json::Value;

    use super::*;

    const P8: &str = include_str!("../../../tests/fixtures/apple-test.p8");

    #[test]
    fn a_client_secret_is_an_es256_jwt_apple_accepts_the_shape_of() {
        let key = AppleKey::from_p8(P8, "ABC123DEFG", "TEAM123456").unwrap();
        let secret = key.client_secret("com.example.web", 1_800_000_000).unwrap();
        let parts: Vec<&str> = secret.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        assert_eq!(
            decode(parts[0]),
            json!({"alg": "ES256", "kid": "ABC123DEFG", "typ": "JWT"})
        );
        let c = decode(parts[1]);
        assert_eq!(
            (&c["iss"], &c["sub"], &c["aud"]),
            (
                &json!("TEAM123456"),
                &json!("com.example.web"),
                &json!(AUDIENCE)
            )
        );
        assert_eq!(
            c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
            LIFETIME_SECS
        );
        // The signature verifies under the key's public half (64 bytes, r || s).
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 64);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key())
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
    }

    #[test]
    fn a_bad_key_or_id_is_refused_without_quoting_the_key() {
        for (pem, kid, team) in [
            ("not a key", "ABC123DEFG", "TEAM123456"),
            (P8, "short", "TEAM123456"),
            (P8, "ABC123DEFG", "team 12345"),
            (
                include_str!("../../../tests/fixtures/rsa-a.pem"),
                "ABC123DEFG",
                "TEAM123456",
            ),
        ] {
            let e = AppleKey::from_p8(pem, kid, team).unwrap_err();
            assert!(!e.contains("BEGIN"), "{e}");
        }
    }
}
