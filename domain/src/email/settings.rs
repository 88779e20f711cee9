//! Email settings from variables: whether an address must be proven before it logs in
//! (`REQUIRE_EMAIL_VERIFICATION`), the sender (`EMAIL_SENDER`: `ses`, `webhook` or `log`) and
//! its options, where links point, the templates, and the guard's limits.
//!
//! As with SMS, `EMAIL_SENDER=log` writes codes to the log: it is refused inside Lambda and
//! unless `EMAIL_ALLOW_LOG_SENDER=1` (the dev server sets it). Errors name variables, never
//! values.

use std::{collections::HashMap, time::Duration};

use super::{Email, template::Templates};
use crate::{
    config::Vars,
    otp::Code,
    sms::settings::{
        SmsConfigError as MailConfigError, WebhookConfig, check_webhook_url, count, flag, invalid,
        parse_webhook_secret,
    },
};

/// Amazon SES v2 options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesConfig {
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`).
    pub region: String,
    /// `AWS_ENDPOINT_URL_SESV2` or `AWS_ENDPOINT_URL`, for emulators and VPC endpoints.
    pub endpoint: Option<String>,
    /// `SES_CONFIGURATION_SET`: event publishing, suppression and dedicated IPs per set.
    pub configuration_set: Option<String>,
}

/// Which sender `EMAIL_SENDER` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailConfig {
    Ses(SesConfig),
    /// `EMAIL_WEBHOOK_URL` and `EMAIL_WEBHOOK_SECRET`, as for SMS.
    Webhook(WebhookConfig),
    Log,
}

/// Everything about email.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `REQUIRE_EMAIL_VERIFICATION`: an address not yet proven cannot log in, and a signup
    /// or change of address sends a code and a link.
    pub required: bool,
    /// `None` when `EMAIL_SENDER` is unset: no mail can be sent, verification must stay off.
    pub sender: Option<MailConfig>,
    /// `EMAIL_FROM`: the sender address (an SES verified identity).
    pub from: Option<Email>,
    /// `EMAIL_LINK_URL`: the page links open, with `?token=` added (the app's page, which
    /// POSTs the token). Unset: this API's own `GET /verify/email/link`, which does the same.
    pub link_url: Option<String>,
    pub templates: Templates,
    /// `EMAIL_TIMEOUT_SECONDS` (default 3).
    pub timeout: Duration,
    /// `EMAIL_MAX_PER_ADDRESS_PER_HOUR` (default 5).
    pub per_address: u32,
    /// `EMAIL_MAX_PER_IP_PER_HOUR` (default 20).
    pub per_source: u32,
    /// `EMAIL_DAILY_LIMIT` (default 10,000): mail of every kind per UTC day.
    pub daily: u32,
    /// `EMAIL_TEST_ADDRESSES`: addresses with a fixed code, to which nothing is sent.
    pub test_addresses: TestAddresses,
}

/// Addresses whose code is fixed and to which nothing is ever sent (`EMAIL_TEST_ADDRESSES`,
/// e.g. `reviewer@example.com:123456`), for app-store reviewers and end-to-end tests. Only
/// domains that can never receive mail qualify (RFC 2606 and 6761: `example.com`, `.net`,
/// `.org`, and the `.test`, `.example`, `.invalid` and `.localhost` top-level domains), so a
/// configured code can never take over someone's real address. The flow skips the sender for
/// them but not the attempt limits, and their link tokens are made as for any address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestAddresses(HashMap<String, Code>);

impl TestAddresses {
    const VAR: &'static str = "EMAIL_TEST_ADDRESSES";

    /// Parses comma-separated `address:code` pairs.
    pub fn parse(text: &str) -> Result<Self, MailConfigError> {
        let mut map = HashMap::new();
        for (i, entry) in text.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let n = i + 1;
            let (raw, code) = entry
                .rsplit_once(':')
                .ok_or_else(|| invalid(Self::VAR, format!("entry {n} is not address:code")))?;
            let email =
                Email::parse(raw).map_err(|e| invalid(Self::VAR, format!("entry {n}: {}", e.0)))?;
            let domain = email.domain();
            let reserved = ["example.com", "example.net", "example.org"].contains(&domain)
                || [".example.com", ".example.net", ".example.org"]
                    .iter()
                    .any(|d| domain.ends_with(d))
                || [".test", ".example", ".invalid", ".localhost"]
                    .iter()
                    .any(|t| domain.ends_with(t));
            if !reserved {
                return Err(invalid(
                    Self::VAR,
                    format!(
                        "entry {n} is at a domain that receives mail: test addresses must be at a reserved one"
                    ),
                ));
            }
            let code = Code::fixed(code.trim()).ok_or_else(|| {
                invalid(Self::VAR, format!("entry {n}: the code is not six digits"))
            })?;
            if map.insert(email.as_str().to_owned(), code).is_some() {
                return Err(invalid(Self::VAR, format!("entry {n} repeats an address")));
            }
        }
        Ok(Self(map))
    }

    /// The fixed code of `email`, if it is a test address.
    pub fn code_for(&self, email: &Email) -> Option<&Code> {
        self.0.get(email.as_str())
    }
}

impl MailSettings {
    /// Email off: nothing required, no sender (functions whose routes send no mail).
    pub fn off() -> Self {
        Self {
            required: false,
            sender: None,
            from: None,
            link_url: None,
            templates: Templates::default(),
            timeout: Duration::from_secs(3),
            per_address: 5,
            per_source: 20,
            daily: 10_000,
            test_addresses: TestAddresses::default(),
        }
    }

    /// Reads and checks every email variable.
    pub fn from_vars(vars: &Vars) -> Result<Self, MailConfigError> {
        // Empty counts as unset: a template passes its empty parameters as empty variables.
        let set = |name: &str| vars.get(name).map(str::trim).filter(|v| !v.is_empty());
        let sender = match set("EMAIL_SENDER").map(str::to_ascii_lowercase) {
            None => None,
            Some(kind) => Some(match kind.as_str() {
                "ses" => MailConfig::Ses(ses_config(vars)?),
                "webhook" => MailConfig::Webhook(webhook_config(vars)?),
                "log" => {
                    if vars.get("AWS_LAMBDA_FUNCTION_NAME").is_some() {
                        return Err(invalid(
                            "EMAIL_SENDER",
                            "the log sender is for the dev server and is refused inside Lambda",
                        ));
                    }
                    if !flag(vars, "EMAIL_ALLOW_LOG_SENDER") {
                        return Err(invalid(
                            "EMAIL_SENDER",
                            "the log sender writes codes to the log; set EMAIL_ALLOW_LOG_SENDER=1 to allow it (development only)",
                        ));
                    }
                    MailConfig::Log
                }
                _ => return Err(invalid("EMAIL_SENDER", "must be ses, webhook or log")),
            }),
        };
        let from = match set("EMAIL_FROM") {
            Some(raw) => {
                Some(Email::parse(raw).map_err(|e| invalid("EMAIL_FROM", e.0.to_owned()))?)
            }
            None if matches!(sender, Some(MailConfig::Ses(_) | MailConfig::Webhook(_))) => {
                return Err(MailConfigError::Missing("EMAIL_FROM"));
            }
            None => None,
        };
        let required = flag(vars, "REQUIRE_EMAIL_VERIFICATION");
        if required && sender.is_none() {
            return Err(invalid(
                "REQUIRE_EMAIL_VERIFICATION",
                "is true but EMAIL_SENDER is not set",
            ));
        }
        let link_url = match vars.get("EMAIL_LINK_URL").map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                check_webhook_url(url).map_err(|reason| invalid("EMAIL_LINK_URL", reason))?;
                Some(url.to_owned())
            }
        };
        let templates = match vars.get("EMAIL_TEMPLATES") {
            Some(json) => Templates::parse(json).map_err(|r| invalid("EMAIL_TEMPLATES", r))?,
            None => Templates::default(),
        };
        Ok(Self {
            required,
            sender,
            from,
            link_url,
            templates,
            timeout: Duration::from_secs(u64::from(count(vars, "EMAIL_TIMEOUT_SECONDS", 3)?)),
            per_address: count(vars, "EMAIL_MAX_PER_ADDRESS_PER_HOUR", 5)?,
            per_source: count(vars, "EMAIL_MAX_PER_IP_PER_HOUR", 20)?,
            daily: count(vars, "EMAIL_DAILY_LIMIT", 10_000)?,
            test_addresses: match set(TestAddresses::VAR) {
                Some(text) => TestAddresses::parse(text)?,
                None => TestAddresses::default(),
            },
        })
    }

    /// The dev server's settings: with no `EMAIL_SENDER` set, the log sender is chosen and
    /// allowed.
    pub fn for_dev_server(vars: &Vars) -> Result<Self, MailConfigError> {
        let mut vars = vars.clone();
        if vars.get("EMAIL_SENDER").is_none() {
            vars.set("EMAIL_SENDER", "log");
            vars.set("EMAIL_ALLOW_LOG_SENDER", "1");
        }
        Self::from_vars(&vars)
    }
}

fn ses_config(vars: &Vars) -> Result<SesConfig, MailConfigError> {
    let region = vars
        .get("AWS_REGION")
        .or_else(|| vars.get("AWS_DEFAULT_REGION"))
        .ok_or(MailConfigError::Missing("AWS_REGION"))?
        .trim()
        .to_owned();
    let endpoint = vars
        .get("AWS_ENDPOINT_URL_SESV2")
        .or_else(|| vars.get("AWS_ENDPOINT_URL"))
        .map(str::to_owned);
    let configuration_set = match vars.get("SES_CONFIGURATION_SET").map(str::trim) {
        None | Some("") => None,
        Some(name) => {
            let ok = name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(invalid(
                    "SES_CONFIGURATION_SET",
                    "must be at most 64 letters, digits, '-' and '_'",
                ));
            }
            Some(name.to_owned())
        }
    };
    Ok(SesConfig {
        region,
        endpoint,
        configuration_set,
    })
}

fn webhook_config(vars: &Vars) -> Result<WebhookConfig, MailConfigError> {
    let url = vars
        .get("EMAIL_WEBHOOK_URL")
        .ok_or(MailConfigError::Missing("EMAIL_WEBHOOK_URL"))?
        .trim()
        .to_owned();
    check_webhook_url(&url).map_err(|reason| invalid("EMAIL_WEBHOOK_URL", reason))?;
    let secret = vars
        .get("EMAIL_WEBHOOK_SECRET")
        .ok_or(MailConfigError::Missing("EMAIL_WEBHOOK_SECRET"))?;
    let secret =
        parse_webhook_secret(secret).map_err(|reason| invalid("EMAIL_WEBHOOK_SECRET", reason))?;
    Ok(WebhookConfig { url, secret })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn test_addresses_must_be_at_domains_that_receive_no_mail() {
        let ok = TestAddresses::parse("Reviewer@Example.com:123456, qa@app.test:654321").unwrap();
        let code = |a: &str| {
            ok.code_for(&Email::parse(a).unwrap())
                .map(|c| c.expose().to_owned())
        };
        assert_eq!(code("reviewer@example.com").as_deref(), Some("123456"));
        assert_eq!(code("qa@app.test").as_deref(), Some("654321"));
        assert_eq!(code("someone@gmail.com"), None);
        for bad in [
            "ann@gmail.com:123456",
            "ann@example.co:123456",
            "ann@notexample.com:123456",
            "ann@example.com:12345",
            "ann@example.com",
            "a@example.com:111111,A@example.com:222222",
        ] {
            assert!(TestAddresses::parse(bad).is_err(), "{bad}");
        }
    }
}
