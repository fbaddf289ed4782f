//! Durable operations: a typed, protocol-neutral command list for one device, its
//! lifecycle and its per-command outcomes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::error::TransitionError;
use crate::job::JobId;
use crate::path::NodePath;
use crate::time::Timestamp;
use crate::value::TypedValue;

/// Operation identifier: a positive 64-bit integer assigned by the store, increasing in
/// submission order.
///
/// Why an integer and not a UUID: ids are the primary key of the busiest table and the
/// per-device FIFO order (claims return a device's operations by ascending id), so a
/// compact, ordered key makes the indexes small and the order free. Both backends hand
/// them out atomically (SQLite `AUTOINCREMENT`, PostgreSQL `BIGSERIAL` shared by all
/// nodes), so several server nodes never collide. The API may present them as opaque text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperationId(pub u64);

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Marks the protocol session that holds claimed operations (chosen by the session
/// engine; unique per session, e.g. node id + counter).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub String);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an operation is in its life.
///
/// ```text
/// queued ──claim──► in_session ──complete──► succeeded | failed
///   │  ▲                │
///   │  │                └──complete (an Exec answered 202)──► awaiting_report
///   │  │                                                         │
///   │  │       Generic Alert 1226 (ResultCode) or the deadline ──┴──► succeeded | failed
///   │  │                                   cancel ──► cancelled ◄──┘
///   │  └──release───────┘ (session broke; nothing lost, see recover_interrupted)
///   ├──► expired    (expires_at passed while queued)
///   └──► cancelled  (by the submitter while queued)
/// ```
///
/// `awaiting_report` (issue 9 item 5): an Exec the device answered 202 "accepted for
/// processing" is not done (DM Protocol 1.2 §10.1 Exec and Generic Alert; FUMO 1.0 §10.2,
/// SCOMO 1.0, DiagMon 1.0: the device reports completion later with a Generic Alert 1226
/// carrying the Exec's Correlator and a result code). The operation waits for that report
/// until its `report_deadline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    /// Waiting for a session with the device.
    Queued,
    /// Claimed by a session; commands may be on their way to the device.
    InSession,
    /// Every command answered with success.
    Succeeded,
    /// At least one command failed, or was interrupted with unknown outcome.
    Failed,
    /// Its expiry passed before a session took it.
    Expired,
    /// Cancelled before a session took it, or while awaiting a report.
    Cancelled,
    /// Every command was answered, and an Exec the device accepted (202) waits for its
    /// asynchronous report (Generic Alert 1226) until the operation's `report_deadline`.
    AwaitingReport,
}

impl OpState {
    /// Every state.
    pub const ALL: [OpState; 7] = [
        OpState::Queued,
        OpState::InSession,
        OpState::Succeeded,
        OpState::Failed,
        OpState::Expired,
        OpState::Cancelled,
        OpState::AwaitingReport,
    ];

