//! The relying party against a software authenticator (webauthn-authenticator-rs's CTAP2
//! `SoftPasskey`, the client-side checks of `WebauthnAuthenticator` included): what it admits
//! and, for each way an answer can be wrong, that it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use webauthn_authenticator_rs::{WebauthnAuthenticator, softpasskey::SoftPasskey};
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

use super::*;

const ORIGIN: &str = "https://app.example.com";

fn rp(origins: &[&str]) -> WebauthnVerifier {
    WebauthnVerifier::new(&PasskeySettings {
        rp_id: "example.com".into(),
        rp_name: "Example".into(),
        origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        max_per_user: 10,
    })
    .unwrap()
}

fn user() -> PasskeyUser {
    PasskeyUser {
        id: UserId::new(),
        name: "ann@example.com".into(),
        display_name: "Ann".into(),
    }
}

/// `SoftPasskey` as a discoverable-credential (resident key) authenticator, which it is not:
/// it refuses `requireResidentKey`, so the requirement is dropped on the way in; it cannot
/// find a credential for an empty allow list, so its own are named; and it returns no user
/// handle, so the one it was registered with is put back (the user handle is outside the
/// signed data, as from a real authenticator). Everything the relying party checks is the
/// soft authenticator's own work.
struct Authenticator {
    soft: SoftPasskey,
    /// (credential id, user handle), base64url.
    held: Vec<(String, String)>,
}

impl Authenticator {
    fn new() -> Self {
        Self {
            soft: SoftPasskey::new(true),
            held: Vec::new(),
        }
    }
}

