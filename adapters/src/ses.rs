//! The SES sender: Amazon SES v2 `SendEmail`, a simple message with text and HTML parts,
//! from `EMAIL_FROM`, in `SES_CONFIGURATION_SET` when set. Errors are classified by code only
//! (SES messages can quote the address). No retries here: the flow claims an idempotency key
//! before sending, so a retried request sends nothing more.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sesv2::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    types::{Body, Content, Destination, EmailContent, Message as SesMessage},
};

use domain::email::{Email, MailError, MailSender, Message, settings::SesConfig};

/// Sends through Amazon SES.
#[derive(Debug, Clone)]
pub struct SesSender {
    client: Client,
    from: Email,
    configuration_set: Option<String>,
    timeout: Duration,
}

impl SesSender {
    /// A client for `config`'s region and endpoint; each send may take at most `timeout`.
    pub fn new(config: &SesConfig, from: Email, timeout: Duration) -> Self {
        let sdk = crate::sender_sdk_config(&config.region, config.endpoint.as_deref(), timeout);
        Self {
            client: Client::new(&sdk),
            from,
            configuration_set: config.configuration_set.clone(),
            timeout,
        }
    }
}

fn content(text: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|_| MailError::Rejected("an SES content part could not be built".into()))
}

fn classify<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> MailError {
    match e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("unknown error").to_owned();
            match code.as_str() {
                "TooManyRequestsException"
                | "Throttling"
                | "LimitExceededException"
                | "InternalFailure"
                | "ServiceUnavailable" => MailError::Unavailable(code),
                _ => MailError::Rejected(code),
            }
        }
        SdkError::TimeoutError(_) => MailError::Unavailable("SES timed out".into()),
        SdkError::DispatchFailure(_) => MailError::Unavailable("SES could not be reached".into()),
        _ => MailError::Unavailable("SES request failed".into()),
    }
}

#[async_trait]
impl MailSender for SesSender {
    async fn send(
        &self,
        to: &Email,
        message: &Message,
        idempotency_key: &str,
    ) -> Result<String, MailError> {
        let simple = SesMessage::builder()
            .subject(content(&message.subject)?)
            .body(
                Body::builder()
                    .text(content(&message.text)?)
                    .html(content(&message.html)?)
                    .build(),
            )
            .build();
        let send = self
            .client
            .send_email()
            .from_email_address(self.from.as_str())
            .destination(Destination::builder().to_addresses(to.as_str()).build())
            .content(EmailContent::builder().simple(simple).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send();
        let out = tokio::time::timeout(self.timeout + Duration::from_secs(1), send)
            .await
            .map_err(|_| MailError::Unavailable("SES timed out".into()))?
            .map_err(|e| classify(&e))?;
        let id = out.message_id().unwrap_or_default().to_owned();
        tracing::info!(sender = "ses", message_id = %id, idempotency_key, "email sent");
        Ok(id)
    }

    fn name(&self) -> &'static str {
        "ses"
    }
}
