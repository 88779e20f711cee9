//! What operations sees of a running function, checked on the real binaries through the
//! Lambda Runtime API: log lines carry the invocation's ids and a `cold_start` flag true only
//! on the first invocation; the EMF lines are valid Embedded Metric Format; a cold-start
//! failure is posted to `/runtime/init/error` with an error type; and the MongoDB URI's
//! options reach the driver instead of being overridden.

use std::{
    io::Read,
    time::{Duration, Instant},
};

use adapters::mongo::{MongoOptions, MongoStore};
use api_tests::{
    runtime::{Function, binary},
    *,
};
use serde_json::{Value, json};

/// A function name as Lambda gives it, unlike the binary's, so the test sees which one a
/// log line carries.
const FUNCTION_NAME: &str = "user-api-test-LoginFunction-AbC123";

async fn spawn(bin: &str, config: &[(&str, String)], log: &str) -> Function {
    let config: Vec<(String, String)> = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Function::spawn(&binary(bin), FUNCTION_NAME, &config, log).await
}

/// Stops the function and returns everything it wrote to stdout, one entry per line.
fn stop(mut f: Function) -> Vec<String> {
    let _ = f.child.kill();
    let _ = f.child.wait();
    let mut out = String::new();
    if let Some(mut s) = f.child.stdout.take() {
        s.read_to_string(&mut out).unwrap();
    }
    out.lines().map(str::to_owned).collect()
}

/// Waits (bounded) for a function that should fail its init to exit; returns its stderr.
/// Sleeps asynchronously: the fake Runtime API runs on this test's runtime and must answer
/// the function's `/runtime/init/error` post meanwhile.
async fn exited(f: &mut Function) -> (std::process::ExitStatus, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = f.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "function kept running after a failed init"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut err = String::new();
    if let Some(mut s) = f.child.stderr.take() {
        s.read_to_string(&mut err).unwrap();
    }
    (status, err)
}

fn login_config(db: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MONGO_URI", mongo_uri()),
        ("DB_NAME", db.to_owned()),
        ("JWT_SECRET_KEY", JWT_KEY.to_owned()),
        ("SESSION_SECRET_KEY", SESSION_KEY.to_owned()),
        ("METRICS_NAMESPACE", "UserApiTest".to_owned()),
        ("METRICS_SERVICE", "obs-test".to_owned()),
    ]
}

fn wrong_login(apigw_request_id: &str) -> Value {
    let mut ev = with_body(
        event("login"),
        &json!({"phone": "5550001111", "password": "not-the-password"}),
    );
    ev["requestContext"]["requestId"] = Value::from(apigw_request_id);
    ev
}

/// Drives three failed logins through the real `login` binary; returns its stdout lines.
async fn three_logins(log: &str) -> Vec<String> {
    let f = spawn("login", &login_config(&fresh_db()), log).await;
    for n in 0..3 {
        let (status, body, _) = f.invoke(&wrong_login(&format!("apigw-{n}"))).await;
        assert_eq!(status, 401, "{body}");
    }
    stop(f)
}

#[tokio::test]
async fn every_line_of_an_invocation_carries_its_ids_and_cold_start_is_true_only_once() {
    let lines = three_logins("info,edge::lambda=debug").await;
    let json: Vec<Value> = lines
        .iter()
        .filter(|l| !l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();

    // One "invocation done" line per invocation (debug, enabled by the target directive).
    let done: Vec<&Value> = json
        .iter()
        .filter(|v| v["message"] == "invocation done")
        .collect();
    assert_eq!(done.len(), 3, "{lines:#?}");
    for (n, v) in done.iter().enumerate() {
        assert_eq!(v["requestId"], format!("req-{n}"), "{v}");
        assert_eq!(v["apigwRequestId"], format!("apigw-{n}"), "{v}");
        assert_eq!(v["function"], FUNCTION_NAME, "{v}");
        assert_eq!(v["cold_start"], n == 0, "{v}");
        assert_eq!(v["status"], 401, "{v}");
        assert_eq!(
            v["xrayTraceId"], "Root=1-00000000-000000000000000000000000",
            "{v}"
        );
        assert_eq!(v["level"], "DEBUG");
    }

    // The handlers' own lines (the audit line of each login) carry the same ids.
    let audits: Vec<&Value> = json.iter().filter(|v| v["target"] == "audit").collect();
    assert_eq!(audits.len(), 3, "{lines:#?}");
    for (n, v) in audits.iter().enumerate() {
        assert_eq!(v["event"], "login");
        assert_eq!(v["requestId"], format!("req-{n}"), "{v}");
        assert_eq!(v["apigwRequestId"], format!("apigw-{n}"), "{v}");
        assert_eq!(v["cold_start"], n == 0, "{v}");
        assert_eq!(v["function"], FUNCTION_NAME);
    }
    // Every line names the function and has Lambda's JSON keys; none leaks a key.
    for v in &json {
        assert_eq!(v["function"], FUNCTION_NAME, "{v}");
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
    }
    let all = lines.join("\n");
    assert!(!all.contains(JWT_KEY) && !all.contains(SESSION_KEY));
    assert!(!all.contains("not-the-password"));
}

#[tokio::test]
async fn a_warn_level_drops_info_lines_but_not_the_metrics() {
    let lines = three_logins("warn").await;
    assert!(
        lines.iter().all(|l| !l.contains("\"target\":\"audit\"")),
        "{lines:#?}"
    );
    let logins: u64 = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["Logins"].as_u64())
        .sum();
    assert_eq!(logins, 3, "{lines:#?}");
}

