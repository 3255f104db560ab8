//! The spans the probe code opens: a root per probe or dependency check, children for its
//! stages and requests (docs/tracing.md#span-tree). A no-op when traces are off: the probe
//! code asks [`TraceSpan::root`] and gets `None`.

use std::borrow::Cow;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};

/// One open span and the context its children start from; clones refer to the same span.
#[derive(Clone, Debug)]
pub struct TraceSpan {
    cx: Context,
}

impl TraceSpan {
    /// Starts the root span of a new trace, `None` when traces are off (src/otel/mod.rs).
    pub fn root(name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) -> Option<Self> {
        let tracer = super::tracer()?;
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes)
            .start_with_context(&tracer, &Context::new());
        Some(TraceSpan {
            cx: Context::new().with_span(span),
        })
    }

    /// Starts a child span of this one.
    pub fn child(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> TraceSpan {
        let span = match super::tracer() {
            Some(tracer) => tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes(attributes)
                .start_with_context(&tracer, &self.cx),
            // No tracer installed: a span that records nothing (never this one, which `end`
            // would close).
            None => {
                return TraceSpan { cx: Context::new() };
            }
        };
        TraceSpan {
            cx: self.cx.with_span(span),
        }
    }

    /// Sets an attribute.
    pub fn set(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Marks the span failed: status Error with `message`, and `error.type`.
    pub fn fail(&self, error_type: impl Into<String>, message: impl Into<String>) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("error.type", error_type.into()));
        span.set_status(Status::error(message.into()));
    }

    /// The trace id (32 hex digits) when this trace is sampled, so metrics may point at it.
    pub fn sampled_trace_id(&self) -> Option<String> {
        let span = self.cx.span();
        let context = span.span_context();
        context.is_sampled().then(|| context.trace_id().to_string())
    }

    /// The W3C `traceparent` of this span, for the request it describes.
    pub fn traceparent(&self) -> String {
        let span = self.cx.span();
        let context = span.span_context();
        format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        )
    }

    /// Ends the span now.
    pub fn end(self) {
        self.cx.span().end();
    }
}
