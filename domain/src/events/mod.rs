//! Lifecycle events (`user.created`, `user.verified`, ...) that are never lost: each is
//! written by the store in the same database write as the change it reports (an outbox),
//! then delivered at least once (by the request that made it, and by a scheduled drain) and
//! marked sent only after the bus accepted it. Consumers deduplicate by the event's `id`.
//!
//! Where an event lives until it is sent:
//! - a change to a user document carries its events in the document itself (`outbox`), in
//!   the one atomic update that makes the change: both land or neither does;
//! - a deletion (of a user, of sessions) cannot carry anything in what it deletes, so its
//!   event is *staged* first, with the condition that says the deletion happened (the user
//!   is gone; none of the sessions read for revocation remains). Delivery checks the
//!   condition; a staged event whose deletion never happened (a crash between the two
//!   writes) is dropped once it is older than [`STAGE_GRACE_SECS`], never delivered.
//!
//! The events of one change are derived here, from the patch and the account before and
//! after it, by the one definition both stores use; the store records what it wrote in the
//! request's [`journal`], which the edge hands to the [`Relay`] once the request is done.

mod relay;

use std::{sync::Arc, time::Duration};

pub use relay::{Delivered, Relay, journal};

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::{
    credential::CredentialKind,
    identity::IdentifierKind,
    store::{StoreError, UserPatch, UserRecord},
    types::UserId,
};

/// How long a staged event may wait for its deletion before it is dropped as never made.
pub const STAGE_GRACE_SECS: i64 = 300;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    UserCreated,
    UserVerified,
    UserUpdated,
    PasswordChanged,
    IdentifierChanged,
    FactorAdded,
    FactorRemoved,
    SessionRevoked,
    UserDisabled,
    UserEnabled,
    UserDeleted,
}

impl EventKind {
    pub const ALL: [Self; 11] = [
        Self::UserCreated,
        Self::UserVerified,
        Self::UserUpdated,
        Self::PasswordChanged,
        Self::IdentifierChanged,
        Self::FactorAdded,
        Self::FactorRemoved,
        Self::SessionRevoked,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
    ];

    /// The event's `type` (EventBridge `detail-type`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserVerified => "user.verified",
            Self::UserUpdated => "user.updated",
            Self::PasswordChanged => "password.changed",
            Self::IdentifierChanged => "identifier.changed",
            Self::FactorAdded => "factor.added",
            Self::FactorRemoved => "factor.removed",
            Self::SessionRevoked => "session.revoked",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserDeleted => "user.deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The deletion a staged event waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// Nothing: the change happened already (an undelivered event of a user document,
    /// copied out before the document is deleted).
    Done,
    /// The user is gone.
    UserAbsent,
    /// None of these sessions remains.
    SessionsAbsent(Vec<String>),
}

/// One event. Never carries a secret, a code or a token; identifiers are named by kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_` + 32 hex digits: what consumers deduplicate on.
    pub id: String,
    pub kind: EventKind,
    pub user_id: UserId,
    /// Unix seconds.
    pub at: i64,
    pub data: Map<String, Value>,
}

impl Event {
    /// A new event with a fresh id.
    pub fn new(kind: EventKind, user_id: UserId, at: i64, data: Value) -> Self {
        let mut b = [0u8; 16];
        // An id that could not be drawn is still unique enough with the time and user in
        // it; getrandom does not fail on Linux.
        let _ = getrandom::fill(&mut b);
        let id = format!(
            "evt_{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        );
        Self {
            id,
            kind,
            user_id,
            at,
            data: match data {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }
    }

    /// The event's body as delivered (EventBridge `detail`).
    pub fn detail(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "user_id": self.user_id.to_hex(),
            "time": self.at,
            "data": self.data,
        })
    }

    /// `user.created`, with the identifier kinds it has and which are proven.
    pub fn created(user: &UserRecord) -> Self {
        let kinds: Vec<&str> = user
            .identifiers
            .iter()
            .map(|r| r.identifier.kind().as_str())
            .collect();
        let verified: Vec<&str> = user
            .identifiers
            .iter()
            .filter(|r| r.verified())
            .map(|r| r.identifier.kind().as_str())
            .collect();
        Self::new(
            EventKind::UserCreated,
            user.id,
            user.created_at,
            json!({"identifiers": kinds, "verified": verified}),
        )
    }
}

