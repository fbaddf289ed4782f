// The store logic shared by both backends. Included (`include!`) by `sqlite.rs` and
// `postgres.rs`, each of which defines before the include:
// - `Db`: the sqlx database type;
// - `ThisStore`: the store type, with `fn writer(&self) -> &Pool<Db>` and
//   `fn reader(&self) -> &Pool<Db>`;
// - `FOR_UPDATE`: row-lock suffix for read-modify-write selects ("" on SQLite, whose single
//   writer connection already serialises writers);
// - `SKIP_LOCKED`: lock suffix for the claim subquery.
// One text, two compilations: the SQL is portable (`$n` placeholders work in both), and the
// backends differ only in those constants and in how they connect.

use std::collections::BTreeMap;

use omnidm_core::{
    ClientAuth, CommandOutcome, Device, DeviceFilter, DeviceId, DeviceInfo, DevicePage, DmAccount,
    NewOperation, NodePath, Nonces, OpFilter, OpProgress, OpState, Operation, OperationId, Protocol,
    Recovery, RecoveryReport, SessionId, SessionOutcome, Store, StoreError, Timestamp, TreeEntry,
    ValueType, recover_interrupted,
};
use sqlx::{Database, QueryBuilder, Row};

use crate::shared::{
    DEVICE_COLS, OP_COLS, TREE_CHUNK, corrupt, db, db_keyed, from_json, page_limit, prefix_upper,
    to_i64, to_json,
};

type Conn = <Db as Database>::Connection;
type DbRow = <Db as Database>::Row;
type Q<'q> = sqlx::query::Query<'q, Db, <Db as Database>::Arguments<'q>>;

// --- row mapping -----------------------------------------------------------------------------

fn get<'r, T>(r: &'r DbRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    r.try_get(col).map_err(db)
}

fn device_from_row(r: &DbRow) -> Result<Device, StoreError> {
    let id = DeviceId::new(get::<String>(r, "id")?).map_err(corrupt)?;
    let protocol = get::<String>(r, "protocol")?;
    let protocol = Protocol::parse(&protocol).ok_or_else(|| corrupt(format!("protocol {protocol}")))?;
    let dm = match get::<Option<String>>(r, "dm_client_auth")? {
        None => None,
        Some(a) => Some(DmAccount {
            client_auth: ClientAuth::parse(&a).ok_or_else(|| corrupt(format!("client auth {a}")))?,
            client_name: get::<Option<String>>(r, "dm_client_name")?.unwrap_or_default(),
            client_key: get::<Option<String>>(r, "dm_client_key")?.unwrap_or_default(),
            server_id: get::<Option<String>>(r, "dm_server_id")?.unwrap_or_default(),
            server_key: get::<Option<String>>(r, "dm_server_key")?.unwrap_or_default(),
            client_nonce: get::<Option<Vec<u8>>>(r, "dm_client_nonce")?.unwrap_or_default(),
            server_nonce: get::<Option<Vec<u8>>>(r, "dm_server_nonce")?.unwrap_or_default(),
        }),
    };
    Ok(Device {
        id,
        protocol,
        dm,
        info: from_json(&get::<String>(r, "info")?, "info")?,
        tags: from_json(&get::<String>(r, "tags")?, "tags")?,
        quirk_profile: get(r, "quirk_profile")?,
        first_seen: get::<Option<i64>>(r, "first_seen")?.map(Timestamp),
        last_seen: get::<Option<i64>>(r, "last_seen")?.map(Timestamp),
        session_count: u64::try_from(get::<i64>(r, "session_count")?).unwrap_or(0),
        created_at: Timestamp(get(r, "created_at")?),
    })
}

fn op_from_row(r: &DbRow) -> Result<Operation, StoreError> {
    let id = get::<i64>(r, "id")?;
    let state = get::<String>(r, "state")?;
    Ok(Operation {
        id: OperationId(u64::try_from(id).map_err(|_| corrupt(format!("operation id {id}")))?),
        device_id: DeviceId::new(get::<String>(r, "device_id")?).map_err(corrupt)?,
        state: OpState::parse(&state).ok_or_else(|| corrupt(format!("state {state}")))?,
        commands: from_json(&get::<String>(r, "commands")?, "commands")?,
        outcomes: from_json(&get::<String>(r, "outcomes")?, "outcomes")?,
        sent: from_json(&get::<String>(r, "sent")?, "sent")?,
        session: get::<Option<String>>(r, "session")?.map(SessionId),
        created_at: Timestamp(get(r, "created_at")?),
        updated_at: Timestamp(get(r, "updated_at")?),
        expires_at: get::<Option<i64>>(r, "expires_at")?.map(Timestamp),
        notify: get(r, "notify")?,
        attempts: u32::try_from(get::<i64>(r, "attempts")?).unwrap_or(u32::MAX),
        submitted_by: get(r, "submitted_by")?,
        job_id: get::<Option<i64>>(r, "job_id")?
            .map(|j| u64::try_from(j).map(omnidm_core::JobId))
            .transpose()
            .map_err(|_| corrupt("job id"))?,
        report_deadline: get::<Option<i64>>(r, "report_deadline")?.map(Timestamp),
    })
}

fn tree_from_row(r: &DbRow) -> Result<TreeEntry, StoreError> {
    let path = get::<String>(r, "path")?;
    let format = get::<String>(r, "format")?;
    Ok(TreeEntry {
        path: NodePath::parse(&path).map_err(corrupt)?,
        format: ValueType::parse(&format).ok_or_else(|| corrupt(format!("format {format}")))?,
        mime_type: get(r, "mime_type")?,
        value: get(r, "value")?,
        updated_at: Timestamp(get(r, "updated_at")?),
    })
}

/// Binds every device column after `id` except `created_at` (`$2`..`$18`).
fn bind_device_fields<'q>(q: Q<'q>, d: &Device) -> Result<Q<'q>, StoreError> {
    let dm = d.dm.as_ref();
    Ok(q.bind(d.protocol.as_str())
        .bind(d.info.manufacturer.clone())
        .bind(d.info.model.clone())
        .bind(d.info.firmware_version.clone())
        .bind(to_json(&d.info)?)
        .bind(to_json(&d.tags)?)
        .bind(dm.map(|a| a.client_auth.as_str()))
        .bind(dm.map(|a| a.client_name.clone()))
        .bind(dm.map(|a| a.client_key.clone()))
        .bind(dm.map(|a| a.server_id.clone()))
        .bind(dm.map(|a| a.server_key.clone()))
        .bind(dm.map(|a| a.client_nonce.clone()))
        .bind(dm.map(|a| a.server_nonce.clone()))
        .bind(d.quirk_profile.clone())
        .bind(d.first_seen.map(Timestamp::millis))
        .bind(d.last_seen.map(Timestamp::millis))
        .bind(to_i64(d.session_count)))
}

