//! Issue 8, what an application can learn about others through the WSI, and where webhook
//! deliveries may go: existence oracles (item 13), the event cursor (item 9), other
//! applications' notifications (item 10), the webhook cap (item 16), environment proxies
//! (item 15) and IPv6 disguises of internal addresses (item 18). The real `omnidm serve`
//! over real HTTP, as two applications; everything on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::wsi::{Api, Inbox, receiver};
use support::{DataDir, Server};

/// A device with a DM account, created by the admin.
fn device(api: &Api, id: &str) {
    let r = api.admin(
        "POST",
        "/api/v1/devices",
        Some(json!({"id": id, "dm": {"auth": "md5", "client_secret": "c", "server_secret": "s"}})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
}

fn group(api: &Api, id: &str, members: &[&str]) {
    let r = api.admin(
        "POST",
        "/api/v1/groups",
        Some(json!({"id": id, "kind": "static", "members": members})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
}

fn grant(api: &Api, app: &str, group: &str) {
    let r = api.admin(
        "POST",
        "/api/v1/grants",
        Some(json!({"app_id": app, "permissions": ["get"], "subtrees": ["./DevInfo/**"], "group": group})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
}

/// The newest event id (as the admin sees the log).
fn head(api: &Api) -> u64 {
    let mut after = 0u64;
    loop {
        let r = api.admin(
            "GET",
            &format!("/api/v1/events?after={after}&limit=1000"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.raw);
        let items = r.body["items"].as_array().unwrap();
        match items.last() {
            Some(last) => after = last["id"].as_u64().unwrap(),
            None => return after,
        }
    }
}

/// A push gateway on loopback: counts requests (package 0 is binary), answers 200.
fn gateway() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, count)
}

/// Polls `f` until it returns `Some`, for up to `secs` seconds.
fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Issue 8 item 13: for every resource an application can name — devices (read, tree,
/// operations, lists of targets), groups (read, members, operation and webhook targets),
/// applications and their keys, operations, webhooks — a resource it may not see gets the
/// very answer of one that does not exist: 404 with the same body, the id swapped. No 403
/// names a member of a group the caller cannot see.
#[test]
fn invisible_and_missing_resources_get_the_same_404() {
    let data = DataDir::new("sec-oracle");
    let server = Server::start_with(&data, &["--allow-private-webhooks"]);
    let api = Api::new(&server, &data);
    device(&api, "IMEI:1");
    device(&api, "IMEI:2");
    group(&api, "mine", &["IMEI:1"]);
    group(&api, "theirs", &["IMEI:2"]);
    let care = api.app("care");
    let other = api.app("other");
    grant(&api, "care", "mine");
    grant(&api, "other", "theirs");
    // Things of the other application: an operation and a webhook.
    let get = json!({"commands": [{"type": "get", "path": "./DevInfo/Mod"}]});
    let r = api.as_(
        &other,
        "POST",
        "/api/v1/devices/IMEI:2/operations",
        Some(get.clone()),
    );
    assert_eq!(r.status, 202, "{}", r.raw);
    let their_op = r.body["id"].as_u64().unwrap();
    let (hook, _inbox) = receiver();
    let r = api.as_(
        &other,
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": format!("http://{hook}/h")})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    let their_hook = r.body["id"].as_u64().unwrap();

    let target = |t: Value| {
        Some(json!({"target": t, "commands": [{"type": "get", "path": "./DevInfo/Mod"}]}))
    };
    // (method, path for the invisible resource, path for a missing one, body, their names)
    type Pair = (&'static str, String, String, Option<Value>, String, String);
    let mut pairs: Vec<Pair> = Vec::new();
    let mut pair =
        |method: &'static str, path: &str, body: Option<Value>, name: &str, missing: &str| {
            pairs.push((
                method,
                path.replace("{}", name),
                path.replace("{}", missing),
                body,
                name.to_owned(),
                missing.to_owned(),
            ));
        };
    for (path, body) in [
        ("/api/v1/devices/{}", None),
        ("/api/v1/devices/{}/tree", None),
        // A path only some protocols accept must not tell the device's protocol either.
        ("/api/v1/devices/{}/tree?path=Device.X", None),
        ("/api/v1/devices/{}/operations", Some(get.clone())),
    ] {
        let method = if body.is_some() { "POST" } else { "GET" };
        pair(method, path, body, "IMEI:2", "IMEI:9");
    }
    pair(
        "POST",
        "/api/v1/operations",
        target(json!({"device": "IMEI:2"})),
        "IMEI:2",
        "IMEI:9",
    );
    // A list mixing a visible device with an invisible or a missing one.
    pair(
        "POST",
        "/api/v1/operations",
        target(json!({"devices": ["IMEI:1", "IMEI:2"]})),
        "IMEI:2",
        "IMEI:9",
    );
    pair("GET", "/api/v1/groups/{}", None, "theirs", "nosuch");
    pair("GET", "/api/v1/groups/{}/members", None, "theirs", "nosuch");
    pair(
        "POST",
        "/api/v1/operations",
        target(json!({"group": "theirs"})),
        "theirs",
        "nosuch",
    );
    pair(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": format!("http://{hook}/x"), "group": "theirs"})),
        "theirs",
        "nosuch",
    );
    pair("GET", "/api/v1/apps/{}", None, "other", "nosuch");
    pair("GET", "/api/v1/apps/{}/keys", None, "other", "nosuch");
    pair(
        "POST",
        "/api/v1/apps/{}/keys",
        Some(json!({})),
        "other",
        "nosuch",
    );
    pair("DELETE", "/api/v1/apps/{}/keys/k1", None, "other", "nosuch");
    let (op, wh) = (their_op.to_string(), their_hook.to_string());
    pair("GET", "/api/v1/operations/{}", None, &op, "999999");
    pair("GET", "/api/v1/operations/{}/devices", None, &op, "999999");
    pair("DELETE", "/api/v1/operations/{}", None, &op, "999999");
    pair("GET", "/api/v1/webhooks/{}", None, &wh, "999999");
    pair("GET", "/api/v1/webhooks/{}/deliveries", None, &wh, "999999");
    for (method, invisible, missing, body, name, missing_name) in &pairs {
        let mut missing_body = body.clone();
        if let Some(b) = &mut missing_body {
            // The same request naming the missing resource instead.
            *b = serde_json::from_str(&b.to_string().replace(name.as_str(), missing_name)).unwrap();
        }
        let a = api.as_(&care, method, invisible, body.clone());
        let b = api.as_(&care, method, missing, missing_body);
        assert_eq!(a.status, 404, "{method} {invisible}: {}", a.raw);
        assert_eq!(b.status, 404, "{method} {missing}: {}", b.raw);
        // The same body, field for field, once the names in the detail are swapped.
        let normal = |r: &support::wsi::Resp, n: &str| {
            let mut body = r.body.clone();
            body["detail"] = json!(body["detail"].as_str().unwrap().replace(n, "X"));
            body
        };
        assert_eq!(
            normal(&a, name),
            normal(&b, missing_name),
            "{method} {invisible} and {missing} answer alike"
        );
        assert_eq!(a.headers["content-type"], b.headers["content-type"]);
        assert!(a.body.get("rule").is_none(), "no rule in a 404: {}", a.raw);
    }
    // Nothing was queued for care, and its own device still works.
    let r = api.as_(
        &care,
        "POST",
        "/api/v1/devices/IMEI:1/operations",
        Some(get.clone()),
    );
    assert_eq!(r.status, 202, "{}", r.raw);
    // A visible device whose grant does not allow the command is still a 403 with the rule.
    let r = api.as_(
        &care,
        "POST",
        "/api/v1/devices/IMEI:1/operations",
        Some(json!({"commands": [{"type": "exec", "path": "./DevInfo/Mod"}]})),
    );
    assert_eq!(r.status, 403, "{}", r.raw);
    assert!(r.body["rule"].is_string());
    // The hidden denials are audited as denials, with their rule.
    let audited = eventually(10, || {
        let r = api.admin("GET", "/api/v1/audit?outcome=denied&limit=1000", None);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .any(|e| {
                e["status"] == 404
                    && e["rule"]
                        .as_str()
                        .is_some_and(|r| r.contains("no grant of care covers device IMEI:2"))
            })
            .then_some(())
    });
    assert!(audited.is_some(), "a hidden denial is in the audit log");
    server.stop();
}

/// Issue 8 items 9 and 10: filtering the event log (list, webhooks) by a device or operation
/// the caller cannot see moves the cursor exactly as filtering by one that does not exist —
/// the cursor is not an activity oracle; and a package 0 sent for another application's
/// operation on a shared device (`notification.sent`) is not shown to the first.
#[test]
fn cursors_and_notifications_reveal_nothing_of_others() {
    let data = DataDir::new("sec-cursor");
    let (gateway, pushes) = gateway();
    let server = Server::start_with(
        &data,
        &[
            "--allow-private-webhooks",
            "--push-gateway",
            &format!("http://{gateway}/push/{{device_id}}"),
        ],
    );
    let api = Api::new(&server, &data);
    device(&api, "IMEI:1");
    device(&api, "IMEI:2");
    group(&api, "mine", &["IMEI:1"]);
    group(&api, "theirs", &["IMEI:2"]);
    group(&api, "shared", &["IMEI:1"]);
    let care = api.app("care");
    let other = api.app("other");
    grant(&api, "care", "mine");
    grant(&api, "other", "theirs");
    grant(&api, "other", "shared");

    // Webhooks of care filtered on the invisible device and on a missing one.
    let (hook, inbox) = receiver();
    let mut subs = Vec::new();
    for d in ["IMEI:2", "IMEI:404"] {
        let r = api.as_(
            &care,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": format!("http://{hook}/{d}"), "devices": [d]})),
        );
        assert_eq!(r.status, 201, "{}", r.raw);
        subs.push(r.body["id"].as_u64().unwrap());
    }
    let start = head(&api);

    // Activity on the device care cannot see, and on the shared one by the other application
    // (with a package 0).
    let get = json!({"commands": [{"type": "get", "path": "./DevInfo/Mod"}]});
    let mut their_ops = Vec::new();
    for _ in 0..3 {
        let r = api.as_(
            &other,
            "POST",
            "/api/v1/devices/IMEI:2/operations",
            Some(get.clone()),
        );
        assert_eq!(r.status, 202, "{}", r.raw);
        their_ops.push(r.body["id"].as_u64().unwrap());
    }
    let r = api.as_(
        &other,
        "POST",
        "/api/v1/operations",
        Some(json!({"target": {"device": "IMEI:1"}, "notify": true, "commands": [{"type": "get", "path": "./DevInfo/Mod"}]})),
    );
    assert_eq!(r.status, 202, "{}", r.raw);
    // A push gateway is configured: no warning about notify.
    assert!(r.body.get("warnings").is_none(), "{}", r.raw);
    let notified = eventually(15, || {
        let r = api.admin(
            "GET",
            &format!("/api/v1/events?after={start}&type=notification.sent&limit=1000"),
            None,
        );
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .expect("the package 0 was sent and recorded");
    assert_eq!(notified[0]["app_id"], "other");
    assert!(pushes.load(Ordering::SeqCst) > 0);
    // One more event after all that (a device nobody's grant covers), so the log's head is
    // past the invisible activity.
    device(&api, "IMEI:3");
    let end = head(&api);

    // The list: the invisible device and operation filters behave like missing ones.
    let page = |filter: &str| {
        let r = api.as_(
            &care,
            "GET",
            &format!("/api/v1/events?after={start}&{filter}"),
            None,
        );
        assert_eq!(r.status, 200, "{filter}: {}", r.raw);
        r.body
    };
    let missing = page("device=IMEI:404");
    assert_eq!(missing["items"], json!([]));
    for filter in [
        "device=IMEI:2".to_owned(),
        format!("operation={}", their_ops[0]),
        "operation=999999".to_owned(),
        "type=operation.submitted".to_owned(),
        "type=notification.sent".to_owned(),
        "device=IMEI:1&type=notification.sent".to_owned(),
    ] {
        let p = page(&filter);
        assert_eq!(p["items"], json!([]), "{filter}: {p}");
        assert_eq!(
            p["next_cursor"], missing["next_cursor"],
            "{filter}: the cursor moves as for a missing device"
        );
    }
    assert_eq!(missing["next_cursor"], end.to_string());
    // A small page does not reveal more: an unfiltered page of care's own events.
    let own = page("limit=1");
    assert!(
        own["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["app_id"] != "other" && e["type"] != "notification.sent"),
        "{own}"
    );

    // `omnidm api events list` follows the cursor to the newest event and stops (the log
    // always answers a cursor; empty pages may come before the end).
    let mut cli = std::process::Command::new(support::BIN)
        .args([
            "api",
            "--url",
            &format!("http://{}", server.api),
            "--key",
            &care,
        ])
        .args(["events", "list", "--after", "0", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let exited = eventually(20, || cli.try_wait().unwrap());
    if exited.is_none() {
        let _ = cli.kill();
    }
    assert!(
        exited.is_some_and(|s| s.success()),
        "events list terminates: {exited:?}"
    );
    let mut out = String::new();
    cli.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["app_id"] != "other" && e["device_id"] != "IMEI:2"),
        "{listed}"
    );

    // The webhooks: both subscriptions' cursors end at the same place; nothing delivered.
    let cursors = eventually(15, || {
        let c: Vec<u64> = subs
            .iter()
            .map(|id| {
                let r = api.as_(&care, "GET", &format!("/api/v1/webhooks/{id}"), None);
                r.body["cursor"].as_u64().unwrap()
            })
            .collect();
        (c[0] == c[1] && c[0] >= end).then_some(c)
    });
    assert!(
        cursors.is_some(),
        "subscriptions on an invisible and on a missing device advance alike"
    );
    assert!(inbox.0.lock().unwrap().is_empty());
    server.stop();
}

/// Issue 8 item 16: an application holds at most 10 webhook subscriptions, and subscribing
/// the same URL with the same filters twice is refused (naming the existing one); another
/// application is not affected.
#[test]
fn webhook_subscriptions_are_capped_and_not_duplicated() {
    let data = DataDir::new("sec-cap");
    let server = Server::start_with(&data, &["--allow-private-webhooks"]);
    let api = Api::new(&server, &data);
    let care = api.app("care");
    let other = api.app("other");
    let (hook, _inbox) = receiver();
    let url = format!("http://{hook}/hook");
    let sub = |key: &str, body: Value| api.as_(key, "POST", "/api/v1/webhooks", Some(body));
    let r = sub(&care, json!({"url": url}));
    assert_eq!(r.status, 201, "{}", r.raw);
    let first = r.body["id"].as_u64().unwrap();
    let r = sub(&care, json!({"url": url}));
    assert_eq!(r.status, 409, "{}", r.raw);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("webhook {first}")),
        "{}",
        r.raw
    );
    // The same URL with other filters is a different subscription.
    let r = sub(&care, json!({"url": url, "event_types": ["device.seen"]}));
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = sub(
        &care,
        json!({"url": url, "event_types": ["device.seen", "device.seen"]}),
    );
    assert_eq!(r.status, 409, "same types: {}", r.raw);
    for i in 2..10 {
        let r = sub(&care, json!({"url": format!("{url}/{i}")}));
        assert_eq!(r.status, 201, "subscription {i}: {}", r.raw);
    }
    let r = sub(&care, json!({"url": format!("{url}/10")}));
    assert_eq!(r.status, 409, "the eleventh: {}", r.raw);
    assert!(r.body["detail"].as_str().unwrap().contains("at most 10"));
    let r = api.as_(&care, "GET", "/api/v1/webhooks", None);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 10);
    // Deleting one makes room again; the other application has its own allowance.
    let r = api.as_(&care, "DELETE", &format!("/api/v1/webhooks/{first}"), None);
    assert_eq!(r.status, 204, "{}", r.raw);
    let r = sub(&care, json!({"url": format!("{url}/10")}));
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = sub(&other, json!({"url": url}));
    assert_eq!(r.status, 201, "{}", r.raw);
    server.stop();
}

/// Issue 8 item 15: `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` in the server's environment
/// are ignored by webhook deliveries: the delivery reaches the receiver directly and nothing
/// reaches the proxy.
#[test]
fn webhook_deliveries_ignore_proxies_from_the_environment() {
    let data = DataDir::new("sec-envproxy");
    let (proxy, proxied) = receiver();
    let proxy_url = format!("http://{proxy}");
    let server = Server::start_env(
        &data,
        &["--allow-private-webhooks"],
        &[
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("HTTPS_PROXY", &proxy_url),
            ("https_proxy", &proxy_url),
            ("ALL_PROXY", &proxy_url),
            ("all_proxy", &proxy_url),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ],
    );
    let api = Api::new(&server, &data);
    let (hook, inbox) = receiver();
    let r = api.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": format!("http://{hook}/hook")})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    device(&api, "IMEI:1");
    let delivered = eventually(15, || (!inbox.0.lock().unwrap().is_empty()).then_some(()));
    assert!(delivered.is_some(), "the event reached the receiver");
    assert!(
        proxied.0.lock().unwrap().is_empty(),
        "nothing went through the environment's proxy"
    );
    server.stop();
}

/// A host name other than `localhost` that `/etc/hosts` maps to a loopback address, if any.
fn loopback_alias() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|l| {
        let mut fields = l.split('#').next()?.split_whitespace();
        let addr: std::net::IpAddr = fields.next()?.parse().ok()?;
        if !addr.is_loopback() {
            return None;
        }
        fields
            .find(|n| {
                let n = n.to_ascii_lowercase();
                n != "localhost"
                    && !n.ends_with(".localhost")
                    && n.parse::<std::net::IpAddr>().is_err()
            })
            .map(str::to_owned)
    })
}

/// Issue 8 items 18 and 15: without `--allow-private-webhooks`, every IPv6 spelling of an
/// internal address is refused at subscription; and with a proxy configured explicitly, the
/// target's name is resolved and judged before anything is sent through the proxy.
#[test]
fn internal_addresses_in_disguise_are_refused_and_a_configured_proxy_is_guarded() {
    let data = DataDir::new("sec-ssrf");
    let (proxy, proxied) = receiver();
    let proxy_url = format!("http://{proxy}");
    let server = Server::start_env(
        &data,
        &[],
        &[
            ("OMNIDM_API_WEBHOOK_PROXY", &proxy_url),
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ],
    );
    let api = Api::new(&server, &data);
    for host in [
        "[::127.0.0.1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:0:127.0.0.1]",
        "[2002:7f00:1::1]",
        "[2002:a00:1::1]",
        "[64:ff9b::127.0.0.1]",
        "[64:ff9b:1::a00:1]",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        "[fd00::1]",
        "[fe80::1]",
        "[fec0::1]",
        "[ff02::1]",
        "[2001:db8::1]",
        "[::]",
        "[::1]",
    ] {
        let r = api.admin(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": format!("http://{host}:8080/hook")})),
        );
        assert_eq!(r.status, 400, "{host}: {}", r.raw);
        assert!(
            r.body["detail"].as_str().unwrap().contains("private"),
            "{host}: {}",
            r.raw
        );
    }
    assert_eq!(
        api.admin("GET", "/api/v1/webhooks", None).body["items"],
        json!([])
    );

    // A name mapping to loopback passes the subscription check (names are not resolved
    // then) but not the delivery through the configured proxy.
    let Some(alias) = loopback_alias() else {
        eprintln!("no loopback alias in /etc/hosts: the proxied-name part is skipped");
        server.stop();
        return;
    };
    let (hook, inbox): (_, Inbox) = receiver();
    let r = api.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": format!("http://{alias}:{}/hook", hook.port())})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_u64().unwrap();
    device(&api, "IMEI:1");
    let attempt = eventually(15, || {
        let r = api.admin("GET", &format!("/api/v1/webhooks/{id}/deliveries"), None);
        r.body["items"].as_array().and_then(|a| a.first().cloned())
    })
    .expect("a delivery was attempted");
    assert_eq!(attempt["succeeded"], false, "{attempt}");
    assert!(
        attempt["error"].as_str().unwrap().contains("loopback"),
        "{attempt}"
    );
    assert!(
        proxied.0.lock().unwrap().is_empty(),
        "nothing reached the proxy"
    );
    assert!(inbox.0.lock().unwrap().is_empty());
    server.stop();
}