/// Checks one document against the EMF specification
/// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
/// `_aws.Timestamp` in epoch milliseconds, `CloudWatchMetrics` a non-empty list of directives,
/// each with a `Namespace`, `Dimensions` (lists of at most 30 names, each a string member of
/// the root) and `Metrics` (at most 100 definitions, each naming a root member that is a
/// number or a list of at most 100 numbers, with an optional known `Unit`).
fn check_emf(doc: &Value) -> Result<(), String> {
    const UNITS: [&str; 27] = [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let root = doc.as_object().ok_or("root is not an object")?;
    let aws = root["_aws"].as_object().ok_or("_aws is not an object")?;
    let ts = aws
        .get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("_aws.Timestamp is not a whole number")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    if ts.abs_diff(now) > 3_600_000 {
        return Err(format!("Timestamp {ts} is not epoch milliseconds near now"));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("CloudWatchMetrics is not a non-empty list")?;
    for d in directives {
        let ns = d["Namespace"].as_str().ok_or("Namespace missing")?;
        if ns.is_empty() || ns.len() > 255 {
            return Err(format!("bad Namespace {ns:?}"));
        }
        let sets = d["Dimensions"].as_array().ok_or("Dimensions missing")?;
        for set in sets {
            let set = set.as_array().ok_or("a dimension set is not a list")?;
            if set.len() > 30 {
                return Err("more than 30 dimensions".into());
            }
            for name in set {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                if !root.get(name).is_some_and(Value::is_string) {
                    return Err(format!("dimension {name} is not a string member"));
                }
            }
        }
        let metrics = d["Metrics"].as_array().ok_or("Metrics missing")?;
        if metrics.is_empty() || metrics.len() > 100 {
            return Err(format!("{} metric definitions", metrics.len()));
        }
        for m in metrics {
            let name = m["Name"].as_str().ok_or("a metric has no Name")?;
            if let Some(unit) = m.get("Unit") {
                let unit = unit.as_str().ok_or("Unit is not a string")?;
                if !UNITS.contains(&unit) {
                    return Err(format!("unknown unit {unit}"));
                }
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(vs)) if vs.len() <= 100 && vs.iter().all(Value::is_number) => {}
                other => return Err(format!("metric {name} has value {other:?}")),
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn metrics_lines_are_valid_embedded_metric_format_tied_to_their_invocation() {
    let lines = three_logins("info").await;
    let docs: Vec<Value> = lines
        .iter()
        .filter(|l| l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!docs.is_empty(), "no EMF line: {lines:#?}");
    for d in &docs {
        check_emf(d).unwrap_or_else(|e| panic!("invalid EMF ({e}): {d}"));
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "UserApiTest"
        );
        assert_eq!(d["service"], "obs-test");
        assert_eq!(d["function"], FUNCTION_NAME);
    }
    let of = |req: &str, metric: &str| -> Vec<&Value> {
        docs.iter()
            .filter(|d| d["requestId"] == req && d.get(metric).is_some())
            .collect()
    };
    for n in 0..3 {
        let req = format!("req-{n}");
        let logins = of(&req, "Logins");
        assert_eq!(logins.len(), 1, "{docs:#?}");
        assert_eq!(logins[0]["Logins"], 1);
        let outcome = logins[0]["outcome"].as_str().unwrap();
        assert_ne!(outcome, "success");
        assert_eq!(
            logins[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["service", "outcome"]])
        );
        // Each login looked the phone up: at least one store latency sample, in ms.
        let latency = of(&req, "StoreLatency");
        assert_eq!(latency.len(), 1, "{docs:#?}");
        assert!(
            latency[0]["StoreLatency"]
                .as_array()
                .is_some_and(|v| !v.is_empty())
        );
        // A cold start is counted once, in the first invocation's document.
        assert_eq!(
            of(&req, "ColdStarts").len(),
            usize::from(n == 0),
            "{docs:#?}"
        );
        assert_eq!(
            latency[0]["xrayTraceId"],
            "Root=1-00000000-000000000000000000000000"
        );
    }
}

#[tokio::test]
async fn a_missing_secret_is_reported_to_init_error_with_a_type_and_the_function_exits() {
    let endpoint = aws_endpoint();
    let missing = format!("user-api/missing-{}", fresh_db());
    let mut f = spawn(
        "login",
        &[
            ("SECRET_ID", missing.clone()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint),
        ],
        "info",
    )
    .await;
    let (status, stderr) = exited(&mut f).await;
    assert!(!status.success());
    let report = f.runtime.init_error().expect("no /runtime/init/error post");
    assert_eq!(report["errorType"], "Init.SecretsManager", "{report}");
    let message = report["errorMessage"].as_str().unwrap();
    assert!(message.contains(&missing), "{report}");
    assert!(
        f.runtime
            .first_poll(Duration::from_millis(10))
            .await
            .is_none(),
        "polled for work after a failed init"
    );
    let stdout = stop(f).join("\n");
    assert!(
        stdout.contains("init failed") && stdout.contains("Init.SecretsManager"),
        "{stdout}\n{stderr}"
    );
}

#[tokio::test]
async fn every_function_that_needs_state_reports_a_failed_init_with_its_type() {
    // One main for all (`edge::lambda::serve`): no function may skip the report, the
    // admin function included.
    for function in edge::routes::Function::ALL {
        if !function.needs_state() {
            continue;
        }
        let mut f = spawn(function.name(), &[("MONGO_URI", mongo_uri())], "info").await;
        exited(&mut f).await;
        let report = f
            .runtime
            .init_error()
            .unwrap_or_else(|| panic!("{}: no /runtime/init/error post", function.name()));
        assert_eq!(
            report["errorType"],
            "Init.Configuration",
            "{}: {report}",
            function.name()
        );
    }
}

#[tokio::test]
async fn under_an_emulator_that_refuses_init_errors_the_waiting_invocation_gets_the_cause() {
    // `cargo lambda watch`: AWS_LAMBDA_RUNTIME_API is a URL with a path, and it answers the
    // init error report 500 and leaves the invoker waiting; the function answers that
    // invocation with the cause instead of leaving it to hang.
    let runtime = api_tests::runtime::FakeRuntime::start_emulator().await;
    let f = api_tests::runtime::Function::spawn_on(
        runtime,
        &api_tests::runtime::binary("login"),
        "login",
        &[("MONGO_URI".to_owned(), mongo_uri())],
        "info",
    );
    let outcome = f.runtime.invoke(&event("login")).await;
    let api_tests::runtime::Outcome::Error(e) = outcome else {
        panic!("not an invocation error: {outcome:?}");
    };
    assert_eq!(e["errorType"], "Init.Configuration", "{e}");
    assert!(
        e["errorMessage"]
            .as_str()
            .unwrap()
            .contains("JWT_SECRET_KEY is not set"),
        "{e}"
    );
    assert!(f.runtime.init_error().is_some(), "reported first");
}

#[tokio::test]
async fn a_missing_key_and_a_bad_rust_log_are_init_errors_naming_the_cause() {
    let mut f = spawn("login", &[("MONGO_URI", mongo_uri())], "info").await;
    exited(&mut f).await;
    let report = f.runtime.init_error().expect("no /runtime/init/error post");
    assert_eq!(report["errorType"], "Init.Configuration", "{report}");
    assert!(
        report["errorMessage"]
            .as_str()
            .unwrap()
            .contains("JWT_SECRET_KEY is not set")
    );

    // A directive that does not parse is refused, not read as `info`.
    let mut f = spawn("login", &login_config(&fresh_db()), "info,shared=loud").await;
    exited(&mut f).await;
    let report = f.runtime.init_error().expect("no /runtime/init/error post");
    assert_eq!(report["errorType"], "Init.Logging", "{report}");
    assert!(
        report["errorMessage"]
            .as_str()
            .unwrap()
            .contains("`shared=loud`"),
        "{report}"
    );
}

#[tokio::test]
async fn uri_options_reach_the_driver_and_the_pool_setting_applies_only_when_the_uri_has_none() {
    let opts = |pool| MongoOptions {
        max_pool_size: pool,
        ..MongoOptions::default()
    };
    let base = "mongodb://127.0.0.1:27017/";
    let o = MongoStore::client_options(
        &format!(
            "{base}?maxPoolSize=7&maxIdleTimeMS=1234&serverSelectionTimeoutMS=900&appName=ops"
        ),
        &opts(2),
    )
    .await
    .unwrap();
    assert_eq!(o.max_pool_size, Some(7));
    assert_eq!(o.max_idle_time, Some(Duration::from_millis(1234)));
    assert_eq!(o.server_selection_timeout, Some(Duration::from_millis(900)));
    assert_eq!(o.app_name.as_deref(), Some("ops"));

    // No pool size in the URI: MONGO_MAX_POOL_SIZE (as Settings reads it) applies.
    let mut v = vars();
    v.set("MONGO_MAX_POOL_SIZE", "5");
    let pool = domain::config::Settings::from_vars(&v)
        .unwrap()
        .mongo_pool_size;
    let o = MongoStore::client_options(base, &opts(pool)).await.unwrap();
    assert_eq!(o.max_pool_size, Some(5));
    assert_eq!(o.max_idle_time, Some(Duration::from_secs(60)));
    assert_eq!(o.server_selection_timeout, Some(Duration::from_secs(3)));
    assert_eq!(o.app_name.as_deref(), Some("user-api"));

    // IAM authentication in a default build (without the `mongodb-aws` feature) is refused
    // at init with the way out; the error never echoes the URI.
    let aws = format!("{base}?authMechanism=MONGODB-AWS&authSource=%24external");
    let e = MongoStore::client_options(&aws, &opts(2)).await.err();
    let e = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("--features mongodb-aws"), "{e}");
    assert!(!e.contains("127.0.0.1"), "{e}");
    let bad = MongoStore::client_options("mongodb://u:hunter22@h/?maxPoolSize=x", &opts(2)).await;
    let e = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains("bad MONGO_URI") && !e.contains("hunter22"),
        "{e}"
    );
}

/// A private key whose structure and public half are sound but which ring refuses: the
/// functions that sign (login, refresh) fail their cold start on it, naming the variable and
/// nothing of the key; the ones that only verify never validate the private half, and start.
#[tokio::test]
async fn an_unusable_signing_key_fails_only_the_functions_that_sign() {
    let text = std::fs::read_to_string(api_tests::root().join("tests/fixtures/rsa-b.jwk.json"));
    let mut jwk: serde_json::Value = serde_json::from_str(&text.unwrap()).unwrap();
    jwk["p"] = "AQAB".into();
    let d = jwk["d"].as_str().unwrap().to_owned();
    let config = [
        ("MONGO_URI", mongo_uri()),
        ("JWT_ALGORITHM", "RS256".to_owned()),
        ("JWT_PRIVATE_KEY", jwk.to_string()),
        ("SESSION_SECRET_KEY", api_tests::SESSION_KEY.to_owned()),
    ];
    for name in ["login", "refresh"] {
        let mut f = spawn(name, &config, "info").await;
        exited(&mut f).await;
        let report = f.runtime.init_error().unwrap();
        assert_eq!(
            report["errorType"], "Init.Configuration",
            "{name}: {report}"
        );
        let message = report["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("JWT_PRIVATE_KEY") && message.contains("not a usable"),
            "{name}: {message}"
        );
        assert!(
            !message.contains(&d[..16]),
            "{name}: the message shows the key"
        );
    }
    for name in ["logout", "update", "admin", "keys"] {
        let f = spawn(name, &config, "info").await;
        tokio::time::timeout(Duration::from_secs(15), f.init_time())
            .await
            .unwrap_or_else(|_| panic!("{name} did not start"));
        assert!(f.runtime.init_error().is_none(), "{name}");
        stop(f);
    }
}
