//! A server's processes as evidence, read from /proc with procfs: the command line, the NAMES of
//! the environment variables (never their values), the open files (what `lsof -p` lists) and
//! the sockets among them matched to the process' TCP, UDP and Unix tables (what `netstat -p`
//! shows). Linux only; elsewhere every process reports why nothing was read.

use std::fmt::Write;

use serde::Serialize;

/// Most open files listed per process.
pub const MAX_FILES: usize = 4096;

/// One open file descriptor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenFile {
    /// The descriptor number.
    pub fd: i32,
    /// What it refers to: a path, `socket:[inode]`, `pipe:[inode]`, `anon_inode:[kind]`, ...
    pub target: String,
}

/// One connection of the process (a socket of its descriptors found in a protocol table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    /// `tcp`, `tcp6`, `udp`, `udp6` or `unix`.
    pub protocol: &'static str,
    /// Local address (`ip:port`), or the Unix socket's path.
    pub local: String,
    /// Remote address (`ip:port`); empty for Unix sockets.
    pub remote: String,
    /// TCP state (`ESTABLISHED`, `LISTEN`, ...), UDP or Unix state.
    pub state: String,
    /// The socket inode.
    pub inode: u64,
}

/// What was read about one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessEvidence {
    /// The pid.
    pub pid: u32,
    /// Its parent.
    pub ppid: Option<u32>,
    /// The command line, arguments in order.
    pub cmdline: Vec<String>,
    /// Names of its environment variables, sorted; values are never read into the bundle.
    pub environment_names: Vec<String>,
    /// Open descriptors (the first [`MAX_FILES`]).
    pub open_files: Vec<OpenFile>,
    /// Its connections.
    pub connections: Vec<Connection>,
    /// What could not be read (permissions, the process ended).
    pub errors: Vec<String>,
}

/// Reads the evidence of each pid (blocking).
pub fn read_all(pids: &[u32]) -> Vec<ProcessEvidence> {
    pids.iter().map(|pid| read(*pid)).collect()
}

#[cfg(target_os = "linux")]
fn read(pid: u32) -> ProcessEvidence {
    use std::collections::HashSet;

    use procfs::process::{FDTarget, Process};

    let mut evidence = ProcessEvidence {
        pid,
        ..ProcessEvidence::default()
    };
    let process = match i32::try_from(pid)
        .map_err(|e| e.to_string())
        .and_then(|p| Process::new(p).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(err) => {
            evidence.errors.push(format!("process {pid}: {err}"));
            return evidence;
        }
    };
    match process.stat() {
        Ok(stat) => evidence.ppid = u32::try_from(stat.ppid).ok(),
        Err(err) => evidence.errors.push(format!("stat: {err}")),
    }
    match process.cmdline() {
        Ok(cmdline) => evidence.cmdline = cmdline,
        Err(err) => evidence.errors.push(format!("cmdline: {err}")),
    }
    match process.environ() {
        Ok(environ) => {
            let mut names: Vec<String> = environ
                .keys()
                .map(|k| k.to_string_lossy().into_owned())
                .collect();
            names.sort();
            evidence.environment_names = names;
        }
        Err(err) => evidence.errors.push(format!("environ: {err}")),
    }
    let mut sockets = HashSet::new();
    match process.fd() {
        Ok(fds) => {
            for fd in fds.flatten().take(MAX_FILES) {
                let target = match fd.target {
                    FDTarget::Path(path) => path.display().to_string(),
                    FDTarget::Socket(inode) => {
                        sockets.insert(inode);
                        format!("socket:[{inode}]")
                    }
                    FDTarget::Net(inode) => {
                        sockets.insert(inode);
                        format!("net:[{inode}]")
                    }
                    FDTarget::Pipe(inode) => format!("pipe:[{inode}]"),
                    FDTarget::AnonInode(kind) => format!("anon_inode:{kind}"),
                    FDTarget::MemFD(name) => format!("memfd:{name}"),
                    FDTarget::Other(kind, inode) => format!("{kind}:[{inode}]"),
                    FDTarget::Unknown(kind, data) => format!("{kind}:{data}"),
                };
                evidence.open_files.push(OpenFile { fd: fd.fd, target });
            }
        }
        Err(err) => evidence.errors.push(format!("fd: {err}")),
    }
    evidence.connections = connections(&process, &sockets, &mut evidence.errors);
    evidence
}

