//! Limits on counted work: password checks (reserved before they run) and per-key budgets.

use super::{Ctx, Error};
use crate::{
    config::Settings,
    store::{AttemptPolicy, Consumed, Reservation},
};

/// Delay imposed after `failures` consecutive failures: 1 s at the threshold, doubling with
/// each further failure, capped.
pub fn lock_delay(failures: u32, threshold: u32, max_secs: u64) -> Option<u64> {
    let policy = AttemptPolicy {
        threshold,
        max_lock_secs: i64::try_from(max_secs).unwrap_or(i64::MAX),
        memory_secs: 0,
    };
    policy
        .lock_secs(failures)
        .map(|s| u64::try_from(s).unwrap_or_default())
}

/// The lock policy from the settings. The failure memory is at least twice the longest lock,
/// so a counter never expires as its lock runs out.
pub fn attempt_policy(s: &Settings) -> AttemptPolicy {
    let max_lock = i64::try_from(s.lockout_max.as_secs()).unwrap_or(i64::MAX);
    let window = i64::try_from(s.failure_window.as_secs()).unwrap_or(i64::MAX);
    AttemptPolicy {
        threshold: s.lockout_threshold,
        max_lock_secs: max_lock,
        memory_secs: window.max(max_lock.saturating_mul(2)),
    }
}

/// 429 with `Retry-After: secs` (at least 1).
pub(super) fn retry_after(secs: i64) -> Error {
    Error::TooManyAttempts {
        retry_after_secs: u64::try_from(secs).unwrap_or_default().max(1),
    }
}

/// Reserves one password check for `key` before it runs; refuses while the key is locked.
/// Returns which attempt this is since the last success.
pub(super) async fn reserve(cx: &Ctx<'_>, key: &str) -> Result<u32, Error> {
    match cx
        .store
        .reserve_attempt(key, cx.now, &attempt_policy(cx.policy))
        .await?
    {
        Reservation::Granted { attempt } => Ok(attempt),
        Reservation::Locked { until } => Err(retry_after(until - cx.now)),
    }
}

/// Seconds the `attempt`-th failed check locked its key for, if it did.
pub(super) fn locked_for(cx: &Ctx<'_>, attempt: u32) -> Option<i64> {
    attempt_policy(cx.policy).lock_secs(attempt)
}

/// Counts one use of `key` against `limit` per `window_secs`; refuses past it.
pub(super) async fn consume(
    cx: &Ctx<'_>,
    key: &str,
    limit: u32,
    window_secs: i64,
) -> Result<(), Error> {
    match cx.store.consume(key, limit, window_secs, cx.now).await? {
        Consumed::Within { .. } => Ok(()),
        Consumed::Exceeded { retry_after: secs } => Err(retry_after(secs)),
    }
}
