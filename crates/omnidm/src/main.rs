//! `omnidm`: the OMA DM 1.2 device management server binary.
//!
//! Today it carries the debugging tools for the wire layer (`omnidm syncml …`): decode, encode
//! and inspect SyncML DM messages in XML or WBXML, check their credentials, and build or read
//! package 0 notifications. The server itself (device endpoint, Web Services Interface) arrives
//! in later releases as further subcommands.
//!
//! What it does not do: any protocol logic of its own. Everything here is a thin, careful
//! front end over `omnidm-syncml`; the binary only reads files, prints and chooses exit codes.
//!
//! Exit codes: 0 success, 1 bad input or I/O failure, 2 usage error (from clap), 3 a
//! credential or digest check that was asked for did not verify.

mod cli;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
