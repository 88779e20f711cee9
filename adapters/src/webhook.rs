//! The webhook sender: POSTs `{"phone", "message"}` to a provider or relay, signed per the
//! Standard Webhooks spec, so any SMS gateway can be put behind a small adapter.
//!
//! Signing: `webhook-id` is the idempotency key (receivers deduplicate on it, which makes a
//! retried send harmless), `webhook-timestamp` is Unix seconds (receivers refuse stale ones,
//! which stops replays), and `webhook-signature` is `v1,` + base64(HMAC-SHA256(secret,
//! "id.timestamp.body")) with the secret configured as `whsec_<base64>`.
//!
//! Why this HTTP client: the process's one (`crate::http`, hyper 1 + rustls with ring) is
//! already in every binary for Secrets Manager, so using it here adds no HTTP or TLS stack.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::Connector;
use async_trait::async_trait;
use aws_smithy_runtime_api::client::{http::HttpConnector, orchestrator::HttpRequest};
use aws_smithy_types::{body::SdkBody, byte_stream::ByteStream};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use domain::{
    config::Secret,
    email::{Email, MailError, MailSender, Message},
    hooks::{HookError, HookSpec},
    sms::{SentId, SmsError, SmsSender, check_request, settings::WebhookConfig},
    types::Phone,
};

/// Longest response body read for a message id.
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// The Standard Webhooks signature header value for one message.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Sends through a signed webhook.
pub struct WebhookSender {
    url: String,
    secret: Secret,
    timeout: Duration,
    connector: Connector,
}

impl WebhookSender {
    /// A sender for `config`; each send may take at most `timeout`.
    pub fn new(config: &WebhookConfig, timeout: Duration) -> Self {
        Self {
            url: config.url.clone(),
            secret: config.secret.clone(),
            timeout,
            connector: crate::http::shared().connector(None, None),
        }
    }

    fn request(&self, id: &str, timestamp: i64, body: Vec<u8>) -> Result<HttpRequest, SmsError> {
        signed_request(&self.url, &self.secret, id, timestamp, body)
            .map_err(|_| SmsError::Malformed("the webhook request could not be built"))
    }
}

