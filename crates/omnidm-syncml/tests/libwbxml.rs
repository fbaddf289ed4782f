//! Interop proof against an independent WBXML implementation: Debian's libwbxml
//! (`wbxml2xml`, `xml2wbxml` from `libwbxml2-utils`, installed by `scripts/test`).
//!
//! - what we encode as WBXML, libwbxml decodes to XML that we read back as the same message;
//! - what libwbxml encodes from our XML (with and without a string table, WBXML 1.1–1.3), we
//!   decode to the same message.
//!
//! Messages: every captured fixture plus constructed ones covering every DM command, nested
//! containers, challenges, correlators, large-object chunks and user-interaction alerts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::normalize;
use omnidm_syncml::*;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

fn tool(name: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{name} not found: install Debian's libwbxml2-utils (scripts/test does this)"
    );
    path
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("omnidm-libwbxml-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &Path, args: &[&str], input: &[u8], scratch: &Scratch) -> Vec<u8> {
    let (inp, out) = (scratch.file("in"), scratch.file("out"));
    std::fs::write(&inp, input).unwrap();
    let _ = std::fs::remove_file(&out);
    let status = Process::new(cmd)
        .args(args)
        .arg("-o")
        .arg(&out)
        .arg(&inp)
        .output()
        .unwrap();
    assert!(
        status.status.success() && out.exists(),
        "{} {args:?} failed: {}{}",
        cmd.display(),
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::read(&out).unwrap()
}

/// Asserts equality, showing only the first differing command when messages differ.
fn same(left: Message, right: Message, what: &str) {
    if left == right {
        return;
    }
    assert_eq!(left.header, right.header, "{what}: headers differ");
    for (l, r) in left.body.commands.iter().zip(&right.body.commands) {
        assert_eq!(l, r, "{what}: first differing command");
    }
    assert_eq!(left.body, right.body, "{what}");
}

fn fixtures() -> Vec<(String, Message)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("xml" | "wbxml")
        ) {
            continue;
        }
        let m = decode(&std::fs::read(&path).unwrap()).unwrap().message;
        out.push((path.file_name().unwrap().to_string_lossy().into_owned(), m));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn target(uri: &str, format: &str, value: &str) -> Item {
    Item {
        target: Some(Location::new(uri)),
        meta: Some(Meta::with_format(format).and_type("text/plain")),
        data: Some(Data::Text(value.into())),
        ..Item::default()
    }
}

