//! Logging for a plugin: hclog-style JSON lines on stderr, which Terraform
//! reads and merges into its own log, and a panic hook that makes a panic
//! look like a Go plugin crash so Terraform reports it.
//!
//! The level comes from `TF_LOG_PROVIDER`, else `TF_LOG` (`TRACE`, `DEBUG`,
//! `INFO`, `WARN`, `ERROR`, `OFF`; `JSON` means `TRACE`). Without either,
//! nothing is logged.
//!
//! Timing fields: debug lines that time something carry `duration_us`, and
//! `at_us`, the microseconds since this process printed its handshake line
//! ([`mark_handshake`]). Terraform copies plugin lines into its own log with
//! millisecond timestamps only; these fields are what `scripts/bench` reads
//! to split a plan's time between Terraform and the provider.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, registry};

/// The level chosen by `TF_LOG_PROVIDER` / `TF_LOG` (given as values).
pub fn level_from(tf_log: Option<&str>, tf_log_provider: Option<&str>) -> LevelFilter {
    let pick = tf_log_provider
        .filter(|v| !v.trim().is_empty())
        .or(tf_log.filter(|v| !v.trim().is_empty()));
    match pick.map(|v| v.trim().to_ascii_uppercase()) {
        None => LevelFilter::OFF,
        Some(v) => match v.as_str() {
            "OFF" => LevelFilter::OFF,
            "ERROR" => LevelFilter::ERROR,
            "WARN" => LevelFilter::WARN,
            "INFO" => LevelFilter::INFO,
            "DEBUG" => LevelFilter::DEBUG,
            // TRACE, JSON and anything unrecognised: Terraform's own rule.
            _ => LevelFilter::TRACE,
        },
    }
}

/// A tracing layer writing one hclog JSON object per event to stderr.
#[derive(Debug, Clone)]
pub struct HclogLayer {
    module: String,
}

impl HclogLayer {
    /// Events are tagged with `@module` = `module`.
    pub fn new(module: impl Into<String>) -> HclogLayer {
        HclogLayer {
            module: module.into(),
        }
    }

