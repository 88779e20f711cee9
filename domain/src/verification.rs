//! Phone verification settings, read once per cold start: whether a phone must be proven
//! before its account may log in (`REQUIRE_PHONE_VERIFICATION`), how long a code lives
//! (`OTP_TTL_SECONDS`) and how soon another may be sent (`OTP_RESEND_SECONDS`), the SMS
//! settings and sender. Codes are hashed under a key derived from the session key
//! (`TokenKeys::code_hashers`), so they follow its rotation.
//!
//! Why one switch decides both login and phone parsing: with verification required a code
//! must reach the number, so phones are parsed strictly (libphonenumber, E.164, the default
//! region for national input); with it off, the legacy rule stays, so the seed's
//! `1234567890` (valid nowhere) keeps working unchanged.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use crate::{
    config::{ConfigError, Vars},
    phone::{self, PhoneError},
    sms::{self, SmsConfigError, SmsSender, SmsSettings},
    types::Phone,
};

/// Default lifetime of a code: 5 minutes.
pub const DEFAULT_OTP_TTL_SECS: i64 = 300;
/// Default wait before another code may be sent to the same phone for the same purpose.
pub const DEFAULT_OTP_RESEND_SECS: i64 = 60;
/// Comparisons allowed per code (reserved before each comparison).
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// Default cap on failed codes per phone per UTC day, across resends and purposes.
pub const DEFAULT_CODE_FAILURES_PER_DAY: u32 = 20;
/// Default cap on failed codes per phone in one failure window (NIST SP 800-63B: at most 100
/// consecutive failures); a correct code clears it.
pub const DEFAULT_CODE_FAILURES_TOTAL: u32 = 100;
/// Default failure window: 30 days.
pub const DEFAULT_CODE_FAILURE_WINDOW_SECS: i64 = 30 * 86_400;

/// The per-phone cap on failed codes. Each code brings [`MAX_CODE_ATTEMPTS`] comparisons;
/// without this, resends would bring fresh ones without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeFailureCap {
    /// `OTP_MAX_FAILURES_PER_DAY`.
    pub per_day: u32,
    /// `OTP_MAX_FAILURES`: in one `OTP_FAILURE_WINDOW_SECONDS` window, until a correct code
    /// or an operator (`user-admin clear-code-failures`) clears it.
    pub total: u32,
    /// `OTP_FAILURE_WINDOW_SECONDS`.
    pub window_secs: i64,
}

impl CodeFailureCap {
    fn from_vars(vars: &Vars) -> Result<Self, VerificationConfigError> {
        let count = |name: &str, default: u32| -> Result<u32, VerificationConfigError> {
            let n = vars.positive(name, default.into())?;
            u32::try_from(n).map_err(|_| {
                VerificationConfigError::Config(format!("{name} must be below 4294967296"))
            })
        };
        let window = vars.positive(
            "OTP_FAILURE_WINDOW_SECONDS",
            DEFAULT_CODE_FAILURE_WINDOW_SECS.unsigned_abs(),
        )?;
        Ok(Self {
            per_day: count("OTP_MAX_FAILURES_PER_DAY", DEFAULT_CODE_FAILURES_PER_DAY)?,
            total: count("OTP_MAX_FAILURES", DEFAULT_CODE_FAILURES_TOTAL)?,
            window_secs: i64::try_from(window)
                .ok()
                .filter(|w| *w <= 366 * 86_400)
                .ok_or_else(|| {
                    VerificationConfigError::Config(
                        "OTP_FAILURE_WINDOW_SECONDS must be at most 366 days".to_owned(),
                    )
                })?,
        })
    }
}

/// Why verification settings were refused. Names variables, never values.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerificationConfigError {
    #[error(transparent)]
    Sms(#[from] SmsConfigError),
    #[error("{0}")]
    Config(String),
}

impl From<ConfigError> for VerificationConfigError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e.to_string())
    }
}

/// Everything the verification flows need.
#[derive(Clone)]
pub struct Verification {
    /// `REQUIRE_PHONE_VERIFICATION`: an unverified account may not log in, and phones are
    /// parsed strictly (E.164).
    pub required: bool,
    pub sms: SmsSettings,
    /// `None` when `SMS_SENDER` is unset: only test numbers can receive codes.
    pub sender: Option<Arc<dyn SmsSender>>,
    /// `OTP_TTL_SECONDS`.
    pub code_ttl_secs: i64,
    /// `OTP_RESEND_SECONDS`.
    pub resend_secs: i64,
    pub max_attempts: u32,
    /// Failed codes per phone, across codes.
    pub failure_cap: CodeFailureCap,
    /// Milliseconds the last real send took (shared by clones): an answer that sends nothing
    /// (recovery of an unknown phone) waits as long, so it takes the time a send would.
    last_send_ms: Arc<AtomicU64>,
}

impl std::fmt::Debug for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verification")
            .field("required", &self.required)
            .field("sender", &self.sender.as_ref().map(|s| s.name()))
            .field("code_ttl_secs", &self.code_ttl_secs)
            .field("resend_secs", &self.resend_secs)
            .finish_non_exhaustive()
    }
}

fn flag(vars: &Vars, name: &str, default: bool) -> Result<bool, VerificationConfigError> {
    match vars.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(VerificationConfigError::Config(format!(
                "{name} must be true or false"
            ))),
        },
    }
}

