//! Issue 8, items 1, 19 and 20 (paths): what a listing, a device summary or an escaped node
//! name can reveal, tested from outside over HTTP with the real server and simulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use serde_json::{Value, json};
use support::wsi::Api;
use support::{DataDir, Server, ok, omnidm, sim};

/// One simulated device provisioned on a fresh server; returns its id and its two secrets.
fn one_device(data: &DataDir, server: &Server) -> (String, String, String) {
    let accounts = ok(sim(&[
        "--server",
        &server.dm_url(),
        "--devices",
        "1",
        "--print-provisioning",
    ]));
    let file = data.0.join("accounts.jsonl");
    std::fs::write(&file, &accounts).unwrap();
    ok(omnidm(data, &["devices", "import", file.to_str().unwrap()]));
    let a: Value = serde_json::from_str(accounts.lines().next().unwrap()).unwrap();
    let text = |k: &str| {
        a[k].as_str()
            .or_else(|| a["dm"][k].as_str())
            .unwrap_or_else(|| panic!("no {k} in {a}"))
            .to_owned()
    };
    (
        text("device_id"),
        text("client_secret"),
        text("server_secret"),
    )
}

/// Every `path` string anywhere in `v`.
fn collect_paths(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("path", Value::String(p)) => out.push(p.clone()),
                    _ => collect_paths(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_paths(x, out)),
        _ => {}
    }
}

fn get(path: &str) -> Value {
    json!({"commands": [{"type": "get", "path": path}]})
}

