//! Hooks: the app's own code run at a step of a flow, synchronously, with a deadline and a
//! declared failure policy. A hook is reached through [`HookCaller`] (a signed HTTPS webhook
//! in the adapters crate; an AWS Lambda function next), so the domain decides only what is
//! sent, what an answer may change, and what a failure does:
//! - fail closed: the step answers 503 and nothing of it is written (the hook runs before
//!   the step's first write);
//! - fail open: the step goes on as if there were no hook, and the failure is audited
//!   (`event: hook`, `outcome: failed_open`) and counted (`HookFailures`).
//!
//! `pre_token` is the first kind: it sees the account's roles and mapped claims before an
//! access token is signed and may add, change or remove (with `null`) claims that are not
//! reserved. An answer that names a reserved claim is a failure of the hook, not an override.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{
    claims::{Grants, RESERVED_CLAIMS},
    config::{ConfigError, Secret, Vars},
    sms::settings::{WebhookConfig, check_webhook_url, parse_webhook_secret},
};

/// The steps a hook can run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// Before an account is made: allow it, refuse it with a message the client sees, or
    /// mark its identifiers proven.
    PreSignup,
    /// Before an access token is signed (login, refresh, step-up).
    PreToken,
    /// Before a code goes out by SMS: the text of the message.
    CustomMessage,
}

impl HookKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PreSignup => "pre_signup",
            Self::PreToken => "pre_token",
            Self::CustomMessage => "custom_message",
        }
    }

    /// The prefix of the kind's variables (`HOOK_PRE_TOKEN_URL`, ...).
    const fn var(self) -> &'static str {
        match self {
            Self::PreSignup => "HOOK_PRE_SIGNUP",
            Self::PreToken => "HOOK_PRE_TOKEN",
            Self::CustomMessage => "HOOK_CUSTOM_MESSAGE",
        }
    }
}

/// What a failed hook does to its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The step answers 503; nothing is written.
    Closed,
    /// The step goes on without the hook; the failure is audited and counted.
    Open,
}

/// Where a hook runs.
#[derive(Clone, PartialEq, Eq)]
pub enum HookTarget {
    /// POST of the JSON payload, signed per Standard Webhooks, answering JSON.
    Webhook(WebhookConfig),
}

impl fmt::Debug for HookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Webhook(w) => f.debug_tuple("Webhook").field(&w.url).finish(),
        }
    }
}

/// One configured hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    pub kind: HookKind,
    pub target: HookTarget,
    /// `HOOK_<KIND>_TIMEOUT_MS` (default 2000, at most 10000); the request's own deadline
    /// bounds it too.
    pub timeout: Duration,
    /// `HOOK_<KIND>_FAILURE`: `closed` (default) or `open`.
    pub policy: FailurePolicy,
}

impl HookSpec {
    /// The hook of `kind` the variables configure, or `None`.
    pub fn from_vars(vars: &Vars, kind: HookKind) -> Result<Option<Self>, ConfigError> {
        let prefix = kind.var();
        let name = |suffix: &str| format!("{prefix}_{suffix}");
        let invalid = |n: String, reason: &str| ConfigError::Invalid {
            name: n,
            reason: reason.to_owned(),
        };
        let Some(url) = vars
            .get(&name("URL"))
            .map(str::trim)
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        check_webhook_url(url).map_err(|r| invalid(name("URL"), r))?;
        let secret = vars
            .get(&name("SECRET"))
            .ok_or_else(|| ConfigError::Missing(name("SECRET")))?;
        let secret: Secret =
            parse_webhook_secret(secret).map_err(|r| invalid(name("SECRET"), r))?;
        let timeout = match vars.get(&name("TIMEOUT_MS")) {
            None => Duration::from_millis(2000),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .map(Duration::from_millis)
                .ok_or_else(|| ConfigError::BadNumber {
                    name: name("TIMEOUT_MS"),
                })?,
        };
        let policy = match vars
            .get(&name("FAILURE"))
            .map(|p| p.trim().to_ascii_lowercase())
        {
            None => FailurePolicy::Closed,
            Some(p) if p == "closed" => FailurePolicy::Closed,
            Some(p) if p == "open" => FailurePolicy::Open,
            Some(_) => return Err(invalid(name("FAILURE"), "must be closed or open")),
        };
        Ok(Some(Self {
            kind,
            target: HookTarget::Webhook(WebhookConfig {
                url: url.to_owned(),
                secret,
            }),
            timeout,
            policy,
        }))
    }
}

/// Why a hook failed; the reason is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// Not reached, too slow, or answered 5xx.
    #[error("hook unavailable: {0}")]
    Unavailable(String),
    /// Answered, but not with something this step accepts.
    #[error("hook answer refused: {0}")]
    Refused(String),
}

