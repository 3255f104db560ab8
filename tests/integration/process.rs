//! The server's process, end to end: accuracy of the resource gauges against ground truth read
//! from /proc in the test (a fixture process of known size, and a real npm server behind a
//! shell wrapper), restarts of a killed stdio child, and crash-loop detection with backoff.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::net::free_port;
use crate::common::paths::{fixture, npm_server_js};
use crate::common::process_table::descendants_of;
use crate::common::processes::{ChildGuard, kill_group, spawn_guarded};
use crate::common::scrape::{Scrape, promtool_check_metrics};
use crate::common::tools::{Tool, require};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// `VmRSS` of a process, bytes, from /proc/<pid>/status.
fn vm_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// utime + stime of a process, clock ticks, from /proc/<pid>/stat.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3 of the man page, utime 14, stime 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second (USER_HZ).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// Entries of /proc/<pid>/fd.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Soft "Max open files" of /proc/<pid>/limits.
fn soft_nofile(pid: u32) -> Option<f64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn api_status(daemon: &Daemon, server: &str) -> serde_json::Value {
    let (_, body) = daemon.get("/api/servers");
    let all: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    all.as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == server).cloned())
        .unwrap_or_default()
}

fn gauge(scrape: &Scrape, name: &str, server: &str) -> Option<f64> {
    scrape.value(name, &[("server", server)])
}

/// Starts the fixture and waits until it wrote its pid file; returns the guard and the pid.
fn start_hog(python: &Path, pid_file: &Path, args: &[&str]) -> (ChildGuard, u32) {
    let mut cmd = Command::new(python);
    cmd.arg(fixture("resource_hog.py"))
        .arg("--pid-file")
        .arg(pid_file)
        .args(args);
    let mut guard = spawn_guarded("resource_hog", &mut cmd);
    let pid = eventually(Duration::from_secs(30), Duration::from_millis(50), || {
        if let Some(status) = guard.try_wait() {
            return Err(format!("fixture exited with {status}: {}", guard.output()));
        }
        std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .ok_or_else(|| "no pid file yet".to_string())
    });
    assert_eq!(pid, guard.pid());
    (guard, pid)
}

fn down_http(name: &str, extra: &str) -> String {
    // Nothing listens on this port: the server is down, but its process is still sampled.
    format!(
        "\n[[servers]]\nname = \"{name}\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{}/mcp\"\ninterval = \"1s\"\ntimeout = \"2s\"\n{extra}\n",
        free_port()
    )
}