/// Issue 8 item 1: a listing needs `get` on everything below its root; credentials are never
/// readable, not even by an admin, through results, events or the tree cache.
#[test]
fn listings_need_the_whole_subtree_and_never_return_credentials() {
    let data = DataDir::new("sec-listing");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let (device, client_secret, server_secret) = one_device(&data, &server);
    let ops = format!("/api/v1/devices/{device}/operations");
    api.admin(
        "POST",
        "/api/v1/groups",
        Some(json!({"id": "g", "kind": "static", "members": [device]})),
    );
    let care = api.app("care");
    let r = api.admin(
        "POST",
        "/api/v1/grants",
        Some(json!({"app_id": "care", "permissions": ["get"],
            "subtrees": ["./DevInfo/*", "./DMAcc/*"], "group": "g"})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);

    // Direct children are granted; the listings of a child are not.
    for listing in [
        "./DevInfo/Ext?list=StructData",
        "./DevInfo/Ext?list=TNDS",
        "./DevInfo/Ext?list=Struct",
        "./DMAcc/OMNIDM?list=StructData",
        "./DMAcc/OMNIDM?list=TNDS+Value",
    ] {
        let r = api.as_(&care, "POST", &ops, Some(get(listing)));
        assert_eq!(r.status, 403, "{listing}: {}", r.raw);
        assert!(r.raw.contains("everything below"), "{listing}: {}", r.raw);
    }
    assert_eq!(
        api.as_(&care, "POST", &ops, Some(get("./DevInfo/Ext")))
            .status,
        202,
        "a plain Get of a granted node is allowed"
    );

    // Credentials are refused for everyone, admins included, by Get and by Copy.
    for secret in [
        "./DMAcc/OMNIDM/AppAuth/SRVCRED/AAuthSecret",
        "./DMAcc/OMNIDM/AppAuth/CLCRED/AAuthData",
    ] {
        let r = api.admin("POST", &ops, Some(get(secret)));
        assert_eq!(r.status, 403, "{secret}: {}", r.raw);
        assert!(r.raw.contains("credential"), "{}", r.raw);
        let copy = json!({"commands": [{"type": "copy", "from": secret, "to": "./Vendor/x"}]});
        assert_eq!(api.admin("POST", &ops, Some(copy)).status, 403);
    }

    // An admin may list the account; the device answers with its secrets, which never
    // reach results, events or the tree cache.
    let mut locations = Vec::new();
    for listing in ["./DMAcc/OMNIDM?list=StructData", "./DMAcc?list=TNDS+Value"] {
        let r = api.admin("POST", &ops, Some(get(listing)));
        assert_eq!(r.status, 202, "{listing}: {}", r.raw);
        locations.push(r.headers["location"].clone());
    }
    ok(sim(&["--server", &server.dm_url(), "--devices", "1"]));
    let mut answers = Vec::new();
    for location in &locations {
        let r = api.admin("GET", &format!("{location}?wait=30"), None);
        assert_eq!(r.body["state"], "completed", "{}", r.raw);
        let r = api.admin("GET", &format!("{location}/devices"), None);
        assert_eq!(r.status, 200, "{}", r.raw);
        assert!(
            r.raw.contains("./DMAcc/OMNIDM/ServerID"),
            "the listing came back: {}",
            r.raw
        );
        answers.push(("results", r));
    }
    let tree = api.admin(
        "GET",
        &format!("/api/v1/devices/{device}/tree?path=./DMAcc"),
        None,
    );
    assert_eq!(tree.status, 200, "{}", tree.raw);
    let events = api.admin("GET", "/api/v1/events?limit=1000", None);
    let answers = answers
        .iter()
        .map(|(w, r)| (*w, r))
        .chain([("tree", &tree), ("events", &events)]);
    for (what, r) in answers {
        // Child names of interior nodes may name them; no node of theirs is returned.
        let mut paths = Vec::new();
        collect_paths(&r.body, &mut paths);
        assert!(!paths.is_empty(), "{what}: {}", r.raw);
        for p in &paths {
            assert!(
                !p.contains("AAuthSecret") && !p.contains("AAuthData"),
                "{what}: {p}"
            );
        }
        assert!(
            !r.raw.contains(&client_secret),
            "{what} leaks the client secret"
        );
        assert!(
            !r.raw.contains(&server_secret),
            "{what} leaks the server secret"
        );
    }
    // The TNDS listing is not cached as the value of ./DMAcc.
    let dmacc = tree.body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["path"] == "./DMAcc");
    assert!(
        dmacc.is_none_or(|n| n["value"].is_null()),
        "listing cached under the listed node: {dmacc:?}"
    );

    // The application granted ./DMAcc/* still reads the cached children it may read, and
    // nothing deeper.
    let r = api.as_(
        &care,
        "GET",
        &format!("/api/v1/devices/{device}/tree?path=./DMAcc"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    for n in r.body["nodes"].as_array().unwrap() {
        let p = n["path"].as_str().unwrap();
        assert_eq!(
            p.matches('/').count(),
            2,
            "{p} is not a direct child of ./DMAcc"
        );
    }
    server.stop();
}

/// Issue 8 item 19: a device summary (`GET /devices/{id}`, the device listing and
/// `device.seen` events) shows only the values whose nodes the caller's `get` grant covers.
#[test]
fn device_summaries_show_only_granted_nodes() {
    let data = DataDir::new("sec-summary");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let (device, _, _) = one_device(&data, &server);
    api.admin(
        "POST",
        "/api/v1/groups",
        Some(json!({"id": "g", "kind": "static", "members": [device]})),
    );
    let fw = api.app("fw");
    let r = api.admin(
        "POST",
        "/api/v1/grants",
        Some(json!({"app_id": "fw", "permissions": ["get"],
            "subtrees": ["./DevInfo/Mod"], "group": "g"})),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    ok(sim(&["--server", &server.dm_url(), "--devices", "1"]));

    let full = api.admin("GET", &format!("/api/v1/devices/{device}"), None);
    for shown in ["model", "manufacturer", "language", "dm_version"] {
        assert!(full.body["info"][shown].is_string(), "{}", full.raw);
    }

    let mine = api.as_(&fw, "GET", &format!("/api/v1/devices/{device}"), None);
    assert_eq!(mine.status, 200, "{}", mine.raw);
    let list = api.as_(&fw, "GET", "/api/v1/devices", None);
    assert_eq!(list.status, 200, "{}", list.raw);
    let events = api.as_(&fw, "GET", "/api/v1/events?type=device.seen", None);
    assert_eq!(events.status, 200, "{}", events.raw);
    let seen: Vec<&Value> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["data"])
        .collect();
    assert!(!seen.is_empty(), "{}", events.raw);
    let summaries = [&mine.body["info"], &list.body["items"][0]["info"]]
        .into_iter()
        .chain(seen);
    for info in summaries {
        assert_eq!(info["model"], full.body["info"]["model"], "{info}");
        for hidden in ["manufacturer", "language", "dm_version"] {
            assert!(info[hidden].is_null(), "{hidden} shown: {info}");
        }
    }
    assert!(
        mine.body["dm"].is_null(),
        "the DM account is not an app's business"
    );
    server.stop();
}

/// Issue 8 item 20: a node name with an escaped `/` or `?` is checked against grants as one
/// name but a device that unescapes it sees other nodes or a listing: refused with 400.
#[test]
fn escaped_separators_in_node_names_are_refused() {
    let data = DataDir::new("sec-escape");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let (device, _, _) = one_device(&data, &server);
    let ops = format!("/api/v1/devices/{device}/operations");
    for path in [
        "./Vendor/x%2F..%2F..%2FDMAcc",
        "./Vendor/x%3Flist=TNDS",
        "./Vendor/a%2Fb",
    ] {
        let r = api.admin("POST", &ops, Some(get(path)));
        assert_eq!(r.status, 400, "{path}: {}", r.raw);
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    assert_eq!(
        api.admin("POST", &ops, Some(get("./Vendor/a%25b"))).status,
        202,
        "an escaped '%' is harmless"
    );
    server.stop();
}
