//! Logging set-up shared by every binary: one JSON object per line (or plain text), every line
//! flattened with the fields of the spans it happened in, so a Lambda invocation's lines all
//! carry its `requestId` (the key Lambda's own JSON logs use, which joins them to the `REPORT`
//! line), the API Gateway request id, the function name and the `cold_start` flag.
//!
//! Why our own layer rather than `tracing_subscriber::fmt().json()`: the fmt JSON formatter
//! nests span fields under `span`/`spans`, so a CloudWatch Logs Insights query could not
//! filter on `requestId` across lines; and the same pass over each audit event feeds the
//! CloudWatch metrics ([`adapters::metrics`]) whatever the log level.
//!
//! Why our own directive parser rather than `EnvFilter`: `EnvFilter` brings a regex engine
//! into every binary (binary size and cold-init time) for span/field filters nobody uses here.
//! `RUST_LOG` takes `level` and `target=level` items, comma-separated; anything else (span or
//! field filters, unknown levels) is refused with an error naming the item, never silently
//! read as `info`.

use std::{
    fmt::{self, Write as _},
    io::Write as _,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Map, Value};
use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span,
    subscriber::Interest,
};
use tracing_subscriber::{
    filter::LevelFilter,
    layer::{Context, Layer},
    prelude::*,
    registry::LookupSpan,
};

/// Why the logging variables were refused. The message names the variable and the item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogConfigError {
    #[error(
        "{var}: `{item}` is not a log directive (expected `level` or `target=level`, level one of off, error, warn, info, debug, trace)"
    )]
    Directive { var: &'static str, item: String },
    #[error("AWS_LAMBDA_LOG_FORMAT: `{0}` is neither JSON nor Text")]
    Format(String),
}

/// Which lines are written: a default level, and levels for targets (module paths) that
/// override it. The longest matching target prefix wins, as with `EnvFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter {
    pub default: LevelFilter,
    pub targets: Vec<(String, LevelFilter)>,
}

impl Default for LogFilter {
    fn default() -> Self {
        Self {
            default: LevelFilter::INFO,
            targets: Vec::new(),
        }
    }
}

/// A `RUST_LOG` value read: its bare level, if any, and its `target=level` items.
pub type Directives = (Option<LevelFilter>, Vec<(String, LevelFilter)>);

/// Reads a level name as `RUST_LOG` and Lambda's `AWS_LAMBDA_LOG_LEVEL` spell them
/// (case-insensitive; Lambda's `FATAL` is `error` here).
fn level(s: &str) -> Option<LevelFilter> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" => Some(LevelFilter::OFF),
        "error" | "fatal" => Some(LevelFilter::ERROR),
        "warn" | "warning" => Some(LevelFilter::WARN),
        "info" => Some(LevelFilter::INFO),
        "debug" => Some(LevelFilter::DEBUG),
        "trace" => Some(LevelFilter::TRACE),
        _ => None,
    }
}

fn is_target(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-')
}

