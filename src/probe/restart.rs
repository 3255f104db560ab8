//! Restart supervision of a stdio child as the prober uses it: the probe-agnostic
//! [`Supervisor`] of src/process/supervise.rs fed with typed exits, and translated back into
//! probe outcomes (a probe blocked by a restart backoff, a crash loop named in the failure).
//!
//! The translation lives here, beside the probe that spawns the child, so `probe` depends on
//! `process` and `process` knows nothing of probe types.

use std::fmt;
use std::time::Instant;

use crate::process::config::RestartPolicy;
use crate::process::supervise::{SupervisionStatus, Supervisor};

use super::outcome::{FailureClass, ProbeOutcome, Stage};

/// How a stdio child ended, as its probe classified it; kept typed between probes so a probe
/// blocked by the backoff reports the same class.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildExit {
    /// The failure class of the probe that saw the child go.
    pub class: FailureClass,
    /// The operator's sentence of that probe (without any crash-loop prefix).
    pub reason: String,
}

impl ChildExit {
    /// The exit a probe observed: its failure, or a plain "the child exited" when it has none.
    fn observed(outcome: &ProbeOutcome) -> ChildExit {
        match &outcome.failure {
            Some(failure) => ChildExit {
                class: failure.class,
                reason: failure.reason.clone(),
            },
            None => ChildExit {
                class: FailureClass::Down,
                reason: "the child exited".into(),
            },
        }
    }
}

/// `class: reason`, as the status page shows the last exit.
impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.reason)
    }
}

/// Spawns, deaths, backoff and crash loop of one stdio server's child.
#[derive(Debug, Clone)]
pub struct ChildSupervision {
    supervisor: Supervisor<ChildExit>,
}

impl ChildSupervision {
    /// No history yet.
    pub fn new(policy: RestartPolicy) -> Self {
        ChildSupervision {
            supervisor: Supervisor::new(policy),
        }
    }

    /// Snapshot for the status page and metrics.
    pub fn status(&self, now: Instant) -> SupervisionStatus {
        self.supervisor.status(now)
    }

    /// True between a spawn and the death that ends it.
    pub fn running(&self) -> bool {
        self.supervisor.running()
    }

    /// When the next spawn is allowed, if a restart backoff is pending.
    pub fn next_spawn_at(&self) -> Option<Instant> {
        self.supervisor.next_spawn_at()
    }

    /// While a restart backoff is pending, fails `outcome` with the last exit's class and
    /// reason (and the crash loop, if any) and returns false: no spawn this probe.
    pub fn allow_probe(&self, now: Instant, outcome: &mut ProbeOutcome) -> bool {
        let Err(wait) = self.supervisor.may_spawn(now) else {
            return true;
        };
        let (class, last) = match self.supervisor.last_exit() {
            Some(exit) => (exit.class, exit.reason.as_str()),
            None => (FailureClass::Down, "the child exited"),
        };
        let prefix = self
            .supervisor
            .crash_loop_reason(now)
            .map(|r| format!("{r}; "))
            .unwrap_or_default();
        outcome.fail(
            Stage::Connect,
            class,
            format!(
                "{prefix}{last}; restarting in {} ms (backoff)",
                wait.as_millis()
            ),
        );
        false
    }

    /// Records that the child of `server` is being started now (every start after the first
    /// is a restart). Only for a real start: the transport resolved and the spawn follows.
    pub fn spawning(&mut self, server: &str) {
        self.supervisor.spawning();
        let restarts = self.supervisor.status(Instant::now()).restarts;
        if restarts > 0 {
            tracing::info!(server, restarts, "restarting the stdio child");
        }
    }

