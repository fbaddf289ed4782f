//! `omnidm serve`: parses the server flags and runs the server on a Tokio runtime.

use super::Outcome;
use crate::server::{self, config};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `omnidm serve`; each overrides `omnidm.toml` and the `OMNIDM_*` environment.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (default: ./omnidm.toml if present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory for the embedded store [default: ./omnidm-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Store URL: sqlite://PATH or postgres://… [default: SQLite in the data directory].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Address of the OMA DM device endpoint [default: 127.0.0.1:8700].
    #[arg(long, value_name = "ADDR")]
    dm_listen: Option<SocketAddr>,
    /// Address of the API and admin endpoints [default: 127.0.0.1:8701].
    #[arg(long, value_name = "ADDR")]
    api_listen: Option<SocketAddr>,
    /// Push gateway for package 0, e.g. http://127.0.0.1:8800/push/{device_id}.
    #[arg(long, value_name = "URL")]
    push_gateway: Option<String>,
    /// Allow webhook URLs on loopback and private networks (labs and tests only).
    #[arg(long)]
    allow_private_webhooks: bool,
}

/// Loads the configuration and runs the server until SIGTERM/SIGINT.
pub fn run(args: ServeArgs) -> anyhow::Result<Outcome> {
    let overrides = config::Overrides {
        config_file: args.config,
        data_dir: args.data_dir,
        database: args.database,
        dm_listen: args.dm_listen,
        api_listen: args.api_listen,
        push_gateway: args.push_gateway,
        allow_private_webhooks: args.allow_private_webhooks,
    };
    let config = config::Config::load(&overrides, &|k| std::env::var(k).ok())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(server::run(config))?;
    Ok(Outcome::Ok)
}
