//! The OMA DM adapter: protocol-neutral operations (`omnidm-core`) in, engine commands
//! (`omnidm-omadm`) out; engine events in, what the store must remember out.
//!
//! Pure: no I/O, no clock (timestamps are arguments). The endpoint owns one [`Ledger`] per live
//! session and turns it into a [`SessionOutcome`] when the session ends.

use omnidm_core::{
    CommandOutcome, DeviceId, DeviceInfo, EventKind, NewEvent, NodePath, NodeResult, Nonces,
    OpCommand, OpProgress, Operation, OperationId, SessionId, SessionOutcome, Timestamp, TreeEntry,
    TypedValue, UiAnswer, UiKind, ValueType, is_listing,
};
use omnidm_omadm::server::{self as dm, CommandTag, DmCommand, NodeReport, NodeWrite};
use omnidm_syncml::Data;
use omnidm_tree::{Format, ListKind, TreeUri, UriQuery};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Status recorded when a command cannot be expressed in OMA DM (e.g. a TR-069 path sent to a
/// DM device): 406 "optional feature not supported", without going to the device.
const NOT_EXPRESSIBLE: u16 = 406;

/// Where an engine tag points: the operation (by position in the ledger) and the command's
/// index path inside it (`[2]` top-level, `[2, 0]` first command of an Atomic at index 2).
#[derive(Debug, Clone)]
struct Slot {
    op: usize,
    index: Vec<u32>,
}

/// One claimed operation and what the session learned about it.
#[derive(Debug)]
struct Held {
    op: Operation,
    /// Its commands were handed out by [`Ledger::commands`] already.
    converted: bool,
    /// Top-level commands handed to the engine in this session.
    sent: BTreeSet<usize>,
    /// Top-level commands handed to the engine that it never sent (the session ended first).
    unsent: BTreeSet<usize>,
    /// Outcomes keyed by index path (top-level and inner).
    outcomes: BTreeMap<Vec<u32>, CommandOutcome>,
}

/// What an accepted command changes in the tree cache.
#[derive(Debug, Default)]
struct TreeChange {
    write: Option<TreeEntry>,
    delete: Option<NodePath>,
}

/// Everything a live session must turn into store writes when it ends.
#[derive(Debug)]
pub struct Ledger {
    device_id: DeviceId,
    session: SessionId,
    held: Vec<Held>,
    tags: HashMap<CommandTag, Slot>,
    /// Results that arrived before their status.
    results: HashMap<CommandTag, Vec<NodeResult>>,
    contact: Option<DeviceInfo>,
    nonces: Option<Nonces>,
    tree: BTreeMap<String, TreeEntry>,
    /// Generic alerts answering Execs of earlier sessions: outcomes to amend.
    reports: Vec<(OperationId, CommandOutcome)>,
    /// What a Replace/Add will have written once the device accepts it (tree cache), by tag.
    writes: HashMap<CommandTag, TreeEntry>,
    /// What a Delete will have removed once the device accepts it, by tag.
    deletes: HashMap<CommandTag, NodePath>,
    /// Nodes deleted in this session (dropped from the cache with their subtrees).
    tree_deleted: Vec<NodePath>,
    /// Accepted changes inside a top-level Atomic (operation, index), applied when the Atomic
    /// itself succeeds.
    atomic_changes: HashMap<(usize, u32), Vec<TreeChange>>,
    /// Session-level events for the event log (start, end, generic alerts, auth failures).
    events: Vec<NewEvent>,
    next_tag: CommandTag,
    /// Signs the wire correlators of Execs and checks those Generic Alerts bring back
    /// ([`Ledger::with_correlator_key`]); without it no asynchronous report is accepted.
    correlator_key: Option<CorrelatorKey>,
    /// How long an Exec the device accepted (202) waits for its Generic Alert 1226 before the
    /// sweep fails it ([`Ledger::with_report_timeout`]; issue 9 item 5).
    report_timeout_ms: i64,
}

impl Ledger {
    /// A ledger for the operations claimed for this session.
    pub fn new(device_id: DeviceId, session: SessionId, ops: Vec<Operation>) -> Self {
        let mut ledger = Self {
            device_id,
            session,
            held: Vec::new(),
            tags: HashMap::new(),
            results: HashMap::new(),
            contact: None,
            nonces: None,
            tree: BTreeMap::new(),
            reports: Vec::new(),
            writes: HashMap::new(),
            deletes: HashMap::new(),
            tree_deleted: Vec::new(),
            atomic_changes: HashMap::new(),
            events: Vec::new(),
            next_tag: 1,
            correlator_key: None,
            report_timeout_ms: omnidm_core::DEFAULT_REPORT_TIMEOUT_MS,
        };
        ledger.hold(ops);
        ledger
    }

    /// The server's correlator key: Execs carry correlators bound to this device, and only
    /// Generic Alerts bringing back such a correlator are taken as asynchronous results.
    pub fn with_correlator_key(mut self, key: CorrelatorKey) -> Self {
        self.correlator_key = Some(key);
        self
    }

    /// How long an accepted Exec waits for its asynchronous report (the server's
    /// `[dm] report_timeout_secs`); the deadline is stamped on the command's outcome.
    pub fn with_report_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.report_timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Takes claimed operations into the session (claims happen once the device is
    /// authenticated, so an unauthenticated session never holds anything).
    pub fn hold(&mut self, ops: Vec<Operation>) {
        self.held.extend(ops.into_iter().map(|op| Held {
            op,
            converted: false,
            sent: BTreeSet::new(),
            unsent: BTreeSet::new(),
            outcomes: BTreeMap::new(),
        }));
    }

    /// The engine commands for every top-level command still without an outcome, tagged, of
    /// the operations held since the last call.
    /// Commands OMA DM cannot express are answered at once with [`NOT_EXPRESSIBLE`].
    pub fn commands(&mut self, now: Timestamp) -> Vec<(CommandTag, DmCommand)> {
        let mut out = Vec::new();
        for op in 0..self.held.len() {
            if std::mem::replace(&mut self.held[op].converted, true) {
                continue;
            }
            let pending: Vec<(usize, OpCommand)> = self.held[op]
                .op
                .commands
                .iter()
                .enumerate()
                .filter(|(i, _)| self.held[op].op.outcome_of(*i).is_none())
                .map(|(i, c)| (i, c.clone()))
                .collect();
            for (i, command) in pending {
                let index = vec![index_u32(i)];
                match self.convert(op, index.clone(), &command) {
                    Some(tagged) => {
                        self.held[op].sent.insert(i);
                        out.push(tagged);
                    }
                    None => self.record(op, index, NOT_EXPRESSIBLE, Vec::new(), None, now),
                }
            }
        }
        out
    }

    fn tag(&mut self, op: usize, index: Vec<u32>) -> CommandTag {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.tags.insert(tag, Slot { op, index });
        tag
    }

    /// Converts one command (recursively); `None` when it cannot be expressed in OMA DM.
    fn convert(
        &mut self,
        op: usize,
        index: Vec<u32>,
        c: &OpCommand,
    ) -> Option<(CommandTag, DmCommand)> {
        let command = match c {
            OpCommand::Get { path } => DmCommand::Get { uri: dm_uri(path)? },
            OpCommand::Replace { path, value } => DmCommand::Replace {
                items: vec![write(dm_uri(path)?, Some(value))],
            },
            OpCommand::Add { path, value } => DmCommand::Add {
                items: vec![write(dm_uri(path)?, value.as_ref())],
            },
            OpCommand::Delete { path } => DmCommand::Delete { uri: dm_uri(path)? },
            // The correlator on the wire is always ours, so that the device's later Generic
            // Alert finds its way back to this command; the caller's own correlator stays in
            // the operation as a label.
            OpCommand::Exec { path, data, .. } => DmCommand::Exec {
                uri: dm_uri(path)?,
                data: data.clone(),
                correlator: Some(wire_correlator(
                    self.correlator_key.as_ref(),
                    &self.device_id,
                    self.held[op].op.id,
                    &index,
                )),
            },
            OpCommand::Copy { from, to } => DmCommand::Copy {
                from: dm_uri(from)?,
                to: dm_uri(to)?,
            },
            OpCommand::Atomic(inner) => DmCommand::Atomic(self.inner(op, &index, inner)?),
            OpCommand::Sequence(inner) => DmCommand::Sequence(self.inner(op, &index, inner)?),
            OpCommand::UserInteraction(p) => DmCommand::UserInteraction(ui_alert(p)),
        };
        let tag = self.tag(op, index);
        match c {
            OpCommand::Replace { path, value } => self.expect_write(tag, path, Some(value)),
            OpCommand::Add { path, value } => self.expect_write(tag, path, value.as_ref()),
            OpCommand::Delete { path } => {
                self.deletes.insert(tag, path.without_query());
            }
            _ => {}
        }
        Some((tag, command))
    }

    /// Remembers what the tree cache learns if the device accepts the write `tag`.
    fn expect_write(&mut self, tag: CommandTag, path: &NodePath, value: Option<&TypedValue>) {
        let entry = TreeEntry {
            path: path.without_query(),
            format: value.map_or(ValueType::Node, |v| v.value_type),
            mime_type: value.and_then(|v| v.mime_type.clone()),
            value: value
                .filter(|v| v.value_type != ValueType::Node)
                .map(|v| v.data.clone()),
            updated_at: Timestamp(0),
        };
        self.writes.insert(tag, entry);
    }

    /// The device answered `tag` with `status`: an accepted write or delete updates the cache.
    /// Inside an Atomic the change waits for the Atomic's own status: a failed Atomic is
    /// rolled back on the device even where its children said 200.
    fn settle_tree(&mut self, tag: CommandTag, status: u16, now: Timestamp) {
        let accepted = omnidm_core::status::is_success(status);
        let write = self.writes.remove(&tag).filter(|_| accepted);
        let delete = self.deletes.remove(&tag).filter(|_| accepted);
        let Some(slot) = self.tags.get(&tag).cloned() else {
            return;
        };
        let top = slot.index.first().map(|i| (slot.op, *i));
        let in_atomic = slot.index.len() > 1
            && top.is_some_and(|(op, i)| {
                matches!(
                    self.held
                        .get(op)
                        .and_then(|h| h.op.commands.get(i as usize)),
                    Some(OpCommand::Atomic(_))
                )
            });
        let change = TreeChange { write, delete };
        if in_atomic {
            if let Some(top) = top {
                self.atomic_changes.entry(top).or_default().push(change);
            }
            return;
        }
        if slot.index.len() == 1 {
            // A top-level Atomic's status settles what its children changed.
            let held = self
                .atomic_changes
                .remove(&(slot.op, slot.index[0]))
                .unwrap_or_default();
            if accepted {
                for c in held {
                    self.apply_change(c, now);
                }
            }
        }
        self.apply_change(change, now);
    }

    fn apply_change(&mut self, change: TreeChange, now: Timestamp) {
        if let Some(path) = change.delete {
            self.tree.retain(|_, e| !path.contains(&e.path));
            self.tree_deleted.push(path);
        }
        if let Some(mut entry) = change.write {
            entry.updated_at = now;
            self.tree.insert(entry.path.to_string(), entry);
        }
    }

    fn inner(
        &mut self,
        op: usize,
        parent: &[u32],
        inner: &[OpCommand],
    ) -> Option<Vec<(CommandTag, DmCommand)>> {
        inner
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut index = parent.to_vec();
                index.push(index_u32(i));
                self.convert(op, index, c)
            })
            .collect()
    }

    fn record(
        &mut self,
        op: usize,
        index: Vec<u32>,
        status: u16,
        results: Vec<NodeResult>,
        answer: Option<UiAnswer>,
        now: Timestamp,
    ) {
        let Some(held) = self.held.get_mut(op) else {
            return;
        };
        // The engine reports a UI alert's answer (`UserResponse`) and then its final status:
        // the status must not erase the answer (issue 9 item 4: the chosen item was lost).
        let answer = answer.or_else(|| held.outcomes.get(&index).and_then(|o| o.answer.clone()));
        // An Exec answered 202 "accepted for processing" is not done: it waits for the Generic
        // Alert 1226 carrying its correlator (DM Protocol 1.2 Exec / Generic Alert; FUMO 1.0
        // §10.2), until this deadline (issue 9 item 5).
        let accepted_exec = status == omnidm_core::status::ACCEPTED
            && matches!(
                OpCommand::at(&held.op.commands, &index),
                Some(OpCommand::Exec { .. })
            );
        let outcome = CommandOutcome {
            index: index.clone(),
            status,
            results,
            answer,
            reason: None,
            report_deadline: accepted_exec.then(|| now.plus_millis(self.report_timeout_ms)),
            late_report: None,
            finished_at: now,
        };
        held.outcomes.insert(index, outcome);
    }

    /// Applies one engine event. Returns `true` when the session has ended.
    pub fn apply(&mut self, event: &dm::SessionEvent, now: Timestamp) -> bool {
        use dm::SessionEvent as E;
        match event {
            E::DeviceInfo(reports) => self.learn(reports, &reported_nodes(reports, None), now),
            E::NoncesChanged {
                client_nonce,
                server_nonce,
            } => {
                self.nonces = Some(Nonces {
                    client_nonce: client_nonce.as_bytes().to_vec(),
                    server_nonce: server_nonce.as_bytes().to_vec(),
                });
            }
            E::CommandResults { tag, items } => {
                let asked = self.asked_get(*tag);
                let reported = reported_nodes(items, asked.as_ref());
                self.learn(items, &reported, now);
                let results = reported
                    .into_iter()
                    .filter(|r| {
                        // A Get returns its target (a listing: and what is below it); anything
                        // else a device adds is not an answer to what was asked, and was not
                        // authorized as one (issue 8).
                        let inside = asked.as_ref().is_some_and(|a| {
                            if is_listing(a) {
                                a.without_query().contains(&r.path)
                            } else {
                                a.without_query() == r.path.without_query()
                            }
                        });
                        if !inside {
                            tracing::warn!(device = %self.device_id, tag, path = %r.path,
                                "result outside the node asked for, dropped");
                        }
                        inside
                    })
                    .map(Reported::into_result)
                    .collect();
                match self.tags.get(tag).cloned() {
                    Some(slot) => match self.held[slot.op].outcomes.get_mut(&slot.index) {
                        Some(outcome) => outcome.results = results,
                        None => {
                            self.results.insert(*tag, results);
                        }
                    },
                    None => tracing::debug!(tag, "results for an unknown tag"),
                }
            }
            E::CommandStatus { tag, status, .. } => {
                self.settle_tree(*tag, status.0, now);
                if let Some(slot) = self.tags.get(tag).cloned() {
                    let results = self.results.remove(tag).unwrap_or_default();
                    self.record(slot.op, slot.index, status.0, results, None, now);
                }
            }
            E::UserResponse {
                tag,
                status,
                answer,
            } => {
                if let Some(slot) = self.tags.get(tag).cloned() {
                    self.record(
                        slot.op,
                        slot.index,
                        status.0,
                        Vec::new(),
                        ui_answer(answer),
                        now,
                    );
                }
            }
            // An authenticated device has been in contact even if it sent no DevInfo.
            E::Authenticated(_) => {
                self.contact.get_or_insert_with(DeviceInfo::default);
            }
            E::Ended { reason, unsent, .. } => {
                // Commands the engine never sent are not sent: recovery requeues them rather
                // than reporting them interrupted (issue 9 item 11). Inner commands go with
                // their top-level container.
                for tag in unsent {
                    if let Some(Slot { op, index }) = self.tags.get(tag).cloned()
                        && let [i] = index[..]
                        && let Some(held) = self.held.get_mut(op)
                    {
                        let i = i as usize;
                        held.sent.remove(&i);
                        held.unsent.insert(i);
                    }
                }
                let data = serde_json::json!({
                    "session": self.session.0,
                    "reason": format!("{reason:?}"),
                });
                self.push_event(EventKind::SessionEnded, now, data);
                return true;
            }
            E::GenericAlert { correlator, items } => {
                // Only a correlator this server issued to THIS device for that command counts
                // (issue 8 item 2); anything else claiming to be ours is ignored and logged,
                // the device still gets its normal Status (nothing is revealed).
                if let Some(c) = correlator.as_deref() {
                    match async_report(c, items, now) {
                        Some((op, outcome))
                            if self.correlator_key.as_ref().is_some_and(|k| {
                                k.verify(&self.device_id, op, &outcome.index, c)
                            }) =>
                        {
                            self.reports.push((op, outcome));
                        }
                        Some((op, _)) => tracing::warn!(
                            device = %self.device_id,
                            operation = op.0,
                            correlator = c,
                            "generic alert with a correlator not issued to this device: ignored"
                        ),
                        None => {}
                    }
                }
                self.generic_alert_event(correlator.as_deref(), items, now);
            }
            E::Started { kind, session_id } => {
                let data = serde_json::json!({
                    "session": self.session.0,
                    "dm_session_id": session_id,
                    "initiated_by": match kind {
                        dm::SessionKind::ServerInitiated => "server",
                        _ => "device",
                    },
                });
                self.push_event(EventKind::SessionStarted, now, data);
            }
            // Auth failures are counted per device by the endpoint (`auth_failures`), which
            // writes aggregated events: one event per attempt would let anyone fill the log.
            E::AuthFailed { .. }
            | E::ServerCredRejected { .. }
            | E::CommandsNeeded
            | E::Anomaly(_) => {}
        }
        false
    }

    fn push_event(&mut self, kind: EventKind, now: Timestamp, data: serde_json::Value) {
        self.events
            .push(NewEvent::device(kind, now, &self.device_id, data));
    }

    /// A Generic Alert for the event log: its source node is the event's path, so only
    /// applications with a grant on that subtree see it.
    fn generic_alert_event(
        &mut self,
        correlator: Option<&str>,
        items: &[dm::GenericAlertItem],
        now: Timestamp,
    ) {
        let items_json: Vec<serde_json::Value> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "source": i.source,
                    "target": i.target,
                    "type": i.type_,
                    "format": i.format,
                    "mark": i.mark,
                    // Never a credential's value (issue 8), whatever the device sends.
                    "data": i.data.as_ref().and_then(|d| d.as_text())
                        .filter(|_| !i.source.as_deref().and_then(|s| NodePath::dm(s).ok())
                            .is_some_and(|p| p.is_credential())),
                })
            })
            .collect();
        let mut event = NewEvent::device(
            EventKind::GenericAlert,
            now,
            &self.device_id,
            serde_json::json!({ "correlator": correlator, "items": items_json }),
        );
        event.path = items
            .iter()
            .find_map(|i| i.source.as_deref())
            .and_then(|s| NodePath::dm(s).ok());
        self.events.push(event);
    }

    /// The path (query included) of the Get behind `tag`, if `tag` is one of ours.
    fn asked_get(&self, tag: CommandTag) -> Option<NodePath> {
        let slot = self.tags.get(&tag)?;
        let held = self.held.get(slot.op)?;
        match OpCommand::at(&held.op.commands, &slot.index)? {
            OpCommand::Get { path } => Some(path.clone()),
            _ => None,
        }
    }

    /// Node values from the device: into the tree cache, and DevInfo/DevDetail leaves (package
    /// 1, or the Results of a Get) into the registry's device info.
    fn learn(&mut self, reports: &[NodeReport], nodes: &[Reported], now: Timestamp) {
        let info = device_info(reports);
        if info != DeviceInfo::default() {
            self.contact
                .get_or_insert_with(DeviceInfo::default)
                .merge(&info);
        }
        for node in nodes {
            if let Some(entry) = node.tree_entry(now) {
                self.tree.insert(entry.path.to_string(), entry);
            }
        }
    }

    /// The nonces for the next session, if the session changed them so far.
    pub fn nonces(&self) -> Option<&Nonces> {
        self.nonces.as_ref()
    }

    /// What the store must write. With `ended`, operations the session still holds go
    /// through the recovery rule in the store (resend what is safe, report the rest).
    pub fn outcome(&self, now: Timestamp, ended: bool) -> SessionOutcome {
        let operations = self
            .held
            .iter()
            .map(|h| {
                let answered = (0..h.op.commands.len()).all(|i| {
                    h.op.outcome_of(i).is_some() || h.outcomes.contains_key(&vec![index_u32(i)])
                });
                OpProgress {
                    id: h.op.id,
                    sent: h.sent.iter().copied().collect(),
                    unsent: h.unsent.iter().copied().collect(),
                    outcomes: h.outcomes.values().cloned().collect(),
                    finished: answered,
                }
            })
            .collect();
        SessionOutcome {
            device_id: self.device_id.clone(),
            session: self.session.clone(),
            now,
            contact: self.contact.clone(),
            nonces: self.nonces.clone(),
            tree: self.tree.values().cloned().collect(),
            tree_deleted: self.tree_deleted.clone(),
            operations,
            reports: self.reports.clone(),
            events: self.events.clone(),
            ended,
        }
    }
}