#[test]
fn gauges_match_proc_for_a_process_of_known_size() {
    let Some(python) = require(Tool::Python3) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let idle_pid_file = dir.path().join("idle.pid");
    let busy_pid_file = dir.path().join("busy.pid");
    let tag = format!("match-me-{}", std::process::id());
    // 2 TCP pairs + 1 Unix pair = 6 connected sockets; a TCP and a Unix listener.
    let unix_listener = dir.path().join("hog.sock");
    let unix_listener_arg = unix_listener.display().to_string();
    let (_idle, idle) = start_hog(
        &python,
        &idle_pid_file,
        &[
            "--mem-mib",
            "96",
            "--files",
            "5",
            "--tcp-pairs",
            "2",
            "--unix-pairs",
            "1",
            "--unix-listener",
            &unix_listener_arg,
            "--tag",
            &tag,
        ],
    );
    let (_busy, busy) = start_hog(&python, &busy_pid_file, &["--busy"]);
    let config = [
        down_http(
            "idle",
            &format!("pid_file = \"{}\"", idle_pid_file.display()),
        ),
        down_http(
            "busy",
            &format!("pid_file = \"{}\"", busy_pid_file.display()),
        ),
        down_http(
            "matched",
            &format!("process_match = \"resource_hog\\\\.py .*{tag}\""),
        ),
        down_http("missing", "pid_file = \"{dir}/nonexistent.pid\""),
    ]
    .concat();
    let daemon = Daemon::start(&config);

    // Memory within 5% of /proc's own figure; fds, sockets and the fd limit exact.
    eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        let mem = gauge(&s, "mcp_server_memory_usage_bytes", "idle").ok_or("no memory gauge")?;
        let truth = vm_rss(idle).ok_or("fixture gone")? as f64;
        if (mem - truth).abs() > 0.05 * truth {
            return Err(format!("memory {mem} vs VmRSS {truth}"));
        }
        if truth < 96.0 * 1024.0 * 1024.0 {
            return Err(format!(
                "fixture RSS {truth} is below the 96 MiB it touched"
            ));
        }
        let fds = gauge(&s, "mcp_server_file_descriptors", "idle");
        let want_fds = fd_count(idle) as f64;
        if fds != Some(want_fds) {
            return Err(format!("fds {fds:?}, /proc says {want_fds}"));
        }
        let conns = gauge(&s, "mcp_server_connections_active", "idle");
        let listening = gauge(&s, "mcp_server_listening_sockets", "idle");
        if conns != Some(6.0) || listening != Some(2.0) {
            return Err(format!(
                "connections {conns:?}, want 6; listening {listening:?}, want 2"
            ));
        }
        let limit = gauge(&s, "mcp_server_file_descriptors_limit", "idle");
        if limit != soft_nofile(idle) {
            return Err(format!("fd limit {limit:?} vs {:?}", soft_nofile(idle)));
        }
        for (name, want) in [
            ("mcp_server_processes", 1.0),
            ("mcp_server_threads", 1.0),
            ("mcp_server_process_found", 1.0),
        ] {
            if gauge(&s, name, "idle") != Some(want) {
                return Err(format!(
                    "{name} is {:?}, want {want}",
                    gauge(&s, name, "idle")
                ));
            }
        }
        let score = gauge(&s, "mcp_resource_usage_score", "idle").ok_or("no score")?;
        if !(0.0..=1.0).contains(&score) {
            return Err(format!("score {score} outside 0..1"));
        }
        Ok(())
    });

    // A busy loop on one core reads 100 ± 15%. On a machine where other work takes part of
    // that core, the truth is what /proc says the fixture got: the test reads the fixture's CPU
    // time over at least one second itself and the gauge must be within 15 points of it.
    let mut last: Option<(std::time::Instant, u64)> = None;
    eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        let cpu = gauge(&s, "mcp_server_cpu_usage_percent", "busy");
        let now = (
            std::time::Instant::now(),
            cpu_ticks(busy).ok_or("fixture gone")?,
        );
        let Some(then) = last.filter(|t| now.0.duration_since(t.0) >= Duration::from_secs(1))
        else {
            last = last.or(Some(now));
            return Err("measuring the fixture's own CPU use".into());
        };
        last = Some(now);
        let truth =
            (now.1 - then.1) as f64 / clock_ticks() / now.0.duration_since(then.0).as_secs_f64()
                * 100.0;
        let Some(cpu) = cpu else {
            return Err("no cpu gauge yet".into());
        };
        let ok = if truth >= 85.0 {
            (85.0..=115.0).contains(&cpu)
        } else {
            (cpu - truth).abs() <= 15.0
        };
        if ok {
            eprintln!("busy fixture: gauge {cpu:.1}%, /proc {truth:.1}%");
            Ok(())
        } else {
            Err(format!(
                "busy fixture (pid {busy}) cpu gauge {cpu:.1}%, /proc says {truth:.1}%"
            ))
        }
    });

    // process_match finds the same process as the pid file.
    let s = eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        match gauge(&s, "mcp_server_process_found", "matched") {
            Some(1.0) => Ok(s),
            other => Err(format!(
                "matched found={other:?}: {}",
                api_status(&daemon, "matched")
            )),
        }
    });
    assert_eq!(gauge(&s, "mcp_server_processes", "matched"), Some(1.0));
    if let Err(problems) = promtool_check_metrics(s.text()) {
        panic!("promtool check metrics: {problems}");
    }
    let status = api_status(&daemon, "matched");
    assert_eq!(status["process"]["usage"]["main_pid"], idle, "{status}");

    // Not found: the gauges are absent (not 0) and the reason is shown.
    assert_eq!(gauge(&s, "mcp_server_process_found", "missing"), Some(0.0));
    assert_eq!(gauge(&s, "mcp_server_memory_usage_bytes", "missing"), None);
    assert_eq!(gauge(&s, "mcp_server_cpu_usage_percent", "missing"), None);
    let status = api_status(&daemon, "missing");
    let reason = status["process"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot read pid_file"), "{status}");
    let (_, page) = daemon.get("/");
    assert!(page.contains("not found: cannot read pid_file"), "{page}");
}

