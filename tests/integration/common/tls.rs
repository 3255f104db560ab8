//! HTTPS for test servers: a private CA and a leaf certificate made by rcgen, and a small
//! TLS-terminating reverse proxy (axum over rustls, loopback only) in front of a plain-HTTP
//! server, which can demand a bearer token as an MCP server behind an authorization server does.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA valid for 30 days and a leaf it signed, valid for the given time, written to a
/// temporary directory (`ca_file` holds the CA certificate in PEM).
pub struct TestPki {
    _dir: tempfile::TempDir,
    /// The CA certificate, PEM: what `tls.ca_file` names.
    pub ca_file: PathBuf,
    /// The leaf's not-after, Unix seconds (whole seconds, as X.509 stores it).
    pub leaf_not_after: i64,
    /// The CA's not-after, Unix seconds.
    pub ca_not_after: i64,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Sets the validity of `params` from `not_before` to `not_after` (Unix seconds, after 1970).
fn set_validity(params: &mut rcgen::CertificateParams, not_before: i64, not_after: i64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(not_before.max(0) as u64);
    params.not_after = epoch + Duration::from_secs(not_after.max(0) as u64);
}

impl TestPki {
    /// A CA and a leaf for `names` (DNS names or IP addresses) expiring `leaf_valid_for` from
    /// now; the CA outlives the leaf, so the leaf's not-after is the chain's earliest.
    pub fn new(names: &[&str], leaf_valid_for: Duration) -> TestPki {
        let now = unix_now();
        let ca_not_after = now + 30 * 86_400;
        let leaf_not_after = now + leaf_valid_for.as_secs() as i64;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mcp-exporter test CA");
        set_validity(&mut ca_params, now - 3600, ca_not_after);
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
        let mut leaf_params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf parameters");
        set_validity(&mut leaf_params, now - 3600, leaf_not_after);
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .expect("leaf certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write ca.pem");
        TestPki {
            _dir: dir,
            ca_file,
            leaf_not_after,
            ca_not_after,
            chain: vec![leaf.der().clone(), ca.der().clone()],
            key: leaf_key.serialize_der(),
        }
    }

    fn server_config(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                self.chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
            )
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

/// What the proxy shares with its handler.
struct Front {
    backend: u16,
    client: reqwest::Client,
    token: Mutex<Option<String>>,
}

/// An HTTPS reverse proxy on a loopback port in front of `http://127.0.0.1:<backend>`,
/// presenting the [`TestPki`] leaf and its CA; stopped when dropped.
pub struct TlsFront {
    /// The port it listens on.
    pub port: u16,
    front: Arc<Front>,
    handle: axum_server::Handle<std::net::SocketAddr>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsFront {
    /// Starts the proxy; returns once it listens.
    pub fn start(pki: &TestPki, backend: u16) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS front");
        let port = listener.local_addr().expect("local address").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let front = Arc::new(Front {
            backend,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
            token: Mutex::new(None),
        });
        let config =
            axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(pki.server_config()));
        let handle = axum_server::Handle::new();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&front));
        let server_handle = handle.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let server = axum_server::from_tcp_rustls(listener, config)
                    .expect("TLS server")
                    .handle(server_handle);
                let _ = server.serve(app.into_make_service()).await;
            });
        });
        TlsFront {
            port,
            front,
            handle,
            thread: Some(thread),
        }
    }

    /// From now on, answer 401 unless the request carries `Authorization: Bearer <token>`
    /// (`None`: let every request through).
    pub fn require_token(&self, token: Option<&str>) {
        *self.front.token.lock().unwrap_or_else(|p| p.into_inner()) = token.map(String::from);
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Checks the token, then forwards the request to the backend and streams its answer back.
async fn forward(State(front): State<Arc<Front>>, request: Request) -> Response {
    let wanted = front
        .token
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(token) = wanted {
        let presented = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if presented != Some(format!("Bearer {token}").as_str()) {
            let mut refused = Response::new(Body::empty());
            *refused.status_mut() = StatusCode::UNAUTHORIZED;
            refused.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return refused;
        }
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return status(StatusCode::BAD_REQUEST);
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut outgoing = front
        .client
        .request(
            parts.method,
            format!("http://127.0.0.1:{}{path}", front.backend),
        )
        .body(body);
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(answer) = outgoing.send().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY))
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}
