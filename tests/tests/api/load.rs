//! A bounded load test on loopback: the dev server on MongoDB under authenticated PUT /user from
//! many clients. Zero 5xx, and no memory growth between two equal rounds. Prints req/s and p99.
//! `LOAD_REQUESTS` sets the requests per round (default 1,500).

use std::{sync::Arc, time::Duration};

use api_tests::{
    dev_server::{bin, put_last_name, sign_up_users, start_with_keys},
    load,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_updates_give_no_5xx_and_no_memory_growth() {
    let server = start_with_keys(&bin(), true);
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let users =
        Arc::new(sign_up_users(&http, &base, (0..16).map(|i| format!("20255501{i:02}"))).await);
    let round = |n: usize| {
        let (http, base, users) = (http.clone(), base.clone(), users.clone());
        load::run(n, 16, Duration::from_secs(120), move |i| {
            let (http, base, users) = (http.clone(), base.clone(), users.clone());
            async move { put_last_name(&http, &base, &users[i % users.len()], &format!("L{i}")).await }
        })
    };
    let n = std::env::var("LOAD_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let pid = server.child.id();
    let warm = round(n).await;
    let rss_after_warm = load::rss_kib(pid).unwrap();
    let measured = round(n).await;
    let rss_after = load::rss_kib(pid).unwrap();
    for (name, s) in [("warm-up", &warm), ("measured", &measured)] {
        eprintln!(
            "load {name}: {} PUT /user in {:.2} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, statuses {:?}",
            s.requests,
            s.elapsed.as_secs_f64(),
            s.rps(),
            s.quantile(0.5).as_secs_f64() * 1e3,
            s.quantile(0.99).as_secs_f64() * 1e3,
            s.statuses
        );
        assert_eq!(s.requests, n, "{name}: the run hit its time limit");
        assert_eq!(s.server_errors(), 0, "{name}: {:?}", s.statuses);
        assert_eq!(s.statuses.get(&200), Some(&n), "{name}: {:?}", s.statuses);
    }
    eprintln!(
        "load RSS: {rss_after_warm} KiB after warm-up, {rss_after} KiB after the measured round"
    );
    assert!(
        rss_after <= rss_after_warm + rss_after_warm / 10 + 2048,
        "memory grew from {rss_after_warm} to {rss_after} KiB"
    );
}
