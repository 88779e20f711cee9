//! jsonwebtoken's crypto provider, cut down to the one algorithm this API signs with.
//!
//! jsonwebtoken picks its signer at run time from the token's `alg`, so its stock providers
//! link RSA, ECDSA and EdDSA code into every binary. This provider knows HS256 only: smaller
//! Lambda zips, and a second wall behind the pinned `Validation` against algorithm confusion.

use hmac::{Hmac, Mac};
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, EncodingKey,
    crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils},
    errors::{ErrorKind, Result},
    signature::{self, Signer, Verifier},
};
use sha2::Sha256;

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

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(hs256(alg, key.family(), key.as_bytes())?))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(hs256(alg, key.family(), key.try_get_as_bytes()?)?))
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes this provider jsonwebtoken's process default. Idempotent; called whenever token keys
/// are prepared, before any token is signed or checked.
pub fn install() {
    // Err means a provider is already installed: this one, or (in test builds, where other
    // crates enable jsonwebtoken's RustCrypto feature) the stock one, which also does HS256.
    let _ = PROVIDER.install_default();
}
