//! `omnidm`: the OMA DM 1.2 device management server binary.
//!
//! - `omnidm serve`: configuration (defaults, `omnidm.toml`, `OMNIDM_*`, flags), the device
//!   endpoint `POST /dm` (the I/O driver of the sans-IO session engine over the store),
//!   package 0 through a push gateway, `/healthz`, `/readyz`, `/metrics`, graceful shutdown.
//! - `omnidm devices …`, `omnidm ops …`: provisioning and operations, straight to the store
//!   until the Web Services Interface lands.
//! - `omnidm sim`: simulated devices and the load generator (`omnidm-sim`).
//! - `omnidm syncml …`: tools for captured traffic (decode, encode, inspect, package 0).
//!
//! What it does not do: protocol logic of its own (that is `omnidm-syncml` and
//! `omnidm-omadm`) or SQL (that is `omnidm-store`). The OMA DM adapter
//! (`server/dm/adapter.rs`) only maps core operations to engine commands and back.
//!
//! Exit codes: 0 success, 1 bad input or I/O failure, 2 usage error (from clap), 3 a
//! credential or digest check that was asked for did not verify.

mod cli;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
