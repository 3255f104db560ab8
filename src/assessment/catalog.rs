//! What a server's memory keeps of its tool catalog between probes, and the catalog news of a
//! probe: the per-tool differences from the previous catalog, the context cost (counted only
//! when the catalog changed), and the comparison with the approved lock
//! (docs/tool-integrity.md).

use std::sync::{Arc, OnceLock};

use crate::health::UnapprovedTools;
use crate::probe::ProbeOutcome;
use crate::probe::ServerConfig;
use crate::probe::catalog::{CatalogDefinitions, ContextCost, DefinitionChange};
use crate::probe::config::OnMismatch;
use crate::probe::tools_lock::{Approved, LockCheck};

/// The last catalog a server listed, with what it costs a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCatalog {
    /// Its fingerprints and text.
    pub definitions: Arc<CatalogDefinitions>,
    /// Bytes and tokens of its text, counted on first use: once per new catalog in the daemon
    /// (its metrics read it), never by a `check` that shows no cost.
    cost: OnceLock<ContextCost>,
}

impl KnownCatalog {
    /// A catalog whose cost is not counted yet.
    pub fn new(definitions: Arc<CatalogDefinitions>) -> Self {
        KnownCatalog {
            definitions,
            cost: OnceLock::new(),
        }
    }

    /// Bytes and tokens of the catalog text (the tokenizer runs on the first call only).
    pub fn cost(&self) -> &ContextCost {
        self.cost.get_or_init(|| ContextCost::of(&self.definitions))
    }
}

/// The catalog compared with the server's `tools_lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// The differences from the lock (every listed tool when the lock could not be read).
    pub check: LockCheck,
    /// Why the lock file could not be used, if it could not.
    pub error: Option<String>,
    /// What a difference does to health.
    pub on_mismatch: OnMismatch,
}

impl LockStatus {
    /// Tools that do not match the lock (`mcp_tools_unapproved`).
    pub fn unapproved(&self) -> usize {
        self.check.unapproved()
    }

    /// What differs, in words, with the lock's error first.
    pub fn summary(&self) -> String {
        match &self.error {
            Some(error) if self.check.matches() => error.clone(),
            Some(error) => format!("{error}; {}", self.check.summary()),
            None => self.check.summary(),
        }
    }

    /// The catalog differs from the lock (or the lock is unusable).
    pub fn mismatched(&self) -> bool {
        self.error.is_some() || !self.check.matches()
    }
}

/// What a probe told about the catalog.
#[derive(Debug, Clone, Default)]
pub struct CatalogNews {
    /// The catalog known after the probe (this probe's, or the last one listed).
    pub known: Option<Arc<KnownCatalog>>,
    /// Tools, prompts and resource templates that differ from the previous catalog (empty on
    /// the first listing).
    pub changes: Vec<DefinitionChange>,
    /// The comparison with the lock, when the server has one and a catalog is known.
    pub lock: Option<Arc<LockStatus>>,
    /// The mismatch with the lock is new (first seen, or different from the last one seen):
    /// the security monitor records one `tool_definition_mismatch` event per new mismatch.
    pub new_mismatch: bool,
}

/// The catalog part of a server's memory.
#[derive(Debug, Default)]
pub(super) struct CatalogMemory {
    known: Option<Arc<KnownCatalog>>,
    lock: Option<Arc<LockStatus>>,
}

impl CatalogMemory {
    /// Takes in the catalog of `outcome`, if it listed one.
    pub(super) fn observe(&mut self, server: &ServerConfig, outcome: &ProbeOutcome) -> CatalogNews {
        let Some(summary) = &outcome.catalog else {
            return self.unchanged();
        };
        let previous = self.known.clone();
        // A kind whose listing failed keeps its last known definitions, so what changed while
        // it could not be listed is found when it lists again.
        let listed = previous
            .as_ref()
            .and_then(|p| summary.definitions.filled_from(&p.definitions))
            .map_or_else(|| Arc::clone(&summary.definitions), Arc::new);
        let same = previous
            .as_ref()
            .is_some_and(|p| p.definitions.same_as(&listed));
        if same && self.lock.is_some() == server.tools_lock.is_some() {
            return self.unchanged();
        }
        let known = match previous.as_ref() {
            Some(p) if same => Arc::clone(p),
            _ => Arc::new(KnownCatalog::new(listed)),
        };
        let changes = previous
            .as_ref()
            .filter(|_| !same)
            .map(|p| crate::probe::catalog::diff_catalogs(&*p.definitions, &*known.definitions))
            .unwrap_or_default();
        let lock = lock_status(server, &known.definitions).map(Arc::new);
        let new_mismatch = lock.as_ref().is_some_and(|l| {
            l.mismatched() && self.lock.as_deref().map(|old| &old.check) != Some(&l.check)
        });
        self.known = Some(Arc::clone(&known));
        self.lock = lock.clone();
        CatalogNews {
            known: Some(known),
            changes,
            lock,
            new_mismatch,
        }
    }

    /// The news when nothing changed: what is known, nothing new.
    pub(super) fn unchanged(&self) -> CatalogNews {
        CatalogNews {
            known: self.known.clone(),
            changes: Vec::new(),
            lock: self.lock.clone(),
            new_mismatch: false,
        }
    }
}

/// The comparison of `listed` with the server's lock, `None` without a lock.
pub fn lock_status(server: &ServerConfig, listed: &CatalogDefinitions) -> Option<LockStatus> {
    let lock = server.tools_lock.as_ref()?;
    let empty = Approved::default();
    let (approved, error) = match &lock.approved {
        Ok(approved) => (approved.as_ref(), None),
        Err(error) => (&empty, Some(error.clone())),
    };
    Some(LockStatus {
        check: LockCheck::compare(approved, listed),
        error,
        on_mismatch: lock.on_mismatch,
    })
}

/// What the health model weighs of a lock status: `None` when it matches or only records.
pub fn weighed<'a>(lock: Option<&LockStatus>, summary: &'a str) -> Option<UnapprovedTools<'a>> {
    let lock = lock.filter(|l| l.mismatched())?;
    match lock.on_mismatch {
        OnMismatch::Record => None,
        OnMismatch::Degraded => Some(UnapprovedTools {
            summary,
            critical: false,
        }),
        OnMismatch::Unhealthy => Some(UnapprovedTools {
            summary,
            critical: true,
        }),
    }
}
