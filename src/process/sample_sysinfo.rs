//! Samples and discovers process trees through the `sysinfo` crate: the sampler on platforms
//! without procfs, and on Linux when /proc cannot be read or when forced (see
//! [`super::backend`]). CPU percent comes from sysinfo's accumulated CPU time, with our own
//! delta between two samples of the same processes divided by the wall time between them
//! (100 = one core), exactly like the procfs sampler. Sockets are not visible through sysinfo,
//! so `connections` is always `None`; fds, their limit and threads are `None` where sysinfo
//! cannot read them on the platform (threads are Linux-only there).

use std::collections::HashMap;
use std::time::Instant;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::tree::{Tree, assemble_tree};
use super::usage::Usage;

/// Accumulated CPU milliseconds per process, keyed by (pid, start time) so a reused pid is new.
type CpuMillis = HashMap<(u32, u64), u64>;

/// Keeps a sysinfo `System` (the processes it has seen) and the previous sample's CPU times.
#[derive(Default)]
pub struct SysinfoSampler {
    system: Option<System>,
    previous: Option<(Instant, CpuMillis)>,
}

impl std::fmt::Debug for SysinfoSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysinfoSampler")
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

fn new_system() -> Result<System, String> {
    System::new().map_err(|e| format!("sysinfo cannot read the process table: {e}"))
}

fn is_zombie(p: &sysinfo::Process) -> bool {
    matches!(
        p.status(),
        sysinfo::ProcessStatus::Zombie | sysinfo::ProcessStatus::Dead
    )
}

impl SysinfoSampler {
    /// A sampler with no history.
    pub fn new() -> Self {
        SysinfoSampler::default()
    }

    /// Forgets the history (the process was lost; the next sample starts a new rate).
    pub fn reset(&mut self) {
        self.previous = None;
        self.system = None;
    }

    /// Samples `tree`; blocking. Fails when the main process is gone.
    pub fn sample(&mut self, tree: &Tree) -> Result<Usage, String> {
        let now = Instant::now();
        let mut system = match self.system.take() {
            Some(s) => s,
            None => new_system()?,
        };
        let pids: Vec<Pid> = tree.pids.iter().map(|p| Pid::from_u32(*p)).collect();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            // `nothing()` keeps the task (thread) list: the thread count on Linux.
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let main = system
            .process(Pid::from_u32(tree.main))
            .filter(|p| !is_zombie(p))
            .ok_or_else(|| format!("cannot read process {} (sysinfo)", tree.main))?;
        let mut usage = Usage {
            processes: 0,
            main_pid: tree.main,
            cpu_percent: None,
            memory_bytes: 0,
            file_descriptors: Some(0),
            file_descriptors_limit: main.open_files_limit().map(|l| l as u64),
            connections: None,
            listening_sockets: None,
            threads: Some(0),
            start_time_seconds: main.start_time() as f64,
        };
        let mut cpu: CpuMillis = HashMap::with_capacity(pids.len());
        for pid in &pids {
            // A process that ended between discovery and now is simply not counted.
            let Some(process) = system.process(*pid).filter(|p| !is_zombie(p)) else {
                continue;
            };
            usage.processes += 1;
            usage.memory_bytes += process.memory();
            // One unreadable figure makes the sum unknown rather than too low.
            usage.file_descriptors = usage
                .file_descriptors
                .zip(process.open_files())
                .map(|(sum, n)| sum + n as u64);
            // sysinfo lists the threads other than the main one (Linux only).
            usage.threads = usage
                .threads
                .zip(process.tasks())
                .map(|(sum, tasks)| sum + tasks.len() as u64 + 1);
            cpu.insert(
                (pid.as_u32(), process.start_time()),
                process.accumulated_cpu_time(),
            );
        }
        if let Some((then, previous)) = &self.previous {
            let elapsed = now.duration_since(*then).as_secs_f64();
            if elapsed > 0.0 {
                // Processes new to the tree count from their second sample on.
                let deltas: Vec<u64> = cpu
                    .iter()
                    .filter_map(|(key, ms)| previous.get(key).map(|p| ms.saturating_sub(*p)))
                    .collect();
                // No process in common (the server was restarted): no rate until next time.
                if !deltas.is_empty() {
                    let delta_ms: u64 = deltas.iter().sum();
                    usage.cpu_percent = Some(delta_ms as f64 / 1000.0 / elapsed * 100.0);
                }
            }
        }
        self.previous = Some((now, cpu));
        // Processes of earlier trees stay in the System until refreshed: start afresh when it
        // holds far more than this tree, so memory stays bounded across restarts.
        if system.processes().len() <= 2 * pids.len() + 64 {
            self.system = Some(system);
        }
        Ok(usage)
    }
}

