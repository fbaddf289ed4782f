//! Webhook subscriptions and their delivery worker.
//!
//! An application subscribes a URL to events (optionally only some types, devices or a
//! group); the server POSTs each matching event it may see (the rule of
//! [`crate::visibility`], for the subscription's owner) to the URL, one at a time and in
//! event order, signed as [`crate::signing`] describes. A failure is retried with exponential
//! backoff ([`omnidm_core::backoff_millis`]); after [`MAX_FAILURES`] consecutive failures the
//! subscription is disabled with the reason, and `PATCH {"enabled": true}` resumes it from the
//! event that failed. Deliveries are at least once: receivers de-duplicate on
//! `omnidm-event-id`.
//!
//! **Server-side request forgery:** URLs whose host is a loopback, private, link-local,
//! shared (CGNAT), multicast or unspecified address (also inside an IPv6 form embedding an
//! IPv4 address), or `localhost`, are refused at subscription and again at delivery; names
//! are resolved by a resolver that drops such addresses, so a public name pointing at an
//! internal address is refused too, and redirects are not followed. Proxies from the
//! environment are never used; a proxy configured explicitly is, after the target's name
//! has been resolved and judged here. The operator can allow private targets (tests, labs) with
//! `ApiOptions::allow_private_webhooks` (`--allow-private-webhooks`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use omnidm_core::{
    Delivery, DeliveryProgress, DeviceId, Event, EventFilter, GroupKind, NewSubscription, Role,
    Subscription, SubscriptionId, WsiStore, backoff_millis,
};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::Caller;
use crate::dto::Page;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::events::{EventView, parse_kinds};
use crate::routes::groups::{device_id, visible_group};
use crate::routes::idempotency::{IdemJson, created};
use crate::signing::{new_secret, signature};
use crate::state::Api;
use crate::visibility::EventVisibility;
use crate::wire::{Json, Path, Query, now, page_limit, rfc3339};

/// Consecutive failed deliveries after which a subscription is disabled. With the backoff
/// (1 s, 2 s, 4 s, …) the eighth failure comes about two minutes after the first.
pub const MAX_FAILURES: u32 = 8;

/// Subscriptions delivered to at the same time (one subscription is always sequential).
pub const CONCURRENCY: usize = 16;

/// Time a receiver has to answer a delivery.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Events read per subscription and round.
const EVENTS_PER_ROUND: u32 = 100;

/// Event ids one round examines at most (its window; see `deliver_round`).
const WINDOW: u64 = 2_000;

/// Rounds one subscription may run back to back before yielding its slot.
const ROUNDS_PER_TURN: usize = 10;

/// Most devices a subscription may name.
const MAX_DEVICES: usize = 1000;

/// Most webhook subscriptions one application may hold: each is a POST per event it
/// matches, so subscriptions are an amplifier an application must not scale at will.
pub const MAX_SUBSCRIPTIONS_PER_APP: usize = 10;

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
        .route(
            "/api/v1/webhooks",
            post(create_webhook::<S>).get(list_webhooks::<S>),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(get_webhook::<S>)
                .patch(patch_webhook::<S>)
                .delete(delete_webhook::<S>),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(list_deliveries::<S>),
        )
}

#[derive(OpenApi)]
#[openapi(
    paths(
        create_webhook,
        list_webhooks,
        get_webhook,
        patch_webhook,
        delete_webhook,
        list_deliveries
    ),
    components(schemas(WebhookView, CreatedWebhook, CreateWebhook, PatchWebhook, DeliveryView))
)]
pub(crate) struct Doc;

/// A webhook subscription (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Identity.
    pub id: u64,
    /// The owning application.
    pub app_id: String,
    /// Where deliveries go.
    pub url: String,
    /// Only these event types (empty: all the application may see).
    pub event_types: Vec<String>,
    /// Only events of these devices (empty: all).
    pub devices: Vec<String>,
    /// Only events of devices in this group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Deliveries are attempted.
    pub enabled: bool,
    /// Why it was disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Consecutive failed attempts on the event at the cursor.
    pub failures: u32,
    /// Where delivery continues: the last event delivered, or the end of a stretch of the
    /// log examined without finding anything for this subscription. It moves the same way
    /// whether the events skipped were invisible to the owner or did not match at all.
    pub cursor: u64,
    /// No attempt before this time (backoff).
    pub next_attempt_at: String,
    /// Creation time.
    pub created_at: String,
}

impl From<&Subscription> for WebhookView {
    fn from(s: &Subscription) -> WebhookView {
        WebhookView {
            id: s.id.0,
            app_id: s.spec.app_id.as_str().to_owned(),
            url: s.spec.url.clone(),
            event_types: s
                .spec
                .event_types
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            devices: s
                .spec
                .devices
                .iter()
                .map(|d| d.as_str().to_owned())
                .collect(),
            group: s.spec.group.as_ref().map(|g| g.as_str().to_owned()),
            enabled: s.enabled,
            disabled_reason: s.disabled_reason.clone(),
            failures: s.failures,
            cursor: s.spec.cursor.0,
            next_attempt_at: rfc3339(s.next_attempt_at),
            created_at: rfc3339(s.created_at),
        }
    }
}

