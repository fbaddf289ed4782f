//! `omnidm syncml notification decode | encode`: package 0 (DM Notification 1.2 §6.2).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use omnidm_syncml::auth::{Credentials, Nonce};
use omnidm_syncml::notification::{self, Initiator, Notification, ServerId, UiMode, Version};

use super::Outcome;
use super::io::{from_hex, read_input, to_hex, write_output, write_stdout};

/// `omnidm syncml notification …`.
#[derive(Debug, Subcommand)]
pub enum NotificationCommand {
    /// Print the fields of a package 0 and, given the server credentials, check its digest.
    Decode(DecodeArgs),
    /// Build a package 0 with its digest.
    Encode(EncodeArgs),
}

/// Arguments of `notification decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The package 0 file (raw bytes); `-` reads standard input.
    file: PathBuf,
    /// The input is hex text (as copied from an SMS/WAP push log) rather than raw bytes.
    #[arg(long)]
    hex: bool,
    /// Server identifier for the digest check (default: the one in the notification).
    #[arg(long, requires = "server_password", value_name = "ID")]
    server_id: Option<String>,
    /// Server password (the secret the device holds for authenticating the server); enables
    /// the digest check.
    #[arg(long, value_name = "PW")]
    server_password: Option<String>,
    /// Server nonce, base64 (default: empty).
    #[arg(
        long,
        requires = "server_password",
        value_name = "B64",
        allow_hyphen_values = true
    )]
    nonce: Option<String>,
}

/// `--ui-mode` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum UiModeArg {
    NotSpecified,
    Background,
    Informative,
    UserInteraction,
}

/// `--initiator` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum InitiatorArg {
    Server,
    Client,
}

/// Arguments of `notification encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// Server identifier (as the device's DM account knows it).
    #[arg(long, value_name = "ID")]
    server_id: String,
    /// Server password used for the digest.
    #[arg(long, value_name = "PW")]
    server_password: String,
    /// Session id the device must use in package 1 (0–65535; decimal, or hex with 0x).
    #[arg(long, value_name = "N", value_parser = parse_session_id)]
    session_id: u16,
    /// User-interaction recommendation.
    #[arg(long, value_enum, default_value = "not-specified")]
    ui_mode: UiModeArg,
    /// Who caused the session.
    #[arg(long, value_enum, default_value = "server")]
    initiator: InitiatorArg,
    /// Server nonce, base64 (default: empty).
    #[arg(long, value_name = "B64", allow_hyphen_values = true)]
    nonce: Option<String>,
    /// Vendor-specific trigger body, as hex.
    #[arg(long, value_name = "HEX")]
    vendor_hex: Option<String>,
    /// Notification version field: 1.2 (default: the field value 11 that DM Notification 1.2
    /// prescribes) or a raw field value 0 to 1023 (12 for devices that expect "version × 10").
    #[arg(long, value_name = "VERSION", default_value = "1.2", value_parser = parse_version)]
    notification_version: u16,
    /// Output file (default: standard output, which must not be a terminal).
    #[arg(short, long, value_name = "OUT", conflicts_with = "hex")]
    output: Option<PathBuf>,
    /// Print the package as hex text on standard output instead of binary.
    #[arg(long)]
    hex: bool,
}

fn parse_session_id(s: &str) -> Result<u16, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse::<u16>(),
    };
    parsed.map_err(|_| format!("{s:?} is not a session id from 0 to 65535 (or 0x0 to 0xFFFF)"))
}

fn parse_version(s: &str) -> Result<u16, String> {
    match s {
        "1.2" => Ok(Version::DM_1_2.get()),
        other => other
            .parse::<u16>()
            .ok()
            .filter(|v| *v <= Version::MAX)
            .ok_or_else(|| format!("{s:?}: use 1.2 or a raw field value 0 to 1023")),
    }
}

fn parse_nonce(b64: Option<&str>) -> anyhow::Result<Nonce> {
    match b64 {
        None => Ok(Nonce::default()),
        Some(s) => Nonce::from_b64(s).with_context(|| format!("--nonce {s:?} is not valid base64")),
    }
}

/// Runs a `notification` subcommand.
pub fn run(cmd: NotificationCommand) -> anyhow::Result<Outcome> {
    match cmd {
        NotificationCommand::Decode(args) => decode(&args),
        NotificationCommand::Encode(args) => encode(&args),
    }
}

fn ui_mode_name(m: UiMode) -> &'static str {
    match m {
        UiMode::NotSpecified => "not-specified",
        UiMode::Background => "background",
        UiMode::Informative => "informative",
        UiMode::UserInteraction => "user-interaction",
    }
}

