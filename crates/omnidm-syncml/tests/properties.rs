//! Property tests: generated messages survive model → XML → model and model → WBXML → model
//! unchanged, the size calculator is exact, and no input — random or a mutated real capture —
//! makes either decoder panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use omnidm_syncml::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Identifier-like text as found in LocURI, Format, Type…: no outer whitespace (the decoder
/// trims it), markup characters included to exercise escaping.
fn word() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9./:_<>&'\"%é€-]([a-zA-Z0-9./:_<>&'\" %é€-]{0,14}[a-zA-Z0-9./:_<>&'\"%é€-])?"
}

/// Free text as found in Data: any non-control characters, outer whitespace and line breaks
/// included (the decoder keeps Data exactly).
fn free_text() -> impl Strategy<Value = String> {
    "[\\PC\t\n\r ]{0,40}"
}

fn meta() -> BoxedStrategy<Meta> {
    (
        option::of(word()),
        option::of(word()),
        option::of(word()),
        option::of(any::<u64>()),
        option::of(word()),
        option::of(word()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        vec(free_text(), 0..2),
    )
        .prop_map(
            |(format, type_, mark, size, next_nonce, version, max_msg_size, max_obj_size, emi)| {
                Meta {
                    format,
                    type_,
                    mark,
                    size,
                    next_nonce,
                    version,
                    max_msg_size,
                    max_obj_size,
                    emi,
                }
            },
        )
        .boxed()
}

fn data(binary: bool) -> BoxedStrategy<Data> {
    let text = free_text().prop_map(Data::Text);
    if binary {
        prop_oneof![text, vec(any::<u8>(), 1..40).prop_map(Data::Opaque)].boxed()
    } else {
        text.boxed()
    }
}

fn location() -> BoxedStrategy<Location> {
    (word(), option::of(word()))
        .prop_map(|(loc_uri, loc_name)| Location { loc_uri, loc_name })
        .boxed()
}

fn item(binary: bool, needs_data: bool) -> BoxedStrategy<Item> {
    let data = if needs_data {
        data(binary).prop_map(Some).boxed()
    } else {
        option::of(data(binary)).boxed()
    };
    (
        option::of(location()),
        option::of(location()),
        option::of(meta()),
        data,
        any::<bool>(),
    )
        .prop_map(|(target, source, meta, data, more_data)| Item {
            target,
            source,
            meta,
            data,
            more_data,
        })
        .boxed()
}

fn cred(binary: bool) -> BoxedStrategy<Cred> {
    (option::of(meta()), data(binary))
        .prop_map(|(meta, data)| Cred { meta, data })
        .boxed()
}

fn item_command(binary: bool, needs_data: bool) -> BoxedStrategy<ItemCommand> {
    (
        any::<u32>(),
        any::<bool>(),
        option::of(cred(binary)),
        option::of(meta()),
        vec(item(binary, needs_data), 0..3),
    )
        .prop_map(|(cmd_id, no_resp, cred, meta, items)| ItemCommand {
            cmd_id,
            no_resp,
            cred,
            meta,
            items,
        })
        .boxed()
}

fn leaf_command(binary: bool) -> BoxedStrategy<Command> {
    prop_oneof![
        item_command(binary, true).prop_map(Command::Add),
        item_command(binary, true).prop_map(Command::Replace),
        item_command(binary, false).prop_map(Command::Get),
        item_command(binary, false).prop_map(Command::Delete),
        item_command(binary, false).prop_map(Command::Copy),
        (
            any::<u32>(),
            any::<bool>(),
            option::of(cred(binary)),
            option::of(word()),
            any::<u16>(),
            vec(item(binary, false), 0..3)
        )
            .prop_map(|(cmd_id, no_resp, cred, correlator, code, items)| {
                Command::Alert(Alert {
                    cmd_id,
                    no_resp,
                    cred,
                    correlator,
                    code: AlertCode(code),
                    items,
                })
            }),
        (
            any::<u32>(),
            any::<bool>(),
            option::of(meta()),
            option::of(word()),
            item(binary, false)
        )
            .prop_map(|(cmd_id, no_resp, meta, correlator, item)| {
                Command::Exec(Exec {
                    cmd_id,
                    no_resp,
                    cred: None,
                    meta,
                    correlator,
                    item,
                })
            }),
        (
            any::<u32>(),
            option::of(any::<u32>()),
            any::<u32>(),
            option::of(meta()),
            vec(word(), 0..2),
            vec(word(), 0..2),
            vec(item(binary, false), 0..3)
        )
            .prop_map(
                |(cmd_id, msg_ref, cmd_ref, meta, target_refs, source_refs, items)| {
                    Command::Results(Results {
                        cmd_id,
                        msg_ref,
                        cmd_ref,
                        meta,
                        target_refs,
                        source_refs,
                        items,
                    })
                }
            ),
        (
            (any::<u32>(), any::<u32>(), any::<u32>(), word()),
            vec(word(), 0..2),
            vec(word(), 0..2),
            option::of(cred(binary)),
            option::of(meta().prop_map(|meta| Chal { meta })),
            any::<u16>(),
            vec(item(binary, false), 0..2)
        )
            .prop_map(
                |(
                    (cmd_id, msg_ref, cmd_ref, cmd),
                    target_refs,
                    source_refs,
                    cred,
                    chal,
                    code,
                    items,
                )| {
                    Command::Status(Status {
                        cmd_id,
                        msg_ref,
                        cmd_ref,
                        cmd,
                        target_refs,
                        source_refs,
                        cred,
                        chal,
                        code: StatusCode(code),
                        items,
                    })
                },
            ),
    ]
    .boxed()
}

fn command(binary: bool) -> BoxedStrategy<Command> {
    leaf_command(binary)
        .prop_recursive(2, 12, 4, |inner| {
            (
                any::<u32>(),
                any::<bool>(),
                option::of(meta()),
                vec(inner, 0..4),
                any::<bool>(),
            )
                .prop_map(|(cmd_id, no_resp, meta, commands, atomic)| {
                    let c = Container {
                        cmd_id,
                        no_resp,
                        meta,
                        commands,
                    };
                    if atomic {
                        Command::Atomic(c)
                    } else {
                        Command::Sequence(c)
                    }
                })
        })
        .boxed()
}

fn message(binary: bool) -> BoxedStrategy<Message> {
    (
        (
            prop_oneof![Just("1.2".to_owned()), Just("1.1".to_owned())],
            word(),
            word(),
            any::<u32>(),
        ),
        location(),
        location(),
        option::of(word()),
        any::<bool>(),
        option::of(cred(binary)),
        option::of(meta()),
        vec(command(binary), 0..6),
        any::<bool>(),
    )
        .prop_map(
            |(
                (ver_dtd, ver_proto, session_id, msg_id),
                target,
                source,
                resp_uri,
                no_resp,
                cred,
                meta,
                commands,
                final_,
            )| {
                Message {
                    header: Header {
                        ver_dtd,
                        ver_proto,
                        session_id,
                        msg_id,
                        target,
                        source,
                        resp_uri,
                        no_resp,
                        cred,
                        meta,
                    },
                    body: Body { commands, final_ },
                }
            },
        )
        .boxed()
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fixtures");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn xml_round_trip_is_identity(m in message(false)) {
        let bytes = encode(&m, Encoding::Xml);
        let back = decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&bytes))))?;
        prop_assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        prop_assert_eq!(back.message, m);
    }

    #[test]
    fn wbxml_round_trip_is_identity(m in message(true)) {
        let bytes = encode(&m, Encoding::Wbxml);
        let back = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        prop_assert_eq!(back.message, m);
    }

    #[test]
    fn size_calculator_is_exact(m in message(true)) {
        for enc in [Encoding::Xml, Encoding::Wbxml] {
            prop_assert_eq!(encoded_size(&m, enc), encode(&m, enc).len());
        }
    }

    #[test]
    fn budget_never_overshoots(m in message(true), limit in 200usize..4000) {
        for enc in [Encoding::Xml, Encoding::Wbxml] {
            let mut budget = MessageBudget::new(&m.header, enc, limit);
            let mut taken = Message { header: m.header.clone(), body: Body { commands: vec![], final_: true } };
            for c in &m.body.commands {
                if budget.try_add(c, true) {
                    taken.body.commands.push(c.clone());
                }
            }
            let len = encode(&taken, enc).len();
            prop_assert_eq!(len, budget.total(true));
            prop_assert!(taken.body.commands.is_empty() || len <= limit);
        }
    }

    #[test]
    fn pretty_xml_means_the_same(m in message(false)) {
        let pretty = to_pretty_xml(&m);
        let back = decode(pretty.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.message, m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode_with(&bytes, Encoding::Xml, Limits::default());
        let _ = decode_with(&bytes, Encoding::Wbxml, Limits::default());
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[<>/a-zA-Z &;#\\[\\]!?=\"']{0,200}") {
        let _ = decode(text.as_bytes());
    }

    #[test]
    fn mutated_captures_never_panic(
        which in 0usize..7,
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let all = fixtures();
        let mut bytes = all[which % all.len()].clone();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep.max(bytes.len() / 2));
        let _ = decode(&bytes);
    }
}

