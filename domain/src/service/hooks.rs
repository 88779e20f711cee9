//! Running the app's hooks inside a flow: the payload each kind sends, the answer it may
//! give, and what a failure does (`domain::hooks` has the rules; this is where a step calls
//! them, always before the step's first write).

use serde_json::json;

use super::{Ctx, Error};
use crate::{
    claims::Grants,
    credential::Assurance,
    hooks::{FailurePolicy, HookError, HookSpec, apply_pre_token},
    store::UserRecord,
};

/// Audits and counts a failed hook; fails the step where the hook fails closed.
fn failed(spec: &HookSpec, user: &UserRecord, e: &HookError) -> Result<(), Error> {
    match spec.policy {
        FailurePolicy::Closed => {
            tracing::warn!(target: "audit", event = "hook", hook = spec.kind.as_str(),
                outcome = "failed_closed", user_id = %user.id, reason = %e);
            Err(Error::HookFailed)
        }
        FailurePolicy::Open => {
            tracing::warn!(target: "audit", event = "hook", hook = spec.kind.as_str(),
                outcome = "failed_open", user_id = %user.id, reason = %e);
            Ok(())
        }
    }
}

/// The `pre_token` hook, if configured: it sees the account's id, roles, mapped claims and
/// operators' metadata and the session's assurance, and its `{"claims": {...}}` answer sets or
/// removes (`null`) claims that are not reserved. Nothing is sent where no hook is set.
pub(super) async fn pre_token(
    cx: &Ctx<'_>,
    user: &UserRecord,
    sid: &str,
    assurance: &Assurance,
    grants: &mut Grants,
) -> Result<(), Error> {
    let Some((spec, caller)) = cx.hooks.pre_token() else {
        return Ok(());
    };
    let payload = json!({
        "type": spec.kind.as_str(),
        "user_id": user.id.to_hex(),
        "session_id": sid,
        "aal": assurance.aal(),
        "amr": assurance.amr,
        "roles": grants.roles,
        "claims": grants.claims,
        "app_metadata": user.app_metadata.as_map(),
    });
    // One id per token request: a receiver may deduplicate retries on it.
    let id = format!("{}-{sid}-{}", spec.kind.as_str(), cx.now);
    let answer = caller.call(spec, &id, &payload).await.and_then(|a| {
        let mut next = grants.clone();
        apply_pre_token(&a, &mut next).map(|()| next)
    });
    match answer {
        Ok(next) => {
            *grants = next;
            Ok(())
        }
        Err(e) => failed(spec, user, &e),
    }
}
