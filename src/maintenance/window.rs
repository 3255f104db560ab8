//! A maintenance window and the rules about it: which servers it covers and when it holds.

use serde::{Deserialize, Serialize};

use crate::store::maintenance::MaintenanceRow;

/// The servers a window covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One server, by its configured name.
    Server(String),
    /// Every server (`--all`), including servers added while it holds.
    All,
}

impl Scope {
    /// Whether `server` is covered.
    pub fn covers(&self, server: &str) -> bool {
        match self {
            Scope::Server(name) => name == server,
            Scope::All => true,
        }
    }

    /// The store's `server` column: the name, or `None` for every server.
    pub fn as_column(&self) -> Option<String> {
        match self {
            Scope::Server(name) => Some(name.clone()),
            Scope::All => None,
        }
    }

    /// From the store's `server` column.
    pub fn from_column(server: Option<String>) -> Scope {
        server.map_or(Scope::All, Scope::Server)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Server(name) => f.write_str(name),
            Scope::All => f.write_str("(all servers)"),
        }
    }
}

/// One maintenance window, as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Id (the store's row id; counted in memory when the store is disabled).
    pub id: i64,
    /// The server, or `null` for every server.
    pub server: Option<String>,
    /// Unix seconds it starts.
    pub starts_at: f64,
    /// Unix seconds it ends (moved to the moment it was ended, when ended early).
    pub ends_at: f64,
    /// Why, as the operator wrote it.
    pub reason: String,
    /// Ended before its planned end.
    pub ended_early: bool,
    /// The Alertmanager silence made for it, when `[alertmanager]` is configured and reachable.
    pub silence_id: Option<String>,
}

impl Window {
    /// Which servers it covers.
    pub fn scope(&self) -> Scope {
        Scope::from_column(self.server.clone())
    }

    /// Whether it holds at `now` (start inclusive, end exclusive).
    pub fn holds_at(&self, now: f64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// Whether it holds for `server` at `now`.
    pub fn silences(&self, server: &str, now: f64) -> bool {
        self.holds_at(now) && self.scope().covers(server)
    }
}

impl From<MaintenanceRow> for Window {
    fn from(row: MaintenanceRow) -> Self {
        Window {
            id: row.id,
            server: row.server,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            reason: row.reason,
            ended_early: row.ended_early,
            silence_id: row.silence_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(server: Option<&str>) -> Window {
        Window {
            id: 1,
            server: server.map(String::from),
            starts_at: 100.0,
            ends_at: 200.0,
            reason: "upgrade".into(),
            ended_early: false,
            silence_id: None,
        }
    }

    #[test]
    fn a_window_holds_from_its_start_until_before_its_end_for_its_servers() {
        let w = window(Some("a"));
        assert!(!w.silences("a", 99.9));
        assert!(w.silences("a", 100.0));
        assert!(w.silences("a", 199.9));
        assert!(!w.silences("a", 200.0));
        assert!(!w.silences("b", 150.0));
        let all = window(None);
        assert_eq!(all.scope(), Scope::All);
        assert!(all.silences("b", 150.0) && all.silences("any", 150.0));
    }

    #[test]
    fn scope_round_trips_through_the_store_column() {
        for scope in [Scope::All, Scope::Server("db".into())] {
            assert_eq!(Scope::from_column(scope.as_column()), scope);
        }
        assert_eq!(Scope::All.to_string(), "(all servers)");
    }
}
