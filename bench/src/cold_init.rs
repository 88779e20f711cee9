//! Cold init: exec of a release function binary to its first poll of a local Runtime API,
//! against a bare lambda_http hello-world, with the configuration from the environment and from
//! Secrets Manager.

use std::path::Path;

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
    let measure = async |bin: &Path, name: &str, config: &[(String, String)]| {
        let mut times = Vec::new();
        for _ in 0..starts {
            let f = spawn(bin, name, config).await;
            times.push(ms(f.init_time().await));
        }
        median(times)
    };
    let hello = measure(&lambda_binary("hello"), "hello", &[]).await;
    table.add(
        "Cold init, bare lambda_http hello-world",
        format!("{hello:.2}"),
        "ms",
        "baseline",
        format!("exec to first poll of a local Runtime API, median of {starts}"),
    );
    for name in all_functions() {
        let from_env = measure(&lambda_binary(name), name, &env_config(&db)).await;
        table.add(
            format!("Cold init, {name}, config from env"),
            format!("{from_env:.2} ({:.2}x hello)", from_env / hello),
            "ms",
            "<= 1.5x hello",
            format!("as above, median of {starts}; RS256 key parsed; Mongo client built, not connected (whoami: neither)"),
        );
    }
    let hs256 = measure(&lambda_binary("login"), "login", &hs256_env_config(&db)).await;
    table.add(
        "Cold init, login, HS256 config from env",
        format!("{hs256:.2} ({:.2}x hello)", hs256 / hello),
        "ms",
        "",
        format!("as above with JWT_ALGORITHM=HS256, median of {starts}"),
    );
    for name in all_functions() {
        let from_secret = measure(&lambda_binary(name), name, &secret_config).await;
        table.add(
            format!("Cold init, {name}, config from Secrets Manager"),
            format!("{from_secret:.2} ({:.2}x hello)", from_secret / hello),
            "ms",
            "",
            format!("as above, RS256 key from the secret, GetSecretValue x2 against moto on loopback, median of {starts}"),
        );
    }
}
