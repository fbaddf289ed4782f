//! Command-line parsing, dispatch and the one place where errors become messages and exit
//! codes.

#[macro_use]
mod io;
mod admin;
mod api;
mod devices;
mod inspect;

pub use io::to_hex;
mod local;
mod notification;
mod ops;
mod serve;
mod sim;
mod syncml;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "omnidm",
    version,
    about = "OMA DM 1.2 device management server",
    long_about = "OMA DM 1.2 device management server.\n\n\
        `omnidm serve` runs the server (device endpoint, health and metrics) on the embedded \
        SQLite store or PostgreSQL; `omnidm devices` and `omnidm ops` provision devices and \
        queue operations; `omnidm sim` simulates devices and generates load; `omnidm syncml` \
        decodes, re-encodes and inspects captured DM messages and package 0 notifications; \
        `omnidm api` drives a running server through its REST API.",
    after_help = "Exit codes: 0 success, 1 bad input or I/O error, 2 usage error, \
        3 a requested credential or digest check did not verify, 4 `--wait` ended before the \
        operation completed."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Debugging tools for SyncML DM messages and package 0 notifications.
    #[command(subcommand)]
    Syncml(syncml::SyncmlCommand),
    /// Runs the server: the OMA DM device endpoint and the API/admin endpoints.
    Serve(serve::ServeArgs),
    /// Provisions devices and shows what the server knows about them.
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// Queues operations for devices and shows their outcome.
    #[command(subcommand)]
    Ops(ops::OpsCommand),
    /// Simulated OMA DM devices and the load generator (one device or thousands).
    Sim(sim::SimArgs),
    /// Host-side administration without an API key (e.g. recover a lost admin key).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Talks to a running server's Web Services Interface (REST API) over HTTP.
    Api(api::ApiArgs),
}

/// How a command that ran to completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for succeeded.
    Ok,
    /// A credential or digest check was requested and did not verify.
    NotVerified,
}

/// The error a command returns when `--wait` ran out before the operation completed; the
/// operation as it stood has been printed. Exit code 4, so a script can tell "not yet" from
/// a failure.
#[derive(Debug)]
pub struct NotCompleted {
    /// The operation waited for.
    pub id: u64,
    /// How long was waited, in seconds.
    pub secs: u64,
}

impl std::fmt::Display for NotCompleted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "operation {} did not complete within {} s (shown as it is now)",
            self.id, self.secs
        )
    }
}

impl std::error::Error for NotCompleted {}

/// Exit code for bad input or an I/O failure.
const EXIT_FAILURE: u8 = 1;
/// Exit code when a requested verification fails (the input itself was fine).
const EXIT_NOT_VERIFIED: u8 = 3;
/// Exit code when `--wait` ended before the operation completed.
const EXIT_NOT_COMPLETED: u8 = 4;

/// Parses the command line, runs the command and maps the result to an exit code. Errors are
/// printed as `error: <context>: <cause>` followed by a hint saying what to try next.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Syncml(cmd) => syncml::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Devices(cmd) => devices::run(cmd),
        Command::Ops(cmd) => ops::run(cmd),
        Command::Sim(args) => sim::run(args),
        Command::Api(args) => api::run(args),
        Command::Admin(cmd) => admin::run(cmd),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::NotVerified) => ExitCode::from(EXIT_NOT_VERIFIED),
        Err(err) => {
            if io::is_broken_pipe(&err) {
                // The reader went away (`| head`): not worth a message.
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            if let Some(hint) = hint_for(&err) {
                eprintln!("hint: {hint}");
            }
            if err.downcast_ref::<NotCompleted>().is_some() {
                return ExitCode::from(EXIT_NOT_COMPLETED);
            }
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A next step for the person at the terminal, chosen from the typed causes in the chain.
fn hint_for(err: &anyhow::Error) -> Option<&'static str> {
    for cause in err.chain() {
        if cause.is::<NotCompleted>() {
            return Some(
                "devices run operations when they call in; follow it with \
                 `omnidm api ops show ID --wait SECS`, or queue it with --notify",
            );
        }
        if let Some(p) = cause.downcast_ref::<api::Problem>() {
            return p.hint();
        }
        if let Some(e) = cause.downcast_ref::<omnidm_syncml::DecodeError>() {
            return Some(match e.kind {
                omnidm_syncml::DecodeErrorKind::Empty => {
                    "the input is empty; check the capture saved the HTTP body"
                }
                omnidm_syncml::DecodeErrorKind::NoElement => {
                    "a SyncML DM message is XML starting with `<` (after an optional \
                     declaration) or WBXML starting with a version byte 0x01-0x03; check what \
                     was captured"
                }
                omnidm_syncml::DecodeErrorKind::Limit { .. } => {
                    "the message exceeds a decoder limit; a real DM message is far smaller, \
                     so this is probably not a single SyncML message"
                }
                _ => {
                    "the input is not a well-formed SyncML DM message; look at the bytes \
                     around the offset (e.g. `xxd -s OFFSET -l 64 FILE`); captures often \
                     include HTTP headers or several messages glued together"
                }
            });
        }
        if cause
            .downcast_ref::<omnidm_syncml::notification::NotificationError>()
            .is_some()
        {
            return Some(
                "a package 0 is binary: 16-byte digest, 8-byte header, server id, vendor data; \
                 pass the raw bytes (or hex text with --hex), not a SyncML message",
            );
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>()
            && e.kind() == std::io::ErrorKind::NotFound
        {
            return Some("check the path; use `-` to read standard input");
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::CommandFactory as _;

    /// Every dotted name the help text offers as an event type is one the server emits
    /// (the help named `operation.completed`, which does not exist).
    #[test]
    fn event_types_named_in_help_exist() {
        let mut cli = super::Cli::command();
        let list = cli
            .find_subcommand_mut("api")
            .and_then(|c| c.find_subcommand_mut("events"))
            .and_then(|c| c.find_subcommand_mut("list"))
            .unwrap();
        let help = list.render_long_help().to_string();
        let named: Vec<&str> = help
            .split(|c: char| !(c.is_ascii_lowercase() || c == '.' || c == '_'))
            .filter(|w| w.contains('.') && !w.starts_with('.') && !w.ends_with('.'))
            .collect();
        assert!(!named.is_empty(), "{help}");
        for name in named {
            assert!(
                omnidm_core::EventKind::parse(name).is_some(),
                "help names {name:?}, not an event type"
            );
        }
    }
}