const DEVICE_SET: &str = "protocol = $2, manufacturer = $3, model = $4, firmware_version = $5, \
     info = $6, tags = $7, dm_client_auth = $8, dm_client_name = $9, dm_client_key = $10, \
     dm_server_id = $11, dm_server_key = $12, dm_client_nonce = $13, dm_server_nonce = $14, \
     quirk_profile = $15, first_seen = $16, last_seen = $17, session_count = $18";

fn sorted_tags(tags: &[String]) -> Vec<String> {
    let mut t = tags.to_vec();
    t.sort();
    t.dedup();
    t
}

// --- devices -----------------------------------------------------------------------------------

async fn write_tags(conn: &mut Conn, id: &DeviceId, tags: &[String]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM device_tags WHERE device_id = $1")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    for t in tags {
        sqlx::query("INSERT INTO device_tags (device_id, tag) VALUES ($1, $2)")
            .bind(id.as_str())
            .bind(t.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

async fn insert_device(conn: &mut Conn, d: &Device) -> Result<(), StoreError> {
    let mut d = d.clone();
    d.tags = sorted_tags(&d.tags);
    const SQL: &str = 
        "INSERT INTO devices (id, protocol, manufacturer, model, firmware_version, info, tags, \
         dm_client_auth, dm_client_name, dm_client_key, dm_server_id, dm_server_key, \
         dm_client_nonce, dm_server_nonce, quirk_profile, first_seen, last_seen, session_count, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19)";
    let q = sqlx::query(SQL).bind(d.id.as_str().to_owned());
    bind_device_fields(q, &d)?
        .bind(d.created_at.millis())
        .execute(&mut *conn)
        .await
        .map_err(|e| db_keyed(e, &format!("device {}", d.id), "device"))?;
    write_tags(conn, &d.id, &d.tags).await
}

async fn update_device_row(conn: &mut Conn, d: &Device) -> Result<(), StoreError> {
    let mut d = d.clone();
    d.tags = sorted_tags(&d.tags);
    let sql = format!("UPDATE devices SET {DEVICE_SET} WHERE id = $1");
    let q = sqlx::query(&sql).bind(d.id.as_str().to_owned());
    let done = bind_device_fields(q, &d)?
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("device {}", d.id)));
    }
    write_tags(conn, &d.id, &d.tags).await
}

async fn select_device(
    conn: &mut Conn,
    id: &DeviceId,
    lock: bool,
) -> Result<Option<Device>, StoreError> {
    let sql = format!(
        "SELECT {DEVICE_COLS} FROM devices WHERE id = $1{}",
        if lock { FOR_UPDATE } else { "" }
    );
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    row.as_ref().map(device_from_row).transpose()
}

/// Records a contact, and with `nonces` the next session's nonces in the same UPDATE (as
/// `set_nonces_tx` would, NotFound for a device without DM account).
async fn record_contact_tx(
    conn: &mut Conn,
    id: &DeviceId,
    info: &DeviceInfo,
    now: Timestamp,
    nonces: Option<&Nonces>,
) -> Result<Device, StoreError> {
    let mut d = select_device(conn, id, true)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("device {id}")))?;
    if nonces.is_some() && d.dm.is_none() {
        return Err(StoreError::NotFound(format!("DM account of device {id}")));
    }
    d.record_contact(info, now);
    sqlx::query(
        "UPDATE devices SET manufacturer = $2, model = $3, firmware_version = $4, info = $5, \
         first_seen = $6, last_seen = $7, session_count = $8, \
         dm_client_nonce = COALESCE($9, dm_client_nonce), \
         dm_server_nonce = COALESCE($10, dm_server_nonce) WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(d.info.manufacturer.clone())
    .bind(d.info.model.clone())
    .bind(d.info.firmware_version.clone())
    .bind(to_json(&d.info)?)
    .bind(d.first_seen.map(Timestamp::millis))
    .bind(d.last_seen.map(Timestamp::millis))
    .bind(to_i64(d.session_count))
    .bind(nonces.map(|n| n.client_nonce.clone()))
    .bind(nonces.map(|n| n.server_nonce.clone()))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if let (Some(n), Some(dm)) = (nonces, d.dm.as_mut()) {
        dm.client_nonce = n.client_nonce.clone();
        dm.server_nonce = n.server_nonce.clone();
    }
    Ok(d)
}

async fn set_nonces_tx(conn: &mut Conn, id: &DeviceId, n: &Nonces) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE devices SET dm_client_nonce = $2, dm_server_nonce = $3 \
         WHERE id = $1 AND dm_client_auth IS NOT NULL",
    )
    .bind(id.as_str())
    .bind(n.client_nonce.clone())
    .bind(n.server_nonce.clone())
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("DM account of device {id}")));
    }
    Ok(())
}

// --- tree cache --------------------------------------------------------------------------------

async fn upsert_tree_tx(
    conn: &mut Conn,
    id: &DeviceId,
    entries: &[TreeEntry],
) -> Result<(), StoreError> {
    let rows: Vec<_> = tree_rows(entries)
        .into_iter()
        .map(|(path, row)| ((id.as_str(), path), row))
        .collect();
    upsert_tree_rows(conn, &rows, &format!("device {id}")).await
}

/// One row per path (last wins): PostgreSQL refuses to update a row twice in one INSERT.
fn tree_rows(entries: &[TreeEntry]) -> BTreeMap<String, (i64, &TreeEntry)> {
    let mut rows: BTreeMap<String, (i64, &TreeEntry)> = BTreeMap::new();
    for e in entries {
        let p = e.path.without_query();
        rows.insert(p.to_string(), (to_i64(p.depth() as u64), e));
    }
    rows
}

