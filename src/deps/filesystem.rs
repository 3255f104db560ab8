//! `kind = "filesystem"`: the playbook's `ls -la` and `df -h` as a check: the path exists and is
//! readable, optionally writable (a temporary file is created and removed), and free space and
//! free inodes are above their thresholds (below them the dependency is DEGRADED).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{DependencyCheck, DependencyFailure, DependencySpec, ms};

/// Free space and inodes of the filesystem holding a path.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Space {
    avail_bytes: u64,
    total_bytes: u64,
    avail_inodes: u64,
    total_inodes: u64,
}

/// Runs the blocking checks on the blocking pool, bounded by `timeout` (a hung network mount
/// leaves its thread blocked but the check still answers "timed out").
pub(super) async fn check(
    spec: DependencySpec,
    timeout: Duration,
    started_at: SystemTime,
) -> DependencyCheck {
    let work = tokio::task::spawn_blocking(move || check_blocking(&spec, started_at));
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => {
            let mut r = DependencyCheck::healthy(started_at);
            r.fail(
                DependencyFailure::Error,
                format!("filesystem check panicked: {join}"),
            );
            r
        }
        Err(_) => {
            let mut r = DependencyCheck::healthy(started_at);
            r.fail(
                DependencyFailure::TimedOut,
                format!("timed out after {} (hung mount?)", ms(timeout)),
            );
            r
        }
    }
}

fn check_blocking(spec: &DependencySpec, started_at: SystemTime) -> DependencyCheck {
    let mut result = DependencyCheck::healthy(started_at);
    let DependencySpec::Filesystem {
        path,
        writable,
        min_free_bytes,
        min_free_percent,
        min_free_inodes_percent,
    } = spec
    else {
        result.fail(
            DependencyFailure::Misconfigured,
            "not a filesystem dependency",
        );
        return result;
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            result.fail(
                DependencyFailure::Missing,
                format!("{} does not exist", path.display()),
            );
            return result;
        }
        Err(e) => {
            result.fail(
                DependencyFailure::NotReadable,
                format!("cannot stat {}: {e}", path.display()),
            );
            return result;
        }
    };
    let readable = if meta.is_dir() {
        std::fs::read_dir(path).map(|mut d| {
            let _ = d.next();
        })
    } else {
        std::fs::File::open(path).map(drop)
    };
    if let Err(e) = readable {
        result.fail(
            DependencyFailure::NotReadable,
            format!("cannot read {}: {e}", path.display()),
        );
        return result;
    }
    if *writable && let Err(e) = write_probe(path, meta.is_dir()) {
        result.fail(
            DependencyFailure::NotWritable,
            format!("{} is not writable: {e}", path.display()),
        );
        return result;
    }
    let space = match statvfs(path) {
        Ok(s) => s,
        Err(e) => {
            result.fail(
                DependencyFailure::Error,
                format!("statvfs {}: {e}", path.display()),
            );
            return result;
        }
    };
    result
        .details
        .insert("free_bytes", space.avail_bytes.to_string());
    result
        .details
        .insert("total_bytes", space.total_bytes.to_string());
    result
        .details
        .insert("free_inodes", space.avail_inodes.to_string());
    let percent = |avail: u64, total: u64| {
        if total == 0 {
            100.0
        } else {
            avail as f64 * 100.0 / total as f64
        }
    };
    let free_pct = percent(space.avail_bytes, space.total_bytes);
    let inode_pct = percent(space.avail_inodes, space.total_inodes);
    result
        .details
        .insert("free_percent", format!("{free_pct:.1}"));
    result
        .details
        .insert("free_inodes_percent", format!("{inode_pct:.1}"));
    if let Some(min) = min_free_bytes
        && space.avail_bytes < *min
    {
        result.degrade(
            DependencyFailure::LowSpace,
            format!(
                "low free space on {}: {} bytes free, threshold {min}",
                path.display(),
                space.avail_bytes
            ),
        );
    }
    if let Some(min) = min_free_percent
        && free_pct < *min
    {
        result.degrade(
            DependencyFailure::LowSpace,
            format!(
                "low free space on {}: {free_pct:.1}% free, threshold {min}%",
                path.display()
            ),
        );
    }
    if let Some(min) = min_free_inodes_percent
        && space.total_inodes > 0
        && inode_pct < *min
    {
        result.degrade(
            DependencyFailure::LowSpace,
            format!(
                "low free inodes on {}: {inode_pct:.1}% free, threshold {min}%",
                path.display()
            ),
        );
    }
    result
}

/// Creates, writes and removes a uniquely named file in the directory (or opens the file for
/// appending without writing).
fn write_probe(path: &Path, is_dir: bool) -> std::io::Result<()> {
    if !is_dir {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop);
    }
    let name = format!(
        ".mcp-exporter-write-check-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let file_path = path.join(name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file_path)
        .and_then(|mut f| f.write_all(b"mcp-exporter write check\n"));
    let removed = std::fs::remove_file(&file_path);
    written?;
    removed
}

fn statvfs(path: &Path) -> Result<Space, nix::Error> {
    let s = nix::sys::statvfs::statvfs(path)?;
    let frsize = s.fragment_size() as u64;
    Ok(Space {
        avail_bytes: (s.blocks_available() as u64).saturating_mul(frsize),
        total_bytes: (s.blocks() as u64).saturating_mul(frsize),
        avail_inodes: s.files_available() as u64,
        total_inodes: s.files() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthStatus;

    fn spec(path: &Path, writable: bool, min_free_bytes: Option<u64>) -> DependencySpec {
        DependencySpec::Filesystem {
            path: path.to_path_buf(),
            writable,
            min_free_bytes,
            min_free_percent: None,
            min_free_inodes_percent: None,
        }
    }

    #[test]
    fn a_writable_directory_is_healthy_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = check_blocking(&spec(dir.path(), true, Some(1)), SystemTime::now());
        assert_eq!(r.status, HealthStatus::Healthy, "{r:?}");
        assert!(r.details.contains_key("free_bytes"));
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[test]
    fn missing_path_and_impossible_threshold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = check_blocking(
            &spec(&dir.path().join("nope"), false, None),
            SystemTime::now(),
        );
        assert_eq!(r.failure, Some(DependencyFailure::Missing), "{r:?}");
        assert!(r.reason.as_deref().unwrap_or("").contains("does not exist"));
        let r = check_blocking(&spec(dir.path(), false, Some(u64::MAX)), SystemTime::now());
        assert_eq!(r.status, HealthStatus::Degraded, "{r:?}");
        assert_eq!(r.failure, Some(DependencyFailure::LowSpace));
    }
}
