//! Device groups: static (explicit members) or filter-defined (manufacturer, model,
//! firmware, tags). Grants and operations name groups.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use omnidm_core::{DeviceFilter, DeviceId, Group, GroupId, GroupKind, WsiStore};
use utoipa::OpenApi;

use crate::auth::Caller;
use crate::dto::{CreateGroup, GroupKindDto, GroupView, Members, Page, PatchGroup};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::idempotency::{IdemJson, created};
use crate::state::Api;
use crate::wire::{
    Json, Path, Query, check_if_match, decode_cursor, encode_cursor, etag_of, now, page_limit,
    with_etag,
};

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
        .route(
            "/api/v1/groups",
            post(create_group::<S>).get(list_groups::<S>),
        )
        .route(
            "/api/v1/groups/{group}",
            get(get_group::<S>)
                .patch(patch_group::<S>)
                .delete(delete_group::<S>),
        )
        .route(
            "/api/v1/groups/{group}/members",
            post(add_members::<S>).get(list_members::<S>),
        )
        .route(
            "/api/v1/groups/{group}/members/{device}",
            delete(remove_member::<S>),
        )
}

#[derive(OpenApi)]
#[openapi(paths(
    create_group,
    list_groups,
    get_group,
    patch_group,
    delete_group,
    add_members,
    list_members,
    remove_member
))]
pub(crate) struct Doc;

pub(crate) fn group_id(s: &str) -> ApiResult<GroupId> {
    GroupId::new(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub(crate) fn device_id(s: &str) -> ApiResult<DeviceId> {
    DeviceId::new(s).map_err(|e| ApiError::bad_request(format!("device id {s:?}: {e}")))
}

/// Loads a group the caller may see: admins all, applications those their grants name.
pub(crate) async fn visible_group<S: WsiStore>(
    api: &Api<S>,
    caller: &Caller,
    id: &str,
) -> ApiResult<Group> {
    let id = group_id(id)?;
    let group = api.store.get_group(&id).await?;
    let visible = caller.is_admin()
        || api
            .shared
            .grants
            .grants_of(&api.store, &caller.app.id)
            .await?
            .groups
            .contains_key(&id);
    match group {
        Some(g) if visible => Ok(g),
        _ => Err(ApiError::not_found(format!("group {id}"))),
    }
}

/// Creates a group (admin).
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = CreateGroup,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = GroupView, headers(("Location" = String))), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_group<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    IdemJson(idem, req): IdemJson<CreateGroup>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    if let Some(replay) = idem.replay(&api, &caller).await? {
        return Ok(replay);
    }
    let id = group_id(&req.id)?;
    let kind = match (req.kind, req.filter) {
        (GroupKindDto::Static, None) => GroupKind::Static,
        (GroupKindDto::Filter, Some(f)) if req.members.is_empty() => {
            GroupKind::Filter { filter: f.into() }
        }
        (GroupKindDto::Static, Some(_)) => {
            return Err(ApiError::bad_request(
                "a static group takes members, not a filter",
            ));
        }
        (GroupKindDto::Filter, None) => {
            return Err(ApiError::bad_request("a filter group needs a filter"));
        }
        (GroupKindDto::Filter, Some(_)) => {
            return Err(ApiError::bad_request(
                "a filter group has no explicit members",
            ));
        }
    };
    let members = req
        .members
        .iter()
        .map(|d| device_id(d))
        .collect::<ApiResult<Vec<_>>>()?;
    let t = now();
    let group = Group {
        id: id.clone(),
        description: req.description,
        kind,
        created_at: t,
        updated_at: t,
    };
    api.store.create_group(&group).await?;
    if !members.is_empty()
        && let Err(e) = api.store.add_group_members(&id, &members).await
    {
        // Leave nothing half-made: the client retries the whole creation.
        let _ = api.store.delete_group(&id).await;
        return Err(e.into());
    }
    api.shared.grants.clear();
    idem.finish(
        &api,
        &caller,
        created(&format!("/api/v1/groups/{id}"), &GroupView::from(&group)),
    )
    .await
}

/// Lists groups (admin: all; an application: those its grants name).
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups",
    responses((status = 200, body = Vec<GroupView>), (status = 401, body = Problem)))]
async fn list_groups<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<GroupView>>> {
    let groups = api.store.list_groups().await?;
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
    Ok(axum::Json(
        groups
            .iter()
            .filter(|g| {
                grants
                    .as_ref()
                    .is_none_or(|gr| gr.groups.contains_key(&g.id))
            })
            .map(GroupView::from)
            .collect(),
    ))
}

/// One group, with an ETag.
#[utoipa::path(get, path = "/api/v1/groups/{group}", tag = "groups", params(("group" = String, Path)),
    responses((status = 200, body = GroupView, headers(("ETag" = String))), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn get_group<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    let view = GroupView::from(&visible_group(&api, &caller, &group).await?);
    Ok(with_etag(&view))
}

/// Edits a group's description or filter (admin); `If-Match` makes it conditional.
#[utoipa::path(patch, path = "/api/v1/groups/{group}", tag = "groups", request_body = PatchGroup,
    params(("group" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = GroupView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)))]
