//! Joins a wrapper to a configured stdio server by its command line, so real traffic and the
//! probes of the same server share the `server` label.

use std::path::Path;

use crate::mcp::TransportSpec;
use crate::probe::ServerConfig;

/// A configured stdio server, as far as joining cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioServer {
    /// The configured `name` (the `server` label).
    pub name: String,
    /// `command`.
    pub command: String,
    /// `args`.
    pub args: Vec<String>,
}

/// The stdio servers of a configuration, in configuration order.
pub fn stdio_servers(servers: &[ServerConfig]) -> Vec<StdioServer> {
    servers
        .iter()
        .filter_map(|server| match &server.transport {
            TransportSpec::Stdio { command, args, .. } => Some(StdioServer {
                name: server.name.clone(),
                command: command.clone(),
                args: args.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// What joining found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join<'a> {
    /// Exactly one server has this command line.
    Server(&'a str),
    /// Several servers have it equally well (named in configuration order); none is chosen.
    Ambiguous(Vec<&'a str>),
    /// No server has it.
    None,
}

impl<'a> Join<'a> {
    /// The joined server's name, if exactly one matched.
    pub fn server(&self) -> Option<&'a str> {
        match self {
            Join::Server(name) => Some(name),
            _ => None,
        }
    }
}

/// Finds the configured stdio server started by `command` with `args`. The arguments must be
/// equal. The command must be equal, or else, when one side is a bare name looked up in
/// `PATH` (`npx`) and the other a path (`/usr/bin/npx`), have the same file name; an equal
/// command wins over a same-file-name one. Several equally good matches join nothing.
pub fn join<'a>(command: &str, args: &[String], servers: &'a [StdioServer]) -> Join<'a> {
    let same_args: Vec<&StdioServer> = servers.iter().filter(|s| s.args == args).collect();
    let exact: Vec<&str> = same_args
        .iter()
        .filter(|s| s.command == command)
        .map(|s| s.name.as_str())
        .collect();
    let chosen = if exact.is_empty() {
        same_args
            .iter()
            .filter(|s| same_program(&s.command, command))
            .map(|s| s.name.as_str())
            .collect()
    } else {
        exact
    };
    match chosen.as_slice() {
        [] => Join::None,
        [one] => Join::Server(one),
        _ => Join::Ambiguous(chosen),
    }
}

/// One is a bare program name, the other a path to a file of that name.
fn same_program(a: &str, b: &str) -> bool {
    let bare = |c: &str| !c.contains('/');
    if bare(a) == bare(b) {
        return false;
    }
    let file_name = |c: &str| Path::new(c).file_name().map(|n| n.to_os_string());
    file_name(a).is_some() && file_name(a) == file_name(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, command: &str, args: &[&str]) -> StdioServer {
        StdioServer {
            name: name.into(),
            command: command.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_same_command_line_joins() {
        let servers = [
            server(
                "memory",
                "npx",
                &["-y", "@modelcontextprotocol/server-memory"],
            ),
            server(
                "fs",
                "npx",
                &["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
            ),
        ];
        let j = join(
            "npx",
            &args(&["-y", "@modelcontextprotocol/server-memory"]),
            &servers,
        );
        assert_eq!(j, Join::Server("memory"));
        assert_eq!(j.server(), Some("memory"));
    }

    #[test]
    fn different_arguments_do_not_join() {
        let servers = [server("fs", "npx", &["-y", "pkg", "/tmp"])];
        assert_eq!(
            join("npx", &args(&["-y", "pkg", "/home"]), &servers),
            Join::None
        );
        assert_eq!(join("npx", &args(&["-y", "pkg"]), &servers), Join::None);
    }

    #[test]
    fn a_bare_name_joins_a_path_of_that_name() {
        let servers = [server("memory", "npx", &["x"])];
        assert_eq!(
            join("/usr/local/bin/npx", &args(&["x"]), &servers),
            Join::Server("memory")
        );
        let servers = [server("memory", "/usr/bin/npx", &["x"])];
        assert_eq!(join("npx", &args(&["x"]), &servers), Join::Server("memory"));
        // Two different paths are two different programs.
        assert_eq!(join("/opt/npx", &args(&["x"]), &servers), Join::None);
        assert_eq!(join("npm", &args(&["x"]), &servers), Join::None);
    }

    #[test]
    fn an_exact_command_wins_over_a_file_name_match() {
        let servers = [
            server("system", "/usr/bin/node", &["a.js"]),
            server("plain", "node", &["a.js"]),
        ];
        assert_eq!(
            join("node", &args(&["a.js"]), &servers),
            Join::Server("plain")
        );
        assert_eq!(
            join("/usr/bin/node", &args(&["a.js"]), &servers),
            Join::Server("system")
        );
    }

    #[test]
    fn equal_candidates_join_nothing() {
        let servers = [
            server("a", "node", &["s.js"]),
            server("b", "node", &["s.js"]),
        ];
        let j = join("node", &args(&["s.js"]), &servers);
        assert_eq!(j, Join::Ambiguous(vec!["a", "b"]));
        assert_eq!(j.server(), None);
    }
}
