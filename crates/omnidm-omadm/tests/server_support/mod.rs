//! Shared helpers for the server engine tests: a configuration like the captured Funambol
//! server, and a scripted device that answers server messages the way a well-behaved
//! OMA DM 1.2 client does.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashMap;
use std::time::Instant;

use omnidm_omadm::server::*;
use omnidm_syncml::auth::{AuthType, Credentials, DigestKey, Nonce};
use omnidm_syncml::*;

pub const SERVER_URI: &str = "http://127.0.0.1:8080/funambol/dm";

pub fn config() -> ServerConfig {
    let mut c = ServerConfig::new("funambol", SERVER_URI);
    c.max_msg_size = 10_000;
    c
}

/// The captured device: DMCtest, Basic funambol/funambol; server funambol/srvpwd; empty nonces.
pub fn device(auth: AuthType, quirks: Quirks) -> DeviceContext {
    DeviceContext {
        device_id: "DMCtest".into(),
        client_auth: auth,
        client_key: DigestKey::from(&Credentials::new("funambol", "funambol")),
        server_auth: AuthType::Md5,
        server_key: DigestKey::from(&Credentials::new("funambol", "srvpwd")),
        client_nonce: Nonce::default(),
        server_nonce: Nonce::default(),
        quirks,
    }
}

pub fn random() -> Randomness {
    Randomness {
        session_token: [0xab; 16],
        nonce_seed: [7; 16],
    }
}

pub fn drain(s: &mut ServerSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

pub fn uri(s: &str) -> omnidm_tree::TreeUri {
    omnidm_tree::TreeUri::parse(s).unwrap()
}

pub fn decode_out(out: &Outgoing) -> Message {
    decode(&out.body).unwrap().message
}

pub fn statuses(m: &Message) -> Vec<&Status> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) => Some(s),
            _ => None,
        })
        .collect()
}

pub fn st(cmd_id: u32, msg_ref: u32, cmd_ref: u32, cmd: &str, code: u16) -> Command {
    Command::Status(Status {
        cmd_id,
        msg_ref,
        cmd_ref,
        cmd: cmd.into(),
        target_refs: vec![],
        source_refs: vec![],
        cred: None,
        chal: None,
        code: StatusCode(code),
        items: vec![],
    })
}

pub fn alert(cmd_id: u32, code: u16) -> Command {
    Command::Alert(Alert {
        cmd_id,
        no_resp: false,
        cred: None,
        correlator: None,
        code: AlertCode(code),
        items: vec![],
    })
}

pub fn header(msg_id: u32, cred: Option<Cred>, max_msg: Option<u64>) -> Header {
    Header {
        session_id: "1".into(),
        msg_id,
        target: Location::new(SERVER_URI),
        source: Location::new("DMCtest"),
        cred,
        meta: max_msg.map(|m| Meta {
            max_msg_size: Some(m),
            ..Meta::default()
        }),
        ..Header::default()
    }
}

pub fn basic_cred(user: &str, pw: &str) -> Cred {
    let w = auth::make_cred(
        AuthType::Basic,
        &Credentials::new(user, pw),
        &Nonce::default(),
    )
    .unwrap();
    Cred::from(w)
}

pub fn md5_cred(user: &str, pw: &str, nonce: &Nonce) -> Cred {
    let w = auth::make_cred(AuthType::Md5, &Credentials::new(user, pw), nonce).unwrap();
    Cred::from(w)
}

pub fn devinfo() -> Command {
    Command::Replace(ItemCommand {
        cmd_id: 2,
        items: vec![
            Item::source("./DevInfo/Mod", "test model"),
            Item::source("./DevInfo/Man", "test manufacturer"),
        ],
        ..ItemCommand::default()
    })
}

pub fn msg(header: Header, commands: Vec<Command>, final_: bool) -> Vec<u8> {
    encode(
        &Message {
            header,
            body: Body { commands, final_ },
        },
        Encoding::Xml,
    )
}

/// A scripted, spec-following device.
pub struct SimDevice {
    pub msg_id: u32,
    pub max_msg_size: Option<u64>,
    /// Skip the Status for Atomic containers (GUIDE §3 quirk).
    pub no_atomic_status: bool,
    /// Large objects being received, by target.
    pub partial: HashMap<String, (Option<u64>, Vec<u8>)>,
    /// Completed writes: (target, bytes, declared Size if chunked).
    pub applied: Vec<(String, Vec<u8>, Option<u64>)>,
    pub ui_answer: Option<(u16, Vec<String>)>,
}

impl SimDevice {
    pub fn new(max_msg_size: Option<u64>) -> Self {
        Self {
            msg_id: 1,
            max_msg_size,
            no_atomic_status: false,
            partial: HashMap::new(),
            applied: vec![],
            ui_answer: None,
        }
    }

    pub fn package1(&mut self) -> Vec<u8> {
        msg(
            header(
                self.msg_id,
                Some(basic_cred("funambol", "funambol")),
                self.max_msg_size,
            ),
            vec![alert(1, 1201), devinfo()],
            true,
        )
    }

