//! A throwaway PostgreSQL server per test (for dependency checks and server-postgres): initdb
//! in a temp dir, `postgres` on 127.0.0.1 and a fresh port, stop and start, password roles.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::processes::{
    ChildGuard, SERVER_START_TIMEOUT, kill_group, kill_pid, run_bounded, spawn_guarded,
    spawn_listening, wait_for_port, wait_timeout,
};
use super::tools::{Tool, postgres_program, require};
use super::wait::eventually;

/// A PostgreSQL server of its own, on 127.0.0.1 and a fresh port, with trust authentication for
/// user `postgres`. Killed (process group) and its data directory removed on drop.
pub struct Postgres {
    guard: ChildGuard,
    port: u16,
    dir: tempfile::TempDir,
    postgres: PathBuf,
    data: PathBuf,
}

/// Starts a throwaway PostgreSQL server (initdb in a temp dir, then `postgres` on 127.0.0.1 and
/// a fresh port, fsync off) and waits (bounded) until it accepts queries.
///
/// PostgreSQL goes through [`require`]: `None` (with a printed skip line) when it is missing
/// and tools are not required; the test then returns.
pub fn spawn_postgres() -> Option<Postgres> {
    spawn_postgres_initdb(&[])
}

/// [`spawn_postgres`] with data checksums on (`initdb --data-checksums`), so the server reports
/// `pg_stat_database.checksum_failures`.
pub fn spawn_postgres_with_checksums() -> Option<Postgres> {
    spawn_postgres_initdb(&["--data-checksums"])
}

fn spawn_postgres_initdb(initdb_args: &[&str]) -> Option<Postgres> {
    let postgres = require(Tool::Postgres)?;
    let initdb = program("initdb");
    let dir = tempfile::Builder::new()
        .prefix("mcp-exporter-pg-")
        .tempdir()
        .expect("create a temp dir for PostgreSQL");
    if running_as_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status()
            .expect("run chown");
        assert!(
            status.success(),
            "chown postgres {}: {status}",
            dir.path().display()
        );
    }
    let data = dir.path().join("data");
    let init = run_bounded(
        as_postgres_user(&initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(initdb_args)
            .current_dir(dir.path()),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("initdb: {e}"));
    assert!(
        init.status.success(),
        "initdb failed: {}\n{}{}",
        init.status,
        String::from_utf8_lossy(&init.stdout),
        String::from_utf8_lossy(&init.stderr)
    );
    let (guard, port) = spawn_listening("postgres", |port| {
        server_command(&postgres, &data, dir.path(), port)
    });
    let server = Postgres {
        guard,
        port,
        dir,
        postgres,
        data,
    };
    server.wait_ready();
    Some(server)
}

impl Postgres {
    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The data directory (`initdb -D`), owned by the server while it runs.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Runs SQL with `psql` and returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let output = run_bounded(
            Command::new(program("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-d", "postgres"])
                .args(["-c", sql])
                .env("PGCONNECT_TIMEOUT", "5"),
            Duration::from_secs(30),
        )?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(format!(
                "psql {sql:?}: {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Waits (bounded) until the server accepts queries.
    fn wait_ready(&self) {
        let pg_isready = program("pg_isready");
        let port = self.port.to_string();
        eventually(Duration::from_secs(20), Duration::from_millis(50), || {
            let out = run_bounded(
                Command::new(&pg_isready).args(["-h", "127.0.0.1", "-p", &port, "-t", "2"]),
                Duration::from_secs(5),
            )?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "pg_isready: {}; server output:\n{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    self.guard.output()
                ))
            }
        });
    }

    /// Stops the server (fast shutdown, SIGINT) and waits until it has exited; the port is then
    /// closed (connections are refused). [`Postgres::start`] brings it back on the same port.
    pub fn stop(&mut self) {
        // The guard's child may be `runuser`; signal the postmaster itself (first line of
        // postmaster.pid): SIGINT is PostgreSQL's fast shutdown.
        let postmaster = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok());
        kill_pid(postmaster.unwrap_or(self.guard.pid()), libc::SIGINT);
        if wait_timeout(self.guard.child_mut(), Duration::from_secs(30)).is_none() {
            kill_group(self.guard.pid(), libc::SIGKILL);
            let _ = wait_timeout(self.guard.child_mut(), Duration::from_secs(5));
        }
    }

    /// Starts the server again on the same port and data directory after [`Postgres::stop`],
    /// and waits until it accepts queries.
    pub fn start(&mut self) {
        let mut guard = spawn_guarded(
            "postgres (restarted)",
            &mut server_command(&self.postgres, &self.data, self.dir.path(), self.port),
        );
        if let Err(err) = wait_for_port(&mut guard, self.port, SERVER_START_TIMEOUT) {
            panic!(
                "postgres restart on port {}: {err}\n{}",
                self.port,
                guard.output()
            );
        }
        self.guard = guard;
        self.wait_ready();
    }

    /// Creates a login role with a password that must authenticate with scram-sha-256 over TCP
    /// (a `pg_hba.conf` line ahead of the trust lines, then a reload). Other users keep trust.
    pub fn add_password_role(&self, role: &str, password: &str) {
        self.psql(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            .unwrap_or_else(|e| panic!("create role {role}: {e}"));
        let hba = self.data.join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        // Rewriting in place keeps the file's owner (postgres) and mode.
        std::fs::write(
            &hba,
            format!("host all {role} 127.0.0.1/32 scram-sha-256\n{old}"),
        )
        .expect("write pg_hba.conf");
        let reloaded = self
            .psql("SELECT pg_reload_conf()")
            .unwrap_or_else(|e| panic!("reload: {e}"));
        assert_eq!(reloaded, "t", "pg_reload_conf");
    }
}

/// A PostgreSQL program [`require`] has already found.
fn program(name: &str) -> PathBuf {
    postgres_program(name).unwrap_or_else(|why| panic!("{why}"))
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command that runs `program` as the `postgres` user when the tests run as root (initdb and
/// postgres refuse to run as root), else as the current user.
fn as_postgres_user(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// The `postgres` command line of [`spawn_postgres`] and [`Postgres::start`].
fn server_command(postgres: &Path, data: &Path, dir: &Path, port: u16) -> Command {
    let mut cmd = as_postgres_user(postgres);
    cmd.arg("-D")
        .arg(data)
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "full_page_writes=off", "-c", "synchronous_commit=off"])
        .current_dir(dir);
    cmd
}

#[cfg(test)]
mod tests {
    use super::super::net::port_accepts;
    use super::*;

    #[test]
    fn postgres_starts_and_answers_queries() {
        let Some(pg) = spawn_postgres() else {
            return;
        };
        assert_eq!(pg.psql("select 40 + 2").as_deref(), Ok("42"));
        assert!(
            pg.url("postgres")
                .starts_with("postgres://postgres@127.0.0.1:")
        );
        let port = pg.port();
        drop(pg);
        eventually(Duration::from_secs(5), Duration::from_millis(20), || {
            if port_accepts(port, Duration::from_millis(200)) {
                Err(format!("127.0.0.1:{port} still accepts connections"))
            } else {
                Ok(())
            }
        });
    }
}
