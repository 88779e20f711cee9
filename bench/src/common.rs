//! What every section uses: the table of figures, the release binaries, the configurations
//! the functions start with, and small statistics.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use api_tests::{JWT_KEY, SESSION_KEY, runtime::Function};

/// Every Lambda function, for cold init and sizes.
pub(crate) fn all_functions() -> impl Iterator<Item = &'static str> {
    edge::routes::Function::ALL.into_iter().map(|f| f.name())
}

pub(crate) struct Row {
    figure: String,
    value: String,
    unit: &'static str,
    target: String,
    how: String,
}

pub(crate) struct Table(pub(crate) Vec<Row>);

impl Table {
    pub(crate) fn add(
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

    pub(crate) fn print(&self) {
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

pub(crate) fn release(name: &str) -> PathBuf {
    built(api_tests::root().join("target/release").join(name))
}

/// A function binary (or the bare hello it is compared with) built as Lambda builds it: the
/// flags of `scripts/lambda-env` (position-dependent), x86-64 so that it runs here.
pub(crate) fn lambda_binary(name: &str) -> PathBuf {
    built(
        api_tests::root()
            .join("target/x86_64-unknown-linux-gnu/release")
            .join(name),
    )
}

fn built(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} missing: run scripts/bench, which builds it",
        p.display()
    );
    p
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    quantile(&v, 0.5)
}

/// The `q` quantile (0 to 1) of `sorted`, nearest rank (the upper middle for an even count,
/// as `median` has always taken it); NaN when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (sorted.len().saturating_sub(1) as f64 * q).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) async fn spawn(bin: &Path, name: &str, config: &[(String, String)]) -> Function {
    Function::spawn(bin, name, config, "error").await
}

/// The default configuration: RS256 (a 2048-bit key, the template's default), keys from the
/// environment.
pub(crate) fn env_config(db: &str) -> Vec<(String, String)> {
    let mut c = vec![
        ("MONGO_URI".into(), api_tests::mongo_uri()),
        ("DB_NAME".into(), db.into()),
    ];
    c.extend(rs256_keys());
    c.extend(passkey_vars());
    c
}

/// The relying party's settings, as the template gives the `passkeys` function (the others
/// ignore them): its cold start builds webauthn-rs's relying party.
pub(crate) fn passkey_vars() -> Vec<(String, String)> {
    vec![
        ("PASSKEY_RP_ID".into(), "example.com".into()),
        ("PASSKEY_ORIGINS".into(), "https://app.example.com".into()),
    ]
}

/// [`env_config`] with the HS256 keys of earlier deployments.
pub(crate) fn hs256_env_config(db: &str) -> Vec<(String, String)> {
    vec![
        ("MONGO_URI".into(), api_tests::mongo_uri()),
        ("DB_NAME".into(), db.into()),
        ("JWT_ALGORITHM".into(), "HS256".into()),
        ("JWT_SECRET_KEY".into(), JWT_KEY.into()),
        ("SESSION_SECRET_KEY".into(), SESSION_KEY.into()),
    ]
}

pub(crate) fn embedded_config() -> Vec<(String, String)> {
    let mut c = vec![("USER_API_EMBEDDED_STORE".into(), "1".into())];
    c.extend(rs256_keys());
    c
}

fn rs256_keys() -> Vec<(String, String)> {
    vec![
        ("JWT_ALGORITHM".into(), "RS256".into()),
        ("JWT_PRIVATE_KEY".into(), api_tests::rsa_pem("a")),
        ("SESSION_SECRET_KEY".into(), SESSION_KEY.into()),
    ]
}

pub(crate) fn phone(i: usize) -> String {
    format!("+1202{i:07}")
}

/// The Python with argon2-cffi (`BENCH_PYTHON`, set by scripts/bench).
pub(crate) fn python() -> String {
    std::env::var("BENCH_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into())
}
