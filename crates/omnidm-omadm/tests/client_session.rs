//! Client engine against hand-built server messages: authentication, every command, Atomic,
//! Sequence, ACLs, listings, multi-message packages, large objects, UI alerts, FUMO and
//! garbage. No sockets; a virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use omnidm_omadm::client::{
    AsyncReports, ClientConfig, ClientError, ClientEvent, ClientSession, DeviceProfile, MemoryTree,
    SessionOutcome, SessionParams, TNDS_XML_TYPE, Trigger, UiAction, UiPolicy,
    trigger_from_notification,
};
use omnidm_syncml::auth::{
    AuthType, Credentials, HmacHeader, Nonce, make_cred, verify_cred_element,
};
use omnidm_syncml::notification::{self, Notification, ServerId};
use omnidm_syncml::{
    Alert, AlertCode, Body, Chal, Command, Container, Cred, Data, Encoding, Exec, Header, Item,
    ItemCommand, Location, Message, Meta, Status, StatusCode, decode, encode,
};
use omnidm_tree::MgmtTree;

const SERVER_URI: &str = "http://dm.example/dm";

fn profile() -> DeviceProfile {
    DeviceProfile {
        server_uri: SERVER_URI.into(),
        ..DeviceProfile::default()
    }
}

struct Harness {
    s: ClientSession,
    tree: MemoryTree,
    now: Instant,
    server_msg: u32,
    server_creds: Credentials,
    server_nonce: Nonce,
    server_max: Option<u64>,
    send_cred: bool,
    /// MsgID of the client's last message (what the server's SyncHdr status refers to).
    client_msg: u32,
}

impl Harness {
    fn new(config: ClientConfig) -> Harness {
        Harness::with_params(config, SessionParams::first([1; 16]))
    }

    fn with_params(config: ClientConfig, params: SessionParams) -> Harness {
        let now = Instant::now();
        let server_nonce = params.server_nonce.clone();
        let server_creds = config.server_credentials.clone();
        Harness {
            s: ClientSession::new(config, params, now),
            tree: MemoryTree::standard_device(&profile()),
            now,
            server_msg: 0,
            server_creds,
            server_nonce,
            server_max: None,
            send_cred: true,
            client_msg: 0,
        }
    }

    fn default() -> Harness {
        Harness::new(ClientConfig::from_profile(&profile()))
    }

    /// The next client message, decoded.
    fn send(&mut self) -> Message {
        let out = self
            .s
            .poll_transmit(&mut self.tree, self.now)
            .expect("a message");
        if let Some(max) = self.server_max {
            assert!(
                out.body.len() as u64 <= max,
                "message of {} bytes over MaxMsgSize {max}",
                out.body.len()
            );
        }
        self.client_msg = out.msg_id;
        decode(&out.body).unwrap().message
    }

    fn server_message(&mut self, commands: Vec<Command>, final_: bool) -> Vec<u8> {
        self.server_msg += 1;
        let cred = if self.send_cred {
            self.send_cred = false;
            make_cred(AuthType::Md5, &self.server_creds, &self.server_nonce).map(Cred::from)
        } else {
            None
        };
        let mut commands = commands;
        commands.insert(0, hdr_status(self.client_msg, 212));
        let m = Message {
            header: Header {
                session_id: self.s.session_id().to_owned(),
                msg_id: self.server_msg,
                target: Location::new(profile().dev_id),
                source: Location::new(SERVER_URI),
                cred,
                meta: self.server_max.map(|m| Meta {
                    max_msg_size: Some(m),
                    ..Meta::default()
                }),
                ..Header::default()
            },
            body: Body { commands, final_ },
        };
        encode(&m, Encoding::Xml)
    }

    /// Sends a server message with these commands (a 212 SyncHdr status is prepended).
    fn reply(&mut self, commands: Vec<Command>, final_: bool) {
        let body = self.server_message(commands, final_);
        self.s
            .handle_response(&body, None, &mut self.tree, self.now)
            .unwrap();
    }

    /// Package 1 then the server's commands; returns the client's answer.
    fn exchange(&mut self, commands: Vec<Command>) -> Message {
        if self.server_msg == 0 {
            self.send();
        }
        self.reply(commands, true);
        self.send()
    }

    fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }
}

fn hdr_status(msg_ref: u32, code: u16) -> Command {
    Command::Status(Status {
        cmd_id: 1,
        msg_ref,
        cmd_ref: 0,
        cmd: "SyncHdr".into(),
        target_refs: vec![SERVER_URI.into()],
        source_refs: vec![profile().dev_id],
        cred: None,
        chal: None,
        code: StatusCode(code),
        items: Vec::new(),
    })
}

fn item_cmd(id: u32, items: Vec<Item>) -> ItemCommand {
    ItemCommand {
        cmd_id: id,
        items,
        ..ItemCommand::default()
    }
}

fn get(id: u32, uri: &str) -> Command {
    Command::Get(item_cmd(id, vec![Item::target(uri)]))
}

fn leaf(uri: &str, format: &str, data: &str) -> Item {
    Item {
        target: Some(Location::new(uri)),
        meta: Some(Meta::with_format(format)),
        data: Some(Data::Text(data.into())),
        ..Item::default()
    }
}

fn replace(id: u32, uri: &str, data: &str) -> Command {
    Command::Replace(item_cmd(id, vec![leaf(uri, "chr", data)]))
}

fn add(id: u32, uri: &str, format: &str, data: &str) -> Command {
    Command::Add(item_cmd(id, vec![leaf(uri, format, data)]))
}

fn delete(id: u32, uri: &str) -> Command {
    Command::Delete(item_cmd(id, vec![Item::target(uri)]))
}

