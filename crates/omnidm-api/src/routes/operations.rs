//! Operations: asynchronous by design. `POST /operations` checks the grants for every target
//! device, fans the command list out into one queued device operation per device (one store
//! transaction) and answers `202 Accepted` at once; results arrive as devices call in, and
//! are read with `GET /operations/{id}` (optionally long-polling with `wait`), the event log
//! or webhooks.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use omnidm_core::{
    CommandOutcome, DeviceId, GroupKind, Job, JobCounts, JobId, JobTarget, NewJob, NodeResult,
    OpState, Operation, UiAnswer, WsiStore, needs_of,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::Caller;
use crate::dto::{CommandDto, Page};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::groups::{all_members, device_id, visible_group};
use crate::routes::idempotency::{IdemJson, reply};
use crate::state::Api;
use crate::wire::{
    Path, Query, decode_cursor, decode_num_cursor, encode_cursor, now, page_limit, rfc3339,
    rfc3339_opt,
};

/// Most commands in one operation.
const MAX_COMMANDS: usize = 100;
/// Most devices in an explicit target list (larger fleets: use a group).
const MAX_LISTED_DEVICES: usize = 10_000;
/// Above this many target devices, static group membership is loaded per group, not per device.
const BULK_MEMBERSHIP: usize = 64;
/// Device results embedded in an operation view.
const EMBEDDED_DEVICES: u32 = 100;

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
        .route("/api/v1/operations", post(submit::<S>).get(list::<S>))
        .route(
            "/api/v1/operations/{operation}",
            get(show::<S>).delete(cancel::<S>),
        )
        .route("/api/v1/operations/{operation}/devices", get(devices::<S>))
        .route(
            "/api/v1/devices/{device}/operations",
            post(submit_for_device::<S>),
        )
}

#[derive(OpenApi)]
#[openapi(paths(submit, submit_for_device, list, show, cancel, devices))]
pub(crate) struct Doc;

/// Which devices an operation is for: exactly one of the fields.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetDto {
    /// One device id.
    Device(String),
    /// Device ids (up to 10,000).
    Devices(Vec<String>),
    /// A group id: its members at submission time.
    Group(String),
}

/// Submits an operation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitOperation {
    /// The devices.
    pub target: TargetDto,
    /// The commands, run in order on each device.
    #[schema(min_items = 1, max_items = 100)]
    pub commands: Vec<CommandDto>,
    /// Ask the devices to call in now (OMA DM package 0 through the push gateway).
    #[serde(default)]
    pub notify: bool,
    /// Queued device operations expire after this many seconds.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub expires_in: Option<u64>,
    /// Wait up to this many seconds for every device to finish before answering.
    #[serde(default)]
    #[schema(maximum = 60)]
    pub wait: Option<u64>,
}

/// Submits an operation for one device (`POST /devices/{id}/operations`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitDeviceOperation {
    /// The commands, in order.
    #[schema(min_items = 1, max_items = 100)]
    pub commands: Vec<CommandDto>,
    /// Ask the device to call in now.
    #[serde(default)]
    pub notify: bool,
    /// Expiry in seconds.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub expires_in: Option<u64>,
    /// Wait up to this many seconds for the result.
    #[serde(default)]
    #[schema(maximum = 60)]
    pub wait: Option<u64>,
}

/// Overall state of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// No device has started it.
    Queued,
    /// Some devices are running it or have finished.
    InProgress,
    /// Every device operation reached a final state.
    Completed,
}

/// Device operations per state.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsView {
    /// Waiting for the device.
    pub queued: u64,
    /// In a session now.
    pub in_session: u64,
    /// Every command succeeded.
    pub succeeded: u64,
    /// Some command failed.
    pub failed: u64,
    /// Expired before the device called in.
    pub expired: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Answered, with an Exec the device accepted (202) waiting for its asynchronous report
    /// (Generic Alert 1226) until the device operation's `report_deadline`.
    pub awaiting_report: u64,
}

impl From<&JobCounts> for CountsView {
    fn from(c: &JobCounts) -> CountsView {
        CountsView {
            queued: c.queued,
            in_session: c.in_session,
            succeeded: c.succeeded,
            failed: c.failed,
            expired: c.expired,
            cancelled: c.cancelled,
            awaiting_report: c.awaiting_report,
        }
    }
}

