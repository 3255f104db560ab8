//! `[otlp]`: where the traces of probes go (docs/tracing.md). Off unless the table or the
//! standard `OTEL_EXPORTER_OTLP_*` variables name an endpoint.
//!
//! The file's keys win; the environment fills in what the file leaves unset:
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (a base,
//! `/v1/traces` appended over HTTP; gRPC takes the base as it is),
//! `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` (`http/protobuf` or `grpc`),
//! `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` (`k1=v1,k2=v2`), `OTEL_SERVICE_NAME`,
//! `OTEL_TRACES_SAMPLER_ARG` (the ratio). `OTEL_SDK_DISABLED=true` turns traces off.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{KeyError, SourceText};

/// The service name spans carry unless the file or `OTEL_SERVICE_NAME` names another.
pub const DEFAULT_SERVICE_NAME: &str = "mcp-exporter";

/// The path OTLP/HTTP posts traces to under a base endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// `[otlp]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    endpoint: Option<Spanned<String>>,
    #[serde(default)]
    protocol: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    sampling_ratio: Option<Spanned<f64>>,
    #[serde(default)]
    service_name: Option<String>,
}

/// How spans travel to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`, a collector's port 4318), the
    /// default.
    HttpProtobuf,
    /// OTLP over gRPC (`grpc`, a collector's port 4317; src/otel/grpc.rs).
    Grpc,
}

impl Protocol {
    fn parse(text: &str) -> Result<Protocol, String> {
        match text {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(format!(
                "{other:?} is not a protocol; expected \"http/protobuf\" or \"grpc\""
            )),
        }
    }

    /// The name `[otlp] protocol` and `OTEL_EXPORTER_OTLP_PROTOCOL` give it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::Grpc => "grpc",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `[otlp]`, validated (what the file says; the environment is read by [`OtlpConfig::resolve`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OtlpConfig {
    /// `enabled = false` turns traces off whatever the environment says.
    pub enabled: Option<bool>,
    /// The collector's base URL (`http://127.0.0.1:4318`) or its full traces URL over HTTP;
    /// its address (`http://127.0.0.1:4317`) over gRPC.
    pub endpoint: Option<url::Url>,
    /// `protocol`, when the file sets it.
    pub protocol: Option<Protocol>,
    /// Headers sent with every export; values may hold `${VAR}` references.
    pub headers: BTreeMap<String, String>,
    /// Share of probes traced, 0.0 to 1.0.
    pub sampling_ratio: Option<f64>,
    /// `service.name` of the spans.
    pub service_name: Option<String>,
}

/// Where and how the spans of this run are exported: the file and the environment merged.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSettings {
    /// Over HTTP, the full URL spans are posted to (ends in `/v1/traces` unless given so by the
    /// variable for traces alone); over gRPC, the collector's address (`http://host:4317`,
    /// `https://` for TLS).
    pub traces_url: url::Url,
    /// How they travel.
    pub protocol: Protocol,
    /// Headers with `${VAR}` references resolved.
    pub headers: BTreeMap<String, String>,
    /// Share of probes traced.
    pub sampling_ratio: f64,
    /// `service.name`.
    pub service_name: String,
}

/// Why the merged settings cannot export.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OtlpSettingsError {
    /// A variable holds a value that cannot be used.
    #[error("{variable}: {message}")]
    Variable {
        /// The variable.
        variable: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A header refers to a variable that is not set.
    #[error("otlp.headers.{header}: {reason}")]
    Header {
        /// The header.
        header: String,
        /// The reference that failed.
        reason: String,
    },
}

impl OtlpConfig {
    /// Validates `[otlp]`.
    pub fn from_raw(raw: RawOtlp, src: &SourceText<'_>) -> Result<OtlpConfig, KeyError> {
        let endpoint =
            match raw.endpoint {
                Some(text) => Some(parse_endpoint(text.get_ref()).map_err(|message| {
                    src.key_error(text.span().start, "otlp.endpoint", message)
                })?),
                None => None,
            };
        let protocol =
            match raw.protocol {
                Some(text) => Some(Protocol::parse(text.get_ref()).map_err(|message| {
                    src.key_error(text.span().start, "otlp.protocol", message)
                })?),
                None => None,
            };
        let sampling_ratio = match raw.sampling_ratio {
            Some(ratio) => Some(check_ratio(*ratio.get_ref()).map_err(|message| {
                src.key_error(ratio.span().start, "otlp.sampling_ratio", message)
            })?),
            None => None,
        };
        Ok(OtlpConfig {
            enabled: raw.enabled,
            endpoint,
            protocol,
            headers: raw.headers,
            sampling_ratio,
            service_name: raw.service_name.filter(|s| !s.is_empty()),
        })
    }

