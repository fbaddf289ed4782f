//! `omnidm api devices`: provisioning devices and reading what the server knows about them.

use serde_json::{Value, json};

use super::{Client, Query, print_done, print_items, print_json, print_object};

/// Client authentication of a DM account.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Auth {
    /// `syncml:auth-basic`.
    Basic,
    /// `syncml:auth-md5`.
    Md5,
    /// `syncml:auth-MAC` (HMAC-MD5).
    Hmac,
}

impl Auth {
    fn as_str(self) -> &'static str {
        match self {
            Auth::Basic => "basic",
            Auth::Md5 => "md5",
            Auth::Hmac => "hmac",
        }
    }
}

/// Device subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DevicesCommand {
    /// Provisions an OMA DM device with its DM account.
    Add {
        /// Device id, e.g. IMEI:493005100592800.
        id: String,
        /// How the device authenticates.
        #[arg(long, value_enum, default_value = "md5")]
        auth: Auth,
        /// The device's user name (default: the device id).
        #[arg(long, value_name = "NAME")]
        client_name: Option<String>,
        /// The device's secret.
        #[arg(
            long,
            value_name = "SECRET",
            env = "OMNIDM_CLIENT_SECRET",
            hide_env_values = true
        )]
        client_secret: String,
        /// The secret the server authenticates to the device with.
        #[arg(
            long,
            value_name = "SECRET",
            env = "OMNIDM_SERVER_SECRET",
            hide_env_values = true
        )]
        server_secret: String,
        /// The server id as the device knows it (default: the server's configured id).
        #[arg(long, value_name = "ID")]
        server_id: Option<String>,
        /// A label (repeat for more).
        #[arg(long)]
        tag: Vec<String>,
        /// Quirk profile to apply.
        #[arg(long, value_name = "NAME")]
        quirk_profile: Option<String>,
    },
    /// Lists devices (all pages).
    List {
        /// Only this manufacturer.
        #[arg(long)]
        manufacturer: Option<String>,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only this firmware version.
        #[arg(long, value_name = "VERSION")]
        firmware: Option<String>,
        /// Only devices carrying this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Shows a device.
    Show {
        /// Device id.
        id: String,
    },
    /// Shows the cached management tree of a device: last known values with their age.
    Tree {
        /// Device id.
        id: String,
        /// Root of the read.
        #[arg(long, default_value = ".")]
        path: String,
        /// Levels below the root (default: all).
        #[arg(long, value_name = "N")]
        depth: Option<u32>,
    },
    /// Changes a device's tags or quirk profile.
    Update {
        /// Device id.
        id: String,
        /// The device's tags, replacing the current ones (repeatable; `--tag ''` clears).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Option<Vec<String>>,
        /// Quirk profile (`standard`, `constrained`), or `none` to let the server's rules decide.
        #[arg(long, value_name = "PROFILE|none")]
        quirks: Option<String>,
    },
    /// Deletes a device.
    Delete {
        /// Device id.
        id: String,
    },
}

