//! Sending SMS one-time codes: one [`SmsSender`] trait (the SNS and webhook senders live in
//! the adapters crate, the log sender here), configured test numbers, and the cost-guard
//! policy ([`guard`]).
//!
//! Why behind a trait: the verification flows (signup, phone change, password recovery) must
//! not care whether a code leaves through Amazon SNS, a provider reached by a signed webhook,
//! or, on a developer's machine, a log line. Everything here is free of HTTP-API types; the
//! flows map [`SmsError`] and [`SmsConfigError`] to responses.
//!
//! At most once: every send carries an idempotency key (derived by the flow from the request
//! id, see [`guard::idempotency_claim`]). The webhook sender passes it as `webhook-id`, which
//! receivers deduplicate on; SNS has no such key for SMS, so the flow claims the key in the
//! store before sending and never retries a send itself. Neither sender retries internally.

pub mod guard;
pub mod log;
pub mod settings;

use std::sync::Arc;

use async_trait::async_trait;

use crate::types::Phone;

pub use settings::{SenderConfig, SmsConfigError, SmsSettings, TestNumbers};

/// Longest message accepted (SNS's limit for one SMS publish; providers split it in parts).
pub const MAX_MESSAGE_BYTES: usize = 1600;

/// Longest idempotency key accepted: it travels in a header and a database key.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// The provider's id for a message sent (SNS `MessageId`, the webhook's answer or its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentId(pub String);

/// Why a message was not sent. Never carries the phone number, the message or the code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SmsError {
    /// The provider refused this message for good (invalid or opted-out number, bad request,
    /// wrong credentials): retrying it will not help.
    #[error("the SMS provider refused the message: {0}")]
    Rejected(String),
    /// The provider could not be reached, timed out, throttled or failed: the same message may
    /// succeed later (with the same idempotency key).
    #[error("the SMS provider is unavailable: {0}")]
    Unavailable(String),
    /// The message or key is not sendable (empty, too long, a key with control characters).
    #[error("the SMS request is malformed: {0}")]
    Malformed(&'static str),
}

/// Something that delivers one SMS.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Sends `message` to `phone`. `idempotency_key` identifies this send across retries.
    async fn send(
        &self,
        phone: &Phone,
        message: &str,
        idempotency_key: &str,
    ) -> Result<SentId, SmsError>;

    /// The sender's name as configured (`sns`, `webhook`, `log`), for logs and metrics.
    fn name(&self) -> &'static str;
}

/// Checks what every sender requires of a message and a key.
pub fn check_request(message: &str, idempotency_key: &str) -> Result<(), SmsError> {
    if message.trim().is_empty() {
        return Err(SmsError::Malformed("the message is empty"));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(SmsError::Malformed("the message is too long"));
    }
    guard::check_idempotency_key(idempotency_key).map_err(|_| {
        SmsError::Malformed("the idempotency key is empty, too long or not printable ASCII")
    })
}

/// Builds the sender `settings` select (`None` when `SMS_SENDER` is unset). The wiring passes
/// one: the adapters crate's for a function that sends, [`no_sender`] for one that never does.
pub type MakeSender = fn(&SmsSettings) -> Option<Arc<dyn SmsSender>>;

/// For a function whose routes never send (login, logout, ...): no sender is built, so none
/// is linked into its binary.
pub fn no_sender(_: &SmsSettings) -> Option<Arc<dyn SmsSender>> {
    None
}

/// The log sender where `SMS_SENDER` is `log`, else none: for the domain's own tests, which
/// never reach a provider.
#[cfg(test)]
pub(crate) fn log_only(settings: &SmsSettings) -> Option<Arc<dyn SmsSender>> {
    matches!(settings.sender, Some(SenderConfig::Log))
        .then(|| Arc::new(log::LogSender) as Arc<dyn SmsSender>)
}
