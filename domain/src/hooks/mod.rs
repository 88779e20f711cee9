//! Hooks: the app's own code run at a step of a flow, synchronously, with a deadline and a
//! declared failure policy. A hook is reached through [`HookCaller`] (a signed HTTPS webhook
//! or an AWS Lambda function invoked synchronously, both in the adapters crate), so the domain
//! decides only what is sent, what an answer may change, and what a failure does:
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
    /// After an identifier is proven (a signup's, or a change's): a notification. It runs
    /// once the proof is written, so it can only fail open.
    PostConfirmation,
    /// Before a code goes out by SMS or mail: the text of the message.
    CustomMessage,
}

impl HookKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PreSignup => "pre_signup",
            Self::PreToken => "pre_token",
            Self::PostConfirmation => "post_confirmation",
            Self::CustomMessage => "custom_message",
        }
    }

    /// The prefix of the kind's variables (`HOOK_PRE_TOKEN_URL`, ...).
    const fn var(self) -> &'static str {
        match self {
            Self::PreSignup => "HOOK_PRE_SIGNUP",
            Self::PreToken => "HOOK_PRE_TOKEN",
            Self::PostConfirmation => "HOOK_POST_CONFIRMATION",
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
    /// An AWS Lambda function invoked synchronously (`Invoke`, `RequestResponse`) with the
    /// payload as its event; its JSON result is the answer. Authenticated by IAM: the
    /// function's role may invoke exactly this ARN (template.yaml).
    Lambda(LambdaTarget),
}

/// A Lambda function a hook invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaTarget {
    /// `HOOK_<KIND>_FUNCTION`: a function name or ARN (with a qualifier if any).
    pub function: String,
    /// `AWS_REGION` (the region inside an ARN wins).
    pub region: String,
    /// `AWS_ENDPOINT_URL_LAMBDA` (then `AWS_ENDPOINT_URL`): an emulator such as
    /// `cargo lambda watch`.
    pub endpoint: Option<String>,
}

impl fmt::Debug for HookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Webhook(w) => f.debug_tuple("Webhook").field(&w.url).finish(),
            Self::Lambda(l) => f.debug_tuple("Lambda").field(&l.function).finish(),
        }
    }
}

