//! The liveness and readiness sequences, run on a per-server session kept between probes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::auth::{AuthReport, Authorizer};
use crate::credentials::{CredentialExpiry, CredentialKind, CredentialReport};
use crate::mcp::{Era, Limits, McpError, McpSession, Notification, TransportSpec, WireCounters};
use crate::otel::TraceSpan;
use crate::process::supervise::SupervisionStatus;

use super::catalog::{CatalogDefinitions, definitions_by_name};
use super::classify::{classify, session_is_broken};
use super::config::{CheckType, ServerConfig};
use super::listings;
use super::outcome::{CatalogSummary, FailureClass, ProbeOutcome, ServerIdentity, Stage};
use super::restart::ChildSupervision;

/// JSON-RPC "method not found": a server without `ping` still proves it is alive by answering.
const METHOD_NOT_FOUND: i64 = -32601;

/// The state of one monitored server between probes: the live session (a stdio child or an
/// HTTP session), the era learned from the first handshake, and the identity it reported.
pub struct ServerProbe {
    config: Arc<ServerConfig>,
    limits: Limits,
    counters: Arc<WireCounters>,
    session: Option<McpSession>,
    era_hint: Option<Era>,
    identity: Option<ServerIdentity>,
    notifications: Vec<Notification>,
    last_stderr: String,
    /// Restart backoff and crash-loop detection of a stdio child.
    supervisor: Option<ChildSupervision>,
    stderr_lines: Vec<String>,
    /// The credentials of the live session (or of the last attempt to open one).
    credentials: CredentialReport,
    /// The root span of the running probe, when traces are on (docs/tracing.md).
    trace: Option<TraceSpan>,
}

impl ServerProbe {
    /// Prepares probing of `config`; nothing is spawned or connected until the first probe.
    pub fn new(config: Arc<ServerConfig>, mut limits: Limits, counters: Arc<WireCounters>) -> Self {
        // The OAuth client lives as long as the prober, so its token outlives one probe and
        // is renewed before the next probe would find it expired (docs/auth.md).
        limits.auth = config
            .auth
            .clone()
            .map(|oauth| Authorizer::new(oauth, config.interval + config.timeout));
        ServerProbe {
            limits,
            counters,
            session: None,
            era_hint: None,
            identity: None,
            notifications: Vec::new(),
            last_stderr: String::new(),
            supervisor: matches!(config.transport, TransportSpec::Stdio { .. })
                .then(|| ChildSupervision::new(config.process.restart)),
            config,
            stderr_lines: Vec::new(),
            credentials: CredentialReport::default(),
            trace: None,
        }
    }

    /// Restart supervision of a stdio server (`None` for http/sse).
    pub fn supervision(&self) -> Option<SupervisionStatus> {
        self.supervisor.as_ref().map(|s| s.status(Instant::now()))
    }

    /// When a stdio child may be respawned, while a restart backoff is pending.
    pub fn next_restart_at(&self) -> Option<Instant> {
        self.supervisor
            .as_ref()
            .filter(|s| self.session.is_none() && !s.running())
            .and_then(ChildSupervision::next_spawn_at)
    }

    /// The server's OAuth client (`auth = { type = "oauth" }`), shared by its sessions.
    pub fn authorizer(&self) -> Option<&Authorizer> {
        self.limits.auth.as_ref()
    }

    /// The server's configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// The live counters of this server's wire traffic.
    pub fn counters(&self) -> &Arc<WireCounters> {
        &self.counters
    }

    /// PID of the stdio child, when one is running.
    pub fn pid(&self) -> Option<u32> {
        self.session.as_ref().and_then(McpSession::pid)
    }

    /// Notifications received since the last call (drains).
    pub fn take_notifications(&mut self) -> Vec<Notification> {
        std::mem::take(&mut self.notifications)
    }

