//! Supervision of stdio children: after a child dies it is restarted with exponential backoff
//! and jitter; a child that dies `crash_loop_failures` times within `crash_loop_window` (and is
//! not running now) is crash-looping. Pure: the caller passes the time, so it is table-tested.
//!
//! [`crate::probe::ServerProbe`] consults the supervisor before it spawns, tells it about every
//! spawn and every death, and the scheduler wakes the server's task when the backoff expires.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::RestartPolicy;
use crate::probe::{FailureClass, ProbeOutcome, Stage};

/// Lowest and highest jitter factor applied to each backoff.
const JITTER: (f64, f64) = (0.8, 1.2);

/// Restart bookkeeping of one stdio server.
#[derive(Debug, Clone)]
pub struct Supervisor {
    policy: RestartPolicy,
    deaths: VecDeque<Instant>,
    next_spawn: Option<Instant>,
    spawns: u64,
    running: bool,
    last_death: Option<String>,
}

/// What the status page and metrics show about supervision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupervisionStatus {
    /// Spawns after the first (successful or not).
    pub restarts: u64,
    /// Deaths within the crash-loop window.
    pub recent_exits: usize,
    /// Crash-looping right now.
    pub crash_looping: bool,
    /// Why it is crash-looping, when it is.
    pub crash_loop_reason: Option<String>,
    /// Milliseconds until the next restart is allowed, while waiting.
    pub next_restart_in_ms: Option<u64>,
    /// How the last child ended.
    pub last_exit: Option<String>,
}

impl Supervisor {
    /// A supervisor with no history.
    pub fn new(policy: RestartPolicy) -> Self {
        Supervisor {
            policy,
            deaths: VecDeque::new(),
            next_spawn: None,
            spawns: 0,
            running: false,
            last_death: None,
        }
    }

    /// `Ok` when a spawn is allowed now, else how long to wait.
    pub fn may_spawn(&self, now: Instant) -> Result<(), Duration> {
        match self.next_spawn {
            Some(at) if at > now => Err(at - now),
            _ => Ok(()),
        }
    }

    /// Records a spawn attempt (every one after the first is a restart).
    pub fn spawning(&mut self) {
        self.spawns += 1;
        self.running = true;
    }

    /// True between a spawn and the death that ends it.
    pub fn running(&self) -> bool {
        self.running
    }

    /// Records that the child died (or never came up); `how` is the reason shown to operators.
    /// Schedules the next spawn after a jittered exponential backoff.
    pub fn died(&mut self, now: Instant, how: impl Into<String>) {
        let factor = rand::random_range(JITTER.0..=JITTER.1);
        self.died_with_jitter(now, how, factor);
    }

    fn died_with_jitter(&mut self, now: Instant, how: impl Into<String>, factor: f64) {
        self.running = false;
        self.last_death = Some(how.into());
        self.deaths.push_back(now);
        self.prune(now);
        let delay = self.backoff(self.deaths.len()).mul_f64(factor);
        self.next_spawn = Some(now + delay.min(self.policy.backoff_max));
    }

    /// The unjittered delay after the `n`th death in the window: initial × 2^(n-1), capped.
    pub fn backoff(&self, n: usize) -> Duration {
        let exponent = n.saturating_sub(1).min(30) as i32;
        let secs = self.policy.backoff_initial.as_secs_f64() * 2f64.powi(exponent);
        Duration::from_secs_f64(secs.min(self.policy.backoff_max.as_secs_f64()))
    }