impl LogFilter {
    /// Parses a `RUST_LOG` value: `info`, `shared=debug`, `warn,shared::service=debug`.
    /// Returns the bare level (if any) apart from the target directives.
    pub fn parse_directives(spec: &str) -> Result<Directives, LogConfigError> {
        let mut bare = None;
        let mut targets = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || LogConfigError::Directive {
                var: "RUST_LOG",
                item: item.to_owned(),
            };
            match item.split_once('=') {
                // A bare word is a level. (EnvFilter would read `RUST_LOG=verbose` as a target
                // and log nothing else; here it is refused.)
                None => bare = Some(level(item).ok_or_else(bad)?),
                Some((t, l)) => {
                    let (t, l) = (t.trim(), level(l).ok_or_else(bad)?);
                    if !is_target(t) {
                        return Err(bad());
                    }
                    targets.push((t.to_owned(), l));
                }
            }
        }
        Ok((bare, targets))
    }

    /// The filter from Lambda's `AWS_LAMBDA_LOG_LEVEL` and `RUST_LOG`. The default level is
    /// `RUST_LOG`'s bare level if it has one, else `AWS_LAMBDA_LOG_LEVEL`, else `info`;
    /// `RUST_LOG`'s `target=level` items apply on top. (Lambda itself still drops JSON lines
    /// below the function's `ApplicationLogLevel`.)
    pub fn from_values(
        aws_lambda_log_level: Option<&str>,
        rust_log: Option<&str>,
    ) -> Result<Self, LogConfigError> {
        let aws = match aws_lambda_log_level
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => None,
            Some(v) => Some(level(v).ok_or_else(|| LogConfigError::Directive {
                var: "AWS_LAMBDA_LOG_LEVEL",
                item: v.to_owned(),
            })?),
        };
        let (bare, targets) = Self::parse_directives(rust_log.unwrap_or(""))?;
        Ok(Self {
            default: bare.or(aws).unwrap_or(LevelFilter::INFO),
            targets,
        })
    }

    /// The level in force for `target`.
    pub fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(t, _)| target.starts_with(t.as_str()))
            .max_by_key(|(t, _)| t.len())
            .map_or(self.default, |(_, l)| *l)
    }

    /// Whether a line of this level and target is written.
    pub fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.level_for(meta.target()) >= LevelFilter::from_level(*meta.level())
    }

    /// The most verbose level any target may use.
    pub fn max(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, LevelFilter::max)
    }
}

/// Where lines go: stdout, or a buffer (tests).
#[derive(Clone)]
pub enum Sink {
    Stdout,
    /// Tools whose stdout is their output (`user-admin` prints JSON lines there).
    Stderr,
    Memory(Arc<Mutex<Vec<String>>>),
}

impl Sink {
    fn write(&self, line: &str) {
        match self {
            Self::Stdout => {
                // One write per line, so lines from two threads never interleave.
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
            Self::Stderr => {
                let mut out = std::io::stderr().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.write_all(b"\n");
            }
            Self::Memory(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.push(line.to_owned());
                }
            }
        }
    }
}

/// The fields a span was created or later recorded with.
struct SpanFields(Map<String, Value>);

struct Visitor<'a>(&'a mut Map<String, Value>);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

/// The layer: writes enabled events as lines and hands audit events to the metrics.
pub struct Telemetry {
    filter: LogFilter,
    json: bool,
    function: Option<String>,
    sink: Sink,
}

impl Telemetry {
    pub fn new(filter: LogFilter, json: bool, function: Option<String>, sink: Sink) -> Self {
        Self {
            filter,
            json,
            function,
            sink,
        }
    }

    /// Spans up to `info` always (their fields must reach `warn` and `error` lines too);
    /// events when the filter lets them through, and audit events always (metrics).
    fn wants(&self, meta: &Metadata<'_>) -> bool {
        if meta.is_span() && *meta.level() <= tracing::Level::INFO {
            return true;
        }
        self.filter.enabled(meta) || (meta.is_event() && meta.target() == adapters::metrics::AUDIT)
    }

    fn line<S>(&self, event: &Event<'_>, fields: Map<String, Value>, ctx: &Context<'_, S>) -> String
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        let mut all = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    all.extend(f.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        all.extend(fields);
        let message = all.remove("message").unwrap_or(Value::from(""));
        if self.json {
            all.insert("timestamp".into(), Value::from(rfc3339(SystemTime::now())));
            all.insert("level".into(), Value::from(meta.level().as_str()));
            all.insert("target".into(), Value::from(meta.target()));
            if let Some(f) = &self.function {
                all.entry("function")
                    .or_insert_with(|| Value::from(f.as_str()));
            }
            all.insert("message".into(), message);
            Value::Object(all).to_string()
        } else {
            let mut s = format!(
                "{} {:>5} {}: {}",
                rfc3339(SystemTime::now()),
                meta.level().as_str(),
                meta.target(),
                message
                    .as_str()
                    .map_or_else(|| message.to_string(), str::to_owned)
            );
            if let Some(f) = &self.function {
                all.entry("function")
                    .or_insert_with(|| Value::from(f.as_str()));
            }
            for (k, v) in &all {
                match v {
                    Value::String(v) => write!(s, " {k}={v}"),
                    v => write!(s, " {k}={v}"),
                }
                .ok();
            }
            s
        }
    }
}