async fn patch_group<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(group): Path<String>,
    headers: HeaderMap,
    Json(req): Json<PatchGroup>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let mut group = visible_group(&api, &caller, &group).await?;
    check_if_match(&headers, &etag_of(&GroupView::from(&group)))?;
    if let Some(d) = req.description {
        group.description = d;
    }
    if let Some(f) = req.filter {
        match &mut group.kind {
            GroupKind::Filter { filter } => *filter = f.into(),
            GroupKind::Static => {
                return Err(ApiError::bad_request(
                    "a static group has no filter; change its members instead",
                ));
            }
        }
    }
    group.updated_at = now();
    api.store.update_group(&group).await?;
    api.shared.grants.clear();
    let view = GroupView::from(&group);
    Ok(with_etag(&view))
}

/// Deletes a group and the grants on it (admin).
#[utoipa::path(delete, path = "/api/v1/groups/{group}", tag = "groups", params(("group" = String, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_group<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(group): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let id = group_id(&group)?;
    if !api.store.delete_group(&id).await? {
        return Err(ApiError::not_found(format!("group {id}")));
    }
    api.shared.grants.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// Adds devices to a static group (admin).
#[utoipa::path(post, path = "/api/v1/groups/{group}/members", tag = "groups", request_body = Members, params(("group" = String, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn add_members<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(group): Path<String>,
    Json(req): Json<Members>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let group = visible_group(&api, &caller, &group).await?;
    if group.kind != GroupKind::Static {
        return Err(ApiError::new(
            crate::problem::Kind::Conflict,
            "a filter group's members follow its filter; edit the filter",
        ));
    }
    if req.devices.is_empty() || req.devices.len() > 10_000 {
        return Err(ApiError::bad_request("send 1 to 10000 device ids per call"));
    }
    let devices = req
        .devices
        .iter()
        .map(|d| device_id(d))
        .collect::<ApiResult<Vec<_>>>()?;
    api.store.add_group_members(&group.id, &devices).await?;
    api.shared.grants.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// Paging of member listings.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct MemberQuery {
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size (1–1000, default 100).
    limit: Option<u32>,
}

/// Members of a group (static: as added; filter: the devices matching now), by device id.
#[utoipa::path(get, path = "/api/v1/groups/{group}/members", tag = "groups", params(("group" = String, Path), MemberQuery),
    responses((status = 200, body = Page<String>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn list_members<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(group): Path<String>,
    Query(q): Query<MemberQuery>,
) -> ApiResult<axum::Json<Page<String>>> {
    let group = visible_group(&api, &caller, &group).await?;
    let limit = page_limit(q.limit)?;
    let after = q
        .cursor
        .as_deref()
        .map(decode_cursor)
        .transpose()?
        .map(|c| device_id(&c))
        .transpose()?;
    let ids = members_page(&api.store, &group, after.as_ref(), limit).await?;
    let next_cursor = (ids.len() == limit as usize)
        .then(|| ids.last().map(|d| encode_cursor(d.as_str())))
        .flatten();
    Ok(axum::Json(Page {
        items: ids.into_iter().map(|d| d.as_str().to_owned()).collect(),
        next_cursor,
    }))
}

/// One page of a group's members in id order.
pub(crate) async fn members_page<S: WsiStore>(
    store: &S,
    group: &Group,
    after: Option<&DeviceId>,
    limit: u32,
) -> ApiResult<Vec<DeviceId>> {
    match &group.kind {
        GroupKind::Static => Ok(store.list_group_members(&group.id, after, limit).await?),
        GroupKind::Filter { filter } => {
            // The store filters on one tag; the rest of the filter is applied here.
            let db_filter = DeviceFilter {
                manufacturer: filter.manufacturer.clone(),
                model: filter.model.clone(),
                firmware_version: filter.firmware_version.clone(),
                tag: filter.tags.first().cloned(),
                protocol: None,
            };
            let mut out = Vec::new();
            let mut cursor = after.cloned();
            loop {
                let page = store
                    .list_devices(&db_filter, cursor.as_ref(), 1000)
                    .await?;
                out.extend(
                    page.devices
                        .iter()
                        .filter(|d| filter.matches(d))
                        .map(|d| d.id.clone()),
                );
                if out.len() >= limit as usize || page.next.is_none() {
                    out.truncate(limit as usize);
                    return Ok(out);
                }
                cursor = page.next;
            }
        }
    }
}

/// Every member of a group (for fan-out).
pub(crate) async fn all_members<S: WsiStore>(store: &S, group: &Group) -> ApiResult<Vec<DeviceId>> {
    let mut out = Vec::new();
    let mut after: Option<DeviceId> = None;
    loop {
        let page = members_page(store, group, after.as_ref(), 1000).await?;
        let done = page.len() < 1000;
        after = page.last().cloned();
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Removes a device from a static group (admin).
#[utoipa::path(delete, path = "/api/v1/groups/{group}/members/{device}", tag = "groups", params(("group" = String, Path), ("device" = String, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn remove_member<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path((group, device)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let id = group_id(&group)?;
    let device = device_id(&device)?;
    if api
        .store
        .remove_group_members(&id, std::slice::from_ref(&device))
        .await?
        == 0
    {
        return Err(ApiError::not_found(format!(
            "device {device} in group {id}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
