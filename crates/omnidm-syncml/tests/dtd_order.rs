//! Element order of everything the encoder writes, checked against the content models of the
//! SyncML Representation Protocol 1.2 DTD (OMA-SUP-DTD_SyncML_RepPro-V1_2, the DTD OMA DM 1.2
//! uses, DM RepPro 1.2 §6) and the MetInf 1.2 DTD for the children of `Meta`.
//!
//! The table below is transcribed from the DTD's `<!ELEMENT …>` declarations, not from our
//! emitter: a device with a validating or order-dependent parser (libdmclient's SyncML
//! toolkit reads Alert's `Data` before `Correlator`) sees exactly what is checked here. Every
//! element in the output must have an entry, so a new element kind cannot slip through
//! unchecked. Both encodings are checked: the XML text and the WBXML token stream.
#![allow(clippy::unwrap_used, clippy::panic)]

use omnidm_syncml::*;

/// One particle of a content model: one of `names`, between `min` and `max` times.
struct Particle {
    names: &'static [&'static str],
    min: usize,
    max: usize,
}

const MANY: usize = usize::MAX;

const fn one(name: &'static [&'static str]) -> Particle {
    Particle {
        names: name,
        min: 1,
        max: 1,
    }
}
const fn opt(name: &'static [&'static str]) -> Particle {
    Particle {
        names: name,
        min: 0,
        max: 1,
    }
}
const fn star(name: &'static [&'static str]) -> Particle {
    Particle {
        names: name,
        min: 0,
        max: MANY,
    }
}
const fn plus(name: &'static [&'static str]) -> Particle {
    Particle {
        names: name,
        min: 1,
        max: MANY,
    }
}

/// `(Add | Alert | Atomic | Copy | Delete | Exec | Get | Map | Move | Replace | Sequence |
/// Sync)` as allowed inside Atomic and Sequence.
const GROUPED: &[&str] = &[
    "Add", "Alert", "Atomic", "Copy", "Delete", "Exec", "Get", "Map", "Move", "Replace",
    "Sequence", "Sync",
];
/// The SyncBody command choice.
const BODY: &[&str] = &[
    "Alert", "Atomic", "Copy", "Exec", "Get", "Map", "Put", "Results", "Search", "Sequence",
    "Status", "Sync", "Add", "Move", "Replace", "Delete",
];
/// Elements whose content is `#PCDATA` or `EMPTY`: no child elements at all.
const LEAVES: &[&str] = &[
    "VerDTD",
    "VerProto",
    "SessionID",
    "MsgID",
    "RespURI",
    "NoResp",
    "LocURI",
    "LocName",
    "CmdID",
    "MsgRef",
    "CmdRef",
    "Cmd",
    "TargetRef",
    "SourceRef",
    "Data",
    "Correlator",
    "MoreData",
    "Final",
    "Lang",
    "Archive",
    "SftDel",
    // MetInf leaves.
    "Format",
    "Type",
    "Mark",
    "Size",
    "Version",
    "NextNonce",
    "MaxMsgSize",
    "MaxObjSize",
    "EMI",
];