/// A tree row: (device, path) and (depth, entry).
type TreeRow<'a> = ((&'a str, String), (i64, &'a TreeEntry));

/// Tree rows keyed by (device, path), each once, in one INSERT per chunk.
async fn upsert_tree_rows(
    conn: &mut Conn,
    rows: &[TreeRow<'_>],
    parent: &str,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(TREE_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO tree_nodes (device_id, path, depth, format, mime_type, value, updated_at) ",
        );
        qb.push_values(chunk, |mut b, ((id, path), (depth, e))| {
            b.push_bind((*id).to_owned())
                .push_bind(path.clone())
                .push_bind(*depth)
                .push_bind(e.format.as_str())
                .push_bind(e.mime_type.clone())
                .push_bind(e.value.clone())
                .push_bind(e.updated_at.millis());
        });
        // An older observation never overwrites a newer one.
        qb.push(
            " ON CONFLICT (device_id, path) DO UPDATE SET depth = excluded.depth, \
             format = excluded.format, mime_type = excluded.mime_type, value = excluded.value, \
             updated_at = excluded.updated_at WHERE excluded.updated_at >= tree_nodes.updated_at",
        );
        let q = qb.build();
        // The batch's statement text varies with its size: not cached.
        let q = if rows.len() > 1 { q.persistent(false) } else { q };
        q.execute(&mut *conn)
            .await
            .map_err(|e| db_keyed(e, "tree node", parent))?;
    }
    Ok(())
}

async fn delete_tree_tx(conn: &mut Conn, id: &DeviceId, root: &NodePath) -> Result<u64, StoreError> {
    let root = root.without_query();
    let prefix = root.descendant_prefix();
    let done = sqlx::query(
        "DELETE FROM tree_nodes WHERE device_id = $1 \
         AND (path = $2 OR (path >= $3 AND ($4 IS NULL OR path < $4)))",
    )
    .bind(id.as_str().to_owned())
    .bind(root.to_string())
    .bind(prefix.clone())
    .bind(prefix_upper(&prefix))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(done.rows_affected())
}

// --- operations --------------------------------------------------------------------------------

async fn select_op(
    conn: &mut Conn,
    id: OperationId,
    lock: bool,
) -> Result<Option<Operation>, StoreError> {
    let sql = format!(
        "SELECT {OP_COLS} FROM operations WHERE id = $1{}",
        if lock { FOR_UPDATE } else { "" }
    );
    let row = sqlx::query(&sql)
        .bind(to_i64(id.0))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    row.as_ref().map(op_from_row).transpose()
}

async fn lock_op(conn: &mut Conn, id: OperationId) -> Result<Operation, StoreError> {
    select_op(conn, id, true)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("operation {id}")))
}

/// Writes back the mutable part of an operation.
async fn save_op(conn: &mut Conn, op: &Operation) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE operations SET state = $2, outcomes = $3, sent = $4, session = $5, \
         updated_at = $6, attempts = $7, report_deadline = $8 WHERE id = $1",
    )
    .bind(to_i64(op.id.0))
    .bind(op.state.as_str())
    .bind(to_json(&op.outcomes)?)
    .bind(to_json(&op.sent)?)
    .bind(op.session.as_ref().map(|s| s.0.clone()))
    .bind(op.updated_at.millis())
    .bind(i64::from(op.attempts))
    .bind(op.report_deadline.map(Timestamp::millis))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

fn held_by(op: &Operation, session: &SessionId) -> Result<(), StoreError> {
    if op.state != OpState::InSession {
        // Report it as the transition the caller wanted (finishing).
        return Err(StoreError::IllegalTransition {
            id: op.id,
            source: omnidm_core::TransitionError {
                from: op.state,
                to: OpState::Succeeded,
            },
        });
    }
    if op.session.as_ref() != Some(session) {
        return Err(StoreError::WrongSession(op.id));
    }
    Ok(())
}

/// Applies one asynchronous report (Generic Alert 1226) to `op` in memory
/// ([`Operation::apply_report`]) and derives its events: the `command.result` of the settled
/// (or late) outcome, and `operation.state_changed` when it finished the operation. A late
/// report's event carries `"late": true` (decision 88).
fn apply_report(op: &mut Operation, report: CommandOutcome, now: Timestamp, derived: &mut Derived) {
    let from = op.state;
    let effect = op.apply_report(report.clone(), now);
    // The outcome as stored now; a late report for a command without any outcome (its
    // operation never ran it) is only in the event.
    let shown = op
        .outcomes
        .iter()
        .find(|o| o.index == report.index)
        .cloned()
        .unwrap_or(report);
    derived.results(op, std::slice::from_ref(&shown), now, false);
    if effect == omnidm_core::ReportEffect::Late
        && let Some(e) = derived.events.last_mut()
        && let Some(data) = e.data.as_object_mut()
    {
        data.insert("late".into(), serde_json::Value::Bool(true));
    }
    derived.state_changed(op, from, now);
}

async fn submit_tx(
    conn: &mut Conn,
    ops: Vec<NewOperation>,
    now: Timestamp,
) -> Result<Vec<Operation>, StoreError> {
    let mut out = Vec::with_capacity(ops.len());
    for new in ops {
        if new.commands.is_empty() {
            return Err(StoreError::Invalid("an operation needs at least one command".into()));
        }
        let op = new.into_operation(OperationId(0), now);
        let sql = "INSERT INTO operations (device_id, state, commands, outcomes, sent, session, \
                   created_at, updated_at, expires_at, notify, attempts, submitted_by, job_id) \
                   VALUES ($1, $2, $3, $4, $5, NULL, $6, $6, $7, $8, 0, $9, $10) RETURNING id";
        let row = sqlx::query(sql)
            .bind(op.device_id.as_str().to_owned())
            .bind(op.state.as_str())
            .bind(to_json(&op.commands)?)
            .bind(to_json(&op.outcomes)?)
            .bind(to_json(&op.sent)?)
            .bind(now.millis())
            .bind(op.expires_at.map(Timestamp::millis))
            .bind(op.notify)
            .bind(op.submitted_by.clone())
            .bind(op.job_id.map(|j| to_i64(j.0)))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_keyed(e, "operation", &format!("device {}", op.device_id)))?;
        let id = get::<i64>(&row, "id")?;
        let id = OperationId(u64::try_from(id).map_err(|_| corrupt(format!("operation id {id}")))?);
        out.push(Operation { id, ..op });
    }
    Ok(out)
}

async fn claim_tx(
    conn: &mut Conn,
    device: &DeviceId,
    session: &SessionId,
    now: Timestamp,
    set_sent: Option<&str>,
) -> Result<Vec<Operation>, StoreError> {
    // The lifecycle function is the authority; the SQL below encodes this one transition.
    OpState::Queued
        .check_transition(OpState::InSession)
        .map_err(|source| StoreError::IllegalTransition {
            id: OperationId(0),
            source,
        })?;
    let sql = format!(
        "UPDATE operations SET state = 'in_session', session = $1, attempts = attempts + 1, \
         updated_at = $2{} WHERE state = 'queued' AND id IN (SELECT id FROM operations \
         WHERE device_id = $3 AND state = 'queued' AND (expires_at IS NULL OR expires_at > $2) \
         ORDER BY id{SKIP_LOCKED}) RETURNING {OP_COLS}",
        set_sent.map_or(String::new(), |e| format!(", sent = {e}"))
    );
    let rows = sqlx::query(&sql)
        .bind(session.0.clone())
        .bind(now.millis())
        .bind(device.as_str().to_owned())
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut ops = rows.iter().map(op_from_row).collect::<Result<Vec<_>, _>>()?;
    ops.sort_by_key(|o| o.id);
    // queued → in_session is a state change applications are told about, like the others.
    let mut derived = Derived::default();
    for op in &ops {
        derived.state_changed(op, OpState::Queued, now);
    }
    write_derived(conn, &derived).await?;
    Ok(ops)
}

