//! RSA keys for RS256 (RFC 7518 §3.3, RSASSA-PKCS1-v1_5 with SHA-256) on ring, which rustls
//! already links into every binary: no second big-number library. A private key is parsed
//! once (PKCS#8 PEM as `openssl genpkey` writes it, PKCS#1 PEM, or a private JWK) and named by
//! its RFC 7638 thumbprint; its public half verifies tokens and is published as a JWK.

use std::{fmt, sync::OnceLock};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ring::{
    rand::SystemRandom,
    rsa::{KeyPairComponents, PublicKeyComponents},
    signature::{self, RsaKeyPair},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Smallest modulus accepted for signing and verifying (NIST SP 800-131A; what API Gateway's
/// JWT authorizer and ring's verifier require).
pub const MIN_RSA_BITS: usize = 2048;

/// A private RSA key with its public half and `kid`.
///
/// Parsing reads the key's structure and its public half only (modulus and exponent, from the
/// DER or the JWK); ring's full key-pair validation (about 0.2 ms of big-number work, the
/// largest single item of a cold start) runs on [`RsaKey::check`] or the first signature. A
/// function that only verifies tokens (update, logout, admin, ...) never needs the private
/// key, so it never pays for it; one that signs checks at init (`edge::state`), and a
/// rotation's new key is checked before it replaces the old one (`keys::KeyCache`).
pub struct RsaKey {
    public: RsaPublicKey,
    material: Material,
    pair: OnceLock<Result<RsaKeyPair, String>>,
    rng: SystemRandom,
}

/// What the key pair is built from.
enum Material {
    Pkcs8(Vec<u8>),
    Pkcs1(Vec<u8>),
    Components(KeyPairComponents<Vec<u8>>),
}

impl fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaKey")
            .field("kid", &self.public.thumbprint)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RsaKey {
    fn eq(&self, other: &Self) -> bool {
        self.public == other.public
    }
}

impl Eq for RsaKey {}

/// The public half: verifies, and is what the JWKS publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// Modulus, big-endian, no leading zeros.
    pub n: Vec<u8>,
    /// Public exponent, big-endian, no leading zeros.
    pub e: Vec<u8>,
    thumbprint: String,
}

/// A private JWK (RFC 7518 §6.3.2) with every CRT parameter, which ring needs.
#[derive(Deserialize)]
struct PrivateJwk {
    kty: String,
    alg: Option<String>,
    n: String,
    e: String,
    d: String,
    p: String,
    q: String,
    dp: String,
    dq: String,
    qi: String,
}

impl RsaKey {
    /// A PEM (`PRIVATE KEY` or `RSA PRIVATE KEY`) or a private JWK's JSON text. Errors say what
    /// is wrong, never what the key holds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('{') {
            let jwk = serde_json::from_str::<serde_json::Value>(text)
                .map_err(|_| "is neither a PEM nor a JSON JWK".to_owned())?;
            Self::from_jwk(&jwk)
        } else {
            Self::from_pem(text)
        }
    }

    /// A PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM. Literal `\n`
    /// sequences count as line breaks, for keys pasted into one-line environment variables.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let text = text.replace("\\n", "\n");
        let (label, der) = pem_decode(&text)?;
        let unusable = || "is not a usable RSA private key (not DER of an RSA key)".to_owned();
        let (public, material) = match label.as_str() {
            "PRIVATE KEY" => (
                der::pkcs8_public(&der).ok_or_else(unusable)?,
                Material::Pkcs8(der),
            ),
            "RSA PRIVATE KEY" => (
                der::pkcs1_public(&der).ok_or_else(unusable)?,
                Material::Pkcs1(der),
            ),
            "ENCRYPTED PRIVATE KEY" => {
                return Err("is an encrypted PEM: store the key unencrypted in the secret".into());
            }
            other => return Err(format!("is a PEM {other}, not an RSA private key")),
        };
        Self::new(public, material)
    }

    /// A private JWK: `{"kty":"RSA","n","e","d","p","q","dp","dq","qi"}` (`alg`, if present,
    /// must be RS256).
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, String> {
        let jwk = PrivateJwk::deserialize(jwk)
            .map_err(|_| "is not a private RSA JWK with n, e, d, p, q, dp, dq and qi".to_owned())?;
        if jwk.kty != "RSA" || jwk.alg.as_deref().is_some_and(|a| a != "RS256") {
            return Err("is a JWK for another key type or algorithm than RSA/RS256".into());
        }
        let b = |s: &str| {
            URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|_| "has a JWK member that is not base64url".to_owned())
        };
        let components = KeyPairComponents {
            public_key: PublicKeyComponents {
                n: b(&jwk.n)?,
                e: b(&jwk.e)?,
            },
            d: b(&jwk.d)?,
            p: b(&jwk.p)?,
            q: b(&jwk.q)?,
            dP: b(&jwk.dp)?,
            dQ: b(&jwk.dq)?,
            qInv: b(&jwk.qi)?,
        };
        let public = RsaPublicKey::new(
            components.public_key.n.clone(),
            components.public_key.e.clone(),
        );
        Self::new(public, Material::Components(components))
    }

    fn new(public: RsaPublicKey, material: Material) -> Result<Self, String> {
        let bits = public.n.len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "has a {bits}-bit modulus; at least {MIN_RSA_BITS} bits are required"
            ));
        }
        Ok(Self {
            public,
            material,
            pair: OnceLock::new(),
            rng: SystemRandom::new(),
        })
    }

    /// Validates the private key in full (ring's key-pair checks, once; later calls and
    /// signatures reuse the result). The reason never shows anything of the key.
    pub fn check(&self) -> Result<(), String> {
        self.pair().map(|_| ())
    }

    fn pair(&self) -> Result<&RsaKeyPair, String> {
        self.pair
            .get_or_init(|| {
                let pair = match &self.material {
                    Material::Pkcs8(der) => RsaKeyPair::from_pkcs8(der),
                    Material::Pkcs1(der) => RsaKeyPair::from_der(der),
                    Material::Components(c) => RsaKeyPair::from_components(c),
                }
                .map_err(|e| format!("is not a usable RSA private key ({e})"))?;
                // The halves compared as numbers, read from ring's DER of its public half
                // (no copies, no thumbprint).
                let same = der::rsa_public_key(pair.public().as_ref()).is_some_and(|(n, e)| {
                    unpadded(n) == self.public.n && unpadded(e) == self.public.e
                });
                if !same {
                    return Err("is not a usable RSA private key (its halves disagree)".into());
                }
                Ok(pair)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The public half.
    pub fn public(&self) -> &RsaPublicKey {
        &self.public
    }

    /// The key id: the public key's RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        self.public.thumbprint()
    }

    /// RSASSA-PKCS1-v1_5 SHA-256 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        let pair = self.pair().map_err(|_| ring::error::Unspecified)?;
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)?;
        Ok(sig)
    }
}

