//! A bounded batch span processor that never makes a probe wait: a finished span is queued
//! with `try_send` (a full queue drops it), a task on the daemon's runtime exports batches,
//! and every span lost on the way — queue full, or its batch refused or unreachable — is
//! counted in `mcp_exporter_spans_dropped_total` (src/otel/metrics.rs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

/// Sizes and timing of the queue and its batches.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Spans waiting for export at most; more are dropped.
    pub queue: usize,
    /// Spans per export request at most.
    pub batch: usize,
    /// Longest wait before a partial batch is exported.
    pub delay: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            queue: 2048,
            batch: 512,
            delay: Duration::from_secs(1),
        }
    }
}

enum Message {
    Span(Box<SpanData>),
    /// Export what is queued, then answer.
    Flush(oneshot::Sender<()>),
}

/// The processor; clones share the queue (the tracer provider holds one, the daemon another
/// to flush at shutdown). `shutdown` ends the export task after a last batch.
#[derive(Clone, Debug)]
pub struct BoundedBatchProcessor {
    sender: Arc<Mutex<Option<mpsc::Sender<Message>>>>,
    dropped: Counter,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Span(_) => "Span",
            Message::Flush(_) => "Flush",
        })
    }
}

impl BoundedBatchProcessor {
    /// Starts the export task on `handle`'s runtime.
    pub fn start<E: SpanExporter + 'static>(
        exporter: E,
        limits: BatchLimits,
        dropped: Counter,
        handle: &tokio::runtime::Handle,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(limits.queue.max(1));
        handle.spawn(export_loop(exporter, receiver, limits, dropped.clone()));
        BoundedBatchProcessor {
            sender: Arc::new(Mutex::new(Some(sender))),
            dropped,
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<Message>> {
        self.sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Exports what is queued and waits for it (at most `timeout`): the daemon's shutdown.
    pub async fn flush(&self, timeout: Duration) {
        let Some(sender) = self.sender() else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        if sender.send(Message::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
    }
}

impl SpanProcessor for BoundedBatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let sent = self
            .sender()
            .map(|s| s.try_send(Message::Span(Box::new(span))).is_ok());
        if sent != Some(true) {
            self.dropped.inc();
        }
    }

    /// Asks for an export without waiting (the SDK calls it from synchronous code).
    fn force_flush(&self) -> OTelSdkResult {
        if let Some(sender) = self.sender() {
            let (tx, _rx) = oneshot::channel();
            let _ = sender.try_send(Message::Flush(tx));
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(())
    }
}

async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut receiver: mpsc::Receiver<Message>,
    limits: BatchLimits,
    dropped: Counter,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(limits.batch);
    loop {
        let message = if batch.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout(limits.delay, receiver.recv()).await {
                Ok(message) => message,
                Err(_elapsed) => {
                    export(&exporter, &mut batch, &dropped).await;
                    continue;
                }
            }
        };
        match message {
            Some(Message::Span(span)) => {
                batch.push(*span);
                if batch.len() >= limits.batch {
                    export(&exporter, &mut batch, &dropped).await;
                }
            }
            Some(Message::Flush(done)) => {
                export(&exporter, &mut batch, &dropped).await;
                let _ = done.send(());
            }
            None => {
                export(&exporter, &mut batch, &dropped).await;
                let _ = exporter.shutdown();
                return;
            }
        }
    }
}

async fn export<E: SpanExporter>(exporter: &E, batch: &mut Vec<SpanData>, dropped: &Counter) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let count = spans.len() as u64;
    if let Err(err) = exporter.export(spans).await {
        dropped.inc_by(count);
        tracing::debug!(error = %err, spans = count, "span export failed; spans dropped");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;

    /// An exporter that fails while `down` is set and counts the spans it accepted.
    #[derive(Debug, Clone, Default)]
    struct Collector {
        down: Arc<AtomicBool>,
        accepted: Arc<AtomicUsize>,
    }

    impl SpanExporter for Collector {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if self.down.load(Ordering::SeqCst) {
                return Err(OTelSdkError::InternalFailure("collector down".into()));
            }
            self.accepted.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn failed_batches_and_a_full_queue_are_counted_as_dropped() {
        let collector = Collector::default();
        let dropped = Counter::default();
        let limits = BatchLimits {
            queue: 4,
            batch: 100,
            delay: Duration::from_secs(60),
        };
        let processor = BoundedBatchProcessor::start(
            collector.clone(),
            limits,
            dropped.clone(),
            &tokio::runtime::Handle::current(),
        );
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor.clone())
            .build();
        let tracer = provider.tracer("test");
        // The export task cannot run between these synchronous calls: 4 fit, 2 are dropped.
        for _ in 0..6 {
            tracer.start("s");
        }
        assert_eq!(dropped.get(), 2);
        processor.flush(Duration::from_secs(5)).await;
        assert_eq!(collector.accepted.load(Ordering::SeqCst), 4);

        collector.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            tracer.start("s");
        }
        processor.flush(Duration::from_secs(5)).await;
        assert_eq!(dropped.get(), 5, "the failed batch's 3 spans are dropped");
        assert_eq!(collector.accepted.load(Ordering::SeqCst), 4);
    }
}
