//! A Lambda Runtime API served locally, so the real function binaries can be driven through
//! the same protocol AWS uses: the binary polls `/invocation/next`, we hand it an event, it
//! posts the response back.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex as StdMutex, OnceLock},
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response,
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{
    net::TcpListener,
    sync::{Mutex, Notify, mpsc, oneshot},
};

/// What the function sent back for one invocation.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A posted response (for lambda_http: `{statusCode, headers, body, ...}`).
    Response(Value),
    /// A posted invocation error.
    Error(Value),
}

struct Invocation {
    id: String,
    event: Value,
    reply: oneshot::Sender<Outcome>,
}

struct Inner {
    queue: Mutex<mpsc::Receiver<Invocation>>,
    in_flight: StdMutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: OnceLock<Instant>,
    polled: Notify,
    init_error: StdMutex<Option<Value>>,
    /// Behaves as `cargo lambda watch` does: serves under `/.rt/<function>`, names itself by a
    /// whole URL in `AWS_LAMBDA_RUNTIME_API`, and refuses (500) an init error report.
    emulator: bool,
}

/// A local Runtime API endpoint.
pub struct FakeRuntime {
    addr: SocketAddr,
    tx: mpsc::Sender<Invocation>,
    inner: Arc<Inner>,
    next_id: std::sync::atomic::AtomicU64,
}

fn reply(status: u16, body: Bytes, headers: &[(&str, String)]) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn handle(
    inner: Arc<Inner>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut path = req.uri().path().to_owned();
    if inner.emulator {
        let rest = path.strip_prefix("/.rt/").unwrap_or_default();
        path = rest
            .find('/')
            .map(|i| rest[i..].to_owned())
            .unwrap_or_default();
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let json = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let accepted = reply(202, Bytes::from_static(b"{}"), &[]);
    if path == "/2018-06-01/runtime/invocation/next" {
        inner.first_poll.get_or_init(Instant::now);
        inner.polled.notify_waiters();
        let next = inner.queue.lock().await.recv().await;
        let Some(inv) = next else {
            return Ok(reply(500, Bytes::new(), &[]));
        };
        inner
            .in_flight
            .lock()
            .map(|mut m| m.insert(inv.id.clone(), inv.reply))
            .ok();
        let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        return Ok(reply(
            200,
            Bytes::from(inv.event.to_string()),
            &[
                ("content-type", "application/json".into()),
                ("lambda-runtime-aws-request-id", inv.id.clone()),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:test".into(),
                ),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000".into(),
                ),
            ],
        ));
    }
    if path == "/2018-06-01/runtime/init/error" {
        inner.init_error.lock().map(|mut e| *e = Some(json())).ok();
        if inner.emulator {
            return Ok(reply(500, Bytes::new(), &[]));
        }
        return Ok(accepted);
    }
    if let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") {
        let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
        let outcome = if kind == "response" {
            Outcome::Response(json())
        } else {
            Outcome::Error(json())
        };
        if let Some(tx) = inner.in_flight.lock().ok().and_then(|mut m| m.remove(id)) {
            let _ = tx.send(outcome);
        }
        return Ok(accepted);
    }
    Ok(reply(404, Bytes::new(), &[]))
}

impl FakeRuntime {
    /// Starts serving on a free loopback port.
    pub async fn start() -> Self {
        Self::serve(false).await
    }

    /// Starts one that behaves as `cargo lambda watch` does (see `Inner::emulator`).
    pub async fn start_emulator() -> Self {
        Self::serve(true).await
    }

    async fn serve(emulator: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let inner = Arc::new(Inner {
            queue: Mutex::new(rx),
            in_flight: StdMutex::new(HashMap::new()),
            first_poll: OnceLock::new(),
            polled: Notify::new(),
            init_error: StdMutex::new(None),
            emulator,
        });
        let served = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let inner = served.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(inner.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            tx,
            inner,
            next_id: 0.into(),
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API` (a whole URL for an emulator).
    pub fn addr(&self) -> String {
        if self.inner.emulator {
            format!("http://{}/.rt/function", self.addr)
        } else {
            self.addr.to_string()
        }
    }

    /// Hands `event` to the function and waits (bounded) for what it posts back.
    pub async fn invoke(&self, event: &Value) -> Outcome {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Invocation {
                id: format!("req-{n}"),
                event: event.clone(),
                reply,
            })
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("function did not answer in 30 s")
            .unwrap()
    }

    /// When the function first asked for work (its init finished), waiting up to `limit`.
    pub async fn first_poll(&self, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.inner.polled.notified();
            if let Some(t) = self.inner.first_poll.get() {
                return Some(*t);
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return self.inner.first_poll.get().copied();
            }
        }
    }

    /// The init error the function reported, if any.
    pub fn init_error(&self) -> Option<Value> {
        self.inner.init_error.lock().ok().and_then(|e| e.clone())
    }
}

/// Environment the Lambda service gives every function, pointed at `runtime`.
pub fn lambda_env(runtime: &FakeRuntime, function: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime.addr()),
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Path of a workspace binary built by `cargo build` (scripts/test builds them first).
pub fn binary(name: &str) -> std::path::PathBuf {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| crate::root().join("target"));
    let path = dir.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test, which builds the binaries first",
        path.display()
    );
    path
}

/// A function binary running against its own [`FakeRuntime`]; killed on drop.
pub struct Function {
    pub child: crate::Process,
    pub runtime: FakeRuntime,
    /// When the process was started (cold-init measurements count from here).
    pub spawned: Instant,
}

impl Function {
    /// Starts `bin` as function `name` with only the Lambda environment, `config`, the AWS
    /// credentials/region variables and PATH: no key is inherited. Output is captured.
    pub async fn spawn(
        bin: &std::path::Path,
        name: &str,
        config: &[(String, String)],
        log: &str,
    ) -> Self {
        Self::spawn_on(FakeRuntime::start().await, bin, name, config, log)
    }

    /// [`Function::spawn`] against `runtime`.
    pub fn spawn_on(
        runtime: FakeRuntime,
        bin: &std::path::Path,
        name: &str,
        config: &[(String, String)],
        log: &str,
    ) -> Self {
        let mut cmd = std::process::Command::new(bin);
        cmd.env_clear()
            .envs(lambda_env(&runtime, name))
            // The test keys are HMAC keys; a config may still choose RS256.
            .env("JWT_ALGORITHM", "HS256")
            .envs(config.iter().cloned())
            .env("RUST_LOG", log)
            .current_dir(std::env::temp_dir())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_EC2_METADATA_DISABLED",
            "PATH",
        ] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        let spawned = Instant::now();
        let child = crate::Process(cmd.spawn().unwrap());
        Self {
            child,
            runtime,
            spawned,
        }
    }

    /// Time from start to the first poll for work: the cold init.
    pub async fn init_time(&self) -> Duration {
        let polled = self
            .runtime
            .first_poll(Duration::from_secs(20))
            .await
            .expect("function never polled for work");
        polled - self.spawned
    }

    /// Invokes and returns the posted response's status, parsed body and the round-trip time.
    /// An invocation error (what a client mistake must never become) panics.
    pub async fn invoke(&self, event: &Value) -> (u16, Value, Duration) {
        let t = Instant::now();
        let out = self.runtime.invoke(event).await;
        let took = t.elapsed();
        match out {
            Outcome::Response(r) => {
                let body = r["body"]
                    .as_str()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null);
                (r["statusCode"].as_u64().unwrap_or(0) as u16, body, took)
            }
            Outcome::Error(e) => panic!(
                "function reported an invocation error (a client error must be a response): {e}"
            ),
        }
    }
}
