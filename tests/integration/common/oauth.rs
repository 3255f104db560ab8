//! A local OAuth-protected MCP deployment (`tests/fixtures/oauth/`): an authorization server made
//! with authlib (client-credentials grant, RFC 8414 metadata, RFC 7662 introspection, RFC 7009
//! revocation, test controls under `/admin/`) and a Python SDK MCP server that introspects every
//! token there and names it in its RFC 9728 metadata. Each runs in its own process group on
//! 127.0.0.1 and a port it picks and prints first on stdout; both die when their guards drop.
//!
//! A test asks [`super::tools::require`] for [`Tool::Authlib`] before it starts them.

use std::process::Command;
use std::time::{Duration, Instant};

use super::http::{HTTP_TIMEOUT, http_request};
use super::paths::{fixture, servers_dir};
use super::processes::{ChildGuard, SERVER_START_TIMEOUT, run_bounded, spawn_guarded};
use super::tools::{Tool, located};

/// The scope the fixtures grant and require.
pub const SCOPE: &str = "mcp:tools";
/// The resource server's own client at the authorization server (for introspection).
const INTROSPECTION_CLIENT: (&str, &str) = ("fixture-resource-server", "fixture-rs-secret");
/// How long the fixture's self-test may take.
const SELFTEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The authorization server of the deployment.
pub struct AuthorizationServer {
    /// Its process; dropping it stops the server.
    pub guard: ChildGuard,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl AuthorizationServer {
    /// Starts `authorization_server.py` with one client, `client_id`/`client_secret`, allowed
    /// [`SCOPE`], whose access tokens expire after `token_lifetime`.
    pub fn start(client_id: &str, client_secret: &str, token_lifetime: Duration) -> Self {
        Self::start_with(client_id, client_secret, token_lifetime, &[])
    }

    /// [`AuthorizationServer::start`] with more options of `authorization_server.py` (e.g.
    /// `--dpop`, `--dpop-nonce N`).
    pub fn start_with(
        client_id: &str,
        client_secret: &str,
        token_lifetime: Duration,
        options: &[&str],
    ) -> Self {
        let mut cmd = python_fixture("authorization_server.py");
        cmd.args(options);
        cmd.args(["--client-id", client_id, "--client-secret", client_secret])
            .args(["--introspection-client-id", INTROSPECTION_CLIENT.0])
            .args(["--introspection-client-secret", INTROSPECTION_CLIENT.1])
            .args(["--scope", SCOPE])
            .arg("--token-lifetime")
            .arg(token_lifetime.as_secs().max(1).to_string());
        let (guard, port) = spawn_printing_port("authorization_server", &mut cmd);
        AuthorizationServer { guard, port }
    }

    /// Starts `authorization_server.py --authorization-code`: the authorization-code grant
    /// (approved at once, no person; PKCE S256; `iss` in the redirect), dynamic registration of
    /// public clients and rotating refresh tokens, instead of the client-credentials grant;
    /// `offline_access` beside [`SCOPE`].
    pub fn start_authorization_code(token_lifetime: Duration) -> Self {
        let mut cmd = python_fixture("authorization_server.py");
        cmd.args(["--client-id", "unused-confidential-client"])
            .args(["--client-secret", "unused-secret"])
            .args(["--introspection-client-id", INTROSPECTION_CLIENT.0])
            .args(["--introspection-client-secret", INTROSPECTION_CLIENT.1])
            .args(["--scope", SCOPE, "--authorization-code"])
            .arg("--token-lifetime")
            .arg(token_lifetime.as_secs().max(1).to_string());
        let (guard, port) = spawn_printing_port("authorization_server", &mut cmd);
        AuthorizationServer { guard, port }
    }

    /// Revokes every refresh token it issued (test control).
    pub fn revoke_refresh_tokens(&self) -> Result<(), String> {
        self.post_form("/admin/refresh-tokens/revoke", &[])
            .map(drop)
    }

    /// The client ids registered dynamically (test control).
    pub fn registrations(&self) -> Result<Vec<String>, String> {
        let response = http_request(
            &self.addr(),
            "GET",
            "/admin/registrations",
            &[],
            b"",
            HTTP_TIMEOUT,
        )?;
        serde_json::from_slice(&response.body).map_err(|e| format!("GET /admin/registrations: {e}"))
    }

    /// Its issuer identifier, `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the secret of `client_id` (test control): requests with the old one get
    /// `invalid_client` from then on.
    pub fn rotate_secret(&self, client_id: &str, new_secret: &str) -> Result<(), String> {
        self.post_form(
            &format!("/admin/clients/{}", form_encode(client_id)),
            &[("client_secret", new_secret)],
        )
        .map(drop)
    }

    /// The access tokens of `client_id` that are neither expired nor revoked (test control).
    pub fn active_tokens(&self, client_id: &str) -> Result<Vec<String>, String> {
        let path = format!("/admin/clients/{}/tokens", form_encode(client_id));
        let response = http_request(&self.addr(), "GET", &path, &[], b"", HTTP_TIMEOUT)?;
        if response.status != 200 {
            return Err(format!(
                "GET {path}: {} {}",
                response.status,
                response.text()
            ));
        }
        serde_json::from_slice(&response.body).map_err(|e| format!("GET {path}: {e}"))
    }

    /// Revokes `token` at the revocation endpoint (RFC 7009), authenticating as its client with
    /// `client_secret_post`.
    pub fn revoke(&self, client_id: &str, client_secret: &str, token: &str) -> Result<(), String> {
        self.post_form(
            "/revoke",
            &[
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("token", token),
                ("token_type_hint", "access_token"),
            ],
        )
        .map(drop)
    }

    /// An access token for `client_id` by the client-credentials grant (`client_secret_post`),
    /// as a client would get one.
    pub fn token(&self, client_id: &str, client_secret: &str) -> Result<String, String> {
        let body = self.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("scope", SCOPE),
            ],
        )?;
        let answer: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("POST /token: {e}: {body}"))?;
        answer["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("POST /token: no access_token in {body}"))
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<String, String> {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let headers = [("Content-Type", "application/x-www-form-urlencoded")];
        let response = http_request(
            &self.addr(),
            "POST",
            path,
            &headers,
            body.as_bytes(),
            HTTP_TIMEOUT,
        )?;
        if response.status == 200 {
            Ok(response.text())
        } else {
            Err(format!(
                "POST {path}: {} {}",
                response.status,
                response.text()
            ))
        }
    }
}

