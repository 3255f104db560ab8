//! Liveness and readiness sequences; each probe returns a [`ProbeOutcome`] with stage timings.

pub mod catalog;
pub mod catalog_metrics;
mod classify;
pub mod config;
pub mod deadline;
mod listings;
pub mod metrics;
pub mod module;
pub mod narrative;
mod outcome;
mod references;
mod restart;
mod run;
pub mod tools_lock;

pub use classify::{classify, session_is_broken};
pub use config::{CheckType, ServerConfig, ToolCallCheck, TransportKind};
pub use outcome::{
    CatalogSummary, FailureClass, ProbeFailure, ProbeOutcome, ServerIdentity, Stage,
};
pub use references::UnsetVariable;
pub use run::ServerProbe;
