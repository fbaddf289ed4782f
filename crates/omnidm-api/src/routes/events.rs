//! The event log: `GET /events` (pages) and `GET /events/stream` (Server-Sent Events), both
//! filtered by the caller's visibility (see [`crate::visibility`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use omnidm_core::{Event, EventFilter, EventId, EventKind, JobId, WsiStore};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::Caller;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::groups::device_id;
use crate::state::Api;
use crate::visibility::EventVisibility;
use crate::wire::{Query, page_limit, rfc3339};

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
        .route("/api/v1/events", get(list_events::<S>))
        .route("/api/v1/events/stream", get(stream_events::<S>))
}

#[derive(OpenApi)]
#[openapi(
    paths(list_events, stream_events),
    components(schemas(EventView, EventPage))
)]
pub(crate) struct Doc;

/// Events read from the store per batch while filtering.
const BATCH: u32 = 500;

/// Most event ids examined by one `GET /events` (bounded work per call; the cursor says where
/// the scan stopped, so the next call continues there).
const MAX_SCAN: u64 = 5_000;

/// Keep-alive comment interval of the SSE stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often an open SSE stream re-reads its key and application from the store; it ends when
/// the key is revoked or expired or the application disabled or deleted. Revocations and
/// application changes made through this node are checked at once, and an expiring key is
/// checked at its expiry.
pub(crate) const STREAM_RECHECK: Duration = Duration::from_secs(5);

/// An event as the API shows it (list, SSE `data:`, webhook body).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    /// Event id: increasing in commit order; the cursor of `after` and `Last-Event-ID`.
    pub id: u64,
    /// Stable type name (`operation.state_changed`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (RFC 3339).
    pub at: String,
    /// The device concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The application whose operation this is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The operation (`/operations/{id}`) concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<u64>,
    /// The device operation concerned (one device's part of the operation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_operation_id: Option<u64>,
    /// The tree node concerned (command results, generic alert source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Type-specific details.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> EventView {
        let ev = &e.event;
        EventView {
            id: e.id.0,
            kind: ev.kind.as_str().to_owned(),
            at: rfc3339(ev.at),
            device_id: ev.device_id.as_ref().map(|d| d.as_str().to_owned()),
            app_id: ev.app_id.as_ref().map(|a| a.as_str().to_owned()),
            operation_id: ev.job_id.map(|j| j.0),
            device_operation_id: ev.operation_id.map(|o| o.0),
            path: ev.path.as_ref().map(ToString::to_string),
            data: ev.data.clone(),
        }
    }
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Visible events, oldest first.
    pub items: Vec<EventView>,
    /// Where this page stopped: pass it as `after` next time. The last item when the page is
    /// full; otherwise the end of the stretch of the log examined (at most 5,000 ids, never
    /// past the newest event), whatever the filters matched there. Always present; equal to
    /// the `after` sent when nothing new was found.
    pub next_cursor: String,
}

/// Filters of the event list and stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// Only events after this id (exclusive). The list starts at the beginning of the log
    /// without it; the stream starts at the newest event (or at `Last-Event-ID`).
    after: Option<u64>,
    /// Same as `after` (the `next_cursor` of the previous page).
    cursor: Option<String>,
    /// Only these types, comma-separated (`operation.state_changed,command.result`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kinds: Option<String>,
    /// Only this device.
    device: Option<String>,
    /// Only this operation (its id).
    operation: Option<u64>,
    /// Page size, 1–1000 (default 100). Ignored by the stream.
    limit: Option<u32>,
}

/// Parses `a,b,c` into event kinds; an unknown name is a 400 listing the valid ones.
pub(crate) fn parse_kinds<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> ApiResult<Vec<EventKind>> {
    let mut kinds = Vec::new();
    for name in names {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let kind = EventKind::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::bad_request(format!(
                "unknown event type {name:?}; known types: {}",
                known.join(", ")
            ))
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

impl EventQuery {
    fn filter(&self) -> ApiResult<EventFilter> {
        Ok(EventFilter {
            kinds: match &self.kinds {
                Some(k) => parse_kinds(k.split(','))?,
                None => Vec::new(),
            },
            device_id: self.device.as_deref().map(device_id).transpose()?,
            job_id: self.operation.map(JobId),
        })
    }

    /// `after` or `cursor` (not both).
    fn after(&self) -> ApiResult<Option<u64>> {
        match (self.after, &self.cursor) {
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "pass either after or cursor, not both",
            )),
            (Some(a), None) => Ok(Some(a)),
            (None, Some(c)) => c.trim().parse().map(Some).map_err(|_| {
                ApiError::bad_request(
                    "cursor is not one this server issued; pass next_cursor from the previous page unchanged",
                )
            }),
            (None, None) => Ok(None),
        }
    }
}