/// The key that makes wire correlators unguessable and binds each to its device (issue 8
/// item 2): generated once per installation and kept in the store
/// ([`omnidm_core::Store::server_secret`]), so every node and every restart agree.
#[derive(Clone)]
pub struct CorrelatorKey(std::sync::Arc<[u8]>);

impl std::fmt::Debug for CorrelatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CorrelatorKey(..)")
    }
}

/// Bytes of HMAC-SHA256 kept in a correlator's tag (128 bits).
const TAG_BYTES: usize = 16;

impl CorrelatorKey {
    /// A key from stored secret bytes.
    pub fn new(bytes: &[u8]) -> Self {
        CorrelatorKey(bytes.into())
    }

    /// HMAC-SHA256 over (device, operation, index path), every field length-prefixed.
    /// `None` only if the HMAC refused the key, which it never does (any length is fine).
    fn mac(
        &self,
        device: &DeviceId,
        op: OperationId,
        index: &[u32],
    ) -> Option<hmac::Hmac<sha2::Sha256>> {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(&self.0).ok()?;
        mac.update(b"omnidm-correlator-v1");
        let device = device.as_str().as_bytes();
        mac.update(&(device.len() as u64).to_be_bytes());
        mac.update(device);
        mac.update(&op.0.to_be_bytes());
        mac.update(&(index.len() as u64).to_be_bytes());
        for i in index {
            mac.update(&i.to_be_bytes());
        }
        Some(mac)
    }