/// Runs a hook: sends `payload` to `spec`'s target within its timeout and answers the JSON
/// the hook answered.
#[async_trait]
pub trait HookCaller: Send + Sync {
    async fn call(&self, spec: &HookSpec, id: &str, payload: &Value) -> Result<Value, HookError>;
}

/// The hooks a deployment has, and how they are reached.
#[derive(Clone, Default)]
pub struct Hooks {
    pub pre_signup: Option<HookSpec>,
    pub pre_token: Option<HookSpec>,
    pub custom_message: Option<HookSpec>,
    pub caller: Option<Arc<dyn HookCaller>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("pre_signup", &self.pre_signup)
            .field("pre_token", &self.pre_token)
            .field("custom_message", &self.custom_message)
            .finish_non_exhaustive()
    }
}

/// Builds the caller of a process's hooks (the adapters' webhook caller, or none).
pub type MakeHookCaller = fn() -> Option<Arc<dyn HookCaller>>;

/// No hook caller: functions that run no hook.
pub fn no_hooks() -> Option<Arc<dyn HookCaller>> {
    None
}

impl Hooks {
    /// The hooks the variables configure, reached through `make`'s caller (a process whose
    /// routes run no hook, say one that signs no token, has none: the hook is not its).
    pub fn from_vars(vars: &Vars, make: MakeHookCaller) -> Result<Self, ConfigError> {
        let pre_signup = HookSpec::from_vars(vars, HookKind::PreSignup)?;
        let pre_token = HookSpec::from_vars(vars, HookKind::PreToken)?;
        let custom_message = HookSpec::from_vars(vars, HookKind::CustomMessage)?;
        let caller = if pre_signup.is_some() || pre_token.is_some() || custom_message.is_some() {
            make()
        } else {
            None
        };
        Ok(Self {
            pre_signup,
            pre_token,
            custom_message,
            caller,
        })
    }

    /// The `custom_message` hook and its caller, when both are there.
    pub fn custom_message(&self) -> Option<(&HookSpec, &Arc<dyn HookCaller>)> {
        Some((self.custom_message.as_ref()?, self.caller.as_ref()?))
    }

    /// The `pre_signup` hook and its caller, when both are there.
    pub fn pre_signup(&self) -> Option<(&HookSpec, &Arc<dyn HookCaller>)> {
        Some((self.pre_signup.as_ref()?, self.caller.as_ref()?))
    }

    /// The `pre_token` hook and its caller, when both are there.
    pub fn pre_token(&self) -> Option<(&HookSpec, &Arc<dyn HookCaller>)> {
        Some((self.pre_token.as_ref()?, self.caller.as_ref()?))
    }
}

/// What a `pre_signup` hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignupDecision {
    /// Go on; the identifiers of these kinds (`phone`, `email`) are proven already.
    Allow {
        verified: Vec<crate::identity::IdentifierKind>,
    },
    /// Refuse, with a message for the client (one line, at most 200 characters).
    Refuse { message: String },
}

/// Reads a `pre_signup` answer: `{"decision": "allow", "verified": ["email"]}` or
/// `{"decision": "refuse", "message": "..."}`; anything else is a failure of the hook.
pub fn read_pre_signup(answer: &Value) -> Result<SignupDecision, HookError> {
    use crate::identity::IdentifierKind;
    match answer.get("decision").and_then(Value::as_str) {
        Some("allow") => {
            let mut verified = Vec::new();
            for v in answer
                .get("verified")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match v.as_str() {
                    Some("phone") => verified.push(IdentifierKind::Phone),
                    Some("email") => verified.push(IdentifierKind::Email),
                    _ => return Err(HookError::Refused("`verified` names phone or email".into())),
                }
            }
            Ok(SignupDecision::Allow { verified })
        }
        Some("refuse") => {
            let message: String = answer
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("This signup is not allowed.")
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            Ok(SignupDecision::Refuse {
                message: if message.trim().is_empty() {
                    "This signup is not allowed.".to_owned()
                } else {
                    message
                },
            })
        }
        _ => Err(HookError::Refused(
            "`decision` is neither allow nor refuse".into(),
        )),
    }
}

/// The longest SMS text a `custom_message` hook may answer (three concatenated GSM-7 parts).
pub const MAX_SMS_TEXT: usize = 459;

/// Reads a `custom_message` answer for an SMS carrying `code`: `{"message": "..."}` (it must
/// hold the code, in at most [`MAX_SMS_TEXT`] characters), or `{}` for the default text.
pub fn read_custom_sms(answer: &Value, code: &str) -> Result<Option<String>, HookError> {
    let Some(message) = answer.get("message") else {
        return Ok(None);
    };
    let message = message
        .as_str()
        .ok_or_else(|| HookError::Refused("`message` is not a string".into()))?;
    if !message.contains(code) {
        return Err(HookError::Refused(
            "the message does not carry the code".into(),
        ));
    }
    if message.chars().count() > MAX_SMS_TEXT {
        return Err(HookError::Refused(format!(
            "the message is longer than {MAX_SMS_TEXT} characters"
        )));
    }
    Ok(Some(message.to_owned()))
}

