//! `omnidm api ops`: operations through the API, with the `KIND:ARGUMENT` command specs of
//! `omnidm ops submit` (see `cli/ops.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use omnidm_core::{OpCommand, TypedValue, UiKind, UiPrompt};
use serde_json::{Map, Value, json};

use super::{Client, Query, print_json, spinner_for};

/// Longest long-poll asked of the server in one request (its limit is 60 s by default).
const POLL_SECS: u64 = 30;

/// Operation subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OpsCommand {
    /// Submits commands for one device, a list of devices or a group.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["device", "devices_file", "group"])))]
    Submit {
        /// One device.
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// Device ids, one per line (`-` = standard input; `#` starts a comment).
        #[arg(long, value_name = "FILE")]
        devices_file: Option<PathBuf>,
        /// A group's members at submission time.
        #[arg(long, value_name = "ID")]
        group: Option<String>,
        /// Commands in order as KIND:ARGUMENT, e.g. `get:./DevInfo/Mod
        /// replace:./Vendor/X=1@int` (kinds: get, replace, add, delete, exec, copy, display,
        /// confirm).
        #[arg(value_name = "CMD")]
        commands: Vec<String>,
        /// The command list as JSON instead (the `omnidm ops` form; `-` = standard input).
        #[arg(long, value_name = "FILE", conflicts_with = "commands")]
        commands_file: Option<PathBuf>,
        /// Ask the devices to call in now (package 0 through the server's push gateway).
        #[arg(long)]
        notify: bool,
        /// Queued device operations expire after this many seconds.
        #[arg(long, value_name = "SECS")]
        expires_in: Option<u64>,
        /// Wait up to this many seconds for every device to finish, then show the results.
        #[arg(long, value_name = "SECS")]
        wait: Option<u64>,
    },
    /// Shows an operation: counts per state and per-device results.
    Show {
        /// Operation id.
        id: u64,
        /// Wait up to this many seconds for every device to finish first.
        #[arg(long, value_name = "SECS")]
        wait: Option<u64>,
    },
    /// Lists operations, newest first (all pages).
    List,
    /// Lists an operation's devices with their results (all pages).
    Devices {
        /// Operation id.
        id: u64,
        /// Only in this state: queued, in_session, awaiting_report, succeeded, failed, expired, cancelled.
        #[arg(long)]
        state: Option<String>,
    },
    /// Cancels what is still queued of an operation.
    Cancel {
        /// Operation id.
        id: u64,
    },
}

/// A core command as the API's command JSON (`{"type":"get","path":…}`).
pub fn command_json(c: &OpCommand) -> Value {
    let mut obj = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            obj.insert(k.to_owned(), v);
        }
    };
    let typed = |put: &mut dyn FnMut(&str, Value), v: &TypedValue| {
        put("value", json!(v.data));
        put("format", json!(v.value_type.as_str()));
        put("mime_type", json!(v.mime_type));
    };
    let kind = match c {
        OpCommand::Get { path } => {
            put("path", json!(path.to_string()));
            "get"
        }
        OpCommand::Replace { path, value } => {
            put("path", json!(path.to_string()));
            typed(&mut put, value);
            "replace"
        }
        OpCommand::Add { path, value } => {
            put("path", json!(path.to_string()));
            if let Some(v) = value {
                typed(&mut put, v);
            }
            "add"
        }
        OpCommand::Delete { path } => {
            put("path", json!(path.to_string()));
            "delete"
        }
        OpCommand::Exec {
            path,
            data,
            correlator,
        } => {
            put("path", json!(path.to_string()));
            put("data", json!(data));
            put("correlator", json!(correlator));
            "exec"
        }
        OpCommand::Copy { from, to } => {
            put("from", json!(from.to_string()));
            put("to", json!(to.to_string()));
            "copy"
        }
        OpCommand::Atomic(cs) | OpCommand::Sequence(cs) => {
            put("commands", cs.iter().map(command_json).collect());
            if matches!(c, OpCommand::Atomic(_)) {
                "atomic"
            } else {
                "sequence"
            }
        }
        OpCommand::UserInteraction(u) => {
            ui_fields(&mut put, u);
            match u.kind {
                UiKind::Display => "display",
                UiKind::Confirm => "confirm",
                UiKind::TextInput => "text_input",
                UiKind::SingleChoice => "single_choice",
                UiKind::MultipleChoice => "multiple_choice",
            }
        }
    };
    obj.insert("type".into(), json!(kind));
    Value::Object(obj)
}

