//! Adapters of the domain's traits onto real services: the MongoDB store (`mongo`), keys from
//! Secrets Manager (`secrets`), SMS through SNS or a signed webhook (`sns`, `webhook`), and
//! CloudWatch metrics (`metrics`). Which of them a process builds is the edge's wiring; a
//! function links only the adapters its wiring names.

pub mod metrics;
pub mod mongo;
pub mod secrets;
pub mod sns;
pub mod webhook;

use std::sync::Arc;

use domain::sms::{SenderConfig, SmsSender, SmsSettings, log::LogSender};

/// The sender `settings` select, or `None` when no `SMS_SENDER` is set (SMS is off). A
/// [`domain::sms::MakeSender`] for functions whose routes send codes.
pub fn sms_sender(settings: &SmsSettings) -> Option<Arc<dyn SmsSender>> {
    let timeout = settings.timeout;
    Some(match settings.sender.as_ref()? {
        SenderConfig::Sns(c) => Arc::new(sns::SnsSender::new(c, timeout)),
        SenderConfig::Webhook(c) => Arc::new(webhook::WebhookSender::new(c, timeout)),
        SenderConfig::Log => Arc::new(LogSender),
    })
}
