//! Atomic and Sequence (DM RepPro 1.2 Atomic/Sequence; status codes 216 "Atomic roll back
//! OK", 507 "Atomic failed").

use crate::wire::*;
use serde_json::json;

fn inner_names(c: &El) -> Vec<String> {
    c.children
        .iter()
        .filter(|e| !matches!(e.name.as_str(), "CmdID" | "Meta" | "NoResp"))
        .map(|e| e.name.clone())
        .collect()
}

/// DM RepPro 1.2 Atomic: the inner commands travel inside the Atomic; a device that rolls
/// back answers 507 for the Atomic and 216 for the commands it undid: the operation fails and
/// every code reaches the WSI.
#[test]
fn an_atomic_rolled_back_fails_with_507_and_216() {
    let b = Bench::start("atomic-rollback");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(
        &dev,
        json!([{"type": "atomic", "commands": [
            {"type": "replace", "path": "./Vendor/X/A", "value": "1"},
            {"type": "replace", "path": "./Vendor/X/B", "value": "2"},
        ]}]),
    );
    let reply = dev.package1("1");
    let atomic = reply.command("Atomic");
    assert_eq!(
        inner_names(&atomic),
        ["Replace", "Replace"],
        "{}",
        reply.text()
    );
    let code = |c: &El| match (c.name.as_str(), target(c).as_str()) {
        ("Atomic", _) => 507,
        (_, "./Vendor/X/A") => 216,
        _ => 500,
    };
    dev.send_plain(answer(&dev, &reply, &code, None), true);
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "failed", "{results:#?}");
    assert_eq!(result_at(&results, &[0])["status"], 507, "{results:#?}");
    assert_eq!(result_at(&results, &[0, 0])["status"], 216, "{results:#?}");
    assert_eq!(result_at(&results, &[0, 1])["status"], 500, "{results:#?}");
}

/// DM RepPro 1.2 Atomic: all inner commands and the Atomic 200 is success; a device that
/// sends no Status for the Atomic itself (a known client behaviour) still completes it from
/// the inner statuses.
#[test]
fn an_atomic_succeeds_with_or_without_its_own_status() {
    let b = Bench::start("atomic-ok");
    let mut dev = b.device(Auth::Md5);
    let a = json!([{"type": "atomic", "commands": [
        {"type": "replace", "path": "./Vendor/X/A", "value": "1"},
    ]}]);
    let with = b.queue(&dev, a.clone());
    let reply = dev.package1("1");
    dev.send_plain(answer_ok(&dev, &reply, None), true);
    assert_eq!(b.outcome(&with).0, "succeeded");

    let without = b.queue(&dev, a);
    let reply = dev.package1("2");
    let atomic = reply.command("Atomic");
    let mut ans = answer_ok(&dev, &reply, None);
    let atomic_ref = format!("<CmdRef>{}</CmdRef><Cmd>Atomic</Cmd>", cmd_id(&atomic));
    ans.retain(|s| !s.contains(&atomic_ref));
    dev.send_plain(ans, true);
    let (state, results) = b.outcome(&without);
    assert_eq!(state, "succeeded", "{results:#?}");
}

/// DM RepPro 1.2 Sequence: the inner commands travel inside the Sequence in the order given;
/// their statuses and results reach the WSI under the Sequence's index.
#[test]
fn a_sequence_keeps_its_order_and_reports_each_command() {
    let b = Bench::start("sequence");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(
        &dev,
        json!([{"type": "sequence", "commands": [
            {"type": "replace", "path": "./Vendor/X/A", "value": "1"},
            {"type": "get", "path": "./Vendor/X/A"},
        ]}]),
    );
    let reply = dev.package1("1");
    let seq = reply.command("Sequence");
    assert_eq!(inner_names(&seq), ["Replace", "Get"], "{}", reply.text());
    dev.send_plain(answer_ok(&dev, &reply, Some("1")), true);
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "succeeded", "{results:#?}");
    assert_eq!(result_at(&results, &[0, 1])["results"][0]["value"], "1");
}
