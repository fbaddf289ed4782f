//! Server configuration: built-in defaults, then `omnidm.toml`, then `OMNIDM_*` environment
//! variables, then command-line flags — each layer overriding the one before.
//!
//! Defaults run out of the box and are safe: both listeners bind to loopback only, data lives in
//! `./omnidm-data` with the embedded SQLite store.

use anyhow::{Context as _, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole server configuration, after all layers are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the embedded store and generated secrets live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; defaults to SQLite inside `data_dir`.
    pub database: String,
    /// The device endpoint.
    pub dm: DmConfig,
    /// The Web Services Interface and admin endpoints (`/healthz`, `/readyz`, `/metrics`).
    pub api_listen: SocketAddr,
    /// `tracing` filter directives, e.g. `info` or `omnidm=debug,info`.
    pub log: String,
    /// Push gateway URL for package 0 (`{device_id}` is replaced); `None`: operations wait for
    /// the device's next session.
    pub push_gateway: Option<String>,
    /// Allow webhook URLs on loopback and private networks (labs and tests; off by default so
    /// an application cannot make the server probe the operator's internal network).
    pub allow_private_webhooks: bool,
    /// First webhook retry delay (doubles per consecutive failure, capped at 1 h).
    pub webhook_retry_base: Duration,
    /// The proxy webhook deliveries go through (`[api] webhook_proxy`,
    /// `OMNIDM_API_WEBHOOK_PROXY`); proxies from `HTTP_PROXY` & co. are never used for them.
    pub webhook_proxy: Option<String>,
    /// `[api] max_key_lifetime_secs`: the longest an application's API key may live (keys
    /// asked for without expiry or with a later one expire then). `None`: no cap.
    pub max_key_lifetime: Option<Duration>,
}

/// The OMA DM device endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DmConfig {
    /// Address the device endpoint listens on.
    pub listen: SocketAddr,
    /// The URL devices use to reach `/dm` (our LocURI and the base of RespURI). `None`:
    /// `http://<bound address>/dm`, known once the listener is bound (the configured port may
    /// be 0). Set it when a proxy or NAT sits in front.
    pub public_url: Option<String>,
    /// Our OMA DM ServerID (DMAcc ServerID on devices).
    pub server_id: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A session with no message for this long is ended and its commands returned to the queue.
    pub session_timeout: Duration,
    /// Lab mode: unknown devices are registered on first contact with this shared secret as
    /// both their client and server secret (MD5). `None` (the default): unknown devices are
    /// refused.
    pub open_enrolment_secret: Option<String>,
    /// `[[dm.quirks]]`: quirk profiles by manufacturer/model/DM version.
    pub quirk_rules: Vec<crate::server::dm::quirks::QuirkRule>,
    /// At most one `auth.failure` event per device per this long (the failures in between
    /// are counted into the next one).
    pub auth_failure_window: Duration,
    /// `[dm] max_unauthenticated_sessions`: sessions that have not authenticated yet kept at
    /// once; beyond it the oldest is dropped (a flood of first messages cannot fill memory).
    pub max_unauthenticated_sessions: usize,
    /// `[dm] report_timeout_secs` (default 24 h): how long an Exec the device accepted (202)
    /// waits for its Generic Alert 1226 before the sweep fails it with 902 `report_timeout`
    /// (issue 9 item 5, decision 87).
    pub report_timeout: Duration,
}

