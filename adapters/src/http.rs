//! The one HTTP client of every function: the AWS SDK clients (Secrets Manager, SNS, SES,
//! EventBridge, Lambda), the webhook senders and hooks, and the identity providers' keys all
//! go through it. HTTP/1.1 over TCP or rustls (ring), with a small keep-alive pool.
//!
//! Why not the SDK's own client (`aws-smithy-http-client`'s `rustls-ring` feature): it links
//! HTTP/2 (h2, ~0.2 MB of code) that no call here uses (every AWS endpoint and webhook is
//! spoken to in HTTP/1.1), a proxy matcher and tower's layers, and it reads and parses the
//! system's CA bundle whenever a connector is built, which for the webhook and provider
//! clients was at cold start. Here the TLS configuration is built at the first HTTPS
//! connection, from the Mozilla roots that the MongoDB driver already links (webpki-roots),
//! plus the certificates of the PEM file named by `SSL_CERT_FILE` when set (a private CA,
//! a TLS-inspecting proxy's root).
//!
//! The pool: a connection goes back to it when its response body has been read to the end,
//! and is reused for the same scheme, host and port if it is younger than [`IDLE_MAX`] (a
//! frozen Lambda instance's clock may not count the freeze, so that is not enough). A request
//! that a reused connection could not even start (the server closed it while idle) is sent
//! again on a new connection; one that was written before the close showed is sent again only
//! if it may be repeated ([`replayable`]: GET and the like, or an idempotency key); any other
//! failure is the caller's (the SDK's retry policy, or the flow's idempotency key, decides).

use std::{
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use aws_smithy_runtime_api::client::{
    http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    },
    orchestrator::{HttpRequest, HttpResponse},
    result::ConnectorError,
    runtime_components::RuntimeComponents,
};
use aws_smithy_types::{body::SdkBody, retry::ErrorKind};
use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    client::conn::http1::{self, SendRequest},
};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// An idle connection older than this is closed rather than reused: AWS endpoints and most
/// servers close keep-alive connections after 20-60 s of silence.
pub const IDLE_MAX: Duration = Duration::from_secs(15);
/// Idle connections kept at most (the process talks to a handful of hosts).
const POOL_MAX: usize = 8;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The process's HTTP client: cheap to clone, one pool and one TLS configuration.
#[derive(Clone, Debug, Default)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tls: OnceLock<Arc<rustls::ClientConfig>>,
    /// Trust anchors added to the Mozilla roots (tests name their own CA here).
    extra_roots: Vec<CertificateDer<'static>>,
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

struct Idle {
    key: Key,
    sender: SendRequest<SdkBody>,
    since: Instant,
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct Key {
    tls: bool,
    host: String,
    port: u16,
}

impl Key {
    fn default_port(tls: bool) -> u16 {
        if tls { 443 } else { 80 }
    }
}

/// The client every adapter of this process shares.
pub fn shared() -> Client {
    static SHARED: OnceLock<Client> = OnceLock::new();
    SHARED.get_or_init(Client::default).clone()
}

/// [`shared`] as the AWS SDK's HTTP client.
pub fn sdk_client() -> SharedHttpClient {
    SharedHttpClient::new(shared())
}

impl Client {
    /// A client that also trusts `roots` (besides the Mozilla roots and `SSL_CERT_FILE`'s).
    pub fn with_roots(roots: Vec<CertificateDer<'static>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                extra_roots: roots,
                ..Inner::default()
            }),
        }
    }

    /// A connector sending through this client with the given time limits (time to connect,
    /// including the TLS handshake; time from sending to the response's head).
    pub fn connector(&self, connect: Option<Duration>, read: Option<Duration>) -> Connector {
        Connector {
            client: self.clone(),
            connect,
            read,
        }
    }

    fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.inner
            .tls
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::from_iter(
                    webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
                );
                let from_file = std::env::var_os("SSL_CERT_FILE")
                    .and_then(|path| CertificateDer::pem_file_iter(path).ok())
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok);
                roots.add_parsable_certificates(
                    from_file.chain(self.inner.extra_roots.iter().cloned()),
                );
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let mut config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(config)
            })
            .clone()
    }

    fn take_idle(&self, key: &Key) -> Option<SendRequest<SdkBody>> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|c| !c.sender.is_closed() && c.since.elapsed() < IDLE_MAX);
        let at = idle.iter().rposition(|c| &c.key == key)?;
        Some(idle.swap_remove(at).sender)
    }

    fn give_back(&self, key: Key, sender: SendRequest<SdkBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= POOL_MAX {
            idle.remove(0);
        }
        idle.push(Idle {
            key,
            sender,
            since: Instant::now(),
        });
    }

    async fn connect(
        &self,
        key: &Key,
        limit: Option<Duration>,
    ) -> Result<SendRequest<SdkBody>, ConnectorError> {
        let open = async {
            let host = key.host.trim_start_matches('[').trim_end_matches(']');
            let tcp = TcpStream::connect((host, key.port)).await?;
            tcp.set_nodelay(true)?;
            let stream = if key.tls {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let tls = tokio_rustls::TlsConnector::from(self.tls())
                    .connect(name, tcp)
                    .await?;
                Stream::Tls(Box::new(tls))
            } else {
                Stream::Plain(tcp)
            };
            Ok::<_, std::io::Error>(stream)
        };
        let stream = within(limit, open)
            .await?
            .map_err(|e| ConnectorError::io(e.into()))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(classify)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends `request` (absolute URI) and answers the response head, its body streaming.
    pub async fn send(
        &self,
        mut request: http::Request<SdkBody>,
        connect: Option<Duration>,
        read: Option<Duration>,
    ) -> Result<http::Response<SdkBody>, ConnectorError> {
        let key = target(request.uri()).map_err(ConnectorError::user)?;
        prepare(&mut request, &key).map_err(ConnectorError::user)?;
        let mut pooled = self.take_idle(&key);
        loop {
            let reused = pooled.is_some();
            let mut sender = match pooled.take() {
                Some(s) => s,
                None => self.connect(&key, connect).await?,
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(ConnectorError::io("the connection closed".into()));
            }
            // What to send again should the reused connection turn out to be closed.
            let mut spare = if reused { replayable(&request) } else { None };
            let sent = within(read, sender.try_send_request(request)).await?;
            match sent {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = Pooled::new(body, self.clone(), key, sender);
                    return Ok(http::Response::from_parts(
                        parts,
                        SdkBody::from_body_1_x(body),
                    ));
                }
                Err(mut e) => {
                    let unsent = e.take_message();
                    let e = e.into_error();
                    match unsent.or_else(|| spare.take().filter(|_| closed_under_us(&e))) {
                        Some(again) if reused => request = again,
                        _ => return Err(classify(e)),
                    }
                }
            }
        }
    }
}

