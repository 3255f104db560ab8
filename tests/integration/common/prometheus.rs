//! A real Prometheus on loopback for a test: started on a fresh port with a configuration the
//! test writes, waited for until ready, killed when its guard drops; and its query API.
//!
//! A test asks [`super::tools::require`] for [`super::tools::Tool::Prometheus`] first.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::http::http_request;
use super::net::free_port;
use super::processes::{ChildGuard, spawn_guarded};
use super::wait::eventually;

const READY_WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Prometheus.
pub struct Prometheus {
    /// Kills the process when dropped.
    _guard: ChildGuard,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Prometheus {
    /// Starts `bin` with `config_yaml` as its configuration and its data under `dir`; returns
    /// once `/-/ready` answers 200.
    pub fn start(bin: &Path, dir: &Path, config_yaml: &str) -> Prometheus {
        Prometheus::start_with_args(bin, dir, config_yaml, &[])
    }

    /// Like [`Prometheus::start`], with extra command-line arguments (feature flags).
    pub fn start_with_args(
        bin: &Path,
        dir: &Path,
        config_yaml: &str,
        extra_args: &[&str],
    ) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_yaml).expect("write prometheus.yml");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut guard = spawn_guarded(
            "prometheus",
            Command::new(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("tsdb").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .args(extra_args),
        );
        eventually(READY_WAIT, POLL, || {
            if let Some(status) = guard.try_wait() {
                return Err(format!("prometheus exited ({status}):\n{}", guard.output()));
            }
            match http_request(&addr, "GET", "/-/ready", &[], b"", Duration::from_secs(2)) {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("prometheus /-/ready: {}", r.status)),
                Err(e) => Err(format!("prometheus /-/ready: {e}")),
            }
        });
        Prometheus {
            _guard: guard,
            addr,
        }
    }

    /// The result vector of an instant query.
    pub fn query(&self, query: &str) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}", url_encode(query));
        let response = http_request(&self.addr, "GET", &path, &[], b"", QUERY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_str(&response.text()).map_err(|e| e.to_string())?;
        if json["status"] != "success" {
            return Err(format!("query {query:?}: {json}"));
        }
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

impl Prometheus {
    /// The result of `/api/v1/query_exemplars` for `query` over the last hour (needs
    /// `--enable-feature=exemplar-storage`).
    pub fn query_exemplars(&self, query: &str) -> Result<Vec<Value>, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let path = format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            url_encode(query),
            now - 3600,
            now + 60
        );
        let response = http_request(&self.addr, "GET", &path, &[], b"", QUERY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_str(&response.text()).map_err(|e| e.to_string())?;
        if json["status"] != "success" {
            return Err(format!("query_exemplars {query:?}: {json}"));
        }
        Ok(json["data"].as_array().cloned().unwrap_or_default())
    }
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
