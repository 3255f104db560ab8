//! `protocol = "grpc"`: the OTLP span exporter over a tonic channel. TLS (`https://`) is the
//! daemon's rustls with aws-lc-rs and the system's trust roots (as rustls-native-certs reads
//! them, `SSL_CERT_FILE` included); `http://` is plaintext HTTP/2. The headers of `[otlp]` are
//! sent as gRPC metadata; the exporter's own reading of `OTEL_EXPORTER_OTLP_*HEADERS` is
//! overwritten by them, so the merge of src/otel/config.rs (the file wins) is what is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_otlp::{ExporterBuildError, WithExportConfig as _, WithTonicConfig as _};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::ClientTlsConfig;

/// Why the gRPC exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// A header cannot be gRPC metadata (names are lowercase ASCII, `-bin` names are binary).
    #[error("otlp.headers.{name}: not usable as gRPC metadata ({reason})")]
    Metadata {
        /// The header.
        name: String,
        /// What tonic refused.
        reason: String,
    },
    /// The exporter refused its settings (e.g. an endpoint tonic cannot parse).
    #[error("OTLP gRPC exporter: {0}")]
    Exporter(#[from] ExporterBuildError),
}

/// Adds the configured metadata to every export request, replacing any value of the same key.
#[derive(Clone, Debug)]
struct Metadata(MetadataMap);

impl tonic::service::Interceptor for Metadata {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        for entry in self.0.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry {
                request.metadata_mut().insert(key.clone(), value.clone());
            }
        }
        Ok(request)
    }
}

/// The headers as gRPC metadata.
fn metadata(headers: &BTreeMap<String, String>) -> Result<MetadataMap, GrpcError> {
    let mut map = MetadataMap::new();
    for (name, value) in headers {
        let refused = |reason: String| GrpcError::Metadata {
            name: name.clone(),
            reason,
        };
        let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|e| refused(e.to_string()))?;
        let value = AsciiMetadataValue::try_from(value.as_str())
            .map_err(|e| refused(format!("the value: {e}")))?;
        map.insert(key, value);
    }
    Ok(map)
}

/// The span exporter to `endpoint` (`http://host:4317`, or `https://` for TLS). The channel
/// connects lazily, on the first export; it must be built on a tokio runtime.
pub fn exporter(
    endpoint: &url::Url,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<opentelemetry_otlp::SpanExporter, GrpcError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_protocol(opentelemetry_otlp::Protocol::Grpc)
        .with_endpoint(endpoint.as_str())
        .with_timeout(timeout)
        .with_interceptor(Metadata(metadata(headers)?));
    if endpoint.scheme() == "https" {
        builder = builder.with_tls_config(ClientTlsConfig::new().with_native_roots());
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor as _;

    use super::*;

    #[test]
    fn headers_become_metadata_and_replace_what_the_request_has() {
        let headers = BTreeMap::from([
            ("Authorization".to_string(), "Bearer t0k".to_string()),
            ("x-tenant".to_string(), "a".to_string()),
        ]);
        let mut interceptor = Metadata(metadata(&headers).expect("valid metadata"));
        let mut request = tonic::Request::new(());
        request.metadata_mut().insert(
            "authorization",
            "from the environment".parse().expect("ascii"),
        );
        let request = interceptor.call(request).expect("intercepted");
        let sent = request.metadata();
        assert_eq!(
            sent.get_all("authorization")
                .iter()
                .map(|v| v.to_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>(),
            ["Bearer t0k"]
        );
        assert_eq!(
            sent.get("x-tenant").map(|v| v.to_str().ok()),
            Some(Some("a"))
        );
    }

    #[test]
    fn headers_that_cannot_be_metadata_are_refused_by_name() {
        for (name, value) in [("bad name", "v"), ("trace-bin", "v"), ("ok", "line\nbreak")] {
            let headers = BTreeMap::from([(name.to_string(), value.to_string())]);
            match metadata(&headers) {
                Err(GrpcError::Metadata { name: refused, .. }) => assert_eq!(refused, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn plaintext_and_tls_endpoints_build() {
        let headers = BTreeMap::new();
        for endpoint in ["http://127.0.0.1:4317", "https://collector.example:4317"] {
            let url = url::Url::parse(endpoint).expect("url");
            exporter(&url, &headers, Duration::from_secs(1))
                .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        }
    }
}
