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
// Signed webhook against a local receiver.

/// What the receiver saw in one request.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) id: String,
    pub(crate) timestamp: i64,
    pub(crate) body: Value,
    pub(crate) signature_ok: bool,
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    Ok,
    Status(u16),
    Hang,
    /// 200 with this JSON body (a hook's answer).
    Json(&'static str),
    /// 200 with a custom SMS text (or mail, for `channel: email`) carrying the request's
    /// `code` (a `custom_message` hook).
    CustomSms,
}

pub(crate) struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
}

/// The receiver's own Standard Webhooks verification: every `v1,` signature in the header,
/// against HMAC-SHA256(secret, "id.timestamp.body"), and a timestamp within five minutes.
fn verify(secret: &[u8], id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let Ok(ts_n) = ts.parse::<i64>() else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts_n).abs() > 300 {
        return false;
    }
    header.split(' ').any(|sig| {
        let Some(b64) = sig.strip_prefix("v1,") else {
            return false;
        };
        let Ok(want) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&want).is_ok()
    })
}

impl Receiver {
    pub(crate) async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let secret = base64::engine::general_purpose::STANDARD
            .decode(SECRET_B64)
            .unwrap();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, secret) = (log.clone(), secret.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (log, secret) = (log.clone(), secret.clone());
                        async move {
                            let h = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let (id, ts, sig) = (
                                h("webhook-id"),
                                h("webhook-timestamp"),
                                h("webhook-signature"),
                            );
                            let json_type = h("content-type") == "application/json";
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let ok = json_type && verify(&secret, &id, &ts, &body, &sig);
                            log.lock().unwrap().push(Received {
                                id: id.clone(),
                                timestamp: ts.parse().unwrap_or_default(),
                                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                                signature_ok: ok,
                            });
                            let resp = |status: u16, body: String| {
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap()
                            };
                            Ok::<_, Infallible>(match answer {
                                _ if !ok => resp(401, String::new()),
                                Answer::Ok => {
                                    resp(200, json!({"id": format!("wh-{id}")}).to_string())
                                }
                                Answer::Status(s) => resp(s, String::new()),
                                Answer::Json(body) => resp(200, body.to_owned()),
                                Answer::CustomSms => {
                                    let last = log.lock().unwrap().last().map(|r| r.body.clone());
                                    let last = last.unwrap_or_default();
                                    let code = last["code"].as_str().unwrap_or_default();
                                    let text = format!("Acme: {code} is your code.");
                                    let answer = if last["channel"] == "email" {
                                        json!({"subject": "Acme sign-in", "text": text,
                                            "html": format!("<p>Acme: <b>{code}</b></p>")})
                                    } else {
                                        json!({"message": text})
                                    };
                                    resp(200, answer.to_string())
                                }
                                Answer::Hang => {
                                    tokio::time::sleep(Duration::from_secs(30)).await;
                                    resp(200, String::new())
                                }
                            })
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/sms", self.addr)
    }

    pub(crate) fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

fn webhook_sender(url: &str, secret: &str, timeout: &str) -> Arc<dyn SmsSender> {
    sender_for(&[
        ("SMS_SENDER", "webhook"),
        ("SMS_WEBHOOK_URL", url),
        ("SMS_WEBHOOK_SECRET", secret),
        ("SMS_TIMEOUT_SECONDS", timeout),
    ])
}

fn whsec() -> String {
    format!("whsec_{SECRET_B64}")
}

#[tokio::test]
async fn webhook_posts_a_signed_json_message_the_receiver_verifies() {
    let rx = Receiver::start(Answer::Ok).await;
    let sender = webhook_sender(&rx.url(), &whsec(), "3");
    assert_eq!(sender.name(), "webhook");
    let to = phone("+12025550181");
    let (code, text) = message();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let id = sender.send(&to, &text, "signup:req-wh-1").await.unwrap();
    assert_eq!(
        id,
        SentId("wh-signup:req-wh-1".into()),
        "the receiver's id is returned"
    );
    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert!(r.signature_ok, "signature verified by the receiver");
    assert_eq!(r.id, "signup:req-wh-1", "webhook-id is the idempotency key");
    assert!((r.timestamp - before).abs() <= 2, "timestamp is now");
    assert_eq!(r.body, json!({"phone": "+12025550181", "message": text}));
    assert!(r.body["message"].as_str().unwrap().contains(code.expose()));
}

#[tokio::test]
async fn a_sender_with_another_secret_is_refused_by_the_receiver() {
    let rx = Receiver::start(Answer::Ok).await;
    let other = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"another-secret-of-32-bytes-long!")
    );
    let sender = webhook_sender(&rx.url(), &other, "3");
    let err = sender
        .send(&phone("+12025550182"), "code 111111", "k-1")
        .await
        .unwrap_err();
    assert_eq!(err, SmsError::Rejected("webhook answered HTTP 401".into()));
    assert!(!rx.seen()[0].signature_ok);
}

#[tokio::test]
async fn retries_of_one_request_from_two_instances_carry_one_webhook_id() {
    // Two instances retrying the same request concurrently: the receiver sees one id (which
    // it deduplicates on) and valid signatures; another request has another id.
    let rx = Receiver::start(Answer::Ok).await;
    let a = webhook_sender(&rx.url(), &whsec(), "3");
    let b = webhook_sender(&rx.url(), &whsec(), "3");
    let to = phone("+12025550183");
    let key = sms::guard::idempotency_key(otp::Purpose::Signup, "req-42");
    let (ra, rb, rc) = tokio::join!(
        a.send(&to, "code 222222", &key),
        b.send(&to, "code 222222", &key),
        b.send(&to, "code 333333", "signup:req-43"),
    );
    assert_eq!(ra.unwrap(), rb.unwrap());
    assert_ne!(rc.unwrap(), SentId(format!("wh-{key}")));
    let seen = rx.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.signature_ok));
    let mut ids: Vec<_> = seen.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, ["signup:req-42", "signup:req-43"]);
}

#[tokio::test]
async fn webhook_failures_are_classified_and_bounded_in_time() {
    let to = phone("+12025550184");
    for (status, retryable) in [
        (503, true),
        (429, true),
        (500, true),
        (400, false),
        (404, false),
    ] {
        let rx = Receiver::start(Answer::Status(status)).await;
        let err = webhook_sender(&rx.url(), &whsec(), "3")
            .send(&to, "code 444444", "k")
            .await
            .unwrap_err();
        assert_eq!(
            matches!(err, SmsError::Unavailable(_)),
            retryable,
            "{status}: {err}"
        );
        assert!(err.to_string().contains(&status.to_string()), "{err}");
    }
    // A receiver that never answers: the send ends at the configured timeout.
    let rx = Receiver::start(Answer::Hang).await;
    let start = Instant::now();
    let err = webhook_sender(&rx.url(), &whsec(), "1")
        .send(&to, "code 555555", "k")
        .await
        .unwrap_err();
    assert_eq!(err, SmsError::Unavailable("the webhook timed out".into()));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // Nothing listening.
    let err = webhook_sender(&format!("http://127.0.0.1:{}/", free_port()), &whsec(), "2")
        .send(&to, "code 666666", "k")
        .await
        .unwrap_err();
    assert!(matches!(err, SmsError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains("666666") && !err.to_string().contains("2025550184"));
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