/// Reads visible events after `after`, up to `limit` of them, examining the ids after `after`
/// up to at most `window` ids further (and no further than the log's head); returns them with
/// the cursor to continue from.
///
/// The cursor is the last event returned when the page is full, otherwise the end of the
/// examined window. Both depend only on `after`, the log's head and visible events — never on
/// invisible events matching the filters: filtering by a device or operation the caller
/// cannot see gives the same empty pages and the same cursors as filtering by one that does
/// not exist, so the cursor is not an activity oracle (issue 8 item 9).
async fn read_visible<S: WsiStore>(
    store: &S,
    vis: &mut EventVisibility,
    after: EventId,
    filter: &EventFilter,
    limit: usize,
    window: u64,
) -> ApiResult<(Vec<Event>, EventId)> {
    // Read before the events: every id up to the head is committed (ids increase in commit
    // order), so nothing below the returned cursor can appear later.
    let head = store.last_event_id().await?;
    let end = EventId(head.0.min(after.0.saturating_add(window)));
    let mut items = Vec::new();
    let mut pos = after;
    'pages: while pos < end {
        let batch = store.list_events(pos, filter, BATCH).await?;
        let exhausted = batch.len() < BATCH as usize;
        for e in batch {
            if e.id > end {
                break 'pages;
            }
            pos = e.id;
            if vis.sees(store, &e).await? {
                let id = e.id;
                items.push(e);
                if items.len() >= limit {
                    return Ok((items, id));
                }
            }
        }
        if exhausted {
            break;
        }
    }
    Ok((items, end.max(after)))
}

/// Lists events, oldest first, that the caller may see.
///
/// Admins see every event; an application sees events of devices its grants cover, operation
/// and command events of its own operations only, and events about a node (command results,
/// generic alerts) only when a grant covers that node. One call examines at most 5,000 event
/// ids: a page may hold fewer than `limit` items (even none) although more follow; continue
/// from `next_cursor`. The cursor advances the same way whether or not the filters match
/// events you cannot see.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_events<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Query(q): Query<EventQuery>,
) -> ApiResult<axum::Json<EventPage>> {
    let filter = q.filter()?;
    let limit = page_limit(q.limit)? as usize;
    let after = EventId(q.after()?.unwrap_or(0));
    let mut vis = EventVisibility::of(&api, &caller.app.id, caller.is_admin()).await?;
    let (items, last) = read_visible(&api.store, &mut vis, after, &filter, limit, MAX_SCAN).await?;
    Ok(axum::Json(EventPage {
        items: items.iter().map(|e| vis.view(e)).collect(),
        next_cursor: last.0.to_string(),
    }))
}

/// The SSE frame of an event as the caller is shown it.
fn sse_frame(view: &EventView) -> SseEvent {
    let data = serde_json::to_string(view).unwrap_or_default();
    SseEvent::default()
        .id(view.id.to_string())
        .event(view.kind.as_str())
        .data(data)
}

/// State of one SSE connection.
struct Follow<S> {
    api: Api<S>,
    caller: Caller,
    filter: EventFilter,
    cursor: EventId,
    pending: VecDeque<EventView>,
    newest: watch::Receiver<EventId>,
    /// Changes when a key is revoked or an application changes on this node.
    key_changes: watch::Receiver<u64>,
    /// When the caller's key is re-checked next.
    next_check: tokio::time::Instant,
}

impl<S: WsiStore> Follow<S> {
    /// When to re-check the key after one check: [`STREAM_RECHECK`] later, or at the key's
    /// expiry if that comes first.
    fn schedule_check(&mut self) {
        let mut wait = STREAM_RECHECK;
        if let Some(exp) = self.caller.key_expires_at {
            let left = exp.millis().saturating_sub(crate::wire::now().millis());
            wait = wait.min(Duration::from_millis(u64::try_from(left).unwrap_or(0)));
        }
        self.next_check = tokio::time::Instant::now() + wait;
    }

    /// False when the caller's key no longer works (revoked, expired, application disabled
    /// or deleted). A store error keeps the stream (checked again later).
    async fn key_still_valid(&mut self) -> bool {
        let valid = self
            .api
            .shared
            .keys
            .still_valid(&self.api.store, &self.caller, crate::wire::now())
            .await;
        self.schedule_check();
        if valid == Some(false) {
            tracing::info!(app = %self.caller.app.id, key = %self.caller.key_id, "event stream ended: its key was revoked or expired, or its application disabled");
            return false;
        }
        true
    }

