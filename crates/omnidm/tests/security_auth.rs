//! Security of the WSI's keys and authentication (issue 8, items 3, 4 (key text), 5, 6, 7, 11,
//! 12, 14 and 20 (headers)): the real `omnidm serve`, real HTTP, loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::wsi::{Api, call, call_h, metric};
use support::{DataDir, Server};

/// The key id of `omk_<id>_<secret>`.
fn key_id(key: &str) -> String {
    key.strip_prefix("omk_")
        .unwrap()
        .split_once('_')
        .unwrap()
        .0
        .to_owned()
}

/// Opens `GET /events/stream` with `key` (the server closes the connection when the stream
/// ends: `Connection: close`).
fn open_stream(addr: SocketAddr, key: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        s,
        "GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    // The head arrives at once.
    let mut head = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => head.extend_from_slice(&buf[..k]),
            Err(_) => {}
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

/// Waits until the server ends the stream; returns how long that took (`None`: still open at
/// `limit`).
fn stream_end(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Issue 8 item 3: an open event stream ends when its key is revoked, when its application
/// is disabled, and when its key expires — not only new requests are refused.
#[test]
fn an_event_stream_ends_when_its_key_is_revoked_disabled_or_expired() {
    let data = DataDir::new("sec-sse");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);

    // Revoked through this node: at once.
    let care = api.app("care");
    let mut stream = open_stream(api.addr, &care);
    assert_eq!(stream_end(&mut stream, Duration::from_secs(1)), None);
    let r = api.admin(
        "DELETE",
        &format!("/api/v1/apps/care/keys/{}", key_id(&care)),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    let took = stream_end(&mut stream, Duration::from_secs(10));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(3)),
        "revoked: {took:?}"
    );
    println!("stream ended {took:?} after its key was revoked");

    // The application disabled: at once.
    let other = api.app("other");
    let mut stream = open_stream(api.addr, &other);
    assert_eq!(stream_end(&mut stream, Duration::from_secs(1)), None);
    let r = api.admin(
        "PATCH",
        "/api/v1/apps/other",
        Some(json!({"disabled": true})),
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    let took = stream_end(&mut stream, Duration::from_secs(10));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(3)),
        "disabled: {took:?}"
    );
    println!("stream ended {took:?} after its application was disabled");

    // A key that expires while the stream is open: within the re-check interval (5 s).
    let r = api.admin(
        "POST",
        "/api/v1/apps",
        Some(json!({"id": "brief", "key_expires_in": 3})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    let brief = r.body["key"]["key"].as_str().unwrap().to_owned();
    let opened = Instant::now();
    let mut stream = open_stream(api.addr, &brief);
    let took = stream_end(&mut stream, Duration::from_secs(20));
    let total = opened.elapsed();
    assert!(took.is_some(), "the stream outlived its key");
    assert!(total < Duration::from_secs(3 + 5 + 2), "expired: {total:?}");
    println!("stream of a 3 s key ended {total:?} after it was opened");

    // Revoked through another node (a second server on the same database): within the
    // re-check interval.
    let node2 = Server::start_env(&data, &[], &[("OMNIDM_NODE_ID", "node2")]);
    let far = api.app("far");
    let mut stream = open_stream(api.addr, &far);
    let r = call(
        node2.api,
        "DELETE",
        &format!("/api/v1/apps/far/keys/{}", key_id(&far)),
        Some(&api.admin),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    let took = stream_end(&mut stream, Duration::from_secs(15));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(5 + 2)),
        "revoked elsewhere: {took:?}"
    );
    println!("stream ended {took:?} after its key was revoked through another node");
    node2.stop();
    server.stop();
}

