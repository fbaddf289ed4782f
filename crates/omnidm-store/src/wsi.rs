// The Web Services Interface store (`omnidm_core::WsiStore`), shared by both backends like
// `common.rs`: included (`include!`) by `sqlite.rs` and `postgres.rs` right after it, so it
// sees the same `Db`, `ThisStore`, `FOR_UPDATE`, `SKIP_LOCKED` and additionally needs
// `EVENT_ORDER_LOCK` (the statement that makes event ids follow commit order, see
// `write_derived`). It also holds the helpers `common.rs` calls to derive events and charges
// inside the `Store` transactions.
//
// Only names `common.rs` does not import are imported here (one module, two texts).

use omnidm_core::{
    ApiKey, AppId, Application, AuditEntry, AuditFilter, ChargeFilter, ChargeKind, ChargeRecord,
    ChargeTotal, Delivery, DeliveryProgress, Event, EventFilter, EventId, EventKind, Grant,
    GrantId, Group, GroupFilter, GroupId, GroupKind, IdempotentResponse, Job, JobCounts, JobId,
    KeyId, NewAudit, NewCharge, NewEvent, NewGrant, NewJob, NewSubscription, OpCommand, Role,
    Subscription, SubscriptionId, WsiStore, status,
};

/// Rows per multi-row INSERT or `IN (…)` list of the WSI tables (at most 8 binds a row).
const WSI_CHUNK: usize = 1000;

/// How long an idempotency record is replayed.
const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

// --- derived events and charges ------------------------------------------------------------------

/// Events and charging records a transaction derives, written together as its last statements
/// ([`write_derived`]).
#[derive(Debug, Default)]
struct Derived {
    events: Vec<NewEvent>,
    charges: Vec<NewCharge>,
}

fn op_app(op: &Operation) -> Option<AppId> {
    op.submitted_by
        .as_deref()
        .and_then(|s| AppId::new(s.to_owned()).ok())
}

/// The node a command is about (the event's `path`).
fn command_path(cmd: &OpCommand) -> Option<&NodePath> {
    match cmd {
        OpCommand::Get { path }
        | OpCommand::Replace { path, .. }
        | OpCommand::Add { path, .. }
        | OpCommand::Delete { path }
        | OpCommand::Exec { path, .. } => Some(path),
        _ => None,
    }
}

/// Payload bytes a command delivers when the device accepts it.
fn payload_bytes(cmd: &OpCommand) -> u64 {
    let n = match cmd {
        OpCommand::Replace { value, .. } => value.data.len(),
        OpCommand::Add { value, .. } => value.as_ref().map_or(0, |v| v.data.len()),
        OpCommand::Exec { data, .. } => data.as_ref().map_or(0, String::len),
        _ => 0,
    };
    n as u64
}

impl Derived {
    fn op_event(
        kind: EventKind,
        op: &Operation,
        now: Timestamp,
        data: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            kind,
            at: now,
            device_id: Some(op.device_id.clone()),
            app_id: op_app(op),
            job_id: op.job_id,
            operation_id: Some(op.id),
            path: None,
            data,
        }
    }

    /// `device.seen` with the merged info.
    fn seen(&mut self, d: &Device, now: Timestamp) {
        let data = serde_json::to_value(&d.info).unwrap_or(serde_json::Value::Null);
        self.events
            .push(NewEvent::device(EventKind::DeviceSeen, now, &d.id, data));
    }

    /// `operation.state_changed` when `op` (already saved) left `from`.
    fn state_changed(&mut self, op: &Operation, from: OpState, now: Timestamp) {
        if op.state == from {
            return;
        }
        let data = serde_json::json!({ "from": from.as_str(), "to": op.state.as_str() });
        self.events.push(Derived::op_event(
            EventKind::OperationStateChanged,
            op,
            now,
            data,
        ));
    }

    /// `command.result` per outcome; with `charge`, the submitting application's
    /// `command.executed` and `bytes.delivered` charges for them.
    fn results(
        &mut self,
        op: &Operation,
        outcomes: &[CommandOutcome],
        now: Timestamp,
        charge: bool,
    ) {
        let mut executed = 0u64;
        let mut bytes = 0u64;
        for o in outcomes {
            let cmd = OpCommand::at(&op.commands, &o.index);
            let data = serde_json::to_value(o).unwrap_or(serde_json::Value::Null);
            let mut e = Derived::op_event(EventKind::CommandResult, op, now, data);
            e.path = cmd.and_then(command_path).cloned();
            self.events.push(e);
            if o.index.len() == 1
                && o.status != status::INTERRUPTED
                && o.status != status::NOT_EXECUTED
            {
                executed += 1;
            }
            if status::is_success(o.status) {
                bytes += cmd.map_or(0, payload_bytes);
            }
        }
        if !charge {
            return;
        }
        let Some(app) = op_app(op) else {
            return;
        };
        for (kind, quantity) in [
            (ChargeKind::CommandExecuted, executed),
            (ChargeKind::BytesDelivered, bytes),
        ] {
            if quantity > 0 {
                self.charges.push(NewCharge {
                    at: now,
                    app_id: app.clone(),
                    kind,
                    quantity,
                    device_id: Some(op.device_id.clone()),
                    job_id: op.job_id,
                    operation_id: Some(op.id),
                });
            }
        }
    }

    /// What one session outcome's operation progress derives (`op` as saved; it was
    /// `in_session` before).
    fn progress(&mut self, op: &Operation, outcomes: &[CommandOutcome], now: Timestamp) {
        self.results(op, outcomes, now, true);
        self.state_changed(op, OpState::InSession, now);
    }

    /// `operation.state_changed` for operations a recovery moved out of `in_session`.
    async fn recovered(
        &mut self,
        conn: &mut Conn,
        report: &RecoveryReport,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let ids: Vec<i64> = report
            .requeued
            .iter()
            .chain(&report.finished)
            .chain(&report.failed)
            .map(|id| to_i64(id.0))
            .collect();
        for chunk in ids.chunks(WSI_CHUNK) {
            let mut qb =
                QueryBuilder::<Db>::new(format!("SELECT {OP_COLS} FROM operations WHERE id IN ("));
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            qb.push(") ORDER BY id");
            let rows = qb.build().fetch_all(&mut *conn).await.map_err(db)?;
            for r in &rows {
                self.state_changed(&op_from_row(r)?, OpState::InSession, now);
            }
        }
        Ok(())
    }
}

