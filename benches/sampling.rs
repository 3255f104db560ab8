//! Cost of process sampling (not a test): one tree of 200 processes (a shell and 199 `sleep`s
//! plus itself), discovered and sampled like the daemon does once per probe interval, measured
//! in CPU time per sample and as a fraction of one core at the default 15 s interval, once with
//! the procfs implementation (Linux) and once with the sysinfo one. The peer is
//! `ps -o pid,rss,nlwp,pcpu,etimes -p <the same pids>` run the same number of times in the same
//! run; the report gives the ratios. Run: `cargo bench --bench sampling` or
//! `scripts/bench-sampling.sh`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_exporter::process::backend::{Backend, ProcessSampler};

const PROCESSES: usize = 200;
const ROUNDS: u32 = 50;
const INTERVAL: Duration = Duration::from_secs(15);

fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Tree(std::process::Child);

impl Drop for Tree {
    fn drop(&mut self) {
        // SAFETY: signalling the process group we created.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn main() {
    use std::os::unix::process::CommandExt;
    // `cargo bench` passes `--bench`; `cargo test --all-targets` and nextest (`--list`) run this
    // binary too, and then it must do nothing (and list no tests).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let script = format!(
        "for i in $(seq {}); do sleep 600 & done; wait",
        PROCESSES - 1
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sh: {e}"));
    let root = child.id();
    let tree_guard = Tree(child);
    let started = Instant::now();
    let tree = loop {
        match Backend::selected().tree_of(&[root]) {
            Ok(t) if t.pids.len() >= PROCESSES => break t,
            _ if started.elapsed() > Duration::from_secs(30) => {
                panic!("the tree of {PROCESSES} processes did not appear within 30 s")
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    println!("tree: {} processes under pid {root}", tree.pids.len());

    let backends: &[Backend] = if cfg!(target_os = "linux") {
        &[Backend::Procfs, Backend::Sysinfo]
    } else {
        &[Backend::Sysinfo]
    };
    let mut measured = Vec::new();
    for &backend in backends {
        let mut sampler = ProcessSampler::new(backend);
        let before = cpu_time(libc::RUSAGE_SELF);
        let wall = Instant::now();
        let mut last = None;
        for _ in 0..ROUNDS {
            let tree = backend
                .tree_of(&[root])
                .unwrap_or_else(|e| panic!("discovery: {e}"));
            last = Some(
                sampler
                    .sample(&tree)
                    .unwrap_or_else(|e| panic!("sample: {e}")),
            );
        }
        let cpu = (cpu_time(libc::RUSAGE_SELF) - before) / ROUNDS;
        let per_wall = wall.elapsed() / ROUNDS;
        if let Some(u) = last {
            let show = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "{}: last sample: {} processes, rss {} MiB, {} fds, {} sockets, {} threads",
                backend.name(),
                u.processes,
                u.memory_bytes / (1024 * 1024),
                show(u.file_descriptors),
                show(u.connections),
                show(u.threads)
            );
        }
        measured.push((backend, cpu, per_wall));
    }

    let pids: Vec<String> = tree.pids.iter().map(u32::to_string).collect();
    let pid_list = pids.join(",");
    let before = cpu_time(libc::RUSAGE_CHILDREN);
    let wall = Instant::now();
    for _ in 0..ROUNDS {
        let out = Command::new("ps")
            .args(["-o", "pid=,rss=,nlwp=,pcpu=,etimes=", "-p", &pid_list])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ps: {e}"));
        assert!(
            String::from_utf8_lossy(&out.stdout).lines().count() >= PROCESSES,
            "ps saw fewer processes than the tree"
        );
    }
    let peer = (cpu_time(libc::RUSAGE_CHILDREN) - before) / ROUNDS;
    let peer_wall = wall.elapsed() / ROUNDS;
    drop(tree_guard);

    let fraction = |d: Duration| d.as_secs_f64() / INTERVAL.as_secs_f64();
    for (backend, cpu, wall) in &measured {
        let what = match backend {
            Backend::Procfs => "discovery + sample, incl. fds and sockets",
            Backend::Sysinfo => "discovery + sample, fds but no sockets",
        };
        println!(
            "mcp-exporter {} ({what}): {:.2} ms CPU per sample ({:.2} ms wall) = {:.4}% of one core at a {}s interval",
            backend.name(),
            cpu.as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3,
            fraction(*cpu) * 100.0,
            INTERVAL.as_secs()
        );
    }
    println!(
        "peer ps -o pid,rss,nlwp,pcpu,etimes -p <same pids>: {:.2} ms CPU per run ({:.2} ms wall) = {:.4}% of one core",
        peer.as_secs_f64() * 1e3,
        peer_wall.as_secs_f64() * 1e3,
        fraction(peer) * 100.0
    );
    for (backend, cpu, _) in &measured {
        println!(
            "ratio mcp-exporter {} / ps: {:.2}",
            backend.name(),
            cpu.as_secs_f64() / peer.as_secs_f64().max(1e-9)
        );
    }
}
