//! `/sd`: Prometheus HTTP service discovery (`http_sd_configs`) of the servers this instance
//! probes. One target group per server: the target is the server's `host:port` (its name for a
//! stdio server, which has none), the labels say which server it is and which exporter
//! instance (shard) probes it. A Prometheus (or a blackbox_exporter job) can then follow the
//! fleet as the exporters see it, shards included; docs/probing.md#sharding.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::mcp::TransportSpec;
use crate::probe::ServerConfig;

/// One target group of the http_sd format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroup {
    /// `host:port` of the server (its name for stdio).
    pub targets: Vec<String>,
    /// `server`, `transport`, `check`, `shard` and `__meta_mcp_url` (http/sse).
    pub labels: BTreeMap<String, String>,
}

/// The target groups `/sd` serves, replaced whenever the set of probed servers changes.
#[derive(Debug, Clone, Default)]
pub struct SdTargets(Arc<RwLock<Arc<[TargetGroup]>>>);

impl SdTargets {
    /// Publishes `servers` (those this instance probes) as shard `shard` (e.g. "2/3").
    pub fn publish(&self, servers: &[ServerConfig], shard: &str) {
        let groups: Arc<[TargetGroup]> = servers.iter().map(|s| group(s, shard)).collect();
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = groups;
    }

    /// The current groups.
    pub fn groups(&self) -> Arc<[TargetGroup]> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }
}

fn group(server: &ServerConfig, shard: &str) -> TargetGroup {
    let mut labels = BTreeMap::from([
        ("server".to_string(), server.name.clone()),
        ("transport".to_string(), server.transport.kind().to_string()),
        ("check".to_string(), server.check.as_str().to_string()),
        ("shard".to_string(), shard.to_string()),
    ]);
    let target = match &server.transport {
        TransportSpec::Http { url, .. } | TransportSpec::Sse { url, .. } => {
            // The URL without credentials or query (they may hold secrets).
            let mut shown = url.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            shown.set_query(None);
            labels.insert("__meta_mcp_url".to_string(), shown.to_string());
            // host_str() keeps an IPv6 address in brackets.
            match (url.host_str(), url.port_or_known_default()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                _ => server.name.clone(),
            }
        }
        TransportSpec::Stdio { .. } => server.name.clone(),
    };
    TargetGroup {
        targets: vec![target],
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_server(name: &str, url: &str) -> ServerConfig {
        let text = format!(
            "[[servers]]\nname = \"{name}\"\ntransport = \"http\"\nurl = \"{url}\"\ncheck = \"liveness\"\n"
        );
        let config = crate::settings::Config::from_toml(&text, std::path::Path::new("t.toml"))
            .expect("valid config");
        config.servers[0].clone()
    }

    #[test]
    fn a_server_becomes_a_target_group_without_its_credentials() {
        let targets = SdTargets::default();
        targets.publish(
            &[
                http_server("a", "http://user:pw@10.0.0.1:8080/mcp?token=x"),
                http_server("b", "https://[::1]/mcp"),
            ],
            "2/3",
        );
        let groups = targets.groups();
        assert_eq!(groups[0].targets, ["10.0.0.1:8080"]);
        assert_eq!(groups[0].labels["server"], "a");
        assert_eq!(groups[0].labels["shard"], "2/3");
        assert_eq!(groups[0].labels["transport"], "http");
        assert_eq!(
            groups[0].labels["__meta_mcp_url"],
            "http://10.0.0.1:8080/mcp"
        );
        assert_eq!(groups[1].targets, ["[::1]:443"]);
        let json = serde_json::to_value(&*groups).expect("serializable");
        assert_eq!(json[1]["labels"]["server"], "b");
    }
}
