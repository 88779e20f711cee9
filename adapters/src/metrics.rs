//! CloudWatch metrics in Embedded Metric Format (EMF): JSON lines on stdout that CloudWatch
//! Logs turns into metrics, so no API call (and no latency, no IAM permission) per request.
//!
//! The domain code is not touched: the handlers already write audit events
//! (`tracing::info!(target: "audit", event = ..., outcome = ...)`), and the logging layer
//! (`edge::telemetry`) passes each one to [`record_audit`], whatever the log level. Cold
//! starts come from `edge::lambda`, store latency from the MongoDB store. After each
//! invocation [`flush`] writes one EMF document per label set, with the invocation's
//! `requestId` and trace id as properties so a metric spike leads back to its log lines.
//!
//! The collector is `metrics_cloudwatch_embedded` (without its Lambda feature, whose
//! `lambda_runtime` would be a second copy); without [`init`] (dev server, tests) every
//! metric is a no-op.
//!
//! Names (namespace `METRICS_NAMESPACE`, default `UserApi`; one dimension, `service`, from
//! `METRICS_SERVICE`, default `user-api`; the template sets it to the stack name). The alarms
//! in `template.yaml` use these names:
//!
//! | metric             | unit         | from audit event  | extra dimension |
//! |--------------------|--------------|-------------------|-----------------|
//! | `Signups`          | Count        | `signup`          | `outcome`       |
//! | `Logins`           | Count        | `login`           | `outcome`       |
//! | `Lockouts`         | Count        | `lockout`         |                 |
//! | `Logouts`          | Count        | `logout`          | `outcome`       |
//! | `PasswordChanges`  | Count        | `password_change` |                 |
//! | `PasswordRehashes` | Count        | `password_rehash` |                 |
//! | `TokenRefreshes`   | Count        | `token_refresh`   | `outcome`       |
//! | `SmsSent`          | Count        | `sms_sent`        |                 |
//! | `SmsRefused`       | Count        | `sms_refused`     |                 |
//! | `EmailsSent`       | Count        | `email_sent`      |                 |
//! | `EmailsRefused`    | Count        | `email_refused`   |                 |
//! | `EmailsVerified`   | Count        | `email_verified`  |                 |
//! | `CodeFailureCaps`  | Count        | `code_failure_cap`|                 |
//! | `FactorChanges`    | Count        | `factor_change`   | `outcome`       |
//! | `StepUps`          | Count        | `step_up`         | `outcome`       |
//! | `HookFailures`     | Count        | `hook`            | `outcome`       |
//! | `FederatedSignIns` | Count        | `federated_signin`| `outcome`       |
//! | `FederatedRefusals`| Count        | `federated_token`, `federated_authorize`, `federated_callback`, `federated_exchange` | `outcome` |
//! | `ColdStarts`       | Count        | (first invocation)|                 |
//! | `StoreLatency`     | Milliseconds | (each store call) |                 |
//!
//! `sms_sent` and `sms_refused` come from the phone verification flows (`service/verify.rs`):
//! `sms_refused` carries a `reason` (cooldown, phone, ip, cc, all, country, provider,
//! no_sender) in its log line. `email_sent`, `email_refused` (reason: cooldown, address, ip,
//! all, provider, no_sender) and `email_verified` come from the email flows
//! (`service/email.rs`). `factor_change` comes from the second-factor flows
//! (`service/mfa.rs`): `outcome` says which (`totp_added`, `totp_removed`,
//! `recovery_codes_regenerated`, `recovery_code_used`, `admin_reset`). `federated_signin`
//! comes from provider sign-ins (`created`, `signed_in`, `link_required`); the refusals from
//! a provider's token refused, a redirect target off the allow-list, a callback's state or
//! code refused (or the user declining: `access_denied`), a one-time code's verifier wrong.

use std::{sync::OnceLock, time::Duration};

use metrics_cloudwatch_embedded::Collector;
use serde_json::{Map, Value};

/// The tracing target of audit events.
pub const AUDIT: &str = "audit";