fn ui_fields(put: &mut dyn FnMut(&str, Value), u: &UiPrompt) {
    put("text", json!(u.text));
    if !u.choices.is_empty() {
        put("choices", json!(u.choices));
    }
    put("min_display_time", json!(u.min_display_time));
    put("max_display_time", json!(u.max_display_time));
    put("default_response", json!(u.default_response));
    put("max_len", json!(u.max_len));
    put("input_type", json!(u.input_type));
    put("echo", json!(u.echo));
}

/// The `target` of a submission.
fn target_json(
    device: Option<String>,
    devices_file: Option<&PathBuf>,
    group: Option<String>,
) -> anyhow::Result<Value> {
    if let Some(d) = device {
        return Ok(json!({"device": d}));
    }
    if let Some(g) = group {
        return Ok(json!({"group": g}));
    }
    let Some(file) = devices_file else {
        bail!("say which devices: --device ID, --devices-file FILE or --group ID");
    };
    let text = super::super::io::read_input(file)?;
    let ids: Vec<String> = String::from_utf8_lossy(&text.bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        bail!("{}: no device ids (one per line)", text.name);
    }
    Ok(json!({"devices": ids}))
}

/// A target in one cell: the device, `N devices` or `group G`.
fn target_cell(target: Option<&Value>) -> String {
    let Some(t) = target else {
        return "-".into();
    };
    if let Some(d) = t.get("device").and_then(Value::as_str) {
        d.to_owned()
    } else if let Some(ds) = t.get("devices").and_then(Value::as_array) {
        format!("{} devices", ds.len())
    } else if let Some(g) = t.get("group").and_then(Value::as_str) {
        format!("group {g}")
    } else {
        t.to_string()
    }
}