/// The events a patch makes: from the patch alone where the store applies it without a read
/// (`before`/`after` `None`), else from the account before and after it too.
pub fn for_update(
    id: UserId,
    patch: &UserPatch,
    before: Option<&UserRecord>,
    after: Option<&UserRecord>,
    now: i64,
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut push = |kind, data| out.push(Event::new(kind, id, now, data));
    let mut fields = Vec::new();
    for (name, set) in [
        ("first_name", patch.first_name.is_some()),
        ("middle_name", patch.middle_name.is_some()),
        ("last_name", patch.last_name.is_some()),
        ("app_metadata", patch.app_metadata.is_some()),
        ("user_metadata", patch.user_metadata.is_some()),
    ] {
        if set {
            fields.push(name);
        }
    }
    if !fields.is_empty() {
        push(EventKind::UserUpdated, json!({ "fields": fields }));
    }
    // Where the account before is known, only a flag that changed is an event (an operator
    // disabling a disabled account again reports nothing).
    let toggled = match (before, after) {
        (Some(b), Some(a)) => b.disabled != a.disabled,
        _ => true,
    };
    match patch.disabled {
        Some(true) if toggled => push(EventKind::UserDisabled, json!({})),
        Some(false) if toggled => push(EventKind::UserEnabled, json!({})),
        _ => {}
    }
    if patch.password_hash.is_some() {
        push(EventKind::PasswordChanged, json!({}));
    }
    let (Some(before), Some(after)) = (before, after) else {
        return out;
    };
    for kind in [IdentifierKind::Phone, IdentifierKind::Email] {
        let (b, a) = (before.primary(kind), after.primary(kind));
        match (b, a) {
            (Some(b), Some(a)) if b.identifier == a.identifier => {
                if !b.verified() && a.verified() {
                    push(
                        EventKind::UserVerified,
                        json!({ "identifier": kind.as_str() }),
                    );
                }
            }
            (_, Some(a)) => push(
                EventKind::IdentifierChanged,
                json!({ "identifier": kind.as_str(), "verified": a.verified() }),
            ),
            (Some(_), None) => push(
                EventKind::IdentifierChanged,
                json!({ "identifier": kind.as_str(), "removed": true }),
            ),
            (None, None) => {}
        }
    }
    // Providers' identities linked and unlinked: named by issuer (the subject is personal).
    let federated = |u: &UserRecord| -> Vec<(String, crate::identity::Identifier)> {
        u.identifiers
            .iter()
            .filter_map(|r| match &r.identifier {
                crate::identity::Identifier::Federated { provider, .. } => {
                    Some((provider.clone(), r.identifier.clone()))
                }
                _ => None,
            })
            .collect()
    };
    let (was, now_fed) = (federated(before), federated(after));
    for (issuer, i) in &now_fed {
        if !was.iter().any(|(_, w)| w == i) {
            push(
                EventKind::IdentifierChanged,
                json!({ "identifier": "federated", "provider": issuer, "change": "linked" }),
            );
        }
    }
    for (issuer, i) in &was {
        if !now_fed.iter().any(|(_, n)| n == i) {
            push(
                EventKind::IdentifierChanged,
                json!({ "identifier": "federated", "provider": issuer, "change": "unlinked" }),
            );
        }
    }
    let factor = |kind: CredentialKind| kind != CredentialKind::Password;
    for c in &after.credentials {
        let was = before
            .credentials
            .iter()
            .find(|b| b.record.id == c.record.id);
        if factor(c.record.kind) && was.is_none_or(|b| b.record.created_at != c.record.created_at) {
            push(
                EventKind::FactorAdded,
                json!({ "kind": c.record.kind.as_str(), "credential_id": c.record.id }),
            );
        }
    }
    for b in &before.credentials {
        if factor(b.record.kind) && !after.credentials.iter().any(|c| c.record.id == b.record.id) {
            push(
                EventKind::FactorRemoved,
                json!({ "kind": b.record.kind.as_str(), "credential_id": b.record.id }),
            );
        }
    }
    out
}

