//! Cold init: exec of a release function binary to its first poll of a local Runtime API,
//! against a bare lambda_http hello-world, with the configuration from the environment and from
//! Secrets Manager.

use std::path::Path;

use api_tests::{JWT_KEY, SESSION_KEY, create_secret, fresh_db, secret_json, secrets_client};

use crate::common::{FUNCTIONS, Table, env_config, median, ms, release, spawn};

pub(crate) async fn cold_init(table: &mut Table, starts: usize) {
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