    fn tag(&self, device: &DeviceId, op: OperationId, index: &[u32]) -> String {
        use hmac::Mac as _;
        let Some(mac) = self.mac(device, op, index) else {
            return String::new();
        };
        let full = mac.finalize().into_bytes();
        full.iter()
            .take(TAG_BYTES)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// True when `correlator` is exactly the one issued to `device` for (`op`, `index`);
    /// compared in constant time.
    fn verify(&self, device: &DeviceId, op: OperationId, index: &[u32], correlator: &str) -> bool {
        use hmac::Mac as _;
        let Some(tag) = correlator.rsplit_once(':').map(|(_, t)| t) else {
            return false;
        };
        let Some(bytes) = hex::decode(tag).ok().filter(|b| b.len() == TAG_BYTES) else {
            return false;
        };
        self.mac(device, op, index)
            .is_some_and(|m| m.verify_truncated_left(&bytes).is_ok())
    }
}

/// `omnidm:<operation>:<index path>:<tag>`, e.g. `omnidm:42:1.0:<32 hex digits>`: the tag is
/// a truncated HMAC of (device, operation, index path) under the server's correlator key, so
/// correlators cannot be guessed and a correlator seen by one device is worthless to another.
/// Without a key (unit tests) the tag is empty and no report will ever verify.
fn wire_correlator(
    key: Option<&CorrelatorKey>,
    device: &DeviceId,
    op: OperationId,
    index: &[u32],
) -> String {
    let path: Vec<String> = index.iter().map(u32::to_string).collect();
    let tag = key.map(|k| k.tag(device, op, index)).unwrap_or_default();
    format!("omnidm:{}:{}:{tag}", op.0, path.join("."))
}

/// The outcome a Generic Alert reports for the Exec whose correlator it carries (DM Protocol
/// 1.2 Generic Alert; FUMO/SCOMO put the result code in the item's Data). Correlators that are
/// not in our form are someone else's business: `None`. The tag is NOT checked here
/// ([`CorrelatorKey::verify`] does).
fn async_report(
    correlator: &str,
    items: &[dm::GenericAlertItem],
    now: Timestamp,
) -> Option<(OperationId, CommandOutcome)> {
    let mut parts = correlator.strip_prefix("omnidm:")?.splitn(3, ':');
    let op = OperationId(parts.next()?.parse().ok()?);
    let index = parts
        .next()?
        .split('.')
        .map(str::parse)
        .collect::<Result<Vec<u32>, _>>()
        .ok()?;
    // FUMO 1.0 §10.2 / SCOMO 1.0 §8.7: the Item's Data is the ResultCode (Format int); it
    // decides the command (2xx/12xx success, anything else failure) and its spec name is
    // shown beside it. An alert without a numeric code reports plain success.
    let (status, alert_type) = items
        .iter()
        .find_map(|i| {
            let code = i.data.as_ref()?.as_text()?.trim().parse::<u16>().ok()?;
            Some((code, i.type_.as_deref()))
        })
        .unwrap_or((200, None));
    let reason = omnidm_core::result_code::meaning(alert_type, status).map(str::to_owned);
    let results = items
        .iter()
        .filter_map(|i| {
            let path = NodePath::dm(i.source.as_deref()?).ok()?;
            // Never a credential's value (issue 8), whatever the device reports.
            let value = i
                .data
                .as_ref()
                .filter(|_| !path.is_credential())
                .map(|d| TypedValue {
                    value_type: value_type(i.format.as_deref()),
                    data: data_text(d),
                    mime_type: i.type_.clone(),
                });
            Some(NodeResult { path, value })
        })
        .collect();
    Some((
        op,
        CommandOutcome {
            index,
            status,
            results,
            answer: None,
            reason,
            report_deadline: None,
            late_report: None,
            finished_at: now,
        },
    ))
}

#[cfg(test)]
mod correlator_tests {
    use super::*;

