//! The recorded Funambol exchange replayed against the client engine: package 1 must resemble
//! the recorded one, the answer to package 2 the recorded package 3, and package 4 ends the
//! session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use omnidm_omadm::client::{
    ClientConfig, ClientEvent, ClientSession, DeviceProfile, MemoryTree, SessionOutcome,
    SessionParams,
};
use omnidm_syncml::auth::{AuthType, Credentials, Nonce, verify_cred_element};
use omnidm_syncml::{AlertCode, Command, Message, StatusCode, decode};

const SERVER_URI: &str = "http://127.0.0.1:8080/funambol/dm";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/client/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn device() -> (ClientConfig, MemoryTree) {
    let profile = DeviceProfile {
        dev_id: "DMCtest".into(),
        man: "test manufacturer".into(),
        model: "test model".into(),
        lang: "test language".into(),
        server_id: "funambol".into(),
        server_uri: SERVER_URI.into(),
        client_auth_type: "BASIC".into(),
        client_name: "funambol".into(),
        client_secret: "funambol".into(),
        server_secret: "srvpwd".into(),
        ..DeviceProfile::default()
    };
    let mut config = ClientConfig::from_profile(&profile);
    config.client_auth = AuthType::Basic;
    config.server_auth = Some(AuthType::Md5);
    (config, MemoryTree::standard_device(&profile))
}

fn msg(bytes: &[u8]) -> Message {
    decode(bytes).unwrap().message
}

#[test]
fn funambol_capture() {
    let now = Instant::now();
    let (config, mut tree) = device();
    let mut s = ClientSession::new(config, SessionParams::first([7; 16]), now);

    // Package 1 resembles the recorded one.
    let p1 = s.poll_transmit(&mut tree, now).expect("package 1");
    assert_eq!(p1.uri, SERVER_URI);
    assert!(p1.final_);
    assert!(
        s.poll_transmit(&mut tree, now).is_none(),
        "one message at a time"
    );
    let ours = msg(&p1.body);
    let recorded = msg(&fixture("pkg1-client.xml"));
    assert_eq!(ours.header.session_id, recorded.header.session_id);
    assert_eq!(ours.header.msg_id, 1);
    assert_eq!(ours.header.target, recorded.header.target);
    assert_eq!(ours.header.source.loc_uri, "DMCtest");
    assert_eq!(
        ours.header.cred, recorded.header.cred,
        "Basic funambol:funambol"
    );
    assert_eq!(ours.header.meta.as_ref().unwrap().max_msg_size, Some(16384));
    let Command::Alert(a) = &ours.body.commands[0] else {
        panic!("first command is the session alert")
    };
    assert_eq!(a.code, AlertCode::CLIENT_INITIATED_MGMT);
    let Command::Replace(r) = &ours.body.commands[1] else {
        panic!("then DevInfo")
    };
    let value = |uri: &str| {
        r.items
            .iter()
            .find(|i| i.source.as_ref().unwrap().loc_uri == uri)
            .and_then(|i| i.data.as_ref())
            .and_then(|d| d.as_text())
            .map(str::to_owned)
    };
    assert_eq!(value("./DevInfo/Mod").as_deref(), Some("test model"));
    assert_eq!(value("./DevInfo/Man").as_deref(), Some("test manufacturer"));
    assert_eq!(value("./DevInfo/DevId").as_deref(), Some("DMCtest"));
    assert_eq!(value("./DevInfo/DmV").as_deref(), Some("1.2"));
    assert_eq!(value("./DevInfo/Lang").as_deref(), Some("test language"));
    assert!(ours.body.final_);

    // Package 2: the server accepts us (212), authenticates with MD5, and Gets ./DevInfo/Mod.
    s.handle_response(&fixture("pkg2-server.xml"), None, &mut tree, now)
        .unwrap();
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&ClientEvent::ClientAuthenticated {
        status: StatusCode(212)
    }));
    assert!(events.contains(&ClientEvent::ServerAuthenticated {
        auth_type: AuthType::Md5
    }));
    let fresh = Nonce::from_random([7; 16]);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ClientEvent::NoncesChanged { .. })),
        "our new nonce counts only once it is sent"
    );

    // Package 3 resembles the recorded one; sending it hands the server our new nonce.
    let p3 = s.poll_transmit(&mut tree, now).expect("package 3");
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&ClientEvent::NoncesChanged {
        client_nonce: None,
        server_nonce: Some(fresh.clone())
    }));
    let ours = msg(&p3.body);
    let recorded = msg(&fixture("pkg3-client.xml"));
    assert_eq!(ours.header.msg_id, 2);
    assert!(ours.header.cred.is_none(), "212: no more credentials");
    assert!(ours.body.final_);
    assert_eq!(ours.body.commands.len(), recorded.body.commands.len());
    let (Command::Status(h), Command::Status(rh)) =
        (&ours.body.commands[0], &recorded.body.commands[0])
    else {
        panic!("header status first")
    };
    assert_eq!(
        (h.msg_ref, h.cmd_ref, &h.cmd, h.code),
        (rh.msg_ref, rh.cmd_ref, &rh.cmd, rh.code)
    );
    assert_eq!(h.target_refs, rh.target_refs);
    assert_eq!(h.source_refs, rh.source_refs);
    let chal = h.chal.as_ref().expect("a new nonce for the server");
    assert_eq!(chal.meta.type_.as_deref(), Some("syncml:auth-md5"));
    assert_eq!(
        chal.meta.next_nonce.as_deref(),
        Some(fresh.to_b64().as_str())
    );
    assert_eq!(
        ours.body.commands[1], recorded.body.commands[1],
        "Get status"
    );
    let (Command::Results(res), Command::Results(rres)) =
        (&ours.body.commands[2], &recorded.body.commands[2])
    else {
        panic!("results")
    };
    assert_eq!((res.msg_ref, res.cmd_ref), (rres.msg_ref, rres.cmd_ref));
    assert_eq!(res.items, rres.items, "test model, chr, text/plain");

    // Package 4: statuses only, Final: the session is over and nothing more is sent.
    s.handle_response(&fixture("pkg4-server.xml"), None, &mut tree, now)
        .unwrap();
    assert!(s.is_finished());
    assert!(s.poll_transmit(&mut tree, now).is_none());
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(
        events.last(),
        Some(&ClientEvent::Finished(SessionOutcome::Completed))
    );
}

