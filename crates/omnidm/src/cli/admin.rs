//! `omnidm admin`: what only the server host can do, on the store directly (no API key
//! needed, since the API key is what may have been lost).

use super::Outcome;
use super::local::StoreArgs;
use anyhow::Context as _;

/// Subcommands of `omnidm admin`.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Recovers a lost admin API key: revokes every key of the `admin` application, mints a new
    /// one and writes it to <data-dir>/admin.key (which must not exist). Run it on the server
    /// host as the user that runs `omnidm serve`; the server may keep running.
    ResetKey {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs an `admin` subcommand.
pub fn run(cmd: AdminCommand) -> anyhow::Result<Outcome> {
    match cmd {
        AdminCommand::ResetKey { store } => store.with_store_in(|store, data_dir| async move {
            let reset = omnidm_api::bootstrap::reset_admin_key(&store, &data_dir)
                .await
                .context("cannot reset the admin key")?;
            outln!(
                "wrote a new admin key to {}; revoked {} old key(s) (a running server stops \
                 accepting them within 30 s){}",
                reset.path.display(),
                reset.revoked,
                if reset.reenabled {
                    "; the admin application was disabled and is enabled again"
                } else {
                    ""
                }
            );
            Ok(Outcome::Ok)
        }),
    }
}