    /// Issue 8 item 2: a correlator verifies only for the device, operation and index it was
    /// issued for, and the old guessable form never verifies.
    #[test]
    fn correlators_are_bound_to_their_device_and_command() {
        let key = CorrelatorKey::new(&[7; 32]);
        let a = DeviceId::new("IMEI:A").unwrap();
        let b = DeviceId::new("IMEI:B").unwrap();
        let c = wire_correlator(Some(&key), &a, OperationId(42), &[1, 0]);
        assert!(c.starts_with("omnidm:42:1.0:"), "{c}");
        assert_eq!(c.len(), "omnidm:42:1.0:".len() + 2 * TAG_BYTES);
        let (op, outcome) = async_report(&c, &[], Timestamp(1)).unwrap();
        assert_eq!(
            (op, outcome.index.as_slice()),
            (OperationId(42), &[1, 0][..])
        );
        assert!(key.verify(&a, op, &outcome.index, &c));
        assert!(!key.verify(&b, op, &outcome.index, &c), "another device");
        assert!(!key.verify(&a, OperationId(43), &outcome.index, &c));
        assert!(!key.verify(&a, op, &[1], &c));
        assert!(
            !key.verify(&a, op, &[1, 0], "omnidm:42:1.0"),
            "the old form"
        );
        let other = CorrelatorKey::new(&[8; 32]);
        assert!(!other.verify(&a, op, &[1, 0], &c), "another installation");
        let mut forged = c.clone();
        forged.replace_range(forged.len() - 2.., "00");
        assert!(!key.verify(&a, op, &[1, 0], &forged) || c.ends_with("00"));
    }
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn dm_uri(path: &NodePath) -> Option<TreeUri> {
    match path {
        NodePath::OmaDm(uri) => Some(uri.clone()),
        _ => None,
    }
}

fn write(uri: TreeUri, value: Option<&TypedValue>) -> NodeWrite {
    match value {
        Some(v) => NodeWrite {
            uri,
            format: Some(v.value_type.dm_format().to_string()),
            mime_type: v.mime_type.clone(),
            data: Data::Text(v.data.clone()),
        },
        // An interior node (DM Add without a value).
        None => NodeWrite {
            uri,
            format: Some(Format::Node.to_string()),
            mime_type: None,
            data: Data::Text(String::new()),
        },
    }
}

fn ui_alert(p: &omnidm_core::UiPrompt) -> dm::UiAlert {
    let kind = match p.kind {
        UiKind::Display => dm::UiKind::Display,
        UiKind::Confirm => dm::UiKind::Confirm,
        UiKind::TextInput => dm::UiKind::TextInput,
        UiKind::SingleChoice => dm::UiKind::SingleChoice,
        UiKind::MultipleChoice => dm::UiKind::MultipleChoice,
    };
    let mut alert = dm::UiAlert::new(kind, p.text.clone());
    alert.choices = p.choices.clone();
    alert.min_display_time = p.min_display_time;
    alert.max_display_time = p.max_display_time;
    alert.default_response = p.default_response.clone();
    alert.max_len = p.max_len;
    alert.input_type = p.input_type.as_deref().and_then(|t| match t {
        "A" => Some(dm::InputType::Alphanumeric),
        "N" => Some(dm::InputType::Numeric),
        "D" => Some(dm::InputType::Date),
        "T" => Some(dm::InputType::Time),
        "P" => Some(dm::InputType::Phone),
        "I" => Some(dm::InputType::Ip),
        _ => None,
    });
    alert.echo_type = p.echo.as_deref().and_then(|e| match e {
        "T" => Some(dm::EchoType::Text),
        "P" => Some(dm::EchoType::Password),
        _ => None,
    });
    alert
}

fn ui_answer(a: &dm::UiAnswer) -> Option<UiAnswer> {
    match a {
        dm::UiAnswer::Accepted => Some(UiAnswer::Confirmed(true)),
        dm::UiAnswer::Rejected => Some(UiAnswer::Confirmed(false)),
        dm::UiAnswer::Text(t) => Some(UiAnswer::Text(t.clone())),
        dm::UiAnswer::Selected(c) => Some(UiAnswer::Choices(c.clone())),
        // The status code says it all.
        dm::UiAnswer::Acknowledged
        | dm::UiAnswer::Cancelled
        | dm::UiAnswer::NotExecuted
        | dm::UiAnswer::TimedOut
        | dm::UiAnswer::Failed => None,
    }
}

fn value_type(format: Option<&str>) -> ValueType {
    format
        .and_then(|f| f.parse::<Format>().ok())
        .map_or(ValueType::String, ValueType::from_dm_format)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One node the device reported a value (or no value) for.
#[derive(Debug)]
struct Reported {
    /// As reported; a `?prop=` query is kept (the value is the property's).
    path: NodePath,
    format: ValueType,
    mime_type: Option<String>,
    data: Option<String>,
}

/// The nodes in a device's report (`asked`: the Get it answers, if any), each on its own: a
/// TNDS document (`?list=TNDS`, TND 1.2 §8) is expanded node by node, so that every node is
/// filtered, cached and shown under its own path and never as one value of the listed node.
/// What the server asked decides, not what the device echoes: the answer to a TNDS listing is
/// read as TNDS whatever its Source or Type say. Credential nodes are dropped here, before
/// anything is stored (issue 8: never readable through the API).
fn reported_nodes(reports: &[NodeReport], asked: Option<&NodePath>) -> Vec<Reported> {
    let tnds_asked = asked.is_some_and(is_tnds_listing);
    let listed = asked.filter(|a| is_listing(a)).map(NodePath::without_query);
    let mut out = Vec::new();
    for r in reports {
        let Ok(path) = NodePath::dm(&r.uri) else {
            continue;
        };
        if tnds_asked || is_tnds(r) {
            expand_tnds(r, &path, &mut out);
            continue;
        }
        let on_listed = listed.as_ref() == Some(&path.without_query());
        if (is_listing(&path) || on_listed) && r.format.as_deref() == Some("xml") {
            // A listing answered with a document we cannot read as TNDS: dropping it is the
            // only way not to pass on nodes that cannot be checked one by one.
            tracing::warn!(path = %path, "unreadable listing result dropped");
            continue;
        }
        out.push(Reported {
            path,
            format: value_type(r.format.as_deref()),
            mime_type: r.mime_type.clone(),
            data: r.data.as_ref().map(data_text),
        });
    }
    out.retain(|n| !n.path.is_credential());
    out
}

/// Is `path` a TNDS listing (`?list=TNDS…`)?
fn is_tnds_listing(path: &NodePath) -> bool {
    matches!(path, NodePath::OmaDm(uri)
        if matches!(uri.query(), Some(UriQuery::List(ListKind::Tnds(_)))))
}

/// Is this report a TNDS document (by its MIME type or its echoed `?list=TNDS` Source)?
fn is_tnds(r: &NodeReport) -> bool {
    r.mime_type.as_deref().is_some_and(|t| t.contains("dmtnds")) || r.uri.contains("?list=TNDS")
}

fn expand_tnds(r: &NodeReport, listed: &NodePath, out: &mut Vec<Reported>) {
    let Some(text) = r.data.as_ref().map(data_text) else {
        return;
    };
    let tree = match omnidm_tree::MgmtTree::read(text.as_bytes()) {
        Ok(read) => read.tree,
        Err(e) => {
            tracing::warn!(path = %listed, error = %e, "unreadable TNDS result dropped");
            return;
        }
    };
    for node in tree.flatten().filter_map(Result::ok) {
        let mime_type = match &node.props.type_ {
            Some(omnidm_tree::NodeType::Mime(m)) => Some(m.clone()),
            _ => None,
        };
        out.push(Reported {
            path: NodePath::OmaDm(node.uri),
            format: ValueType::from_dm_format(node.format),
            mime_type,
            data: node.value.map(str::to_owned),
        });
    }
}

fn data_text(d: &Data) -> String {
    d.as_text().map_or_else(|| b64(d.as_bytes()), str::to_owned)
}

impl Reported {
    fn into_result(self) -> NodeResult {
        let value = self.data.map(|data| TypedValue {
            value_type: self.format,
            data,
            mime_type: self.mime_type,
        });
        NodeResult {
            path: self.path,
            value,
        }
    }

    /// The tree cache entry, for a node value (never for a listing or a property).
    fn tree_entry(&self, now: Timestamp) -> Option<TreeEntry> {
        if self.path.without_query() != self.path {
            return None;
        }
        Some(TreeEntry {
            path: self.path.clone(),
            format: self.format,
            mime_type: self.mime_type.clone(),
            // An interior node's data lists its children; the cache keeps only leaf values.
            value: match self.format {
                ValueType::Node => None,
                _ => self.data.clone(),
            },
            updated_at: now,
        })
    }
}

/// DevInfo/DevDetail leaves → the registry's device info (DM StdObj: DevInfo, DevDetail).
fn device_info(reports: &[NodeReport]) -> DeviceInfo {
    let mut info = DeviceInfo::default();
    for r in reports {
        let Some(value) = r.data.as_ref().and_then(Data::as_text).map(str::to_owned) else {
            continue;
        };
        let slot = match r.uri.trim_start_matches("./") {
            "DevInfo/Man" => &mut info.manufacturer,
            "DevInfo/Mod" => &mut info.model,
            "DevInfo/DmV" => &mut info.dm_version,
            "DevInfo/Lang" => &mut info.language,
            "DevDetail/FwV" => &mut info.firmware_version,
            "DevDetail/SwV" => &mut info.software_version,
            "DevDetail/HwV" => &mut info.hardware_version,
            "DevDetail/OEM" => &mut info.oem,
            "DevDetail/DevTyp" => &mut info.device_type,
            _ => continue,
        };
        *slot = Some(value);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnidm_core::{NewOperation, OperationId};
    use omnidm_omadm::server::{SessionEvent, StatusSource};
    use omnidm_syncml::StatusCode;

    fn op(id: u64, commands: Vec<OpCommand>) -> Operation {
        let device = DeviceId::new("IMEI:1").unwrap();
        NewOperation::new(device, commands).into_operation(OperationId(id), Timestamp(0))
    }

    fn path(s: &str) -> NodePath {
        NodePath::dm(s).unwrap()
    }

    fn status(tag: CommandTag, code: u16) -> SessionEvent {
        SessionEvent::CommandStatus {
            tag,
            status: StatusCode(code),
            source: StatusSource::Device,
        }
    }

    #[test]
    fn accepted_writes_and_deletes_reach_the_tree_cache() {
        let ops = vec![op(
            8,
            vec![
                OpCommand::Replace {
                    path: path("./Vendor/Greeting"),
                    value: TypedValue::string("hello"),
                },
                OpCommand::Atomic(vec![OpCommand::Replace {
                    path: path("./Vendor/Inside"),
                    value: TypedValue::int(1),
                }]),
                OpCommand::Delete {
                    path: path("./Vendor/Old"),
                },
                OpCommand::Replace {
                    path: path("./Vendor/Refused"),
                    value: TypedValue::int(2),
                },
            ],
        )];
        let mut ledger = Ledger::new(
            DeviceId::new("IMEI:1").unwrap(),
            SessionId("n:1".into()),
            ops,
        );
        let cmds = ledger.commands(Timestamp(1));
        let DmCommand::Atomic(inner) = &cmds[1].1 else {
            panic!("atomic expected")
        };
        let inner_tag = inner[0].0;
        ledger.apply(&status(cmds[0].0, 200), Timestamp(2));
        ledger.apply(&status(inner_tag, 200), Timestamp(2));
        let before = ledger.outcome(Timestamp(2), false);
        assert!(
            !before
                .tree
                .iter()
                .any(|e| e.path == path("./Vendor/Inside")),
            "an Atomic's child waits for the Atomic"
        );
        ledger.apply(&status(cmds[1].0, 200), Timestamp(3));
        ledger.apply(&status(cmds[2].0, 200), Timestamp(3));
        ledger.apply(&status(cmds[3].0, 405), Timestamp(3));
        let outcome = ledger.outcome(Timestamp(4), true);
        let cached: BTreeMap<String, Option<String>> = outcome
            .tree
            .iter()
            .map(|e| (e.path.to_string(), e.value.clone()))
            .collect();
        assert_eq!(cached["./Vendor/Greeting"].as_deref(), Some("hello"));
        assert_eq!(cached["./Vendor/Inside"].as_deref(), Some("1"));
        assert!(!cached.contains_key("./Vendor/Refused"));
        assert_eq!(outcome.tree_deleted, vec![path("./Vendor/Old")]);
    }

    #[test]
    fn commands_are_tagged_and_outcomes_land_on_their_index() {
        let ops = vec![op(
            7,
            vec![
                OpCommand::Get {
                    path: path("./DevInfo/Mod"),
                },
                OpCommand::Atomic(vec![
                    OpCommand::Replace {
                        path: path("./A"),
                        value: TypedValue::int(1),
                    },
                    OpCommand::Delete { path: path("./B") },
                ]),
            ],
        )];
        let mut ledger = Ledger::new(
            DeviceId::new("IMEI:1").unwrap(),
            SessionId("n:1".into()),
            ops,
        );
        let cmds = ledger.commands(Timestamp(1));
        assert_eq!(cmds.len(), 2, "two top-level commands");
        let (get_tag, atomic_tag) = (cmds[0].0, cmds[1].0);
        let DmCommand::Atomic(inner) = &cmds[1].1 else {
            panic!("atomic expected")
        };
        let (replace_tag, delete_tag) = (inner[0].0, inner[1].0);

        let report = NodeReport {
            uri: "./DevInfo/Mod".into(),
            format: Some("chr".into()),
            mime_type: Some("text/plain".into()),
            data: Some(Data::Text("Phone X".into())),
        };
        // Results before the status, as the engine reports them.
        ledger.apply(
            &SessionEvent::CommandResults {
                tag: get_tag,
                items: vec![report],
            },
            Timestamp(2),
        );
        ledger.apply(&status(get_tag, 200), Timestamp(2));
        ledger.apply(&status(replace_tag, 200), Timestamp(2));
        ledger.apply(&status(delete_tag, 404), Timestamp(2));
        let outcome = ledger.outcome(Timestamp(3), false);
        assert!(
            !outcome.operations[0].finished,
            "the Atomic itself has no status yet"
        );
        ledger.apply(&status(atomic_tag, 507), Timestamp(3));
        let outcome = ledger.outcome(Timestamp(3), true);
        let progress = &outcome.operations[0];
        assert!(progress.finished);
        assert_eq!(progress.sent, vec![0, 1]);
        let by_index: BTreeMap<_, _> = progress
            .outcomes
            .iter()
            .map(|o| (o.index.clone(), o))
            .collect();
        assert_eq!(by_index[&vec![0]].status, 200);
        assert_eq!(
            by_index[&vec![0]].results[0]
                .value
                .as_ref()
                .map(|v| v.data.as_str()),
            Some("Phone X")
        );
        assert_eq!(by_index[&vec![1]].status, 507);
        assert_eq!(by_index[&vec![1, 1]].status, 404);
        assert_eq!(
            outcome.tree.len(),
            1,
            "the Get's result is cached; the Replace inside the failed Atomic is not"
        );
        assert!(outcome.tree_deleted.is_empty());
    }

    #[test]
    fn devinfo_becomes_device_info_and_tree_cache() {
        let mut ledger = Ledger::new(
            DeviceId::new("IMEI:1").unwrap(),
            SessionId("n:1".into()),
            Vec::new(),
        );
        let leaf = |uri: &str, v: &str| NodeReport {
            uri: uri.into(),
            format: Some("chr".into()),
            mime_type: None,
            data: Some(Data::Text(v.into())),
        };
        let interior = NodeReport {
            uri: "./DevInfo/Ext".into(),
            format: Some("node".into()),
            mime_type: None,
            data: Some(Data::Text("a/b".into())),
        };
        ledger.apply(
            &SessionEvent::DeviceInfo(vec![
                leaf("./DevInfo/Mod", "M1"),
                leaf("./DevInfo/Man", "Acme"),
                interior,
            ]),
            Timestamp(5),
        );
        let outcome = ledger.outcome(Timestamp(6), true);
        let info = outcome.contact.unwrap();
        assert_eq!(
            (info.model.as_deref(), info.manufacturer.as_deref()),
            (Some("M1"), Some("Acme"))
        );
        let ext = outcome
            .tree
            .iter()
            .find(|e| e.path == path("./DevInfo/Ext"))
            .unwrap();
        assert_eq!(
            (ext.format, ext.value.as_deref()),
            (ValueType::Node, None),
            "interior nodes keep no value"
        );
    }

    fn report(uri: &str, format: &str, mime: Option<&str>, v: &str) -> NodeReport {
        NodeReport {
            uri: uri.into(),
            format: Some(format.into()),
            mime_type: mime.map(str::to_owned),
            data: Some(Data::Text(v.into())),
        }
    }

    /// Runs one Get whose Results are `items`; returns the outcome's results and tree cache.
    fn get_answered(get: &str, items: Vec<NodeReport>) -> (Vec<NodeResult>, Vec<TreeEntry>) {
        let ops = vec![op(1, vec![OpCommand::Get { path: path(get) }])];
        let mut ledger = Ledger::new(
            DeviceId::new("IMEI:1").unwrap(),
            SessionId("n:1".into()),
            ops,
        );
        let tag = ledger.commands(Timestamp(1))[0].0;
        ledger.apply(&SessionEvent::CommandResults { tag, items }, Timestamp(2));
        ledger.apply(&status(tag, 200), Timestamp(2));
        let outcome = ledger.outcome(Timestamp(3), true);
        let results = outcome.operations[0].outcomes[0].results.clone();
        (results, outcome.tree)
    }

    /// Issue 8 item 1: a StructData listing of a DM account never yields its secrets, in the
    /// results or in the tree cache, and nodes outside the node asked for are dropped.
    #[test]
    fn listings_drop_credentials_and_foreign_nodes() {
        let (results, tree) = get_answered(
            "./DMAcc/srv1?list=StructData",
            vec![
                report("./DMAcc/srv1/ServerID", "chr", None, "omnidm"),
                report("./DMAcc/srv1/AppAuth/SRV/AAuthName", "chr", None, "omnidm"),
                report(
                    "./DMAcc/srv1/AppAuth/SRV/AAuthSecret",
                    "chr",
                    None,
                    "s3cret",
                ),
                report(
                    "./DMAcc/srv1/AppAuth/CLI/AAuthData",
                    "b64",
                    None,
                    "bm9uY2U=",
                ),
                report("./Vendor/Other/Leak", "chr", None, "x"),
            ],
        );
        let paths: Vec<String> = results.iter().map(|r| r.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "./DMAcc/srv1/ServerID",
                "./DMAcc/srv1/AppAuth/SRV/AAuthName"
            ]
        );
        assert!(tree.iter().all(|e| !e.path.is_credential()), "{tree:?}");
        assert!(tree.iter().all(
            |e| e.value.as_deref() != Some("s3cret") && e.value.as_deref() != Some("bm9uY2U=")
        ));
    }

    /// Issue 8 item 1: a TNDS listing is expanded node by node (so each node can be checked on
    /// its own) and is never cached as the value of the listed node.
    #[test]
    fn tnds_listings_are_expanded_and_not_cached_under_the_listed_node() {
        let tnds = r#"<MgmtTree><VerDTD>1.2</VerDTD>
            <Node><NodeName>srv1</NodeName><Path>./DMAcc</Path>
              <Node><NodeName>ServerID</NodeName><Value>omnidm</Value></Node>
              <Node><NodeName>AppAuth</NodeName><Node><NodeName>SRV</NodeName>
                <Node><NodeName>AAuthSecret</NodeName><Value>s3cret</Value></Node>
              </Node></Node>
            </Node></MgmtTree>"#;
        let (results, tree) = get_answered(
            "./DMAcc/srv1?list=TNDS+Value",
            vec![report(
                "./DMAcc/srv1?list=TNDS+Value",
                "xml",
                Some("application/vnd.syncml.dmtnds+xml"),
                tnds,
            )],
        );
        let by_path: HashMap<String, Option<String>> = results
            .iter()
            .map(|r| (r.path.to_string(), r.value.as_ref().map(|v| v.data.clone())))
            .collect();
        assert_eq!(by_path["./DMAcc/srv1/ServerID"].as_deref(), Some("omnidm"));
        assert!(by_path.contains_key("./DMAcc/srv1/AppAuth/SRV"));
        assert!(
            !by_path.keys().any(|p| p.contains("AAuthSecret")),
            "{by_path:?}"
        );
        let listed = tree.iter().find(|e| e.path == path("./DMAcc/srv1"));
        assert!(
            listed.is_none_or(|e| e.value.is_none()),
            "the listing is not the listed node's value: {listed:?}"
        );
        assert!(tree.iter().any(|e| e.path == path("./DMAcc/srv1/ServerID")));
        assert!(!tree.iter().any(|e| e.path.is_credential()));

        let (results, _) = get_answered(
            "./DMAcc/srv1?list=TNDS",
            vec![report("./DMAcc/srv1?list=TNDS", "xml", None, "<not-tnds")],
        );
        assert!(
            results.is_empty(),
            "an unreadable listing is dropped: {results:?}"
        );
    }

    /// Issue 8 item 1 (review): what the server asked decides how an answer is read. A TNDS
    /// listing answered without `?list=` in its Source and without the TNDS type is still
    /// expanded node by node; an `xml` value on the listed node of a StructData listing is
    /// not a node value; a plain Get keeps only the node asked for.
    #[test]
    fn answers_are_read_as_what_was_asked() {
        let tnds = "<MgmtTree><Node><NodeName>srv1</NodeName><Path>./DMAcc</Path>\
                    <Node><NodeName>AAuthSecret</NodeName><Value>s3cret</Value></Node>\
                    <Node><NodeName>Name</NodeName><Value>n</Value></Node></Node></MgmtTree>";
        let (results, tree) = get_answered(
            "./DMAcc/srv1?list=TNDS+Value",
            vec![report("./DMAcc/srv1", "xml", None, tnds)],
        );
        let paths: Vec<String> = results.iter().map(|r| r.path.to_string()).collect();
        assert_eq!(paths, ["./DMAcc/srv1", "./DMAcc/srv1/Name"]);
        assert!(
            results
                .iter()
                .all(|r| r.value.as_ref().is_none_or(|v| !v.data.contains("s3cret")))
        );
        assert!(
            tree.iter()
                .all(|e| e.value.as_deref().is_none_or(|v| !v.contains("s3cret")))
        );

        let (results, tree) = get_answered(
            "./DMAcc/srv1?list=StructData",
            vec![
                report("./DMAcc/srv1", "xml", None, tnds),
                report("./DMAcc/srv1/Name", "chr", None, "n"),
            ],
        );
        let paths: Vec<String> = results.iter().map(|r| r.path.to_string()).collect();
        assert_eq!(paths, ["./DMAcc/srv1/Name"]);
        assert!(
            tree.iter()
                .all(|e| e.value.as_deref().is_none_or(|v| !v.contains("s3cret")))
        );

        let (results, _) = get_answered(
            "./DevInfo/Ext",
            vec![
                report("./DevInfo/Ext", "node", None, "Deep"),
                report("./DevInfo/Ext/Deep", "chr", None, "below what was asked"),
            ],
        );
        let paths: Vec<String> = results.iter().map(|r| r.path.to_string()).collect();
        assert_eq!(
            paths,
            ["./DevInfo/Ext"],
            "a plain Get answers for its node only"
        );
    }

    /// Issue 9 item 11: commands the engine reports as never sent (`Ended { unsent }`) are
    /// not recorded as sent, so the store's recovery requeues them.
    #[test]
    fn commands_the_engine_never_sent_are_reported_unsent() {
        let ops = vec![op(
            1,
            vec![
                OpCommand::Get {
                    path: path("./DevInfo/Mod"),
                },
                OpCommand::Exec {
                    path: path("./FUMO/fw1/Update"),
                    data: None,
                    correlator: None,
                },
            ],
        )];
        let mut ledger = Ledger::new(
            DeviceId::new("IMEI:1").unwrap(),
            SessionId("n:1".into()),
            ops,
        );
        let tags: Vec<CommandTag> = ledger.commands(Timestamp(1)).iter().map(|c| c.0).collect();
        ledger.apply(&status(tags[0], 200), Timestamp(2));
        let ended = ledger.apply(
            &SessionEvent::Ended {
                reason: dm::EndReason::TimedOut,
                unsent: vec![tags[1]],
                unanswered: vec![],
            },
            Timestamp(3),
        );
        assert!(ended);
        let progress = &ledger.outcome(Timestamp(3), true).operations[0];
        assert_eq!(
            (progress.sent.clone(), progress.unsent.clone()),
            (vec![0], vec![1])
        );
    }

    #[test]
    fn commands_dm_cannot_express_fail_without_reaching_the_device() {
        let tr069 =
            NodePath::parse_for(omnidm_core::Protocol::Tr069, "Device.DeviceInfo.ModelName")
                .unwrap();
        let ops = vec![op(1, vec![OpCommand::Get { path: tr069 }])];
        let mut ledger = Ledger::new(
            DeviceId::new("IMEI:1").unwrap(),
            SessionId("n:1".into()),
            ops,
        );
        assert!(ledger.commands(Timestamp(1)).is_empty());
        let outcome = ledger.outcome(Timestamp(2), true);
        assert!(outcome.operations[0].finished);
        assert_eq!(outcome.operations[0].outcomes[0].status, NOT_EXPRESSIBLE);
        assert!(outcome.operations[0].sent.is_empty());
    }
}
