//! The development sender: writes the message, code included, to the log at target `sms_log`
//! instead of sending it, so a developer can sign up on the dev server without a phone.
//!
//! Never in production: [`super::SmsSettings`] refuses it unless `SMS_ALLOW_LOG_SENDER=1`, and
//! inside Lambda always. This is the one place a code is logged, on purpose.

use async_trait::async_trait;

use super::{SentId, SmsError, SmsSender, check_request};
use crate::types::Phone;

/// Logs instead of sending.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSender;

#[async_trait]
impl SmsSender for LogSender {
    async fn send(
        &self,
        phone: &Phone,
        message: &str,
        idempotency_key: &str,
    ) -> Result<SentId, SmsError> {
        check_request(message, idempotency_key)?;
        tracing::info!(
            target: "sms_log",
            phone = phone.as_str(),
            idempotency_key,
            message,
            "SMS not sent (log sender, development only)"
        );
        Ok(SentId(format!("log:{idempotency_key}")))
    }

    fn name(&self) -> &'static str {
        "log"
    }
}