/// The optional TOML file. Every field is optional: absent means "keep the default".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database: Option<String>,
    log: Option<String>,
    dm: Option<FileDm>,
    api: Option<FileApi>,
    push: Option<FilePush>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePush {
    gateway_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDm {
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    server_id: Option<String>,
    max_body_bytes: Option<usize>,
    session_timeout_secs: Option<u64>,
    open_enrolment_secret: Option<String>,
    quirks: Option<Vec<crate::server::dm::quirks::QuirkRule>>,
    auth_failure_window_secs: Option<u64>,
    max_unauthenticated_sessions: Option<usize>,
    report_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApi {
    listen: Option<SocketAddr>,
    allow_private_webhooks: Option<bool>,
    webhook_retry_base_ms: Option<u64>,
    webhook_proxy: Option<String>,
    max_key_lifetime_secs: Option<u64>,
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config FILE`; without it `./omnidm.toml` is read if present.
    pub config_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database`.
    pub database: Option<String>,
    /// `--dm-listen`.
    pub dm_listen: Option<SocketAddr>,
    /// `--api-listen`.
    pub api_listen: Option<SocketAddr>,
    /// `--push-gateway`.
    pub push_gateway: Option<String>,
    /// `--allow-private-webhooks`.
    pub allow_private_webhooks: bool,
}

const DEFAULT_DM_LISTEN: &str = "127.0.0.1:8700";
const DEFAULT_API_LISTEN: &str = "127.0.0.1:8701";

impl Config {
    /// Builds the configuration from defaults, the file, the environment and `overrides`.
    pub fn load(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let file = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None if Path::new("omnidm.toml").exists() => read_file(Path::new("omnidm.toml"))?,
            None => FileConfig::default(),
        };
        let dm_file = file.dm.unwrap_or_default();
        let parse_addr = |name: &str, v: String| -> anyhow::Result<SocketAddr> {
            v.parse()
                .with_context(|| format!("{name}={v:?} is not an address like 127.0.0.1:8700"))
        };

        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| env("OMNIDM_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("omnidm-data"));
        let database = overrides
            .database
            .clone()
            .or_else(|| env("OMNIDM_DATABASE"))
            .or(file.database)
            // The file the store opens for `sqlite://DIR`, so that `--data-dir D` and
            // `--database sqlite://D` name the same database.
            .unwrap_or_else(|| {
                format!(
                    "sqlite://{}",
                    data_dir.join(omnidm_store::DB_FILE).display()
                )
            });
        if !(database.starts_with("sqlite:")
            || database.starts_with("postgres:")
            || database.starts_with("postgresql:"))
        {
            bail!("database {database:?} must start with sqlite:// or postgres://");
        }
        let dm_listen = match (overrides.dm_listen, env("OMNIDM_DM_LISTEN")) {
            (Some(a), _) => a,
            (None, Some(v)) => parse_addr("OMNIDM_DM_LISTEN", v)?,
            (None, None) => dm_file
                .listen
                .map_or_else(|| parse_addr("default", DEFAULT_DM_LISTEN.into()), Ok)?,
        };
        let api_file = file.api.unwrap_or_default();
        let allow_private_webhooks = overrides.allow_private_webhooks
            || env("OMNIDM_API_ALLOW_PRIVATE_WEBHOOKS").is_some_and(|v| v == "1" || v == "true")
            || api_file.allow_private_webhooks.unwrap_or(false);
        let webhook_retry_base_ms = match env("OMNIDM_API_WEBHOOK_RETRY_BASE_MS") {
            Some(v) => v.parse::<u64>().with_context(|| {
                format!("OMNIDM_API_WEBHOOK_RETRY_BASE_MS={v:?} is not a number of milliseconds")
            })?,
            None => api_file.webhook_retry_base_ms.unwrap_or(1000),
        };
        let webhook_proxy = env("OMNIDM_API_WEBHOOK_PROXY")
            .or(api_file.webhook_proxy)
            .filter(|p| !p.trim().is_empty());
        if let Some(p) = &webhook_proxy
            && !["http://", "https://", "socks5://", "socks5h://"]
                .iter()
                .any(|scheme| p.starts_with(scheme))
        {
            anyhow::bail!(
                "webhook proxy {p:?}: give a URL (http://host:port, https://…, socks5://…)"
            );
        }
        let max_key_lifetime_secs = match env("OMNIDM_API_MAX_KEY_LIFETIME_SECS") {
            Some(v) => Some(v.parse::<u64>().with_context(|| {
                format!("OMNIDM_API_MAX_KEY_LIFETIME_SECS={v:?} is not a number of seconds")
            })?),
            None => api_file.max_key_lifetime_secs,
        };
        if max_key_lifetime_secs == Some(0) {
            bail!("max_key_lifetime_secs must be at least 1 (omit it for no cap)");
        }
        let api_listen = match (overrides.api_listen, env("OMNIDM_API_LISTEN")) {
            (Some(a), _) => a,
            (None, Some(v)) => parse_addr("OMNIDM_API_LISTEN", v)?,
            (None, None) => api_file
                .listen
                .map_or_else(|| parse_addr("default", DEFAULT_API_LISTEN.into()), Ok)?,
        };
        let public_url = env("OMNIDM_DM_PUBLIC_URL").or(dm_file.public_url);
        let quirk_rules = dm_file.quirks.unwrap_or_default();
        crate::server::dm::quirks::validate(&quirk_rules).map_err(anyhow::Error::msg)?;
        Ok(Config {
            data_dir,
            database,
            dm: DmConfig {
                listen: dm_listen,
                public_url,
                server_id: env("OMNIDM_DM_SERVER_ID")
                    .or(dm_file.server_id)
                    .unwrap_or_else(|| "omnidm".into()),
                max_body_bytes: dm_file.max_body_bytes.unwrap_or(1024 * 1024),
                session_timeout: Duration::from_secs(dm_file.session_timeout_secs.unwrap_or(300)),
                open_enrolment_secret: env("OMNIDM_DM_OPEN_ENROLMENT_SECRET")
                    .or(dm_file.open_enrolment_secret),
                quirk_rules,
                auth_failure_window: Duration::from_secs(
                    dm_file.auth_failure_window_secs.unwrap_or(60).max(1),
                ),
                max_unauthenticated_sessions: dm_file
                    .max_unauthenticated_sessions
                    .unwrap_or(crate::server::dm::MAX_UNAUTHENTICATED_SESSIONS)
                    .max(1),
                report_timeout: Duration::from_secs(
                    dm_file.report_timeout_secs.unwrap_or(24 * 60 * 60).max(1),
                ),
            },
            api_listen,
            log: env("OMNIDM_LOG")
                .or(file.log)
                .unwrap_or_else(|| "info".into()),
            push_gateway: overrides
                .push_gateway
                .clone()
                .or_else(|| env("OMNIDM_PUSH_GATEWAY"))
                .or(file.push.and_then(|p| p.gateway_url)),
            allow_private_webhooks,
            webhook_retry_base: Duration::from_millis(webhook_retry_base_ms.max(1)),
            webhook_proxy,
            max_key_lifetime: max_key_lifetime_secs.map(Duration::from_secs),
        })
    }
}

/// Reads the configuration file; `-` is standard input (e.g. a configuration generated by a
/// deployment tool and piped in, so no secret touches the disk).
fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let (name, text) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
            .context("reading the configuration from standard input")?;
        ("<stdin>".to_owned(), text)
    } else {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        (path.display().to_string(), text)
    };
    toml::from_str(&text).with_context(|| format!("{name}: invalid configuration"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(overrides: Overrides, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&overrides, &|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_are_loopback_and_embedded() {
        let c = load(Overrides::default(), &[]).unwrap();
        assert_eq!(c.dm.listen.to_string(), DEFAULT_DM_LISTEN);
        assert_eq!(c.api_listen.to_string(), DEFAULT_API_LISTEN);
        assert!(c.dm.listen.ip().is_loopback() && c.api_listen.ip().is_loopback());
        assert_eq!(c.database, "sqlite://omnidm-data/omnidm.sqlite3");
        assert_eq!(c.dm.public_url, None, "derived from the bound address");
    }

    #[test]
    fn layers_override_in_order() {
        let dir = std::env::temp_dir().join(format!("omnidm-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("omnidm.toml");
        std::fs::write(
            &file,
            "data_dir = \"/var/lib/omnidm\"\n[dm]\nlisten = \"127.0.0.1:9000\"\nserver_id = \"dm.example\"\n[api]\nlisten = \"127.0.0.1:9001\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file.clone()),
            api_listen: Some("127.0.0.1:9101".parse().unwrap()),
            ..Overrides::default()
        };
        let c = load(overrides, &[("OMNIDM_DM_LISTEN", "127.0.0.1:9100")]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/omnidm"));
        assert_eq!(c.dm.listen.to_string(), "127.0.0.1:9100", "env beats file");
        assert_eq!(
            c.api_listen.to_string(),
            "127.0.0.1:9101",
            "flag beats file"
        );
        assert_eq!(c.dm.server_id, "dm.example");
        assert_eq!(c.database, "sqlite:///var/lib/omnidm/omnidm.sqlite3");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quirk_rules_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("omnidm-quirks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("omnidm.toml");
        std::fs::write(
            &file,
            "[[dm.quirks]]\nmanufacturer = \"Acme\"\nmodel = \"X1*\"\nprofile = \"constrained\"\n",
        )
        .unwrap();
        let c = load(
            Overrides {
                config_file: Some(file.clone()),
                ..Overrides::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(c.dm.quirk_rules.len(), 1);
        std::fs::write(
            &file,
            "[[dm.quirks]]\nmodel = \"X1\"\nprofile = \"fragile\"\n",
        )
        .unwrap();
        let err = load(
            Overrides {
                config_file: Some(file),
                ..Overrides::default()
            },
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("fragile"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 8 item 15: webhooks use a proxy only when the operator names one; it must be a URL.
    #[test]
    fn the_webhook_proxy_is_explicit_and_checked() {
        assert_eq!(load(Overrides::default(), &[]).unwrap().webhook_proxy, None);
        let c = load(
            Overrides::default(),
            &[("OMNIDM_API_WEBHOOK_PROXY", "http://proxy.internal:3128")],
        )
        .unwrap();
        assert_eq!(
            c.webhook_proxy.as_deref(),
            Some("http://proxy.internal:3128")
        );
        let err = load(
            Overrides::default(),
            &[("OMNIDM_API_WEBHOOK_PROXY", "proxy.internal:3128")],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("webhook proxy"), "{err:#}");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let err = load(Overrides::default(), &[("OMNIDM_DM_LISTEN", "nowhere")]).unwrap_err();
        assert!(format!("{err:#}").contains("OMNIDM_DM_LISTEN"), "{err:#}");
        let err = load(
            Overrides {
                database: Some("mysql://x".into()),
                ..Overrides::default()
            },
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("sqlite://"), "{err}");
    }
}
