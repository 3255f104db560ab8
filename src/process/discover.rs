//! Finds the processes of a server: the stdio child and its descendants, or for servers we do
//! not spawn the process named by a pid file, a systemd unit or a command-line regex, again
//! with all descendants. The process table is read by the selected [`Backend`] (procfs here,
//! or sysinfo); the procfs readers and the systemd/cgroup lookup are Linux-only. Everything is
//! blocking except the `systemctl` call, which runs under a deadline.

#[cfg(target_os = "linux")]
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
#[cfg(target_os = "linux")]
use std::path::PathBuf;
use std::time::Duration;

use super::backend::Backend;
use super::config::Locator;

/// Largest pid file read.
const MAX_PID_FILE_BYTES: u64 = 64;
/// Largest `systemctl show` or `cgroup.procs` output read.
#[cfg(target_os = "linux")]
const MAX_LIST_BYTES: usize = 1024 * 1024;
/// The program asked for a unit's processes.
#[cfg(target_os = "linux")]
const SYSTEMCTL: &str = "systemctl";
/// Most processes one server's tree may have; the rest are ignored.
pub const MAX_TREE_PROCESSES: usize = 4096;

/// The processes of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The main process: its start time, fd limit and network namespace are reported.
    pub main: u32,
    /// The main process, every other root found and all their descendants (sorted, unique).
    pub pids: Vec<u32>,
}

/// Finds the processes `locator` names through `backend`; `child` is the stdio child's pid, if
/// one runs. The error is the reason shown to operators.
pub async fn discover(
    backend: Backend,
    locator: &Locator,
    child: Option<u32>,
    deadline: Duration,
) -> Result<Tree, String> {
    let roots: Vec<u32> =
        match locator {
            Locator::Child => match child {
                Some(pid) => vec![pid],
                None => return Err(
                    "no child process is running (the server is down or waiting to be restarted)"
                        .into(),
                ),
            },
            Locator::PidFile(path) => {
                let path = path.clone();
                blocking(move || read_pid_file(&path)).await?
            }
            #[cfg(target_os = "linux")]
            Locator::SystemdUnit(unit) => systemd_pids(SYSTEMCTL, unit, deadline).await?,
            #[cfg(not(target_os = "linux"))]
            Locator::SystemdUnit(unit) => {
                let _ = deadline;
                return Err(format!(
                    "systemd_unit {unit} needs Linux; use pid_file or process_match here"
                ));
            }
            Locator::Match(re) => {
                let re = re.clone();
                blocking(move || Ok(backend.matching_pids(&re))).await?
            }
        };
    blocking(move || backend.tree_of(&roots)).await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("process discovery task failed: {e}")))
}

/// The roots and all their descendants, from procfs; the first root (if alive) is the main
/// process.
#[cfg(target_os = "linux")]
pub fn tree_of(roots: &[u32]) -> Result<Tree, String> {
    assemble_tree(roots, is_alive, &children_map())
}

/// The tree of the live `roots` and their descendants through `children` (parent pid -> child
/// pids), bounded by [`MAX_TREE_PROCESSES`]; the first live root is the main process. Shared by
/// the procfs and sysinfo backends, which differ only in how they list processes.
pub(crate) fn assemble_tree(
    roots: &[u32],
    is_alive: impl Fn(u32) -> bool,
    children: &HashMap<u32, Vec<u32>>,
) -> Result<Tree, String> {
    let alive: Vec<u32> = roots.iter().copied().filter(|p| is_alive(*p)).collect();
    let Some(&main) = alive.first() else {
        return Err(match roots {
            [] => "no process matched".to_string(),
            [one] => format!("process {one} does not exist"),
            many => format!("none of the processes {many:?} exists"),
        });
    };
    let mut found: BTreeSet<u32> = BTreeSet::new();
    let mut frontier = alive;
    while let Some(pid) = frontier.pop() {
        if found.len() >= MAX_TREE_PROCESSES {
            break;
        }
        if found.insert(pid)
            && let Some(kids) = children.get(&pid)
        {
            frontier.extend(kids.iter().copied());
        }
    }
    Ok(Tree {
        main,
        pids: found.into_iter().collect(),
    })
}

#[cfg(target_os = "linux")]
fn is_alive(pid: u32) -> bool {
    procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .is_ok_and(|s| s.state != 'Z')
}

/// parent pid -> child pids, from every `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
fn children_map() -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(all) = procfs::process::all_processes() else {
        return map;
    };
    for stat in all.flatten().filter_map(|p| p.stat().ok()) {
        if stat.state == 'Z' {
            continue;
        }
        map.entry(stat.ppid as u32)
            .or_default()
            .push(stat.pid as u32);
    }
    map
}

fn read_pid_file(path: &Path) -> Result<Vec<u32>, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read pid_file {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_PID_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read pid_file {}: {e}", path.display()))?;
    let pid: u32 = text.trim().parse().map_err(|_| {
        format!(
            "pid_file {} does not hold a process id (found {:?})",
            path.display(),
            text.trim()
        )
    })?;
    if pid == 0 {
        return Err(format!("pid_file {} holds 0", path.display()));
    }
    Ok(vec![pid])
}

