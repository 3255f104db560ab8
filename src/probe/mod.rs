//! Liveness and readiness sequences; each probe returns a [`ProbeOutcome`] with stage timings.

mod classify;
pub mod deadline;
mod outcome;
mod restart;
mod run;

pub use classify::{classify, session_is_broken};
pub use outcome::{
    CatalogSummary, FailureClass, ProbeFailure, ProbeOutcome, ServerIdentity, Stage,
};
pub use run::ServerProbe;