    /// Records the exit of the child that `outcome` observed, schedules its restart, and
    /// prefixes the failure with the crash loop when there is one.
    pub fn record_exit(&mut self, server: &str, now: Instant, outcome: &mut ProbeOutcome) {
        self.supervisor.died(now, ChildExit::observed(outcome));
        if let (Some(reason), Some(failure)) = (
            self.supervisor.crash_loop_reason(now),
            outcome.failure.as_mut(),
        ) {
            failure.reason = format!("{reason}; {}", failure.reason);
        }
        tracing::warn!(
            server,
            next_restart_ms = self
                .supervisor
                .may_spawn(now)
                .err()
                .map(|d| d.as_millis() as u64),
            crash_looping = self.supervisor.crash_looping(now),
            "stdio child is gone; restart scheduled with backoff"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            backoff_initial: Duration::from_secs(60),
            backoff_max: Duration::from_secs(600),
            crash_loop_failures: 2,
            crash_loop_window: Duration::from_secs(600),
        }
    }

    fn failed(class: FailureClass, reason: &str) -> ProbeOutcome {
        let mut outcome = ProbeOutcome::started(SystemTime::now());
        outcome.fail(Stage::Handshake, class, reason);
        outcome
    }

    #[test]
    fn a_probe_blocked_by_the_backoff_keeps_the_exit_class_and_names_the_crash_loop() {
        let mut sup = ChildSupervision::new(policy());
        let now = Instant::now();
        let mut fresh = ProbeOutcome::started(SystemTime::now());
        assert!(sup.allow_probe(now, &mut fresh), "nothing recorded yet");
        assert!(fresh.failure.is_none());

        sup.spawning("s");
        let mut first = failed(FailureClass::Misconfigured, "Please set SLACK_BOT_TOKEN");
        sup.record_exit("s", now, &mut first);
        assert_eq!(
            first.failure.as_ref().map(|f| f.reason.as_str()),
            Some("Please set SLACK_BOT_TOKEN"),
            "one exit is no crash loop"
        );
        assert_eq!(
            sup.status(now).last_exit.as_deref(),
            Some("misconfigured: Please set SLACK_BOT_TOKEN")
        );
        let mut blocked = ProbeOutcome::started(SystemTime::now());
        assert!(!sup.allow_probe(now, &mut blocked));
        let failure = blocked.failure.expect("blocked probe fails");
        assert_eq!(failure.class, FailureClass::Misconfigured);
        assert_eq!(failure.stage, Stage::Connect);
        assert!(
            failure
                .reason
                .starts_with("Please set SLACK_BOT_TOKEN; restarting in ")
                && failure.reason.ends_with(" ms (backoff)"),
            "{}",
            failure.reason
        );

        // A reason that itself holds ": " is kept whole (nothing is parsed back).
        sup.spawning("s");
        let mut second = failed(FailureClass::ProtocolError, "stdout: not JSON: `x`");
        sup.record_exit("s", now, &mut second);
        let reason = second.failure.expect("failed").reason;
        assert!(
            reason.starts_with("crash-looping: the child exited 2 times within 10m; stdout"),
            "{reason}"
        );
        let mut blocked = ProbeOutcome::started(SystemTime::now());
        assert!(!sup.allow_probe(now, &mut blocked));
        let failure = blocked.failure.expect("blocked probe fails");
        assert_eq!(failure.class, FailureClass::ProtocolError);
        assert!(
            failure.reason.starts_with(
                "crash-looping: the child exited 2 times within 10m; stdout: not JSON: `x`; restarting in "
            ),
            "{}",
            failure.reason
        );
        let status = sup.status(now);
        assert_eq!(status.restarts, 1);
        assert!(status.crash_looping);
        assert_eq!(
            status.last_exit.as_deref(),
            Some("protocol_error: stdout: not JSON: `x`")
        );
    }

    #[test]
    fn an_exit_without_a_failure_is_down() {
        let mut sup = ChildSupervision::new(policy());
        let now = Instant::now();
        sup.spawning("s");
        let mut outcome = ProbeOutcome::started(SystemTime::now());
        sup.record_exit("s", now, &mut outcome);
        assert_eq!(
            sup.status(now).last_exit.as_deref(),
            Some("down: the child exited")
        );
        let mut blocked = ProbeOutcome::started(SystemTime::now());
        assert!(!sup.allow_probe(now, &mut blocked));
        assert_eq!(blocked.failure.map(|f| f.class), Some(FailureClass::Down));
    }
}
