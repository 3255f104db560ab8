//! The server loop with a scripted probe and sinks that record what they were handed.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use super::*;
use crate::assessment::{Assessment, Cause, TransitionKind};
use crate::deps::{DependencyCheck, DependencyFailure, DependencyState};
use crate::health::HealthStatus;
use crate::probe::{FailureClass, Stage};

const INTERVAL: Duration = Duration::from_secs(10);

/// Answers each probe with the next scripted outcome (`None`: hangs past the deadline).
#[derive(Clone, Default)]
struct ScriptedProber {
    script: Arc<Mutex<VecDeque<Option<ProbeOutcome>>>>,
    probes: Arc<AtomicUsize>,
    shut_down: Arc<AtomicUsize>,
}

impl ScriptedProber {
    fn with(outcomes: Vec<Option<ProbeOutcome>>) -> Self {
        let prober = ScriptedProber::default();
        prober.script.lock().unwrap().extend(outcomes);
        prober
    }
}

impl Prober for ScriptedProber {
    async fn probe(&mut self) -> ProbeOutcome {
        self.probes.fetch_add(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        match next {
            Some(Some(outcome)) => outcome,
            // A hung probe, or the script ran out: never answers.
            _ => std::future::pending().await,
        }
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn supervision(&self) -> Option<SupervisionStatus> {
        None
    }

    fn next_restart_at(&self) -> Option<std::time::Instant> {
        None
    }

    fn take_logs(&mut self) -> ServerLogs {
        ServerLogs {
            notifications: vec![],
            stderr_lines: vec![format!("line {}", self.probes.load(Ordering::SeqCst))],
        }
    }

    async fn shutdown(&mut self) {
        self.shut_down.fetch_add(1, Ordering::SeqCst);
    }
}

/// Keeps every assessment it is handed.
#[derive(Default)]
struct Recorder(Mutex<Vec<Assessment>>);

impl Sink for Recorder {
    fn assessed(&self, assessment: &Assessment) {
        self.0.lock().unwrap().push(assessment.clone());
    }
}

impl Recorder {
    fn seen(&self) -> Vec<(Cause, HealthStatus, Option<TransitionKind>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.cause, a.health.status, a.transition.map(|t| t.kind)))
            .collect()
    }
}

fn server() -> Arc<ServerConfig> {
    let text = "[[dependencies]]\nname = \"pg\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n\n\
                [[servers]]\nname = \"s\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:1/mcp\"\n\
                interval = \"10s\"\ntimeout = \"3s\"\ndepends_on = [\"pg\"]\n";
    let config = crate::settings::Config::from_toml(text, Path::new("t.toml")).expect("config");
    Arc::new(config.servers[0].clone())
}

fn ok() -> Option<ProbeOutcome> {
    let mut outcome = ProbeOutcome::started(SystemTime::now());
    outcome.up = true;
    outcome.success = true;
    Some(outcome)
}

fn refused() -> Option<ProbeOutcome> {
    let mut outcome = ProbeOutcome::started(SystemTime::now());
    outcome.fail(Stage::Connect, FailureClass::Down, "connection refused");
    Some(outcome)
}

fn set_dependency(board: &DependencyBoard, status: HealthStatus) {
    let mut check = DependencyCheck::healthy(SystemTime::now());
    if status == HealthStatus::Unhealthy {
        check.fail(DependencyFailure::Refused, "connection refused");
    }
    board.write().unwrap().insert(
        "pg".into(),
        DependencyState {
            name: "pg".into(),
            kind: "tcp",
            critical: true,
            interval: INTERVAL,
            last: Some(check),
            backoff_until_unix: None,
        },
    );
}

