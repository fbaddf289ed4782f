//! `omnidm sim`: simulated OMA DM devices against a server, and the load generator behind the
//! benchmarks. A thin front end over `omnidm-sim`.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use omnidm_omadm::client::{AsyncReports, DeviceProfile, UiAction, UiPolicy};
use omnidm_sim::{AuthScheme, Fleet, FleetConfig, HttpClient, Schedule, Summary};
use omnidm_syncml::Encoding;

use super::Outcome;

/// Client authentication.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AuthArg {
    /// Basic in `Cred` (the server still proves itself with MD5).
    Basic,
    /// MD5 digest both ways.
    Md5,
    /// HMAC-MD5 in the `x-syncml-hmac` header, both ways.
    Hmac,
}

/// Message encoding.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum EncodingArg {
    /// `application/vnd.syncml.dm+xml`.
    Xml,
    /// `application/vnd.syncml.dm+wbxml`.
    Wbxml,
}

/// What the simulated user does with user-interaction alerts (1100–1104).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum UiArg {
    /// Confirm, acknowledge, take the default answer or the first choice.
    Accept,
    /// Answer "No" to confirmations (others: cancel).
    Decline,
    /// Cancel (214).
    Cancel,
    /// Never answer (408 after MAXDT).
    Timeout,
    /// No UI on the device (406).
    Unsupported,
}

/// When Exec completions (Generic Alert 1226) are reported.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportsArg {
    /// In the same session, right after the Exec's status.
    Same,
    /// In the device's next session.
    Next,
}

/// Flags of `omnidm sim`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    omnidm sim --server http://127.0.0.1:8700/dm --print-provisioning --devices 100 > accounts.jsonl\n  \
    omnidm sim --server http://127.0.0.1:8700/dm --devices 100 --duration 30s\n  \
    omnidm sim --server http://127.0.0.1:8700/dm --devices 1000 --interval 10s --push-listen 127.0.0.1:8790\n  \
    omnidm sim --server http://127.0.0.1:8700/dm --trivial http://127.0.0.1:8701/healthz --devices 100 --duration 10s --json\n\n\
    Device i (from 0) has id = --id-pattern with i, client name = its id, client secret and server \
    secret derived from --secret-seed (see --print-provisioning). Package 0: POST the binary \
    notification to http://PUSH_ADDR/push/{device_id}. Exit code 1 when any session failed.")]
pub struct SimArgs {
    /// The server's OMA DM URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8700/dm")]
    server: String,
    /// Number of simulated devices.
    #[arg(long, value_name = "N", default_value_t = 1)]
    devices: usize,
    /// Device ids: one placeholder for the index, `{}`, `{:N}` or `{:0N}`.
    #[arg(long, value_name = "PATTERN", default_value = "IMEI:35900000{:07}")]
    id_pattern: String,
    /// Client authentication.
    #[arg(long, value_enum, default_value = "md5")]
    auth: AuthArg,
    /// Seed the per-device secrets are derived from.
    #[arg(long, value_name = "S", default_value = "omnidm")]
    secret_seed: String,
    /// The server id the devices know (DMAcc ServerID).
    #[arg(long, value_name = "ID", default_value = "omnidm")]
    server_id: String,
    /// Message encoding.
    #[arg(long, value_enum, default_value = "xml")]
    encoding: EncodingArg,
    /// The devices' MaxMsgSize in bytes [default: 16384].
    #[arg(long, value_name = "BYTES")]
    max_msg_size: Option<u32>,
    /// Client-initiated sessions per device [default: 1, or 0 with --push-listen].
    #[arg(long, value_name = "K", conflicts_with = "duration")]
    sessions_per_device: Option<u64>,
    /// Run for this long (e.g. `30s`, `500ms`, `2m`): sessions back to back or per --interval.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Sessions in flight at most [default: the number of devices, at most 1000].
    #[arg(long, value_name = "C")]
    concurrency: Option<usize>,
    /// Pause between a device's sessions (± --jitter); first sessions staggered over it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    interval: Option<Duration>,
    /// Relative jitter on --interval (0.1 = ±10 %).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1)]
    jitter: f64,
    /// The simulated user's answer to user-interaction alerts.
    #[arg(long, value_enum, default_value = "accept")]
    ui: UiArg,
    /// When Exec completions are reported.
    #[arg(long, value_enum, default_value = "same")]
    async_reports: ReportsArg,
    /// Per-request timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
    /// Receive package 0 here (POST /push/{device_id}); runs until Ctrl-C or --duration.
    #[arg(long, value_name = "ADDR")]
    push_listen: Option<SocketAddr>,
    /// Benchmark a plain URL instead (one GET per "session"), with the same machinery.
    #[arg(long, value_name = "URL")]
    trivial: Option<String>,
    /// Trivial mode: an extra request header, `Name: value` (repeatable), e.g. an API key.
    #[arg(long, value_name = "HEADER", requires = "trivial")]
    header: Vec<String>,
    /// Trivial mode: POST this JSON file instead of a GET (e.g. an API operation).
    #[arg(long, value_name = "FILE", requires = "trivial")]
    post_json: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Print the device accounts as JSON lines (for provisioning the server) and exit.
    #[arg(long)]
    print_provisioning: bool,
    /// No progress bar (it is only drawn on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// Keep the devices' nonces and session counters between runs in this file, as real
    /// devices keep them, so that a later run authenticates at first try [default: a file
    /// per server, id pattern, seed and scheme in $OMNIDM_SIM_STATE_DIR, else
    /// $XDG_STATE_HOME/omnidm, else ~/.local/state/omnidm].
    #[arg(long, value_name = "FILE", conflicts_with = "no_state")]
    state: Option<std::path::PathBuf>,
    /// Keep nothing between runs: every run starts with empty nonces (the server challenges
    /// the devices' first messages and they answer with the nonce it gives).
    #[arg(long)]
    no_state: bool,
}

