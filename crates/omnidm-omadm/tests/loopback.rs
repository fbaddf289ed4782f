//! The two sides of the engine against each other, with no sockets and a virtual clock: a
//! simulated device (client session over a `MemoryTree`) and the server session, pumped
//! message by message. Each side was written against the specification and tested against
//! captures on its own; here they must agree with each other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use omnidm_omadm::client::{
    ClientConfig, ClientEvent, ClientSession, DeviceProfile, MemoryTree, SessionParams,
};
use omnidm_omadm::server::{
    DeviceContext, DmCommand, EndReason, Incoming, NodeWrite, Quirks, Randomness, ServerConfig,
    ServerSession, SessionEvent,
};
use omnidm_syncml::auth::{AuthType, Credentials, DigestKey, Nonce};
use omnidm_syncml::{Data, Encoding, StatusCode};
use omnidm_tree::TreeUri;
use std::time::{Duration, Instant};

const SERVER_URI: &str = "http://dm.test/dm";

fn profile(auth: &str) -> DeviceProfile {
    DeviceProfile {
        dev_id: "IMEI:359000000000001".into(),
        server_id: "omnidm".into(),
        server_uri: SERVER_URI.into(),
        client_auth_type: auth.into(),
        client_name: "dev1".into(),
        client_secret: "dev-secret".into(),
        server_secret: "srv-secret".into(),
        ..DeviceProfile::default()
    }
}

/// What the server's store would hold for the device.
fn device_context(
    p: &DeviceProfile,
    client_auth: AuthType,
    nonces: (Nonce, Nonce),
) -> DeviceContext {
    DeviceContext {
        device_id: p.dev_id.clone(),
        client_auth,
        client_key: DigestKey::from_credentials(&Credentials::new(
            &p.client_name,
            &p.client_secret,
        )),
        server_auth: if client_auth == AuthType::Hmac {
            AuthType::Hmac
        } else {
            AuthType::Md5
        },
        server_key: DigestKey::from_credentials(&Credentials::new(&p.server_id, &p.server_secret)),
        client_nonce: nonces.0,
        server_nonce: nonces.1,
        quirks: Quirks::default(),
    }
}

#[derive(Default)]
struct Transcript {
    server: Vec<SessionEvent>,
    client: Vec<ClientEvent>,
    messages: usize,
    /// Largest device → server message.
    largest_up: usize,
    /// Largest server → device message.
    largest_down: usize,
}

/// Pumps messages until both sides are done (bounded: a stuck session fails the test).
fn pump(
    server: &mut ServerSession,
    client: &mut ClientSession,
    tree: &mut MemoryTree,
    t0: Instant,
) -> Transcript {
    let mut tr = Transcript::default();
    let mut now = t0;
    for _ in 0..200 {
        now += Duration::from_millis(5);
        let Some(up) = client.poll_transmit(tree, now) else {
            break;
        };
        tr.messages += 1;
        tr.largest_up = tr.largest_up.max(up.body.len());
        let incoming = Incoming {
            body: &up.body,
            content_type: Some(up.content_type),
            hmac: up.hmac_header.as_deref(),
        };
        server
            .handle(incoming, now)
            .unwrap_or_else(|e| panic!("server refused a message: {e}"));
        tr.server.extend(std::iter::from_fn(|| server.poll_event()));
        let Some(down) = server.poll_transmit(now) else {
            break;
        };
        tr.server.extend(std::iter::from_fn(|| server.poll_event()));
        tr.messages += 1;
        tr.largest_down = tr.largest_down.max(down.body.len());
        client
            .handle_response(&down.body, down.hmac.as_deref(), tree, now)
            .unwrap_or_else(|e| panic!("client refused a message: {e}"));
        tr.client.extend(std::iter::from_fn(|| client.poll_event()));
        if client.is_finished() && server.is_finished() {
            break;
        }
    }
    tr.client.extend(std::iter::from_fn(|| client.poll_event()));
    tr.server.extend(std::iter::from_fn(|| server.poll_event()));
    assert!(
        client.is_finished(),
        "client did not finish: {:?}",
        tr.client
    );
    tr
}

