//! `omnidm api apps|keys|grants`: applications, their keys and their grants.

use serde_json::{Value, json};

use super::{Client, Query, print_done, print_items, print_json, print_object};

/// Role of a new application.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Role {
    /// Manages applications, keys, grants, groups and devices.
    Admin,
    /// Reaches devices through its grants.
    Application,
}

/// Application subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// Creates an application and its first API key (printed once).
    Create {
        /// Id: 1–64 of `a-z 0-9 - _`.
        id: String,
        /// Role.
        #[arg(long, value_enum, default_value = "application")]
        role: Role,
        /// What the application is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Requests per second.
        #[arg(long, value_name = "N")]
        rate_limit: Option<u32>,
        /// Requests per UTC day.
        #[arg(long, value_name = "N")]
        daily_quota: Option<u64>,
        /// The first key expires after this many seconds.
        #[arg(long, value_name = "SECS")]
        key_expires_in: Option<u64>,
    },
    /// Lists applications.
    List,
    /// Shows an application.
    Show {
        /// Application id.
        id: String,
    },
    /// Changes an application's description, rate limit or daily quota (`none` removes a
    /// limit).
    Update {
        /// Application id.
        id: String,
        /// What the application is for.
        #[arg(long)]
        description: Option<String>,
        /// Requests per second, or `none`.
        #[arg(long, value_name = "N|none")]
        rate_limit: Option<String>,
        /// Requests per UTC day, or `none`.
        #[arg(long, value_name = "N|none")]
        daily_quota: Option<String>,
    },
    /// Disables an application: its keys stop working until it is enabled.
    Disable {
        /// Application id.
        id: String,
    },
    /// Enables a disabled application.
    Enable {
        /// Application id.
        id: String,
    },
    /// Deletes an application with its keys and grants.
    Delete {
        /// Application id.
        id: String,
    },
}

/// Key subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Creates a key for an application (printed once).
    Create {
        /// Application id.
        app: String,
        /// The key expires after this many seconds.
        #[arg(long, value_name = "SECS")]
        expires_in: Option<u64>,
    },
    /// Lists an application's keys (never the secrets).
    List {
        /// Application id.
        app: String,
    },
    /// Revokes a key at once.
    Revoke {
        /// Application id.
        app: String,
        /// Key id (as listed; the part after `omk_`).
        key_id: String,
    },
}

/// The permissions a grant can give.
const PERMISSIONS: [&str; 7] = ["get", "replace", "add", "delete", "exec", "copy", "ui"];

/// Grant subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GrantsCommand {
    /// Allows an application some commands on some subtrees of a group's devices.
    Create {
        /// Application id.
        app: String,
        /// On which devices: a group id.
        #[arg(long)]
        group: String,
        /// What, comma-separated: get, replace, add, delete, exec, copy, ui.
        #[arg(long, value_delimiter = ',', required = true, value_parser = PERMISSIONS)]
        allow: Vec<String>,
        /// Where: a URI pattern (`*` one segment, `**` a whole subtree); repeat for more.
        #[arg(long, required = true, value_name = "PATTERN")]
        subtree: Vec<String>,
    },
    /// Lists grants.
    List {
        /// Only this application's.
        #[arg(long)]
        app: Option<String>,
    },
    /// Deletes a grant.
    Delete {
        /// Grant id.
        id: u64,
    },
}

/// Prints a key that is shown this once.
fn print_new_key(client: &Client, answer: &Value, key: &Value, what: &str) -> anyhow::Result<()> {
    if client.json {
        return print_json(answer);
    }
    let secret = key.get("key").and_then(Value::as_str).unwrap_or("-");
    outln!("{what}");
    outln!();
    outln!("    {secret}");
    outln!();
    outln!("This key is shown only now: store it somewhere safe. Use it as");
    outln!("`Authorization: Bearer <key>`, or `OMNIDM_API_KEY=<key> omnidm api …`.");
    Ok(())
}

