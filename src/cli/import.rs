//! `mcp-exporter import`: turns the MCP server list of an MCP client (Claude Desktop, Claude
//! Code, Cursor, Windsurf, Cline: `mcpServers`; VS Code: `servers`) into this exporter's
//! configuration, so a fleet already written down once needs no second copy by hand.
//!
//! Secrets stay out of the generated file: an `env` entry whose name looks secret (TOKEN, KEY,
//! PASSWORD, ...) and a credential header become `${VAR}` references, and the variables to
//! export are listed. VS Code's `${input:id}` and `${env:NAME}` placeholders become `${VAR}`
//! references too. The result is checked by the same parser `serve` uses before it is printed.
//!
//! With `--wrap` it prints the client's own file instead, each stdio server running through
//! `mcp-exporter wrap` (src/cli/import/rewrite.rs, docs/traffic.md).

mod rewrite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::config::secret::{is_secret_header, looks_secret};
use crate::settings::Config;

/// Arguments of `import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The client's JSON file (claude_desktop_config.json, .mcp.json, .vscode/mcp.json,
    /// ~/.cursor/mcp.json, ...).
    pub file: PathBuf,
    /// Check of every imported server: liveness (ping) or readiness (also tools/list).
    #[arg(long, default_value = "readiness", value_parser = ["liveness", "readiness"])]
    pub check: String,
    /// Print the client's file rewritten so that each stdio server runs through `mcp-exporter
    /// wrap --name <key> --` (real traffic, docs/traffic.md) instead of a configuration;
    /// everything else in the file is left as it is, and so is an entry already wrapped.
    #[arg(long, conflicts_with = "check")]
    pub wrap: bool,
    /// With `--wrap`: the mcp-exporter program the client starts (a name on the client's PATH
    /// or an absolute path).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "mcp-exporter",
        requires = "wrap"
    )]
    pub binary: String,
}

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{path} is not JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Where and why parsing stopped.
        source: serde_json::Error,
    },
    /// The JSON has no server list where clients keep one.
    #[error(
        "{path} has no `mcpServers` object (Claude Desktop, Claude Code, Cursor, Windsurf, Cline) or `servers` object (VS Code)"
    )]
    NoServers {
        /// The file.
        path: PathBuf,
    },
    /// One entry cannot become a server.
    #[error("{path}: server {name:?}: {problem}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The generated configuration does not pass the configuration parser (a bug of ours).
    #[error("the generated configuration is invalid (please report this): {0}")]
    Generated(String),
}

/// A converted file: the TOML text and what the operator must know about it.
#[derive(Debug)]
pub struct Imported {
    /// The configuration, checked by the parser `serve` uses.
    pub toml: String,
    /// Variables to export, placeholders replaced, entries skipped.
    pub notes: Vec<String>,
}

#[derive(Serialize)]
struct Document {
    servers: Vec<Server>,
}

