//! Property tests: nothing the server sends makes the client panic, and the in-memory tree
//! stays consistent under any sequence of operations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use omnidm_omadm::client::{
    ClientConfig, ClientSession, DeviceProfile, ManagementTree, MemoryTree, SessionParams,
};
use omnidm_syncml::{
    Alert, AlertCode, Body, Command, Container, Data, Encoding, Exec, Header, Item, ItemCommand,
    Location, Message, Meta, encode,
};
use omnidm_tree::{Format, TreeUri};
use proptest::prelude::*;

fn started() -> (ClientSession, MemoryTree) {
    let p = DeviceProfile::default();
    let mut tree = MemoryTree::standard_device(&p);
    let now = Instant::now();
    let mut s = ClientSession::new(
        ClientConfig::from_profile(&p),
        SessionParams::first([0; 16]),
        now,
    );
    s.poll_transmit(&mut tree, now).unwrap();
    (s, tree)
}

const URIS: &[&str] = &[
    ".",
    "./DevInfo",
    "./DevInfo/Mod",
    "./Vendor/omnidm",
    "./Vendor/omnidm/Greeting",
    "./Vendor/omnidm/X",
    "./Vendor/omnidm/X/Y",
    "./FUMO/fw1/DownloadAndUpdate",
    "./FUMO/fw1?list=Struct",
    "./Vendor?list=TNDS",
    "./Vendor/omnidm/Greeting?prop=ACL",
    "bad//uri",
];

fn arb_item() -> impl Strategy<Value = Item> {
    (
        prop::sample::select(URIS),
        prop::option::of(prop::sample::select(URIS)),
        prop::option::of(prop::sample::select(
            &["chr", "int", "node", "bool", "zzz"][..],
        )),
        prop::option::of("[a-z0-9]{0,12}"),
        any::<bool>(),
        prop::option::of(0u64..64),
    )
        .prop_map(|(t, s, f, d, more, size)| Item {
            target: Some(Location::new(t)),
            source: s.map(Location::new),
            meta: Some(Meta {
                format: f.map(str::to_owned),
                size,
                ..Meta::default()
            }),
            data: d.map(Data::Text),
            more_data: more,
        })
}

fn arb_leaf_command() -> impl Strategy<Value = Command> {
    (0u8..8, 1u32..20, prop::collection::vec(arb_item(), 0..3)).prop_map(|(k, id, items)| {
        let ic = ItemCommand {
            cmd_id: id,
            items: items.clone(),
            ..ItemCommand::default()
        };
        match k {
            0 => Command::Get(ic),
            1 => Command::Add(ic),
            2 => Command::Replace(ic),
            3 => Command::Delete(ic),
            4 => Command::Copy(ic),
            5 => Command::Exec(Exec {
                cmd_id: id,
                correlator: Some("c".into()),
                item: items.into_iter().next().unwrap_or_default(),
                ..Exec::default()
            }),
            6 => Command::Alert(Alert {
                cmd_id: id,
                no_resp: false,
                cred: None,
                correlator: None,
                code: AlertCode(1100 + u16::try_from(id % 6).unwrap()),
                items,
            }),
            _ => Command::Alert(Alert {
                cmd_id: id,
                no_resp: false,
                cred: None,
                correlator: None,
                code: AlertCode(1222 + u16::try_from(id % 5).unwrap()),
                items,
            }),
        }
    })
}

fn arb_command() -> impl Strategy<Value = Command> {
    arb_leaf_command().prop_recursive(2, 12, 4, |inner| {
        (any::<bool>(), 1u32..20, prop::collection::vec(inner, 0..4)).prop_map(
            |(atomic, id, commands)| {
                let c = Container {
                    cmd_id: id,
                    commands,
                    ..Container::default()
                };
                if atomic {
                    Command::Atomic(c)
                } else {
                    Command::Sequence(c)
                }
            },
        )
    })
}

