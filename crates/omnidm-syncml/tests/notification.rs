//! Package 0 (DM Notification 1.2 §6.2) against samples written independently in Python
//! (`tests/data/notification/gen.py`), plus round-trip and robustness properties.
#![allow(clippy::unwrap_used)]

use omnidm_syncml::auth::{Credentials, Nonce};
use omnidm_syncml::notification::{
    DecodedNotification, Initiator, Notification, NotificationError, ServerId, UiMode, Version,
    decode, encode, verify_digest,
};
use proptest::prelude::*;

fn sample(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/notification/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn counting_nonce() -> Nonce {
    Nonce::from_random(core::array::from_fn(|i| i as u8))
}

#[test]
fn python_sample_v12_background() {
    let data = sample("v12-background-server.bin");
    // The hex printed by gen.py, pinned so the sample file cannot drift silently.
    assert_eq!(
        data,
        hex("f6f165866a3dac73c331d362c92450e303180000001234066f6d6e69646d")
    );
    let d = decode(&data).unwrap();
    let want = Notification {
        version: Version::TWELVE,
        ui_mode: UiMode::Background,
        initiator: Initiator::Server,
        session_id: 0x1234,
        server_id: ServerId::new("omnidm").unwrap(),
        vendor_specific: vec![],
    };
    assert_eq!(d.notification, want);
    assert_eq!(d.future_use, 0);
    let server = Credentials::new("omnidm", "srvsecret");
    assert!(verify_digest(&d, &server, &counting_nonce()));
    assert!(!verify_digest(&d, &server, &Nonce::default()));
    assert!(!verify_digest(
        &d,
        &Credentials::new("omnidm", "other"),
        &counting_nonce()
    ));
    // Our encoder produces the Python bytes exactly.
    assert_eq!(encode(&want, &server, &counting_nonce()), data);
}

#[test]
fn python_sample_v11_user_interaction_vendor_body() {
    let data = sample("v11-userinteraction-vendor.bin");
    let d = decode(&data).unwrap();
    let want = Notification {
        version: Version::DM_1_2,
        ui_mode: UiMode::UserInteraction,
        initiator: Initiator::Client,
        session_id: 0xffff,
        server_id: ServerId::new("funambol").unwrap(),
        vendor_specific: b"\x01\x02vendor\x00".to_vec(),
    };
    assert_eq!(d.notification, want);
    let server = Credentials::new("funambol", "srvpwd");
    assert!(verify_digest(&d, &server, &Nonce::default()));
    assert_eq!(encode(&want, &server, &Nonce::default()), data);
}

#[test]
fn python_sample_future_bits_and_resync_nonce() {
    let data = sample("future-bits-resync.bin");
    let d = decode(&data).unwrap();
    assert_eq!(d.future_use, 0x5A5A5A5);
    assert_eq!(d.notification.ui_mode, UiMode::Informative);
    assert_eq!(d.notification.server_id.as_str(), "srv");
    assert_eq!(d.notification.session_id, 1);
    let server = Credentials::new("srv", "pw");
    // The digest covers the bytes as received, future-use bits included.
    let [ascii_resync, zero_resync] = Nonce::resync_candidates();
    assert!(verify_digest(&d, &server, &ascii_resync));
    assert!(!verify_digest(&d, &server, &zero_resync));
}

#[test]
fn errors_have_offsets() {
    let mut data = sample("v12-background-server.bin");
    data.truncate(data.len() - 1);
    assert_eq!(
        decode(&data),
        Err(NotificationError::Truncated {
            offset: 24,
            needed: 30,
            got: 29
        })
    );
    let mut bad = sample("v12-background-server.bin");
    bad[24] = 0xff;
    assert_eq!(
        decode(&bad),
        Err(NotificationError::ServerIdNotUtf8 { offset: 24 })
    );
}

/// Bytes from a string of `0`/`1` digits (spaces ignored), most significant bit first.
fn bits(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    assert_eq!(digits.len() % 8, 0, "whole bytes only");
    digits
        .chunks(8)
        .map(|c| c.iter().fold(0u8, |acc, d| (acc << 1) | (d - b'0')))
        .collect()
}

/// DM Notification 1.2 §6.2.2.6: the `version` field of a DM 1.2 trigger header is binary
/// `0000001011` (11), not 12 — clients written to the text (libdmclient) accept nothing else.
/// The header below is written out bit by bit, field by field (§6.2.1).
#[test]
fn rule_dm_notification_6_2_2_6_version_field_is_0000001011() {
    let header = bits(concat!(
        "0000001011 ",                  // version
        "00 ",                          // ui-mode: not specified
        "1 ",                           // initiator: server
        "000000000000000000000000000 ", // future-use (27 bits)
        "0000000000101010 ",            // sessionid 42
        "00000110",                     // length-identifier 6
    ));
    let mut trigger = header.clone();
    trigger.extend_from_slice(b"omnidm");
    let n = Notification {
        session_id: 42,
        server_id: ServerId::new("omnidm").unwrap(),
        ..Notification::default()
    };
    assert_eq!(n.version, Version::DM_1_2);
    assert_eq!(Version::DM_1_2.get(), 11);
    let server = Credentials::new("omnidm", "srvsecret");
    let bytes = encode(&n, &server, &counting_nonce());
    assert_eq!(&bytes[16..], trigger.as_slice());
    // And a hand-built message with that header decodes to the DM 1.2 version.
    let mut msg = vec![0u8; 16];
    msg.extend_from_slice(&trigger);
    assert_eq!(decode(&msg).unwrap().notification.version, Version::DM_1_2);
}

fn arb_notification() -> impl Strategy<Value = Notification> {
    (
        0u16..=1023,
        0u8..4,
        any::<bool>(),
        any::<u16>(),
        "\\PC{0,60}",
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_filter_map("server id > 255 bytes", |(v, ui, init, sid, id, body)| {
            Some(Notification {
                version: Version::new(v)?,
                ui_mode: [
                    UiMode::NotSpecified,
                    UiMode::Background,
                    UiMode::Informative,
                    UiMode::UserInteraction,
                ][usize::from(ui)],
                initiator: if init {
                    Initiator::Server
                } else {
                    Initiator::Client
                },
                session_id: sid,
                server_id: ServerId::new(id).ok()?,
                vendor_specific: body,
            })
        })
}

proptest! {
    #[test]
    fn encode_decode_identity(n in arb_notification(), secret in "\\PC{0,20}", nonce in proptest::collection::vec(any::<u8>(), 0..20)) {
        let server = Credentials::new(n.server_id.as_str(), secret);
        let nonce = Nonce::from_bytes(nonce);
        let bytes = encode(&n, &server, &nonce);
        let d: DecodedNotification = decode(&bytes).unwrap();
        prop_assert_eq!(&d.notification, &n);
        prop_assert_eq!(d.future_use, 0);
        prop_assert!(verify_digest(&d, &server, &nonce));
        prop_assert_eq!(&bytes[16..], d.trigger.as_slice());
    }

    #[test]
    fn decode_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(d) = decode(&data) {
            // The digest covers exactly the bytes after the digest field.
            prop_assert_eq!(d.trigger.as_slice(), &data[16..]);
            let _ = verify_digest(&d, &Credentials::new("a", "b"), &Nonce::default());
        }
    }
}
