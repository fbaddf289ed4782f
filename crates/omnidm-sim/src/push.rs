//! The receiving end of a push gateway: package 0 over HTTP → a server-initiated session.
//!
//! `POST /push/{device_id}` (or `POST /push` with `X-Device-Id: …`), body = the binary
//! package 0 (DM Notification 1.2 §6). The digest is checked with the device's server
//! credentials and current server nonce (then the resynchronisation nonces) before anything
//! runs. The answer does not wait for the session: 202 means "verified, session started".

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use omnidm_omadm::client::TriggerError;

use crate::fleet::Inner;
use crate::http::HttpClient;

/// The header naming the device on `POST /push`.
pub const DEVICE_ID_HEADER: &str = "x-device-id";

/// Why a package 0 was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PushRefused {
    /// No such device in this fleet.
    #[error("unknown device {0:?}")]
    UnknownDevice(String),
    /// Undecodable, another server's, or a bad digest.
    #[error("{0}")]
    Trigger(TriggerError),
}

impl PushRefused {
    fn status(&self) -> StatusCode {
        match self {
            PushRefused::UnknownDevice(_) => StatusCode::NOT_FOUND,
            PushRefused::Trigger(TriggerError::Decode(_)) => StatusCode::BAD_REQUEST,
            PushRefused::Trigger(_) => StatusCode::FORBIDDEN,
        }
    }
}

#[derive(Clone)]
struct PushState {
    /// The fleet.
    inner: Arc<Inner>,
    /// The client the triggered sessions use.
    http: HttpClient,
}

pub(crate) fn serve(
    inner: Arc<Inner>,
    listener: tokio::net::TcpListener,
    http: HttpClient,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let mut stop = inner.stop_receiver();
    let app = Router::new()
        .route("/push/{device_id}", post(push_path))
        .route("/push", post(push_header))
        // A package 0 is a few dozen bytes; anything large is not one.
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(PushState { inner, http });
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    })
}

async fn push_path(
    State(s): State<PushState>,
    Path(device_id): Path<String>,
    body: Bytes,
) -> (StatusCode, String) {
    handle(&s, &device_id, &body)
}

async fn push_header(
    State(s): State<PushState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    match headers.get(DEVICE_ID_HEADER).and_then(|v| v.to_str().ok()) {
        Some(id) => handle(&s, id.trim(), &body),
        None => (
            StatusCode::BAD_REQUEST,
            "name the device: POST /push/{device_id} or an X-Device-Id header\n".into(),
        ),
    }
}

fn handle(s: &PushState, device_id: &str, body: &[u8]) -> (StatusCode, String) {
    match s.inner.push(device_id, body, &s.http) {
        Ok(()) => (StatusCode::ACCEPTED, "session started\n".into()),
        Err(e) => {
            tracing::info!(device = device_id, "package 0 refused: {e}");
            (e.status(), format!("{e}\n"))
        }
    }
}
