//! Password hashing and the two tokens a login hands out.

pub mod common;
pub mod hs256;
pub mod legacy;
pub mod password;
pub mod token;
