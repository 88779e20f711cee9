//! Cold init: exec of a release function binary to its first poll of a local Runtime API,
//! against a bare lambda_http hello-world, with the configuration from the environment and from
//! Secrets Manager.
//!
//! Each binary runs from a fresh copy, as Lambda runs one extracted from its zip: started
//! straight from the linker's output file, login took ~0.4 ms longer to its first poll on this
//! machine than a copy of the same file (bench/RESULTS.md, 2026-12-07), which penalised large
//! binaries against the small hello. Each function's starts alternate with the hello's, and
//! a row's ratio is the median of its pairs' ratios (quartiles beside it): this machine's
//! speed drifts by +-20 % over minutes, which moved the ratio of two medians by +-0.1x from
//! one run to the next; a pair's two starts are a few milliseconds apart.
//!
//! `BENCH_BASELINE=<dir>` (binaries of another build, e.g. the last commit's, copied there)
//! adds a before/after comparison in the same run ([`baseline`]): each round starts the hello,
//! then this build's binary and the baseline's in alternating order.

use std::path::{Path, PathBuf};

use api_tests::{SESSION_KEY, create_secret, fresh_db, rsa_pem, secrets_client};

use crate::common::{
    Table, all_functions, env_config, hs256_env_config, lambda_binary, median, ms, quantile, spawn,
};

