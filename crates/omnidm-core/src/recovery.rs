//! What happens to an operation whose session ended without finishing it.
//!
//! "Never lost, never executed twice where the protocol lets us tell." The rule, applied
//! to each top-level command of an `in_session` operation:
//!
//! | sent? | answered? | idempotent? | becomes |
//! |---|---|---|---|
//! | no  | –   | –   | pending: sent in a later session |
//! | yes | yes | –   | kept (its outcome stands) |
//! | yes | no  | yes | pending again (resent; partial child outcomes dropped) |
//! | yes | no  | no  | **interrupted**: outcome [`status::INTERRUPTED`] |
//!
//! Then, for the operation:
//! - any command interrupted → `failed`; pending commands get [`status::NOT_EXECUTED`]
//!   (a later command may depend on the unknown one — a FUMO Exec after a Replace of its
//!   URL — so nothing more runs);
//! - else every command answered → finished as the session would have (`succeeded` or
//!   `failed` from the outcomes): the crash came after the last answer;
//! - else → back to `queued` with its answered outcomes kept, the session marker cleared;
//!   the next session sends only the commands without an outcome.
//!
//! "Answered" means a top-level outcome (`index == [i]`) exists: the session engine records
//! one for every command it gets a Status for, synthesising one for devices that send no
//! Status for an Atomic (GUIDE §3).
//! [`OpCommand::is_idempotent`](crate::OpCommand::is_idempotent) says which commands are
//! safe to resend.

use crate::operation::{CommandOutcome, OpState, Operation, status};
use crate::time::Timestamp;

/// What [`recover_interrupted`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The operation was not `in_session`; nothing changed.
    NotInSession,
    /// Back to `queued`; these top-level commands will be (re)sent.
    Requeued {
        /// Top-level indices still to send.
        pending: Vec<usize>,
    },
    /// Every command had been answered; finished (`succeeded` or `failed`).
    Finished,
    /// Failed: these top-level commands were interrupted with unknown outcome.
    Failed {
        /// Top-level indices with [`status::INTERRUPTED`].
        interrupted: Vec<usize>,
    },
}

