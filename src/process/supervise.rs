//! Supervision of stdio children: after a child dies it is restarted with exponential backoff
//! and jitter; a child that dies `crash_loop_failures` times within `crash_loop_window` (and is
//! not running now) is crash-looping. Pure: the caller passes the time, so it is table-tested.
//!
//! The supervisor knows nothing of probes: it counts spawns and deaths and keeps how the last
//! child ended as whatever typed value its caller records (`Exit`). The prober
//! (src/probe/restart.rs) translates between probe outcomes and these calls, so `probe` depends
//! on `process` and never the other way round. Only a child that was really spawned is
//! recorded: a server that cannot be started at all (an unset `${VAR}`) never reaches
//! [`Supervisor::spawning`], so it has no restarts and no crash loop.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::RestartPolicy;

/// Lowest and highest jitter factor applied to each backoff.
const JITTER: (f64, f64) = (0.8, 1.2);

/// Restart bookkeeping of one stdio server; `Exit` is how a child ended, as its caller types it.
#[derive(Debug, Clone)]
pub struct Supervisor<Exit> {
    policy: RestartPolicy,
    deaths: VecDeque<Instant>,
    next_spawn: Option<Instant>,
    spawns: u64,
    running: bool,
    last_exit: Option<Exit>,
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

impl<Exit: fmt::Display> Supervisor<Exit> {
    /// A supervisor with no history.
    pub fn new(policy: RestartPolicy) -> Self {
        Supervisor {
            policy,
            deaths: VecDeque::new(),
            next_spawn: None,
            spawns: 0,
            running: false,
            last_exit: None,
        }
    }

    /// `Ok` when a spawn is allowed now, else how long to wait.
    pub fn may_spawn(&self, now: Instant) -> Result<(), Duration> {
        match self.next_spawn {
            Some(at) if at > now => Err(at - now),
            _ => Ok(()),
        }
    }

    /// Records a spawn attempt (every one after the first is a restart). Called only when the
    /// child is really about to be started, never for a server that cannot be started.
    pub fn spawning(&mut self) {
        self.spawns += 1;
        self.running = true;
    }

    /// True between a spawn and the death that ends it.
    pub fn running(&self) -> bool {
        self.running
    }

    /// Records that the child died (or never came up) and how; schedules the next spawn after
    /// a jittered exponential backoff.
    pub fn died(&mut self, now: Instant, exit: Exit) {
        let factor = rand::random_range(JITTER.0..=JITTER.1);
        self.died_with_jitter(now, exit, factor);
    }

    fn died_with_jitter(&mut self, now: Instant, exit: Exit, factor: f64) {
        self.running = false;
        self.last_exit = Some(exit);
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
    pub fn last_exit(&self) -> Option<&Exit> {
        self.last_exit.as_ref()
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

    /// Snapshot for the status page and metrics.
    pub fn status(&self, now: Instant) -> SupervisionStatus {
        SupervisionStatus {
            restarts: self.spawns.saturating_sub(1),
            recent_exits: self.recent(now),
            crash_looping: self.crash_looping(now),
            crash_loop_reason: self.crash_loop_reason(now),
            next_restart_in_ms: self.may_spawn(now).err().map(|d| d.as_millis() as u64),
            last_exit: self.last_exit.as_ref().map(ToString::to_string),
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

    /// A caller's typed exit: the supervisor keeps it as it is and shows it through `Display`.
    #[derive(Debug, Clone, PartialEq)]
    enum Exit {
        Status(i32),
        Killed,
    }

    impl fmt::Display for Exit {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Exit::Status(code) => write!(f, "exited with status {code}"),
                Exit::Killed => f.write_str("killed"),
            }
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = Supervisor::<Exit>::new(policy());
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
        s.died_with_jitter(t0, Exit::Status(1), 1.0);
        assert_eq!(s.may_spawn(t0), Err(Duration::from_secs(1)));
        assert!(s.may_spawn(t0 + Duration::from_secs(1)).is_ok());
        assert!(!s.crash_looping(t0));
        let t1 = t0 + Duration::from_secs(1);
        s.spawning();
        s.died_with_jitter(t1, Exit::Status(1), 1.0);
        assert_eq!(s.may_spawn(t1), Err(Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        s.spawning();
        assert!(!s.crash_looping(t2), "a running child is not crash-looping");
        s.died_with_jitter(t2, Exit::Status(2), 1.2);
        assert_eq!(s.may_spawn(t2), Err(Duration::from_millis(4800)));
        assert!(s.crash_looping(t2));
        assert_eq!(s.last_exit(), Some(&Exit::Status(2)), "kept typed");
        let st = s.status(t2);
        assert_eq!(st.restarts, 2);
        assert_eq!(st.recent_exits, 3);
        assert_eq!(st.next_restart_in_ms, Some(4800));
        assert_eq!(st.last_exit.as_deref(), Some("exited with status 2"));
        assert!(
            st.crash_loop_reason
                .unwrap_or_default()
                .contains("3 times within 1m")
        );
        // Deaths age out of the window: no longer crash-looping, backoff starts over.
        let later = t2 + Duration::from_secs(120);
        assert!(!s.crash_looping(later));
        s.spawning();
        s.died_with_jitter(later, Exit::Killed, 1.0);
        assert_eq!(s.may_spawn(later), Err(Duration::from_secs(1)));
        assert_eq!(s.status(later).last_exit.as_deref(), Some("killed"));
    }

    #[test]
    fn without_a_spawn_there_is_no_restart_exit_or_crash_loop() {
        let t0 = Instant::now();
        let s = Supervisor::<Exit>::new(policy());
        // However often a prober finds it cannot start the child, it records nothing here.
        let later = t0 + Duration::from_secs(600);
        assert!(s.may_spawn(later).is_ok());
        assert_eq!(s.next_spawn_at(), None);
        assert_eq!(
            s.status(later),
            SupervisionStatus {
                restarts: 0,
                recent_exits: 0,
                crash_looping: false,
                crash_loop_reason: None,
                next_restart_in_ms: None,
                last_exit: None,
            }
        );
    }
}
