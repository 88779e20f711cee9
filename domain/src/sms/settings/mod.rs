//! SMS settings from variables: the sender (`SMS_SENDER`) and its options, test numbers, the
//! default region for national input, and the cost guard's limits.
//!
//! Why the log sender needs a second switch: it writes codes to the log, which in production
//! would hand every code to whoever reads CloudWatch. So `SMS_SENDER=log` is refused unless
//! `SMS_ALLOW_LOG_SENDER=1` is set too (the dev server sets it), and refused inside Lambda
//! (`AWS_LAMBDA_FUNCTION_NAME` set) whatever the flags say. Errors name variables, never values.

use std::{collections::HashMap, time::Duration};

use base64::Engine;

use super::guard::GuardSettings;
use crate::{
    config::{Secret, Vars},
    otp::Code,
    phone::{self, PhoneError},
    types::Phone,
};

/// Default time one send may take, connection included.
const DEFAULT_TIMEOUT_SECS: u64 = 3;

/// Standard Webhooks: secrets are 24 to 64 random bytes.
const WEBHOOK_SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Why SMS settings were refused. Names the variable, never its value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SmsConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> SmsConfigError {
    SmsConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// A whole number above zero that fits a `u32`, or `default` when unset.
pub(crate) fn count(vars: &Vars, name: &'static str, default: u32) -> Result<u32, SmsConfigError> {
    match vars.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(name, "not a whole number from 1 to 4294967295")),
    }
}

pub(crate) fn flag(vars: &Vars, name: &str) -> bool {
    matches!(
        vars.get(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref(),
        Some("1" | "true" | "yes")
    )
}

/// Amazon SNS options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsConfig {
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`).
    pub region: String,
    /// `AWS_ENDPOINT_URL_SNS` or `AWS_ENDPOINT_URL`, for emulators and VPC endpoints.
    pub endpoint: Option<String>,
    /// `SMS_SENDER_ID` -> `AWS.SNS.SMS.SenderID`: 1-11 letters and digits, at least one letter
    /// (where the destination country supports alphanumeric sender ids).
    pub sender_id: Option<String>,
    /// `SMS_ORIGINATION_NUMBER` -> `AWS.MM.SMS.OriginationNumber`: an E.164 number the account
    /// owns (toll-free, 10DLC or short code), required for US destinations.
    pub origination_number: Option<String>,
}

/// Signed-webhook options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `SMS_WEBHOOK_URL`: `https://`, or `http://` to a loopback host only (tests, sidecars).
    pub url: String,
    /// `SMS_WEBHOOK_SECRET`: `whsec_` and the base64 of the key bytes (Standard Webhooks).
    pub secret: Secret,
}

/// Which sender `SMS_SENDER` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderConfig {
    Sns(SnsConfig),
    Webhook(WebhookConfig),
    /// Logs the message at target `sms_log` (dev server only).
    Log,
}

/// Phones whose code is fixed and to which nothing is ever sent (`SMS_TEST_NUMBERS`, e.g.
/// `+15555550100:123456,+15555550101:654321`), for app-store reviewers and end-to-end tests.
///
/// A test number must be fictional: libphonenumber must not hold it valid (the `+1 555 555
/// 01xx` range is reserved for fiction), so a configured code can never take over a phone that
/// belongs to someone. The flow skips the sender for these numbers but not the attempt limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestNumbers(HashMap<String, (Phone, Code)>);

impl TestNumbers {
    const VAR: &'static str = "SMS_TEST_NUMBERS";

