//! Authentication both ways, all three schemes (OMA-TS-DM_Security-V1_2 §5: §5.3.1 Basic,
//! §5.3.2 MD5 digest, §5.4 HMAC-MD5; OMA-TS-DM_Protocol-V1_2, authentication section).

use crate::wire::*;
use serde_json::json;

/// Asserts a 401/407 answer to a message of `n` commands: the SyncHdr and every command get
/// `code` with a Chal of `auth_type` carrying a NextNonce, nothing else is in the message.
fn assert_challenged(reply: &Reply, msg_ref: u32, cmds: &[u32], code: u16, auth_type: &str) {
    let hdr = reply.hdr_status();
    assert_eq!(hdr.code, code, "{}", reply.text());
    assert_eq!(
        hdr.chal_type().as_deref(),
        Some(auth_type),
        "{}",
        reply.text()
    );
    if auth_type != "syncml:auth-basic" {
        assert!(hdr.next_nonce().is_some(), "NextNonce: {}", reply.text());
        // DM RepPro 1.2 (Chal): with auth-md5 or auth-MAC the Meta Format MUST be b64.
        let fmt = hdr.chal.as_ref().and_then(|c| c.text_at("Meta/Format"));
        assert_eq!(fmt.as_deref(), Some("b64"), "{}", reply.text());
    }
    for &c in cmds {
        let st = reply
            .status_for(msg_ref, c)
            .unwrap_or_else(|| panic!("a Status for command {c}: {}", reply.text()));
        assert_eq!(st.code, code, "{}", reply.text());
        assert_eq!(
            st.chal_type().as_deref(),
            Some(auth_type),
            "{}",
            reply.text()
        );
    }
    assert!(
        reply.commands().is_empty(),
        "nothing runs in a refused message: {}",
        reply.text()
    );
}

/// DM Protocol 1.2 (authentication) and DM Security 1.2 §5: a message without credentials
/// gets 407 "credentials missing" for the SyncHdr and for every command in it, each with a
/// Chal naming the scheme and a NextNonce (issue 9 item 1).
#[test]
fn missing_credentials_get_407_with_a_chal_on_every_command() {
    let b = Bench::start("auth-407");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let id = dev.id.clone();
    let m = dev.msg(vec![alert(1, 1201), devinfo(2, &id)], true);
    let reply = dev.send(&m);
    assert_eq!(reply.http, 200);
    assert_challenged(&reply, 1, &[1, 2], 407, "syncml:auth-md5");
    assert!(reply.is_final(), "{}", reply.text());

    // The device answers the challenge in the same session (MsgID 2, at RespURI), with the
    // nonce it was given: accepted with 212, and only now the Get goes out.
    let reply = dev.resend_package1(&reply);
    assert_eq!(reply.hdr_status().code, 212, "{}", reply.text());
    assert_eq!(reply.msg_id(), 2, "same session, next MsgID");
    let get = reply.command("Get");
    assert_eq!(target(&get), "./DevInfo/Mod");
    let reply = dev.send_plain(answer_ok(&dev, &reply, Some("M1")), true);
    assert!(reply.commands().is_empty() && reply.is_final());
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "succeeded", "{results:?}");
}

/// DM Security 1.2 §5.3.2 (MD5 digest `B64(H(B64(H(user:pwd)):nonce))`): wrong credentials
/// get 401 with a Chal for the SyncHdr and every command; the digest over the challenged
/// nonce is accepted with 212 and a NextNonce for the next session.
#[test]
fn md5_wrong_digest_gets_401_and_the_challenged_nonce_is_accepted() {
    let b = Bench::start("auth-md5");
    let mut dev = b.device(Auth::Md5);
    let id = dev.id.clone();
    let mut m = dev.msg(vec![alert(1, 1201), devinfo(2, &id)], true);
    m.cred = Some(cred_xml(
        "syncml:auth-md5",
        &md5_cred(&dev.client_name, "not-the-secret", &dev.client_nonce),
    ));
    let reply = dev.send(&m);
    assert_challenged(&reply, 1, &[1, 2], 401, "syncml:auth-md5");
    let challenged = dev.client_nonce.clone();

    let reply = dev.resend_package1(&reply);
    let hdr = reply.hdr_status();
    assert_eq!(hdr.code, 212, "{}", reply.text());
    let next = hdr
        .next_nonce()
        .expect("a NextNonce with 212 (DM Security 1.2 §5)");
    assert_ne!(next, challenged, "a fresh nonce for the next session");
    // The Alert and the DevInfo Replace (CmdIDs 2 and 3 after our Status) now get 200.
    assert_eq!(reply.status_for(2, 2).unwrap().code, 200);
    assert_eq!(reply.status_for(2, 3).unwrap().code, 200);

    // Nothing was queued: that statuses-only, Final message ended the session (DM Protocol
    // 1.2, session end). The next session authenticates with the nonce given with the 212.
    assert!(reply.is_final() && reply.commands().is_empty());
    let reply = dev.package1("2");
    assert_eq!(reply.hdr_status().code, 212, "{}", reply.text());
}

