//! TODO(wsi): audit endpoints.

use axum::Router;
use omnidm_core::WsiStore;
use utoipa::OpenApi;

use crate::state::Api;

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
}

#[derive(OpenApi)]
pub(crate) struct Doc;