fn decode(args: &DecodeArgs) -> anyhow::Result<Outcome> {
    let input = read_input(&args.file)?;
    let bytes = if args.hex {
        let text = std::str::from_utf8(&input.bytes)
            .with_context(|| format!("{}: --hex input is not text", input.name))?;
        from_hex(text).with_context(|| format!("{}: --hex input", input.name))?
    } else {
        input.bytes
    };
    let d = notification::decode(&bytes)
        .with_context(|| format!("{}: cannot decode as package 0", input.name))?;
    let n = &d.notification;
    let mut s = String::new();
    let _ = writeln!(s, "size          {} bytes", bytes.len());
    let _ = writeln!(s, "version       {} (field {})", n.version, n.version.get());
    let _ = writeln!(s, "ui-mode       {}", ui_mode_name(n.ui_mode));
    let _ = writeln!(
        s,
        "initiator     {}",
        match n.initiator {
            Initiator::Server => "server",
            Initiator::Client => "client",
        }
    );
    let _ = writeln!(
        s,
        "session id    {} (0x{:X}, the SessionID of package 1)",
        n.session_id, n.session_id
    );
    let _ = writeln!(s, "server id     {:?}", n.server_id.as_str());
    if d.future_use != 0 {
        let _ = writeln!(
            s,
            "future-use    0x{:07x} (should be 0; ignored)",
            d.future_use
        );
    }
    if n.vendor_specific.is_empty() {
        let _ = writeln!(s, "vendor data   (none)");
    } else {
        let _ = writeln!(
            s,
            "vendor data   {} ({} bytes)",
            to_hex(&n.vendor_specific),
            n.vendor_specific.len()
        );
    }
    let _ = writeln!(s, "digest        {}", to_hex(&d.digest));
    let mut outcome = Outcome::Ok;
    if let Some(password) = &args.server_password {
        let id = args
            .server_id
            .clone()
            .unwrap_or_else(|| n.server_id.as_str().to_string());
        let creds = Credentials::new(id.as_str(), password.as_str());
        let nonce = parse_nonce(args.nonce.as_deref())?;
        if notification::verify_digest(&d, &creds, &nonce) {
            let _ = writeln!(
                s,
                "digest check  verified (server id {id:?}, nonce {:?})",
                nonce.to_b64()
            );
        } else {
            outcome = Outcome::NotVerified;
            let resync = Nonce::resync_candidates()
                .into_iter()
                .find(|c| notification::verify_digest(&d, &creds, c));
            match resync {
                Some(c) => {
                    let _ = writeln!(
                        s,
                        "digest check  FAILED with nonce {:?}, but verifies with the \
                         resynchronisation nonce {:?} (base64 {:?})",
                        nonce.to_b64(),
                        String::from_utf8_lossy(c.as_bytes()),
                        c.to_b64()
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "digest check  FAILED (server id {id:?}, nonce {:?}): wrong server \
                         id, password or nonce, or the message was altered",
                        nonce.to_b64()
                    );
                }
            }
        }
    }
    write_stdout(s.as_bytes())?;
    Ok(outcome)
}

fn encode(args: &EncodeArgs) -> anyhow::Result<Outcome> {
    let server_id = ServerId::new(args.server_id.as_str()).context("--server-id")?;
    let vendor_specific = match &args.vendor_hex {
        Some(h) => from_hex(h).context("--vendor-hex")?,
        None => Vec::new(),
    };
    let Some(version) = Version::new(args.notification_version) else {
        bail!("--notification-version does not fit in 10 bits");
    };
    let n = Notification {
        version,
        ui_mode: match args.ui_mode {
            UiModeArg::NotSpecified => UiMode::NotSpecified,
            UiModeArg::Background => UiMode::Background,
            UiModeArg::Informative => UiMode::Informative,
            UiModeArg::UserInteraction => UiMode::UserInteraction,
        },
        initiator: match args.initiator {
            InitiatorArg::Server => Initiator::Server,
            InitiatorArg::Client => Initiator::Client,
        },
        session_id: args.session_id,
        server_id,
        vendor_specific,
    };
    let nonce = parse_nonce(args.nonce.as_deref())?;
    let creds = Credentials::new(args.server_id.as_str(), args.server_password.as_str());
    let bytes = notification::encode(&n, &creds, &nonce);
    if args.hex {
        let mut text = to_hex(&bytes);
        text.push('\n');
        write_stdout(text.as_bytes())?;
    } else {
        write_output(args.output.as_ref(), &bytes, true, Some("--hex"))?;
    }
    Ok(Outcome::Ok)
}