/// Inserts `events` (multi-row, in order) and `charges`; call it as the transaction's last
/// statements, just before the commit.
///
/// Event ids are the readers' cursors, so they must increase in commit order: a reader that
/// has seen id `n` must never later find a new event below `n`. SQLite has one writer
/// connection, so transactions commit in the order they were assigned ids. PostgreSQL
/// assigns BIGSERIAL values when rows are inserted, and transactions commit in any order;
/// `EVENT_ORDER_LOCK` (`pg_advisory_xact_lock`) serialises every transaction that inserts
/// events from its first event insert to its commit. Callers insert events (and charges) as
/// their last statements, so the lock is held briefly and never waits on row locks. Charges
/// take the same lock, so their ids (the `list_charges` cursor) follow commit order too.
async fn write_log(
    conn: &mut Conn,
    events: &[NewEvent],
    charges: &[NewCharge],
) -> Result<(), StoreError> {
    if events.is_empty() && charges.is_empty() {
        return Ok(());
    }
    if !EVENT_ORDER_LOCK.is_empty() {
        sqlx::query(EVENT_ORDER_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        rows.push((e, to_json(&e.data)?));
    }
    for chunk in rows.chunks(WSI_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO events (at, kind, device_id, app_id, job_id, operation_id, path, data) ",
        );
        qb.push_values(chunk, |mut b, (e, data)| {
            b.push_bind(e.at.millis())
                .push_bind(e.kind.as_str())
                .push_bind(e.device_id.as_ref().map(|d| d.as_str().to_owned()))
                .push_bind(e.app_id.as_ref().map(|a| a.as_str().to_owned()))
                .push_bind(e.job_id.map(|j| to_i64(j.0)))
                .push_bind(e.operation_id.map(|o| to_i64(o.0)))
                .push_bind(e.path.as_ref().map(|p| p.to_string()))
                .push_bind(data.clone());
        });
        qb.build().execute(&mut *conn).await.map_err(db)?;
    }
    for chunk in charges.chunks(WSI_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO charges (at, app_id, kind, quantity, device_id, job_id, operation_id) ",
        );
        qb.push_values(chunk, |mut b, c| {
            b.push_bind(c.at.millis())
                .push_bind(c.app_id.as_str().to_owned())
                .push_bind(c.kind.as_str())
                .push_bind(to_i64(c.quantity))
                .push_bind(c.device_id.as_ref().map(|d| d.as_str().to_owned()))
                .push_bind(c.job_id.map(|j| to_i64(j.0)))
                .push_bind(c.operation_id.map(|o| to_i64(o.0)));
        });
        qb.build().execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

/// Writes what a transaction derived: call it last, just before the commit (see
/// [`write_log`] for why).
async fn write_derived(conn: &mut Conn, d: &Derived) -> Result<(), StoreError> {
    write_log(conn, &d.events, &d.charges).await
}

/// `release_tx` plus the state-change events of what it recovered.
async fn release_logged(
    conn: &mut Conn,
    session: &SessionId,
    now: Timestamp,
    report: &mut RecoveryReport,
    derived: &mut Derived,
) -> Result<(), StoreError> {
    let mut r = RecoveryReport::default();
    release_tx(conn, session, now, &mut r).await?;
    merge_recovered(conn, r, now, report, derived).await
}

/// `recover_where` plus the state-change events of what it recovered.
async fn recover_where_logged(
    conn: &mut Conn,
    filter: Option<(&str, String)>,
    now: Timestamp,
    report: &mut RecoveryReport,
    derived: &mut Derived,
) -> Result<(), StoreError> {
    let mut r = RecoveryReport::default();
    recover_where(conn, filter, now, &mut r).await?;
    merge_recovered(conn, r, now, report, derived).await
}

async fn merge_recovered(
    conn: &mut Conn,
    r: RecoveryReport,
    now: Timestamp,
    report: &mut RecoveryReport,
    derived: &mut Derived,
) -> Result<(), StoreError> {
    if !r.is_empty() {
        derived.recovered(conn, &r, now).await?;
    }
    report.requeued.extend(r.requeued);
    report.finished.extend(r.finished);
    report.failed.extend(r.failed);
    Ok(())
}

/// `device.registered` for a new device.
fn registered_event(d: &Device) -> Derived {
    let data = serde_json::json!({ "protocol": d.protocol.as_str() });
    Derived {
        events: vec![NewEvent::device(
            EventKind::DeviceRegistered,
            d.created_at,
            &d.id,
            data,
        )],
        charges: Vec::new(),
    }
}

/// `device.deleted`. `Store::delete_device` takes no time argument, so this one event is
/// stamped with the system clock.
fn deleted_event(id: &DeviceId) -> Derived {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Derived {
        events: vec![NewEvent::device(
            EventKind::DeviceDeleted,
            Timestamp(now),
            id,
            serde_json::json!({}),
        )],
        charges: Vec::new(),
    }
}

// --- row mapping -----------------------------------------------------------------------------

const APP_COLS: &str =
    "id, description, role, rate_limit, daily_quota, disabled, created_at, updated_at";
const KEY_COLS: &str = "id, app_id, hash, created_at, expires_at, revoked_at";
const GROUP_COLS: &str = "id, description, kind, filter, created_at, updated_at";
const GRANT_COLS: &str = "id, app_id, permissions, subtrees, group_id, created_at";
const JOB_COLS: &str = "id, app_id, target, commands, created_at, expires_at, notify, device_count";
const EVENT_COLS: &str = "id, at, kind, device_id, app_id, job_id, operation_id, path, data";
const CHARGE_COLS: &str = "id, at, app_id, kind, quantity, device_id, job_id, operation_id";
const SUB_COLS: &str = "id, app_id, url, secret, event_types, devices, group_id, cursor, \
     enabled, disabled_reason, failures, next_attempt_at, created_at";
const DELIVERY_COLS: &str = "subscription_id, event_id, attempt, at, status, error, duration_ms";
const AUDIT_COLS: &str = "id, at, app_id, key_id, method, path, target, status, outcome, rule";

fn u64_of(r: &DbRow, col: &str) -> Result<u64, StoreError> {
    let v = get::<i64>(r, col)?;
    u64::try_from(v).map_err(|_| corrupt(format!("column {col}: {v}")))
}

fn opt_u64_of(r: &DbRow, col: &str) -> Result<Option<u64>, StoreError> {
    get::<Option<i64>>(r, col)?
        .map(|v| u64::try_from(v).map_err(|_| corrupt(format!("column {col}: {v}"))))
        .transpose()
}

fn u32_of(r: &DbRow, col: &str) -> Result<u32, StoreError> {
    let v = get::<i64>(r, col)?;
    u32::try_from(v).map_err(|_| corrupt(format!("column {col}: {v}")))
}

fn u16_of(v: i64, col: &str) -> Result<u16, StoreError> {
    u16::try_from(v).map_err(|_| corrupt(format!("column {col}: {v}")))
}

fn app_id_of(s: String) -> Result<AppId, StoreError> {
    AppId::new(s).map_err(corrupt)
}

fn opt_device_of(s: Option<String>) -> Result<Option<DeviceId>, StoreError> {
    s.map(|s| DeviceId::new(s).map_err(corrupt)).transpose()
}

fn ts(r: &DbRow, col: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp(get(r, col)?))
}