/// The content model of `name` (SyncML RepPro 1.2 DTD / MetInf 1.2 DTD).
fn model(name: &str) -> Option<Vec<Particle>> {
    Some(match name {
        "SyncML" => vec![one(&["SyncHdr"]), one(&["SyncBody"])],
        // <!ELEMENT SyncHdr (VerDTD, VerProto, SessionID, MsgID, Target, Source, RespURI?,
        //                    NoResp?, Cred?, Meta?)>
        "SyncHdr" => vec![
            one(&["VerDTD"]),
            one(&["VerProto"]),
            one(&["SessionID"]),
            one(&["MsgID"]),
            one(&["Target"]),
            one(&["Source"]),
            opt(&["RespURI"]),
            opt(&["NoResp"]),
            opt(&["Cred"]),
            opt(&["Meta"]),
        ],
        // <!ELEMENT SyncBody ((Alert | Atomic | … | Delete)+, Final?)>
        "SyncBody" => vec![plus(BODY), opt(&["Final"])],
        // <!ELEMENT Target (LocURI, LocName?, Filter?)>, <!ELEMENT Source (LocURI, LocName?)>
        "Target" => vec![one(&["LocURI"]), opt(&["LocName"]), opt(&["Filter"])],
        "Source" => vec![one(&["LocURI"]), opt(&["LocName"])],
        // <!ELEMENT Cred (Meta?, Data)>, <!ELEMENT Chal (Meta)>
        "Cred" => vec![opt(&["Meta"]), one(&["Data"])],
        "Chal" => vec![one(&["Meta"])],
        // <!ELEMENT Add (CmdID, NoResp?, Cred?, Meta?, Item+)>, same for Replace and Copy.
        "Add" | "Replace" | "Copy" => vec![
            one(&["CmdID"]),
            opt(&["NoResp"]),
            opt(&["Cred"]),
            opt(&["Meta"]),
            plus(&["Item"]),
        ],
        // <!ELEMENT Delete (CmdID, NoResp?, Archive?, SftDel?, Cred?, Meta?, Item+)>
        "Delete" => vec![
            one(&["CmdID"]),
            opt(&["NoResp"]),
            opt(&["Archive"]),
            opt(&["SftDel"]),
            opt(&["Cred"]),
            opt(&["Meta"]),
            plus(&["Item"]),
        ],
        // <!ELEMENT Get (CmdID, NoResp?, Lang?, Cred?, Meta?, Item+)>
        "Get" => vec![
            one(&["CmdID"]),
            opt(&["NoResp"]),
            opt(&["Lang"]),
            opt(&["Cred"]),
            opt(&["Meta"]),
            plus(&["Item"]),
        ],
        // <!ELEMENT Alert (CmdID, NoResp?, Cred?, Data?, Correlator?, Item*)>
        "Alert" => vec![
            one(&["CmdID"]),
            opt(&["NoResp"]),
            opt(&["Cred"]),
            opt(&["Data"]),
            opt(&["Correlator"]),
            star(&["Item"]),
        ],
        // <!ELEMENT Exec (CmdID, NoResp?, Cred?, Meta?, Correlator?, Item)>
        "Exec" => vec![
            one(&["CmdID"]),
            opt(&["NoResp"]),
            opt(&["Cred"]),
            opt(&["Meta"]),
            opt(&["Correlator"]),
            one(&["Item"]),
        ],
        // <!ELEMENT Atomic (CmdID, NoResp?, Meta?, (Add | … )+)>, same for Sequence.
        "Atomic" | "Sequence" => vec![
            one(&["CmdID"]),
            opt(&["NoResp"]),
            opt(&["Meta"]),
            plus(GROUPED),
        ],
        // <!ELEMENT Results (CmdID, MsgRef?, CmdRef, Meta?, TargetRef?, SourceRef?, Item+)>
        "Results" => vec![
            one(&["CmdID"]),
            opt(&["MsgRef"]),
            one(&["CmdRef"]),
            opt(&["Meta"]),
            opt(&["TargetRef"]),
            opt(&["SourceRef"]),
            plus(&["Item"]),
        ],
        // <!ELEMENT Status (CmdID, MsgRef, CmdRef, Cmd, TargetRef*, SourceRef*, Cred?, Chal?,
        //                   Data, Item*)>
        "Status" => vec![
            one(&["CmdID"]),
            one(&["MsgRef"]),
            one(&["CmdRef"]),
            one(&["Cmd"]),
            star(&["TargetRef"]),
            star(&["SourceRef"]),
            opt(&["Cred"]),
            opt(&["Chal"]),
            one(&["Data"]),
            star(&["Item"]),
        ],
        // <!ELEMENT Item (Target?, Source?, SourceParent?, TargetParent?, Meta?, Data?,
        //                 MoreData?)>
        "Item" => vec![
            opt(&["Target"]),
            opt(&["Source"]),
            opt(&["SourceParent"]),
            opt(&["TargetParent"]),
            opt(&["Meta"]),
            opt(&["Data"]),
            opt(&["MoreData"]),
        ],
        // MetInf 1.2: (FieldLevel?, Format?, Type?, Mark?, Size?, Anchor?, Version?,
        //              NextNonce?, MaxMsgSize?, MaxObjSize?, EMI*, Mem?)
        "Meta" => vec![
            opt(&["FieldLevel"]),
            opt(&["Format"]),
            opt(&["Type"]),
            opt(&["Mark"]),
            opt(&["Size"]),
            opt(&["Anchor"]),
            opt(&["Version"]),
            opt(&["NextNonce"]),
            opt(&["MaxMsgSize"]),
            opt(&["MaxObjSize"]),
            star(&["EMI"]),
            opt(&["Mem"]),
        ],
        leaf if LEAVES.contains(&leaf) => vec![],
        _ => return None,
    })
}

/// An element and its child elements (text is ignored).
#[derive(Debug)]
struct El {
    name: String,
    children: Vec<El>,
}

