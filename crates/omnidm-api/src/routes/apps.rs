//! Applications, their API keys, grants, and `/me`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use omnidm_core::{
    AppId, Application, GrantId, GroupId, KeyId, NewGrant, Role, SubtreePattern, Timestamp,
    WsiStore,
};
use utoipa::OpenApi;

use crate::auth::{Caller, mint_key};
use crate::dto::{
    AppView, CreateApp, CreateGrant, CreateKey, CreatedApp, GrantView, KeyView, MeView, NewKeyView,
    PatchApp,
};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::idempotency::{IdemJson, created};
use crate::state::Api;
use crate::wire::{Json, Path, Query, check_if_match, etag_of, now, with_etag};

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
        .route("/api/v1/me", get(me::<S>))
        .route("/api/v1/apps", post(create_app::<S>).get(list_apps::<S>))
        .route(
            "/api/v1/apps/{app}",
            get(get_app::<S>)
                .patch(patch_app::<S>)
                .delete(delete_app::<S>),
        )
        .route(
            "/api/v1/apps/{app}/keys",
            post(create_key::<S>).get(list_keys::<S>),
        )
        .route("/api/v1/apps/{app}/keys/{key}", delete(revoke_key::<S>))
        .route(
            "/api/v1/grants",
            post(create_grant::<S>).get(list_grants::<S>),
        )
        .route(
            "/api/v1/grants/{grant}",
            get(get_grant::<S>).delete(delete_grant::<S>),
        )
}

#[derive(OpenApi)]
#[openapi(paths(
    me,
    create_app,
    list_apps,
    get_app,
    patch_app,
    delete_app,
    create_key,
    list_keys,
    revoke_key,
    create_grant,
    list_grants,
    get_grant,
    delete_grant
))]
pub(crate) struct Doc;

pub(crate) fn app_id(s: &str) -> ApiResult<AppId> {
    AppId::new(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn load_app<S: WsiStore>(api: &Api<S>, id: &str) -> ApiResult<Application> {
    let id = app_id(id)?;
    api.store
        .get_app(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("application {id}")))
}

/// The application `id` as `caller` may address it: itself (admins: any). Another
/// application is answered exactly like one that does not exist (issue 8 item 13).
async fn addressable_app<S: WsiStore>(
    api: &Api<S>,
    caller: &Caller,
    id: &str,
) -> ApiResult<Application> {
    let id = app_id(id)?;
    if !caller.is_admin() && caller.app.id != id {
        return Err(not_self(caller, &id));
    }
    load_app(api, id.as_str()).await
}

/// The 404 (audited as a denial) for an application addressing another one.
fn not_self(caller: &Caller, id: &AppId) -> ApiError {
    ApiError::hidden(
        format!("application {id}"),
        format!("application {} may only manage itself", caller.app.id),
    )
}

fn expiry(now: Timestamp, secs: Option<u64>) -> ApiResult<Option<Timestamp>> {
    secs.map(|s| {
        i64::try_from(s)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .map(|ms| now.plus_millis(ms))
            .ok_or_else(|| ApiError::bad_request("expiry too far in the future"))
    })
    .transpose()
}

/// Most active (not revoked, not expired) keys an application may hold.
pub(crate) const MAX_ACTIVE_KEYS: usize = 20;

/// Mints and stores a key for `app` at the caller's request. Its expiry is the earliest of
/// what was asked, the operator's `max_key_lifetime` (application keys) and — when an
/// application makes a key for itself — the expiry of the key it authenticated with, so a
/// short-lived key cannot mint a longer-lived one.
async fn new_key<S: WsiStore>(
    api: &Api<S>,
    caller: &Caller,
    app: &Application,
    expires_in: Option<u64>,
) -> ApiResult<NewKeyView> {
    let t = now();
    let mut expires_at = expiry(t, expires_in)?;
    let earliest = |a: Option<Timestamp>, cap: Timestamp| Some(a.map_or(cap, |a| a.min(cap)));
    if app.role == Role::Application
        && let Some(max) = api.shared.options.max_key_lifetime
    {
        let max_ms = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
        expires_at = earliest(expires_at, t.plus_millis(max_ms));
    }
    if caller.app.id == app.id
        && let Some(limit) = caller.key_expires_at
    {
        expires_at = earliest(expires_at, limit);
    }
    let active = api
        .store
        .list_keys(&app.id)
        .await?
        .iter()
        .filter(|k| k.is_active(t))
        .count();
    if active >= MAX_ACTIVE_KEYS {
        return Err(ApiError::new(
            crate::problem::Kind::Conflict,
            format!(
                "application {} has {active} active keys, the most allowed is {MAX_ACTIVE_KEYS}; revoke one first",
                app.id
            ),
        ));
    }
    let id = app.id.clone();
    let minted = tokio::task::spawn_blocking(move || mint_key(&id, t, expires_at))
        .await
        .map_err(|e| ApiError::new(crate::problem::Kind::Internal, e.to_string()))??;
    api.store.create_key(&minted.record).await?;
    Ok(NewKeyView {
        info: KeyView::from(&minted.record),
        key: Some(minted.text),
        key_withheld: None,
    })
}

/// The caller's application and grants.
#[utoipa::path(get, path = "/api/v1/me", tag = "applications",
    responses((status = 200, body = MeView), (status = 401, body = Problem)))]