impl RsaPublicKey {
    /// A public key from its modulus and exponent (leading zero bytes are dropped).
    pub fn new(n: Vec<u8>, e: Vec<u8>) -> Self {
        let strip = |mut v: Vec<u8>| {
            let zeros = v.len() - unpadded(&v).len();
            v.drain(..zeros);
            v
        };
        let (n, e) = (strip(n), strip(e));
        let thumbprint = thumbprint(&n, &e);
        Self { n, e, thumbprint }
    }

    /// RFC 7638 thumbprint: base64url(SHA-256(`{"e":..,"kty":"RSA","n":..}`)), members in
    /// lexicographic order, no whitespace. The same key gets the same id in every secret
    /// version and on every instance.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// True when `sig` is a valid RS256 signature of `msg` under this key (2048 bits or more).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        verify(&self.n, &self.e, msg, sig)
    }

    /// The public JWK (RFC 7517) under `kid`, as a JWKS lists it.
    pub fn jwk(&self, kid: &str) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        })
    }
}

/// True when `sig` is a valid RS256 signature of `msg` under the key (`n`, `e`), whose modulus
/// must have 2048 to 8192 bits.
pub fn verify(n: &[u8], e: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    signature::RsaPublicKeyComponents { n, e }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
        .is_ok()
}

/// A big-endian number without its leading zero bytes.
fn unpadded(v: &[u8]) -> &[u8] {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.get(zeros..).unwrap_or_default()
}

fn thumbprint(n: &[u8], e: &[u8]) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(e),
        URL_SAFE_NO_PAD.encode(n)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The first PEM block: its label and DER bytes.
fn pem_decode(text: &str) -> Result<(String, Vec<u8>), String> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .find_map(|l| {
            l.strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
        })
        .ok_or_else(|| "is not a PEM (no BEGIN line) nor a JSON JWK".to_owned())?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            return STANDARD
                .decode(body.as_bytes())
                .map(|der| (label, der))
                .map_err(|_| "is a PEM whose body is not base64".to_owned());
        }
        if line.contains(':') {
            // RFC 1421 headers (Proc-Type, DEK-Info) mean legacy encryption.
            return Err("is an encrypted PEM: store the key unencrypted in the secret".into());
        }
        body.push_str(line);
    }
    Err("is a PEM without its END line".into())
}

