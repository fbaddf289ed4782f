//! `omnidm syncml …` run as a real process on the recorded fixtures of `omnidm-syncml`.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../omnidm-syncml/tests/data/fixtures")
        .join(name)
}

fn omnidm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnidm"))
        .args(args)
        .output()
        .unwrap()
}

fn omnidm_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_omnidm"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A fresh scratch directory for output files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnidm-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn decode_wbxml_prints_xml() {
    for name in ["pkg1-client.wbxml", "pkg3-client.wbxml"] {
        let o = omnidm(&["syncml", "decode", path(&fixture(name))]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let xml = stdout(&o);
        assert!(xml.starts_with("<?xml"), "{xml}");
        assert!(xml.contains("./DevInfo/Mod"), "{xml}");
        assert!(xml.contains("test model"), "{xml}");
    }
}

#[test]
fn decode_reads_stdin() {
    let bytes = std::fs::read(fixture("pkg2-server.wbxml")).unwrap();
    let o = omnidm_stdin(&["syncml", "decode", "-"], &bytes);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("<Cmd>SyncHdr</Cmd>"));
}

#[test]
fn xml_and_wbxml_fixtures_decode_alike() {
    // pkg3's XML and WBXML were captured in different sessions (different nonces).
    for pkg in ["pkg1-client", "pkg2-server"] {
        let xml = omnidm(&["syncml", "decode", path(&fixture(&format!("{pkg}.xml")))]);
        let wbxml = omnidm(&["syncml", "decode", path(&fixture(&format!("{pkg}.wbxml")))]);
        assert!(xml.status.success() && wbxml.status.success());
        assert_eq!(stdout(&xml), stdout(&wbxml), "{pkg}");
    }
}