    /// The device's answer to a server message.
    pub fn respond(&mut self, server: &Message) -> Vec<u8> {
        self.msg_id += 1;
        let mut out = Vec::new();
        let mut id = 1;
        let m = server.header.msg_id;
        out.push(st(id, m, 0, "SyncHdr", 212));
        id += 1;
        for c in &server.body.commands {
            self.answer(c, m, &mut id, &mut out);
        }
        if !server.body.final_ {
            out.push(alert(id, 1222));
        }
        msg(
            header(self.msg_id, None, self.max_msg_size),
            out,
            server.body.final_,
        )
    }

    fn answer(&mut self, c: &Command, m: u32, id: &mut u32, out: &mut Vec<Command>) {
        let push = |out: &mut Vec<Command>, code: u16, id: &mut u32| {
            out.push(st(*id, m, c.cmd_id(), c.name(), code));
            *id += 1;
        };
        match c {
            Command::Status(_) => {}
            Command::Get(g) => {
                push(out, 200, id);
                out.push(Command::Results(Results {
                    cmd_id: *id,
                    msg_ref: Some(m),
                    cmd_ref: g.cmd_id,
                    items: vec![Item::source(
                        g.items[0].target.as_ref().unwrap().loc_uri.clone(),
                        "value",
                    )],
                    ..Results::default()
                }));
                *id += 1;
            }
            Command::Add(ic) | Command::Replace(ic) => {
                let item = &ic.items[0];
                let target = item.target.as_ref().unwrap().loc_uri.clone();
                let bytes = item
                    .data
                    .as_ref()
                    .map(|d| d.as_bytes().to_vec())
                    .unwrap_or_default();
                if item.more_data {
                    let e = self.partial.entry(target).or_insert((None, vec![]));
                    if e.0.is_none() {
                        e.0 = item.meta.as_ref().and_then(|m| m.size);
                    }
                    e.1.extend(bytes);
                    push(out, 213, id);
                } else if let Some((size, mut acc)) = self.partial.remove(&target) {
                    acc.extend(bytes);
                    let ok = size == Some(acc.len() as u64);
                    self.applied.push((target, acc, size));
                    push(out, if ok { 200 } else { 424 }, id);
                } else {
                    self.applied.push((target, bytes, None));
                    push(out, 200, id);
                }
            }
            Command::Atomic(ct) | Command::Sequence(ct) => {
                let atomic = matches!(c, Command::Atomic(_));
                if !(atomic && self.no_atomic_status) {
                    push(out, 200, id);
                }
                for inner in &ct.commands {
                    self.answer(inner, m, id, out);
                }
            }
            Command::Alert(a) if a.code.is_user_interaction() => {
                let (code, items) = self.ui_answer.clone().unwrap_or((200, vec![]));
                out.push(Command::Status(Status {
                    cmd_id: *id,
                    msg_ref: m,
                    cmd_ref: a.cmd_id,
                    cmd: "Alert".into(),
                    target_refs: vec![],
                    source_refs: vec![],
                    cred: None,
                    chal: None,
                    code: StatusCode(code),
                    items: items
                        .into_iter()
                        .map(|t| Item {
                            data: Some(Data::Text(t)),
                            ..Item::default()
                        })
                        .collect(),
                }));
                *id += 1;
            }
            _ => push(out, 200, id),
        }
    }
}

/// Runs a whole session against `dev`, checking every server message against `limit`.
/// Returns all events and all server messages.
pub fn run(
    s: &mut ServerSession,
    dev: &mut SimDevice,
    t0: Instant,
    limit: Option<usize>,
) -> (Vec<SessionEvent>, Vec<Message>) {
    let mut events = Vec::new();
    let mut msgs = Vec::new();
    let mut body = dev.package1();
    for _ in 0..500 {
        s.handle(Incoming::body(&body), t0).unwrap();
        events.extend(drain(s));
        let out = s.poll_transmit(t0).expect("a response");
        events.extend(drain(s));
        if let Some(l) = limit {
            assert!(out.body.len() <= l, "message of {} > {l}", out.body.len());
        }
        let m = decode_out(&out);
        msgs.push(m.clone());
        if s.is_finished() {
            return (events, msgs);
        }
        body = dev.respond(&m);
    }
    panic!("session did not end");
}

pub fn command_statuses(events: &[SessionEvent]) -> Vec<(CommandTag, u16, StatusSource)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::CommandStatus {
                tag,
                status,
                source,
            } => Some((*tag, status.0, *source)),
            _ => None,
        })
        .collect()
}

/// The `NextNonce` of the `Chal` in the first status of `m` (the header status).
pub fn challenge_nonce(m: &Message) -> Nonce {
    let chal = statuses(m)[0].chal.clone().expect("a challenge");
    Nonce::from_b64(chal.meta.next_nonce.as_deref().expect("a NextNonce")).unwrap()
}
