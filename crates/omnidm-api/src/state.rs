//! Shared state of the API and the request pipeline (authentication, limits, audit).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omnidm_core::{EventId, NewAudit, WsiStore};
use tokio::sync::{mpsc, watch};

use crate::access::GrantCache;
use crate::auth::{Caller, KeyCache, Limiter};
use crate::problem::{ApiError, Kind};
use crate::wire::now;

/// Tunables of the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest `wait` a client may ask for on operations.
    pub max_wait_secs: u64,
    /// How often the event log is polled for new events (SSE, long-polls, webhooks).
    pub event_poll: std::time::Duration,
    /// Allow webhook URLs on loopback and private addresses (tests, labs).
    pub allow_private_webhooks: bool,
    /// The OMA DM server id devices know us by (default of provisioned DM accounts).
    pub dm_server_id: String,
    /// First webhook retry delay; each further failure doubles it (capped at 1 h).
    pub webhook_retry_base: std::time::Duration,
    /// The proxy webhook deliveries go through (`http://host:port`); `None`: direct, and
    /// proxies from the environment are ignored.
    pub webhook_proxy: Option<String>,
    /// Longest lifetime of an application's key (`[api] max_key_lifetime_secs`): keys asked
    /// for without expiry, or with a later one, expire then. `None`: no cap. Admin keys are
    /// not capped.
    pub max_key_lifetime: Option<std::time::Duration>,
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            max_body_bytes: 1 << 20,
            max_wait_secs: 60,
            event_poll: std::time::Duration::from_millis(200),
            allow_private_webhooks: false,
            dm_server_id: "omnidm".into(),
            webhook_retry_base: std::time::Duration::from_secs(1),
            webhook_proxy: None,
            max_key_lifetime: None,
        }
    }
}

pub(crate) struct Shared {
    pub keys: KeyCache,
    pub grants: GrantCache,
    pub limiter: Limiter,
    /// Newest event id, refreshed by the event poller.
    pub events: watch::Receiver<EventId>,
    pub audit: mpsc::Sender<NewAudit>,
    pub options: ApiOptions,
    /// Held while a webhook subscription is created, so that the per-application cap and the
    /// duplicate check are not raced by concurrent requests on this node.
    pub subscribing: tokio::sync::Mutex<()>,
}

/// The Web Services Interface over a store. Cheap to clone.
pub struct Api<S> {
    pub(crate) store: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: Clone> Clone for Api<S> {
    fn clone(&self) -> Self {
        Api {
            store: self.store.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: WsiStore> Api<S> {
    /// Starts the background tasks (event poller, audit writer, webhook deliveries); they
    /// stop when `stop` turns true, after flushing the audit log.
    pub async fn start(
        store: S,
        options: ApiOptions,
        stop: watch::Receiver<bool>,
    ) -> Result<(Api<S>, tokio::task::JoinHandle<()>), omnidm_core::StoreError> {
        let last = store.last_event_id().await?;
        let (events_tx, events_rx) = watch::channel(last);
        let (audit_tx, audit_rx) = mpsc::channel(65_536);
        let api = Api {
            store: store.clone(),
            shared: Arc::new(Shared {
                keys: KeyCache::default(),
                grants: GrantCache::default(),
                limiter: Limiter::default(),
                events: events_rx,
                audit: audit_tx,
                options: options.clone(),
                subscribing: tokio::sync::Mutex::new(()),
            }),
        };
        let poller = tokio::spawn(crate::routes::events::poll_events(
            store.clone(),
            events_tx,
            options.event_poll,
            stop.clone(),
        ));
        let auditor = tokio::spawn(crate::audit::write_audit(store.clone(), audit_rx));
        let hooks = tokio::spawn(crate::routes::webhooks::deliver_forever(api.clone(), stop));
        let tasks = tokio::spawn(async move {
            let _ = poller.await;
            let _ = hooks.await;
            let _ = auditor.await;
        });
        Ok((api, tasks))
    }

    /// The `/api/v1` router (with the docs page and OpenAPI document).
    pub fn router(&self) -> Router {
        let max_body = self.shared.options.max_body_bytes;
        crate::routes::router::<S>()
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                guard::<S>,
            ))
            .layer(axum::extract::DefaultBodyLimit::max(max_body))
            .with_state(self.clone())
            .merge(crate::openapi::docs_router())
    }
}

/// Every request: authenticate, admit (rate limit, quota), run, audit.
///
/// The client address (for the failed-authentication limits) comes from the connection when
/// the server provides it (`into_make_service_with_connect_info`); without it, only the per-key
/// limits apply. Every answer gets `X-Content-Type-Options: nosniff` and, unless the handler
/// chose otherwise, `Cache-Control: no-store`: API answers are per caller and some carry
/// secrets (keys, webhook signing secrets).
async fn guard<S: WsiStore>(State(api): State<Api<S>>, req: Request, next: Next) -> Response {
    let mut response = guarded(api, req, next).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn guarded<S: WsiStore>(api: Api<S>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let at = now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (response, app_id, key_id) = match api
        .shared
        .keys
        .authenticate(&api.store, header.as_deref(), client, at)
        .await
    {
        Err((e, key)) => (e.into_response(), None, key.map(|k| k.0)),
        Ok(caller) => {
            let app_id = caller.app.id.clone();
            let key_id = caller.key_id.0.clone();
            match api.shared.limiter.admit(&api.store, &caller.app, at).await {
                Err(e) => (e.into_response(), Some(app_id), Some(key_id)),
                Ok(()) => {
                    req.extensions_mut().insert(caller);
                    (next.run(req).await, Some(app_id), Some(key_id))
                }
            }
        }
    };
    let status = response.status().as_u16();
    let rule = response
        .extensions()
        .get::<ApiError>()
        .and_then(|e| e.rule.clone());
    let outcome = match status {
        401 | 403 | 429 => "denied",
        // A resource the caller may not see, answered as not found (`ApiError::hidden`).
        404 if rule.is_some() => "denied",
        s if s >= 400 => "error",
        _ => "allowed",
    };
    if outcome == "denied" {
        tracing::info!(%method, %path, status, app = app_id.as_ref().map(|a| a.as_str()), rule = rule.as_deref(), "API call denied");
    }
    metrics::histogram!("omnidm_api_request_seconds", "status" => status.to_string())
        .record(started.elapsed().as_secs_f64());
    let entry = NewAudit {
        at,
        app_id,
        key_id,
        method,
        target: audit_target(&path),
        path,
        status,
        outcome: outcome.to_owned(),
        rule,
    };
    if api.shared.audit.try_send(entry).is_err() {
        metrics::counter!("omnidm_api_audit_dropped_total").increment(1);
        tracing::error!("audit queue full: an audit entry was dropped");
    }
    response
}

/// `/api/v1/devices/IMEI:1/tree` → `devices/IMEI:1`.
fn audit_target(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/")?;
    let mut parts = rest.split('/');
    let collection = parts.next()?;
    let id = parts.next().filter(|s| !s.is_empty())?;
    Some(format!("{collection}/{id}"))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                Kind::Unauthenticated,
                "send your API key as `Authorization: Bearer omk_…`",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn audit_targets() {
        assert_eq!(
            super::audit_target("/api/v1/devices/IMEI:1/tree").as_deref(),
            Some("devices/IMEI:1")
        );
        assert_eq!(super::audit_target("/api/v1/devices").as_deref(), None);
    }
}
