//! A ready [`TrafficConsumer`]: sums the wrappers' deltas per `server` label (the joined
//! configured server, else the wrapper's name) and keeps each connected wrapper's gauges, so a
//! scrape can read per (server, origin, method, tool) totals with [`TrafficBook::snapshot`].
//! Every label passes the per-server caps again here: a peer cannot grow the daemon's series.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::receiver::{TrafficConsumer, WrapperInfo};
use super::totals::{LabelCaps, RequestKey, TrafficState, TrafficTotals};

/// Most distinct `server` labels real traffic may create; wrappers of further names are refused.
pub const MAX_SERVERS: usize = 256;

/// The `network_transport` of traffic a stdio wrapper reports (OpenTelemetry's name for stdio).
pub const TRANSPORT_PIPE: &str = "pipe";

/// The traffic of one `server` label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerTraffic {
    /// Counters since the daemon started, all its wrappers together.
    pub totals: TrafficTotals,
    /// Requests in flight now, summed over its connected wrappers.
    pub in_flight: BTreeMap<RequestKey, u64>,
    /// Wrappers connected now.
    pub wrappers: u64,
    /// Connected wrappers with an open session.
    pub sessions_active: u64,
    /// Connected wrappers per (era, protocol version); `unknown` until seen.
    pub protocols: BTreeMap<(String, String), u64>,
    /// Wrapper exits by status (the server's exit code, or 128 + signal).
    pub exits: BTreeMap<i32, u64>,
    /// How the traffic was observed: [`TRANSPORT_PIPE`] for wrappers, `tcp` for the HTTP
    /// proxy (src/proxy/); the `network_transport` label.
    pub network_transport: &'static str,
}

#[derive(Debug, Default)]
struct ServerBook {
    totals: TrafficTotals,
    caps: LabelCaps,
    exits: BTreeMap<i32, u64>,
    /// Set by [`TrafficBook::attach_local`]; wrappers leave it unset (a pipe).
    transport: Option<&'static str>,
}

#[derive(Debug)]
struct Live {
    server: String,
    state: TrafficState,
}

#[derive(Debug, Default)]
struct Inner {
    servers: BTreeMap<String, ServerBook>,
    live: HashMap<u64, Live>,
}

/// Real-traffic totals per server label.
#[derive(Debug, Default)]
pub struct TrafficBook {
    inner: Mutex<Inner>,
    /// Connection ids handed out by [`TrafficBook::attach_local`], counted down from
    /// `u64::MAX` (the receiver counts its own up from 1).
    local_ids: AtomicU64,
}

impl TrafficBook {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every server label's traffic now.
    pub fn snapshot(&self) -> BTreeMap<String, ServerTraffic> {
        let inner = self.lock();
        let mut out: BTreeMap<String, ServerTraffic> = inner
            .servers
            .iter()
            .map(|(name, book)| {
                let traffic = ServerTraffic {
                    totals: book.totals.clone(),
                    exits: book.exits.clone(),
                    network_transport: book.transport.unwrap_or(TRANSPORT_PIPE),
                    ..ServerTraffic::default()
                };
                (name.clone(), traffic)
            })
            .collect();
        for live in inner.live.values() {
            let Some(traffic) = out.get_mut(&live.server) else {
                continue;
            };
            traffic.wrappers += 1;
            traffic.sessions_active += u64::from(live.state.session_active);
            for (key, count) in &live.state.in_flight {
                *traffic.in_flight.entry(key.clone()).or_default() += count;
            }
            let era = live
                .state
                .era
                .map(|e| e.to_string())
                .unwrap_or_else(|| "unknown".into());
            let version = live
                .state
                .protocol_version
                .clone()
                .unwrap_or_else(|| "unknown".into());
            *traffic.protocols.entry((era, version)).or_default() += 1;
        }
        out
    }

    /// Adds a wrapper's report to its server label's totals and returns the delta and the state
    /// as added, every label passed through the server's caps (what a consumer that also
    /// records elsewhere, such as src/traffic/metrics.rs, must use); `None` when the wrapper
    /// was never admitted.
    pub fn record(
        &self,
        wrapper: &WrapperInfo,
        delta: &TrafficTotals,
        state: &TrafficState,
    ) -> Option<(TrafficTotals, TrafficState)> {
        let mut inner = self.lock();
        let Inner { servers, live } = &mut *inner;
        let live = live.get_mut(&wrapper.connection)?;
        if !servers.contains_key(&live.server) && servers.len() >= MAX_SERVERS {
            return None;
        }
        // A label forgotten while its wrapper stayed connected starts again from zero.
        let book = servers.entry(live.server.clone()).or_default();
        let mut capped = TrafficTotals::default();
        capped.merge_capped(delta, &mut book.caps);
        book.totals.merge(&capped);
        let state = state.capped(&mut book.caps);
        live.state = state.clone();
        Some((capped, state))
    }

