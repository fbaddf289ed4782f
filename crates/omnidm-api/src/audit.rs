//! The audit writer: API calls are audited in batches off the request path (one transaction
//! per batch), so auditing costs a request a channel send, not a database write. A crash
//! loses at most the batch being collected (well under a second of calls).

use omnidm_core::{NewAudit, WsiStore};
use tokio::sync::mpsc;

/// Largest batch written in one transaction.
const BATCH: usize = 1024;

/// Writes audit entries until every sender is gone (the API was dropped at shutdown).
pub(crate) async fn write_audit<S: WsiStore>(store: S, mut rx: mpsc::Receiver<NewAudit>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(e) = store.append_audit(&batch).await {
            tracing::error!(error = %e, entries = batch.len(), "could not write audit entries");
            metrics::counter!("omnidm_api_audit_dropped_total").increment(batch.len() as u64);
        }
        batch.clear();
    }
}
