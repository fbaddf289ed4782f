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
///   │  └──release───────┘ (session broke; nothing lost, see recover_interrupted)
///   ├──► expired    (expires_at passed while queued)
///   └──► cancelled  (by the submitter while queued)
/// ```
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
    /// Cancelled before a session took it.
    Cancelled,
}

impl OpState {
    /// Every state.
    pub const ALL: [OpState; 6] = [
        OpState::Queued,
        OpState::InSession,
        OpState::Succeeded,
        OpState::Failed,
        OpState::Expired,
        OpState::Cancelled,
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
        }
    }

    /// Inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<OpState> {
        OpState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        !matches!(self, OpState::Queued | OpState::InSession)
    }

    /// The one place that says which transitions are legal.
    ///
    /// In-session operations cannot be cancelled or expired: commands may already be on
    /// the device, so the session (or recovery) decides their fate.
    pub fn check_transition(self, to: OpState) -> Result<(), TransitionError> {
        use OpState::*;
        let ok = matches!(
            (self, to),
            (Queued, InSession | Expired | Cancelled) | (InSession, Queued | Succeeded | Failed)
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

    /// True for success codes (2xx in OMA DM and CoAP).
    pub fn is_success(code: u16) -> bool {
        (200..300).contains(&code)
    }
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
        Ok(())
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
    /// (all top-level outcomes are successes) or `failed`.
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
        let ok = (0..self.commands.len())
            .all(|i| self.outcome_of(i).is_some_and(CommandOutcome::succeeded));
        self.transition(
            if ok {
                OpState::Succeeded
            } else {
                OpState::Failed
            },
            now,
        )
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
}
