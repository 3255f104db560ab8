//! The consumers of dependency checks: the metrics, the history store and the security monitor
//! each implement [`CheckSink`]; the dependency runner hands every check to all of them.

use std::sync::Arc;

use super::{DependencyCheck, DependencyConfig};

/// A consumer of dependency checks. Never blocks (the store's writer takes rows over a
/// bounded channel).
pub trait CheckSink: Send + Sync {
    /// A dependency starts being checked.
    fn dependency_added(&self, _dependency: &DependencyConfig) {}

    /// A dependency left the configuration (or changed and is restarted): forget it.
    fn dependency_removed(&self, _dependency: &DependencyConfig) {}

    /// A check finished; `dependents` are the servers whose `depends_on` lists the dependency.
    fn checked(
        &self,
        dependency: &DependencyConfig,
        check: &DependencyCheck,
        dependents: &[String],
    );
}

/// Every check sink, fed in the order given.
#[derive(Clone, Default)]
pub struct CheckSinks(Vec<Arc<dyn CheckSink>>);

impl CheckSinks {
    /// Sinks fed in the order given.
    pub fn new(sinks: Vec<Arc<dyn CheckSink>>) -> Self {
        CheckSinks(sinks)
    }

    /// Adds a sink at the end.
    pub fn push(&mut self, sink: Arc<dyn CheckSink>) {
        self.0.push(sink);
    }
}

impl CheckSink for CheckSinks {
    fn dependency_added(&self, dependency: &DependencyConfig) {
        for sink in &self.0 {
            sink.dependency_added(dependency);
        }
    }

    fn dependency_removed(&self, dependency: &DependencyConfig) {
        for sink in &self.0 {
            sink.dependency_removed(dependency);
        }
    }

    fn checked(
        &self,
        dependency: &DependencyConfig,
        check: &DependencyCheck,
        dependents: &[String],
    ) {
        for sink in &self.0 {
            sink.checked(dependency, check, dependents);
        }
    }
}