async fn apply_progress(
    conn: &mut Conn,
    session: &SessionId,
    p: &OpProgress,
    now: Timestamp,
) -> Result<Operation, StoreError> {
    let mut op = lock_op(conn, p.id).await?;
    progress(&mut op, session, p, now)?;
    save_op(conn, &op).await?;
    Ok(op)
}

/// What `apply_progress` does to the operation, in memory.
fn progress(
    op: &mut Operation,
    session: &SessionId,
    p: &OpProgress,
    now: Timestamp,
) -> Result<(), StoreError> {
    let id = op.id;
    held_by(op, session)?;
    if let Some(&bad) = p
        .sent
        .iter()
        .chain(&p.unsent)
        .find(|&&i| i >= op.commands.len())
    {
        return Err(StoreError::Invalid(format!("operation {id} has no command {bad}")));
    }
    op.mark_sent(&p.sent);
    op.mark_unsent(&p.unsent);
    let (outcomes, finish) = (p.outcomes.clone(), p.finished);
    if finish {
        op.finish(outcomes, now)
            .map_err(|source| StoreError::IllegalTransition { id, source })?;
    } else {
        op.merge_outcomes(outcomes);
        op.updated_at = now;
    }
    Ok(())
}

/// Applies the recovery rule to in-session operations: all of them (`filter == None`), or
/// those matching `filter`, a condition on `operations` with `$1` bound to its argument.
async fn recover_where(
    conn: &mut Conn,
    filter: Option<(&str, String)>,
    now: Timestamp,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    let cond = filter.as_ref().map_or("TRUE", |(c, _)| c);
    let sql = format!(
        "SELECT {OP_COLS} FROM operations WHERE state = 'in_session' AND {cond} \
         ORDER BY id{FOR_UPDATE}"
    );
    let mut q = sqlx::query(&sql);
    if let Some((_, arg)) = filter {
        q = q.bind(arg);
    }
    let rows = q.fetch_all(&mut *conn).await.map_err(db)?;
    for r in &rows {
        let mut op = op_from_row(r)?;
        match recover_interrupted(&mut op, now) {
            Recovery::NotInSession => continue,
            Recovery::Requeued { .. } => report.requeued.push(op.id),
            Recovery::Finished => report.finished.push(op.id),
            Recovery::Failed { .. } => report.failed.push(op.id),
        }
        save_op(conn, &op).await?;
    }
    Ok(())
}

async fn release_tx(
    conn: &mut Conn,
    session: &SessionId,
    now: Timestamp,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    recover_where(conn, Some(("session = $1", session.0.clone())), now, report).await
}

