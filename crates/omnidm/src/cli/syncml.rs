//! `omnidm syncml decode | encode | inspect`, and the `notification` subcommands' entry.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use omnidm_syncml::{Decoded, Encoding};

use super::Outcome;
use super::inspect;
use super::io::{Input, read_input, write_output, write_stdout};
use super::notification::{self, NotificationCommand};

/// `omnidm syncml …`.
#[derive(Debug, Subcommand)]
pub enum SyncmlCommand {
    /// Decode a message (XML or WBXML, detected) and print it as indented XML.
    ///
    /// Decoder warnings (unknown elements skipped, duplicated elements…) go to standard error
    /// with their byte offset.
    Decode {
        /// The message file; `-` reads standard input.
        file: PathBuf,
    },
    /// Re-encode a message: XML to WBXML or WBXML to XML (canonical, compact).
    ///
    /// Without --wbxml or --xml the output is the other encoding than the input's.
    Encode(EncodeArgs),
    /// Summarise a message for a person: header, credentials, one line per command.
    Inspect(InspectArgs),
    /// Package 0 (server alert notification) tools.
    #[command(subcommand)]
    Notification(NotificationCommand),
}

/// Arguments of `syncml encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// Write WBXML.
    #[arg(long, conflicts_with = "xml")]
    wbxml: bool,
    /// Write XML.
    #[arg(long)]
    xml: bool,
    /// The message file; `-` reads standard input.
    file: PathBuf,
    /// Output file (default: standard output, which must not be a terminal for WBXML).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
}

/// Arguments of `syncml inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The message file; `-` reads standard input.
    pub file: PathBuf,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Check the header `Cred` against this user name (device user name, or server identifier
    /// for a server's message).
    #[arg(long, requires = "password", value_name = "NAME")]
    pub user: Option<String>,
    /// The password (shared secret) for --user.
    #[arg(long, requires = "user", value_name = "PW")]
    pub password: Option<String>,
    /// The nonce (base64, as in `NextNonce`) the receiver last issued; default empty, as before
    /// any challenge. Used by MD5 only.
    #[arg(
        long,
        requires = "user",
        value_name = "B64",
        allow_hyphen_values = true
    )]
    pub nonce: Option<String>,
}

/// Runs a `syncml` subcommand.
pub fn run(cmd: SyncmlCommand) -> anyhow::Result<Outcome> {
    match cmd {
        SyncmlCommand::Decode { file } => {
            let input = read_input(&file)?;
            let decoded = decode_input(&input)?;
            write_stdout(omnidm_syncml::to_pretty_xml(&decoded.message).as_bytes())?;
            Ok(Outcome::Ok)
        }
        SyncmlCommand::Encode(args) => encode(args),
        SyncmlCommand::Inspect(args) => inspect::run(&args),
        SyncmlCommand::Notification(cmd) => notification::run(cmd),
    }
}

/// Decodes a message, printing the decoder's warnings to standard error. The error names the
/// input and keeps the [`omnidm_syncml::DecodeError`] (with its byte offset) as its cause.
pub fn decode_input(input: &Input) -> anyhow::Result<Decoded> {
    let encoding = Encoding::sniff(&input.bytes);
    let decoded = match omnidm_syncml::decode(&input.bytes) {
        Ok(d) => d,
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "{}: cannot decode as SyncML DM {}",
                    input.name,
                    encoding_name(encoding)
                )
            });
        }
    };
    for w in &decoded.warnings {
        eprintln!("warning: {}: {w}", input.name);
    }
    Ok(decoded)
}

/// `XML` or `WBXML`.
pub fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Xml => "XML",
        Encoding::Wbxml => "WBXML",
    }
}

fn encode(args: EncodeArgs) -> anyhow::Result<Outcome> {
    let input = read_input(&args.file)?;
    let decoded = decode_input(&input)?;
    let target = if args.wbxml {
        Encoding::Wbxml
    } else if args.xml {
        Encoding::Xml
    } else {
        match decoded.encoding {
            Encoding::Xml => Encoding::Wbxml,
            Encoding::Wbxml => Encoding::Xml,
        }
    };
    let bytes = omnidm_syncml::encode(&decoded.message, target);
    write_output(
        args.output.as_ref(),
        &bytes,
        target == Encoding::Wbxml,
        Some("`omnidm syncml decode` to read it as XML"),
    )?;
    Ok(Outcome::Ok)
}