/// One node in a command result.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeResultView {
    /// The node.
    pub path: String,
    /// Its value (wire text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Its type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The user's answer to an interaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerView {
    /// Confirm: yes or no.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// Text input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Chosen items (1-based, as the device reports them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<u32>>,
}

/// One command's outcome on one device.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandResultView {
    /// Position of the command (nested for atomic/sequence children), 0-based.
    pub index: Vec<u32>,
    /// Status code (OMA DM: 200 ok, 404 not found, …; 900 interrupted, 901 not executed,
    /// 902 no asynchronous report before the deadline). An Exec answered 202 waits for its
    /// Generic Alert 1226, whose result code (FUMO/SCOMO, e.g. 410) then becomes the status.
    pub status: u16,
    /// What the status means: the FUMO/SCOMO name of a reported result code (e.g. "Firmware
    /// Update Failed"), or `report_timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an Exec accepted with 202: until when its asynchronous report is awaited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_deadline: Option<String>,
    /// A report that arrived when nothing waited for it any more (finished, timed out or
    /// cancelled): recorded here, it changed nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_report: Option<LateReportView>,
    /// Nodes read (get).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<NodeResultView>,
    /// The user's answer (user interaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerView>,
    /// When the device answered.
    pub finished_at: String,
}

/// An asynchronous report that came too late to change anything.
#[derive(Debug, Serialize, ToSchema)]
pub struct LateReportView {
    /// The result code reported.
    pub status: u16,
    /// Its FUMO/SCOMO name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it arrived.
    pub received_at: String,
}

fn result_view(o: &CommandOutcome) -> CommandResultView {
    CommandResultView {
        index: o.index.clone(),
        status: o.status,
        reason: o.reason.clone(),
        report_deadline: o.report_deadline.map(rfc3339),
        late_report: o.late_report.as_ref().map(|l| LateReportView {
            status: l.status,
            reason: l.reason.clone(),
            received_at: rfc3339(l.received_at),
        }),
        results: o.results.iter().map(node_view).collect(),
        answer: o.answer.as_ref().map(|a| match a {
            UiAnswer::Confirmed(b) => AnswerView {
                confirmed: Some(*b),
                text: None,
                choices: None,
            },
            UiAnswer::Text(t) => AnswerView {
                confirmed: None,
                text: Some(t.clone()),
                choices: None,
            },
            UiAnswer::Choices(c) => AnswerView {
                confirmed: None,
                text: None,
                choices: Some(c.clone()),
            },
        }),
        finished_at: rfc3339(o.finished_at),
    }
}

fn node_view(r: &NodeResult) -> NodeResultView {
    NodeResultView {
        path: r.path.to_string(),
        value: r.value.as_ref().map(|v| v.data.clone()),
        format: r.value.as_ref().map(|v| v.value_type.as_str().to_owned()),
    }
}

/// The operation on one device.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceOperationView {
    /// The device.
    pub device_id: String,
    /// Id of the device operation (appears in events).
    pub device_operation_id: u64,
    /// Where it is: queued, in_session, awaiting_report (an Exec the device accepted waits
    /// for its Generic Alert 1226), succeeded, failed, expired or cancelled.
    #[schema(example = "awaiting_report")]
    pub state: String,
    /// While `awaiting_report`: when the operation fails (902 `report_timeout`) unless the
    /// device reports first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_deadline: Option<String>,
    /// Sessions that picked it up.
    pub attempts: u32,
    /// Last change.
    pub updated_at: String,
    /// Per-command outcomes so far.
    pub results: Vec<CommandResultView>,
}

fn device_op_view(op: &Operation) -> DeviceOperationView {
    DeviceOperationView {
        device_id: op.device_id.as_str().to_owned(),
        device_operation_id: op.id.0,
        state: op.state.as_str().to_owned(),
        report_deadline: op.report_deadline.map(rfc3339),
        attempts: op.attempts,
        updated_at: rfc3339(op.updated_at),
        results: op.outcomes.iter().map(result_view).collect(),
    }
}

