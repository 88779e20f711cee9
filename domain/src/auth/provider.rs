//! jsonwebtoken's crypto provider, cut down to the two algorithms this API uses: HS256
//! (HMAC-SHA256) and RS256 (verification through ring).
//!
//! jsonwebtoken picks its signer at run time from the token's `alg`, so its stock providers
//! link ECDSA, EdDSA, PSS and a second RSA implementation into every binary. This provider
//! knows HS256 and RS256 only: smaller Lambda zips, and a second wall behind the pinned
//! `Validation` against algorithm confusion (an HMAC verifier is never built from an RSA key,
//! nor an RSA verifier from an HMAC secret). RS256 signing does not come through here: it
//! uses the key pair parsed once per key (`auth::rsa`), not one parsed per token.

use hmac::{Hmac, Mac};
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey,
    crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils},
    errors::{ErrorKind, Result},
    signature::{self, Signer, Verifier},
};
use sha2::Sha256;

use super::rsa;

struct Hs256(Hmac<Sha256>);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        mac.verify_slice(sig).map_err(signature::Error::from_source)
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn hs256(alg: &Algorithm, family: AlgorithmFamily, key: &[u8]) -> Result<Hs256> {
    if *alg != Algorithm::HS256 || family != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Hmac::new_from_slice(key)
        .map(Hs256)
        .map_err(|_| ErrorKind::InvalidKeyFormat.into())
}

/// Modulus and exponent of an RSA public key.
struct Rs256(Vec<u8>, Vec<u8>);

impl Verifier<Vec<u8>> for Rs256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        if rsa::verify(&self.0, &self.1, msg, sig) {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for Rs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(hs256(alg, key.family(), key.as_bytes())?))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    match (alg, key.family(), key.kind()) {
        (Algorithm::RS256, AlgorithmFamily::Rsa, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            Ok(Box::new(Rs256(n.clone(), e.clone())))
        }
        (Algorithm::RS256, _, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Ok(Box::new(hs256(alg, key.family(), key.try_get_as_bytes()?)?)),
    }
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes this provider jsonwebtoken's process default. Idempotent; called whenever token keys
/// are prepared, before any token is signed or checked.
pub fn install() {
    // Err means a provider is already installed: this one, or (in a build where another crate
    // enables a jsonwebtoken crypto feature) a stock one, which also does HS256 and RS256.
    let _ = PROVIDER.install_default();
}
