//! [`Tree`]: the processes of one server, and how it is assembled from a process table
//! (shared by the procfs and sysinfo readers, which differ only in how they list processes).

use std::collections::{BTreeSet, HashMap};

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

/// The tree of the live `roots` and their descendants through `children` (parent pid -> child
/// pids), bounded by [`MAX_TREE_PROCESSES`]; the first live root is the main process. Shared by
/// the procfs and sysinfo backends, which differ only in how they list processes.
pub fn assemble_tree(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_holds_live_roots_and_their_descendants() {
        let children: HashMap<u32, Vec<u32>> =
            [(10, vec![11, 12]), (12, vec![13]), (20, vec![21])].into();
        let tree = assemble_tree(&[9, 10], |p| p != 9, &children).expect("tree");
        assert_eq!(tree.main, 10);
        assert_eq!(tree.pids, [10, 11, 12, 13]);
        assert_eq!(
            assemble_tree(&[], |_| true, &children).unwrap_err(),
            "no process matched"
        );
        assert_eq!(
            assemble_tree(&[7], |_| false, &children).unwrap_err(),
            "process 7 does not exist"
        );
        assert_eq!(
            assemble_tree(&[7, 8], |_| false, &children).unwrap_err(),
            "none of the processes [7, 8] exists"
        );
    }
}
