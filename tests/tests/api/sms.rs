//! SMS senders against real counterparts: Amazon SNS `Publish` against moto (which records
//! every SMS), the signed webhook against a receiver on 127.0.0.1 that verifies Standard
//! Webhooks signatures independently, and the dev server's log sender.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use api_tests::{aws_endpoint, free_port, moto_sms};
use base64::Engine;
use domain::{
    config::Vars,
    otp,
    phone::parse_e164,
    sms::{self, SenderConfig, SentId, SmsError, SmsSender, SmsSettings},
    types::Phone,
};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response,
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

mod webhook;

pub(crate) use self::webhook::{Answer, Receiver};

pub(crate) const SECRET_B64: &str = "c21zLXdlYmhvb2stdGVzdC1zZWNyZXQtMzItYnl0ZXM=";

fn phone(s: &str) -> Phone {
    parse_e164(s, Some("US")).unwrap()
}

fn sender_for(pairs: &[(&str, &str)]) -> Arc<dyn SmsSender> {
    let settings = SmsSettings::from_vars(&Vars::from_pairs(pairs.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"));
    adapters::sms_sender(&settings).expect("a sender is configured")
}

fn message() -> (otp::Code, String) {
    let code = otp::generate().unwrap();
    let text = format!("Your verification code is {}", code.expose());
    (code, text)
}

// ---------------------------------------------------------------------------------------
// SNS against moto.

fn sns_vars(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SMS_SENDER", "sns".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
        ("SMS_SENDER_ID", "UserApi".into()),
        ("SMS_ORIGINATION_NUMBER", "+18335550100".into()),
    ]
}

fn sns_sender(endpoint: &str) -> Arc<dyn SmsSender> {
    let vars = sns_vars(endpoint);
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sender_for(&pairs)
}

/// One SMS in moto's record as (phone, message) if it carries `message_id`.
fn recorded<'a>(all: &'a [Value], message_id: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|m| {
            m.get("message_id").and_then(Value::as_str) == Some(message_id)
                || m.get("MessageId").and_then(Value::as_str) == Some(message_id)
        })
        .collect()
}

#[tokio::test]
async fn sns_publishes_one_sms_to_the_phone_with_the_code() {
    let sender = sns_sender(&aws_endpoint());
    assert_eq!(sender.name(), "sns");
    // A random national number in a valid US range, so parallel runs never collide.
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).unwrap();
    let n = u16::from_le_bytes(b) % 10_000;
    let to = phone(&format!("(202) 555-{n:04}"));
    let (code, text) = message();
    let SentId(id) = sender.send(&to, &text, "signup:req-sns-1").await.unwrap();
    assert!(!id.is_empty());
    let all = moto_sms().await;
    let mine = recorded(&all, &id);
    assert_eq!(mine.len(), 1, "exactly one SMS with id {id} in {all:#?}");
    let sms = mine[0];
    assert_eq!(sms["phone_number"], to.as_str());
    let body = sms["message"].as_str().unwrap();
    assert!(body.contains(code.expose()), "{body}");
    assert_eq!(body, text);
}

#[tokio::test]
async fn sns_sends_are_distinct_messages_for_distinct_phones_concurrently() {
    // Two instances (separate clients) publishing at once: each SMS is recorded once, to its
    // own phone, with its own code.
    let a = sns_sender(&aws_endpoint());
    let b = sns_sender(&aws_endpoint());
    let pa = phone("+12025550171");
    let pb = phone("+12025550172");
    let (ca, ta) = message();
    let (cb, tb) = message();
    let (ra, rb) = tokio::join!(a.send(&pa, &ta, "k-a"), b.send(&pb, &tb, "k-b"));
    let (ia, ib) = (ra.unwrap().0, rb.unwrap().0);
    assert_ne!(ia, ib);
    let all = moto_sms().await;
    for (id, p, c) in [(&ia, &pa, &ca), (&ib, &pb, &cb)] {
        let m = recorded(&all, id);
        assert_eq!(m.len(), 1, "{id}");
        assert_eq!(m[0]["phone_number"], p.as_str());
        assert!(m[0]["message"].as_str().unwrap().contains(c.expose()));
    }
}

#[tokio::test]
async fn sns_unreachable_is_unavailable_quickly_and_names_no_phone() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let sender = sns_sender(&dead);
    let to = phone("+12025550173");
    let start = Instant::now();
    let err = sender.send(&to, "code 123456", "k").await.unwrap_err();
    assert!(matches!(err, SmsError::Unavailable(_)), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let msg = err.to_string();
    assert!(
        !msg.contains("2025550173") && !msg.contains("123456"),
        "{msg}"
    );
}

#[tokio::test]
async fn sns_refuses_empty_and_oversized_messages_before_calling_aws() {
    // Pointed at nothing: a malformed request must fail before any network call.
    let sender = sns_sender(&format!("http://127.0.0.1:{}", free_port()));
    let to = phone("+12025550174");
    for (text, key) in [
        ("", "k"),
        ("   ", "k"),
        (&"x".repeat(1601)[..], "k"),
        ("hi", ""),
        ("hi", "key with spaces"),
    ] {
        let err = sender.send(&to, text, key).await.unwrap_err();
        assert!(matches!(err, SmsError::Malformed(_)), "{err}");
    }
}