/// Where the devices' state is kept (`--state`, or the default per fleet), `None` with
/// `--no-state` or when no state directory is known.
fn state_path(args: &SimArgs) -> Option<std::path::PathBuf> {
    if args.no_state {
        return None;
    }
    if let Some(p) = &args.state {
        return Some(p.clone());
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let dir = env("OMNIDM_SIM_STATE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| env("XDG_STATE_HOME").map(|d| std::path::PathBuf::from(d).join("omnidm")))
        .or_else(|| env("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state/omnidm")))?;
    // One file per fleet: the same devices against the same server share their nonces.
    use sha2::Digest as _;
    let key = format!(
        "{}\n{}\n{}\n{}\n{:?}",
        args.server, args.id_pattern, args.secret_seed, args.server_id, args.auth
    );
    let digest = sha2::Sha256::digest(key.as_bytes());
    Some(dir.join(format!("sim-{}.json", hex::encode(&digest[..8]))))
}

/// `30s`, `250ms`, `2m`, `1h`, or a plain number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 500ms, 2m"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("unknown unit {u:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Runs the simulator; an error when any session failed (after printing the summary).
pub fn run(args: SimArgs) -> anyhow::Result<Outcome> {
    let push_only = args.push_listen.is_some() && args.sessions_per_device.is_none();
    let config = FleetConfig {
        secret_seed: args.secret_seed.clone(),
        auth: match args.auth {
            AuthArg::Basic => AuthScheme::Basic,
            AuthArg::Md5 => AuthScheme::Md5,
            AuthArg::Hmac => AuthScheme::Hmac,
        },
        encoding: match args.encoding {
            EncodingArg::Xml => Encoding::Xml,
            EncodingArg::Wbxml => Encoding::Wbxml,
        },
        max_msg_size: args.max_msg_size,
        ui_policy: UiPolicy::all(match args.ui {
            UiArg::Accept => UiAction::Accept,
            UiArg::Decline => UiAction::Decline,
            UiArg::Cancel => UiAction::Cancel,
            UiArg::Timeout => UiAction::Timeout,
            UiArg::Unsupported => UiAction::Unsupported,
        }),
        async_reports: match args.async_reports {
            ReportsArg::Same => AsyncReports::SameSession,
            ReportsArg::Next => AsyncReports::NextSession,
        },
        concurrency: args
            .concurrency
            .unwrap_or_else(|| args.devices.clamp(1, 1000)),
        schedule: Schedule {
            sessions_per_device: if push_only {
                Some(0)
            } else {
                args.sessions_per_device
            },
            duration: args.duration,
            interval: args.interval,
            jitter: args.jitter,
            wait_for_stop: args.push_listen.is_some(),
        },
        progress: !args.no_progress && std::io::stderr().is_terminal(),
        ..FleetConfig::new(
            args.devices,
            DeviceProfile {
                server_id: args.server_id.clone(),
                server_uri: args.server.clone(),
                ..DeviceProfile::default()
            },
            args.id_pattern.clone(),
        )
    };
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    if config.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let fleet = Fleet::new(config).context("setting up the simulated devices")?;

    if args.print_provisioning {
        let mut out = std::io::stdout().lock();
        for a in fleet.accounts() {
            serde_json::to_writer(&mut out, a)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        return Ok(Outcome::Ok);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let state = (args.trivial.is_none())
        .then(|| state_path(&args))
        .flatten();
    let summary = runtime.block_on(async {
        // The devices' nonces from the last run (issue 10 item 2): a missing file is a first
        // run; an unreadable one is reported and left alone.
        let kept = match &state {
            Some(path) => match omnidm_sim::FleetState::load(path) {
                Ok(kept) => {
                    fleet.restore(&kept).await;
                    Some(kept)
                }
                Err(e) => {
                    eprintln!("omnidm sim: {e}; the devices start with empty nonces and it is not overwritten");
                    None
                }
            },
            None => None,
        };
        let summary = drive(&fleet, &args).await;
        if let (Some(path), Some(kept)) = (&state, kept)
            && let Err(e) = fleet.snapshot(kept).await.save(path)
        {
            eprintln!("omnidm sim: cannot keep the devices' nonces: {e}");
        }
        summary
    })?;

    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        super::io::write_stdout(summary.to_string().as_bytes())?;
    }
    if summary.failed > 0 {
        let what = if args.trivial.is_some() {
            "requests"
        } else {
            "sessions"
        };
        let target = args.trivial.as_deref().unwrap_or(&args.server);
        let next = next_step(&summary, target, &args);
        return Err(anyhow!(
            "{} of {} {what} failed; {next}",
            summary.failed,
            summary.sessions
        ));
    }
    Ok(Outcome::Ok)
}

/// Runs the fleet (and the push listener) until done or Ctrl-C.
async fn drive(fleet: &Fleet, args: &SimArgs) -> anyhow::Result<Summary> {
    let http = HttpClient::new(args.timeout);
    let _push = match args.push_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for package 0 on {addr}"))?;
            eprintln!(
                "omnidm sim: package 0 listener on http://{addr}/push/{{device_id}} (Ctrl-C to stop)"
            );
            Some(fleet.serve_push(listener, &http))
        }
        None => None,
    };
    let stopper = fleet.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("omnidm sim: stopping (sessions in flight finish)…");
            stopper.stop();
        }
    });
    let summary = match &args.trivial {
        Some(url) => fleet.run_trivial(&http, &plain_request(url, args)?).await,
        None => fleet.run(&http).await,
    };
    fleet.stop();
    Ok(summary)
}

