//! Devices: provisioning (admin), listing and reading (through grants), the cached tree.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use omnidm_core::{
    ClientAuth, Device, DeviceFilter, DeviceId, DmAccount, NewDevice, NodePath, Protocol, WsiStore,
};
use utoipa::OpenApi;

use crate::access::{DeviceAccess, device_access};
use crate::auth::Caller;
use crate::dto::{
    CreateDevice, DeviceView, DmAccountInput, Page, PatchDevice, ProtocolDto, TreeNodeView,
    TreeView,
};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::groups::device_id;
use crate::routes::idempotency::{IdemJson, created};
use crate::state::Api;
use crate::wire::{Json, Path, Query, check_if_match, etag_of, now, page_limit, with_etag};

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
        .route(
            "/api/v1/devices",
            post(create_device::<S>).get(list_devices::<S>),
        )
        .route(
            "/api/v1/devices/{device}",
            get(get_device::<S>)
                .patch(patch_device::<S>)
                .delete(delete_device::<S>),
        )
        .route("/api/v1/devices/{device}/tree", get(read_tree::<S>))
}

#[derive(OpenApi)]
#[openapi(paths(
    create_device,
    list_devices,
    get_device,
    patch_device,
    delete_device,
    read_tree
))]
pub(crate) struct Doc;

fn account(input: DmAccountInput, device: &DeviceId, default_server: &str) -> ApiResult<DmAccount> {
    if input.client_secret.is_empty() || input.server_secret.is_empty() {
        return Err(ApiError::bad_request(
            "client_secret and server_secret must not be empty",
        ));
    }
    let name = input
        .client_name
        .unwrap_or_else(|| device.as_str().to_owned());
    let server = input.server_id.unwrap_or_else(|| default_server.to_owned());
    Ok(DmAccount::from_secrets(
        input.auth.map_or(ClientAuth::Md5, ClientAuth::from),
        &name,
        &input.client_secret,
        &server,
        &input.server_secret,
    ))
}

fn tags(mut t: Vec<String>) -> ApiResult<Vec<String>> {
    if t.len() > 64
        || t.iter()
            .any(|t| t.is_empty() || t.len() > 64 || t.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "up to 64 tags of 1 to 64 printable characters",
        ));
    }
    t.sort();
    t.dedup();
    Ok(t)
}

/// The device, or 404.
pub(crate) async fn load_device<S: WsiStore>(store: &S, id: &DeviceId) -> ApiResult<Device> {
    store
        .get_device(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {id}")))
}

/// The answer for a device no grant of the caller covers: the very 404 of a device that does
/// not exist, so that an application cannot tell the two apart (issue 8 item 13). The
/// denial is still audited with its rule.
fn not_covered(caller: &Caller, id: &DeviceId) -> ApiError {
    ApiError::hidden(
        format!("device {id}"),
        format!("no grant of {} covers device {id}", caller.app.id),
    )
}

/// Loads a device the caller may see; 404 (as for a device that does not exist) when no
/// grant covers it.
pub(crate) async fn visible_device<S: WsiStore>(
    api: &Api<S>,
    caller: &Caller,
    id: &str,
) -> ApiResult<Device> {
    Ok(visible_device_view(api, caller, id).await?.0)
}

/// Like [`visible_device`], with the summary the caller may see.
async fn visible_device_view<S: WsiStore>(
    api: &Api<S>,
    caller: &Caller,
    id: &str,
) -> ApiResult<(Device, DeviceView)> {
    let id = device_id(id)?;
    let device = load_device(&api.store, &id).await?;
    if caller.is_admin() {
        let view = DeviceView::from(&device);
        return Ok((device, view));
    }
    let grants = api
        .shared
        .grants
        .grants_of(&api.store, &caller.app.id)
        .await?;
    let access = device_access(&api.store, caller, &grants, &device).await?;
    if !access.visible() {
        return Err(not_covered(caller, &id));
    }
    let view = summary_for(&device, &access);
    Ok((device, view))
}

/// The summary of `device` an application sees (issue 8 item 19): the reported values
/// whose source nodes a `get` grant covers, and no DM account (it is the operator's
/// provisioning, not device data).
pub(crate) fn summary_for(device: &Device, access: &DeviceAccess<'_>) -> DeviceView {
    if access.admin {
        return DeviceView::from(device);
    }
    let mut shown = device.clone();
    shown.info.redact(device.protocol, |p| access.may_read(p));
    shown.dm = None;
    DeviceView::from(&shown)
}

/// Provisions a device with its DM account (admin). Secrets are write-only.
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", request_body = CreateDevice,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = DeviceView, headers(("Location" = String))), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_device<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    IdemJson(idem, req): IdemJson<CreateDevice>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    if let Some(replay) = idem.replay(&api, &caller).await? {
        return Ok(replay);
    }
    let id = device_id(&req.id)?;
    let protocol = req.protocol.map_or(Protocol::OmaDm, Protocol::from);
    let mut new = NewDevice::new(id.clone(), protocol);
    new.dm = req
        .dm
        .map(|a| account(a, &id, &api.shared.options.dm_server_id))
        .transpose()?;
    new.tags = tags(req.tags)?;
    new.quirk_profile = req.quirk_profile;
    let device = new.into_device(now());
    api.store.create_device(&device).await?;
    let location = format!("/api/v1/devices/{}", urlencode(id.as_str()));
    idem.finish(
        &api,
        &caller,
        created(&location, &DeviceView::from(&device)),
    )
    .await
}