/// Checks `el` and everything below it; records which element names were seen.
fn check(el: &El, path: &str, seen: &mut std::collections::BTreeSet<String>) {
    let path = format!("{path}/{}", el.name);
    seen.insert(el.name.clone());
    let Some(model) = model(&el.name) else {
        panic!("{path}: element not in the DTD table");
    };
    let names: Vec<&str> = el.children.iter().map(|c| c.name.as_str()).collect();
    let mut i = 0;
    for p in &model {
        let mut n = 0;
        while n < p.max && i < names.len() && p.names.contains(&names[i]) {
            n += 1;
            i += 1;
        }
        assert!(
            n >= p.min,
            "{path}: children {names:?} lack {:?} (DTD order)",
            p.names
        );
    }
    assert!(
        i == names.len(),
        "{path}: children {names:?}: {:?} is out of DTD order or not allowed",
        names[i]
    );
    for c in &el.children {
        check(c, &path, seen);
    }
}

fn xml_tree(bytes: &[u8]) -> El {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut stack: Vec<El> = vec![El {
        name: "#document".into(),
        children: vec![],
    }];
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).unwrap() {
            Event::Start(e) => stack.push(El {
                name: e.local_name().into_inner().to_owned(),
                children: vec![],
            }),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(El {
                name: e.local_name().into_inner().to_owned(),
                children: vec![],
            }),
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(el);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1);
    doc.children.pop().unwrap()
}

fn wbxml_tree(bytes: &[u8]) -> El {
    use omnidm_wbxml::{Event, Limits, Reader};
    let mut reader = Reader::new(bytes, Limits::default()).unwrap();
    let mut stack: Vec<El> = vec![El {
        name: "#document".into(),
        children: vec![],
    }];
    while let Some(ev) = reader.next_event().unwrap() {
        match ev {
            Event::Start { page, token, .. } => stack.push(El {
                name: Tag::from_wbxml(page, token)
                    .map_or_else(|| format!("?{page}:{token:#x}"), |t| t.name().to_owned()),
                children: vec![],
            }),
            Event::End => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(el);
            }
            _ => {}
        }
    }
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1);
    doc.children.pop().unwrap()
}

fn full_meta() -> Meta {
    Meta {
        format: Some("chr".into()),
        type_: Some("text/plain".into()),
        mark: Some("high".into()),
        size: Some(12),
        next_nonce: Some("bm9uY2U=".into()),
        version: Some("1.0".into()),
        max_msg_size: Some(4000),
        max_obj_size: Some(65536),
        emi: vec!["x".into(), "y".into()],
    }
}

fn cred() -> Cred {
    Cred {
        meta: Some(Meta::with_format("b64").and_type("syncml:auth-md5")),
        data: Data::Text("ZGlnZXN0".into()),
    }
}

fn full_item() -> Item {
    Item {
        target: Some(Location {
            loc_uri: "./a".into(),
            loc_name: Some("a".into()),
        }),
        source: Some(Location {
            loc_uri: "./b".into(),
            loc_name: Some("b".into()),
        }),
        meta: Some(full_meta()),
        data: Some(Data::Text("v".into())),
        more_data: true,
    }
}

fn item_command(cmd_id: u32) -> ItemCommand {
    ItemCommand {
        cmd_id,
        no_resp: true,
        cred: Some(cred()),
        meta: Some(full_meta()),
        items: vec![full_item(), Item::target("./c")],
    }
}

fn alert(cmd_id: u32) -> Alert {
    Alert {
        cmd_id,
        no_resp: true,
        cred: Some(cred()),
        correlator: Some("corr-1".into()),
        code: AlertCode(1226),
        items: vec![full_item()],
    }
}

fn exec(cmd_id: u32) -> Exec {
    Exec {
        cmd_id,
        no_resp: true,
        cred: Some(cred()),
        meta: Some(full_meta()),
        correlator: Some("corr-2".into()),
        item: full_item(),
    }
}

