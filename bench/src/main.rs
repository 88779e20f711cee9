//! The benchmark runner behind `scripts/bench`: measures what a Lambda user pays for and
//! prints one table, each figure with its unit, its target where the project set one, and how
//! it was measured. Expects release binaries in target/release, the test servers started by
//! scripts/bench (TEST_MONGO_URI, TEST_AWS_ENDPOINT), and criterion's results in
//! target/criterion.
#![allow(clippy::unwrap_used)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use api_tests::{
    JWT_KEY, SESSION_KEY, create_secret,
    dev_server::{put_last_name, sign_up_users},
    fresh_db, load,
    runtime::Function,
    secret_json, secrets_client,
};
use serde_json::{Value, json};

const FUNCTIONS: [&str; 4] = ["signup", "login", "logout", "update"];

struct Row {
    figure: String,
    value: String,
    unit: &'static str,
    target: String,
    how: String,
}

struct Table(Vec<Row>);

impl Table {
    fn add(
        &mut self,
        figure: impl Into<String>,
        value: impl Into<String>,
        unit: &'static str,
        target: impl Into<String>,
        how: impl Into<String>,
    ) {
        let row = Row {
            figure: figure.into(),
            value: value.into(),
            unit,
            target: target.into(),
            how: how.into(),
        };
        eprintln!("  {}: {} {}", row.figure, row.value, row.unit);
        self.0.push(row);
    }

    fn print(&self) {
        println!("| Figure | Value | Unit | Target | How measured |");
        println!("|---|---|---|---|---|");
        for r in &self.0 {
            println!(
                "| {} | {} | {} | {} | {} |",
                r.figure, r.value, r.unit, r.target, r.how
            );
        }
    }
}