    fn prune(&mut self, now: Instant) {
        while self
            .deaths
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.crash_loop_window)
        {
            self.deaths.pop_front();
        }
        // Bounded even with a window of years.
        let keep = self.policy.crash_loop_failures as usize * 4 + 16;
        while self.deaths.len() > keep {
            self.deaths.pop_front();
        }
    }

    /// When the next spawn is allowed, if a backoff is pending.
    pub fn next_spawn_at(&self) -> Option<Instant> {
        self.next_spawn
    }

    /// How the last child ended.
    pub fn last_death(&self) -> Option<&str> {
        self.last_death.as_deref()
    }

    fn recent(&self, now: Instant) -> usize {
        self.deaths
            .iter()
            .filter(|t| now.duration_since(**t) <= self.policy.crash_loop_window)
            .count()
    }

    /// Crash-looping: enough deaths within the window and no child running now.
    pub fn crash_looping(&self, now: Instant) -> bool {
        !self.running && self.recent(now) >= self.policy.crash_loop_failures as usize
    }

    /// The operator's sentence for a crash loop, when there is one.
    pub fn crash_loop_reason(&self, now: Instant) -> Option<String> {
        self.crash_looping(now).then(|| {
            format!(
                "crash-looping: the child exited {} times within {}",
                self.recent(now),
                humantime::format_duration(self.policy.crash_loop_window)
            )
        })
    }

    /// While a restart backoff is pending, fails `outcome` with the last exit's class and
    /// reason (and the crash loop, if any) and returns false: no spawn this probe.
    pub fn allow_probe(&self, now: Instant, outcome: &mut ProbeOutcome) -> bool {
        let Err(wait) = self.may_spawn(now) else {
            return true;
        };
        let last = self.last_death().unwrap_or("the child exited");
        // The last exit is stored as "class: reason"; blocked probes keep its class.
        let (class, last) = last
            .split_once(": ")
            .and_then(|(name, rest)| {
                FailureClass::ALL
                    .into_iter()
                    .find(|c| c.as_str() == name)
                    .map(|c| (c, rest))
            })
            .unwrap_or((FailureClass::Down, last));
        let prefix = self
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

    /// Records the exit of the child that `outcome` observed, schedules its restart, and
    /// prefixes the failure with the crash loop when there is one.
    pub fn record_exit(&mut self, server: &str, now: Instant, outcome: &mut ProbeOutcome) {
        let how = outcome
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.class, f.reason))
            .unwrap_or_else(|| "down: the child exited".to_string());
        self.died(now, how);
        if let (Some(reason), Some(failure)) =
            (self.crash_loop_reason(now), outcome.failure.as_mut())
        {
            failure.reason = format!("{reason}; {}", failure.reason);
        }
        tracing::warn!(
            server,
            next_restart_ms = self.may_spawn(now).err().map(|d| d.as_millis() as u64),
            crash_looping = self.crash_looping(now),
            "stdio child is gone; restart scheduled with backoff"
        );
    }

    /// Snapshot for the status page and metrics.
    pub fn status(&self, now: Instant) -> SupervisionStatus {
        SupervisionStatus {
            restarts: self.spawns.saturating_sub(1),
            recent_exits: self.recent(now),
            crash_looping: self.crash_looping(now),
            crash_loop_reason: self.crash_loop_reason(now),
            next_restart_in_ms: self.may_spawn(now).err().map(|d| d.as_millis() as u64),
            last_exit: self.last_death.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            crash_loop_failures: 3,
            crash_loop_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = Supervisor::new(policy());
        let got: Vec<u64> = (1..=6).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn deaths_gate_spawns_and_make_a_crash_loop() {
        let t0 = Instant::now();
        let mut s = Supervisor::new(policy());
        assert!(s.may_spawn(t0).is_ok());
        s.spawning();
        assert!(s.running());
        s.died_with_jitter(t0, "exited with status 1", 1.0);
        assert_eq!(s.may_spawn(t0), Err(Duration::from_secs(1)));
        assert!(s.may_spawn(t0 + Duration::from_secs(1)).is_ok());
        assert!(!s.crash_looping(t0));
        let t1 = t0 + Duration::from_secs(1);
        s.spawning();
        s.died_with_jitter(t1, "exited with status 1", 1.0);
        assert_eq!(s.may_spawn(t1), Err(Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        s.spawning();
        assert!(!s.crash_looping(t2), "a running child is not crash-looping");
        s.died_with_jitter(t2, "exited with status 1", 1.2);
        assert_eq!(s.may_spawn(t2), Err(Duration::from_millis(4800)));
        assert!(s.crash_looping(t2));
        let st = s.status(t2);
        assert_eq!(st.restarts, 2);
        assert_eq!(st.recent_exits, 3);
        assert!(
            st.crash_loop_reason
                .unwrap_or_default()
                .contains("3 times within 1m")
        );
        let mut blocked = ProbeOutcome::started(std::time::SystemTime::now());
        assert!(!s.allow_probe(t2, &mut blocked));
        let failure = blocked.failure.expect("failed");
        assert_eq!(failure.class, FailureClass::Down);
        assert!(
            failure
                .reason
                .starts_with("crash-looping: the child exited 3 times")
                && failure
                    .reason
                    .contains("exited with status 1; restarting in 4800 ms"),
            "{}",
            failure.reason
        );
        // Deaths age out of the window: no longer crash-looping, backoff starts over.
        let later = t2 + Duration::from_secs(120);
        assert!(!s.crash_looping(later));
        s.spawning();
        s.died_with_jitter(later, "killed", 1.0);
        assert_eq!(s.may_spawn(later), Err(Duration::from_secs(1)));
    }
}