/// A new subscription with its signing secret (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The subscription.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// Signing secret (`whsec_…`): verify `omnidm-signature` with it. Shown once: absent
    /// when the response is a replay of an earlier request with the same `Idempotency-Key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Only in a replay: why `secret` is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_withheld: Option<String>,
}

/// Subscribes a URL to events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://…` (or `http://…`). Loopback and private addresses are refused unless the
    /// operator allows them.
    pub url: String,
    /// Only these event types (default: all).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Only events of these devices (default: all; up to 1000).
    #[serde(default)]
    pub devices: Vec<String>,
    /// Only events of devices in this group.
    #[serde(default)]
    pub group: Option<String>,
}

/// Enables or disables a subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    /// `true` resumes deliveries (resetting failures and backoff) from where they stopped.
    pub enabled: bool,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The event delivered.
    pub event_id: u64,
    /// 1 for the first attempt of this event.
    pub attempt: u32,
    /// When (RFC 3339).
    pub at: String,
    /// HTTP status received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Transport error or non-2xx summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Round trip in milliseconds.
    pub duration_ms: u64,
    /// A 2xx was received.
    pub succeeded: bool,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> DeliveryView {
        DeliveryView {
            event_id: d.event_id.0,
            attempt: d.attempt,
            at: rfc3339(d.at),
            status: d.status,
            error: d.error.clone(),
            duration_ms: d.duration_ms,
            succeeded: d.succeeded(),
        }
    }
}

/// Query of the delivery log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// Most attempts returned, newest first, 1–1000 (default 100).
    limit: Option<u32>,
}

// --- URL checks ------------------------------------------------------------------------------

/// Is `ip` an address a webhook may target without `allow_private_webhooks`?
///
/// IPv6 forms that carry an IPv4 address (IPv4-compatible `::a.b.c.d`, IPv4-mapped
/// `::ffff:a.b.c.d`, SIIT `::ffff:0:a.b.c.d`, 6to4 `2002:AABB:CCDD::/48`, Teredo
/// `2001::/32`) are judged by the IPv4 address they embed, so `[::127.0.0.1]` or
/// `[2002:7f00:1::1]` cannot name loopback in disguise.
pub(crate) fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    let v4_at = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // ::/96 — unspecified, loopback and the deprecated IPv4-compatible form: never a
    // legitimate webhook target, whatever it embeds.
    if s[..6] == [0; 6] {
        return false;
    }
    // ::ffff:a.b.c.d (IPv4-mapped) and ::ffff:0:a.b.c.d (SIIT, RFC 6145).
    if s[..5] == [0; 5] && s[5] == 0xffff {
        return is_public_v4(v4_at(s[6], s[7]));
    }
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        return is_public_v4(v4_at(s[6], s[7]));
    }
    // 6to4 2002::/16: the IPv4 address is in bits 16–47.
    if s[0] == 0x2002 {
        return is_public_v4(v4_at(s[1], s[2]));
    }
    // Teredo 2001:0::/32: server IPv4 in bits 32–63, client IPv4 XORed in the last 32 bits.
    if s[0] == 0x2001 && s[1] == 0 {
        return is_public_v4(v4_at(s[2], s[3])) && is_public_v4(v4_at(!s[6], !s[7]));
    }
    !(v6.is_multicast() // ff00::/8
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 64:ff9b::/96 and 64:ff9b:1::/48 (local use)
        || (s[0] == 0x0100 && s[1..4] == [0; 3]) // discard-only 100::/64
        || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0) // benchmarking 2001:2::/48
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010) // ORCHID 2001:10::/28
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0020) // ORCHIDv2 2001:20::/28
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || (s[0] & 0xfff0) == 0x3ff0) // documentation 3fff::/20 (RFC 9637)
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (b & 0xc0) == 64) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast 192.88.99.0/24
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved
}

/// Checks a webhook URL: it must parse, be `http`/`https`, have a host, and (unless
/// `allow_private`) not name a loopback, private or link-local address (in any IPv6
/// disguise) or `localhost`.
pub(crate) fn check_url(url: &str, allow_private: bool) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("url {url:?} does not parse: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "url scheme {:?}: use http or https",
            parsed.scheme()
        ));
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err("url has no host".into());
    };
    let host = host.to_owned();
    if allow_private {
        return Ok(parsed);
    }
    let refused = |what: &str| {
        Err(format!(
            "url host {what} is a loopback, private or link-local address; webhooks must reach a public host (the operator may allow private ones with --allow-private-webhooks)"
        ))
    };
    // The URL parser has already turned every IPv4 spelling (`2130706433`, `0x7f.1`, …) into
    // an address and normalised IPv6 literals.
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match v6.parse::<Ipv6Addr>() {
            Ok(v6) if is_public_v6(v6) => Ok(parsed),
            Ok(v6) => refused(&v6.to_string()),
            Err(_) => Err(format!("url host {host:?} is not an IPv6 address")),
        };
    }
    match host.parse::<Ipv4Addr>() {
        Ok(v4) if !is_public_v4(v4) => refused(&v4.to_string()),
        Ok(_) => Ok(parsed),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                return Err("url has no host".into());
            }
            if name == "localhost" || name.ends_with(".localhost") {
                return refused(&name);
            }
            Ok(parsed)
        }
    }
}

