//! The one place that decides a server's health, from observations. Pure and table-tested.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::probe::{FailureClass, ProbeOutcome};

/// The playbook's health scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    /// Status cannot be determined (no complete observation yet).
    Unknown,
    /// Critical issues: the probe failed.
    Unhealthy,
    /// Works, with non-critical issues (slow, warnings).
    Degraded,
    /// All systems operational.
    Healthy,
}

impl HealthStatus {
    /// The numeric code of every `*_status` gauge: 2, 1, 0, -1.
    pub fn code(self) -> i64 {
        match self {
            HealthStatus::Healthy => 2,
            HealthStatus::Degraded => 1,
            HealthStatus::Unhealthy => 0,
            HealthStatus::Unknown => -1,
        }
    }

    /// The word shown to operators.
    pub fn word(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "HEALTHY",
            HealthStatus::Degraded => "DEGRADED",
            HealthStatus::Unhealthy => "UNHEALTHY",
            HealthStatus::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// Why a server is not HEALTHY: the bounded vocabulary of `mcp_server_health_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthReason {
    /// The probe failed.
    ProbeFailed,
    /// A critical dependency is down.
    CriticalDependencyDown,
    /// A non-critical dependency is down.
    DependencyDown,
    /// A dependency is degraded (low space, rate limited...).
    DependencyDegraded,
    /// The probe succeeded over the latency threshold.
    Slow,
    /// The probe succeeded with warnings (e.g. ping unsupported).
    Warnings,
    /// The server refused (HTTP 401) the credential it had accepted before: expired, revoked
    /// or rotated on one side only.
    CredentialRejected,
    /// No complete observation: no probe yet, or a dependency not (yet) checkable.
    NoObservation,
    /// The tool catalog differs from its approved lock (`tools_lock`, docs/tool-integrity.md).
    ToolsUnapproved,
    /// The server wants an OAuth token only a person can obtain (docs/auth.md).
    LoginRequired,
    /// The server's OAuth metadata or token endpoint is unreachable (docs/auth.md).
    AuthServerDown,
}

impl HealthReason {
    /// Every reason, for label bookkeeping.
    pub const ALL: [HealthReason; 11] = [
        HealthReason::ProbeFailed,
        HealthReason::CredentialRejected,
        HealthReason::CriticalDependencyDown,
        HealthReason::DependencyDown,
        HealthReason::DependencyDegraded,
        HealthReason::Slow,
        HealthReason::Warnings,
        HealthReason::NoObservation,
        HealthReason::ToolsUnapproved,
        HealthReason::LoginRequired,
        HealthReason::AuthServerDown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthReason::ProbeFailed => "probe_failed",
            HealthReason::CriticalDependencyDown => "critical_dependency_down",
            HealthReason::DependencyDown => "dependency_down",
            HealthReason::DependencyDegraded => "dependency_degraded",
            HealthReason::Slow => "slow",
            HealthReason::Warnings => "warnings",
            HealthReason::CredentialRejected => "credential_rejected",
            HealthReason::NoObservation => "no_observation",
            HealthReason::ToolsUnapproved => "tools_unapproved",
            HealthReason::LoginRequired => "login_required",
            HealthReason::AuthServerDown => "auth_server_down",
        }
    }
}

/// A status with the reasons that led to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Why, in words; empty when healthy.
    pub reasons: Vec<String>,
    /// Why, as codes (sorted, distinct); empty when healthy.
    pub codes: Vec<HealthReason>,
}

/// What the health model needs to know about one dependency of a server.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyHealth<'a> {
    /// Its name.
    pub name: &'a str,
    /// Down makes the server UNHEALTHY (true) or DEGRADED (false).
    pub critical: bool,
    /// Its last check (UNKNOWN before the first, or when the check could not run).
    pub status: HealthStatus,
    /// What the check observed, if anything went wrong.
    pub reason: Option<&'a str>,
}

/// A server's tool catalog that differs from its approved lock, as the health model weighs it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnapprovedTools<'a> {
    /// What differs, in words ("added `x`, modified `y` (description)").
    pub summary: &'a str,
    /// UNHEALTHY (`on_mismatch = "unhealthy"`) rather than DEGRADED.
    pub critical: bool,
}