/// An operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationView {
    /// Id.
    pub id: u64,
    /// Submitting application.
    pub application: String,
    /// As submitted.
    pub target: TargetDto,
    /// The commands.
    pub commands: Vec<CommandDto>,
    /// Overall state.
    pub state: OperationState,
    /// Device operations per state.
    pub counts: CountsView,
    /// Devices it fanned out to.
    pub device_count: u64,
    /// Notification requested.
    pub notify: bool,
    /// Submission time.
    pub created_at: String,
    /// Expiry of queued device operations.
    pub expires_at: Option<String>,
    /// The first devices (by id) with their results; the rest via `/operations/{id}/devices`.
    pub devices: Vec<DeviceOperationView>,
    /// Cursor for `/operations/{id}/devices` when there are more devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices_next_cursor: Option<String>,
    /// What the server could not do as asked (in the submit answer only), e.g. `notify`
    /// without a push gateway: the devices run the operation at their next session.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn overall(c: &JobCounts) -> OperationState {
    if c.is_done() {
        OperationState::Completed
    } else if c.queued == c.total() {
        OperationState::Queued
    } else {
        OperationState::InProgress
    }
}

fn target_view(t: &JobTarget) -> TargetDto {
    match t {
        JobTarget::Device(d) => TargetDto::Device(d.as_str().to_owned()),
        JobTarget::Devices(ds) => {
            TargetDto::Devices(ds.iter().map(|d| d.as_str().to_owned()).collect())
        }
        JobTarget::Group(g) => TargetDto::Group(g.to_string()),
    }
}

async fn view<S: WsiStore>(api: &Api<S>, job: &Job) -> ApiResult<(OperationView, bool)> {
    let counts = api.store.job_counts(job.id).await?;
    let ops = api
        .store
        .job_operations(job.id, None, None, EMBEDDED_DEVICES)
        .await?;
    let more =
        ops.len() == EMBEDDED_DEVICES as usize && job.device_count > u64::from(EMBEDDED_DEVICES);
    let done = counts.is_done();
    Ok((
        OperationView {
            id: job.id.0,
            application: job.app_id.to_string(),
            target: target_view(&job.target),
            commands: job.commands.iter().map(CommandDto::from_core).collect(),
            state: overall(&counts),
            counts: CountsView::from(&counts),
            device_count: job.device_count,
            notify: job.notify,
            created_at: rfc3339(job.created_at),
            expires_at: rfc3339_opt(job.expires_at),
            devices_next_cursor: more
                .then(|| ops.last().map(|o| encode_cursor(o.device_id.as_str())))
                .flatten(),
            devices: ops.iter().map(device_op_view).collect(),
            warnings: Vec::new(),
        },
        done,
    ))
}

/// Waits until the job is done or `wait` passes, waking on new events.
async fn wait_for<S: WsiStore>(api: &Api<S>, job: JobId, wait: Duration) -> ApiResult<()> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut events = api.shared.events.clone();
    loop {
        if api.store.job_counts(job).await?.is_done() {
            return Ok(());
        }
        tokio::select! {
            changed = events.changed() => if changed.is_err() { return Ok(()) },
            () = tokio::time::sleep_until(deadline) => return Ok(()),
        }
    }
}

fn wait_duration<S>(api: &Api<S>, wait: Option<u64>) -> ApiResult<Option<Duration>> {
    match wait {
        None | Some(0) => Ok(None),
        Some(w) if w > api.shared.options.max_wait_secs => Err(ApiError::bad_request(format!(
            "wait must be at most {} seconds",
            api.shared.options.max_wait_secs
        ))),
        Some(w) => Ok(Some(Duration::from_secs(w))),
    }
}

/// Resolves the target to device ids (deduplicated, in order).
async fn resolve<S: WsiStore>(
    api: &Api<S>,
    caller: &Caller,
    target: &TargetDto,
) -> ApiResult<(JobTarget, Vec<DeviceId>)> {
    match target {
        TargetDto::Device(d) => {
            let id = device_id(d)?;
            Ok((JobTarget::Device(id.clone()), vec![id]))
        }
        TargetDto::Devices(ds) => {
            if ds.is_empty() || ds.len() > MAX_LISTED_DEVICES {
                return Err(ApiError::bad_request(format!(
                    "list 1 to {MAX_LISTED_DEVICES} devices (use a group for more)"
                )));
            }
            let mut seen = HashSet::new();
            let ids = ds
                .iter()
                .map(|d| device_id(d))
                .collect::<ApiResult<Vec<_>>>()?;
            let ids: Vec<DeviceId> = ids.into_iter().filter(|d| seen.insert(d.clone())).collect();
            Ok((JobTarget::Devices(ids.clone()), ids))
        }
        TargetDto::Group(g) => {
            // A group none of the caller's grants names is "not found", like a missing one:
            // its existence and its members are not the caller's to learn.
            let group = visible_group(api, caller, g).await?;
            let id = group.id.clone();
            let members = all_members(&api.store, &group).await?;
            if members.is_empty() {
                return Err(ApiError::new(
                    crate::problem::Kind::Conflict,
                    format!("group {id} has no devices"),
                ));
            }
            Ok((JobTarget::Group(id), members))
        }
    }
}