    /// Stable snake_case name, used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            OpState::Queued => "queued",
            OpState::InSession => "in_session",
            OpState::Succeeded => "succeeded",
            OpState::Failed => "failed",
            OpState::Expired => "expired",
            OpState::Cancelled => "cancelled",
            OpState::AwaitingReport => "awaiting_report",
        }
    }

    /// Inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<OpState> {
        OpState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            OpState::Queued | OpState::InSession | OpState::AwaitingReport
        )
    }

    /// The one place that says which transitions are legal.
    ///
    /// In-session operations cannot be cancelled or expired: commands may already be on
    /// the device, so the session (or recovery) decides their fate. An operation awaiting a
    /// report can be cancelled (decision 86): the server stops waiting; what the device does
    /// is its own business, and a report arriving later is recorded as late.
    pub fn check_transition(self, to: OpState) -> Result<(), TransitionError> {
        use OpState::*;
        let ok = matches!(
            (self, to),
            (Queued, InSession | Expired | Cancelled)
                | (InSession, Queued | Succeeded | Failed | AwaitingReport)
                | (AwaitingReport, Succeeded | Failed | Cancelled)
        );
        if ok {
            Ok(())
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for OpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status codes that omnidm itself assigns. Everything else in
/// [`CommandOutcome::status`] is the device protocol's own code, kept as data (OMA DM
/// 1xx–5xx, CoAP classes as 2xx–5xx, TR-069 faults 9000–9899); 9xx is free in all three.
pub mod status {
    /// The command was sent in a session that broke before its answer arrived, and it is
    /// not safe to send again: whether the device executed it is unknown.
    pub const INTERRUPTED: u16 = 900;
    /// The command was never sent because the operation stopped before it.
    pub const NOT_EXECUTED: u16 = 901;
    /// The device accepted an Exec (202) but its asynchronous report (Generic Alert 1226)
    /// did not arrive before the operation's `report_deadline` (decision 87).
    pub const REPORT_TIMEOUT: u16 = 902;
    /// OMA DM 1.2 "Accepted for processing": for an Exec, the work goes on after the session
    /// and its result comes later in a Generic Alert 1226.
    pub const ACCEPTED: u16 = 202;

    /// True for success codes: 2xx in OMA DM and CoAP, and the SCOMO 1.0 result codes
    /// 1200–1299 ("Successful", vendor-specified successes; SCOMO §8.7) that an asynchronous
    /// report may carry as a command's final status.
    pub fn is_success(code: u16) -> bool {
        (200..300).contains(&code) || (1200..1300).contains(&code)
    }
}

/// The spec names of the result codes an asynchronous report (Generic Alert 1226) carries as
/// its Data, for the command outcome's `reason` (issue 9 item 5: "the code and its meaning
/// shown").
///
/// - FUMO 1.0 §10.2 (Generic Alert with type `org.openmobilealliance.dm.firmwareupdate.*`):
///   200 Successful, 250–299 vendor successes, 400–412 client errors, 450–499 vendor client
///   errors, 500–503 alternate download server / out of memory / network, 550–599 vendor.
/// - SCOMO 1.0 §8.7 (`org.openmobilealliance.dm.softwarecomponent.*`): the same scheme shifted
///   by 1000 (1200 Successful, 14xx client errors, 15xx download server errors).
/// - DiagMon 1.0 (`urn:oma:at:diagmon:1.0:*`) reuses the FUMO pattern for OperationComplete.
pub mod result_code {
    /// The spec name of `code` in a completion report whose alert type is `alert_type`
    /// (SCOMO when the type is a software-component one or the code is 1xxx), `None` when
    /// the specifications give it no name.
    pub fn meaning(alert_type: Option<&str>, code: u16) -> Option<&'static str> {
        let scomo = alert_type.is_some_and(|t| t.contains("softwarecomponent"))
            || (1000..2000).contains(&code);
        if scomo {
            scomo_meaning(code)
        } else {
            fumo_meaning(code)
        }
    }

    /// FUMO 1.0 §10.2 result codes.
    pub fn fumo_meaning(code: u16) -> Option<&'static str> {
        Some(match code {
            200 => "Successful",
            250..=299 => "Successful - Vendor Specified",
            400 => "Management Client Error",
            401 => "User Cancelled",
            402 => "Corrupted Firmware Update Package",
            403 => "Firmware Update Package - Device Mismatch",
            404 => "Failed Firmware Update Package Validation",
            405 => "Firmware Update Package Not Acceptable",
            406 => "Alternate Download Authentication Failure",
            407 => "Alternate Download Request Time-Out",
            408 => "Not Implemented",
            409 => "Undefined Error",
            410 => "Firmware Update Failed",
            411 => "Malformed or Bad URL",
            412 => "Alternate Download Server Unavailable",
            450..=499 => "Client Error - Vendor Specified",
            500 => "Alternate Download Server Error",
            501 => "Download Fails due to Device is Out of Memory",
            502 => "Firmware Update Fails due to Device Out of Memory",
            503 => "Download Fails due to Network Issues",
            550..=599 => "Alternate Download Server Error - Vendor Specified",
            _ => return None,
        })
    }

    /// SCOMO 1.0 §8.7 result codes.
    pub fn scomo_meaning(code: u16) -> Option<&'static str> {
        Some(match code {
            1200 => "Successful",
            1250..=1299 => "Successful - Vendor Specified",
            1400 => "Client Error",
            1401 => "User Cancelled",
            1402 => "Download Failed",
            1403 => "Alternate Download Authentication Failure",
            1404 => "Download Failed due to Device is Out of Memory",
            1405 => "Install Failed",
            1406 => "Install Failed due to Device Out of Memory",
            1407 => "Failed Package Validation",
            1408 => "Remove Failed",
            1409 => "Activate Failed",
            1410 => "Deactivate Failed",
            1411 => "Not Implemented",
            1412 => "Undefined Error",
            1413 => "Operation Rejected - Unsupported Environment",
            1450..=1499 => "Client Error - Vendor Specified",
            1500 => "Alternate Download Server Error",
            1501 => "Alternate Download Server Unavailable",
            1550..=1599 => "Alternate Download Server Error - Vendor Specified",
            _ => return None,
        })
    }
}

/// How long an operation waits for the asynchronous report of an accepted Exec when nobody
/// said otherwise (the server's `[dm] report_timeout_secs` normally does): 24 hours.
pub const DEFAULT_REPORT_TIMEOUT_MS: i64 = 24 * 60 * 60 * 1000;

/// The `reason` of an outcome failed by [`status::REPORT_TIMEOUT`].
pub const REPORT_TIMEOUT_REASON: &str = "report_timeout";

/// A report that arrived for a command that was no longer waiting for one (its operation
/// finished, timed out or was cancelled, or the command was settled already): kept beside the
/// outcome it would have changed, which it does not change (decision 88).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateReport {
    /// The result code the device reported.
    pub status: u16,
    /// Its spec name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it arrived.
    pub received_at: Timestamp,
}

