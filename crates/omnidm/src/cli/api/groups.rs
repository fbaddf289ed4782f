//! `omnidm api groups`: static device lists and filter-defined groups.

use serde_json::{Value, json};

use super::{Client, Query, print_done, print_items, print_json, print_object};

/// Group subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GroupsCommand {
    /// Creates a group: `--static` with explicit members, or a filter on what devices report.
    #[command(group(
        clap::ArgGroup::new("kind")
            .required(true)
            .multiple(true)
            .args(["is_static", "filter_manufacturer", "filter_model", "filter_firmware", "filter_tag"])
    ))]
    Create {
        /// Id: 1–64 of `a-z 0-9 - _`.
        id: String,
        /// What the group is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Members are added and removed explicitly.
        #[arg(
            long = "static",
            conflicts_with_all = ["filter_manufacturer", "filter_model", "filter_firmware", "filter_tag"]
        )]
        is_static: bool,
        /// Initial member (repeat for more).
        #[arg(
            long,
            value_name = "DEVICE",
            conflicts_with_all = ["filter_manufacturer", "filter_model", "filter_firmware", "filter_tag"]
        )]
        member: Vec<String>,
        /// Members: devices reporting this manufacturer.
        #[arg(long, value_name = "NAME")]
        filter_manufacturer: Option<String>,
        /// Members: devices reporting this model.
        #[arg(long, value_name = "NAME")]
        filter_model: Option<String>,
        /// Members: devices reporting this firmware version.
        #[arg(long, value_name = "VERSION")]
        filter_firmware: Option<String>,
        /// Members: devices carrying this tag (repeat: all of them).
        #[arg(long, value_name = "TAG")]
        filter_tag: Vec<String>,
    },
    /// Lists groups.
    List,
    /// Shows a group.
    Show {
        /// Group id.
        id: String,
    },
    /// Changes a group's description.
    Update {
        /// Group id.
        id: String,
        /// The new description.
        #[arg(long)]
        description: String,
    },
    /// Deletes a group (its devices stay).
    Delete {
        /// Group id.
        id: String,
    },
    /// Adds devices to a static group.
    Add {
        /// Group id.
        id: String,
        /// Device ids.
        #[arg(required = true)]
        devices: Vec<String>,
    },
    /// Removes a device from a static group.
    Remove {
        /// Group id.
        id: String,
        /// Device id.
        device: String,
    },
    /// Lists a group's member devices (filter groups: those matching now).
    Members {
        /// Group id.
        id: String,
    },
}

/// The body of `POST /groups`.
fn create_body(cmd: &GroupsCommand) -> Value {
    let GroupsCommand::Create {
        id,
        description,
        is_static,
        member,
        filter_manufacturer,
        filter_model,
        filter_firmware,
        filter_tag,
    } = cmd
    else {
        return Value::Null;
    };
    if *is_static {
        json!({"id": id, "description": description, "kind": "static", "members": member})
    } else {
        let mut filter = serde_json::Map::new();
        let mut set = |key: &str, v: &Option<String>| {
            if let Some(v) = v {
                filter.insert(key.into(), json!(v));
            }
        };
        set("manufacturer", filter_manufacturer);
        set("model", filter_model);
        set("firmware_version", filter_firmware);
        if !filter_tag.is_empty() {
            filter.insert("tags".into(), json!(filter_tag));
        }
        json!({"id": id, "description": description, "kind": "filter", "filter": filter})
    }
}

