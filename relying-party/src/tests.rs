//! The parts of the relying party that need no authenticator (the ceremonies themselves are
//! tested against a software authenticator in `tests/tests/api/passkeys.rs`).
#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn user_handles_name_this_services_accounts_only() {
    let id = UserId::new();
    assert_eq!(user_of(&handle(&id)), Some(id));
    assert_eq!(user_of(&Uuid::from_bytes([7; 16])), None);
}

#[test]
fn the_aaguid_is_read_from_the_attestation_objects_auth_data() {
    // {"fmt": "none", "attStmt": {}, "authData": <37 bytes then the AAGUID>}
    let mut obj = vec![0xa3, 0x63];
    obj.extend(b"fmt");
    obj.extend([0x64]);
    obj.extend(b"none");
    obj.extend([0x67]);
    obj.extend(b"attStmt");
    obj.extend([0xa0, 0x68]);
    obj.extend(b"authData");
    let mut auth = vec![0u8; 37];
    auth.extend([9u8; 16]);
    auth.extend([1, 2, 3]);
    obj.extend([0x58, u8::try_from(auth.len()).unwrap()]);
    obj.extend(&auth);
    assert_eq!(aaguid_of(&obj), Some([9; 16]));
    assert_eq!(aaguid_of(&obj[..obj.len() - 10]), None, "truncated");
    assert_eq!(aaguid_of(b"nothing here"), None);
}