/// Checks the caller's grants for `needs` on every device; the first denial refuses all.
async fn authorize_all<S: WsiStore>(
    api: &Api<S>,
    caller: &Caller,
    target: &JobTarget,
    devices: &[DeviceId],
    commands: &[omnidm_core::OpCommand],
) -> ApiResult<()> {
    omnidm_core::refuse_credential_reads(commands).map_err(|d| ApiError::forbidden(d.rule))?;
    if caller.is_admin() {
        return Ok(());
    }
    let needs = needs_of(commands);
    let grants = api
        .shared
        .grants
        .grants_of(&api.store, &caller.app.id)
        .await?;
    // Fast path: a grant on the target group itself that allows every need covers all members.
    if let JobTarget::Group(g) = target {
        let whole = grants
            .grants
            .iter()
            .filter(|gr| &gr.group == g)
            .collect::<Vec<_>>();
        if !whole.is_empty()
            && needs
                .iter()
                .all(|n| whole.iter().any(|gr| omnidm_core::grant_allows(gr, n)))
        {
            return Ok(());
        }
    }
    // Static-group membership: for a few devices, ask per device; for many, load each static
    // group named by a grant once instead of asking 10,000 times.
    let bulk = devices.len() > BULK_MEMBERSHIP;
    let mut static_members: HashMap<&omnidm_core::GroupId, HashSet<DeviceId>> = HashMap::new();
    if bulk {
        for (id, group) in &grants.groups {
            if group.kind == GroupKind::Static {
                static_members.insert(
                    id,
                    all_members(&api.store, group).await?.into_iter().collect(),
                );
            }
        }
    }
    // Devices that do not exist and devices no grant covers get one answer (404, naming them
    // together), checked over the whole target before any 403: which ids exist must not show
    // (issue 8 item 13).
    let mut hidden: Vec<&DeviceId> = Vec::new();
    let mut invisible = 0usize;
    let mut denied: Option<ApiError> = None;
    for id in devices {
        let Some(device) = api.store.get_device(id).await? else {
            hidden.push(id);
            continue;
        };
        let member_of: HashSet<omnidm_core::GroupId> = if bulk {
            static_members
                .iter()
                .filter(|(_, m)| m.contains(id))
                .map(|(g, _)| (*g).clone())
                .collect()
        } else {
            crate::access::static_groups(&api.store, &grants, id).await?
        };
        let covering = grants.for_device(&device, &member_of);
        if covering.is_empty() {
            hidden.push(id);
            invisible += 1;
            continue;
        }
        if denied.is_none()
            && let Err(d) = omnidm_core::authorize(&caller.app.id, id.as_str(), &covering, &needs)
        {
            denied = Some(ApiError::forbidden(d.rule));
        }
    }
    if !hidden.is_empty() {
        return Err(hidden_devices(&caller.app.id, &hidden, invisible));
    }
    denied.map_or(Ok(()), Err)
}

/// The 404 for target devices that do not exist or that no grant of `app` covers (`invisible`
/// of them): one answer for both, naming the first few.
fn hidden_devices(app: &omnidm_core::AppId, hidden: &[&DeviceId], invisible: usize) -> ApiError {
    const NAMED: usize = 10;
    let mut names = hidden
        .iter()
        .take(NAMED)
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if hidden.len() > NAMED {
        names.push_str(&format!(" and {} more", hidden.len() - NAMED));
    }
    let what = if hidden.len() == 1 {
        format!("device {names}")
    } else {
        format!("devices {names}")
    };
    if invisible == 0 {
        ApiError::not_found(what)
    } else {
        let rule = format!("no grant of {app} covers {invisible} of the target devices");
        ApiError::hidden(what, rule)
    }
}

/// The submit answer's warning for `notify` on a server without a push gateway.
const NOTIFY_WITHOUT_GATEWAY: &str = "notify: this server has no push gateway configured, so \
    no device was asked to call in; the devices run the operation at their next session \
    (configure [push] gateway_url or --push-gateway)";

