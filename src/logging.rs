//! Daemon logs with tracing: human format on a terminal, JSON lines for log shippers.
//!
//! The JSON format follows the Elastic Common Schema (ECS) so Filebeat or Vector can ship it
//! to Elasticsearch unchanged: `@timestamp`, `log.level`, `message`, `log.logger`,
//! `service.name`, `service.version`, `process.pid`, `ecs.version`; an event's `error` field
//! becomes `error.message`, and the exporter's own fields go under `mcp.` (e.g. `mcp.server`),
//! outside the ECS field sets, so they never clash with ECS objects such as `server`.

use std::fmt;
use std::io::IsTerminal;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// ECS version the JSON lines follow.
pub const ECS_VERSION: &str = "8.11.0";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    Human,
    /// One JSON object per line with Elastic Common Schema field names.
    Json,
}

/// The log flags every command takes (`mcp-exporter`'s global flags, and the companion
/// `mcp-exporter-wrap`'s, src/bin/mcp-exporter-wrap.rs): one definition for both binaries.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct LogArgs {
    /// Log format of the daemon's own logs (stderr); also `--log.format`.
    #[arg(long, visible_alias = "log.format", global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) or a RUST_LOG-style filter; also `--log.level`.
    #[arg(
        long,
        visible_alias = "log.level",
        global = true,
        default_value = "info"
    )]
    pub log_level: String,
}

impl LogArgs {
    /// Installs the global subscriber these flags describe ([`init`]).
    pub fn init(&self) {
        init(self.log_format, &self.log_level);
    }
}

/// Installs the global subscriber writing to stderr. `RUST_LOG` overrides `level`.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::security::redact::RedactingStderr);
    match format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.event_format(EcsFormat).init(),
    }
}

/// Formats events as ECS JSON lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct EcsFormat;

impl<S, N> FormatEvent<S, N> for EcsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = ecs_line(event, SystemTime::now());
        writeln!(writer, "{line}")
    }
}

/// The ECS JSON object of one event.
pub fn ecs_line(event: &Event<'_>, now: SystemTime) -> String {
    let meta = event.metadata();
    let mut fields = EcsFields::default();
    event.record(&mut fields);
    let mut obj = Map::new();
    obj.insert(
        "@timestamp".into(),
        humantime::format_rfc3339_millis(now).to_string().into(),
    );
    obj.insert(
        "log.level".into(),
        meta.level().as_str().to_ascii_lowercase().into(),
    );
    obj.insert("message".into(), fields.message.unwrap_or_default().into());
    obj.insert("log.logger".into(), meta.target().into());
    obj.insert("service.name".into(), "mcp-exporter".into());
    obj.insert("service.version".into(), env!("CARGO_PKG_VERSION").into());
    obj.insert("process.pid".into(), std::process::id().into());
    obj.insert("ecs.version".into(), ECS_VERSION.into());
    for (key, value) in fields.rest {
        obj.insert(key, value);
    }
    Value::Object(obj).to_string()
}

#[derive(Default)]
struct EcsFields {
    message: Option<String>,
    rest: Vec<(String, Value)>,
}

impl EcsFields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = Some(
                    value
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| value.to_string()),
                )
            }
            "error" => self.rest.push(("error.message".into(), value)),
            name => self.rest.push((format!("mcp.{name}"), value)),
        }
    }
}

impl Visit for EcsFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_use_ecs_field_names() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(EcsFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                server = "fs",
                duration_ms = 12u64,
                error = "boom",
                "health changed"
            );
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["log.level"], "warn");
        assert_eq!(v["message"], "health changed");
        assert_eq!(v["service.name"], "mcp-exporter");
        assert_eq!(v["ecs.version"], ECS_VERSION);
        assert_eq!(v["mcp.server"], "fs");
        assert_eq!(v["mcp.duration_ms"], 12);
        assert_eq!(v["error.message"], "boom");
        assert!(v["@timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(v["process.pid"].is_u64());
    }
}
