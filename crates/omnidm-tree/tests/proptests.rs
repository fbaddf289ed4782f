//! Property tests: parsers never panic, and every round trip that should be lossless is.
#![allow(clippy::unwrap_used)]

use omnidm_tree::{
    Acl, AclCommand, Format, MgmtTree, NodeType, NodeValue, RtProperties, TndsNode, TreeUri,
    UriLimits, UriPattern,
};
use proptest::prelude::*;

// ------------------------------------------------------------------ never panic

/// Strings assembled from TNDS-ish fragments reach far deeper into the reader than
/// uniformly random bytes.
fn xmlish() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("<MgmtTree>".to_owned()),
        Just("</MgmtTree>".to_owned()),
        Just("<Node>".to_owned()),
        Just("</Node>".to_owned()),
        Just("<Node/>".to_owned()),
        Just("<NodeName>".to_owned()),
        Just("</NodeName>".to_owned()),
        Just("<RTProperties>".to_owned()),
        Just("</RTProperties>".to_owned()),
        Just("<Format><chr/></Format>".to_owned()),
        Just("<Format>".to_owned()),
        Just("<Type><MIME>".to_owned()),
        Just("</MIME></Type>".to_owned()),
        Just("<ACL>Get=*&amp;Add=a</ACL>".to_owned()),
        Just("<Size>".to_owned()),
        Just("</Size>".to_owned()),
        Just("<Value>".to_owned()),
        Just("</Value>".to_owned()),
        Just("<VerDTD>1.2</VerDTD>".to_owned()),
        Just("<![CDATA[x]]>".to_owned()),
        Just("&#0;&#x41;&foo;&amp;".to_owned()),
        Just("<x:Node xmlns:x='a'>".to_owned()),
        "[a-zA-Z0-9 <>/&;=\"']{0,8}",
    ];
    prop::collection::vec(frag, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn tnds_reader_never_panics_on_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = MgmtTree::read(&data);
    }

    #[test]
    fn tnds_reader_never_panics_on_xmlish(s in xmlish()) {
        if let Ok(r) = MgmtTree::read(s.as_bytes()) {
            // Whatever was read can be written and flattened.
            let _ = r.tree.write();
            let _ = r.tree.flatten().count();
        }
    }

    #[test]
    fn uri_parse_never_panics(s in "\\PC{0,40}|[./a-zA-Z%2F5?=*]{0,30}") {
        if let Ok(u) = TreeUri::parse(&s) {
            let again = TreeUri::parse(&u.to_string());
            prop_assert_eq!(again, Ok(u));
        }
        let _ = UriPattern::parse(&s);
        let tight = UriLimits { max_depth: 2, max_segment_len: 3, max_total_len: 12 };
        let _ = TreeUri::parse_with(&s, &tight);
    }

    #[test]
    fn acl_parse_never_panics_and_is_idempotent(s in "[A-Za-z=&+* .-]{0,40}") {
        if let Ok(acl) = Acl::parse(&s) {
            prop_assert_eq!(Acl::parse(&acl.to_string()).unwrap(), acl);
        }
    }

    #[test]
    fn value_parse_never_panics(fi in 0usize..Format::ALL.len(), s in "\\PC{0,30}") {
        let _ = NodeValue::parse(Format::ALL[fi], &s);
    }
}

// ------------------------------------------------------------------ round trips

fn segment() -> impl Strategy<Value = String> {
    // Any printable text, including '/', '%' and '?', which must be escaped.
    "[^\\p{C}]{1,12}".prop_filter("not a dot segment", |s| s != "." && s != "..")
}

fn uri() -> impl Strategy<Value = TreeUri> {
    prop::collection::vec(segment(), 0..8).prop_filter_map("within limits", |segs| {
        TreeUri::from_segments(segs, &UriLimits::default()).ok()
    })
}

fn acl() -> impl Strategy<Value = Acl> {
    let grant = prop_oneof![
        Just(None),
        prop::collection::vec("[a-z0-9.:_-]{1,8}", 1..4).prop_map(Some),
    ];
    prop::collection::vec(prop::option::of(grant), 5).prop_map(|grants| {
        let mut acl = Acl::new();
        for (cmd, g) in AclCommand::ALL.into_iter().zip(grants) {
            match g {
                None => {}
                Some(None) => acl.grant_all(cmd),
                Some(Some(servers)) => {
                    for s in servers {
                        acl.grant(cmd, &s).unwrap();
                    }
                }
            }
        }
        acl
    })
}