/// What [`Operation::apply_report`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportEffect {
    /// The command was awaiting it: its outcome is now the report's. `finished` when it was
    /// the last report the operation waited for (the operation left `awaiting_report`).
    Settled {
        /// The operation reached `succeeded`/`failed`.
        finished: bool,
    },
    /// The operation is still in its session: the outcome is recorded, the session (or
    /// recovery) finishes the operation.
    Recorded,
    /// Nothing awaited it: kept as the outcome's [`LateReport`], state unchanged.
    Late,
}

/// The kind of user interaction (OMA DM alerts 1100–1104).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UiKind {
    /// 1100: show a message.
    Display,
    /// 1101: ask yes/no.
    Confirm,
    /// 1102: ask for text.
    TextInput,
    /// 1103: pick one.
    SingleChoice,
    /// 1104: pick several.
    MultipleChoice,
}

/// A user-interaction prompt, with the DM 1.2 alert options (MINDT, MAXDT, DR, MAXLEN, IT,
/// ET) as typed fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiPrompt {
    /// What is asked.
    pub kind: UiKind,
    /// The text shown.
    pub text: String,
    /// Choices for single/multiple choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// MINDT: seconds the prompt stays at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_display_time: Option<u32>,
    /// MAXDT: seconds after which the device gives up waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_display_time: Option<u32>,
    /// DR: default response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_response: Option<String>,
    /// MAXLEN: longest text input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u32>,
    /// IT: input type (`A` alphanumeric, `N` numeric, `D` date, `T` time, `P` phone, `I` IP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_type: Option<String>,
    /// ET: echo type (`T` text, `P` password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<String>,
}

/// The user's answer to a [`UiPrompt`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UiAnswer {
    /// Confirm: yes or no.
    Confirmed(bool),
    /// Text input.
    Text(String),
    /// Chosen items (1-based, as DM numbers them).
    Choices(Vec<u32>),
}

/// One command of an operation, protocol-neutral (each adapter maps it: DM Get ↔ LwM2M
/// Read ↔ TR-069 GetParameterValues, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpCommand {
    /// Read a node (or a subtree with a DM `?list=` query).
    Get {
        /// Node.
        path: NodePath,
    },
    /// Set an existing node's value.
    Replace {
        /// Node.
        path: NodePath,
        /// New value.
        value: TypedValue,
    },
    /// Create a node (interior when `value` is `None`).
    Add {
        /// Node.
        path: NodePath,
        /// Initial value.
        #[serde(default)]
        value: Option<TypedValue>,
    },
    /// Remove a node.
    Delete {
        /// Node.
        path: NodePath,
    },
    /// Execute a node (FUMO `Update`, LwM2M Execute, …).
    Exec {
        /// Node.
        path: NodePath,
        /// Argument data.
        #[serde(default)]
        data: Option<String>,
        /// Correlator echoed by the later asynchronous report (DM Generic Alert 1226).
        #[serde(default)]
        correlator: Option<String>,
    },
    /// Copy a node.
    Copy {
        /// Source.
        from: NodePath,
        /// Target.
        to: NodePath,
    },
    /// All or nothing.
    Atomic(Vec<OpCommand>),
    /// In order.
    Sequence(Vec<OpCommand>),
    /// Ask the user.
    UserInteraction(UiPrompt),
}

impl OpCommand {
    /// True if sending the command again after an unknown outcome cannot do harm.
    ///
    /// - `Get`: reads only.
    /// - `Replace`: sets an absolute value; applying it twice leaves the same state. (The
    ///   operations of one device run in id order and a broken session releases all of them
    ///   together, so no later write of ours can sit between the two attempts.)
    /// - `Add`, `Delete`, `Copy`: a second attempt fails (already exists / not found) or
    ///   creates a second copy, and would report a misleading outcome.
    /// - `Exec`: side effects (a firmware update, a reboot); never twice.
    /// - `UserInteraction`: the user may already have answered; asking again is visible.
    /// - `Atomic`/`Sequence`: idempotent iff every child is.
    pub fn is_idempotent(&self) -> bool {
        match self {
            OpCommand::Get { .. } | OpCommand::Replace { .. } => true,
            OpCommand::Add { .. }
            | OpCommand::Delete { .. }
            | OpCommand::Exec { .. }
            | OpCommand::Copy { .. }
            | OpCommand::UserInteraction(_) => false,
            OpCommand::Atomic(c) | OpCommand::Sequence(c) => c.iter().all(Self::is_idempotent),
        }
    }

    /// The command at `index` (top-level index, then positions inside Atomic/Sequence), as
    /// outcomes address it.
    pub fn at<'a>(commands: &'a [OpCommand], index: &[u32]) -> Option<&'a OpCommand> {
        let (first, rest) = index.split_first()?;
        let cmd = commands.get(usize::try_from(*first).ok()?)?;
        if rest.is_empty() {
            return Some(cmd);
        }
        match cmd {
            OpCommand::Atomic(children) | OpCommand::Sequence(children) => {
                OpCommand::at(children, rest)
            }
            _ => None,
        }
    }

    /// Stable lowercase name (for logs, metrics, ACL checks).
    pub fn name(&self) -> &'static str {
        match self {
            OpCommand::Get { .. } => "get",
            OpCommand::Replace { .. } => "replace",
            OpCommand::Add { .. } => "add",
            OpCommand::Delete { .. } => "delete",
            OpCommand::Exec { .. } => "exec",
            OpCommand::Copy { .. } => "copy",
            OpCommand::Atomic(_) => "atomic",
            OpCommand::Sequence(_) => "sequence",
            OpCommand::UserInteraction(_) => "ui",
        }
    }
}