#[test]
fn encode_wbxml_then_decode_is_stable() {
    let dir = scratch("encode");
    for name in [
        "pkg1-client.xml",
        "pkg2-server.xml",
        "pkg3-client.xml",
        "pkg4-server.xml",
    ] {
        let original = fixture(name);
        let out = dir.join(format!("{name}.wbxml"));
        let o = omnidm(&[
            "syncml",
            "encode",
            "--wbxml",
            path(&original),
            "-o",
            path(&out),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let bytes = std::fs::read(&out).unwrap();
        assert!(
            matches!(bytes.first(), Some(0x01..=0x03)),
            "{name}: not WBXML"
        );
        let a = omnidm(&["syncml", "decode", path(&original)]);
        let b = omnidm(&["syncml", "decode", path(&out)]);
        assert_eq!(stdout(&a), stdout(&b), "{name}");

        // And back to XML, through a pipe.
        let back = omnidm(&["syncml", "encode", "--xml", path(&out)]);
        assert!(back.status.success());
        let c = omnidm_stdin(&["syncml", "decode", "-"], &back.stdout);
        assert_eq!(stdout(&a), stdout(&c), "{name}");
    }
}

#[test]
fn encode_defaults_to_the_other_encoding() {
    let o = omnidm(&["syncml", "encode", path(&fixture("pkg2-server.wbxml"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("<?xml"));
    let o = omnidm(&["syncml", "encode", path(&fixture("pkg2-server.xml"))]);
    assert!(o.status.success());
    assert_eq!(o.stdout.first(), Some(&0x02));
}

#[test]
fn inspect_pkg2_shows_statuses_and_get() {
    let o = omnidm(&["syncml", "inspect", path(&fixture("pkg2-server.xml"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let status_lines: Vec<&str> = text.lines().filter(|l| l.contains("Status")).collect();
    assert_eq!(status_lines.len(), 3, "{text}");
    assert!(
        status_lines
            .iter()
            .any(|l| l.contains("SyncHdr") && l.contains("212")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("Get") && l.contains("./DevInfo/Mod")),
        "{text}"
    );
    assert!(text.contains("syncml:auth-md5"), "{text}");
    assert!(text.contains("SessionID 1, MsgID 1"), "{text}");
    assert!(text.contains("MaxMsgSize 10000"), "{text}");
    assert!(text.contains("Final      yes"), "{text}");
}

#[test]
fn inspect_pkg3_shows_challenge_and_results() {
    let o = omnidm(&["syncml", "inspect", path(&fixture("pkg3-client.xml"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("NextNonce RHBKbVJURGNCRXc9"), "{text}");
    assert!(text.contains("\"DpJmRTDcBEw=\""), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("Results") && l.contains("test model")),
        "{text}"
    );
}

#[test]
fn inspect_basic_shows_user_never_password() {
    let o = omnidm(&["syncml", "inspect", path(&fixture("pkg1-client.xml"))]);
    let text = stdout(&o);
    assert!(text.contains("user \"funambol\""), "{text}");
    assert!(!text.contains("ZnVuYW1ib2w6ZnVuYW1ib2w="), "{text}");
    assert!(text.contains("1201 (Client-initiated session)"), "{text}");
    // The basic credential's password is "funambol" too; only the user line may mention it.
    let json = omnidm(&[
        "syncml",
        "inspect",
        "--json",
        path(&fixture("pkg1-client.xml")),
    ]);
    assert!(!stdout(&json).contains("ZnVuYW1ib2w6ZnVuYW1ib2w="));
}

#[test]
fn inspect_json_parses() {
    for name in [
        "pkg1-client.wbxml",
        "pkg2-server.xml",
        "pkg3-client.xml",
        "pkg4-server.xml",
    ] {
        let o = omnidm(&["syncml", "inspect", "--json", path(&fixture(name))]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["commands"].is_array(), "{name}");
        assert_eq!(v["final"], true, "{name}");
    }
    let o = omnidm(&[
        "syncml",
        "inspect",
        "--json",
        path(&fixture("pkg2-server.xml")),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["encoding"], "xml");
    assert_eq!(v["header"]["msg_id"], 1);
    assert_eq!(v["auth"]["type"], "syncml:auth-md5");
    assert_eq!(v["commands"][0]["name"], "Status");
    assert_eq!(v["commands"][0]["code"], 212);
    assert_eq!(v["commands"][3]["name"], "Get");
    assert_eq!(
        v["commands"][3]["items"][0]["target"]["loc_uri"],
        "./DevInfo/Mod"
    );
}

/// A message with nesting, user-interaction and generic alerts, a long value and an element
/// the decoder skips.
const NESTED: &str = r#"<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD>
<VerProto>DM/1.2</VerProto><SessionID>A1</SessionID><MsgID>3</MsgID>
<Target><LocURI>IMEI:1234</LocURI></Target><Source><LocURI>https://dm.example/</LocURI></Source>
<RespURI>https://dm.example/s?x=1</RespURI></SyncHdr><SyncBody>
<Alert><CmdID>1</CmdID><Data>1101</Data><Item><Data>MINDT=10</Data></Item></Alert>
<Sequence><CmdID>2</CmdID><Atomic><CmdID>3</CmdID><Add><CmdID>4</CmdID><Item><Target><LocURI>./A/B</LocURI></Target>
<Data>0123456789012345678901234567890123456789012345678901234567890123456789</Data></Item></Add>
<Delete><CmdID>5</CmdID><NoResp/><Item><Target><LocURI>./A/C</LocURI></Target></Item></Delete></Atomic>
<Exec><CmdID>6</CmdID><Correlator>abc</Correlator><Item><Target><LocURI>./FUMO/Update</LocURI></Target></Item></Exec></Sequence>
<Foo>bar</Foo></SyncBody></SyncML>"#;

#[test]
fn inspect_nested_commands_and_warnings() {
    let o = omnidm_stdin(&["syncml", "inspect", "-"], NESTED.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let indent = |needle: &str| {
        let line = text.lines().find(|l| l.contains(needle)).unwrap();
        line.len() - line.trim_start().len()
    };
    assert!(indent("Sequence") < indent("Atomic"), "{text}");
    assert!(indent("Atomic") < indent("Delete"), "{text}");
    assert_eq!(indent("Atomic"), indent("Exec"), "{text}");
    assert!(text.contains("1101 (Confirm or reject)"), "{text}");
    assert!(text.contains("\"MINDT=10\""), "{text}");
    assert!(text.contains("Correlator abc"), "{text}");
    assert!(text.contains("[NoResp]"), "{text}");
    assert!(text.contains("… (70 chars)"), "{text}");
    assert!(
        text.contains("RespURI    https://dm.example/s?x=1"),
        "{text}"
    );
    assert!(text.contains("Final      no"), "{text}");
    let err = stderr(&o);
    assert!(
        err.starts_with("warning: <stdin>: ") && err.contains("<Foo>") && err.contains("at byte"),
        "{err}"
    );

    let json = omnidm_stdin(&["syncml", "inspect", "--json", "-"], NESTED.as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["commands"][1]["commands"][0]["name"], "Atomic");
    assert_eq!(
        v["commands"][1]["commands"][0]["commands"][1]["no_resp"],
        true
    );
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
}

#[test]
fn basic_cred_of_pkg1_verifies() {
    for name in ["pkg1-client.xml", "pkg1-client.wbxml"] {
        let f = fixture(name);
        let ok = omnidm(&[
            "syncml",
            "inspect",
            path(&f),
            "--user",
            "funambol",
            "--password",
            "funambol",
        ]);
        assert!(ok.status.success(), "{name}: {}", stdout(&ok));
        assert!(stdout(&ok).contains("auth check verified"));
        let bad = omnidm(&[
            "syncml",
            "inspect",
            path(&f),
            "--user",
            "funambol",
            "--password",
            "nope",
        ]);
        assert_eq!(bad.status.code(), Some(3), "{name}");
        assert!(stdout(&bad).contains("auth check FAILED"));
    }
}

#[test]
fn md5_cred_of_pkg2_verifies_with_empty_nonce() {
    let f = fixture("pkg2-server.xml");
    let args = |pw: &'static str| {
        [
            "syncml",
            "inspect",
            "--json",
            "--user",
            "funambol",
            "--password",
            pw,
            "--nonce",
            "",
        ]
    };
    let mut ok_args = args("srvpwd").to_vec();
    ok_args.insert(2, path(&f));
    let ok = omnidm(&ok_args);
    assert!(ok.status.success(), "{}", stdout(&ok));
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["auth_check"]["verified"], true);
    assert_eq!(v["auth_check"]["nonce_form"], "raw");

    let mut bad_args = args("wrong").to_vec();
    bad_args.insert(2, path(&f));
    let bad = omnidm(&bad_args);
    assert_eq!(bad.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["auth_check"]["verified"], false);

    // The nonce pkg3 issues is not the one pkg2's Cred was computed with.
    let other_nonce = omnidm(&[
        "syncml",
        "inspect",
        path(&f),
        "--user",
        "funambol",
        "--password",
        "srvpwd",
        "--nonce",
        "RHBKbVJURGNCRXc9",
    ]);
    assert_eq!(other_nonce.status.code(), Some(3));
}

#[test]
fn inspect_without_cred_does_not_verify() {
    let o = omnidm(&[
        "syncml",
        "inspect",
        path(&fixture("pkg3-client.xml")),
        "--user",
        "a",
        "--password",
        "b",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("no Cred"));
}

#[test]
fn garbage_input_fails_with_offset() {
    let dir = scratch("garbage");
    let cases: [(&str, &[u8]); 5] = [
        ("text", b"hello, this is not SyncML\n"),
        ("binary", &[0x02, 0xa4, 0x01, 0x6a, 0x00, 0xff, 0xff, 0x13]),
        ("html", b"<html><body>502 Bad Gateway</body></html>"),
        (
            "truncated",
            b"<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><VerDTD>1.2",
        ),
        ("latin", &[0xff, 0xfe, 0x3c, 0x00, 0xe9, 0x80, 0x81]),
    ];
    for (name, bytes) in cases {
        let f = dir.join(name);
        std::fs::write(&f, bytes).unwrap();
        for cmd in ["decode", "inspect", "encode"] {
            let o = omnidm(&["syncml", cmd, path(&f)]);
            assert_eq!(o.status.code(), Some(1), "{cmd} {name}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.starts_with("error: "), "{cmd} {name}: {err}");
            assert!(err.contains(path(&f)), "{cmd} {name}: {err}");
            assert!(err.contains("at byte"), "{cmd} {name}: {err}");
            assert!(err.contains("hint: "), "{cmd} {name}: {err}");
            assert!(!err.contains("panicked"), "{cmd} {name}: {err}");
        }
    }
    let empty = omnidm_stdin(&["syncml", "decode", "-"], b"");
    assert_eq!(empty.status.code(), Some(1));
    assert!(stderr(&empty).contains("empty input"));
}

#[test]
fn truncated_fixtures_never_panic() {
    for name in ["pkg1-client.wbxml", "pkg3-client.xml"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for len in (0..bytes.len()).step_by(37) {
            let o = omnidm_stdin(&["syncml", "inspect", "-"], &bytes[..len]);
            assert_eq!(o.status.code(), Some(1), "{name}[..{len}]");
            assert!(!stderr(&o).contains("panicked"), "{name}[..{len}]");
        }
    }
}

#[test]
fn missing_file_and_usage_errors() {
    let o = omnidm(&["syncml", "decode", "/nonexistent/pkg.xml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/pkg.xml"));
    let o = omnidm(&["syncml", "encode", "--xml", "--wbxml", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let o = omnidm(&["syncml", "inspect", "x", "--user", "u"]);
    assert_eq!(o.status.code(), Some(2));
    let o = omnidm(&["syncml", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn version_and_help() {
    let o = omnidm(&["--version"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("omnidm "));
    let o = omnidm(&["--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for command in ["serve", "devices", "ops", "sim", "syncml"] {
        assert!(help.contains(command), "{command} in --help:\n{help}");
    }
}

#[test]
fn notification_round_trip_verifies() {
    let dir = scratch("pkg0");
    let out = dir.join("pkg0.bin");
    let o = omnidm(&[
        "syncml",
        "notification",
        "encode",
        "--server-id",
        "omnidm",
        "--server-password",
        "srvsecret",
        "--session-id",
        "0x1234",
        "--ui-mode",
        "user-interaction",
        "--initiator",
        "client",
        "--nonce",
        "AAECAwQFBgcICQoLDA0ODw==",
        "--vendor-hex",
        "CAFE babe",
        "-o",
        path(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let decode = |pw: &str| {
        omnidm(&[
            "syncml",
            "notification",
            "decode",
            path(&out),
            "--server-id",
            "omnidm",
            "--server-password",
            pw,
            "--nonce",
            "AAECAwQFBgcICQoLDA0ODw==",
        ])
    };
    let o = decode("srvsecret");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        "version       1.2",
        "ui-mode       user-interaction",
        "initiator     client",
        "session id    4660",
        "server id     \"omnidm\"",
        "vendor data   cafebabe",
        "digest check  verified",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let bad = decode("other");
    assert_eq!(bad.status.code(), Some(3));
    assert!(stdout(&bad).contains("digest check  FAILED"));
}

#[test]
fn notification_hex_through_a_pipe() {
    let o = omnidm(&[
        "syncml",
        "notification",
        "encode",
        "--server-id",
        "srv",
        "--server-password",
        "pw",
        "--session-id",
        "7",
        "--hex",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hex = stdout(&o);
    assert!(hex.trim().bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
    // Server id defaults to the one in the message.
    let d = omnidm_stdin(
        &[
            "syncml",
            "notification",
            "decode",
            "--hex",
            "-",
            "--server-password",
            "pw",
        ],
        hex.as_bytes(),
    );
    assert!(d.status.success(), "{}", stderr(&d));
    assert!(stdout(&d).contains("session id    7"));
    assert!(stdout(&d).contains("verified"));
}

#[test]
fn notification_python_sample_resync_nonce() {
    // Written by omnidm-syncml's gen.py with the resync nonce "0x00000000" and password "pw".
    let f = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../omnidm-syncml/tests/data/notification/future-bits-resync.bin");
    let o = omnidm(&[
        "syncml",
        "notification",
        "decode",
        path(&f),
        "--server-password",
        "pw",
        "--nonce",
        "MHgwMDAwMDAwMA==",
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("future-use"));
    let o = omnidm(&[
        "syncml",
        "notification",
        "decode",
        path(&f),
        "--server-password",
        "pw",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("resynchronisation nonce"));
}

#[test]
fn truncated_notification_fails() {
    let dir = scratch("pkg0-trunc");
    let full = dir.join("full.bin");
    let o = omnidm(&[
        "syncml",
        "notification",
        "encode",
        "--server-id",
        "omnidm",
        "--server-password",
        "pw",
        "--session-id",
        "1",
        "-o",
        path(&full),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&full).unwrap();
    // Every cut that removes part of the server id or header is an error, never a panic.
    for len in [0, 1, 15, 16, 20, 23, bytes.len() - 1] {
        let o = omnidm_stdin(&["syncml", "notification", "decode", "-"], &bytes[..len]);
        assert_eq!(o.status.code(), Some(1), "len {len}");
        let err = stderr(&o);
        assert!(err.contains("truncated"), "len {len}: {err}");
        assert!(err.contains("hint: "), "len {len}: {err}");
    }
    let o = omnidm_stdin(&["syncml", "notification", "decode", "--hex", "-"], b"abc");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn notification_encode_rejects_bad_arguments() {
    let base = [
        "syncml",
        "notification",
        "encode",
        "--server-id",
        "x",
        "--server-password",
        "p",
        "--hex",
    ];
    let with = |extra: &[&'static str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        omnidm(&a)
    };
    assert_eq!(with(&["--session-id", "70000"]).status.code(), Some(2));
    assert_eq!(
        with(&["--session-id", "1", "--ui-mode", "loud"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        with(&["--session-id", "1", "--vendor-hex", "xyz"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        with(&["--session-id", "1", "--nonce", "%%%"]).status.code(),
        Some(1)
    );
    let long = "s".repeat(256);
    let o = omnidm(&[
        "syncml",
        "notification",
        "encode",
        "--server-id",
        &long,
        "--server-password",
        "p",
        "--session-id",
        "1",
        "--hex",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("255"));
}