fn wrapped_everything(name: &str, extra: &str) -> String {
    // No `exec`: the shell stays, so the tree is sh -> node, like npx -> node.
    format!(
        r#"
[[servers]]
name = "{name}"
transport = "stdio"
command = "sh"
args = ["-c", "node '{}' stdio; exit $?"]
interval = "1s"
timeout = "10s"
check = "liveness"
{extra}
"#,
        npm_server_js("everything").display()
    )
}

#[test]
fn a_wrapped_npm_server_is_measured_as_a_whole_tree() {
    if require(Tool::Node).is_none() {
        return;
    }
    let daemon = Daemon::start(&wrapped_everything("wrapped", ""));
    eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        let tree = descendants_of(daemon.pid());
        let names: Vec<String> = tree
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
            .map(|c| c.trim().to_string())
            .collect();
        if !names.iter().any(|n| n == "node") || tree.len() != 2 {
            return Err(format!("tree is {tree:?} {names:?}, want sh and node"));
        }
        if gauge(&s, "mcp_server_processes", "wrapped") != Some(2.0) {
            return Err(format!(
                "processes gauge {:?}",
                gauge(&s, "mcp_server_processes", "wrapped")
            ));
        }
        let mem = gauge(&s, "mcp_server_memory_usage_bytes", "wrapped").ok_or("no memory")?;
        let truth: u64 = tree.iter().filter_map(|p| vm_rss(*p)).sum();
        let node_alone = tree
            .iter()
            .zip(&names)
            .filter(|(_, n)| *n == "node")
            .filter_map(|(p, _)| vm_rss(*p))
            .sum::<u64>() as f64;
        if mem <= node_alone * 0.95 && mem < truth as f64 * 0.95 {
            return Err(format!("memory {mem} does not cover node ({node_alone})"));
        }
        if (mem - truth as f64).abs() > 0.05 * truth as f64 {
            return Err(format!("memory {mem} vs tree RSS {truth}"));
        }
        Ok(())
    });
}

#[test]
fn a_killed_child_is_restarted_and_counted() {
    if require(Tool::Node).is_none() {
        return;
    }
    let daemon = Daemon::start(&wrapped_everything(
        "restart",
        r#"restart = { backoff_initial = "200ms", backoff_max = "2s" }"#,
    ));
    let first = eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        let children = daemon.child_pids();
        match (gauge(&s, "mcp_server_up", "restart"), children.as_slice()) {
            (Some(1.0), [pid]) => Ok(*pid),
            other => Err(format!("not up yet: {other:?}")),
        }
    });
    assert_eq!(
        gauge(&daemon.scrape(), "mcp_server_restarts_total", "restart"),
        Some(0.0)
    );
    kill_group(first, libc::SIGKILL);
    eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        let restarts = gauge(&s, "mcp_server_restarts_total", "restart").unwrap_or(0.0);
        let up = gauge(&s, "mcp_server_up", "restart");
        let children = daemon.child_pids();
        if restarts >= 1.0 && up == Some(1.0) && !children.contains(&first) && !children.is_empty()
        {
            Ok(())
        } else {
            Err(format!(
                "restarts {restarts}, up {up:?}, children {children:?}; {}",
                api_status(&daemon, "restart")
            ))
        }
    });
    let s = daemon.scrape();
    assert_eq!(gauge(&s, "mcp_server_crash_looping", "restart"), Some(0.0));
    assert_eq!(gauge(&s, "mcp_server_process_found", "restart"), Some(1.0));
}

