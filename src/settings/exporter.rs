//! `[exporter]`: the daemon-wide settings (listen address, the metrics profile and its
//! per-family switches, and what servers that set none get as interval, timeout and degraded
//! latency).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{KeyError, SourceText};
use crate::metric_registry::{FamilySwitches, MetricsProfile};
use crate::probe::config::ServerDefaults;

/// Default listen address. Prometheus' default-port list has allocated all of 9100-9999,
/// so the default sits outside that range to avoid claiming another exporter's port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8931";
/// Default probe interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default deadline of one probe.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default latency above which a successful probe is reported degraded.
pub const DEFAULT_DEGRADED_LATENCY: Duration = Duration::from_secs(2);

/// Daemon-wide settings (`[exporter]`), validated.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// Address `/metrics` and the status page listen on.
    pub listen: SocketAddr,
    /// Default probe interval for servers that set none.
    pub interval: Duration,
    /// Default probe deadline for servers that set none.
    pub timeout: Duration,
    /// Default latency threshold above which a server is degraded.
    pub degraded_latency: Duration,
    /// `metrics`: the metrics profile (docs/metrics.md#profiles); read at start only.
    pub metrics: MetricsProfile,
    /// The profile's family switches with the per-family keys applied.
    pub families: FamilySwitches,
}

/// `[exporter]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExporter {
    listen: Option<Spanned<String>>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    interval: Option<Duration>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    timeout: Option<Duration>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    degraded_latency: Option<Duration>,
    metrics: Option<Spanned<String>>,
    method_histograms: Option<bool>,
    semconv_histograms: Option<bool>,
}

impl ExporterConfig {
    /// Validates `[exporter]`; absent keys take the defaults.
    pub fn from_raw(raw: RawExporter, src: &SourceText<'_>) -> Result<ExporterConfig, KeyError> {
        let (listen_text, offset) = raw
            .listen
            .as_ref()
            .map(|s| (s.get_ref().clone(), s.span().start))
            .unwrap_or_else(|| (DEFAULT_LISTEN.to_string(), 0));
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            src.key_error(
                offset,
                "exporter.listen",
                format!(
                    "{listen_text:?} is not an address; expected IP:PORT such as \"127.0.0.1:8931\" or \"[::1]:8931\""
                ),
            )
        })?;
        let metrics = match &raw.metrics {
            None => MetricsProfile::default(),
            Some(name) => MetricsProfile::from_name(name.get_ref()).ok_or_else(|| {
                src.key_error(
                    name.span().start,
                    "exporter.metrics",
                    format!(
                        "{:?} is not a metrics profile; expected \"full\" or \"fleet\"",
                        name.get_ref()
                    ),
                )
            })?,
        };
        let profile = metrics.switches();
        let families = FamilySwitches {
            probe_method_histograms: raw
                .method_histograms
                .unwrap_or(profile.probe_method_histograms),
            semconv_histograms: raw.semconv_histograms.unwrap_or(profile.semconv_histograms),
            ..profile
        };
        Ok(ExporterConfig {
            metrics,
            families,
            listen,
            interval: raw.interval.unwrap_or(DEFAULT_INTERVAL),
            timeout: raw.timeout.unwrap_or(DEFAULT_TIMEOUT),
            degraded_latency: raw.degraded_latency.unwrap_or(DEFAULT_DEGRADED_LATENCY),
        })
    }

    /// What a server that sets no interval, timeout or degraded latency gets.
    pub fn server_defaults(&self) -> ServerDefaults {
        ServerDefaults {
            interval: self.interval,
            timeout: self.timeout,
            degraded_latency: self.degraded_latency,
        }
    }
}
