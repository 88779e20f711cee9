//! Logging set-up shared by every binary.

use tracing_subscriber::filter::LevelFilter;

/// JSON log lines (one object each, CloudWatch-friendly) at the level `RUST_LOG` names
/// (`error`, `warn`, `info`, `debug`, `trace`; default `info`). A plain level, not per-target
/// directives: the directive parser brings a regex engine into every binary for nothing.
/// Safe to call twice: a second call is ignored.
pub fn init() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .try_init();
}
