//! Packages and messages (OMA-TS-DM_Protocol-V1_2: packages 1–4, multiple messages in a
//! package with Alert 1222, session end; SyncML RepPro 1.2 / DM RepPro 1.2: SyncHdr, Status
//! MsgRef/CmdRef, VerDTD/VerProto).

use crate::wire::*;
use serde_json::json;

/// DM RepPro 1.2 SyncHdr and Status rules: the server echoes the device's SessionID, numbers
/// its messages 1, 2, … in the session, answers the SyncHdr with a Status of CmdRef 0 (with
/// TargetRef/SourceRef) and every command with MsgRef/CmdRef naming it, gives a RespURI that
/// the device's next message uses, and ends with a statuses-only Final message.
#[test]
fn session_id_msg_ids_refs_and_resp_uri() {
    let b = Bench::start("pkg-hdr");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let reply = dev.package1("4F2A");
    assert_eq!(reply.hdr("SessionID").as_deref(), Some("4F2A"));
    assert_eq!(reply.msg_id(), 1);
    assert_eq!(reply.hdr("Target/LocURI"), Some(dev.id.clone()));
    assert!(reply.hdr("RespURI").is_some(), "{}", reply.text());
    let hdr = reply.hdr_status();
    assert_eq!(hdr.msg_ref, Some(1));
    assert_eq!(hdr.el.text_at("TargetRef"), Some(dev.server_url.clone()));
    assert_eq!(hdr.el.text_at("SourceRef"), Some(dev.id.clone()));
    let alert = reply.status_for(1, 1).expect("Status for Alert 1201");
    assert_eq!((alert.cmd.as_str(), alert.code), ("Alert", 200));
    let rep = reply
        .status_for(1, 2)
        .expect("Status for the DevInfo Replace");
    assert_eq!((rep.cmd.as_str(), rep.code), ("Replace", 200));
    // CmdIDs of the message are unique and increasing.
    let ids: Vec<u32> = reply
        .root()
        .child("SyncBody")
        .unwrap()
        .children
        .iter()
        .filter(|c| c.name != "Final")
        .map(cmd_id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(reply.is_final());

    let reply = dev.send_plain(answer_ok(&dev, &reply, Some("M")), true);
    assert_eq!(reply.hdr("SessionID").as_deref(), Some("4F2A"));
    assert_eq!(reply.msg_id(), 2, "same session at the RespURI");
    assert_eq!(reply.hdr_status().msg_ref, Some(2));
    assert!(
        reply.is_final() && reply.commands().is_empty(),
        "{}",
        reply.text()
    );
    assert_eq!(b.outcome(&loc).0, "succeeded");
}

/// DM Protocol 1.2 (multiple messages in a package): a device message without Final is
/// answered with statuses and Alert 1222, no Final and no new command; commands come once the
/// device's package is complete.
#[test]
fn a_device_package_over_two_messages_gets_alert_1222() {
    let b = Bench::start("pkg-dev-multi");
    let mut dev = b.device(Auth::Md5);
    b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    dev.new_session("7");
    let reply = dev.send_cmds(vec![alert(1, 1201)], false);
    assert_eq!(reply.hdr_status().code, 212, "{}", reply.text());
    assert!(!reply.is_final(), "{}", reply.text());
    let cmds = reply.commands();
    assert_eq!(cmds.len(), 1, "{}", reply.text());
    assert_eq!(cmds[0].name, "Alert");
    assert_eq!(cmds[0].text_at("Data").as_deref(), Some("1222"));
    let id = dev.id.clone();
    let reply = dev.send_plain(
        vec![
            dev.hdr_ok(&reply, 1),
            status(2, reply.msg_id(), cmd_id(&cmds[0]), "Alert", 200),
            devinfo(3, &id),
        ],
        true,
    );
    assert_eq!(target(&reply.command("Get")), "./DevInfo/Mod");
}

/// Runs the rest of a session as a device following DM Protocol 1.2 §"multiple messages in
/// package" would: statuses for everything received; after a message without Final, Alert
/// 1222 and no Final of its own (the device closes its package only after the server closed
/// its); until the server sends nothing more. Returns every server message, `first` included.
fn drive(dev: &mut Dev, first: Reply) -> Vec<Reply> {
    let mut all = vec![first];
    while all.len() < 30 {
        let reply = all.last().unwrap();
        if reply.is_final() && reply.commands().is_empty() {
            break;
        }
        let mut ans = answer_ok(dev, reply, Some("v"));
        let fin = reply.is_final();
        if !fin {
            let n = ans.len() as u32 + 1;
            ans.push(alert(n, 1222));
        }
        let next = dev.send_plain(ans, fin);
        all.push(next);
    }
    all
}

fn eight_replaces(b: &Bench, dev: &Dev) -> String {
    let value = "v".repeat(300);
    let commands: Vec<_> = (0..8)
        .map(|i| json!({"type": "replace", "path": format!("./Vendor/X/N{i}"), "value": value}))
        .collect();
    b.queue(dev, json!(commands))
}

/// DM RepPro 1.2 (MaxMsgSize) and DM Protocol 1.2 (a command fits entirely in one message):
/// commands that do not fit one message of the device's size are spread over several, each
/// within the size, and every command arrives exactly once.
#[test]
fn commands_beyond_one_message_are_spread_and_each_arrives_once() {
    let b = Bench::start("pkg-srv-multi");
    let mut dev = b.device(Auth::Md5);
    dev.max_msg_size = Some(2000);
    let loc = eight_replaces(&b, &dev);
    let first = dev.package1("9");
    let all = drive(&mut dev, first);
    assert!(all.len() >= 3, "several messages");
    let mut seen = Vec::new();
    for r in &all {
        assert!(r.body.len() <= 2000, "{} bytes", r.body.len());
        seen.extend(
            r.commands()
                .iter()
                .filter(|c| c.name == "Replace")
                .map(target),
        );
    }
    let mut want: Vec<String> = (0..8).map(|i| format!("./Vendor/X/N{i}")).collect();
    seen.sort();
    want.sort();
    assert_eq!(seen, want, "every command once");
    assert_eq!(b.outcome(&loc).0, "succeeded");
}

/// DM Protocol 1.2 (multiple messages in package, requirements): "A server MUST send the
/// Final flag in every message, when possible. This is not possible during the sending of a
/// Large Object, or when sending the 'Next Message' response"; the server has sent part of a
/// package without Final only while sending a large object, and "a server is not permitted to
/// send new commands to a client that has not yet returned a status to previous commands".
/// So commands that do not fit one message go in the next *package*: every server message
/// that carries commands and no chunk has Final.
#[test]
fn a_server_message_without_a_chunk_is_final() {
    let b = Bench::start("pkg-srv-final");
    let mut dev = b.device(Auth::Md5);
    dev.max_msg_size = Some(2000);
    eight_replaces(&b, &dev);
    let first = dev.package1("9");
    for r in drive(&mut dev, first) {
        let chunk = r.commands().iter().any(|c| c.at("Item/MoreData").is_some());
        assert!(
            r.is_final() || chunk,
            "a message without a chunk has Final: {}",
            r.text()
        );
    }
}

/// DM RepPro 1.2 (media types): a WBXML session — our XML encoded by libwbxml, an
/// implementation independent of ours — is answered in WBXML.
#[test]
fn a_wbxml_session_is_answered_in_wbxml() {
    if !libwbxml_installed() {
        eprintln!("libwbxml2-utils not installed: skipped");
        return;
    }
    let b = Bench::start("pkg-wbxml");
    let mut dev = b.device(Auth::Md5);
    dev.wbxml = true;
    let loc = b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let reply = dev.package1("1");
    assert!(
        reply.content_type.starts_with(WBXML),
        "{}",
        reply.content_type
    );
    assert_eq!(reply.hdr_status().code, 212);
    let reply = dev.send_plain(answer_ok(&dev, &reply, Some("WB")), true);
    assert!(reply.is_final());
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "succeeded", "{results:?}");
    assert_eq!(results[0]["results"][0]["value"], "WB");
}

