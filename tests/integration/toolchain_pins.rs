//! Every Rust toolchain the repository names is at or above the crate's declared minimum
//! (`rust-version` in Cargo.toml), so an image or a CI job never pins a compiler that cannot
//! build the crate.

use crate::common::paths::{read_repo_file, repo_root};

/// `(major, minor)` of a version such as `1.95` or `1.95.0`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn declared_minimum() -> (u32, u32) {
    let manifest: toml::Table = read_repo_file("Cargo.toml")
        .parse()
        .expect("Cargo.toml parses");
    let version = manifest["package"]["rust-version"]
        .as_str()
        .expect("Cargo.toml declares package.rust-version");
    major_minor(version).expect("rust-version is MAJOR.MINOR")
}

/// Every `rust:X.Y` image tag and `toolchain X.Y` pin in the files that name one.
fn pins() -> Vec<(String, (u32, u32))> {
    let pattern = regex::Regex::new(r"(?:rust:|toolchain[ =]+)(\d+\.\d+)").expect("regex");
    let mut found = Vec::new();
    for file in [
        "deploy/Dockerfile",
        ".ci/run",
        "scripts/test.sh",
        "README.md",
    ] {
        if !repo_root().join(file).is_file() {
            continue;
        }
        for captures in pattern.captures_iter(&read_repo_file(file)) {
            let version = major_minor(&captures[1]).expect("pin is MAJOR.MINOR");
            found.push((format!("{file}: {}", &captures[0]), version));
        }
    }
    found
}

#[test]
fn every_toolchain_pin_is_at_or_above_the_declared_minimum() {
    let minimum = declared_minimum();
    let pins = pins();
    assert!(
        pins.iter()
            .any(|(what, _)| what.starts_with("deploy/Dockerfile")),
        "the Dockerfile's build stage names no rust:X.Y image: {pins:?}"
    );
    let too_old: Vec<&String> = pins
        .iter()
        .filter(|(_, version)| *version < minimum)
        .map(|(what, _)| what)
        .collect();
    assert!(
        too_old.is_empty(),
        "below rust-version {}.{}: {too_old:?}",
        minimum.0,
        minimum.1
    );
}

#[test]
fn versions_compare_by_number_not_by_text() {
    assert!(major_minor("1.100").unwrap() > major_minor("1.95").unwrap());
    assert_eq!(major_minor("1.95.0"), Some((1, 95)));
    assert_eq!(major_minor("x"), None);
}
