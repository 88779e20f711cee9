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
