//! The handlers, one module per resource. Each module exposes `routes()` (its part of the
//! router) and `Doc` (its part of the OpenAPI document).

use axum::Router;
use omnidm_core::WsiStore;

use crate::state::Api;

pub(crate) mod apps;
pub(crate) mod audit;
pub(crate) mod charging;
pub(crate) mod devices;
pub(crate) mod events;
pub(crate) mod groups;
pub(crate) mod idempotency;
pub(crate) mod operations;
pub(crate) mod webhooks;

/// Every authenticated route under `/api/v1`.
pub(crate) fn router<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
        .merge(apps::routes())
        .merge(groups::routes())
        .merge(devices::routes())
        .merge(operations::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(charging::routes())
        .merge(audit::routes())
        .fallback(|| async {
            crate::problem::ApiError::new(
                crate::problem::Kind::NotFound,
                "no such endpoint; see /api/v1/docs",
            )
        })
        .method_not_allowed_fallback(|| async {
            crate::problem::ApiError::new(
                crate::problem::Kind::MethodNotAllowed,
                "this method is not allowed here; see /api/v1/docs",
            )
        })
}
