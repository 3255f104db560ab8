//! The figures of one sample of a server's process tree, whichever sampler produced them.

use serde::Serialize;

/// Figures of one sample of a server's process tree. A figure the sampler cannot read on this
/// platform is `None`, so its gauge is absent rather than 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Processes in the tree that could be read.
    pub processes: u64,
    /// The main process.
    pub main_pid: u32,
    /// CPU use since the previous sample, percent of one core; `None` on the first sample.
    pub cpu_percent: Option<f64>,
    /// Sum of the resident set sizes, bytes.
    pub memory_bytes: u64,
    /// Open file descriptors, summed over the tree; `None` when the sampler cannot count them.
    pub file_descriptors: Option<u64>,
    /// Soft RLIMIT_NOFILE of the main process; `None` when unlimited or unreadable.
    pub file_descriptors_limit: Option<u64>,
    /// TCP (v4, v6) and Unix sockets held by the tree that are not listening, each socket
    /// counted once; `None` when the sampler cannot see sockets (sysinfo).
    pub connections: Option<u64>,
    /// Listening sockets held by the tree (TCP in LISTEN; bound, unconnected Unix stream
    /// sockets); `None` when the sampler cannot see sockets.
    pub listening_sockets: Option<u64>,
    /// Threads, summed over the tree; `None` when the sampler cannot count them.
    pub threads: Option<u64>,
    /// Unix time the main process started.
    pub start_time_seconds: f64,
}
