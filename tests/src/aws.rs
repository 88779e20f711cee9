//! The AWS API emulator (moto): its endpoint, Secrets Manager secrets and the SMS it recorded.

use super::*;

/// Endpoint of the AWS API emulator the test setup started.
pub fn aws_endpoint() -> String {
    std::env::var("TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("TEST_AWS_ENDPOINT is not set: run the tests with scripts/test, which starts the AWS emulator")
    })
}

/// A Secrets Manager client for the emulator at `endpoint`.
pub async fn secrets_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .http_client(adapters::secrets::https_client())
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

/// A secret JSON with these keys and the test database URI.
pub fn secret_json(jwt: &str, session: &str) -> String {
    serde_json::json!({"MONGO_URI": mongo_uri(), "JWT_SECRET_KEY": jwt, "SESSION_SECRET_KEY": session}).to_string()
}

/// Creates secret `name` holding `value`; returns its version id (the JWT `kid`).
pub async fn create_secret(client: &SecretsClient, name: &str, value: &str) -> String {
    let create = client.create_secret().name(name);
    let out = create.secret_string(value).send().await.unwrap();
    version_id(out.version_id())
}

/// Stores a new AWSCURRENT version (the old one becomes AWSPREVIOUS); returns its version id.
pub async fn rotate_secret(client: &SecretsClient, name: &str, value: &str) -> String {
    let put = client.put_secret_value().secret_id(name);
    let out = put.secret_string(value).send().await.unwrap();
    version_id(out.version_id())
}

/// The version id of a created or stored secret value.
fn version_id(id: Option<&str>) -> String {
    id.expect("Secrets Manager answered without a version id")
        .to_owned()
}

/// Variables that point the state at secret `name` in the emulator at `endpoint` (HS256, as
/// [`secret_json`] holds HMAC keys; remove `JWT_ALGORITHM` for RS256).
pub fn secret_vars(name: &str, endpoint: &str) -> Vars {
    let mut v = Vars::from_pairs([
        ("SECRET_ID", name),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("JWT_ALGORITHM", "HS256"),
    ]);
    v.set("DB_NAME", fresh_db());
    v
}
