//! Issue 8, review fixes: what the device listing's cursor reveals, tested from outside over
//! HTTP with the real server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use support::wsi::Api;
use support::{DataDir, Server};

/// Every page of `path` (which has a `?`) as `key`: the items' ids and the cursors seen.
fn all_pages(api: &Api, key: &str, path: &str) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut cursors = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..200 {
        let url = match &next {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let r = api.as_(key, "GET", &url, None);
        assert_eq!(r.status, 200, "{url}: {}", r.raw);
        for d in r.body["items"].as_array().unwrap() {
            ids.push(d["id"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => {
                cursors.push(c.to_owned());
                next = Some(c.to_owned());
            }
            None => return (ids, cursors),
        }
    }
    panic!("{path}: no end after 200 pages");
}

/// Does `cursor` name (in clear or any base64 flavour) one of `ids`?
fn reveals(cursor: &str, ids: &[String]) -> Option<String> {
    let mut texts = vec![cursor.to_owned()];
    for engine in [&URL_SAFE_NO_PAD, &STANDARD] {
        if let Ok(b) = engine.decode(cursor) {
            texts.push(String::from_utf8_lossy(&b).into_owned());
        }
    }
    ids.iter()
        .find(|id| {
            let digits = id.trim_start_matches("IMEI:");
            texts
                .iter()
                .any(|t| t.contains(id.as_str()) || t.contains(digits))
        })
        .cloned()
}

/// Issue 8 review item 1: an application whose grants cover one device among many it cannot
/// see gets cursors that name none of the invisible devices (they used to be the plain
/// base64 of the last device examined), still pages through to every device it can see,
/// cannot forge or alter a cursor, and a cursor survives a restart (the key is the
/// installation's).
#[test]
fn device_listing_cursors_do_not_reveal_invisible_devices() {
    let data = DataDir::new("review-cursor");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    // 45 devices; the application sees only the last (in id order), so a page of one makes
    // the server examine more than 20 store pages without filling it.
    let ids: Vec<String> = (0..45).map(|i| format!("IMEI:4930051005{i:05}")).collect();
    for id in &ids {
        let r = api.admin("POST", "/api/v1/devices", Some(json!({"id": id})));
        assert_eq!(r.status, 201, "{}", r.raw);
    }
    let visible = ids.last().unwrap().clone();
    let invisible = &ids[..ids.len() - 1];
    let r = api.admin(
        "POST",
        "/api/v1/groups",
        Some(json!({"id": "mine", "kind": "static", "members": [visible]})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    let key = api.app("snoop");
    let r = api.admin(
        "POST",
        "/api/v1/grants",
        Some(json!({"app_id": "snoop", "permissions": ["get"], "subtrees": ["./DevInfo/**"], "group": "mine"})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);

    let (seen, cursors) = all_pages(&api, &key, "/api/v1/devices?limit=1");
    assert_eq!(
        seen,
        vec![visible.clone()],
        "pagination still finds the visible device"
    );
    assert!(
        !cursors.is_empty(),
        "the scan stops early and hands out a cursor"
    );
    for c in &cursors {
        assert_eq!(
            reveals(c, invisible),
            None,
            "cursor {c} names an invisible device"
        );
    }

    // A plain (old-style) cursor or an altered one is refused, not followed.
    let forged = URL_SAFE_NO_PAD.encode(&invisible[3]);
    let r = api.as_(
        &key,
        "GET",
        &format!("/api/v1/devices?limit=1&cursor={forged}"),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.raw);
    let mut raw = URL_SAFE_NO_PAD.decode(&cursors[0]).unwrap();
    raw[17] ^= 1;
    let altered = URL_SAFE_NO_PAD.encode(raw);
    let r = api.as_(
        &key,
        "GET",
        &format!("/api/v1/devices?limit=1&cursor={altered}"),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.raw);

    // Admins page the same way, through every device.
    let (all, cursors) = all_pages(&api, &api.admin, "/api/v1/devices?limit=7");
    assert_eq!(all, ids);
    for c in &cursors {
        assert_eq!(reveals(c, &ids), None, "cursor {c} is opaque");
    }

    // A cursor handed out before a restart still works after it.
    let r = api.admin("GET", "/api/v1/devices?limit=40", None);
    let c = r.body["next_cursor"].as_str().unwrap().to_owned();
    server.stop();
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let r = api.admin("GET", &format!("/api/v1/devices?limit=40&cursor={c}"), None);
    assert_eq!(r.status, 200, "{}", r.raw);
    let rest: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rest,
        ids[40..].iter().map(String::as_str).collect::<Vec<_>>()
    );
}