/// Decides health from the last probe of a server alone (no dependencies).
pub fn assess(last_probe: Option<&ProbeOutcome>, degraded_latency: Duration) -> Health {
    assess_with_dependencies(last_probe, degraded_latency, &[])
}

/// Decides health from the last probe of a server (`None` before the first one completed) and
/// the last checks of its dependencies. The playbook's model:
///
/// - UNHEALTHY: the probe failed, or a critical dependency is down;
/// - otherwise UNKNOWN: no probe has completed yet, or a dependency has no usable check yet
///   (not checked yet, or the check could not run);
/// - otherwise DEGRADED: a non-critical dependency is down, any dependency is degraded, the
///   latency is over `degraded_latency`, or the probe carried warnings;
/// - otherwise HEALTHY.
///
/// Every reason found is reported, whichever decided the status.
pub fn assess_with_dependencies(
    last_probe: Option<&ProbeOutcome>,
    degraded_latency: Duration,
    dependencies: &[DependencyHealth<'_>],
) -> Health {
    assess_observations(last_probe, false, degraded_latency, dependencies, None)
}

/// [`assess_with_dependencies`] with what only a server's memory knows (decided in
/// `src/assessment/mod.rs`):
/// - `credential_rejected` when the last probe's 401 refused a credential that earlier probes
///   got through with. A failed probe whose credential was rejected reports
///   `credential_rejected` beside `probe_failed`; the status is UNHEALTHY either way.
/// - `unapproved`: a tool catalog that differs from its approved lock makes the server
///   DEGRADED, or UNHEALTHY when `critical` (reason `tools_unapproved`), whatever the probe
///   said: the catalog is the last one listed.
pub fn assess_observations(
    last_probe: Option<&ProbeOutcome>,
    credential_rejected: bool,
    degraded_latency: Duration,
    dependencies: &[DependencyHealth<'_>],
    unapproved: Option<&UnapprovedTools<'_>>,
) -> Health {
    let mut found: Vec<(HealthReason, String)> = Vec::new();
    match last_probe {
        None => found.push((
            HealthReason::NoObservation,
            "no probe has completed yet".into(),
        )),
        Some(probe) => match &probe.failure {
            Some(failure) => {
                found.push((HealthReason::ProbeFailed, failure.to_string()));
                // The prober's own OAuth client names the cause (docs/auth.md).
                let oauth_reason = match failure.class {
                    FailureClass::LoginRequired => Some(HealthReason::LoginRequired),
                    FailureClass::AuthServerDown => Some(HealthReason::AuthServerDown),
                    FailureClass::CredentialRejected => Some(HealthReason::CredentialRejected),
                    _ => None,
                };
                if let Some(reason) = oauth_reason {
                    found.push((reason, failure.reason.clone()));
                } else if credential_rejected {
                    found.push((
                        HealthReason::CredentialRejected,
                        "credential rejected: the server answered 401 to the credential it accepted before (expired, revoked or rotated); renew it".into(),
                    ));
                }
            }
            None => {
                for warning in &probe.warnings {
                    found.push((HealthReason::Warnings, warning.clone()));
                }
                if let Some(latency) = probe.latency
                    && latency > degraded_latency
                {
                    found.push((
                        HealthReason::Slow,
                        format!(
                            "slow: {} ms latency is over the {} ms threshold",
                            latency.as_millis(),
                            degraded_latency.as_millis()
                        ),
                    ));
                }
            }
        },
    }
    for dep in dependencies {
        let detail = dep.reason.map(|r| format!(": {r}")).unwrap_or_default();
        match dep.status {
            HealthStatus::Healthy => {}
            HealthStatus::Degraded => found.push((
                HealthReason::DependencyDegraded,
                format!("dependency {} is degraded{detail}", dep.name),
            )),
            HealthStatus::Unhealthy if dep.critical => found.push((
                HealthReason::CriticalDependencyDown,
                format!("critical dependency {} is down{detail}", dep.name),
            )),
            HealthStatus::Unhealthy => found.push((
                HealthReason::DependencyDown,
                format!("dependency {} is down (not critical){detail}", dep.name),
            )),
            HealthStatus::Unknown => found.push((
                HealthReason::NoObservation,
                match dep.reason {
                    Some(r) => format!("dependency {} could not be checked: {r}", dep.name),
                    None => format!("dependency {} has not been checked yet", dep.name),
                },
            )),
        }
    }
    if let Some(tools) = unapproved {
        found.push((
            HealthReason::ToolsUnapproved,
            format!(
                "tool definitions differ from the approved lock: {}",
                tools.summary
            ),
        ));
    }
    let has = |code: HealthReason| found.iter().any(|(c, _)| *c == code);
    let critical_tools = unapproved.is_some_and(|t| t.critical);
    let status = if has(HealthReason::ProbeFailed)
        || has(HealthReason::CredentialRejected)
        || has(HealthReason::CriticalDependencyDown)
        || critical_tools
    {
        HealthStatus::Unhealthy
    } else if has(HealthReason::NoObservation) {
        HealthStatus::Unknown
    } else if found.is_empty() {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded
    };
    let mut codes: Vec<HealthReason> = found.iter().map(|(c, _)| *c).collect();
    codes.sort();
    codes.dedup();
    Health {
        status,
        reasons: found.into_iter().map(|(_, text)| text).collect(),
        codes,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::probe::{FailureClass, Stage};

    fn probe(ok: bool, warnings: &[&str], latency_ms: u64) -> ProbeOutcome {
        let mut p = ProbeOutcome::started(SystemTime::now());
        p.up = ok;
        p.success = ok;
        p.latency = Some(Duration::from_millis(latency_ms));
        p.warnings = warnings.iter().map(|w| w.to_string()).collect();
        if !ok {
            p.fail(Stage::Ping, FailureClass::Down, "no answer");
        }
        p
    }

    #[test]
    fn oauth_failures_name_their_reason_beside_probe_failed() {
        for (class, reason) in [
            (FailureClass::LoginRequired, HealthReason::LoginRequired),
            (FailureClass::AuthServerDown, HealthReason::AuthServerDown),
            (
                FailureClass::CredentialRejected,
                HealthReason::CredentialRejected,
            ),
        ] {
            let mut p = ProbeOutcome::started(SystemTime::now());
            p.fail(Stage::Handshake, class, "authorization failed: x");
            let health = assess(Some(&p), Duration::from_secs(1));
            assert_eq!(health.status, HealthStatus::Unhealthy);
            assert_eq!(health.codes, vec![HealthReason::ProbeFailed, reason]);
        }
        assert_eq!(HealthReason::LoginRequired.as_str(), "login_required");
        assert_eq!(HealthReason::AuthServerDown.as_str(), "auth_server_down");
    }

    #[test]
    fn table() {
        let threshold = Duration::from_millis(100);
        let cases: Vec<(Option<ProbeOutcome>, HealthStatus)> = vec![
            (None, HealthStatus::Unknown),
            (Some(probe(true, &[], 10)), HealthStatus::Healthy),
            (Some(probe(true, &[], 100)), HealthStatus::Healthy),
            (Some(probe(true, &[], 101)), HealthStatus::Degraded),
            (
                Some(probe(true, &["ping unsupported"], 10)),
                HealthStatus::Degraded,
            ),
            (Some(probe(false, &[], 10)), HealthStatus::Unhealthy),
            (Some(probe(false, &["x"], 500)), HealthStatus::Unhealthy),
        ];
        for (input, want) in cases {
            let got = assess(input.as_ref(), threshold);
            assert_eq!(got.status, want, "{input:?} -> {got:?}");
            assert_eq!(
                got.reasons.is_empty(),
                want == HealthStatus::Healthy,
                "{got:?}"
            );
        }
    }

    fn dep(critical: bool, status: HealthStatus) -> DependencyHealth<'static> {
        DependencyHealth {
            name: "d",
            critical,
            status,
            reason: (status != HealthStatus::Healthy).then_some("observed"),
        }
    }

    fn letter(status: HealthStatus) -> char {
        match status {
            HealthStatus::Healthy => 'H',
            HealthStatus::Degraded => 'D',
            HealthStatus::Unhealthy => 'U',
            HealthStatus::Unknown => '?',
        }
    }

    /// The five kinds of probe observation the model distinguishes.
    fn probes() -> Vec<(&'static str, Option<ProbeOutcome>)> {
        vec![
            ("none", None),
            ("failed", Some(probe(false, &[], 10))),
            ("ok", Some(probe(true, &[], 10))),
            ("slow", Some(probe(true, &[], 500))),
            ("warning", Some(probe(true, &["ping unsupported"], 10))),
        ]
    }

    /// Every dependency variant: none, then critical and non-critical in each status.
    fn dependency_variants() -> Vec<Option<DependencyHealth<'static>>> {
        let statuses = [
            HealthStatus::Healthy,
            HealthStatus::Degraded,
            HealthStatus::Unhealthy,
            HealthStatus::Unknown,
        ];
        let mut out = vec![None];
        for critical in [true, false] {
            for status in statuses {
                out.push(Some(dep(critical, status)));
            }
        }
        out
    }

    #[test]
    fn every_probe_and_dependency_combination() {
        // Columns: no dependency; critical H D U ?; non-critical H D U ?.
        let expected = [
            ("none", "?   ? ? U ?   ? ? ? ?"),
            ("failed", "U   U U U U   U U U U"),
            ("ok", "H   H D U ?   H D D ?"),
            ("slow", "D   D D U ?   D D D ?"),
            ("warning", "D   D D U ?   D D D ?"),
        ];
        let threshold = Duration::from_millis(100);
        for ((name, probe), (row_name, row)) in probes().into_iter().zip(expected) {
            assert_eq!(name, row_name);
            let want: Vec<char> = row.chars().filter(|c| !c.is_whitespace()).collect();
            for (variant, want) in dependency_variants().into_iter().zip(want) {
                let deps: Vec<DependencyHealth<'_>> = variant.iter().cloned().collect();
                let got = assess_with_dependencies(probe.as_ref(), threshold, &deps);
                assert_eq!(
                    letter(got.status),
                    want,
                    "probe {name}, dependency {variant:?}: {got:?}"
                );
                assert_eq!(
                    got.reasons.is_empty(),
                    got.status == HealthStatus::Healthy,
                    "{got:?}"
                );
                assert_eq!(
                    got.codes.is_empty(),
                    got.status == HealthStatus::Healthy,
                    "{got:?}"
                );
            }
        }
    }

    #[test]
    fn reason_codes_name_each_cause() {
        let threshold = Duration::from_millis(100);
        let ok = probe(true, &[], 10);
        let cases = [
            (
                dep(true, HealthStatus::Unhealthy),
                HealthReason::CriticalDependencyDown,
            ),
            (
                dep(false, HealthStatus::Unhealthy),
                HealthReason::DependencyDown,
            ),
            (
                dep(true, HealthStatus::Degraded),
                HealthReason::DependencyDegraded,
            ),
            (
                dep(false, HealthStatus::Unknown),
                HealthReason::NoObservation,
            ),
        ];
        for (d, code) in cases {
            let got = assess_with_dependencies(Some(&ok), threshold, &[d]);
            assert_eq!(got.codes, vec![code], "{got:?}");
            assert!(got.reasons[0].contains("observed"), "{got:?}");
        }
        let failed = assess_with_dependencies(
            Some(&probe(false, &[], 10)),
            threshold,
            &[dep(true, HealthStatus::Unhealthy)],
        );
        assert_eq!(
            failed.codes,
            vec![
                HealthReason::ProbeFailed,
                HealthReason::CriticalDependencyDown
            ]
        );
        let slow = assess(Some(&probe(true, &["w"], 500)), threshold);
        assert_eq!(slow.codes, vec![HealthReason::Slow, HealthReason::Warnings]);
        assert_eq!(
            assess(None, threshold).codes,
            vec![HealthReason::NoObservation]
        );
    }

    /// Severity order for the monotonicity check: HEALTHY < DEGRADED < UNKNOWN < UNHEALTHY.
    fn severity(status: HealthStatus) -> u8 {
        match status {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            HealthStatus::Unknown => 2,
            HealthStatus::Unhealthy => 3,
        }
    }

    #[test]
    fn more_dependencies_never_improve_health_and_reasons_add_up() {
        let threshold = Duration::from_millis(100);
        let variants: Vec<DependencyHealth<'static>> =
            dependency_variants().into_iter().flatten().collect();
        for (name, probe) in probes() {
            for a in &variants {
                for b in &variants {
                    let one = assess_with_dependencies(
                        probe.as_ref(),
                        threshold,
                        std::slice::from_ref(a),
                    );
                    let other = assess_with_dependencies(
                        probe.as_ref(),
                        threshold,
                        std::slice::from_ref(b),
                    );
                    let both = assess_with_dependencies(
                        probe.as_ref(),
                        threshold,
                        &[a.clone(), b.clone()],
                    );
                    assert_eq!(
                        severity(both.status),
                        severity(one.status).max(severity(other.status)),
                        "probe {name}: {a:?} + {b:?} -> {both:?}"
                    );
                    let mut union: Vec<HealthReason> =
                        one.codes.iter().chain(&other.codes).copied().collect();
                    union.sort();
                    union.dedup();
                    assert_eq!(both.codes, union);
                }
            }
        }
    }

    #[test]
    fn a_rejected_credential_is_named_beside_the_failure_only_when_the_probe_failed() {
        let threshold = Duration::from_millis(100);
        let mut refused = probe(false, &[], 10);
        refused.fail(
            Stage::Handshake,
            FailureClass::AuthRequired,
            "server requires authorization (HTTP 401)",
        );
        let got = assess_observations(Some(&refused), true, threshold, &[], None);
        assert_eq!(got.status, HealthStatus::Unhealthy);
        assert_eq!(
            got.codes,
            vec![HealthReason::ProbeFailed, HealthReason::CredentialRejected]
        );
        assert!(got.reasons[1].contains("credential rejected"), "{got:?}");
        let first_time = assess_observations(Some(&refused), false, threshold, &[], None);
        assert_eq!(first_time.codes, vec![HealthReason::ProbeFailed]);
        let ok = assess_observations(Some(&probe(true, &[], 10)), true, threshold, &[], None);
        assert_eq!(
            ok.status,
            HealthStatus::Healthy,
            "a passing probe has no failure to explain"
        );
        assert_eq!(
            HealthReason::CredentialRejected.as_str(),
            "credential_rejected"
        );
    }

    #[test]
    fn unapproved_tools_degrade_or_fail_a_working_server() {
        let threshold = Duration::from_millis(100);
        let ok = probe(true, &[], 10);
        let tools = |critical| UnapprovedTools {
            summary: "added `exfil`",
            critical,
        };
        let degraded = assess_observations(Some(&ok), false, threshold, &[], Some(&tools(false)));
        assert_eq!(degraded.status, HealthStatus::Degraded);
        assert_eq!(degraded.codes, vec![HealthReason::ToolsUnapproved]);
        assert!(
            degraded.reasons[0].contains("added `exfil`"),
            "{degraded:?}"
        );
        let unhealthy = assess_observations(Some(&ok), false, threshold, &[], Some(&tools(true)));
        assert_eq!(unhealthy.status, HealthStatus::Unhealthy);
        let failed = probe(false, &[], 10);
        let both = assess_observations(Some(&failed), false, threshold, &[], Some(&tools(false)));
        assert_eq!(both.status, HealthStatus::Unhealthy);
        assert_eq!(
            both.codes,
            vec![HealthReason::ProbeFailed, HealthReason::ToolsUnapproved]
        );
        assert_eq!(
            assess_observations(Some(&ok), false, threshold, &[], None).status,
            HealthStatus::Healthy
        );
    }

    #[test]
    fn codes_follow_the_playbook() {
        assert_eq!(HealthStatus::Healthy.code(), 2);
        assert_eq!(HealthStatus::Degraded.code(), 1);
        assert_eq!(HealthStatus::Unhealthy.code(), 0);
        assert_eq!(HealthStatus::Unknown.code(), -1);
    }

    #[test]
    fn unhealthy_reason_names_class_and_stage() {
        let h = assess(Some(&probe(false, &[], 1)), Duration::from_secs(1));
        assert_eq!(h.reasons, vec!["down at ping: no answer".to_string()]);
    }
}
