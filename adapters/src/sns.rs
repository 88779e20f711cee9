//! The Amazon SNS sender: `Publish` straight to the phone number, as a transactional SMS
//! (delivered even to numbers that opted out of promotional messages, and priced as such).
//!
//! The client is built like the Secrets Manager one (`crate::secrets`): credentials and region
//! from the environment Lambda provides, the shared rustls/ring HTTPS client, a bounded
//! timeout, and no SDK retries: SNS has no idempotency key for SMS, so an automatic retry
//! after a timeout could deliver a code twice. At most once is enforced by the flow's claim
//! (see [`domain::sms::guard`]); a failed send is reported, not repeated.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sns::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    types::MessageAttributeValue,
};

use domain::{
    sms::{SentId, SmsError, SmsSender, check_request, settings::SnsConfig},
    types::Phone,
};

/// SNS message attribute: `Transactional` or `Promotional`.
pub const ATTR_SMS_TYPE: &str = "AWS.SNS.SMS.SMSType";
/// SNS message attribute: alphanumeric sender id.
pub const ATTR_SENDER_ID: &str = "AWS.SNS.SMS.SenderID";
/// SNS message attribute: the number the SMS comes from.
pub const ATTR_ORIGINATION_NUMBER: &str = "AWS.MM.SMS.OriginationNumber";

/// Sends through Amazon SNS.
#[derive(Debug, Clone)]
pub struct SnsSender {
    client: Client,
    sender_id: Option<String>,
    origination_number: Option<String>,
    timeout: Duration,
}

impl SnsSender {
    /// A client for `config`'s region and endpoint; each send may take at most `timeout`.
    pub fn new(config: &SnsConfig, timeout: Duration) -> Self {
        let sdk = crate::sender_sdk_config(&config.region, config.endpoint.as_deref(), timeout);
        Self {
            client: Client::new(&sdk),
            sender_id: config.sender_id.clone(),
            origination_number: config.origination_number.clone(),
            timeout,
        }
    }
}

fn string_attr(value: &str) -> Result<MessageAttributeValue, SmsError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|_| SmsError::Malformed("an SNS message attribute could not be built"))
}

/// Maps an SNS failure to retryable or not, by error code only: SNS messages can quote the
/// phone number, which must not reach a log.
fn classify<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> SmsError {
    match e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("unknown error").to_owned();
            match code.as_str() {
                "Throttling"
                | "ThrottledException"
                | "InternalError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "KMSThrottlingException" => SmsError::Unavailable(code),
                _ => SmsError::Rejected(code),
            }
        }
        SdkError::TimeoutError(_) => SmsError::Unavailable("SNS timed out".into()),
        SdkError::DispatchFailure(_) => SmsError::Unavailable("SNS could not be reached".into()),
        SdkError::ResponseError(_) => {
            SmsError::Unavailable("SNS answered with an unreadable response".into())
        }
        _ => SmsError::Unavailable("SNS request failed".into()),
    }
}

#[async_trait]
impl SmsSender for SnsSender {
    async fn send(
        &self,
        phone: &Phone,
        message: &str,
        idempotency_key: &str,
    ) -> Result<SentId, SmsError> {
        check_request(message, idempotency_key)?;
        let mut publish = self
            .client
            .publish()
            .phone_number(phone.as_str())
            .message(message)
            .message_attributes(ATTR_SMS_TYPE, string_attr("Transactional")?);
        if let Some(id) = &self.sender_id {
            publish = publish.message_attributes(ATTR_SENDER_ID, string_attr(id)?);
        }
        if let Some(n) = &self.origination_number {
            publish = publish.message_attributes(ATTR_ORIGINATION_NUMBER, string_attr(n)?);
        }
        let out = tokio::time::timeout(self.timeout + Duration::from_secs(1), publish.send())
            .await
            .map_err(|_| SmsError::Unavailable("SNS timed out".into()))?
            .map_err(|e| classify(&e))?;
        let id = out.message_id().unwrap_or_default();
        if id.is_empty() {
            return Err(SmsError::Unavailable("SNS returned no message id".into()));
        }
        tracing::info!(
            sender = "sns",
            message_id = id,
            idempotency_key,
            "SMS published"
        );
        Ok(SentId(id.to_owned()))
    }

    fn name(&self) -> &'static str {
        "sns"
    }
}
