//! Per-server process settings: how to find a server's process, resource budgets, the restart
//! policy of stdio children and the opt-in remediation command of servers we do not spawn.
//!
//! A server entry (`src/probe/config.rs`) parses these keys into [`RawProcessKeys`] and calls
//! [`validate`], which checks them and returns a [`ProcessConfig`] or a [`KeyError`] whose key is
//! relative to the server's table (`budgets.cpu_cores`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{KeyError, SourceText};

/// Default CPU budget of the resource score: one core.
pub const DEFAULT_CPU_CORES: f64 = 1.0;
/// Default memory budget of the resource score: 2 GB (resident).
pub const DEFAULT_MEMORY_BYTES: u64 = 2_000_000_000;
/// Default fd budget of the resource score: 80% of the soft RLIMIT_NOFILE.
pub const DEFAULT_FD_FRACTION: f64 = 0.8;
/// Default first restart delay after a stdio child died.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Default longest restart delay.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Default number of deaths within the window that make a server crash-looping.
pub const DEFAULT_CRASH_LOOP_FAILURES: u32 = 5;
/// Default window in which deaths are counted.
pub const DEFAULT_CRASH_LOOP_WINDOW: Duration = Duration::from_secs(600);
/// Default time a server must be down before the remediation command runs.
pub const DEFAULT_REMEDIATION_AFTER: Duration = Duration::from_secs(120);
/// Default least time between two remediation runs.
pub const DEFAULT_REMEDIATION_BACKOFF: Duration = Duration::from_secs(600);
/// Default deadline of one remediation command.
pub const DEFAULT_REMEDIATION_TIMEOUT: Duration = Duration::from_secs(60);

/// How the process of a server that the exporter does not spawn is found.
#[derive(Debug, Clone)]
pub enum Locator {
    /// The stdio child the exporter spawned, with all its descendants.
    Child,
    /// A file holding the main PID (e.g. written by the server or its init system).
    PidFile(PathBuf),
    /// A systemd unit: its MainPID, or every process of its cgroup.
    SystemdUnit(String),
    /// Every process whose command line (arguments joined by spaces) matches the regex.
    Match(regex::Regex),
}

impl PartialEq for Locator {
    /// Two regex locators are equal when their patterns are (a reload keeps the server running).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Locator::Child, Locator::Child) => true,
            (Locator::PidFile(a), Locator::PidFile(b)) => a == b,
            (Locator::SystemdUnit(a), Locator::SystemdUnit(b)) => a == b,
            (Locator::Match(a), Locator::Match(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// Budgets of `mcp_resource_usage_score`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budgets {
    /// CPU, in cores (1.0 = one core fully busy).
    pub cpu_cores: f64,
    /// Resident memory of the whole tree, bytes.
    pub memory_bytes: u64,
    /// Fraction of the main process' soft fd limit.
    pub fd_fraction: f64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            cpu_cores: DEFAULT_CPU_CORES,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            fd_fraction: DEFAULT_FD_FRACTION,
        }
    }
}

/// Restart policy of a stdio child.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    /// Delay before the first restart after a death.
    pub backoff_initial: Duration,
    /// Upper bound of the delay (it doubles with each death in the window).
    pub backoff_max: Duration,
    /// Deaths within `crash_loop_window` that make the server crash-looping.
    pub crash_loop_failures: u32,
    /// Window in which deaths are counted.
    pub crash_loop_window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            crash_loop_failures: DEFAULT_CRASH_LOOP_FAILURES,
            crash_loop_window: DEFAULT_CRASH_LOOP_WINDOW,
        }
    }
}

/// Opt-in command run when a server we do not spawn has been down for a while.
#[derive(Debug, Clone, PartialEq)]
pub struct Remediation {
    /// Program and arguments; `{name}` in any of them becomes the server name.
    pub command: Vec<String>,
    /// How long the server must have been down.
    pub after: Duration,
    /// Least time between two runs.
    pub backoff: Duration,
    /// Deadline of one run; the command is killed after it.
    pub timeout: Duration,
}

/// Everything about a server's process, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    /// How the process is found; `None` for http/sse servers without a locator (not sampled).
    pub locator: Option<Locator>,
    /// Budgets of the resource score.
    pub budgets: Budgets,
    /// Restart policy (stdio servers).
    pub restart: RestartPolicy,
    /// Remediation command (servers we do not spawn).
    pub remediation: Option<Remediation>,
}

/// The raw per-server keys of this module, as serde parses them inside `[[servers]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcessKeys {
    /// `pid_file`
    pub pid_file: Option<Spanned<PathBuf>>,
    /// `systemd_unit`
    pub systemd_unit: Option<Spanned<String>>,
    /// `process_match`
    pub process_match: Option<Spanned<String>>,
    /// `budgets`
    pub budgets: Option<Spanned<RawBudgets>>,
    /// `restart`
    pub restart: Option<Spanned<RawRestart>>,
    /// `remediation`
    pub remediation: Option<Spanned<RawRemediation>>,
}

