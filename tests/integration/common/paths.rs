//! Where things are in the repository: its root, the fixtures, the pinned MCP servers.

use std::path::PathBuf;

/// The repository root (the crate's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `mcp-servers/`: the pinned npm reference servers and the Python SDK venv live here.
pub fn servers_dir() -> PathBuf {
    repo_root().join("mcp-servers")
}

/// Entry point of a pinned npm reference server, e.g. `"everything"` ->
/// `mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js`.
///
/// Whether it is installed is [`super::tools::Tool::Node`]'s question: a test asks
/// [`super::tools::require`] before it starts one.
pub fn npm_server_js(package: &str) -> PathBuf {
    servers_dir()
        .join("node_modules/@modelcontextprotocol")
        .join(format!("server-{package}"))
        .join("dist/index.js")
}

/// `tests/fixtures/<name>`; panics if it does not exist.
pub fn fixture(name: &str) -> PathBuf {
    let path = repo_root().join("tests/fixtures").join(name);
    assert!(path.exists(), "fixture {} does not exist", path.display());
    path
}

/// The text of a file of the repository (`rel` from its root); panics naming it.
pub fn read_repo_file(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
