//! Static sharding: `serve --shard K/N` (or `MCP_EXPORTER_SHARD=K/N`) makes this instance probe
//! only the servers whose name hashes to shard K of N, so N instances given the same
//! configuration split the fleet between them with no overlap and no gap.
//!
//! The hash is 64-bit FNV-1a over the UTF-8 bytes of the server name; server `s` belongs to
//! shard `fnv1a64(s) % N + 1`. It depends on nothing but the name and N (not on the file order,
//! the host or the build), so it is stable across restarts, machines and versions; changing N
//! moves servers between shards. docs/probing.md#sharding describes the deployment.
//!
//! In place of K a StatefulSet pod name may be given (`--shard $(POD_NAME)/3`): its 0-based
//! ordinal suffix picks the shard, so pod `mcp-exporter-0` is shard 1/3.

use std::fmt;
use std::str::FromStr;

/// Why a `--shard` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not of the form `K/N`.
    #[error("shard {0:?} is not of the form K/N (e.g. 2/3)")]
    Form(String),
    /// K is not in 1..=N.
    #[error("shard {index}/{count}: K must be between 1 and N")]
    Range {
        /// K.
        index: u32,
        /// N.
        count: u32,
    },
}

/// This instance's part of the fleet: shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` (1-based) of `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if index == 0 || index > count {
            return Err(ShardError::Range { index, count });
        }
        Ok(Shard { index, count })
    }

    /// The whole fleet (1/1): what an instance without `--shard` probes.
    pub fn all() -> Self {
        Shard { index: 1, count: 1 }
    }

    /// K, 1-based.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// N.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The shard (1-based) that `server` belongs to among `count` shards.
    pub fn of(server: &str, count: u32) -> u32 {
        (fnv1a64(server.as_bytes()) % u64::from(count.max(1))) as u32 + 1
    }

    /// True when this instance probes `server`.
    pub fn owns(&self, server: &str) -> bool {
        Shard::of(server, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let form = || ShardError::Form(s.to_string());
        let (k, n) = s.trim().rsplit_once('/').ok_or_else(form)?;
        let k = k.trim();
        let index: u32 = match k.parse() {
            Ok(index) => index,
            // A StatefulSet pod name: `NAME-ORDINAL`, ordinal 0-based.
            Err(_) => k
                .rsplit_once('-')
                .and_then(|(_, ordinal)| ordinal.parse::<u32>().ok())
                .and_then(|ordinal| ordinal.checked_add(1))
                .ok_or_else(form)?,
        };
        let count: u32 = n.trim().parse().map_err(|_| form())?;
        Shard::new(index, count)
    }
}

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/3".parse(), Shard::new(2, 3));
        assert_eq!(
            " 1 / 1 ".parse::<Shard>().map(|s| s.to_string()),
            Ok("1/1".into())
        );
        assert_eq!("mcp-exporter-0/3".parse(), Shard::new(1, 3));
        assert_eq!("mcp-exporter-2/3".parse(), Shard::new(3, 3));
        assert!(matches!(
            "mcp-exporter-3/3".parse::<Shard>(),
            Err(ShardError::Range { .. })
        ));
        for bad in ["", "3", "a/3", "2/b", "2/3/4", "pod-x/3"] {
            assert!(
                matches!(bad.parse::<Shard>(), Err(ShardError::Form(_))),
                "{bad}"
            );
        }
        for (bad, index, count) in [("0/3", 0, 3), ("4/3", 4, 3), ("1/0", 1, 0)] {
            assert_eq!(
                bad.parse::<Shard>(),
                Err(ShardError::Range { index, count })
            );
        }
    }

    #[test]
    fn the_hash_is_the_published_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_server_belongs_to_exactly_one_shard_and_the_split_is_even() {
        let count = 3;
        let shards: Vec<Shard> = (1..=count).map(|k| Shard::new(k, count).unwrap()).collect();
        let mut sizes = [0usize; 3];
        for i in 0..3000 {
            let name = format!("server-{i}");
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns(&name)).collect();
            assert_eq!(owners.len(), 1, "{name}");
            sizes[owners[0].index() as usize - 1] += 1;
        }
        assert!(
            sizes.iter().all(|&n| (900..=1100).contains(&n)),
            "{sizes:?}"
        );
        assert!(Shard::all().owns("anything"));
    }
}