#[test]
fn recorded_server_cred_verifies() {
    // The capture's server Cred is MD5 of funambol/srvpwd over the empty nonce.
    let m = msg(&fixture("pkg2-server.xml"));
    let v = verify_cred_element(
        m.header.cred.as_ref().unwrap(),
        &Credentials::new("funambol", "srvpwd"),
        &Nonce::default(),
    )
    .unwrap();
    assert_eq!(v.auth_type, AuthType::Md5);
}

#[test]
fn wrong_server_secret_is_challenged() {
    let now = Instant::now();
    let (mut config, mut tree) = device();
    config.server_credentials = Credentials::new("funambol", "not-the-secret");
    let mut s = ClientSession::new(config, SessionParams::first([9; 16]), now);
    s.poll_transmit(&mut tree, now).unwrap();
    s.handle_response(&fixture("pkg2-server.xml"), None, &mut tree, now)
        .unwrap();
    let p3 = msg(&s.poll_transmit(&mut tree, now).unwrap().body);
    let Command::Status(h) = &p3.body.commands[0] else {
        panic!()
    };
    assert_eq!(h.code, StatusCode(401));
    let chal = h.chal.as_ref().unwrap();
    assert_eq!(
        chal.meta.next_nonce.as_deref(),
        Some(Nonce::from_random([9; 16]).to_b64().as_str())
    );
    // The Get was not executed: no Results, its status carries the refusal.
    assert!(
        !p3.body
            .commands
            .iter()
            .any(|c| matches!(c, Command::Results(_)))
    );
    assert!(p3.body.commands.iter().any(
        |c| matches!(c, Command::Status(st) if st.cmd == "Get" && st.code == StatusCode(401))
    ));
}