/// Just enough DER (X.690) to read an RSA private key's public half: PKCS#8 `PrivateKeyInfo`
/// (RFC 5208) around PKCS#1 `RSAPrivateKey` (RFC 8017 A.1.2), whose first two integers after
/// the version are the modulus and the public exponent. ring validates the rest on `check`.
mod der {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    const OID: u8 = 0x06;
    /// 1.2.840.113549.1.1.1, rsaEncryption.
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        /// The contents of the next element, which must have `tag` (definite lengths only).
        fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
            let (&t, rest) = self.0.split_first()?;
            let (&first, rest) = rest.split_first()?;
            if t != tag {
                return None;
            }
            let (len, rest) = if first < 0x80 {
                (usize::from(first), rest)
            } else {
                let n = usize::from(first & 0x7f);
                if n == 0 || n > 4 || rest.len() < n {
                    return None;
                }
                let len = rest[..n]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                (len, &rest[n..])
            };
            if rest.len() < len {
                return None;
            }
            let (value, rest) = rest.split_at(len);
            self.0 = rest;
            Some(value)
        }
    }

    /// Modulus and public exponent of a PKCS#1 `RSAPrivateKey` (two-prime, version 0).
    pub(super) fn pkcs1_public(der: &[u8]) -> Option<super::RsaPublicKey> {
        let mut key = Reader(Reader(der).take(SEQUENCE)?);
        if key.take(INTEGER)? != [0] {
            return None;
        }
        let n = key.take(INTEGER)?;
        let e = key.take(INTEGER)?;
        Some(super::RsaPublicKey::new(n.to_vec(), e.to_vec()))
    }

    /// Modulus and public exponent of a PKCS#1 `RSAPublicKey` (as ring serialises one).
    pub(super) fn rsa_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
        let mut key = Reader(Reader(der).take(SEQUENCE)?);
        Some((key.take(INTEGER)?, key.take(INTEGER)?))
    }

    /// The same, inside a PKCS#8 `PrivateKeyInfo` whose algorithm is rsaEncryption.
    pub(super) fn pkcs8_public(der: &[u8]) -> Option<super::RsaPublicKey> {
        let mut info = Reader(Reader(der).take(SEQUENCE)?);
        if info.take(INTEGER)? != [0] {
            return None;
        }
        let mut algorithm = Reader(info.take(SEQUENCE)?);
        if algorithm.take(OID)? != RSA_ENCRYPTION {
            return None;
        }
        pkcs1_public(info.take(OCTET_STRING)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PKCS8: &str = include_str!("../../../tests/fixtures/rsa-a.pem");
    const PKCS1: &str = include_str!("../../../tests/fixtures/rsa-a.pkcs1.pem");
    const JWK_B: &str = include_str!("../../../tests/fixtures/rsa-b.jwk.json");
    const PEM_B: &str = include_str!("../../../tests/fixtures/rsa-b.pem");

    fn key(text: &str) -> RsaKey {
        RsaKey::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn pkcs8_pkcs1_and_jwk_forms_of_a_key_parse_to_the_same_key_and_kid() {
        assert_eq!(key(PKCS8).kid(), key(PKCS1).kid());
        assert_eq!(key(PEM_B).kid(), key(JWK_B).kid());
        assert_ne!(key(PKCS8).kid(), key(PEM_B).kid());
        let one_line = PKCS8.replace('\n', "\\n");
        assert_eq!(key(&one_line).kid(), key(PKCS8).kid());
    }

    #[test]
    fn the_public_half_read_from_der_or_jwk_is_the_one_ring_derives() {
        for text in [PKCS8, PKCS1, PEM_B, JWK_B] {
            let k = key(text);
            assert_eq!(k.check(), Ok(()), "{}", k.kid());
        }
        // Truncated DER is refused at parse.
        let (_, der) = pem_decode(PKCS8).unwrap_or_default();
        assert!(der::pkcs8_public(&der[..der.len() / 2]).is_none());
        assert!(der::pkcs1_public(&der).is_none(), "PKCS#8 is not PKCS#1");
    }

    #[test]
    fn signatures_verify_under_the_public_half_only() {
        let (a, b) = (key(PKCS8), key(PEM_B));
        let sig = a.sign(b"msg").unwrap_or_default();
        assert_eq!(sig.len(), 256);
        assert!(a.public().verify(b"msg", &sig));
        assert!(!a.public().verify(b"msg!", &sig));
        assert!(!b.public().verify(b"msg", &sig));
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638() {
        // RFC 7638 §3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let n = URL_SAFE_NO_PAD.decode(n).unwrap_or_default();
        let k = RsaPublicKey::new(n, vec![1, 0, 1]);
        assert_eq!(
            k.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason_that_shows_nothing_of_the_key() {
        let public = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----";
        for (text, expect) in [
            ("not a key", "not a PEM"),
            (public, "PUBLIC KEY, not an RSA private key"),
            ("-----BEGIN PRIVATE KEY-----\nMIIB", "without its END"),
            (
                "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----",
                "not base64",
            ),
            ("{\"kty\":\"EC\"}", "not a private RSA JWK"),
        ] {
            let e = RsaKey::parse(text).err().unwrap_or_default();
            assert!(e.contains(expect), "{text}: {e}");
        }
        let mut jwk: serde_json::Value = serde_json::from_str(JWK_B).unwrap_or_default();
        jwk["alg"] = "RS512".into();
        assert!(RsaKey::from_jwk(&jwk).is_err());
        jwk["alg"] = "RS256".into();
        jwk["p"] = "AQAB".into();
        // Its structure and public half are sound, so it parses; ring's check refuses it,
        // and it cannot sign.
        let broken = RsaKey::from_jwk(&jwk).unwrap_or_else(|e| panic!("{e}"));
        let e = broken.check().err().unwrap_or_default();
        assert!(e.contains("not a usable"), "{e}");
        assert!(broken.sign(b"msg").is_err());
        // DER that is not an RSA private key.
        let ec = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";
        let e = RsaKey::parse(ec).err().unwrap_or_default();
        assert!(e.contains("not a usable"), "{e}");
    }
}
