//! Decodes recorded and libwbxml-generated documents token by token.

#![allow(clippy::unwrap_used, clippy::panic)]

use omnidm_wbxml::{Event, Header, Limits, PublicId, Reader};

fn read_all(input: &[u8]) -> (Header<'_>, Vec<Event<'_>>) {
    let mut r = Reader::new(input, Limits::default()).unwrap();
    let mut evs = Vec::new();
    while let Some(ev) = r.next_event().unwrap() {
        evs.push(ev);
    }
    assert_eq!(r.depth(), 0);
    assert_eq!(r.offset(), input.len());
    (r.header().clone(), evs)
}

fn start(page: u8, token: u8) -> Event<'static> {
    Event::Start {
        page,
        token,
        has_content: true,
    }
}

const PKG1: &[u8] = include_bytes!("data/pkg1-client.wbxml");

#[test]
fn pkg1_capture_header_and_first_events() {
    let (header, evs) = read_all(PKG1);
    assert_eq!(
        header,
        Header {
            version: 0x02,
            public_id: PublicId::Known(0x1201),
            charset: 106,
            string_table: &[],
        }
    );
    let s = |b: &'static [u8]| Event::Str(b);
    let want = vec![
        start(0, 0x2D), // SyncML
        start(0, 0x2C), // SyncHdr
        start(0, 0x31), // VerDTD
        s(b"1.2"),
        Event::End,
        start(0, 0x32), // VerProto
        s(b"DM/1.2"),
        Event::End,
        start(0, 0x25), // SessionID
        s(b"1"),
        Event::End,
        start(0, 0x1B), // MsgID
        s(b"1"),
        Event::End,
        start(0, 0x2E), // Target
        start(0, 0x17), // LocURI
        s(b"http://127.0.0.1:8080/funambol/dm"),
        Event::End,
        Event::End,
        start(0, 0x27), // Source
        start(0, 0x17), // LocURI
        s(b"DMCtest"),
        Event::End,
        Event::End,
        start(0, 0x0E), // Cred
        start(0, 0x1A), // Meta
        start(1, 0x07), // MetInf Format
        s(b"b64"),
        Event::End,
        start(1, 0x13), // MetInf Type
        s(b"syncml:auth-basic"),
        Event::End,
        Event::End,     // Meta
        start(0, 0x0F), // Data
        s(b"ZnVuYW1ib2w6ZnVuYW1ib2w="),
        Event::End,
        Event::End,     // Cred
        start(0, 0x1A), // Meta
        start(1, 0x0C), // MetInf MaxMsgSize
        s(b"16384"),
        Event::End,
        Event::End,
        Event::End,     // SyncHdr
        start(0, 0x2B), // SyncBody
    ];
    assert_eq!(&evs[..want.len()], &want[..]);
    // Data in the Replace items is OPAQUE.
    assert!(evs.contains(&Event::Opaque(b"data of test3")));
    // The document ends with SyncBody's Final (content-less) and the closing Ends.
    let n = evs.len();
    assert_eq!(
        &evs[n - 4..],
        &[
            Event::Start {
                page: 0,
                token: 0x12, // Final
                has_content: false
            },
            Event::End,
            Event::End, // SyncBody
            Event::End, // SyncML
        ]
    );
    let starts = evs
        .iter()
        .filter(|e| matches!(e, Event::Start { .. }))
        .count();
    let ends = evs.iter().filter(|e| matches!(e, Event::End)).count();
    assert_eq!(starts, ends);
}

/// Structure and text of a document: text events (Str/Opaque) merged, so encodings that
/// split strings differently (STR_T + STR_I) or choose OPAQUE compare equal.
#[derive(Debug, PartialEq)]
enum Item {
    Start(u8, u8),
    End,
    Text(Vec<u8>),
}

fn normalize(evs: &[Event<'_>]) -> Vec<Item> {
    let mut out = Vec::new();
    for ev in evs {
        match *ev {
            Event::Start { page, token, .. } => out.push(Item::Start(page, token)),
            Event::End => out.push(Item::End),
            Event::Str(b) | Event::Opaque(b) => {
                if let Some(Item::Text(t)) = out.last_mut() {
                    t.extend_from_slice(b);
                } else {
                    out.push(Item::Text(b.to_vec()));
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

#[test]
fn libwbxml_encodings_match_the_capture() {
    let (_, capture) = read_all(PKG1);
    let capture = normalize(&capture);

    let strtbl = include_bytes!("data/pkg1-libwbxml-strtbl.wbxml");
    let (header, evs) = read_all(strtbl);
    assert_eq!(header.version, 0x03);
    assert_eq!(header.public_id, PublicId::Known(0x1201));
    assert!(!header.string_table.is_empty());
    assert!(
        strtbl.contains(&0x83),
        "expected STR_T tokens in the libwbxml output"
    );
    assert_eq!(normalize(&evs), capture);

    let v11 = include_bytes!("data/pkg1-libwbxml-v11.wbxml");
    let (header, evs) = read_all(v11);
    assert_eq!(header.version, 0x01);
    assert_eq!(header.charset, 106);
    assert!(header.string_table.is_empty());
    assert_eq!(normalize(&evs), capture);
}

#[test]
fn wml_with_attributes() {
    let doc = include_bytes!("data/wml-attrs.wbxml");
    let (header, evs) = read_all(doc);
    assert_eq!(header.public_id, PublicId::Known(0x0A)); // "-//WAPFORUM//DTD WML 1.3//EN"
    assert_eq!(header.string_table, b"Hello\0");
    let s = |b: &'static [u8]| Event::Str(b);
    assert_eq!(
        evs,
        vec![
            start(0, 0x3F), // wml
            start(0, 0x27), // card id=… title=… (STR_T + STR_I value)
            start(0, 0x20), // p align=center
            s(b"Hello"),    // STR_T
            start(0, 0x24), // b
            s(b"world"),
            Event::End,
            Event::Start {
                page: 0,
                token: 0x26, // br
                has_content: false
            },
            Event::End,
            s(b"second line"),
            Event::End,     // p
            start(0, 0x20), // p
            start(0, 0x1C), // a href=… (ATTRSTART + STR_I + ATTRVALUE + STR_I)
            s(b"link"),
            Event::End,
            Event::End,
            Event::End, // card
            Event::End, // wml
        ]
    );
}
