//! Issue 9 item 4: the answers a device's user gives to alerts 1101–1104 reach the
//! application through the WSI (the command's `answer`) and its events, and a "No" is an
//! answer, not a failure. The real server, the simulator's device over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use serde_json::{Value, json};
use support::wsi::Api;
use support::{DataDir, Server, ok, provision, sim};

/// Submits `commands` to `device` as admin, lets the simulated user answer with `ui`, and
/// returns (the operation's state, its per-command results for the device).
fn ask(api: &Api, server: &Server, device: &str, commands: Value, ui: &str) -> (Value, Value) {
    let r = api.admin(
        "POST",
        &format!("/api/v1/devices/{device}/operations"),
        Some(json!({ "commands": commands })),
    );
    assert_eq!(r.status, 202, "{}", r.raw);
    let location = r.headers["location"].clone();
    ok(sim(&[
        "--server",
        &server.dm_url(),
        "--devices",
        "1",
        "--ui",
        ui,
    ]));
    let op = api.admin("GET", &format!("{location}?wait=30"), None);
    let devices = api.admin("GET", &format!("{location}/devices"), None);
    assert_eq!(devices.status, 200, "{}", devices.raw);
    (
        op.body["counts"].clone(),
        devices.body["items"][0]["results"].clone(),
    )
}

#[test]
fn the_users_answers_reach_the_application_and_a_no_is_an_answer() {
    let data = DataDir::new("ui-answers");
    let server = Server::start(&data);
    let api = Api::new(&server, &data);
    let device = provision(&data, &server.dm_url(), 1, &[]).remove(0);

    // Yes, and a choice (the simulated user takes the first one: index 1, DM Protocol 1.2
    // §10.2: the chosen items come back as Items of the Status).
    let (counts, results) = ask(
        &api,
        &server,
        &device,
        json!([
            {"type": "confirm", "text": "Install the update?"},
            {"type": "single_choice", "text": "When?", "choices": ["now", "tonight"]},
        ]),
        "accept",
    );
    assert_eq!(counts["succeeded"], 1, "{counts}");
    assert_eq!(
        results[0]["answer"],
        json!({"confirmed": true}),
        "{results}"
    );
    assert_eq!(results[1]["answer"], json!({"choices": [1]}), "{results}");

    // No: status 304 with the answer, and the operation succeeded (the flow branches on it).
    let (counts, results) = ask(
        &api,
        &server,
        &device,
        json!([{"type": "confirm", "text": "Install the update?"}]),
        "decline",
    );
    assert_eq!(results[0]["status"], 304, "{results}");
    assert_eq!(
        results[0]["answer"],
        json!({"confirmed": false}),
        "{results}"
    );
    assert_eq!(counts["succeeded"], 1, "a No is not a failure: {counts}");

    // The answers are in the command.result events (and so in webhooks) too.
    let events = api.admin("GET", "/api/v1/events?type=command.result&limit=100", None);
    let answers: Vec<&Value> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"].get("answer"))
        .collect();
    assert!(
        answers.len() >= 3,
        "every answer is in an event: {}",
        events.raw
    );
    server.stop();
}
