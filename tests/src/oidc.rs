//! A real OpenID Connect provider on loopback (`tests/oidc-provider`: oauth2-mock-server under
//! Node, installed by scripts/servers.sh): discovery, a JWKS and signed ID tokens, plus a
//! control port that mints tokens with chosen claims, rotates the signing key and signs with a
//! key it never published. One per test; it ends when the test drops it.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

pub struct OidcProvider {
    _child: Child,
    /// The issuer URL (`http://localhost:<port>`), as its tokens' `iss`.
    pub issuer: String,
    control: String,
}

impl OidcProvider {
    pub async fn start() -> Self {
        let dir = crate::root().join("tests/oidc-provider");
        assert!(
            dir.join("node_modules/oauth2-mock-server").exists(),
            "tests/oidc-provider has no node_modules: scripts/servers.sh installs it"
        );
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the OIDC provider");
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).await.unwrap();
        let urls: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the OIDC provider said {line:?}: {e}"));
        Self {
            _child: child,
            issuer: urls["issuer"].as_str().unwrap().to_owned(),
            control: urls["control"].as_str().unwrap().to_owned(),
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.control))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// An ID token signed with the current key: the provider's `iss`, `iat`, `exp` (in
    /// `expires_in` seconds, default 300), and `claims` over them (`null` removes one).
    pub async fn id_token(&self, claims: Value, expires_in: i64) -> String {
        let (set, remove) = split(claims);
        self.control(
            "/id-token",
            json!({"claims": set, "remove": remove, "expires_in": expires_in}),
        )
        .await["id_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A token with `claims` signed by a key the provider never published, under `kid`.
    pub async fn rogue_id_token(&self, claims: Value, kid: &str) -> String {
        self.control("/rogue-id-token", json!({"claims": claims, "kid": kid}))
            .await["id_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The claims of the ID tokens the next code exchanges issue (who signs in at
    /// `/authorize`); `null` removes one.
    pub async fn login_as(&self, claims: Value) {
        let (set, remove) = split(claims);
        self.control("/login", json!({"claims": set, "remove": remove}))
            .await;
    }

    /// From now on, the code exchange needs this `client_secret`.
    pub async fn require_client_secret(&self, secret: &str) {
        self.control("/client-secret", json!({"secret": secret}))
            .await;
    }

    /// From now on, the code exchange needs Sign in with Apple's client secret: an ES256 JWT
    /// signed by the key `pem` (`kid` `key_id`, `iss` `team_id`, `sub` `client_id`).
    pub async fn require_apple_client_secret(
        &self,
        pem: &str,
        key_id: &str,
        team_id: &str,
        client_id: &str,
    ) {
        self.control(
            "/apple-client-secret",
            json!({"pem": pem, "key_id": key_id, "team_id": team_id, "client_id": client_id}),
        )
        .await;
    }

    /// The browser at the provider's authorization URL: the provider signs the user in at
    /// once and answers with a redirect; its `Location` (our callback, with `code` and
    /// `state`).
    pub async fn visit(&self, authorize_url: &str) -> String {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(authorize_url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 302, "{:?}", r.text().await);
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Makes a new signing key current (published beside the old one); its `kid`.
    pub async fn rotate(&self) -> String {
        self.control("/rotate", json!({})).await["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Claims to set, and the names of those given as `null` (to remove).
fn split(claims: Value) -> (serde_json::Map<String, Value>, Vec<String>) {
    let mut set = serde_json::Map::new();
    let mut remove = Vec::new();
    for (k, v) in claims.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            remove.push(k);
        } else {
            set.insert(k, v);
        }
    }
    (set, remove)
}