#[test]
fn a_command_that_exits_at_once_is_crash_looping_without_a_busy_loop() {
    let config = r#"
[[servers]]
name = "dies"
transport = "stdio"
command = "sh"
args = ["-c", "exit 1"]
interval = "1s"
timeout = "2s"
restart = { backoff_initial = "200ms", backoff_max = "2s", crash_loop_failures = 3, crash_loop_window = "10m" }
"#;
    let daemon = Daemon::start(config);
    let s = eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        match gauge(&s, "mcp_server_crash_looping", "dies") {
            Some(1.0) => Ok(s),
            other => Err(format!(
                "crash_looping {other:?}; {}",
                api_status(&daemon, "dies")
            )),
        }
    });
    assert_eq!(gauge(&s, "mcp_server_health_status", "dies"), Some(0.0));
    assert_eq!(gauge(&s, "mcp_server_up", "dies"), Some(0.0));
    // Three deaths make the crash loop: the first spawn and two restarts.
    let restarts = gauge(&s, "mcp_server_restarts_total", "dies").unwrap_or(-1.0);
    assert!((2.0..=4.0).contains(&restarts), "restarts_total {restarts}");
    let status = api_status(&daemon, "dies");
    let reasons = status["health"]["reasons"].to_string();
    assert!(reasons.contains("crash-looping"), "{status}");
    assert_eq!(
        status["process"]["supervision"]["crash_looping"], true,
        "{status}"
    );
    // Gauges are absent while no child runs.
    assert_eq!(gauge(&s, "mcp_server_memory_usage_bytes", "dies"), None);

    // Keep watching for five more probes: spawn attempts are gated by the backoff, so there is
    // at most one per probe, and some probes find the backoff still running.
    let probes0 = gauge(&s, "mcp_probes_total", "dies").unwrap_or(0.0);
    let later = eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        let probes = gauge(&s, "mcp_probes_total", "dies").unwrap_or(0.0);
        let blocked = api_status(&daemon, "dies")["health"]["reasons"]
            .to_string()
            .contains("backoff");
        if probes >= probes0 + 5.0 && blocked {
            Ok(s)
        } else {
            Err(format!(
                "probes {probes} (from {probes0}), blocked {blocked}"
            ))
        }
    });
    let probes = gauge(&later, "mcp_probes_total", "dies").unwrap_or(0.0);
    let restarts_later = gauge(&later, "mcp_server_restarts_total", "dies").unwrap_or(0.0);
    assert!(
        restarts_later - restarts <= probes - probes0,
        "{restarts_later} restarts after {restarts} within {} probes: a busy restart loop",
        probes - probes0
    );
    assert!(
        restarts_later < probes + 1.0,
        "{restarts_later} restarts, {probes} probes"
    );
    assert_eq!(gauge(&later, "mcp_server_crash_looping", "dies"), Some(1.0));
}

