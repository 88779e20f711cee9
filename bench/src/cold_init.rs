//! Cold init: exec of a release function binary to its first poll of a local Runtime API,
//! against a bare lambda_http hello-world, with the configuration from the environment and from
//! Secrets Manager.
//!
//! Each binary runs from a fresh copy, as Lambda runs one extracted from its zip: started
//! straight from the linker's output file, login took ~0.4 ms longer to its first poll on this
//! machine than a copy of the same file (bench/RESULTS.md, 2026-12-07), which penalised large
//! binaries against the small hello. Each function's starts alternate with the hello's, so
//! every ratio compares starts taken at the same time.

use std::path::PathBuf;

use api_tests::{SESSION_KEY, create_secret, fresh_db, rsa_pem, secrets_client};

use crate::common::{
    Table, all_functions, env_config, hs256_env_config, lambda_binary, median, ms, spawn,
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
    // Medians of `starts` starts of `name`, each right after one of the hello: (hello, name).
    let measure = async |name: &str, config: &[(String, String)]| {
        let bin = installed(name);
        let (mut hello, mut times) = (Vec::new(), Vec::new());
        for _ in 0..starts {
            let h = spawn(&hello_bin, "hello", &[]).await;
            hello.push(ms(h.init_time().await));
            drop(h);
            let f = spawn(&bin, name, config).await;
            times.push(ms(f.init_time().await));
        }
        (median(hello), median(times))
    };
    let mut hellos = Vec::new();
    let mut rows = Vec::new();
    for name in all_functions() {
        let (hello, from_env) = measure(name, &env_config(&db)).await;
        hellos.push(hello);
        rows.push((
            format!("Cold init, {name}, config from env"),
            format!("{from_env:.2} ({:.2}x hello)", from_env / hello),
            "<= 1.3x hello",
            format!("as above, median of {starts}, each after a hello start; RS256 key parsed; Mongo client built (whoami: neither)"),
        ));
    }
    let (hello, hs256) = measure("login", &hs256_env_config(&db)).await;
    hellos.push(hello);
    rows.push((
        "Cold init, login, HS256 config from env".to_owned(),
        format!("{hs256:.2} ({:.2}x hello)", hs256 / hello),
        "",
        format!("as above with JWT_ALGORITHM=HS256, median of {starts}"),
    ));
    for name in all_functions() {
        let (hello, from_secret) = measure(name, &secret_config).await;
        hellos.push(hello);
        rows.push((
            format!("Cold init, {name}, config from Secrets Manager"),
            format!("{from_secret:.2} ({:.2}x hello)", from_secret / hello),
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
}

/// A fresh copy of the Lambda-built binary `name` (see the module's header), in
/// target/bench-installed.
fn installed(name: &str) -> PathBuf {
    let dir = api_tests::root().join("target/bench-installed");
    std::fs::create_dir_all(&dir).expect("target/bench-installed");
    let to = dir.join(name);
    let _ = std::fs::remove_file(&to);
    std::fs::copy(lambda_binary(name), &to).expect("copy of a function binary");
    to
}