impl<S> Layer<S> for Telemetry
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.wants(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.wants(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.filter.max().max(LevelFilter::INFO))
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut Visitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(f) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut Visitor(&mut f.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Map::new();
        event.record(&mut Visitor(&mut fields));
        if meta.target() == adapters::metrics::AUDIT {
            adapters::metrics::record_audit(&fields);
        }
        if self.filter.enabled(meta) {
            self.sink.write(&self.line(event, fields, &ctx));
        }
    }
}

/// The logging choices the environment makes: level filter and format.
pub fn from_env() -> Result<(LogFilter, bool), LogConfigError> {
    let var = |n: &str| std::env::var(n).ok();
    let filter = LogFilter::from_values(
        var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        var("RUST_LOG").as_deref(),
    )?;
    let json = json_format(var("AWS_LAMBDA_LOG_FORMAT").as_deref())?;
    Ok((filter, json))
}

/// Whether Lambda's `AWS_LAMBDA_LOG_FORMAT` asks for JSON (`JSON`, or unset: our default) or
/// text (`Text`); anything else is refused.
pub fn json_format(value: Option<&str>) -> Result<bool, LogConfigError> {
    match value.map(str::trim) {
        None | Some("") => Ok(true),
        Some(f) if f.eq_ignore_ascii_case("json") => Ok(true),
        Some(f) if f.eq_ignore_ascii_case("text") => Ok(false),
        Some(f) => Err(LogConfigError::Format(f.to_owned())),
    }
}

/// Installs the logger for `function` (every line names it). A bad `RUST_LOG`,
/// `AWS_LAMBDA_LOG_LEVEL` or `AWS_LAMBDA_LOG_FORMAT` still installs a logger (JSON, `info`) so
/// the error itself can be logged, and is returned: a Lambda function fails its init with it.
/// A second call leaves the first logger in place.
pub fn try_init(function: Option<String>) -> Result<(), LogConfigError> {
    try_init_to(function, Sink::Stdout)
}

/// [`try_init`] writing to `sink`: the same line shape everywhere (a tool's lines on stderr
/// read like a function's in CloudWatch).
pub fn try_init_to(function: Option<String>, sink: Sink) -> Result<(), LogConfigError> {
    let (config, result) = match from_env() {
        Ok(c) => (c, Ok(())),
        Err(e) => ((LogFilter::default(), true), Err(e)),
    };
    let layer = Telemetry::new(config.0, config.1, function, sink);
    let _ = tracing_subscriber::registry().with(layer).try_init();
    result
}

/// [`try_init`] for tools and the dev server: a bad variable is logged as an error, loudly,
/// and the logger runs at `info`. The function name is `AWS_LAMBDA_FUNCTION_NAME` if set.
pub fn init() {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok();
    if let Err(e) = try_init(function) {
        tracing::error!(error = %e, "logging configuration refused; logging at info");
    }
}

