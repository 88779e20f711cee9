//! A hook as an AWS Lambda function: the event is the hook's payload (`type` says which
//! step), the result is the answer. The tests run it under `cargo lambda watch` and reach it
//! through the Lambda Invoke API, as a deployment reaches its own function.
//!
//! What it does, chosen by the payload so one binary serves every test:
//! - `pre_signup`: refuses addresses at `blocked.example` (with a message), marks addresses
//!   at `trusted.example` proven, allows the rest;
//! - `pre_token`: adds `{"hook": "lambda", "plan": "pro"}`, or names a reserved claim when
//!   the account's `app_metadata.hook` is `reserved`;
//! - `custom_message`: a text of its own around the code, for SMS and for mail;
//! - `post_confirmation`: appends the payload to the file `TEST_HOOK_LOG` names.
//!
//! Anywhere, a first name or `app_metadata.hook` of `hang` sleeps past every hook timeout and
//! `crash` fails the invocation (a function error).

use std::io::Write;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

fn behaviour(event: &Value) -> &str {
    event
        .get("first_name")
        .or_else(|| event.pointer("/app_metadata/hook"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let p = event.payload;
    match behaviour(&p).to_ascii_lowercase().as_str() {
        "hang" => tokio::time::sleep(std::time::Duration::from_secs(12)).await,
        "crash" => return Err("the hook crashed, as asked".into()),
        _ => {}
    }
    let email = p.get("email").and_then(Value::as_str).unwrap_or("");
    Ok(match p.get("type").and_then(Value::as_str).unwrap_or("") {
        "pre_signup" if email.ends_with("@blocked.example") => {
            json!({"decision": "refuse", "message": "Signups from blocked.example are closed."})
        }
        "pre_signup" if email.ends_with("@trusted.example") => {
            json!({"decision": "allow", "verified": ["email"]})
        }
        "pre_signup" => json!({"decision": "allow"}),
        "pre_token" if behaviour(&p) == "reserved" => json!({"claims": {"sub": "someone-else"}}),
        "pre_token" => json!({"claims": {"hook": "lambda", "plan": "pro"}}),
        "custom_message" => {
            let code = p.get("code").and_then(Value::as_str).unwrap_or("");
            match p.get("channel").and_then(Value::as_str) {
                Some("email") => json!({
                    "subject": format!("Lambda hook: your code {code}"),
                    "text": format!("From the Lambda hook: {code}"),
                    "html": format!("<p>From the Lambda hook: <b>{code}</b></p>"),
                }),
                _ => json!({"message": format!("From the Lambda hook: {code}")}),
            }
        }
        "post_confirmation" => {
            if let Ok(path) = std::env::var("TEST_HOOK_LOG") {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                writeln!(f, "{p}")?;
            }
            json!({})
        }
        other => return Err(format!("no such hook type: {other}").into()),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