/// Applies the recovery rule (module doc) to `op` in place, at `now`.
pub fn recover_interrupted(op: &mut Operation, now: Timestamp) -> Recovery {
    if op.state != OpState::InSession {
        return Recovery::NotInSession;
    }
    op.sent.resize(op.commands.len(), false);
    let mut pending = Vec::new();
    let mut interrupted = Vec::new();
    for (i, cmd) in op.commands.iter().enumerate() {
        if op.outcome_of(i).is_some() {
            continue;
        }
        if !op.sent[i] || cmd.is_idempotent() {
            pending.push(i);
        } else {
            interrupted.push(i);
        }
    }
    if !interrupted.is_empty() {
        let mut add: Vec<CommandOutcome> = interrupted
            .iter()
            .map(|&i| CommandOutcome::status(vec![i as u32], status::INTERRUPTED, now))
            .collect();
        add.extend(pending.iter().map(|&i| {
            let code = if op.sent[i] {
                status::INTERRUPTED
            } else {
                status::NOT_EXECUTED
            };
            CommandOutcome::status(vec![i as u32], code, now)
        }));
        op.merge_outcomes(add);
        // `finish` cannot fail: the state is in_session (checked above).
        let _ = op.finish([], now);
        return Recovery::Failed { interrupted };
    }
    if pending.is_empty() {
        let _ = op.finish([], now);
        return Recovery::Finished;
    }
    for &i in &pending {
        op.sent[i] = false;
        // A resent composite starts over: drop partial child outcomes.
        op.outcomes.retain(|o| o.index.first() != Some(&(i as u32)));
    }
    let _ = op.transition(OpState::Queued, now);
    Recovery::Requeued { pending }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceId, NewOperation, NodePath, OpCommand, OperationId, SessionId, TypedValue};

    fn op(cmds: Vec<OpCommand>) -> Operation {
        let mut op = NewOperation::new(DeviceId::new("d").unwrap(), cmds)
            .into_operation(OperationId(7), Timestamp(0));
        op.transition(OpState::InSession, Timestamp(1)).unwrap();
        op.session = Some(SessionId("s".into()));
        op
    }
    fn get() -> OpCommand {
        OpCommand::Get {
            path: NodePath::dm("./A").unwrap(),
        }
    }
    fn exec() -> OpCommand {
        OpCommand::Exec {
            path: NodePath::dm("./FUMO/x/Update").unwrap(),
            data: None,
            correlator: Some("c".into()),
        }
    }
    fn add() -> OpCommand {
        OpCommand::Add {
            path: NodePath::dm("./B").unwrap(),
            value: Some(TypedValue::string("v")),
        }
    }

    #[test]
    fn nothing_sent_goes_back_to_queue() {
        let mut o = op(vec![get(), exec()]);
        assert_eq!(
            recover_interrupted(&mut o, Timestamp(5)),
            Recovery::Requeued {
                pending: vec![0, 1]
            }
        );
        assert_eq!(o.state, OpState::Queued);
        assert_eq!(o.session, None);
        assert!(o.outcomes.is_empty());
    }

    #[test]
    fn sent_get_is_resent() {
        let mut o = op(vec![get(), get()]);
        o.mark_sent(&[0, 1]);
        o.merge_outcomes([CommandOutcome::status(vec![0], 200, Timestamp(2))]);
        assert_eq!(
            recover_interrupted(&mut o, Timestamp(5)),
            Recovery::Requeued { pending: vec![1] }
        );
        assert_eq!(o.sent, vec![true, false]);
        assert_eq!(o.outcomes.len(), 1, "answered outcome kept");
    }

    #[test]
    fn sent_unanswered_exec_fails_as_interrupted() {
        for nonidem in [exec(), add()] {
            let mut o = op(vec![get(), nonidem, get()]);
            o.mark_sent(&[0, 1]);
            o.merge_outcomes([CommandOutcome::status(vec![0], 200, Timestamp(2))]);
            assert_eq!(
                recover_interrupted(&mut o, Timestamp(5)),
                Recovery::Failed {
                    interrupted: vec![1]
                }
            );
            assert_eq!(o.state, OpState::Failed);
            assert_eq!(o.outcome_of(0).unwrap().status, 200);
            assert_eq!(o.outcome_of(1).unwrap().status, status::INTERRUPTED);
            assert_eq!(o.outcome_of(2).unwrap().status, status::NOT_EXECUTED);
        }
    }

    #[test]
    fn answered_exec_is_not_interrupted() {
        let mut o = op(vec![exec(), get()]);
        o.mark_sent(&[0]);
        o.merge_outcomes([CommandOutcome::status(vec![0], 202, Timestamp(2))]);
        assert_eq!(
            recover_interrupted(&mut o, Timestamp(5)),
            Recovery::Requeued { pending: vec![1] }
        );
    }

    #[test]
    fn all_answered_finishes() {
        let mut o = op(vec![exec()]);
        o.mark_sent(&[0]);
        o.merge_outcomes([CommandOutcome::status(vec![0], 200, Timestamp(2))]);
        assert_eq!(
            recover_interrupted(&mut o, Timestamp(5)),
            Recovery::Finished
        );
        assert_eq!(o.state, OpState::Succeeded);
    }

    #[test]
    fn idempotent_atomic_resent_from_scratch() {
        let mut o = op(vec![OpCommand::Atomic(vec![get(), get()])]);
        o.mark_sent(&[0]);
        o.merge_outcomes([CommandOutcome::status(vec![0, 0], 200, Timestamp(2))]);
        assert_eq!(
            recover_interrupted(&mut o, Timestamp(5)),
            Recovery::Requeued { pending: vec![0] }
        );
        assert!(o.outcomes.is_empty());
        let mut q = o.clone();
        assert_eq!(
            recover_interrupted(&mut q, Timestamp(6)),
            Recovery::NotInSession
        );
        assert_eq!(q, o);
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::{DeviceId, NewOperation, NodePath, OpCommand, OperationId, SessionId};

    fn command() -> impl Strategy<Value = OpCommand> {
        let leaf = prop_oneof![
            Just(OpCommand::Get {
                path: NodePath::dm("./A").unwrap()
            }),
            Just(OpCommand::Delete {
                path: NodePath::dm("./B").unwrap()
            }),
            Just(OpCommand::Exec {
                path: NodePath::dm("./C").unwrap(),
                data: None,
                correlator: None
            }),
        ];
        leaf.prop_recursive(2, 6, 3, |inner| {
            prop::collection::vec(inner, 1..3).prop_map(OpCommand::Atomic)
        })
    }

    /// Per command: (sent, answered status or none).
    fn scenario() -> impl Strategy<Value = Vec<(OpCommand, bool, Option<u16>)>> {
        prop::collection::vec(
            (
                command(),
                any::<bool>(),
                prop::option::of(prop_oneof![Just(200u16), Just(404u16)]),
            ),
            1..6,
        )
    }

    proptest! {
        #[test]
        fn never_lost_never_twice(sc in scenario()) {
            let cmds: Vec<OpCommand> = sc.iter().map(|(c, _, _)| c.clone()).collect();
            let mut op = NewOperation::new(DeviceId::new("d").unwrap(), cmds)
                .into_operation(OperationId(1), Timestamp(0));
            op.transition(OpState::InSession, Timestamp(1)).unwrap();
            op.session = Some(SessionId("s".into()));
            for (i, (_, sent, answer)) in sc.iter().enumerate() {
                // A command can only be answered if it was sent.
                if *sent || answer.is_some() {
                    op.mark_sent(&[i]);
                }
                if let Some(code) = answer {
                    op.merge_outcomes([CommandOutcome::status(vec![i as u32], *code, Timestamp(2))]);
                }
            }
            let before = op.clone();
            let r = recover_interrupted(&mut op, Timestamp(3));
            prop_assert!(matches!(op.state, OpState::Queued | OpState::Succeeded | OpState::Failed));
            prop_assert_eq!(op.session.is_some(), false);
            for (i, cmd) in op.commands.iter().enumerate() {
                let was_answered = before.outcome_of(i).cloned();
                let now = op.outcome_of(i);
                // Answers are never lost.
                if let Some(a) = &was_answered {
                    prop_assert_eq!(Some(a), now);
                    continue;
                }
                let was_sent = before.sent[i];
                match op.state {
                    OpState::Queued => {
                        // Pending commands will be sent; a non-idempotent one only if it
                        // never reached the device.
                        prop_assert!(now.is_none());
                        prop_assert!(!op.sent[i]);
                        prop_assert!(!was_sent || cmd.is_idempotent());
                    }
                    _ => {
                        // Finished: every command has an outcome, and one that may have run
                        // is never reported as not executed.
                        let st = now.map(|o| o.status);
                        prop_assert!(st.is_some());
                        if was_sent {
                            prop_assert_eq!(st, Some(status::INTERRUPTED));
                        } else {
                            prop_assert_eq!(st, Some(status::NOT_EXECUTED));
                        }
                    }
                }
            }
            // Idempotence of the rule itself: a second application changes nothing.
            let again = op.clone();
            prop_assert_eq!(recover_interrupted(&mut op, Timestamp(4)), Recovery::NotInSession);
            prop_assert_eq!(op, again);
            let _ = r;
        }
    }
}
