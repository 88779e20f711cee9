//! The release dev-server under load on loopback: PUT /user and POST /login throughput and
//! latency, on MongoDB and on the embedded store.

use std::{sync::Arc, time::Duration};

use api_tests::{
    dev_server::{put_last_name, sign_up_users},
    load,
};
use serde_json::json;

use crate::common::{Table, ms, phone, release};

pub(crate) async fn dev_server(table: &mut Table, puts: usize, logins: usize) {
    eprintln!("dev-server load");
    for mongo in [true, false] {
        let store = if mongo { "MongoDB" } else { "embedded store" };
        let server = api_tests::dev_server::start_with_keys(&release("dev-server"), mongo);
        let http = reqwest::Client::new();
        let base = server.base.clone();
        let users = Arc::new(sign_up_users(&http, &base, (0..8).map(|i| phone(100 + i))).await);
        let (h, b, u) = (http.clone(), base.clone(), users.clone());
        let s =
            load::run(puts, 8, Duration::from_secs(120), move |i| {
                let (http, base, users) = (h.clone(), b.clone(), u.clone());
                async move {
                    put_last_name(&http, &base, &users[i % users.len()], &format!("L{i}")).await
                }
            })
            .await;
        load_rows(table, "PUT /user", store, &s, 8);
        let (h, b) = (http.clone(), base.clone());
        let s = load::run(logins, 2, Duration::from_secs(120), move |i| {
            let (http, base) = (h.clone(), b.clone());
            async move {
                let body = json!({"phone": phone(100 + i % 8), "password": "securepassword123"});
                http.post(format!("{base}/login"))
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        })
        .await;
        load_rows(table, "POST /login", store, &s, 2);
    }
}

pub(crate) fn load_rows(table: &mut Table, route: &str, store: &str, s: &load::Stats, conc: usize) {
    let how = format!(
        "release dev-server, {} requests, {conc} concurrent, from the bench process on loopback; statuses {:?}",
        s.requests, s.statuses
    );
    table.add(
        format!("Dev server {route} throughput, {store}"),
        format!("{:.0}", s.rps()),
        "req/s",
        "",
        how,
    );
    table.add(
        format!("Dev server {route} p50 / p99, {store}"),
        format!("{:.2} / {:.2}", ms(s.quantile(0.5)), ms(s.quantile(0.99))),
        "ms",
        "",
        "same run",
    );
}