/// Every process (not thread) sysinfo can see, refreshed with `kind`.
fn all_processes(kind: ProcessRefreshKind) -> Result<System, String> {
    let mut system = new_system()?;
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, kind.without_tasks());
    Ok(system)
}

/// The roots and all their descendants (by parent pid); the first live root is the main process.
pub fn tree_of(roots: &[u32]) -> Result<Tree, String> {
    let system = all_processes(ProcessRefreshKind::nothing())?;
    let live = |pid: u32| {
        system
            .process(Pid::from_u32(pid))
            .is_some_and(|p| !is_zombie(p) && p.thread_kind().is_none())
    };
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, process) in system.processes() {
        if is_zombie(process) || process.thread_kind().is_some() {
            continue;
        }
        if let Some(parent) = process.parent() {
            children
                .entry(parent.as_u32())
                .or_default()
                .push(pid.as_u32());
        }
    }
    assemble_tree(roots, live, &children)
}

/// Processes whose arguments, joined by spaces, match `re`; never the exporter itself.
/// Sorted by start time, oldest first (then pid), so the main process is the one started first.
pub fn matching_pids(re: &regex::Regex) -> Vec<u32> {
    let me = std::process::id();
    let Ok(system) = all_processes(ProcessRefreshKind::nothing().with_cmd(UpdateKind::Always))
    else {
        return Vec::new();
    };
    let mut found: Vec<(u64, u32)> = system
        .processes()
        .iter()
        .filter(|(pid, p)| pid.as_u32() != me && !is_zombie(p) && p.thread_kind().is_none())
        .filter_map(|(pid, p)| {
            let args: Vec<String> = p
                .cmd()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            (!args.is_empty() && re.is_match(&args.join(" ")))
                .then_some((p.start_time(), pid.as_u32()))
        })
        .collect();
    found.sort_unstable();
    found.into_iter().map(|(_, pid)| pid).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sampling_our_own_process_reads_plausible_figures() {
        let tree = Tree {
            main: std::process::id(),
            pids: vec![std::process::id()],
        };
        let mut sampler = SysinfoSampler::new();
        let first = sampler.sample(&tree).expect("first sample");
        assert_eq!(first.processes, 1);
        assert!(first.cpu_percent.is_none());
        assert!(first.memory_bytes > 1024 * 1024, "{first:?}");
        assert_eq!(first.connections, None, "sysinfo sees no sockets");
        assert!(first.start_time_seconds > 1.0e9, "{first:?}");
        #[cfg(target_os = "linux")]
        {
            assert!(first.file_descriptors >= Some(3), "{first:?}");
            assert!(first.threads >= Some(1), "{first:?}");
        }
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let second = sampler.sample(&tree).expect("second sample");
        assert!(second.cpu_percent.is_some_and(|c| c > 0.0), "{second:?}");
    }

    #[test]
    fn a_missing_main_process_is_an_error() {
        let tree = Tree {
            main: u32::MAX - 1,
            pids: vec![u32::MAX - 1],
        };
        assert!(SysinfoSampler::new().sample(&tree).is_err());
        assert!(tree_of(&[]).unwrap_err().contains("no process"));
        assert!(
            tree_of(&[u32::MAX - 1])
                .unwrap_err()
                .contains("does not exist")
        );
    }

    #[test]
    fn the_tree_of_a_shell_includes_its_child_and_a_regex_finds_it() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 31.456; exit 0"])
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let sh = child.id();
        let re = regex::Regex::new(r"^sleep 31\.456$").expect("regex");
        let mut tree = None;
        let mut matched = Vec::new();
        // The child may not have forked and exec'd yet: look again for a bounded time.
        for _ in 0..100 {
            let t = tree_of(&[sh]).expect("tree");
            matched = matching_pids(&re);
            if t.pids.len() == 2 && !matched.is_empty() {
                tree = Some(t);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signals the process group this test created (sh and its sleep).
        unsafe { libc::kill(-(sh as i32), libc::SIGKILL) };
        let _ = child.wait();
        let tree = tree.expect("sh and sleep");
        assert_eq!(tree.main, sh);
        assert_eq!(matched.len(), 1);
        assert_eq!(tree.pids, {
            let mut v = vec![sh, matched[0]];
            v.sort_unstable();
            v
        });
        let me = regex::Regex::new(".").expect("regex");
        assert!(!matching_pids(&me).contains(&std::process::id()));
    }
}
