//! The WebAuthn relying party on webauthn-rs, behind the domain's [`PasskeyVerifier`]: the
//! domain hands in and gets back JSON and opaque state, never a webauthn-rs type.
//!
//! Settings that fit a consumer service (docs/flows.md, "Passkeys"): a discoverable
//! credential (resident key required, so a sign-in needs no username), user verification
//! required (a passkey with it is multi-factor on its own), attestation `none`, the account's
//! other passkeys excluded at registration, the AAGUID and the backup flags kept. The user
//! handle is the account id (12 bytes, zero-padded to the 16 a UUID needs), so a discoverable
//! assertion names its account with no lookup table.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::{
    config::{ConfigError, Vars},
    passkey::{
        Challenge, NewPasskey, PasskeyError, PasskeySettings, PasskeyUse, PasskeyUser,
        PasskeyVerifier, Passkeys,
    },
    types::UserId,
};
use serde_json::Value;
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

/// State tags: which kind of authentication a state is.
const DISCOVERABLE: u8 = b'D';
const KNOWN: u8 = b'K';

/// The relying party.
pub struct WebauthnVerifier {
    webauthn: Webauthn,
}

fn refused(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Refused(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Internal(e.to_string())
}

/// The user handle of `user`: its 12 bytes, then four zeros.
fn handle(user: &UserId) -> Uuid {
    let mut b = [0u8; 16];
    b[..12].copy_from_slice(&user.bytes());
    Uuid::from_bytes(b)
}

/// The account a user handle names (`None` unless it is one this service made).
fn user_of(handle: &Uuid) -> Option<UserId> {
    let b = handle.as_bytes();
    if b[12..] != [0, 0, 0, 0] {
        return None;
    }
    let mut id = [0u8; 12];
    id.copy_from_slice(&b[..12]);
    Some(UserId::from_bytes(id))
}

/// The AAGUID in a registration's attestation object (CBOR `{"fmt", "attStmt", "authData"}`):
/// `authData` is the RP id hash (32), flags (1), counter (4), then the AAGUID (16). Read by
/// hand: webauthn-rs parses it only for attestation formats this service does not ask for.
fn aaguid_of(attestation_object: &[u8]) -> Option<[u8; 16]> {
    let key = b"\x68authData";
    let at = attestation_object
        .windows(key.len())
        .position(|w| w == key)?
        + key.len();
    let rest = attestation_object.get(at..)?;
    let (len, data) = match *rest.first()? {
        h @ 0x40..=0x57 => (usize::from(h - 0x40), rest.get(1..)?),
        0x58 => (usize::from(*rest.get(1)?), rest.get(2..)?),
        0x59 => (
            usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
            rest.get(3..)?,
        ),
        _ => return None,
    };
    let auth = data.get(..len)?;
    auth.get(37..53)?.try_into().ok()
}

impl WebauthnVerifier {
    /// The relying party of `settings`.
    pub fn new(settings: &PasskeySettings) -> Result<Self, PasskeyError> {
        let urls = settings
            .origins
            .iter()
            .map(|o| Url::parse(o).map_err(internal))
            .collect::<Result<Vec<_>, _>>()?;
        let first = urls.first().ok_or_else(|| internal("no origin"))?;
        let mut builder = WebauthnBuilder::new(&settings.rp_id, first)
            .map_err(internal)?
            .rp_name(&settings.rp_name);
        for url in urls.iter().skip(1) {
            builder = builder.append_allowed_origin(url);
        }
        Ok(Self {
            webauthn: builder.build().map_err(internal)?,
        })
    }

    /// The verifier `settings` ask for, or `None` where passkeys are off.
    pub fn from_settings(settings: Option<&PasskeySettings>) -> Result<Option<Self>, PasskeyError> {
        settings.map(Self::new).transpose()
    }
}

/// Passkeys as the variables set them (`PASSKEY_RP_ID`, `PASSKEY_ORIGINS`, ...), or `None`
/// where `PASSKEY_RP_ID` is unset: the `passkeys` function's and the dev server's relying
/// party (`edge::state::Wiring::with_passkeys`).
pub fn from_vars(vars: &Vars) -> Result<Option<Passkeys>, ConfigError> {
    let Some(settings) = PasskeySettings::from_vars(vars)? else {
        return Ok(None);
    };
    let verifier = WebauthnVerifier::new(&settings).map_err(|e| ConfigError::Invalid {
        name: "PASSKEY_RP_ID".to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Some(Passkeys {
        settings,
        verifier: Box::new(verifier),
    }))
}

fn stored_passkey(stored: &str) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(stored).map_err(internal)
}

impl PasskeyVerifier for WebauthnVerifier {
    fn start_registration(
        &self,
        user: &PasskeyUser,
        exclude: &[String],
    ) -> Result<Challenge, PasskeyError> {
        let exclude: Vec<CredentialID> = exclude
            .iter()
            .filter_map(|id| URL_SAFE_NO_PAD.decode(id).ok())
            .collect();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(
                handle(&user.id),
                &user.name,
                &user.display_name,
                Some(exclude),
            )
            .map_err(internal)?;
        // Discoverable: a sign-in names no user, the authenticator does.
        let mut options = serde_json::to_value(&options).map_err(internal)?;
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["residentKey"] = Value::from("required");
        selection["requireResidentKey"] = Value::from(true);
        Ok(Challenge {
            options: options.to_string(),
            state: serde_json::to_vec(&state).map_err(internal)?,
        })
    }

    fn finish_registration(&self, answer: &str, state: &[u8]) -> Result<NewPasskey, PasskeyError> {
        let answer: RegisterPublicKeyCredential = serde_json::from_str(answer).map_err(refused)?;
        let state: PasskeyRegistration = serde_json::from_slice(state).map_err(internal)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&answer, &state)
            .map_err(refused)?;
        let aaguid = aaguid_of(answer.response.attestation_object.as_ref()).unwrap_or([0; 16]);
        let stored = serde_json::to_value(&passkey).map_err(internal)?;
        // The flags as webauthn-rs records them (`{"cred": {..., "backup_eligible", ...}}`).
        let flag = |name: &str| stored["cred"][name].as_bool().unwrap_or(false);
        Ok(NewPasskey {
            credential_id: URL_SAFE_NO_PAD.encode::<&[u8]>(passkey.cred_id().as_ref()),
            aaguid: Uuid::from_bytes(aaguid).hyphenated().to_string(),
            backup_eligible: flag("backup_eligible"),
            backed_up: flag("backup_state"),
            stored: stored.to_string(),
        })
    }

    fn start_authentication(&self, allow: &[String]) -> Result<Challenge, PasskeyError> {
        if allow.is_empty() {
            let (mut options, state) = self
                .webauthn
                .start_discoverable_authentication()
                .map_err(internal)?;
            // A sign-in button, not only the autofill prompt (conditional mediation is the
            // page's choice).
            options.mediation = None;
            let mut s = vec![DISCOVERABLE];
            s.extend(serde_json::to_vec(&state).map_err(internal)?);
            return Ok(Challenge {
                options: serde_json::to_string(&options).map_err(internal)?,
                state: s,
            });
        }
        let keys = allow
            .iter()
            .map(|s| stored_passkey(s))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(internal)?;
        let mut s = vec![KNOWN];
        s.extend(serde_json::to_vec(&state).map_err(internal)?);
        Ok(Challenge {
            options: serde_json::to_string(&options).map_err(internal)?,
            state: s,
        })
    }

    fn identify(&self, answer: &str) -> Result<(Option<UserId>, String), PasskeyError> {
        let answer: PublicKeyCredential = serde_json::from_str(answer).map_err(refused)?;
        let id = URL_SAFE_NO_PAD.encode(answer.get_credential_id());
        let user = answer
            .get_user_unique_id()
            .and_then(|b| Uuid::from_slice(b).ok())
            .and_then(|u| user_of(&u));
        Ok((user, id))
    }

    fn finish_authentication(
        &self,
        answer: &str,
        state: &[u8],
        stored: &str,
    ) -> Result<PasskeyUse, PasskeyError> {
        let answer: PublicKeyCredential = serde_json::from_str(answer).map_err(refused)?;
        let mut passkey = stored_passkey(stored)?;
        let (tag, state) = state.split_first().ok_or_else(|| internal("empty state"))?;
        let result = match *tag {
            DISCOVERABLE => {
                let state: DiscoverableAuthentication =
                    serde_json::from_slice(state).map_err(internal)?;
                self.webauthn
                    .finish_discoverable_authentication_v2(&answer, state, &passkey)
                    .map_err(refused)?
            }
            KNOWN => {
                let state: PasskeyAuthentication =
                    serde_json::from_slice(state).map_err(internal)?;
                self.webauthn
                    .finish_passkey_authentication(&answer, &state)
                    .map_err(refused)?
            }
            _ => return Err(internal("unknown state")),
        };
        if result.cred_id() != passkey.cred_id() {
            return Err(refused("the assertion is of another credential"));
        }
        let changed = passkey.update_credential(&result).unwrap_or(false);
        Ok(PasskeyUse {
            updated: if changed {
                Some(serde_json::to_string(&passkey).map_err(internal)?)
            } else {
                None
            },
            user_verified: result.user_verified(),
            backed_up: result.backup_state(),
        })
    }
}

#[cfg(test)]
mod tests;