    /// Complete stderr lines of the child since the last call (drains; bounded like
    /// notifications), including those written by a session that ended.
    pub fn take_stderr_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.stderr_lines)
    }

    /// The tail of the child's stderr, kept after the child is gone.
    pub fn stderr_tail(&self) -> &str {
        &self.last_stderr
    }

    /// Runs one probe of the configured check type; never takes longer than the server's
    /// timeout plus the time to start a shutdown in the background.
    pub async fn probe(&mut self) -> ProbeOutcome {
        self.probe_with(self.config.check).await
    }

    /// Runs one probe of `check`, in a trace of its own when traces are on.
    pub async fn probe_with(&mut self, check: CheckType) -> ProbeOutcome {
        use opentelemetry::KeyValue;
        self.trace = TraceSpan::root(
            format!("probe {}", self.config.name),
            vec![
                KeyValue::new("mcp_exporter.server", self.config.name.clone()),
                KeyValue::new("mcp_exporter.check", check.as_str()),
                KeyValue::new("mcp_exporter.transport", self.config.transport.kind()),
            ],
        );
        let mut outcome = self.probe_untraced(check).await;
        if let Some(session) = self.session.as_mut() {
            session.set_trace_parent(None);
        }
        if let Some(span) = self.trace.take() {
            end_probe_span(span, &mut outcome);
        }
        outcome
    }

    async fn probe_untraced(&mut self, check: CheckType) -> ProbeOutcome {
        let started = Instant::now();
        let deadline = started + self.config.timeout;
        let mut outcome = ProbeOutcome::started(SystemTime::now());
        if !self.restart_allowed(&mut outcome) {
            outcome.duration = started.elapsed();
            outcome.identity = self.identity.clone();
            return outcome;
        }
        self.run_stages(check, deadline, &mut outcome).await;
        self.supervise_after(&mut outcome);
        if let Some(session) = self.session.as_mut() {
            outcome.requests.extend(session.take_records());
            outcome.http_phases = session.take_http_phases();
            outcome.tls = outcome.tls.or(session.take_tls());
            if session.take_reinitializations() > 0 {
                outcome.new_session = true;
            }
            self.notifications.extend(session.take_notifications());
            self.stderr_lines.extend(session.take_stderr_lines());
            self.last_stderr = session.stderr_tail(self.limits.stderr_keep_bytes);
        }
        let excess = self
            .stderr_lines
            .len()
            .saturating_sub(self.limits.max_notifications_kept);
        self.stderr_lines.drain(..excess);
        let excess = self
            .notifications
            .len()
            .saturating_sub(self.limits.max_notifications_kept);
        self.notifications.drain(..excess);
        outcome.identity = self.identity.clone();
        outcome.credentials.presented = self.credentials.presented;
        outcome.credentials.expiries = self.credentials.expiries.clone();
        if let Some(auth) = &self.limits.auth {
            note_authorization(&mut outcome, auth.take_report());
        }
        outcome.duration = started.elapsed();
        outcome
    }

    /// False (with the outcome failed) while a dead stdio child waits for its restart backoff.
    fn restart_allowed(&self, outcome: &mut ProbeOutcome) -> bool {
        match self.supervisor.as_ref() {
            Some(sup) if self.session.is_none() => sup.allow_probe(Instant::now(), outcome),
            _ => true,
        }
    }

    /// Tells the supervisor when the child died during this probe; marks crash loops. A child
    /// that was never spawned (its `${VAR}` unset) is not running, so nothing is recorded.
    fn supervise_after(&mut self, outcome: &mut ProbeOutcome) {
        if let Some(sup) = self.supervisor.as_mut()
            && sup.running()
            && self.session.is_none()
        {
            sup.record_exit(&self.config.name, Instant::now(), outcome);
        }
    }

    async fn run_stages(
        &mut self,
        check: CheckType,
        deadline: Instant,
        outcome: &mut ProbeOutcome,
    ) {
        if self.session.is_none() && !self.connect(deadline, outcome).await {
            return;
        }
        if let Some(session) = self.session.as_mut() {
            session.set_trace_parent(self.trace.clone());
        }
        // Liveness: ping on the live session. A new session already proved liveness by its
        // handshake, but the ping is cheap and gives the round-trip time operators compare.
        if !self.stage_ping(deadline, outcome).await {
            return;
        }
        if check == CheckType::Readiness && !self.stage_tools(deadline, outcome).await {
            return;
        }
        outcome.success = outcome.failure.is_none();
    }

    /// Spawns or connects and performs the handshake. Returns false when the probe must stop.
    async fn connect(&mut self, deadline: Instant, outcome: &mut ProbeOutcome) -> bool {
        let spec = match self.config.resolve_transport() {
            Ok(spec) => spec,
            Err(unset) => {
                self.credentials = CredentialReport::default();
                outcome.fail(
                    Stage::Config,
                    FailureClass::Misconfigured,
                    format!("{unset}; set it in the exporter's environment"),
                );
                return false;
            }
        };
        // Only now is a child really started: a server whose transport cannot be resolved is
        // misconfigured (above), not a spawn, an exit or a restart.
        self.credentials = CredentialReport::of_transport(&spec);
        if let Some(auth) = &self.limits.auth {
            match self.config.resolve_auth() {
                Ok(client) => auth.set_client(client.unwrap_or_default()),
                Err(unset) => {
                    outcome.fail(
                        Stage::Config,
                        FailureClass::Misconfigured,
                        format!("{unset}; set it in the exporter's environment"),
                    );
                    return false;
                }
            }
        }
        if let Some(sup) = self.supervisor.as_mut() {
            sup.spawning(&self.config.name);
        }
        let t = Instant::now();
        let span = self.trace.as_ref().map(|trace| {
            let name = match spec {
                TransportSpec::Stdio { .. } => "spawn",
                _ => "connect",
            };
            trace.child(name, opentelemetry::trace::SpanKind::Internal, Vec::new())
        });
        let opened = McpSession::open(&spec, self.limits.clone(), Arc::clone(&self.counters)).await;
        outcome.stages.push((Stage::Connect, t.elapsed()));
        let mut session = match opened {
            Ok(session) => {
                if let Some(span) = span {
                    span.end();
                }
                session
            }
            Err(err) => {
                let (class, reason) = classify(Stage::Connect, &err);
                if let Some(span) = span {
                    span.fail(err.error_type(), reason.clone());
                    span.end();
                }
                outcome.fail(Stage::Connect, class, reason);
                return false;
            }
        };
        session.set_trace_parent(self.trace.clone());
        let t = Instant::now();
        let handshake = session.handshake(self.era_hint, remaining(deadline)).await;
        let took = t.elapsed();
        outcome.stages.push((Stage::Handshake, took));
        match handshake {
            Ok(hs) => {
                outcome.up = true;
                outcome.new_session = true;
                outcome.latency = Some(took);
                outcome.notes.extend(hs.notes.iter().cloned());
                self.era_hint = Some(hs.era);
                let identity = ServerIdentity {
                    name: hs.server_name.clone(),
                    version: hs.server_version.clone(),
                    protocol_version: hs.protocol_version.clone(),
                    era: hs.era,
                };
                if self.identity.as_ref() != Some(&identity) {
                    tracing::info!(
                        server = %self.config.name,
                        server_name = %identity.name,
                        server_version = %identity.version,
                        protocol_version = %identity.protocol_version,
                        era = %identity.era,
                        "handshake complete"
                    );
                }
                self.identity = Some(identity);
                self.session = Some(session);
                true
            }
            Err(err) => {
                let (class, reason) = classify(Stage::Handshake, &err);
                outcome.fail(Stage::Handshake, class, reason);
                note_refusal(outcome, &err);
                // A remembered era may be stale (the server was upgraded): ask again next time.
                self.era_hint = None;
                outcome.requests.extend(session.take_records());
                outcome.http_phases = session.take_http_phases();
                outcome.tls = session.take_tls();
                self.stderr_lines.extend(session.take_stderr_lines());
                self.last_stderr = session.stderr_tail(self.limits.stderr_keep_bytes);
                self.retire(session);
                false
            }
        }
    }

    async fn stage_ping(&mut self, deadline: Instant, outcome: &mut ProbeOutcome) -> bool {
        let Some(session) = self.session.as_mut() else {
            return false;
        };
        let t = Instant::now();
        let result = session.ping(remaining(deadline)).await;
        outcome.stages.push((Stage::Ping, t.elapsed()));
        match result {
            Ok(rtt) => {
                outcome.up = true;
                outcome.latency = Some(rtt);
                true
            }
            Err(McpError::Rpc { code, .. }) if code == METHOD_NOT_FOUND => {
                // It answered, so it is alive; it just does not implement ping.
                outcome.up = true;
                outcome.warnings.push(
                    "ping unsupported (-32601); liveness measured from the error reply".into(),
                );
                outcome.latency = Some(t.elapsed());
                true
            }
            Err(err) => {
                outcome.up = false;
                let (class, reason) = classify(Stage::Ping, &err);
                outcome.fail(Stage::Ping, class, reason);
                note_refusal(outcome, &err);
                if session_is_broken(&err) {
                    self.drop_session();
                }
                false
            }
        }
    }

    async fn stage_tools(&mut self, deadline: Instant, outcome: &mut ProbeOutcome) -> bool {
        let Some(session) = self.session.as_mut() else {
            return false;
        };
        let t = Instant::now();
        let listed = session.list_tools(remaining(deadline)).await;
        outcome.stages.push((Stage::ListTools, t.elapsed()));
        let mut catalog = match listed {
            Ok(catalog) => catalog,
            Err(err) => {
                let (class, reason) = classify(Stage::ListTools, &err);
                outcome.fail(Stage::ListTools, class, reason);
                note_refusal(outcome, &err);
                if session_is_broken(&err) {
                    self.drop_session();
                }
                return false;
            }
        };
        if catalog.invalid_items > 0 {
            outcome.warnings.push(format!(
                "tools/list returned {} malformed tool(s) (missing name or inputSchema)",
                catalog.invalid_items
            ));
        }
        for rejected in &catalog.rejected {
            outcome.warnings.push(format!(
                "tools/list: tool `{}` left out, its definition breaks the protocol: {}",
                rejected.name, rejected.reason
            ));
        }
        if catalog.truncated {
            outcome.warnings.push(format!(
                "tools/list stopped at {} tools / {} pages (limits)",
                catalog.names.len(),
                catalog.pages
            ));
        }
        let missing: Vec<&str> = self
            .config
            .expected_tools
            .iter()
            .filter(|want| !catalog.names.iter().any(|have| have == *want))
            .map(String::as_str)
            .collect();
        let prompts = listings::list(
            session,
            listings::PROMPTS,
            remaining(deadline),
            &mut outcome.warnings,
        )
        .await;
        let templates = listings::list(
            session,
            listings::RESOURCE_TEMPLATES,
            remaining(deadline),
            &mut outcome.warnings,
        )
        .await;
        // Canonicalizing and hashing every tool is CPU work (some milliseconds per thousand
        // tools): off the async workers, so other servers' probes keep their schedule.
        let tools = std::mem::take(&mut catalog.tools);
        let definitions = tokio::task::spawn_blocking(move || CatalogDefinitions {
            prompts: prompts.as_deref().map(definitions_by_name),
            resource_templates: templates.as_deref().map(definitions_by_name),
            ..CatalogDefinitions::of(&tools)
        })
        .await
        .unwrap_or_default();
        outcome.catalog = Some(CatalogSummary {
            count: catalog.names.len(),
            content_hash: catalog.content_hash,
            definitions: Arc::new(definitions),
            names: catalog.names,
        });
        if !missing.is_empty() {
            outcome.fail(
                Stage::ExpectedTools,
                FailureClass::CheckFailed,
                format!("expected tool(s) not listed: {}", missing.join(", ")),
            );
            return false;
        }
        let Some(call) = self.config.call.clone() else {
            return true;
        };
        let t = Instant::now();
        let result = session
            .call_tool(&call.tool, call.arguments.clone(), remaining(deadline))
            .await;
        outcome.stages.push((Stage::ToolCall, t.elapsed()));
        match result {
            Ok(res) if res.needs_input.is_some() => {
                // An answer, not a failure: the server works, but the canary stops at a question
                // only a user (or a model) could answer, so its result cannot be checked.
                outcome.warnings.push(format!(
                    "tool `{}` asked for input the prober cannot give ({}); its result was not checked: choose a canary tool that needs no input",
                    call.tool,
                    res.needs_input.unwrap_or_default().join(", ")
                ));
                true
            }
            Ok(res) if res.is_error => {
                outcome.fail(
                    Stage::ToolCall,
                    FailureClass::CheckFailed,
                    format!(
                        "tool `{}` reported an error (isError): {}",
                        call.tool,
                        crate::excerpt::cut(&res.text, 200)
                    ),
                );
                false
            }
            Ok(res) => match &call.expect_text {
                Some(want) if !res.text.contains(want.as_str()) => {
                    outcome.fail(
                        Stage::ToolCall,
                        FailureClass::CheckFailed,
                        format!(
                            "tool `{}` answered {:?}, which does not contain {:?}",
                            call.tool,
                            crate::excerpt::cut(&res.text, 200),
                            want
                        ),
                    );
                    false
                }
                _ => true,
            },
            Err(err) => {
                let (class, reason) = classify(Stage::ToolCall, &err);
                outcome.fail(Stage::ToolCall, class, reason);
                note_refusal(outcome, &err);
                if session_is_broken(&err) {
                    self.drop_session();
                }
                false
            }
        }
    }

    fn drop_session(&mut self) {
        if let Some(mut session) = self.session.take() {
            self.notifications.extend(session.take_notifications());
            self.stderr_lines.extend(session.take_stderr_lines());
            self.last_stderr = session.stderr_tail(self.limits.stderr_keep_bytes);
            self.retire(session);
        }
    }

    /// Shuts a session down in the background so the probe does not wait for it.
    fn retire(&self, session: McpSession) {
        tokio::spawn(session.shutdown());
    }

    /// Ends the session and waits for it (daemon shutdown, server removed from the config).
    pub async fn shutdown(&mut self) {
        if let Some(session) = self.session.take() {
            session.shutdown().await;
        }
    }
}

