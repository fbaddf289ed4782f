//! README.md's "Five minutes with a simulated device", run as a new user runs it: the shell
//! block copied from the README itself (so the test follows the text, never a copy of it),
//! in a fresh directory with the default data directory and ports, twice in a row and again
//! after a server restart. Each run's Get + Replace must succeed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::path::Path;
use std::process::Command;
use support::{BIN, DataDir, Server};

/// The first ```sh block after the heading `title`.
fn readme_block(title: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = &readme[readme.find(title).expect("README section")..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_owned()
}

/// Runs `script` with bash -e in `dir`, `omnidm` on the PATH; returns stdout.
fn run(dir: &Path, script: &str) -> String {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env_remove("OMNIDM_SIM_STATE_DIR")
        .env_remove("XDG_STATE_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the walk-through failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn serve(dir: &Path) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").current_dir(dir);
    Server::spawn(cmd)
}

#[test]
fn the_readme_five_minutes_work_twice_and_after_a_restart() {
    let dir = DataDir::new("readme-walkthrough");
    let cwd = dir.0.clone();
    let block = readme_block("## Five minutes with a simulated device");
    assert!(block.contains("omnidm ops submit"), "{block}");

    let mut server = serve(&cwd);
    for (round, restart_before) in [(1, false), (2, false), (3, true)] {
        if restart_before {
            server.stop();
            server = serve(&cwd);
        }
        let said = run(&cwd, &block);
        assert!(
            said.contains("IMEI:359000000000000"),
            "round {round}: {said}"
        );
        // This round's operation (the README's `ops show 1` shows the first one).
        let shown = run(&cwd, &format!("omnidm ops show {round}"));
        assert!(
            shown.contains("state succeeded") && shown.contains("hello"),
            "round {round}: {shown}"
        );
    }
    server.stop();
}
