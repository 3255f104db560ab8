//! Opt-in remediation of servers the exporter does not spawn: once a server has been down for
//! `after`, run the configured command (e.g. `systemctl restart mcp-{name}`), at most once per
//! `backoff`, under a deadline; log and count the outcome.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::config::Remediation;

/// Most bytes of the command's output quoted in the log.
const OUTPUT_EXCERPT_BYTES: usize = 500;

/// How one remediation run ended; the `outcome` label of `mcp_remediation_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemediationOutcome {
    /// Exit status 0.
    Success,
    /// Non-zero exit status or killed by a signal.
    Failure,
    /// Still running at the deadline; killed.
    Timeout,
    /// Could not be started.
    Error,
}

impl RemediationOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RemediationOutcome::Success => "success",
            RemediationOutcome::Failure => "failure",
            RemediationOutcome::Timeout => "timeout",
            RemediationOutcome::Error => "error",
        }
    }
}

/// Called with the outcome of every run.
pub type OutcomeSink = Arc<dyn Fn(RemediationOutcome) + Send + Sync>;

/// Decides when to remediate one server and runs the command.
pub struct Remediator {
    server: String,
    config: Remediation,
    down_since: Option<Instant>,
    last_run: Option<Instant>,
    running: Option<JoinHandle<()>>,
    last_outcome: Arc<Mutex<Option<String>>>,
}

impl Remediator {
    /// A remediator for `server`.
    pub fn new(server: &str, config: Remediation) -> Self {
        Remediator {
            server: server.to_string(),
            config,
            down_since: None,
            last_run: None,
            running: None,
            last_outcome: Arc::new(Mutex::new(None)),
        }
    }

    /// True when a run should start now (pure decision; updates the down-since clock).
    pub fn due(&mut self, up: bool, now: Instant) -> bool {
        if up {
            self.down_since = None;
            return false;
        }
        let since = *self.down_since.get_or_insert(now);
        let busy = self.running.as_ref().is_some_and(|h| !h.is_finished());
        let waited = now.duration_since(since) >= self.config.after;
        let backoff_over = self
            .last_run
            .is_none_or(|t| now.duration_since(t) >= self.config.backoff);
        !busy && waited && backoff_over
    }

    /// Feeds one probe result; starts the command in the background when it is due.
    pub fn observe(&mut self, up: bool, now: Instant, sink: OutcomeSink) {
        if !self.due(up, now) {
            return;
        }
        self.last_run = Some(now);
        let argv: Vec<String> = self
            .config
            .command
            .iter()
            .map(|a| a.replace("{name}", &self.server))
            .collect();
        let server = self.server.clone();
        let timeout = self.config.timeout;
        let down_for = self
            .down_since
            .map(|s| now.duration_since(s))
            .unwrap_or_default();
        let last = Arc::clone(&self.last_outcome);
        tracing::warn!(server = %server, command = ?argv, down_for_s = down_for.as_secs(), "server down; running remediation command");
        self.running = Some(tokio::spawn(async move {
            let (outcome, detail) = run(&argv, timeout).await;
            match outcome {
                RemediationOutcome::Success => {
                    tracing::info!(server = %server, outcome = outcome.as_str(), %detail, "remediation finished")
                }
                _ => {
                    tracing::warn!(server = %server, outcome = outcome.as_str(), %detail, "remediation finished")
                }
            }
            if let Ok(mut l) = last.lock() {
                *l = Some(format!("{}: {detail}", outcome.as_str()));
            }
            sink(outcome);
        }));
    }

    /// The outcome of the last finished run, for the status page.
    pub fn last_outcome(&self) -> Option<String> {
        self.last_outcome.lock().ok().and_then(|l| l.clone())
    }
}

impl Drop for Remediator {
    fn drop(&mut self) {
        if let Some(h) = self.running.take() {
            h.abort();
        }
    }
}

async fn run(argv: &[String], timeout: Duration) -> (RemediationOutcome, String) {
    let Some((program, args)) = argv.split_first() else {
        return (RemediationOutcome::Error, "empty command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                RemediationOutcome::Error,
                format!("cannot run {program}: {e}"),
            );
        }
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => (
            RemediationOutcome::Timeout,
            format!("still running after {} s; killed", timeout.as_secs()),
        ),
        Ok(Err(e)) => (
            RemediationOutcome::Error,
            format!("waiting for {program}: {e}"),
        ),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if text.is_empty() {
                text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            text.truncate(text.floor_char_boundary(OUTPUT_EXCERPT_BYTES));
            let outcome = if out.status.success() {
                RemediationOutcome::Success
            } else {
                RemediationOutcome::Failure
            };
            (outcome, format!("{}; output: {text:?}", out.status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Remediation {
        Remediation {
            command: vec!["sh".into(), "-c".into(), "echo fixed {name}; exit 0".into()],
            after: Duration::from_secs(10),
            backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn due_after_being_down_long_enough_and_once_per_backoff() {
        let t0 = Instant::now();
        let mut r = Remediator::new("s", config());
        assert!(!r.due(false, t0));
        assert!(!r.due(false, t0 + Duration::from_secs(9)));
        assert!(r.due(false, t0 + Duration::from_secs(10)));
        r.last_run = Some(t0 + Duration::from_secs(10));
        assert!(!r.due(false, t0 + Duration::from_secs(30)));
        assert!(r.due(false, t0 + Duration::from_secs(70)));
        assert!(!r.due(true, t0 + Duration::from_secs(71)));
        // Up again resets the clock.
        assert!(!r.due(false, t0 + Duration::from_secs(200)));
    }

    #[tokio::test]
    async fn the_command_runs_and_its_outcome_is_reported() {
        let (outcome, detail) = run(&config().command, Duration::from_secs(5)).await;
        assert_eq!(outcome, RemediationOutcome::Success, "{detail}");
        let (outcome, _) = run(&["false".to_string()], Duration::from_secs(5)).await;
        assert_eq!(outcome, RemediationOutcome::Failure);
        let (outcome, _) = run(&["/nonexistent/x".to_string()], Duration::from_secs(5)).await;
        assert_eq!(outcome, RemediationOutcome::Error);
        let (outcome, _) = run(
            &["sleep".to_string(), "5".to_string()],
            Duration::from_millis(100),
        )
        .await;
        assert_eq!(outcome, RemediationOutcome::Timeout);
    }
}
