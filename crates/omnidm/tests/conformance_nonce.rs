//! Conformance, authentication nonces (issue 9 item 13; issue 10 "What a new user met" item 2):
//! the real server over HTTP, driven by a device written by hand here — raw SyncML POSTs, the
//! digests computed from the DM Security 1.2 formula — not by our own client engine; and two
//! runs of `omnidm sim` for the simulator's side.
//!
//! The rules (OMA-TS-DM_Security-V1_2 §5, authentication; SyncML Meta-Information, NextNonce:
//! "the nonce string to be used in any subsequent communication"): a `Chal` carries the nonce
//! the other side's next credentials must use, in whatever message it comes; either side that
//! lost its nonce is challenged and converges on the next exchange.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use omnidm_syncml::auth::{Credentials, Nonce, NonceForm, md5_cred_data, verify_cred_element};
use omnidm_syncml::{Command, Message, Status};
use serde_json::Value;
use support::wsi::Api;
use support::{DataDir, Server, ok, omnidm, provision, sim};

/// A device written by hand: its account, its SyncML session and the nonces it holds.
struct Device {
    addr: std::net::SocketAddr,
    server_uri: String,
    id: String,
    client: Credentials,
    server: Credentials,
    session: String,
    /// Where the next message goes (the server's last RespURI, as a path).
    path: String,
    /// The nonce the server gave us (for our Cred).
    client_nonce: Nonce,
}

impl Device {
    fn provisioned(data: &DataDir, server: &Server) -> Device {
        provision(data, &server.dm_url(), 1, &[]);
        let accounts = std::fs::read_to_string(data.0.join("accounts.jsonl")).unwrap();
        let a: Value = serde_json::from_str(accounts.lines().next().unwrap()).unwrap();
        let s = |k: &str| a[k].as_str().unwrap().to_owned();
        Device {
            addr: server.dm,
            server_uri: server.dm_url(),
            id: s("device_id"),
            client: Credentials::new(s("client_name"), s("client_secret")),
            server: Credentials::new(s("server_id"), s("server_secret")),
            session: "1".into(),
            path: "/dm".into(),
            client_nonce: Nonce::default(),
        }
    }

    /// A new session of the device: a new SessionID, messages to the server's URI again.
    fn new_session(&mut self, session: &str) {
        self.session = session.into();
        self.path = "/dm".into();
    }

    fn header(&self, msg_id: u32, cred_nonce: Option<&Nonce>) -> String {
        let cred = cred_nonce.map_or(String::new(), |n| {
            format!(
                "<Cred><Meta><Format xmlns='syncml:metinf'>b64</Format>\
                 <Type xmlns='syncml:metinf'>syncml:auth-md5</Type></Meta>\
                 <Data>{}</Data></Cred>",
                md5_cred_data(&self.client, n, NonceForm::Raw)
            )
        });
        format!(
            "<SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto>\
             <SessionID>{}</SessionID><MsgID>{msg_id}</MsgID>\
             <Target><LocURI>{}</LocURI></Target>\
             <Source><LocURI>{}</LocURI><LocName>{}</LocName></Source>{cred}\
             <Meta><MaxMsgSize xmlns='syncml:metinf'>16384</MaxMsgSize></Meta></SyncHdr>",
            self.session, self.server_uri, self.id, self.client.username
        )
    }

    /// Package 1: Alert 1201 and a DevInfo Replace, with our Cred over `nonce`.
    fn pkg1(&self, msg_id: u32, nonce: &Nonce) -> String {
        format!(
            "<SyncML xmlns='SYNCML:SYNCML1.2'>{}<SyncBody>\
             <Alert><CmdID>1</CmdID><Data>1201</Data></Alert>\
             <Replace><CmdID>2</CmdID><Item><Source><LocURI>./DevInfo/Mod</LocURI></Source>\
             <Meta><Format xmlns='syncml:metinf'>chr</Format></Meta><Data>hand-built</Data></Item></Replace>\
             <Final/></SyncBody></SyncML>",
            self.header(msg_id, Some(nonce))
        )
    }