/// DM Security 1.2 §5 / DM Protocol 1.2 (authentication): every 401 carries a Chal, the third
/// failed attempt's included; after three failures the session is over (decision 78) and
/// nothing queued was sent in it.
#[test]
fn three_failed_attempts_each_get_a_chal_then_the_session_ends() {
    let b = Bench::start("auth-3");
    let mut dev = b.device(Auth::Md5);
    b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let id = dev.id.clone();
    let mut last: Option<Reply> = None;
    for attempt in 1..=3 {
        // After a challenge the device also answers the server's SyncHdr; a Status gets no
        // Status back, the commands do.
        let (cmds, refs) = match &last {
            None => (vec![alert(1, 1201), devinfo(2, &id)], vec![1, 2]),
            Some(r) => (
                vec![dev.hdr_ok(r, 1), alert(2, 1201), devinfo(3, &id)],
                vec![2, 3],
            ),
        };
        let mut m = dev.msg(cmds, true);
        m.cred = Some(cred_xml("syncml:auth-md5", "AAAAAAAAAAAAAAAAAAAAAA=="));
        let reply = dev.send(&m);
        assert_challenged(&reply, attempt, &refs, 401, "syncml:auth-md5");
        assert_eq!(
            reply.statuses().len(),
            3,
            "the SyncHdr and two commands: {}",
            reply.text()
        );
        assert_eq!(reply.msg_id(), attempt, "one session: {}", reply.text());
        assert!(reply.is_final());
        last = Some(reply);
    }
    // A fourth message at the RespURI is not part of that session any more: it is answered
    // as the first message of a new one (MsgID 1), with the nonce the last Chal gave.
    let reply = dev.send_cmds(vec![alert(1, 1201), devinfo(2, &id)], true);
    assert_eq!(reply.msg_id(), 1, "a new session: {}", reply.text());
    assert_eq!(reply.hdr_status().code, 212, "{}", reply.text());
    assert_eq!(target(&reply.command("Get")), "./DevInfo/Mod");
}

/// DM Security 1.2 §5.3.1 (Basic, `B64(username:password)`): accepted with 212; a wrong
/// password gets 401 with a Basic Chal.
#[test]
fn basic_credentials_are_accepted_and_wrong_ones_challenged() {
    let b = Bench::start("auth-basic");
    let mut dev = b.device(Auth::Basic);
    let id = dev.id.clone();
    let mut m = dev.msg(vec![alert(1, 1201), devinfo(2, &id)], true);
    m.cred = Some(cred_xml(
        "syncml:auth-basic",
        &basic_cred(&dev.client_name, "wrong"),
    ));
    let reply = dev.send(&m);
    assert_challenged(&reply, 1, &[1, 2], 401, "syncml:auth-basic");
    let reply = dev.resend_package1(&reply);
    assert_eq!(reply.hdr_status().code, 212, "{}", reply.text());
}

/// DM Security 1.2 §5 (the server decides the scheme it challenges with): a device whose
/// account requires MD5 cannot authenticate with Basic, even with the right password.
#[test]
fn an_md5_account_does_not_accept_basic() {
    let b = Bench::start("auth-downgrade");
    let mut dev = b.device(Auth::Md5);
    let id = dev.id.clone();
    let mut m = dev.msg(vec![alert(1, 1201), devinfo(2, &id)], true);
    m.cred = Some(cred_xml(
        "syncml:auth-basic",
        &basic_cred(&dev.client_name, &dev.client_secret),
    ));
    let reply = dev.send(&m);
    let hdr = reply.hdr_status();
    assert!(matches!(hdr.code, 401 | 407), "{}", reply.text());
    assert_eq!(hdr.chal_type().as_deref(), Some("syncml:auth-md5"));
}

