//! TODO(wsi): event log endpoints (list, SSE).

use std::time::Duration;

use axum::Router;
use omnidm_core::{EventId, WsiStore};
use tokio::sync::watch;
use utoipa::OpenApi;

use crate::state::Api;

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
}

#[derive(OpenApi)]
pub(crate) struct Doc;

/// Publishes the newest event id every `every` until `stop`.
pub(crate) async fn poll_events<S: WsiStore>(
    store: S,
    tx: watch::Sender<EventId>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match store.last_event_id().await {
            Ok(id) => {
                tx.send_if_modified(|cur| {
                    let newer = id > *cur;
                    if newer {
                        *cur = id;
                    }
                    newer
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the event log"),
        }
    }
}
