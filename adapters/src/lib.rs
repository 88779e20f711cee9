//! Adapters of the domain's traits onto real services: the MongoDB store (`mongo`), keys from
//! Secrets Manager (`secrets`), SMS through SNS or a signed webhook (`sns`, `webhook`), mail
//! through SES or a signed webhook (`ses`, `webhook`), hooks as webhooks or Lambda functions
//! (`hooks`), lifecycle events to EventBridge (`eventbridge`), identity providers' keys
//! (`oidc`), and CloudWatch metrics (`metrics`); all their HTTP goes through one client
//! (`http`). Which of them a process builds is the edge's wiring; a function links only the
//! adapters its wiring names.

pub mod eventbridge;
pub mod hooks;
pub mod http;
pub mod metrics;
pub mod mongo;
pub mod oidc;
pub mod secrets;
pub mod ses;
pub mod sns;
pub mod webhook;

use std::sync::Arc;

use domain::{
    email::{LogMailer, MailConfig, MailSender, MailSettings},
    sms::{SenderConfig, SmsSender, SmsSettings, log::LogSender},
};

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

/// The caller of hooks (signed webhooks, Lambda functions): a
/// [`domain::hooks::MakeHookCaller`] for functions whose routes run hooks. One HTTP connector
/// and at most one Lambda client serve every hook of the process.
pub fn hook_caller() -> Option<Arc<dyn domain::hooks::HookCaller>> {
    Some(hooks::caller())
}

/// The mail sender `settings` select, or `None` when no `EMAIL_SENDER` is set (mail is off).
/// A [`domain::email::MakeMailer`] for functions whose routes send mail.
pub fn mail_sender(settings: &MailSettings) -> Option<Arc<dyn MailSender>> {
    let timeout = settings.timeout;
    Some(match settings.sender.as_ref()? {
        MailConfig::Ses(c) => Arc::new(ses::SesSender::new(c, settings.from.clone()?, timeout)),
        MailConfig::Webhook(c) => Arc::new(webhook::MailWebhookSender::new(
            c,
            settings.from.clone()?,
            timeout,
        )),
        MailConfig::Log => Arc::new(LogMailer),
    })
}

/// The settings both SDK senders (SNS, SES) are built from: `region`, `endpoint` if given,
/// credentials from the environment (the function's role), the shared rustls HTTPS client,
/// no retries (the flows claim an idempotency key and never resend) and `timeout` for a
/// whole call (at most 1 s of it connecting).
pub(crate) fn sender_sdk_config(
    region: &str,
    endpoint: Option<&str>,
    timeout: std::time::Duration,
) -> aws_config::SdkConfig {
    use aws_config::{
        BehaviorVersion, Region, environment::EnvironmentVariableCredentialsProvider,
        retry::RetryConfig, timeout::TimeoutConfig,
    };
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_sns::config::SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(secrets::https_client())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(1).min(timeout))
                .operation_timeout(timeout)
                .build(),
        );
    if let Some(url) = endpoint {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}