struct Harness {
    recorder: Arc<Recorder>,
    prober: ScriptedProber,
    board: DependencyBoard,
    changes: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(outcomes: Vec<Option<ProbeOutcome>>) -> Harness {
    let recorder = Arc::new(Recorder::default());
    let prober = ScriptedProber::with(outcomes);
    let board = DependencyBoard::default();
    set_dependency(&board, HealthStatus::Healthy);
    let (changes, changes_rx) = watch::channel(0);
    let (stop, stop_rx) = watch::channel(false);
    let task = ServerTask {
        config: server(),
        prober: prober.clone(),
        memory: ServerMemory::default(),
        sinks: Sinks::new(vec![recorder.clone()]),
        dependencies: Arc::clone(&board),
        dependency_changes: Some(changes_rx),
        start_spread: MAX_START_SPREAD,
    };
    Harness {
        recorder,
        prober,
        board,
        changes,
        stop,
        task: tokio::spawn(task.run(stop_rx)),
    }
}

impl Harness {
    async fn stop(self) -> ScriptedProber {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
        self.prober
    }
}

/// Lets the task run until it waits on its clock again.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn each_probe_is_assessed_once_and_handed_to_the_sinks() {
    let h = start(vec![ok(), ok(), refused(), ok()]);
    tokio::time::sleep(MAX_START_SPREAD + INTERVAL * 3 + INTERVAL / 2).await;
    settle().await;
    use HealthStatus::*;
    use TransitionKind::*;
    assert_eq!(
        h.recorder.seen(),
        [
            (Cause::Probe, Healthy, Some(Up)),
            (Cause::Probe, Healthy, None),
            (Cause::Probe, Unhealthy, Some(Down)),
            (Cause::Probe, Healthy, Some(Recovered)),
        ]
    );
    let assessments = h.recorder.0.lock().unwrap().clone();
    assert!(assessments.iter().all(|a| a.process.is_some()));
    assert_eq!(assessments[2].logs.stderr_lines, ["line 3"]);
    let prober = h.stop().await;
    assert_eq!(prober.shut_down.load(Ordering::SeqCst), 1, "session ended");
}

#[tokio::test(start_paused = true)]
async fn a_dependency_change_between_probes_is_assessed_without_probing() {
    let h = start(vec![ok()]);
    tokio::time::sleep(MAX_START_SPREAD + Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(h.prober.probes.load(Ordering::SeqCst), 1);

    set_dependency(&h.board, HealthStatus::Unhealthy);
    h.changes.send_modify(|g| *g += 1);
    settle().await;
    let seen = h.recorder.seen();
    assert_eq!(
        seen.last(),
        Some(&(
            Cause::Dependency,
            HealthStatus::Unhealthy,
            Some(TransitionKind::Down)
        )),
        "{seen:?}"
    );
    let last = h.recorder.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        last.health.reasons,
        ["critical dependency pg is down: connection refused"]
    );
    assert!(last.new_probe().is_none() && last.logs == ServerLogs::default());
    assert_eq!(h.prober.probes.load(Ordering::SeqCst), 1, "no probe ran");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_probe_past_its_deadline_is_abandoned_as_down() {
    let h = start(vec![None]);
    tokio::time::sleep(MAX_START_SPREAD + Duration::from_secs(3) + deadline::DEADLINE_GRACE).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    settle().await;
    let assessments = h.recorder.0.lock().unwrap().clone();
    assert_eq!(assessments.len(), 1);
    assert_eq!(assessments[0].health.status, HealthStatus::Unhealthy);
    assert_eq!(
        assessments[0].health.reasons,
        ["down at connect: probe did not finish within its 5000 ms deadline"]
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stop_ends_the_task_while_it_waits() {
    let h = start(vec![ok()]);
    let prober = h.stop().await;
    assert_eq!(prober.shut_down.load(Ordering::SeqCst), 1);
}

/// A server's task stays small between probes: the real probe's future (the HTTP or stdio
/// exchange, tens of kilobytes) is boxed for the few milliseconds it runs, not held inline for
/// the task's whole life (a fleet of 1,000 servers held 23 MB of task futures that way).
#[tokio::test]
async fn a_real_servers_task_future_stays_small_between_probes() {
    let config = server();
    let task = ServerTask {
        config: Arc::clone(&config),
        prober: ServerProbe::new(
            config,
            crate::mcp::Limits::default(),
            Arc::new(crate::mcp::WireCounters::default()),
        ),
        memory: ServerMemory::default(),
        sinks: Sinks::default(),
        dependencies: DependencyBoard::default(),
        dependency_changes: None,
        start_spread: MAX_START_SPREAD,
    };
    let (_stop_tx, stop_rx) = watch::channel(false);
    let future = task.run(stop_rx);
    let size = std::mem::size_of_val(&future);
    assert!(size < 8192, "a server task's future is {size} bytes");
}

/// A few servers started together probe within 2 s; a large fleet spreads its first round
/// wider (each task caps the window at its interval).
#[test]
fn a_large_fleets_first_probes_spread_wider() {
    assert_eq!(start_spread(1), MAX_START_SPREAD);
    assert_eq!(start_spread(100), MAX_START_SPREAD);
    assert_eq!(start_spread(1_000), Duration::from_secs(20));
    assert!(start_spread(usize::MAX) >= Duration::from_secs(20));
}