async fn me<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
) -> ApiResult<axum::Json<MeView>> {
    let grants = api.store.list_grants(Some(&caller.app.id)).await?;
    Ok(axum::Json(MeView {
        app: AppView::from(&caller.app),
        key_id: caller.key_id.0.clone(),
        grants: grants.iter().map(GrantView::from).collect(),
    }))
}

/// Creates an application and its first key (admin). The key is in the response, once (a
/// replay with the same `Idempotency-Key` withholds it). Ids of deleted applications are never
/// reused (409).
#[utoipa::path(post, path = "/api/v1/apps", tag = "applications", request_body = CreateApp,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe submission key")),
    responses((status = 201, body = CreatedApp, headers(("Location" = String))), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_app<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    IdemJson(idem, req): IdemJson<CreateApp>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    if let Some(replay) = idem.replay(&api, &caller).await? {
        return Ok(replay);
    }
    let id = app_id(&req.id)?;
    if req.rate_limit == Some(0) || req.daily_quota == Some(0) {
        return Err(ApiError::bad_request(
            "rate_limit and daily_quota must be at least 1 (omit them for unlimited)",
        ));
    }
    let t = now();
    let app = Application {
        id: id.clone(),
        description: req.description,
        role: req.role.map_or(Role::Application, Role::from),
        rate_limit: req.rate_limit,
        daily_quota: req.daily_quota,
        disabled: false,
        created_at: t,
        updated_at: t,
    };
    api.store.create_app(&app).await.map_err(|e| match e {
        omnidm_core::StoreError::Conflict(_) => ApiError::new(
            crate::problem::Kind::Conflict,
            format!(
                "application {id} exists or existed: application ids are never reused (a deleted application's operations, results and charging records keep its id); choose another id"
            ),
        ),
        e => ApiError::from(e),
    })?;
    let key = new_key(&api, &caller, &app, req.key_expires_in).await?;
    let stored = CreatedApp {
        app: AppView::from(&app),
        key: key.withheld(),
    };
    let body = CreatedApp {
        app: AppView::from(&app),
        key,
    };
    let location = format!("/api/v1/apps/{id}");
    idem.finish(
        &api,
        &caller,
        created(&location, &body).replayed_as(&stored),
    )
    .await
}

/// Lists applications (admin).
#[utoipa::path(get, path = "/api/v1/apps", tag = "applications",
    responses((status = 200, body = Vec<AppView>), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_apps<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<AppView>>> {
    caller.require_admin()?;
    Ok(axum::Json(
        api.store
            .list_apps()
            .await?
            .iter()
            .map(AppView::from)
            .collect(),
    ))
}

/// One application (admin, or the application itself). Carries an ETag for `PATCH`.
#[utoipa::path(get, path = "/api/v1/apps/{app}", tag = "applications", params(("app" = String, Path)),
    responses((status = 200, body = AppView, headers(("ETag" = String))), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_app<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = addressable_app(&api, &caller, &app).await?;
    let view = AppView::from(&app);
    Ok(with_etag(&view))
}

/// Edits an application (admin). `If-Match` makes the edit conditional.
#[utoipa::path(patch, path = "/api/v1/apps/{app}", tag = "applications", request_body = PatchApp,
    params(("app" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = AppView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)))]
