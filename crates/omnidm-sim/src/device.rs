//! One simulated device: its tree and the state it keeps between sessions, and the driver that
//! runs a [`ClientSession`] over real HTTP.

use std::time::{Duration, Instant};

use omnidm_omadm::client::{
    ClientConfig, ClientEvent, ClientSession, DeviceProfile, GenericAlert, MemoryTree,
    SessionOutcome, SessionParams, Trigger,
};
use omnidm_syncml::auth::Nonce;

use crate::http::{HttpClient, HttpError};

/// A simulated OMA DM device: everything a real device keeps between sessions.
#[derive(Debug, Clone)]
pub struct SimDevice {
    /// Identity, credentials and DevInfo the tree was built from.
    pub profile: DeviceProfile,
    /// How the device behaves in its sessions (auth, encoding, MaxMsgSize, UI policy…).
    pub config: ClientConfig,
    /// The management tree; server commands change it and the changes persist.
    pub tree: MemoryTree,
    /// The nonce the server gave this device (its `NextNonce`), for the device's credentials.
    pub client_nonce: Nonce,
    /// The nonce this device gave the server, to check the server's credentials and package 0.
    pub server_nonce: Nonce,
    /// Completion alerts deferred to a later session ([`omnidm_omadm::client::AsyncReports`]).
    pub pending_alerts: Vec<GenericAlert>,
    /// Sessions started so far; the next client-initiated SessionID is this plus one, in hex.
    pub sessions: u64,
}

/// How a simulated session ended, from the simulator's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The engine finished the session; [`SessionOutcome::Completed`] is the only success.
    Session(SessionOutcome),
    /// The server answered a message with an HTTP status other than 200.
    HttpStatus(u16),
    /// An HTTP exchange failed (connection refused, reset, timeout…).
    Http(HttpError),
    /// The engine had nothing to send but the session was not over (an engine bug).
    Stalled,
}

impl Outcome {
    /// True for a session the server completed normally.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Session(SessionOutcome::Completed))
    }

    /// A short stable label for counting failures by cause (`completed`, `http_500`,
    /// `client_auth_failed_401`, `connect`, `timeout`, …).
    pub fn key(&self) -> String {
        match self {
            Outcome::Session(s) => match s {
                SessionOutcome::Completed => "completed".into(),
                SessionOutcome::ClientAuthFailed { status } => {
                    format!("client_auth_failed_{}", status.0)
                }
                SessionOutcome::ServerAuthFailed => "server_auth_failed".into(),
                SessionOutcome::Rejected { status } => format!("rejected_{}", status.0),
                SessionOutcome::AbortedByServer => "aborted_by_server".into(),
                SessionOutcome::AbortedByClient { .. } => "aborted_by_client".into(),
                SessionOutcome::TimedOut => "timeout".into(),
            },
            Outcome::HttpStatus(s) => format!("http_{s}"),
            Outcome::Http(e) => match e {
                HttpError::BadUri { .. } => "bad_uri".into(),
                HttpError::Connect { .. } => "connect".into(),
                HttpError::Io { .. } => "io".into(),
                HttpError::Timeout { .. } => "timeout".into(),
            },
            Outcome::Stalled => "stalled".into(),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Session(SessionOutcome::AbortedByClient { reason }) => {
                write!(f, "aborted by the device: {reason}")
            }
            Outcome::Session(s) => write!(f, "{s:?}"),
            Outcome::HttpStatus(s) => write!(f, "server answered HTTP {s}"),
            Outcome::Http(e) => write!(f, "{e}"),
            Outcome::Stalled => f.write_str("session stalled (engine had nothing to send)"),
        }
    }
}

/// What one session did.
#[derive(Debug, Clone)]
pub struct SessionReport {
    /// How it ended.
    pub outcome: Outcome,
    /// True when started by a package 0 (Alert 1200).
    pub server_initiated: bool,
    /// HTTP requests made (device messages sent).
    pub messages: u32,
    /// Request body bytes sent.
    pub bytes_sent: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Wall time from the first request to the end.
    pub latency: Duration,
    /// Server commands the device executed (one per item, as the engine reports them).
    pub commands_executed: u32,
    /// The SessionID used.
    pub session_id: String,
}

/// Sixteen random bytes from the OS (`getrandom`); falls back to a time-derived value only if
/// the OS refuses, which would only weaken a simulated nonce.
pub fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    b
}