/// A message that uses every element and every optional child the encoder can write.
fn everything() -> Message {
    let inner = || {
        vec![
            Command::Add(item_command(20)),
            Command::Replace(item_command(21)),
            Command::Delete(item_command(22)),
            Command::Copy(item_command(23)),
            Command::Get(item_command(24)),
            Command::Exec(exec(25)),
            Command::Alert(alert(26)),
        ]
    };
    let mut nested = inner();
    nested.push(Command::Sequence(Container {
        cmd_id: 27,
        no_resp: false,
        meta: None,
        commands: inner(),
    }));
    Message {
        header: Header {
            session_id: "1".into(),
            msg_id: 2,
            target: Location {
                loc_uri: "IMEI:1".into(),
                loc_name: Some("dev".into()),
            },
            source: Location::new("http://srv/dm"),
            resp_uri: Some("http://srv/dm?s=1".into()),
            no_resp: true,
            cred: Some(cred()),
            meta: Some(full_meta()),
            ..Header::default()
        },
        body: Body {
            commands: vec![
                Command::Status(Status {
                    cmd_id: 1,
                    msg_ref: 1,
                    cmd_ref: 0,
                    cmd: "SyncHdr".into(),
                    target_refs: vec!["http://srv/dm".into(), "x".into()],
                    source_refs: vec!["IMEI:1".into(), "y".into()],
                    cred: Some(cred()),
                    chal: Some(Chal {
                        meta: Meta {
                            next_nonce: Some("bm9uY2U=".into()),
                            ..Meta::with_format("b64").and_type("syncml:auth-md5")
                        },
                    }),
                    code: StatusCode(401),
                    items: vec![full_item()],
                }),
                Command::Results(Results {
                    cmd_id: 2,
                    msg_ref: Some(1),
                    cmd_ref: 4,
                    meta: Some(full_meta()),
                    target_refs: vec!["./a".into()],
                    source_refs: vec!["./b".into()],
                    items: vec![full_item(), full_item()],
                }),
                Command::Alert(alert(3)),
                Command::Exec(exec(4)),
                Command::Add(item_command(5)),
                Command::Replace(item_command(6)),
                Command::Delete(item_command(7)),
                Command::Copy(item_command(8)),
                Command::Get(item_command(9)),
                Command::Atomic(Container {
                    cmd_id: 10,
                    no_resp: true,
                    meta: Some(full_meta()),
                    commands: nested,
                }),
                Command::Sequence(Container {
                    cmd_id: 11,
                    no_resp: true,
                    meta: Some(full_meta()),
                    commands: inner(),
                }),
            ],
            final_: true,
        },
    }
}

/// Everything the emitter writes must appear in the test message, or the check proves
/// nothing about it.
const MUST_SEE: &[&str] = &[
    "SyncML",
    "SyncHdr",
    "SyncBody",
    "Target",
    "Source",
    "Cred",
    "Chal",
    "Add",
    "Replace",
    "Copy",
    "Delete",
    "Get",
    "Alert",
    "Exec",
    "Atomic",
    "Sequence",
    "Results",
    "Status",
    "Item",
    "Meta",
    "VerDTD",
    "VerProto",
    "SessionID",
    "MsgID",
    "RespURI",
    "NoResp",
    "LocURI",
    "LocName",
    "CmdID",
    "MsgRef",
    "CmdRef",
    "Cmd",
    "TargetRef",
    "SourceRef",
    "Data",
    "Correlator",
    "MoreData",
    "Final",
    "Format",
    "Type",
    "Mark",
    "Size",
    "Version",
    "NextNonce",
    "MaxMsgSize",
    "MaxObjSize",
    "EMI",
];

fn check_message(m: &Message) {
    for (what, tree) in [
        ("XML", xml_tree(&encode(m, Encoding::Xml))),
        ("WBXML", wbxml_tree(&encode(m, Encoding::Wbxml))),
    ] {
        let mut seen = std::collections::BTreeSet::new();
        check(&tree, what, &mut seen);
        for name in MUST_SEE {
            assert!(seen.contains(*name), "{what}: test message lacks <{name}>");
        }
    }
}

/// SyncML RepPro 1.2 DTD: every element the encoder writes has its children in DTD order,
/// in XML and in WBXML.
#[test]
fn rule_reppro_dtd_child_order_of_every_element() {
    check_message(&everything());
}

/// SyncML RepPro 1.2 DTD, `<!ELEMENT Alert (CmdID, NoResp?, Cred?, Data?, Correlator?,
/// Item*)>`: the alert code precedes the correlator (the instance, pinned alone).
#[test]
fn rule_reppro_dtd_alert_data_before_correlator() {
    let m = Message {
        header: Header::default(),
        body: Body {
            commands: vec![Command::Alert(Alert {
                cmd_id: 1,
                no_resp: false,
                cred: None,
                correlator: Some("c".into()),
                code: AlertCode(1226),
                items: vec![],
            })],
            final_: true,
        },
    };
    let xml = String::from_utf8(encode(&m, Encoding::Xml)).unwrap();
    let data = xml.find("<Data>1226</Data>").unwrap();
    let corr = xml.find("<Correlator>c</Correlator>").unwrap();
    assert!(data < corr, "{xml}");
    check_message_partial(&m);
}

/// [`check`] without the coverage requirement.
fn check_message_partial(m: &Message) {
    for (what, tree) in [
        ("XML", xml_tree(&encode(m, Encoding::Xml))),
        ("WBXML", wbxml_tree(&encode(m, Encoding::Wbxml))),
    ] {
        check(&tree, what, &mut std::collections::BTreeSet::new());
    }
}
