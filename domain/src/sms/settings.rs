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

fn flag(vars: &Vars, name: &str) -> bool {
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
fn check_webhook_url(url: &str) -> Result<(), &'static str> {
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
fn parse_webhook_secret(raw: &str) -> Result<Secret, &'static str> {
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
mod tests {
    use super::*;

    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().copied())
    }

    fn err(pairs: &[(&str, &str)]) -> SmsConfigError {
        match SmsSettings::from_vars(&vars(pairs)) {
            Ok(_) => panic!("accepted: {pairs:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn no_sender_means_sms_is_off() {
        let s = SmsSettings::from_vars(&Vars::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.sender.is_none());
        assert_eq!(s.default_region, "US");
        assert_eq!(s.timeout, Duration::from_secs(3));
        assert!(s.test_numbers.is_empty());
    }

    #[test]
    fn sns_reads_region_endpoint_sender_id_and_origination() {
        let s = SmsSettings::from_vars(&vars(&[
            ("SMS_SENDER", "SNS"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_SNS", "http://127.0.0.1:5001"),
            ("SMS_SENDER_ID", "UserApi"),
            ("SMS_ORIGINATION_NUMBER", "+1 (833) 555-0100"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.sender,
            Some(SenderConfig::Sns(SnsConfig {
                region: "eu-west-1".into(),
                endpoint: Some("http://127.0.0.1:5001".into()),
                sender_id: Some("UserApi".into()),
                origination_number: Some("+18335550100".into()),
            }))
        );
        assert_eq!(
            err(&[("SMS_SENDER", "sns")]),
            SmsConfigError::Missing("AWS_REGION")
        );
        for bad in ["", "User-Api", "TwelveLetter", "12345"] {
            if bad.is_empty() {
                continue;
            }
            let e = err(&[
                ("SMS_SENDER", "sns"),
                ("AWS_REGION", "x"),
                ("SMS_SENDER_ID", bad),
            ]);
            assert!(
                matches!(
                    e,
                    SmsConfigError::Invalid {
                        name: "SMS_SENDER_ID",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
            assert!(!e.to_string().contains(bad), "{e}");
        }
        let e = err(&[
            ("SMS_SENDER", "sns"),
            ("AWS_REGION", "x"),
            ("SMS_ORIGINATION_NUMBER", "call-me"),
        ]);
        assert!(matches!(
            e,
            SmsConfigError::Invalid {
                name: "SMS_ORIGINATION_NUMBER",
                ..
            }
        ));
    }

    #[test]
    fn webhook_needs_an_https_or_loopback_url_and_a_whsec_secret() {
        let ok = |url: &str| {
            SmsSettings::from_vars(&vars(&[
                ("SMS_SENDER", "webhook"),
                ("SMS_WEBHOOK_URL", url),
                ("SMS_WEBHOOK_SECRET", WHSEC),
            ]))
        };
        for good in [
            "https://sms.example.com/send",
            "http://127.0.0.1:8080/sms",
            "http://localhost/sms",
            "http://[::1]:9/x",
        ] {
            let s = ok(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            let Some(SenderConfig::Webhook(w)) = s.sender else {
                panic!("{good}")
            };
            assert_eq!(w.url, good);
            assert_eq!(w.secret.expose().len(), 24);
        }
        for bad in [
            "http://sms.example.com/send",
            "ftp://127.0.0.1/x",
            "https://user:pw@sms.example.com/",
            "not a url",
            "/relative",
        ] {
            let e = ok(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(
                matches!(
                    e,
                    SmsConfigError::Invalid {
                        name: "SMS_WEBHOOK_URL",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
        let secret = |s: &str| {
            SmsSettings::from_vars(&vars(&[
                ("SMS_SENDER", "webhook"),
                ("SMS_WEBHOOK_URL", "https://x.example"),
                ("SMS_WEBHOOK_SECRET", s),
            ]))
            .err()
        };
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!",
            "whsec_c2hvcnQ=",
        ] {
            let e = secret(bad).unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(
                matches!(
                    e,
                    SmsConfigError::Invalid {
                        name: "SMS_WEBHOOK_SECRET",
                        ..
                    }
                ),
                "{e}"
            );
            assert!(!e.to_string().contains(bad), "{e}");
        }
        assert_eq!(
            secret("").or(secret("   ")),
            Some(SmsConfigError::Missing("SMS_WEBHOOK_SECRET"))
        );
    }

    #[test]
    fn the_log_sender_needs_the_explicit_flag_and_never_runs_in_lambda() {
        let e = err(&[("SMS_SENDER", "log")]);
        assert!(e.to_string().contains("SMS_ALLOW_LOG_SENDER"), "{e}");
        let s = SmsSettings::from_vars(&vars(&[
            ("SMS_SENDER", "log"),
            ("SMS_ALLOW_LOG_SENDER", "1"),
        ]));
        assert_eq!(s.map(|s| s.sender), Ok(Some(SenderConfig::Log)));
        let e = err(&[
            ("SMS_SENDER", "log"),
            ("SMS_ALLOW_LOG_SENDER", "1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "login"),
        ]);
        assert!(e.to_string().contains("Lambda"), "{e}");
        let dev = SmsSettings::for_dev_server(&Vars::default()).map(|s| s.sender);
        assert_eq!(dev, Ok(Some(SenderConfig::Log)));
        // The dev server honours an explicit choice.
        let dev = SmsSettings::for_dev_server(&vars(&[("SMS_SENDER", "sns"), ("AWS_REGION", "r")]));
        assert!(matches!(
            dev.map(|s| s.sender),
            Ok(Some(SenderConfig::Sns(_)))
        ));
        assert!(matches!(
            err(&[("SMS_SENDER", "carrier-pigeon")]),
            SmsConfigError::Invalid {
                name: "SMS_SENDER",
                ..
            }
        ));
    }

    #[test]
    fn test_numbers_map_fictional_phones_to_fixed_codes() {
        let s = SmsSettings::from_vars(&vars(&[(
            "SMS_TEST_NUMBERS",
            "+15555550100:123456, +1 (555) 555-0101:654321,",
        )]))
        .unwrap_or_else(|e| panic!("{e}"));
        let p = s
            .parse_phone("+1 555 555 0100")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.test_code(&p).map(Code::expose), Some("123456"));
        let p = s
            .parse_phone("+15555550101")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.test_code(&p).map(Code::expose), Some("654321"));
        // A real number is parsed strictly and is no test number; other fictional ones fail.
        let real = s
            .parse_phone("(202) 555-0101")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(real.as_str(), "+12025550101");
        assert_eq!(s.test_code(&real), None);
        assert_eq!(s.parse_phone("+15555550102"), Err(PhoneError::Invalid));
        // Test numbers must be written with '+' when parsed as input.
        assert_eq!(s.parse_phone("5555550100"), Err(PhoneError::Invalid));
    }

    #[test]
    fn parse_phone_applies_the_allow_list_but_test_numbers_pass_it() {
        let s = SmsSettings::from_vars(&vars(&[
            ("SMS_ALLOWED_COUNTRY_CODES", "44"),
            ("SMS_TEST_NUMBERS", "+15555550100:123456"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.parse_phone("+12025550101"),
            Err(PhoneError::CountryNotAllowed)
        );
        assert_eq!(
            s.parse_phone("(202) 555-0101"),
            Err(PhoneError::CountryNotAllowed)
        );
        assert_eq!(
            s.parse_phone("+44 7400 123456").map(|p| p.calling_code()),
            Ok(Some(44))
        );
        // Nothing is sent to a test number, so the cost allow-list does not apply to it.
        assert_eq!(
            s.parse_phone("+1 555 555 0100")
                .map(|p| p.as_str().to_owned()),
            Ok("+15555550100".to_owned())
        );
    }

    #[test]
    fn bad_test_numbers_are_refused_without_echoing_them() {
        for (bad, why) in [
            ("+15555550100", "not phone:code"),
            ("+15555550100:12345", "six digits"),
            ("+15555550100:12345a", "six digits"),
            ("5555550100:123456", "country code"),
            ("+12025550101:123456", "fictional"),
            ("+15555550100:123456,+1 555 555 0100:111111", "repeats"),
        ] {
            let e = err(&[("SMS_TEST_NUMBERS", bad)]);
            let msg = e.to_string();
            assert!(
                msg.contains("SMS_TEST_NUMBERS") && msg.contains(why),
                "{bad}: {msg}"
            );
            assert!(!msg.contains("555") && !msg.contains("1234"), "{msg}");
        }
    }

    #[test]
    fn region_and_timeout_are_checked() {
        let s = SmsSettings::from_vars(&vars(&[
            ("PHONE_DEFAULT_REGION", "gb"),
            ("SMS_TIMEOUT_SECONDS", "5"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.default_region.as_str(), s.timeout),
            ("GB", Duration::from_secs(5))
        );
        assert_eq!(
            s.parse_phone("020 7946 0958").map(|p| p.calling_code()),
            Ok(Some(44))
        );
        assert!(matches!(
            err(&[("PHONE_DEFAULT_REGION", "ZZ")]),
            SmsConfigError::Invalid {
                name: "PHONE_DEFAULT_REGION",
                ..
            }
        ));
        for bad in ["0", "-1", "3s", "99999999999"] {
            assert!(matches!(
                err(&[("SMS_TIMEOUT_SECONDS", bad)]),
                SmsConfigError::Invalid {
                    name: "SMS_TIMEOUT_SECONDS",
                    ..
                }
            ));
        }
    }
}