/// SyncML RepPro 1.2 status codes 505 (DTD version) and 513 (protocol version): a message in
/// another version gets them for the SyncHdr and every command, and nothing runs (issue 9
/// item 6).
#[test]
fn unsupported_versions_get_505_or_513_and_nothing_runs() {
    let b = Bench::start("pkg-version");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let id = dev.id.clone();
    for (dtd, proto, code) in [("1.1", "DM/1.2", 505), ("1.2", "DM/9.9", 513)] {
        dev.new_session("1");
        let mut m = dev.msg(vec![alert(1, 1201), devinfo(2, &id)], true);
        m.ver_dtd = dtd.into();
        m.ver_proto = proto.into();
        m.cred = dev.cred();
        let reply = dev.send(&m);
        assert_eq!(reply.hdr_status().code, code, "{}", reply.text());
        assert_eq!(reply.status_for(1, 1).unwrap().code, code);
        assert_eq!(reply.status_for(1, 2).unwrap().code, code);
        assert!(reply.commands().is_empty(), "{}", reply.text());
        assert_eq!(reply.hdr("VerProto").as_deref(), Some("DM/1.2"));
    }
    let op = b.api.admin("GET", &format!("{loc}/devices"), None);
    assert_eq!(op.body["items"][0]["state"], "queued", "{}", op.raw);
}

/// DM RepPro 1.2 MaxMsgSize: no server message exceeds what the device announced, the first
/// one (SyncHdr status with its Chal, the server's Cred, statuses) included (issue 9 item 3).
#[test]
fn every_server_message_fits_the_announced_max_msg_size() {
    let b = Bench::start("pkg-maxmsg");
    let mut dev = b.device(Auth::Md5);
    dev.max_msg_size = Some(1400);
    let loc = b.queue(
        &dev,
        json!([
            {"type": "get", "path": "./DevInfo/Mod"},
            {"type": "get", "path": "./DevInfo/Man"},
            {"type": "replace", "path": "./Vendor/X/A", "value": "x".repeat(200)},
        ]),
    );
    let mut reply = dev.package1("1");
    let mut n = 0;
    loop {
        n += 1;
        assert!(
            reply.body.len() <= 1400,
            "message {n}: {} bytes\n{}",
            reply.body.len(),
            reply.text()
        );
        if reply.commands().is_empty() || n > 20 {
            break;
        }
        let mut ans = answer_ok(&dev, &reply, Some("v"));
        let fin = reply.is_final();
        if !fin {
            let k = ans.len() as u32 + 1;
            ans.push(alert(k, 1222));
        }
        reply = dev.send_plain(ans, fin);
    }
    assert_eq!(b.outcome(&loc).0, "succeeded");
}