fn exec(id: u32, uri: &str, correlator: Option<&str>) -> Command {
    Command::Exec(Exec {
        cmd_id: id,
        correlator: correlator.map(str::to_owned),
        item: Item::target(uri),
        ..Exec::default()
    })
}

fn alert(id: u32, code: u16, texts: &[&str]) -> Command {
    Command::Alert(Alert {
        cmd_id: id,
        no_resp: false,
        cred: None,
        correlator: None,
        code: AlertCode(code),
        items: texts
            .iter()
            .map(|t| Item {
                data: (!t.is_empty()).then(|| Data::Text((*t).to_owned())),
                ..Item::default()
            })
            .collect(),
    })
}

fn container(id: u32, commands: Vec<Command>) -> Container {
    Container {
        cmd_id: id,
        commands,
        ..Container::default()
    }
}

fn statuses(m: &Message) -> Vec<&Status> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// The code of the (first) status answering command `cmd_ref`.
fn code(m: &Message, cmd_ref: u32) -> u16 {
    statuses(m)
        .into_iter()
        .find(|s| s.cmd_ref == cmd_ref && s.cmd != "SyncHdr")
        .unwrap_or_else(|| panic!("no status for {cmd_ref}"))
        .code
        .0
}

fn results(m: &Message) -> Vec<&Item> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Results(r) => Some(r.items.iter()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn text(i: &Item) -> &str {
    i.data.as_ref().and_then(|d| d.as_text()).unwrap_or("")
}

// --- authentication ---------------------------------------------------------------------

#[test]
fn md5_challenge_then_success() {
    let mut h = Harness::default();
    let p1 = h.send();
    let creds = Credentials::new("device", "devicesecret");
    assert_eq!(p1.header.source.loc_name.as_deref(), Some("device"));
    verify_cred_element(p1.header.cred.as_ref().unwrap(), &creds, &Nonce::default()).unwrap();
    // The server refuses with 401 and a challenge carrying a new nonce.
    let nonce = Nonce::from_bytes(b"server-nonce-1".to_vec());
    let mut st = match hdr_status(1, 401) {
        Command::Status(s) => s,
        _ => unreachable!(),
    };
    st.chal = Some(Chal {
        meta: Meta {
            format: Some("b64".into()),
            type_: Some("syncml:auth-md5".into()),
            next_nonce: Some(nonce.to_b64()),
            ..Meta::default()
        },
    });
    let body = encode(
        &Message {
            header: Header {
                session_id: "1".into(),
                msg_id: 1,
                target: Location::new(profile().dev_id),
                source: Location::new(SERVER_URI),
                ..Header::default()
            },
            body: Body {
                commands: vec![Command::Status(st), get(2, "./DevInfo/Mod")],
                final_: true,
            },
        },
        Encoding::Xml,
    );
    h.s.handle_response(&body, None, &mut h.tree, h.now)
        .unwrap();
    h.server_msg = 1;
    let ev = h.events();
    assert!(ev.contains(&ClientEvent::NoncesChanged {
        client_nonce: Some(nonce.clone()),
        server_nonce: None
    }));
    assert!(ev.contains(&ClientEvent::Challenged {
        auth_type: Some(AuthType::Md5),
        status: StatusCode(401)
    }));
    // Package 1 again, MsgID 2, credentials over the new nonce; the Get was ignored.
    let again = h.send();
    assert_eq!(again.header.msg_id, 2);
    assert!(matches!(&again.body.commands[0], Command::Alert(a) if a.code.0 == 1201));
    verify_cred_element(again.header.cred.as_ref().unwrap(), &creds, &nonce).unwrap();
    // Now accepted.
    h.reply(vec![get(2, "./DevInfo/Man")], true);
    let m = h.send();
    assert_eq!(m.header.msg_id, 3);
    assert_eq!(code(&m, 2), 200);
    assert!(h.events().contains(&ClientEvent::ClientAuthenticated {
        status: StatusCode(212)
    }));
}

#[test]
fn challenges_are_bounded() {
    let mut config = ClientConfig::from_profile(&profile());
    config.max_auth_attempts = 2;
    let mut h = Harness::new(config);
    for i in 0..2 {
        h.send();
        let mut st = match hdr_status(i + 1, 401) {
            Command::Status(s) => s,
            _ => unreachable!(),
        };
        st.chal = Some(Chal {
            meta: Meta {
                type_: Some("syncml:auth-md5".into()),
                format: Some("b64".into()),
                next_nonce: Some("AAAA".into()),
                ..Meta::default()
            },
        });
        h.server_msg = i;
        let body = h.server_message(vec![], true);
        let mut m = decode(&body).unwrap().message;
        m.body.commands[0] = Command::Status(st);
        h.s.handle_response(&encode(&m, Encoding::Xml), None, &mut h.tree, h.now)
            .unwrap();
    }
    assert!(h.s.is_finished());
    assert!(
        h.events()
            .contains(&ClientEvent::Finished(SessionOutcome::ClientAuthFailed {
                status: StatusCode(401)
            }))
    );
}

#[test]
fn hmac_both_ways() {
    let mut config = ClientConfig::from_profile(&profile());
    config.client_auth = AuthType::Hmac;
    config.server_auth = Some(AuthType::Hmac);
    let client_nonce = Nonce::from_bytes(b"cn".to_vec());
    let server_nonce = Nonce::from_bytes(b"sn".to_vec());
    let params = SessionParams {
        client_nonce: client_nonce.clone(),
        server_nonce: server_nonce.clone(),
        ..SessionParams::first([3; 16])
    };
    let mut h = Harness::with_params(config, params);
    let out = h.s.poll_transmit(&mut h.tree, h.now).unwrap();
    let m = decode(&out.body).unwrap().message;
    assert!(m.header.cred.is_none(), "HMAC is not carried in Cred");
    let header = HmacHeader::parse(out.hmac_header.as_deref().unwrap()).unwrap();
    header
        .verify(
            &Credentials::new("device", "devicesecret"),
            &client_nonce,
            &out.body,
        )
        .unwrap();
    // The server authenticates with its own HMAC header.
    h.send_cred = false;
    let body = h.server_message(vec![get(2, "./DevInfo/Mod")], true);
    let mac = HmacHeader::compute(
        &Credentials::new("omnidm", "serversecret"),
        &server_nonce,
        &body,
    );
    h.s.handle_response(&body, Some(&mac.to_header_value()), &mut h.tree, h.now)
        .unwrap();
    let out = h.s.poll_transmit(&mut h.tree, h.now).unwrap();
    let m = decode(&out.body).unwrap().message;
    // DM Security 1.2 §5.4: HMAC authenticates one message: 200, not 212.
    assert_eq!(statuses(&m)[0].code.0, 200);
    assert_eq!(code(&m, 2), 200);
    assert!(out.hmac_header.is_some(), "every message carries the HMAC");
}

/// Issue 9 item 2 on the device side, DM Security 1.2 §5.4: the server's HMAC is checked on
/// EVERY message, not only the first (a later message with a wrong or missing MAC is refused
/// 401/407 and nothing in it runs), each that passes gets 200 (never 212); the NextNonce the
/// server sends with each message is the one the device's next MAC uses, and the nonce the
/// device issued in its Chal is the one it checks the server's later messages with.
#[test]
fn rule_dm_security_hmac_every_server_message_is_checked_and_answered_200() {
    let mut config = ClientConfig::from_profile(&profile());
    config.client_auth = AuthType::Hmac;
    config.server_auth = Some(AuthType::Hmac);
    let server = Credentials::new("omnidm", "serversecret");
    let device = Credentials::new("device", "devicesecret");
    let params = SessionParams {
        client_nonce: Nonce::from_bytes(b"cn".to_vec()),
        server_nonce: Nonce::from_bytes(b"sn".to_vec()),
        ..SessionParams::first([3; 16])
    };
    let mut h = Harness::with_params(config, params);
    h.send_cred = false;
    h.send();
    // Server message 1: MAC over the nonce "sn", a NextNonce "c2" for the device's next MAC.
    let mut status = hdr_status(1, 200);
    if let Command::Status(s) = &mut status {
        s.chal = Some(Chal {
            meta: Meta {
                format: Some("b64".into()),
                type_: Some("syncml:auth-MAC".into()),
                next_nonce: Some(Nonce::from_bytes(b"c2".to_vec()).to_b64()),
                ..Meta::default()
            },
        });
    }
    h.server_msg += 1;
    let body = {
        let m = Message {
            header: Header {
                session_id: h.s.session_id().to_owned(),
                msg_id: h.server_msg,
                target: Location::new(profile().dev_id),
                source: Location::new(SERVER_URI),
                ..Header::default()
            },
            body: Body {
                commands: vec![status, get(2, "./DevInfo/Mod")],
                final_: true,
            },
        };
        encode(&m, Encoding::Xml)
    };
    let mac = HmacHeader::compute(&server, &Nonce::from_bytes(b"sn".to_vec()), &body);
    h.s.handle_response(&body, Some(&mac.to_header_value()), &mut h.tree, h.now)
        .unwrap();
    let out = h.s.poll_transmit(&mut h.tree, h.now).unwrap();
    let m = decode(&out.body).unwrap().message;
    assert_eq!(statuses(&m)[0].code.0, 200, "HMAC: 200, not 212");
    HmacHeader::parse(out.hmac_header.as_deref().unwrap())
        .unwrap()
        .verify(&device, &Nonce::from_bytes(b"c2".to_vec()), &out.body)
        .expect("the device's next MAC uses the server's NextNonce");
    let issued = statuses(&m)[0]
        .chal
        .as_ref()
        .and_then(|c| c.meta.next_nonce.clone())
        .map(|n| Nonce::from_b64(&n).unwrap())
        .expect("the device issues its nonce for the server");
    // Server message 2 with a MAC over the OLD nonce: refused although message 1 passed.
    h.client_msg = m.header.msg_id;
    let body = h.server_message(vec![replace(2, "./Vendor/omnidm/Greeting", "pwned")], true);
    let stale = HmacHeader::compute(&server, &Nonce::from_bytes(b"sn".to_vec()), &body);
    h.s.handle_response(&body, Some(&stale.to_header_value()), &mut h.tree, h.now)
        .unwrap();
    let out = h.s.poll_transmit(&mut h.tree, h.now).unwrap();
    let m = decode(&out.body).unwrap().message;
    assert_eq!(
        statuses(&m)[0].code.0,
        401,
        "every message's MAC is checked"
    );
    assert_eq!(code(&m, 2), 401);
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("hello"),
        "nothing in a refused message runs"
    );
    // Server message 3, MAC over the nonce the device issued: accepted, 200.
    h.client_msg = m.header.msg_id;
    let body = h.server_message(vec![replace(2, "./Vendor/omnidm/Greeting", "hi")], true);
    let good = HmacHeader::compute(&server, &issued, &body);
    h.s.handle_response(&body, Some(&good.to_header_value()), &mut h.tree, h.now)
        .unwrap();
    let out = h.s.poll_transmit(&mut h.tree, h.now).unwrap();
    let m = decode(&out.body).unwrap().message;
    assert_eq!(statuses(&m)[0].code.0, 200);
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("hi")
    );
}