/// `2026-11-25T12:00:00.000Z` for a time after 1970.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn directives_take_levels_and_target_levels_and_refuse_the_rest() {
        let f = LogFilter::from_values(None, Some("warn, shared=debug,shared::service=trace")).ok();
        let f = f.as_ref();
        assert_eq!(f.map(|f| f.default), Some(LevelFilter::WARN));
        assert_eq!(
            f.map(|f| f.level_for("shared::handlers")),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(
            f.map(|f| f.level_for("shared::service")),
            Some(LevelFilter::TRACE)
        );
        assert_eq!(
            f.map(|f| f.level_for("mongodb::pool")),
            Some(LevelFilter::WARN)
        );
        assert_eq!(f.map(LogFilter::max), Some(LevelFilter::TRACE));

        for bad in [
            "verbose",
            "shared",
            "shared=loud",
            "shared[request]=debug",
            "{x}",
            "a b=info",
        ] {
            assert!(
                matches!(
                    LogFilter::from_values(None, Some(bad)),
                    Err(LogConfigError::Directive {
                        var: "RUST_LOG",
                        ..
                    })
                ),
                "{bad} was accepted"
            );
        }
        let e = LogFilter::from_values(None, Some("info,shared=lots")).err();
        assert!(e.is_some_and(|e| e.to_string().contains("`shared=lots`")));
    }

    #[test]
    fn lambda_level_is_the_default_unless_rust_log_names_one() {
        let default = |aws, rust| LogFilter::from_values(aws, rust).ok().map(|f| f.default);
        assert_eq!(default(None, None), Some(LevelFilter::INFO));
        assert_eq!(default(Some("DEBUG"), None), Some(LevelFilter::DEBUG));
        assert_eq!(default(Some("FATAL"), None), Some(LevelFilter::ERROR));
        assert_eq!(
            default(Some("WARN"), Some("shared=debug")),
            Some(LevelFilter::WARN)
        );
        assert_eq!(
            default(Some("WARN"), Some("error")),
            Some(LevelFilter::ERROR)
        );
        assert!(matches!(
            LogFilter::from_values(Some("LOUD"), None),
            Err(LogConfigError::Directive {
                var: "AWS_LAMBDA_LOG_LEVEL",
                ..
            })
        ));
    }

    #[test]
    fn lines_carry_the_fields_of_every_enclosing_span() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let layer = Telemetry::new(
            LogFilter::from_values(None, Some("warn,here=debug")).unwrap_or_default(),
            true,
            Some("fn-1".into()),
            Sink::Memory(lines.clone()),
        );
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("invoke", requestId = "r-1", cold_start = true);
            let _o = outer.enter();
            let inner = tracing::info_span!("request", route = "login");
            let _i = inner.enter();
            tracing::debug!(target: "here", n = 3, "kept");
            tracing::info!(target: "elsewhere", "dropped");
            tracing::warn!(target: "elsewhere", "kept too");
        });
        let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let v: Value = serde_json::from_str(&lines[0]).unwrap_or_default();
        assert_eq!(v["requestId"], "r-1");
        assert_eq!(v["cold_start"], true);
        assert_eq!(v["route"], "login");
        assert_eq!(v["function"], "fn-1");
        assert_eq!(v["n"], 3);
        assert_eq!(v["level"], "DEBUG");
        assert_eq!(v["message"], "kept");
        let v: Value = serde_json::from_str(&lines[1]).unwrap_or_default();
        assert_eq!(
            (v["requestId"].as_str(), v["level"].as_str()),
            (Some("r-1"), Some("WARN"))
        );
    }

    #[test]
    fn text_format_when_lambda_asks_for_it() {
        assert_eq!(json_format(None), Ok(true));
        assert_eq!(json_format(Some("JSON")), Ok(true));
        assert_eq!(json_format(Some("Text")), Ok(false));
        assert_eq!(
            json_format(Some("yaml")),
            Err(LogConfigError::Format("yaml".into()))
        );
        let lines = Arc::new(Mutex::new(Vec::new()));
        let layer = Telemetry::new(
            LogFilter::default(),
            false,
            Some("fn-1".into()),
            Sink::Memory(lines.clone()),
        );
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = tracing::info_span!("invoke", requestId = "r-2");
            let _s = span.enter();
            tracing::info!(target: "here", n = 3, "hello");
        });
        let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(line.contains(" INFO here: hello "), "{line}");
        for kv in ["function=fn-1", "n=3", "requestId=r-2"] {
            assert!(line.split(' ').any(|w| w == kv), "{kv} not in {line}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_608_000_123);
        assert_eq!(rfc3339(t), "2026-11-25T12:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // leap day
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }
}
