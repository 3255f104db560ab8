//! OAuth 2.1 end to end against a real local deployment (`tests/fixtures/oauth/`, see
//! [`crate::common::oauth`]): the exporter probes an MCP server that answers 401 without a token,
//! finds the authorization server through the server's protected-resource metadata (RFC 9728)
//! and the authorization server's metadata (RFC 8414), obtains and refreshes access tokens with
//! the client-credentials grant and a secret from the environment, and tells apart a rejected
//! credential (`credential_rejected`) from an authorization server that is down
//! (`auth_server_down`), on /metrics and /api/servers (docs/metrics.md).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::daemon::Daemon;
use crate::common::oauth::{AuthorizationServer, ResourceServer, SCOPE, run_selftest};
use crate::common::scrape::Scrape;
use crate::common::tools::{Tool, require};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);
/// The server's name in the exporter's configuration.
const SERVER: &str = "oauth-target";
const CLIENT_ID: &str = "mcp-exporter-probe";
const CLIENT_SECRET: &str = "first-secret";
/// The environment variable the configuration reads the secret from.
const SECRET_VAR: &str = "MCP_TEST_OAUTH_SECRET";
/// Short, so that the exporter refreshes while the test runs.
const TOKEN_LIFETIME: Duration = Duration::from_secs(10);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The deployment and a daemon probing it every second (fields drop in order: the daemon
/// first).
struct Setup {
    daemon: Daemon,
    resource: ResourceServer,
    auth_server: Option<AuthorizationServer>,
    /// When the daemon was started (Unix seconds).
    started: f64,
}

impl Setup {
    fn start() -> Setup {
        Setup::start_with(TOKEN_LIFETIME, &[], &[], "")
    }

    /// [`Setup::start`] with tokens lasting `lifetime`, options for the authorization server
    /// and the resource server (tests/fixtures/oauth/) and `more_auth` appended to the server's
    /// `auth` table.
    fn start_with(
        lifetime: Duration,
        as_options: &[&str],
        rs_options: &[&str],
        more_auth: &str,
    ) -> Setup {
        let auth_server =
            AuthorizationServer::start_with(CLIENT_ID, CLIENT_SECRET, lifetime, as_options);
        let resource = ResourceServer::start_with(&auth_server, rs_options);
        let config = format!(
            r#"
[[servers]]
name = "{SERVER}"
transport = "http"
url = "{url}"
interval = "1s"
timeout = "10s"
auth = {{ type = "oauth", client_id = "{CLIENT_ID}", client_secret = "${{{SECRET_VAR}}}", scopes = ["{SCOPE}"]{more_auth} }}
call = {{ tool = "add_numbers", arguments = {{ a = 2, b = 3 }}, expect_text = "5" }}
"#,
            url = resource.mcp_url(),
        );
        let started = unix_now();
        let daemon = Daemon::start_with(&config, &[], &[(SECRET_VAR, CLIENT_SECRET)]);
        Setup {
            daemon,
            resource,
            auth_server: Some(auth_server),
            started,
        }
    }

    fn auth_server(&self) -> &AuthorizationServer {
        self.auth_server
            .as_ref()
            .expect("the authorization server was stopped earlier in this test")
    }

    /// Everything the three processes printed, for failure messages.
    fn logs(&self) -> String {
        let auth = self
            .auth_server
            .as_ref()
            .map_or_else(|| "(stopped)".to_string(), |a| a.guard.output());
        format!(
            "--- daemon stderr:\n{}\n--- authorization server:\n{auth}\n--- resource server:\n{}",
            self.daemon.stderr(),
            self.resource.guard.output()
        )
    }

    /// The server's row of /api/servers.
    fn api_row(&self) -> serde_json::Value {
        let (status, body) = self.daemon.get("/api/servers");
        assert_eq!(status, 200, "/api/servers: {body}");
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/servers: {e}: {body}"));
        rows.into_iter()
            .find(|row| row["name"] == SERVER)
            .unwrap_or_else(|| panic!("{SERVER} not in /api/servers: {body}"))
    }

    /// Waits until the server is HEALTHY through OAuth and returns the scrape that showed it.
    fn wait_healthy(&self) -> Scrape {
        eventually(WAIT, POLL, || {
            let scrape = self.daemon.scrape();
            let status = scrape.value("mcp_server_health_status", &[("server", SERVER)]);
            let row = self.api_row();
            if status == Some(2.0) && row["health"]["status"] == "HEALTHY" {
                Ok(scrape)
            } else {
                Err(format!(
                    "not HEALTHY yet: gauge {status:?}, /api/servers {}\n{}",
                    row["health"],
                    self.logs()
                ))
            }
        })
    }

    /// Waits until `reason` is one of the server's health reasons on /metrics and on
    /// /api/servers (`health.codes`); returns the scrape and the row that showed it.
    fn wait_reason(&self, reason: &str) -> (Scrape, serde_json::Value) {
        eventually(WAIT, POLL, || {
            let scrape = self.daemon.scrape();
            let gauge = scrape.value(
                "mcp_server_health_reason",
                &[("server", SERVER), ("reason", reason)],
            );
            let row = self.api_row();
            let listed = row["health"]["codes"]
                .as_array()
                .is_some_and(|codes| codes.iter().any(|c| c == reason));
            if gauge == Some(1.0) && listed {
                Ok((scrape, row))
            } else {
                Err(format!(
                    "no {reason} yet: gauge {gauge:?}, /api/servers {}\n{}",
                    row["health"],
                    self.logs()
                ))
            }
        })
    }
}

fn refreshes(scrape: &Scrape, outcome: &str) -> f64 {
    scrape.sum(
        "mcp_auth_refresh_total",
        &[("server", SERVER), ("outcome", outcome)],
    )
}

fn metadata_up(scrape: &Scrape, document: &str) -> Option<f64> {
    scrape.value(
        "mcp_auth_metadata_up",
        &[("server", SERVER), ("document", document)],
    )
}

fn access_expiry(scrape: &Scrape) -> Option<f64> {
    scrape.value(
        "mcp_credential_expiry_timestamp_seconds",
        &[("server", SERVER), ("kind", "oauth_access")],
    )
}

/// (a): HEALTHY through a token the exporter obtained itself, both metadata documents read, the
/// token's expiry ahead and within the lifetime the authorization server granted; then a
/// refresh as the short-lived token runs out, with the expiry moving on.
fn assert_healthy_through_oauth(setup: &Setup) {
    let scrape = setup.wait_healthy();
    let logs = || format!("{}\n{}", scrape.text(), setup.logs());
    assert!(refreshes(&scrape, "ok") >= 1.0, "{}", logs());
    assert_eq!(
        metadata_up(&scrape, "protected_resource"),
        Some(1.0),
        "{}",
        logs()
    );
    assert_eq!(
        metadata_up(&scrape, "authorization_server"),
        Some(1.0),
        "{}",
        logs()
    );
    let expiry =
        access_expiry(&scrape).unwrap_or_else(|| panic!("no oauth_access expiry\n{}", logs()));
    let lifetime = TOKEN_LIFETIME.as_secs_f64();
    assert!(
        expiry >= setup.started && expiry <= unix_now() + lifetime + 1.0,
        "expiry {expiry} outside [{}, now + {lifetime} s]\n{}",
        setup.started,
        logs()
    );
    // Refresh: a later token, counted ok, whose expiry is ahead of the scrape that shows it,
    // and the server HEALTHY with it, while the authorization server has an active token of
    // this client (the one the exporter holds).
    let first_ok = refreshes(&scrape, "ok");
    eventually(WAIT, POLL, || {
        let scraped_at = unix_now();
        let later = setup.daemon.scrape();
        let ok = refreshes(&later, "ok");
        let moved = access_expiry(&later).is_some_and(|e| e > expiry && e > scraped_at);
        let healthy = later.value("mcp_server_health_status", &[("server", SERVER)]) == Some(2.0);
        let issued = setup
            .auth_server()
            .active_tokens(CLIENT_ID)
            .map(|tokens| tokens.len())?;
        if ok > first_ok && moved && healthy && issued > 0 {
            Ok(())
        } else {
            Err(format!(
                "no refresh yet (ok {first_ok} -> {ok}, expiry moved and ahead: {moved}, healthy: \
                 {healthy}, active tokens at the authorization server: {issued})\n{}\n{}",
                later.text(),
                setup.logs()
            ))
        }
    });
}

#[test]
fn the_oauth_fixture_passes_its_own_selftest() {
    if require(Tool::Authlib).is_none() {
        return;
    }
    let output = run_selftest().unwrap_or_else(|e| panic!("{e}"));
    assert!(output.contains("selftest: ok"), "{output}");
}

#[test]
fn a_revoked_token_with_a_rotated_secret_is_credential_rejected_with_refreshes_rejected() {
    if require(Tool::Authlib).is_none() {
        return;
    }
    let setup = Setup::start();
    assert_healthy_through_oauth(&setup);

    let rejected_before = refreshes(&setup.daemon.scrape(), "rejected");

    // The credential is withdrawn at the authorization server: the secret rotated first (so
    // the exporter's refresh with the old one is refused, invalid_client), then every token
    // issued to the client revoked (RFC 7009), which the server sees at once (introspection).
    // (The exporter's token may have run out on its own in between; the refusal that follows
    // is the same.)
    let auth = setup.auth_server();
    let new_secret = "rotated-secret";
    auth.rotate_secret(CLIENT_ID, new_secret)
        .unwrap_or_else(|e| panic!("{e}\n{}", setup.logs()));
    let tokens = auth
        .active_tokens(CLIENT_ID)
        .unwrap_or_else(|e| panic!("{e}\n{}", setup.logs()));
    for token in &tokens {
        auth.revoke(CLIENT_ID, new_secret, token)
            .unwrap_or_else(|e| panic!("{e}\n{}", setup.logs()));
    }
    assert_eq!(
        auth.active_tokens(CLIENT_ID).ok(),
        Some(Vec::new()),
        "tokens left after revocation\n{}",
        setup.logs()
    );

    let (scrape, row) = setup.wait_reason("credential_rejected");
    let logs = || format!("{}\n{row}\n{}", scrape.text(), setup.logs());
    assert_eq!(
        scrape.value("mcp_server_health_status", &[("server", SERVER)]),
        Some(0.0),
        "UNHEALTHY\n{}",
        logs()
    );
    assert_eq!(row["health"]["status"], "UNHEALTHY", "{}", logs());
    // Why, on the auth metrics: the refresh was refused, the authorization server is up.
    eventually(WAIT, POLL, || {
        let now = setup.daemon.scrape();
        let rejected = refreshes(&now, "rejected");
        if rejected > rejected_before {
            Ok(())
        } else {
            Err(format!(
                "no rejected refresh yet ({rejected_before} -> {rejected})\n{}\n{}",
                now.text(),
                setup.logs()
            ))
        }
    });
    let now = setup.daemon.scrape();
    assert_eq!(
        metadata_up(&now, "authorization_server"),
        Some(1.0),
        "{}",
        logs()
    );
    assert_eq!(
        now.value(
            "mcp_server_health_reason",
            &[("server", SERVER), ("reason", "auth_server_down")]
        ),
        None,
        "the authorization server is up: not auth_server_down\n{}",
        logs()
    );
    // Refused credentials are a security event.
    assert!(
        now.sum(
            "mcp_security_events_total",
            &[("server", SERVER), ("kind", "auth_failure")]
        ) >= 1.0,
        "an auth_failure event\n{}",
        logs()
    );
}

#[test]
fn a_stopped_authorization_server_is_auth_server_down_not_down() {
    if require(Tool::Authlib).is_none() {
        return;
    }
    let mut setup = Setup::start();
    assert_healthy_through_oauth(&setup);
    let before = setup.daemon.scrape();
    let down_before = before.sum(
        "mcp_probe_failures_total",
        &[("server", SERVER), ("class", "down")],
    );
    let unreachable_before = refreshes(&before, "unreachable");

    // The authorization server stops; the MCP server stays up, but refuses every token it
    // cannot introspect, so the exporter must go back to the authorization server.
    drop(setup.auth_server.take());

    let (scrape, row) = setup.wait_reason("auth_server_down");
    let logs = || format!("{}\n{row}\n{}", scrape.text(), setup.logs());
    eventually(WAIT, POLL, || {
        let now = setup.daemon.scrape();
        let metadata = metadata_up(&now, "authorization_server");
        let unreachable = refreshes(&now, "unreachable");
        if metadata == Some(0.0) && unreachable > unreachable_before {
            Ok(())
        } else {
            Err(format!(
                "authorization_server metadata {metadata:?}, unreachable refreshes \
                 {unreachable_before} -> {unreachable}\n{}\n{}",
                now.text(),
                setup.logs()
            ))
        }
    });
    let now = setup.daemon.scrape();
    // The MCP server itself answered all along: its own metadata is still read, and the
    // failure is the authorization server's, neither a rejected credential nor a down server.
    assert_eq!(
        metadata_up(&now, "protected_resource"),
        Some(1.0),
        "{}",
        logs()
    );
    assert_eq!(
        now.value(
            "mcp_server_health_reason",
            &[("server", SERVER), ("reason", "credential_rejected")]
        ),
        None,
        "{}",
        logs()
    );
    assert_eq!(
        now.sum(
            "mcp_probe_failures_total",
            &[("server", SERVER), ("class", "down")]
        ),
        down_before,
        "a probe failure counted as class down\n{}",
        logs()
    );
}

/// DPoP (docs/auth.md#dpop): the authorization server offers it and wants a nonce, the MCP
/// server checks every proof against the key the token is bound to and wants a nonce of its
/// own. The exporter retries both requests with the nonce, gets a DPoP-bound token and presents
/// it with a fresh proof on every request: HEALTHY with one token and no probe refused (a
/// client that answered the server's nonce challenge by fetching another token would have asked
/// twice, one that gave up would have failed a probe; the token lasts far longer than the test,
/// so no renewal counts).
#[test]
fn a_dpop_bound_token_with_both_servers_wanting_nonces_is_healthy() {
    if require(Tool::Authlib).is_none() {
        return;
    }
    let setup = Setup::start_with(
        Duration::from_secs(3600),
        &["--dpop", "--dpop-nonce", "as-nonce-1"],
        &["--dpop", "--dpop-nonce", "rs-nonce-1"],
        "",
    );
    let scrape = setup.wait_healthy();
    assert_eq!(
        refreshes(&scrape, "ok"),
        1.0,
        "{}\n{}",
        scrape.text(),
        setup.logs()
    );
    assert_eq!(refreshes(&scrape, "rejected"), 0.0, "{}", setup.logs());
    // No probe was refused: a nonce challenge answered by giving up would have failed one as
    // credential_rejected (other classes, a timeout on a loaded machine, say nothing of DPoP).
    assert_eq!(
        scrape.sum(
            "mcp_probe_failures_total",
            &[("server", SERVER), ("class", "credential_rejected")]
        ),
        0.0,
        "{}\n{}",
        scrape.text(),
        setup.logs()
    );
    let auth_log = setup.auth_server().guard.output();
    let resource_log = setup.resource.guard.output();
    let logs = || setup.logs();
    for (log, line) in [
        (&auth_log, "asked for the DPoP nonce"),
        (&auth_log, "issued a DPoP-bound token"),
        (&resource_log, "asked for the DPoP nonce"),
        (&resource_log, "accepted a DPoP-bound token with its proof"),
    ] {
        assert!(log.contains(line), "no {line:?}\n{}", logs());
    }
    for (log, line) in [
        (&auth_log, "refused a DPoP proof"),
        (&auth_log, "issued a bearer token"),
        (&resource_log, "refused a DPoP proof"),
        (&resource_log, "refused a bearer token"),
    ] {
        assert!(!log.contains(line), "{line:?}\n{}", logs());
    }
}

/// A server that accepts only DPoP-bound tokens, probed with `dpop = false`: the bearer token
/// the exporter obtains is refused, and so is the next one: `credential_rejected`.
#[test]
fn bearer_tokens_where_dpop_is_required_are_credential_rejected() {
    if require(Tool::Authlib).is_none() {
        return;
    }
    let setup = Setup::start_with(
        TOKEN_LIFETIME,
        &["--dpop"],
        &["--require-dpop"],
        ", dpop = false",
    );
    let (scrape, row) = setup.wait_reason("credential_rejected");
    let logs = || format!("{}\n{row}\n{}", scrape.text(), setup.logs());
    assert!(refreshes(&scrape, "ok") >= 1.0, "{}", logs());
    let resource_log = setup.resource.guard.output();
    assert!(
        resource_log.contains("refused a bearer token"),
        "{}",
        logs()
    );
    assert!(
        setup
            .auth_server()
            .guard
            .output()
            .contains("issued a bearer token"),
        "{}",
        logs()
    );
}

/// The server's name in the configuration of the login tests.
const LOGIN_SERVER: &str = "oauth-login-target";

/// The login file `mcp-exporter login` wrote in `dir` (`oauth-login-NAME-HASH.json`).
fn login_file(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("oauth-login-"))
        })
}