#[test]
fn limits_are_enforced_and_named() {
    let deep = format!(
        "<SyncML><SyncHdr>{}{}</SyncHdr></SyncML>",
        "<Meta>".repeat(40),
        "</Meta>".repeat(40)
    );
    let err = decode(deep.as_bytes()).unwrap_err();
    assert!(
        matches!(
            err.kind,
            DecodeErrorKind::Limit {
                name: "max_depth",
                limit: 32
            }
        ),
        "{err}"
    );

    let big = vec![b' '; 100];
    let tight = Limits {
        max_input: 50,
        ..Limits::default()
    };
    let err = decode_with(&big, Encoding::Xml, tight).unwrap_err();
    assert!(err.to_string().contains("max_input limit of 50"), "{err}");
    assert_eq!(err.status(), StatusCode::REQUEST_ENTITY_TOO_LARGE);

    let many = format!(
        "<SyncML><SyncBody>{}</SyncBody></SyncML>",
        "<Final/>".repeat(100)
    );
    let few = Limits {
        max_elements: 50,
        ..Limits::default()
    };
    let err = decode_with(many.as_bytes(), Encoding::Xml, few).unwrap_err();
    assert!(
        matches!(
            err.kind,
            DecodeErrorKind::Limit {
                name: "max_elements",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn errors_carry_byte_offsets() {
    let err = decode(b"<SyncML><SyncHdr><VerDTD>1.2</VerProto>").unwrap_err();
    assert!(matches!(err.kind, DecodeErrorKind::Xml(_)), "{err}");
    assert!(err.offset > 20, "{err}");
    let err = decode(b"<Foo/>").unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::NotSyncMl("Foo".into()));
    let err = decode(b"\x02\xa4\x01\x6a\x00\x6d\x6c").unwrap_err();
    assert!(matches!(err.kind, DecodeErrorKind::Wbxml(_)), "{err}");
}
