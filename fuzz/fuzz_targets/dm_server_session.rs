//! The server session engine fed arbitrary device messages: `peek` and `handle` must never
//! panic, whatever state the session is in (first message, or after the captured package 1),
//! and a reply, if any, must decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnidm_omadm::server::{
    DeviceContext, DmCommand, Incoming, Quirks, Randomness, ServerConfig, ServerSession, peek,
};
use omnidm_syncml::auth::{AuthType, Credentials, DigestKey, Nonce};
use omnidm_tree::TreeUri;
use std::time::{Duration, Instant};

const PKG1: &[u8] = include_bytes!("../../crates/omnidm-syncml/tests/data/fixtures/pkg1-client.xml");

fn session(now: Instant) -> ServerSession {
    let device = DeviceContext {
        device_id: "DMCtest".into(),
        client_auth: AuthType::Basic,
        client_key: DigestKey::from_credentials(&Credentials::new("funambol", "funambol")),
        server_auth: AuthType::Md5,
        server_key: DigestKey::from_credentials(&Credentials::new("funambol", "srvpwd")),
        client_nonce: Nonce::default(),
        server_nonce: Nonce::default(),
        quirks: Quirks::default(),
    };
    let random = Randomness { session_token: [1; 16], nonce_seed: [2; 16] };
    let mut s = ServerSession::new(&ServerConfig::new("funambol", "http://dm.test/dm"), device, random, now);
    if let Ok(uri) = TreeUri::parse("./DevInfo/Mod") {
        let _ = s.enqueue(1, DmCommand::Get { uri });
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let (after_pkg1, body) = match data.split_first() {
        Some((flag, rest)) => (flag & 1 == 1, rest),
        None => (false, data),
    };
    let _ = peek(body, None, omnidm_syncml::Limits::default());
    let t0 = Instant::now();
    let mut s = session(t0);
    if after_pkg1 {
        let _ = s.handle(Incoming::body(PKG1), t0);
        while s.poll_event().is_some() {}
        let _ = s.poll_transmit(t0);
        while s.poll_event().is_some() {}
    }
    let _ = s.handle(Incoming::body(body), t0);
    while s.poll_event().is_some() {}
    if let Some(out) = s.poll_transmit(t0) {
        assert!(omnidm_syncml::decode(&out.body).is_ok(), "the engine's own reply must decode");
    }
    while s.poll_event().is_some() {}
    s.handle_timeout(t0 + Duration::from_secs(3600));
    while s.poll_event().is_some() {}
});
