//! `cargo lambda watch` as the Lambda service for hooks: it runs the `test-hook` binary
//! (tests/hook-function) under an emulated Lambda control plane and answers the Invoke API
//! (`POST /2015-03-31/functions/<binary>/invocations`), which aws-sdk-lambda reaches through
//! `AWS_ENDPOINT_URL_LAMBDA`. One watch per test: a hook left hanging by one test cannot
//! hold an instance another test waits for.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

/// The hook function's binary name.
pub const FUNCTION: &str = "test-hook";

/// A running `cargo lambda watch`; stopped on drop.
pub struct LambdaWatch {
    _child: Child,
    /// `http://127.0.0.1:<port>`: the Lambda endpoint.
    pub endpoint: String,
    /// The file the `post_confirmation` hook appends its payloads to.
    pub log: PathBuf,
}

/// `cargo-lambda`: `CARGO_LAMBDA_BIN`, else the repo's `.venv` (scripts/servers.sh installs it).
fn cargo_lambda() -> PathBuf {
    std::env::var_os("CARGO_LAMBDA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join(".venv/bin/cargo-lambda"))
}

impl LambdaWatch {
    /// Starts a watch on a free port and waits until the hook function answers an
    /// invocation (the first one builds it, which takes a while on a cold cache).
    pub async fn start() -> Self {
        let port = crate::free_port();
        let log = std::env::temp_dir().join(format!("test-hook-{}.jsonl", crate::fresh_db()));
        let bin = cargo_lambda();
        assert!(
            bin.exists(),
            "{} is missing: scripts/servers.sh installs cargo-lambda",
            bin.display()
        );
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new(&bin)
            .args(["lambda", "watch", "--ignore-changes", "--quiet"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .args(["--concurrency", "4", "--manifest-path"])
            .arg(crate::root().join("tests/hook-function/Cargo.toml"))
            .current_dir(crate::root())
            .env("PATH", path)
            .env("TEST_HOOK_LOG", &log)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cargo lambda watch starts");
        let watch = Self {
            _child: child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        watch.ready(Duration::from_secs(600)).await;
        watch
    }

    /// Waits until an invocation of the hook function answers.
    async fn ready(&self, limit: Duration) {
        let started = Instant::now();
        let client = reqwest::Client::new();
        let url = format!(
            "{}/2015-03-31/functions/{FUNCTION}/invocations",
            self.endpoint
        );
        loop {
            let answer = client
                .post(&url)
                .body(r#"{"type":"pre_signup"}"#)
                .timeout(Duration::from_secs(300))
                .send()
                .await;
            if let Ok(r) = answer
                && r.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "cargo lambda watch did not run {FUNCTION} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// What the `post_confirmation` hook was sent so far, one JSON payload each.
    pub fn confirmations(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