    /// Parses the variable's text: comma-separated `phone:code` pairs.
    pub fn parse(text: &str) -> Result<Self, SmsConfigError> {
        let mut map = HashMap::new();
        for (i, entry) in text.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let n = i + 1;
            let (raw_phone, raw_code) = entry
                .rsplit_once(':')
                .ok_or_else(|| invalid(Self::VAR, format!("entry {n} is not phone:code")))?;
            let phone = phone::unchecked_e164(raw_phone)
                .map_err(|e| invalid(Self::VAR, format!("entry {n}: {e}")))?;
            if phone::parse_e164(phone.as_str(), None).is_ok() {
                return Err(invalid(
                    Self::VAR,
                    format!("entry {n} is a real, valid number: test numbers must be fictional"),
                ));
            }
            let code = Code::fixed(raw_code.trim()).ok_or_else(|| {
                invalid(Self::VAR, format!("entry {n}: the code is not six digits"))
            })?;
            if map
                .insert(phone.as_str().to_owned(), (phone, code))
                .is_some()
            {
                return Err(invalid(Self::VAR, format!("entry {n} repeats a phone")));
            }
        }
        Ok(Self(map))
    }

    /// The fixed code of `phone`, if it is a test number.
    pub fn code_for(&self, phone: &Phone) -> Option<&Code> {
        self.0.get(phone.as_str()).map(|(_, c)| c)
    }

    /// The test number `raw` is written as, if it is one (any formatting, `+` required).
    /// A map lookup on the digits: no libphonenumber work for input that is not one.
    pub fn find(&self, raw: &str) -> Option<&Phone> {
        let digits = phone::strip_formatting(raw).ok()?;
        self.0.get(&digits).map(|(p, _)| p)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Everything SMS needs, read once per cold start.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// `None` when `SMS_SENDER` is unset: no SMS can be sent, verification must stay off.
    pub sender: Option<SenderConfig>,
    /// `SMS_TIMEOUT_SECONDS` (default 3): the longest one send may take.
    pub timeout: Duration,
    /// `PHONE_DEFAULT_REGION` (default [`phone::DEFAULT_REGION`]): region of national input.
    pub default_region: String,
    pub test_numbers: TestNumbers,
    pub guard: GuardSettings,
}

impl SmsSettings {
    /// Reads and checks every SMS variable.
    pub fn from_vars(vars: &Vars) -> Result<Self, SmsConfigError> {
        let default_region = vars
            .get("PHONE_DEFAULT_REGION")
            .unwrap_or(phone::DEFAULT_REGION)
            .trim()
            .to_ascii_uppercase();
        if phone::region(&default_region).is_none() {
            return Err(invalid(
                "PHONE_DEFAULT_REGION",
                "not an ISO 3166 alpha-2 region code",
            ));
        }
        let sender = match vars
            .get("SMS_SENDER")
            .map(|s| s.trim().to_ascii_lowercase())
        {
            None => None,
            Some(kind) => Some(match kind.as_str() {
                "sns" => SenderConfig::Sns(sns_config(vars)?),
                "webhook" => SenderConfig::Webhook(webhook_config(vars)?),
                "log" => {
                    if vars.get("AWS_LAMBDA_FUNCTION_NAME").is_some() {
                        return Err(invalid(
                            "SMS_SENDER",
                            "the log sender is for the dev server and is refused inside Lambda",
                        ));
                    }
                    if !flag(vars, "SMS_ALLOW_LOG_SENDER") {
                        return Err(invalid(
                            "SMS_SENDER",
                            "the log sender writes codes to the log; set SMS_ALLOW_LOG_SENDER=1 to allow it (development only)",
                        ));
                    }
                    SenderConfig::Log
                }
                _ => return Err(invalid("SMS_SENDER", "must be sns, webhook or log")),
            }),
        };
        let timeout = Duration::from_secs(u64::from(count(
            vars,
            "SMS_TIMEOUT_SECONDS",
            DEFAULT_TIMEOUT_SECS as u32,
        )?));
        let test_numbers = match vars.get(TestNumbers::VAR) {
            Some(text) => TestNumbers::parse(text)?,
            None => TestNumbers::default(),
        };
        Ok(Self {
            sender,
            timeout,
            default_region,
            test_numbers,
            guard: GuardSettings::from_vars(vars)?,
        })
    }

    /// The dev server's settings: as [`Self::from_vars`], but with no `SMS_SENDER` set the log
    /// sender is chosen and allowed.
    pub fn for_dev_server(vars: &Vars) -> Result<Self, SmsConfigError> {
        let mut vars = vars.clone();
        if vars.get("SMS_SENDER").is_none() {
            vars.set("SMS_SENDER", "log");
            vars.set("SMS_ALLOW_LOG_SENDER", "1");
        }
        Self::from_vars(&vars)
    }