/// Percent-encodes a path segment (device ids carry `:` and may carry `/`).
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Filters and paging of device listings.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct DeviceQuery {
    /// Exact manufacturer.
    manufacturer: Option<String>,
    /// Exact model.
    model: Option<String>,
    /// Exact firmware version.
    firmware_version: Option<String>,
    /// Carries this tag.
    tag: Option<String>,
    /// Speaks this protocol.
    protocol: Option<ProtocolDto>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size (1–1000, default 100).
    limit: Option<u32>,
}

/// Lists devices (admin: all; an application: those its grants cover), by id. The cursor is
/// sealed (opaque and authenticated): it may mark a device the caller cannot see.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceQuery),
    responses((status = 200, body = Page<DeviceView>), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list_devices<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Query(q): Query<DeviceQuery>,
) -> ApiResult<axum::Json<Page<DeviceView>>> {
    let limit = page_limit(q.limit)?;
    let filter = DeviceFilter {
        manufacturer: q.manufacturer,
        model: q.model,
        firmware_version: q.firmware_version,
        tag: q.tag,
        protocol: q.protocol.map(Protocol::from),
    };
    // Sealed: the position may be a device the caller cannot see (issue 8 review item 1).
    let mut cursor = q
        .cursor
        .as_deref()
        .map(|c| api.shared.cursor_key.open(c))
        .transpose()?
        .map(|c| device_id(&c))
        .transpose()?;
    let grants = if caller.is_admin() {
        None
    } else {
        Some(
            api.shared
                .grants
                .grants_of(&api.store, &caller.app.id)
                .await?,
        )
    };
    let mut items = Vec::new();
    // Applications see a filtered listing: read on until the page is full, bounded so one
    // call never scans the whole registry (the cursor lets the client continue).
    for _ in 0..20 {
        let page = api
            .store
            .list_devices(&filter, cursor.as_ref(), limit)
            .await?;
        let mut stopped_early = false;
        for (i, d) in page.devices.iter().enumerate() {
            cursor = Some(d.id.clone());
            let view = match &grants {
                None => Some(DeviceView::from(d)),
                Some(g) => {
                    let access = device_access(&api.store, &caller, g, d).await?;
                    access.visible().then(|| summary_for(d, &access))
                }
            };
            if let Some(view) = view {
                items.push(view);
                if items.len() == limit as usize {
                    stopped_early = i + 1 < page.devices.len();
                    break;
                }
            }
        }
        if page.next.is_none() && !stopped_early {
            return Ok(axum::Json(Page {
                items,
                next_cursor: None,
            }));
        }
        if items.len() == limit as usize {
            break;
        }
    }
    let next_cursor = cursor
        .as_ref()
        .map(|c| api.shared.cursor_key.seal(c.as_str()))
        .transpose()?;
    Ok(axum::Json(Page { items, next_cursor }))
}

/// One device, with an ETag.
#[utoipa::path(get, path = "/api/v1/devices/{device}", tag = "devices", params(("device" = String, Path, description = "Device id, e.g. IMEI:493005100592800")),
    responses((status = 200, body = DeviceView, headers(("ETag" = String))), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_device<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(device): Path<String>,
) -> ApiResult<Response> {
    let (_, view) = visible_device_view(&api, &caller, &device).await?;
    Ok(with_etag(&view))
}

