//! Replay and session end (SyncML RepPro 1.2 MsgID: unique and increasing within a session;
//! OMA-TS-DM_Protocol-V1_2 session end: the server's statuses-only Final package ends the
//! session, Alert 1223 "session abort").

use crate::wire::*;
use serde_json::json;

/// A message repeated with the same MsgID (an HTTP retry whose answer was lost) is answered
/// again with the same message, and nothing in it is applied twice. (The retried message is
/// one in the middle of the session: the commands span several server packages.)
#[test]
fn a_replayed_message_gets_the_same_answer_and_runs_once() {
    let b = Bench::start("replay");
    let mut dev = b.device(Auth::Md5);
    dev.max_msg_size = Some(2000);
    let value = "v".repeat(400);
    let commands: Vec<_> = (0..6)
        .map(|i| json!({"type": "replace", "path": format!("./Vendor/X/N{i}"), "value": value}))
        .collect();
    let loc = b.queue(&dev, json!(commands));
    let reply = dev.package1("1");
    let sent = reply
        .commands()
        .iter()
        .filter(|c| c.name == "Replace")
        .count();
    assert!(
        (1..6).contains(&sent),
        "the commands span packages: {}",
        reply.text()
    );
    let path = dev.path.clone();
    let ans = answer_ok(&dev, &reply, None);
    let m = dev.msg(ans, reply.is_final());
    let first = dev.send(&m);
    let again = post_raw(dev.addr, &path, XML, &[], m.xml().as_bytes());
    assert_eq!(again.http, first.http);
    assert_eq!(again.text(), first.text(), "the same answer");
    // Finish the session.
    let mut reply = first;
    while !reply.commands().is_empty() {
        let mut ans = answer_ok(&dev, &reply, None);
        let fin = reply.is_final();
        if !fin {
            let n = ans.len() as u32 + 1;
            ans.push(alert(n, 1222));
        }
        reply = dev.send_plain(ans, fin);
    }
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "succeeded", "{results:#?}");
    let events = b
        .api
        .admin("GET", "/api/v1/events?type=command.result&limit=100", None);
    let n = events.body["items"].as_array().unwrap().len();
    assert_eq!(n, 6, "one result per command: {}", events.raw);
}

/// SyncML RepPro 1.2 MsgID: a message that skips MsgIDs is not taken as part of the session;
/// what the session had sent and not seen answered stays to be done (a Get is sent again in
/// the next session).
#[test]
fn a_msg_id_jump_is_refused_and_nothing_is_lost() {
    let b = Bench::start("msgid-jump");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let reply = dev.package1("1");
    let mut m = dev.msg(answer_ok(&dev, &reply, Some("never")), true);
    m.msg_id = 7;
    let bad = dev.send(&m);
    assert!(
        bad.root.is_none() || bad.statuses().iter().all(|s| s.code >= 400) || bad.msg_id() == 1,
        "not processed in the session: {}",
        bad.text()
    );
    // The Get was never answered: the next session sends it again.
    let reply = authenticated(&mut dev, "2");
    assert_eq!(
        target(&reply.command("Get")),
        "./DevInfo/Mod",
        "{}",
        reply.text()
    );
    dev.send_plain(answer_ok(&dev, &reply, Some("M")), true);
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "succeeded", "{results:#?}");
    assert_eq!(results[0]["results"][0]["value"], "M");
}

/// DM Protocol 1.2 session end: after the server's statuses-only Final message the session
/// is over; a message sent to its RespURI afterwards opens nothing of the old session (it is
/// the first message of a new one: MsgID 1, credentials required).
#[test]
fn a_message_after_the_session_ended_is_a_new_session() {
    let b = Bench::start("after-end");
    let mut dev = b.device(Auth::Md5);
    let reply = dev.package1("1");
    assert!(
        reply.is_final() && reply.commands().is_empty(),
        "{}",
        reply.text()
    );
    let reply = dev.send_plain(vec![dev.hdr_ok(&reply, 1)], true);
    assert_eq!(reply.msg_id(), 1, "{}", reply.text());
    assert_eq!(reply.hdr_status().code, 407, "{}", reply.text());
}

/// DM Protocol 1.2 (Alert 1223, session abort): the server answers the Alert with 200, sends
/// nothing more, and the session is over; queued work stays queued.
#[test]
fn alert_1223_aborts_the_session() {
    let b = Bench::start("abort");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    dev.new_session("1");
    let reply = dev.send_cmds(vec![alert(1, 1201), alert(2, 1223)], true);
    assert_eq!(
        reply.status_for(1, 2).map(|s| s.code),
        Some(200),
        "{}",
        reply.text()
    );
    assert!(reply.commands().is_empty(), "{}", reply.text());
    assert!(reply.is_final());
    let op = b.api.admin("GET", &format!("{loc}/devices"), None);
    assert_eq!(op.body["items"][0]["state"], "queued", "{}", op.raw);
}
