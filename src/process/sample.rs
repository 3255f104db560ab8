//! Samples a process tree from procfs: CPU time, resident memory, fds, sockets, threads, the
//! main process' start time and fd limit. CPU percent comes from the CPU-time delta between two
//! samples of the same processes, divided by the wall time between them (100 = one core).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

pub use super::usage::Usage;
use procfs::net::{TcpState, UnixState};
use procfs::process::{FDTarget, Process};

use super::tree::Tree;

/// CPU ticks (user + system) per process, keyed by (pid, start time) so a reused pid is a new key.
type CpuTicks = HashMap<(u32, u64), u64>;

/// Keeps the previous sample's CPU times so the next one can compute a rate.
#[derive(Debug, Default)]
pub struct Sampler {
    previous: Option<(Instant, CpuTicks)>,
}

impl Sampler {
    /// A sampler with no history.
    pub fn new() -> Self {
        Sampler::default()
    }

    /// Forgets the history (the process was lost; the next sample starts a new rate).
    pub fn reset(&mut self) {
        self.previous = None;
    }

    /// Samples `tree`; blocking (reads procfs). Fails when the main process is gone.
    pub fn sample(&mut self, tree: &Tree) -> Result<Usage, String> {
        let now = Instant::now();
        let page = procfs::page_size();
        let tps = procfs::ticks_per_second().max(1);
        let main = Process::new(tree.main as i32)
            .map_err(|e| format!("cannot read process {}: {e}", tree.main))?;
        let main_stat = main
            .stat()
            .map_err(|e| format!("cannot read /proc/{}/stat: {e}", tree.main))?;
        let boot = procfs::boot_time_secs().unwrap_or(0) as f64;
        let file_descriptors_limit =
            main.limits()
                .ok()
                .and_then(|l| match l.max_open_files.soft_limit {
                    procfs::process::LimitValue::Value(v) => Some(v),
                    procfs::process::LimitValue::Unlimited => None,
                });
        let mut usage = Usage {
            processes: 0,
            main_pid: tree.main,
            cpu_percent: None,
            memory_bytes: 0,
            file_descriptors: Some(0),
            file_descriptors_limit,
            connections: Some(0),
            listening_sockets: Some(0),
            threads: Some(0),
            start_time_seconds: boot + main_stat.starttime as f64 / tps as f64,
        };
        let mut ticks: CpuTicks = HashMap::with_capacity(tree.pids.len());
        let mut socket_inodes: HashSet<u64> = HashSet::new();
        for &pid in &tree.pids {
            let Ok(process) = Process::new(pid as i32) else {
                continue;
            };
            // A process that ended between discovery and now is simply not counted.
            let Ok(stat) = process.stat() else { continue };
            if stat.state == 'Z' {
                continue;
            }
            usage.processes += 1;
            usage.memory_bytes += stat.rss * page;
            *usage.threads.get_or_insert(0) += stat.num_threads.max(0) as u64;
            ticks.insert((pid, stat.starttime), stat.utime + stat.stime);
            if let Ok(fds) = process.fd() {
                for fd in fds.flatten() {
                    *usage.file_descriptors.get_or_insert(0) += 1;
                    if let FDTarget::Socket(inode) = fd.target {
                        socket_inodes.insert(inode);
                    }
                }
            }
        }
        if !socket_inodes.is_empty() {
            let sockets = count_known_sockets(&main, &socket_inodes);
            usage.connections = Some(sockets.connections);
            usage.listening_sockets = Some(sockets.listening);
        }
        if let Some((then, previous)) = &self.previous {
            let elapsed = now.duration_since(*then).as_secs_f64();
            if elapsed > 0.0 {
                // Processes new to the tree count from their second sample on.
                let deltas: Vec<u64> = ticks
                    .iter()
                    .filter_map(|(key, now_ticks)| {
                        previous.get(key).map(|p| now_ticks.saturating_sub(*p))
                    })
                    .collect();
                // No process in common (the server was restarted): no rate until next time.
                if !deltas.is_empty() {
                    let delta: u64 = deltas.iter().sum();
                    usage.cpu_percent = Some(delta as f64 / tps as f64 / elapsed * 100.0);
                }
            }
        }
        self.previous = Some((now, ticks));
        Ok(usage)
    }
}

/// The tree's TCP and Unix sockets, split into connections and listeners.
#[derive(Debug, Default, PartialEq)]
struct SocketCounts {
    connections: u64,
    listening: u64,
}

/// Which of `inodes` are TCP or Unix sockets in the main process' network namespace, and
/// whether each listens: a TCP socket in LISTEN, or a Unix stream socket bound to a path and
/// unconnected (procfs shows no listen flag for Unix sockets; a bound, unconnected stream
/// socket is a listener in practice).
fn count_known_sockets(main: &Process, inodes: &HashSet<u64>) -> SocketCounts {
    let mut listening_by_inode: HashMap<u64, bool> = HashMap::new();
    for entry in main.tcp().into_iter().flatten() {
        listening_by_inode.insert(entry.inode, entry.state == TcpState::Listen);
    }
    for entry in main.tcp6().into_iter().flatten() {
        listening_by_inode.insert(entry.inode, entry.state == TcpState::Listen);
    }
    for entry in main.unix().into_iter().flatten() {
        let listening = entry.state == UnixState::UNCONNECTED
            && entry.path.is_some()
            && entry.socket_type != libc::SOCK_DGRAM as u16;
        listening_by_inode.insert(entry.inode, listening);
    }
    let mut counts = SocketCounts::default();
    for inode in inodes {
        match listening_by_inode.get(inode) {
            Some(true) => counts.listening += 1,
            Some(false) => counts.connections += 1,
            None => {}
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_our_own_process_reads_plausible_figures() {
        let tree = Tree {
            main: std::process::id(),
            pids: vec![std::process::id()],
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let mut sampler = Sampler::new();
        let first = sampler.sample(&tree).expect("first sample");
        assert_eq!(first.processes, 1);
        assert!(first.cpu_percent.is_none());
        assert!(first.memory_bytes > 1024 * 1024, "{first:?}");
        assert!(first.file_descriptors >= Some(4), "{first:?}");
        // The connected pair counts as connections, the listener apart.
        assert!(first.connections >= Some(2), "{first:?}");
        assert!(first.listening_sockets >= Some(1), "{first:?}");
        assert!(first.threads >= Some(1));
        assert!(first.start_time_seconds > 1.0e9, "{first:?}");
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let second = sampler.sample(&tree).expect("second sample");
        assert!(second.cpu_percent.is_some_and(|c| c > 0.0), "{second:?}");
        drop((listener, client, accepted));
    }

    #[test]
    fn a_missing_main_process_is_an_error() {
        let tree = Tree {
            main: u32::MAX - 1,
            pids: vec![u32::MAX - 1],
        };
        assert!(Sampler::new().sample(&tree).is_err());
    }
}
