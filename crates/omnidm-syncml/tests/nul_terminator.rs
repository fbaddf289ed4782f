//! A C string's NUL terminator inside WBXML `OPAQUE` is a terminator, not text (decision 71).
//!
//! WBXML inline strings (`STR_I`) are NUL-terminated by the format (WAP-192-WBXML §5.8.4.1),
//! so a NUL can never be part of their content; clients built on C SyncML toolkits put the
//! same C strings into `OPAQUE` with the terminator included (libdmclient sends `chr\0`).
//! The messages below are written byte by byte, as such a client sends them.
#![allow(clippy::unwrap_used, clippy::panic)]

use omnidm_syncml::auth::{Credentials, Nonce, verify_cred_element};
use omnidm_syncml::*;

// Global WBXML tokens (WAP-192-WBXML §7.1).
const SWITCH_PAGE: u8 = 0x00;
const END: u8 = 0x01;
const STR_I: u8 = 0x03;
const OPAQUE: u8 = 0xC3;
/// Content flag of a tag token.
const C: u8 = 0x40;

// SyncML code page 0 (SyncML RepPro 1.2 §8) and MetInf code page 1 tokens.
const CMD_ID: u8 = 0x0B;
const CRED: u8 = 0x0E;
const DATA: u8 = 0x0F;
const FINAL: u8 = 0x12;
const ITEM: u8 = 0x14;
const LOC_URI: u8 = 0x17;
const META: u8 = 0x1A;
const MSG_ID: u8 = 0x1B;
const REPLACE: u8 = 0x20;
const SESSION_ID: u8 = 0x25;
const SOURCE: u8 = 0x27;
const SYNC_BODY: u8 = 0x2B;
const SYNC_HDR: u8 = 0x2C;
const SYNC_ML: u8 = 0x2D;
const TARGET: u8 = 0x2E;
const VER_DTD: u8 = 0x31;
const VER_PROTO: u8 = 0x32;
const MI_FORMAT: u8 = 0x07;
const MI_TYPE: u8 = 0x13;

