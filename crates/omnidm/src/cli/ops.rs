//! `omnidm ops …`: queueing operations for a device and reading their outcome.
//!
//! Commands are written in order as `KIND:ARGUMENT`:
//!
//! | spec | command |
//! |---|---|
//! | `get:./DevInfo/Mod` | Get (also `?list=Struct`, `?list=TNDS`) |
//! | `replace:./Vendor/X=42@int` | Replace with a value (format after `@`, default `chr`) |
//! | `add:./Vendor/Dir` / `add:./Vendor/Dir/Leaf=v@chr` | Add an interior node / a leaf |
//! | `delete:./Vendor/X` | Delete |
//! | `exec:./FUMO/fw1/Update#corr-1` | Exec, with an optional correlator after `#` |
//! | `copy:./A>./B` | Copy |
//! | `display:TEXT`, `confirm:TEXT` | user interaction (alerts 1100, 1101) |
//!
//! `--commands FILE` takes the same list as JSON (the serialized `OpCommand` form), for
//! Atomic, Sequence and the other prompts.

use super::Outcome;
use super::local::{StoreArgs, print_table, when};
use anyhow::{Context as _, bail};
use omnidm_core::{
    DeviceId, NewOperation, NodePath, OpCommand, OpFilter, OpState, Operation, OperationId, Store,
    StoreError, TypedValue, UiKind, UiPrompt, ValueType,
};
use serde_json::json;
use std::path::PathBuf;