/// `queued 1  in_session 0  succeeded 2 …` from an operation's counts.
fn counts_line(op: &Value) -> String {
    [
        "queued",
        "in_session",
        "awaiting_report",
        "succeeded",
        "failed",
        "expired",
        "cancelled",
    ]
    .iter()
    .map(|k| {
        let n = op
            .get("counts")
            .and_then(|c| c.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        format!("{k} {n}")
    })
    .collect::<Vec<_>>()
    .join("  ")
}

/// Table rows of device operations: one per command result (one for a device without any).
fn device_rows(devices: &[Value]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for d in devices {
        let id = super::cell(d, "device_id");
        let state = super::cell(d, "state");
        let results = d
            .get("results")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if results.is_empty() {
            rows.push(vec![id, state, "-".into(), "-".into(), String::new()]);
            continue;
        }
        for r in results {
            let index = r
                .get("index")
                .and_then(Value::as_array)
                .map(|i| i.iter().map(Value::to_string).collect::<Vec<_>>().join("."))
                .unwrap_or_else(|| "-".into());
            rows.push(vec![
                id.clone(),
                state.clone(),
                index,
                super::cell(r, "status"),
                result_text(r),
            ]);
        }
    }
    rows
}

/// What a command returned: `path=value` for reads, the user's answer for prompts.
fn result_text(r: &Value) -> String {
    let mut parts: Vec<String> = r
        .get("results")
        .and_then(Value::as_array)
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    format!(
                        "{}={}",
                        super::cell(n, "path"),
                        n.get("value").and_then(Value::as_str).unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(a) = r.get("answer") {
        if let Some(c) = a.get("confirmed").and_then(Value::as_bool) {
            parts.push(format!("confirmed={}", if c { "yes" } else { "no" }));
        }
        if let Some(t) = a.get("text").and_then(Value::as_str) {
            parts.push(format!("text={t:?}"));
        }
        if a.get("choices").is_some() {
            parts.push(format!("choices={}", super::cell(a, "choices")));
        }
    }
    parts.join(" ")
}

const DEVICE_HEADERS: [&str; 5] = ["DEVICE", "STATE", "#", "STATUS", "RESULT"];

/// Prints an operation view (`GET /operations/{id}`) for people.
fn print_operation(op: &Value) -> anyhow::Result<()> {
    outln!(
        "operation {}  application {}  state {}  devices {}",
        super::cell(op, "id"),
        super::cell(op, "application"),
        super::cell(op, "state"),
        super::cell(op, "device_count"),
    );
    outln!(
        "target {}  created {}  expires {}",
        target_cell(op.get("target")),
        super::cell(op, "created_at"),
        super::cell(op, "expires_at"),
    );
    outln!("{}", counts_line(op));
    let devices = op
        .get("devices")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !devices.is_empty() {
        outln!();
        super::super::local::print_table(&DEVICE_HEADERS, &device_rows(devices))?;
    }
    if op.get("devices_next_cursor").is_some_and(|c| !c.is_null()) {
        outln!(
            "(first {} devices shown; all of them: `omnidm api ops devices {}`)",
            devices.len(),
            super::cell(op, "id")
        );
    }
    Ok(())
}

fn is_completed(op: &Value) -> bool {
    op.get("state").and_then(Value::as_str) == Some("completed")
}

/// Long-polls the operation until it completes or `secs` pass, with a spinner on stderr.
async fn wait_for(client: &Client, id: u64, mut op: Value, secs: u64) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let spinner = spinner_for(&format!("operation {id}"));
    let path = id.to_string();
    loop {
        if is_completed(&op) {
            break;
        }
        // Rounded up: the last fraction of a second is waited for too, so `--wait N` never
        // returns before N seconds unless the operation completed.
        let left_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis();
        let left = u64::try_from(left_ms.div_ceil(1000)).unwrap_or(u64::MAX);
        if left == 0 {
            break;
        }
        spinner.set_message(format!("operation {id}: {}", counts_line(&op)));
        op = client
            .get(
                &["operations", &path],
                &Query::new().opt("wait", Some(left.min(POLL_SECS))),
            )
            .await?;
    }
    spinner.finish_and_clear();
    Ok(op)
}

/// Prints the operation waited for (JSON or table) and fails with [`NotCompleted`] (exit
/// code 4) when the wait ran out first.
fn print_waited(client: &Client, id: u64, op: &Value, secs: u64) -> anyhow::Result<()> {
    if client.json {
        print_json(op)?;
    } else {
        print_operation(op)?;
    }
    if is_completed(op) {
        Ok(())
    } else {
        Err(super::super::NotCompleted { id, secs }.into())
    }
}

/// Runs an `api ops` subcommand.
pub async fn run(client: &Client, cmd: OpsCommand) -> anyhow::Result<()> {
    match cmd {
        OpsCommand::Submit {
            device,
            devices_file,
            group,
            commands,
            commands_file,
            notify,
            expires_in,
            wait,
        } => {
            let commands = super::super::ops::read_commands(&commands, commands_file.as_ref())?;
            let body = json!({
                "target": target_json(device, devices_file.as_ref(), group)?,
                "commands": commands.iter().map(command_json).collect::<Vec<_>>(),
                "notify": notify,
                "expires_in": expires_in,
            });
            let op = client.post(&["operations"], &body).await?;
            // What the server could not do as asked (e.g. notify without a push gateway).
            for warning in op
                .get("warnings")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                eprintln!("warning: {}", warning.as_str().unwrap_or_default());
            }
            let id = op
                .get("id")
                .and_then(Value::as_u64)
                .context("the API answered without an operation id")?;
            if let Some(secs) = wait.filter(|s| *s > 0) {
                let op = wait_for(client, id, op, secs).await?;
                return print_waited(client, id, &op, secs);
            }
            if client.json {
                return print_json(&op);
            }
            outln!(
                "submitted operation {id} for {} device(s): it runs in each device's next session{}",
                super::cell(&op, "device_count"),
                if notify {
                    " (asked to call in now)"
                } else {
                    ""
                }
            );
            outln!("follow it with `omnidm api ops show {id} --wait 60`");
            Ok(())
        }
        OpsCommand::Show { id, wait } => {
            let op = client
                .get(&["operations", &id.to_string()], &Query::new())
                .await?;
            if let Some(secs) = wait.filter(|s| *s > 0) {
                let op = wait_for(client, id, op, secs).await?;
                return print_waited(client, id, &op, secs);
            }
            if client.json {
                return print_json(&op);
            }
            print_operation(&op)?;
            Ok(())
        }
        OpsCommand::List => {
            let ops = client
                .get_all(&["operations"], &Query::new(), "cursor", "operations")
                .await?;
            if client.json {
                return print_json(&Value::Array(ops));
            }
            if ops.is_empty() {
                eprintln!("no operations; submit one with `omnidm api ops submit`");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = ops
                .iter()
                .map(|o| {
                    vec![
                        super::cell(o, "id"),
                        super::cell(o, "application"),
                        target_cell(o.get("target")),
                        super::cell(o, "device_count"),
                        super::cell(o, "created_at"),
                    ]
                })
                .collect();
            super::super::local::print_table(
                &["ID", "APPLICATION", "TARGET", "DEVICES", "CREATED"],
                &rows,
            )?;
            Ok(())
        }
        OpsCommand::Devices { id, state } => {
            let devices = client
                .get_all(
                    &["operations", &id.to_string(), "devices"],
                    &Query::new().opt("state", state),
                    "cursor",
                    "devices",
                )
                .await?;
            if client.json {
                return print_json(&Value::Array(devices));
            }
            if devices.is_empty() {
                eprintln!("no devices match");
                return Ok(());
            }
            super::super::local::print_table(&DEVICE_HEADERS, &device_rows(&devices))?;
            Ok(())
        }
        OpsCommand::Cancel { id } => {
            let op = client.delete(&["operations", &id.to_string()]).await?;
            if client.json {
                return print_json(&op);
            }
            outln!("cancelled what was still queued of operation {id}");
            outln!("{}", counts_line(&op));
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cli::ops::parse_spec;

    fn spec(s: &str) -> Value {
        command_json(&parse_spec(s).unwrap())
    }

    #[test]
    fn specs_become_api_commands() {
        assert_eq!(
            spec("get:./DevInfo/Mod"),
            json!({"type":"get","path":"./DevInfo/Mod"})
        );
        assert_eq!(
            spec("replace:./Vendor/X=42@int"),
            json!({"type":"replace","path":"./Vendor/X","value":"42","format":"int"})
        );
        assert_eq!(
            spec("replace:./Vendor/Name=hello"),
            json!({"type":"replace","path":"./Vendor/Name","value":"hello","format":"string"})
        );
        assert_eq!(
            spec("add:./Vendor/Dir"),
            json!({"type":"add","path":"./Vendor/Dir"})
        );
        assert_eq!(
            spec("delete:./Vendor/X"),
            json!({"type":"delete","path":"./Vendor/X"})
        );
        assert_eq!(
            spec("exec:./FUMO/fw1/Update#c1"),
            json!({"type":"exec","path":"./FUMO/fw1/Update","correlator":"c1"})
        );
        assert_eq!(
            spec("copy:./A>./B"),
            json!({"type":"copy","from":"./A","to":"./B"})
        );
        assert_eq!(
            spec("confirm:Update now?"),
            json!({"type":"confirm","text":"Update now?"})
        );
        assert_eq!(spec("display:Hi"), json!({"type":"display","text":"Hi"}));
        let atomic = OpCommand::Atomic(vec![parse_spec("delete:./A").unwrap()]);
        assert_eq!(
            command_json(&atomic),
            json!({"type":"atomic","commands":[{"type":"delete","path":"./A"}]})
        );
    }

    #[test]
    fn targets_and_rows() {
        assert_eq!(
            target_json(Some("d".into()), None, None).unwrap(),
            json!({"device":"d"})
        );
        assert_eq!(
            target_json(None, None, Some("g".into())).unwrap(),
            json!({"group":"g"})
        );
        assert_eq!(
            target_cell(Some(&json!({"devices":["a","b"]}))),
            "2 devices"
        );
        assert_eq!(target_cell(Some(&json!({"group":"g"}))), "group g");
        let op = json!({"counts":{"queued":1,"succeeded":2}});
        assert_eq!(
            counts_line(&op),
            "queued 1  in_session 0  awaiting_report 0  succeeded 2  failed 0  expired 0  cancelled 0"
        );
        let devices = [
            json!({"device_id":"d1","state":"succeeded","results":[
                {"index":[0],"status":200,"results":[{"path":"./DevInfo/Mod","value":"X"}]},
                {"index":[1,0],"status":200,"answer":{"confirmed":true}}]}),
            json!({"device_id":"d2","state":"queued","results":[]}),
        ];
        assert_eq!(
            device_rows(&devices),
            vec![
                vec!["d1", "succeeded", "0", "200", "./DevInfo/Mod=X"],
                vec!["d1", "succeeded", "1.0", "200", "confirmed=yes"],
                vec!["d2", "queued", "-", "-", ""],
            ]
        );
    }
}
