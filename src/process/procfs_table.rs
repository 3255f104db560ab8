//! The process table read from procfs (Linux): a server's tree and the processes whose command
//! line matches a regex. The sysinfo equivalents are in sample_sysinfo.rs; backend.rs chooses.

use std::collections::HashMap;

use super::tree::{Tree, assemble_tree};

/// The roots and all their descendants, from procfs; the first root (if alive) is the main
/// process.
pub fn tree_of(roots: &[u32]) -> Result<Tree, String> {
    assemble_tree(roots, is_alive, &children_map())
}

fn is_alive(pid: u32) -> bool {
    procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .is_ok_and(|s| s.state != 'Z')
}

/// parent pid -> child pids, from every `/proc/<pid>/stat`.
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

/// Processes whose arguments, joined by spaces, match `re`; never the exporter itself.
/// Sorted by start time, oldest first, so the main process is the one started first.
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
    fn no_root_is_an_error() {
        assert!(tree_of(&[]).unwrap_err().contains("no process"));
    }

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
