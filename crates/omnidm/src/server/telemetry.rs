//! Logs (`tracing`, filter from the configuration or `OMNIDM_LOG`) and the Prometheus recorder
//! behind `/metrics`.

use anyhow::Context as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber and metrics recorder; returns the handle that renders
/// `/metrics`.
pub fn init(filter: &str) -> anyhow::Result<PrometheusHandle> {
    let filter = EnvFilter::try_new(filter).with_context(|| {
        format!("log filter {filter:?} is invalid (try `info` or `omnidm=debug`)")
    })?;
    // A second init (tests starting several servers in one process) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    // The recorder is process-global: install it once, hand out the same handle afterwards.
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}