/// Edits tags, quirk profile or DM account (admin); `If-Match` makes it conditional.
#[utoipa::path(patch, path = "/api/v1/devices/{device}", tag = "devices", request_body = PatchDevice,
    params(("device" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = DeviceView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)))]
async fn patch_device<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(device): Path<String>,
    headers: HeaderMap,
    Json(req): Json<PatchDevice>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let mut device = visible_device(&api, &caller, &device).await?;
    check_if_match(&headers, &etag_of(&DeviceView::from(&device)))?;
    if let Some(t) = req.tags {
        device.tags = tags(t)?;
    }
    if let Some(q) = req.quirk_profile {
        device.quirk_profile = q;
    }
    if let Some(a) = req.dm {
        let mut acc = account(a, &device.id, &api.shared.options.dm_server_id)?;
        if let Some(old) = &device.dm {
            // Nonces stay: the device's next session uses the one we last gave it.
            acc.client_nonce.clone_from(&old.client_nonce);
            acc.server_nonce.clone_from(&old.server_nonce);
        }
        device.dm = Some(acc);
    }
    api.store.update_device(&device).await?;
    let view = DeviceView::from(&device);
    Ok(with_etag(&view))
}

/// Removes a device with its tree cache and operations (admin).
#[utoipa::path(delete, path = "/api/v1/devices/{device}", tag = "devices", params(("device" = String, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_device<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(device): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let id = device_id(&device)?;
    if !api.store.delete_device(&id).await? {
        return Err(ApiError::not_found(format!("device {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Tree read parameters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct TreeQuery {
    /// Root of the read (default `.`).
    path: Option<String>,
    /// Levels below the root (default: all).
    #[param(maximum = 64)]
    depth: Option<u32>,
}

/// The cached tree below a node: last known values with their age. Only nodes a `get` grant
/// covers are returned; a root no grant can reach is refused with 403; a device no grant
/// covers is 404, like one that does not exist.
#[utoipa::path(get, path = "/api/v1/devices/{device}/tree", tag = "devices", params(("device" = String, Path), TreeQuery),
    responses((status = 200, body = TreeView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn read_tree<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(device): Path<String>,
    Query(q): Query<TreeQuery>,
) -> ApiResult<axum::Json<TreeView>> {
    let root_text = q.path.unwrap_or_else(|| ".".into());
    let id = device_id(&device)?;
    if q.depth.is_some_and(|d| d > 64) {
        return Err(ApiError::bad_request("depth must be at most 64"));
    }
    let device = load_device(&api.store, &id).await?;
    let grants = if caller.is_admin() {
        None
    } else {
        Some(
            api.shared
                .grants
                .grants_of(&api.store, &caller.app.id)
                .await?,
        )
    };
    let access = match &grants {
        None => None,
        Some(g) => Some(device_access(&api.store, &caller, g, &device).await?),
    };
    // Visibility before the path: how the path parses depends on the device's protocol,
    // which an application that cannot see the device must not learn.
    if access.as_ref().is_some_and(|a| !a.visible()) {
        return Err(not_covered(&caller, &id));
    }
    let root = NodePath::parse_for(device.protocol, &root_text)
        .map_err(|e| ApiError::bad_request(format!("path: {e}")))?
        .without_query();
    if let Some(a) = &access {
        let reachable = a.grants.iter().any(|g| {
            g.permissions.contains(&omnidm_core::Permission::Get)
                && g.subtrees.iter().any(|s| s.may_cover_below(&root))
        });
        if !reachable {
            return Err(ApiError::forbidden(format!(
                "no grant of {} gives \"get\" on {root} or below on device {id}",
                caller.app.id
            )));
        }
    }
    let t = now();
    let nodes = api
        .store
        .read_tree(&id, &root, q.depth)
        .await?
        .iter()
        // Credentials are never cached; older caches may still hold some (issue 8).
        .filter(|e| !e.path.is_credential())
        .filter(|e| access.as_ref().is_none_or(|a| a.may_read(&e.path)))
        .map(|e| TreeNodeView::of(e, t))
        .collect();
    Ok(axum::Json(TreeView {
        device_id: id.as_str().to_owned(),
        path: root.to_string(),
        nodes,
    }))
}
