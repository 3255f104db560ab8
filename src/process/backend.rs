//! Which implementation discovers and samples processes: procfs on Linux (fds, sockets and the
//! fd limit included), sysinfo elsewhere. On Linux sysinfo is also taken when /proc cannot be
//! read at start (not mounted), or when forced with the environment variable
//! `MCP_EXPORTER_PROCESS_SAMPLER=sysinfo` (values: `procfs`, `sysinfo`, `auto`, the default),
//! read once per daemon.

use std::sync::OnceLock;

use super::sample_sysinfo::{self, SysinfoSampler};
use super::tree::Tree;
use super::usage::Usage;

/// The environment variable that forces a sampler.
pub const SAMPLER_ENV: &str = "MCP_EXPORTER_PROCESS_SAMPLER";

/// A process discovery and sampling implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The `procfs` crate (Linux only).
    Procfs,
    /// The `sysinfo` crate (every platform; no sockets).
    Sysinfo,
}

impl Backend {
    /// Its name, as in the environment variable and on the status page.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Procfs => "procfs",
            Backend::Sysinfo => "sysinfo",
        }
    }

    /// The implementation of this daemon: chosen once, from the environment and the platform.
    pub fn selected() -> Backend {
        static SELECTED: OnceLock<Backend> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let wanted = std::env::var(SAMPLER_ENV).ok();
            let backend = choose(wanted.as_deref(), procfs_readable());
            tracing::info!(sampler = backend.name(), "process sampler");
            backend
        })
    }

    /// Roots and descendants, read by this implementation; blocking.
    pub fn tree_of(self, roots: &[u32]) -> Result<Tree, String> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Procfs => super::procfs_table::tree_of(roots),
            _ => sample_sysinfo::tree_of(roots),
        }
    }

    /// Processes whose command line matches `re`, oldest first; blocking.
    pub fn matching_pids(self, re: &regex::Regex) -> Vec<u32> {
        match self {
            #[cfg(target_os = "linux")]
            Backend::Procfs => super::procfs_table::matching_pids(re),
            _ => sample_sysinfo::matching_pids(re),
        }
    }
}

/// The backend for the variable's value `wanted` when /proc is (or is not) readable.
fn choose(wanted: Option<&str>, procfs_ok: bool) -> Backend {
    let auto = if cfg!(target_os = "linux") && procfs_ok {
        Backend::Procfs
    } else {
        if cfg!(target_os = "linux") {
            tracing::warn!("/proc cannot be read; process figures come from sysinfo (no sockets)");
        }
        Backend::Sysinfo
    };
    match wanted.map(str::trim) {
        None | Some("") | Some("auto") => auto,
        Some("sysinfo") => Backend::Sysinfo,
        Some("procfs") if auto == Backend::Procfs => Backend::Procfs,
        Some("procfs") => {
            tracing::warn!("{SAMPLER_ENV}=procfs, but procfs is not available here; using sysinfo");
            Backend::Sysinfo
        }
        Some(other) => {
            tracing::warn!(
                "{SAMPLER_ENV}={other:?} is not one of procfs, sysinfo, auto; using {}",
                auto.name()
            );
            auto
        }
    }
}

#[cfg(target_os = "linux")]
fn procfs_readable() -> bool {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .is_ok()
}

#[cfg(not(target_os = "linux"))]
fn procfs_readable() -> bool {
    false
}

/// The sampler of one server, of the selected implementation.
#[derive(Debug)]
pub enum ProcessSampler {
    /// procfs (Linux).
    #[cfg(target_os = "linux")]
    Procfs(super::sample::Sampler),
    /// sysinfo (boxed: its `System` is large).
    Sysinfo(Box<SysinfoSampler>),
}

impl ProcessSampler {
    /// A sampler with no history, of `backend`.
    pub fn new(backend: Backend) -> Self {
        match backend {
            #[cfg(target_os = "linux")]
            Backend::Procfs => ProcessSampler::Procfs(super::sample::Sampler::new()),
            _ => ProcessSampler::Sysinfo(Box::new(SysinfoSampler::new())),
        }
    }

    /// Forgets the history.
    pub fn reset(&mut self) {
        match self {
            #[cfg(target_os = "linux")]
            ProcessSampler::Procfs(s) => s.reset(),
            ProcessSampler::Sysinfo(s) => s.reset(),
        }
    }

    /// Samples `tree`; blocking.
    pub fn sample(&mut self, tree: &Tree) -> Result<Usage, String> {
        match self {
            #[cfg(target_os = "linux")]
            ProcessSampler::Procfs(s) => s.sample(tree),
            ProcessSampler::Sysinfo(s) => s.sample(tree),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_forces_sysinfo_and_procfs_falls_back_when_proc_is_unreadable() {
        let native = if cfg!(target_os = "linux") {
            Backend::Procfs
        } else {
            Backend::Sysinfo
        };
        assert_eq!(choose(None, true), native);
        assert_eq!(choose(Some("auto"), true), native);
        assert_eq!(choose(Some("procfs"), true), native);
        assert_eq!(choose(Some("bogus"), true), native);
        assert_eq!(choose(Some("sysinfo"), true), Backend::Sysinfo);
        assert_eq!(choose(Some(" sysinfo "), true), Backend::Sysinfo);
        assert_eq!(choose(None, false), Backend::Sysinfo);
        assert_eq!(choose(Some("procfs"), false), Backend::Sysinfo);
    }
}