/// DM Security 1.2 §5.4 (HMAC-MD5 in `x-syncml-hmac`, checked on every message): each device
/// message that passes gets SyncHdr status 200 (never 212) with a NextNonce for the next
/// message, the closing one included; every server message is signed with the server's
/// credentials over the nonce the device gave (issue 9 item 2).
#[test]
fn hmac_every_message_gets_200_a_next_nonce_and_a_server_mac() {
    let b = Bench::start("auth-hmac");
    let mut dev = b.device(Auth::Hmac);
    let loc = b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let reply = dev.package1("1");
    let hdr = reply.hdr_status();
    assert_eq!(hdr.code, 200, "HMAC is never 212: {}", reply.text());
    assert_eq!(hdr.chal_type().as_deref(), Some("syncml:auth-MAC"));
    assert!(hdr.next_nonce().is_some());
    assert!(dev.server_hmac_ok(&reply), "server MAC: {:?}", reply.hmac);
    assert!(
        reply.hdr("Cred").is_none(),
        "HMAC replaces Cred: {}",
        reply.text()
    );
    let first_nonce = dev.client_nonce.clone();

    // Package 3, MAC'd over the nonce just given.
    let reply = dev.send_plain(answer_ok(&dev, &reply, Some("HMAC-1")), true);
    let hdr = reply.hdr_status();
    assert_eq!(hdr.code, 200, "{}", reply.text());
    let closing_nonce = hdr
        .next_nonce()
        .expect("the closing message has a NextNonce");
    assert_ne!(closing_nonce, first_nonce);
    assert!(reply.is_final() && reply.commands().is_empty());
    assert!(dev.server_hmac_ok(&reply), "closing message signed");
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "succeeded", "{results:?}");
    assert_eq!(results[0]["results"][0]["value"], "HMAC-1", "{results:?}");

    // The next session starts with the closing message's nonce.
    let reply = dev.package1("2");
    assert_eq!(reply.hdr_status().code, 200, "{}", reply.text());
}

/// DM Security 1.2 §5.4: an HMAC device's message without the `x-syncml-hmac` header is
/// missing its credentials: 407 with an HMAC Chal, for the SyncHdr and every command.
#[test]
fn hmac_without_the_header_gets_407() {
    let b = Bench::start("auth-hmac-407");
    let dev = b.device(Auth::Hmac);
    let id = dev.id.clone();
    let m = dev.msg(vec![alert(1, 1201), devinfo(2, &id)], true);
    let reply = post_raw(dev.addr, "/dm", XML, &[], m.xml().as_bytes());
    assert_challenged(&reply, 1, &[1, 2], 407, "syncml:auth-MAC");
}

/// DM Security 1.2 §5.3.2 (server to client): the server's first message carries its MD5
/// Cred over the nonce the device gave it (empty for a new account); when the device gives a
/// new one in the Chal of its SyncHdr Status, the server's next Cred uses it.
#[test]
fn the_server_authenticates_with_md5_over_the_devices_nonce() {
    let b = Bench::start("auth-server-md5");
    let mut dev = b.device(Auth::Md5);
    // Something queued, so that the session lasts until the device's answer.
    b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let reply = dev.package1("1");
    assert_eq!(
        reply.hdr("Cred/Meta/Type").as_deref(),
        Some("syncml:auth-md5")
    );
    assert_eq!(
        reply.hdr("Cred/Data"),
        Some(dev.expected_server_md5()),
        "{}",
        reply.text()
    );
    // 212 for the server, with a new nonce for its next credentials.
    let chal = chal_xml("syncml:auth-md5", b"device-nonce-2");
    let mut answer = answer_ok(&dev, &reply, Some("M"));
    answer[0] = status_full(1, reply.msg_id(), 0, "SyncHdr", 212, &chal, "");
    let reply = dev.send_plain(answer, true);
    assert!(reply.is_final());
    assert!(
        reply.hdr("Cred").is_none(),
        "no Cred after the device's 212: {}",
        reply.text()
    );
    dev.server_nonce = b"device-nonce-2".to_vec();

    let reply = dev.package1("2");
    assert_eq!(
        reply.hdr("Cred/Data"),
        Some(dev.expected_server_md5()),
        "the server's Cred over the new nonce: {}",
        reply.text()
    );
}

