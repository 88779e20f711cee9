//! Ceremonies: short-lived, single-use server-side state of a multi-step flow. The client is
//! handed a random id; the state stays here and is taken back with one atomic find-and-delete
//! that returns nothing after expiry, so a replayed id, a second tab or a second instance gets
//! nothing (rauthy reads and deletes in two steps, a replay window; kanidm keeps it in process
//! memory, which a Lambda instance cannot). Passkey registration and login challenges, pending
//! TOTP secrets, OIDC `state`/`nonce`/PKCE values and email links are ceremonies of their own
//! kind; the domain sees their state as opaque bytes its flow encodes.

use std::fmt;

use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::StoreError;
use crate::types::UserId;

/// What a ceremony is for. A ceremony taken as another kind is not found (and stays), so an
/// id minted for one flow can never complete another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CeremonyKind {
    /// A passkey being registered: the WebAuthn registration challenge.
    PasskeyRegistration,
    /// A passkey login: the WebAuthn authentication challenge.
    PasskeyLogin,
    /// A TOTP secret shown to the user, not yet confirmed with a code.
    TotpEnrolment,
    /// A password accepted, a second factor awaited.
    SecondFactor,
    /// A sign-in at an OIDC provider: `state`, `nonce` and the PKCE verifier.
    FederatedLogin,
    /// A provider's identity, proven in the browser flow's callback, waiting for the app to
    /// exchange the one-time code it was sent for our tokens.
    FederatedHandoff,
    /// An emailed link's one-time token.
    EmailLink,
}

impl CeremonyKind {
    /// Every kind.
    pub const ALL: [Self; 7] = [
        Self::PasskeyRegistration,
        Self::PasskeyLogin,
        Self::TotpEnrolment,
        Self::SecondFactor,
        Self::FederatedLogin,
        Self::FederatedHandoff,
        Self::EmailLink,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PasskeyRegistration => "passkey_registration",
            Self::PasskeyLogin => "passkey_login",
            Self::TotpEnrolment => "totp_enrolment",
            Self::SecondFactor => "second_factor",
            Self::FederatedLogin => "federated_login",
            Self::FederatedHandoff => "federated_handoff",
            Self::EmailLink => "email_link",
        }
    }

    /// The kind stored as `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A ceremony's id: 128 random bits, base64url without padding (22 characters). Unguessable,
/// so holding it is what lets a client continue the flow.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CeremonyId(String);

/// Random bytes in a ceremony id.
const ID_BYTES: usize = 16;

impl CeremonyId {
    /// A fresh random id.
    pub fn new() -> Result<Self, StoreError> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Other(format!("ceremony id: {e}")))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// An id as a client sends it back: exactly the shape [`CeremonyId::new`] makes, else
    /// `None` (nothing else is ever looked up).
    pub fn parse(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        (bytes.len() == ID_BYTES && URL_SAFE_NO_PAD.encode(&bytes) == raw)
            .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Never printed whole: an id in a log line would let its reader finish the flow.
impl fmt::Debug for CeremonyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CeremonyId({}…)", &self.0[..4.min(self.0.len())])
    }
}

/// One ceremony as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    pub id: CeremonyId,
    pub kind: CeremonyKind,
    /// The account the flow acts for, when it is known at the start.
    pub user_id: Option<UserId>,
    /// The flow's own state, encoded by the flow.
    pub state: Vec<u8>,
    /// Unix seconds; the ceremony cannot be taken from this second on.
    pub expires_at: i64,
}

/// Short-lived single-use state, shared by every instance.
#[async_trait]
pub trait CeremonyStore: Send + Sync {
    /// Keeps `ceremony` until it is taken or expires; [`StoreError::Duplicate`] if its id is
    /// in use (never, for random ids). `now` lets a store drop what has expired by then.
    async fn put_ceremony(&self, ceremony: &Ceremony, now: i64) -> Result<(), StoreError>;
    /// Takes the ceremony `id` of `kind` if it has not expired at `now`, atomically: of any
    /// number of concurrent takes on any number of instances, at most one gets it. Nothing
    /// after expiry; a ceremony of another kind is not found and stays.
    async fn take_ceremony(
        &self,
        id: &CeremonyId,
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<Ceremony>, StoreError>;
    /// Reads the ceremony `id` of `kind` if it has not expired at `now`, leaving it in place:
    /// for a flow that checks a proof before it takes the ceremony (a wrong second-factor code
    /// must not end the sign-in; only the take decides who completes it).
    async fn find_ceremony(
        &self,
        id: &CeremonyId,
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<Ceremony>, StoreError>;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_only_their_own_shape_parses() {
        let (a, b) = (CeremonyId::new().unwrap(), CeremonyId::new().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(CeremonyId::parse(a.as_str()), Some(a.clone()));
        for bad in [
            "",
            "short",
            &format!("{}=", a.as_str()),
            &format!("{}A", a.as_str()),
            "!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert_eq!(CeremonyId::parse(bad), None, "{bad:?}");
        }
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in CeremonyKind::ALL {
            assert_eq!(CeremonyKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(CeremonyKind::from_name("code"), None);
    }
}