    /// Formats one event as an hclog JSON line (without newline).
    pub fn format(
        &self,
        level: &Level,
        target: &str,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> String {
        let mut obj = serde_json::Map::new();
        let lvl = match *level {
            Level::TRACE => "trace",
            Level::DEBUG => "debug",
            Level::INFO => "info",
            Level::WARN => "warn",
            Level::ERROR => "error",
        };
        obj.insert("@level".into(), lvl.into());
        obj.insert(
            "@timestamp".into(),
            chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
                .into(),
        );
        obj.insert("@module".into(), self.module.clone().into());
        let mut fields = fields;
        let message = fields.remove("message").unwrap_or_else(|| "".into());
        obj.insert("@message".into(), message);
        obj.insert("target".into(), target.into());
        for (k, v) in fields {
            obj.insert(k, v);
        }
        serde_json::Value::Object(obj).to_string()
    }
}

#[derive(Default)]
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let line = self.format(meta.level(), meta.target(), fields.0);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

/// Crates whose own logging is capped at WARN: their TRACE output (TLS
/// and HTTP/2 frames) would drown the provider's.
const NOISY_TARGETS: &[&str] = &[
    "rustls", "h2", "hyper", "tonic", "tower", "mio", "tokio", "log",
];

/// Whether an event from `target` at `level` passes when the configured
/// level is `configured`.
pub fn enabled(configured: LevelFilter, target: &str, level: &Level) -> bool {
    let noisy = NOISY_TARGETS
        .iter()
        .any(|n| target == *n || target.strip_prefix(n).is_some_and(|r| r.starts_with("::")));
    let limit = if noisy {
        configured.min(LevelFilter::WARN)
    } else {
        configured
    };
    limit >= *level
}

/// Installs the hclog layer as the global subscriber, with the level from
/// the environment. Does nothing if a subscriber is already installed.
pub fn init(module: &str) {
    let level = level_from(
        std::env::var("TF_LOG").ok().as_deref(),
        std::env::var("TF_LOG_PROVIDER").ok().as_deref(),
    );
    let filter = tracing_subscriber::filter::filter_fn(move |meta| {
        enabled(level, meta.target(), meta.level())
    });
    let _ = registry()
        .with(HclogLayer::new(module).with_filter(filter))
        .try_init();
}

/// When `main` began and when the handshake line was written.
static STARTED: OnceLock<Instant> = OnceLock::new();
static HANDSHAKE: OnceLock<Instant> = OnceLock::new();

/// Records the moment `main` began (the first call wins).
pub fn mark_start() {
    let _ = STARTED.set(Instant::now());
}

/// Records the moment the handshake line was written (the first call wins).
pub fn mark_handshake() {
    let _ = HANDSHAKE.set(Instant::now());
}

/// Microseconds since [`mark_start`], 0 if it was never called.
pub fn since_start_us() -> u64 {
    STARTED.get().map_or(0, |t| micros(t.elapsed()))
}

/// Microseconds since [`mark_handshake`], 0 before the handshake line.
pub fn since_handshake_us() -> u64 {
    HANDSHAKE.get().map_or(0, |t| micros(t.elapsed()))
}

/// A duration in whole microseconds, saturating (a log field, not arithmetic).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Installs a panic hook that prints `panic: <message>` plus location and
/// backtrace on stderr, then exits with status 2, as a Go plugin crash
/// does. Terraform collects plugin stderr from the `panic: ` line and
/// reports "The plugin crashed" with that text.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".to_string());
        let location = info
            .location()
            .map(|l| l.to_string())
            .unwrap_or_else(|| "unknown location".into());
        let bt = std::backtrace::Backtrace::force_capture();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "panic: {msg}\n\nthread panicked at {location}\n{bt}");
        let _ = err.flush();
        std::process::exit(2);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_level_overrides_global() {
        assert_eq!(level_from(None, None), LevelFilter::OFF);
        assert_eq!(level_from(Some("debug"), None), LevelFilter::DEBUG);
        assert_eq!(level_from(Some("TRACE"), Some("WARN")), LevelFilter::WARN);
        assert_eq!(level_from(Some("JSON"), Some("")), LevelFilter::TRACE);
        assert_eq!(level_from(Some("off"), None), LevelFilter::OFF);
    }

    /// Runs itself as a child process that installs the hook and panics.
    #[test]
    fn panic_hook_reports_like_a_go_plugin_crash() {
        if std::env::var_os("TFPLUGIN_PANIC_CHILD").is_some() {
            install_panic_hook();
            panic!("boom {}", 42);
        }
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "log::tests::panic_hook_reports_like_a_go_plugin_crash",
                "--nocapture",
            ])
            .env("TFPLUGIN_PANIC_CHILD", "1")
            .output()
            .expect("child runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.lines().any(|l| l == "panic: boom 42"), "{stderr}");
        assert!(stderr.contains("log.rs"), "location printed: {stderr}");
    }

    #[test]
    fn dependencies_are_capped_at_warn() {
        assert!(enabled(
            LevelFilter::TRACE,
            "tfplugin::serve",
            &Level::TRACE
        ));
        assert!(enabled(
            LevelFilter::TRACE,
            "terraform_provider_beads",
            &Level::DEBUG
        ));
        assert!(!enabled(
            LevelFilter::TRACE,
            "rustls::server::hs",
            &Level::DEBUG
        ));
        assert!(enabled(LevelFilter::TRACE, "h2::codec", &Level::WARN));
        assert!(!enabled(LevelFilter::ERROR, "h2", &Level::WARN));
        assert!(enabled(LevelFilter::TRACE, "h2o", &Level::TRACE));
        assert!(!enabled(LevelFilter::OFF, "tfplugin", &Level::ERROR));
    }

    #[test]
    fn timing_fields_count_from_their_marks() {
        assert_eq!(micros(Duration::from_millis(3)), 3000);
        assert_eq!(micros(Duration::MAX), u64::MAX);
        // After the mark the offset counts the time since it (a sleep lasts
        // at least what it asks for).
        mark_handshake();
        let first = since_handshake_us();
        std::thread::sleep(Duration::from_millis(2));
        assert!(since_handshake_us() >= first + 2000);
    }

    #[test]
    fn lines_are_hclog_json() {
        let mut f = serde_json::Map::new();
        f.insert("message".into(), "hello".into());
        f.insert("type_name".into(), "beads_x".into());
        let line =
            HclogLayer::new("provider.terraform-provider-beads").format(&Level::WARN, "t", f);
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "hello");
        assert_eq!(v["@module"], "provider.terraform-provider-beads");
        assert_eq!(v["type_name"], "beads_x");
        let ts = v["@timestamp"].as_str().expect("timestamp");
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    }
}