    /// A message with only our Status for the server's SyncHdr: `code`, and a Chal with
    /// `next_nonce` for the server's next credentials (DM Security 1.2 §5).
    fn refuse_server(&self, msg_id: u32, msg_ref: u32, code: u16, next_nonce: &[u8]) -> String {
        format!(
            "<SyncML xmlns='SYNCML:SYNCML1.2'>{}<SyncBody>\
             <Status><CmdID>1</CmdID><MsgRef>{msg_ref}</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd>\
             <TargetRef>{}</TargetRef><SourceRef>{}</SourceRef>\
             <Chal><Meta><Type xmlns='syncml:metinf'>syncml:auth-md5</Type>\
             <Format xmlns='syncml:metinf'>b64</Format>\
             <NextNonce xmlns='syncml:metinf'>{}</NextNonce></Meta></Chal>\
             <Data>{code}</Data></Status><Final/></SyncBody></SyncML>",
            self.header(msg_id, None),
            self.id,
            self.server_uri,
            Nonce::from_bytes(next_nonce.to_vec()).to_b64()
        )
    }

    /// POSTs `xml`; the server's reply, decoded. Follows RespURI and takes the NextNonce of
    /// any Chal on the server's status for our SyncHdr.
    fn send(&mut self, xml: &str) -> Message {
        let (status, _, body) = support::post(
            self.addr,
            &self.path,
            "application/vnd.syncml.dm+xml",
            xml.as_bytes(),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let m = omnidm_syncml::decode(&body).unwrap().message;
        if let Some(r) = &m.header.resp_uri {
            let after_host = r.split_once("://").map_or(r.as_str(), |(_, rest)| rest);
            self.path = after_host[after_host.find('/').unwrap()..].to_owned();
        }
        if let Some(n) = hdr(&m)
            .chal
            .as_ref()
            .and_then(|c| c.meta.next_nonce.as_deref())
        {
            self.client_nonce = Nonce::from_b64(n).unwrap();
        }
        m
    }

    /// True when the server's Cred in `m` verifies with `nonce`.
    fn server_cred_uses(&self, m: &Message, nonce: &[u8]) -> bool {
        m.header.cred.as_ref().is_some_and(|c| {
            verify_cred_element(c, &self.server, &Nonce::from_bytes(nonce.to_vec())).is_ok()
        })
    }
}

/// The server's Status for our SyncHdr.
fn hdr(m: &Message) -> &Status {
    m.body
        .commands
        .iter()
        .find_map(|c| match c {
            Command::Status(s) if s.cmd_ref == 0 => Some(s),
            _ => None,
        })
        .expect("a status for the SyncHdr")
}

/// A first session that authenticates and that the server closes at once (nothing queued):
/// returns the server's MsgID of its closing message.
fn idle_session(dev: &mut Device) -> u32 {
    let n = dev.client_nonce.clone();
    let m = dev.send(&dev.pkg1(1, &n));
    assert_eq!(hdr(&m).code.0, 212, "{m:?}");
    assert!(m.body.final_);
    assert!(
        m.body
            .commands
            .iter()
            .all(|c| matches!(c, Command::Status(_))),
        "statuses only: the server closed the session"
    );
    m.header.msg_id
}

/// Issue 9 item 13: the device refuses the server's Cred (401 with a Chal carrying a new
/// nonce) in a message that reaches the server after it closed the idle session. The server
/// takes the Chal although it comes as the first message of a new session without the
/// device's credentials (answered 407), and once the device has authenticated again its Cred
/// uses the device's nonce: both sides converge at once.
#[test]
fn rule_dm_security_5_device_chal_resynchronises_the_server_nonce_after_the_server_closed_an_idle_session()
 {
    let data = DataDir::new("nonce-idle");
    let server = Server::start(&data);
    let mut dev = Device::provisioned(&data, &server);
    let closing = idle_session(&mut dev);
    let fresh = b"device-nonce-1";
    let m = dev.send(&dev.refuse_server(2, closing, 401, fresh));
    assert_eq!(
        hdr(&m).code.0,
        407,
        "no credentials in that message: challenged"
    );
    assert!(hdr(&m).chal.is_some());
    assert!(
        m.header.cred.is_none(),
        "no Cred over a nonce taken from a message that did not authenticate (decision 90)"
    );
    let n = dev.client_nonce.clone();
    let m = dev.send(&dev.pkg1(3, &n));
    assert_eq!(hdr(&m).code.0, 212);
    assert!(
        dev.server_cred_uses(&m, fresh),
        "the server signs with the nonce of the device's Chal: {:?}",
        m.header.cred
    );
    server.stop();
}

/// Issue 9 item 13: the device's nonce from that Chal, and the nonce the server's challenge
/// gave the device, are stored at once — durably, although the session then ends with
/// nothing done (the device gives up). The device's next session authenticates at first try
/// and the server's Cred uses the device's nonce.
#[test]
fn rule_dm_security_5_device_chal_is_stored_at_once_after_the_server_closed_an_idle_session() {
    let data = DataDir::new("nonce-durable");
    let server = Server::start(&data);
    let mut dev = Device::provisioned(&data, &server);
    let closing = idle_session(&mut dev);
    let fresh = b"device-nonce-2";
    let m = dev.send(&dev.refuse_server(2, closing, 401, fresh));
    assert_eq!(hdr(&m).code.0, 407);
    // The device does not answer that challenge: its next session starts from the nonces.
    dev.new_session("2");
    let n = dev.client_nonce.clone();
    let m = dev.send(&dev.pkg1(1, &n));
    assert_eq!(
        hdr(&m).code.0,
        212,
        "the nonce of the server's last Chal was stored at once"
    );
    assert!(
        dev.server_cred_uses(&m, fresh),
        "the device's nonce was stored at once: {:?}",
        m.header.cred
    );
    server.stop();
}

/// Events after `after` (admin view).
fn events_after(api: &Api, after: u64) -> Vec<Value> {
    let r = api.admin(
        "GET",
        &format!("/api/v1/events?after={after}&limit=1000"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    r.body["items"].as_array().unwrap().clone()
}

/// DM Security 1.2 §5 / issue 10 item 2: a device that lost the nonce the server gave it
/// signs with another; the server answers 401 with a fresh Chal and the device, retrying
/// with that nonce, authenticates. That is the normal first-contact challenge: no
/// `auth.failure` event (and no warning) for it.
#[test]
fn rule_dm_security_5_lost_device_nonce_recovers_with_a_fresh_chal() {
    let data = DataDir::new("nonce-lost");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let mut dev = Device::provisioned(&data, &server);
    let mark = events_after(&api, 0)
        .last()
        .map_or(0, |e| e["id"].as_u64().unwrap());
    let m = dev.send(&dev.pkg1(1, &Nonce::from_bytes(b"forgotten".to_vec())));
    assert_eq!(hdr(&m).code.0, 401);
    let chal = hdr(&m).chal.as_ref().expect("401 with a Chal");
    assert!(chal.meta.next_nonce.is_some(), "a fresh nonce");
    let n = dev.client_nonce.clone();
    let m = dev.send(&dev.pkg1(2, &n));
    assert_eq!(
        hdr(&m).code.0,
        212,
        "the retry with the Chal's nonce is accepted"
    );
    let events = events_after(&api, mark);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        !kinds.contains(&"auth.failure"),
        "a challenge that was answered is no failure: {kinds:?}"
    );
    assert!(kinds.contains(&"session.started"), "{kinds:?}");
    server.stop();
}

fn sim_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = sim(&all);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn submit(data: &DataDir, device: &str, command: &str) -> u64 {
    let op: Value = serde_json::from_str(&ok(omnidm(
        data,
        &["ops", "submit", device, command, "--json"],
    )))
    .unwrap();
    op["id"].as_u64().unwrap()
}

fn op_state(data: &DataDir, id: u64) -> String {
    let op: Value = serde_json::from_str(&ok(omnidm(
        data,
        &["ops", "show", &id.to_string(), "--json"],
    )))
    .unwrap();
    op["state"].as_str().unwrap().to_owned()
}

/// Issue 10 item 2: the simulator keeps its devices' nonces between runs (a state file), so
/// a later `omnidm sim` run with operations queued authenticates at first try — package 1
/// accepted, the server's Cred verified, the operation done in two messages — and a run that
/// has lost that state still converges through the challenges, operations included.
#[test]
fn rule_dm_security_5_a_later_sim_run_authenticates_at_first_try() {
    let data = DataDir::new("nonce-sim");
    let server = Server::start(&data);
    let ids = provision(&data, &server.dm_url(), 1, &[]);
    let url = server.dm_url();
    let first = sim_json(&["--server", &url, "--devices", "1"]);
    assert_eq!(first["succeeded"], 1, "{first}");

    let op = submit(&data, &ids[0], "get:./DevInfo/Mod");
    let second = sim_json(&["--server", &url, "--devices", "1"]);
    assert_eq!(second["succeeded"], 1, "{second}");
    assert_eq!(
        second["messages"], 2,
        "package 1 and package 3 only: no challenge either way: {second}"
    );
    assert_eq!(op_state(&data, op), "succeeded");

    // Lost state (a device reset): challenges both ways, then the operation still runs.
    let op = submit(&data, &ids[0], "get:./DevInfo/Man");
    let lost = sim_json(&["--server", &url, "--devices", "1", "--no-state"]);
    assert_eq!(lost["succeeded"], 1, "{lost}");
    assert_eq!(op_state(&data, op), "succeeded");
    server.stop();
}