fn str_i(out: &mut Vec<u8>, s: &str) {
    out.push(STR_I);
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// `OPAQUE` with a length below 128 (one-byte mb_u_int32).
fn opaque(out: &mut Vec<u8>, bytes: &[u8]) {
    assert!(bytes.len() < 128);
    out.push(OPAQUE);
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn leaf_str(out: &mut Vec<u8>, tag: u8, s: &str) {
    out.push(tag | C);
    str_i(out, s);
    out.push(END);
}

fn leaf_opaque(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag | C);
    opaque(out, bytes);
    out.push(END);
}

/// A package 1 the way libdmclient encodes it: header strings inline, Cred, Format, LocURI and
/// Data values as OPAQUE C strings with their NUL, and `value` as the Data of the one item.
fn libdmclient_style_package(value: &[u8]) -> Vec<u8> {
    // WBXML 1.2, public id 0x1201 (mb_u_int32 0xA4 0x01), UTF-8 (106), no string table.
    let mut m = vec![0x02, 0xA4, 0x01, 0x6A, 0x00];
    m.push(SYNC_ML | C);
    m.push(SYNC_HDR | C);
    leaf_str(&mut m, VER_DTD, "1.2");
    leaf_str(&mut m, VER_PROTO, "DM/1.2");
    leaf_str(&mut m, SESSION_ID, "1");
    leaf_str(&mut m, MSG_ID, "1");
    m.push(TARGET | C);
    leaf_opaque(&mut m, LOC_URI, b"http://srv/dm\0");
    m.push(END);
    m.push(SOURCE | C);
    leaf_opaque(&mut m, LOC_URI, b"IMEI:1\0");
    m.push(END);
    m.push(CRED | C);
    m.push(META | C);
    m.extend_from_slice(&[SWITCH_PAGE, 1]);
    leaf_opaque(&mut m, MI_FORMAT, b"b64\0");
    leaf_opaque(&mut m, MI_TYPE, b"syncml:auth-basic\0");
    m.extend_from_slice(&[SWITCH_PAGE, 0]);
    m.push(END); // Meta
    leaf_opaque(&mut m, DATA, b"ZGV2OnNlY3JldA==\0"); // b64("dev:secret")
    m.push(END); // Cred
    m.push(END); // SyncHdr
    m.push(SYNC_BODY | C);
    m.push(REPLACE | C);
    leaf_str(&mut m, CMD_ID, "2");
    m.push(ITEM | C);
    m.push(SOURCE | C);
    leaf_opaque(&mut m, LOC_URI, b"./DevInfo/Lang\0");
    m.push(END);
    m.push(META | C);
    m.extend_from_slice(&[SWITCH_PAGE, 1]);
    leaf_opaque(&mut m, MI_FORMAT, b"chr\0");
    m.extend_from_slice(&[SWITCH_PAGE, 0]);
    m.push(END); // Meta
    leaf_opaque(&mut m, DATA, value);
    m.push(END); // Item
    m.push(END); // Replace
    m.push(FINAL);
    m.push(END); // SyncBody
    m.push(END); // SyncML
    m
}

fn replace_item(m: &Message) -> &Item {
    match &m.body.commands[0] {
        Command::Replace(r) => &r.items[0],
        other => panic!("expected Replace, got {other:?}"),
    }
}

/// Text elements (LocURI, Format, Type) carried as OPAQUE C strings lose the terminator.
#[test]
fn rule_wbxml_opaque_c_string_nul_is_a_terminator_in_text_elements() {
    let d = decode(&libdmclient_style_package(b"en-US\0")).unwrap();
    assert_eq!(d.encoding, Encoding::Wbxml);
    let h = &d.message.header;
    assert_eq!(h.target.loc_uri, "http://srv/dm");
    assert_eq!(h.source.loc_uri, "IMEI:1");
    let cred = h.cred.as_ref().unwrap();
    let cm = cred.meta.as_ref().unwrap();
    assert_eq!(cm.format.as_deref(), Some("b64"));
    assert_eq!(cm.type_.as_deref(), Some("syncml:auth-basic"));
    let item = replace_item(&d.message);
    assert_eq!(item.source.as_ref().unwrap().loc_uri, "./DevInfo/Lang");
    assert_eq!(
        item.meta.as_ref().unwrap().format.as_deref(),
        Some("chr"),
        "format must be chr, not chr\\0"
    );
}

/// `Data` keeps the bytes exactly (binary values may end in 0), but its text is without the
/// terminator, and XML output has no U+FFFD in its place.
#[test]
fn rule_wbxml_opaque_c_string_nul_is_not_part_of_data_text() {
    let d = decode(&libdmclient_style_package(b"en-US\0")).unwrap();
    let data = replace_item(&d.message).data.as_ref().unwrap();
    assert_eq!(data.as_bytes(), b"en-US\0", "bytes are kept as received");
    assert_eq!(data.as_text(), Some("en-US"));
    let xml = String::from_utf8(encode(&d.message, Encoding::Xml)).unwrap();
    assert!(!xml.contains('\u{FFFD}'), "{xml}");
    assert!(xml.contains("<Data>en-US</Data>"), "{xml}");
    // Read back from XML, the value is the text without the terminator.
    let back = decode(xml.as_bytes()).unwrap();
    assert_eq!(
        replace_item(&back.message).data.as_ref().unwrap().as_text(),
        Some("en-US")
    );
}

/// Credentials sent as an OPAQUE C string verify (DM Security: Basic is b64 of
/// `user:password`; the terminator is not part of the b64 text).
#[test]
fn rule_wbxml_opaque_c_string_nul_in_cred_data() {
    let d = decode(&libdmclient_style_package(b"x")).unwrap();
    let cred = d.message.header.cred.as_ref().unwrap();
    verify_cred_element(cred, &Credentials::new("dev", "secret"), &Nonce::default()).unwrap();
}

/// Binary that is not text stays binary: only a text reading drops the terminator, and XML
/// carries non-UTF-8 bytes as base64 of all of them.
#[test]
fn binary_opaque_ending_in_nul_is_unchanged() {
    let d = decode(&libdmclient_style_package(&[0xFF, 0x00, 0x00])).unwrap();
    let data = replace_item(&d.message).data.as_ref().unwrap();
    assert_eq!(data, &Data::Opaque(vec![0xFF, 0, 0]));
    assert_eq!(data.as_text(), None);
    let xml = String::from_utf8(encode(&d.message, Encoding::Xml)).unwrap();
    assert!(xml.contains("<Data>/wAA</Data>"), "{xml}");
    // And WBXML re-encodes the bytes exactly.
    let again = decode(&encode(&d.message, Encoding::Wbxml)).unwrap();
    assert_eq!(again.message, d.message);
}