#[test]
fn remediation_runs_once_per_backoff_window_when_a_server_stays_down() {
    let config = down_http(
        "remote",
        r#"remediation = { command = ["sh", "-c", "echo {name} >> '{dir}/remediated'"], after = "1s", backoff = "1h" }"#,
    );
    let daemon = Daemon::start(&config);
    let marker = daemon.dir().join("remediated");
    let s = eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        match s.value(
            "mcp_remediation_total",
            &[("server", "remote"), ("outcome", "success")],
        ) {
            Some(v) if v >= 1.0 => Ok(s),
            other => Err(format!("remediation_total {other:?}")),
        }
    });
    let probes0 = gauge(&s, "mcp_probes_total", "remote").unwrap_or(0.0);
    // Later probes still find it down, but the backoff window (1h) allows no second run.
    eventually(WAIT, POLL, || {
        let probes = gauge(&daemon.scrape(), "mcp_probes_total", "remote").unwrap_or(0.0);
        (probes >= probes0 + 3.0)
            .then_some(())
            .ok_or(format!("probes {probes}"))
    });
    let s = daemon.scrape();
    assert_eq!(
        s.value(
            "mcp_remediation_total",
            &[("server", "remote"), ("outcome", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "remote\n"
    );
    assert!(daemon.stderr().contains("running remediation command"));
    let status = api_status(&daemon, "remote");
    assert!(
        status["process"]["last_remediation"]
            .as_str()
            .unwrap_or_default()
            .starts_with("success"),
        "{status}"
    );
}

/// The sysinfo sampler (the one used where procfs is not available) against the same fixture
/// and the same ground truth: memory within 5% of VmRSS over a wrapped tree (descendants found
/// by parent pid), fds and the fd limit exact (sysinfo reads them on Linux), sockets absent,
/// and the busy loop's CPU within the tolerance of the procfs test.
#[test]
fn the_sysinfo_sampler_matches_proc_for_the_fixture() {
    use mcp_exporter::process::sample_sysinfo::{SysinfoSampler, tree_of};
    let Some(python) = require(Tool::Python3) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let idle_pid_file = dir.path().join("idle.pid");
    // Wrapped in a shell that stays (no exec), so the tree is sh -> python.
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "'{}' '{}' --pid-file '{}' --mem-mib 96 --files 5 --tcp-pairs 2 --unix-pairs 1; exit $?",
        python.display(),
        fixture("resource_hog.py").display(),
        idle_pid_file.display()
    ));
    let mut wrapper = spawn_guarded("sh resource_hog", &mut cmd);
    let sh = wrapper.pid();
    let idle = eventually(Duration::from_secs(30), Duration::from_millis(50), || {
        if let Some(status) = wrapper.try_wait() {
            return Err(format!(
                "fixture exited with {status}: {}",
                wrapper.output()
            ));
        }
        std::fs::read_to_string(&idle_pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .ok_or_else(|| "no pid file yet".to_string())
    });
    assert_ne!(idle, sh, "the shell must stay as the parent");

    let tree = tree_of(&[sh]).expect("tree of the wrapper");
    assert_eq!(tree.main, sh);
    let mut want = vec![sh, idle];
    want.extend(descendants_of(idle));
    want.sort_unstable();
    assert_eq!(tree.pids, want, "descendants found by parent pid");

    let mut sampler = SysinfoSampler::new();
    eventually(WAIT, POLL, || {
        let u = sampler.sample(&tree)?;
        let truth = (vm_rss(sh).ok_or("sh gone")? + vm_rss(idle).ok_or("fixture gone")?) as f64;
        if (u.memory_bytes as f64 - truth).abs() > 0.05 * truth {
            return Err(format!("memory {} vs tree VmRSS {truth}", u.memory_bytes));
        }
        if truth < 96.0 * 1024.0 * 1024.0 {
            return Err(format!("tree RSS {truth} is below the 96 MiB touched"));
        }
        let want_fds = (fd_count(sh) + fd_count(idle)) as u64;
        if u.file_descriptors != Some(want_fds) {
            return Err(format!(
                "fds {:?}, /proc says {want_fds}",
                u.file_descriptors
            ));
        }
        if u.file_descriptors_limit.map(|l| l as f64) != soft_nofile(sh) {
            return Err(format!(
                "fd limit {:?} vs {:?}",
                u.file_descriptors_limit,
                soft_nofile(sh)
            ));
        }
        if u.processes != 2 || u.threads != Some(2) || u.main_pid != sh {
            return Err(format!("processes/threads/main: {u:?}"));
        }
        Ok(())
    });
    let u = sampler.sample(&tree).expect("sample");
    assert_eq!(u.connections, None, "sysinfo sees no sockets: {u:?}");

    // A busy loop on one core: the sampler's rate against /proc's CPU time over the same span.
    let busy_pid_file = dir.path().join("busy.pid");
    let (_busy, busy) = start_hog(&python, &busy_pid_file, &["--busy"]);
    let busy_tree = tree_of(&[busy]).expect("tree of the busy fixture");
    let mut sampler = SysinfoSampler::new();
    let mut last: Option<(std::time::Instant, u64)> = None;
    eventually(WAIT, POLL, || {
        let ticks = cpu_ticks(busy).ok_or("fixture gone")?;
        let now = std::time::Instant::now();
        let Some(then) = last.filter(|t| now.duration_since(t.0) >= Duration::from_secs(1)) else {
            if last.is_none() {
                sampler.sample(&busy_tree)?;
                last = Some((now, ticks));
            }
            return Err("measuring the fixture's own CPU use".into());
        };
        let cpu = sampler.sample(&busy_tree)?.cpu_percent.ok_or("no rate")?;
        last = Some((now, ticks));
        let truth =
            (ticks - then.1) as f64 / clock_ticks() / now.duration_since(then.0).as_secs_f64()
                * 100.0;
        let ok = if truth >= 85.0 {
            (85.0..=115.0).contains(&cpu)
        } else {
            (cpu - truth).abs() <= 15.0
        };
        if ok {
            eprintln!("busy fixture (sysinfo): {cpu:.1}%, /proc {truth:.1}%");
            Ok(())
        } else {
            Err(format!("sysinfo cpu {cpu:.1}%, /proc says {truth:.1}%"))
        }
    });
}

/// The daemon forced onto sysinfo (`MCP_EXPORTER_PROCESS_SAMPLER=sysinfo`) measures a real npm
/// stdio server as a whole tree; sockets are not visible to sysinfo, so that gauge is absent.
#[test]
fn the_daemon_forced_onto_sysinfo_measures_a_real_npm_server() {
    if require(Tool::Node).is_none() {
        return;
    }
    let daemon = Daemon::start_with(
        &wrapped_everything("viasysinfo", ""),
        &[],
        &[("MCP_EXPORTER_PROCESS_SAMPLER", "sysinfo")],
    );
    eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        let tree = descendants_of(daemon.pid());
        if gauge(&s, "mcp_server_processes", "viasysinfo") != Some(tree.len() as f64)
            || tree.len() != 2
        {
            return Err(format!(
                "processes gauge {:?}, tree {tree:?}",
                gauge(&s, "mcp_server_processes", "viasysinfo")
            ));
        }
        let mem =
            gauge(&s, "mcp_server_memory_usage_bytes", "viasysinfo").ok_or("no memory gauge")?;
        let truth: u64 = tree.iter().filter_map(|p| vm_rss(*p)).sum();
        if (mem - truth as f64).abs() > 0.05 * truth as f64 {
            return Err(format!("memory {mem} vs tree RSS {truth}"));
        }
        if gauge(&s, "mcp_server_cpu_usage_percent", "viasysinfo").is_none() {
            return Err("no cpu gauge yet (needs two samples)".into());
        }
        let fds = gauge(&s, "mcp_server_file_descriptors", "viasysinfo");
        let want: usize = tree.iter().map(|p| fd_count(*p)).sum();
        if fds != Some(want as f64) {
            return Err(format!("fds {fds:?}, /proc says {want}"));
        }
        Ok(())
    });
    let s = daemon.scrape();
    assert_eq!(
        gauge(&s, "mcp_server_connections_active", "viasysinfo"),
        None,
        "sysinfo cannot see sockets: absent, not 0"
    );
    assert_eq!(
        gauge(&s, "mcp_server_process_found", "viasysinfo"),
        Some(1.0)
    );
    if let Err(problems) = promtool_check_metrics(s.text()) {
        panic!("promtool check metrics: {problems}");
    }
    let status = api_status(&daemon, "viasysinfo");
    assert_eq!(status["process"]["sampler"], "sysinfo", "{status}");
    let (_, page) = daemon.get("/");
    assert!(page.contains("sampled by sysinfo"), "{page}");
}
