//! User interaction (OMA-TS-DM_Protocol-V1_2 §10: alerts 1100 display, 1101 confirm, 1102
//! text input, 1103 single choice, 1104 multiple choice; the answer in the Status, chosen
//! items as Items of the Status). The answers reach the WSI (issue 9 item 4).

use crate::wire::*;
use serde_json::{Value, json};

/// Queues one UI command, lets the hand-built device answer its Alert with `code` and
/// `items` (Item XML), and returns the command's result in the WSI.
fn ui(name: &str, command: Value, code: u16, items: &str, want_alert: &str) -> (String, Value) {
    let b = Bench::start(name);
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(&dev, json!([command]));
    let reply = dev.package1("1");
    let a = reply.command("Alert");
    assert_eq!(
        a.text_at("Data").as_deref(),
        Some(want_alert),
        "{}",
        reply.text()
    );
    // §10: Item 1 the options, Item 2 the text, then the choices.
    let item_data: Vec<String> = a
        .all("Item")
        .iter()
        .map(|i| i.text_at("Data").unwrap_or_default())
        .collect();
    assert!(item_data.len() >= 2, "{}", reply.text());
    assert_eq!(item_data[1], "Question?", "{}", reply.text());
    let m = reply.msg_id();
    dev.send_plain(
        vec![
            dev.hdr_ok(&reply, 1),
            status_full(2, m, cmd_id(&a), "Alert", code, "", items),
        ],
        true,
    );
    let (state, results) = b.outcome(&loc);
    (state, result_at(&results, &[0]))
}

fn item(data: &str) -> String {
    format!("<Item><Data>{data}</Data></Item>")
}

/// §10 (1100 display): 200 acknowledges the message.
#[test]
fn display_1100_is_acknowledged() {
    let (state, r) = ui(
        "ui-1100",
        json!({"type": "display", "text": "Question?", "min_display_time": 2}),
        200,
        "",
        "1100",
    );
    assert_eq!(state, "succeeded", "{r}");
    assert_eq!(r["status"], 200);
}

/// §10 (1101 confirm): 200 is "yes", 304 is "no" — an answer, not a failure.
#[test]
fn confirm_1101_yes_and_no_are_answers() {
    let c = json!({"type": "confirm", "text": "Question?"});
    let (state, r) = ui("ui-1101-yes", c.clone(), 200, "", "1101");
    assert_eq!(state, "succeeded", "{r}");
    assert_eq!(r["answer"], json!({"confirmed": true}), "{r}");
    let (state, r) = ui("ui-1101-no", c, 304, "", "1101");
    assert_eq!(state, "succeeded", "a No is an answer: {r}");
    assert_eq!(r["status"], 304);
    assert_eq!(r["answer"], json!({"confirmed": false}), "{r}");
}

/// §10 (1102 text input): the text typed is the Item of the Status.
#[test]
fn text_input_1102_returns_the_text() {
    let (state, r) = ui(
        "ui-1102",
        json!({"type": "text_input", "text": "Question?", "max_len": 20}),
        200,
        &item("John Doe"),
        "1102",
    );
    assert_eq!(state, "succeeded", "{r}");
    assert_eq!(r["answer"], json!({"text": "John Doe"}), "{r}");
}

/// §10 (1103 single choice): the chosen item's number is the Item of the Status.
#[test]
fn single_choice_1103_returns_the_choice() {
    let (state, r) = ui(
        "ui-1103",
        json!({"type": "single_choice", "text": "Question?", "choices": ["a", "b", "c"]}),
        200,
        &item("2"),
        "1103",
    );
    assert_eq!(state, "succeeded", "{r}");
    assert_eq!(r["answer"], json!({"choices": [2]}), "{r}");
}

/// §10 (1104 multiple choice): one Item per chosen entry.
#[test]
fn multiple_choice_1104_returns_every_choice() {
    let (state, r) = ui(
        "ui-1104",
        json!({"type": "multiple_choice", "text": "Question?", "choices": ["a", "b", "c"]}),
        200,
        &format!("{}{}", item("1"), item("3")),
        "1104",
    );
    assert_eq!(state, "succeeded", "{r}");
    assert_eq!(r["answer"], json!({"choices": [1, 3]}), "{r}");
}

/// §10 (1104): the chosen items may come back in any order.
#[test]
fn multiple_choice_items_in_any_order() {
    let (state, r) = ui(
        "ui-1104-order",
        json!({"type": "multiple_choice", "text": "Question?", "choices": ["a", "b", "c"]}),
        200,
        &format!("{}{}", item("3"), item("2")),
        "1104",
    );
    assert_eq!(state, "succeeded", "{r}");
    let mut got: Vec<u64> = r["answer"]["choices"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, [2, 3], "{r}");
}

/// §10 (user interaction alert codes): a device without user interaction answers 406
/// "optional feature not supported": no answer, the command fails.
#[test]
fn a_device_without_ui_answers_406_and_the_command_fails() {
    let (state, r) = ui(
        "ui-406",
        json!({"type": "confirm", "text": "Question?"}),
        406,
        "",
        "1101",
    );
    assert_eq!(state, "failed", "{r}");
    assert_eq!(r["status"], 406);
    assert!(r.get("answer").is_none_or(|a| a.is_null()), "{r}");
}

/// §10 (timeouts): 408 — the user did not answer in MAXDT — carries no answer and fails.
#[test]
fn a_prompt_that_timed_out_fails_with_408() {
    let (state, r) = ui(
        "ui-408",
        json!({"type": "confirm", "text": "Question?", "max_display_time": 5}),
        408,
        "",
        "1101",
    );
    assert_eq!(state, "failed", "{r}");
    assert_eq!(r["status"], 408);
}