fn secs(vars: &Vars, name: &str, default: i64) -> Result<i64, VerificationConfigError> {
    match vars.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=86_400).contains(n))
            .ok_or_else(|| {
                VerificationConfigError::Config(format!(
                    "{name} must be a whole number of seconds from 1 to 86400"
                ))
            }),
    }
}

impl Verification {
    /// From variables (a Lambda function): SMS settings as `SmsSettings::from_vars`;
    /// verification off unless `REQUIRE_PHONE_VERIFICATION` says otherwise (the template sets
    /// it to true). Required verification with no sender and no test number is refused: no
    /// one could ever log in.
    /// `make_sender` builds the configured sender (the wiring's choice, see [`sms::MakeSender`]).
    pub fn from_vars(
        vars: &Vars,
        make_sender: sms::MakeSender,
    ) -> Result<Self, VerificationConfigError> {
        Self::build(vars, SmsSettings::from_vars(vars)?, make_sender)
    }

    /// The dev server's: the log sender unless `SMS_SENDER` names another; verification off
    /// unless `REQUIRE_PHONE_VERIFICATION=true`.
    pub fn for_dev_server(
        vars: &Vars,
        make_sender: sms::MakeSender,
    ) -> Result<Self, VerificationConfigError> {
        Self::build(vars, SmsSettings::for_dev_server(vars)?, make_sender)
    }

    /// Off, no sender: what a state built from parts starts with (tests replace it).
    pub fn off() -> Result<Self, VerificationConfigError> {
        Self::build(
            &Vars::default(),
            SmsSettings::from_vars(&Vars::default())?,
            sms::no_sender,
        )
    }

    fn build(
        vars: &Vars,
        sms_settings: SmsSettings,
        make_sender: sms::MakeSender,
    ) -> Result<Self, VerificationConfigError> {
        let required = flag(vars, "REQUIRE_PHONE_VERIFICATION", false)?;
        let sender = make_sender(&sms_settings);
        if required && sms_settings.sender.is_none() && sms_settings.test_numbers.is_empty() {
            return Err(VerificationConfigError::Config(
                "REQUIRE_PHONE_VERIFICATION is true but SMS_SENDER is not set".to_owned(),
            ));
        }
        if required {
            // libphonenumber's metadata costs ~0.12 s of CPU on first use: pay it at init.
            phone::warm_up(&sms_settings.default_region);
        }
        Ok(Self {
            required,
            sender,
            sms: sms_settings,
            code_ttl_secs: secs(vars, "OTP_TTL_SECONDS", DEFAULT_OTP_TTL_SECS)?,
            resend_secs: secs(vars, "OTP_RESEND_SECONDS", DEFAULT_OTP_RESEND_SECS)?,
            max_attempts: MAX_CODE_ATTEMPTS,
            failure_cap: CodeFailureCap::from_vars(vars)?,
            last_send_ms: Arc::new(AtomicU64::new(150)),
        })
    }

    /// How long the last real send took.
    pub fn last_send(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.last_send_ms.load(Ordering::Relaxed))
    }

    /// Records how long a real send took.
    pub fn record_send(&self, took: std::time::Duration) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.last_send_ms.store(ms, Ordering::Relaxed);
    }

    /// A phone as the verification flows take it: a test number, or valid for its country
    /// (and an allowed one) in E.164.
    pub fn parse_phone(&self, raw: &str) -> Result<Phone, PhoneError> {
        self.sms.parse_phone(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Verification, VerificationConfigError> {
        Verification::from_vars(&Vars::from_pairs(pairs.iter().copied()), sms::log_only)
    }

    #[test]
    fn off_by_default_with_the_documented_timings() {
        let v = with(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!v.required && v.sender.is_none());
        assert_eq!(
            (v.code_ttl_secs, v.resend_secs, v.max_attempts),
            (300, 60, 5)
        );
        assert_eq!(
            v.failure_cap,
            CodeFailureCap {
                per_day: 20,
                total: 100,
                window_secs: 30 * 86_400
            }
        );
    }

    #[test]
    fn required_needs_a_sender_or_test_numbers() {
        let e = with(&[("REQUIRE_PHONE_VERIFICATION", "true")]).err();
        assert!(
            matches!(&e, Some(VerificationConfigError::Config(m)) if m.contains("SMS_SENDER")),
            "{e:?}"
        );
        let v = with(&[
            ("REQUIRE_PHONE_VERIFICATION", "true"),
            ("SMS_TEST_NUMBERS", "+15555550100:123456"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(v.required);
        let dev = Verification::for_dev_server(
            &Vars::from_pairs([("REQUIRE_PHONE_VERIFICATION", "yes")]),
            sms::log_only,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dev.sender.as_ref().map(|s| s.name()), Some("log"));
    }

    #[test]
    fn bad_values_are_named_never_echoed() {
        for (name, bad) in [
            ("REQUIRE_PHONE_VERIFICATION", "maybe"),
            ("OTP_TTL_SECONDS", "-5"),
            ("OTP_TTL_SECONDS", "999999"),
            ("OTP_RESEND_SECONDS", "1m"),
            ("OTP_MAX_FAILURES_PER_DAY", "0"),
            ("OTP_MAX_FAILURES", "-1"),
            ("OTP_FAILURE_WINDOW_SECONDS", "99999999"),
        ] {
            let e = with(&[(name, bad)]).err().map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|m| m.contains(name) && !m.contains(bad)),
                "{name}={bad}: {e:?}"
            );
        }
    }
}
