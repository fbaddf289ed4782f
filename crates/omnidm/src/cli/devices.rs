//! `omnidm devices …`: provisioning devices with their DM account, and looking at them.
//!
//! Secrets given here are turned into DM digest keys at once (`b64(md5(name:secret))`, all
//! that MD5, HMAC and package 0 need); the store never sees them.

use super::Outcome;
use super::local::{StoreArgs, print_table, when};
use anyhow::{Context as _, bail};
use omnidm_core::{
    ClientAuth, DeviceFilter, DeviceId, DmAccount, NewDevice, NodePath, Protocol, Store, StoreError,
};
use serde_json::json;
use std::io::BufRead as _;
use std::path::PathBuf;

/// Device subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DevicesCommand {
    /// Provisions an OMA DM device with its DM account.
    Add(AddArgs),
    /// Provisions many devices from JSON lines (e.g. the output of `omnidm sim --print-provisioning`).
    Import {
        /// File with one JSON object per line (`-` = standard input).
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lists devices.
    List {
        /// Only this manufacturer.
        #[arg(long)]
        manufacturer: Option<String>,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only devices with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Shows one device.
    Show {
        /// Device id, e.g. IMEI:493005100592800.
        id: String,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Shows the cached management tree of a device (last values the server saw).
    Tree {
        /// Device id.
        id: String,
        /// Subtree root.
        #[arg(long, default_value = ".")]
        path: String,
        /// Levels below the root.
        #[arg(long)]
        depth: Option<u32>,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Deletes a device with its tree cache and operations.
    Delete {
        /// Device id.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `omnidm devices add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Device id as the device sends it (DevId, e.g. IMEI:493005100592800).
    id: String,
    /// How the device authenticates: basic, md5 or hmac.
    #[arg(long, default_value = "md5")]
    auth: String,
    /// The device's DM user name (AAuthName); defaults to the device id.
    #[arg(long)]
    client_name: Option<String>,
    /// The device's DM secret (AAuthSecret).
    #[arg(long)]
    client_secret: String,
    /// Our server id as the device knows it (DMAcc ServerID).
    #[arg(long, default_value = "omnidm")]
    server_id: String,
    /// The server secret the device uses to check us.
    #[arg(long)]
    server_secret: String,
    /// A label (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Quirk profile: `standard`, or `constrained` for clients that can do neither
    /// multi-message packages nor large objects (GUIDE §3). Without it, `[[dm.quirks]]` rules
    /// of the server configuration decide.
    #[arg(long)]
    quirks: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// One line of `devices import`.
#[derive(Debug, serde::Deserialize)]
struct ImportLine {
    device_id: String,
    #[serde(default = "default_auth")]
    auth: String,
    client_name: Option<String>,
    client_secret: String,
    #[serde(default = "default_server_id")]
    server_id: String,
    server_secret: String,
    #[serde(default)]
    tags: Vec<String>,
}

fn default_auth() -> String {
    "md5".into()
}

fn default_server_id() -> String {
    "omnidm".into()
}

fn new_device(
    id: &str,
    auth: &str,
    client_name: Option<&str>,
    client_secret: &str,
    server_id: &str,
    server_secret: &str,
) -> anyhow::Result<NewDevice> {
    let id = DeviceId::new(id).with_context(|| format!("device id {id:?}"))?;
    let auth = ClientAuth::parse(&auth.to_ascii_lowercase())
        .with_context(|| format!("--auth {auth:?}: use basic, md5 or hmac"))?;
    let mut device = NewDevice::new(id.clone(), Protocol::OmaDm);
    device.dm = Some(DmAccount::from_secrets(
        auth,
        client_name.unwrap_or(id.as_str()),
        client_secret,
        server_id,
        server_secret,
    ));
    Ok(device)
}

/// Runs a `devices` subcommand.
pub fn run(cmd: DevicesCommand) -> anyhow::Result<Outcome> {
    match cmd {
        DevicesCommand::Add(a) => {
            let mut device = new_device(
                &a.id,
                &a.auth,
                a.client_name.as_deref(),
                &a.client_secret,
                &a.server_id,
                &a.server_secret,
            )?;
            device.tags = a.tags;
            if let Some(q) = &a.quirks
                && crate::server::dm::quirks::profile(q).is_none()
            {
                bail!(
                    "--quirks {q:?}: known profiles are {}",
                    crate::server::dm::quirks::PROFILES.join(", ")
                );
            }
            device.quirk_profile = a.quirks;
            a.store.with_store(|store| async move {
                let device = device.into_device(crate::server::dm::now_ts());
                match store.create_device(&device).await {
                    Ok(()) => {
                        outln!("added {}", device.id);
                        Ok(Outcome::Ok)
                    }
                    Err(StoreError::Conflict(_)) => bail!(
                        "device {} exists already; delete it first or pick another id",
                        device.id
                    ),
                    Err(e) => Err(e.into()),
                }
            })
        }
        DevicesCommand::Import { file, store } => {
            let reader: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file)
                        .with_context(|| format!("opening {}", file.display()))?,
                ))
            };
            let mut devices = Vec::new();
            for (n, line) in reader.lines().enumerate() {
                let line = line.context("reading the import file")?;
                if line.trim().is_empty() {
                    continue;
                }
                let l: ImportLine = serde_json::from_str(&line)
                    .with_context(|| format!("line {}: not a device object", n + 1))?;
                let mut d = new_device(
                    &l.device_id,
                    &l.auth,
                    l.client_name.as_deref(),
                    &l.client_secret,
                    &l.server_id,
                    &l.server_secret,
                )
                .with_context(|| format!("line {}", n + 1))?;
                d.tags = l.tags;
                devices.push(d);
            }
            store.with_store(|store| async move {
                let now = crate::server::dm::now_ts();
                let (mut added, mut existing) = (0usize, 0usize);
                for d in devices {
                    match store.create_device(&d.into_device(now)).await {
                        Ok(()) => added += 1,
                        Err(StoreError::Conflict(_)) => existing += 1,
                        Err(e) => return Err(e.into()),
                    }
                }
                outln!("added {added} devices ({existing} existed already)");
                Ok(Outcome::Ok)
            })
        }
        DevicesCommand::List {
            manufacturer,
            model,
            tag,
            limit,
            json,
            store,
        } => store.with_store(|store| async move {
            let filter = DeviceFilter {
                manufacturer,
                model,
                tag,
                ..DeviceFilter::default()
            };
            let page = store.list_devices(&filter, None, limit).await?;
            if json {
                for d in &page.devices {
                    outln!("{}", device_json(d));
                }
            } else {
                let rows: Vec<Vec<String>> = page
                    .devices
                    .iter()
                    .map(|d| {
                        vec![
                            d.id.to_string(),
                            d.info.manufacturer.clone().unwrap_or_else(|| "-".into()),
                            d.info.model.clone().unwrap_or_else(|| "-".into()),
                            d.info
                                .firmware_version
                                .clone()
                                .unwrap_or_else(|| "-".into()),
                            d.session_count.to_string(),
                            when(d.last_seen),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "DEVICE",
                        "MANUFACTURER",
                        "MODEL",
                        "FIRMWARE",
                        "SESSIONS",
                        "LAST SEEN",
                    ],
                    &rows,
                )?;
                if page.next.is_some() {
                    eprintln!("(more devices: raise --limit)");
                }
            }
            Ok(Outcome::Ok)
        }),
        DevicesCommand::Show { id, json, store } => store.with_store(|store| async move {
            let id = DeviceId::new(id.clone()).with_context(|| format!("device id {id:?}"))?;
            let d = store
                .get_device(&id)
                .await?
                .with_context(|| format!("no device {id}; list them with `omnidm devices list`"))?;
            if json {
                outln!("{}", device_json(&d));
            } else {
                let dm = d.dm.as_ref();
                let rows = vec![
                    vec!["id".into(), d.id.to_string()],
                    vec!["protocol".into(), d.protocol.as_str().into()],
                    vec![
                        "auth".into(),
                        dm.map_or("-", |a| a.client_auth.as_str()).into(),
                    ],
                    vec![
                        "client name".into(),
                        dm.map_or("-".into(), |a| a.client_name.clone()),
                    ],
                    vec![
                        "server id".into(),
                        dm.map_or("-".into(), |a| a.server_id.clone()),
                    ],
                    vec![
                        "manufacturer".into(),
                        d.info.manufacturer.clone().unwrap_or_default(),
                    ],
                    vec!["model".into(), d.info.model.clone().unwrap_or_default()],
                    vec![
                        "firmware".into(),
                        d.info.firmware_version.clone().unwrap_or_default(),
                    ],
                    vec!["tags".into(), d.tags.join(", ")],
                    vec!["quirks".into(), d.quirk_profile.clone().unwrap_or_default()],
                    vec!["first seen".into(), when(d.first_seen)],
                    vec!["last seen".into(), when(d.last_seen)],
                    vec!["sessions".into(), d.session_count.to_string()],
                ];
                print_table(&["FIELD", "VALUE"], &rows)?;
            }
            Ok(Outcome::Ok)
        }),
        DevicesCommand::Tree {
            id,
            path,
            depth,
            json,
            store,
        } => store.with_store(|store| async move {
            let id = DeviceId::new(id.clone()).with_context(|| format!("device id {id:?}"))?;
            let root = NodePath::dm(&path).with_context(|| format!("--path {path:?}"))?;
            // An unknown device is an error, not an empty tree.
            if store.get_device(&id).await?.is_none() {
                bail!("no device {id}; list them with `omnidm devices list`");
            }
            let entries = store.read_tree(&id, &root, depth).await?;
            if json {
                for e in &entries {
                    outln!(
                        "{}",
                        json!({"path": e.path.to_string(), "format": e.format.as_str(),
                               "type": e.mime_type, "value": e.value,
                               "updated_at": when(Some(e.updated_at))})
                    );
                }
            } else {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            e.path.to_string(),
                            e.format.as_str().into(),
                            e.value.clone().unwrap_or_default(),
                            when(Some(e.updated_at)),
                        ]
                    })
                    .collect();
                print_table(&["PATH", "FORMAT", "VALUE", "UPDATED"], &rows)?;
            }
            Ok(Outcome::Ok)
        }),
        DevicesCommand::Delete { id, store } => store.with_store(|store| async move {
            let id = DeviceId::new(id.clone()).with_context(|| format!("device id {id:?}"))?;
            if store.delete_device(&id).await? {
                outln!("deleted {id}");
                Ok(Outcome::Ok)
            } else {
                bail!("no device {id}")
            }
        }),
    }
}

/// A device for scripts: never keys or nonces.
fn device_json(d: &omnidm_core::Device) -> serde_json::Value {
    json!({
        "id": d.id.as_str(),
        "protocol": d.protocol.as_str(),
        "auth": d.dm.as_ref().map(|a| a.client_auth.as_str()),
        "client_name": d.dm.as_ref().map(|a| a.client_name.clone()),
        "server_id": d.dm.as_ref().map(|a| a.server_id.clone()),
        "info": d.info,
        "tags": d.tags,
        "quirk_profile": d.quirk_profile,
        "first_seen": d.first_seen.map(|t| when(Some(t))),
        "last_seen": d.last_seen.map(|t| when(Some(t))),
        "session_count": d.session_count,
        "created_at": when(Some(d.created_at)),
    })
}
