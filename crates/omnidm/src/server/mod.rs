//! `omnidm serve`: wiring of configuration, telemetry, listeners and shutdown.
//!
//! The device endpoint and the Web Services Interface are routers mounted here; this module
//! owns only process concerns: which sockets are bound (exactly those the configuration names),
//! how the process stops (SIGTERM/SIGINT → stop accepting, finish in-flight requests), and the
//! admin endpoints every operator expects (`/healthz`, `/readyz`, `/metrics`).

pub mod config;
pub mod datadir;
pub mod dm;
pub mod push;
mod telemetry;

use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use config::Config;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Shared state of the admin endpoints.
#[derive(Clone)]
struct Admin {
    metrics: PrometheusHandle,
    /// Set once every listener is bound and the store is open; cleared when shutdown begins, so
    /// a load balancer stops sending new sessions while in-flight ones finish.
    ready: Arc<AtomicBool>,
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let metrics = telemetry::init(&config.log)?;
    datadir::prepare(&config.data_dir, &config.database)?;

    let api_listener = bind(config.api_listen, "API").await?;
    let dm_listener = bind(config.dm.listen, "device endpoint").await?;
    let public_url = match &config.dm.public_url {
        Some(url) => url.clone(),
        None => format!("http://{}/dm", dm_listener.local_addr()?),
    };

    let store = omnidm_store::AnyStore::connect(&config.database)
        .await
        .with_context(|| format!("opening the store {}", config.database))?;
    let mut engine = omnidm_omadm::server::ServerConfig::new(&config.dm.server_id, &public_url);
    engine.session_timeout = config.dm.session_timeout;
    let correlator_key = dm::correlator_key(&store)
        .await
        .context("reading the correlator key")?;
    let options = dm::EndpointOptions {
        push: config.push_gateway.clone().map(push::PushGateway::new),
        open_enrolment: config.dm.open_enrolment_secret.clone(),
        quirk_rules: config.dm.quirk_rules.clone(),
        correlator_key: Some(correlator_key),
        auth_failure_window: Some(config.dm.auth_failure_window),
        max_unauthenticated_sessions: Some(config.dm.max_unauthenticated_sessions),
        report_timeout: Some(config.dm.report_timeout),
    };
    let endpoint = dm::DmEndpoint::new(store.clone(), engine, node_id(), options);
    if config.dm.open_enrolment_secret.is_some() {
        tracing::warn!(
            "open enrolment is on: unknown devices are registered on first contact (lab use only)"
        );
    }
    endpoint
        .recover()
        .await
        .context("recovering operations of the last run")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(path) = omnidm_api::bootstrap::ensure_admin(&store, &config.data_dir)
        .await
        .context("creating the admin application")?
    {
        tracing::warn!(
            file = %path.display(),
            "first start: created the `admin` application; its API key is in this file (mode 0600)"
        );
    }
    let api_options = omnidm_api::ApiOptions {
        allow_private_webhooks: config.allow_private_webhooks,
        dm_server_id: config.dm.server_id.clone(),
        webhook_retry_base: config.webhook_retry_base,
        webhook_proxy: config.webhook_proxy.clone(),
        max_key_lifetime: config.max_key_lifetime,
        wake_up_available: config.push_gateway.is_some(),
        ..omnidm_api::ApiOptions::default()
    };
    let (wsi, wsi_tasks) = omnidm_api::Api::start(store.clone(), api_options, stop_rx.clone())
        .await
        .context("starting the Web Services Interface")?;
    let admin = Admin {
        metrics,
        ready: Arc::new(AtomicBool::new(false)),
    };
    // The WSI under /api/v1 and the admin endpoints share the API listener.
    let api = admin_router(admin.clone()).merge(wsi.router());
    // The routers hold what they need; the audit writer stops once every clone is gone.
    drop(wsi);
    let dm_routes = Router::new()
        .route("/dm", axum::routing::post(dm::post_dm))
        .layer(axum::extract::DefaultBodyLimit::max(
            config.dm.max_body_bytes,
        ))
        .with_state(endpoint.clone());