#[test]
fn missing_server_credentials_get_407() {
    let mut h = Harness::default();
    h.send();
    h.send_cred = false;
    h.reply(vec![replace(2, "./Vendor/omnidm/Greeting", "pwned")], true);
    let m = h.send();
    let hdr = statuses(&m)[0];
    assert_eq!(hdr.code.0, 407);
    assert!(hdr.chal.as_ref().unwrap().meta.next_nonce.is_some());
    assert_eq!(code(&m, 2), 407);
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("hello")
    );
    assert!(h.events().contains(&ClientEvent::ServerAuthFailed {
        status: StatusCode(407)
    }));
}

#[test]
fn server_without_credentials_accepted_when_not_required() {
    let mut config = ClientConfig::from_profile(&profile());
    config.server_auth = None;
    let mut h = Harness::new(config);
    h.send();
    h.send_cred = false;
    h.reply(vec![get(2, "./DevInfo/Mod")], true);
    let m = h.send();
    assert_eq!(statuses(&m)[0].code.0, 200);
    assert_eq!(code(&m, 2), 200);
}

// --- commands ----------------------------------------------------------------------------

#[test]
fn add_replace_delete_copy_get() {
    let mut h = Harness::default();
    let m = h.exchange(vec![
        add(2, "./Vendor/omnidm/New/Count", "int", "5"),
        replace(3, "./Vendor/omnidm/Greeting", "bonjour"),
        Command::Copy(item_cmd(
            4,
            vec![Item {
                target: Some(Location::new("./Vendor/omnidm/Copy")),
                source: Some(Location::new("./Vendor/omnidm/New")),
                ..Item::default()
            }],
        )),
        delete(5, "./Vendor/omnidm/Counter"),
        add(6, "./Vendor/omnidm/Greeting", "chr", "again"),
        get(7, "./Vendor/omnidm/Nothing"),
        add(8, "./Vendor/omnidm/Bad", "int", "abc"),
        get(9, "./Vendor/omnidm/Copy/Count"),
        get(10, "./Vendor/omnidm"),
        Command::Replace(item_cmd(11, vec![Item::target("./Vendor/omnidm")])),
        delete(12, "./Vendor/omnidm/Nothing"),
    ]);
    assert_eq!(code(&m, 2), 200);
    assert_eq!(code(&m, 3), 200);
    assert_eq!(code(&m, 4), 200);
    assert_eq!(code(&m, 5), 200);
    assert_eq!(code(&m, 6), 418);
    assert_eq!(code(&m, 7), 404);
    assert_eq!(code(&m, 8), 415);
    assert_eq!(code(&m, 9), 200);
    assert_eq!(code(&m, 11), 405);
    assert_eq!(code(&m, 12), 404);
    let r = results(&m);
    assert_eq!(text(r[0]), "5");
    assert_eq!(r[0].meta.as_ref().unwrap().format.as_deref(), Some("int"));
    assert_eq!(r[1].meta.as_ref().unwrap().format.as_deref(), Some("node"));
    assert!(text(r[1]).split('/').any(|c| c == "Copy"));
    assert!(!text(r[1]).split('/').any(|c| c == "Counter"));
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("bonjour")
    );
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Copy/Count").as_deref(),
        Some("5")
    );
    h.tree.check_consistency().unwrap();
    // Every status has MsgRef and CmdRef of the server's message.
    assert!(statuses(&m).iter().all(|s| s.msg_ref == 1));
    let executed = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, ClientEvent::CommandExecuted { .. }))
        .count();
    assert_eq!(executed, 11);
}

