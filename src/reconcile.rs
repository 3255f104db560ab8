//! Keeps one task per configured entry (a server, a dependency) in step with the
//! configuration: on a reload, entries that left or changed are stopped, new ones started,
//! unchanged ones left running (their sessions and children kept).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a stopped task may take to end (close its session, reap its child) before it is
/// aborted.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

struct Running<C> {
    config: C,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// The running tasks of one kind of entry, by name.
pub struct TaskSet<C> {
    /// What an entry is, for log lines ("server", "dependency").
    what: &'static str,
    tasks: HashMap<String, Running<C>>,
}

impl<C: PartialEq> TaskSet<C> {
    /// An empty set of tasks of entries called `what` in logs.
    pub fn new(what: &'static str) -> Self {
        TaskSet {
            what,
            tasks: HashMap::new(),
        }
    }

    /// True when `name` has a running task.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    /// Stops (in parallel) the tasks whose entry is not in `wanted` or differs from it, and
    /// returns their names and old entries so the caller can drop what they published.
    /// `wanted` may hold what the entries borrow as (a set of `Arc<T>` compares with `&T`s),
    /// so the caller copies only the entries it then starts.
    pub async fn stop_stale<'a, W>(
        &mut self,
        wanted: impl IntoIterator<Item = (&'a str, &'a W)>,
    ) -> Vec<(String, C)>
    where
        W: PartialEq + ?Sized + 'a,
        C: Borrow<W>,
    {
        let wanted: HashMap<&str, &W> = wanted.into_iter().collect();
        let stale: Vec<String> = self
            .tasks
            .iter()
            .filter(|(name, task)| wanted.get(name.as_str()) != Some(&task.config.borrow()))
            .map(|(name, _)| name.clone())
            .collect();
        let stopping: Vec<(String, Running<C>)> = stale
            .into_iter()
            .filter_map(|name| self.tasks.remove(&name).map(|task| (name, task)))
            .collect();
        let what = self.what;
        futures_util::future::join_all(
            stopping
                .into_iter()
                .map(|(name, task)| async move { stop(what, name, task).await }),
        )
        .await
    }

    /// Starts the task of `name`: `spawn` gets the receiver that turns true when it must stop.
    pub fn start(
        &mut self,
        name: String,
        config: C,
        spawn: impl FnOnce(watch::Receiver<bool>) -> JoinHandle<()>,
    ) {
        let (stop, stop_rx) = watch::channel(false);
        let handle = spawn(stop_rx);
        self.tasks.insert(
            name,
            Running {
                config,
                stop,
                handle,
            },
        );
    }

    /// Stops every task, in parallel.
    pub async fn shutdown(mut self) {
        let what = self.what;
        futures_util::future::join_all(
            self.tasks
                .drain()
                .map(|(name, task)| async move { stop(what, name, task).await }),
        )
        .await;
    }
}

async fn stop<C>(what: &'static str, name: String, task: Running<C>) -> (String, C) {
    let _ = task.stop.send(true);
    let mut handle = task.handle;
    if tokio::time::timeout(STOP_GRACE, &mut handle).await.is_err() {
        tracing::warn!(
            name = %name,
            "{what} task did not stop within {} s; aborting it",
            STOP_GRACE.as_secs()
        );
        handle.abort();
    }
    (name, task.config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_task(mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let _ = stop.changed().await;
        })
    }

    #[tokio::test]
    async fn only_removed_and_changed_entries_are_stopped() {
        let mut set = TaskSet::new("test");
        set.start("kept".into(), 1, idle_task);
        set.start("changed".into(), 2, idle_task);
        set.start("removed".into(), 3, idle_task);
        let mut stopped = set
            .stop_stale([("kept", &1), ("changed", &20), ("new", &4)])
            .await;
        stopped.sort();
        assert_eq!(
            stopped,
            [("changed".to_string(), 2), ("removed".to_string(), 3)]
        );
        assert!(set.contains("kept"));
        assert!(!set.contains("changed") && !set.contains("removed"));
        set.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_its_stop_is_aborted_after_the_grace() {
        let mut set = TaskSet::new("test");
        set.start("stubborn".into(), (), |_stop| {
            tokio::spawn(std::future::pending::<()>())
        });
        let stopped = set.stop_stale(std::iter::empty()).await;
        assert_eq!(stopped.len(), 1);
    }
}