/// The trivial-mode request from `--trivial`, `--header` and `--post-json`.
fn plain_request(url: &str, args: &SimArgs) -> anyhow::Result<omnidm_sim::PlainRequest> {
    let mut request = omnidm_sim::PlainRequest::get(url);
    for h in &args.header {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| anyhow!("--header {h:?}: write it as `Name: value`"))?;
        request
            .headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    if let Some(file) = &args.post_json {
        let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        serde_json::from_slice::<serde_json::Value>(&body)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        request.method = "POST".into();
        request.body = Some(body.into());
    }
    Ok(request)
}

/// What to try, from the most common failure.
fn next_step(s: &Summary, target: &str, args: &SimArgs) -> String {
    let top = s.failures.iter().max_by_key(|f| f.count);
    let Some(f) = top else {
        return "see the summary".into();
    };
    match f.reason.as_str() {
        "connect" => format!(
            "nothing answered at {target}: is `omnidm serve` running there (see --dm-listen)?"
        ),
        "timeout" => format!(
            "the server did not answer within {:?}: is it overloaded? try a lower --concurrency or a longer --timeout",
            args.timeout
        ),
        r if r.starts_with("client_auth_failed") || r == "http_401" || r == "http_403" => {
            "the server refused the devices' credentials: provision them first \
             (`omnidm sim --print-provisioning` with the same --devices, --id-pattern, --auth \
             and --secret-seed lists the accounts)"
                .into()
        }
        "server_auth_failed" => "the server's credentials did not verify: its server secret for \
             these devices must match --print-provisioning's server_secret"
            .into(),
        "http_404" => format!(
            "{target} is not an OMA DM endpoint (HTTP 404): check the path (the device endpoint \
             of `omnidm serve` is /dm on --dm-listen)"
        ),
        r if r.starts_with("http_") => format!(
            "the server answered {} (e.g. {}): check its log",
            r, f.example
        ),
        _ => format!("most common: {} ({})", f.reason, f.example),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