    /// Merges the file with the environment `env` reads: `None` when traces are off.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ExportSettings>, OtlpSettingsError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if self.enabled == Some(false)
            || var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            return Ok(None);
        }
        let endpoint = match &self.endpoint {
            Some(url) => Endpoint::Base(url.clone()),
            None => match (
                var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
                var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            ) {
                (Some(full), _) => Endpoint::Full(url::Url::parse(full.trim()).map_err(|e| {
                    OtlpSettingsError::Variable {
                        variable: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        message: format!("{full:?} is not a URL ({e})"),
                    }
                })?),
                (None, Some(base)) => Endpoint::Base(parse_endpoint(&base).map_err(|message| {
                    OtlpSettingsError::Variable {
                        variable: "OTEL_EXPORTER_OTLP_ENDPOINT",
                        message,
                    }
                })?),
                (None, None) => return Ok(None),
            },
        };
        let protocol = match self.protocol {
            Some(p) => p,
            None => {
                let named = [
                    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                ]
                .into_iter()
                .find_map(|name| var(name).map(|v| (name, v)));
                match named {
                    Some((variable, value)) => Protocol::parse(value.trim())
                        .map_err(|message| OtlpSettingsError::Variable { variable, message })?,
                    None => Protocol::HttpProtobuf,
                }
            }
        };
        let mut headers = BTreeMap::new();
        let from_env = var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
            .unwrap_or_default();
        for pair in from_env.split(',') {
            if let Some((name, value)) = pair.split_once('=') {
                headers.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
        for (name, value) in &self.headers {
            let resolved = crate::config::reference::expand(value, |reference: &str| {
                crate::config::reference::resolve(reference, &env).map_err(|e| e.to_string())
            })
            .map_err(|reason| OtlpSettingsError::Header {
                header: name.clone(),
                reason,
            })?;
            headers.insert(name.clone(), resolved);
        }
        let sampling_ratio = match self.sampling_ratio {
            Some(ratio) => ratio,
            None => match var("OTEL_TRACES_SAMPLER_ARG") {
                Some(text) => text
                    .trim()
                    .parse::<f64>()
                    .map_err(|e| e.to_string())
                    .and_then(check_ratio)
                    .map_err(|message| OtlpSettingsError::Variable {
                        variable: "OTEL_TRACES_SAMPLER_ARG",
                        message,
                    })?,
                None => 1.0,
            },
        };
        let service_name = self
            .service_name
            .clone()
            .or_else(|| var("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        let traces_url = match (endpoint, protocol) {
            (Endpoint::Base(url), Protocol::HttpProtobuf) => with_traces_path(url),
            (Endpoint::Base(url) | Endpoint::Full(url), _) => url,
        };
        Ok(Some(ExportSettings {
            traces_url,
            protocol,
            headers,
            sampling_ratio,
            service_name,
        }))
    }
}

/// Where the endpoint came from, which decides whether HTTP appends `/v1/traces`.
enum Endpoint {
    /// `otlp.endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`: a base (or already the traces URL).
    Base(url::Url),
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: used as it is.
    Full(url::Url),
}

/// An http(s) URL with a host.
fn parse_endpoint(text: &str) -> Result<url::Url, String> {
    let expected = "expected e.g. \"http://127.0.0.1:4318\" (\"http://127.0.0.1:4317\" for grpc)";
    let url = url::Url::parse(text.trim())
        .map_err(|e| format!("{text:?} is not a URL ({e}); {expected}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{text:?} is not an http(s) URL with a host; {expected}"
        ));
    }
    Ok(url)
}