fn server_message(msg_id: u32, commands: Vec<Command>, final_: bool, max: Option<u64>) -> Vec<u8> {
    let m = Message {
        header: Header {
            session_id: "1".into(),
            msg_id,
            target: Location::new("dev"),
            source: Location::new("srv"),
            meta: max.map(|m| Meta {
                max_msg_size: Some(m),
                ..Meta::default()
            }),
            ..Header::default()
        },
        body: Body { commands, final_ },
    };
    encode(&m, Encoding::Xml)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let (mut s, mut tree) = started();
        let now = Instant::now();
        let _ = s.handle_response(&bytes, None, &mut tree, now);
        let _ = s.poll_transmit(&mut tree, now);
        while s.poll_event().is_some() {}
    }

    #[test]
    fn arbitrary_xml_prefixes_never_panic(cut in 0usize..2000, flip in any::<u8>()) {
        let (mut s, mut tree) = started();
        let mut body = server_message(1, vec![], true, None);
        let cut = cut.min(body.len());
        body.truncate(cut);
        if let Some(b) = body.last_mut() {
            *b ^= flip;
        }
        let _ = s.handle_response(&body, None, &mut tree, Instant::now());
    }

    /// Random command sets over several messages (unauthenticated server allowed): no panic,
    /// the session keeps answering, the tree stays consistent.
    #[test]
    fn random_sessions_never_panic(
        rounds in prop::collection::vec(
            (prop::collection::vec(arb_command(), 0..6), any::<bool>(), prop::option::of(300u64..3000)),
            1..5,
        )
    ) {
        let p = DeviceProfile::default();
        let mut tree = MemoryTree::standard_device(&p);
        let now = Instant::now();
        let mut config = ClientConfig::from_profile(&p);
        config.server_auth = None;
        let mut s = ClientSession::new(config, SessionParams::first([0; 16]), now);
        s.poll_transmit(&mut tree, now).unwrap();
        for (i, (cmds, final_, max)) in rounds.into_iter().enumerate() {
            if s.is_finished() {
                break;
            }
            let id = u32::try_from(i).unwrap() + 1;
            let body = server_message(id, cmds, final_, max);
            let _ = s.handle_response(&body, None, &mut tree, now);
            while s.poll_event().is_some() {}
            if let Some(out) = s.poll_transmit(&mut tree, now) {
                prop_assert!(omnidm_syncml::decode(&out.body).is_ok());
            }
            prop_assert!(tree.check_consistency().is_ok(), "{:?}", tree.check_consistency());
        }
    }

    #[test]
    fn memory_tree_stays_consistent(
        ops in prop::collection::vec(
            (0u8..5, prop::collection::vec(prop::sample::select(&["a", "b", "c"][..]), 1..4),
             prop::collection::vec(prop::sample::select(&["a", "b", "c"][..]), 1..4), any::<bool>()),
            0..60,
        )
    ) {
        let mut t = MemoryTree::new();
        let sid = "srv";
        t.set_interior("./T", Some("Add=*&Get=*&Replace=*&Delete=*&Exec=*"));
        for (op, path, other, interior) in ops {
            let u = TreeUri::parse(&format!("./T/{}", path.join("/"))).unwrap();
            let v = TreeUri::parse(&format!("./T/{}", other.join("/"))).unwrap();
            let before = t.clone();
            let r = match op {
                0 => {
                    let f = if interior { Format::Node } else { Format::Chr };
                    t.add(sid, &u, f, None, Some(Data::Text("v".into())))
                }
                1 => t.delete(sid, &u),
                2 => t.replace(sid, &u, None, None, Data::Text("w".into())),
                3 => t.copy(sid, &u, &v),
                _ => {
                    t.begin_atomic();
                    let _ = t.delete(sid, &u);
                    prop_assert!(t.rollback_atomic());
                    prop_assert_eq!(&t, &before);
                    Ok(())
                }
            };
            if r.is_err() {
                prop_assert_eq!(&t, &before, "a failed operation changes nothing");
            }
            prop_assert!(t.check_consistency().is_ok(), "{:?}", t.check_consistency());
            // Every node is reachable by Get with the right format.
            if t.contains(&u.to_string()) {
                let items = t.get(sid, &u).unwrap();
                prop_assert_eq!(items.len(), 1);
            }
        }
    }
}