    /// The next visible event; waits for new events; `None` when the server stops or the
    /// caller's key stops working.
    async fn next(&mut self) -> Option<EventView> {
        loop {
            if tokio::time::Instant::now() >= self.next_check && !self.key_still_valid().await {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            // Mark the current newest id as seen before reading, so an event committed
            // during the read wakes us up again.
            let newest = *self.newest.borrow_and_update();
            if newest > self.cursor {
                match self.fill().await {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(detail = %e.detail, "event stream: cannot read the log; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            // Nothing new: wait for the poller (it stops with the server), a key change on
            // this node, or the next key check.
            tokio::select! {
                changed = self.newest.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                changed = self.key_changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    self.next_check = tokio::time::Instant::now();
                }
                () = tokio::time::sleep_until(self.next_check) => {}
            }
        }
    }

    /// Reads the next batch of visible events into `pending`.
    async fn fill(&mut self) -> ApiResult<()> {
        // A fresh visibility per batch: grant changes apply within a batch.
        let mut vis =
            EventVisibility::of(&self.api, &self.caller.app.id, self.caller.is_admin()).await?;
        let (items, last) = read_visible(
            &self.api.store,
            &mut vis,
            self.cursor,
            &self.filter,
            BATCH as usize,
            u64::from(BATCH),
        )
        .await?;
        self.cursor = last;
        self.pending.extend(items.iter().map(|e| vis.view(e)));
        Ok(())
    }
}

/// `Last-Event-ID` (what browsers send on reconnect) as an event id.
fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be an event id (an integer)"))
}

/// Follows the event log as Server-Sent Events.
///
/// Each frame is one visible event: `id:` the event id, `event:` its type, `data:` the same
/// JSON as `GET /events`. Resume after a disconnect with the `Last-Event-ID` header (browsers
/// send it automatically) or `?after=`; nothing is missed. Without either, the stream starts
/// with the next new event. A comment line is sent every 15 s to keep proxies from timing out.
/// The stream ends when the key it was opened with stops working (revoked, expired, its
/// application disabled or deleted): at once for changes made through this server, otherwise
/// within 5 s; reconnecting then gets 401.
/// The same filters and visibility rules as `GET /events` apply.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", params(EventQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id")),
    responses((status = 200, content_type = "text/event-stream", body = String,
            description = "Server-Sent Events; each `data:` is an EventView"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn stream_events<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<EventQuery>,
) -> ApiResult<Response> {
    let filter = q.filter()?;
    let header = last_event_id(&headers)?;
    let newest = api.shared.events.clone();
    let after = match (header, q.after()?) {
        (Some(h), _) => EventId(h),
        (None, Some(a)) => EventId(a),
        (None, None) => *newest.borrow(),
    };
    let key_changes = api.shared.keys.changes();
    let mut follow = Follow {
        api,
        caller,
        filter,
        cursor: after,
        pending: VecDeque::new(),
        newest,
        key_changes,
        next_check: tokio::time::Instant::now(),
    };
    follow.schedule_check();
    Ok(Sse::new(sse_stream(follow))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The stream ends when the server stops; when the client goes away, axum drops it.
fn sse_stream<S: WsiStore>(
    follow: Follow<S>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send {
    futures_util::stream::unfold(follow, |mut f| async move {
        let e = f.next().await?;
        Some((Ok(sse_frame(&e)), f))
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_unknown_ones_are_refused() {
        assert_eq!(
            parse_kinds("command.result, operation.state_changed,command.result".split(','))
                .unwrap(),
            vec![EventKind::CommandResult, EventKind::OperationStateChanged]
        );
        assert!(parse_kinds([""]).unwrap().is_empty());
        let e = parse_kinds(["device.exploded"]).unwrap_err();
        assert!(e.detail.contains("device.seen"), "{}", e.detail);
    }

    #[test]
    fn cursors_and_last_event_id() {
        let q = EventQuery {
            cursor: Some("42".into()),
            ..EventQuery::default()
        };
        assert_eq!(q.after().unwrap(), Some(42));
        let q = EventQuery {
            after: Some(1),
            cursor: Some("42".into()),
            ..EventQuery::default()
        };
        assert!(q.after().is_err());
        let mut h = HeaderMap::new();
        assert_eq!(last_event_id(&h).unwrap(), None);
        h.insert("last-event-id", "17".parse().unwrap());
        assert_eq!(last_event_id(&h).unwrap(), Some(17));
        h.insert("last-event-id", "x".parse().unwrap());
        assert!(last_event_id(&h).is_err());
    }

    #[test]
    fn the_openapi_document_lists_events_webhooks_charging_and_audit() {
        let doc = crate::openapi::document();
        for path in [
            "/api/v1/events",
            "/api/v1/events/stream",
            "/api/v1/webhooks",
            "/api/v1/webhooks/{id}",
            "/api/v1/webhooks/{id}/deliveries",
            "/api/v1/charging/records",
            "/api/v1/charging/totals",
            "/api/v1/charging/catalogue",
            "/api/v1/audit",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} is documented");
        }
        let schemas = doc.components.map(|c| c.schemas).unwrap_or_default();
        for schema in [
            "EventView",
            "EventPage",
            "WebhookView",
            "CreatedWebhook",
            "ChargeView",
            "ChargeTotalView",
            "AuditView",
        ] {
            assert!(schemas.contains_key(schema), "{schema}");
        }
    }
}
