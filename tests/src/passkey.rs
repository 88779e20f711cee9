//! A software authenticator for the passkey tests: webauthn-authenticator-rs's CTAP2
//! `SoftPasskey` (keys, signatures, counter and the client-side checks of a browser), made to
//! act as a discoverable-credential (resident key) authenticator, which it is not: it refuses
//! `requireResidentKey`, so the requirement is dropped on the way in; it cannot find a
//! credential for an empty allow list, so its own are named; and it returns no user handle,
//! so the one it registered is put back (outside the signed data, as a real authenticator
//! returns it). Everything a relying party checks is the soft authenticator's own work.

use domain::passkey::{PasskeySettings, Passkeys};
use relying_party::WebauthnVerifier;
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::{WebauthnAuthenticator, softpasskey::SoftPasskey};
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

/// The web origin the tests' relying party allows (RP id `example.com`).
pub const ORIGIN: &str = "https://app.example.com";

/// The relying party's settings: RP id `example.com`, `origins`, at most `max` per account.
pub fn rp_settings(origins: &[&str], max: usize) -> PasskeySettings {
    PasskeySettings {
        rp_id: "example.com".into(),
        rp_name: "Example".into(),
        origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        max_per_user: max,
    }
}

/// Passkeys for [`ORIGIN`], at most `max` per account.
pub fn relying_party(max: usize) -> Passkeys {
    let s = rp_settings(&[ORIGIN], max);
    Passkeys {
        verifier: Box::new(WebauthnVerifier::new(&s).unwrap()),
        settings: s,
    }
}

pub struct Authenticator {
    soft: SoftPasskey,
    /// (credential id, user handle), base64url.
    held: Vec<(String, String)>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator {
    /// One that verifies its user (PIN or biometrics, as a passkey does).
    pub fn new() -> Self {
        Self {
            soft: SoftPasskey::new(true),
            held: Vec::new(),
        }
    }

    /// The registration answer (JSON) to `options` (`{"publicKey": ...}`) from `origin`.
    pub fn create(&mut self, options: &str, origin: &str) -> String {
        let mut options: Value = serde_json::from_str(options).unwrap();
        let handle = options["publicKey"]["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["requireResidentKey"] = false.into();
        selection["residentKey"] = "discouraged".into();
        let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self
            .soft
            .do_registration(Url::parse(origin).unwrap(), options)
            .expect("the authenticator registers");
        let answer = serde_json::to_value(&answer).unwrap();
        self.held
            .push((answer["id"].as_str().unwrap().to_owned(), handle));
        answer.to_string()
    }

    /// The sign-in assertion (JSON) to `options` from `origin`.
    pub fn get(&mut self, options: &str, origin: &str) -> String {
        let mut options: Value = serde_json::from_str(options).unwrap();
        let allow = &mut options["publicKey"]["allowCredentials"];
        if allow.as_array().is_none_or(Vec::is_empty) {
            *allow = self
                .held
                .iter()
                .map(|(id, _)| json!({"type": "public-key", "id": id}))
                .collect();
        }
        let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self
            .soft
            .do_authentication(Url::parse(origin).unwrap(), options)
            .expect("the authenticator signs");
        let mut answer = serde_json::to_value(&answer).unwrap();
        let id = answer["id"].as_str().unwrap().to_owned();
        if let Some((_, handle)) = self.held.iter().find(|(held, _)| *held == id) {
            answer["response"]["userHandle"] = handle.clone().into();
        }
        answer.to_string()
    }
}

/// `options` as a client that drops the user-verification requirement sends them on.
pub fn without_user_verification(options: &str) -> String {
    let mut options: Value = serde_json::from_str(options).unwrap();
    options["publicKey"]["authenticatorSelection"]["userVerification"] = "discouraged".into();
    options.to_string()
}

/// A registration answer from an authenticator that does not verify its user.
pub fn create_unverified(options: &str, origin: &str) -> String {
    let mut options: Value = serde_json::from_str(&without_user_verification(options)).unwrap();
    let selection = &mut options["publicKey"]["authenticatorSelection"];
    selection["requireResidentKey"] = false.into();
    selection["residentKey"] = "discouraged".into();
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let answer = SoftPasskey::new(false)
        .do_registration(Url::parse(origin).unwrap(), options)
        .unwrap();
    serde_json::to_string(&answer).unwrap()
}

/// `assertion` with the user-verified flag cleared after signing.
pub fn with_uv_flag_cleared(assertion: &str) -> String {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut answer: Value = serde_json::from_str(assertion).unwrap();
    let data = answer["response"]["authenticatorData"].as_str().unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(data).unwrap();
    bytes[32] &= !0x04;
    answer["response"]["authenticatorData"] = URL_SAFE_NO_PAD.encode(bytes).into();
    answer.to_string()
}
