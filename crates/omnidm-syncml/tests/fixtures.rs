//! Decoding the captures from an independently written OMA DM 1.2 client (C) and its test
//! server, in both encodings, and checking what they mean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::normalize;
use omnidm_syncml::*;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn decoded(name: &str) -> Decoded {
    decode(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn package1_xml_and_wbxml_mean_the_same() {
    let xml = decoded("pkg1-client.xml");
    let wbxml = decoded("pkg1-client.wbxml");
    assert_eq!(xml.encoding, Encoding::Xml);
    assert_eq!(wbxml.encoding, Encoding::Wbxml);
    assert!(xml.warnings.is_empty(), "{:?}", xml.warnings);
    assert_eq!(normalize(xml.message), normalize(wbxml.message));
}

#[test]
fn package1_carries_session_alert_and_devinfo_in_reverse_order() {
    let m = decoded("pkg1-client.xml").message;
    assert_eq!(m.header.ver_dtd, "1.2");
    assert_eq!(m.header.ver_proto, "DM/1.2");
    assert_eq!(m.header.session_id, "1");
    assert_eq!(m.header.msg_id, 1);
    assert_eq!(m.header.source.loc_uri, "DMCtest");
    assert_eq!(m.header.target.loc_uri, "http://127.0.0.1:8080/funambol/dm");
    let cred = m.header.cred.as_ref().unwrap();
    assert_eq!(
        cred.meta.as_ref().unwrap().type_.as_deref(),
        Some("syncml:auth-basic")
    );
    assert_eq!(cred.data.as_text(), Some("ZnVuYW1ib2w6ZnVuYW1ib2w="));
    assert_eq!(m.header.meta.as_ref().unwrap().max_msg_size, Some(16384));
    assert!(m.body.final_);
    let [Command::Alert(alert), Command::Replace(devinfo)] = m.body.commands.as_slice() else {
        panic!("unexpected commands {:?}", m.body.commands);
    };
    assert_eq!(alert.code, AlertCode::CLIENT_INITIATED_MGMT);
    assert_eq!(devinfo.items.len(), 13);
    let value = |uri: &str| {
        devinfo
            .items
            .iter()
            .find(|i| i.source.as_ref().map(|s| s.loc_uri.as_str()) == Some(uri))
            .and_then(|i| i.data.as_ref()?.as_text().map(str::to_owned))
    };
    assert_eq!(value("./DevInfo/Mod").as_deref(), Some("test model"));
    assert_eq!(value("./DevInfo/Man").as_deref(), Some("test manufacturer"));
    assert_eq!(value("./DevInfo/Ext").as_deref(), Some("Intel/other"));
    let first = &devinfo.items[0];
    assert_eq!(
        first.source.as_ref().unwrap().loc_uri,
        "./DevInfo/Ext/other/test3"
    );
    assert_eq!(first.meta.as_ref().unwrap().format.as_deref(), Some("chr"));
}

#[test]
fn package2_has_server_md5_cred_statuses_and_a_get() {
    let m = decoded("pkg2-server.xml").message;
    let cred = m.header.cred.as_ref().unwrap();
    assert_eq!(
        cred.meta.as_ref().unwrap().type_.as_deref(),
        Some("syncml:auth-md5")
    );
    let statuses: Vec<_> = m
        .body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) => Some((s.cmd_ref, s.cmd.as_str(), s.code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (0, "SyncHdr", StatusCode::AUTHENTICATION_ACCEPTED),
            (1, "Alert", StatusCode::OK),
            (2, "Replace", StatusCode::OK)
        ]
    );
    let Some(Command::Get(get)) = m.body.commands.last() else {
        panic!()
    };
    assert_eq!(
        get.items[0].target.as_ref().unwrap().loc_uri,
        "./DevInfo/Mod"
    );
}

#[test]
fn package3_has_challenge_status_and_results() {
    // The two encodings were captured in different sessions, so their nonces differ.
    for (name, nonce) in [
        ("pkg3-client.xml", "RHBKbVJURGNCRXc9"),
        ("pkg3-client.wbxml", "WU5sUk16QXNEUk09"),
    ] {
        let m = decoded(name).message;
        let Command::Status(hdr) = &m.body.commands[0] else {
            panic!()
        };
        let chal = hdr.chal.as_ref().unwrap();
        assert_eq!(chal.meta.next_nonce.as_deref(), Some(nonce));
        assert_eq!(chal.meta.type_.as_deref(), Some("syncml:auth-md5"));
        let Command::Results(r) = &m.body.commands[2] else {
            panic!()
        };
        assert_eq!((r.msg_ref, r.cmd_ref), (Some(1), 4));
        assert_eq!(
            r.items[0].data.as_ref().unwrap().as_text(),
            Some("test model")
        );
    }
}

#[test]
fn every_fixture_reencodes_to_the_same_message_in_both_encodings() {
    for name in [
        "pkg1-client.xml",
        "pkg1-client.wbxml",
        "pkg2-server.xml",
        "pkg2-server.wbxml",
        "pkg3-client.xml",
        "pkg3-client.wbxml",
        "pkg4-server.xml",
    ] {
        let m = decoded(name).message;
        for enc in [Encoding::Xml, Encoding::Wbxml] {
            let bytes = encode(&m, enc);
            assert_eq!(bytes.len(), encoded_size(&m, enc), "{name} size as {enc:?}");
            let back = decode(&bytes).unwrap_or_else(|e| panic!("{name} as {enc:?}: {e}"));
            assert_eq!(
                normalize(back.message),
                normalize(m.clone()),
                "{name} as {enc:?}"
            );
            assert_eq!(
                encode(&back_or(&bytes), enc),
                bytes,
                "{name}: output is stable"
            );
        }
    }
}

fn back_or(bytes: &[u8]) -> Message {
    decode(bytes).unwrap().message
}

#[test]
fn server_packages_reencode_byte_exact_modulo_quoting() {
    // Our writer's layout is the capture's layout (double quotes, metinf xmlns per element),
    // so the server's own messages come out byte for byte.
    for name in ["pkg2-server.xml", "pkg4-server.xml"] {
        let original = fixture(name);
        let m = decode(&original).unwrap().message;
        assert_eq!(
            String::from_utf8(encode(&m, Encoding::Xml)).unwrap(),
            String::from_utf8(original).unwrap()
        );
    }
}