/// Applies a `pre_token` answer (`{"claims": {name: value or null}}`) to `grants`: each named
/// claim set (or removed, for `null`); a reserved name, or an answer of another shape, refuses
/// the whole answer.
pub fn apply_pre_token(answer: &Value, grants: &mut Grants) -> Result<(), HookError> {
    let claims = match answer.get("claims") {
        None => return Ok(()),
        Some(Value::Object(c)) => c,
        Some(_) => return Err(HookError::Refused("`claims` is not an object".into())),
    };
    if let Some(k) = claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        return Err(HookError::Refused(format!(
            "names the reserved claim `{k}`"
        )));
    }
    let mut next: Map<String, Value> = grants.claims.clone();
    for (k, v) in claims {
        if v.is_null() {
            next.remove(k);
        } else {
            next.insert(k.clone(), v.clone());
        }
    }
    grants.claims = next;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_pre_token_answer_sets_and_removes_claims_but_never_a_reserved_one() {
        let mut g = Grants::default();
        g.claims.insert("tenant".into(), json!("acme"));
        apply_pre_token(&json!({"claims": {"plan": "pro", "tenant": null}}), &mut g).unwrap();
        assert_eq!(Value::Object(g.claims.clone()), json!({"plan": "pro"}));
        for bad in [
            json!({"claims": {"sub": "someone-else"}}),
            json!({"claims": {"scope": "aal2"}}),
            json!({"claims": ["plan"]}),
        ] {
            let before = g.clone();
            assert!(apply_pre_token(&bad, &mut g).is_err(), "{bad}");
            assert_eq!(g, before, "a refused answer changes nothing");
        }
        apply_pre_token(&json!({}), &mut g).unwrap();
    }

    #[test]
    fn a_pre_signup_answer_allows_proves_or_refuses_with_a_clean_message() {
        use crate::identity::IdentifierKind;
        assert_eq!(
            read_pre_signup(&json!({"decision": "allow"})).unwrap(),
            SignupDecision::Allow { verified: vec![] }
        );
        assert_eq!(
            read_pre_signup(&json!({"decision": "allow", "verified": ["email"]})).unwrap(),
            SignupDecision::Allow {
                verified: vec![IdentifierKind::Email]
            }
        );
        let long = "x".repeat(500);
        let SignupDecision::Refuse { message } =
            read_pre_signup(&json!({"decision": "refuse", "message": format!("no\n{long}")}))
                .unwrap()
        else {
            panic!("a refusal")
        };
        assert_eq!(message.chars().count(), 200);
        assert!(!message.contains('\n'));
        for bad in [
            json!({}),
            json!({"decision": "maybe"}),
            json!({"decision": "allow", "verified": ["passkey"]}),
        ] {
            assert!(read_pre_signup(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_hook_needs_a_safe_url_and_a_secret_and_says_how_it_fails() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let vars = |pairs: &[(&str, &str)]| Vars::from_pairs(pairs.iter().copied());
        assert_eq!(
            HookSpec::from_vars(&vars(&[]), HookKind::PreToken).unwrap(),
            None
        );
        let s = HookSpec::from_vars(
            &vars(&[
                ("HOOK_PRE_TOKEN_URL", "https://hooks.example.com/pre-token"),
                ("HOOK_PRE_TOKEN_SECRET", secret),
            ]),
            HookKind::PreToken,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.timeout, s.policy),
            (Duration::from_secs(2), FailurePolicy::Closed)
        );
        for (pairs, why) in [
            (
                vec![
                    ("HOOK_PRE_TOKEN_URL", "http://hooks.example.com/x"),
                    ("HOOK_PRE_TOKEN_SECRET", secret),
                ],
                "plain http off loopback",
            ),
            (
                vec![("HOOK_PRE_TOKEN_URL", "https://h.example.com")],
                "no secret",
            ),
            (
                vec![
                    ("HOOK_PRE_TOKEN_URL", "https://h.example.com"),
                    ("HOOK_PRE_TOKEN_SECRET", secret),
                    ("HOOK_PRE_TOKEN_FAILURE", "maybe"),
                ],
                "an unknown policy",
            ),
            (
                vec![
                    ("HOOK_PRE_TOKEN_URL", "https://h.example.com"),
                    ("HOOK_PRE_TOKEN_SECRET", secret),
                    ("HOOK_PRE_TOKEN_TIMEOUT_MS", "60000"),
                ],
                "a timeout past 10 s",
            ),
        ] {
            assert!(
                HookSpec::from_vars(&vars(&pairs), HookKind::PreToken).is_err(),
                "{why}"
            );
        }
    }
}