/// A device row: the reported identity flattened next to the server's fields.
fn device_row(d: &Value) -> Value {
    let info = |k: &str| {
        d.get("info")
            .and_then(|i| i.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    json!({
        "id": d.get("id"),
        "manufacturer": info("manufacturer"),
        "model": info("model"),
        "firmware": info("firmware_version"),
        "tags": d.get("tags"),
        "last_seen": d.get("last_seen"),
        "sessions": d.get("session_count"),
    })
}

/// Seconds as `12s`, `5m`, `3h`, `2d`.
fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Runs an `api devices` subcommand.
pub async fn run(client: &Client, cmd: DevicesCommand) -> anyhow::Result<()> {
    match cmd {
        DevicesCommand::Add {
            id,
            auth,
            client_name,
            client_secret,
            server_secret,
            server_id,
            tag,
            quirk_profile,
        } => {
            let body = json!({
                "id": id,
                "dm": {
                    "auth": auth.as_str(),
                    "client_name": client_name,
                    "client_secret": client_secret,
                    "server_id": server_id,
                    "server_secret": server_secret,
                },
                "tags": tag,
                "quirk_profile": quirk_profile,
            });
            let answer = client.post(&["devices"], &body).await?;
            print_done(
                client,
                &answer,
                &format!("added device {id}: it can now start a DM session"),
            )
        }
        DevicesCommand::List {
            manufacturer,
            model,
            firmware,
            tag,
        } => {
            let q = Query::new()
                .opt("manufacturer", manufacturer)
                .opt("model", model)
                .opt("firmware_version", firmware)
                .opt("tag", tag);
            let devices = client
                .get_all(&["devices"], &q, "cursor", "devices")
                .await?;
            if client.json {
                return print_json(&Value::Array(devices));
            }
            print_items(
                client,
                devices.iter().map(device_row).collect(),
                &[
                    ("ID", "id"),
                    ("MANUFACTURER", "manufacturer"),
                    ("MODEL", "model"),
                    ("FIRMWARE", "firmware"),
                    ("TAGS", "tags"),
                    ("LAST SEEN", "last_seen"),
                    ("SESSIONS", "sessions"),
                ],
                "no devices",
            )
        }
        DevicesCommand::Show { id } => {
            print_object(client, &client.get(&["devices", &id], &Query::new()).await?)
        }
        DevicesCommand::Tree { id, path, depth } => {
            let q = Query::new().opt("path", Some(path)).opt("depth", depth);
            let tree = client.get(&["devices", &id, "tree"], &q).await?;
            if client.json {
                return print_json(&tree);
            }
            let nodes: Vec<Value> = tree
                .get("nodes")
                .and_then(Value::as_array)
                .map(|nodes| {
                    nodes
                        .iter()
                        .map(|n| {
                            let mut n = n.clone();
                            let a = n.get("age_seconds").and_then(Value::as_f64).map(age);
                            if let (Some(obj), Some(a)) = (n.as_object_mut(), a) {
                                obj.insert("age".into(), json!(a));
                            }
                            n
                        })
                        .collect()
                })
                .unwrap_or_default();
            print_items(
                client,
                nodes,
                &[
                    ("PATH", "path"),
                    ("FORMAT", "format"),
                    ("VALUE", "value"),
                    ("AGE", "age"),
                ],
                "nothing cached there yet (or no grant covers it); values arrive with the \
                 device's sessions: queue a get with `omnidm api ops submit`",
            )
        }
        DevicesCommand::Update { id, tags, quirks } => {
            let mut body = serde_json::Map::new();
            if let Some(tags) = tags {
                let tags: Vec<String> = tags.into_iter().filter(|t| !t.is_empty()).collect();
                body.insert("tags".into(), json!(tags));
            }
            if let Some(q) = quirks {
                let profile = if q.eq_ignore_ascii_case("none") {
                    Value::Null
                } else {
                    json!(q)
                };
                body.insert("quirk_profile".into(), profile);
            }
            if body.is_empty() {
                anyhow::bail!("nothing to change; give --tag or --quirks");
            }
            let answer = client
                .patch(&["devices", &id], &Value::Object(body))
                .await?;
            print_object(client, &answer)
        }
        DevicesCommand::Delete { id } => {
            let answer = client.delete(&["devices", &id]).await?;
            print_done(client, &answer, &format!("deleted device {id}"))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_ages() {
        let d = json!({"id":"IMEI:1","info":{"model":"M","manufacturer":null},"tags":["a"],
            "session_count":2,"last_seen":null});
        let row = device_row(&d);
        assert_eq!(super::super::cell(&row, "model"), "M");
        assert_eq!(super::super::cell(&row, "manufacturer"), "-");
        assert_eq!(super::super::cell(&row, "sessions"), "2");
        assert_eq!(
            (age(5.4), age(61.0), age(7200.0), age(200_000.0)),
            ("5s".into(), "1m".into(), "2h".into(), "2d".into())
        );
    }
}