/// A POST of `body` to `url`, signed with `secret` per Standard Webhooks.
fn signed_request(
    url: &str,
    secret: &Secret,
    id: &str,
    timestamp: i64,
    body: Vec<u8>,
) -> Result<HttpRequest, ()> {
    let sig = signature(secret.expose(), id, timestamp, &body);
    let req = http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sig)
        .body(SdkBody::from(body))
        .map_err(|_| ())?;
    HttpRequest::try_from(req).map_err(|_| ())
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The provider's message id from a JSON answer (`id` or `message_id`), if it gave a short one.
fn answered_id(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["id", "message_id", "messageId"]
        .iter()
        .find_map(|k| v.get(k)?.as_str())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// POSTs `request` through `connector` within `timeout`: the status and (up to
/// [`MAX_RESPONSE_BYTES`] of) the body, or why it could not be had.
async fn exchange(
    connector: &Connector,
    request: HttpRequest,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let exchange = async {
        let response = connector.call(request).await.map_err(|e| {
            if e.is_timeout() {
                "the webhook timed out".to_owned()
            } else {
                "the webhook could not be reached".to_owned()
            }
        })?;
        let status = response.status().as_u16();
        let body = ByteStream::new(response.into_body())
            .collect()
            .await
            .map(|b| b.into_bytes())
            .unwrap_or_default();
        Ok::<_, String>((status, body[..body.len().min(MAX_RESPONSE_BYTES)].to_vec()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| "the webhook timed out".to_owned())?
}

impl WebhookSender {
    /// POSTs `body` signed with `idempotency_key` as its `webhook-id`; answers the provider's
    /// message id (or the key), or an SMS-style error saying whether a retry may help.
    pub async fn post(&self, idempotency_key: &str, body: Vec<u8>) -> Result<String, SmsError> {
        let request = self.request(idempotency_key, now(), body)?;
        let (status, body) = exchange(&self.connector, request, self.timeout)
            .await
            .map_err(SmsError::Unavailable)?;
        match status {
            200..=299 => Ok(answered_id(&body).unwrap_or_else(|| idempotency_key.to_owned())),
            408 | 429 | 500..=599 => Err(SmsError::Unavailable(format!(
                "webhook answered HTTP {status}"
            ))),
            _ => Err(SmsError::Rejected(format!(
                "webhook answered HTTP {status}"
            ))),
        }
    }
}

/// Hooks as signed webhooks: the payload POSTed as JSON with the Standard Webhooks headers
/// (the hook's id as `webhook-id`), a 2xx answer read as JSON.
pub struct HookWebhookCaller {
    connector: Connector,
}

impl Default for HookWebhookCaller {
    fn default() -> Self {
        Self::new()
    }
}

impl HookWebhookCaller {
    pub fn new() -> Self {
        Self {
            connector: crate::http::shared().connector(None, None),
        }
    }
}

impl HookWebhookCaller {
    /// POSTs `payload` to `config`'s URL within `spec`'s timeout; the JSON of a 2xx answer.
    pub async fn post(
        &self,
        spec: &HookSpec,
        config: &WebhookConfig,
        id: &str,
        payload: &Value,
    ) -> Result<Value, HookError> {
        let body =
            serde_json::to_vec(payload).map_err(|e| HookError::Refused(format!("payload: {e}")))?;
        let request = signed_request(&config.url, &config.secret, id, now(), body)
            .map_err(|()| HookError::Refused("the hook request could not be built".into()))?;
        let (status, body) = exchange(&self.connector, request, spec.timeout)
            .await
            .map_err(HookError::Unavailable)?;
        match status {
            200..=299 => serde_json::from_slice(&body)
                .map_err(|_| HookError::Refused("the answer is not JSON".into())),
            408 | 429 | 500..=599 => Err(HookError::Unavailable(format!(
                "hook answered HTTP {status}"
            ))),
            _ => Err(HookError::Refused(format!("hook answered HTTP {status}"))),
        }
    }
}

#[async_trait]
impl SmsSender for WebhookSender {
    async fn send(
        &self,
        phone: &Phone,
        message: &str,
        idempotency_key: &str,
    ) -> Result<SentId, SmsError> {
        check_request(message, idempotency_key)?;
        let body = serde_json::to_vec(&serde_json::json!({
            "phone": phone.as_str(),
            "message": message,
        }))
        .map_err(|_| SmsError::Malformed("the message could not be encoded"))?;
        self.post(idempotency_key, body).await.map(SentId)
    }

    fn name(&self) -> &'static str {
        "webhook"
    }
}

/// Mail through a signed webhook: POSTs `{"to", "from", "subject", "text", "html"}`, signed
/// as the SMS webhook is, so any mail provider can sit behind a small adapter.
#[derive(Debug)]
pub struct MailWebhookSender {
    inner: WebhookSender,
    from: Email,
}

impl MailWebhookSender {
    pub fn new(config: &WebhookConfig, from: Email, timeout: Duration) -> Self {
        Self {
            inner: WebhookSender::new(config, timeout),
            from,
        }
    }
}

#[async_trait]
impl MailSender for MailWebhookSender {
    async fn send(
        &self,
        to: &Email,
        message: &Message,
        idempotency_key: &str,
    ) -> Result<String, MailError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "to": to.as_str(),
            "from": self.from.as_str(),
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
        }))
        .map_err(|_| MailError::Rejected("the message could not be encoded".into()))?;
        self.inner
            .post(idempotency_key, body)
            .await
            .map_err(|e| match e {
                SmsError::Unavailable(why) => MailError::Unavailable(why),
                other => MailError::Rejected(other.to_string()),
            })
    }

    fn name(&self) -> &'static str {
        "webhook"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        // The example from the Standard Webhooks reference libraries.
        let secret = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_or_default();
        assert_eq!(
            signature(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_message_id_is_taken_from_the_answer_only_when_it_is_sane() {
        assert_eq!(answered_id(br#"{"id":"m-1"}"#), Some("m-1".into()));
        assert_eq!(answered_id(br#"{"message_id":"m-2"}"#), Some("m-2".into()));
        assert_eq!(answered_id(br#"{"id":""}"#), None);
        assert_eq!(answered_id(br#"{"id":"a b"}"#), None);
        assert_eq!(answered_id(b"ok"), None);
    }
}