#[derive(Serialize)]
struct Server {
    name: String,
    transport: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    check: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

/// Runs `import`: prints the configuration (or with `--wrap` the rewritten client file) on
/// stdout and the notes on stderr.
pub fn run(args: ImportArgs) -> u8 {
    if args.wrap {
        return run_wrap(&args);
    }
    let converted = std::fs::read_to_string(&args.file)
        .map_err(|source| ImportError::Read {
            path: args.file.clone(),
            source,
        })
        .and_then(|text| convert(&text, &args.file, &args.check));
    match converted {
        Ok(imported) => {
            print!("{}", imported.toml);
            for note in imported.notes {
                eprintln!("note: {note}");
            }
            0
        }
        Err(err) => {
            eprintln!("error: {err}");
            2
        }
    }
}

/// `import --wrap`: prints the rewritten file; says on stderr which entries were wrapped and
/// why the others were not.
fn run_wrap(args: &ImportArgs) -> u8 {
    let rewritten = std::fs::read_to_string(&args.file)
        .map_err(|source| ImportError::Read {
            path: args.file.clone(),
            source,
        })
        .and_then(|text| rewrite::rewrite(&text, &args.file, &args.binary));
    match rewritten {
        Ok(out) => {
            print!("{}", out.text);
            for key in out.wrapped {
                eprintln!(
                    "note: server {key:?} now runs through `{} wrap`",
                    args.binary
                );
            }
            for note in out.notes {
                eprintln!("note: {note}");
            }
            0
        }
        Err(err) => {
            eprintln!("error: {err}");
            2
        }
    }
}

/// Converts a client's JSON text (`path` names it in messages and in the header comment).
pub fn convert(text: &str, path: &Path, check: &str) -> Result<Imported, ImportError> {
    let json: Value = serde_json::from_str(text).map_err(|source| ImportError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let entries = json
        .get("mcpServers")
        .or_else(|| json.get("servers"))
        .and_then(Value::as_object)
        .ok_or_else(|| ImportError::NoServers {
            path: path.to_path_buf(),
        })?;
    let mut notes = Vec::new();
    let mut servers: Vec<Server> = Vec::new();
    for (key, entry) in entries {
        let entry_error = |problem: String| ImportError::Entry {
            path: path.to_path_buf(),
            name: key.clone(),
            problem,
        };
        if entry.get("disabled").and_then(Value::as_bool) == Some(true) {
            notes.push(format!("server {key:?} is disabled in the client; skipped"));
            continue;
        }
        if let Some(url) = entry.get("url").and_then(Value::as_str)
            && url.contains("${")
        {
            return Err(entry_error(format!(
                "`url` {url:?} uses a placeholder; write the URL out (the exporter expands variables in env and headers only)"
            )));
        }
        let name = unique_name(&sanitize_name(key), &servers);
        if &name != key {
            notes.push(format!(
                "server {key:?} is named {name:?} (names are [A-Za-z0-9._-], up to 64)"
            ));
        }
        let mut server = Server {
            transport: transport_of(entry).map_err(&entry_error)?,
            name,
            command: string_field(entry, "command"),
            args: string_list(entry, "args").map_err(&entry_error)?,
            cwd: string_field(entry, "cwd"),
            url: string_field(entry, "url"),
            check: check.to_string(),
            env: BTreeMap::new(),
            headers: BTreeMap::new(),
        };
        for (var, value) in string_map(entry, "env").map_err(&entry_error)? {
            let value = if looks_secret(&var) && !value.contains("${") {
                notes.push(format!(
                    "server {:?}: env {var} now reads ${{{var}}}; export {var} before `serve`",
                    server.name
                ));
                format!("${{{var}}}")
            } else {
                placeholders(&value, &server.name, &mut notes)
            };
            server.env.insert(var, value);
        }
        for (header, value) in string_map(entry, "headers").map_err(&entry_error)? {
            let value = if is_secret_header(&header) && !value.contains("${") {
                let var = format!("{}_{}", env_name(&server.name), env_name(&header));
                notes.push(format!(
                    "server {:?}: header {header} now reads ${{{var}}}; export {var} before `serve`",
                    server.name
                ));
                match value.split_once(' ') {
                    Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => {
                        format!("{scheme} ${{{var}}}")
                    }
                    _ => format!("${{{var}}}"),
                }
            } else {
                placeholders(&value, &server.name, &mut notes)
            };
            server.headers.insert(header, value);
        }
        server.args = server
            .args
            .iter()
            .map(|a| placeholders(a, &server.name, &mut notes))
            .collect();
        servers.push(server);
    }
    let body = toml::to_string(&Document { servers })
        .map_err(|e| ImportError::Generated(e.to_string()))?;
    let toml = format!(
        "# Imported from {} by `mcp-exporter import`; review it, then run\n# `mcp-exporter validate` on it. [exporter] defaults apply (listen 127.0.0.1:8931,\n# interval 15s, timeout 10s).\n\n{body}",
        path.display()
    );
    Config::from_toml(&toml, Path::new("imported.toml"))
        .map_err(|e| ImportError::Generated(e.to_string()))?;
    Ok(Imported { toml, notes })
}

/// The transport: the entry's `type` when it has one, else `command` means stdio and a `url`
/// ending in `/sse` the legacy SSE transport (Claude Desktop's remote entries have no type).
fn transport_of(entry: &Value) -> Result<&'static str, String> {
    let declared = entry
        .get("type")
        .or_else(|| entry.get("transport"))
        .and_then(Value::as_str);
    match declared {
        Some("stdio") => Ok("stdio"),
        Some("http" | "streamable-http" | "streamableHttp" | "streamable_http") => Ok("http"),
        Some("sse") => Ok("sse"),
        Some(other) => Err(format!(
            "unknown type {other:?}; expected stdio, http (streamable-http) or sse"
        )),
        None if entry.get("command").is_some() => Ok("stdio"),
        None => match entry.get("url").and_then(Value::as_str) {
            Some(url) if url.trim_end_matches('/').ends_with("/sse") => Ok("sse"),
            Some(_) => Ok("http"),
            None => Err("neither `command` nor `url`".to_string()),
        },
    }
}

fn string_field(entry: &Value, key: &str) -> Option<String> {
    entry.get(key).and_then(Value::as_str).map(str::to_string)
}

fn string_list(entry: &Value, key: &str) -> Result<Vec<String>, String> {
    match entry.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(format!("`{key}` holds {other}, not a string")),
            })
            .collect(),
        Some(other) => Err(format!("`{key}` is {other}, not a list")),
    }
}

