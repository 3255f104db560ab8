//! Finds the processes of a server: the stdio child and its descendants, or for servers we do
//! not spawn the process named by a pid file, a systemd unit or a command-line regex, again
//! with all descendants. The process table is read by the selected [`Backend`] (procfs_table.rs
//! or sysinfo); the systemd/cgroup lookup is Linux-only. Everything is blocking except the
//! `systemctl` call, which runs under a deadline.

use std::io::Read;
use std::path::Path;
#[cfg(target_os = "linux")]
use std::path::PathBuf;
use std::time::Duration;

use super::backend::Backend;
use super::config::Locator;
#[cfg(target_os = "linux")]
use super::tree::MAX_TREE_PROCESSES;
use super::tree::Tree;

/// Largest pid file read.
const MAX_PID_FILE_BYTES: u64 = 64;
/// Largest `systemctl show` or `cgroup.procs` output read.
#[cfg(target_os = "linux")]
const MAX_LIST_BYTES: usize = 1024 * 1024;
/// The program asked for a unit's processes.
#[cfg(target_os = "linux")]
const SYSTEMCTL: &str = "systemctl";

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

    #[test]
    fn missing_processes_and_pid_files_give_reasons() {
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
}