async fn patch_app<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(app): Path<String>,
    headers: HeaderMap,
    Json(req): Json<PatchApp>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let mut app = load_app(&api, &app).await?;
    check_if_match(&headers, &etag_of(&AppView::from(&app)))?;
    if req.rate_limit == Some(Some(0)) || req.daily_quota == Some(Some(0)) {
        return Err(ApiError::bad_request(
            "rate_limit and daily_quota must be at least 1 (null for unlimited)",
        ));
    }
    if let Some(d) = req.description {
        app.description = d;
    }
    if let Some(r) = req.rate_limit {
        app.rate_limit = r;
    }
    if let Some(q) = req.daily_quota {
        app.daily_quota = q;
    }
    if let Some(d) = req.disabled {
        if d && app.id == caller.app.id {
            return Err(ApiError::new(
                crate::problem::Kind::Conflict,
                "an application cannot disable itself",
            ));
        }
        app.disabled = d;
    }
    app.updated_at = now();
    api.store.update_app(&app).await?;
    api.shared.keys.forget_app(&app.id);
    let view = AppView::from(&app);
    Ok(with_etag(&view))
}

/// Deletes an application with its keys, grants and webhooks (admin).
#[utoipa::path(delete, path = "/api/v1/apps/{app}", tag = "applications", params(("app" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_app<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let id = app_id(&app)?;
    if id == caller.app.id {
        return Err(ApiError::new(
            crate::problem::Kind::Conflict,
            "an application cannot delete itself",
        ));
    }
    if !api.store.delete_app(&id, now()).await? {
        return Err(ApiError::not_found(format!("application {id}")));
    }
    api.shared.keys.forget_app(&id);
    api.shared.grants.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a key (admin, or the application itself: rotation is create + revoke).
///
/// A key an application creates for itself never outlives the key it authenticated with
/// (its expiry is capped to that key's); the operator's `max_key_lifetime` caps every
/// application key; an application holds at most 20 active keys (409 beyond). The key text is
/// in this response only: a replay with the same `Idempotency-Key` answers the same record
/// with `key` absent and `key_withheld` saying why.
#[utoipa::path(post, path = "/api/v1/apps/{app}/keys", tag = "applications", request_body = CreateKey,
    params(("app" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = NewKeyView, headers(("Location" = String))), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn create_key<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(app): Path<String>,
    IdemJson(idem, req): IdemJson<CreateKey>,
) -> ApiResult<Response> {
    let app = addressable_app(&api, &caller, &app).await?;
    if let Some(replay) = idem.replay(&api, &caller).await? {
        return Ok(replay);
    }
    let key = new_key(&api, &caller, &app, req.expires_in).await?;
    let location = format!("/api/v1/apps/{}/keys/{}", app.id, key.info.id);
    idem.finish(
        &api,
        &caller,
        created(&location, &key).replayed_as(&key.withheld()),
    )
    .await
}

/// Lists an application's keys (never the secrets).
#[utoipa::path(get, path = "/api/v1/apps/{app}/keys", tag = "applications", params(("app" = String, Path)),
    responses((status = 200, body = Vec<KeyView>), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_keys<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<Vec<KeyView>>> {
    let app = addressable_app(&api, &caller, &app).await?;
    Ok(axum::Json(
        api.store
            .list_keys(&app.id)
            .await?
            .iter()
            .map(KeyView::from)
            .collect(),
    ))
}

/// Revokes a key at once.
#[utoipa::path(delete, path = "/api/v1/apps/{app}/keys/{key}", tag = "applications", params(("app" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = KeyView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke_key<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path((app, key)): Path<(String, String)>,
) -> ApiResult<axum::Json<KeyView>> {
    let app = app_id(&app)?;
    if !caller.is_admin() && caller.app.id != app {
        return Err(not_self(&caller, &app));
    }
    let key_id = KeyId(key);
    match api.store.get_key(&key_id).await? {
        Some(k) if k.app_id == app => {}
        _ => {
            return Err(ApiError::not_found(format!(
                "key {key_id} of application {app}"
            )));
        }
    }
    let revoked = api.store.revoke_key(&key_id, now()).await?;
    api.shared.keys.forget_key(&key_id);
    Ok(axum::Json(KeyView::from(&revoked)))
}