fn lossless_value() -> impl Strategy<Value = NodeValue> {
    prop_oneof![
        any::<bool>().prop_map(NodeValue::Bool),
        any::<i32>().prop_map(NodeValue::Int),
        "\\PC{0,20}".prop_map(NodeValue::Chr),
        "\\PC{0,20}".prop_map(NodeValue::Xml),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(NodeValue::B64),
        any::<f64>()
            .prop_filter("NaN never equals itself", |f| !f.is_nan())
            .prop_map(NodeValue::Float),
        prop::collection::vec("[A-Za-z0-9_-]{1,8}", 0..5).prop_map(NodeValue::Node),
        Just(NodeValue::Null),
        (1000u32..3000, 1u32..13, 1u32..29, any::<bool>()).prop_map(|(y, m, d, ext)| {
            NodeValue::Date(if ext {
                format!("{y:04}-{m:02}-{d:02}")
            } else {
                format!("{y:04}{m:02}{d:02}")
            })
        }),
        (
            0u32..24,
            0u32..60,
            0u32..60,
            prop_oneof![
                Just(String::new()),
                Just("Z".to_owned()),
                (0u32..15, 0u32..60).prop_map(|(h, m)| format!("+{h:02}:{m:02}")),
                (0u32..15).prop_map(|h| format!("-{h:02}")),
            ]
        )
            .prop_map(|(h, m, s, z)| NodeValue::Time(format!("{h:02}:{m:02}:{s:02}{z}"))),
    ]
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:/-]{1,12}"
}

/// Arbitrary text, including markup characters and control characters other than NUL.
fn text() -> impl Strategy<Value = String> {
    "[^\\x00]{0,24}"
}

fn props() -> impl Strategy<Value = RtProperties> {
    (
        prop::option::of(acl()),
        prop::option::of(prop::sample::select(Format::ALL.to_vec())),
        prop::option::of(token()),
        prop::option::of(any::<u32>()),
        prop::option::of(text()),
        prop::option::of(token()),
        prop::option::of(prop_oneof![
            token().prop_map(NodeType::Mime),
            token().prop_map(NodeType::DdfName)
        ]),
        prop::option::of(token()),
    )
        .prop_map(
            |(acl, format, name, size, title, tstamp, type_, ver_no)| RtProperties {
                acl,
                format,
                name,
                size,
                title,
                tstamp,
                type_,
                ver_no,
            },
        )
}

fn node() -> impl Strategy<Value = TndsNode> {
    let leaf = (
        token(),
        prop::option::of(token()),
        props(),
        prop::option::of(text()),
    )
        .prop_map(|(name, path, props, value)| TndsNode {
            name,
            path,
            props,
            value,
            children: Vec::new(),
        });
    leaf.prop_recursive(4, 40, 6, |inner| {
        (token(), props(), prop::collection::vec(inner, 0..6)).prop_map(
            |(name, props, children)| TndsNode {
                name,
                path: None,
                props,
                value: None,
                children,
            },
        )
    })
}

fn tree() -> impl Strategy<Value = MgmtTree> {
    (
        "[0-9.]{0,4}",
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::vec(node(), 0..4),
    )
        .prop_map(|(ver_dtd, man, mod_, nodes)| MgmtTree {
            ver_dtd,
            // Man/Mod are trimmed on read.
            man: man.map(|s| s.trim().to_owned()),
            mod_: mod_.map(|s| s.trim().to_owned()),
            nodes,
        })
}

proptest! {
    #[test]
    fn uri_display_parse_round_trip(u in uri()) {
        let text = u.to_string();
        prop_assert_eq!(TreeUri::parse(&text), Ok(u.clone()));
        prop_assert_eq!(text.len(), u.text_len());
        if let Some(p) = u.parent() {
            prop_assert!(p.is_ancestor_of(&u));
            prop_assert_eq!(p.join(u.name().unwrap()).unwrap(), u.clone());
        }
        let pattern = UriPattern::from_uri(&u, false);
        prop_assert!(pattern.matches(&u));
        prop_assert_eq!(UriPattern::parse(&pattern.to_string()).map(|p| p.matches(&u)), Ok(true));
    }

    #[test]
    fn acl_round_trip(a in acl()) {
        prop_assert_eq!(Acl::parse(&a.to_string()), Ok(a));
    }

    #[test]
    fn value_round_trip(v in lossless_value()) {
        let wire = v.to_wire();
        prop_assert_eq!(NodeValue::parse(v.wire_format(), &wire), Ok(v.clone()));
    }

    #[test]
    fn bin_round_trips_as_b64(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let v = NodeValue::Bin(bytes.clone());
        prop_assert_eq!(NodeValue::parse(v.wire_format(), &v.to_wire()), Ok(NodeValue::B64(bytes)));
    }

    #[test]
    fn tnds_write_read_identity(t in tree()) {
        let text = t.write();
        let back = MgmtTree::read(text.as_bytes()).unwrap();
        prop_assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        prop_assert_eq!(&back.tree, &t);
        prop_assert_eq!(back.tree.write(), text);
    }
}

proptest! {
    /// What the `tnds_decode` fuzz target checks, on fragment soup.
    #[test]
    fn tnds_writer_is_stable_on_accepted_input(s in xmlish()) {
        if let Ok(r) = MgmtTree::read(s.as_bytes()) {
            let text = r.tree.write();
            let again = MgmtTree::read(text.as_bytes()).unwrap();
            prop_assert_eq!(again.tree.write(), text);
        }
    }
}

#[test]
fn nul_is_replaced_stably() {
    let t = MgmtTree {
        ver_dtd: "1.2".into(),
        man: Some("a\0b".into()),
        ..MgmtTree::default()
    };
    let text = t.write();
    let back = MgmtTree::read(text.as_bytes()).unwrap().tree;
    assert_eq!(back.man.as_deref(), Some("a\u{fffd}b"));
    assert_eq!(back.write(), text);
}