/// Registers a passkey of `auth` for `who` from `origin`.
fn register(
    rp: &WebauthnVerifier,
    auth: &mut Authenticator,
    who: &PasskeyUser,
    origin: &str,
) -> Result<NewPasskey, PasskeyError> {
    let c = rp.start_registration(who, &[]).unwrap();
    let mut options: Value = serde_json::from_str(&c.options).unwrap();
    let handle = options["publicKey"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = false.into();
    options["publicKey"]["authenticatorSelection"]["residentKey"] = "discouraged".into();
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let answer = auth
        .soft
        .do_registration(Url::parse(origin).unwrap(), options)
        .expect("the authenticator registers");
    let answer = serde_json::to_value(&answer).unwrap();
    auth.held
        .push((answer["id"].as_str().unwrap().to_owned(), handle));
    rp.finish_registration(&answer.to_string(), &c.state)
}

/// A sign-in assertion of `auth` from `origin` for the challenge `c`.
fn assert_with(auth: &mut Authenticator, c: &Challenge, origin: &str) -> String {
    let mut options: Value = serde_json::from_str(&c.options).unwrap();
    let allow = &mut options["publicKey"]["allowCredentials"];
    if allow.as_array().is_none_or(Vec::is_empty) {
        *allow = auth
            .held
            .iter()
            .map(|(id, _)| serde_json::json!({"type": "public-key", "id": id}))
            .collect();
    }
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let answer = auth
        .soft
        .do_authentication(Url::parse(origin).unwrap(), options)
        .expect("the authenticator signs");
    let mut answer = serde_json::to_value(&answer).unwrap();
    let id = answer["id"].as_str().unwrap().to_owned();
    if let Some((_, handle)) = auth.held.iter().find(|(held, _)| *held == id) {
        answer["response"]["userHandle"] = handle.clone().into();
    }
    answer.to_string()
}

#[test]
fn a_passkey_registers_as_discoverable_and_signs_in_with_no_username() {
    let rp = rp(&[ORIGIN]);
    let who = user();
    let start = rp.start_registration(&who, &[]).unwrap();
    let options: Value = serde_json::from_str(&start.options).unwrap();
    let sel = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(sel["residentKey"], "required");
    assert_eq!(sel["userVerification"], "required");
    assert_eq!(options["publicKey"]["attestation"], "none");
    let mut auth = Authenticator::new();
    let key = register(&rp, &mut auth, &who, ORIGIN).unwrap();
    assert_eq!(key.aaguid.len(), 36);
    assert!(
        !format!("{key:?}").contains(&key.stored),
        "Debug prints no key"
    );

    let c = rp.start_authentication(&[]).unwrap();
    let answer = assert_with(&mut auth, &c, ORIGIN);
    let (named, id) = rp.identify(&answer).unwrap();
    assert_eq!(named, Some(who.id), "the user handle names the account");
    assert_eq!(id, key.credential_id);
    let used = rp
        .finish_authentication(&answer, &c.state, &key.stored)
        .unwrap();
    assert!(used.user_verified);
    // As a second factor for a known account: its passkeys allowed by name.
    let c = rp
        .start_authentication(std::slice::from_ref(&key.stored))
        .unwrap();
    let answer = assert_with(&mut auth, &c, ORIGIN);
    rp.finish_authentication(&answer, &c.state, &key.stored)
        .unwrap();
}

#[test]
fn an_answer_for_another_challenge_another_origin_or_another_key_is_refused() {
    let rp = rp(&[ORIGIN]);
    let who = user();
    let mut auth = Authenticator::new();
    let key = register(&rp, &mut auth, &who, ORIGIN).unwrap();
    let mut other_auth = Authenticator::new();
    let other = register(&rp, &mut other_auth, &user(), ORIGIN).unwrap();

    let first = rp.start_authentication(&[]).unwrap();
    let second = rp.start_authentication(&[]).unwrap();
    let answer = assert_with(&mut auth, &first, ORIGIN);
    let cases = [
        (
            rp.finish_authentication(&answer, &second.state, &key.stored),
            "another challenge",
        ),
        (
            rp.finish_authentication(&answer, &first.state, &other.stored),
            "another key's record",
        ),
    ];
    for (r, what) in cases {
        assert!(matches!(r, Err(PasskeyError::Refused(_))), "{what}: {r:?}");
    }
    // A subdomain the authenticator accepts for this RP id, but not an allowed origin here.
    let c = rp.start_authentication(&[]).unwrap();
    let phished = assert_with(&mut auth, &c, "https://login.example.com");
    let r = rp.finish_authentication(&phished, &c.state, &key.stored);
    assert!(matches!(r, Err(PasskeyError::Refused(_))), "{r:?}");
    let r = register(
        &rp,
        &mut Authenticator::new(),
        &user(),
        "https://login.example.com",
    );
    assert!(matches!(r, Err(PasskeyError::Refused(_))), "{r:?}");
}

#[test]
fn user_verification_is_required_and_its_flag_cannot_be_forged() {
    let rp = rp(&[ORIGIN]);
    // A client that drops the requirement: the authenticator registers without verifying
    // the user, and the relying party refuses it.
    let c = rp.start_registration(&user(), &[]).unwrap();
    let mut options: Value = serde_json::from_str(&c.options).unwrap();
    options["publicKey"]["authenticatorSelection"]["userVerification"] = "discouraged".into();
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = false.into();
    options["publicKey"]["authenticatorSelection"]["residentKey"] = "discouraged".into();
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let answer = SoftPasskey::new(false)
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    let r = rp.finish_registration(&serde_json::to_string(&answer).unwrap(), &c.state);
    assert!(matches!(r, Err(PasskeyError::Refused(_))), "{r:?}");
    // An assertion whose flags are changed after signing (here: the UV bit cleared).
    let who = user();
    let mut auth = Authenticator::new();
    let key = register(&rp, &mut auth, &who, ORIGIN).unwrap();
    let c = rp.start_authentication(&[]).unwrap();
    let mut answer: Value = serde_json::from_str(&assert_with(&mut auth, &c, ORIGIN)).unwrap();
    let data = answer["response"]["authenticatorData"].as_str().unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(data).unwrap();
    bytes[32] &= !0x04;
    answer["response"]["authenticatorData"] = URL_SAFE_NO_PAD.encode(bytes).into();
    let r = rp.finish_authentication(&answer.to_string(), &c.state, &key.stored);
    assert!(matches!(r, Err(PasskeyError::Refused(_))), "{r:?}");
}

#[test]
fn garbage_is_refused_not_a_panic_and_user_handles_of_others_name_no_account() {
    let rp = rp(&[ORIGIN]);
    let c = rp.start_authentication(&[]).unwrap();
    for junk in ["", "{}", "null", "[1,2]", "{\"id\": 5}"] {
        assert!(rp.identify(junk).is_err(), "{junk}");
        assert!(
            rp.finish_authentication(junk, &c.state, "{}").is_err(),
            "{junk}"
        );
        assert!(rp.finish_registration(junk, b"{}").is_err(), "{junk}");
    }
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