/// A copy of `request` to send again when a reused connection was found closed after it was
/// written (the server's idle close crossing our request; a thawed Lambda instance's first
/// call): only for requests that may be repeated, by their method or an idempotency key
/// (`webhook-id` of Standard Webhooks, `idempotency-key`), as Go's HTTP client decides. An
/// AWS call (a POST) is not repeated here; the SDK's retry policy decides.
fn replayable(request: &http::Request<SdkBody>) -> Option<http::Request<SdkBody>> {
    use http::Method;
    let idempotent = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    ) || request.headers().contains_key("idempotency-key")
        || request.headers().contains_key("webhook-id");
    if !idempotent {
        return None;
    }
    let mut copy = http::Request::new(request.body().try_clone()?);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// The connection was closed or reset before any answer came.
fn closed_under_us(e: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let io = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    e.is_incomplete_message()
        || e.is_canceled()
        || matches!(
            io,
            Some(BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof)
        )
}

/// A request's scheme, host and port, from its absolute URI.
fn target(uri: &http::Uri) -> Result<Key, BoxError> {
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL is not http(s)".into()),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or("the URL has no host")?;
    Ok(Key {
        tls,
        host: host.to_owned(),
        port: uri.port_u16().unwrap_or(Key::default_port(tls)),
    })
}

/// Gives `request` a `Host` header (signed requests have one already) and the origin-form
/// target a server expects (`/path?query`).
fn prepare(request: &mut http::Request<SdkBody>, key: &Key) -> Result<(), BoxError> {
    if !request.headers().contains_key(http::header::HOST) {
        let host = if key.port == Key::default_port(key.tls) {
            key.host.clone()
        } else {
            format!("{}:{}", key.host, key.port)
        };
        request
            .headers_mut()
            .insert(http::header::HOST, http::HeaderValue::try_from(host)?);
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::try_from(path)?;
    Ok(())
}

/// `fut` within `limit` (none: no limit); running out is a timeout the SDK may retry.
async fn within<F: Future>(limit: Option<Duration>, fut: F) -> Result<F::Output, ConnectorError> {
    match limit {
        None => Ok(fut.await),
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .map_err(|e| ConnectorError::timeout(e.into())),
    }
}

/// hyper's error as the SDK classifies it: a connection that broke or closed is I/O (the
/// retry policy may try again); a cut-off answer is transient.
fn classify(e: hyper::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_user() {
        ConnectorError::user(e.into())
    } else if e.is_closed() || e.is_canceled() || std::error::Error::source(&e).is_some() {
        ConnectorError::io(e.into())
    } else if e.is_incomplete_message() {
        ConnectorError::other(e.into(), Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(e.into(), None)
    }
}

/// A response body that hands its connection back to the pool once read to the end.
struct Pooled {
    body: Incoming,
    back: Option<(Client, Key, SendRequest<SdkBody>)>,
}

impl Pooled {
    fn new(body: Incoming, client: Client, key: Key, sender: SendRequest<SdkBody>) -> Self {
        let mut pooled = Self {
            body,
            back: Some((client, key, sender)),
        };
        if pooled.body.is_end_stream() {
            pooled.release();
        }
        pooled
    }

    fn release(&mut self) {
        if let Some((client, key, sender)) = self.back.take() {
            client.give_back(key, sender);
        }
    }
}

impl Body for Pooled {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection, in the clear or over TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A [`Client`] with time limits, as the SDK asks for one per set of timeout settings.
#[derive(Clone, Debug)]
pub struct Connector {
    client: Client,
    connect: Option<Duration>,
    read: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let response = this.client.send(request, this.connect, this.read).await?;
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

impl HttpClient for Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(
            self.connector(settings.connect_timeout(), settings.read_timeout()),
        )
    }
}