/// The refresh token stored in `path` for `issuer`.
fn stored_refresh(path: &std::path::Path, issuer: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    doc["logins"]
        .as_array()?
        .iter()
        .find(|l| l["issuer"] == issuer)?["refresh_token"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn login_stores_a_refresh_token_the_daemon_uses_until_it_is_revoked() {
    use std::os::unix::fs::PermissionsExt;

    use crate::common::daemon::daemon_bin;
    use crate::common::paths::repo_root;
    use crate::common::processes::run_bounded;

    if require(Tool::Authlib).is_none() || require(Tool::Python3).is_none() {
        return;
    }
    let auth = AuthorizationServer::start_authorization_code(TOKEN_LIFETIME);
    let resource = ResourceServer::start(&auth);
    let logs = |extra: &str| {
        format!(
            "{extra}\n--- authorization server:\n{}\n--- resource server:\n{}",
            auth.guard.output(),
            resource.guard.output()
        )
    };
    let store = tempfile::Builder::new()
        .prefix("mcp-exporter-login-")
        .tempdir()
        .expect("temp dir");
    // No client_id: `login` registers one (RFC 7591); the store's directory keeps the login.
    let config = format!(
        r#"
[store]
path = "{store}/history.db"

[[servers]]
name = "{LOGIN_SERVER}"
transport = "http"
url = "{url}"
interval = "1s"
timeout = "10s"
auth = {{ type = "oauth" }}
call = {{ tool = "add_numbers", arguments = {{ a = 2, b = 3 }}, expect_text = "5" }}
"#,
        store = store.path().display(),
        url = resource.mcp_url(),
    );
    let config_path = store.path().join("login.toml");
    std::fs::write(&config_path, &config).expect("write the config");

    // The opener follows the authorization URL as a browser whose person approves at once.
    let opener = format!(
        "python3 {}",
        repo_root()
            .join("scripts/follow-authorization-url.py")
            .display()
    );
    let output = run_bounded(
        std::process::Command::new(daemon_bin())
            .arg("login")
            .arg(LOGIN_SERVER)
            .arg("--config")
            .arg(&config_path)
            .args(["--no-browser", "--wait", "60s", "--open-with", &opener]),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{}", logs(&e)));
    let said = format!(
        "login exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{}", logs(&said));
    assert!(
        said.contains("the refresh token is stored in") && said.contains("HEALTHY"),
        "{}",
        logs(&said)
    );
    assert_eq!(
        auth.registrations().map(|r| r.len()),
        Ok(1),
        "one dynamic registration\n{}",
        logs(&said)
    );
    let file = login_file(store.path()).unwrap_or_else(|| panic!("no login file\n{}", logs(&said)));
    let mode = std::fs::metadata(&file)
        .expect("login file metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    let issuer = auth.issuer();
    let first_refresh = stored_refresh(&file, &issuer)
        .unwrap_or_else(|| panic!("no refresh token stored\n{}", logs(&said)));

    // The daemon, holding no token, uses what the login stored; once the access token runs
    // out (10 s) it renews with the stored refresh token, whose rotation it writes back.
    let daemon = Daemon::start(&config);
    let status = |d: &Daemon| {
        let (code, body) = d.get("/api/servers");
        assert_eq!(code, 200, "/api/servers: {body}");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        rows.into_iter()
            .find(|row| row["name"] == LOGIN_SERVER)
            .unwrap_or_default()
    };
    eventually(WAIT, POLL, || {
        let row = status(&daemon);
        let rotated = stored_refresh(&file, &issuer).is_some_and(|r| r != first_refresh);
        if row["health"]["status"] == "HEALTHY" && rotated {
            Ok(())
        } else {
            Err(logs(&format!(
                "not HEALTHY with a rotated refresh token yet: {}\n--- daemon:\n{}",
                row["health"],
                daemon.stderr()
            )))
        }
    });
    let mode = std::fs::metadata(&file)
        .expect("login file metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "still 0600 after the rewrite");

    // Revoked at the authorization server: when the access token runs out, the stored refresh
    // token is refused, and the reason names the command that fixes it.
    auth.revoke_refresh_tokens()
        .unwrap_or_else(|e| panic!("{}", logs(&e)));
    eventually(WAIT, POLL, || {
        let row = status(&daemon);
        let codes = row["health"]["codes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let rejected = codes
            .iter()
            .any(|c| c == "credential_rejected" || c == "login_required");
        let text = row.to_string();
        if row["health"]["status"] == "UNHEALTHY"
            && rejected
            && text.contains(&format!("mcp-exporter login {LOGIN_SERVER}"))
        {
            Ok(())
        } else {
            Err(logs(&format!(
                "not refused with a reason naming the login yet: {row}\n--- daemon:\n{}",
                daemon.stderr()
            )))
        }
    });
}
