//! Label sets used by more than one family, the trait every label set with a `server` label
//! implements (so the per-server tracker in `per_server.rs` can find a series' server), and the
//! rules that make a server-supplied value safe as a label value.

use std::fmt::Debug;
use std::hash::Hash;

use prometheus_client::encoding::EncodeLabelSet;

/// Longest label value taken from a server; longer values are cut.
const MAX_LABEL_VALUE_BYTES: usize = 128;

/// A label set whose first label is `server`: every series of a family built on it belongs to
/// one monitored server and goes when that server leaves the configuration.
pub trait ServerLabelSet:
    EncodeLabelSet + Clone + Debug + Hash + Eq + Send + Sync + 'static
{
    /// The value of the `server` label.
    fn server(&self) -> &str;
}

/// Implements [`ServerLabelSet`] for label sets whose `server` field holds the server.
macro_rules! impl_server_label_set {
    ($($labels:ty),+ $(,)?) => {$(
        impl $crate::metric_registry::labels::ServerLabelSet for $labels {
            fn server(&self) -> &str {
                &self.server
            }
        }
    )+};
}
pub(crate) use impl_server_label_set;

/// `{server}`: the families with one series per server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    /// The server's configured name.
    pub server: String,
}

impl ServerLabels {
    /// The label set of `server`.
    pub fn new(server: &str) -> Self {
        ServerLabels {
            server: server.to_string(),
        }
    }
}

/// `{server, kind}`: counts of one kind of event per server (security events, protocol
/// violations).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerKindLabels {
    /// The server's configured name.
    pub server: String,
    /// What happened, from a fixed list.
    pub kind: &'static str,
}

impl ServerKindLabels {
    /// The label set of `kind` events of `server`.
    pub fn new(server: &str, kind: &'static str) -> Self {
        ServerKindLabels {
            server: server.to_string(),
            kind,
        }
    }
}

impl_server_label_set!(ServerLabels, ServerKindLabels);

/// The `source` label of the families both the probes and real traffic fill
/// (docs/metrics.md#sources): who made the requests counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The exporter's own probes, on its schedule.
    Probe,
    /// Real MCP clients, as `mcp-exporter wrap` reports them (docs/traffic.md).
    Traffic,
}

impl Source {
    /// The label value: `probe` or `traffic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Probe => "probe",
            Source::Traffic => "traffic",
        }
    }
}

/// Makes an untrusted value safe and bounded as a label value: control characters become
/// `_`, and the value is cut at `MAX_LABEL_VALUE_BYTES` (128) on a character boundary.
pub fn sanitize_label_value(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    out.truncate(out.floor_char_boundary(MAX_LABEL_VALUE_BYTES));
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_sanitized_and_bounded() {
        assert_eq!(sanitize_label_value("a\nb\"c"), "a_b\"c");
        assert_eq!(sanitize_label_value(""), "unknown");
        let long = "é".repeat(200);
        let cut = sanitize_label_value(&long);
        assert!(cut.len() <= MAX_LABEL_VALUE_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