fn string_map(entry: &Value, key: &str) -> Result<Vec<(String, String)>, String> {
    match entry.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                other => Err(format!("`{key}.{k}` holds {other}, not a string")),
            })
            .collect(),
        Some(other) => Err(format!("`{key}` is {other}, not an object")),
    }
}

/// VS Code's `${env:NAME}` and `${input:id}` (and any other `${kind:...}` such as
/// `${workspaceFolder}`) become `${NAME}` references to the exporter's environment.
fn placeholders(value: &str, server: &str, notes: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + len];
        out.push_str(&rest[..start]);
        let var = match inner.split_once(':') {
            Some(("env", name)) => name.to_string(),
            // Claude Code's `${VAR:-default}`: the exporter has no defaults, so the variable
            // must be set.
            Some((name, default)) if default.starts_with('-') => {
                notes.push(format!(
                    "server {server:?}: ${{{inner}}} loses its default; set {name} before `serve`"
                ));
                name.to_string()
            }
            Some((_, id)) => env_name(id),
            // `${HOME}` is already an environment reference; `${workspaceFolder}` is not.
            None if inner
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
            {
                inner.to_string()
            }
            None => env_name(inner),
        };
        if var != inner {
            notes.push(format!(
                "server {server:?}: placeholder ${{{inner}}} now reads ${{{var}}}; export {var} before `serve`"
            ));
        }
        out.push_str(&format!("${{{var}}}"));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// An environment variable name from free text: `github-pat` -> `GITHUB_PAT`,
/// `workspaceFolder` -> `WORKSPACE_FOLDER`.
fn env_name(text: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    out
}

fn sanitize_name(key: &str) -> String {
    let name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    if name.is_empty() {
        "server".to_string()
    } else {
        name
    }
}