/// Grants an application operations on subtrees of a group's devices (admin).
#[utoipa::path(post, path = "/api/v1/grants", tag = "access control", request_body = CreateGrant,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = GrantView, headers(("Location" = String))), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn create_grant<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    IdemJson(idem, req): IdemJson<CreateGrant>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    if let Some(replay) = idem.replay(&api, &caller).await? {
        return Ok(replay);
    }
    if req.permissions.is_empty() || req.subtrees.is_empty() {
        return Err(ApiError::bad_request(
            "a grant needs at least one permission and one subtree",
        ));
    }
    let subtrees = req
        .subtrees
        .iter()
        .map(|s| SubtreePattern::parse(s).map_err(ApiError::bad_request))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut permissions: Vec<_> = req.permissions.iter().map(|p| (*p).into()).collect();
    permissions.sort();
    permissions.dedup();
    let grant = NewGrant {
        app_id: app_id(&req.app_id)?,
        permissions,
        subtrees,
        group: GroupId::new(req.group.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let grant = api.store.create_grant(&grant, now()).await?;
    api.shared.grants.clear();
    let view = GrantView::from(&grant);
    idem.finish(
        &api,
        &caller,
        created(&format!("/api/v1/grants/{}", grant.id), &view),
    )
    .await
}

/// Query of grant listings.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct GrantQuery {
    /// Only this application's.
    app: Option<String>,
}

/// Lists grants (admin: all or one application's; an application: its own).
#[utoipa::path(get, path = "/api/v1/grants", tag = "access control", params(GrantQuery),
    responses((status = 200, body = Vec<GrantView>), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list_grants<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Query(q): Query<GrantQuery>,
) -> ApiResult<axum::Json<Vec<GrantView>>> {
    let app = match (&q.app, caller.is_admin()) {
        (Some(a), true) => Some(app_id(a)?),
        (None, true) => None,
        (Some(a), false) if a.as_str() != caller.app.id.as_str() => {
            return Err(ApiError::forbidden(
                "an application may only list its own grants",
            ));
        }
        _ => Some(caller.app.id.clone()),
    };
    Ok(axum::Json(
        api.store
            .list_grants(app.as_ref())
            .await?
            .iter()
            .map(GrantView::from)
            .collect(),
    ))
}

async fn load_grant<S: WsiStore>(
    api: &Api<S>,
    caller: &Caller,
    id: u64,
) -> ApiResult<omnidm_core::Grant> {
    match api.store.get_grant(GrantId(id)).await? {
        Some(g) if caller.is_admin() || g.app_id == caller.app.id => Ok(g),
        _ => Err(ApiError::not_found(format!("grant {id}"))),
    }
}

/// One grant.
#[utoipa::path(get, path = "/api/v1/grants/{grant}", tag = "access control", params(("grant" = u64, Path)),
    responses((status = 200, body = GrantView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn get_grant<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(id): Path<u64>,
) -> ApiResult<axum::Json<GrantView>> {
    Ok(axum::Json(GrantView::from(
        &load_grant(&api, &caller, id).await?,
    )))
}

/// Withdraws a grant (admin).
#[utoipa::path(delete, path = "/api/v1/grants/{grant}", tag = "access control", params(("grant" = u64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_grant<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(id): Path<u64>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if !api.store.delete_grant(GrantId(id)).await? {
        return Err(ApiError::not_found(format!("grant {id}")));
    }
    api.shared.grants.clear();
    Ok(StatusCode::NO_CONTENT)
}
