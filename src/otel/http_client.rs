//! The OTLP exporter's HTTP client: the daemon's reqwest (rustls, no second HTTP stack), run on
//! the daemon's tokio runtime whatever thread or executor the exporter polls it from.

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// Posts export requests with reqwest on the runtime of `handle`.
#[derive(Debug, Clone)]
pub struct ReqwestOnRuntime {
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
}

impl ReqwestOnRuntime {
    /// A client whose requests give up after `timeout`, run on `handle`'s runtime.
    pub fn new(
        handle: tokio::runtime::Handle,
        timeout: std::time::Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(ReqwestOnRuntime { client, handle })
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestOnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let task = self.handle.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let mut built = Response::builder().status(response.status());
            for (name, value) in response.headers() {
                built = built.header(name, value);
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(built.body(body)?)
        });
        task.await?
    }
}