    let shutdown = shutdown_signal();
    tracing::info!(
        api = %api_listener.local_addr()?,
        dm = %dm_listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        "omnidm listening"
    );

    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // With the peer address: the WSI limits failed authentications per client address.
    let api_server = axum::serve(
        api_listener,
        api.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(stop_rx.clone()));
    let dm_server =
        axum::serve(dm_listener, dm_routes).with_graceful_shutdown(stopped(stop_rx.clone()));
    let mut grace_stop = stop_rx.clone();
    let sweeper = {
        let endpoint = endpoint.clone();
        let mut stop = stop_rx;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(dm::SWEEP_EVERY);
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stop.wait_for(|s| *s) => true,
                };
                if stopping {
                    break;
                }
                endpoint.sweep().await;
            }
        })
    };
    admin.ready.store(true, Ordering::SeqCst);

    let ready = admin.ready.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: finishing in-flight requests");
        ready.store(false, Ordering::SeqCst);
        let _ = stop_tx.send(true);
    });
    // Graceful, but bounded: connections that never finish a request (a slow or stalled
    // client, an event stream) must not keep the process from stopping (issue 10).
    let servers = async { tokio::join!(api_server, dm_server) };
    tokio::pin!(servers);
    let (a, d) = tokio::select! {
        done = &mut servers => done,
        () = async {
            let _ = grace_stop.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!(
                grace_secs = SHUTDOWN_GRACE.as_secs(),
                "connections still open after the shutdown grace period are closed"
            );
            (Ok(()), Ok(()))
        }
    };
    let _ = sweeper.await;
    // Flushes the audit log (its writer ends when the routers are dropped with the servers).
    // Connections closed by the grace period may still hold a router: the writer has written
    // everything it received by then (it writes as entries arrive), so the wait is bounded.
    if tokio::time::timeout(AUDIT_FLUSH, wsi_tasks).await.is_err() {
        tracing::warn!("the audit writer did not end: connections were closed by the grace period");
    }
    // Sessions still open are parked: what they learned is written, what they hold is
    // recovered (requeued, or reported when it may have run).
    endpoint.park_all().await;
    store.close().await;
    a.context("API server")?;
    d.context("device endpoint")?;
    tracing::info!("omnidm stopped");
    Ok(())
}

/// How long a stopping server lets in-flight requests finish before it closes what is left.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the WSI's background tasks get to finish after the listeners have stopped.
const AUDIT_FLUSH: std::time::Duration = std::time::Duration::from_secs(3);

/// This process's node id: prefixes session ids so that a restarting node recovers only its
/// own sessions when several nodes share one PostgreSQL database.
fn node_id() -> String {
    std::env::var("OMNIDM_NODE_ID").unwrap_or_else(|_| "node1".into())
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the {what}; is another omnidm running? change it with --{}-listen", if what == "API" { "api" } else { "dm" }))
}

fn admin_router(admin: Admin) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(
                |axum::extract::State(admin): axum::extract::State<Admin>| async move {
                    if admin.ready.load(Ordering::SeqCst) {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                },
            ),
        )
        .route(
            "/metrics",
            get(
                |axum::extract::State(admin): axum::extract::State<Admin>| async move {
                    admin.metrics.render()
                },
            ),
        )
        .with_state(admin)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: called before the server logs that it is listening,
/// a SIGTERM sent right after that line stops it gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind: SignalKind, name: &'static str| {
            let stream = signal(kind)
                .map_err(|e| tracing::warn!(error = %e, "cannot watch {name}"))
                .ok();
            async move {
                match stream {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
        };
        let int = watch(SignalKind::interrupt(), "SIGINT");
        let term = watch(SignalKind::terminate(), "SIGTERM");
        async move {
            tokio::select! { () = int => {}, () = term => {} }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