/// The protected MCP server of the deployment.
pub struct ResourceServer {
    /// Its process; dropping it stops the server.
    pub guard: ChildGuard,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl ResourceServer {
    /// Starts `resource_server.py` trusting `auth_server` (it reads the introspection endpoint
    /// from its metadata at start, so `auth_server` must be up).
    pub fn start(auth_server: &AuthorizationServer) -> Self {
        Self::start_with(auth_server, &[])
    }

    /// [`ResourceServer::start`] with more options of `resource_server.py` (e.g. `--dpop`,
    /// `--require-dpop`, `--dpop-nonce N`).
    pub fn start_with(auth_server: &AuthorizationServer, options: &[&str]) -> Self {
        let mut cmd = python_fixture("resource_server.py");
        cmd.args(options);
        cmd.arg("--issuer")
            .arg(auth_server.issuer())
            .args(["--introspection-client-id", INTROSPECTION_CLIENT.0])
            .args(["--introspection-client-secret", INTROSPECTION_CLIENT.1])
            .args(["--scope", SCOPE]);
        let (guard, port) = spawn_printing_port("resource_server", &mut cmd);
        ResourceServer { guard, port }
    }

    /// Its MCP endpoint, `http://127.0.0.1:<port>/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

/// Runs `tests/fixtures/oauth/selftest.py`: `Ok` with its output when the pair passes its own
/// walk-through (discovery, tokens, tools, revocation, rotation, authorization server down).
pub fn run_selftest() -> Result<String, String> {
    let mut cmd = python_fixture("selftest.py");
    let output = run_bounded(&mut cmd, SELFTEST_TIMEOUT)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "selftest.py exited with {}:\n{text}",
            output.status
        ))
    }
}

