//! Logging set-up shared by every binary.

use tracing_subscriber::EnvFilter;

/// JSON log lines (one object each, CloudWatch-friendly), level from `RUST_LOG`, default info.
/// Safe to call twice: a second call is ignored.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .try_init();
}
