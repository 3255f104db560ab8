//! The set of servers this instance probes: the configuration file's `[[servers]]` plus those
//! the discovery directory lists (src/discovery/), of which this instance's shard
//! (src/daemon/shard.rs) keeps its part. Published at `/sd` (src/web/sd.rs) whenever it is
//! applied.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::probe::ServerConfig;
use crate::web::sd::SdTargets;

use super::shard::Shard;

/// Where the servers come from, and which of them are ours.
pub struct Fleet {
    /// This instance's shard.
    pub shard: Shard,
    /// The configuration file's servers.
    pub configured: Vec<ServerConfig>,
    /// The discovery directory's servers.
    pub discovered: Arc<Vec<ServerConfig>>,
    /// What `/sd` serves.
    pub sd: SdTargets,
}

impl Fleet {
    /// The servers this instance probes: configured ones first, then discovered ones whose name
    /// no configured server has (a clash is logged), all filtered by the shard.
    pub fn wanted(&self) -> Vec<ServerConfig> {
        let configured: BTreeSet<&str> = self.configured.iter().map(|s| s.name.as_str()).collect();
        let discovered = self.discovered.iter().filter(|s| {
            let clash = configured.contains(s.name.as_str());
            if clash {
                tracing::warn!(server = %s.name, "discovery: a server of the configuration file has this name; the discovered entry is ignored");
            }
            !clash
        });
        self.configured
            .iter()
            .chain(discovered)
            .filter(|s| self.shard.owns(&s.name))
            .cloned()
            .collect()
    }

    /// Publishes `wanted` at `/sd`.
    pub fn publish(&self, wanted: &[ServerConfig]) {
        self.sd.publish(wanted, &self.shard.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(names: &[&str]) -> Vec<ServerConfig> {
        let text: String = names
            .iter()
            .map(|n| {
                format!("[[servers]]\nname = \"{n}\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:1/{n}\"\n")
            })
            .collect();
        crate::settings::Config::from_toml(&text, std::path::Path::new("t.toml"))
            .expect("valid")
            .servers
    }

    fn names(fleet: &Fleet) -> Vec<String> {
        fleet.wanted().into_iter().map(|s| s.name).collect()
    }

    #[test]
    fn configured_then_discovered_servers_without_clashes_split_by_shard() {
        let all: Vec<String> = (0..60).map(|i| format!("s{i}")).collect();
        let (configured, discovered) = all.split_at(30);
        let configured = servers(&configured.iter().map(String::as_str).collect::<Vec<_>>());
        let mut discovered = servers(&discovered.iter().map(String::as_str).collect::<Vec<_>>());
        // A discovered server named like a configured one loses.
        discovered.extend(servers(&["s0"]).into_iter().map(|mut s| {
            s.interval = std::time::Duration::from_secs(99);
            s
        }));
        let mut seen = BTreeSet::new();
        for k in 1..=3 {
            let fleet = Fleet {
                shard: Shard::new(k, 3).unwrap(),
                configured: configured.clone(),
                discovered: Arc::new(discovered.clone()),
                sd: SdTargets::default(),
            };
            for server in fleet.wanted() {
                assert!(seen.insert(server.name.clone()), "{} twice", server.name);
                if server.name == "s0" {
                    assert_eq!(server, configured[0]);
                }
            }
            let wanted = fleet.wanted();
            fleet.publish(&wanted);
            assert_eq!(fleet.sd.groups().len(), wanted.len());
        }
        assert_eq!(
            seen.into_iter().collect::<BTreeSet<_>>(),
            all.into_iter().collect()
        );
        let whole = Fleet {
            shard: Shard::all(),
            configured: servers(&["b", "a"]),
            discovered: Arc::new(servers(&["c"])),
            sd: SdTargets::default(),
        };
        assert_eq!(names(&whole), ["b", "a", "c"]);
    }
}