/// The venv interpreter running `tests/fixtures/oauth/<script>`.
fn python_fixture(script: &str) -> Command {
    let mut cmd = Command::new(located(Tool::Authlib));
    cmd.arg(fixture(&format!("oauth/{script}")))
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(servers_dir());
    cmd
}

/// Spawns a fixture started with `--port 0` and waits (bounded) for the port it prints first.
fn spawn_printing_port(name: &str, cmd: &mut Command) -> (ChildGuard, u16) {
    cmd.args(["--port", "0"]);
    let mut guard = spawn_guarded(name, cmd);
    let start = Instant::now();
    loop {
        if let Some(port) = printed_port(&guard.output()) {
            return (guard, port);
        }
        if let Some(status) = guard.try_wait() {
            panic!(
                "{name} exited with {status} before printing its port:\n{}",
                guard.output()
            );
        }
        if start.elapsed() >= SERVER_START_TIMEOUT {
            panic!(
                "{name} printed no port within {SERVER_START_TIMEOUT:?}:\n{}",
                guard.output()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port a fixture printed: the first output line that is a number alone (its stderr, in
/// the same buffer, has no such line).
fn printed_port(output: &str) -> Option<u16> {
    output
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|line| line.parse().ok())
        .filter(|port| *port != 0)
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::http::post_initialize;
    use super::super::tools::require;
    use super::*;

    #[test]
    fn the_test_controls_rotate_list_and_revoke_and_the_server_challenges() {
        if require(Tool::Authlib).is_none() {
            return;
        }
        let auth = AuthorizationServer::start("harness", "first", Duration::from_secs(60));
        let output = || auth.guard.output();
        let token = auth
            .token("harness", "first")
            .unwrap_or_else(|e| panic!("{e}\n{}", output()));
        assert_eq!(auth.active_tokens("harness"), Ok(vec![token.clone()]));
        auth.rotate_secret("harness", "second")
            .unwrap_or_else(|e| panic!("{e}\n{}", output()));
        let refused = auth
            .token("harness", "first")
            .expect_err("the old secret still works");
        assert!(
            refused.contains("401") && refused.contains("invalid_client"),
            "{refused}"
        );
        auth.revoke("harness", "second", &token)
            .unwrap_or_else(|e| panic!("{e}\n{}", output()));
        assert_eq!(auth.active_tokens("harness"), Ok(Vec::new()));

        let resource = ResourceServer::start(&auth);
        let challenge = post_initialize(resource.port, "/mcp")
            .unwrap_or_else(|e| panic!("{e}\n{}", resource.guard.output()));
        assert_eq!(challenge.status, 401, "{}", challenge.text());
        let header = challenge.header("www-authenticate").unwrap_or_default();
        let metadata = format!(
            "resource_metadata=\"http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp\"",
            resource.port
        );
        assert!(header.contains(&metadata), "{header}");
    }

    #[test]
    fn the_port_is_the_first_line_that_is_a_number_alone() {
        assert_eq!(printed_port("45123\nINFO: started\n"), Some(45123));
        assert_eq!(
            printed_port("warning: 3 things\n  40001  \nINFO: 80"),
            Some(40001)
        );
        assert_eq!(printed_port("INFO: on port 80\n"), None);
        assert_eq!(printed_port("0\n"), None);
        assert_eq!(printed_port("99999\n"), None);
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(form_encode("mcp:tools"), "mcp%3Atools");
        assert_eq!(form_encode("Az09-._*"), "Az09-._*");
    }
}