#[test]
fn acl_denials() {
    let mut h = Harness::default();
    let m = h.exchange(vec![
        get(2, "./Vendor/omnidm/Private"),
        replace(3, "./DevInfo/Mod", "x"),
        delete(4, "./DevInfo"),
        add(5, "./DevInfo/Extra", "chr", "x"),
        exec(6, "./Vendor/omnidm/Greeting", None),
        get(7, "./DMAcc/OMNIDM/ServerID"),
    ]);
    for id in 2..=5 {
        assert_eq!(code(&m, id), 425, "command {id}");
    }
    assert_eq!(code(&m, 6), 405, "not an executable node");
    assert_eq!(code(&m, 7), 200, "the account's own server may read it");
    assert_eq!(h.tree.value("./DevInfo/Mod").as_deref(), Some("SimPhone 1"));
}

#[test]
fn atomic_rolls_back() {
    let mut h = Harness::default();
    let m = h.exchange(vec![Command::Atomic(container(
        2,
        vec![
            replace(3, "./Vendor/omnidm/Greeting", "changed"),
            add(4, "./Vendor/omnidm/Fresh", "chr", "new"),
            get(5, "./DevInfo/Mod"),
            add(6, "./Vendor/omnidm/Greeting", "chr", "dup"),
            delete(7, "./Vendor/omnidm/Counter"),
        ],
    ))]);
    assert_eq!(code(&m, 2), 507);
    assert_eq!(code(&m, 3), 216);
    assert_eq!(code(&m, 4), 216);
    assert_eq!(code(&m, 5), 216);
    assert_eq!(code(&m, 6), 418);
    assert_eq!(code(&m, 7), 215);
    assert!(
        results(&m).is_empty(),
        "results of a failed Atomic are dropped"
    );
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("hello")
    );
    assert!(!h.tree.contains("./Vendor/omnidm/Fresh"));
    assert!(h.tree.contains("./Vendor/omnidm/Counter"));
}