fn status_of(tr: &Transcript, tag: u64) -> StatusCode {
    let found: Vec<_> = tr
        .server
        .iter()
        .filter_map(|e| match e {
            SessionEvent::CommandStatus { tag: t, status, .. } if *t == tag => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "tag {tag}: exactly one status expected, got {found:?}"
    );
    found[0]
}

fn ended(tr: &Transcript) -> &EndReason {
    tr.server
        .iter()
        .find_map(|e| match e {
            SessionEvent::Ended { reason, .. } => Some(reason),
            _ => None,
        })
        .expect("server session ended")
}

fn uri(s: &str) -> TreeUri {
    TreeUri::parse(s).unwrap()
}

fn random(n: u8) -> Randomness {
    Randomness {
        session_token: [n; 16],
        nonce_seed: [n.wrapping_add(100); 16],
    }
}

#[test]
fn md5_both_ways_get_replace_exec_and_the_next_session_reuses_the_nonces() {
    let p = profile("DIGEST");
    let mut tree = MemoryTree::standard_device(&p);
    let config = ServerConfig::new("omnidm", SERVER_URI);
    let t0 = Instant::now();

    let mut server = ServerSession::new(
        &config,
        device_context(&p, AuthType::Md5, Default::default()),
        random(1),
        t0,
    );
    server
        .enqueue(
            1,
            DmCommand::Get {
                uri: uri("./DevInfo/Mod"),
            },
        )
        .unwrap();
    server
        .enqueue(
            2,
            DmCommand::Replace {
                items: vec![NodeWrite::text(
                    uri("./Vendor/omnidm/Greeting"),
                    "hello & <welcome>",
                )],
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    server
        .enqueue(
            3,
            DmCommand::Exec {
                uri: uri("./FUMO/fw1/DownloadAndUpdate"),
                data: None,
                correlator: Some("op-7".into()),
            },
        )
        .unwrap();
    let mut client = ClientSession::new(
        ClientConfig::from_profile(&p),
        SessionParams::first([7; 16]),
        t0,
    );
    let tr = pump(&mut server, &mut client, &mut tree, t0);

    assert_eq!(ended(&tr), &EndReason::Completed);
    assert_eq!(status_of(&tr, 1), StatusCode::OK);
    let results = tr.server.iter().find_map(|e| match e {
        SessionEvent::CommandResults { tag: 1, items } => Some(items.clone()),
        _ => None,
    });
    let items = results.expect("results for the Get");
    assert_eq!(
        items[0].data.as_ref().and_then(Data::as_text),
        Some(p.model.as_str())
    );
    assert_eq!(status_of(&tr, 2), StatusCode::OK);
    assert_eq!(
        tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("hello & <welcome>")
    );
    assert_eq!(status_of(&tr, 3), StatusCode::ACCEPTED_FOR_PROCESSING);
    let alert = tr.server.iter().find_map(|e| match e {
        SessionEvent::GenericAlert { correlator, items } => {
            Some((correlator.clone(), items.clone()))
        }
        _ => None,
    });
    let (correlator, _) = alert.expect("FUMO completion reported as a generic alert");
    assert_eq!(correlator.as_deref(), Some("op-7"));

    // Both sides persist the nonces they learned; the next session authenticates at once.
    let server_nonces = tr.server.iter().rev().find_map(|e| match e {
        SessionEvent::NoncesChanged {
            client_nonce,
            server_nonce,
        } => Some((client_nonce.clone(), server_nonce.clone())),
        _ => None,
    });
    // The client reports each nonce when it changes; keep the latest of each.
    let (mut cc, mut cs) = (None, None);
    for e in &tr.client {
        if let ClientEvent::NoncesChanged {
            client_nonce,
            server_nonce,
        } = e
        {
            cc = client_nonce.clone().or(cc);
            cs = server_nonce.clone().or(cs);
        }
    }
    let (sc, ss) = server_nonces.expect("server learned nonces");
    let (cc, cs) = (
        cc.expect("client learned its nonce"),
        cs.expect("client issued a nonce"),
    );
    assert_eq!(
        sc.as_bytes(),
        cc.as_bytes(),
        "the nonce the server issued is the one the client will use"
    );
    assert_eq!(
        ss.as_bytes(),
        cs.as_bytes(),
        "the nonce the client issued is the one the server will use"
    );

    let t1 = t0 + Duration::from_secs(60);
    let mut server = ServerSession::new(
        &config,
        device_context(&p, AuthType::Md5, (sc, ss)),
        random(2),
        t1,
    );
    server
        .enqueue(
            10,
            DmCommand::Get {
                uri: uri("./DevDetail/FwV"),
            },
        )
        .unwrap();
    let params = SessionParams {
        session_id: "2".into(),
        client_nonce: cc,
        server_nonce: cs,
        ..SessionParams::first([8; 16])
    };
    let mut client = ClientSession::new(ClientConfig::from_profile(&p), params, t1);
    let tr = pump(&mut server, &mut client, &mut tree, t1);
    assert_eq!(ended(&tr), &EndReason::Completed);
    assert!(
        !tr.server
            .iter()
            .any(|e| matches!(e, SessionEvent::AuthFailed { .. })),
        "{:?}",
        tr.server
    );
    assert!(
        !tr.client
            .iter()
            .any(|e| matches!(e, ClientEvent::Challenged { .. })),
        "{:?}",
        tr.client
    );
    assert_eq!(status_of(&tr, 10), StatusCode::OK);
}

#[test]
fn wbxml_hmac_small_messages_force_multi_message_packages_and_large_objects() {
    let p = profile("HMAC");
    let mut tree = MemoryTree::standard_device(&p);
    let mut config = ServerConfig::new("omnidm", SERVER_URI);
    // Small in both directions: the device must split its answers too.
    config.max_msg_size = 2000;
    let t0 = Instant::now();
    let mut server = ServerSession::new(
        &config,
        device_context(&p, AuthType::Hmac, Default::default()),
        random(3),
        t0,
    );
    let big: String = (0..6000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    server
        .enqueue(
            1,
            DmCommand::Add {
                items: vec![NodeWrite::text(uri("./Vendor/omnidm/Blob"), big.clone())],
            },
        )
        .unwrap();
    for i in 0..30u64 {
        server
            .enqueue(
                100 + i,
                DmCommand::Get {
                    uri: uri("./DevInfo/Man"),
                },
            )
            .unwrap();
    }
    let mut config_c = ClientConfig::from_profile(&p);
    config_c.encoding = Encoding::Wbxml;
    config_c.max_msg_size = 1500;
    let mut client = ClientSession::new(config_c, SessionParams::first([9; 16]), t0);
    let tr = pump(&mut server, &mut client, &mut tree, t0);

    assert_eq!(ended(&tr), &EndReason::Completed);
    assert!(
        tr.largest_down <= 1500,
        "server sent {} bytes over the device's MaxMsgSize",
        tr.largest_down
    );
    assert!(
        tr.largest_up <= 2000,
        "device sent {} bytes over the server's MaxMsgSize",
        tr.largest_up
    );
    assert!(
        tr.messages > 8,
        "expected a multi-message exchange, got {} messages",
        tr.messages
    );
    assert_eq!(status_of(&tr, 1), StatusCode::OK);
    {
        assert_eq!(
            tree.value("./Vendor/omnidm/Blob").as_deref(),
            Some(big.as_str()),
            "large object reassembled"
        );
    }
    for i in 0..30u64 {
        assert_eq!(status_of(&tr, 100 + i), StatusCode::OK);
    }
}

#[test]
fn wrong_client_secret_is_refused_and_nothing_runs() {
    let p = profile("DIGEST");
    let mut tree = MemoryTree::standard_device(&p);
    let before = tree.value("./DevInfo/Lang");
    let config = ServerConfig::new("omnidm", SERVER_URI);
    let t0 = Instant::now();
    let mut server = ServerSession::new(
        &config,
        device_context(&p, AuthType::Md5, Default::default()),
        random(4),
        t0,
    );
    server
        .enqueue(
            1,
            DmCommand::Replace {
                items: vec![NodeWrite::text(uri("./DevInfo/Lang"), "xx")],
            },
        )
        .unwrap();
    let mut wrong = ClientConfig::from_profile(&p);
    wrong.client_credentials = Credentials::new(&p.client_name, "not-the-secret");
    let mut client = ClientSession::new(wrong, SessionParams::first([5; 16]), t0);
    let tr = pump(&mut server, &mut client, &mut tree, t0);
    assert_eq!(ended(&tr), &EndReason::AuthFailed);
    assert!(tr.server.iter().any(|e| matches!(e, SessionEvent::AuthFailed { status, .. } if *status == StatusCode::INVALID_CREDENTIALS)));
    assert_eq!(tree.value("./DevInfo/Lang"), before, "nothing executed");
    let unsent = tr.server.iter().find_map(|e| match e {
        SessionEvent::Ended { unsent, .. } => Some(unsent.clone()),
        _ => None,
    });
    assert_eq!(unsent, Some(vec![1]), "the command comes back to the queue");
}

/// A session with nothing to do ends after one exchange: the device's statuses for the
/// server's last message are never sent, so the nonce it meant to issue there must not count.
/// Regression: the device rotated it anyway and every later session failed server auth.
#[test]
fn sessions_with_nothing_queued_keep_both_sides_nonces_in_step() {
    let p = profile("DIGEST");
    let mut tree = MemoryTree::standard_device(&p);
    let config = ServerConfig::new("omnidm", SERVER_URI);
    let mut server_nonces = (Nonce::default(), Nonce::default());
    let (mut client_nonce, mut server_nonce) = (Nonce::default(), Nonce::default());
    let t0 = Instant::now();
    for round in 0..4u8 {
        let now = t0 + Duration::from_secs(u64::from(round) * 60);
        let ctx = device_context(&p, AuthType::Md5, server_nonces.clone());
        let mut server = ServerSession::new(&config, ctx, random(10 + round), now);
        let params = SessionParams {
            session_id: format!("{}", round + 1),
            client_nonce: client_nonce.clone(),
            server_nonce: server_nonce.clone(),
            ..SessionParams::first([20 + round; 16])
        };
        let mut client = ClientSession::new(ClientConfig::from_profile(&p), params, now);
        let tr = pump(&mut server, &mut client, &mut tree, now);
        assert_eq!(
            ended(&tr),
            &EndReason::Completed,
            "round {round}: {:?}",
            tr.client
        );
        for e in &tr.server {
            if let SessionEvent::NoncesChanged {
                client_nonce,
                server_nonce,
            } = e
            {
                server_nonces = (client_nonce.clone(), server_nonce.clone());
            }
        }
        for e in &tr.client {
            if let ClientEvent::NoncesChanged {
                client_nonce: c,
                server_nonce: s,
            } = e
            {
                client_nonce = c.clone().unwrap_or(client_nonce);
                server_nonce = s.clone().unwrap_or(server_nonce);
            }
        }
    }
}