fn release(name: &str) -> PathBuf {
    let p = api_tests::root().join("target/release").join(name);
    assert!(
        p.exists(),
        "{} missing: run scripts/bench, which builds it",
        p.display()
    );
    p
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn spawn(bin: &Path, name: &str, config: &[(String, String)]) -> Function {
    Function::spawn(bin, name, config, "error").await
}

fn env_config(db: &str) -> Vec<(String, String)> {
    vec![
        ("MONGO_URI".into(), api_tests::mongo_uri()),
        ("DB_NAME".into(), db.into()),
        ("JWT_SECRET_KEY".into(), JWT_KEY.into()),
        ("SESSION_SECRET_KEY".into(), SESSION_KEY.into()),
    ]
}

fn embedded_config() -> Vec<(String, String)> {
    vec![
        ("USER_API_EMBEDDED_STORE".into(), "1".into()),
        ("JWT_SECRET_KEY".into(), JWT_KEY.into()),
        ("SESSION_SECRET_KEY".into(), SESSION_KEY.into()),
    ]
}

async fn cold_init(table: &mut Table, starts: usize) {
    eprintln!("cold init ({starts} starts each)");
    let endpoint = api_tests::aws_endpoint();
    let client = secrets_client(&endpoint).await;
    let secret = format!("user-api/bench-{}", fresh_db());
    create_secret(&client, &secret, &secret_json(JWT_KEY, SESSION_KEY)).await;
    let db = fresh_db();
    let secret_config = vec![
        ("SECRET_ID".to_owned(), secret.clone()),
        (
            "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(),
            endpoint.clone(),
        ),
        ("DB_NAME".to_owned(), db.clone()),
    ];
    let measure = async |bin: &Path, name: &str, config: &[(String, String)]| {
        let mut times = Vec::new();
        for _ in 0..starts {
            let f = spawn(bin, name, config).await;
            times.push(ms(f.init_time().await));
        }
        median(times)
    };
    let hello = measure(&release("hello"), "hello", &[]).await;
    table.add(
        "Cold init, bare lambda_http hello-world",
        format!("{hello:.2}"),
        "ms",
        "baseline",
        format!("exec to first poll of a local Runtime API, median of {starts}"),
    );
    for name in FUNCTIONS {
        let from_env = measure(&release(name), name, &env_config(&db)).await;
        table.add(
            format!("Cold init, {name}, config from env"),
            format!("{from_env:.2} ({:.2}x hello)", from_env / hello),
            "ms",
            "<= 1.5x hello",
            format!("as above, median of {starts}; Mongo client built, not connected"),
        );
    }
    for name in FUNCTIONS {
        let from_secret = measure(&release(name), name, &secret_config).await;
        table.add(
            format!("Cold init, {name}, config from Secrets Manager"),
            format!("{from_secret:.2} ({:.2}x hello)", from_secret / hello),
            "ms",
            "",
            format!("as above, GetSecretValue x2 against moto on loopback, median of {starts}"),
        );
    }
}

fn phone(i: usize) -> String {
    format!("+1202{i:07}")
}

async fn latency(table: &mut Table, warm_n: usize) {
    eprintln!("runtime-protocol latency ({warm_n} warm invocations each)");
    let db = fresh_db();
    let config = env_config(&db);
    let signup_ev = |i: usize| {
        api_tests::with_body(
            api_tests::event("signup"),
            &api_tests::signup_body(&phone(i)),
        )
    };
    let login_ev = |p: &str| {
        api_tests::with_body(
            api_tests::event("login"),
            &json!({"phone": p, "password": "securepassword123"}),
        )
    };

    // signup: every invocation a new phone.
    let (first, warm) = measure("signup", &config, 201, warm_n, signup_ev).await;
    report(
        table,
        "signup",
        "MongoDB",
        first,
        warm,
        "201, new phone each time; argon2id hash included",
    );

    // login of phone 0.
    let f = spawn(&release("login"), "login", &config).await;
    f.init_time().await;
    let (s, body, first) = f.invoke(&login_ev(&phone(0))).await;
    assert_eq!(s, 200, "{body}");
    let mut warm = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..warm_n {
        let (s, body, t) = f.invoke(&login_ev(&phone(0))).await;
        assert_eq!(s, 200);
        warm.push(ms(t));
        sessions.push(body);
    }
    report(
        table,
        "login",
        "MongoDB",
        first,
        median(warm),
        "200; argon2id verify included",
    );
    let peak = load::peak_rss_kib(f.child.id()).unwrap_or(0);
    table.add(
        "Peak RSS of the login function after logins",
        format!("{:.1}", peak as f64 / 1024.0),
        "MiB",
        "<= 40",
        format!(
            "VmHWM of the release login binary after {} logins",
            warm_n + 1
        ),
    );
    // One more session for the first logout.
    let (_, extra, _) = f.invoke(&login_ev(&phone(0))).await;
    sessions.push(extra);
    drop(f);

    let auth = |ev: Value, body: &Value| {
        api_tests::with_auth(
            ev,
            body["token"].as_str().unwrap(),
            body["session_token"].as_str().unwrap(),
        )
    };
    let id = sessions[0]["user_id"]["$oid"].as_str().unwrap().to_owned();

    // update: one session, many PUTs.
    let put = |i: usize| {
        auth(
            api_tests::with_body(
                api_tests::event("update"),
                &json!({"_id": {"$oid": id}, "last_name": format!("L{i}")}),
            ),
            &sessions[0],
        )
    };
    let (first, warm) = measure("update", &config, 200, warm_n, put).await;
    report(
        table,
        "update (PUT /user)",
        "MongoDB",
        first,
        warm,
        "200; find session + find-and-modify",
    );

    // logout: a different session each time.
    let out = |k: usize| auth(api_tests::event("logout"), &sessions[k]);
    let (first, warm) = measure("logout", &config, 204, sessions.len() - 1, out).await;
    report(
        table,
        "logout",
        "MongoDB",
        first,
        warm,
        "204; find session + delete",
    );

    // The embedded store, to show the database's share where one process can show it.
    let emb = embedded_config();
    let (first, warm) = measure("signup", &emb, 201, warm_n, signup_ev).await;
    report(
        table,
        "signup",
        "embedded store",
        first,
        warm,
        "201, as above without a database",
    );
    // Five attempts at most: the fifth failure sets the lock, after which answers are 429.
    let (first, warm) = measure("login", &emb, 401, warm_n.min(4), |_| {
        login_ev("+19999999999")
    })
    .await;
    report(
        table,
        "login",
        "embedded store",
        first,
        warm,
        "401 for a phone with no account (the store is per process), same argon2 verify as a success; before the lock",
    );

    // update and logout need a session in the function's own process: the seeded harness.
    for (handler, route, status, how) in [
        (
            "update",
            "update (PUT /user)",
            200,
            "200; bench/src/bin/seeded.rs: the same handler and runtime, embedded store seeded in-process",
        ),
        (
            "logout",
            "logout",
            204,
            "204, a different session each time; bench/src/bin/seeded.rs as above",
        ),
    ] {
        let file =
            std::env::temp_dir().join(format!("bench-seed-{}-{handler}.json", std::process::id()));
        let mut cfg = emb.clone();
        cfg.extend([
            ("BENCH_SEED_HANDLER".to_owned(), handler.to_owned()),
            ("BENCH_SEED_SESSIONS".to_owned(), (warm_n + 1).to_string()),
            ("BENCH_SEED_FILE".to_owned(), file.display().to_string()),
        ]);
        let f = spawn(&release("seeded"), handler, &cfg).await;
        f.init_time().await;
        let seeded: Vec<Value> =
            serde_json::from_slice(&std::fs::read(&file).expect("seed file")).expect("seed json");
        let _ = std::fs::remove_file(&file);
        let id = seeded[0]["user_id"]["$oid"].as_str().unwrap().to_owned();
        let event = |i: usize| {
            if handler == "logout" {
                auth(api_tests::event("logout"), &seeded[i])
            } else {
                auth(
                    api_tests::with_body(
                        api_tests::event("update"),
                        &json!({"_id": {"$oid": id}, "last_name": format!("L{i}")}),
                    ),
                    &seeded[0],
                )
            }
        };
        let (first, warm) = first_and_warm(&f, status, warm_n, event).await;
        report(table, route, "embedded store", first, warm, how);
    }
}

/// Starts the release binary `name` with `config`, waits for its cold init, measures it with
/// [`first_and_warm`] and stops it.
async fn measure(
    name: &str,
    config: &[(String, String)],
    status: u16,
    n: usize,
    event: impl Fn(usize) -> Value,
) -> (Duration, f64) {
    let f = spawn(&release(name), name, config).await;
    f.init_time().await;
    first_and_warm(&f, status, n, event).await
}

/// Invokes `event(0)` (the first invocation after start) and then `event(1..=n)`; every answer
/// must have `status`. Returns the first latency and the median of the rest, in ms.
async fn first_and_warm(
    f: &Function,
    status: u16,
    n: usize,
    event: impl Fn(usize) -> Value,
) -> (Duration, f64) {
    let (s, body, first) = f.invoke(&event(0)).await;
    assert_eq!(s, status, "{body}");
    let mut warm = Vec::new();
    for i in 1..=n {
        let (s, body, t) = f.invoke(&event(i)).await;
        assert_eq!(s, status, "{body}");
        warm.push(ms(t));
    }
    (first, median(warm))
}

fn report(table: &mut Table, function: &str, store: &str, first: Duration, warm: f64, what: &str) {
    table.add(
        format!("First invocation, {function}, {store}"),
        format!("{:.2}", ms(first)),
        "ms",
        "",
        format!("runtime protocol, invoke to posted response: {what}"),
    );
    table.add(
        format!("Warm invocation, {function}, {store}"),
        format!("{warm:.2}"),
        "ms",
        "",
        "median of the following invocations",
    );
}

fn criterion_median_us(id: &str) -> Option<f64> {
    let path = api_tests::root()
        .join("target/criterion")
        .join(id)
        .join("new/estimates.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64().map(|ns| ns / 1e3)
}

fn micro(table: &mut Table) {
    let rows = [
        (
            "put_user_handler",
            "PUT /user handler work, excluding the database",
            "<= 50",
        ),
        (
            "logout_handler",
            "POST /logout handler work, excluding the database",
            "",
        ),
        ("jwt_sign", "JWT sign (HS256)", ""),
        ("jwt_verify", "JWT verify (HS256, all claims)", ""),
        (
            "schema_validate_signup",
            "Schema validation, signup body",
            "",
        ),
        ("session_hmac_check", "Session-token HMAC-SHA256 check", ""),
    ];
    for (id, figure, target) in rows {
        let value = criterion_median_us(id)
            .map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| "not run".into());
        table.add(
            figure,
            value,
            "µs",
            target,
            "criterion median (cargo bench -p bench), embedded store, in process",
        );
    }
}

fn argon2(table: &mut Table, n: usize) {
    use shared::{auth::password, types::Password};
    let pw = Password::unchecked("securepassword123".into());
    let mut hashes = Vec::new();
    let mut hash_t = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        hashes.push(password::hash_blocking(&pw).unwrap());
        hash_t.push(ms(t.elapsed()));
    }
    let mut verify_t = Vec::new();
    for h in hashes.iter().take(n) {
        let t = Instant::now();
        assert!(password::verify_blocking(&pw, h));
        verify_t.push(ms(t.elapsed()));
    }
    let (rh, rv) = (median(hash_t), median(verify_t));
    // The alternative pure-Rust crate at the same parameters (its owasp2 preset is m=19456, t=2, p=1).
    let config = rust_argon2::Config::owasp2();
    let (mut alt_hash, mut alt_verify, mut encoded) = (Vec::new(), Vec::new(), String::new());
    for _ in 0..n {
        let t = Instant::now();
        encoded =
            rust_argon2::hash_encoded(b"securepassword123", b"0123456789abcdef", &config).unwrap();
        alt_hash.push(ms(t.elapsed()));
    }
    for _ in 0..n {
        let t = Instant::now();
        assert!(rust_argon2::verify_encoded(&encoded, b"securepassword123").unwrap());
        alt_verify.push(ms(t.elapsed()));
    }
    let (ah, av) = (median(alt_hash), median(alt_verify));
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into());
    let out = Command::new(python)
        .arg(api_tests::root().join("bench/argon2_ref.py"))
        .arg(n.to_string())
        .output();
    let reference: Option<Value> = out
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok());
    let how = "argon2id m=19456 KiB t=2 p=1, median of runs in this process";
    table.add(
        "argon2id hash, this crate (RustCrypto argon2)",
        format!("{rh:.2}"),
        "ms",
        "",
        how,
    );
    table.add(
        "argon2id verify, this crate",
        format!("{rv:.2}"),
        "ms",
        "",
        how,
    );
    table.add(
        "argon2id hash, rust-argon2 3.0 (alternative crate)",
        format!("{ah:.2}"),
        "ms",
        "",
        how,
    );
    table.add(
        "argon2id verify, rust-argon2 3.0",
        format!("{av:.2}"),
        "ms",
        "",
        how,
    );
    match reference {
        Some(r) => {
            let (ch, cv) = (
                r["hash_ms"].as_f64().unwrap_or(f64::NAN),
                r["verify_ms"].as_f64().unwrap_or(f64::NAN),
            );
            let imp = r["impl"].as_str().unwrap_or("argon2-cffi").to_owned();
            table.add(
                "argon2id hash, C reference",
                format!("{ch:.2}"),
                "ms",
                "",
                format!("{imp} (libargon2), same parameters, same run"),
            );
            table.add(
                "argon2id verify, C reference",
                format!("{cv:.2}"),
                "ms",
                "",
                format!("{imp}, same run"),
            );
            table.add(
                "argon2id hash, ratio ours / C",
                format!("{:.2}", rh / ch),
                "x",
                "<= 1.2",
                "",
            );
            table.add(
                "argon2id verify, ratio ours / C",
                format!("{:.2}", rv / cv),
                "x",
                "<= 1.2",
                "",
            );
            table.add(
                "argon2id hash / verify, ratio rust-argon2 / C",
                format!("{:.2} / {:.2}", ah / ch, av / cv),
                "x",
                "",
                "the alternative crate, for comparison",
            );
        }
        None => table.add(
            "argon2id C reference",
            "not run",
            "",
            "",
            "argon2-cffi missing from .venv (scripts/bench installs it)",
        ),
    }
}

