//! Conformance: asynchronous completion of an Exec (issue 9 item 5).
//!
//! The rules, from the specifications (read with the search tool; see docs/decisions.md 85–89):
//! - OMA DM Protocol 1.2, Exec and Generic Alert (1226): a device that answers an Exec with
//!   202 "Accepted for processing" reports the result later in a Generic Alert 1226 carrying
//!   the Exec's `Correlator`; the result code is the Item's `Data`.
//! - FUMO 1.0 §10.2: the ResultCode of that alert (200 Successful, 410 Firmware Update Failed,
//!   …) is the outcome of the update.
//!
//! The device here is hand-built: its SyncML messages are written in this file (Basic
//! authentication, so that no digest code of ours is involved) and POSTed raw to the real
//! server; only the WSI calls use the API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::wsi::Api;
use support::{DataDir, Server, ok, omnidm};

const SECRET: &str = "device-secret-1";

/// Registers a device that authenticates with Basic (`name:secret`); returns its id.
fn basic_device(data: &DataDir, id: &str) -> String {
    let line = json!({
        "device_id": id,
        "auth": "basic",
        "client_name": id,
        "client_secret": SECRET,
        "server_id": "omnidm",
        "server_secret": "server-secret-1",
    });
    let file = data.0.join(format!("{}.jsonl", id.replace(':', "_")));
    std::fs::write(&file, format!("{line}\n")).unwrap();
    ok(omnidm(data, &["devices", "import", file.to_str().unwrap()]));
    id.to_owned()
}

/// One hand-built device session: the URI to post to (the server's RespURI once it gave
/// one), the session id and the next MsgID.
struct Session {
    addr: SocketAddr,
    uri: String,
    device: String,
    session_id: u32,
    msg_id: u32,
}

/// What the server sent that needs an answer: (command name, CmdID, Correlator).
type Commands = Vec<(String, String, Option<String>)>;

impl Session {
    fn new(server: &Server, device: &str, session_id: u32) -> Session {
        Session {
            addr: server.dm,
            uri: server.dm_url(),
            device: device.to_owned(),
            session_id,
            msg_id: 1,
        }
    }

    /// Sends one message whose SyncBody is `body` (without `<Final/>`, added here); returns
    /// the server's reply.
    fn send(&mut self, body: &str) -> String {
        let cred = if self.msg_id == 1 {
            let b64 = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{SECRET}", self.device));
            format!(
                "<Cred><Meta><Format xmlns='syncml:metinf'>b64</Format>\
                 <Type xmlns='syncml:metinf'>syncml:auth-basic</Type></Meta>\
                 <Data>{b64}</Data></Cred>"
            )
        } else {
            String::new()
        };
        let msg = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr>\
             <VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto><SessionID>{sid}</SessionID>\
             <MsgID>{mid}</MsgID><Target><LocURI>{target}</LocURI></Target>\
             <Source><LocURI>{device}</LocURI></Source>{cred}\
             <Meta><MaxMsgSize xmlns='syncml:metinf'>16384</MaxMsgSize></Meta></SyncHdr>\
             <SyncBody>{body}<Final/></SyncBody></SyncML>",
            sid = self.session_id,
            mid = self.msg_id,
            target = xml_escape(&self.uri),
            device = self.device,
        );
        let path = self
            .uri
            .split_once("//")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
            .unwrap_or_else(|| "/dm".into());
        let (status, _, reply) = support::post(
            self.addr,
            &path,
            "application/vnd.syncml.dm+xml",
            msg.as_bytes(),
        );
        let reply = String::from_utf8(reply).unwrap();
        assert_eq!(status, 200, "{reply}");
        if let Some(resp) = between(&reply, "<RespURI>", "</RespURI>") {
            self.uri = xml_unescape(resp);
        }
        self.msg_id += 1;
        reply
    }

    /// Package 1: a client-initiated session (Alert 1201) with DevInfo, plus `extra`
    /// commands (e.g. a Generic Alert).
    fn package1(&mut self, extra: &str) -> String {
        let body = format!(
            "<Alert><CmdID>1</CmdID><Data>1201</Data></Alert>\
             <Replace><CmdID>2</CmdID>\
             <Item><Source><LocURI>./DevInfo/DevId</LocURI></Source><Data>{d}</Data></Item>\
             <Item><Source><LocURI>./DevInfo/Man</LocURI></Source><Data>Hand</Data></Item>\
             <Item><Source><LocURI>./DevInfo/Mod</LocURI></Source><Data>Built</Data></Item>\
             <Item><Source><LocURI>./DevInfo/DmV</LocURI></Source><Data>1.2</Data></Item>\
             <Item><Source><LocURI>./DevInfo/Lang</LocURI></Source><Data>en</Data></Item>\
             </Replace>{extra}",
            d = self.device
        );
        self.send(&body)
    }
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(&s[start..end])
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
}