/// A resolver that drops non-public addresses (unless allowed): a public name pointing at an
/// internal address cannot be used to reach it.
struct PublicOnly {
    allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The delivery client: rustls, 10 s timeout, no redirects.
///
/// Proxies from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are ignored: a
/// proxy would resolve and reach the URL's host itself, past the public-only resolver. Only
/// a proxy the operator configures (`proxy`, `[api] webhook_proxy`) is used; then the
/// resolver is the system's (it resolves the proxy's name, which may well be internal) and
/// every delivery checks the target's name first ([`check_proxied_host`]).
fn http_client(allow_private: bool, proxy: Option<&str>) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .connect_timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("omnidm-webhooks/", env!("CARGO_PKG_VERSION")));
    let builder = match proxy {
        None => builder
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnly { allow_private })),
        Some(p) => {
            builder.proxy(reqwest::Proxy::all(p).map_err(|e| format!("webhook proxy {p:?}: {e}"))?)
        }
    };
    builder.build().map_err(|e| e.to_string())
}

/// With a configured proxy, the proxy resolves the target's name, so the address guard runs
/// here: the name must resolve, and only to public addresses (unless private ones are
/// allowed). A literal address was already judged by [`check_url`].
async fn check_proxied_host(url: &Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let Some(host) = url.host_str() else {
        return Err("url has no host".into());
    };
    if host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("{host} does not resolve ({e}); not sent through the proxy"))?
        .collect();
    match addrs.iter().find(|a| !is_public_ip(a.ip())) {
        _ if addrs.is_empty() => Err(format!("{host} resolves to no address")),
        Some(a) => Err(format!(
            "{host} resolves to {}, a loopback, private or link-local address; not sent",
            a.ip()
        )),
        None => Ok(()),
    }
}

// --- handlers --------------------------------------------------------------------------------

fn sub_id(id: u64) -> SubscriptionId {
    SubscriptionId(id)
}

/// Loads a subscription the caller may manage (its own; admins any); 404 otherwise.
async fn load_sub<S: WsiStore>(api: &Api<S>, caller: &Caller, id: u64) -> ApiResult<Subscription> {
    match api.store.get_subscription(sub_id(id)).await? {
        Some(s) if caller.is_admin() || s.spec.app_id == caller.app.id => Ok(s),
        _ => Err(ApiError::not_found(format!("webhook {id}"))),
    }
}

/// Subscribes a URL to events. The response carries the signing secret, once.
///
/// Deliveries start with the next event. Each is a POST of one event (the JSON of
/// `GET /events`) with `omnidm-event-id`, `omnidm-event-type`, `omnidm-timestamp` and
/// `omnidm-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`; answer 2xx within
/// 10 s. URLs on loopback, private and link-local addresses (also inside IPv6 forms that
/// embed an IPv4 address) are refused unless the operator allows them. An application holds
/// at most 10 subscriptions, and the same URL with the same filters is refused (409); a
/// `group` must be one of the caller's grants' groups (404 otherwise).
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe submission key")),
    responses((status = 201, body = CreatedWebhook, headers(("Location" = String))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn create_webhook<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    IdemJson(idem, req): IdemJson<CreateWebhook>,
) -> ApiResult<Response> {
    if let Some(replay) = idem.replay(&api, &caller).await? {
        return Ok(replay);
    }
    let url = check_url(&req.url, api.shared.options.allow_private_webhooks)
        .map_err(ApiError::bad_request)?;
    let event_types = parse_kinds(req.event_types.iter().map(String::as_str))?;
    if req.devices.len() > MAX_DEVICES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_DEVICES} devices; subscribe to a group instead"
        )));
    }
    let mut devices = req
        .devices
        .iter()
        .map(|d| device_id(d))
        .collect::<ApiResult<Vec<DeviceId>>>()?;
    devices.sort();
    devices.dedup();
    // A group the caller's grants do not name is "not found", like one that does not exist.
    let group = match &req.group {
        None => None,
        Some(g) => Some(visible_group(&api, &caller, g).await?.id),
    };
    // One creation at a time on this node: the cap and the duplicate check see every
    // subscription created before.
    let _serial = api.shared.subscribing.lock().await;
    let existing = api.store.list_subscriptions(Some(&caller.app.id)).await?;
    let same_kinds = |kinds: &[omnidm_core::EventKind]| {
        kinds.len() == event_types.len() && kinds.iter().all(|k| event_types.contains(k))
    };
    if let Some(dup) = existing.iter().find(|s| {
        s.spec.url == url.as_str()
            && same_kinds(&s.spec.event_types)
            && s.spec.devices == devices
            && s.spec.group == group
    }) {
        return Err(ApiError::new(
            crate::problem::Kind::Conflict,
            format!(
                "webhook {} already delivers these events to this URL; re-enable it or delete it instead of subscribing again",
                dup.id
            ),
        ));
    }
    if existing.len() >= MAX_SUBSCRIPTIONS_PER_APP {
        return Err(ApiError::new(
            crate::problem::Kind::Conflict,
            format!(
                "an application may hold at most {MAX_SUBSCRIPTIONS_PER_APP} webhook subscriptions; delete one first (one subscription can take several event types, devices or a group)"
            ),
        ));
    }
    let spec = NewSubscription {
        app_id: caller.app.id.clone(),
        url: url.to_string(),
        secret: new_secret()?,
        event_types,
        devices,
        group,
        cursor: api.store.last_event_id().await?,
    };
    let sub = api.store.create_subscription(&spec, now()).await?;
    let body = CreatedWebhook {
        webhook: WebhookView::from(&sub),
        secret: Some(spec.secret.clone()),
        secret_withheld: None,
    };
    // Secrets are shown once (issue 8 item 5): a replay shows the record without it.
    let replay = CreatedWebhook {
        webhook: WebhookView::from(&sub),
        secret: None,
        secret_withheld: Some(format!(
            "this is a replay of an earlier request with the same Idempotency-Key: the signing secret was shown once, in the first response; if it was lost, delete webhook {} and subscribe again",
            sub.id
        )),
    };
    idem.finish(
        &api,
        &caller,
        created(&format!("/api/v1/webhooks/{}", sub.id), &body).replayed_as(&replay),
    )
    .await
}