/// Processes whose arguments, joined by spaces, match `re`; never the exporter itself.
/// Sorted by start time, oldest first, so the main process is the one started first.
#[cfg(target_os = "linux")]
pub fn matching_pids(re: &regex::Regex) -> Vec<u32> {
    let me = std::process::id();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut found: Vec<(u64, u32)> = all
        .flatten()
        .filter(|p| p.pid() as u32 != me)
        .filter_map(|p| {
            let cmdline = p.cmdline().ok()?;
            if cmdline.is_empty() || !re.is_match(&cmdline.join(" ")) {
                return None;
            }
            let stat = p.stat().ok()?;
            Some((stat.starttime, p.pid() as u32))
        })
        .collect();
    found.sort_unstable();
    found.into_iter().map(|(_, pid)| pid).collect()
}

#[cfg(target_os = "linux")]
async fn systemd_pids(systemctl: &str, unit: &str, deadline: Duration) -> Result<Vec<u32>, String> {
    let main = systemctl_show(systemctl, unit, "MainPID", deadline).await?;
    match main.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => return Ok(vec![pid]),
        _ => {}
    }
    // No main process (Type=forking without PIDFile, or a scope): take the unit's cgroup.
    let cgroup = systemctl_show(systemctl, unit, "ControlGroup", deadline).await?;
    let cgroup = cgroup.trim().to_string();
    if cgroup.is_empty() {
        return Err(format!(
            "systemd unit {unit} has no main process and no cgroup (is it running?)"
        ));
    }
    // cgroup v2 (unified) first, then the hybrid layouts of cgroup v1 systems.
    let candidates: Vec<PathBuf> = [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
    ]
    .iter()
    .map(|root| {
        Path::new(root)
            .join(cgroup.trim_start_matches('/'))
            .join("cgroup.procs")
    })
    .collect();
    blocking(move || {
        let procs = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            format!(
                "cgroup {cgroup} has no cgroup.procs under /sys/fs/cgroup (is the unit running?)"
            )
        })?;
        let text = std::fs::read_to_string(procs)
            .map_err(|e| format!("cannot read {}: {e}", procs.display()))?;
        let pids: Vec<u32> = text
            .lines()
            .take(MAX_TREE_PROCESSES)
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        Ok(pids)
    })
    .await
}

#[cfg(target_os = "linux")]
async fn systemctl_show(
    systemctl: &str,
    unit: &str,
    property: &str,
    deadline: Duration,
) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(systemctl);
    cmd.args(["show", "-p", property, "--value", "--", unit])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(deadline, cmd.output())
        .await
        .map_err(|_| {
            format!(
                "`systemctl show {unit}` did not answer within {} ms",
                deadline.as_millis()
            )
        })?
        .map_err(|e| format!("cannot run systemctl for unit {unit}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "`systemctl show {unit}` failed ({}): {}",
            output.status,
            stderr.trim()
        ));
    }
    let mut stdout = output.stdout;
    stdout.truncate(MAX_LIST_BYTES);
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_tree_of_a_shell_includes_its_child() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; exit 0"])
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let sh = child.id();
        let mut tree = None;
        for _ in 0..100 {
            let t = tree_of(&[sh]).expect("tree");
            if t.pids.len() == 2 {
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
        assert!(tree.pids.contains(&sh));
    }

    #[test]
    fn missing_processes_and_pid_files_give_reasons() {
        #[cfg(target_os = "linux")]
        assert!(tree_of(&[]).unwrap_err().contains("no process"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        assert!(read_pid_file(&path).unwrap_err().contains("cannot read"));
        std::fs::write(&path, "abc").expect("write");
        assert!(read_pid_file(&path).unwrap_err().contains("does not hold"));
        std::fs::write(&path, format!("{}\n", std::process::id())).expect("write");
        assert_eq!(read_pid_file(&path), Ok(vec![std::process::id()]));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_systemd_unit_is_found_by_main_pid_and_slow_systemctl_is_cut_off() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = dir.path().join("systemctl");
        let me = std::process::id();
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\ncase \"$*\" in\n  *MainPID*mcp-ok*) echo {me} ;;\n  *MainPID*mcp-slow*) sleep 5 ;;\n  *MainPID*mcp-cgroup*) echo 0 ;;\n  *ControlGroup*mcp-cgroup*) echo / ;;\n  *) echo 'Unit mcp-x.service could not be found.' >&2; exit 1 ;;\nesac\n"
            ),
        )
        .expect("write fake systemctl");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let fake = fake.to_string_lossy().into_owned();
        let deadline = Duration::from_secs(3);
        assert_eq!(
            systemd_pids(&fake, "mcp-ok.service", deadline).await,
            Ok(vec![me])
        );
        // No main process: every process of the unit's cgroup (here the root cgroup, which
        // holds this test on a machine without systemd).
        let in_cgroup = systemd_pids(&fake, "mcp-cgroup.service", deadline)
            .await
            .expect("cgroup procs");
        assert!(!in_cgroup.is_empty());
        let err = systemd_pids(&fake, "mcp-x.service", deadline)
            .await
            .expect_err("unknown unit");
        assert!(err.contains("could not be found"), "{err}");
        let err = systemd_pids(&fake, "mcp-slow.service", Duration::from_millis(200))
            .await
            .expect_err("slow");
        assert!(err.contains("did not answer within 200 ms"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_regex_finds_a_process_but_never_the_exporter() {
        let mut child = std::process::Command::new("sleep")
            .arg("31.123")
            .spawn()
            .expect("spawn sleep");
        let re = regex::Regex::new(r"^sleep 31\.123$").expect("regex");
        // The child may not have exec'd yet: look again for a bounded time.
        let mut found = Vec::new();
        for _ in 0..100 {
            found = matching_pids(&re);
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, vec![child.id()]);
        let me = regex::Regex::new(".").expect("regex");
        assert!(!matching_pids(&me).contains(&std::process::id()));
    }
}