async fn submit_job<S: WsiStore>(
    api: &Api<S>,
    caller: &Caller,
    target: &TargetDto,
    commands: &[CommandDto],
    notify: bool,
    expires_in: Option<u64>,
    wait: Option<u64>,
) -> ApiResult<(StatusCode, String, OperationView)> {
    if commands.is_empty() || commands.len() > MAX_COMMANDS {
        return Err(ApiError::bad_request(format!(
            "send 1 to {MAX_COMMANDS} commands"
        )));
    }
    let wait = wait_duration(api, wait)?;
    let core = commands
        .iter()
        .map(|c| c.to_core(0))
        .collect::<ApiResult<Vec<_>>>()?;
    let t = now();
    let expires_at = match expires_in {
        None => None,
        Some(0) => {
            return Err(ApiError::bad_request(
                "expires_in must be at least 1 second",
            ));
        }
        Some(s) => Some(
            t.plus_millis(
                i64::try_from(s)
                    .unwrap_or(i64::MAX / 2)
                    .saturating_mul(1000),
            ),
        ),
    };
    let (target, devices) = resolve(api, caller, target).await?;
    authorize_all(api, caller, &target, &devices, &core).await?;
    let job = NewJob {
        app_id: caller.app.id.clone(),
        target,
        commands: core,
        expires_at,
        notify,
    };
    let job = api.store.submit_job(&job, &devices, t).await?;
    metrics::counter!("omnidm_api_operations_submitted_total").increment(1);
    metrics::counter!("omnidm_api_device_operations_submitted_total").increment(job.device_count);
    if let Some(w) = wait {
        wait_for(api, job.id, w).await?;
    }
    let (mut view, done) = view(api, &job).await?;
    if notify && !api.shared.options.wake_up_available {
        tracing::warn!(
            operation = job.id.0,
            app = %caller.app.id,
            "operation submitted with notify, but no push gateway is configured: its devices \
             run it at their next session"
        );
        view.warnings.push(NOTIFY_WITHOUT_GATEWAY.into());
    }
    let status = if done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, format!("/api/v1/operations/{}", job.id), view))
}

/// Submits an operation for a device, a list or a group. Every device must be covered by a
/// grant allowing every command on its node; otherwise nothing is queued: target devices
/// that do not exist or that no grant covers are named in one 404 (the two cases are not
/// told apart), and a covered device whose grants do not allow a command gets 403 with the
/// denying rule. A group target must be named by one of the caller's grants (404 otherwise).
/// Answers 202 at once (200 if `wait` saw every device finish).
#[utoipa::path(post, path = "/api/v1/operations", tag = "operations", request_body = SubmitOperation,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, body = OperationView, headers(("Location" = String))), (status = 200, body = OperationView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn submit<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    IdemJson(idem, req): IdemJson<SubmitOperation>,
) -> ApiResult<Response> {
    if let Some(replay) = idem.replay(&api, &caller).await? {
        return Ok(replay);
    }
    let (status, location, view) = submit_job(
        &api,
        &caller,
        &req.target,
        &req.commands,
        req.notify,
        req.expires_in,
        req.wait,
    )
    .await?;
    idem.finish(&api, &caller, reply(status, Some(&location), &view))
        .await
}

/// Shorthand: an operation for one device.
#[utoipa::path(post, path = "/api/v1/devices/{device}/operations", tag = "operations", request_body = SubmitDeviceOperation,
    params(("device" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, body = OperationView, headers(("Location" = String))), (status = 200, body = OperationView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn submit_for_device<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(device): Path<String>,
    IdemJson(idem, req): IdemJson<SubmitDeviceOperation>,
) -> ApiResult<Response> {
    if let Some(replay) = idem.replay(&api, &caller).await? {
        return Ok(replay);
    }
    let target = TargetDto::Device(device);
    let (status, location, view) = submit_job(
        &api,
        &caller,
        &target,
        &req.commands,
        req.notify,
        req.expires_in,
        req.wait,
    )
    .await?;
    idem.finish(&api, &caller, reply(status, Some(&location), &view))
        .await
}

async fn load<S: WsiStore>(api: &Api<S>, caller: &Caller, id: u64) -> ApiResult<Job> {
    match api.store.get_job(JobId(id)).await? {
        Some(j) if caller.is_admin() || j.app_id == caller.app.id => Ok(j),
        _ => Err(ApiError::not_found(format!("operation {id}"))),
    }
}

/// Long-poll parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    /// Wait up to this many seconds for the operation to complete.
    #[param(maximum = 60)]
    wait: Option<u64>,
}

