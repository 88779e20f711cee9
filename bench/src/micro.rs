//! Handler micro-benchmarks: criterion's medians from `cargo bench -p bench --bench micro`.

use serde_json::Value;

use crate::common::Table;

pub(crate) fn criterion_median_us(id: &str) -> Option<f64> {
    let path = api_tests::root()
        .join("target/criterion")
        .join(id)
        .join("new/estimates.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64().map(|ns| ns / 1e3)
}

pub(crate) fn micro(table: &mut Table) {
    let rows = [
        (
            "put_user_handler_rs256",
            "PUT /user handler work, excluding the database (RS256, the default; token seen before)",
            "<= 50",
        ),
        (
            "put_user_handler",
            "PUT /user handler work, excluding the database (HS256)",
            "<= 50",
        ),
        (
            "logout_handler",
            "POST /logout handler work, excluding the database",
            "",
        ),
        (
            "jwt_sign_rs256",
            "JWT sign (RS256, login and refresh only)",
            "",
        ),
        (
            "jwt_verify_rs256_first_seen",
            "JWT verify (RS256, all claims), a token the instance has not verified before",
            "<= 50",
        ),
        (
            "jwt_verify_rs256",
            "JWT verify (RS256), a token verified before (a client's next requests)",
            "<= 50",
        ),
        ("jwt_sign", "JWT sign (HS256)", ""),
        (
            "jwt_verify",
            "JWT verify (HS256), a token verified before",
            "",
        ),
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