/// Adds what the OAuth client did to the probe: its time as the `authorize` stage, the token
/// it holds as a presented credential with its expiry (`kind="oauth_access"`), and the report
/// for the `mcp_auth_*` families.
fn note_authorization(outcome: &mut ProbeOutcome, report: AuthReport) {
    if !report.spent.is_zero() {
        outcome.stages.push((Stage::Authorize, report.spent));
    }
    if let Some(expires_at) = report.access_expires_at {
        outcome.credentials.presented = true;
        outcome.credentials.expiries.push(CredentialExpiry {
            kind: CredentialKind::OauthAccess,
            expires_at,
        });
    }
    outcome.credentials.auth = report;
}

/// Ends a probe's root span with its result: on failure status Error, `error.type` the failure
/// class, and the class, stage and reason as attributes; the sampled trace id goes to the outcome.
fn end_probe_span(span: TraceSpan, outcome: &mut ProbeOutcome) {
    use opentelemetry::KeyValue;
    span.set(KeyValue::new("mcp_exporter.up", outcome.up));
    if let Some(failure) = &outcome.failure {
        span.set(KeyValue::new(
            "mcp_exporter.failure.class",
            failure.class.as_str(),
        ));
        span.set(KeyValue::new(
            "mcp_exporter.failure.stage",
            failure.stage.as_str(),
        ));
        span.set(KeyValue::new(
            "mcp_exporter.failure.reason",
            failure.reason.clone(),
        ));
        span.fail(failure.class.as_str(), failure.to_string());
    }
    outcome.trace_id = span.sampled_trace_id();
    span.end();
}

