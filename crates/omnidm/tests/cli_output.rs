//! Command output into a pipe whose reader has gone away (`omnidm devices list | head -1`):
//! the command ends quietly with exit code 0, never with a panic (issue 10, "every table
//! command panics with a broken pipe", rc 101 before).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::{Command, Stdio};

mod support;

/// Runs `omnidm args` with standard output connected to a pipe whose read end is already
/// closed, so the first write fails with EPIPE; returns (exit code, stderr).
fn run_into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_omnidm"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn table_and_json_commands_end_quietly_when_the_reader_goes_away() {
    let dir = support::DataDir::new("cli-output");
    let data = dir.path();
    let added = Command::new(env!("CARGO_BIN_EXE_omnidm"))
        .args(["devices", "add", "IMEI:1", "--data-dir", data])
        .args(["--client-secret", "c", "--server-secret", "s"])
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let queued = Command::new(env!("CARGO_BIN_EXE_omnidm"))
        .args([
            "ops",
            "submit",
            "IMEI:1",
            "get:./DevInfo/Mod",
            "--data-dir",
            data,
        ])
        .output()
        .unwrap();
    assert!(queued.status.success(), "{queued:?}");

    for args in [
        vec!["devices", "list"],
        vec!["devices", "list", "--json"],
        vec!["devices", "show", "IMEI:1"],
        vec!["devices", "tree", "IMEI:1"],
        vec!["ops", "list"],
        vec!["ops", "list", "--json"],
        vec!["ops", "show", "1"],
    ] {
        let mut full = args.clone();
        full.extend(["--data-dir", data]);
        let (code, stderr) = run_into_closed_pipe(&full);
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} complained: {stderr}");
    }

    // A fan-out names the ids it queued in words people read (it printed `ids 2..=2`).
    let list = std::path::Path::new(data).join("devices.txt");
    std::fs::write(&list, "IMEI:1\n").unwrap();
    let fanned = Command::new(env!("CARGO_BIN_EXE_omnidm"))
        .args(["ops", "fan-out", "--devices-file", list.to_str().unwrap()])
        .args(["get:./DevInfo/Mod", "--data-dir", data])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&fanned.stdout);
    assert!(said.starts_with("queued 1 operations (id 2)"), "{said}");

    // The tree of a device that does not exist is an error, not an empty table with rc 0.
    let unknown = Command::new(env!("CARGO_BIN_EXE_omnidm"))
        .args(["devices", "tree", "IMEI:404", "--data-dir", data])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no device IMEI:404"));
}

/// `--config -` reads the configuration from standard input, as the not-found hint offers.
#[test]
fn config_can_come_from_standard_input() {
    use std::io::Write as _;
    let dir = support::DataDir::new("cli-config-stdin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_omnidm"))
        .args(["serve", "--config", "-", "--data-dir", dir.path()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Not valid TOML: the error must name standard input, not a file called `-`.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"bogus = \n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("<stdin>: invalid configuration"), "{err}");
}
