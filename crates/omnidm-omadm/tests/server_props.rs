//! Property tests of the server engine: no input panics it, messages respect the device's
//! MaxMsgSize, and no queued command is ever lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod server_support;

use std::collections::HashMap;
use std::time::Instant;

use omnidm_omadm::server::*;
use omnidm_syncml::auth::AuthType;
use proptest::prelude::*;
use server_support::*;

const PKG1: &[u8] = include_bytes!("data/pkg1-client.xml");

fn arb_leaf() -> impl Strategy<Value = DmCommand> {
    prop_oneof![
        (0..5u8).prop_map(|i| DmCommand::Get {
            uri: uri(&format!("./N{i}"))
        }),
        (0..3000usize).prop_map(|n| DmCommand::Replace {
            items: vec![NodeWrite::text(uri("./Big"), "x".repeat(n))]
        }),
        (0..200usize).prop_map(|n| DmCommand::Add {
            items: vec![NodeWrite::text(uri("./A"), "y".repeat(n))]
        }),
        Just(DmCommand::Delete { uri: uri("./D") }),
        Just(DmCommand::Exec {
            uri: uri("./E"),
            data: None,
            correlator: Some("c".into())
        }),
        Just(DmCommand::UserInteraction(UiAlert::new(
            UiKind::Display,
            "hi"
        ))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600), after_pkg1: bool) {
        let t0 = Instant::now();
        let mut s = ServerSession::new(&config(), device(AuthType::Basic, Quirks::default()), random(), t0);
        s.enqueue(1, DmCommand::Get { uri: uri("./A") }).unwrap();
        if after_pkg1 {
            s.handle(Incoming::body(PKG1), t0).unwrap();
            s.poll_transmit(t0);
        }
        let _ = s.handle(Incoming::body(&body), t0);
        let _ = s.poll_transmit(t0);
        drain(&mut s);
        let _ = peek(&body, None, omnidm_syncml::Limits::default());
    }

    #[test]
    fn messages_fit_and_no_command_is_lost(
        cmds in proptest::collection::vec(arb_leaf(), 0..14),
        atomic in proptest::option::of(proptest::collection::vec(arb_leaf(), 1..3)),
        limit in 1600u64..6000,
        no_multi: bool,
        no_lo: bool,
        no_atomic_status: bool,
    ) {
        let t0 = Instant::now();
        let quirks = Quirks { no_multi_message: no_multi, no_large_object: no_lo, ..Quirks::default() };
        let mut s = ServerSession::new(&config(), device(AuthType::Basic, quirks), random(), t0);
        let mut tags = Vec::new();
        for (i, c) in cmds.into_iter().enumerate() {
            s.enqueue(i as u64, c).unwrap();
            tags.push(i as u64);
        }
        if let Some(inner) = atomic {
            let inner: Vec<(CommandTag, DmCommand)> =
                inner.into_iter().enumerate().map(|(i, c)| (1000 + i as u64, c)).collect();
            tags.extend(inner.iter().map(|(t, _)| *t));
            tags.push(999);
            s.enqueue(999, DmCommand::Atomic(inner)).unwrap();
        }
        let mut dev = SimDevice::new(Some(limit));
        dev.no_atomic_status = no_atomic_status;
        let (events, _) = run(&mut s, &mut dev, t0, Some(limit as usize));
        let mut seen: HashMap<CommandTag, usize> = HashMap::new();
        for (t, _, _) in command_statuses(&events) {
            *seen.entry(t).or_default() += 1;
        }
        let Some(SessionEvent::Ended { unsent, unanswered, .. }) = events.last() else {
            panic!("no Ended")
        };
        for t in unsent.iter().chain(unanswered) {
            *seen.entry(*t).or_default() += 1;
        }
        // Inner tags of an unsent Atomic go with their container.
        if unsent.contains(&999) {
            for t in tags.iter().filter(|t| **t >= 1000) {
                *seen.entry(*t).or_default() += 1;
            }
        }
        for t in &tags {
            prop_assert_eq!(seen.get(t).copied(), Some(1), "tag {} in {:?}", t, events);
        }
    }
}