pub const SIGNUPS: &str = "Signups";
pub const LOGINS: &str = "Logins";
pub const LOCKOUTS: &str = "Lockouts";
pub const LOGOUTS: &str = "Logouts";
pub const PASSWORD_CHANGES: &str = "PasswordChanges";
pub const PASSWORD_REHASHES: &str = "PasswordRehashes";
pub const TOKEN_REFRESHES: &str = "TokenRefreshes";
pub const SMS_SENT: &str = "SmsSent";
pub const SMS_REFUSED: &str = "SmsRefused";
pub const EMAILS_SENT: &str = "EmailsSent";
pub const EMAILS_REFUSED: &str = "EmailsRefused";
pub const EMAILS_VERIFIED: &str = "EmailsVerified";
/// Code routes refused because a phone reached its failed-code cap.
pub const CODE_FAILURE_CAPS: &str = "CodeFailureCaps";
/// Second factors added, removed, reset, and recovery codes used or replaced.
pub const FACTOR_CHANGES: &str = "FactorChanges";
/// Sessions raised to AAL2 by a step-up.
pub const STEP_UPS: &str = "StepUps";
/// Hooks that failed (`failed_closed`: the step refused; `failed_open`: it went on).
pub const HOOK_FAILURES: &str = "HookFailures";
/// Sign-ins with an identity provider (native and browser), by outcome.
pub const FEDERATED_SIGN_INS: &str = "FederatedSignIns";
/// Provider sign-ins refused on the way (tokens, states, codes, redirect targets).
pub const FEDERATED_REFUSALS: &str = "FederatedRefusals";
pub const COLD_STARTS: &str = "ColdStarts";
pub const STORE_LATENCY: &str = "StoreLatency";

/// Audit event -> (metric, whether its `outcome` becomes a dimension).
pub const FROM_AUDIT: [(&str, &str, bool); 21] = [
    ("signup", SIGNUPS, true),
    ("login", LOGINS, true),
    ("lockout", LOCKOUTS, false),
    ("logout", LOGOUTS, true),
    ("password_change", PASSWORD_CHANGES, false),
    ("password_rehash", PASSWORD_REHASHES, false),
    ("token_refresh", TOKEN_REFRESHES, true),
    ("sms_sent", SMS_SENT, false),
    ("sms_refused", SMS_REFUSED, false),
    ("code_failure_cap", CODE_FAILURE_CAPS, false),
    ("email_sent", EMAILS_SENT, false),
    ("email_refused", EMAILS_REFUSED, false),
    ("email_verified", EMAILS_VERIFIED, false),
    ("factor_change", FACTOR_CHANGES, true),
    ("step_up", STEP_UPS, true),
    ("hook", HOOK_FAILURES, true),
    ("federated_signin", FEDERATED_SIGN_INS, true),
    ("federated_token", FEDERATED_REFUSALS, true),
    ("federated_authorize", FEDERATED_REFUSALS, true),
    ("federated_callback", FEDERATED_REFUSALS, true),
    ("federated_exchange", FEDERATED_REFUSALS, true),
];

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Installs the EMF collector as the process's metrics recorder. `None` if one is already
/// installed (a second call) or the builder refused.
pub fn init(namespace: &str, service: &str) -> Option<&'static Collector> {
    if let Some(c) = COLLECTOR.get() {
        return Some(c);
    }
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace.to_owned())
        .with_dimension("service", service.to_owned())
        .init()
        .ok()?;
    for (_, name, _) in FROM_AUDIT {
        metrics::describe_counter!(name, metrics::Unit::Count, "");
    }
    metrics::describe_counter!(COLD_STARTS, metrics::Unit::Count, "");
    metrics::describe_histogram!(STORE_LATENCY, metrics::Unit::Milliseconds, "");
    Some(*COLLECTOR.get_or_init(|| collector))
}

/// [`init`] with `METRICS_NAMESPACE` and `METRICS_SERVICE` from the environment.
pub fn init_from_env() -> Option<&'static Collector> {
    let var = |n: &str, d: &str| {
        std::env::var(n)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| d.to_owned())
    };
    init(
        &var("METRICS_NAMESPACE", "UserApi"),
        &var("METRICS_SERVICE", "user-api"),
    )
}

/// An outcome as a dimension value: the handlers' error codes are short snake_case words;
/// anything else is counted as `other` so a bug cannot create unbounded dimension values.
fn outcome(fields: &Map<String, Value>) -> &str {
    match fields.get("outcome").and_then(Value::as_str) {
        Some(o)
            if !o.is_empty()
                && o.len() <= 40
                && o.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            o
        }
        Some(_) => "other",
        None => "none",
    }
}