#[test]
fn atomic_commits() {
    let mut h = Harness::default();
    let m = h.exchange(vec![Command::Atomic(container(
        2,
        vec![
            replace(3, "./Vendor/omnidm/Greeting", "changed"),
            get(4, "./Vendor/omnidm/Greeting"),
        ],
    ))]);
    assert_eq!(code(&m, 2), 200);
    assert_eq!(code(&m, 3), 200);
    assert_eq!(text(results(&m)[0]), "changed");
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("changed")
    );
}

#[test]
fn sequence_stops_after_declined_confirmation() {
    let mut config = ClientConfig::from_profile(&profile());
    config.ui_policy = UiPolicy {
        confirm: UiAction::Decline,
        ..UiPolicy::default()
    };
    let mut h = Harness::new(config);
    let m = h.exchange(vec![
        Command::Sequence(container(
            2,
            vec![
                replace(3, "./Vendor/omnidm/Greeting", "one"),
                alert(4, 1101, &["", "Continue?"]),
                replace(5, "./Vendor/omnidm/Greeting", "two"),
            ],
        )),
        replace(6, "./Vendor/omnidm/Counter", "7"),
    ]);
    assert_eq!(code(&m, 2), 200);
    assert_eq!(code(&m, 3), 200);
    assert_eq!(code(&m, 4), 304);
    assert_eq!(code(&m, 5), 215);
    assert_eq!(code(&m, 6), 200, "a No has no effect outside the Sequence");
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("one")
    );
}

#[test]
fn declined_confirmation_fails_atomic() {
    let mut config = ClientConfig::from_profile(&profile());
    config.ui_policy = UiPolicy::all(UiAction::Decline);
    let mut h = Harness::new(config);
    let m = h.exchange(vec![Command::Atomic(container(
        2,
        vec![
            replace(3, "./Vendor/omnidm/Greeting", "one"),
            alert(4, 1101, &["", "Sure?"]),
        ],
    ))]);
    assert_eq!(code(&m, 2), 507);
    assert_eq!(code(&m, 3), 216);
    assert_eq!(code(&m, 4), 304);
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("hello")
    );
}

#[test]
fn list_struct_structdata_tnds_and_prop() {
    let mut h = Harness::default();
    let m = h.exchange(vec![
        get(2, "./FUMO?list=Struct"),
        get(3, "./Vendor/omnidm?list=StructData"),
        get(4, "./DevInfo?list=TNDS"),
        get(5, "./Vendor/omnidm/Greeting?prop=Format"),
        get(6, "./Vendor/omnidm/Private?prop=ACL"),
    ]);
    assert_eq!(code(&m, 2), 200);
    let all = results(&m);
    let uris: Vec<&str> = all
        .iter()
        .map(|i| i.source.as_ref().unwrap().loc_uri.as_str())
        .collect();
    assert!(uris.contains(&"./FUMO/fw1/DownloadAndUpdate/PkgURL"));
    assert!(uris.contains(&"./FUMO/fw1/State"));
    let state = all
        .iter()
        .find(|i| i.source.as_ref().unwrap().loc_uri == "./FUMO/fw1/State")
        .unwrap();
    assert!(state.data.is_none(), "Struct carries no values");
    assert_eq!(state.meta.as_ref().unwrap().format.as_deref(), Some("int"));
    let greeting = all
        .iter()
        .find(|i| i.source.as_ref().unwrap().loc_uri == "./Vendor/omnidm/Greeting")
        .unwrap();
    assert_eq!(text(greeting), "hello");
    assert!(
        !uris.contains(&"./Vendor/omnidm/Private"),
        "nodes the server may not Get are left out"
    );
    let tnds = all
        .iter()
        .find(|i| i.meta.as_ref().unwrap().type_.as_deref() == Some(TNDS_XML_TYPE))
        .unwrap();
    let read = MgmtTree::read(text(tnds).as_bytes()).unwrap();
    let flat: Vec<_> = read.tree.flatten().map(Result::unwrap).collect();
    assert!(
        flat.iter()
            .any(|n| n.uri.to_string() == "./DevInfo/Mod" && n.value == Some("SimPhone 1"))
    );
    assert_eq!(
        all.iter()
            .find(|i| i.source.as_ref().unwrap().loc_uri.ends_with("?prop=Format"))
            .map(|i| text(i)),
        Some("chr")
    );
    assert_eq!(code(&m, 6), 425);
}

// --- UI alerts ---------------------------------------------------------------------------

#[test]
fn ui_alerts_per_policy() {
    let mut config = ClientConfig::from_profile(&profile());
    config.ui_policy = UiPolicy {
        display: UiAction::Accept,
        confirm: UiAction::Accept,
        text_input: UiAction::Text("John Doe".into()),
        single_choice: UiAction::Choose(vec![2]),
        multiple_choice: UiAction::Choose(vec![1, 3]),
    };
    let mut h = Harness::new(config);
    let m = h.exchange(vec![
        alert(2, 1100, &["MINDT=10", "Management in progress"]),
        alert(3, 1101, &["", "Add the CNN access point?"]),
        alert(4, 1102, &["MAXLEN=4&IT=A", "Name?"]),
        alert(5, 1103, &["", "Pick one", "CNN", "Mobilbank", "Games"]),
        alert(6, 1104, &["", "Pick some", "CNN", "Mobilbank", "Games"]),
        alert(7, 1102, &["DR=x"]),
    ]);
    assert_eq!(code(&m, 2), 200);
    assert_eq!(code(&m, 3), 200);
    let item_texts = |id: u32| -> Vec<String> {
        statuses(&m)
            .into_iter()
            .find(|s| s.cmd_ref == id)
            .unwrap()
            .items
            .iter()
            .map(|i| text(i).to_owned())
            .collect()
    };
    assert_eq!(code(&m, 4), 200);
    assert_eq!(item_texts(4), vec!["John"], "MAXLEN=4");
    assert_eq!(item_texts(5), vec!["2"]);
    assert_eq!(item_texts(6), vec!["1", "3"]);
    assert_eq!(code(&m, 7), 412, "an alert needs at least two items");
    let prompts = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, ClientEvent::UserPrompt { .. }))
        .count();
    assert_eq!(prompts, 5);
}