#[cfg(target_os = "linux")]
fn connections(
    process: &procfs::process::Process,
    sockets: &std::collections::HashSet<u64>,
    errors: &mut Vec<String>,
) -> Vec<Connection> {
    let mut out = Vec::new();
    if sockets.is_empty() {
        return out;
    }
    let tcp = |e: procfs::net::TcpNetEntry| Connection {
        protocol: "",
        local: e.local_address.to_string(),
        remote: e.remote_address.to_string(),
        state: tcp_state(&e.state).to_string(),
        inode: e.inode,
    };
    let udp = |e: procfs::net::UdpNetEntry| Connection {
        protocol: "",
        local: e.local_address.to_string(),
        remote: e.remote_address.to_string(),
        state: format!("{:?}", e.state).to_ascii_uppercase(),
        inode: e.inode,
    };
    let unix = |e: procfs::net::UnixNetEntry| Connection {
        protocol: "",
        local: e.path.map(|p| p.display().to_string()).unwrap_or_default(),
        remote: String::new(),
        state: format!("{:?}", e.state).to_ascii_uppercase(),
        inode: e.inode,
    };
    let mut add = |protocol: &'static str, table: procfs::ProcResult<Vec<Connection>>| match table {
        Ok(rows) => out.extend(
            rows.into_iter()
                .filter(|c| sockets.contains(&c.inode))
                .map(|c| Connection { protocol, ..c }),
        ),
        Err(err) => errors.push(format!("net/{protocol}: {err}")),
    };
    add(
        "tcp",
        process.tcp().map(|t| t.into_iter().map(tcp).collect()),
    );
    add(
        "tcp6",
        process.tcp6().map(|t| t.into_iter().map(tcp).collect()),
    );
    add(
        "udp",
        process.udp().map(|t| t.into_iter().map(udp).collect()),
    );
    add(
        "udp6",
        process.udp6().map(|t| t.into_iter().map(udp).collect()),
    );
    add(
        "unix",
        process.unix().map(|t| t.into_iter().map(unix).collect()),
    );
    out
}

#[cfg(target_os = "linux")]
fn tcp_state(state: &procfs::net::TcpState) -> &'static str {
    use procfs::net::TcpState;
    match state {
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::FinWait1 => "FIN_WAIT1",
        TcpState::FinWait2 => "FIN_WAIT2",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
        TcpState::NewSynRecv => "NEW_SYN_RECV",
    }
}

#[cfg(not(target_os = "linux"))]
fn read(pid: u32) -> ProcessEvidence {
    ProcessEvidence {
        pid,
        errors: vec!["open files and connections are read from /proc, on Linux only".into()],
        ..ProcessEvidence::default()
    }
}

/// The evidence as text: per process its command line, environment names, then an lsof-like
/// list of descriptors and a netstat-like list of connections.
pub fn render(server: &str, processes: &[ProcessEvidence]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "server {server}: {} process(es)", processes.len());
    for p in processes {
        let _ = writeln!(
            out,
            "\npid {} (parent {}): {}",
            p.pid,
            p.ppid.map_or_else(|| "?".to_string(), |pp| pp.to_string()),
            p.cmdline.join(" ")
        );
        let _ = writeln!(
            out,
            "  environment (names only): {}",
            p.environment_names.join(" ")
        );
        let _ = writeln!(out, "  connections ({}):", p.connections.len());
        for c in &p.connections {
            let _ = writeln!(
                out,
                "    {:<5} {:<45} {:<45} {}",
                c.protocol, c.local, c.remote, c.state
            );
        }
        let _ = writeln!(out, "  open files ({}):", p.open_files.len());
        for f in &p.open_files {
            let _ = writeln!(out, "    {:>5} {}", f.fd, f.target);
        }
        for e in &p.errors {
            let _ = writeln!(out, "  not read: {e}");
        }
    }
    out
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_and_an_open_file_of_this_process_are_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evidence.txt");
        let _file = std::fs::File::create(&path).unwrap();
        let me = read(std::process::id());
        assert!(me.errors.is_empty(), "{:?}", me.errors);
        assert!(!me.cmdline.is_empty());
        assert!(me.environment_names.iter().any(|n| n == "PATH"));
        assert!(
            me.open_files
                .iter()
                .any(|f| f.target == path.display().to_string()),
            "{:?}",
            me.open_files
        );
        let local = format!("127.0.0.1:{port}");
        assert!(
            me.connections
                .iter()
                .any(|c| c.protocol == "tcp" && c.local == local && c.state == "LISTEN"),
            "{:?}",
            me.connections
        );
        let text = render("s", &[me]);
        assert!(text.contains(&local) && text.contains("LISTEN"), "{text}");
        assert!(!text.contains("PATH=/"), "values never appear: {text}");
    }

    #[test]
    fn a_missing_process_says_so() {
        let gone = read(u32::MAX - 1);
        assert_eq!(gone.errors.len(), 1, "{:?}", gone.errors);
    }
}