pub(crate) async fn cold_init(table: &mut Table, starts: usize) {
    eprintln!("cold init ({starts} starts each)");
    let endpoint = api_tests::aws_endpoint();
    let client = secrets_client(&endpoint).await;
    let secret = format!("user-api/bench-{}", fresh_db());
    let value = serde_json::json!({"MONGO_URI": api_tests::mongo_uri(),
        "JWT_PRIVATE_KEY": rsa_pem("a"), "SESSION_SECRET_KEY": SESSION_KEY});
    create_secret(&client, &secret, &value.to_string()).await;
    let db = fresh_db();
    let mut secret_config = vec![
        ("SECRET_ID".to_owned(), secret.clone()),
        (
            "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(),
            endpoint.clone(),
        ),
        ("DB_NAME".to_owned(), db.clone()),
        ("JWT_ALGORITHM".to_owned(), "RS256".to_owned()),
    ];
    secret_config.extend(crate::common::passkey_vars());
    let hello_bin = installed("hello");
    // `starts` starts of `name`, each right after one of the hello: the hello's and `name`'s
    // medians, and the ratio of each pair (taken a few ms apart, so a slow spell of the machine
    // slows both) summarised by its median and quartiles.
    let measure = async |name: &str, config: &[(String, String)]| {
        let bin = installed(name);
        let (mut hello, mut times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..starts {
            let h = spawn(&hello_bin, "hello", &[]).await;
            let h_ms = ms(h.init_time().await);
            drop(h);
            let f = spawn(&bin, name, config).await;
            let f_ms = ms(f.init_time().await);
            hello.push(h_ms);
            times.push(f_ms);
            ratios.push(f_ms / h_ms);
        }
        (median(hello), median(times), Ratio::of(ratios))
    };
    let mut hellos = Vec::new();
    let mut rows = Vec::new();
    for name in all_functions() {
        let (hello, from_env, ratio) = measure(name, &env_config(&db)).await;
        hellos.push(hello);
        rows.push((
            format!("Cold init, {name}, config from env"),
            format!("{from_env:.2} ({ratio} hello)"),
            "<= 1.3x hello",
            format!("as above, median of {starts}, each after a hello start; the ratio is the median of the {starts} pairs' (quartiles in brackets); RS256 key parsed (and checked where the function signs); MONGO_URI parsed, the client built once the first poll is sent (whoami: neither)"),
        ));
    }
    let (_, hs256, ratio) = measure("login", &hs256_env_config(&db)).await;
    rows.push((
        "Cold init, login, HS256 config from env".to_owned(),
        format!("{hs256:.2} ({ratio} hello)"),
        "",
        format!("as above with JWT_ALGORITHM=HS256, median of {starts}"),
    ));
    for name in all_functions() {
        let (hello, from_secret, ratio) = measure(name, &secret_config).await;
        hellos.push(hello);
        rows.push((
            format!("Cold init, {name}, config from Secrets Manager"),
            format!("{from_secret:.2} ({ratio} hello)"),
            "",
            format!("as above, RS256 key from the secret, GetSecretValue x2 against moto on loopback, median of {starts}"),
        ));
    }
    table.add(
        "Cold init, bare lambda_http hello-world",
        format!("{:.2}", median(hellos)),
        "ms",
        "baseline",
        format!("exec to first poll of a local Runtime API, median of the medians of {starts} starts beside each row below (each row's ratio is to its own)"),
    );
    for (figure, value, target, how) in rows {
        table.add(figure, value, "ms", target, how);
    }
    if let Some(dir) = std::env::var_os("BENCH_BASELINE") {
        baseline(table, starts, &PathBuf::from(dir), &db).await;
    }
}

/// This build against the binaries in `dir`, interleaved: the cold init of every function both
/// have (config from env), and the time from exec to the first request answered for update
/// (its first invocation reads the session and writes the user, so it waits for the database
/// client whenever it is built).
async fn baseline(table: &mut Table, starts: usize, dir: &Path, db: &str) {
    eprintln!("cold init against the baseline in {}", dir.display());
    let hello_bin = installed("hello");
    let config = env_config(db);
    let copy = |name: &str| install(&dir.join(name), &format!("{name}.baseline"));
    for name in all_functions() {
        if !dir.join(name).exists() {
            continue;
        }
        let (now_bin, base_bin) = (installed(name), copy(name));
        let (mut now, mut base) = (Vec::new(), Vec::new());
        for round in 0..starts {
            let h = spawn(&hello_bin, "hello", &[]).await;
            let h_ms = ms(h.init_time().await);
            drop(h);
            for this in [round % 2 == 0, round % 2 == 1] {
                let bin = if this { &now_bin } else { &base_bin };
                let f = spawn(bin, name, &config).await;
                let r = ms(f.init_time().await) / h_ms;
                if this { now.push(r) } else { base.push(r) }
            }
        }
        table.add(
            format!("Cold init, {name}, config from env: baseline -> this build"),
            format!("{} -> {}", Ratio::of(base), Ratio::of(now)),
            "x hello",
            "",
            format!("interleaved in one run, {starts} rounds (hello, then both builds in alternating order)"),
        );
    }
    if !dir.join("update").exists() {
        return;
    }
    // One account and session for the update requests.
    let signup = spawn(&installed("signup"), "signup", &config).await;
    signup.init_time().await;
    let p = crate::common::phone(900);
    let (s, body, _) = signup
        .invoke(&api_tests::with_body(
            api_tests::event("signup"),
            &api_tests::signup_body(&p),
        ))
        .await;
    assert_eq!(s, 201, "{body}");
    drop(signup);
    let login = spawn(&installed("login"), "login", &config).await;
    login.init_time().await;
    let login_ev = serde_json::json!({"phone": p, "password": "securepassword123"});
    let (s, session, _) = login
        .invoke(&api_tests::with_body(api_tests::event("login"), &login_ev))
        .await;
    assert_eq!(s, 200, "{session}");
    drop(login);
    let put = |i: usize| {
        api_tests::with_auth(
            api_tests::with_body(
                api_tests::event("update"),
                &serde_json::json!({"_id": session["user_id"], "last_name": format!("L{i}")}),
            ),
            session["token"].as_str().unwrap(),
            session["session_token"].as_str().unwrap(),
        )
    };
    let (now_bin, base_bin) = (installed("update"), copy("update"));
    let (mut now, mut base) = (Vec::new(), Vec::new());
    for round in 0..starts {
        for this in [round % 2 == 0, round % 2 == 1] {
            let bin = if this { &now_bin } else { &base_bin };
            let f = spawn(bin, "update", &config).await;
            let init = f.init_time().await;
            let (s, body, first) = f.invoke(&put(round)).await;
            assert_eq!(s, 200, "{body}");
            let total = ms(init + first);
            if this {
                now.push(total)
            } else {
                base.push(total)
            }
        }
    }
    table.add(
        "Cold start and first update answered: baseline -> this build",
        format!("{:.2} -> {:.2}", median(base), median(now)),
        "ms",
        "",
        format!("exec to first poll plus the first PUT /user (find session, find-and-modify), medians of {starts}, interleaved"),
    );
}

/// A fresh copy of the Lambda-built binary `name` (see the module's header), in
/// target/bench-installed.
fn installed(name: &str) -> PathBuf {
    install(&lambda_binary(name), name)
}

/// A fresh copy of the binary `from`, as target/bench-installed/`as_name`.
fn install(from: &Path, as_name: &str) -> PathBuf {
    let dir = api_tests::root().join("target/bench-installed");
    std::fs::create_dir_all(&dir).expect("target/bench-installed");
    let to = dir.join(as_name);
    let _ = std::fs::remove_file(&to);
    std::fs::copy(from, &to).expect("copy of a function binary");
    to
}

/// Paired ratios: median, with the first and third quartiles.
struct Ratio {
    median: f64,
    q1: f64,
    q3: f64,
}

impl Ratio {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(|a, b| a.total_cmp(b));
        Self {
            median: quantile(&v, 0.5),
            q1: quantile(&v, 0.25),
            q3: quantile(&v, 0.75),
        }
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}x [{:.2}-{:.2}]", self.median, self.q1, self.q3)
    }
}
