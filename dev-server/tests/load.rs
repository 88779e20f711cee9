//! A bounded load test on loopback: the dev server on MongoDB under authenticated PUT /user from
//! many clients. Zero 5xx, and no memory growth between two equal rounds. Prints req/s and p99.
//! `LOAD_REQUESTS` sets the requests per round (default 1,500).
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use api_tests::{dev_server::start_with_keys, load};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_updates_give_no_5xx_and_no_memory_growth() {
    let server = start_with_keys(std::path::Path::new(env!("CARGO_BIN_EXE_dev-server")), true);
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let mut users = Vec::new();
    for i in 0..16 {
        let phone = format!("20255501{i:02}");
        let body = json!({"first_name": "Load", "last_name": "Test", "password": "securepassword123", "phone": phone});
        assert_eq!(
            http.post(format!("{base}/signup"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        let login: Value = http
            .post(format!("{base}/login"))
            .json(&json!({"phone": phone, "password": "securepassword123"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        users.push((
            login["user_id"]["$oid"].as_str().unwrap().to_owned(),
            login["token"].as_str().unwrap().to_owned(),
            login["session_token"].as_str().unwrap().to_owned(),
        ));
    }
    let users = Arc::new(users);
    let round = |n: usize| {
        let (http, base, users) = (http.clone(), base.clone(), users.clone());
        load::run(n, 16, Duration::from_secs(120), move |i| {
            let (http, base, users) = (http.clone(), base.clone(), users.clone());
            async move {
                let (id, jwt, st) = &users[i % users.len()];
                let body = json!({"_id": {"$oid": id}, "last_name": format!("L{i}")});
                match http
                    .put(format!("{base}/user"))
                    .header("Authorization", jwt)
                    .header("Session-Token", st)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                }
            }
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