/// Events waiting to be delivered, where they wait.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// In the user document's outbox.
    Embedded(Event),
    /// Staged ahead of a deletion.
    Staged(Event, Until),
}

impl Pending {
    pub fn event(&self) -> &Event {
        match self {
            Self::Embedded(e) | Self::Staged(e, _) => e,
        }
    }
}

/// The outbox side of a store.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Up to `limit` events made at or before `made_before`, oldest users first.
    async fn pending_events(
        &self,
        made_before: i64,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError>;
    /// Whether a staged event's deletion happened.
    async fn deletion_done(&self, event: &Event, until: &Until) -> Result<bool, StoreError>;
    /// Forgets delivered (or dropped) events.
    async fn mark_sent(&self, sent: &[Pending]) -> Result<(), StoreError>;
}

/// Why a delivery failed; the reason is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event bus unavailable: {0}")]
pub struct PublishError(pub String);

/// The bus events go to (EventBridge in the adapters).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes `events` (at most 10); the ids the bus accepted. Events not accepted stay
    /// pending.
    async fn publish(&self, events: &[Event]) -> Result<Vec<String>, PublishError>;
}

/// Builds the publisher of a process from its settings (or none).
pub type MakePublisher = fn(&EventSettings) -> Option<Arc<dyn EventPublisher>>;

/// No publisher: functions that write no events.
pub fn no_publisher(_: &EventSettings) -> Option<Arc<dyn EventPublisher>> {
    None
}

/// `EVENTS_BUS` and friends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventSettings {
    /// `EVENTS_BUS`: the EventBridge bus name or ARN; unset: no events are written at all.
    pub bus: Option<String>,
    /// `EVENTS_SOURCE` (default `user-api`): the events' `source`.
    pub source: String,
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_ENDPOINT_URL_EVENTBRIDGE`, then `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// `EVENTS_TIMEOUT_MS` (default 1000): one delivery attempt's limit inside a request.
    pub timeout: Duration,
    /// `EVENTS_DRAIN_MIN_AGE_SECONDS` (default 30): the drain leaves younger events to the
    /// request delivering them (delivering them too would only duplicate them).
    pub drain_min_age_secs: i64,
}

impl EventSettings {
    pub fn from_vars(vars: &crate::config::Vars) -> Result<Self, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let get = |n: &str| vars.get(n).map(str::trim).filter(|v| !v.is_empty());
        let bus = get("EVENTS_BUS").map(str::to_owned);
        let source = get("EVENTS_SOURCE").unwrap_or("user-api").to_owned();
        if source.len() > 256 || source.starts_with("aws.") {
            return Err(ConfigError::Invalid {
                name: "EVENTS_SOURCE".into(),
                reason: "at most 256 characters, not starting with aws.".into(),
            });
        }
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .unwrap_or("us-east-1")
            .to_owned();
        if bus.is_some()
            && get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .is_none()
        {
            return Err(ConfigError::Missing("AWS_REGION".into()));
        }
        let timeout = match get("EVENTS_TIMEOUT_MS") {
            None => Duration::from_millis(1000),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .map(Duration::from_millis)
                .ok_or_else(|| ConfigError::BadNumber {
                    name: "EVENTS_TIMEOUT_MS".into(),
                })?,
        };
        let drain_min_age_secs = match get("EVENTS_DRAIN_MIN_AGE_SECONDS") {
            None => 30,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=3600).contains(n))
                .ok_or_else(|| ConfigError::BadNumber {
                    name: "EVENTS_DRAIN_MIN_AGE_SECONDS".into(),
                })?,
        };
        Ok(Self {
            bus,
            source,
            region,
            drain_min_age_secs,
            endpoint: get("AWS_ENDPOINT_URL_EVENTBRIDGE")
                .or_else(|| get("AWS_ENDPOINT_URL"))
                .map(str::to_owned),
            timeout,
        })
    }

    pub fn enabled(&self) -> bool {
        self.bus.is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
