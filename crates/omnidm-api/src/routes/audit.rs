//! The audit log of API calls (admin only), newest first.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use omnidm_core::{AuditEntry, AuditFilter, WsiStore};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::Caller;
use crate::dto::Page;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::apps::app_id;
use crate::state::Api;
use crate::wire::{Query, decode_num_cursor, encode_cursor, page_limit, parse_rfc3339, rfc3339};

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new().route("/api/v1/audit", get(list_audit::<S>))
}

#[derive(OpenApi)]
#[openapi(paths(list_audit), components(schemas(AuditView)))]
pub(crate) struct Doc;

/// Outcomes recorded in the audit log.
const OUTCOMES: [&str; 3] = ["allowed", "denied", "error"];

/// One audited API call.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Sequence number.
    pub id: u64,
    /// When the request arrived (RFC 3339).
    pub at: String,
    /// The authenticated application (absent when authentication failed).
    pub app_id: Option<String>,
    /// The key presented (its public id), when known.
    pub key_id: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path (no query).
    pub path: String,
    /// What the call addressed (`devices/IMEI:1`, `operations/7`, …).
    pub target: Option<String>,
    /// Response status.
    pub status: u16,
    /// `allowed`, `denied` (401, 403, 429) or `error` (other 4xx and 5xx).
    pub outcome: String,
    /// For a denial, the rule that denied.
    pub rule: Option<String>,
}

impl From<&AuditEntry> for AuditView {
    fn from(a: &AuditEntry) -> AuditView {
        let e = &a.entry;
        AuditView {
            id: a.id,
            at: rfc3339(e.at),
            app_id: e.app_id.as_ref().map(|a| a.as_str().to_owned()),
            key_id: e.key_id.clone(),
            method: e.method.clone(),
            path: e.path.clone(),
            target: e.target.clone(),
            status: e.status,
            outcome: e.outcome.clone(),
            rule: e.rule.clone(),
        }
    }
}

/// Query of the audit log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only calls of this application.
    application: Option<String>,
    /// Only this outcome: `allowed`, `denied` or `error`.
    outcome: Option<String>,
    /// At or after this time (RFC 3339).
    from: Option<String>,
    /// Before this time (RFC 3339).
    to: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    limit: Option<u32>,
}

impl AuditQuery {
    fn filter(&self) -> ApiResult<AuditFilter> {
        if let Some(o) = &self.outcome
            && !OUTCOMES.contains(&o.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "outcome {o:?}: use allowed, denied or error"
            )));
        }
        Ok(AuditFilter {
            app_id: self.application.as_deref().map(app_id).transpose()?,
            outcome: self.outcome.clone(),
            from: self
                .from
                .as_deref()
                .map(|s| parse_rfc3339("from", s))
                .transpose()?,
            to: self
                .to
                .as_deref()
                .map(|s| parse_rfc3339("to", s))
                .transpose()?,
        })
    }
}

/// The audit log, newest first (admin). Every call is audited, denials with their rule;
/// entries are written in the background, so the newest calls appear within a second.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditView>), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_audit<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<Page<AuditView>>> {
    caller.require_admin()?;
    let filter = q.filter()?;
    let limit = page_limit(q.limit)?;
    let before = q.cursor.as_deref().map(decode_num_cursor).transpose()?;
    let entries = api.store.list_audit(&filter, before, limit).await?;
    let next_cursor = (entries.len() >= limit as usize)
        .then(|| entries.last().map(|e| encode_cursor(&e.id.to_string())))
        .flatten();
    Ok(axum::Json(Page {
        items: entries.iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_times_are_checked() {
        let q = AuditQuery {
            outcome: Some("denied".into()),
            from: Some("2026-11-24T08:00:00Z".into()),
            ..AuditQuery::default()
        };
        let f = q.filter().unwrap();
        assert_eq!(f.outcome.as_deref(), Some("denied"));
        assert!(f.from.is_some());
        let q = AuditQuery {
            outcome: Some("maybe".into()),
            ..AuditQuery::default()
        };
        assert!(q.filter().is_err());
        let q = AuditQuery {
            to: Some("tomorrow".into()),
            ..AuditQuery::default()
        };
        assert!(q.filter().is_err());
    }
}
