//! Security of the device side and of the server's files (issue 8 items 2, 4, 8, 13, 17), end
//! to end: the real `omnidm serve` on loopback, devices simulated in-process over real HTTP or
//! sent hand-built SyncML, events read through the WSI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use omnidm_omadm::client::{AsyncReports, DeviceProfile, Trigger};
use omnidm_sim::{Fleet, FleetConfig, HttpClient, SimDevice};
use serde_json::Value;
use std::io::Read as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::wsi::{Api, metric};
use support::{DataDir, Server, ok, omnidm, provision};

const ID_PATTERN: &str = "IMEI:35900000{:07}";

/// The fleet `omnidm sim` would build with its defaults (the accounts `provision` imported),
/// Exec completions deferred to the next session.
fn fleet(server: &Server, devices: usize) -> Fleet {
    let mut config = FleetConfig::new(
        devices,
        DeviceProfile {
            server_id: "omnidm".into(),
            server_uri: server.dm_url(),
            ..DeviceProfile::default()
        },
        ID_PATTERN,
    );
    config.async_reports = AsyncReports::NextSession;
    Fleet::new(config).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn session(rt: &tokio::runtime::Runtime, device: &mut SimDevice) -> String {
    let http = HttpClient::new(Duration::from_secs(10));
    let report = rt.block_on(device.run_session(&http, Trigger::ClientInitiated, Instant::now));
    report.outcome.key()
}

fn show(data: &DataDir, id: u64) -> Value {
    serde_json::from_str(&ok(omnidm(
        data,
        &["ops", "show", &id.to_string(), "--json"],
    )))
    .unwrap()
}

fn submit(data: &DataDir, device: &str, commands: &[&str]) -> u64 {
    let mut args = vec!["ops", "submit", device];
    args.extend_from_slice(commands);
    args.push("--json");
    let op: Value = serde_json::from_str(&ok(omnidm(data, &args))).unwrap();
    op["id"].as_u64().unwrap()
}

/// Every event after `after` (admin view), oldest first.
fn events_after(api: &Api, after: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = after.to_string();
    loop {
        let r = api.admin(
            "GET",
            &format!("/api/v1/events?after={cursor}&limit=1000"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.raw);
        let items = r.body["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
        out.extend(items);
    }
}

fn last_event(api: &Api) -> u64 {
    events_after(api, 0)
        .last()
        .map_or(0, |e| e["id"].as_u64().unwrap())
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// The Exec's (index 0) outcome status, if any.
fn exec_status(data: &DataDir, op: u64) -> Option<u64> {
    show(data, op)["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["index"] == serde_json::json!([0]))
        .and_then(|o| o["status"].as_u64())
}

/// Issue 8 item 2: device B, authenticated with its own credentials, sends Generic Alerts
/// carrying device A's real correlator (sniffed from A's session) and the correlator the old
/// scheme would have produced (`omnidm:<op>:0`). Nothing is recorded against A's operation
/// and no `command.result` goes out; B's session still ends normally. A itself, with its true
/// correlator, completes the Exec.
#[test]
fn a_device_cannot_report_for_another_devices_exec() {
    let data = DataDir::new("sec-forge");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let ids = provision(&data, &server.dm_url(), 2, &[]);
    let op = submit(&data, &ids[0], &["exec:./FUMO/fw1/DownloadAndUpdate"]);
    let rt = runtime();
    let fleet = fleet(&server, 2);

    // A's first session: the Exec is accepted, its completion deferred to the next session.
    let mut a = rt.block_on(fleet.device(0)).unwrap();
    assert_eq!(session(&rt, &mut a), "completed");
    let accepted = exec_status(&data, op);
    assert!(accepted.is_some(), "{}", show(&data, op));
    assert_eq!(a.pending_alerts.len(), 1, "A defers its report");
    let real = a.pending_alerts[0].clone();
    let correlator = real.correlator.clone().unwrap();
    // `omnidm:<op>:<index>:<tag>`: the tag makes it unguessable.
    let parts: Vec<&str> = correlator.split(':').collect();
    assert_eq!(parts.len(), 4, "{correlator}");
    assert_eq!(parts[3].len(), 32, "128-bit tag: {correlator}");

    // B replays A's correlator with a forged result, and tries the old guessable form.
    let mut forged = real.clone();
    forged.data = "500".into();
    let mut guessed = real.clone();
    guessed.data = "501".into();
    guessed.correlator = Some(format!("omnidm:{op}:0"));
    let mut b = rt.block_on(fleet.device(1)).unwrap();
    b.pending_alerts = vec![forged, guessed];
    let mark = last_event(&api);
    assert_eq!(session(&rt, &mut b), "completed", "B is answered normally");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        exec_status(&data, op),
        accepted,
        "A's result is unchanged: {}",
        show(&data, op)
    );
    let after_b = events_after(&api, mark);
    assert!(
        of_type(&after_b, "command.result").is_empty(),
        "no command.result from B's forgery: {after_b:#?}"
    );
    assert!(
        !after_b
            .iter()
            .any(|e| e["device_operation_id"].as_u64() == Some(op)),
        "nothing about A's operation: {after_b:#?}"
    );

    // A reports with its own correlator: accepted.
    let mark = last_event(&api);
    assert_eq!(session(&rt, &mut a), "completed");
    std::thread::sleep(Duration::from_millis(300));
    // (The simulated FUMO reports 411: no package URL was set.)
    let reported: u64 = real.data.parse().unwrap();
    assert_eq!(
        exec_status(&data, op),
        Some(reported),
        "{}",
        show(&data, op)
    );
    let after_a = events_after(&api, mark);
    let results = of_type(&after_a, "command.result");
    assert_eq!(results.len(), 1, "{after_a:#?}");
    assert_eq!(results[0]["device_operation_id"].as_u64(), Some(op));
    server.stop();
}

/// Package 1 with an MD5 `Cred` that cannot be right.
fn pkg1(device: &str, target: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr>\
         <VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID>\
         <Target><LocURI>{target}</LocURI></Target><Source><LocURI>{device}</LocURI></Source>\
         <Cred><Meta><Format xmlns='syncml:metinf'>b64</Format>\
         <Type xmlns='syncml:metinf'>syncml:auth-md5</Type></Meta>\
         <Data>AAAAAAAAAAAAAAAAAAAAAA==</Data></Cred>\
         <Meta><MaxMsgSize xmlns='syncml:metinf'>16384</MaxMsgSize></Meta></SyncHdr>\
         <SyncBody><Alert><CmdID>1</CmdID><Data>1201</Data></Alert><Final/></SyncBody></SyncML>"
    )
}

/// A raw POST of a SyncML XML message; (status, content type, body).
fn post_dm(addr: SocketAddr, body: &str) -> (u16, String, String) {
    let (status, head, body) = support::post(
        addr,
        "/dm",
        "application/vnd.syncml.dm+xml",
        body.as_bytes(),
    );
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Blanks what differs between any two answers (nonces, session tokens, the device id).
fn normalized(body: &str, device: &str) -> String {
    let mut out = body.replace(device, "DEVICE");
    for (open, close) in [
        ("<NextNonce", "</NextNonce>"),
        ("?s=", "<"),
        ("<SessionID>", "</SessionID>"),
        // Our credentials to the device: a digest under its server key (random for an
        // unknown id), meaningless without the key.
        ("<Cred>", "</Cred>"),
    ] {
        let mut rest = out.as_str();
        let mut acc = String::new();
        while let Some(i) = rest.find(open) {
            acc.push_str(&rest[..i + open.len()]);
            rest = &rest[i + open.len()..];
            let j = rest.find(close).unwrap_or(rest.len());
            acc.push('X');
            rest = &rest[j..];
        }
        acc.push_str(rest);
        out = acc;
    }
    out
}

/// Issue 8 item 13 (device endpoint): an unknown device id gets the same answer as a known
/// device with wrong credentials — HTTP 200, a SyncML SyncHdr status 401 with an MD5
/// challenge, byte for byte the same once nonces, tokens and the id are blanked — and the
/// simulator sees the same failure for both.
#[test]
fn an_unknown_device_is_answered_like_a_known_one_with_a_wrong_password() {
    let data = DataDir::new("sec-unknown");
    let server = Server::start(&data);
    let ids = provision(&data, &server.dm_url(), 1, &[]);
    let known = &ids[0];
    let unknown = "IMEI:359999999999999";

    let (ks, kct, kbody) = post_dm(server.dm, &pkg1(known, &server.dm_url()));
    let (us, uct, ubody) = post_dm(server.dm, &pkg1(unknown, &server.dm_url()));
    assert_eq!((ks, kct.as_str()), (200, "application/vnd.syncml.dm+xml"));
    assert!(kbody.contains("<Data>401</Data>"), "{kbody}");
    assert!(kbody.contains("syncml:auth-md5"), "{kbody}");
    assert_eq!((us, &uct), (ks, &kct), "same status and type: {ubody}");
    assert_eq!(
        normalized(&ubody, unknown),
        normalized(&kbody, known),
        "same answer"
    );

    // Timing: the same work either way (figures only, never asserted).
    let median = |id: &str| {
        let mut t: Vec<Duration> = (0..20)
            .map(|_| {
                let start = Instant::now();
                post_dm(server.dm, &pkg1(id, &server.dm_url()));
                start.elapsed()
            })
            .collect();
        t.sort();
        t[10]
    };
    eprintln!(
        "median answer: known device, wrong credentials {:?}; unknown device {:?}",
        median(known),
        median(unknown)
    );

    // Through a whole client session (retries after the challenge included).
    let url = server.dm_url();
    let sim = |args: &[&str]| {
        let mut all = vec!["--server", &url, "--devices", "1", "--json"];
        all.extend_from_slice(args);
        let out = support::sim(&all);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["failures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["reason"].to_string(), f["count"].as_u64()))
            .collect::<Vec<_>>()
    };
    let wrong = sim(&["--secret-seed", "wrong"]);
    let missing = sim(&["--id-pattern", "IMEI:35999999{:07}"]);
    assert_eq!(wrong, missing, "the same failure");
    assert_eq!(
        wrong,
        vec![("\"client_auth_failed_401\"".to_owned(), Some(1))],
        "{wrong:?}"
    );
    server.stop();
}

/// Issue 8 item 13: open enrolment (lab mode) still registers an unknown device on first
/// contact.
#[test]
fn open_enrolment_still_registers_unknown_devices() {
    let data = DataDir::new("sec-enrol");
    let config = data.0.join("omnidm.toml");
    std::fs::write(&config, "[dm]\nopen_enrolment_secret = \"lab-secret\"\n").unwrap();
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let rt = runtime();
    let mut device = SimDevice::new(DeviceProfile {
        dev_id: "IMEI:351111111111111".into(),
        client_auth_type: "DIGEST".into(),
        client_name: "IMEI:351111111111111".into(),
        client_secret: "lab-secret".into(),
        server_secret: "lab-secret".into(),
        server_id: "omnidm".into(),
        server_uri: server.dm_url(),
        ..DeviceProfile::default()
    });
    assert_eq!(session(&rt, &mut device), "completed");
    let list = ok(omnidm(&data, &["devices", "list"]));
    assert!(list.contains("IMEI:351111111111111"), "{list}");
    server.stop();
}

/// Issue 8 item 17: 200 messages with wrong credentials for one known device (each a new
/// session, as an attacker sends them) produce at most a few `auth.failure` events whose
/// counts add up to 200, and no `session.started`/`session.ended` at all.
#[test]
fn wrong_credentials_cannot_flood_the_event_log() {
    let data = DataDir::new("sec-flood");
    let config = data.0.join("omnidm.toml");
    std::fs::write(
        &config,
        "[dm]\nsession_timeout_secs = 1\nauth_failure_window_secs = 3\n",
    )
    .unwrap();
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let api = Api::new(&server, &data);
    let ids = provision(&data, &server.dm_url(), 1, &[]);
    let mark = last_event(&api);
    let started = Instant::now();
    for _ in 0..200 {
        let (status, _, body) = post_dm(server.dm, &pkg1(&ids[0], &server.dm_url()));
        assert_eq!(status, 200);
        assert!(body.contains("<Data>401</Data>"));
    }
    let sending = started.elapsed();
    // Let the sessions time out (a single unanswered challenge counts when its session ends,
    // decision 91) and the window pass, so every count is flushed: 1 s timeout, the sweep,
    // then the 3 s window; polled, with a deadline well past that.
    let deadline = Instant::now() + Duration::from_secs(15);
    let counted = |events: &[Value]| -> u64 {
        of_type(events, "auth.failure")
            .iter()
            .map(|e| e["data"]["count"].as_u64().unwrap())
            .sum()
    };
    let after = loop {
        let after = events_after(&api, mark);
        if counted(&after) >= 200 || Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let failures = of_type(&after, "auth.failure");
    let total = counted(&after);
    eprintln!(
        "200 bad messages in {sending:?}: {} auth.failure events, counts {:?}; {} events in all",
        failures.len(),
        failures
            .iter()
            .map(|e| e["data"]["count"].clone())
            .collect::<Vec<_>>(),
        after.len()
    );
    assert_eq!(total, 200, "every failure counted: {failures:#?}");
    let windows = sending.as_secs() / 3 + 2;
    assert!(
        failures.len() as u64 <= windows,
        "at most one event per window: {}",
        failures.len()
    );
    assert!(
        failures.iter().all(|e| e["device_id"] == ids[0].as_str()),
        "{failures:#?}"
    );
    assert!(
        of_type(&after, "session.started").is_empty()
            && of_type(&after, "session.ended").is_empty(),
        "no session events for attempts that never authenticated: {after:#?}"
    );
    assert_eq!(after.len(), failures.len(), "nothing else: {after:#?}");

    // A real session still produces its session events.
    let rt = runtime();
    let mut device = rt.block_on(fleet(&server, 1).device(0)).unwrap();
    let mark = last_event(&api);
    assert_eq!(session(&rt, &mut device), "completed");
    std::thread::sleep(Duration::from_millis(300));
    let after = events_after(&api, mark);
    assert_eq!(of_type(&after, "session.ended").len(), 1, "{after:#?}");
    server.stop();
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Issue 8 item 4: a data directory the server creates is 0700, and the store files and
/// admin.key inside it are 0600.
#[test]
fn a_fresh_data_dir_and_its_files_are_private() {
    let parent = DataDir::new("sec-modes");
    let data = DataDir(parent.0.join("data"));
    let server = Server::start(&data);
    // One session so that the WAL and shared-memory files exist.
    provision(&data, &server.dm_url(), 1, &[]);
    let rt = runtime();
    let mut device = rt.block_on(fleet(&server, 1).device(0)).unwrap();
    assert_eq!(session(&rt, &mut device), "completed");
    assert_eq!(mode(&data.0), 0o700, "data dir");
    for name in [
        "omnidm.sqlite3",
        "omnidm.sqlite3-wal",
        "omnidm.sqlite3-shm",
        "admin.key",
    ] {
        let file = data.0.join(name);
        assert!(file.exists(), "{name}");
        assert_eq!(mode(&file), 0o600, "{name}");
    }
    server.stop();
}

/// `omnidm serve` on `data`, expected to refuse to start; its stderr. A server still running
/// after 10 s has started: it is killed and the test fails.
fn refused(data: &DataDir) -> String {
    let mut child = support::serve_command(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started; it must refuse");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "the server must not start");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// Issue 8 item 4: a data directory other users can enter is refused with the fix in the
/// message, and nothing is created in it; after `chmod 700` the server starts and an old
/// world-readable store file is made private.
#[test]
fn an_open_data_dir_is_refused_until_it_is_private() {
    let data = DataDir::new("sec-open");
    std::fs::set_permissions(&data.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = refused(&data);
    assert!(err.contains("chmod 700"), "{err}");
    assert!(err.contains("0755"), "{err}");
    assert_eq!(
        std::fs::read_dir(&data.0).unwrap().count(),
        0,
        "nothing written"
    );

    // An earlier version left the store 0644: fixed on the next start.
    std::fs::set_permissions(&data.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = Server::start(&data);
    // (The signal handler is installed just after "listening": give it a moment.)
    std::thread::sleep(Duration::from_millis(500));
    server.stop();
    let db = data.0.join("omnidm.sqlite3");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start(&data);
    assert_eq!(mode(&db), 0o600);
    std::thread::sleep(Duration::from_millis(500));
    server.stop();
}

/// Issue 8 item 8: an `admin.key` planted before the first start (a file someone else can
/// read, or a symbolic link to one) stops the first start with a clear message; the planted
/// file is left untouched and receives no key.
#[test]
fn a_planted_admin_key_stops_the_first_start() {
    let data = DataDir::new("sec-adminkey");
    let key = data.0.join("admin.key");
    std::fs::write(&key, "planted\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = refused(&data);
    assert!(err.contains("admin.key already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "planted\n");

    // A symbolic link to a file elsewhere: not followed.
    let outside = DataDir::new("sec-adminkey-target");
    let target = outside.0.join("stolen");
    std::fs::write(&target, "").unwrap();
    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink(&target, &key).unwrap();
    let err = refused(&data);
    assert!(err.contains("admin.key already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "",
        "no key written"
    );

    // Removed: the first start completes and writes the key privately.
    std::fs::remove_file(&key).unwrap();
    let server = Server::start(&data);
    assert_eq!(mode(&key), 0o600);
    assert!(std::fs::read_to_string(&key).unwrap().starts_with("omk_"));
    std::thread::sleep(Duration::from_millis(500));
    server.stop();
}

/// Issue 8 item 6, its kind on the device endpoint: every first message holds a session in
/// memory until it authenticates or times out, so a flood of first messages (unknown ids get
/// a decoy session, wrong passwords a real one) must not grow memory without bound. Beyond
/// `[dm] max_unauthenticated_sessions` the oldest unauthenticated session is dropped, and
/// real devices still get through.
#[test]
fn a_flood_of_first_messages_keeps_a_bounded_number_of_sessions() {
    let data = DataDir::new("sec-dm-flood");
    let config = data.0.join("omnidm.toml");
    std::fs::write(&config, "[dm]\nmax_unauthenticated_sessions = 20\n").unwrap();
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let api = Api::new(&server, &data);
    let ids = provision(&data, &server.dm_url(), 1, &[]);
    for i in 0..300 {
        let (status, _, body) = post_dm(
            server.dm,
            &pkg1(&format!("IMEI:9{i:014}"), &server.dm_url()),
        );
        assert_eq!(status, 200);
        assert!(body.contains("<Data>401</Data>"), "{body}");
    }
    assert!(
        metric(api.addr, "omnidm_dm_unauthenticated_sessions_dropped_total") >= 280.0,
        "the oldest unauthenticated sessions were dropped"
    );
    // The gauge is refreshed by the once-a-second sweep.
    std::thread::sleep(Duration::from_millis(2500));
    let active = metric(api.addr, "omnidm_dm_sessions_active");
    assert!(active <= 21.0, "{active} sessions held");
    // A real device is unaffected.
    let out = support::sim(&["--server", &server.dm_url(), "--devices", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = api.admin("GET", &format!("/api/v1/devices/{}", ids[0]), None);
    assert_eq!(r.body["session_count"], 1, "{}", r.raw);
    server.stop();
}
