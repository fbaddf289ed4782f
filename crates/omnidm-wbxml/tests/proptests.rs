//! Property tests: the reader never panics, and writer output reads back identically.

#![allow(clippy::unwrap_used, clippy::panic)]

use omnidm_wbxml::{
    Event, Limits, PublicId, Reader, Writer, header_len, mb_u_int32_len, opaque_len,
    read_mb_u_int32, str_i_len, write_mb_u_int32,
};
use proptest::prelude::*;

/// Drives a reader to the end; checks that it terminates and stays consistent.
fn drain(input: &[u8], limits: Limits) {
    let Ok(mut r) = Reader::new(input, limits) else {
        return;
    };
    // Every event but a synthetic End consumes at least one byte, so this bounds the loop.
    let bound = 2 * input.len() + 2;
    for _ in 0..bound {
        match r.next_event() {
            Ok(Some(_)) => assert!(r.offset() <= input.len()),
            Ok(None) => {
                assert_eq!(r.next_event(), Ok(None));
                assert_eq!(r.depth(), 0);
                return;
            }
            Err(e) => {
                assert!(e.offset <= input.len().max(limits.max_input));
                assert_eq!(r.next_event(), Err(e));
                return;
            }
        }
    }
    panic!("reader did not terminate within {bound} events");
}

/// Body bytes biased towards meaningful tokens.
fn body_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => any::<u8>(),
        2 => prop::sample::select(vec![
            0x00u8, 0x01, 0x02, 0x03, 0x04, 0x40, 0x41, 0x42, 0x43, 0x44, 0x80, 0x81, 0x82,
            0x83, 0x84, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4,
        ]),
        2 => prop::sample::select(vec![0x45u8, 0x05, 0x85, 0xC5, 0x7F, 0xFF]),
        1 => Just(b'a'),
    ]
}

#[derive(Debug, Clone)]
enum Node {
    Elem {
        page: u8,
        token: u8,
        children: Option<Vec<Node>>,
    },
    Str(Vec<u8>),
    StrT(u32),
    Opaque(Vec<u8>),
    Entity(u32),
}

const TABLE: &[u8] = b"alpha\0beta\0\0gamma\0";
const TABLE_OFFSETS: &[u32] = &[0, 1, 5, 6, 11, 12, 15];

fn elem(page: u8, token: u8, children: Option<Vec<Node>>) -> Node {
    Node::Elem {
        page,
        token,
        children,
    }
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        (0u8..4, 5u8..=0x3F).prop_map(|(p, t)| elem(p, t, None)),
        prop::collection::vec(1u8..=255, 0..24).prop_map(Node::Str),
        prop::sample::select(TABLE_OFFSETS).prop_map(Node::StrT),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Node::Opaque),
        any::<u32>().prop_map(Node::Entity),
    ]
}

fn tree() -> impl Strategy<Value = Node> {
    let inner = leaf().prop_recursive(6, 64, 6, |inner| {
        (0u8..4, 5u8..=0x3F, prop::collection::vec(inner, 0..6))
            .prop_map(|(p, t, c)| elem(p, t, Some(c)))
    });
    // The root is always an element.
    (
        0u8..4,
        5u8..=0x3F,
        prop::option::of(prop::collection::vec(inner, 0..6)),
    )
        .prop_map(|(p, t, c)| elem(p, t, c))
}

fn table_str(offset: u32) -> &'static [u8] {
    let rest = &TABLE[offset as usize..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    &rest[..end]
}

/// Writes `node`, appends the events the reader should produce, and returns the size the
/// calculators predict (tracking the tag page like the writer does).
fn write<'a>(node: &'a Node, w: &mut Writer, want: &mut Vec<Event<'a>>, page: &mut u8) -> usize {
    match node {
        Node::Elem {
            page: p,
            token,
            children,
        } => {
            let mut size = if *p == *page { 1 } else { 3 };
            assert_eq!(w.start_len(*p), size);
            *page = *p;
            w.start(*p, *token, children.is_some());
            want.push(Event::Start {
                page: *p,
                token: *token,
                has_content: children.is_some(),
            });
            if let Some(children) = children {
                for c in children {
                    size += write(c, w, want, page);
                }
                w.end();
                size += 1;
            }
            want.push(Event::End);
            size
        }
        Node::Str(s) => {
            w.str_i(s).unwrap();
            want.push(Event::Str(s));
            str_i_len(s)
        }
        Node::StrT(offset) => {
            w.str_t(*offset);
            want.push(Event::Str(table_str(*offset)));
            1 + mb_u_int32_len(*offset)
        }
        Node::Opaque(d) => {
            w.opaque(d);
            want.push(Event::Opaque(d));
            opaque_len(d.len())
        }
        Node::Entity(c) => {
            w.entity(*c);
            want.push(Event::Entity(*c));
            1 + mb_u_int32_len(*c)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..256)) {
        drain(&input, Limits::default());
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        version in 0u8..4,
        table in prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..12),
        body in prop::collection::vec(body_byte(), 0..300),
        max_depth in 1usize..8,
        max_tokens in 1usize..200,
    ) {
        let mut input = vec![version, 0x01];
        if version > 0 {
            input.push(0x6A);
        }
        input.push(table.len() as u8);
        input.extend_from_slice(&table);
        input.extend_from_slice(&body);
        drain(&input, Limits::default());
        drain(&input, Limits { max_depth, max_tokens, max_input: 1 << 20 });
    }

    #[test]
    fn round_trip(
        root in tree(),
        version in 1u8..4,
        id in any::<u32>().prop_filter("non-zero", |&i| i != 0),
        with_table in any::<bool>(),
    ) {
        let table: &[u8] = if with_table { TABLE } else { b"" };
        // Without a table, STR_T would not resolve: turn those into inline strings.
        let root = if with_table { root } else { strip_str_t(root) };
        let mut w = Writer::with_string_table(version, PublicId::Known(id), 106, table);
        let mut size = header_len(version, PublicId::Known(id), 106, table.len());
        prop_assert_eq!(w.len(), size);
        let mut want = Vec::new();
        let mut page = 0;
        size += write(&root, &mut w, &mut want, &mut page);
        let len = w.len();
        prop_assert_eq!(w.depth(), 0);
        let doc = w.finish();
        prop_assert_eq!(len, doc.len());
        prop_assert_eq!(size, doc.len());

        let mut r = Reader::new(&doc, Limits::default()).unwrap();
        prop_assert_eq!(r.header().version, version);
        prop_assert_eq!(r.header().public_id, PublicId::Known(id));
        prop_assert_eq!(r.header().charset, 106);
        prop_assert_eq!(r.header().string_table, table);
        let mut got = Vec::new();
        while let Some(ev) = r.next_event().unwrap() {
            got.push(ev);
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn mb_u_int32_round_trip(v in any::<u32>(), tail in prop::collection::vec(any::<u8>(), 0..3)) {
        let mut out = Vec::new();
        write_mb_u_int32(&mut out, v);
        prop_assert_eq!(out.len(), mb_u_int32_len(v));
        let n = out.len();
        out.extend_from_slice(&tail);
        prop_assert_eq!(read_mb_u_int32(&out), Ok((v, n)));
    }
}

fn strip_str_t(node: Node) -> Node {
    match node {
        Node::StrT(o) => Node::Str(table_str(o).to_vec()),
        Node::Elem {
            page,
            token,
            children,
        } => elem(
            page,
            token,
            children.map(|c| c.into_iter().map(strip_str_t).collect()),
        ),
        other => other,
    }
}
