//! Which processes exist, their parents and process groups, read from `/proc/<pid>/stat`.

/// The fields of `/proc/<pid>/stat` the tests look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    /// `R`, `S`, `Z`, ...
    state: char,
    /// Parent process id.
    ppid: u32,
    /// Process group id.
    pgrp: u32,
}

/// Parses the text of `/proc/<pid>/stat`. The command name may contain spaces and parentheses,
/// so fields are counted after the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Stat { state, ppid, pgrp })
}

/// The stat of one process; `None` if it is gone.
fn stat_of(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process: (pid, stat).
fn all_processes() -> Vec<(u32, Stat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_of(pid)?)))
        .collect()
}

/// True while a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    stat_of(pid).is_some_and(|stat| stat.state != 'Z')
}

/// Pids whose parent is `ppid`, sorted.
pub fn child_pids_of(ppid: u32) -> Vec<u32> {
    let mut pids: Vec<u32> = all_processes()
        .into_iter()
        .filter(|(_, stat)| stat.ppid == ppid)
        .map(|(pid, _)| pid)
        .collect();
    pids.sort_unstable();
    pids
}

/// Every descendant of `pid` (children, grandchildren, ...).
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for child in child_pids_of(parent) {
            if !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// `(pid, state)` of every process in process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<(u32, char)> {
    all_processes()
        .into_iter()
        .filter(|(_, stat)| stat.pgrp == pgid)
        .map(|(pid, stat)| (pid, stat.state))
        .collect()
}

/// Members of the group that are still running (zombies awaiting an absent reaper count as
/// gone).
pub fn live_members(pgid: u32) -> Vec<u32> {
    group_members(pgid)
        .into_iter()
        .filter(|(_, state)| *state != 'Z' && *state != 'X')
        .map(|(pid, _)| pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = parse_stat("4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 ...");
        assert_eq!(
            stat,
            Some(Stat {
                state: 'S',
                ppid: 17,
                pgrp: 4242
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_child_of_its_parent() {
        let me = std::process::id();
        assert!(pid_alive(me));
        let parent = stat_of(me).expect("own stat").ppid;
        assert!(child_pids_of(parent).contains(&me));
        assert!(descendants_of(parent).contains(&me));
    }
}