/// DM Security 1.2 §5 (client authenticating the server): a device that refuses the
/// server's credentials (401 with a Chal) has executed nothing of that message; the server
/// sends the commands again with a Cred over the new nonce, and they complete.
#[test]
fn a_device_refusing_the_servers_credentials_gets_the_commands_again() {
    let b = Bench::start("auth-server-refused");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let reply = dev.package1("1");
    let get = reply.command("Get");
    let chal = chal_xml("syncml:auth-md5", b"fresh-server-nonce");
    let refused = vec![
        status_full(1, reply.msg_id(), 0, "SyncHdr", 401, &chal, ""),
        status(2, reply.msg_id(), cmd_id(&get), "Get", 401),
    ];
    let reply = dev.send_plain(refused, true);
    dev.server_nonce = b"fresh-server-nonce".to_vec();
    assert_eq!(
        reply.hdr("Cred/Data"),
        Some(dev.expected_server_md5()),
        "Cred over the device's new nonce: {}",
        reply.text()
    );
    let again = reply.command("Get");
    assert_eq!(target(&again), "./DevInfo/Mod", "the Get is sent again");
    let reply = dev.send_plain(answer_ok(&dev, &reply, Some("M2")), true);
    assert!(reply.is_final());
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "succeeded", "{results:?}");
    assert_eq!(results[0]["results"][0]["value"], "M2", "{results:?}");
}

/// DM Security 1.2 §5.4: an HMAC whose MAC does not verify gets 401 with an HMAC Chal for the
/// SyncHdr and every command; nothing runs.
#[test]
fn hmac_with_a_wrong_mac_gets_401() {
    let b = Bench::start("auth-hmac-401");
    let dev = b.device(Auth::Hmac);
    let id = dev.id.clone();
    let body = dev.msg(vec![alert(1, 1201), devinfo(2, &id)], true).xml();
    let mac = hmac_header(
        &dev.client_name,
        "wrong-secret",
        &dev.client_nonce,
        body.as_bytes(),
    );
    let reply = post_raw(
        dev.addr,
        "/dm",
        XML,
        &[("x-syncml-hmac", &mac)],
        body.as_bytes(),
    );
    assert_challenged(&reply, 1, &[1, 2], 401, "syncml:auth-MAC");
}

/// DM Security 1.2 §5 (the server authenticating to the device): a device that keeps
/// refusing the server's credentials (401 with a Chal) is not retried forever: after the
/// third refusal the server ends the session with a Final message, and the refused command
/// is not lost (it is still to be done).
#[test]
fn three_refusals_of_the_servers_credentials_end_the_session() {
    let b = Bench::start("auth-server-3");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(&dev, json!([{"type": "get", "path": "./DevInfo/Mod"}]));
    let mut reply = dev.package1("1");
    for refusal in 1..=3 {
        assert!(
            reply.hdr("Cred").is_some(),
            "the server presents credentials: {}",
            reply.text()
        );
        let get = reply.commands().into_iter().find(|c| c.name == "Get");
        let chal = chal_xml("syncml:auth-md5", format!("n{refusal}").as_bytes());
        let mut msg = vec![status_full(1, reply.msg_id(), 0, "SyncHdr", 401, &chal, "")];
        if let Some(g) = &get {
            msg.push(status(2, reply.msg_id(), cmd_id(g), "Get", 401));
        }
        reply = dev.send_plain(msg, true);
    }
    assert!(reply.is_final(), "{}", reply.text());
    assert!(reply.commands().is_empty(), "{}", reply.text());
    let op = b.api.admin("GET", &format!("{loc}/devices"), None);
    let state = op.body["items"][0]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(state, "queued", "requeued for the next session: {}", op.raw);
}
