//! Turns a client error at a given stage into a failure class and a reason an operator can act on.

use crate::auth::AuthFailure;
use crate::mcp::McpError;

use super::outcome::{FailureClass, Stage};

/// Longest stderr excerpt quoted in a reason.
const STDERR_EXCERPT_BYTES: usize = 300;

/// Classifies `err`, raised during `stage`, into a failure class and a one-line reason.
pub fn classify(stage: Stage, err: &McpError) -> (FailureClass, String) {
    match err {
        McpError::Spawn { .. } | McpError::Connect { .. } | McpError::Timeout { .. } => {
            (FailureClass::Down, err.to_string())
        }
        McpError::SessionLost { .. } | McpError::StreamClosed { .. } => {
            (FailureClass::Down, err.to_string())
        }
        McpError::Exited {
            status,
            signal,
            stderr_tail,
            before_handshake,
        } => {
            let how = match (status, signal) {
                (_, Some(sig)) => format!("was killed by signal {sig}"),
                (Some(code), None) => format!("exited with status {code}"),
                (None, None) => "exited".to_string(),
            };
            let excerpt = last_meaningful_lines(stderr_tail, STDERR_EXCERPT_BYTES);
            if *before_handshake && signal.is_none() && !excerpt.is_empty() {
                (
                    FailureClass::Misconfigured,
                    format!("server {how} before answering; its stderr says: {excerpt}"),
                )
            } else if excerpt.is_empty() {
                (FailureClass::Down, format!("server {how}"))
            } else {
                (
                    FailureClass::Down,
                    format!("server {how}; last stderr: {excerpt}"),
                )
            }
        }
        McpError::AuthRequired { .. } => (FailureClass::AuthRequired, err.to_string()),
        McpError::Authorization { failure, .. } => {
            let class = match failure {
                AuthFailure::LoginRequired => FailureClass::LoginRequired,
                AuthFailure::CredentialRejected => FailureClass::CredentialRejected,
                AuthFailure::AuthServerDown => FailureClass::AuthServerDown,
                AuthFailure::Misconfigured => FailureClass::Misconfigured,
            };
            (class, err.to_string())
        }
        McpError::HttpStatus { status, .. } => {
            let class = match status {
                500..=599 => FailureClass::Down,
                404 if stage == Stage::Handshake => FailureClass::Misconfigured,
                _ => FailureClass::ProtocolError,
            };
            let hint = if stage == Stage::Handshake && matches!(status, 400 | 404 | 405) {
                " (is the URL right? a 2024-11-05 server needs transport = \"sse\")"
            } else {
                ""
            };
            (class, format!("{err}{hint}"))
        }
        McpError::Rpc { .. } => {
            let class = match stage {
                Stage::ToolCall | Stage::ExpectedTools => FailureClass::CheckFailed,
                _ => FailureClass::ProtocolError,
            };
            (class, err.to_string())
        }
        McpError::UnknownProtocolVersion { .. }
        | McpError::NoCommonVersion { .. }
        | McpError::ToolRejected { .. }
        | McpError::Protocol { .. } => (FailureClass::ProtocolError, err.to_string()),
    }
}

/// True when the error means the session cannot be used again and must be rebuilt.
pub fn session_is_broken(err: &McpError) -> bool {
    matches!(
        err,
        McpError::Spawn { .. }
            | McpError::Connect { .. }
            | McpError::Exited { .. }
            | McpError::StreamClosed { .. }
            | McpError::SessionLost { .. }
            | McpError::AuthRequired { .. }
            | McpError::Authorization { .. }
            | McpError::HttpStatus { .. }
            | McpError::UnknownProtocolVersion { .. }
            | McpError::NoCommonVersion { .. }
    )
}