/// A server package exercising every command and the trickier elements.
fn constructed() -> Vec<(String, Message)> {
    let header = Header {
        session_id: "4F2A".into(),
        msg_id: 2,
        target: Location::new("IMEI:493005100592800"),
        source: Location {
            loc_uri: "https://dm.example.net/dm".into(),
            loc_name: Some("omnidm".into()),
        },
        resp_uri: Some("https://dm.example.net/dm?s=4F2A".into()),
        cred: Some(Cred {
            meta: Some(Meta::with_format("b64").and_type("syncml:auth-md5")),
            data: Data::Text("Lx7CSZp0iHRedCEbryGJuw==".into()),
        }),
        meta: Some(Meta {
            max_msg_size: Some(10_000),
            max_obj_size: Some(1_048_576),
            ..Meta::default()
        }),
        ..Header::default()
    };
    let status = Command::Status(Status {
        cmd_id: 1,
        msg_ref: 1,
        cmd_ref: 0,
        cmd: "SyncHdr".into(),
        target_refs: vec!["https://dm.example.net/dm".into()],
        source_refs: vec!["IMEI:493005100592800".into()],
        cred: None,
        chal: Some(Chal {
            meta: Meta {
                format: Some("b64".into()),
                type_: Some("syncml:auth-md5".into()),
                next_nonce: Some("ZG1ub25jZQ==".into()),
                ..Meta::default()
            },
        }),
        code: StatusCode::AUTHENTICATION_ACCEPTED,
        items: vec![],
    });
    let ic = |cmd_id, items| ItemCommand {
        cmd_id,
        items,
        ..ItemCommand::default()
    };
    let commands = vec![
        status,
        Command::Replace(ic(
            2,
            vec![target("./DMAcc/omnidm/ServerID", "chr", "omnidm & <co>")],
        )),
        Command::Add(ic(
            3,
            vec![Item {
                target: Some(Location::new("./Vendor/App42")),
                meta: Some(Meta::with_format("node")),
                // Add and Replace always carry <Data/> on the wire (GUIDE §3).
                data: Some(Data::Text(String::new())),
                ..Item::default()
            }],
        )),
        Command::Get(ic(
            4,
            vec![
                Item::target("./DevDetail/SwV"),
                Item::target("./DevInfo?list=Struct"),
            ],
        )),
        Command::Delete(ic(5, vec![Item::target("./Vendor/Old")])),
        Command::Copy(ic(
            6,
            vec![Item {
                target: Some(Location::new("./Vendor/Copy")),
                source: Some(Location::new("./Vendor/Orig")),
                ..Item::default()
            }],
        )),
        Command::Exec(Exec {
            cmd_id: 7,
            correlator: Some("op-81f2-1".into()),
            item: Item {
                target: Some(Location::new("./FUMO/fw1/DownloadAndUpdate")),
                data: Some(Data::Text("".into())),
                ..Item::default()
            },
            ..Exec::default()
        }),
        Command::Atomic(Container {
            cmd_id: 8,
            commands: vec![
                Command::Replace(ic(9, vec![target("./Vendor/App42/A", "int", "42")])),
                Command::Sequence(Container {
                    cmd_id: 10,
                    commands: vec![Command::Replace(ic(
                        11,
                        vec![target("./Vendor/App42/B", "bool", "true")],
                    ))],
                    ..Container::default()
                }),
            ],
            ..Container::default()
        }),
        Command::Alert(Alert {
            cmd_id: 12,
            no_resp: false,
            cred: None,
            correlator: None,
            code: AlertCode::SINGLE_CHOICE,
            items: vec![
                Item {
                    data: Some("MINDT=10&MAXDT=60&DR=1".into()),
                    ..Item::default()
                },
                Item {
                    data: Some("Install the update now?".into()),
                    ..Item::default()
                },
                Item {
                    data: Some("Yes".into()),
                    ..Item::default()
                },
                Item {
                    data: Some("Later".into()),
                    ..Item::default()
                },
            ],
        }),
        Command::Replace(ic(
            13,
            vec![Item {
                target: Some(Location::new("./FUMO/fw1/Update/PkgData")),
                meta: Some(Meta {
                    format: Some("b64".into()),
                    size: Some(4096),
                    ..Meta::default()
                }),
                data: Some(Data::Text("AAECAwQFBgcICQoLDA0ODw==".into())),
                more_data: true,
                ..Item::default()
            }],
        )),
    ];
    let server = Message {
        header: header.clone(),
        body: Body {
            commands,
            final_: true,
        },
    };
    let device = Message {
        header: Header {
            msg_id: 3,
            target: header.source.clone(),
            source: header.target.clone(),
            cred: None,
            resp_uri: None,
            ..header
        },
        body: Body {
            commands: vec![
                Command::Results(Results {
                    cmd_id: 2,
                    msg_ref: Some(2),
                    cmd_ref: 4,
                    meta: None,
                    target_refs: vec![],
                    source_refs: vec!["./DevDetail/SwV".into()],
                    items: vec![Item::source("./DevDetail/SwV", "R2.1.7 (build 4411)")],
                }),
                Command::Alert(Alert {
                    cmd_id: 3,
                    no_resp: false,
                    cred: None,
                    correlator: Some("op-81f2-1".into()),
                    code: AlertCode::GENERIC_ALERT,
                    items: vec![Item {
                        source: Some(Location::new("./FUMO/fw1")),
                        meta: Some(Meta::with_format("int").and_type(
                            "org.openmobilealliance.dm.firmwareupdate.downloadandupdate",
                        )),
                        data: Some("200".into()),
                        ..Item::default()
                    }],
                }),
                Command::Alert(Alert {
                    cmd_id: 4,
                    no_resp: false,
                    cred: None,
                    correlator: None,
                    code: AlertCode::NEXT_MESSAGE,
                    items: vec![],
                }),
            ],
            final_: false,
        },
    };
    vec![
        ("constructed-server".into(), server),
        ("constructed-device".into(), device),
    ]
}

fn all_messages() -> Vec<(String, Message)> {
    let mut all = fixtures();
    all.extend(constructed());
    all
}

#[test]
fn libwbxml_decodes_what_we_encode() {
    let wbxml2xml = tool("wbxml2xml");
    let scratch = Scratch::new("ours");
    for (name, m) in all_messages() {
        let ours = encode(&m, Encoding::Wbxml);
        let xml = run(&wbxml2xml, &["-m", "0"], &ours, &scratch);
        let back = decode(&xml).unwrap_or_else(|e| {
            panic!(
                "{name}: libwbxml's XML unreadable: {e}\n{}",
                String::from_utf8_lossy(&xml)
            )
        });
        same(normalize(back.message), normalize(m), &name);
    }
}

#[test]
fn we_decode_what_libwbxml_encodes() {
    let xml2wbxml = tool("xml2wbxml");
    let scratch = Scratch::new("theirs");
    for (name, m) in all_messages() {
        let xml = encode(&m, Encoding::Xml);
        // Default (WBXML 1.3 with a string table), no string table, and older versions.
        for args in [&[][..], &["-n"], &["-v", "1.2"], &["-n", "-v", "1.1"]] {
            let theirs = run(&xml2wbxml, args, &xml, &scratch);
            let back = decode(&theirs).unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
            assert_eq!(back.encoding, Encoding::Wbxml);
            same(
                normalize(back.message),
                normalize(m.clone()),
                &format!("{name} {args:?}"),
            );
        }
    }
}

#[test]
fn both_implementations_agree_on_the_captured_wbxml() {
    let wbxml2xml = tool("wbxml2xml");
    let scratch = Scratch::new("captures");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fixtures");
    for name in [
        "pkg1-client.wbxml",
        "pkg2-server.wbxml",
        "pkg3-client.wbxml",
    ] {
        let capture = std::fs::read(dir.join(name)).unwrap();
        let ours = decode(&capture).unwrap().message;
        let xml = run(&wbxml2xml, &["-m", "0"], &capture, &scratch);
        let theirs = decode(&xml).unwrap().message;
        same(normalize(ours), normalize(theirs), name);
    }
}