    /// A phone as a verification flow takes it: one of the configured test numbers, or
    /// strictly valid in the default region and in a country of `SMS_ALLOWED_COUNTRY_CODES`
    /// (checked before parsing, see [`phone::parse_e164_in`]).
    pub fn parse_phone(&self, raw: &str) -> Result<Phone, PhoneError> {
        if let Some(p) = self.test_numbers.find(raw) {
            return Ok(p.clone());
        }
        phone::parse_e164_in(
            raw,
            Some(&self.default_region),
            self.guard.allowed_country_codes.as_ref(),
        )
    }

    /// The fixed code of a test number: the flow stores its hash and sends nothing.
    pub fn test_code(&self, phone: &Phone) -> Option<&Code> {
        self.test_numbers.code_for(phone)
    }
}

fn sns_config(vars: &Vars) -> Result<SnsConfig, SmsConfigError> {
    let region = vars
        .get("AWS_REGION")
        .or_else(|| vars.get("AWS_DEFAULT_REGION"))
        .ok_or(SmsConfigError::Missing("AWS_REGION"))?
        .trim()
        .to_owned();
    let sender_id = match vars.get("SMS_SENDER_ID").map(str::trim) {
        None => None,
        Some(id) => {
            let ok = (1..=11).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric())
                && id.bytes().any(|b| b.is_ascii_alphabetic());
            if !ok {
                return Err(invalid(
                    "SMS_SENDER_ID",
                    "must be 1 to 11 letters and digits with at least one letter",
                ));
            }
            Some(id.to_owned())
        }
    };
    let origination_number = match vars.get("SMS_ORIGINATION_NUMBER") {
        None => None,
        // Short codes (5-6 digits) are allowed too: SNS takes them as origination identities.
        Some(raw) => Some(match phone::unchecked_e164(raw) {
            Ok(p) => p.as_str().to_owned(),
            Err(_) => {
                let t = raw.trim();
                if (5..=6).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
                    t.to_owned()
                } else {
                    return Err(invalid(
                        "SMS_ORIGINATION_NUMBER",
                        "must be an E.164 number (+ and country code) or a short code",
                    ));
                }
            }
        }),
    };
    Ok(SnsConfig {
        region,
        endpoint: vars
            .get("AWS_ENDPOINT_URL_SNS")
            .or_else(|| vars.get("AWS_ENDPOINT_URL"))
            .map(|s| s.trim().to_owned()),
        sender_id,
        origination_number,
    })
}

fn webhook_config(vars: &Vars) -> Result<WebhookConfig, SmsConfigError> {
    let url = vars
        .get("SMS_WEBHOOK_URL")
        .ok_or(SmsConfigError::Missing("SMS_WEBHOOK_URL"))?
        .trim()
        .to_owned();
    check_webhook_url(&url).map_err(|reason| invalid("SMS_WEBHOOK_URL", reason))?;
    let secret = vars
        .get("SMS_WEBHOOK_SECRET")
        .ok_or(SmsConfigError::Missing("SMS_WEBHOOK_SECRET"))?;
    let secret =
        parse_webhook_secret(secret).map_err(|reason| invalid("SMS_WEBHOOK_SECRET", reason))?;
    Ok(WebhookConfig { url, secret })
}

/// `https://` to anywhere, or `http://` to a loopback host; no credentials in the URL.
pub(crate) fn check_webhook_url(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL")?;
    let host = uri.host().ok_or("has no host")?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not carry credentials");
    }
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("must use https (http is allowed to a loopback host only)")
            }
        }
        _ => Err("must be an https URL"),
    }
}

/// `whsec_` + standard base64 of 24 to 64 bytes.
pub(crate) fn parse_webhook_secret(raw: &str) -> Result<Secret, &'static str> {
    let b64 = raw
        .trim()
        .strip_prefix("whsec_")
        .ok_or("must start with whsec_")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "is not whsec_ followed by base64")?;
    if !WEBHOOK_SECRET_BYTES.contains(&bytes.len()) {
        return Err("must decode to 24 to 64 bytes");
    }
    Ok(Secret::new(bytes))
}

#[cfg(test)]
mod tests;
