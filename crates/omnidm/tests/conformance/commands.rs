//! Every command the server sends and the statuses a device may return
//! (OMA-TS-DM_Protocol-V1_2 / DM RepPro 1.2: Get, Replace, Add, Delete, Copy, Exec, Results;
//! status codes 2xx success, 4xx originator errors, 5xx recipient errors).

use crate::wire::*;
use serde_json::json;

/// DM RepPro 1.2 command elements: each WSI command goes out as the SyncML command of that
/// name, its node in `Item/Target/LocURI` (Copy: the source node in `Item/Source`), Replace
/// and Add with `Meta/Format` and `Data`, Exec with its `Data`; 200 for all is success.
#[test]
fn every_command_goes_out_as_the_element_the_spec_names() {
    let b = Bench::start("cmd-elements");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(
        &dev,
        json!([
            {"type": "get", "path": "./DevInfo/Mod"},
            {"type": "replace", "path": "./Vendor/X/Count", "value": "7", "format": "int"},
            {"type": "add", "path": "./Vendor/X/Dir", "format": "node"},
            {"type": "delete", "path": "./Vendor/X/Old"},
            {"type": "copy", "from": "./Vendor/X/A", "to": "./Vendor/X/B"},
            {"type": "exec", "path": "./Vendor/X/Run", "data": "go"},
        ]),
    );
    let reply = dev.package1("1");
    let cmds = reply.commands();
    let names: Vec<&str> = cmds.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["Get", "Replace", "Add", "Delete", "Copy", "Exec"],
        "{}",
        reply.text()
    );
    assert_eq!(target(&cmds[0]), "./DevInfo/Mod");
    assert_eq!(target(&cmds[1]), "./Vendor/X/Count");
    let fmt = |c: &El| {
        c.text_at("Item/Meta/Format")
            .or_else(|| c.text_at("Meta/Format"))
    };
    assert_eq!(fmt(&cmds[1]).as_deref(), Some("int"));
    assert_eq!(cmds[1].text_at("Item/Data").as_deref(), Some("7"));
    assert_eq!(target(&cmds[2]), "./Vendor/X/Dir");
    assert_eq!(fmt(&cmds[2]).as_deref(), Some("node"));
    assert_eq!(target(&cmds[3]), "./Vendor/X/Old");
    assert_eq!(target(&cmds[4]), "./Vendor/X/B");
    assert_eq!(
        cmds[4].text_at("Item/Source/LocURI").as_deref(),
        Some("./Vendor/X/A")
    );
    assert_eq!(target(&cmds[5]), "./Vendor/X/Run");
    assert_eq!(cmds[5].text_at("Item/Data").as_deref(), Some("go"));
    let reply = dev.send_plain(answer_ok(&dev, &reply, Some("Mod-1")), true);
    assert!(reply.is_final());
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "succeeded", "{results:#?}");
    for i in 0..6u64 {
        assert_eq!(result_at(&results, &[i])["status"], 200, "{results:#?}");
    }
    assert_eq!(result_at(&results, &[0])["results"][0]["value"], "Mod-1");
}

/// DM RepPro 1.2 status codes: what the device answers reaches the WSI per command — 2xx is
/// success, a 4xx (404 not found, 405 command not allowed) or 5xx (500 command failed) fails
/// the command and the operation, with the device's code.
#[test]
fn device_statuses_map_into_the_wsi_outcome() {
    let b = Bench::start("cmd-statuses");
    let mut dev = b.device(Auth::Md5);
    let ok_op = b.queue(
        &dev,
        json!([{"type": "replace", "path": "./Vendor/X/A", "value": "1"}]),
    );
    let bad_op = b.queue(
        &dev,
        json!([
            {"type": "replace", "path": "./Vendor/X/Missing", "value": "1"},
            {"type": "delete", "path": "./Vendor/X/Locked"},
            {"type": "exec", "path": "./Vendor/X/Broken"},
        ]),
    );
    let reply = dev.package1("1");
    let code = |c: &El| match target(c).as_str() {
        "./Vendor/X/Missing" => 404,
        "./Vendor/X/Locked" => 405,
        "./Vendor/X/Broken" => 500,
        _ => 200,
    };
    let ans = answer(&dev, &reply, &code, None);
    let reply = dev.send_plain(ans, true);
    assert!(reply.is_final());
    let (state, results) = b.outcome(&ok_op);
    assert_eq!(state, "succeeded", "{results:#?}");
    let (state, results) = b.outcome(&bad_op);
    assert_eq!(state, "failed", "{results:#?}");
    assert_eq!(result_at(&results, &[0])["status"], 404);
    assert_eq!(result_at(&results, &[1])["status"], 405);
    assert_eq!(result_at(&results, &[2])["status"], 500);
}

/// SyncML RepPro 1.2 (Results: MsgRef/CmdRef name the Get): Results coming back in another
/// order than the Gets are matched by their references, not by position.
#[test]
fn results_are_matched_to_their_get_by_msg_ref_and_cmd_ref() {
    let b = Bench::start("cmd-results");
    let mut dev = b.device(Auth::Md5);
    let loc = b.queue(
        &dev,
        json!([
            {"type": "get", "path": "./DevInfo/Man"},
            {"type": "get", "path": "./DevInfo/Mod"},
        ]),
    );
    let reply = dev.package1("1");
    let gets: Vec<El> = reply
        .commands()
        .into_iter()
        .filter(|c| c.name == "Get")
        .collect();
    assert_eq!(gets.len(), 2);
    let m = reply.msg_id();
    let msg = vec![
        dev.hdr_ok(&reply, 1),
        status(2, m, cmd_id(&gets[0]), "Get", 200),
        status(3, m, cmd_id(&gets[1]), "Get", 200),
        // Reverse order.
        results(
            4,
            m,
            cmd_id(&gets[1]),
            "./DevInfo/Mod",
            &chr_data("the-model"),
        ),
        results(
            5,
            m,
            cmd_id(&gets[0]),
            "./DevInfo/Man",
            &chr_data("the-maker"),
        ),
    ];
    let reply = dev.send_plain(msg, true);
    // DM Protocol 1.2 (multiple messages): "Status MUST BE sent in response to Alert but MUST
    // NOT be sent in response to Results" (whole Results; chunks get 213, see large_objects).
    assert!(
        reply.statuses().iter().all(|s| s.cmd != "Results"),
        "no Status for Results: {}",
        reply.text()
    );
    let (state, results) = b.outcome(&loc);
    assert_eq!(state, "succeeded", "{results:#?}");
    assert_eq!(
        result_at(&results, &[0])["results"][0]["value"],
        "the-maker"
    );
    assert_eq!(
        result_at(&results, &[1])["results"][0]["value"],
        "the-model"
    );
}