fn xml_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
}

/// The commands of a server message that need a Status: (name, CmdID, Correlator).
fn commands(reply: &str) -> Commands {
    let body = between(reply, "<SyncBody>", "</SyncBody>").unwrap_or("");
    let mut out = Vec::new();
    for name in ["Exec", "Get", "Replace", "Add", "Delete", "Alert", "Copy"] {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let mut rest = body;
        while let Some(i) = rest.find(&open) {
            let cmd = &rest[i..];
            let end = cmd.find(&close).map_or(cmd.len(), |e| e + close.len());
            let cmd = &cmd[..end];
            let id = between(cmd, "<CmdID>", "</CmdID>").unwrap().to_owned();
            let correlator = between(cmd, "<Correlator>", "</Correlator>").map(str::to_owned);
            out.push((name.to_owned(), id, correlator));
            rest = &rest[i + end..];
        }
    }
    out
}

/// A Status for `cmd` of message `msg_ref`.
fn status(cmd_id: u32, msg_ref: u32, cmd_ref: &str, cmd: &str, code: u16) -> String {
    format!(
        "<Status><CmdID>{cmd_id}</CmdID><MsgRef>{msg_ref}</MsgRef><CmdRef>{cmd_ref}</CmdRef>\
         <Cmd>{cmd}</Cmd><Data>{code}</Data></Status>"
    )
}

/// A Generic Alert 1226 (DM Protocol 1.2; FUMO 1.0 §10.2: Type the FUMO alert type, Format
/// int, Data the ResultCode) answering the Exec whose correlator is `correlator`.
fn generic_alert(cmd_id: u32, correlator: &str, result_code: u16) -> String {
    format!(
        "<Alert><CmdID>{cmd_id}</CmdID><Data>1226</Data><Correlator>{correlator}</Correlator>\
         <Item><Source><LocURI>./FUMO/fw1/Update</LocURI></Source>\
         <Meta><Type xmlns='syncml:metinf'>org.openmobilealliance.dm.firmwareupdate.update</Type>\
         <Format xmlns='syncml:metinf'>int</Format></Meta>\
         <Data>{result_code}</Data></Item></Alert>"
    )
}

/// Submits one Exec of `./FUMO/fw1/Update` for `device`; returns the WSI operation's path.
fn submit_update(api: &Api, device: &str) -> String {
    let r = api.admin(
        "POST",
        &format!("/api/v1/devices/{device}/operations"),
        Some(json!({ "commands": [{"type": "exec", "path": "./FUMO/fw1/Update"}] })),
    );
    assert_eq!(r.status, 202, "{}", r.raw);
    r.headers["location"].clone()
}

/// The device operation of a WSI operation (its only device).
fn device_op(api: &Api, location: &str) -> Value {
    let r = api.admin("GET", &format!("{location}/devices"), None);
    assert_eq!(r.status, 200, "{}", r.raw);
    r.body["items"][0].clone()
}