    /// Drops the totals of `label` (a configured server that left the configuration); its
    /// connected wrappers stay, and their next reports count from zero.
    pub fn forget(&self, label: &str) {
        self.lock().servers.remove(label);
    }

    /// One server label's traffic now.
    pub fn server(&self, label: &str) -> Option<ServerTraffic> {
        self.snapshot().remove(label)
    }

    /// The `network_transport` of `label`'s traffic: `tcp` for a proxy, else `pipe`.
    pub fn transport_of(&self, label: &str) -> &'static str {
        self.lock()
            .servers
            .get(label)
            .and_then(|book| book.transport)
            .unwrap_or(TRANSPORT_PIPE)
    }

    /// Joins a traffic source that runs inside the daemon (an HTTP proxy, src/proxy/) under
    /// `label`, observed over `network_transport`. It then reports and leaves through the
    /// [`TrafficConsumer`] methods with the returned identity, like a wrapper connection.
    pub fn attach_local(
        &self,
        label: &str,
        network_transport: &'static str,
    ) -> Result<WrapperInfo, String> {
        let taken = self.local_ids.fetch_add(1, Ordering::Relaxed);
        let info = WrapperInfo {
            connection: u64::MAX - taken,
            name: crate::metric_registry::labels::sanitize_label_value(label),
            server: None,
            command: String::new(),
            args: Vec::new(),
            wrapper_version: env!("CARGO_PKG_VERSION").to_string(),
            instance: format!("local-{taken}"),
            peer_uid: None,
            peer_pid: None,
        };
        self.connected(&info)?;
        if let Some(book) = self.lock().servers.get_mut(info.label()) {
            book.transport = Some(network_transport);
        }
        Ok(info)
    }
}

/// A consumer that also takes traffic sources running inside the daemon (the HTTP proxies of
/// src/proxy/), which report through the [`TrafficConsumer`] methods like wrappers.
pub trait LocalTraffic: TrafficConsumer + std::fmt::Debug {
    /// Joins a local source under `label`, observed over `network_transport`.
    fn attach_local(
        &self,
        label: &str,
        network_transport: &'static str,
    ) -> Result<WrapperInfo, String>;
}

impl LocalTraffic for TrafficBook {
    fn attach_local(
        &self,
        label: &str,
        network_transport: &'static str,
    ) -> Result<WrapperInfo, String> {
        TrafficBook::attach_local(self, label, network_transport)
    }
}

impl TrafficConsumer for TrafficBook {
    fn connected(&self, wrapper: &WrapperInfo) -> Result<(), String> {
        let mut inner = self.lock();
        let label = wrapper.label().to_string();
        if !inner.servers.contains_key(&label) {
            if inner.servers.len() >= MAX_SERVERS {
                return Err(format!(
                    "{MAX_SERVERS} server labels already; use --name to group wrappers"
                ));
            }
            inner.servers.insert(label.clone(), ServerBook::default());
        }
        inner.live.insert(
            wrapper.connection,
            Live {
                server: label,
                state: TrafficState::default(),
            },
        );
        Ok(())
    }

    fn report(&self, wrapper: &WrapperInfo, delta: &TrafficTotals, state: &TrafficState) {
        self.record(wrapper, delta, state);
    }

    fn exited(&self, wrapper: &WrapperInfo, status: i32) {
        let mut inner = self.lock();
        if let Some(book) = inner.servers.get_mut(wrapper.label()) {
            *book.exits.entry(status).or_default() += 1;
        }
    }