#[test]
fn ui_cancel_skips_the_rest() {
    let mut config = ClientConfig::from_profile(&profile());
    config.ui_policy = UiPolicy::all(UiAction::Cancel);
    let mut h = Harness::new(config);
    let m = h.exchange(vec![
        replace(2, "./Vendor/omnidm/Greeting", "before"),
        alert(3, 1103, &["", "Pick", "a", "b"]),
        replace(4, "./Vendor/omnidm/Greeting", "after"),
    ]);
    assert_eq!(code(&m, 2), 200);
    assert_eq!(code(&m, 3), 214);
    assert_eq!(code(&m, 4), 215);
    assert_eq!(
        h.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("before")
    );
}

#[test]
fn ui_timeout_and_no_ui() {
    let mut config = ClientConfig::from_profile(&profile());
    config.ui_policy = UiPolicy {
        confirm: UiAction::Timeout,
        text_input: UiAction::Timeout,
        display: UiAction::Unsupported,
        ..UiPolicy::default()
    };
    let mut h = Harness::new(config);
    let m = h.exchange(vec![
        alert(2, 1101, &["MAXDT=5&DR=0", "Sure?"]),
        alert(3, 1102, &["MAXDT=5", "Name?"]),
        alert(4, 1100, &["", "Hello"]),
    ]);
    assert_eq!(code(&m, 2), 304, "default response: reject");
    assert_eq!(code(&m, 3), 408);
    assert_eq!(code(&m, 4), 406);
}

// --- FUMO and generic alerts -------------------------------------------------------------

#[test]
fn fumo_exec_then_generic_alert_same_session() {
    let mut h = Harness::default();
    let m = h.exchange(vec![
        replace(2, "./FUMO/fw1/PkgVersion", "2.0.0"),
        replace(
            3,
            "./FUMO/fw1/DownloadAndUpdate/PkgURL",
            "http://dl.example/fw.bin",
        ),
        exec(4, "./FUMO/fw1/DownloadAndUpdate", Some("job-42")),
    ]);
    assert_eq!(code(&m, 4), 202);
    assert!(m.body.final_);
    let Some(Command::Alert(a)) = m
        .body
        .commands
        .iter()
        .find(|c| matches!(c, Command::Alert(a) if a.code.0 == 1226))
    else {
        panic!("no generic alert")
    };
    assert_eq!(a.correlator.as_deref(), Some("job-42"));
    let item = &a.items[0];
    let meta = item.meta.as_ref().unwrap();
    assert_eq!(
        meta.type_.as_deref(),
        Some("org.openmobilealliance.dm.firmwareupdate.downloadandupdate")
    );
    assert_eq!(meta.format.as_deref(), Some("int"));
    assert_eq!(text(item), "200");
    assert_eq!(
        item.source.as_ref().unwrap().loc_uri,
        "./FUMO/fw1/DownloadAndUpdate"
    );
    assert_eq!(h.tree.value("./FUMO/fw1/State").as_deref(), Some("100"));
    assert_eq!(h.tree.value("./DevDetail/FwV").as_deref(), Some("2.0.0"));
    // The server answers the alert; the session ends.
    let alert_id = a.cmd_id;
    let st = Command::Status(Status {
        cmd_id: 2,
        msg_ref: m.header.msg_id,
        cmd_ref: alert_id,
        cmd: "Alert".into(),
        target_refs: vec![],
        source_refs: vec![],
        cred: None,
        chal: None,
        code: StatusCode(200),
        items: vec![],
    });
    h.reply(vec![st], true);
    assert!(h.s.is_finished());
    assert!(h.events().contains(&ClientEvent::GenericAlertDelivered {
        correlator: Some("job-42".into()),
        status: StatusCode(200)
    }));
}