fn unique_name(base: &str, taken: &[Server]) -> String {
    let mut name = base.to_string();
    let mut n = 2;
    while taken.iter().any(|s| s.name == name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(json: &str) -> Imported {
        convert(json, Path::new("client.json"), "readiness").unwrap()
    }

    #[test]
    fn claude_desktop_entries_become_stdio_http_and_sse_servers() {
        let out = import(
            r#"{"mcpServers": {
                "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
                "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                           "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literal", "LOG_LEVEL": "info"}},
                "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer abc123"}},
                "old": {"url": "http://127.0.0.1:3001/sse"},
                "off": {"command": "x", "disabled": true}
            }}"#,
        );
        let config = Config::from_toml(&out.toml, Path::new("t.toml")).unwrap();
        let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        // In key order (serde_json's map is sorted).
        assert_eq!(names, ["filesystem", "github", "old", "remote"]);
        assert!(
            out.toml
                .contains("GITHUB_PERSONAL_ACCESS_TOKEN = \"${GITHUB_PERSONAL_ACCESS_TOKEN}\"")
        );
        assert!(out.toml.contains("LOG_LEVEL = \"info\""));
        assert!(
            !out.toml.contains("ghp_literal") && !out.toml.contains("abc123"),
            "{}",
            out.toml
        );
        assert!(
            out.toml
                .contains("Authorization = \"Bearer ${REMOTE_AUTHORIZATION}\"")
        );
        assert!(out.toml.contains("transport = \"sse\""));
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains("export GITHUB_PERSONAL_ACCESS_TOKEN"))
        );
        assert!(out.notes.iter().any(|n| n.contains("\"off\" is disabled")));
        assert!(config.literal_secret_warnings().is_empty());
    }

    #[test]
    fn vs_code_types_and_placeholders_are_translated() {
        let out = import(
            r#"{"inputs": [{"type": "promptString", "id": "github-pat", "password": true}],
                "servers": {
                  "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/",
                             "headers": {"Authorization": "Bearer ${input:github-pat}"}},
                  "my server": {"type": "stdio", "command": "node", "args": ["${workspaceFolder}/server.js"],
                                "env": {"HOME_DIR": "${env:HOME}"}}
                }}"#,
        );
        assert!(
            out.toml
                .contains("Authorization = \"Bearer ${GITHUB_PAT}\""),
            "{}",
            out.toml
        );
        assert!(
            out.toml.contains("\"${WORKSPACE_FOLDER}/server.js\""),
            "{}",
            out.toml
        );
        assert!(out.toml.contains("HOME_DIR = \"${HOME}\""), "{}", out.toml);
        assert!(out.toml.contains("name = \"my-server\""), "{}", out.toml);
        assert!(out.notes.iter().any(|n| n.contains("export GITHUB_PAT")));
    }

    #[test]
    fn claude_code_defaults_are_dropped_with_a_note() {
        let out = import(
            r#"{"mcpServers": {"api": {"type": "http", "url": "https://api.example.com/mcp",
                "headers": {"X-Team": "${TEAM:-core}"}}}}"#,
        );
        assert!(out.toml.contains("X-Team = \"${TEAM}\""), "{}", out.toml);
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains("loses its default; set TEAM"))
        );
    }

    #[test]
    fn problems_name_the_file_and_the_entry() {
        let err = |json: &str| {
            convert(json, Path::new("c.json"), "liveness")
                .unwrap_err()
                .to_string()
        };
        assert!(err("{").starts_with("c.json is not JSON"));
        assert!(err(r#"{"other": {}}"#).contains("no `mcpServers` object"));
        assert_eq!(
            err(r#"{"mcpServers": {"x": {"type": "websocket", "url": "ws://h"}}}"#),
            "c.json: server \"x\": unknown type \"websocket\"; expected stdio, http (streamable-http) or sse"
        );
        assert_eq!(
            err(r#"{"mcpServers": {"x": {}}}"#),
            "c.json: server \"x\": neither `command` nor `url`"
        );
        assert!(
            err(r#"{"mcpServers": {"x": {"command": "a", "args": "b"}}}"#)
                .contains("`args` is \"b\", not a list")
        );
        assert!(
            err(r#"{"mcpServers": {"x": {"url": "${BASE}/mcp"}}}"#)
                .contains("`url` \"${BASE}/mcp\" uses a placeholder")
        );
    }

    #[test]
    fn names_are_sanitized_and_kept_unique() {
        let out = import(r#"{"mcpServers": {"a b": {"command": "x"}, "a-b": {"command": "y"}}}"#);
        assert!(
            out.toml.contains("name = \"a-b\"") && out.toml.contains("name = \"a-b-2\""),
            "{}",
            out.toml
        );
        assert_eq!(env_name("workspaceFolder"), "WORKSPACE_FOLDER");
        assert_eq!(env_name("github-pat"), "GITHUB_PAT");
    }
}
