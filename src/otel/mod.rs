//! OpenTelemetry traces of every probe and dependency check (docs/tracing.md): `[otlp]`
//! (config.rs) turns them on; spans are opened by the probe code through span.rs, queued by a
//! bounded processor that never delays a probe (processor.rs) and exported as OTLP
//! http/protobuf through the daemon's reqwest (http_client.rs) or as OTLP gRPC over tonic
//! (grpc.rs). Lost spans are counted (metrics.rs).
//!
//! The daemon calls [`init`] once, then [`prepare`] and [`Change::apply`] at start and at every
//! configuration reload: a changed `[otlp]` replaces the exporter; the old one exports what it
//! holds and shuts down in the background, once the last span started under it has ended, so
//! neither a probe nor the reload waits for the old collector.

pub mod config;
mod grpc;
mod http_client;
pub mod metrics;
mod processor;
pub mod span;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanExporter};
use prometheus_client::metrics::counter::Counter;

pub use self::config::{ExportSettings, OtlpConfig, OtlpSettingsError, Protocol};
pub use self::grpc::GrpcError;
pub use self::processor::BatchLimits;
use self::processor::BoundedBatchProcessor;
pub use self::span::TraceSpan;
use crate::config::KeyError;

/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a replaced exporter may take to export what it holds.
const RETIRE_FLUSH: Duration = Duration::from_secs(15);

/// The exporting of this process.
static EXPORTING: Exporting = Exporting::new();

/// What every exporter of this process shares: its batch limits and the dropped-spans count.
#[derive(Clone, Debug)]
struct Setup {
    limits: BatchLimits,
    dropped: Counter,
}

/// One exporter and the tracer that feeds it.
pub struct Installed {
    settings: ExportSettings,
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    processor: BoundedBatchProcessor,
}

/// The exporter in use (none while traces are off), replaceable while running.
struct Exporting {
    setup: OnceLock<Setup>,
    current: RwLock<Option<Arc<Installed>>>,
}

/// Why traces could not be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The merged file and environment settings are unusable.
    #[error(transparent)]
    Settings(#[from] OtlpSettingsError),
    /// The HTTP client could not be built.
    #[error("OTLP HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The OTLP http/protobuf exporter refused its settings.
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The OTLP gRPC exporter refused its settings.
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    /// [`init`] was not called, or not on a tokio runtime.
    #[error("traces are not initialized")]
    NotInitialized,
}

impl OtelError {
    /// The error as a rejected key of `[otlp]`, for the reply to a reload.
    pub fn key_error(&self) -> KeyError {
        let key = match self {
            OtelError::Settings(OtlpSettingsError::Header { header, reason }) => {
                return KeyError::new(0, format!("otlp.headers.{header}"), reason.clone());
            }
            OtelError::Grpc(GrpcError::Metadata { name, reason }) => {
                return KeyError::new(0, format!("otlp.headers.{name}"), reason.clone());
            }
            OtelError::Settings(OtlpSettingsError::Variable { .. }) => "otlp",
            _ => "otlp.endpoint",
        };
        KeyError::new(0, key, self.to_string())
    }
}

/// What [`prepare`] found: apply it with [`Change::apply`].
pub enum Change {
    /// The settings are those in use (or traces were off and stay off).
    Unchanged,
    /// Traces go off.
    Off,
    /// A new exporter, built and ready, replaces the one in use (if any).
    Replace(Box<Installed>),
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Unchanged => f.write_str("Unchanged"),
            Change::Off => f.write_str("Off"),
            Change::Replace(next) => write!(f, "Replace({:?})", next.settings),
        }
    }
}

impl Change {
    /// Puts the change in effect: new spans go to the new exporter (or nowhere); the old
    /// exporter exports what it holds in the background.
    pub fn apply(self) {
        EXPORTING.apply(self);
    }
}

/// Records the batch limits and the dropped-spans counter every exporter of this process
/// uses; later calls change nothing.
pub fn init(limits: BatchLimits, dropped: Counter) {
    let _ = EXPORTING.setup.set(Setup { limits, dropped });
}

/// The tracer, when traces are on.
pub fn tracer() -> Option<SdkTracer> {
    EXPORTING.tracer()
}

/// Resolves `config` with the process environment and, when the result differs from the
/// exporter in use, builds the new exporter (on the current tokio runtime) without putting it
/// in use. `Err` says why the settings cannot export; nothing changed.
pub fn prepare(config: &OtlpConfig) -> Result<Change, OtelError> {
    let settings = config.resolve(|name| std::env::var(name).ok())?;
    EXPORTING.prepare(settings)
}

/// Exports the spans still queued (at most `timeout`): the daemon's shutdown.
pub async fn flush(timeout: Duration) {
    let current = EXPORTING.current();
    if let Some(installed) = current {
        installed.processor.flush(timeout).await;
        let _ = installed.provider.force_flush();
    }
}

impl Exporting {
    const fn new() -> Self {
        Exporting {
            setup: OnceLock::new(),
            current: RwLock::new(None),
        }
    }