/// Operation subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OpsCommand {
    /// Queues an operation for a device; it runs in the device's next session.
    Submit {
        /// Device id.
        device: String,
        /// Commands in order, e.g. `get:./DevInfo/Mod replace:./Vendor/X=1@int`.
        commands: Vec<String>,
        /// The command list as JSON instead (a file, or `-` for standard input).
        #[arg(long, value_name = "FILE", conflicts_with = "commands")]
        commands_file: Option<PathBuf>,
        /// Expire the operation if the device has not run it within this many seconds.
        #[arg(long, value_name = "SECS")]
        expires_in: Option<u64>,
        /// Ask the device to call in now: the server sends a package 0 through its push
        /// gateway (`--push-gateway` of `omnidm serve`).
        #[arg(long)]
        notify: bool,
        /// Print the operation as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Queues the same commands for many devices in one transaction (fan-out).
    FanOut {
        /// Device ids, one per line (`-` = standard input; `#` starts a comment).
        #[arg(long, value_name = "FILE")]
        devices_file: PathBuf,
        /// Commands in order, as for `submit`.
        commands: Vec<String>,
        /// The command list as JSON instead.
        #[arg(long, value_name = "FILE", conflicts_with = "commands")]
        commands_file: Option<PathBuf>,
        /// Expire each operation if its device has not run it within this many seconds.
        #[arg(long, value_name = "SECS")]
        expires_in: Option<u64>,
        /// Ask every device to call in now (package 0 through the server's push gateway).
        #[arg(long)]
        notify: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Shows an operation: state and per-command outcome.
    Show {
        /// Operation id.
        id: u64,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lists operations.
    List {
        /// Only this device's.
        #[arg(long)]
        device: Option<String>,
        /// Only in this state (queued, in_session, awaiting_report, succeeded, failed, expired, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Cancels a queued operation.
    Cancel {
        /// Operation id.
        id: u64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Parses one `KIND:ARGUMENT` command spec.
pub fn parse_spec(spec: &str) -> anyhow::Result<OpCommand> {
    let (kind, arg) = spec.split_once(':').with_context(|| {
        format!("{spec:?}: write commands as KIND:ARGUMENT, e.g. get:./DevInfo/Mod")
    })?;
    let path = |p: &str| {
        NodePath::dm(p).with_context(|| format!("{spec:?}: {p:?} is not a management-tree path"))
    };
    let value = |v: &str| -> anyhow::Result<TypedValue> {
        let (data, format) = v.rsplit_once('@').unwrap_or((v, "string"));
        let value_type = format
            .parse::<omnidm_tree::Format>()
            .map(ValueType::from_dm_format)
            .ok()
            .or_else(|| ValueType::parse(format))
            .with_context(|| {
                format!(
                    "{spec:?}: unknown format {format:?}; use string, int, unsigned_int, bool, \
                     float, base64, xml, date, time, date_time, node or null (the API's names; \
                     OMA DM's chr and b64 are understood too)"
                )
            })?;
        Ok(TypedValue {
            value_type,
            data: data.to_owned(),
            mime_type: None,
        })
    };
    Ok(match kind {
        "get" => OpCommand::Get { path: path(arg)? },
        "replace" => {
            let (p, v) = arg
                .split_once('=')
                .with_context(|| format!("{spec:?}: write replace:PATH=VALUE[@format]"))?;
            OpCommand::Replace {
                path: path(p)?,
                value: value(v)?,
            }
        }
        "add" => match arg.split_once('=') {
            Some((p, v)) => OpCommand::Add {
                path: path(p)?,
                value: Some(value(v)?),
            },
            None => OpCommand::Add {
                path: path(arg)?,
                value: None,
            },
        },
        "delete" => OpCommand::Delete { path: path(arg)? },
        "exec" => {
            let (p, correlator) = match arg.split_once('#') {
                Some((p, c)) => (p, Some(c.to_owned())),
                None => (arg, None),
            };
            OpCommand::Exec {
                path: path(p)?,
                data: None,
                correlator,
            }
        }
        "copy" => {
            let (from, to) = arg
                .split_once('>')
                .with_context(|| format!("{spec:?}: write copy:FROM>TO"))?;
            OpCommand::Copy {
                from: path(from)?,
                to: path(to)?,
            }
        }
        "display" | "confirm" => OpCommand::UserInteraction(UiPrompt {
            kind: if kind == "display" {
                UiKind::Display
            } else {
                UiKind::Confirm
            },
            text: arg.to_owned(),
            choices: Vec::new(),
            min_display_time: None,
            max_display_time: None,
            default_response: None,
            max_len: None,
            input_type: None,
            echo: None,
        }),
        other => bail!(
            "{spec:?}: unknown command {other:?}; use get, replace, add, delete, exec, copy, display or confirm"
        ),
    })
}

/// Runs an `ops` subcommand.
pub fn run(cmd: OpsCommand) -> anyhow::Result<Outcome> {
    match cmd {
        OpsCommand::Submit {
            device,
            commands,
            commands_file,
            expires_in,
            notify,
            json,
            store,
        } => {
            let device = DeviceId::new(device.clone()).with_context(|| format!("device id {device:?}"))?;
            let commands = read_commands(&commands, commands_file.as_ref())?;
            store.with_store(|store| async move {
                let now = crate::server::dm::now_ts();
                let op = new_operation(device.clone(), commands, expires_in, notify, now);
                let op = match store.submit(vec![op], now).await {
                    Ok(mut ops) => ops.pop().context("the store returned no operation")?,
                    Err(StoreError::NotFound(_)) => bail!("no device {device}; provision it with `omnidm devices add`"),
                    Err(e) => return Err(e.into()),
                };
                if json {
                    outln!("{}", op_json(&op));
                } else {
                    outln!("queued operation {} for {}: it runs in the device's next session", op.id, op.device_id);
                }
                Ok(Outcome::Ok)
            })
        }
        OpsCommand::FanOut {
            devices_file,
            commands,
            commands_file,
            expires_in,
            notify,
            store,
        } => {
            let commands = read_commands(&commands, commands_file.as_ref())?;
            let text = super::io::read_input(&devices_file)?;
            let devices = String::from_utf8_lossy(&text.bytes)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| DeviceId::new(l).with_context(|| format!("{}: device id {l:?}", text.name)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if devices.is_empty() {
                bail!("{}: no device ids (one per line)", text.name);
            }
            store.with_store(|store| async move {
                let now = crate::server::dm::now_ts();
                let started = std::time::Instant::now();
                let n = devices.len();
                let ops = devices
                    .into_iter()
                    .map(|d| new_operation(d, commands.clone(), expires_in, notify, now))
                    .collect();
                match store.submit(ops, now).await {
                    Ok(ops) => {
                        let ids = match (ops.first(), ops.last()) {
                            (Some(a), Some(b)) if a.id == b.id => format!("id {}", a.id.0),
                            (Some(a), Some(b)) => format!("ids {} to {}", a.id.0, b.id.0),
                            _ => "no ids".into(),
                        };
                        outln!(
                            "queued {n} operations ({ids}) in {:.2} s",
                            started.elapsed().as_secs_f64()
                        );
                        Ok(Outcome::Ok)
                    }
                    Err(StoreError::NotFound(what)) => bail!(
                        "{what}: every device must be provisioned first; nothing was queued"
                    ),
                    Err(e) => Err(e.into()),
                }
            })
        }
        OpsCommand::Show { id, json, store } => store.with_store(|store| async move {
            let op = store
                .get_operation(OperationId(id))
                .await?
                .with_context(|| format!("no operation {id}; list them with `omnidm ops list`"))?;
            if json {
                outln!("{}", op_json(&op));
            } else {
                outln!("operation {}  device {}  state {}", op.id, op.device_id, op.state.as_str());
                outln!("created {}  updated {}  attempts {}", when(Some(op.created_at)), when(Some(op.updated_at)), op.attempts);
                let rows: Vec<Vec<String>> = op
                    .commands
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let outcome = op.outcome_of(i);
                        vec![
                            i.to_string(),
                            c.name().to_owned(),
                            command_target(c),
                            outcome.map_or_else(|| "-".into(), |o| o.status.to_string()),
                            outcome.map_or_else(String::new, |o| {
                                o.results
                                    .iter()
                                    .map(|r| format!("{}={}", r.path, r.value.as_ref().map_or("", |v| v.data.as_str())))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            }),
                        ]
                    })
                    .collect();
                print_table(&["#", "COMMAND", "TARGET", "STATUS", "RESULT"], &rows)?;
            }
            Ok(Outcome::Ok)
        }),
        OpsCommand::List { device, state, json, store } => store.with_store(|store| async move {
            let filter = OpFilter {
                device_id: device.map(DeviceId::new).transpose().context("--device")?,
                state: state
                    .map(|s| OpState::parse(&s).with_context(|| format!("--state {s:?}: queued, in_session, awaiting_report, succeeded, failed, expired or cancelled")))
                    .transpose()?,
                ..OpFilter::default()
            };
            let ops = store.list_operations(&filter).await?;
            if json {
                for op in &ops {
                    outln!("{}", op_json(op));
                }
            } else {
                let rows: Vec<Vec<String>> = ops
                    .iter()
                    .map(|op| {
                        vec![
                            op.id.to_string(),
                            op.device_id.to_string(),
                            op.state.as_str().into(),
                            op.commands.len().to_string(),
                            when(Some(op.updated_at)),
                        ]
                    })
                    .collect();
                print_table(&["ID", "DEVICE", "STATE", "COMMANDS", "UPDATED"], &rows)?;
            }
            Ok(Outcome::Ok)
        }),
        OpsCommand::Cancel { id, store } => store.with_store(|store| async move {
            match store.cancel(OperationId(id), crate::server::dm::now_ts()).await {
                Ok(op) => {
                    outln!("cancelled operation {}", op.id);
                    Ok(Outcome::Ok)
                }
                Err(e @ StoreError::IllegalTransition { .. }) => bail!("cannot cancel: {e} (only queued operations can be cancelled)"),
                Err(StoreError::NotFound(_)) => bail!("no operation {id}"),
                Err(e) => Err(e.into()),
            }
        }),
    }
}

/// The command list of `submit` and `fan-out`: specs, or JSON from a file.
pub(super) fn read_commands(
    specs: &[String],
    file: Option<&PathBuf>,
) -> anyhow::Result<Vec<OpCommand>> {
    let commands: Vec<OpCommand> = match file {
        Some(file) => {
            let text = super::io::read_input(file)?;
            serde_json::from_slice(&text.bytes)
                .with_context(|| format!("{}: expected a JSON list of commands", text.name))?
        }
        None => specs
            .iter()
            .map(|s| parse_spec(s))
            .collect::<anyhow::Result<_>>()?,
    };
    if commands.is_empty() {
        bail!("no commands: add e.g. get:./DevInfo/Mod");
    }
    Ok(commands)
}

/// An operation as the CLI submits it.
fn new_operation(
    device: DeviceId,
    commands: Vec<OpCommand>,
    expires_in: Option<u64>,
    notify: bool,
    now: omnidm_core::Timestamp,
) -> NewOperation {
    let mut op = NewOperation::new(device, commands);
    op.expires_at = expires_in
        .map(|s| now.plus_millis(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)));
    op.submitted_by = Some("cli".into());
    op.notify = notify;
    op
}

fn command_target(c: &OpCommand) -> String {
    match c {
        OpCommand::Get { path } | OpCommand::Delete { path } => path.to_string(),
        OpCommand::Replace { path, value } => format!("{path} = {}", value.data),
        OpCommand::Add { path, value } => match value {
            Some(v) => format!("{path} = {}", v.data),
            None => path.to_string(),
        },
        OpCommand::Exec { path, .. } => path.to_string(),
        OpCommand::Copy { from, to } => format!("{from} → {to}"),
        OpCommand::Atomic(inner) | OpCommand::Sequence(inner) => {
            format!("{} commands", inner.len())
        }
        OpCommand::UserInteraction(p) => p.text.clone(),
    }
}

fn op_json(op: &Operation) -> serde_json::Value {
    json!({
        "id": op.id.0,
        "device_id": op.device_id.as_str(),
        "state": op.state.as_str(),
        "commands": op.commands,
        "outcomes": op.outcomes,
        "created_at": when(Some(op.created_at)),
        "updated_at": when(Some(op.updated_at)),
        "expires_at": op.expires_at.map(|t| when(Some(t))),
        "attempts": op.attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_in_order() {
        let c = parse_spec("replace:./Vendor/X=42@int").unwrap();
        assert!(
            matches!(c, OpCommand::Replace { ref value, .. } if value.value_type == ValueType::Int && value.data == "42")
        );
        assert!(matches!(
            parse_spec("add:./Vendor/Dir").unwrap(),
            OpCommand::Add { value: None, .. }
        ));
        assert!(
            matches!(parse_spec("exec:./FUMO/fw1/Update#c1").unwrap(), OpCommand::Exec { correlator: Some(ref c), .. } if c == "c1")
        );
        assert!(
            parse_spec("frobnicate:./X")
                .unwrap_err()
                .to_string()
                .contains("unknown command")
        );
        assert!(
            parse_spec("get")
                .unwrap_err()
                .to_string()
                .contains("KIND:ARGUMENT")
        );
        // The error names the API's formats (docs/wsi.md), not only OMA DM's wire names.
        let err = parse_spec("replace:./X=1@nope").unwrap_err().to_string();
        assert!(
            err.contains("unknown format") && err.contains("string") && err.contains("base64"),
            "{err}"
        );
        // Both spellings are understood.
        for (spec, format) in [
            ("@b64", "base64"),
            ("@base64", "base64"),
            ("@chr", "string"),
        ] {
            let OpCommand::Replace { value, .. } =
                parse_spec(&format!("replace:./X=AA{spec}")).unwrap()
            else {
                panic!("not a replace")
            };
            assert_eq!(value.value_type.as_str(), format);
        }
    }
}