#[test]
fn fumo_alert_in_next_session() {
    let mut config = ClientConfig::from_profile(&profile());
    config.async_reports = AsyncReports::NextSession;
    let mut h = Harness::new(config.clone());
    let m = h.exchange(vec![exec(2, "./FUMO/fw1/DownloadAndUpdate", Some("c1"))]);
    assert_eq!(code(&m, 2), 202);
    assert!(
        !m.body
            .commands
            .iter()
            .any(|c| matches!(c, Command::Alert(a) if a.code.0 == 1226))
    );
    let deferred: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::GenericAlertDeferred(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(deferred.len(), 1);
    assert_eq!(deferred[0].data, "411", "no PkgURL: bad URL");
    // Next session: package 1 carries the 1226 with the correlator.
    let params = SessionParams {
        trigger: Trigger::GenericAlerts(deferred),
        session_id: "2".into(),
        ..SessionParams::first([2; 16])
    };
    let mut h2 = Harness::with_params(config, params);
    let p1 = h2.send();
    assert!(matches!(&p1.body.commands[0], Command::Alert(a) if a.code.0 == 1201));
    assert!(matches!(&p1.body.commands[1],
        Command::Alert(a) if a.code.0 == 1226 && a.correlator.as_deref() == Some("c1")));
}

// --- multi-message packages and large objects ----------------------------------------------

#[test]
fn server_package_over_several_messages() {
    let mut h = Harness::default();
    h.send();
    h.reply(vec![get(2, "./DevInfo/Mod")], false);
    let m = h.send();
    assert!(!m.body.final_, "the server's package is not complete");
    assert_eq!(code(&m, 2), 200);
    assert!(matches!(m.body.commands.last(), Some(Command::Alert(a)) if a.code.0 == 1222));
    h.reply(vec![get(2, "./DevInfo/Man")], true);
    let m = h.send();
    assert!(m.body.final_);
    assert_eq!(text(results(&m)[0]), "omnidm");
}

#[test]
fn response_split_over_messages_within_max_msg_size() {
    let mut h = Harness::default();
    h.send();
    h.server_max = Some(2000);
    h.reply(vec![get(2, "./?list=StructData")], true);
    let mut items = Vec::new();
    let mut messages = 0;
    loop {
        let m = h.send();
        messages += 1;
        items.extend(results(&m).into_iter().cloned());
        if m.body.final_ {
            break;
        }
        assert!(messages < 200, "no progress");
        // The server asks for the next message (DM Protocol §2.1).
        h.reply(vec![alert(2, 1222, &[])], false);
    }
    assert!(messages > 2, "{messages} messages");
    let expected = h.tree.len() - 1; // all but ./Vendor/omnidm/Private (ACL)
    assert_eq!(items.len(), expected, "every node once");
}

#[test]
fn large_result_sent_in_chunks() {
    let mut h = Harness::default();
    let blob: String = (0..5000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    h.tree.set_chr("./Vendor/omnidm/Blob", &blob);
    h.send();
    h.server_max = Some(1500);
    h.reply(vec![get(2, "./Vendor/omnidm/Blob")], true);
    let mut got = String::new();
    let mut first = true;
    loop {
        let m = h.send();
        let r = results(&m);
        assert_eq!(r.len(), 1);
        if first {
            assert_eq!(r[0].meta.as_ref().unwrap().size, Some(5000));
            first = false;
        } else {
            assert!(r[0].meta.as_ref().and_then(|m| m.size).is_none());
        }
        got.push_str(text(r[0]));
        if !r[0].more_data {
            assert!(m.body.final_);
            break;
        }
        assert!(!m.body.final_);
        let st = Command::Status(Status {
            cmd_id: 2,
            msg_ref: m.header.msg_id,
            cmd_ref: 3,
            cmd: "Results".into(),
            target_refs: vec![],
            source_refs: vec![],
            cred: None,
            chal: None,
            code: StatusCode(213),
            items: vec![],
        });
        h.reply(vec![st, alert(3, 1222, &[])], false);
    }
    assert_eq!(got, blob);
}

fn chunk(id: u32, uri: &str, data: &str, size: Option<u64>, more: bool) -> Command {
    Command::Replace(item_cmd(
        id,
        vec![Item {
            target: Some(Location::new(uri)),
            meta: Some(Meta {
                format: Some("chr".into()),
                size,
                ..Meta::default()
            }),
            data: Some(Data::Text(data.into())),
            more_data: more,
            ..Item::default()
        }],
    ))
}

#[test]
fn large_object_received_in_chunks() {
    let mut h = Harness::default();
    let uri = "./Vendor/omnidm/Greeting";
    h.send();
    h.reply(vec![chunk(2, uri, "Hello, ", Some(18), true)], false);
    let m = h.send();
    assert_eq!(code(&m, 2), 213);
    assert!(matches!(m.body.commands.last(), Some(Command::Alert(a)) if a.code.0 == 1222));
    h.reply(vec![chunk(2, uri, "large ", None, true)], false);
    assert_eq!(code(&h.send(), 2), 213);
    assert_eq!(
        h.tree.value(uri).as_deref(),
        Some("hello"),
        "not committed yet"
    );
    h.reply(vec![chunk(2, uri, "world", None, false)], true);
    let m = h.send();
    assert_eq!(code(&m, 2), 200);
    assert!(m.body.final_);
    assert_eq!(h.tree.value(uri).as_deref(), Some("Hello, large world"));
}

#[test]
fn large_object_size_mismatch_and_interruption() {
    let mut h = Harness::default();
    let uri = "./Vendor/omnidm/Greeting";
    h.send();
    h.reply(vec![chunk(2, uri, "abc", Some(10), true)], false);
    h.send();
    h.reply(vec![chunk(2, uri, "def", None, false)], true);
    let m = h.send();
    assert_eq!(code(&m, 2), 424);
    assert_eq!(h.tree.value(uri).as_deref(), Some("hello"));
    // A new command before the last chunk: Alert 1225, nothing committed.
    h.reply(vec![chunk(3, uri, "abc", Some(6), true)], false);
    h.send();
    h.reply(vec![get(4, "./DevInfo/Mod")], true);
    let m = h.send();
    assert!(m.body.commands.iter().any(|c| matches!(c,
        Command::Alert(a) if a.code.0 == 1225
            && a.items[0].target.as_ref().unwrap().loc_uri == uri)));
    assert_eq!(code(&m, 4), 200);
    assert_eq!(h.tree.value(uri).as_deref(), Some("hello"));
}

#[test]
fn object_over_max_obj_size_refused() {
    let mut config = ClientConfig::from_profile(&profile());
    config.max_obj_size = 8;
    let mut h = Harness::new(config);
    h.send();
    h.reply(
        vec![chunk(
            2,
            "./Vendor/omnidm/Greeting",
            "abcd",
            Some(100),
            true,
        )],
        false,
    );
    assert_eq!(code(&h.send(), 2), 413);
}

// --- session control ---------------------------------------------------------------------

#[test]
fn garbage_is_an_error_then_abort() {
    let mut h = Harness::default();
    h.send();
    let err =
        h.s.handle_response(b"\x03\x01garbage<<", None, &mut h.tree, h.now)
            .unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)));
    let m = h.send();
    assert!(matches!(&m.body.commands[0], Command::Alert(a) if a.code.0 == 1223));
    assert!(h.s.is_finished());
    assert!(h.s.poll_transmit(&mut h.tree, h.now).is_none());
    assert!(matches!(
        h.s.handle_response(b"", None, &mut h.tree, h.now),
        Err(ClientError::Finished)
    ));
}