/// Lists webhook subscriptions: an application its own, an admin everyone's.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Page<WebhookView>), (status = 401, body = Problem)))]
async fn list_webhooks<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
) -> ApiResult<axum::Json<Page<WebhookView>>> {
    let app = (!caller.is_admin()).then_some(&caller.app.id);
    let subs = api.store.list_subscriptions(app).await?;
    Ok(axum::Json(Page {
        items: subs.iter().map(WebhookView::from).collect(),
        next_cursor: None,
    }))
}

/// One subscription (never its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = u64, Path)),
    responses((status = 200, body = WebhookView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn get_webhook<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(id): Path<u64>,
) -> ApiResult<axum::Json<WebhookView>> {
    Ok(axum::Json(WebhookView::from(
        &load_sub(&api, &caller, id).await?,
    )))
}

/// Disables or re-enables a subscription. Re-enabling resets the failure count and backoff;
/// delivery resumes with the event that failed.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = PatchWebhook,
    params(("id" = u64, Path)),
    responses((status = 200, body = WebhookView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn patch_webhook<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(id): Path<u64>,
    Json(req): Json<PatchWebhook>,
) -> ApiResult<axum::Json<WebhookView>> {
    let sub = load_sub(&api, &caller, id).await?;
    if req.enabled {
        // The URL may have become unacceptable (the operator withdrew the private allowance).
        check_url(&sub.spec.url, api.shared.options.allow_private_webhooks)
            .map_err(ApiError::bad_request)?;
    }
    let reason = (!req.enabled).then(|| format!("disabled by {}", caller.app.id));
    let sub = api
        .store
        .set_subscription_enabled(sub.id, req.enabled, reason.as_deref())
        .await?;
    Ok(axum::Json(WebhookView::from(&sub)))
}

/// Deletes a subscription and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = u64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem)))]
async fn delete_webhook<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(id): Path<u64>,
) -> ApiResult<StatusCode> {
    let sub = load_sub(&api, &caller, id).await?;
    if !api.store.delete_subscription(sub.id).await? {
        return Err(ApiError::not_found(format!("webhook {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log of a subscription, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = u64, Path), DeliveriesQuery),
    responses((status = 200, body = Page<DeliveryView>), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn list_deliveries<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(id): Path<u64>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<axum::Json<Page<DeliveryView>>> {
    let sub = load_sub(&api, &caller, id).await?;
    let limit = page_limit(q.limit)?;
    let deliveries = api.store.list_deliveries(sub.id, limit).await?;
    Ok(axum::Json(Page {
        items: deliveries.iter().map(DeliveryView::from).collect(),
        next_cursor: None,
    }))
}

// --- delivery --------------------------------------------------------------------------------

/// Delivers webhooks until `stop`: every second, or as soon as the event poller sees new
/// events, each due subscription (enabled, backoff over) gets its next events, in order, one
/// POST at a time; up to [`CONCURRENCY`] subscriptions at once. A delivery cut short by
/// shutdown is repeated after the restart (at least once).
pub(crate) async fn deliver_forever<S: WsiStore>(api: Api<S>, mut stop: watch::Receiver<bool>) {
    let client = match http_client(
        api.shared.options.allow_private_webhooks,
        api.shared.options.webhook_proxy.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; no webhooks will be delivered");
            let _ = stop.wait_for(|s| *s).await;
            return;
        }
    };
    let mut events = api.shared.events.clone();
    let mut events_open = true;
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    // Subscriptions being delivered, and which task delivers each.
    let mut busy: HashSet<SubscriptionId> = HashSet::new();
    let mut running: HashMap<tokio::task::Id, SubscriptionId> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tick.tick() => {}
            changed = events.changed(), if events_open => {
                if changed.is_err() {
                    events_open = false;
                }
            }
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let task = match done {
                    Ok((task, _)) => task,
                    Err(e) => {
                        tracing::error!(error = %e, "webhook delivery task failed");
                        e.id()
                    }
                };
                if let Some(sub) = running.remove(&task) {
                    busy.remove(&sub);
                }
                continue;
            }
        }
        let t = now();
        let subs = match api.store.list_subscriptions(None).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list webhook subscriptions");
                continue;
            }
        };
        let newest = *events.borrow();
        for sub in subs {
            if !sub.enabled
                || sub.next_attempt_at > t
                || sub.spec.cursor >= newest
                || busy.contains(&sub.id)
            {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let id = sub.id;
            let api = api.clone();
            let client = client.clone();
            let task = tasks.spawn(async move {
                if let Err(e) = deliver_rounds(&api, &client, sub).await {
                    tracing::warn!(subscription = %id, detail = %e.detail, "webhook delivery round failed");
                }
                drop(permit);
            });
            busy.insert(id);
            running.insert(task.id(), id);
        }
    }
    tasks.shutdown().await;
}

/// Does `event` pass the subscription's own filters (types, devices, group)? `in_group` says
/// whether the event's device is in the subscription's group (asked only when needed).
fn matches_spec(spec: &NewSubscription, event: &Event, in_group: impl FnOnce() -> bool) -> bool {
    let e = &event.event;
    if !spec.event_types.is_empty() && !spec.event_types.contains(&e.kind) {
        return false;
    }
    if !spec.devices.is_empty()
        && !e
            .device_id
            .as_ref()
            .is_some_and(|d| spec.devices.contains(d))
    {
        return false;
    }
    if spec.group.is_some() && (e.device_id.is_none() || !in_group()) {
        return false;
    }
    true
}

/// Is `device` in `group` now?
async fn device_in_group<S: WsiStore>(
    store: &S,
    group: &omnidm_core::Group,
    device: &DeviceId,
) -> ApiResult<bool> {
    Ok(match &group.kind {
        GroupKind::Static => store.is_group_member(&group.id, device).await?,
        GroupKind::Filter { filter } => store
            .get_device(device)
            .await?
            .is_some_and(|d| filter.matches(&d)),
    })
}

/// Rounds for one subscription while it has a backlog (bounded, so that a long backlog
/// does not hold a slot forever), re-reading it between rounds to notice a disable.
async fn deliver_rounds<S: WsiStore>(
    api: &Api<S>,
    client: &reqwest::Client,
    mut sub: Subscription,
) -> ApiResult<()> {
    for _ in 0..ROUNDS_PER_TURN {
        if !deliver_round(api, client, sub.clone()).await? {
            return Ok(());
        }
        match api.store.get_subscription(sub.id).await? {
            Some(s) if s.enabled => sub = s,
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// One round for one subscription: its next events, delivered in order until one fails.
/// True if a full page was handled without failure (more may follow at once).
async fn deliver_round<S: WsiStore>(
    api: &Api<S>,
    client: &reqwest::Client,
    sub: Subscription,
) -> ApiResult<bool> {
    let store = &api.store;
    let Some(owner) = store.get_app(&sub.spec.app_id).await? else {
        return Ok(false); // deleted with its subscriptions
    };
    if owner.disabled {
        return Ok(false); // held: resumes when the application is enabled again
    }
    let group = match &sub.spec.group {
        None => None,
        Some(g) => match store.get_group(g).await? {
            Some(g) => Some(g),
            None => {
                disable(store, &sub, format!("group {g} was deleted")).await?;
                return Ok(false);
            }
        },
    };
    let filter = EventFilter {
        kinds: sub.spec.event_types.clone(),
        device_id: match sub.spec.devices.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        },
        job_id: None,
    };
    // The round examines the ids after the cursor up to `end`, a bound that depends only on
    // the cursor and the log's head (read before the events, so every id up to it is
    // committed) — never on the filters or on what the owner may see. The cursor then moves
    // to delivered events or to `end`, so `GET /webhooks/{id}` cannot show it stepping over
    // events the owner cannot see (issue 8 item 9).
    let head = store.last_event_id().await?;
    let end = omnidm_core::EventId(head.0.min(sub.spec.cursor.0.saturating_add(WINDOW)));
    let mut vis = EventVisibility::of(api, &owner.id, owner.role == Role::Admin).await?;
    let mut groups: HashMap<DeviceId, bool> = HashMap::new();
    let mut pos = sub.spec.cursor;
    let mut recorded = sub.spec.cursor;
    let mut failures = sub.failures;
    let mut delivered = 0usize;
    'scan: while pos < end {
        let events = store.list_events(pos, &filter, EVENTS_PER_ROUND).await?;
        let exhausted = events.len() < EVENTS_PER_ROUND as usize;
        for event in events {
            if event.id > end {
                break 'scan;
            }
            pos = event.id;
            let in_group = match (&group, &event.event.device_id) {
                (Some(g), Some(d)) => match groups.get(d) {
                    Some(v) => *v,
                    None => {
                        let v = device_in_group(store, g, d).await?;
                        groups.insert(d.clone(), v);
                        v
                    }
                },
                _ => false,
            };
            if !matches_spec(&sub.spec, &event, || in_group) || !vis.sees(store, &event).await? {
                continue; // skipped without an attempt
            }
            // The URL is checked again: the operator may have withdrawn the private allowance.
            let allow_private = api.shared.options.allow_private_webhooks;
            let checked = match check_url(&sub.spec.url, allow_private) {
                Ok(url) if api.shared.options.webhook_proxy.is_some() => {
                    check_proxied_host(&url, allow_private).await.map(|()| url)
                }
                other => other,
            };
            let attempt = match checked {
                Ok(url) => {
                    let view = vis.view(&event);
                    post_event(client, url, &sub.spec.secret, &event, &view, failures + 1).await
                }
                Err(why) => Delivery {
                    subscription_id: sub.id,
                    event_id: event.id,
                    attempt: failures + 1,
                    at: now(),
                    status: None,
                    error: Some(why),
                    duration_ms: 0,
                },
            };
            let attempt = Delivery {
                subscription_id: sub.id,
                ..attempt
            };
            if attempt.succeeded() {
                failures = 0;
                store
                    .record_delivery(
                        sub.id,
                        Some(&attempt),
                        &DeliveryProgress {
                            cursor: event.id,
                            failures,
                            next_attempt_at: attempt.at,
                            disable: None,
                        },
                    )
                    .await?;
                recorded = event.id;
                delivered += 1;
                metrics::counter!("omnidm_webhook_deliveries_total", "outcome" => "ok")
                    .increment(1);
                if delivered >= EVENTS_PER_ROUND as usize {
                    return Ok(true); // more may follow at once
                }
            } else {
                failures += 1;
                let retry_base_ms =
                    i64::try_from(api.shared.options.webhook_retry_base.as_millis())
                        .unwrap_or(1000);
                // The cursor stays at the last delivered event: skipped events before the
                // failing one are examined again on the retry (and skipped again).
                let progress = failed_progress(
                    recorded,
                    failures,
                    attempt.at,
                    attempt.error.as_deref(),
                    retry_base_ms,
                );
                if let Some(reason) = &progress.disable {
                    tracing::warn!(subscription = %sub.id, url = %sub.spec.url, %reason, "webhook disabled");
                }
                store
                    .record_delivery(sub.id, Some(&attempt), &progress)
                    .await?;
                metrics::counter!("omnidm_webhook_deliveries_total", "outcome" => "failed")
                    .increment(1);
                return Ok(false);
            }
        }
        if exhausted {
            break;
        }
    }
    // The window is done: everything up to `end` was delivered or is not for this owner.
    if end > recorded {
        store
            .record_delivery(
                sub.id,
                None,
                &DeliveryProgress {
                    cursor: end,
                    failures,
                    next_attempt_at: sub.next_attempt_at,
                    disable: None,
                },
            )
            .await?;
    }
    Ok(end < head)
}

/// Where a subscription stands after its `failures`-th consecutive failure at `at`.
pub(crate) fn failed_progress(
    cursor: omnidm_core::EventId,
    failures: u32,
    at: omnidm_core::Timestamp,
    error: Option<&str>,
    retry_base_ms: i64,
) -> DeliveryProgress {
    DeliveryProgress {
        cursor,
        failures,
        next_attempt_at: at.plus_millis(backoff_millis(retry_base_ms, failures)),
        disable: (failures >= MAX_FAILURES).then(|| {
            format!(
                "{failures} consecutive failed deliveries (last: {}); fix the receiver and PATCH {{\"enabled\": true}} to resume",
                error.unwrap_or("no answer")
            )
        }),
    }
}

/// Disables a subscription with `reason`.
async fn disable<S: WsiStore>(store: &S, sub: &Subscription, reason: String) -> ApiResult<()> {
    tracing::warn!(subscription = %sub.id, %reason, "webhook disabled");
    store
        .record_delivery(
            sub.id,
            None,
            &DeliveryProgress {
                cursor: sub.spec.cursor,
                failures: sub.failures,
                next_attempt_at: sub.next_attempt_at,
                disable: Some(reason),
            },
        )
        .await?;
    Ok(())
}

/// The headers of a delivery (besides `Content-Type`), in order.
pub(crate) fn delivery_headers(
    secret: &str,
    event: &Event,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 4] {
    [
        ("omnidm-event-id", event.id.0.to_string()),
        ("omnidm-event-type", event.event.kind.as_str().to_owned()),
        ("omnidm-timestamp", timestamp.to_string()),
        ("omnidm-signature", signature(secret, timestamp, body)),
    ]
}

/// POSTs one event (`view`: as its owner is shown it); the attempt as recorded
/// (`subscription_id` is filled by the caller).
async fn post_event(
    client: &reqwest::Client,
    url: Url,
    secret: &str,
    event: &Event,
    view: &EventView,
    attempt: u32,
) -> Delivery {
    let at = now();
    let body = serde_json::to_vec(view).unwrap_or_default();
    let timestamp = at.millis().div_euclid(1000);
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in delivery_headers(secret, event, timestamp, &body) {
        req = req.header(name, value);
    }
    let started = Instant::now();
    let result = req.body(body).send().await;
    let (status, error) = match result {
        Ok(resp) => {
            let status = resp.status();
            // Read (a little of) the answer so the connection can be reused.
            let _ = tokio::time::timeout(Duration::from_secs(1), resp.bytes()).await;
            let error = (!status.is_success()).then(|| format!("HTTP {status}"));
            (Some(status.as_u16()), error)
        }
        Err(e) => (None, Some(error_chain(&e))),
    };
    Delivery {
        subscription_id: SubscriptionId(0),
        event_id: event.id,
        attempt,
        at,
        status,
        error,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// An error with its causes (`error sending request: connection refused`).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnidm_core::{AppId, EventId, EventKind, GroupId, NewEvent, Timestamp};

    #[test]
    fn urls_must_be_http_and_public() {
        assert!(check_url("https://hooks.example.com/omnidm", false).is_ok());
        assert!(check_url("http://93.184.216.34:8080/x", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://",
            "http://127.0.0.1/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad} should be refused");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("ftp://127.0.0.1/", true).is_err());
    }

    #[test]
    fn public_addresses() {
        assert!(is_public_ip("8.8.8.8".parse().unwrap()));
        assert!(is_public_ip("2001:4860:4860::8888".parse().unwrap()));
        assert!(!is_public_ip("10.0.0.1".parse().unwrap()));
        assert!(!is_public_ip("::".parse().unwrap()));
    }

    /// Issue 8 item 18: every IPv6 form that embeds a loopback, private, link-local or
    /// unspecified IPv4 address is refused, and so are the IPv6-only internal ranges.
    #[test]
    fn ipv6_disguises_of_internal_addresses_are_refused() {
        for bad in [
            // IPv4-compatible (deprecated): ::/96 is refused whatever it embeds.
            "::127.0.0.1",
            "::7f00:1",
            "::10.0.0.1",
            "::8.8.8.8",
            "::",
            "::1",
            // IPv4-mapped.
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::ffff:192.168.0.1",
            // SIIT (IPv4-translated).
            "::ffff:0:127.0.0.1",
            "::ffff:0:10.0.0.1",
            "::ffff:0:172.16.0.1",
            // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2002:c0a8:101::1",
            "2002:a9fe:a9fe::1",
            "2002::1",
            // NAT64, well-known and local-use prefixes.
            "64:ff9b::127.0.0.1",
            "64:ff9b::8.8.8.8",
            "64:ff9b:1::a00:1",
            // Teredo: server 65.54.227.120 (public), client 127.0.0.1 XORed = 80ff:fffe.
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            // Teredo with a private server address.
            "2001:0:a00:1:0:0:f7f7:f7f7",
            // IPv6 internal ranges.
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff05::2",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "2001:2::1",
            "2001:10::1",
        ] {
            let ip: Ipv6Addr = bad.parse().unwrap();
            assert!(!is_public_ip(IpAddr::V6(ip)), "{bad} must be refused");
            assert!(
                check_url(&format!("http://[{bad}]:8080/hook"), false).is_err(),
                "http://[{bad}]/ must be refused"
            );
        }
        for good in [
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "2002:808:808::1",
            // Teredo: public server and client (8.8.8.8 XORed = f7f7:f7f7).
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ] {
            let ip: Ipv6Addr = good.parse().unwrap();
            assert!(is_public_ip(IpAddr::V6(ip)), "{good} is public");
        }
        // Every IPv4 spelling the URL parser accepts is normalised first.
        for bad in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://192.0.0.8/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
            "http://LOCALHOST./",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad} must be refused");
        }
    }

    fn event(kind: EventKind, device: Option<&str>) -> Event {
        Event {
            id: EventId(5),
            event: NewEvent {
                kind,
                at: Timestamp(0),
                device_id: device.map(|d| DeviceId::new(d).unwrap()),
                app_id: None,
                job_id: None,
                operation_id: None,
                path: None,
                data: serde_json::json!({}),
            },
        }
    }

    fn spec() -> NewSubscription {
        NewSubscription {
            app_id: AppId::new("care").unwrap(),
            url: "https://example.com/".into(),
            secret: "whsec_x".into(),
            event_types: Vec::new(),
            devices: Vec::new(),
            group: None,
            cursor: EventId(0),
        }
    }

    #[test]
    fn subscription_filters() {
        let seen = event(EventKind::DeviceSeen, Some("IMEI:1"));
        let mut s = spec();
        assert!(matches_spec(&s, &seen, || false));
        s.event_types = vec![EventKind::CommandResult];
        assert!(!matches_spec(&s, &seen, || true));
        s.event_types = vec![EventKind::DeviceSeen];
        s.devices = vec![DeviceId::new("IMEI:2").unwrap()];
        assert!(!matches_spec(&s, &seen, || true));
        s.devices = vec![DeviceId::new("IMEI:1").unwrap()];
        assert!(matches_spec(&s, &seen, || true));
        s.group = Some(GroupId::new("fleet").unwrap());
        assert!(!matches_spec(&s, &seen, || false));
        assert!(matches_spec(&s, &seen, || true));
        assert!(!matches_spec(
            &s,
            &event(EventKind::DeviceSeen, None),
            || true
        ));
    }

    #[test]
    fn failures_back_off_then_disable() {
        let at = Timestamp(1_000_000);
        let p = failed_progress(EventId(3), 1, at, Some("HTTP 500"), 1000);
        assert_eq!(p.cursor, EventId(3));
        assert_eq!(p.next_attempt_at, Timestamp(1_001_000));
        assert!(p.disable.is_none());
        let p = failed_progress(EventId(3), MAX_FAILURES - 1, at, None, 1000);
        assert!(p.disable.is_none());
        let p = failed_progress(EventId(3), MAX_FAILURES, at, Some("HTTP 500"), 1000);
        assert!(p.disable.as_deref().is_some_and(|r| r.contains("HTTP 500")));
    }

    #[test]
    fn deliveries_are_signed_over_timestamp_and_body() {
        let e = event(EventKind::DeviceSeen, Some("IMEI:1"));
        let body = serde_json::to_vec(&EventView::from(&e)).unwrap();
        let headers = delivery_headers("whsec_test", &e, 1_795_000_000, &body);
        assert_eq!(headers[0], ("omnidm-event-id", "5".to_owned()));
        assert_eq!(headers[1], ("omnidm-event-type", "device.seen".to_owned()));
        assert_eq!(headers[2], ("omnidm-timestamp", "1795000000".to_owned()));
        assert!(crate::signing::verify(
            "whsec_test",
            1_795_000_000,
            &body,
            &headers[3].1,
            1_795_000_010
        ));
    }
}

#[cfg(test)]
mod http_tests {
    use std::sync::Mutex;

    use axum::http::HeaderMap;
    use omnidm_core::{EventId, EventKind, NewEvent, Timestamp};

    use super::*;

    type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

    /// A receiver on loopback answering `status`.
    async fn receiver(status: StatusCode) -> (SocketAddr, Seen) {
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push((headers, body));
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, seen)
    }

    fn event() -> Event {
        Event {
            id: EventId(42),
            event: NewEvent::device(
                EventKind::DeviceSeen,
                Timestamp(1_795_000_000_000),
                &DeviceId::new("IMEI:1").unwrap(),
                serde_json::json!({"mod": "x"}),
            ),
        }
    }

    #[tokio::test]
    async fn a_delivery_is_a_signed_post_of_the_event_view() {
        let (addr, seen) = receiver(StatusCode::NO_CONTENT).await;
        let client = http_client(true, None).unwrap();
        let url = check_url(&format!("http://{addr}/hook"), true).unwrap();
        let d = post_event(
            &client,
            url,
            "whsec_k",
            &event(),
            &EventView::from(&event()),
            3,
        )
        .await;
        assert!(d.succeeded(), "{d:?}");
        assert_eq!(
            (d.status, d.attempt, d.event_id),
            (Some(204), 3, EventId(42))
        );
        let seen = seen.lock().unwrap();
        let (headers, body) = &seen[0];
        let h = |n: &str| headers[n].to_str().unwrap().to_owned();
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(h("omnidm-event-id"), "42");
        assert_eq!(h("omnidm-event-type"), "device.seen");
        let ts: i64 = h("omnidm-timestamp").parse().unwrap();
        assert!(crate::signing::verify(
            "whsec_k",
            ts,
            body.as_bytes(),
            &h("omnidm-signature"),
            ts
        ));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["id"], 42);
        assert_eq!(v["type"], "device.seen");
        assert_eq!(v["device_id"], "IMEI:1");
    }

    #[tokio::test]
    async fn failures_are_recorded_with_their_cause() {
        let (addr, _) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
        let client = http_client(true, None).unwrap();
        let url = check_url(&format!("http://{addr}/hook"), true).unwrap();
        let d = post_event(
            &client,
            url,
            "whsec_k",
            &event(),
            &EventView::from(&event()),
            1,
        )
        .await;
        assert!(!d.succeeded());
        assert_eq!(d.status, Some(500));
        assert!(
            d.error.as_deref().is_some_and(|e| e.contains("500")),
            "{d:?}"
        );

        // Nobody listens on a closed port: a transport error, no status.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = check_url(&format!("http://127.0.0.1:{port}/hook"), true).unwrap();
        let d = post_event(
            &client,
            url,
            "whsec_k",
            &event(),
            &EventView::from(&event()),
            1,
        )
        .await;
        assert_eq!(d.status, None);
        assert!(d.error.is_some());
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let (addr, seen) = receiver(StatusCode::OK).await;
        let client = http_client(false, None).unwrap();
        // check_url refuses "localhost" by name; a name that resolves to loopback is caught
        // by the resolver. `localhost.` would be refused too, so go through the resolver
        // directly with a URL that skips check_url.
        let url = Url::parse(&format!("http://localhost:{}/hook", addr.port())).unwrap();
        let d = post_event(
            &client,
            url,
            "whsec_k",
            &event(),
            &EventView::from(&event()),
            1,
        )
        .await;
        assert_eq!(d.status, None, "{d:?}");
        assert!(
            d.error
                .as_deref()
                .is_some_and(|e| e.contains("no public address")),
            "{d:?}"
        );
        assert!(seen.lock().unwrap().is_empty());
    }

    /// Issue 8 item 15: through a configured proxy, the target's name is resolved and judged
    /// here (the proxy would otherwise resolve it unchecked); unresolvable names fail closed.
    #[tokio::test]
    async fn a_proxied_target_name_is_resolved_and_judged() {
        for name in ["localhost", "hooks.invalid"] {
            let url = Url::parse(&format!("http://{name}:8080/hook")).unwrap();
            assert!(
                check_proxied_host(&url, false).await.is_err(),
                "{name} is refused"
            );
            assert!(check_proxied_host(&url, true).await.is_ok());
        }
        let url = Url::parse("http://93.184.216.34/hook").unwrap();
        assert!(check_proxied_host(&url, false).await.is_ok());
    }
}