/// A value the device returned (DM Results, TR-069 GPV response, LwM2M Read payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResult {
    /// The node.
    pub path: NodePath,
    /// Its value; `None` when the device gave none.
    #[serde(default)]
    pub value: Option<TypedValue>,
}

/// What happened to one command. Device faults are data here, not errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// Position of the command: `[i]` for the i-th top-level command, `[i, j]` for the
    /// j-th child of an Atomic/Sequence at `i`, and so on.
    pub index: Vec<u32>,
    /// Protocol status code, or one of [`status`]'s own codes.
    pub status: u16,
    /// Values returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<NodeResult>,
    /// The user's answer to a UI prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<UiAnswer>,
    /// What the status means where the protocol status alone does not say it: the spec name
    /// of a FUMO/SCOMO result code an asynchronous report brought ([`result_code`]), or
    /// [`REPORT_TIMEOUT_REASON`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an Exec accepted with 202: until when its asynchronous report is awaited (the
    /// adapter sets it from the server's configuration; [`DEFAULT_REPORT_TIMEOUT_MS`] else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_deadline: Option<Timestamp>,
    /// A report that came when nothing awaited it any more (decision 88).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_report: Option<LateReport>,
    /// When it was known.
    pub finished_at: Timestamp,
}

impl CommandOutcome {
    /// Did the command do its job? A 2xx status, or an answer from the device's user: a
    /// "No" to a confirmation (304, DM Protocol 1.2 §10.2 user interaction) is an answer that
    /// flows such as "ask, then install" branch on, not a failure of the operation (issue 9
    /// item 4). Timed-out (408) or refused (406) prompts carry no answer and fail.
    pub fn succeeded(&self) -> bool {
        status::is_success(self.status) || self.answer.is_some()
    }

    /// An outcome with a status and nothing else.
    pub fn status(index: Vec<u32>, status: u16, at: Timestamp) -> CommandOutcome {
        CommandOutcome {
            index,
            status,
            results: Vec::new(),
            answer: None,
            reason: None,
            report_deadline: None,
            late_report: None,
            finished_at: at,
        }
    }
}

/// An operation as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Identity.
    pub id: OperationId,
    /// The device it runs on.
    pub device_id: DeviceId,
    /// What to do, in order.
    pub commands: Vec<OpCommand>,
    /// Where it is.
    pub state: OpState,
    /// Submission time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// After this, a still-queued operation expires; `None` = never.
    pub expires_at: Option<Timestamp>,
    /// Ask the device to call in (package 0 / connection request) when submitted.
    pub notify: bool,
    /// Outcomes known so far, ordered by index.
    pub outcomes: Vec<CommandOutcome>,
    /// Per top-level command: sent to the device in the current session.
    pub sent: Vec<bool>,
    /// The session holding it while `in_session`.
    pub session: Option<SessionId>,
    /// Times a session has claimed it.
    pub attempts: u32,
    /// The job (API operation) this device operation was fanned out from, if any.
    #[serde(default)]
    pub job_id: Option<JobId>,
    /// Who submitted it (application id), for events and charging.
    pub submitted_by: Option<String>,
    /// While `awaiting_report`: the earliest deadline of the Execs still waiting for their
    /// asynchronous report; the background sweep fails them with
    /// [`status::REPORT_TIMEOUT`] once it passed. `None` in every other state.
    #[serde(default)]
    pub report_deadline: Option<Timestamp>,
}

/// What a submitter supplies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOperation {
    /// Target device.
    pub device_id: DeviceId,
    /// Commands, in order (must not be empty).
    pub commands: Vec<OpCommand>,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Ask the device to call in.
    pub notify: bool,
    /// Submitter.
    pub submitted_by: Option<String>,
    /// The job it belongs to, if fanned out from one.
    #[serde(default)]
    pub job_id: Option<JobId>,
}

impl NewOperation {
    /// An operation on `device_id` with no expiry, no notification, no submitter.
    pub fn new(device_id: DeviceId, commands: Vec<OpCommand>) -> NewOperation {
        NewOperation {
            device_id,
            commands,
            expires_at: None,
            notify: false,
            submitted_by: None,
            job_id: None,
        }
    }

    /// The operation record as submitted at `now` under `id`.
    pub fn into_operation(self, id: OperationId, now: Timestamp) -> Operation {
        let n = self.commands.len();
        Operation {
            id,
            device_id: self.device_id,
            commands: self.commands,
            state: OpState::Queued,
            created_at: now,
            updated_at: now,
            expires_at: self.expires_at,
            notify: self.notify,
            outcomes: Vec::new(),
            sent: vec![false; n],
            session: None,
            attempts: 0,
            job_id: self.job_id,
            submitted_by: self.submitted_by,
            report_deadline: None,
        }
    }
}