impl SimDevice {
    /// A device with the standard tree for `profile` and the engine's defaults for it
    /// ([`ClientConfig::from_profile`]); adjust [`SimDevice::config`] before the first session.
    pub fn new(profile: DeviceProfile) -> SimDevice {
        SimDevice {
            config: ClientConfig::from_profile(&profile),
            tree: MemoryTree::standard_device(&profile),
            profile,
            client_nonce: Nonce::default(),
            server_nonce: Nonce::default(),
            pending_alerts: Vec::new(),
            sessions: 0,
        }
    }

    /// The device id (`./DevInfo/DevId`).
    pub fn id(&self) -> &str {
        &self.profile.dev_id
    }

    /// Runs one session to its end over `http`. `trigger` is usually
    /// [`Trigger::ClientInitiated`] (replaced by [`Trigger::GenericAlerts`] when alerts are
    /// pending) or a trigger from [`omnidm_omadm::client::trigger_from_notification`].
    /// `now` is the engine's clock (normally `Instant::now`); latency is wall time.
    pub async fn run_session(
        &mut self,
        http: &HttpClient,
        trigger: Trigger,
        now: impl Fn() -> Instant,
    ) -> SessionReport {
        let started = Instant::now();
        self.sessions += 1;
        let server_initiated = matches!(trigger, Trigger::ServerInitiated { .. });
        let trigger = match trigger {
            Trigger::ClientInitiated if !self.pending_alerts.is_empty() => {
                Trigger::GenericAlerts(std::mem::take(&mut self.pending_alerts))
            }
            t => t,
        };
        let params = SessionParams {
            trigger,
            session_id: format!("{:X}", self.sessions),
            client_nonce: self.client_nonce.clone(),
            server_nonce: self.server_nonce.clone(),
            fresh_nonce: random16(),
        };
        let mut session = ClientSession::new(self.config.clone(), params, now());
        let mut report = SessionReport {
            outcome: Outcome::Stalled,
            server_initiated,
            messages: 0,
            bytes_sent: 0,
            bytes_received: 0,
            latency: Duration::ZERO,
            commands_executed: 0,
            session_id: session.session_id().to_owned(),
        };
        let mut finished = None;
        while let Some(out) = session.poll_transmit(&mut self.tree, now()) {
            report.messages += 1;
            report.bytes_sent += out.body.len() as u64;
            let result = http
                .post(
                    &out.uri,
                    out.content_type,
                    out.hmac_header.as_deref(),
                    out.body,
                )
                .await;
            if session.is_finished() {
                // That was our abort (Alert 1223): it needs no answer, and the engine's
                // outcome stands whatever the server did with it.
                let _ = result;
                break;
            }
            match result {
                Ok(resp) if resp.status == 200 => {
                    report.bytes_received += resp.body.len() as u64;
                    if let Err(e) = session.handle_response(
                        &resp.body,
                        resp.hmac.as_deref(),
                        &mut self.tree,
                        now(),
                    ) {
                        // The engine decides what the server is told (an abort, sent by the
                        // next poll_transmit); the reason shows up in the outcome.
                        tracing::debug!(device = %self.profile.dev_id, "server message refused: {e}");
                    }
                }
                Ok(resp) => {
                    finished = Some(Outcome::HttpStatus(resp.status));
                    break;
                }
                Err(e) => {
                    finished = Some(Outcome::Http(e));
                    break;
                }
            }
            self.absorb_events(&mut session, &mut report, &mut finished);
        }
        self.absorb_events(&mut session, &mut report, &mut finished);
        report.outcome = finished.unwrap_or(Outcome::Stalled);
        report.latency = started.elapsed();
        report
    }

    /// Stores what the device must remember (nonces, deferred alerts) and counts the rest.
    fn absorb_events(
        &mut self,
        session: &mut ClientSession,
        report: &mut SessionReport,
        finished: &mut Option<Outcome>,
    ) {
        while let Some(ev) = session.poll_event() {
            match ev {
                ClientEvent::NoncesChanged {
                    client_nonce,
                    server_nonce,
                } => {
                    if let Some(n) = client_nonce {
                        self.client_nonce = n;
                    }
                    if let Some(n) = server_nonce {
                        self.server_nonce = n;
                    }
                }
                ClientEvent::CommandExecuted { .. } => report.commands_executed += 1,
                ClientEvent::GenericAlertDeferred(a) => self.pending_alerts.push(a),
                ClientEvent::Finished(o) if finished.is_none() => {
                    *finished = Some(Outcome::Session(o));
                }
                _ => {}
            }
        }
    }
}