    fn disconnected(&self, wrapper: &WrapperInfo) {
        self.lock().live.remove(&wrapper.connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::totals::{Peer, RequestStats};

    fn wrapper(connection: u64, name: &str, server: Option<&str>) -> WrapperInfo {
        WrapperInfo {
            connection,
            name: name.into(),
            server: server.map(str::to_string),
            command: "node".into(),
            args: vec![],
            wrapper_version: "0".into(),
            instance: format!("{connection}"),
            peer_uid: None,
            peer_pid: None,
        }
    }

    fn call(tool: &str, started: u64) -> TrafficTotals {
        let mut t = TrafficTotals::default();
        t.requests.insert(
            RequestKey {
                origin: Peer::Client,
                method: "tools/call".into(),
                tool: Some(tool.into()),
            },
            RequestStats {
                started,
                ..RequestStats::default()
            },
        );
        t
    }

    #[test]
    fn wrappers_of_one_server_add_up_and_gauges_leave_with_them() {
        let book = TrafficBook::default();
        let a = wrapper(1, "claude", Some("memory"));
        let b = wrapper(2, "cursor", Some("memory"));
        book.connected(&a).expect("admitted");
        book.connected(&b).expect("admitted");
        let state = TrafficState {
            session_active: true,
            in_flight: call("echo", 0)
                .requests
                .into_keys()
                .map(|k| (k, 2))
                .collect(),
            ..TrafficState::default()
        };
        book.report(&a, &call("echo", 3), &state);
        book.report(&b, &call("echo", 4), &TrafficState::default());
        let memory = book.server("memory").expect("memory");
        let key = call("echo", 0).requests.into_keys().next().expect("key");
        assert_eq!(memory.totals.requests[&key].started, 7);
        assert_eq!(memory.in_flight[&key], 2);
        assert_eq!((memory.wrappers, memory.sessions_active), (2, 1));
        assert_eq!(memory.protocols[&("unknown".into(), "unknown".into())], 2);

        book.exited(&a, 0);
        book.disconnected(&a);
        let memory = book.server("memory").expect("memory");
        assert_eq!(memory.totals.requests[&key].started, 7, "counters stay");
        assert!(memory.in_flight.is_empty(), "gauges go with the wrapper");
        assert_eq!(memory.wrappers, 1);
        assert_eq!(memory.exits[&0], 1);
    }

    #[test]
    fn a_forgotten_label_counts_again_from_zero() {
        let book = TrafficBook::default();
        let w = wrapper(1, "claude", Some("memory"));
        book.connected(&w).expect("admitted");
        book.report(&w, &call("echo", 3), &TrafficState::default());
        book.forget("memory");
        assert!(book.server("memory").is_none());
        book.report(&w, &call("echo", 2), &TrafficState::default());
        let key = call("echo", 0).requests.into_keys().next().expect("key");
        let memory = book.server("memory").expect("memory");
        assert_eq!(memory.totals.requests[&key].started, 2);
        assert_eq!(memory.wrappers, 1);
    }

    #[test]
    fn an_unjoined_wrapper_is_labelled_by_its_name() {
        let book = TrafficBook::default();
        let w = wrapper(1, "adhoc", None);
        book.connected(&w).expect("admitted");
        book.report(&w, &call("x", 1), &TrafficState::default());
        assert!(book.server("adhoc").is_some());
    }

    #[test]
    fn local_sources_get_their_transport_and_ids_no_wrapper_has() {
        let book = TrafficBook::default();
        let proxy = book.attach_local("web", "tcp").expect("admitted");
        let other = book.attach_local("web2", "tcp").expect("admitted");
        assert_ne!(proxy.connection, other.connection);
        assert!(
            proxy.connection > u64::MAX / 2,
            "far from the receiver's ids"
        );
        book.connected(&wrapper(1, "stdio", None))
            .expect("admitted");
        book.report(&proxy, &call("echo", 2), &TrafficState::default());
        let web = book.server("web").expect("web");
        assert_eq!((web.network_transport, web.wrappers), ("tcp", 1));
        assert_eq!(
            book.server("stdio").expect("stdio").network_transport,
            "pipe"
        );
        book.disconnected(&proxy);
        assert_eq!(book.server("web").expect("web").wrappers, 0);
    }

    #[test]
    fn server_labels_are_capped() {
        let book = TrafficBook::default();
        for i in 0..MAX_SERVERS as u64 {
            book.connected(&wrapper(i, &format!("s{i}"), None))
                .expect("admitted");
        }
        assert!(book.connected(&wrapper(9999, "one-more", None)).is_err());
        assert!(
            book.connected(&wrapper(10000, "s1", None)).is_ok(),
            "a known label still joins"
        );
    }

    #[test]
    fn tools_are_capped_per_server_across_wrappers() {
        let book = TrafficBook::default();
        let a = wrapper(1, "a", Some("s"));
        let b = wrapper(2, "b", Some("s"));
        book.connected(&a).expect("admitted");
        book.connected(&b).expect("admitted");
        for i in 0..80 {
            book.report(&a, &call(&format!("a{i}"), 1), &TrafficState::default());
            book.report(&b, &call(&format!("b{i}"), 1), &TrafficState::default());
        }
        let s = book.server("s").expect("s");
        assert_eq!(
            s.totals.requests.len(),
            crate::probe::metrics::MAX_TOOL_LABELS_PER_SERVER + 1
        );
        let started: u64 = s.totals.requests.values().map(|r| r.started).sum();
        assert_eq!(started, 160, "nothing is lost to the cap, only folded");
    }
}
