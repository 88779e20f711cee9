//! A bounded HTTP load generator for loopback tests and benchmarks: a fixed number of requests
//! at a fixed concurrency, with a time limit, recording each latency and status.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: usize,
    pub elapsed: Duration,
    pub statuses: BTreeMap<u16, usize>,
    /// Sorted ascending.
    pub latencies: Vec<Duration>,
}

impl Stats {
    /// Completed requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of latency.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i]
    }

    /// Responses with a 5xx status (a request that failed outright counts as status 0).
    pub fn server_errors(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(s, _)| **s >= 500 || **s == 0)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Sends `total` requests, `concurrency` at a time, stopping early at `limit`. `send(i)` makes
/// and awaits request `i` and returns its status (0 for a transport error).
pub async fn run<F, Fut>(total: usize, concurrency: usize, limit: Duration, send: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u16> + Send,
{
    let send = Arc::new(send);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (send, next, results) = (send.clone(), next.clone(), results.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total || start.elapsed() > limit {
                        break;
                    }
                    let t = Instant::now();
                    let status = send(i).await;
                    if let Ok(mut r) = results.lock() {
                        r.push((status, t.elapsed()));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed();
    let results = results.lock().map(|r| r.clone()).unwrap_or_default();
    let mut stats = Stats {
        requests: results.len(),
        elapsed,
        ..Stats::default()
    };
    for (status, latency) in results {
        *stats.statuses.entry(status).or_default() += 1;
        stats.latencies.push(latency);
    }
    stats.latencies.sort();
    stats
}

/// Resident set size of process `pid` in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident set size of process `pid` in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// A "<field> <n> kB" line of /proc/<pid>/status.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