#[test]
fn wrong_session_id_aborts() {
    let mut h = Harness::default();
    h.send();
    let body = h.server_message(vec![], true);
    let text = String::from_utf8(body)
        .unwrap()
        .replace("<SessionID>1</SessionID>", "<SessionID>99</SessionID>");
    assert!(matches!(
        h.s.handle_response(text.as_bytes(), None, &mut h.tree, h.now),
        Err(ClientError::SessionMismatch { .. })
    ));
}

#[test]
fn server_abort_and_unexpected_response() {
    let mut h = Harness::default();
    assert!(matches!(
        h.s.handle_response(b"<SyncML/>", None, &mut h.tree, h.now),
        Err(ClientError::NotAwaitingResponse)
    ));
    h.send();
    h.reply(vec![alert(2, 1223, &[])], true);
    assert!(h.s.is_finished());
    assert!(
        h.events()
            .contains(&ClientEvent::Finished(SessionOutcome::AbortedByServer))
    );
}

#[test]
fn timeout_with_virtual_clock() {
    let mut h = Harness::default();
    h.send();
    let deadline = h.s.poll_timeout().unwrap();
    h.s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!h.s.is_finished());
    h.s.handle_timeout(deadline);
    assert!(h.s.is_finished());
    assert!(
        h.events()
            .contains(&ClientEvent::Finished(SessionOutcome::TimedOut))
    );
}

#[test]
fn server_initiated_from_package_0() {
    let server = Credentials::new("omnidm", "serversecret");
    let nonce = Nonce::from_bytes(b"n0".to_vec());
    let n = Notification {
        session_id: 0x2a,
        server_id: ServerId::new("omnidm").unwrap(),
        ..Notification::default()
    };
    let pkg0 = notification::encode(&n, &server, &nonce);
    let trigger = trigger_from_notification(&pkg0, &server, &nonce).unwrap();
    assert!(trigger_from_notification(&pkg0, &Credentials::new("omnidm", "x"), &nonce).is_err());
    assert!(trigger_from_notification(&pkg0[..10], &server, &nonce).is_err());
    let params = SessionParams {
        trigger,
        ..SessionParams::first([5; 16])
    };
    let mut h = Harness::with_params(ClientConfig::from_profile(&profile()), params);
    let p1 = h.send();
    assert_eq!(p1.header.session_id, "2A");
    assert!(matches!(&p1.body.commands[0], Command::Alert(a) if a.code.0 == 1200));
}

#[test]
fn wbxml_session() {
    let mut config = ClientConfig::from_profile(&profile());
    config.encoding = Encoding::Wbxml;
    let mut h = Harness::new(config);
    let out = h.s.poll_transmit(&mut h.tree, h.now).unwrap();
    assert_eq!(out.content_type, "application/vnd.syncml.dm+wbxml");
    assert_eq!(Encoding::sniff(&out.body), Encoding::Wbxml);
    h.server_msg = 0;
    h.reply(vec![get(2, "./DevDetail/FwV")], true);
    let out = h.s.poll_transmit(&mut h.tree, h.now).unwrap();
    let m = decode(&out.body).unwrap().message;
    assert_eq!(text(results(&m)[0]), "1.0.0");
}

#[test]
fn msg_ids_strictly_increase() {
    let mut h = Harness::default();
    let mut last = h.send().header.msg_id;
    for i in 0..5 {
        h.reply(vec![get(2 + i, "./DevInfo/Mod")], true);
        let id = h.send().header.msg_id;
        assert!(id > last);
        last = id;
    }
}

#[test]
fn no_resp_resp_uri_and_server_max_obj_size() {
    let mut h = Harness::default();
    h.send();
    let mut quiet = get(2, "./DevInfo/Mod");
    if let Command::Get(g) = &mut quiet {
        g.no_resp = true;
    }
    let mut body = h.server_message(
        vec![quiet, replace(3, "./Vendor/omnidm/Greeting", "x")],
        true,
    );
    // The server names where to send the next message, and a small MaxObjSize.
    let mut m = decode(&body).unwrap().message;
    m.header.resp_uri = Some("http://dm.example/dm?s=abc".into());
    m.header.meta = Some(Meta {
        max_obj_size: Some(40),
        ..Meta::default()
    });
    body = encode(&m, Encoding::Xml);
    h.s.handle_response(&body, None, &mut h.tree, h.now)
        .unwrap();
    let out = h.s.poll_transmit(&mut h.tree, h.now).unwrap();
    assert_eq!(out.uri, "http://dm.example/dm?s=abc");
    let m = decode(&out.body).unwrap().message;
    assert!(
        statuses(&m).iter().all(|s| s.cmd_ref != 2),
        "NoResp: no status"
    );
    assert_eq!(text(results(&m)[0]), "SimPhone 1", "but Results are sent");
    assert_eq!(code(&m, 3), 200);
    h.client_msg = out.msg_id;
    h.tree.set_chr("./Vendor/omnidm/Blob", &"x".repeat(41));
    h.reply(vec![get(4, "./Vendor/omnidm/Blob")], true);
    let m = h.send();
    assert_eq!(
        code(&m, 4),
        413,
        "MaxObjSize stays in effect for the session"
    );
}