/// Session 1: the device receives the Exec and answers `exec_status`; `extra(correlator)`
/// adds commands to that same answer (a Generic Alert in the same session), placed before
/// the statuses when `alert_first`. Returns the Exec's correlator.
fn run_exec_session(
    server: &Server,
    device: &str,
    session_id: u32,
    exec_status: u16,
    extra: impl Fn(&str) -> String,
    alert_first: bool,
) -> String {
    let mut s = Session::new(server, device, session_id);
    let reply = s.package1("");
    let cmds = commands(&reply);
    let (_, exec_id, correlator) = cmds
        .iter()
        .find(|(n, _, _)| n == "Exec")
        .unwrap_or_else(|| panic!("the server sends the Exec: {reply}"))
        .clone();
    let correlator = correlator.expect("the Exec carries a Correlator");
    let msg_ref = 1;
    let mut statuses = status(1, msg_ref, "0", "SyncHdr", 200);
    let mut next = 2;
    for (name, id, _) in &cmds {
        let code = if *id == exec_id { exec_status } else { 200 };
        statuses.push_str(&status(next, msg_ref, id, name, code));
        next += 1;
    }
    let alert = extra(&xml_unescape(&correlator)).replace("{cmd_id}", &next.to_string());
    let body = if alert_first {
        format!("{alert}{statuses}")
    } else {
        format!("{statuses}{alert}")
    };
    let reply = s.send(&body);
    // The server closes with statuses only (or nothing more to do).
    assert!(
        !commands(&reply).iter().any(|(n, _, _)| n == "Exec"),
        "{reply}"
    );
    xml_unescape(&correlator)
}

/// A later session that only reports: package 1 with the Generic Alert.
fn report_later(server: &Server, device: &str, session_id: u32, correlator: &str, code: u16) {
    let mut s = Session::new(server, device, session_id);
    let reply = s.package1(&generic_alert(3, &xml_escape(correlator), code));
    assert!(
        reply.contains("<Cmd>Alert</Cmd>"),
        "the alert gets its Status: {reply}"
    );
    // Close the session: statuses for the server's header only.
    if commands(&reply).is_empty() {
        return;
    }
    let mut body = status(1, 1, "0", "SyncHdr", 200);
    for (i, (name, id, _)) in commands(&reply).iter().enumerate() {
        body.push_str(&status(2 + i as u32, 1, id, name, 200));
    }
    s.send(&body);
}