/// Which operations a listing returns, in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpFilter {
    /// Only this device's.
    pub device_id: Option<DeviceId>,
    /// Only in this state.
    pub state: Option<OpState>,
    /// Only those submitted with (or without) a request to notify the device.
    pub notify: Option<bool>,
    /// Only ids greater than this (cursor).
    pub after: Option<OperationId>,
    /// Page size (0 = the store's default).
    pub limit: u32,
}

impl Operation {
    /// Moves to `to` at `now` if the lifecycle allows it.
    pub fn transition(&mut self, to: OpState, now: Timestamp) -> Result<(), TransitionError> {
        self.state.check_transition(to)?;
        self.state = to;
        self.updated_at = now;
        if to != OpState::InSession {
            self.session = None;
        }
        if to != OpState::AwaitingReport {
            self.report_deadline = None;
        }
        Ok(())
    }

    /// True when `o` is an Exec's 202 "accepted for processing" still waiting for its
    /// asynchronous report (Generic Alert 1226).
    fn is_awaiting(&self, o: &CommandOutcome) -> bool {
        o.status == status::ACCEPTED
            && matches!(
                OpCommand::at(&self.commands, &o.index),
                Some(OpCommand::Exec { .. })
            )
    }

    /// The outcomes of Execs accepted (202) and not yet reported.
    pub fn awaiting_reports(&self) -> impl Iterator<Item = &CommandOutcome> {
        self.outcomes.iter().filter(|o| self.is_awaiting(o))
    }

    /// Where an operation whose commands were all answered goes: `failed` if a top-level
    /// command failed or an Exec's report said it failed (at any depth), else
    /// `awaiting_report` while an accepted Exec waits for its report, else `succeeded`.
    fn verdict(&self) -> OpState {
        let top_ok = (0..self.commands.len())
            .all(|i| self.outcome_of(i).is_some_and(CommandOutcome::succeeded));
        let execs_ok = self.outcomes.iter().all(|o| {
            o.succeeded()
                || !matches!(
                    OpCommand::at(&self.commands, &o.index),
                    Some(OpCommand::Exec { .. })
                )
        });
        if !(top_ok && execs_ok) {
            OpState::Failed
        } else if self.awaiting_reports().next().is_some() {
            OpState::AwaitingReport
        } else {
            OpState::Succeeded
        }
    }

    /// Gives every awaiting outcome a deadline (`now` + [`DEFAULT_REPORT_TIMEOUT_MS`] where
    /// the adapter set none) and the operation the earliest of them.
    fn set_report_deadline(&mut self, now: Timestamp) {
        let awaiting: Vec<Vec<u32>> = self.awaiting_reports().map(|o| o.index.clone()).collect();
        let mut earliest: Option<Timestamp> = None;
        for o in self
            .outcomes
            .iter_mut()
            .filter(|o| awaiting.contains(&o.index))
        {
            let d = *o
                .report_deadline
                .get_or_insert(now.plus_millis(DEFAULT_REPORT_TIMEOUT_MS));
            earliest = Some(earliest.map_or(d, |e| e.min(d)));
        }
        self.report_deadline = earliest;
    }

    /// Applies the asynchronous report of the Exec at `report.index` (Generic Alert 1226,
    /// DM Protocol 1.2 §8.7 / FUMO 1.0 §10.2): its result code decides the command (2xx
    /// succeeds, anything else fails). See [`ReportEffect`] for the three cases.
    pub fn apply_report(&mut self, report: CommandOutcome, now: Timestamp) -> ReportEffect {
        let awaited = self
            .outcomes
            .iter()
            .any(|o| o.index == report.index && self.is_awaiting(o));
        match self.state {
            OpState::InSession => {
                self.merge_outcomes([report]);
                self.updated_at = now;
                ReportEffect::Recorded
            }
            OpState::AwaitingReport if awaited => {
                self.merge_outcomes([report]);
                self.updated_at = now;
                let next = self.verdict();
                if next == OpState::AwaitingReport {
                    self.set_report_deadline(now);
                    ReportEffect::Settled { finished: false }
                } else {
                    // Legal by construction: awaiting_report → succeeded | failed.
                    let _ = self.transition(next, now);
                    ReportEffect::Settled { finished: true }
                }
            }
            _ => {
                if let Some(o) = self.outcomes.iter_mut().find(|o| o.index == report.index) {
                    o.late_report = Some(LateReport {
                        status: report.status,
                        reason: report.reason,
                        received_at: now,
                    });
                    self.updated_at = now;
                }
                ReportEffect::Late
            }
        }
    }