/// Whether `f` is a Lambda function name (`[A-Za-z0-9_-]{1,64}`) or ARN
/// (`arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`); the ARN's
/// region when it is one.
fn check_function(f: &str) -> Result<Option<&str>, &'static str> {
    let name_ok = |n: &str| {
        (1..=64).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !f.starts_with("arn:") {
        return if name_ok(f) {
            Ok(None)
        } else {
            Err("must be a function name or ARN")
        };
    }
    let parts: Vec<&str> = f.split(':').collect();
    let qualifier_ok = |q: &str| {
        (1..=128).contains(&q.len())
            && q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'$')
    };
    match parts.as_slice() {
        [
            "arn",
            partition,
            "lambda",
            region,
            account,
            "function",
            name,
            rest @ ..,
        ] if !partition.is_empty()
            && !region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && name_ok(name)
            && (rest.is_empty() || (rest.len() == 1 && qualifier_ok(rest[0]))) =>
        {
            Ok(Some(region))
        }
        _ => Err("must be a function name or a Lambda function ARN"),
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
        let set = |suffix: &str| {
            vars.get(&name(suffix))
                .map(str::trim)
                .filter(|u| !u.is_empty())
        };
        let target = match (set("URL"), set("FUNCTION")) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    name("FUNCTION"),
                    "set either it or the _URL, not both",
                ));
            }
            (Some(url), None) => {
                check_webhook_url(url).map_err(|r| invalid(name("URL"), r))?;
                let secret = vars
                    .get(&name("SECRET"))
                    .ok_or_else(|| ConfigError::Missing(name("SECRET")))?;
                let secret: Secret =
                    parse_webhook_secret(secret).map_err(|r| invalid(name("SECRET"), r))?;
                HookTarget::Webhook(WebhookConfig {
                    url: url.to_owned(),
                    secret,
                })
            }
            (None, Some(function)) => {
                let arn_region =
                    check_function(function).map_err(|r| invalid(name("FUNCTION"), r))?;
                let region = match arn_region {
                    Some(r) => r.to_owned(),
                    None => vars
                        .get("AWS_REGION")
                        .or_else(|| vars.get("AWS_DEFAULT_REGION"))
                        .map(str::trim)
                        .filter(|r| !r.is_empty())
                        .ok_or_else(|| ConfigError::Missing("AWS_REGION".to_owned()))?
                        .to_owned(),
                };
                let endpoint = vars
                    .get("AWS_ENDPOINT_URL_LAMBDA")
                    .or_else(|| vars.get("AWS_ENDPOINT_URL"))
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned);
                HookTarget::Lambda(LambdaTarget {
                    function: function.to_owned(),
                    region,
                    endpoint,
                })
            }
        };
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
            // A notification sent after the proof is written cannot hold the proof back: a
            // 503 then would tell the user it failed when it did not (Cognito's complaint).
            None if kind == HookKind::PostConfirmation => FailurePolicy::Open,
            Some(p) if p == "closed" && kind == HookKind::PostConfirmation => {
                return Err(invalid(
                    name("FAILURE"),
                    "post_confirmation runs after the proof is written, so it fails open",
                ));
            }
            None => FailurePolicy::Closed,
            Some(p) if p == "closed" => FailurePolicy::Closed,
            Some(p) if p == "open" => FailurePolicy::Open,
            Some(_) => return Err(invalid(name("FAILURE"), "must be closed or open")),
        };
        Ok(Some(Self {
            kind,
            target,
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
    pub post_confirmation: Option<HookSpec>,
    pub custom_message: Option<HookSpec>,
    pub caller: Option<Arc<dyn HookCaller>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("pre_signup", &self.pre_signup)
            .field("pre_token", &self.pre_token)
            .field("post_confirmation", &self.post_confirmation)
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
        let post_confirmation = HookSpec::from_vars(vars, HookKind::PostConfirmation)?;
        let custom_message = HookSpec::from_vars(vars, HookKind::CustomMessage)?;
        let any = [&pre_signup, &pre_token, &post_confirmation, &custom_message]
            .iter()
            .any(|h| h.is_some());
        Ok(Self {
            pre_signup,
            pre_token,
            post_confirmation,
            custom_message,
            caller: if any { make() } else { None },
        })
    }

    /// The `post_confirmation` hook and its caller, when both are there.
    pub fn post_confirmation(&self) -> Option<(&HookSpec, &Arc<dyn HookCaller>)> {
        Some((self.post_confirmation.as_ref()?, self.caller.as_ref()?))
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

/// Reads a `custom_message` answer for a mail carrying `code` (empty for a notice without
/// one): `{"subject", "text", "html"}`, each optional (a part left out keeps the default's);
/// a `text` or `html` given must hold the code, a subject is one line of at most 200
/// characters, and each part at most 100 KB.
pub fn read_custom_mail(
    answer: &Value,
    code: &str,
    default: crate::email::Message,
) -> Result<crate::email::Message, HookError> {
    let part = |name: &str| -> Result<Option<String>, HookError> {
        match answer.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= 100_000 => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(HookError::Refused(format!("`{name}` is too long"))),
            Some(_) => Err(HookError::Refused(format!("`{name}` is not a string"))),
        }
    };
    let mut message = default;
    if let Some(subject) = part("subject")? {
        if subject.chars().count() > 200 || subject.chars().any(char::is_control) {
            return Err(HookError::Refused(
                "`subject` is not one line of at most 200 characters".into(),
            ));
        }
        message.subject = subject;
    }
    for (name, slot) in [("text", &mut message.text), ("html", &mut message.html)] {
        if let Some(body) = part(name)? {
            if !body.contains(code) {
                return Err(HookError::Refused(format!(
                    "`{name}` does not carry the code"
                )));
            }
            *slot = body;
        }
    }
    Ok(message)
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
mod tests;