fn wait_for_state(api: &Api, location: &str, state: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let op = device_op(api, location);
        if op["state"] == state || Instant::now() > until {
            return op;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events_of(api: &Api, operation_id: u64) -> Vec<Value> {
    let r = api.admin("GET", "/api/v1/events?limit=500", None);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["device_operation_id"].as_u64() == Some(operation_id))
        .cloned()
        .collect()
}

/// DM Protocol 1.2 Exec/Generic Alert, FUMO 1.0 §10.2: an Exec answered 202 is accepted, not
/// done: the operation is `awaiting_report` with a deadline (visible in the WSI) until the
/// Generic Alert 1226 with its correlator arrives; ResultCode 200 then succeeds it.
#[test]
fn rule_fumo_10_2_exec_answered_202_awaits_the_generic_alert() {
    let data = DataDir::new("async-awaits");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let device = basic_device(&data, "IMEI:490000000000001");
    let location = submit_update(&api, &device);

    let correlator = run_exec_session(&server, &device, 1, 202, |_| String::new(), false);
    let op = wait_for_state(&api, &location, "awaiting_report", Duration::from_secs(5));
    assert_eq!(op["state"], "awaiting_report", "{op}");
    assert!(op["report_deadline"].is_string(), "{op}");
    assert_eq!(op["results"][0]["status"], 202, "{op}");
    assert!(op["results"][0]["report_deadline"].is_string(), "{op}");
    let whole = api.admin("GET", &location, None);
    assert_eq!(whole.body["counts"]["awaiting_report"], 1, "{}", whole.raw);
    assert_eq!(whole.body["state"], "in_progress", "{}", whole.raw);

    report_later(&server, &device, 2, &correlator, 200);
    let op = wait_for_state(&api, &location, "succeeded", Duration::from_secs(5));
    assert_eq!(op["state"], "succeeded", "{op}");
    assert_eq!(op["results"][0]["status"], 200, "{op}");
    assert_eq!(op["results"][0]["reason"], "Successful", "{op}");
    assert!(op.get("report_deadline").is_none(), "{op}");
    let id = op["device_operation_id"].as_u64().unwrap();
    let transitions: Vec<(Value, Value)> = events_of(&api, id)
        .iter()
        .filter(|e| e["type"] == "operation.state_changed")
        .map(|e| (e["data"]["from"].clone(), e["data"]["to"].clone()))
        .collect();
    assert!(
        transitions.contains(&(json!("in_session"), json!("awaiting_report")))
            && transitions.contains(&(json!("awaiting_report"), json!("succeeded"))),
        "{transitions:?}"
    );
    server.stop();
}

/// FUMO 1.0 §10.2: ResultCode 410 "Firmware Update Failed" in the later Generic Alert fails
/// the command and the operation, with the code and its name (before: `succeeded`).
#[test]
fn rule_fumo_10_2_result_code_410_fails_the_operation() {
    let data = DataDir::new("async-410");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let device = basic_device(&data, "IMEI:490000000000002");
    let location = submit_update(&api, &device);
    let correlator = run_exec_session(&server, &device, 1, 202, |_| String::new(), false);
    report_later(&server, &device, 2, &correlator, 410);
    let op = wait_for_state(&api, &location, "failed", Duration::from_secs(5));
    assert_eq!(op["state"], "failed", "{op}");
    assert_eq!(op["results"][0]["status"], 410, "{op}");
    assert_eq!(op["results"][0]["reason"], "Firmware Update Failed", "{op}");
    let id = op["device_operation_id"].as_u64().unwrap();
    let events = events_of(&api, id);
    assert!(
        events.iter().any(|e| e["type"] == "command.result"
            && e["data"]["status"] == 410
            && e["data"]["reason"] == "Firmware Update Failed"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "operation.state_changed" && e["data"]["to"] == "failed"),
        "{events:?}"
    );
    server.stop();
}

/// Decision 87: a device that never reports: once `[dm] report_timeout_secs` passed, the
/// server's sweep fails the Exec with 902 `report_timeout`; a report that comes afterwards
/// is recorded as late and changes nothing (decision 88).
#[test]
fn rule_fumo_10_2_deadline_fails_an_unreported_exec() {
    let data = DataDir::new("async-deadline");
    let config = data.0.join("omnidm.toml");
    std::fs::write(&config, "[dm]\nreport_timeout_secs = 1\n").unwrap();
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let api = Api::new(&server, &data);
    let device = basic_device(&data, "IMEI:490000000000003");
    let location = submit_update(&api, &device);
    let correlator = run_exec_session(&server, &device, 1, 202, |_| String::new(), false);
    let op = wait_for_state(&api, &location, "failed", Duration::from_secs(15));
    assert_eq!(op["state"], "failed", "{op}");
    assert_eq!(op["results"][0]["status"], 902, "{op}");
    assert_eq!(op["results"][0]["reason"], "report_timeout", "{op}");

    report_later(&server, &device, 2, &correlator, 200);
    std::thread::sleep(Duration::from_millis(300));
    let op = device_op(&api, &location);
    assert_eq!(op["state"], "failed", "a late report changes nothing: {op}");
    assert_eq!(op["results"][0]["status"], 902, "{op}");
    assert_eq!(op["results"][0]["late_report"]["status"], 200, "{op}");
    server.stop();
}

/// The same session: the device answers the Exec 202 and sends the Generic Alert 1226 with
/// ResultCode 410 in the same message, after the statuses and (DM Protocol 1.2 puts no order
/// on the commands of a SyncBody) before them: the operation fails either way.
#[test]
fn rule_fumo_10_2_same_session_report() {
    let data = DataDir::new("async-same");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let device = basic_device(&data, "IMEI:490000000000004");
    for (session, alert_first) in [(1, false), (2, true)] {
        let location = submit_update(&api, &device);
        run_exec_session(
            &server,
            &device,
            session,
            202,
            |c| {
                generic_alert(0, &xml_escape(c), 410)
                    .replace("<CmdID>0</CmdID>", "<CmdID>{cmd_id}</CmdID>")
            },
            alert_first,
        );
        let op = wait_for_state(&api, &location, "failed", Duration::from_secs(5));
        assert_eq!(op["state"], "failed", "alert first: {alert_first}: {op}");
        assert_eq!(op["results"][0]["status"], 410, "{op}");
        assert_eq!(op["results"][0]["reason"], "Firmware Update Failed", "{op}");
    }
    server.stop();
}
