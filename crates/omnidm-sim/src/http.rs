//! The HTTP client every simulated device and the trivial-mode load generator share.
//!
//! One pooled HTTP/1.1 client (hyper-util), keep-alive and `TCP_NODELAY` on, so that the
//! session benchmark and the trivial-handler benchmark measure the same client machinery.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The HMAC transport header of DM Security 1.2 §5.5.
pub const HMAC_HEADER: &str = "x-syncml-hmac";

/// The largest response body accepted (a DM message is far smaller).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why an HTTP exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URI is not an absolute `http://` URI.
    #[error("bad URI {uri:?}: {reason}")]
    BadUri {
        /// The URI as given.
        uri: String,
        /// Why.
        reason: String,
    },
    /// No TCP connection could be made (refused, unreachable, DNS).
    #[error("cannot connect to {uri}: {reason}")]
    Connect {
        /// Where.
        uri: String,
        /// The cause.
        reason: String,
    },
    /// The connection broke or the response was malformed or too large.
    #[error("HTTP exchange with {uri} failed: {reason}")]
    Io {
        /// Where.
        uri: String,
        /// The cause.
        reason: String,
    },
    /// No complete response within the request timeout.
    #[error("no response from {uri} within {timeout:?}")]
    Timeout {
        /// Where.
        uri: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// An HTTP response, body collected.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `Content-Type`, when present and ASCII.
    pub content_type: Option<String>,
    /// `x-syncml-hmac`, when present and ASCII.
    pub hmac: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// A cloneable, pooled HTTP/1.1 client with a per-request timeout.
#[derive(Clone, Debug)]
pub struct HttpClient {
    /// The pooled hyper client (cheap to clone: shared pool).
    inner: Client<HttpConnector, Full<Bytes>>,
    /// Bound on one request: connect, send, and read the whole response.
    timeout: Duration,
}

/// A fixed HTTP request for trivial mode: a plain URL, or an API call with headers and a
/// JSON body, replayed as fast as the fleet's concurrency allows.
#[derive(Debug, Clone)]
pub struct PlainRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// Absolute `http://` URL.
    pub url: String,
    /// Extra headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// JSON body (sent as `application/json`).
    pub body: Option<Bytes>,
}

impl PlainRequest {
    /// A GET of `url`.
    pub fn get(url: &str) -> PlainRequest {
        PlainRequest {
            method: "GET".into(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }
}

impl HttpClient {
    /// A client whose requests each time out after `timeout`. Must be called within a Tokio
    /// runtime's context only when used, not when built.
    pub fn new(timeout: Duration) -> HttpClient {
        let mut connector = HttpConnector::new();
        // Small request/response pairs: Nagle would add ~40 ms per message on loopback.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpClient { inner, timeout }
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body`; `hmac` becomes the `x-syncml-hmac` header.
    pub async fn post(
        &self,
        uri: &str,
        content_type: &str,
        hmac: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Response, HttpError> {
        let mut req = hyper::Request::post(uri);
        let ct = HeaderValue::from_str(content_type).map_err(|e| HttpError::BadUri {
            uri: uri.to_owned(),
            reason: format!("content type: {e}"),
        })?;
        req = req.header(CONTENT_TYPE, ct);
        if let Some(h) = hmac {
            let v = HeaderValue::from_str(h).map_err(|e| HttpError::BadUri {
                uri: uri.to_owned(),
                reason: format!("hmac header: {e}"),
            })?;
            req = req.header(HMAC_HEADER, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::BadUri {
                uri: uri.to_owned(),
                reason: e.to_string(),
            })?;
        self.send(uri, req).await
    }

    /// Sends `request` (trivial mode: a fixed request replayed for benchmarks).
    pub async fn request(&self, request: &PlainRequest) -> Result<Response, HttpError> {
        let uri = request.url.as_str();
        let bad = |reason: String| HttpError::BadUri {
            uri: uri.to_owned(),
            reason,
        };
        let mut req = hyper::Request::builder()
            .method(request.method.as_str())
            .uri(uri);
        for (name, value) in &request.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if request.body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let body = request.body.clone().unwrap_or_default();
        let req = req.body(Full::new(body)).map_err(|e| bad(e.to_string()))?;
        self.send(uri, req).await
    }

    async fn send(
        &self,
        uri: &str,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<Response, HttpError> {
        if req.uri().scheme_str() != Some("http") || req.uri().host().is_none() {
            return Err(HttpError::BadUri {
                uri: uri.to_owned(),
                reason: "only absolute http:// URIs are supported".into(),
            });
        }
        let exchange = async {
            let resp = self.inner.request(req).await.map_err(|e| {
                if e.is_connect() {
                    HttpError::Connect {
                        uri: uri.to_owned(),
                        reason: source_chain(&e),
                    }
                } else {
                    HttpError::Io {
                        uri: uri.to_owned(),
                        reason: source_chain(&e),
                    }
                }
            })?;
            let (parts, body) = resp.into_parts();
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let content_type = header(CONTENT_TYPE.as_str());
            let hmac = header(HMAC_HEADER);
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| HttpError::Io {
                    uri: uri.to_owned(),
                    reason: format!("reading the body: {e}"),
                })?
                .to_bytes();
            Ok(Response {
                status: parts.status.as_u16(),
                content_type,
                hmac,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout {
                uri: uri.to_owned(),
                timeout: self.timeout,
            }),
        }
    }
}

/// `e: cause: cause…`, since hyper-util's top-level message alone is vague.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