fn opt_ts(r: &DbRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(get::<Option<i64>>(r, col)?.map(Timestamp))
}

fn app_from_row(r: &DbRow) -> Result<Application, StoreError> {
    let role = get::<String>(r, "role")?;
    Ok(Application {
        id: app_id_of(get(r, "id")?)?,
        description: get(r, "description")?,
        role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
        rate_limit: get::<Option<i64>>(r, "rate_limit")?
            .map(|v| u32::try_from(v).map_err(|_| corrupt(format!("rate limit {v}"))))
            .transpose()?,
        daily_quota: opt_u64_of(r, "daily_quota")?,
        disabled: get(r, "disabled")?,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

fn key_from_row(r: &DbRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: KeyId(get(r, "id")?),
        app_id: app_id_of(get(r, "app_id")?)?,
        hash: get(r, "hash")?,
        created_at: ts(r, "created_at")?,
        expires_at: opt_ts(r, "expires_at")?,
        revoked_at: opt_ts(r, "revoked_at")?,
    })
}

fn group_from_row(r: &DbRow) -> Result<Group, StoreError> {
    let kind = get::<String>(r, "kind")?;
    let kind = match kind.as_str() {
        "static" => GroupKind::Static,
        "filter" => {
            let f = get::<Option<String>>(r, "filter")?.unwrap_or_else(|| "{}".to_owned());
            GroupKind::Filter {
                filter: from_json::<GroupFilter>(&f, "filter")?,
            }
        }
        other => return Err(corrupt(format!("group kind {other}"))),
    };
    Ok(Group {
        id: GroupId::new(get::<String>(r, "id")?).map_err(corrupt)?,
        description: get(r, "description")?,
        kind,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

/// (`kind`, `filter`) columns of a group.
fn group_kind_cols(kind: &GroupKind) -> Result<(&'static str, Option<String>), StoreError> {
    Ok(match kind {
        GroupKind::Static => ("static", None),
        GroupKind::Filter { filter } => ("filter", Some(to_json(filter)?)),
    })
}

fn grant_from_row(r: &DbRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: GrantId(u64_of(r, "id")?),
        app_id: app_id_of(get(r, "app_id")?)?,
        permissions: from_json(&get::<String>(r, "permissions")?, "permissions")?,
        subtrees: from_json(&get::<String>(r, "subtrees")?, "subtrees")?,
        group: GroupId::new(get::<String>(r, "group_id")?).map_err(corrupt)?,
        created_at: ts(r, "created_at")?,
    })
}

fn job_from_row(r: &DbRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: JobId(u64_of(r, "id")?),
        app_id: app_id_of(get(r, "app_id")?)?,
        target: from_json(&get::<String>(r, "target")?, "target")?,
        commands: from_json(&get::<String>(r, "commands")?, "commands")?,
        created_at: ts(r, "created_at")?,
        expires_at: opt_ts(r, "expires_at")?,
        notify: get(r, "notify")?,
        device_count: u64_of(r, "device_count")?,
    })
}

fn event_from_row(r: &DbRow) -> Result<Event, StoreError> {
    let kind = get::<String>(r, "kind")?;
    Ok(Event {
        id: EventId(u64_of(r, "id")?),
        event: NewEvent {
            kind: EventKind::parse(&kind).ok_or_else(|| corrupt(format!("event kind {kind}")))?,
            at: ts(r, "at")?,
            device_id: opt_device_of(get(r, "device_id")?)?,
            app_id: get::<Option<String>>(r, "app_id")?
                .map(app_id_of)
                .transpose()?,
            job_id: opt_u64_of(r, "job_id")?.map(JobId),
            operation_id: opt_u64_of(r, "operation_id")?.map(OperationId),
            path: get::<Option<String>>(r, "path")?
                .map(|p| NodePath::parse(&p).map_err(corrupt))
                .transpose()?,
            data: from_json(&get::<String>(r, "data")?, "data")?,
        },
    })
}

fn charge_from_row(r: &DbRow) -> Result<ChargeRecord, StoreError> {
    let kind = get::<String>(r, "kind")?;
    Ok(ChargeRecord {
        id: u64_of(r, "id")?,
        charge: NewCharge {
            at: ts(r, "at")?,
            app_id: app_id_of(get(r, "app_id")?)?,
            kind: ChargeKind::parse(&kind).ok_or_else(|| corrupt(format!("charge kind {kind}")))?,
            quantity: u64_of(r, "quantity")?,
            device_id: opt_device_of(get(r, "device_id")?)?,
            job_id: opt_u64_of(r, "job_id")?.map(JobId),
            operation_id: opt_u64_of(r, "operation_id")?.map(OperationId),
        },
    })
}

