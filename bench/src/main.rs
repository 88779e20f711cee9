//! The benchmark runner behind `scripts/bench`: measures what a Lambda user pays for and
//! prints one table, each figure with its unit, its target where the project set one, and how
//! it was measured. Expects release binaries in target/release, the test servers started by
//! scripts/bench (TEST_MONGO_URI, TEST_AWS_ENDPOINT), and criterion's results in
//! target/criterion. One module per section (`BENCH_ONLY` names them), helpers in `common`.
#![allow(clippy::unwrap_used)]

mod argon2;
mod cold_init;
mod common;
mod dev_server;
mod latency;
mod micro;
mod sizes;

use std::{io::Write, time::Instant};

use common::Table;

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores")
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let (starts, warm, puts, logins, argon) = if quick {
        (5, 5, 200, 10, 5)
    } else {
        (41, 30, 2000, 60, 15)
    };
    // BENCH_ONLY=argon2,sizes runs just those sections (for before/after checks of one change).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |section: &str| only.is_empty() || only.split(',').any(|s| s.trim() == section);
    let mut table = Table(Vec::new());
    let started = Instant::now();
    if run("cold_init") {
        cold_init::cold_init(&mut table, starts).await;
    }
    if run("latency") {
        latency::latency(&mut table, warm).await;
    }
    if run("micro") {
        micro::micro(&mut table);
    }
    if run("argon2") {
        argon2::argon2(&mut table, argon);
    }
    if run("dev_server") {
        dev_server::dev_server(&mut table, puts, logins).await;
    }
    if run("sizes") {
        sizes::sizes(&mut table);
    }
    println!(
        "\nMachine: {}. Bench took {:.0} s.\n",
        machine(),
        started.elapsed().as_secs_f64()
    );
    table.print();
    let _ = std::io::stdout().flush();
}
