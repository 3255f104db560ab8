//! The per-server series tracker: every family with a `server` label (`server_family.rs`),
//! every collector that reads per-server values and every piece of per-server bookkeeping is a
//! member, so removing a server from the tracker removes all of its series (there is no list
//! of families to keep in step).
//!
//! Members are created through [`MetricsRegistry`](super::MetricsRegistry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Something that holds series or state per server and can forget one server.
pub trait ServerScoped: Send + Sync {
    /// Drops everything kept for `server`.
    fn remove_server(&self, server: &str);
}

/// Every member holding per-server series or state.
#[derive(Default)]
pub struct ServerSeriesTracker {
    members: Vec<Arc<dyn ServerScoped>>,
}

impl ServerSeriesTracker {
    /// Adds a member; it is asked to forget each removed server from now on.
    pub fn track(&mut self, member: Arc<dyn ServerScoped>) {
        self.members.push(member);
    }

    /// Removes every series and every piece of state of `server`, in every member.
    pub fn remove_server(&self, server: &str) {
        for member in &self.members {
            member.remove_server(server);
        }
    }
}

/// Bookkeeping kept per server next to a component's families (a window of recent probes,
/// the tool names seen), forgotten with the server.
pub struct ServerState<T> {
    inner: Arc<StateMap<T>>,
}

impl<T> Clone for ServerState<T> {
    fn clone(&self) -> Self {
        ServerState {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct StateMap<T>(Mutex<HashMap<String, T>>);

impl<T: Default + Send + 'static> ServerState<T> {
    /// An empty map; the returned handle and `member` (for the tracker) share it.
    pub(super) fn new() -> (Self, Arc<dyn ServerScoped>) {
        let inner = Arc::new(StateMap(Mutex::new(HashMap::new())));
        let member: Arc<dyn ServerScoped> = Arc::clone(&inner) as Arc<dyn ServerScoped>;
        (ServerState { inner }, member)
    }

    /// Runs `f` on the state of `server` (a default one the first time).
    pub fn with<R>(&self, server: &str, f: impl FnOnce(&mut T) -> R) -> R {
        let mut states = self.inner.lock();
        if let Some(state) = states.get_mut(server) {
            return f(state);
        }
        f(states.entry(server.to_string()).or_default())
    }
}

impl<T> StateMap<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Send> ServerScoped for StateMap<T> {
    fn remove_server(&self, server: &str) {
        self.lock().remove(server);
    }
}