    /// The deadline passed with reports still missing: every awaiting Exec gets
    /// [`status::REPORT_TIMEOUT`] with reason [`REPORT_TIMEOUT_REASON`], and the operation
    /// fails. Returns the outcomes it changed (empty, and nothing done, unless the operation
    /// is `awaiting_report`).
    pub fn fail_unreported(&mut self, now: Timestamp) -> Vec<CommandOutcome> {
        if self.state != OpState::AwaitingReport {
            return Vec::new();
        }
        let timed_out: Vec<CommandOutcome> = self
            .awaiting_reports()
            .map(|o| CommandOutcome {
                status: status::REPORT_TIMEOUT,
                reason: Some(REPORT_TIMEOUT_REASON.to_owned()),
                finished_at: now,
                ..o.clone()
            })
            .collect();
        self.merge_outcomes(timed_out.clone());
        let _ = self.transition(OpState::Failed, now);
        timed_out
    }

    /// Records top-level commands as sent. Indices out of range are ignored.
    pub fn mark_sent(&mut self, indices: &[usize]) {
        self.sent.resize(self.commands.len(), false);
        for &i in indices {
            if let Some(s) = self.sent.get_mut(i) {
                *s = true;
            }
        }
    }

    /// Records top-level commands as not sent after all (the session that claimed them ended
    /// before they left). Indices out of range are ignored.
    pub fn mark_unsent(&mut self, indices: &[usize]) {
        self.sent.resize(self.commands.len(), false);
        for &i in indices {
            if let Some(s) = self.sent.get_mut(i) {
                *s = false;
            }
        }
    }

    /// Adds outcomes, replacing any earlier one with the same index; keeps them sorted.
    pub fn merge_outcomes(&mut self, outcomes: impl IntoIterator<Item = CommandOutcome>) {
        for o in outcomes {
            match self.outcomes.iter_mut().find(|x| x.index == o.index) {
                Some(x) => *x = o,
                None => self.outcomes.push(o),
            }
        }
        self.outcomes.sort_by(|a, b| a.index.cmp(&b.index));
    }

    /// The top-level outcome of command `i`, if known.
    pub fn outcome_of(&self, i: usize) -> Option<&CommandOutcome> {
        self.outcomes
            .iter()
            .find(|o| o.index.len() == 1 && o.index[0] as usize == i)
    }

