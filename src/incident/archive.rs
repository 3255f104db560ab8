//! The bundle on disk: every file under one top directory in a gzip-compressed tar, with a
//! `SHA256SUMS` manifest (the format `sha256sum -c` reads) of every other file. Written to a
//! `.partial` file and renamed, so a bundle that exists is complete.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// Name of the manifest in the bundle.
pub const MANIFEST: &str = "SHA256SUMS";

/// One file of the bundle: its path under the top directory and its (already redacted) text.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleFile {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Content.
    pub text: String,
}

/// Why the bundle could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct ArchiveError {
    /// The file.
    pub path: PathBuf,
    /// Cause.
    pub source: std::io::Error,
}

/// The manifest for `files`: `<sha256 hex>  <path>` per line, in the given order.
pub fn manifest(files: &[BundleFile]) -> String {
    let mut out = String::new();
    for file in files {
        let digest = Sha256::digest(file.text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "{hex}  {}", file.path);
    }
    out
}

/// Writes `files` and their manifest under `top/` into the tar.gz `out` (replaced if present).
pub fn write(
    out: &Path,
    top: &str,
    files: &[BundleFile],
    at: SystemTime,
) -> Result<(), ArchiveError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError { path, source }
    };
    if let Some(dir) = out.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(err(dir))?;
    }
    let mut partial = out.as_os_str().to_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let file = std::fs::File::create(&partial)?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mtime = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let manifest = BundleFile {
            path: MANIFEST.to_string(),
            text: manifest(files),
        };
        for file in files.iter().chain(std::iter::once(&manifest)) {
            let mut header = tar::Header::new_gnu();
            header.set_size(file.text.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(mtime);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(
                &mut header,
                format!("{top}/{}", file.path),
                file.text.as_bytes(),
            )?;
        }
        let gz = tar.into_inner()?;
        let mut file = gz.finish()?;
        file.flush()?;
        file.sync_all()
    })();
    if let Err(source) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(ArchiveError {
            path: out.to_path_buf(),
            source,
        });
    }
    std::fs::rename(&partial, out).map_err(err(out))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_manifest_names_every_file_with_its_sha256() {
        let files = vec![BundleFile {
            path: "a/b.txt".into(),
            text: "abc".into(),
        }];
        assert_eq!(
            manifest(&files),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a/b.txt\n"
        );
    }

    #[test]
    fn the_archive_holds_the_files_and_the_manifest_under_the_top_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x/bundle.tar.gz");
        let files = vec![
            BundleFile {
                path: "summary.md".into(),
                text: "# hi\n".into(),
            },
            BundleFile {
                path: "history/logs.jsonl".into(),
                text: "{}\n".into(),
            },
        ];
        write(&out, "incident-1", &files, SystemTime::now()).unwrap();
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap());
        let mut archive = tar::Archive::new(gz);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            seen.push((path, text));
        }
        assert_eq!(seen[0], ("incident-1/summary.md".into(), "# hi\n".into()));
        assert_eq!(seen[2].0, "incident-1/SHA256SUMS");
        assert!(
            seen[2].1.contains("  history/logs.jsonl\n"),
            "{}",
            seen[2].1
        );
        assert!(!PathBuf::from(format!("{}.partial", out.display())).exists());
    }
}