/// Issue 8 items 5 and 4 (key text at rest): replaying `POST /apps` or `POST /apps/{id}/keys`
/// with the same `Idempotency-Key` never shows the key again, and the key text is nowhere in
/// the database files.
#[test]
fn a_replayed_key_creation_never_shows_the_key_again() {
    let data = DataDir::new("sec-idem");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let body = json!({"id": "care", "description": "customer care"});
    let first = call_h(
        api.addr,
        "POST",
        "/api/v1/apps",
        Some(&api.admin),
        &[("Idempotency-Key", "create-care")],
        Some(&body),
    );
    assert_eq!(first.status, 201, "{}", first.raw);
    let app_key = first.body["key"]["key"].as_str().unwrap().to_owned();
    let again = call_h(
        api.addr,
        "POST",
        "/api/v1/apps",
        Some(&api.admin),
        &[("Idempotency-Key", "create-care")],
        Some(&body),
    );
    assert_eq!(again.status, 201, "{}", again.raw);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert!(!again.raw.contains("omk_"), "{}", again.raw);
    assert!(again.body["key"]["key"].is_null(), "{}", again.raw);
    assert_eq!(again.body["key"]["id"], first.body["key"]["id"]);
    assert!(
        again.body["key"]["key_withheld"]
            .as_str()
            .unwrap()
            .contains("shown once"),
        "{}",
        again.raw
    );

    // The same for a second key, created by the application itself.
    let first = call_h(
        api.addr,
        "POST",
        "/api/v1/apps/care/keys",
        Some(&app_key),
        &[("Idempotency-Key", "rotate-1")],
        Some(&json!({})),
    );
    assert_eq!(first.status, 201, "{}", first.raw);
    let second_key = first.body["key"].as_str().unwrap().to_owned();
    let again = call_h(
        api.addr,
        "POST",
        "/api/v1/apps/care/keys",
        Some(&app_key),
        &[("Idempotency-Key", "rotate-1")],
        Some(&json!({})),
    );
    assert_eq!(again.status, 201, "{}", again.raw);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert!(!again.raw.contains("omk_"), "{}", again.raw);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers["location"], first.headers["location"]);
    // Both keys work.
    for k in [&app_key, &second_key] {
        assert_eq!(api.as_(k, "GET", "/api/v1/me", None).status, 200);
    }
    server.stop();

    // No key text at rest (the database and its write-ahead log).
    for entry in std::fs::read_dir(&data.0).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "admin.key" {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for k in [&app_key, &second_key] {
            // `omk_<id>_<secret>`: ids carry no `_`, secrets (base64url) may.
            let secret = k
                .strip_prefix("omk_")
                .and_then(|rest| rest.split_once('_'))
                .unwrap()
                .1;
            assert!(secret.len() >= 40, "{k}");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a key secret",
                path.display()
            );
        }
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Issue 8 item 6: 400 requests with an existing key id and wrong secrets, 64 at a time, leave
/// the server's memory bounded, and valid requests are answered promptly during the burst.
#[test]
fn a_burst_of_wrong_secrets_leaves_memory_bounded_and_valid_keys_served() {
    let data = DataDir::new("sec-burst");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let victim = api.app("victim");
    let good = api.app("good");
    // Keys in use before the burst (verified on this node).
    for key in [&good, &victim, &api.admin] {
        assert_eq!(api.as_(key, "GET", "/api/v1/me", None).status, 200);
    }
    let pid = server.child.id();
    let before = vm_rss_kib(pid);

    let id = key_id(&victim);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(std::sync::Mutex::new(HashMap::<u16, usize>::new()));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let started = Instant::now();
    let workers: Vec<_> = (0..64)
        .map(|w| {
            let (next, done, statuses, id, addr) = (
                next.clone(),
                done.clone(),
                statuses.clone(),
                id.clone(),
                api.addr,
            );
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= 400 {
                        break;
                    }
                    let key = format!("omk_{id}_wrong{w}x{i}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
                    let r = call(addr, "GET", "/api/v1/me", Some(&key), None);
                    *statuses.lock().unwrap().entry(r.status).or_default() += 1;
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Valid requests during the burst, and the peak memory.
    let mut slowest = Duration::ZERO;
    let mut valid = 0;
    while done.load(Ordering::SeqCst) < 400 {
        let t = Instant::now();
        let r = api.as_(&good, "GET", "/api/v1/me", None);
        assert_eq!(r.status, 200, "{}", r.raw);
        slowest = slowest.max(t.elapsed());
        valid += 1;
        peak.fetch_max(vm_rss_kib(pid), Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in workers {
        w.join().unwrap();
    }
    let burst = started.elapsed();
    let after = vm_rss_kib(pid);
    let peak = peak.load(Ordering::SeqCst).max(after);
    let statuses = statuses.lock().unwrap().clone();
    println!(
        "burst of 400 wrong secrets (64 at a time) in {burst:?}: statuses {statuses:?}; \
         VmRSS before {before} KiB, peak {peak} KiB, after {after} KiB; \
         {valid} valid requests during the burst, slowest {slowest:?}"
    );
    assert!(
        statuses.keys().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        peak.saturating_sub(before) < 150 * 1024,
        "memory grew from {before} KiB to {peak} KiB"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a valid request took {slowest:?}"
    );
    // The victim's own key still works: the burst does not lock out a key in use.
    let r = api.as_(&victim, "GET", "/api/v1/me", None);
    assert_eq!(r.status, 200, "{}", r.raw);
    server.stop();
}

/// Issue 8 item 7: an unknown key id costs the same argon2 verification as a known one with a
/// wrong secret (no timing oracle on key ids).
#[test]
fn unknown_and_known_key_ids_cost_the_same_verification() {
    let data = DataDir::new("sec-oracle");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let care = api.app("care");
    let name = "omnidm_api_key_verifications_total";
    let mut timings = Vec::new();
    for (label, key) in [
        (
            "known id, wrong secret",
            format!(
                "omk_{}_wrongsecretAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                key_id(&care)
            ),
        ),
        (
            "unknown id",
            "omk_nosuchkeyid_wrongsecretAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
    ] {
        let before = metric(api.addr, name);
        let t = Instant::now();
        let r = call(api.addr, "GET", "/api/v1/me", Some(&key), None);
        timings.push((label, t.elapsed()));
        assert_eq!(r.status, 401, "{}", r.raw);
        let after = metric(api.addr, name);
        assert_eq!(after - before, 1.0, "{label}: one argon2 verification");
    }
    println!("401 timings (debug build): {timings:?}");
    server.stop();
}

/// Issue 8 item 11: a key an application creates for itself never outlives the key that
/// created it; the operator's `max_key_lifetime` caps every application key; an application
/// has at most 20 active keys.
#[test]
fn keys_cannot_outlive_their_creator_or_the_policy_and_are_capped() {
    let data = DataDir::new("sec-keys");
    let server = Server::start_env(&data, &[], &[("OMNIDM_API_MAX_KEY_LIFETIME_SECS", "86400")]);
    let api = Api::new(&server, &data);
    let parse =
        |s: &Value| -> i64 { time_secs(s.as_str().unwrap_or_else(|| panic!("an expiry: {s}"))) };
    let now =
        time_secs(&call(api.addr, "GET", "/api/v1/me", Some(&api.admin), None).headers["date"]);

    // The operator's policy: an admin-made key without expiry gets one within a day.
    let r = api.admin("POST", "/api/v1/apps", Some(json!({"id": "care"})));
    assert_eq!(r.status, 201, "{}", r.raw);
    let exp = parse(&r.body["key"]["expires_at"]);
    assert!(
        (now + 86_400 - 120..=now + 86_400 + 120).contains(&exp),
        "{exp} vs {now}"
    );
    let r = api.admin(
        "POST",
        "/api/v1/apps/care/keys",
        Some(json!({"expires_in": 864_000})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    assert!(
        parse(&r.body["expires_at"]) <= now + 86_400 + 120,
        "{}",
        r.raw
    );

    // A key expiring in an hour cannot mint a longer-lived one, with or without expires_in.
    let r = api.admin(
        "POST",
        "/api/v1/apps/care/keys",
        Some(json!({"expires_in": 3600})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    let short = r.body["key"].as_str().unwrap().to_owned();
    let short_exp = parse(&r.body["expires_at"]);
    for body in [json!({}), json!({"expires_in": 7200})] {
        let r = api.as_(&short, "POST", "/api/v1/apps/care/keys", Some(body));
        assert_eq!(r.status, 201, "{}", r.raw);
        assert!(parse(&r.body["expires_at"]) <= short_exp, "{}", r.raw);
    }
    // Shorter is fine.
    let r = api.as_(
        &short,
        "POST",
        "/api/v1/apps/care/keys",
        Some(json!({"expires_in": 60})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    assert!(parse(&r.body["expires_at"]) <= now + 60 + 120, "{}", r.raw);

    // At most 20 active keys: 6 exist now.
    let active = |api: &Api| {
        api.admin("GET", "/api/v1/apps/care/keys", None)
            .body
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(active(&api), 6);
    let mut last = String::new();
    for _ in 6..20 {
        let r = api.as_(&short, "POST", "/api/v1/apps/care/keys", Some(json!({})));
        assert_eq!(r.status, 201, "{}", r.raw);
        last = r.body["id"].as_str().unwrap().to_owned();
    }
    let r = api.as_(&short, "POST", "/api/v1/apps/care/keys", Some(json!({})));
    assert_eq!(r.status, 409, "{}", r.raw);
    assert!(
        r.body["detail"].as_str().unwrap().contains("20"),
        "{}",
        r.raw
    );
    // Revoking one makes room.
    let r = api.as_(
        &short,
        "DELETE",
        &format!("/api/v1/apps/care/keys/{last}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = api.as_(&short, "POST", "/api/v1/apps/care/keys", Some(json!({})));
    assert_eq!(r.status, 201, "{}", r.raw);
    server.stop();
}

/// Seconds since the epoch of an RFC 3339 time or an HTTP date.
fn time_secs(s: &str) -> i64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", s, "+%s"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Issue 8 item 12: a deleted application's id is never given to a new application, so a
/// re-created id cannot inherit the old one's operations, results or charging.
#[test]
fn a_deleted_application_id_is_never_reused() {
    let data = DataDir::new("sec-reuse");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let r = api.admin("POST", "/api/v1/devices", Some(json!({"id": "IMEI:1"})));
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = api.admin(
        "POST",
        "/api/v1/groups",
        Some(json!({"id": "g", "kind": "static", "members": ["IMEI:1"]})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    let care = api.app("care");
    let r = api.admin(
        "POST",
        "/api/v1/grants",
        Some(json!({"app_id": "care", "permissions": ["get"], "subtrees": ["./DevInfo/**"], "group": "g"})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = api.as_(
        &care,
        "POST",
        "/api/v1/operations",
        Some(json!({"target": {"device": "IMEI:1"}, "commands": [{"type": "get", "path": "./DevInfo/Mod"}]})),
    );
    assert_eq!(r.status, 202, "{}", r.raw);
    assert_eq!(api.admin("DELETE", "/api/v1/apps/care", None).status, 204);

    let r = api.admin("POST", "/api/v1/apps", Some(json!({"id": "care"})));
    assert_eq!(r.status, 409, "{}", r.raw);
    assert!(
        r.body["detail"].as_str().unwrap().contains("never reused"),
        "{}",
        r.raw
    );
    // Other ids are fine, and the old records keep the old identity.
    api.app("care2");
    let ops = api.admin("GET", "/api/v1/operations", None);
    assert_eq!(ops.body["items"][0]["application"], "care", "{}", ops.raw);
    server.stop();
}

/// Issue 8 item 14: a daily quota survives a restart of the server.
#[test]
fn a_daily_quota_survives_a_restart() {
    let data = DataDir::new("sec-quota");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let r = api.admin(
        "POST",
        "/api/v1/apps",
        Some(json!({"id": "metered", "daily_quota": 3})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    let key = r.body["key"]["key"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(api.as_(&key, "GET", "/api/v1/me", None).status, 200);
    }
    let r = api.as_(&key, "GET", "/api/v1/me", None);
    assert_eq!(r.status, 429, "{}", r.raw);
    server.stop();

    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let r = api.as_(&key, "GET", "/api/v1/me", None);
    assert_eq!(r.status, 429, "the quota is still used up: {}", r.raw);
    assert!(r.headers.contains_key("retry-after"));
    server.stop();
}

/// Issue 8 item 20 (headers): the docs page cannot be framed or run foreign scripts, nothing
/// is content-sniffed, and responses carrying secrets are never cached.
#[test]
fn security_headers_on_the_docs_page_and_on_secrets() {
    let data = DataDir::new("sec-headers");
    let server = Server::start_with(&data, &["--allow-private-webhooks"]);
    let api = Api::new(&server, &data);
    for path in ["/api/v1/docs/", "/api/v1/docs/swagger-initializer.js"] {
        let r = call(api.addr, "GET", path, None, None);
        assert_eq!(r.status, 200, "{path}");
        let csp = &r.headers["content-security-policy"];
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "connect-src 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert_eq!(r.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
    }
    // The page loads no inline script (the policy allows none).
    let page = call(api.addr, "GET", "/api/v1/docs/", None, None).raw;
    assert!(!page.contains("<script>"), "{page}");

    let r = api.admin("POST", "/api/v1/apps", Some(json!({"id": "care"})));
    assert_eq!(r.status, 201);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    let care = r.body["key"]["key"].as_str().unwrap().to_owned();
    let r = api.as_(&care, "POST", "/api/v1/apps/care/keys", Some(json!({})));
    assert_eq!(r.status, 201);
    assert_eq!(r.headers["cache-control"], "no-store");
    let r = api.as_(
        &care,
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.headers["cache-control"], "no-store");
    // Every API answer, errors included.
    for (key, path) in [(Some(care.as_str()), "/api/v1/me"), (None, "/api/v1/me")] {
        let r = call(api.addr, "GET", path, key, None);
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers["cache-control"], "no-store", "{path}");
    }
    server.stop();
}

/// Issue 8 item 5, the rest of its kind: a webhook's signing secret is shown once too; a
/// replay of its creation with the same `Idempotency-Key` shows the subscription without it.
#[test]
fn a_replayed_webhook_creation_never_shows_the_secret_again() {
    let data = DataDir::new("sec-idem-hook");
    let server = Server::start_with(&data, &["--allow-private-webhooks"]);
    let api = Api::new(&server, &data);
    let body = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["device.seen"]});
    let create = || {
        call_h(
            api.addr,
            "POST",
            "/api/v1/webhooks",
            Some(&api.admin),
            &[("Idempotency-Key", "hook-1")],
            Some(&body),
        )
    };
    let first = create();
    assert_eq!(first.status, 201, "{}", first.raw);
    let secret = first.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{}", first.raw);
    let again = create();
    assert_eq!(again.status, 201, "{}", again.raw);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["id"], first.body["id"]);
    assert!(!again.raw.contains(&secret), "{}", again.raw);
    assert!(
        again.body["secret_withheld"]
            .as_str()
            .unwrap()
            .contains("shown once"),
        "{}",
        again.raw
    );
    server.stop();
}

/// A lost admin key is recovered on the server host (`omnidm admin reset-key`, issue 10): the
/// new key works over HTTP at once, every old admin key stops working, the new file is 0600,
/// and an existing admin.key is never overwritten.
#[test]
fn a_lost_admin_key_is_reset_on_the_server_host() {
    use std::os::unix::fs::PermissionsExt as _;
    let data = DataDir::new("admin-reset");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let old = api.admin.clone();
    assert_eq!(api.admin("GET", "/api/v1/apps", None).status, 200);

    // The file is still there: refused, nothing changes.
    let refused = support::omnidm(&data, &["admin", "reset-key"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("admin.key exists"));
    assert_eq!(api.admin("GET", "/api/v1/apps", None).status, 200);

    // Lost: reset while the server runs.
    let file = data.0.join("admin.key");
    std::fs::remove_file(&file).unwrap();
    let said = support::ok(support::omnidm(&data, &["admin", "reset-key"]));
    assert!(said.contains("revoked 1 old key"), "{said}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let new = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_ne!(new, old);
    assert_eq!(api.as_(&new, "GET", "/api/v1/apps", None).status, 200);
    // A running server re-reads a key it verified within its cache TTL (30 s; revocations by
    // another process or node are seen then).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let status = api.as_(&old, "GET", "/api/v1/apps", None).status;
        if status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old key still answers {status}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    server.stop();
}
