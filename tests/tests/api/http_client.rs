//! The one HTTP client (`adapters::http`) against a real local server, in the clear and over
//! TLS with a certificate made for the test: it verifies the server's certificate (a client
//! that does not trust the test's CA refuses it), reuses a kept-alive connection, sends a
//! request again on a new connection when the pooled one was closed while idle (as after a
//! Lambda freeze), sends `Host` and an origin-form target, and times out a server that never
//! answers. The AWS SDK clients over it are exercised by every test against the emulator.

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use adapters::http::Client;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

/// What the test server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    /// `METHOD target host` of each request.
    requests: Mutex<Vec<String>>,
}

/// A local HTTP/1.1 server answering `ok <n>` to its n-th request, over TLS when `tls` is
/// given; `keep_alive: false` closes each connection after one answer.
struct TestServer {
    port: u16,
    seen: Arc<Seen>,
}

impl TestServer {
    async fn start(tls: Option<Arc<rustls::ServerConfig>>, keep_alive: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let (seen, tls) = (shared.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let host = req
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let mut requests = seen.requests.lock().unwrap();
                            requests.push(format!("{} {} {host}", req.method(), req.uri()));
                            let n = requests.len();
                            Ok::<_, Infallible>(Response::new(Full::new(bytes(format!("ok {n}")))))
                        }
                    });
                    let mut conn = http1::Builder::new();
                    conn.keep_alive(keep_alive);
                    match tls {
                        None => {
                            let _ = conn.serve_connection(TokioIo::new(tcp), service).await;
                        }
                        Some(config) => {
                            let Ok(stream) =
                                tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = conn.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        Self { port, seen }
    }

    fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }
}

fn bytes(s: String) -> hyper::body::Bytes {
    hyper::body::Bytes::from(s)
}

/// A self-signed certificate for `names`, and a server configuration presenting it.
fn certificate_for(names: &[&str]) -> (CertificateDer<'static>, Arc<rustls::ServerConfig>) {
    let made = rcgen::generate_simple_self_signed(
        names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    )
    .unwrap();
    let cert = CertificateDer::from(made.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .unwrap();
    (cert, Arc::new(config))
}

/// A certificate for `localhost` and 127.0.0.1, as the tests' servers present.
fn test_certificate() -> (CertificateDer<'static>, Arc<rustls::ServerConfig>) {
    certificate_for(&["localhost", "127.0.0.1"])
}

/// GETs `url` through `client`: the status and body text, or the connector's error.
async fn get(client: &Client, url: &str) -> Result<(u16, String), ConnectorError> {
    let request = http::Request::get(url).body(SdkBody::empty()).unwrap();
    let response = client
        .send(
            request,
            Some(Duration::from_secs(2)),
            Some(Duration::from_secs(2)),
        )
        .await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((status, String::from_utf8(body.to_vec()).unwrap()))
}

#[tokio::test]
async fn https_reaches_a_server_whose_certificate_chains_to_a_trusted_root() {
    let (cert, config) = test_certificate();
    let server = TestServer::start(Some(config), true).await;
    let client = Client::with_roots(vec![cert]);
    let url = format!("https://localhost:{}/a", server.port);
    assert_eq!(get(&client, &url).await.unwrap(), (200, "ok 1".to_owned()));
}

#[tokio::test]
async fn https_refuses_a_certificate_no_trusted_root_vouches_for() {
    let (_, config) = test_certificate();
    let server = TestServer::start(Some(config), true).await;
    let client = Client::default();
    let url = format!("https://localhost:{}/a", server.port);
    let refused = get(&client, &url).await.unwrap_err();
    assert!(refused.is_io(), "{refused:?}");
    assert!(server.seen.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn https_refuses_a_certificate_for_another_name() {
    let (cert, config) = certificate_for(&["other.example"]);
    let server = TestServer::start(Some(config), true).await;
    let client = Client::with_roots(vec![cert]);
    let url = format!("https://localhost:{}/a", server.port);
    assert!(get(&client, &url).await.is_err());
    assert!(server.seen.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_kept_alive_connection_serves_the_next_request_over_tls_and_in_the_clear() {
    let (cert, config) = test_certificate();
    for (tls, scheme) in [(Some(config), "https"), (None, "http")] {
        let server = TestServer::start(tls, true).await;
        let client = Client::with_roots(vec![cert.clone()]);
        for n in 1..=3 {
            let url = format!("{scheme}://localhost:{}/x", server.port);
            assert_eq!(get(&client, &url).await.unwrap(), (200, format!("ok {n}")));
        }
        assert_eq!(server.connections(), 1, "{scheme}");
    }
}

/// A server that answers each connection's first request as keep-alive, then closes it
/// unannounced 30 ms later (as a server's idle timeout does while a Lambda instance is
/// frozen): its port and how many connections it accepted.
async fn closing_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut tcp, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let mut buf = [0u8; 2048];
            let _ = tcp.read(&mut buf).await;
            let body = format!("ok {n}");
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                drop(tcp);
            });
        }
    });
    (port, accepted)
}