async fn dev_server(table: &mut Table, puts: usize, logins: usize) {
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

fn load_rows(table: &mut Table, route: &str, store: &str, s: &load::Stats, conc: usize) {
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

fn zip_size(file: &Path) -> Option<u64> {
    // Deflate the way cargo lambda's --output-format zip does (level 9), with Python's zipfile.
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into());
    let out = Command::new(python)
        .args(["-c", "import io,sys,zipfile;b=io.BytesIO();z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED,compresslevel=9);z.write(sys.argv[1],'bootstrap');z.close();print(len(b.getvalue()))"])
        .arg(file)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn sizes(table: &mut Table) {
    for name in FUNCTIONS {
        let bin = release(name);
        let raw = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
        let zipped = zip_size(&bin).unwrap_or(0);
        table.add(
            format!("x86-64 release binary / zip, {name}"),
            format!("{:.2} / {:.2}", raw as f64 / 1e6, zipped as f64 / 1e6),
            "MB",
            "",
            "target/release, stripped; zip deflate level 9",
        );
    }
    for name in FUNCTIONS {
        let zip = api_tests::root()
            .join("target/lambda")
            .join(name)
            .join("bootstrap.zip");
        match std::fs::metadata(&zip) {
            Ok(m) => table.add(
                format!("arm64 Lambda zip, {name}"),
                format!("{:.2}", m.len() as f64 / 1e6),
                "MB",
                "<= 4",
                "target/lambda/<name>/bootstrap.zip from scripts/build-lambdas",
            ),
            Err(_) => table.add(
                format!("arm64 Lambda zip, {name}"),
                "not built",
                "",
                "<= 4",
                "run scripts/build-lambdas",
            ),
        }
    }
}

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
        (21, 30, 2000, 60, 15)
    };
    // BENCH_ONLY=argon2,sizes runs just those sections (for before/after checks of one change).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |section: &str| only.is_empty() || only.split(',').any(|s| s.trim() == section);
    let mut table = Table(Vec::new());
    let started = Instant::now();
    if run("cold_init") {
        cold_init(&mut table, starts).await;
    }
    if run("latency") {
        latency(&mut table, warm).await;
    }
    if run("micro") {
        micro(&mut table);
    }
    if run("argon2") {
        argon2(&mut table, argon);
    }
    if run("dev_server") {
        dev_server(&mut table, puts, logins).await;
    }
    if run("sizes") {
        sizes(&mut table);
    }
    println!(
        "\nMachine: {}. Bench took {:.0} s.\n",
        machine(),
        started.elapsed().as_secs_f64()
    );
    table.print();
    let _ = std::io::stdout().flush();
}