/// Counts one audit event (its fields as the logging layer read them).
pub fn record_audit(fields: &Map<String, Value>) {
    let Some(event) = fields.get("event").and_then(Value::as_str) else {
        return;
    };
    let Some((_, name, labelled)) = FROM_AUDIT.iter().find(|(e, _, _)| *e == event) else {
        return;
    };
    if *labelled {
        metrics::counter!(*name, "outcome" => outcome(fields).to_owned()).increment(1);
    } else {
        metrics::counter!(*name).increment(1);
    }
}

/// Counts a cold start (the first invocation of an instance).
pub fn cold_start() {
    metrics::counter!(COLD_STARTS).increment(1);
}

/// Records how long one store call took.
pub fn store_latency(took: Duration) {
    metrics::histogram!(STORE_LATENCY).record(took.as_secs_f64() * 1000.0);
}

/// Writes what was counted since the last flush as EMF lines to `out`, with the
/// invocation's ids as properties. Nothing is written when nothing was counted.
pub fn flush_to(
    out: impl std::io::Write,
    request_id: &str,
    trace_id: Option<&str>,
    function: &str,
) -> std::io::Result<()> {
    let Some(c) = COLLECTOR.get() else {
        return Ok(());
    };
    c.set_property("requestId", request_id)
        .set_property("function", function);
    match trace_id {
        Some(t) => c.set_property("xrayTraceId", t),
        None => c.remove_property("xrayTraceId"),
    };
    c.flush(out)
}

/// [`flush_to`] stdout, where Lambda sends it to CloudWatch Logs.
pub fn flush(request_id: &str, trace_id: Option<&str>, function: &str) {
    let mut buf = Vec::new();
    if flush_to(&mut buf, request_id, trace_id, function).is_ok() && !buf.is_empty() {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&buf);
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect()
    }

    /// The only test in this crate that installs the global recorder.
    #[test]
    fn audit_events_become_emf_documents_with_the_invocation_ids() {
        assert!(init("UserApiTest", "svc").is_some());
        record_audit(&audit(&[("event", "login"), ("outcome", "success")]));
        record_audit(&audit(&[("event", "login"), ("outcome", "success")]));
        record_audit(&audit(&[("event", "login"), ("outcome", "Bad Value!")]));
        record_audit(&audit(&[("event", "lockout")]));
        record_audit(&audit(&[("event", "not_a_metric")]));
        cold_start();
        store_latency(Duration::from_millis(7));
        let mut out = Vec::new();
        assert!(flush_to(&mut out, "req-1", Some("Root=1-x"), "login").is_ok());
        let text = String::from_utf8(out).unwrap_or_default();
        let docs: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(docs.len(), text.lines().count(), "{text}");
        let find = |name: &str, outcome: Option<&str>| {
            docs.iter()
                .find(|d| d.get(name).is_some() && d["outcome"].as_str() == outcome)
                .cloned()
                .unwrap_or(Value::Null)
        };
        let logins = find(LOGINS, Some("success"));
        assert_eq!(logins[LOGINS], 2, "{text}");
        assert_eq!(logins["service"], "svc");
        assert_eq!(logins["requestId"], "req-1");
        assert_eq!(logins["xrayTraceId"], "Root=1-x");
        let directive = &logins["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "UserApiTest");
        assert_eq!(
            directive["Dimensions"][0],
            serde_json::json!(["service", "outcome"])
        );
        assert_eq!(directive["Metrics"][0]["Name"], LOGINS);
        assert_eq!(directive["Metrics"][0]["Unit"], "Count");
        assert_eq!(find(LOGINS, Some("other"))[LOGINS], 1, "{text}");
        let plain = find(LOCKOUTS, None);
        assert_eq!(plain[LOCKOUTS], 1, "{text}");
        assert_eq!(plain[COLD_STARTS], 1, "{text}");
        assert_eq!(plain[STORE_LATENCY], serde_json::json!([7.0]), "{text}");
        assert!(plain.get("not_a_metric").is_none());

        // Counters are deltas: a second flush with nothing new writes nothing.
        let mut again = Vec::new();
        assert!(flush_to(&mut again, "req-2", None, "login").is_ok());
        assert!(again.is_empty(), "{}", String::from_utf8_lossy(&again));
    }
}
