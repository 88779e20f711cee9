//! The hook caller: each configured hook reached where its target says, a signed webhook
//! (`webhook::HookWebhookCaller`) or an AWS Lambda function invoked synchronously.
//!
//! Lambda: `Invoke` with `RequestResponse`, the payload as the event, the function's JSON
//! result as the answer. A function error (`X-Amz-Function-Error`: the handler threw or timed
//! out) and a throttle or 5xx are the hook being unavailable; a result that is not JSON is a
//! refused answer. The SDK client is made on the first Lambda hook call, with no retries (a
//! retry would run the app's code twice inside one step's deadline) and the hook's timeout
//! around the whole call.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use aws_sdk_lambda::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    primitives::Blob,
    types::InvocationType,
};
use serde_json::Value;

use domain::hooks::{HookCaller, HookError, HookSpec, HookTarget, LambdaTarget};

use crate::webhook::HookWebhookCaller;

/// Longest Lambda result read (a synchronous invocation's result is at most 6 MB; a hook's
/// answer is a few hundred bytes).
const MAX_RESULT_BYTES: usize = 64 * 1024;

/// Calls hooks wherever their target is.
#[derive(Default)]
pub struct Caller {
    webhook: HookWebhookCaller,
    lambda: OnceLock<Client>,
}

impl Caller {
    fn lambda(&self, target: &LambdaTarget, spec: &HookSpec) -> &Client {
        self.lambda.get_or_init(|| {
            // Every Lambda hook of a process shares the region and endpoint variables; the
            // timeout is applied per call below, so the client's is only a ceiling.
            let sdk = crate::sender_sdk_config(
                &target.region,
                target.endpoint.as_deref(),
                spec.timeout.max(std::time::Duration::from_secs(10)),
            );
            Client::new(&sdk)
        })
    }

    async fn invoke(
        &self,
        spec: &HookSpec,
        target: &LambdaTarget,
        payload: &Value,
    ) -> Result<Value, HookError> {
        let body =
            serde_json::to_vec(payload).map_err(|e| HookError::Refused(format!("payload: {e}")))?;
        let call = self
            .lambda(target, spec)
            .invoke()
            .function_name(&target.function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(body))
            .send();
        let out = tokio::time::timeout(spec.timeout, call)
            .await
            .map_err(|_| HookError::Unavailable("the hook function timed out".into()))?
            .map_err(|e| classify(&e))?;
        if let Some(kind) = out.function_error() {
            return Err(HookError::Unavailable(format!(
                "the hook function failed ({})",
                kind.chars().take(32).collect::<String>()
            )));
        }
        let result = out.payload().map(Blob::as_ref).unwrap_or_default();
        if result.len() > MAX_RESULT_BYTES {
            return Err(HookError::Refused("the answer is too long".into()));
        }
        serde_json::from_slice(result)
            .map_err(|_| HookError::Refused("the answer is not JSON".into()))
    }
}

/// A failed `Invoke`, by error code only (messages can quote the payload).
fn classify<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> HookError {
    match e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("unknown error").to_owned();
            match code.as_str() {
                "TooManyRequestsException"
                | "ServiceException"
                | "ResourceNotReadyException"
                | "EC2ThrottledException" => HookError::Unavailable(code),
                _ => HookError::Refused(code),
            }
        }
        SdkError::TimeoutError(_) => HookError::Unavailable("the hook function timed out".into()),
        _ => HookError::Unavailable("the hook function could not be reached".into()),
    }
}

#[async_trait]
impl HookCaller for Caller {
    async fn call(&self, spec: &HookSpec, id: &str, payload: &Value) -> Result<Value, HookError> {
        match &spec.target {
            HookTarget::Webhook(config) => self.webhook.post(spec, config, id, payload).await,
            HookTarget::Lambda(target) => {
                // The id a webhook gets as `webhook-id` travels in the event.
                let mut event = payload.clone();
                if let Value::Object(m) = &mut event {
                    m.insert("id".to_owned(), Value::String(id.to_owned()));
                }
                self.invoke(spec, target, &event).await
            }
        }
    }
}

/// The process's hook caller.
pub fn caller() -> Arc<dyn HookCaller> {
    Arc::new(Caller::default())
}