/// An operation with counts per state and the first devices' results.
#[utoipa::path(get, path = "/api/v1/operations/{operation}", tag = "operations", params(("operation" = u64, Path), WaitQuery),
    responses((status = 200, body = OperationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn show<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(id): Path<u64>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<axum::Json<OperationView>> {
    let wait = wait_duration(&api, q.wait)?;
    let job = load(&api, &caller, id).await?;
    if let Some(w) = wait {
        wait_for(&api, job.id, w).await?;
    }
    Ok(axum::Json(view(&api, &job).await?.0))
}

/// Paging of operation listings.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size (1–1000, default 100).
    limit: Option<u32>,
}

/// A submitted operation, without device results.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationSummary {
    /// Id.
    pub id: u64,
    /// Submitting application.
    pub application: String,
    /// As submitted.
    pub target: TargetDto,
    /// Devices it fanned out to.
    pub device_count: u64,
    /// Submission time.
    pub created_at: String,
}

/// Operations, newest first (an application: its own; admin: all).
#[utoipa::path(get, path = "/api/v1/operations", tag = "operations", params(ListQuery),
    responses((status = 200, body = Page<OperationSummary>), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<OperationSummary>>> {
    let limit = page_limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(decode_num_cursor)
        .transpose()?
        .map(JobId);
    let app = (!caller.is_admin()).then(|| caller.app.id.clone());
    let jobs = api.store.list_jobs(app.as_ref(), before, limit).await?;
    let next_cursor = (jobs.len() == limit as usize)
        .then(|| jobs.last().map(|j| encode_cursor(&j.id.0.to_string())))
        .flatten();
    let items = jobs
        .iter()
        .map(|j| OperationSummary {
            id: j.id.0,
            application: j.app_id.to_string(),
            target: target_view(&j.target),
            device_count: j.device_count,
            created_at: rfc3339(j.created_at),
        })
        .collect();
    Ok(axum::Json(Page { items, next_cursor }))
}

/// Cancels what is still queued; device operations already in a session or done stay.
#[utoipa::path(delete, path = "/api/v1/operations/{operation}", tag = "operations", params(("operation" = u64, Path)),
    responses((status = 200, body = OperationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn cancel<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(id): Path<u64>,
) -> ApiResult<axum::Json<OperationView>> {
    let job = load(&api, &caller, id).await?;
    api.store.cancel_job(job.id, now()).await?;
    Ok(axum::Json(view(&api, &job).await?.0))
}

/// Filter and paging of an operation's devices.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct DevicesQuery {
    /// Only device operations in this state: queued, in_session, awaiting_report, succeeded, failed, expired, cancelled.
    state: Option<String>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size (1–1000, default 100).
    limit: Option<u32>,
}

/// The operation's devices with per-command status and results, by device id.
#[utoipa::path(get, path = "/api/v1/operations/{operation}/devices", tag = "operations", params(("operation" = u64, Path), DevicesQuery),
    responses((status = 200, body = Page<DeviceOperationView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn devices<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Path(id): Path<u64>,
    Query(q): Query<DevicesQuery>,
) -> ApiResult<axum::Json<Page<DeviceOperationView>>> {
    let job = load(&api, &caller, id).await?;
    let limit = page_limit(q.limit)?;
    let state = q
        .state
        .as_deref()
        .map(|s| OpState::parse(s).ok_or_else(|| ApiError::bad_request(format!("unknown state {s:?}; use queued, in_session, awaiting_report, succeeded, failed, expired or cancelled"))))
        .transpose()?;
    let after = q
        .cursor
        .as_deref()
        .map(decode_cursor)
        .transpose()?
        .map(|c| device_id(&c))
        .transpose()?;
    let ops = api
        .store
        .job_operations(job.id, state, after.as_ref(), limit)
        .await?;
    let next_cursor = (ops.len() == limit as usize)
        .then(|| ops.last().map(|o| encode_cursor(o.device_id.as_str())))
        .flatten();
    Ok(axum::Json(Page {
        items: ops.iter().map(device_op_view).collect(),
        next_cursor,
    }))
}