/// Runs an `api apps` subcommand.
pub async fn run_apps(client: &Client, cmd: AppsCommand) -> anyhow::Result<()> {
    match cmd {
        AppsCommand::Create {
            id,
            role,
            description,
            rate_limit,
            daily_quota,
            key_expires_in,
        } => {
            let role = match role {
                Role::Admin => "admin",
                Role::Application => "application",
            };
            let answer = client
                .post(
                    &["apps"],
                    &json!({
                        "id": id, "description": description, "role": role,
                        "rate_limit": rate_limit, "daily_quota": daily_quota,
                        "key_expires_in": key_expires_in,
                    }),
                )
                .await?;
            let key = answer.get("key").cloned().unwrap_or(Value::Null);
            let what = format!(
                "created application {id} (role {role}) with key {}:",
                super::cell(&key, "id")
            );
            print_new_key(client, &answer, &key, &what)
        }
        AppsCommand::List => {
            let apps = client
                .get_all(&["apps"], &Query::new(), "cursor", "applications")
                .await?;
            print_items(
                client,
                apps,
                &[
                    ("ID", "id"),
                    ("ROLE", "role"),
                    ("DISABLED", "disabled"),
                    ("RATE/S", "rate_limit"),
                    ("DAILY", "daily_quota"),
                    ("CREATED", "created_at"),
                    ("DESCRIPTION", "description"),
                ],
                "no applications",
            )
        }
        AppsCommand::Show { id } => {
            print_object(client, &client.get(&["apps", &id], &Query::new()).await?)
        }
        AppsCommand::Update {
            id,
            description,
            rate_limit,
            daily_quota,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            if let Some(r) = rate_limit {
                body.insert("rate_limit".into(), limit_value("--rate-limit", &r)?);
            }
            if let Some(q) = daily_quota {
                body.insert("daily_quota".into(), limit_value("--daily-quota", &q)?);
            }
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to change; give --description, --rate-limit or --daily-quota"
                );
            }
            let answer = client.patch(&["apps", &id], &Value::Object(body)).await?;
            print_object(client, &answer)
        }
        AppsCommand::Disable { id } => {
            let answer = client
                .patch(&["apps", &id], &json!({"disabled": true}))
                .await?;
            print_done(
                client,
                &answer,
                &format!(
                    "disabled application {id}: its keys are refused until `omnidm api apps enable {id}`"
                ),
            )
        }
        AppsCommand::Enable { id } => {
            let answer = client
                .patch(&["apps", &id], &json!({"disabled": false}))
                .await?;
            print_done(client, &answer, &format!("enabled application {id}"))
        }
        AppsCommand::Delete { id } => {
            let answer = client.delete(&["apps", &id]).await?;
            print_done(client, &answer, &format!("deleted application {id}"))
        }
    }
}

/// Runs an `api keys` subcommand.
pub async fn run_keys(client: &Client, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create { app, expires_in } => {
            let answer = client
                .post(&["apps", &app, "keys"], &json!({"expires_in": expires_in}))
                .await?;
            let what = format!(
                "created key {} for {app}{}:",
                super::cell(&answer, "id"),
                answer
                    .get("expires_at")
                    .and_then(Value::as_str)
                    .map(|t| format!(", expires {t}"))
                    .unwrap_or_default()
            );
            print_new_key(client, &answer, &answer, &what)
        }
        KeysCommand::List { app } => {
            let keys = client
                .get_all(&["apps", &app, "keys"], &Query::new(), "cursor", "keys")
                .await?;
            print_items(
                client,
                keys,
                &[
                    ("ID", "id"),
                    ("CREATED", "created_at"),
                    ("EXPIRES", "expires_at"),
                    ("REVOKED", "revoked_at"),
                ],
                &format!("{app} has no keys; create one with `omnidm api keys create {app}`"),
            )
        }
        KeysCommand::Revoke { app, key_id } => {
            let key_id = key_id.strip_prefix("omk_").unwrap_or(&key_id).to_owned();
            let answer = client.delete(&["apps", &app, "keys", &key_id]).await?;
            print_done(client, &answer, &format!("revoked key {key_id} of {app}"))
        }
    }
}

/// Runs an `api grants` subcommand.
pub async fn run_grants(client: &Client, cmd: GrantsCommand) -> anyhow::Result<()> {
    match cmd {
        GrantsCommand::Create {
            app,
            group,
            allow,
            subtree,
        } => {
            let answer = client
                .post(
                    &["grants"],
                    &json!({"app_id": app, "permissions": allow, "subtrees": subtree, "group": group}),
                )
                .await?;
            print_done(
                client,
                &answer,
                &format!(
                    "created grant {}: {app} may {} on {} of group {group}",
                    super::cell(&answer, "id"),
                    allow.join(","),
                    subtree.join(" ")
                ),
            )
        }
        GrantsCommand::List { app } => {
            let grants = client
                .get_all(
                    &["grants"],
                    &Query::new().opt("app", app),
                    "cursor",
                    "grants",
                )
                .await?;
            print_items(
                client,
                grants,
                &[
                    ("ID", "id"),
                    ("APP", "app_id"),
                    ("GROUP", "group"),
                    ("ALLOW", "permissions"),
                    ("SUBTREES", "subtrees"),
                    ("CREATED", "created_at"),
                ],
                "no grants",
            )
        }
        GrantsCommand::Delete { id } => {
            let answer = client.delete(&["grants", &id.to_string()]).await?;
            print_done(client, &answer, &format!("deleted grant {id}"))
        }
    }
}

/// A limit as the API takes it: a number, or `null` for `none`.
fn limit_value(flag: &str, text: &str) -> anyhow::Result<Value> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Value::Null);
    }
    text.parse::<u64>()
        .map(|n| json!(n))
        .map_err(|_| anyhow::anyhow!("{flag} {text:?}: give a whole number, or `none`"))
}