/// `budgets = { cpu_cores = 1.0, memory_bytes = 2000000000, fd_fraction = 0.8 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudgets {
    cpu_cores: Option<f64>,
    memory_bytes: Option<u64>,
    fd_fraction: Option<f64>,
}

/// `restart = { backoff_initial = "1s", backoff_max = "5m", crash_loop_failures = 5, crash_loop_window = "10m" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestart {
    #[serde(default, with = "crate::config::duration::opt_duration")]
    backoff_initial: Option<Duration>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    backoff_max: Option<Duration>,
    crash_loop_failures: Option<u32>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    crash_loop_window: Option<Duration>,
}

/// `remediation = { command = ["systemctl", "restart", "mcp-{name}"], after = "2m", backoff = "10m", timeout = "60s" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemediation {
    command: Vec<String>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    after: Option<Duration>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    backoff: Option<Duration>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    timeout: Option<Duration>,
}

/// Validates the process keys of one server; `stdio` says whether the exporter spawns it.
pub fn validate(
    raw: RawProcessKeys,
    stdio: bool,
    src: &SourceText<'_>,
) -> Result<ProcessConfig, KeyError> {
    let mut locators = Vec::new();
    if let Some(p) = raw.pid_file {
        let offset = p.span().start;
        locators.push(("pid_file", offset, Locator::PidFile(p.into_inner())));
    }
    if let Some(u) = raw.systemd_unit {
        let offset = u.span().start;
        let unit = u.into_inner();
        if unit.trim().is_empty() || unit.starts_with('-') || unit.contains(char::is_whitespace) {
            return Err(src.key_error(
                offset,
                "systemd_unit",
                format!("{unit:?} is not a unit name; expected e.g. \"mcp-github.service\""),
            ));
        }
        locators.push(("systemd_unit", offset, Locator::SystemdUnit(unit)));
    }
    if let Some(m) = raw.process_match {
        let offset = m.span().start;
        let re = regex::Regex::new(m.get_ref()).map_err(|e| {
            src.key_error(
                offset,
                "process_match",
                format!("not a valid regular expression: {e}"),
            )
        })?;
        locators.push(("process_match", offset, Locator::Match(re)));
    }
    if locators.len() > 1 {
        let (key, offset, _) = &locators[1];
        return Err(src.key_error(
            *offset,
            *key,
            "set only one of `pid_file`, `systemd_unit` and `process_match`",
        ));
    }
    let locator = match locators.pop() {
        Some((key, offset, _)) if stdio => {
            return Err(src.key_error(
                offset,
                key,
                "a stdio server's process is the child the exporter spawns (with its descendants); this key is for http and sse servers",
            ));
        }
        Some((_, _, locator)) => Some(locator),
        None if stdio => Some(Locator::Child),
        None => None,
    };
    let budgets = match raw.budgets {
        None => Budgets::default(),
        Some(b) => {
            let offset = b.span().start;
            let b = b.into_inner();
            let budgets = Budgets {
                cpu_cores: b.cpu_cores.unwrap_or(DEFAULT_CPU_CORES),
                memory_bytes: b.memory_bytes.unwrap_or(DEFAULT_MEMORY_BYTES),
                fd_fraction: b.fd_fraction.unwrap_or(DEFAULT_FD_FRACTION),
            };
            if !(budgets.cpu_cores.is_finite() && budgets.cpu_cores > 0.0) {
                return Err(src.key_error(
                    offset,
                    "budgets.cpu_cores",
                    "must be a number of cores greater than 0, e.g. 1.0",
                ));
            }
            if budgets.memory_bytes == 0 {
                return Err(src.key_error(
                    offset,
                    "budgets.memory_bytes",
                    "must be greater than 0, e.g. 2000000000",
                ));
            }
            if !(budgets.fd_fraction > 0.0 && budgets.fd_fraction <= 1.0) {
                return Err(src.key_error(
                    offset,
                    "budgets.fd_fraction",
                    "must be a fraction of the fd limit in (0, 1], e.g. 0.8",
                ));
            }
            budgets
        }
    };
    let restart = match raw.restart {
        None => RestartPolicy::default(),
        Some(r) => {
            let offset = r.span().start;
            if !stdio {
                return Err(src.key_error(
                    offset,
                    "restart",
                    "only stdio servers are restarted by the exporter; use `remediation` for others",
                ));
            }
            let r = r.into_inner();
            let policy = RestartPolicy {
                backoff_initial: r.backoff_initial.unwrap_or(DEFAULT_BACKOFF_INITIAL),
                backoff_max: r.backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX),
                crash_loop_failures: r.crash_loop_failures.unwrap_or(DEFAULT_CRASH_LOOP_FAILURES),
                crash_loop_window: r.crash_loop_window.unwrap_or(DEFAULT_CRASH_LOOP_WINDOW),
            };
            if policy.backoff_max < policy.backoff_initial {
                return Err(src.key_error(
                    offset,
                    "restart.backoff_max",
                    "must not be shorter than `backoff_initial`",
                ));
            }
            if policy.crash_loop_failures == 0 {
                return Err(src.key_error(
                    offset,
                    "restart.crash_loop_failures",
                    "must be at least 1",
                ));
            }
            policy
        }
    };
    let remediation = match raw.remediation {
        None => None,
        Some(r) => {
            let offset = r.span().start;
            if stdio {
                return Err(src.key_error(
                    offset,
                    "remediation",
                    "a stdio server is restarted by the exporter itself (see `restart`); remediation is for http and sse servers",
                ));
            }
            let r = r.into_inner();
            if r.command.first().is_none_or(|c| c.trim().is_empty()) {
                return Err(src.key_error(
                    offset,
                    "remediation.command",
                    "must name a program, e.g. [\"systemctl\", \"restart\", \"mcp-{name}\"]",
                ));
            }
            Some(Remediation {
                command: r.command,
                after: r.after.unwrap_or(DEFAULT_REMEDIATION_AFTER),
                backoff: r.backoff.unwrap_or(DEFAULT_REMEDIATION_BACKOFF),
                timeout: r.timeout.unwrap_or(DEFAULT_REMEDIATION_TIMEOUT),
            })
        }
    };
    Ok(ProcessConfig {
        locator,
        budgets,
        restart,
        remediation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validates the process keys written in `text` (the keys of one server table).
    fn check(text: &str, stdio: bool) -> Result<ProcessConfig, KeyError> {
        let raw: RawProcessKeys = toml::from_str(text).expect("process keys");
        validate(raw, stdio, &SourceText::new(text))
    }

    #[test]
    fn stdio_servers_are_children_with_defaults() {
        let p = check("", true).expect("stdio");
        assert!(matches!(p.locator, Some(Locator::Child)));
        assert_eq!(p.budgets, Budgets::default());
        assert_eq!(p.restart, RestartPolicy::default());
        assert!(p.remediation.is_none());
        let p = check("", false).expect("http");
        assert!(p.locator.is_none());
    }

    #[test]
    fn every_key_parses() {
        let a = check(
            "budgets = { cpu_cores = 2.0, memory_bytes = 1000, fd_fraction = 0.5 }\nrestart = { backoff_initial = \"200ms\", backoff_max = \"10s\", crash_loop_failures = 3, crash_loop_window = \"1m\" }\n",
            true,
        )
        .expect("stdio keys");
        assert_eq!(a.budgets.cpu_cores, 2.0);
        assert_eq!(a.restart.backoff_initial, Duration::from_millis(200));
        assert_eq!(a.restart.crash_loop_failures, 3);
        let b = check(
            "process_match = \"node .*server-b\"\nremediation = { command = [\"systemctl\", \"restart\", \"mcp-{name}\"], after = \"30s\", backoff = \"5m\" }\n",
            false,
        )
        .expect("http keys");
        assert!(matches!(&b.locator, Some(Locator::Match(re)) if re.is_match("node /x/server-b")));
        let r = b.remediation.as_ref().expect("remediation");
        assert_eq!(r.after, Duration::from_secs(30));
        assert_eq!(r.timeout, DEFAULT_REMEDIATION_TIMEOUT);
    }

    #[test]
    fn mistakes_name_the_key_relative_to_the_server_and_its_line() {
        let cases = [
            (
                "pid_file = \"/run/a.pid\"\n",
                true,
                "1: `pid_file`: a stdio server's process",
            ),
            (
                "\nprocess_match = \"(\"\n",
                false,
                "2: `process_match`: not a valid regular expression",
            ),
            (
                "pid_file = \"/p\"\nsystemd_unit = \"u\"\n",
                false,
                "2: `systemd_unit`: set only one of",
            ),
            (
                "systemd_unit = \"-x\"\n",
                false,
                "1: `systemd_unit`: \"-x\" is not a unit name",
            ),
            (
                "budgets = { fd_fraction = 1.5 }\n",
                true,
                "1: `budgets.fd_fraction`: must be a fraction",
            ),
            (
                "budgets = { cpu_cores = 0.0 }\n",
                true,
                "1: `budgets.cpu_cores`: must be a number of cores",
            ),
            (
                "budgets = { memory_bytes = 0 }\n",
                true,
                "1: `budgets.memory_bytes`: must be greater than 0",
            ),
            (
                "remediation = { command = [\"true\"] }\n",
                true,
                "1: `remediation`: a stdio server is restarted",
            ),
            (
                "remediation = { command = [\" \"] }\n",
                false,
                "1: `remediation.command`: must name a program",
            ),
            (
                "restart = { crash_loop_failures = 2 }\n",
                false,
                "1: `restart`: only stdio servers",
            ),
            (
                "restart = { crash_loop_failures = 0 }\n",
                true,
                "1: `restart.crash_loop_failures`: must be at least 1",
            ),
            (
                "restart = { backoff_initial = \"10s\", backoff_max = \"1s\" }\n",
                true,
                "1: `restart.backoff_max`: must not be shorter",
            ),
        ];
        for (text, stdio, want) in cases {
            let err = check(text, stdio).expect_err(text).to_string();
            assert!(err.starts_with(want), "{err}\nwant prefix: {want}");
        }
    }
}