/// A recording pass-through in front of moto: every request body is kept, then forwarded
/// (or, with `fail_status`, answered with that status instead, as an overloaded SNS would).
struct SnsTap {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl SnsTap {
    async fn start(fail_status: Option<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = bodies.clone();
        let upstream = aws_endpoint();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, client, upstream) = (log.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (log, client, upstream) =
                            (log.clone(), client.clone(), upstream.clone());
                        async move {
                            let path = req.uri().path().to_owned();
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            log.lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            if let Some(status) = fail_status {
                                return Ok::<_, Infallible>(
                                    Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                );
                            }
                            let mut fwd = client.post(format!("{upstream}{path}")).body(body);
                            for (k, v) in &headers {
                                if k != "host" && k != "content-length" {
                                    fwd = fwd.header(k.as_str(), v.as_bytes());
                                }
                            }
                            let resp = fwd.send().await.unwrap();
                            let status = resp.status().as_u16();
                            let ct = resp
                                .headers()
                                .get("content-type")
                                .map(|v| v.as_bytes().to_vec())
                                .unwrap_or_default();
                            let bytes = resp.bytes().await.unwrap();
                            Ok(Response::builder()
                                .status(status)
                                .header("content-type", ct)
                                .body(Full::new(bytes))
                                .unwrap())
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, bodies }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The form fields of each request seen.
    fn requests(&self) -> Vec<Vec<(String, String)>> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                form_urlencoded::parse(b.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .collect()
    }
}

/// The message attributes of one Publish request, as name -> string value.
fn attributes(form: &[(String, String)]) -> std::collections::BTreeMap<String, String> {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    (1..10)
        .map_while(|i| {
            let name = get(&format!("MessageAttributes.entry.{i}.Name"))?;
            let ty = get(&format!("MessageAttributes.entry.{i}.Value.DataType"))?;
            assert_eq!(ty, "String");
            Some((
                name,
                get(&format!("MessageAttributes.entry.{i}.Value.StringValue"))?,
            ))
        })
        .collect()
}

#[tokio::test]
async fn sns_publish_carries_transactional_type_sender_id_and_origination_number() {
    let tap = SnsTap::start(None).await;
    let sender = sns_sender(&tap.url());
    let to = phone("+12025550175");
    let (_, text) = message();
    let SentId(id) = sender.send(&to, &text, "k-attrs").await.unwrap();
    let requests = tap.requests();
    assert_eq!(requests.len(), 1, "one Publish call");
    let form = &requests[0];
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("Action"), Some("Publish"));
    assert_eq!(field("PhoneNumber"), Some("+12025550175"));
    assert_eq!(field("Message"), Some(text.as_str()));
    assert_eq!(field("TopicArn"), None);
    let attrs = attributes(form);
    assert_eq!(
        attrs,
        [
            ("AWS.MM.SMS.OriginationNumber", "+18335550100"),
            ("AWS.SNS.SMS.SMSType", "Transactional"),
            ("AWS.SNS.SMS.SenderID", "UserApi"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    );
    // Forwarded to moto, which recorded it under the id the sender returned.
    assert_eq!(recorded(&moto_sms().await, &id).len(), 1);
    // Without the optional settings only the type is sent.
    let tap = SnsTap::start(None).await;
    let plain = sender_for(&[
        ("SMS_SENDER", "sns"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", &tap.url()),
    ]);
    plain.send(&to, &text, "k-plain").await.unwrap();
    let attrs = attributes(&tap.requests()[0]);
    assert_eq!(attrs.keys().collect::<Vec<_>>(), ["AWS.SNS.SMS.SMSType"]);
}

#[tokio::test]
async fn sns_errors_are_not_retried_so_one_send_is_at_most_one_publish() {
    // A throttled or failing SNS: the SDK's retries would publish again after a failure that
    // may have delivered; the sender makes exactly one call and reports a retryable error.
    for status in [500, 503, 400] {
        let tap = SnsTap::start(Some(status)).await;
        let err = sns_sender(&tap.url())
            .send(&phone("+12025550176"), "code 777777", "k-once")
            .await
            .unwrap_err();
        assert_eq!(
            tap.requests().len(),
            1,
            "HTTP {status}: exactly one Publish"
        );
        assert!(!err.to_string().contains("777777"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------
// The log sender and test numbers.

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_dev_server_default_logs_the_message_at_target_sms_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let settings = SmsSettings::for_dev_server(&Vars::default()).unwrap();
    assert_eq!(settings.sender, Some(SenderConfig::Log));
    let sender = adapters::sms_sender(&settings).unwrap();
    let (code, text) = message();
    let id = sender
        .send(&phone("+12025550191"), &text, "signup:dev-1")
        .await
        .unwrap();
    assert_eq!(id, SentId("log:signup:dev-1".into()));
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(line["target"], "sms_log");
    assert_eq!(line["fields"]["phone"], "+12025550191");
    assert!(
        line["fields"]["message"]
            .as_str()
            .unwrap()
            .contains(code.expose())
    );
    // And the same variables outside the dev server do not select it.
    assert!(SmsSettings::from_vars(&Vars::from_pairs([("SMS_SENDER", "log")])).is_err());
}

#[test]
fn test_numbers_give_the_flow_a_fixed_code_and_no_sender_is_needed() {
    let s = SmsSettings::from_vars(&Vars::from_pairs([(
        "SMS_TEST_NUMBERS",
        "+15555550100:123456,+15555550101:654321",
    )]))
    .unwrap();
    assert!(s.sender.is_none());
    let p = s.parse_phone("+1 (555) 555-0101").unwrap();
    let code = s.test_code(&p).unwrap();
    assert_eq!(code.expose(), "654321");
    // The flow stores the hash of the fixed code like any other.
    let hasher = otp::CodeHasher::new(domain::config::Secret::new(
        *b"otp-integration-key-0123456789abcdef",
    ))
    .unwrap();
    let stored = hasher.hash(p.as_str(), otp::Purpose::Signup, code);
    assert!(hasher.verify(p.as_str(), otp::Purpose::Signup, "654321", &stored));
    assert!(!hasher.verify(p.as_str(), otp::Purpose::Signup, "123456", &stored));
}
