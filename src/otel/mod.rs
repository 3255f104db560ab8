//! OpenTelemetry traces of every probe and dependency check (docs/tracing.md): `[otlp]`
//! (config.rs) turns them on; spans are opened by the probe code through span.rs, queued by a
//! bounded processor that never delays a probe (processor.rs) and posted as OTLP http/protobuf
//! through the daemon's reqwest (http_client.rs). Lost spans are counted (metrics.rs).
//!
//! The tracer is installed once, at daemon start; a configuration reload does not change it.

pub mod config;
mod http_client;
pub mod metrics;
mod processor;
pub mod span;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use prometheus_client::metrics::counter::Counter;

pub use self::config::{ExportSettings, OtlpConfig, OtlpSettingsError};
pub use self::processor::BatchLimits;
use self::processor::BoundedBatchProcessor;
pub use self::span::TraceSpan;

/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The tracer of this process, once [`install`]ed.
static TRACER: OnceLock<Installed> = OnceLock::new();

struct Installed {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    processor: BoundedBatchProcessor,
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The merged file and environment settings are unusable.
    #[error(transparent)]
    Settings(#[from] OtlpSettingsError),
    /// The HTTP client could not be built.
    #[error("OTLP HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The OTLP exporter refused its settings.
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A tracer is already installed in this process.
    #[error("a tracer is already installed")]
    AlreadyInstalled,
}

/// The tracer, when traces are on.
pub fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get().map(|installed| &installed.tracer)
}

/// Starts exporting as `settings` say, on the current tokio runtime, counting lost spans in
/// `dropped`.
pub fn install(
    settings: &ExportSettings,
    limits: BatchLimits,
    dropped: Counter,
) -> Result<(), OtelError> {
    if TRACER.get().is_some() {
        return Err(OtelError::AlreadyInstalled);
    }
    let handle = tokio::runtime::Handle::current();
    let client = http_client::ReqwestOnRuntime::new(handle.clone(), EXPORT_TIMEOUT)?;
    let headers: HashMap<String, String> = settings.headers.clone().into_iter().collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(settings.traces_url.as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(headers)
        .build()?;
    let processor = BoundedBatchProcessor::start(exporter, limits, dropped, &handle);
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
    TRACER
        .set(Installed {
            tracer,
            provider,
            processor,
        })
        .map_err(|_| OtelError::AlreadyInstalled)
}

/// Exports the spans still queued (at most `timeout`): the daemon's shutdown.
pub async fn flush(timeout: Duration) {
    if let Some(installed) = TRACER.get() {
        installed.processor.flush(timeout).await;
        let _ = installed.provider.force_flush();
    }
}
