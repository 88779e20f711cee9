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

/// The domain test mail is sent from; [`ses_identity`] registers it with the emulator.
pub const MAIL_DOMAIN: &str = "mail.test";

/// Registers [`MAIL_DOMAIN`] as an SES identity in the emulator (idempotent: an existing one
/// answers an error that is ignored).
pub async fn ses_identity() {
    let _ = reqwest::Client::new()
        .post(format!("{}/v2/email/identities", aws_endpoint()))
        .header("content-type", "application/json")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(serde_json::json!({ "EmailIdentity": MAIL_DOMAIN }).to_string())
        .send()
        .await;
}

/// Every email the emulator recorded to `address`, oldest first: (subject, HTML body).
pub async fn mail_to(address: &str) -> Vec<(String, String)> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", aws_endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["ses"]["Message"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|to| to.iter().any(|a| a == address))
        })
        .map(|m| {
            (
                m["subject"].as_str().unwrap_or_default().to_owned(),
                m["body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The link token in an email body; panics if there is none.
pub fn token_in(body: &str) -> String {
    let at = body
        .find("token=")
        .unwrap_or_else(|| panic!("no link token in {body:?}"));
    body[at + 6..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}