/// A base URL gets `/v1/traces` appended; a URL already ending in it is kept.
fn with_traces_path(mut url: url::Url) -> url::Url {
    if !url.path().ends_with(TRACES_PATH) {
        let path = format!("{}{TRACES_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    url
}

fn check_ratio(ratio: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("{ratio} is not a ratio; expected 0.0 to 1.0"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn check(text: &str) -> Result<OtlpConfig, KeyError> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            otlp: RawOtlp,
        }
        let file: File = toml::from_str(text).expect("parses");
        OtlpConfig::from_raw(file.otlp, &SourceText::new(text))
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn no_table_and_no_variables_is_off() {
        let config = check("").expect("valid");
        assert_eq!(config.resolve(env_of(&[])), Ok(None));
    }

    #[test]
    fn the_file_wins_and_the_environment_fills_in() {
        let config = check(
            "[otlp]\nendpoint = \"http://127.0.0.1:4318\"\nheaders = { authorization = \"Bearer ${TOKEN}\" }\nsampling_ratio = 0.5\n",
        )
        .expect("valid");
        let settings = config
            .resolve(env_of(&[
                ("TOKEN", "t0k"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4318"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-tenant=a, authorization=ignored",
                ),
                ("OTEL_SERVICE_NAME", "probes-eu"),
            ]))
            .expect("resolves")
            .expect("on");
        assert_eq!(
            settings.traces_url.as_str(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(settings.headers["authorization"], "Bearer t0k");
        assert_eq!(settings.headers["x-tenant"], "a");
        assert_eq!(settings.sampling_ratio, 0.5);
        assert_eq!(settings.service_name, "probes-eu");
        assert_eq!(settings.protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn the_standard_variables_turn_traces_on() {
        let config = check("").expect("valid");
        let settings = config
            .resolve(env_of(&[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ]))
            .expect("resolves")
            .expect("on");
        assert_eq!(settings.traces_url.as_str(), "http://c:4318/custom");
        assert_eq!(settings.sampling_ratio, 0.25);
        assert_eq!(settings.service_name, DEFAULT_SERVICE_NAME);
        let base = config
            .resolve(env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]))
            .expect("resolves")
            .expect("on");
        assert_eq!(base.traces_url.as_str(), "http://c:4318/v1/traces");
        let off = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(config.resolve(off), Ok(None));
        let disabled =
            check("[otlp]\nenabled = false\nendpoint = \"http://c:4318\"\n").expect("valid");
        assert_eq!(disabled.resolve(env_of(&[])), Ok(None));
    }

    #[test]
    fn grpc_takes_the_collectors_address_as_it_is() {
        let config =
            check("[otlp]\nprotocol = \"grpc\"\nendpoint = \"https://c:4317\"\n").expect("valid");
        let settings = config.resolve(env_of(&[])).expect("resolves").expect("on");
        assert_eq!(settings.protocol, Protocol::Grpc);
        assert_eq!(settings.traces_url.as_str(), "https://c:4317/");
        let config = check("").expect("valid");
        for variable in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ] {
            let settings = config
                .resolve(env_of(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                    (variable, "grpc"),
                ]))
                .expect("resolves")
                .expect("on");
            assert_eq!(settings.protocol, Protocol::Grpc, "{variable}");
            assert_eq!(settings.traces_url.as_str(), "http://c:4317/", "{variable}");
        }
        // The variable for traces alone wins over the general one; the file over both.
        let settings = config
            .resolve(env_of(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ]))
            .expect("resolves")
            .expect("on");
        assert_eq!(settings.protocol, Protocol::HttpProtobuf);
        assert_eq!(settings.traces_url.as_str(), "http://c:4318/v1/traces");
        let file = check("[otlp]\nprotocol = \"http/protobuf\"\n").expect("valid");
        let settings = file
            .resolve(env_of(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ]))
            .expect("resolves")
            .expect("on");
        assert_eq!(settings.protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn bad_values_name_their_key_or_variable() {
        let err = check("[otlp]\nprotocol = \"http/json\"\n").expect_err("json is not built");
        assert_eq!((err.key.as_str(), err.line), ("otlp.protocol", 2));
        assert!(
            err.message.contains("http/protobuf") && err.message.contains("grpc"),
            "{err}"
        );
        let err = check("[otlp]\n\nsampling_ratio = 1.5\n").expect_err("not a ratio");
        assert_eq!((err.key.as_str(), err.line), ("otlp.sampling_ratio", 3));
        let err = check("[otlp]\nendpoint = \"collector:4318\"\n").expect_err("no scheme");
        assert_eq!(err.key, "otlp.endpoint");
        let config = check(
            "[otlp]\nendpoint = \"http://c:4318\"\nheaders = { a = \"${UNSET_FOR_OTLP}\" }\n",
        )
        .expect("valid");
        assert!(matches!(
            config.resolve(env_of(&[])),
            Err(OtlpSettingsError::Header { header, .. }) if header == "a"
        ));
        let config = check("").expect("valid");
        let err = config
            .resolve(env_of(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ]))
            .expect_err("json is not built");
        assert!(matches!(
            err,
            OtlpSettingsError::Variable {
                variable: "OTEL_EXPORTER_OTLP_PROTOCOL",
                ..
            }
        ));
    }
}