    fn current(&self) -> Option<Arc<Installed>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn tracer(&self) -> Option<SdkTracer> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|installed| installed.tracer.clone())
    }

    fn prepare(&self, settings: Option<ExportSettings>) -> Result<Change, OtelError> {
        let current = self.current();
        let Some(settings) = settings else {
            return Ok(match current {
                Some(_) => Change::Off,
                None => Change::Unchanged,
            });
        };
        if current.is_some_and(|installed| installed.settings == settings) {
            return Ok(Change::Unchanged);
        }
        let setup = self.setup.get().ok_or(OtelError::NotInitialized)?;
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| OtelError::NotInitialized)?;
        let _entered = handle.enter();
        let installed = match settings.protocol {
            Protocol::HttpProtobuf => {
                let client = http_client::ReqwestOnRuntime::new(handle.clone(), EXPORT_TIMEOUT)?;
                let headers: HashMap<String, String> =
                    settings.headers.clone().into_iter().collect();
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(client)
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(settings.traces_url.as_str())
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_headers(headers)
                    .build()?;
                Installed::start(settings, exporter, setup, &handle)
            }
            Protocol::Grpc => {
                let exporter =
                    grpc::exporter(&settings.traces_url, &settings.headers, EXPORT_TIMEOUT)?;
                Installed::start(settings, exporter, setup, &handle)
            }
        };
        Ok(Change::Replace(Box::new(installed)))
    }

    fn apply(&self, change: Change) {
        let next = match change {
            Change::Unchanged => return,
            Change::Off => None,
            Change::Replace(next) => Some(Arc::new(*next)),
        };
        match &next {
            Some(installed) => tracing::info!(
                endpoint = %installed.settings.traces_url,
                protocol = %installed.settings.protocol,
                sampling_ratio = installed.settings.sampling_ratio,
                service_name = %installed.settings.service_name,
                "exporting probe traces"
            ),
            None => tracing::info!("probe traces off"),
        }
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|p| p.into_inner()),
            next,
        );
        if let Some(old) = old {
            retire(old);
        }
    }
}

impl Installed {
    fn start<E: SpanExporter + 'static>(
        settings: ExportSettings,
        exporter: E,
        setup: &Setup,
        handle: &tokio::runtime::Handle,
    ) -> Installed {
        let processor =
            BoundedBatchProcessor::start(exporter, setup.limits, setup.dropped.clone(), handle);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor.clone())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sampling_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("mcp-exporter");
        Installed {
            settings,
            tracer,
            provider,
            processor,
        }
    }
}

/// Exports what a replaced exporter holds, in the background. Its provider shuts it down (a
/// last batch, then the exporter's own shutdown) when the last span started under it ends.
fn retire(old: Arc<Installed>) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                old.processor.flush(RETIRE_FLUSH).await;
                tracing::debug!(endpoint = %old.settings.traces_url, "replaced span exporter flushed");
            });
        }
        Err(_) => drop(old),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use opentelemetry::trace::{Span as _, Tracer as _};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::SpanData;

    use super::*;

    /// An exporter that counts what it accepted.
    #[derive(Debug, Clone, Default)]
    struct Collector(Arc<AtomicUsize>);

    impl SpanExporter for Collector {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    fn settings(endpoint: &str, protocol: Protocol) -> ExportSettings {
        ExportSettings {
            traces_url: url::Url::parse(endpoint).expect("url"),
            protocol,
            headers: Default::default(),
            sampling_ratio: 1.0,
            service_name: "test".into(),
        }
    }

    fn exporting() -> (Exporting, Counter) {
        let exporting = Exporting::new();
        let dropped = Counter::default();
        let _ = exporting.setup.set(Setup {
            limits: BatchLimits {
                delay: Duration::from_secs(60),
                ..BatchLimits::default()
            },
            dropped: dropped.clone(),
        });
        (exporting, dropped)
    }

    #[tokio::test]
    async fn the_same_settings_keep_the_exporter_and_others_replace_it() {
        let (exporting, _) = exporting();
        assert!(matches!(exporting.prepare(None), Ok(Change::Unchanged)));
        let http = settings("http://127.0.0.1:9/v1/traces", Protocol::HttpProtobuf);
        let change = exporting.prepare(Some(http.clone())).expect("builds");
        assert!(matches!(change, Change::Replace(_)), "{change:?}");
        exporting.apply(change);
        assert!(exporting.tracer().is_some());
        assert!(matches!(
            exporting.prepare(Some(http.clone())),
            Ok(Change::Unchanged)
        ));
        let grpc = settings("http://127.0.0.1:9", Protocol::Grpc);
        let change = exporting.prepare(Some(grpc.clone())).expect("builds");
        exporting.apply(change);
        assert_eq!(
            exporting.current().map(|i| i.settings.clone()),
            Some(grpc),
            "the gRPC exporter is in use"
        );
        let change = exporting.prepare(None).expect("off");
        assert!(matches!(change, Change::Off), "{change:?}");
        exporting.apply(change);
        assert!(exporting.tracer().is_none());
    }

    #[tokio::test]
    async fn a_span_open_across_a_replacement_is_exported_by_the_old_exporter() {
        let (exporting, dropped) = exporting();
        let old_collector = Collector::default();
        let handle = tokio::runtime::Handle::current();
        let setup = exporting.setup.get().expect("set up").clone();
        let old = Installed::start(
            settings("http://old:4318/v1/traces", Protocol::HttpProtobuf),
            old_collector.clone(),
            &setup,
            &handle,
        );
        exporting.apply(Change::Replace(Box::new(old)));
        let mut open = exporting.tracer().expect("on").start("open across");
        exporting.tracer().expect("on").start("ended before").end();

        let new_collector = Collector::default();
        let new = Installed::start(
            settings("http://new:4318/v1/traces", Protocol::HttpProtobuf),
            new_collector.clone(),
            &setup,
            &handle,
        );
        exporting.apply(Change::Replace(Box::new(new)));
        exporting.tracer().expect("on").start("after").end();
        open.end();
        drop(open);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while old_collector.0.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(old_collector.0.load(Ordering::SeqCst), 2);
        flush_current(&exporting).await;
        assert_eq!(new_collector.0.load(Ordering::SeqCst), 1);
        assert_eq!(dropped.get(), 0, "no span is lost to the replacement");
    }

    async fn flush_current(exporting: &Exporting) {
        if let Some(installed) = exporting.current() {
            installed.processor.flush(Duration::from_secs(5)).await;
        }
    }
}