/// Marks the probe's credentials refused when the server answered 401 (a 403 is a credential
/// accepted without the right scope).
fn note_refusal(outcome: &mut ProbeOutcome, err: &McpError) {
    if matches!(err, McpError::AuthRequired { status: 401, .. }) {
        outcome.credentials.refused = true;
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::settings::Config;

    fn probe_of(toml: &str) -> ServerProbe {
        let config = Config::from_toml(toml, Path::new("t.toml")).expect("config parses");
        let server = config.servers.into_iter().next().expect("one server");
        ServerProbe::new(
            Arc::new(server),
            Limits::default(),
            Arc::new(WireCounters::default()),
        )
    }

    /// A probe after the restart backoff (at most `backoff_max`, 1 ms here) has expired.
    async fn probe_after_backoff(probe: &mut ServerProbe) -> ProbeOutcome {
        tokio::time::sleep(Duration::from_millis(5)).await;
        probe.probe().await
    }

    #[tokio::test]
    async fn an_unset_variable_is_misconfigured_every_interval_and_never_a_restart() {
        const UNSET: &str = "MCP_EXPORTER_RUN_TEST_VARIABLE_NEVER_SET";
        assert!(std::env::var_os(UNSET).is_none(), "{UNSET} must not be set");
        let mut probe = probe_of(&format!(
            r#"
[[servers]]
name = "needs-a-key"
transport = "stdio"
command = "sh"
args = ["-c", "exit 1"]
env = {{ API_KEY = "${{{UNSET}}}" }}
restart = {{ backoff_initial = "1ms", backoff_max = "1ms", crash_loop_failures = 2 }}
"#
        ));
        for attempt in 1..=6 {
            let outcome = probe_after_backoff(&mut probe).await;
            let failure = outcome.failure.expect("the probe fails");
            assert_eq!(
                failure.class,
                FailureClass::Misconfigured,
                "attempt {attempt}"
            );
            assert_eq!(failure.stage, Stage::Config, "attempt {attempt}");
            assert!(
                failure.reason.contains(&format!("`{UNSET}`"))
                    && !failure.reason.contains("crash-looping")
                    && !failure.reason.contains("restarting"),
                "attempt {attempt}: {}",
                failure.reason
            );
            assert!(
                !outcome
                    .stages
                    .iter()
                    .any(|(stage, _)| *stage == Stage::Connect),
                "attempt {attempt}: nothing was spawned"
            );
            let status = probe.supervision().expect("a stdio server is supervised");
            assert_eq!(status.restarts, 0, "attempt {attempt}");
            assert_eq!(status.recent_exits, 0, "attempt {attempt}");
            assert!(!status.crash_looping, "attempt {attempt}");
            assert_eq!(status.last_exit, None, "attempt {attempt}");
            assert_eq!(
                probe.next_restart_at(),
                None,
                "attempt {attempt}: no backoff"
            );
            assert_eq!(probe.pid(), None);
        }
    }

    #[tokio::test]
    async fn a_child_that_exits_counts_restarts_and_then_crash_loops() {
        let mut probe = probe_of(
            r#"
[[servers]]
name = "exits"
transport = "stdio"
command = "sh"
args = ["-c", "exit 3"]
env = { KEPT = "$${literal}" }
restart = { backoff_initial = "1ms", backoff_max = "1ms", crash_loop_failures = 3 }
"#,
        );
        let mut spawned = 0;
        let mut last = None;
        // A probe that lands inside the backoff spawns nothing; bounded in count either way.
        for _ in 0..50 {
            let outcome = probe_after_backoff(&mut probe).await;
            if outcome
                .stages
                .iter()
                .any(|(stage, _)| *stage == Stage::Connect)
            {
                spawned += 1;
            }
            last = Some(outcome);
            if spawned == 3 {
                break;
            }
        }
        assert_eq!(spawned, 3, "three children spawned");
        let failure = last.and_then(|o| o.failure).expect("the third probe fails");
        assert_ne!(failure.class, FailureClass::Misconfigured);
        assert!(
            failure
                .reason
                .starts_with("crash-looping: the child exited 3 times within"),
            "{}",
            failure.reason
        );
        let status = probe.supervision().expect("a stdio server is supervised");
        assert_eq!(status.restarts, 2);
        assert_eq!(status.recent_exits, 3);
        assert!(status.crash_looping);
        assert!(
            status
                .last_exit
                .as_deref()
                .is_some_and(|exit| exit.starts_with(&format!("{}: ", failure.class))),
            "{status:?}"
        );
    }

    #[tokio::test]
    async fn a_canary_that_asks_for_input_is_a_warning_and_a_rejected_tool_is_named() {
        use crate::mcp::test_server::{json_response, scripted_server};
        let result = |id: u64, result: serde_json::Value| {
            json_response(&serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}))
        };
        let discover = serde_json::json!({"resultType": "complete",
            "supportedVersions": [crate::mcp::MODERN_VERSION], "capabilities": {"tools": {}}});
        let tools = serde_json::json!({"resultType": "complete", "tools": [
            {"name": "confirm", "inputSchema": {"type": "object"}},
            {"name": "bad", "inputSchema": {"type": "object", "properties": {
                "v": {"type": "string", "x-mcp-header": "A B"}}}}]});
        let (url, _) = scripted_server(vec![
            result(1, discover.clone()),
            result(2, discover),
            result(3, tools),
            result(
                4,
                serde_json::json!({"resultType": "input_required",
                    "inputRequests": {"ok": {"method": "elicitation/create", "params": {}}}}),
            ),
        ])
        .await;
        let mut probe = probe_of(&format!(
            r#"
[[servers]]
name = "asks"
transport = "http"
url = "{url}"
timeout = "5s"
call = {{ tool = "confirm", expect_text = "never checked" }}
"#
        ));
        let outcome = probe.probe().await;
        assert!(outcome.success, "{:?}", outcome.failure);
        assert!(
            outcome.warnings.iter().any(|w| w.contains(
                "tool `confirm` asked for input the prober cannot give (elicitation/create)"
            )),
            "{:?}",
            outcome.warnings
        );
        assert!(
            outcome
                .warnings
                .iter()
                .any(|w| w.contains("tool `bad` left out")),
            "{:?}",
            outcome.warnings
        );
        assert_eq!(
            outcome.catalog.map(|c| c.names),
            Some(vec!["confirm".to_string()])
        );
    }
}
