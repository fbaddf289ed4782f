//! TODO(wsi): webhook subscriptions and deliveries.

use axum::Router;
use omnidm_core::WsiStore;
use tokio::sync::watch;
use utoipa::OpenApi;

use crate::state::Api;

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
}

#[derive(OpenApi)]
pub(crate) struct Doc;

/// Delivers webhooks until `stop`.
pub(crate) async fn deliver_forever<S: WsiStore>(_api: Api<S>, mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
