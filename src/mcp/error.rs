//! Errors of the MCP client; each message says what happened and what to do.

use std::time::Duration;

/// Every way a session with an MCP server can fail.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The server command could not be started.
    #[error(
        "cannot start `{command}`: {source} (check the command path and that it is executable)"
    )]
    Spawn {
        /// The command that failed to start.
        command: String,
        /// The operating system error.
        #[source]
        source: std::io::Error,
    },
    /// No HTTP connection could be made (refused, DNS, TLS).
    #[error("cannot connect to {url}: {detail} (check the URL and that the server is listening)")]
    Connect {
        /// The URL that was tried.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The server did not answer in time.
    #[error("no answer to `{method}` within {:?} ({heard})", millis(*after))]
    Timeout {
        /// The request (or stage) that timed out.
        method: String,
        /// The deadline that expired.
        after: Duration,
        /// What the server did send while it was awaited.
        heard: Heard,
    },
    /// The child process exited.
    #[error("server process exited ({}){}{}", exit_text(*status, *signal), if *before_handshake { " before the handshake completed, likely misconfigured" } else { "" }, stderr_text(stderr_tail))]
    Exited {
        /// Exit code, when it exited normally.
        status: Option<i32>,
        /// Signal number, when killed by a signal.
        signal: Option<i32>,
        /// The last bytes of its stderr.
        stderr_tail: String,
        /// True when it died before the handshake completed.
        before_handshake: bool,
    },
    /// The stream carrying responses ended (stdout EOF, SSE stream end, reset connection).
    #[error("connection to the server closed: {detail}")]
    StreamClosed {
        /// What closed.
        detail: String,
    },
    /// The server wants credentials (HTTP 401/403).
    #[error("server requires authorization (HTTP {status}{}); configure a valid bearer token", www_authenticate.as_deref().map(|c| format!(", WWW-Authenticate: {c}")).unwrap_or_default())]
    AuthRequired {
        /// 401 or 403.
        status: u16,
        /// The `WWW-Authenticate` challenge, if sent.
        www_authenticate: Option<String>,
    },
    /// The prober's OAuth client could not obtain or use a token (docs/auth.md).
    #[error("authorization failed: {detail}")]
    Authorization {
        /// Which kind of failure (the probe's failure class).
        failure: crate::auth::AuthFailure,
        /// What happened.
        detail: String,
    },
    /// An HTTP status the protocol does not expect.
    #[error(
        "unexpected HTTP status {status}: {body_excerpt:?}{}", status_hint(*status)
    )]
    HttpStatus {
        /// The status code.
        status: u16,
        /// The start of the response body.
        body_excerpt: String,
    },
    /// The server answered our request with a JSON-RPC error object.
    #[error("server answered `{method}` with JSON-RPC error {code}: {message}")]
    Rpc {
        /// The request method.
        method: String,
        /// JSON-RPC error code.
        code: i64,
        /// JSON-RPC error message.
        message: String,
    },
    /// The server negotiated a protocol version this client does not know.
    #[error("server answered protocol version {version:?}, which this client does not know (supported: {})", crate::mcp::KNOWN_VERSIONS.join(", "))]
    UnknownProtocolVersion {
        /// The version the server answered.
        version: String,
    },
    /// A modern server refused our protocol version and supports none this client speaks.
    #[error("server supports only protocol versions {supported:?}, none of which this client speaks ({})", crate::mcp::KNOWN_VERSIONS.join(", "))]
    NoCommonVersion {
        /// The versions the server listed (`-32022` error data).
        supported: Vec<String>,
    },
    /// The tool's definition breaks the protocol, so the client must not call it.
    #[error("tool `{tool}` cannot be called: its definition breaks the protocol ({reason})")]
    ToolRejected {
        /// The tool's name.
        tool: String,
        /// What is wrong with its definition.
        reason: String,
    },
    /// The server broke the protocol (malformed result, bad content type, oversize message, ...).
    #[error("protocol violation: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// The HTTP session was lost and re-initializing did not help.
    #[error("HTTP session lost even after re-initializing: {detail}")]
    SessionLost {
        /// The server's last answer.
        detail: String,
    },
}

fn exit_text(status: Option<i32>, signal: Option<i32>) -> String {
    match (status, signal) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "exit status unknown".to_string(),
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        400 | 404 | 405 => {
            " (if this is an old HTTP+SSE server, configure transport = \"sse\" with its SSE URL)"
        }
        406 => " (the server wants both application/json and text/event-stream accepted)",
        421 => " (the server rejects the Host header; use the host name it expects)",
        300..=399 => " (redirects are not followed; configure the final URL)",
        _ => "",
    }
}

fn stderr_text(tail: &str) -> String {
    let trimmed = tail.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("; stderr: {trimmed}")
    }
}