/// The last non-empty lines of `text`, joined with " | ", at most `max` bytes (cut on a char boundary).
fn last_meaningful_lines(text: &str, max: usize) -> String {
    let mut picked: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in text.lines().rev().map(str::trim).filter(|l| !l.is_empty()) {
        if used + line.len() > max && !picked.is_empty() {
            break;
        }
        used += line.len() + 3;
        picked.push(line);
        if used >= max {
            break;
        }
    }
    picked.reverse();
    let joined = picked.join(" | ");
    if joined.len() <= max {
        return joined;
    }
    format!(
        "…{}",
        &joined[joined.ceil_char_boundary(joined.len() - max)..]
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn early_exit_with_stderr_is_misconfigured() {
        let err = McpError::Exited {
            status: Some(1),
            signal: None,
            stderr_tail: "\nError: BRAVE_API_KEY environment variable is required\n".into(),
            before_handshake: true,
        };
        let (class, reason) = classify(Stage::Handshake, &err);
        assert_eq!(class, FailureClass::Misconfigured);
        assert_eq!(
            reason,
            "server exited with status 1 before answering; its stderr says: Error: BRAVE_API_KEY environment variable is required"
        );
    }

    #[test]
    fn killed_child_is_down() {
        let err = McpError::Exited {
            status: None,
            signal: Some(9),
            stderr_tail: "Starting default (STDIO) server...".into(),
            before_handshake: false,
        };
        let (class, reason) = classify(Stage::Ping, &err);
        assert_eq!(class, FailureClass::Down);
        assert!(
            reason.starts_with("server was killed by signal 9"),
            "{reason}"
        );
    }

    #[test]
    fn timeouts_and_spawn_failures_are_down() {
        let timeout = McpError::Timeout {
            method: "initialize".into(),
            after: Duration::from_secs(2),
            heard: crate::mcp::Heard::Nothing,
        };
        assert_eq!(classify(Stage::Handshake, &timeout).0, FailureClass::Down);
        let spawn = McpError::Spawn {
            command: "nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(classify(Stage::Connect, &spawn).0, FailureClass::Down);
    }

    #[test]
    fn authorization_failures_have_their_own_classes() {
        let class = |failure| {
            classify(
                Stage::Handshake,
                &McpError::Authorization {
                    failure,
                    detail: "x".into(),
                },
            )
            .0
        };
        assert_eq!(
            class(AuthFailure::LoginRequired),
            FailureClass::LoginRequired
        );
        assert_eq!(
            class(AuthFailure::CredentialRejected),
            FailureClass::CredentialRejected
        );
        assert_eq!(
            class(AuthFailure::AuthServerDown),
            FailureClass::AuthServerDown
        );
        assert_eq!(
            class(AuthFailure::Misconfigured),
            FailureClass::Misconfigured
        );
    }

    #[test]
    fn auth_and_protocol_errors_keep_their_class() {
        let auth = McpError::AuthRequired {
            status: 401,
            www_authenticate: Some("Bearer error=\"invalid_token\"".into()),
        };
        assert_eq!(
            classify(Stage::Handshake, &auth).0,
            FailureClass::AuthRequired
        );
        let version = McpError::UnknownProtocolVersion {
            version: "1999-01-01".into(),
        };
        assert_eq!(
            classify(Stage::Handshake, &version).0,
            FailureClass::ProtocolError
        );
    }

    #[test]
    fn a_rejected_tool_is_a_protocol_error_of_that_tool_only() {
        let rejected = McpError::ToolRejected {
            tool: "invalid_empty_header".into(),
            reason: "x-mcp-header of `value` is empty".into(),
        };
        let (class, reason) = classify(Stage::ToolCall, &rejected);
        assert_eq!(class, FailureClass::ProtocolError);
        assert!(reason.contains("`invalid_empty_header`"), "{reason}");
        assert!(!session_is_broken(&rejected));
        let versions = McpError::NoCommonVersion {
            supported: vec!["2099-01-01".into()],
        };
        assert_eq!(
            classify(Stage::Handshake, &versions).0,
            FailureClass::ProtocolError
        );
    }

    #[test]
    fn rpc_errors_depend_on_the_stage() {
        let rpc = McpError::Rpc {
            method: "tools/call".into(),
            code: -32603,
            message: "boom".into(),
        };
        assert_eq!(classify(Stage::ToolCall, &rpc).0, FailureClass::CheckFailed);
        assert_eq!(
            classify(Stage::Handshake, &rpc).0,
            FailureClass::ProtocolError
        );
    }

    #[test]
    fn wrong_path_on_handshake_hints_at_the_transport() {
        let err = McpError::HttpStatus {
            status: 404,
            body_excerpt: "Cannot POST /sse".into(),
        };
        let (class, reason) = classify(Stage::Handshake, &err);
        assert_eq!(class, FailureClass::Misconfigured);
        assert!(reason.contains("transport = \"sse\""), "{reason}");
        let err = McpError::HttpStatus {
            status: 503,
            body_excerpt: String::new(),
        };
        assert_eq!(classify(Stage::Ping, &err).0, FailureClass::Down);
    }

    #[test]
    fn stderr_excerpt_is_bounded_and_keeps_the_end() {
        let long = format!("{}\nlast line", "x".repeat(1000));
        let excerpt = last_meaningful_lines(&long, 50);
        assert!(excerpt.len() <= 50 + "…".len(), "{excerpt}");
        assert!(excerpt.ends_with("last line"), "{excerpt}");
        assert_eq!(last_meaningful_lines("a\n\nb\n", 50), "a | b");
        assert_eq!(last_meaningful_lines("", 50), "");
    }
}