    /// Ends the session's work on this operation: merges `outcomes`, gives every command
    /// left without a top-level outcome [`status::NOT_EXECUTED`], and moves to `succeeded`
    /// (all top-level outcomes are successes), `awaiting_report` (so are they, and an Exec was
    /// accepted with 202: its Generic Alert 1226 decides, issue 9 item 5) or `failed`.
    pub fn finish(
        &mut self,
        outcomes: impl IntoIterator<Item = CommandOutcome>,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        self.state.check_transition(OpState::Succeeded)?;
        self.merge_outcomes(outcomes);
        let missing: Vec<CommandOutcome> = (0..self.commands.len())
            .filter(|&i| self.outcome_of(i).is_none())
            .map(|i| CommandOutcome::status(vec![i as u32], status::NOT_EXECUTED, now))
            .collect();
        self.merge_outcomes(missing);
        let next = self.verdict();
        self.transition(next, now)?;
        if next == OpState::AwaitingReport {
            self.set_report_deadline(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9 item 4: a user's "No" (304 with an answer) completes the operation; a
    /// prompt that timed out (408, no answer) does not.
    #[test]
    fn a_users_no_is_an_answer_not_a_failure() {
        let device = DeviceId::new("IMEI:1").unwrap();
        let confirm = OpCommand::UserInteraction(UiPrompt {
            kind: UiKind::Confirm,
            text: "Install?".into(),
            choices: Vec::new(),
            min_display_time: None,
            max_display_time: None,
            default_response: None,
            max_len: None,
            input_type: None,
            echo: None,
        });
        let mut op = NewOperation::new(device.clone(), vec![confirm.clone()])
            .into_operation(OperationId(1), Timestamp(0));
        op.transition(OpState::InSession, Timestamp(1)).unwrap();
        let mut no = CommandOutcome::status(vec![0], 304, Timestamp(2));
        no.answer = Some(UiAnswer::Confirmed(false));
        op.finish([no], Timestamp(2)).unwrap();
        assert_eq!(op.state, OpState::Succeeded);

        let mut op =
            NewOperation::new(device, vec![confirm]).into_operation(OperationId(2), Timestamp(0));
        op.transition(OpState::InSession, Timestamp(1)).unwrap();
        op.finish(
            [CommandOutcome::status(vec![0], 408, Timestamp(2))],
            Timestamp(2),
        )
        .unwrap();
        assert_eq!(op.state, OpState::Failed);
    }

    #[test]
    fn transitions() {
        use OpState::*;
        let legal = [
            (Queued, InSession),
            (Queued, Expired),
            (Queued, Cancelled),
            (InSession, Queued),
            (InSession, Succeeded),
            (InSession, Failed),
            (InSession, AwaitingReport),
            (AwaitingReport, Succeeded),
            (AwaitingReport, Failed),
            (AwaitingReport, Cancelled),
        ];
        for from in OpState::ALL {
            for to in OpState::ALL {
                let r = from.check_transition(to);
                assert_eq!(r.is_ok(), legal.contains(&(from, to)), "{from} -> {to}");
                if let Err(e) = r {
                    assert_eq!(e, TransitionError { from, to });
                }
            }
            assert_eq!(OpState::parse(from.as_str()), Some(from));
        }
    }

    #[test]
    fn idempotency() {
        let get = OpCommand::Get {
            path: NodePath::dm("./A").unwrap(),
        };
        let exec = OpCommand::Exec {
            path: NodePath::dm("./A").unwrap(),
            data: None,
            correlator: None,
        };
        assert!(get.is_idempotent());
        assert!(!exec.is_idempotent());
        assert!(OpCommand::Atomic(vec![get.clone(), get.clone()]).is_idempotent());
        assert!(!OpCommand::Sequence(vec![get, exec]).is_idempotent());
    }

    #[test]
    fn commands_serialize() {
        let c = OpCommand::Atomic(vec![OpCommand::Replace {
            path: NodePath::dm("./A").unwrap(),
            value: TypedValue::int(1),
        }]);
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(
            j,
            r#"{"atomic":[{"replace":{"path":"./A","value":{"type":"int","data":"1"}}}]}"#
        );
        assert_eq!(serde_json::from_str::<OpCommand>(&j).unwrap(), c);
    }

    #[test]
    fn finish_fills_missing_and_decides() {
        let dev = DeviceId::new("d").unwrap();
        let cmds = vec![
            OpCommand::Get {
                path: NodePath::dm("./A").unwrap(),
            };
            2
        ];
        let mut op = NewOperation::new(dev, cmds).into_operation(OperationId(1), Timestamp(0));
        assert!(op.finish([], Timestamp(1)).is_err(), "queued cannot finish");
        op.transition(OpState::InSession, Timestamp(1)).unwrap();
        let mut ok = op.clone();
        ok.finish(
            [
                CommandOutcome::status(vec![0], 200, Timestamp(2)),
                CommandOutcome::status(vec![1], 200, Timestamp(2)),
            ],
            Timestamp(2),
        )
        .unwrap();
        assert_eq!(ok.state, OpState::Succeeded);
        op.finish(
            [CommandOutcome::status(vec![0], 200, Timestamp(2))],
            Timestamp(2),
        )
        .unwrap();
        assert_eq!(op.state, OpState::Failed);
        assert_eq!(op.outcome_of(1).unwrap().status, status::NOT_EXECUTED);
    }

    fn fumo_op(commands: Vec<OpCommand>) -> Operation {
        let mut op = NewOperation::new(DeviceId::new("IMEI:1").unwrap(), commands)
            .into_operation(OperationId(7), Timestamp(0));
        op.transition(OpState::InSession, Timestamp(1)).unwrap();
        op
    }

    fn exec(node: &str) -> OpCommand {
        OpCommand::Exec {
            path: NodePath::dm(node).unwrap(),
            data: None,
            correlator: Some("label".into()),
        }
    }

    fn report(index: Vec<u32>, code: u16, at: i64) -> CommandOutcome {
        let mut o = CommandOutcome::status(index, code, Timestamp(at));
        o.reason = result_code::meaning(None, code).map(str::to_owned);
        o
    }

    /// FUMO 1.0 §10.2 / issue 9 item 5: an Exec answered 202 leaves the operation
    /// `awaiting_report` (not `succeeded`) with a deadline; the Generic Alert's result code
    /// decides: 200 succeeds.
    #[test]
    fn rule_fumo_10_2_an_accepted_exec_awaits_its_report_and_200_succeeds() {
        let mut op = fumo_op(vec![exec("./FUMO/fw1/Update")]);
        op.finish(
            [CommandOutcome::status(vec![0], 202, Timestamp(2))],
            Timestamp(2),
        )
        .unwrap();
        assert_eq!(op.state, OpState::AwaitingReport);
        assert!(!op.state.is_terminal());
        assert_eq!(
            op.report_deadline,
            Some(Timestamp(2 + DEFAULT_REPORT_TIMEOUT_MS))
        );
        assert_eq!(
            op.apply_report(report(vec![0], 200, 5), Timestamp(5)),
            ReportEffect::Settled { finished: true }
        );
        assert_eq!(op.state, OpState::Succeeded);
        assert_eq!(op.report_deadline, None);
        assert_eq!(
            op.outcome_of(0).unwrap().reason.as_deref(),
            Some("Successful")
        );
    }

    /// FUMO 1.0 §10.2: ResultCode 410 "Firmware Update Failed" fails the command and the
    /// operation, with the code and its name in the outcome.
    #[test]
    fn rule_fumo_10_2_result_code_410_fails_the_operation() {
        let mut op = fumo_op(vec![exec("./FUMO/fw1/Update")]);
        op.finish(
            [CommandOutcome::status(vec![0], 202, Timestamp(2))],
            Timestamp(2),
        )
        .unwrap();
        op.apply_report(report(vec![0], 410, 5), Timestamp(5));
        assert_eq!(op.state, OpState::Failed);
        let o = op.outcome_of(0).unwrap();
        assert_eq!(
            (o.status, o.reason.as_deref()),
            (410, Some("Firmware Update Failed"))
        );
        // A second report for a finished operation is late: recorded, nothing changes.
        assert_eq!(
            op.apply_report(report(vec![0], 200, 9), Timestamp(9)),
            ReportEffect::Late
        );
        assert_eq!(op.state, OpState::Failed);
        let o = op.outcome_of(0).unwrap();
        assert_eq!(o.status, 410);
        assert_eq!(o.late_report.as_ref().map(|l| l.status), Some(200));
    }

    /// SCOMO 1.0 §8.7 result codes: 1200 succeeds, 1405 "Install Failed" fails; two Execs
    /// awaiting: the operation waits for both.
    #[test]
    fn scomo_codes_and_several_awaited_execs() {
        let mut op = fumo_op(vec![
            exec("./SCOMO/Download/a/Operations/DownloadInstall"),
            exec("./SCOMO/Download/b/Operations/DownloadInstall"),
        ]);
        let mut accepted = CommandOutcome::status(vec![1], 202, Timestamp(2));
        accepted.report_deadline = Some(Timestamp(50));
        op.finish(
            [CommandOutcome::status(vec![0], 202, Timestamp(2)), accepted],
            Timestamp(2),
        )
        .unwrap();
        assert_eq!(
            op.report_deadline,
            Some(Timestamp(50)),
            "the earliest deadline"
        );
        assert_eq!(
            op.apply_report(report(vec![1], 1200, 3), Timestamp(3)),
            ReportEffect::Settled { finished: false }
        );
        assert_eq!(op.state, OpState::AwaitingReport);
        assert_eq!(
            op.report_deadline,
            Some(Timestamp(2 + DEFAULT_REPORT_TIMEOUT_MS))
        );
        op.apply_report(report(vec![0], 1405, 4), Timestamp(4));
        assert_eq!(op.state, OpState::Failed);
        assert_eq!(
            op.outcome_of(0).unwrap().reason.as_deref(),
            Some("Install Failed")
        );
        assert_eq!(
            result_code::meaning(
                Some("org.openmobilealliance.dm.softwarecomponent.OperationComplete"),
                1402
            ),
            Some("Download Failed")
        );
    }

    /// Decision 87: a device that never reports fails the command with 902 report_timeout.
    #[test]
    fn an_unreported_exec_fails_at_its_deadline() {
        let mut op = fumo_op(vec![exec("./FUMO/fw1/Update")]);
        op.finish(
            [CommandOutcome::status(vec![0], 202, Timestamp(2))],
            Timestamp(2),
        )
        .unwrap();
        let changed = op.fail_unreported(Timestamp(9));
        assert_eq!(changed.len(), 1);
        assert_eq!(op.state, OpState::Failed);
        let o = op.outcome_of(0).unwrap();
        assert_eq!(
            (o.status, o.reason.as_deref()),
            (status::REPORT_TIMEOUT, Some(REPORT_TIMEOUT_REASON))
        );
        assert!(op.fail_unreported(Timestamp(10)).is_empty(), "once");
        // The report that finally comes is late.
        assert_eq!(
            op.apply_report(report(vec![0], 200, 11), Timestamp(11)),
            ReportEffect::Late
        );
        assert_eq!(op.state, OpState::Failed);
    }

    /// Decision 86: an operation awaiting a report can be cancelled.
    #[test]
    fn an_awaiting_operation_can_be_cancelled() {
        let mut op = fumo_op(vec![exec("./FUMO/fw1/Update")]);
        op.finish(
            [CommandOutcome::status(vec![0], 202, Timestamp(2))],
            Timestamp(2),
        )
        .unwrap();
        op.transition(OpState::Cancelled, Timestamp(3)).unwrap();
        assert_eq!(op.report_deadline, None);
        assert_eq!(
            op.apply_report(report(vec![0], 410, 4), Timestamp(4)),
            ReportEffect::Late
        );
        assert_eq!(op.state, OpState::Cancelled);
    }

    /// A 202 on anything but an Exec (no report will come) does not wait, and a failed
    /// command beside an accepted Exec fails the operation at once.
    #[test]
    fn only_execs_wait_and_failures_do_not() {
        let get = OpCommand::Get {
            path: NodePath::dm("./A").unwrap(),
        };
        let mut op = fumo_op(vec![get.clone()]);
        op.finish(
            [CommandOutcome::status(vec![0], 202, Timestamp(2))],
            Timestamp(2),
        )
        .unwrap();
        assert_eq!(op.state, OpState::Succeeded);
        let mut op = fumo_op(vec![get, exec("./FUMO/fw1/Update")]);
        op.finish(
            [
                CommandOutcome::status(vec![0], 404, Timestamp(2)),
                CommandOutcome::status(vec![1], 202, Timestamp(2)),
            ],
            Timestamp(2),
        )
        .unwrap();
        assert_eq!(op.state, OpState::Failed);
    }
}