impl McpError {
    /// The `error.type` of a span that ended in this error (docs/tracing.md#attributes): the
    /// JSON-RPC error code for an error reply, else a short name of the failure.
    pub fn error_type(&self) -> String {
        match self {
            McpError::Spawn { .. } => "spawn".into(),
            McpError::Connect { .. } => "connect".into(),
            McpError::Timeout { .. } => "timeout".into(),
            McpError::Exited { .. } => "exited".into(),
            McpError::StreamClosed { .. } => "stream_closed".into(),
            McpError::AuthRequired { .. } => "auth_required".into(),
            McpError::Authorization { failure, .. } => match failure {
                crate::auth::AuthFailure::LoginRequired => "login_required".into(),
                crate::auth::AuthFailure::CredentialRejected => "credential_rejected".into(),
                crate::auth::AuthFailure::AuthServerDown => "auth_server_down".into(),
                crate::auth::AuthFailure::Misconfigured => "misconfigured".into(),
            },
            McpError::HttpStatus { status, .. } => status.to_string(),
            McpError::Rpc { code, .. } => code.to_string(),
            McpError::UnknownProtocolVersion { .. } => "unknown_protocol_version".into(),
            McpError::NoCommonVersion { .. } => "no_common_version".into(),
            McpError::ToolRejected { .. } => "tool_rejected".into(),
            McpError::Protocol { .. } => "protocol".into(),
            McpError::SessionLost { .. } => "session_lost".into(),
        }
    }

    /// Shorthand for a [`McpError::Protocol`].
    pub fn protocol(detail: impl Into<String>) -> Self {
        McpError::Protocol {
            detail: detail.into(),
        }
    }
}

/// A deadline as an operator reads it: whole milliseconds (`4s`, `1.985s`).
fn millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// What a server sent while a request was awaited and timed out: silence, part of a message
/// (a response trickling in, or a stream that never carries one), or other messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Heard {
    /// Not a byte.
    #[default]
    Nothing,
    /// Bytes, but no complete JSON-RPC message.
    Partial {
        /// Bytes that arrived.
        bytes: u64,
    },
    /// Complete messages, none of them a response it awaited (notifications, other ids,
    /// server requests).
    OtherMessages {
        /// How many.
        count: u64,
    },
}

impl Heard {
    /// Compares the counters' [`heard_mark`](super::WireCounters) before and after the wait.
    pub(crate) fn since(before: (u64, u64), after: (u64, u64)) -> Heard {
        let messages = after.1.saturating_sub(before.1);
        let bytes = after.0.saturating_sub(before.0);
        if messages > 0 {
            Heard::OtherMessages { count: messages }
        } else if bytes > 0 {
            Heard::Partial { bytes }
        } else {
            Heard::Nothing
        }
    }
}

impl std::fmt::Display for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Heard::Nothing => f.write_str(
                "not a byte arrived: server hung or too slow; raise the timeout if it is just slow",
            ),
            Heard::Partial { bytes } => write!(
                f,
                "{bytes} {} arrived but no complete message: a response trickling in, or a stream that never carries it",
                if *bytes == 1 { "byte" } else { "bytes" }
            ),
            Heard::OtherMessages { count } => write!(
                f,
                "{count} other {} arrived (notifications, other ids or server requests), none of them the response",
                if *count == 1 { "message" } else { "messages" }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_message_names_stderr_and_misconfiguration() {
        let e = McpError::Exited {
            status: Some(1),
            signal: None,
            stderr_tail: "Error: TOKEN missing\n".into(),
            before_handshake: true,
        };
        let text = e.to_string();
        assert!(text.contains("exit code 1"), "{text}");
        assert!(text.contains("misconfigured"), "{text}");
        assert!(text.contains("TOKEN missing"), "{text}");
    }

    #[test]
    fn timeouts_say_what_arrived_in_whole_milliseconds() {
        let timeout = |heard| McpError::Timeout {
            method: "initialize".into(),
            after: Duration::from_nanos(1_985_285_981),
            heard,
        };
        assert_eq!(
            timeout(Heard::Nothing).to_string(),
            "no answer to `initialize` within 1.985s (not a byte arrived: server hung or too slow; raise the timeout if it is just slow)"
        );
        assert!(
            timeout(Heard::Partial { bytes: 1 })
                .to_string()
                .contains("(1 byte arrived but no complete message")
        );
        assert!(
            timeout(Heard::OtherMessages { count: 3 })
                .to_string()
                .contains("(3 other messages arrived")
        );
    }

    #[test]
    fn heard_prefers_messages_over_bytes() {
        assert_eq!(Heard::since((10, 2), (10, 2)), Heard::Nothing);
        assert_eq!(Heard::since((10, 2), (15, 2)), Heard::Partial { bytes: 5 });
        assert_eq!(
            Heard::since((10, 2), (90, 4)),
            Heard::OtherMessages { count: 2 }
        );
    }

    #[test]
    fn auth_message_carries_challenge() {
        let e = McpError::AuthRequired {
            status: 401,
            www_authenticate: Some("Bearer realm=\"x\"".into()),
        };
        assert!(e.to_string().contains("Bearer realm"));
    }
}