fn sub_from_row(r: &DbRow) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        id: SubscriptionId(u64_of(r, "id")?),
        spec: NewSubscription {
            app_id: app_id_of(get(r, "app_id")?)?,
            url: get(r, "url")?,
            secret: get(r, "secret")?,
            event_types: from_json(&get::<String>(r, "event_types")?, "event_types")?,
            devices: from_json(&get::<String>(r, "devices")?, "devices")?,
            group: get::<Option<String>>(r, "group_id")?
                .map(|g| GroupId::new(g).map_err(corrupt))
                .transpose()?,
            cursor: EventId(u64_of(r, "cursor")?),
        },
        enabled: get(r, "enabled")?,
        disabled_reason: get(r, "disabled_reason")?,
        failures: u32_of(r, "failures")?,
        next_attempt_at: ts(r, "next_attempt_at")?,
        created_at: ts(r, "created_at")?,
    })
}

fn delivery_from_row(r: &DbRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        subscription_id: SubscriptionId(u64_of(r, "subscription_id")?),
        event_id: EventId(u64_of(r, "event_id")?),
        attempt: u32_of(r, "attempt")?,
        at: ts(r, "at")?,
        status: get::<Option<i64>>(r, "status")?
            .map(|s| u16_of(s, "status"))
            .transpose()?,
        error: get(r, "error")?,
        duration_ms: u64_of(r, "duration_ms")?,
    })
}

fn audit_from_row(r: &DbRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: u64_of(r, "id")?,
        entry: NewAudit {
            at: ts(r, "at")?,
            app_id: get::<Option<String>>(r, "app_id")?
                .map(app_id_of)
                .transpose()?,
            key_id: get(r, "key_id")?,
            method: get(r, "method")?,
            path: get(r, "path")?,
            target: get(r, "target")?,
            status: u16_of(get(r, "status")?, "status")?,
            outcome: get(r, "outcome")?,
            rule: get(r, "rule")?,
        },
    })
}

// --- shared statements -------------------------------------------------------------------------

/// [`StoreError::NotFound`] naming the first of `ids` (deduplicated) that is not a device.
async fn check_devices_exist(conn: &mut Conn, ids: &[DeviceId]) -> Result<(), StoreError> {
    for chunk in ids.chunks(WSI_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new("SELECT id FROM devices WHERE id IN (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(id.as_str().to_owned());
        }
        qb.push(")");
        let rows = qb.build().fetch_all(&mut *conn).await.map_err(db)?;
        if rows.len() == chunk.len() {
            continue;
        }
        let found = rows
            .iter()
            .map(|r| get::<String>(r, "id"))
            .collect::<Result<std::collections::BTreeSet<_>, _>>()?;
        if let Some(missing) = chunk.iter().find(|d| !found.contains(d.as_str())) {
            return Err(StoreError::NotFound(format!("device {missing}")));
        }
    }
    Ok(())
}

fn sorted_devices(devices: &[DeviceId]) -> Vec<DeviceId> {
    let mut v = devices.to_vec();
    v.sort();
    v.dedup();
    v
}

async fn select_sub(conn: &mut Conn, id: SubscriptionId) -> Result<Subscription, StoreError> {
    let sql = format!("SELECT {SUB_COLS} FROM subscriptions WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(to_i64(id.0))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    row.as_ref()
        .map(sub_from_row)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("subscription {id}")))
}

async fn job_exists(conn: &mut Conn, id: JobId) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT 1 AS one FROM jobs WHERE id = $1")
        .bind(to_i64(id.0))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    row.map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))
}

async fn submit_job_tx(
    conn: &mut Conn,
    job: &NewJob,
    devices: &[DeviceId],
    now: Timestamp,
) -> Result<Job, StoreError> {
    if job.commands.is_empty() {
        return Err(StoreError::Invalid(
            "a job needs at least one command".into(),
        ));
    }
    let devices = sorted_devices(devices);
    if devices.is_empty() {
        return Err(StoreError::Invalid(
            "a job needs at least one device".into(),
        ));
    }
    check_devices_exist(conn, &devices).await?;
    let n = devices.len() as u64;
    let row = sqlx::query(
        "INSERT INTO jobs (app_id, target, commands, created_at, expires_at, notify, \
         device_count) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(job.app_id.as_str().to_owned())
    .bind(to_json(&job.target)?)
    .bind(to_json(&job.commands)?)
    .bind(now.millis())
    .bind(job.expires_at.map(Timestamp::millis))
    .bind(job.notify)
    .bind(to_i64(n))
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let id = JobId(u64_of(&row, "id")?);
    // One statement per chunk: the job row supplies the columns every operation shares, the
    // VALUES list the device ids (one bind per device).
    let sent = to_json(&vec![false; job.commands.len()])?;
    for chunk in devices.chunks(WSI_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO operations (device_id, state, commands, outcomes, sent, session, \
             created_at, updated_at, expires_at, notify, attempts, submitted_by, job_id) \
             SELECT v.column1, 'queued', j.commands, '[]', ",
        );
        qb.push_bind(sent.clone()).push(
            ", NULL, j.created_at, j.created_at, j.expires_at, j.notify, 0, j.app_id, j.id \
             FROM jobs j, (VALUES ",
        );
        let mut sep = qb.separated(", ");
        for d in chunk {
            sep.push("(")
                .push_bind_unseparated(d.as_str().to_owned())
                .push_unseparated(")");
        }
        qb.push(") AS v WHERE j.id = ")
            .push_bind(to_i64(id.0))
            .push(" ORDER BY v.column1");
        qb.build()
            .execute(&mut *conn)
            .await
            .map_err(|e| db_keyed(e, "operation", "device"))?;
    }
    let out = Job {
        id,
        app_id: job.app_id.clone(),
        target: job.target.clone(),
        commands: job.commands.clone(),
        created_at: now,
        expires_at: job.expires_at,
        notify: job.notify,
        device_count: n,
    };
    let derived = Derived {
        events: vec![NewEvent {
            kind: EventKind::OperationSubmitted,
            at: now,
            device_id: None,
            app_id: Some(job.app_id.clone()),
            job_id: Some(id),
            operation_id: None,
            path: None,
            data: serde_json::json!({ "device_count": n }),
        }],
        charges: vec![NewCharge {
            at: now,
            app_id: job.app_id.clone(),
            kind: ChargeKind::OperationSubmitted,
            quantity: n,
            device_id: None,
            job_id: Some(id),
            operation_id: None,
        }],
    };
    write_derived(conn, &derived).await?;
    Ok(out)
}