/// Applies a batch of session outcomes, in order, with a few multi-row statements for the
/// whole batch (each statement is a round trip, a thread hand-off on SQLite): devices and
/// operations are read once, changed in memory outcome after outcome exactly as the
/// one-outcome helpers would (`record_contact_tx`, `set_nonces_tx`, `apply_progress`), and
/// written back once. Tree changes are one upsert when the batch deletes nothing, else per
/// outcome (deletes before upserts). What each outcome derives (`device.seen`, state changes,
/// command results and charges) goes to its own entry of `derived`, in the order the
/// one-outcome helpers would derive it.
async fn apply_outcomes_tx(
    conn: &mut Conn,
    outcomes: &[SessionOutcome],
    derived: &mut [Derived],
) -> Result<(), StoreError> {
    use std::collections::{HashMap, HashSet};
    // Devices with a contact to record: read, changed in memory, written once.
    let ids: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.contact.is_some())
        .map(|o| o.device_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut devices: HashMap<String, Device> = HashMap::new();
    for chunk in ids.chunks(TREE_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {DEVICE_COLS} FROM devices WHERE id IN ("));
        let mut list = qb.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        qb.push(format!("){FOR_UPDATE}"));
        for r in &qb.build().persistent(false).fetch_all(&mut *conn).await.map_err(db)? {
            let d = device_from_row(r)?;
            devices.insert(d.id.as_str().to_owned(), d);
        }
    }
    // Operations with progress: the same.
    let op_ids: Vec<i64> = outcomes
        .iter()
        .flat_map(|o| {
            o.operations
                .iter()
                .map(|p| p.id)
                .chain(o.reports.iter().map(|(id, _)| *id))
                .map(|id| to_i64(id.0))
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut ops: HashMap<OperationId, Operation> = HashMap::new();
    for chunk in op_ids.chunks(TREE_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {OP_COLS} FROM operations WHERE id IN ("));
        let mut list = qb.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        qb.push(format!("){FOR_UPDATE}"));
        for r in &qb.build().persistent(false).fetch_all(&mut *conn).await.map_err(db)? {
            let op = op_from_row(r)?;
            ops.insert(op.id, op);
        }
    }
    let mut devices_changed: Vec<String> = Vec::new();
    let mut ops_changed: Vec<OperationId> = Vec::new();
    // Without deletes in the batch, all tree changes are one upsert.
    let merge_trees = outcomes.iter().all(|o| o.tree_deleted.is_empty());
    let mut trees: BTreeMap<(&str, String), (i64, &TreeEntry)> = BTreeMap::new();
    for (o, derived) in outcomes.iter().zip(derived.iter_mut()) {
        let id = &o.device_id;
        match (&o.contact, &o.nonces, devices.get_mut(id.as_str())) {
            (Some(_), _, None) => return Err(StoreError::NotFound(format!("device {id}"))),
            (None, Some(n), None) => set_nonces_tx(conn, id, n).await?,
            (contact, nonces, Some(d)) => {
                if let Some(n) = nonces {
                    let dm = d.dm.as_mut().ok_or_else(|| {
                        StoreError::NotFound(format!("DM account of device {id}"))
                    })?;
                    dm.client_nonce = n.client_nonce.clone();
                    dm.server_nonce = n.server_nonce.clone();
                }
                if let Some(info) = contact {
                    d.record_contact(info, o.now);
                    derived.seen(d, o.now);
                }
                if contact.is_some() || nonces.is_some() {
                    devices_changed.push(id.as_str().to_owned());
                }
            }
            (None, None, None) => {}
        }
        if !merge_trees {
            for p in &o.tree_deleted {
                delete_tree_tx(conn, id, p).await?;
            }
            if !o.tree.is_empty() {
                upsert_tree_tx(conn, id, &o.tree).await?;
            }
        } else {
            // As one upsert after the other would: within an outcome the last entry for a
            // path wins, across outcomes the newer (or, equally new, the later) one.
            for (path, row) in tree_rows(&o.tree) {
                match trees.entry((id.as_str(), path)) {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(row);
                    }
                    std::collections::btree_map::Entry::Occupied(mut old) => {
                        if row.1.updated_at >= old.get().1.updated_at {
                            old.insert(row);
                        }
                    }
                }
            }
        }
        for p in &o.operations {
            let op = ops
                .get_mut(&p.id)
                .ok_or_else(|| StoreError::NotFound(format!("operation {}", p.id)))?;
            progress(op, &o.session, p, o.now)?;
            if op.device_id != *id {
                return Err(StoreError::Invalid(format!(
                    "operation {} belongs to {}, not {id}",
                    op.id, op.device_id
                )));
            }
            derived.progress(op, &p.outcomes, o.now);
            ops_changed.push(op.id);
        }
        // Completions of Execs (this session's or earlier ones'): after the progress above, so
        // a report answering an Exec of this very session settles its 202 (the session put
        // the operation in `awaiting_report` just above; issue 9 item 5, same-session case).
        for (report_id, report) in &o.reports {
            let Some(op) = ops.get_mut(report_id).filter(|op| op.device_id == *id) else {
                continue; // not this device's operation (or gone): nothing to amend
            };
            apply_report(op, report.clone(), o.now, derived);
            ops_changed.push(op.id);
        }
    }
    if !trees.is_empty() {
        let rows: Vec<_> = trees.into_iter().collect();
        upsert_tree_rows(conn, &rows, "device").await?;
    }
    // Write back: one multi-row UPDATE per chunk (`VALUES` columns are column1, column2, …
    // in both SQLite and PostgreSQL).
    devices_changed.sort();
    devices_changed.dedup();
    let devices_changed: Vec<&Device> =
        devices_changed.iter().filter_map(|id| devices.get(id)).collect();
    for chunk in devices_changed.chunks(TREE_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new("UPDATE devices SET manufacturer = v.column2, \
             model = v.column3, firmware_version = v.column4, info = v.column5, \
             first_seen = v.column6, last_seen = v.column7, session_count = v.column8, \
             dm_client_nonce = COALESCE(v.column9, dm_client_nonce), \
             dm_server_nonce = COALESCE(v.column10, dm_server_nonce) FROM (");
        let mut err = None;
        qb.push_values(chunk, |mut b, d| {
            let dm = d.dm.as_ref();
            let info = to_json(&d.info).map_err(|e| err = Some(e)).unwrap_or_default();
            b.push_bind(d.id.as_str().to_owned())
                .push_bind(d.info.manufacturer.clone())
                .push_bind(d.info.model.clone())
                .push_bind(d.info.firmware_version.clone())
                .push_bind(info)
                .push_bind(d.first_seen.map(Timestamp::millis))
                .push_bind(d.last_seen.map(Timestamp::millis))
                .push_bind(to_i64(d.session_count))
                .push_bind(dm.map(|a| a.client_nonce.clone()))
                .push_bind(dm.map(|a| a.server_nonce.clone()));
        });
        if let Some(e) = err {
            return Err(e);
        }
        qb.push(") AS v WHERE devices.id = v.column1");
        qb.build().persistent(false).execute(&mut *conn).await.map_err(db)?;
    }
    ops_changed.sort();
    ops_changed.dedup();
    let ops_changed: Vec<&Operation> = ops_changed.iter().filter_map(|id| ops.get(id)).collect();
    for chunk in ops_changed.chunks(TREE_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new("UPDATE operations SET state = v.column2, \
             outcomes = v.column3, sent = v.column4, session = v.column5, updated_at = v.column6, \
             attempts = v.column7, report_deadline = v.column8 FROM (");
        let mut err = None;
        qb.push_values(chunk, |mut b, op| {
            let mut json = |r: Result<String, StoreError>| r.map_err(|e| err = Some(e)).unwrap_or_default();
            let outcomes = json(to_json(&op.outcomes));
            let sent = json(to_json(&op.sent));
            b.push_bind(to_i64(op.id.0))
                .push_bind(op.state.as_str())
                .push_bind(outcomes)
                .push_bind(sent)
                .push_bind(op.session.as_ref().map(|s| s.0.clone()))
                .push_bind(op.updated_at.millis())
                .push_bind(i64::from(op.attempts))
                .push_bind(op.report_deadline.map(Timestamp::millis));
        });
        if let Some(e) = err {
            return Err(e);
        }
        qb.push(") AS v WHERE operations.id = v.column1");
        qb.build().persistent(false).execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

/// Releases every ended session of `outcomes` (after all of them were applied): the
/// operations they still hold go through the recovery rule, found with one read per chunk
/// of sessions instead of one per session. A session's operations are its own, so the order
/// across sessions does not matter.
/// Returns what was recovered, by session.
async fn release_ended_tx(
    conn: &mut Conn,
    outcomes: &[SessionOutcome],
) -> Result<std::collections::HashMap<String, RecoveryReport>, StoreError> {
    let mut released: std::collections::HashMap<String, RecoveryReport> =
        std::collections::HashMap::new();
    let ended: std::collections::HashMap<&str, Timestamp> = outcomes
        .iter()
        .filter(|o| o.ended)
        .map(|o| (o.session.0.as_str(), o.now))
        .collect();
    let sessions: Vec<&str> = ended.keys().copied().collect();
    for chunk in sessions.chunks(TREE_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT {OP_COLS} FROM operations WHERE state = 'in_session' AND session IN ("
        ));
        let mut list = qb.separated(", ");
        for s in chunk {
            list.push_bind(*s);
        }
        qb.push(format!(") ORDER BY id{FOR_UPDATE}"));
        let rows = qb.build().persistent(false).fetch_all(&mut *conn).await.map_err(db)?;
        for r in &rows {
            let mut op = op_from_row(r)?;
            let Some(now) = op.session.as_ref().and_then(|s| ended.get(s.0.as_str())) else {
                continue;
            };
            let session = op.session.clone().unwrap_or_else(|| SessionId(String::new()));
            let recovery = recover_interrupted(&mut op, *now);
            let report = released.entry(session.0).or_default();
            match recovery {
                Recovery::NotInSession => continue,
                Recovery::Requeued { .. } => report.requeued.push(op.id),
                Recovery::Finished => report.finished.push(op.id),
                Recovery::Failed { .. } => report.failed.push(op.id),
            }
            save_op(conn, &op).await?;
        }
    }
    Ok(released)
}

// --- the trait -----------------------------------------------------------------------------------

impl Store for ThisStore {
    async fn create_device(&self, device: &Device) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        insert_device(&mut tx, device).await?;
        write_derived(&mut tx, &registered_event(device)).await?;
        tx.commit().await.map_err(db)
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        select_device(&mut conn, id, false).await
    }

    async fn get_device_for_session(
        &self,
        id: &DeviceId,
    ) -> Result<Option<(Device, bool)>, StoreError> {
        let sql = format!(
            "SELECT {DEVICE_COLS}, EXISTS(SELECT 1 FROM operations o WHERE o.device_id = $1 \
             AND o.state = 'queued') AS has_queued FROM devices WHERE id = $1"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(self.reader())
            .await
            .map_err(db)?;
        match row {
            Some(r) => Ok(Some((device_from_row(&r)?, get::<bool>(&r, "has_queued")?))),
            None => Ok(None),
        }
    }

    async fn get_devices_for_session(
        &self,
        ids: &[DeviceId],
    ) -> Result<Vec<Option<(Device, bool)>>, StoreError> {
        let mut found: std::collections::HashMap<String, (Device, bool)> =
            std::collections::HashMap::new();
        for chunk in ids.chunks(TREE_CHUNK) {
            let mut qb = QueryBuilder::<Db>::new(format!(
                "SELECT {DEVICE_COLS}, EXISTS(SELECT 1 FROM operations o \
                 WHERE o.device_id = devices.id AND o.state = 'queued') AS has_queued \
                 FROM devices WHERE id IN ("
            ));
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            qb.push(")");
            let q = qb.build();
            // The statement text varies with the batch size: not cached.
            let q = if chunk.len() > 1 { q.persistent(false) } else { q };
            for r in &q.fetch_all(self.reader()).await.map_err(db)? {
                let d = device_from_row(r)?;
                found.insert(d.id.as_str().to_owned(), (d, get::<bool>(r, "has_queued")?));
            }
        }
        Ok(ids.iter().map(|id| found.get(id.as_str()).cloned()).collect())
    }

    async fn list_devices(
        &self,
        filter: &DeviceFilter,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<DevicePage, StoreError> {
        let limit = page_limit(limit);
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {DEVICE_COLS} FROM devices WHERE 1 = 1"));
        let mut eq = |col: &str, v: &Option<String>| {
            if let Some(v) = v {
                qb.push(format!(" AND {col} = ")).push_bind(v.clone());
            }
        };
        eq("manufacturer", &filter.manufacturer);
        eq("model", &filter.model);
        eq("firmware_version", &filter.firmware_version);
        eq("protocol", &filter.protocol.map(|p| p.as_str().to_owned()));
        if let Some(tag) = &filter.tag {
            qb.push(" AND id IN (SELECT device_id FROM device_tags WHERE tag = ")
                .push_bind(tag.clone())
                .push(")");
        }
        if let Some(a) = after {
            qb.push(" AND id > ").push_bind(a.as_str().to_owned());
        }
        qb.push(" ORDER BY id LIMIT ").push_bind(limit + 1);
        let rows = qb
            .build()
            .fetch_all(self.reader())
            .await
            .map_err(db)?;
        let mut devices = rows.iter().map(device_from_row).collect::<Result<Vec<_>, _>>()?;
        let next = if devices.len() as i64 > limit {
            devices.truncate(limit as usize);
            devices.last().map(|d| d.id.clone())
        } else {
            None
        };
        Ok(DevicePage { devices, next })
    }

    async fn update_device(&self, device: &Device) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        update_device_row(&mut tx, device).await?;
        tx.commit().await.map_err(db)
    }

    async fn delete_device(&self, id: &DeviceId) -> Result<bool, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = sqlx::query("DELETE FROM devices WHERE id = $1")
            .bind(id.as_str().to_owned())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        write_derived(&mut tx, &deleted_event(id)).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn record_contact(
        &self,
        id: &DeviceId,
        info: &DeviceInfo,
        now: Timestamp,
    ) -> Result<Device, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let d = record_contact_tx(&mut tx, id, info, now, None).await?;
        tx.commit().await.map_err(db)?;
        Ok(d)
    }

    async fn set_nonces(&self, id: &DeviceId, nonces: &Nonces) -> Result<(), StoreError> {
        let mut conn = self.writer().acquire().await.map_err(db)?;
        set_nonces_tx(&mut conn, id, nonces).await
    }

    async fn upsert_tree(&self, id: &DeviceId, entries: &[TreeEntry]) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        upsert_tree_tx(&mut tx, id, entries).await?;
        tx.commit().await.map_err(db)
    }

    async fn delete_tree(&self, id: &DeviceId, root: &NodePath) -> Result<u64, StoreError> {
        let mut conn = self.writer().acquire().await.map_err(db)?;
        delete_tree_tx(&mut conn, id, root).await
    }

    async fn read_tree(
        &self,
        id: &DeviceId,
        root: &NodePath,
        depth: Option<u32>,
    ) -> Result<Vec<TreeEntry>, StoreError> {
        let root = root.without_query();
        let prefix = root.descendant_prefix();
        let max_depth = match depth {
            Some(d) => to_i64(root.depth() as u64).saturating_add(i64::from(d)),
            None => i64::MAX,
        };
        let rows = sqlx::query(
            "SELECT path, format, mime_type, value, updated_at FROM tree_nodes \
             WHERE device_id = $1 AND depth <= $2 \
             AND (path = $3 OR (path >= $4 AND ($5 IS NULL OR path < $5))) ORDER BY path",
        )
        .bind(id.as_str().to_owned())
        .bind(max_depth)
        .bind(root.to_string())
        .bind(prefix.clone())
        .bind(prefix_upper(&prefix))
        .fetch_all(self.reader())
        .await
        .map_err(db)?;
        rows.iter().map(tree_from_row).collect()
    }

    async fn submit(
        &self,
        ops: Vec<NewOperation>,
        now: Timestamp,
    ) -> Result<Vec<Operation>, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let out = submit_tx(&mut tx, ops, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    async fn get_operation(&self, id: OperationId) -> Result<Option<Operation>, StoreError> {
        let mut conn = self.reader().acquire().await.map_err(db)?;
        select_op(&mut conn, id, false).await
    }

    async fn list_operations(&self, filter: &OpFilter) -> Result<Vec<Operation>, StoreError> {
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {OP_COLS} FROM operations WHERE 1 = 1"));
        if let Some(d) = &filter.device_id {
            qb.push(" AND device_id = ").push_bind(d.as_str().to_owned());
        }
        if let Some(s) = filter.state {
            qb.push(" AND state = ").push_bind(s.as_str());
        }
        if let Some(n) = filter.notify {
            qb.push(" AND notify = ").push_bind(n);
        }
        if let Some(a) = filter.after {
            qb.push(" AND id > ").push_bind(to_i64(a.0));
        }
        qb.push(" ORDER BY id LIMIT ").push_bind(page_limit(filter.limit));
        let rows = qb.build().fetch_all(self.reader()).await.map_err(db)?;
        rows.iter().map(op_from_row).collect()
    }

    async fn claim(
        &self,
        device: &DeviceId,
        session: &SessionId,
        now: Timestamp,
    ) -> Result<Vec<Operation>, StoreError> {
        // Fast path: most sessions find nothing queued; don't take the (single, on SQLite)
        // writer for them. Safe: a submission committed before the device was asked to call
        // in is visible to this read; one committed during the session waits for the next.
        let queued = sqlx::query(
            "SELECT 1 AS one FROM operations WHERE device_id = $1 AND state = 'queued' LIMIT 1",
        )
        .bind(device.as_str().to_owned())
        .fetch_optional(self.reader())
        .await
        .map_err(db)?;
        if queued.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer().begin().await.map_err(db)?;
        let ops = claim_tx(&mut tx, device, session, now, None).await?;
        tx.commit().await.map_err(db)?;
        Ok(ops)
    }

    async fn claim_to_send(
        &self,
        device: &DeviceId,
        session: &SessionId,
        now: Timestamp,
    ) -> Result<Vec<Operation>, StoreError> {
        if let Some(all_sent) = ALL_SENT {
            // Claimed and recorded as sent in one statement (and its events).
            let mut tx = self.writer().begin().await.map_err(db)?;
            let ops = claim_tx(&mut tx, device, session, now, Some(all_sent)).await?;
            tx.commit().await.map_err(db)?;
            return Ok(ops);
        }
        let mut tx = self.writer().begin().await.map_err(db)?;
        let mut ops = claim_tx(&mut tx, device, session, now, None).await?;
        for op in &mut ops {
            let all: Vec<usize> = (0..op.commands.len()).collect();
            op.mark_sent(&all);
            save_op(&mut tx, op).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(ops)
    }

    async fn claim_to_send_many(
        &self,
        claims: &[(DeviceId, SessionId)],
        now: Timestamp,
    ) -> Result<Vec<Vec<Operation>>, StoreError> {
        let Some(all_sent) = ALL_SENT else {
            // PostgreSQL: one claim after the other (each skips rows locked by others).
            let mut out = Vec::with_capacity(claims.len());
            for (device, session) in claims {
                out.push(self.claim_to_send(device, session, now).await?);
            }
            return Ok(out);
        };
        OpState::Queued
            .check_transition(OpState::InSession)
            .map_err(|source| StoreError::IllegalTransition {
                id: OperationId(0),
                source,
            })?;
        // One UPDATE for all the devices (each once: its first session gets its operations).
        let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, (device, _)) in claims.iter().enumerate() {
            first.entry(device.as_str()).or_insert(i);
        }
        let mut out: Vec<Vec<Operation>> = vec![Vec::new(); claims.len()];
        let unique: Vec<usize> = {
            let mut u: Vec<usize> = first.values().copied().collect();
            u.sort_unstable();
            u
        };
        let mut tx = self.writer().begin().await.map_err(db)?;
        for chunk in unique.chunks(TREE_CHUNK) {
            let mut qb = QueryBuilder::<Db>::new(
                "UPDATE operations SET state = 'in_session', session = v.column2, \
                 attempts = attempts + 1, updated_at = ",
            );
            qb.push_bind(now.millis());
            qb.push(format!(", sent = {all_sent} FROM ("));
            qb.push_values(chunk, |mut b, &i| {
                let (device, session) = &claims[i];
                b.push_bind(device.as_str().to_owned())
                    .push_bind(session.0.clone());
            });
            qb.push(
                ") AS v WHERE operations.device_id = v.column1 AND operations.state = 'queued' \
                 AND (operations.expires_at IS NULL OR operations.expires_at > ",
            );
            qb.push_bind(now.millis());
            qb.push(format!(") RETURNING {OP_COLS}"));
            let rows = qb
                .build()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            for r in &rows {
                let op = op_from_row(r)?;
                if let Some(&i) = first.get(op.device_id.as_str()) {
                    out[i].push(op);
                }
            }
        }
        // queued → in_session events, as claim_tx records them.
        let mut derived = Derived::default();
        for ops in &mut out {
            ops.sort_by_key(|o| o.id);
            for op in ops.iter() {
                derived.state_changed(op, OpState::Queued, now);
            }
        }
        write_derived(&mut tx, &derived).await?;
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    async fn mark_sent(
        &self,
        id: OperationId,
        session: &SessionId,
        indices: &[usize],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let sent = OpProgress {
            id,
            sent: indices.to_vec(),
            unsent: Vec::new(),
            outcomes: Vec::new(),
            finished: false,
        };
        apply_progress(&mut tx, session, &sent, now).await?;
        tx.commit().await.map_err(db)
    }

    async fn complete(
        &self,
        id: OperationId,
        session: &SessionId,
        outcomes: Vec<CommandOutcome>,
        now: Timestamp,
    ) -> Result<Operation, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = OpProgress {
            id,
            sent: Vec::new(),
            unsent: Vec::new(),
            outcomes,
            finished: true,
        };
        let op = apply_progress(&mut tx, session, &done, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(op)
    }

    async fn release_session(
        &self,
        session: &SessionId,
        now: Timestamp,
    ) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        let mut derived = Derived::default();
        let mut tx = self.writer().begin().await.map_err(db)?;
        release_logged(&mut tx, session, now, &mut report, &mut derived).await?;
        write_derived(&mut tx, &derived).await?;
        tx.commit().await.map_err(db)?;
        Ok(report)
    }

    async fn cancel(&self, id: OperationId, now: Timestamp) -> Result<Operation, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let mut op = lock_op(&mut tx, id).await?;
        let from = op.state;
        op.transition(OpState::Cancelled, now)
            .map_err(|source| StoreError::IllegalTransition { id, source })?;
        save_op(&mut tx, &op).await?;
        let mut derived = Derived::default();
        derived.state_changed(&op, from, now);
        write_derived(&mut tx, &derived).await?;
        tx.commit().await.map_err(db)?;
        Ok(op)
    }

    async fn amend_outcomes(
        &self,
        id: OperationId,
        device: &DeviceId,
        outcomes: Vec<CommandOutcome>,
        now: Timestamp,
    ) -> Result<Operation, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let mut op = lock_op(&mut tx, id).await?;
        // Checked under the row lock: a report amends only an Exec of the reporting device's
        // own operation. The same answer as a missing operation, so nothing is revealed.
        let refused = || StoreError::NotFound(format!("operation {} of device {device}", id.0));
        if op.device_id != *device {
            return Err(refused());
        }
        let mut derived = Derived::default();
        for report in outcomes {
            apply_report(&mut op, report, now, &mut derived);
        }
        save_op(&mut tx, &op).await?;
        write_derived(&mut tx, &derived).await?;
        tx.commit().await.map_err(db)?;
        Ok(op)
    }

    async fn server_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now: Timestamp,
    ) -> Result<Vec<u8>, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_owned())
        .bind(hex::encode(candidate))
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name.to_owned())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let value = get::<String>(&row, "value")?;
        hex::decode(&value).ok().ok_or_else(|| corrupt(format!("server secret {name}")))
    }

    async fn expire_due(&self, now: Timestamp) -> Result<Vec<OperationId>, StoreError> {
        OpState::Queued
            .check_transition(OpState::Expired)
            .map_err(|source| StoreError::IllegalTransition {
                id: OperationId(0),
                source,
            })?;
        let mut tx = self.writer().begin().await.map_err(db)?;
        let rows = sqlx::query(&format!(
            "UPDATE operations SET state = 'expired', session = NULL, updated_at = $1 \
             WHERE state = 'queued' AND expires_at IS NOT NULL AND expires_at <= $1 \
             RETURNING {OP_COLS}"
        ))
        .bind(now.millis())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut ops = rows.iter().map(op_from_row).collect::<Result<Vec<_>, _>>()?;
        ops.sort_by_key(|o| o.id);
        let mut derived = Derived::default();
        for op in &ops {
            derived.state_changed(op, OpState::Queued, now);
        }
        write_derived(&mut tx, &derived).await?;
        tx.commit().await.map_err(db)?;
        Ok(ops.iter().map(|o| o.id).collect())
    }

    async fn fail_unreported_due(&self, now: Timestamp) -> Result<Vec<OperationId>, StoreError> {
        OpState::AwaitingReport
            .check_transition(OpState::Failed)
            .map_err(|source| StoreError::IllegalTransition {
                id: OperationId(0),
                source,
            })?;
        let mut tx = self.writer().begin().await.map_err(db)?;
        let rows = sqlx::query(&format!(
            "SELECT {OP_COLS} FROM operations WHERE state = 'awaiting_report' \
             AND report_deadline IS NOT NULL AND report_deadline <= $1 ORDER BY id{FOR_UPDATE}"
        ))
        .bind(now.millis())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut derived = Derived::default();
        let mut failed = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut op = op_from_row(r)?;
            let timed_out = op.fail_unreported(now);
            if timed_out.is_empty() {
                continue;
            }
            save_op(&mut tx, &op).await?;
            derived.results(&op, &timed_out, now, false);
            derived.state_changed(&op, OpState::AwaitingReport, now);
            failed.push(op.id);
        }
        write_derived(&mut tx, &derived).await?;
        tx.commit().await.map_err(db)?;
        Ok(failed)
    }

    async fn queue_depth(&self, device: Option<&DeviceId>) -> Result<u64, StoreError> {
        let row = match device {
            Some(d) => sqlx::query(
                "SELECT COUNT(*) AS n FROM operations WHERE state = 'queued' AND device_id = $1",
            )
            .bind(d.as_str().to_owned())
            .fetch_one(self.reader())
            .await,
            None => sqlx::query("SELECT COUNT(*) AS n FROM operations WHERE state = 'queued'")
                .fetch_one(self.reader())
                .await,
        }
        .map_err(db)?;
        Ok(u64::try_from(get::<i64>(&row, "n")?).unwrap_or(0))
    }

    async fn recover(&self, now: Timestamp) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        let mut derived = Derived::default();
        let mut tx = self.writer().begin().await.map_err(db)?;
        recover_where_logged(&mut tx, None, now, &mut report, &mut derived).await?;
        write_derived(&mut tx, &derived).await?;
        tx.commit().await.map_err(db)?;
        Ok(report)
    }

    async fn recover_node(&self, node: &str, now: Timestamp) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        let mut derived = Derived::default();
        let mut tx = self.writer().begin().await.map_err(db)?;
        let cond = "substr(session, 1, length($1)) = $1";
        let filter = Some((cond, node.to_owned()));
        recover_where_logged(&mut tx, filter, now, &mut report, &mut derived).await?;
        write_derived(&mut tx, &derived).await?;
        tx.commit().await.map_err(db)?;
        Ok(report)
    }

    async fn apply_session_outcomes(
        &self,
        outcomes: &[SessionOutcome],
    ) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        let mut derived = Derived::default();
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Per outcome, as one after the other would derive them: the adapter's events
        // (`session.ended` last), `device.seen`, state changes, results and charges, then
        // the state changes of what the session's release recovered.
        let mut per: Vec<Derived> = outcomes.iter().map(|_| Derived::default()).collect();
        apply_outcomes_tx(&mut tx, outcomes, &mut per).await?;
        let mut released = release_ended_tx(&mut tx, outcomes).await?;
        for (o, own) in outcomes.iter().zip(per) {
            let (ended, first): (Vec<&NewEvent>, Vec<&NewEvent>) = o
                .events
                .iter()
                .partition(|e| e.kind == EventKind::SessionEnded);
            derived.events.extend(first.into_iter().cloned());
            derived.events.extend(own.events);
            derived.charges.extend(own.charges);
            if o.ended {
                let r = released.remove(o.session.0.as_str()).unwrap_or_default();
                merge_recovered(&mut tx, r, o.now, &mut report, &mut derived).await?;
            }
            derived.events.extend(ended.into_iter().cloned());
        }
        write_derived(&mut tx, &derived).await?;
        tx.commit().await.map_err(db)?;
        Ok(report)
    }
}
