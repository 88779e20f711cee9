//! The signed SMS webhook against a local receiver: signatures the receiver verifies, another
//! secret refused, one webhook id across retries and instances, failures classified and bounded.

use super::*;

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