/// A group's filter in one cell: `model=X,tags=a+b`.
fn filter_cell(group: &Value) -> String {
    let Some(filter) = group.get("filter").and_then(Value::as_object) else {
        return "-".into();
    };
    filter
        .iter()
        .map(|(k, v)| match v {
            Value::Array(a) => format!(
                "{k}={}",
                a.iter()
                    .map(|t| t.as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("+")
            ),
            other => format!("{k}={}", other.as_str().unwrap_or_default()),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs an `api groups` subcommand.
pub async fn run(client: &Client, cmd: GroupsCommand) -> anyhow::Result<()> {
    match cmd {
        GroupsCommand::Create { .. } => {
            let body = create_body(&cmd);
            let answer = client.post(&["groups"], &body).await?;
            let id = super::cell(&answer, "id");
            let how = if body.get("kind").and_then(Value::as_str) == Some("static") {
                format!("static; add devices with `omnidm api groups add {id} DEVICE…`")
            } else {
                format!("filter {}", filter_cell(&answer))
            };
            print_done(client, &answer, &format!("created group {id} ({how})"))
        }
        GroupsCommand::List => {
            let mut groups = client
                .get_all(&["groups"], &Query::new(), "cursor", "groups")
                .await?;
            if !client.json {
                for g in &mut groups {
                    let f = filter_cell(g);
                    if let Some(obj) = g.as_object_mut() {
                        obj.insert("filter".into(), json!(f));
                    }
                }
            }
            print_items(
                client,
                groups,
                &[
                    ("ID", "id"),
                    ("KIND", "kind"),
                    ("FILTER", "filter"),
                    ("CREATED", "created_at"),
                    ("DESCRIPTION", "description"),
                ],
                "no groups; create one with `omnidm api groups create ID --static`",
            )
        }
        GroupsCommand::Show { id } => {
            print_object(client, &client.get(&["groups", &id], &Query::new()).await?)
        }
        GroupsCommand::Update { id, description } => {
            let answer = client
                .patch(&["groups", &id], &json!({"description": description}))
                .await?;
            print_object(client, &answer)
        }
        GroupsCommand::Delete { id } => {
            let answer = client.delete(&["groups", &id]).await?;
            print_done(client, &answer, &format!("deleted group {id}"))
        }
        GroupsCommand::Add { id, devices } => {
            let answer = client
                .post(&["groups", &id, "members"], &json!({"devices": devices}))
                .await?;
            print_done(
                client,
                &answer,
                &format!("added {} device(s) to group {id}", devices.len()),
            )
        }
        GroupsCommand::Remove { id, device } => {
            let answer = client.delete(&["groups", &id, "members", &device]).await?;
            print_done(
                client,
                &answer,
                &format!("removed {device} from group {id}"),
            )
        }
        GroupsCommand::Members { id } => {
            let members = client
                .get_all(
                    &["groups", &id, "members"],
                    &Query::new(),
                    "cursor",
                    "members",
                )
                .await?;
            if client.json {
                return print_json(&Value::Array(members));
            }
            if members.is_empty() {
                eprintln!("group {id} has no members");
            }
            let mut text = String::new();
            for m in &members {
                text.push_str(&super::render(m));
                text.push('\n');
            }
            super::super::io::write_stdout(text.as_bytes())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct T {
        #[command(subcommand)]
        cmd: GroupsCommand,
    }

    fn parse(args: &[&str]) -> Result<GroupsCommand, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|t| t.cmd)
    }

    #[test]
    fn create_bodies() {
        let cmd = parse(&[
            "create", "beta", "--static", "--member", "d1", "--member", "d2",
        ])
        .unwrap();
        assert_eq!(
            create_body(&cmd),
            json!({"id":"beta","description":"","kind":"static","members":["d1","d2"]})
        );
        let cmd = parse(&[
            "create",
            "m",
            "--filter-model",
            "X1",
            "--filter-tag",
            "a",
            "--filter-tag",
            "b",
        ])
        .unwrap();
        let body = create_body(&cmd);
        assert_eq!(body["kind"], "filter");
        assert_eq!(body["filter"], json!({"model":"X1","tags":["a","b"]}));
        assert_eq!(filter_cell(&body), "model=X1,tags=a+b");
        // Neither kind, both kinds, members of a filter group: usage errors.
        assert!(parse(&["create", "g"]).is_err());
        assert!(parse(&["create", "g", "--static", "--filter-model", "X"]).is_err());
        assert!(parse(&["create", "g", "--filter-model", "X", "--member", "d"]).is_err());
        assert!(parse(&["create", "g", "--member", "d"]).is_err());
    }
}