async fn cancel_job_tx(conn: &mut Conn, id: JobId, now: Timestamp) -> Result<u64, StoreError> {
    OpState::Queued
        .check_transition(OpState::Cancelled)
        .map_err(|source| StoreError::IllegalTransition {
            id: OperationId(0),
            source,
        })?;
    job_exists(conn, id).await?;
    let sql = format!(
        "UPDATE operations SET state = 'cancelled', session = NULL, updated_at = $2 \
         WHERE job_id = $1 AND state = 'queued' RETURNING {OP_COLS}"
    );
    let rows = sqlx::query(&sql)
        .bind(to_i64(id.0))
        .bind(now.millis())
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut ops = rows
        .iter()
        .map(op_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    ops.sort_by_key(|o| o.id);
    let mut derived = Derived::default();
    for op in &ops {
        derived.state_changed(op, OpState::Queued, now);
    }
    // Operations awaiting an asynchronous report stop waiting too (decision 86).
    let awaiting = sqlx::query(&format!(
        "SELECT {OP_COLS} FROM operations WHERE job_id = $1 AND state = 'awaiting_report' \
         ORDER BY id{FOR_UPDATE}"
    ))
    .bind(to_i64(id.0))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut n = ops.len() as u64;
    for r in &awaiting {
        let mut op = op_from_row(r)?;
        if op.transition(OpState::Cancelled, now).is_ok() {
            save_op(conn, &op).await?;
            derived.state_changed(&op, OpState::AwaitingReport, now);
            n += 1;
        }
    }
    write_derived(conn, &derived).await?;
    Ok(n)
}

// --- the trait -----------------------------------------------------------------------------------

impl WsiStore for ThisStore {
    async fn create_app(&self, app: &Application) -> Result<(), StoreError> {
        let what = format!("application {}", app.id);
        let mut tx = self.writer().begin().await.map_err(db)?;
        // A deleted application's id stays taken (its records in the logs keep it).
        let tombstone = sqlx::query("SELECT 1 AS one FROM deleted_apps WHERE id = $1")
            .bind(app.id.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if tombstone.is_some() {
            return Err(StoreError::Conflict(what));
        }
        sqlx::query(&format!(
            "INSERT INTO apps ({APP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(app.id.as_str().to_owned())
        .bind(app.description.clone())
        .bind(app.role.as_str())
        .bind(app.rate_limit.map(i64::from))
        .bind(app.daily_quota.map(to_i64))
        .bind(app.disabled)
        .bind(app.created_at.millis())
        .bind(app.updated_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| db_keyed(e, &what, "application"))?;
        tx.commit().await.map_err(db)
    }

    async fn get_app(&self, id: &AppId) -> Result<Option<Application>, StoreError> {
        let row = sqlx::query(&format!("SELECT {APP_COLS} FROM apps WHERE id = $1"))
            .bind(id.as_str().to_owned())
            .fetch_optional(self.reader())
            .await
            .map_err(db)?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn list_apps(&self) -> Result<Vec<Application>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {APP_COLS} FROM apps ORDER BY id"))
            .fetch_all(self.reader())
            .await
            .map_err(db)?;
        rows.iter().map(app_from_row).collect()
    }

    async fn update_app(&self, app: &Application) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE apps SET description = $2, role = $3, rate_limit = $4, daily_quota = $5, \
             disabled = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(app.id.as_str().to_owned())
        .bind(app.description.clone())
        .bind(app.role.as_str())
        .bind(app.rate_limit.map(i64::from))
        .bind(app.daily_quota.map(to_i64))
        .bind(app.disabled)
        .bind(app.updated_at.millis())
        .execute(self.writer())
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("application {}", app.id)));
        }
        Ok(())
    }

    async fn delete_app(&self, id: &AppId, now: Timestamp) -> Result<bool, StoreError> {
        // Keys, grants, subscriptions (with their deliveries) and idempotency records
        // cascade; jobs and the logs keep the id as plain text, and the tombstone keeps any
        // later application from taking it.
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id.as_str().to_owned())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO deleted_apps (id, deleted_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str().to_owned())
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn has_apps(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM apps LIMIT 1")
            .fetch_optional(self.reader())
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }

    async fn create_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO api_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(key.id.0.clone())
        .bind(key.app_id.as_str().to_owned())
        .bind(key.hash.clone())
        .bind(key.created_at.millis())
        .bind(key.expires_at.map(Timestamp::millis))
        .bind(key.revoked_at.map(Timestamp::millis))
        .execute(self.writer())
        .await
        .map_err(|e| {
            db_keyed(
                e,
                &format!("key {}", key.id),
                &format!("application {}", key.app_id),
            )
        })?;
        Ok(())
    }

    async fn get_key(&self, id: &KeyId) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1"))
            .bind(id.0.clone())
            .fetch_optional(self.reader())
            .await
            .map_err(db)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self, app: &AppId) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE app_id = $1 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(app.as_str().to_owned())
        .fetch_all(self.reader())
        .await
        .map_err(db)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id: &KeyId, now: Timestamp) -> Result<ApiKey, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
             RETURNING {KEY_COLS}"
        ))
        .bind(id.0.clone())
        .bind(now.millis())
        .fetch_optional(self.writer())
        .await
        .map_err(db)?;
        row.as_ref()
            .map(key_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("key {id}")))
    }

    async fn create_group(&self, group: &Group) -> Result<(), StoreError> {
        let (kind, filter) = group_kind_cols(&group.kind)?;
        sqlx::query(&format!(
            "INSERT INTO groups ({GROUP_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(group.id.as_str().to_owned())
        .bind(group.description.clone())
        .bind(kind)
        .bind(filter)
        .bind(group.created_at.millis())
        .bind(group.updated_at.millis())
        .execute(self.writer())
        .await
        .map_err(|e| db_keyed(e, &format!("group {}", group.id), "group"))?;
        Ok(())
    }

    async fn get_group(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        let row = sqlx::query(&format!("SELECT {GROUP_COLS} FROM groups WHERE id = $1"))
            .bind(id.as_str().to_owned())
            .fetch_optional(self.reader())
            .await
            .map_err(db)?;
        row.as_ref().map(group_from_row).transpose()
    }

    async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {GROUP_COLS} FROM groups ORDER BY id"))
            .fetch_all(self.reader())
            .await
            .map_err(db)?;
        rows.iter().map(group_from_row).collect()
    }

    async fn update_group(&self, group: &Group) -> Result<(), StoreError> {
        let (kind, filter) = group_kind_cols(&group.kind)?;
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE groups SET description = $2, kind = $3, filter = $4, updated_at = $5 \
             WHERE id = $1",
        )
        .bind(group.id.as_str().to_owned())
        .bind(group.description.clone())
        .bind(kind)
        .bind(filter)
        .bind(group.updated_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("group {}", group.id)));
        }
        // Only static groups have members.
        if kind != "static" {
            sqlx::query("DELETE FROM group_members WHERE group_id = $1")
                .bind(group.id.as_str().to_owned())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn delete_group(&self, id: &GroupId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(id.as_str().to_owned())
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_group_members(
        &self,
        id: &GroupId,
        devices: &[DeviceId],
    ) -> Result<(), StoreError> {
        let devices = sorted_devices(devices);
        let mut tx = self.writer().begin().await.map_err(db)?;
        let row = sqlx::query(&format!(
            "SELECT kind FROM groups WHERE id = $1{FOR_UPDATE}"
        ))
        .bind(id.as_str().to_owned())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(format!("group {id}")))?;
        if get::<String>(&row, "kind")? != "static" {
            return Err(StoreError::Invalid(format!(
                "group {id} is a filter group: it has no members to add"
            )));
        }
        check_devices_exist(&mut tx, &devices).await?;
        for chunk in devices.chunks(WSI_CHUNK) {
            let mut qb =
                QueryBuilder::<Db>::new("INSERT INTO group_members (group_id, device_id) ");
            qb.push_values(chunk, |mut b, d| {
                b.push_bind(id.as_str().to_owned())
                    .push_bind(d.as_str().to_owned());
            });
            qb.push(" ON CONFLICT (group_id, device_id) DO NOTHING");
            qb.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| db_keyed(e, "group member", "device"))?;
        }
        tx.commit().await.map_err(db)
    }

    async fn remove_group_members(
        &self,
        id: &GroupId,
        devices: &[DeviceId],
    ) -> Result<u64, StoreError> {
        let devices = sorted_devices(devices);
        let mut tx = self.writer().begin().await.map_err(db)?;
        let mut n = 0;
        for chunk in devices.chunks(WSI_CHUNK) {
            let mut qb = QueryBuilder::<Db>::new("DELETE FROM group_members WHERE group_id = ");
            qb.push_bind(id.as_str().to_owned())
                .push(" AND device_id IN (");
            let mut sep = qb.separated(", ");
            for d in chunk {
                sep.push_bind(d.as_str().to_owned());
            }
            qb.push(")");
            n += qb
                .build()
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
        }
        tx.commit().await.map_err(db)?;
        Ok(n)
    }

    async fn list_group_members(
        &self,
        id: &GroupId,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<DeviceId>, StoreError> {
        let mut qb =
            QueryBuilder::<Db>::new("SELECT device_id FROM group_members WHERE group_id = ");
        qb.push_bind(id.as_str().to_owned());
        if let Some(a) = after {
            qb.push(" AND device_id > ")
                .push_bind(a.as_str().to_owned());
        }
        qb.push(" ORDER BY device_id LIMIT ")
            .push_bind(page_limit(limit));
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter()
            .map(|r| DeviceId::new(get::<String>(r, "device_id")?).map_err(corrupt))
            .collect()
    }

    async fn is_group_member(&self, id: &GroupId, device: &DeviceId) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM group_members WHERE group_id = $1 AND device_id = $2",
        )
        .bind(id.as_str().to_owned())
        .bind(device.as_str().to_owned())
        .fetch_optional(self.reader())
        .await
        .map_err(db)?;
        Ok(row.is_some())
    }

    async fn static_groups_of(&self, device: &DeviceId) -> Result<Vec<GroupId>, StoreError> {
        let rows = sqlx::query(
            "SELECT group_id FROM group_members WHERE device_id = $1 ORDER BY group_id",
        )
        .bind(device.as_str().to_owned())
        .fetch_all(self.reader())
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| GroupId::new(get::<String>(r, "group_id")?).map_err(corrupt))
            .collect()
    }

    async fn create_grant(&self, grant: &NewGrant, now: Timestamp) -> Result<Grant, StoreError> {
        if grant.permissions.is_empty() || grant.subtrees.is_empty() {
            return Err(StoreError::Invalid(
                "a grant needs at least one permission and one subtree".into(),
            ));
        }
        let row = sqlx::query(
            "INSERT INTO grants (app_id, permissions, subtrees, group_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(grant.app_id.as_str().to_owned())
        .bind(to_json(&grant.permissions)?)
        .bind(to_json(&grant.subtrees)?)
        .bind(grant.group.as_str().to_owned())
        .bind(now.millis())
        .fetch_one(self.writer())
        .await
        .map_err(|e| {
            db_keyed(
                e,
                "grant",
                &format!("application {} or group {}", grant.app_id, grant.group),
            )
        })?;
        Ok(Grant {
            id: GrantId(u64_of(&row, "id")?),
            app_id: grant.app_id.clone(),
            permissions: grant.permissions.clone(),
            subtrees: grant.subtrees.clone(),
            group: grant.group.clone(),
            created_at: now,
        })
    }

    async fn list_grants(&self, app: Option<&AppId>) -> Result<Vec<Grant>, StoreError> {
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {GRANT_COLS} FROM grants"));
        if let Some(a) = app {
            qb.push(" WHERE app_id = ").push_bind(a.as_str().to_owned());
        }
        qb.push(" ORDER BY id");
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn get_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(&format!("SELECT {GRANT_COLS} FROM grants WHERE id = $1"))
            .bind(to_i64(id.0))
            .fetch_optional(self.reader())
            .await
            .map_err(db)?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn delete_grant(&self, id: GrantId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM grants WHERE id = $1")
            .bind(to_i64(id.0))
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn submit_job(
        &self,
        job: &NewJob,
        devices: &[DeviceId],
        now: Timestamp,
    ) -> Result<Job, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let out = submit_job_tx(&mut tx, job, devices, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"))
            .bind(to_i64(id.0))
            .fetch_optional(self.reader())
            .await
            .map_err(db)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs(
        &self,
        app: Option<&AppId>,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {JOB_COLS} FROM jobs WHERE 1 = 1"));
        if let Some(a) = app {
            qb.push(" AND app_id = ").push_bind(a.as_str().to_owned());
        }
        if let Some(b) = before {
            qb.push(" AND id < ").push_bind(to_i64(b.0));
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(page_limit(limit));
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn job_counts(&self, id: JobId) -> Result<JobCounts, StoreError> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        job_exists(&mut conn, id).await?;
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM operations WHERE job_id = $1 GROUP BY state",
        )
        .bind(to_i64(id.0))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let mut counts = JobCounts::default();
        for r in &rows {
            let state = get::<String>(r, "state")?;
            let state = OpState::parse(&state).ok_or_else(|| corrupt(format!("state {state}")))?;
            counts.add(state, u64_of(r, "n")?);
        }
        Ok(counts)
    }

    async fn job_operations(
        &self,
        id: JobId,
        state: Option<OpState>,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<Operation>, StoreError> {
        let mut qb =
            QueryBuilder::<Db>::new(format!("SELECT {OP_COLS} FROM operations WHERE job_id = "));
        qb.push_bind(to_i64(id.0));
        if let Some(s) = state {
            qb.push(" AND state = ").push_bind(s.as_str());
        }
        if let Some(a) = after {
            qb.push(" AND device_id > ")
                .push_bind(a.as_str().to_owned());
        }
        qb.push(" ORDER BY device_id LIMIT ")
            .push_bind(page_limit(limit));
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(op_from_row).collect()
    }

    async fn cancel_job(&self, id: JobId, now: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let n = cancel_job_tx(&mut tx, id, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(n)
    }

    async fn append_events(
        &self,
        events: &[NewEvent],
        charges: &[NewCharge],
    ) -> Result<(), StoreError> {
        if events.is_empty() && charges.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await.map_err(db)?;
        write_log(&mut tx, events, charges).await?;
        tx.commit().await.map_err(db)
    }

    async fn list_events(
        &self,
        after: EventId,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut qb =
            QueryBuilder::<Db>::new(format!("SELECT {EVENT_COLS} FROM events WHERE id > "));
        qb.push_bind(to_i64(after.0));
        if !filter.kinds.is_empty() {
            qb.push(" AND kind IN (");
            let mut sep = qb.separated(", ");
            for k in &filter.kinds {
                sep.push_bind(k.as_str());
            }
            qb.push(")");
        }
        if let Some(d) = &filter.device_id {
            qb.push(" AND device_id = ")
                .push_bind(d.as_str().to_owned());
        }
        if let Some(j) = filter.job_id {
            qb.push(" AND job_id = ").push_bind(to_i64(j.0));
        }
        qb.push(" ORDER BY id LIMIT ").push_bind(page_limit(limit));
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event_id(&self) -> Result<EventId, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS n FROM events")
            .fetch_one(self.reader())
            .await
            .map_err(db)?;
        Ok(EventId(u64_of(&row, "n")?))
    }

    async fn list_charges(
        &self,
        filter: &ChargeFilter,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ChargeRecord>, StoreError> {
        let mut qb =
            QueryBuilder::<Db>::new(format!("SELECT {CHARGE_COLS} FROM charges WHERE id > "));
        qb.push_bind(to_i64(after));
        push_charge_filter(&mut qb, filter);
        qb.push(" ORDER BY id LIMIT ").push_bind(page_limit(limit));
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(charge_from_row).collect()
    }

    async fn charge_totals(&self, filter: &ChargeFilter) -> Result<Vec<ChargeTotal>, StoreError> {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT app_id, kind, CAST(SUM(quantity) AS BIGINT) AS quantity, COUNT(*) AS records \
             FROM charges WHERE 1 = 1",
        );
        push_charge_filter(&mut qb, filter);
        qb.push(" GROUP BY app_id, kind ORDER BY app_id, kind");
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter()
            .map(|r| {
                let kind = get::<String>(r, "kind")?;
                Ok(ChargeTotal {
                    app_id: app_id_of(get(r, "app_id")?)?,
                    kind: ChargeKind::parse(&kind)
                        .ok_or_else(|| corrupt(format!("charge kind {kind}")))?,
                    quantity: u64_of(r, "quantity")?,
                    records: u64_of(r, "records")?,
                })
            })
            .collect()
    }

    async fn create_subscription(
        &self,
        sub: &NewSubscription,
        now: Timestamp,
    ) -> Result<Subscription, StoreError> {
        let row = sqlx::query(
            "INSERT INTO subscriptions (app_id, url, secret, event_types, devices, group_id, \
             cursor, enabled, disabled_reason, failures, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0, $9, $9) RETURNING id",
        )
        .bind(sub.app_id.as_str().to_owned())
        .bind(sub.url.clone())
        .bind(sub.secret.clone())
        .bind(to_json(&sub.event_types)?)
        .bind(to_json(&sub.devices)?)
        .bind(sub.group.as_ref().map(|g| g.as_str().to_owned()))
        .bind(to_i64(sub.cursor.0))
        .bind(true)
        .bind(now.millis())
        .fetch_one(self.writer())
        .await
        .map_err(|e| db_keyed(e, "subscription", &format!("application {}", sub.app_id)))?;
        Ok(Subscription {
            id: SubscriptionId(u64_of(&row, "id")?),
            spec: sub.clone(),
            enabled: true,
            disabled_reason: None,
            failures: 0,
            next_attempt_at: now,
            created_at: now,
        })
    }

    async fn get_subscription(
        &self,
        id: SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        match select_sub(&mut conn, id).await {
            Ok(s) => Ok(Some(s)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_subscriptions(
        &self,
        app: Option<&AppId>,
    ) -> Result<Vec<Subscription>, StoreError> {
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {SUB_COLS} FROM subscriptions"));
        if let Some(a) = app {
            qb.push(" WHERE app_id = ").push_bind(a.as_str().to_owned());
        }
        qb.push(" ORDER BY id");
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(sub_from_row).collect()
    }

    async fn set_subscription_enabled(
        &self,
        id: SubscriptionId,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<Subscription, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = if enabled {
            sqlx::query(
                "UPDATE subscriptions SET enabled = $2, disabled_reason = NULL, failures = 0, \
                 next_attempt_at = 0 WHERE id = $1",
            )
            .bind(to_i64(id.0))
            .bind(true)
            .execute(&mut *tx)
            .await
        } else {
            sqlx::query("UPDATE subscriptions SET enabled = $2, disabled_reason = $3 WHERE id = $1")
                .bind(to_i64(id.0))
                .bind(false)
                .bind(reason.map(str::to_owned))
                .execute(&mut *tx)
                .await
        }
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("subscription {id}")));
        }
        let sub = select_sub(&mut tx, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(sub)
    }

    async fn delete_subscription(&self, id: SubscriptionId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM subscriptions WHERE id = $1")
            .bind(to_i64(id.0))
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_delivery(
        &self,
        id: SubscriptionId,
        attempt: Option<&Delivery>,
        progress: &DeliveryProgress,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE subscriptions SET cursor = $2, failures = $3, next_attempt_at = $4, \
             enabled = CASE WHEN $5 THEN $6 ELSE enabled END, \
             disabled_reason = CASE WHEN $5 THEN $7 ELSE disabled_reason END WHERE id = $1",
        )
        .bind(to_i64(id.0))
        .bind(to_i64(progress.cursor.0))
        .bind(i64::from(progress.failures))
        .bind(progress.next_attempt_at.millis())
        .bind(progress.disable.is_some())
        .bind(false)
        .bind(progress.disable.clone())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("subscription {id}")));
        }
        if let Some(d) = attempt {
            sqlx::query(&format!(
                "INSERT INTO deliveries ({DELIVERY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(to_i64(id.0))
            .bind(to_i64(d.event_id.0))
            .bind(i64::from(d.attempt))
            .bind(d.at.millis())
            .bind(d.status.map(i64::from))
            .bind(d.error.clone())
            .bind(to_i64(d.duration_ms))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn list_deliveries(
        &self,
        id: SubscriptionId,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLS} FROM deliveries WHERE subscription_id = $1 \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(to_i64(id.0))
        .bind(page_limit(limit))
        .fetch_all(self.reader())
        .await
        .map_err(db)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn append_audit(&self, entries: &[NewAudit]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await.map_err(db)?;
        for chunk in entries.chunks(WSI_CHUNK) {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO audit (at, app_id, key_id, method, path, target, status, outcome, \
                 rule) ",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(e.at.millis())
                    .push_bind(e.app_id.as_ref().map(|a| a.as_str().to_owned()))
                    .push_bind(e.key_id.clone())
                    .push_bind(e.method.clone())
                    .push_bind(e.path.clone())
                    .push_bind(e.target.clone())
                    .push_bind(i64::from(e.status))
                    .push_bind(e.outcome.clone())
                    .push_bind(e.rule.clone());
            });
            qb.build().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {AUDIT_COLS} FROM audit WHERE 1 = 1"));
        if let Some(b) = before {
            qb.push(" AND id < ").push_bind(to_i64(b));
        }
        if let Some(a) = &filter.app_id {
            qb.push(" AND app_id = ").push_bind(a.as_str().to_owned());
        }
        if let Some(o) = &filter.outcome {
            qb.push(" AND outcome = ").push_bind(o.clone());
        }
        if let Some(f) = filter.from {
            qb.push(" AND at >= ").push_bind(f.millis());
        }
        if let Some(t) = filter.to {
            qb.push(" AND at < ").push_bind(t.millis());
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(page_limit(limit));
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn count_admitted_requests(
        &self,
        app: &AppId,
        since: Timestamp,
    ) -> Result<u64, StoreError> {
        // The id range of the period comes from the `at` index; the app's rows in it from the
        // (app_id, id) index. Ids follow `at` up to one audit batch (well under a second).
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM audit WHERE app_id = $1 AND status <> 429 \
             AND id >= (SELECT COALESCE(MIN(id), 0) FROM audit WHERE at >= $2) \
             AND EXISTS (SELECT 1 FROM audit WHERE at >= $2)",
        )
        .bind(app.as_str().to_owned())
        .bind(since.millis())
        .fetch_one(self.reader())
        .await
        .map_err(db)?;
        let n: i64 = get(&row, "n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn get_idempotent(
        &self,
        app: &AppId,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT request_hash, status, location, body, created_at FROM idempotency \
             WHERE app_id = $1 AND key = $2 AND created_at > $3",
        )
        .bind(app.as_str().to_owned())
        .bind(key.to_owned())
        .bind(now.millis().saturating_sub(IDEMPOTENCY_TTL_MS))
        .fetch_optional(self.reader())
        .await
        .map_err(db)?;
        row.map(|r| {
            Ok(IdempotentResponse {
                request_hash: get(&r, "request_hash")?,
                status: u16_of(get(&r, "status")?, "status")?,
                location: get(&r, "location")?,
                body: get(&r, "body")?,
                created_at: ts(&r, "created_at")?,
            })
        })
        .transpose()
    }

    async fn put_idempotent(
        &self,
        app: &AppId,
        key: &str,
        response: &IdempotentResponse,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let cutoff = response
            .created_at
            .millis()
            .saturating_sub(IDEMPOTENCY_TTL_MS);
        // Expired records are dropped here (there is no other sweeper); an expired record
        // under the same key is replaced, a live one wins.
        sqlx::query("DELETE FROM idempotency WHERE created_at <= $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO idempotency (app_id, key, request_hash, status, location, body, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (app_id, key) DO NOTHING",
        )
        .bind(app.as_str().to_owned())
        .bind(key.to_owned())
        .bind(response.request_hash.clone())
        .bind(i64::from(response.status))
        .bind(response.location.clone())
        .bind(response.body.clone())
        .bind(response.created_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| db_keyed(e, "idempotency key", &format!("application {app}")))?;
        tx.commit().await.map_err(db)
    }
}

fn push_charge_filter(qb: &mut QueryBuilder<'_, Db>, filter: &ChargeFilter) {
    if let Some(a) = &filter.app_id {
        qb.push(" AND app_id = ").push_bind(a.as_str().to_owned());
    }
    if let Some(f) = filter.from {
        qb.push(" AND at >= ").push_bind(f.millis());
    }
    if let Some(t) = filter.to {
        qb.push(" AND at < ").push_bind(t.millis());
    }
}