/// Sends a request built by `make` twice through one client, blocking this single-threaded
/// runtime in between so that the pooled connection's task cannot see the server's close
/// before the second request is written: the second answer.
async fn twice_across_a_close(
    make: impl Fn(u16) -> http::Request<SdkBody>,
) -> (Result<String, ConnectorError>, usize) {
    let (port, accepted) = closing_server().await;
    let client = Client::default();
    let first = client.send(make(port), None, None).await.unwrap();
    first.into_body().collect().await.unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let second = match client.send(make(port), None, None).await {
        Ok(r) => Ok(
            String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap(),
        ),
        Err(e) => Err(e),
    };
    (second, accepted.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_repeatable_request_on_a_connection_the_server_closed_goes_out_again_on_a_new_one() {
    let get = |port| {
        http::Request::get(format!("http://127.0.0.1:{port}/x"))
            .body(SdkBody::empty())
            .unwrap()
    };
    let keyed_post = |port| {
        http::Request::post(format!("http://127.0.0.1:{port}/x"))
            .header("webhook-id", "msg_1")
            .body(SdkBody::from("{}"))
            .unwrap()
    };
    for (case, answer) in [
        ("GET", twice_across_a_close(get).await),
        (
            "POST with an idempotency key",
            twice_across_a_close(keyed_post).await,
        ),
    ] {
        assert_eq!(answer.0.unwrap(), "ok 2", "{case}");
        assert_eq!(answer.1, 2, "{case}");
    }
}

#[tokio::test]
async fn a_post_without_an_idempotency_key_is_not_sent_twice_by_the_client() {
    let post = |port| {
        http::Request::post(format!("http://127.0.0.1:{port}/x"))
            .body(SdkBody::from("{}"))
            .unwrap()
    };
    let (second, accepted) = twice_across_a_close(post).await;
    assert!(second.unwrap_err().is_io());
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn a_server_announcing_close_gets_a_new_connection_for_the_next_request() {
    let server = TestServer::start(None, false).await;
    let client = Client::default();
    let url = format!("http://127.0.0.1:{}/x", server.port);
    for n in 1..=2 {
        assert_eq!(get(&client, &url).await.unwrap(), (200, format!("ok {n}")));
    }
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn requests_carry_the_host_and_an_origin_form_target() {
    let server = TestServer::start(None, true).await;
    let client = Client::default();
    let url = format!("http://127.0.0.1:{}/a/b?c=d&e=%20", server.port);
    get(&client, &url).await.unwrap();
    let default_port = http::Request::get(format!("http://127.0.0.1:{}/", server.port))
        .header("host", "api.example")
        .body(SdkBody::empty())
        .unwrap();
    client.send(default_port, None, None).await.unwrap();
    assert_eq!(
        *server.seen.requests.lock().unwrap(),
        [
            format!("GET /a/b?c=d&e=%20 127.0.0.1:{}", server.port),
            "GET / api.example".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_and_a_refused_port_an_io_error() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    let client = Client::default();
    let request = http::Request::get(format!("http://127.0.0.1:{port}/"))
        .body(SdkBody::empty())
        .unwrap();
    let started = std::time::Instant::now();
    let e = client
        .send(request, None, Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let request = http::Request::get(format!("http://127.0.0.1:{port}/"))
        .body(SdkBody::empty())
        .unwrap();
    let e = client.send(request, None, None).await.unwrap_err();
    assert!(e.is_io(), "{e:?}");
}

#[tokio::test]
async fn a_url_that_is_not_http_is_refused_before_any_connection() {
    let client = Client::default();
    for url in ["ftp://127.0.0.1/x", "/relative"] {
        let request = http::Request::get(url).body(SdkBody::empty()).unwrap();
        let e = client.send(request, None, None).await.unwrap_err();
        assert!(e.is_user(), "{url}: {e:?}");
    }
}
