//! Password hashing and the two tokens a login hands out.

pub mod common;
pub mod device;
pub mod jwks;
pub mod legacy;
pub mod password;
pub mod provider;
pub mod rsa;
pub mod seal;
pub mod token;

/// True when `a` and `b` are the same bytes, compared in constant time (the time depends on
/// the lengths only): for secrets and values derived from them (hashes, nonces, bindings).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
