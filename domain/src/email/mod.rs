//! Email: addresses as identifiers (`address`: one canonical form), and sending one-time codes
//! and links by mail behind one [`MailSender`] trait (SES and the webhook sender live in the
//! adapters crate, the log sender here), with subjects and bodies from templates
//! ([`template`]) and the settings that choose them ([`settings`]).
//!
//! As for SMS: every send carries an idempotency key (the webhook's `webhook-id`; SES has
//! none, so the flow claims the key in the store first and never retries a send itself).

mod address;
pub mod settings;
pub mod template;

use std::sync::Arc;

use async_trait::async_trait;

pub use address::{Email, MAX_OCTETS};
pub use settings::{MailConfig, MailSettings, TestAddresses};

use crate::{config::Vars, sms::SmsConfigError as MailConfigError};

/// One message: plain text and HTML bodies of the same content.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Never printed: a message carries a code or a link.
impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message(..)")
    }
}

/// Why a message was not sent. Never carries the address or the message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MailError {
    /// Refused for good (a suppressed or invalid address, an unverified sender, bad
    /// credentials): retrying will not help.
    #[error("the mail provider refused the message: {0}")]
    Rejected(String),
    /// Unreachable, throttled or failed: the same message may go later.
    #[error("the mail provider is unavailable: {0}")]
    Unavailable(String),
}

/// Something that delivers one email.
#[async_trait]
pub trait MailSender: Send + Sync {
    /// Sends `message` to `to`; `idempotency_key` identifies this send across retries.
    /// Answers the provider's message id.
    async fn send(
        &self,
        to: &Email,
        message: &Message,
        idempotency_key: &str,
    ) -> Result<String, MailError>;

    /// The sender's name as configured (`ses`, `webhook`, `log`).
    fn name(&self) -> &'static str;
}

/// Builds the sender that settings select (the adapters' for functions whose routes send
/// mail, [`no_mailer`] for the others, so they link no mail client).
pub type MakeMailer = fn(&MailSettings) -> Option<Arc<dyn MailSender>>;

/// A [`MakeMailer`] for functions that send no mail.
pub fn no_mailer(_: &MailSettings) -> Option<Arc<dyn MailSender>> {
    None
}

/// The log sender (`EMAIL_SENDER=log`, the dev server): writes the message to the log and
/// sends nothing. Never in a deployed stack: a code in a log line is a code anyone with log
/// access can use.
pub struct LogMailer;

#[async_trait]
impl MailSender for LogMailer {
    async fn send(
        &self,
        to: &Email,
        message: &Message,
        idempotency_key: &str,
    ) -> Result<String, MailError> {
        tracing::warn!(to = %to, subject = %message.subject, text = %message.text,
            "EMAIL_SENDER=log: this email was not sent (development only)");
        Ok(format!("log-{idempotency_key}"))
    }

    fn name(&self) -> &'static str {
        "log"
    }
}

/// Email as a process has it: the settings and the sender they chose (built by the wiring).
#[derive(Clone)]
pub struct Mail {
    pub settings: MailSettings,
    /// `None` when `EMAIL_SENDER` is unset or the function sends no mail.
    pub sender: Option<Arc<dyn MailSender>>,
}

impl Mail {
    /// Email off: no address needs proving, nothing is sent.
    pub fn off() -> Self {
        Self {
            settings: MailSettings::off(),
            sender: None,
        }
    }

    /// From variables, with the sender `make` builds.
    pub fn from_vars(vars: &Vars, make: MakeMailer) -> Result<Self, MailConfigError> {
        let settings = MailSettings::from_vars(vars)?;
        Ok(Self {
            sender: make(&settings),
            settings,
        })
    }

    /// The dev server's: the log sender unless `EMAIL_SENDER` says otherwise.
    pub fn for_dev_server(vars: &Vars, make: MakeMailer) -> Result<Self, MailConfigError> {
        let settings = MailSettings::for_dev_server(vars)?;
        Ok(Self {
            sender: make(&settings).or_else(|| log_mailer(&settings)),
            settings,
        })
    }

    /// `REQUIRE_EMAIL_VERIFICATION`.
    pub fn required(&self) -> bool {
        self.settings.required
    }
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("required", &self.settings.required)
            .field("sender", &self.sender.as_ref().map(|s| s.name()))
            .finish_non_exhaustive()
    }
}

/// The log sender, for a [`MakeMailer`] (the dev server's default).
pub fn log_mailer(settings: &MailSettings) -> Option<Arc<dyn MailSender>> {
    matches!(settings.sender, Some(MailConfig::Log)).then(|| Arc::new(LogMailer) as _)
}
