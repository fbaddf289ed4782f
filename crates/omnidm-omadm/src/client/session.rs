//! The client (device) side of one OMA DM 1.2 session, sans-IO.
//!
//! Inputs: [`ClientSession::handle_response`] (a server message, its `x-syncml-hmac` header)
//! and [`ClientSession::handle_timeout`]; outputs: [`ClientSession::poll_transmit`] (the next
//! message to POST), [`ClientSession::poll_event`] and [`ClientSession::poll_timeout`]. Time is
//! an argument; randomness (the nonce this device issues to the server) is given at creation.
//!
//! Section numbers: "DM Protocol" is OMA-TS-DM_Protocol-V1_2 (§2.1 multiple messages, §2.2
//! large objects, §2.3 packages, §2.4 authentication, §2.5 user interaction), "DM Security"
//! OMA-TS-DM_Security-V1_2, "RepPro" OMA-TS-DM_RepPro-V1_2.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use omnidm_syncml::auth::{
    AuthType, Credentials, HmacHeader, Nonce, make_cred, verify_cred_element,
};
use omnidm_syncml::notification::{self, NotificationError, UiMode};
use omnidm_syncml::{
    Alert, AlertCode, Body, Chal, Command, Container, Cred, Data, DecodeError, Encoding, Header,
    Item, ItemCommand, Location, Message, MessageBudget, Meta, Results, Status, StatusCode, decode,
    encode,
};
use omnidm_tree::{Format, TreeUri};

use super::tree::{ExecOutcome, GenericAlert, ManagementTree, NodeItem};
use super::ui::{UiAnswer, UiOptions, UiPolicy, UiPrompt, answer};

/// Why a session was started (DM Protocol §2.3; DM Notification §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The device calls in on its own (Alert 1201).
    ClientInitiated,
    /// A package 0 asked for it (Alert 1200, the notification's session id).
    ServerInitiated {
        /// Session id to use: the notification's, upper-case hex.
        session_id: String,
        /// The notifying server's identifier.
        server_id: String,
        /// The server's UI recommendation.
        ui_mode: UiMode,
    },
    /// The device reports asynchronous results (Alert 1201 plus one 1226 per alert).
    GenericAlerts(Vec<GenericAlert>),
}

/// When the completion alert of an accepted Exec is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsyncReports {
    /// In the same session, right after the Exec's status (the work is simulated as done).
    #[default]
    SameSession,
    /// In a later session: [`ClientEvent::GenericAlertDeferred`] hands it to the caller, who
    /// starts a session with [`Trigger::GenericAlerts`].
    NextSession,
}

/// Deviations from the spec a real device may have, for testing servers against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientQuirks {
    /// Send messages of any size, whatever the server's `MaxMsgSize` (GUIDE §3).
    pub ignore_max_msg_size: bool,
    /// No large-object support: `LrgObj` false, no `MaxObjSize`, chunks refused with 406.
    pub no_large_objects: bool,
}

/// How a device behaves in its sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// SyncHdr `Source` (the DevInfo DevId).
    pub device_id: String,
    /// The server identifier (DMAcc `ServerID`): ACL checks use it.
    pub server_id: String,
    /// SyncHdr `Target`: the server URL.
    pub server_uri: String,
    /// How the device authenticates (Basic, MD5 in `Cred`, HMAC in the transport header).
    pub client_auth: AuthType,
    /// The device's name and secret.
    pub client_credentials: Credentials,
    /// What the device demands of the server: `None` accepts a server without `Cred`
    /// (a `Cred` that is present is still checked).
    pub server_auth: Option<AuthType>,
    /// Server identifier and server secret, to verify the server's `Cred`.
    pub server_credentials: Credentials,
    /// XML or WBXML.
    pub encoding: Encoding,
    /// The largest message the device accepts (SyncHdr `Meta/MaxMsgSize`).
    pub max_msg_size: u32,
    /// The largest object the device accepts (SyncHdr `Meta/MaxObjSize`).
    pub max_obj_size: u32,
    /// The simulated user.
    pub ui_policy: UiPolicy,
    /// When Exec completions are reported.
    pub async_reports: AsyncReports,
    /// How many challenges (401/407) the device answers before giving up, and how many
    /// failed server authentications it tolerates.
    pub max_auth_attempts: u32,
    /// How long to wait for the server's answer to a message.
    pub response_timeout: Duration,
    /// Deliberate deviations.
    pub quirks: ClientQuirks,
}

impl ClientConfig {
    /// A configuration with defaults: MD5 both ways, XML, 16 KiB messages, 1 MiB objects.
    pub fn new(
        device_id: impl Into<String>,
        server_id: impl Into<String>,
        server_uri: impl Into<String>,
        client_credentials: Credentials,
        server_credentials: Credentials,
    ) -> ClientConfig {
        ClientConfig {
            device_id: device_id.into(),
            server_id: server_id.into(),
            server_uri: server_uri.into(),
            client_auth: AuthType::Md5,
            client_credentials,
            server_auth: Some(AuthType::Md5),
            server_credentials,
            encoding: Encoding::Xml,
            max_msg_size: 16 * 1024,
            max_obj_size: 1024 * 1024,
            ui_policy: UiPolicy::default(),
            async_reports: AsyncReports::default(),
            max_auth_attempts: 3,
            response_timeout: Duration::from_secs(60),
            quirks: ClientQuirks::default(),
        }
    }

    /// The configuration matching a [`super::DeviceProfile`] (`AAuthPref` `BASIC`,
    /// `DIGEST` or `HMAC`).
    pub fn from_profile(p: &super::DeviceProfile) -> ClientConfig {
        let mut c = ClientConfig::new(
            &p.dev_id,
            &p.server_id,
            &p.server_uri,
            Credentials::new(&p.client_name, &p.client_secret),
            Credentials::new(&p.server_id, &p.server_secret),
        );
        let t = match p.client_auth_type.to_ascii_uppercase().as_str() {
            "BASIC" => AuthType::Basic,
            "HMAC" => AuthType::Hmac,
            _ => AuthType::Md5,
        };
        c.client_auth = t;
        c.server_auth = Some(if t == AuthType::Basic {
            AuthType::Md5
        } else {
            t
        });
        c
    }
}

/// Per-session inputs that change from one session to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// Why the session starts.
    pub trigger: Trigger,
    /// SessionID (ignored for [`Trigger::ServerInitiated`], which carries its own).
    pub session_id: String,
    /// The nonce the server gave this device last time (for its MD5/HMAC credentials).
    pub client_nonce: Nonce,
    /// The nonce this device gave the server last time (to verify the server).
    pub server_nonce: Nonce,
    /// Random bytes drawn by the caller: the next nonce this device issues to the server.
    pub fresh_nonce: [u8; 16],
}

impl SessionParams {
    /// Client-initiated, empty nonces (a first session), session id `1`.
    pub fn first(fresh_nonce: [u8; 16]) -> SessionParams {
        SessionParams {
            trigger: Trigger::ClientInitiated,
            session_id: "1".into(),
            client_nonce: Nonce::default(),
            server_nonce: Nonce::default(),
            fresh_nonce,
        }
    }
}

/// A message to POST to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where: the server URI, or the last `RespURI` the server gave.
    pub uri: String,
    /// The encoded message.
    pub body: Vec<u8>,
    /// The HTTP `Content-Type`.
    pub content_type: &'static str,
    /// The `x-syncml-hmac` header value when the device authenticates with HMAC.
    pub hmac_header: Option<String>,
    /// The message's MsgID.
    pub msg_id: u32,
    /// Whether it closes the device's package.
    pub final_: bool,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOutcome {
    /// The server ended it with a final message of statuses only.
    Completed,
    /// The server did not accept the device's credentials.
    ClientAuthFailed {
        /// The last SyncHdr status.
        status: StatusCode,
    },
    /// The server failed to authenticate itself too often.
    ServerAuthFailed,
    /// The server refused the session with another SyncHdr status.
    Rejected {
        /// The SyncHdr status.
        status: StatusCode,
    },
    /// The server sent Alert 1223.
    AbortedByServer,
    /// The device aborted (Alert 1223) after a protocol error.
    AbortedByClient {
        /// Why.
        reason: String,
    },
    /// No answer in time.
    TimedOut,
}

/// Something the caller may want to know or store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted the device's credentials (212, or 200 per message).
    ClientAuthenticated {
        /// 212 or 200.
        status: StatusCode,
    },
    /// The server challenged (401/407 with `Chal`); package 1 is sent again.
    Challenged {
        /// The scheme asked for.
        auth_type: Option<AuthType>,
        /// The status.
        status: StatusCode,
    },
    /// A nonce changed; store it for the next session.
    NoncesChanged {
        /// New nonce for the device's own credentials (from the server's `NextNonce`).
        client_nonce: Option<Nonce>,
        /// New nonce the server must use (this device's `NextNonce`).
        server_nonce: Option<Nonce>,
    },
    /// The server's credentials were verified.
    ServerAuthenticated {
        /// The scheme.
        auth_type: AuthType,
    },
    /// The server's credentials were missing or wrong; it was challenged.
    ServerAuthFailed {
        /// 401 or 407, as sent.
        status: StatusCode,
    },
    /// A server command was executed (one event per item).
    CommandExecuted {
        /// `Get`, `Add`, …
        cmd: &'static str,
        /// The target node.
        uri: Option<String>,
        /// The status sent.
        status: StatusCode,
    },
    /// A user-interaction alert was shown and answered.
    UserPrompt {
        /// What the server asked.
        prompt: UiPrompt,
        /// What the simulated user answered.
        answer: UiAnswer,
    },
    /// A completion alert to send in a later session ([`AsyncReports::NextSession`]).
    GenericAlertDeferred(GenericAlert),
    /// The server answered a Generic Alert.
    GenericAlertDelivered {
        /// The alert's correlator.
        correlator: Option<String>,
        /// The server's status.
        status: StatusCode,
    },
    /// The session is over.
    Finished(SessionOutcome),
}

/// Errors from [`ClientSession::handle_response`]. The session decides what the server is
/// told (an abort with Alert 1223); these tell the caller why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The body is not a SyncML message.
    #[error("undecodable server message: {0}")]
    Decode(#[from] DecodeError),
    /// The server answered with another session id.
    #[error("session id mismatch: expected {expected:?}, got {got:?}")]
    SessionMismatch {
        /// Ours.
        expected: String,
        /// The server's.
        got: String,
    },
    /// No message was awaiting an answer.
    #[error("no response expected now")]
    NotAwaitingResponse,
    /// The session is over.
    #[error("session finished")]
    Finished,
}

/// Errors from [`trigger_from_notification`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// The package 0 could not be decoded.
    #[error(transparent)]
    Decode(#[from] NotificationError),
    /// It names another server.
    #[error("notification from server {0:?}, not ours")]
    WrongServer(String),
    /// Its digest is wrong (DM Notification §6.2.2.2).
    #[error("notification digest does not verify")]
    BadDigest,
}

/// Verifies a package 0 and turns it into a server-initiated trigger. The digest is checked
/// with `nonce` and then with the resynchronisation nonces (DM Notification 1.2 §6.1).
pub fn trigger_from_notification(
    bytes: &[u8],
    server: &Credentials,
    nonce: &Nonce,
) -> Result<Trigger, TriggerError> {
    let d = notification::decode(bytes)?;
    let n = &d.notification;
    if n.server_id.as_str() != server.username {
        return Err(TriggerError::WrongServer(n.server_id.as_str().to_owned()));
    }
    let ok = notification::verify_digest(&d, server, nonce)
        || Nonce::resync_candidates()
            .iter()
            .any(|c| notification::verify_digest(&d, server, c));
    if !ok {
        return Err(TriggerError::BadDigest);
    }
    Ok(Trigger::ServerInitiated {
        session_id: format!("{:X}", n.session_id),
        server_id: n.server_id.as_str().to_owned(),
        ui_mode: n.ui_mode,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Package 1 (first time, or again after a challenge) is due.
    SendPkg1,
    /// A message was sent; waiting for the server.
    Awaiting,
    /// A response is due.
    Respond,
    /// An abort (Alert 1223) is due, then the session ends.
    SendAbort(String),
    /// Over.
    Done,
}

/// What a command's execution means for the commands after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// 1101 answered "No": an enclosing Atomic fails, a Sequence skips the rest.
    Declined,
    /// The user cancelled: everything after gets 215 (DM Protocol §2.5.2).
    Cancelled,
}

/// A large object the server is sending (DM Protocol §2.2).
#[derive(Debug)]
struct InLo {
    cmd: &'static str,
    target: String,
    format: Format,
    mime: Option<String>,
    size: Option<u64>,
    buf: Vec<u8>,
    opaque: bool,
    rejected: Option<StatusCode>,
}

/// A large Results item this device is sending in chunks.
#[derive(Debug)]
struct OutLo {
    msg_ref: u32,
    cmd_ref: u32,
    source: String,
    meta: Option<Meta>,
    data: Data,
    offset: usize,
}

/// What executing commands produced.
#[derive(Default)]
struct Out {
    cmds: Vec<Command>,
    alerts: Vec<GenericAlert>,
}

/// Bytes kept free under the server's MaxMsgSize for WBXML code-page switches.
const SIZE_MARGIN: usize = 16;

/// One device-side OMA DM session.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    session_id: String,
    /// 1200 or 1201.
    session_alert: AlertCode,
    /// Alerts for package 1.
    initial_alerts: Vec<GenericAlert>,
    state: State,
    /// MsgID of the next message (strictly increasing).
    next_msg_id: u32,
    /// MsgID of the server message being answered.
    server_msg_id: u32,
    client_auth: AuthType,
    client_nonce: Nonce,
    /// The server said 212: no more credentials this session.
    client_authenticated: bool,
    /// [`ClientEvent::ClientAuthenticated`] was emitted (once per session).
    client_auth_reported: bool,
    auth_attempts: u32,
    server_nonce: Nonce,
    fresh_nonce: Nonce,
    /// A nonce issued to the server in a `Chal` not yet transmitted. It becomes the server
    /// nonce only when the message carrying it goes out: a session the server ends with a
    /// statuses-only message never delivers our statuses, and rotating then would leave the
    /// two sides with different nonces for the next session.
    pending_server_nonce: Option<Nonce>,
    server_authenticated: bool,
    server_auth_failures: u32,
    server_max_msg: Option<usize>,
    server_max_obj: Option<usize>,
    resp_uri: Option<String>,
    /// Statuses to send (always first in a message).
    out_status: VecDeque<Command>,
    /// Results and alerts to send.
    out_other: VecDeque<Command>,
    out_lo: Option<OutLo>,
    in_lo: Option<InLo>,
    /// The server's package is not complete: ask for its next message (Alert 1222).
    want_next: bool,
    /// Generic alerts sent and not yet answered: (MsgID, CmdID, correlator).
    sent_alerts: Vec<(u32, u32, Option<String>)>,
    events: VecDeque<ClientEvent>,
    deadline: Option<Instant>,
    /// Set when the session ends after the next transmit (server failed auth too often).
    end_after_send: Option<SessionOutcome>,
}

fn meta_of(format: Format, mime: Option<&str>) -> Meta {
    Meta {
        format: Some(format.to_string()),
        type_: mime.map(str::to_owned),
        ..Meta::default()
    }
}

fn cmd_id_mut(c: &mut Command) -> Option<&mut u32> {
    Some(match c {
        Command::Add(x) | Command::Copy(x) | Command::Delete(x) | Command::Get(x) => &mut x.cmd_id,
        Command::Replace(x) => &mut x.cmd_id,
        Command::Alert(x) => &mut x.cmd_id,
        Command::Atomic(x) | Command::Sequence(x) => &mut x.cmd_id,
        Command::Exec(x) => &mut x.cmd_id,
        Command::Results(x) => &mut x.cmd_id,
        Command::Status(x) => &mut x.cmd_id,
    })
}

fn generic_alert_command(a: &GenericAlert) -> Command {
    Command::Alert(Alert {
        cmd_id: 0,
        no_resp: false,
        cred: None,
        correlator: a.correlator.clone(),
        code: AlertCode::GENERIC_ALERT,
        items: vec![Item {
            source: a.source.clone().map(Location::new),
            meta: Some(Meta {
                format: Some(a.format.clone()),
                type_: Some(a.type_.clone()),
                mark: a.mark.clone(),
                ..Meta::default()
            }),
            data: Some(Data::Text(a.data.clone())),
            ..Item::default()
        }],
    })
}

/// The command's own `NoResp` flag.
fn no_resp_of(c: &Command) -> bool {
    match c {
        Command::Add(x)
        | Command::Copy(x)
        | Command::Delete(x)
        | Command::Get(x)
        | Command::Replace(x) => x.no_resp,
        Command::Alert(x) => x.no_resp,
        Command::Atomic(x) | Command::Sequence(x) => x.no_resp,
        Command::Exec(x) => x.no_resp,
        Command::Results(_) | Command::Status(_) => false,
    }
}

fn simple_alert(code: AlertCode, items: Vec<Item>) -> Command {
    Command::Alert(Alert {
        cmd_id: 0,
        no_resp: false,
        cred: None,
        correlator: None,
        code,
        items,
    })
}

fn item_meta<'a>(cmd_meta: Option<&'a Meta>, item: &'a Item) -> (Option<&'a str>, Option<&'a str>) {
    let f = item
        .meta
        .as_ref()
        .and_then(|m| m.format.as_deref())
        .or_else(|| cmd_meta.and_then(|m| m.format.as_deref()));
    let t = item
        .meta
        .as_ref()
        .and_then(|m| m.type_.as_deref())
        .or_else(|| cmd_meta.and_then(|m| m.type_.as_deref()));
    (f, t)
}

fn parse_uri(s: Option<&Location>) -> Result<TreeUri, StatusCode> {
    let s = s.ok_or(StatusCode::INCOMPLETE_COMMAND)?;
    TreeUri::parse(&s.loc_uri).map_err(|e| match e {
        omnidm_tree::UriError::LimitExceeded { .. } => StatusCode::URI_TOO_LONG,
        _ => StatusCode::BAD_REQUEST,
    })
}

impl ClientSession {
    /// Starts a session; the first [`poll_transmit`](Self::poll_transmit) yields package 1.
    pub fn new(config: ClientConfig, params: SessionParams, _now: Instant) -> ClientSession {
        let (session_id, session_alert, initial_alerts) = match params.trigger {
            Trigger::ClientInitiated => (
                params.session_id,
                AlertCode::CLIENT_INITIATED_MGMT,
                Vec::new(),
            ),
            Trigger::ServerInitiated { session_id, .. } => {
                (session_id, AlertCode::SERVER_INITIATED_MGMT, Vec::new())
            }
            Trigger::GenericAlerts(a) => (params.session_id, AlertCode::CLIENT_INITIATED_MGMT, a),
        };
        ClientSession {
            client_auth: config.client_auth,
            config,
            session_id,
            session_alert,
            initial_alerts,
            state: State::SendPkg1,
            next_msg_id: 1,
            server_msg_id: 0,
            client_nonce: params.client_nonce,
            client_authenticated: false,
            client_auth_reported: false,
            auth_attempts: 0,
            server_nonce: params.server_nonce,
            fresh_nonce: Nonce::from_random(params.fresh_nonce),
            pending_server_nonce: None,
            server_authenticated: false,
            server_auth_failures: 0,
            server_max_msg: None,
            server_max_obj: None,
            resp_uri: None,
            out_status: VecDeque::new(),
            out_other: VecDeque::new(),
            out_lo: None,
            in_lo: None,
            want_next: false,
            sent_alerts: Vec::new(),
            events: VecDeque::new(),
            deadline: None,
            end_after_send: None,
        }
    }

    /// The session id in use.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// True once the session is over (see [`ClientEvent::Finished`]).
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Ends the session if the server did not answer in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(d) = self.deadline
            && now >= d
            && self.state == State::Awaiting
        {
            self.finish(SessionOutcome::TimedOut);
        }
    }

    fn finish(&mut self, outcome: SessionOutcome) {
        self.state = State::Done;
        self.deadline = None;
        self.out_status.clear();
        self.out_other.clear();
        self.events.push_back(ClientEvent::Finished(outcome));
    }

    fn lo_supported(&self) -> bool {
        !self.config.quirks.no_large_objects
    }

    /// The next message to send, if one is due.
    pub fn poll_transmit(
        &mut self,
        tree: &mut dyn ManagementTree,
        now: Instant,
    ) -> Option<Outgoing> {
        let (message, then) = match std::mem::replace(&mut self.state, State::Done) {
            State::SendPkg1 => (self.package1(tree), State::Awaiting),
            State::Respond => (self.response(), State::Awaiting),
            State::SendAbort(reason) => {
                let mut m = Message {
                    header: self.header(),
                    body: Body {
                        commands: vec![simple_alert(AlertCode::SESSION_ABORT, Vec::new())],
                        final_: true,
                    },
                };
                if let Some(id) = m.body.commands.first_mut().and_then(cmd_id_mut) {
                    *id = 1;
                }
                let out = self.emit(m);
                self.finish(SessionOutcome::AbortedByClient { reason });
                return Some(out);
            }
            other => {
                self.state = other;
                return None;
            }
        };
        let out = self.emit(message);
        self.state = then;
        self.deadline = Some(now + self.config.response_timeout);
        if let Some(o) = self.end_after_send.take() {
            self.finish(o);
        }
        Some(out)
    }

    fn emit(&mut self, message: Message) -> Outgoing {
        let carries_nonce = message.body.commands.iter().any(|c| {
            matches!(c, Command::Status(st) if st.chal.as_ref().is_some_and(|ch| ch.meta.next_nonce.is_some()))
        });
        if carries_nonce && let Some(n) = self.pending_server_nonce.take() {
            self.server_nonce = n.clone();
            self.events.push_back(ClientEvent::NoncesChanged {
                client_nonce: None,
                server_nonce: Some(n),
            });
        }
        for c in &message.body.commands {
            if let Command::Alert(a) = c
                && a.code == AlertCode::GENERIC_ALERT
            {
                self.sent_alerts
                    .push((message.header.msg_id, a.cmd_id, a.correlator.clone()));
            }
        }
        let body = encode(&message, self.config.encoding);
        let hmac_header = (self.client_auth == AuthType::Hmac).then(|| {
            HmacHeader::compute(&self.config.client_credentials, &self.client_nonce, &body)
                .to_header_value()
        });
        self.next_msg_id = self.next_msg_id.saturating_add(1);
        Outgoing {
            uri: self
                .resp_uri
                .clone()
                .unwrap_or_else(|| self.config.server_uri.clone()),
            body,
            content_type: self.config.encoding.content_type(),
            hmac_header,
            msg_id: message.header.msg_id,
            final_: message.body.final_,
        }
    }

    /// The SyncHdr of the next message (DM Protocol §2.3 package 1; DM Security §5.3: the
    /// MD5 user name travels in `Source/LocName`).
    fn header(&self) -> Header {
        let cred = if self.client_authenticated {
            None
        } else {
            make_cred(
                self.client_auth,
                &self.config.client_credentials,
                &self.client_nonce,
            )
            .map(Cred::from)
        };
        Header {
            session_id: self.session_id.clone(),
            msg_id: self.next_msg_id,
            target: Location::new(&self.config.server_uri),
            source: Location {
                loc_uri: self.config.device_id.clone(),
                loc_name: (self.client_auth != AuthType::Basic)
                    .then(|| self.config.client_credentials.username.clone()),
            },
            cred,
            meta: Some(Meta {
                max_msg_size: Some(u64::from(self.config.max_msg_size)),
                max_obj_size: self
                    .lo_supported()
                    .then_some(u64::from(self.config.max_obj_size)),
                ..Meta::default()
            }),
            ..Header::default()
        }
    }

    /// Package 1: Alert 1200/1201, pending Generic Alerts, DevInfo as a Replace, Final.
    fn package1(&mut self, tree: &mut dyn ManagementTree) -> Message {
        let mut commands = vec![simple_alert(self.session_alert, Vec::new())];
        commands.extend(self.initial_alerts.iter().map(generic_alert_command));
        let items = tree
            .dev_info()
            .into_iter()
            .map(|n: NodeItem| Item {
                source: Some(Location::new(n.uri)),
                meta: Some(meta_of(n.format, n.mime.as_deref())),
                data: Some(n.data.unwrap_or_default()),
                ..Item::default()
            })
            .collect();
        commands.push(Command::Replace(ItemCommand {
            items,
            ..ItemCommand::default()
        }));
        for (i, c) in commands.iter_mut().enumerate() {
            if let Some(id) = cmd_id_mut(c) {
                *id = u32::try_from(i + 1).unwrap_or(u32::MAX);
            }
        }
        Message {
            header: self.header(),
            body: Body {
                commands,
                final_: true,
            },
        }
    }

    /// A response message filled up to the server's MaxMsgSize (DM Protocol §2.1, §2.2).
    fn response(&mut self) -> Message {
        let header = self.header();
        let limit = match self.server_max_msg {
            Some(m) if !self.config.quirks.ignore_max_msg_size => m.saturating_sub(SIZE_MARGIN),
            _ => usize::MAX,
        };
        let mut budget = MessageBudget::new(&header, self.config.encoding, limit);
        let next = self
            .want_next
            .then(|| simple_alert(AlertCode::NEXT_MESSAGE, Vec::new()));
        if let Some(n) = &next {
            budget.push(n);
        }
        let mut cmds: Vec<Command> = Vec::new();
        let mut id = 1u32;
        let mut full = false;
        // Whether a Results/Alert went in: one always does, even over the limit, so that the
        // session makes progress.
        let mut sent_other = false;
        // 1. Statuses first.
        while let Some(mut c) = self.out_status.pop_front() {
            if let Some(x) = cmd_id_mut(&mut c) {
                *x = id;
            }
            let fits = budget.try_add(&c, true);
            if fits || cmds.is_empty() {
                if !fits {
                    budget.push(&c);
                }
                cmds.push(c);
                id += 1;
            } else {
                self.out_status.push_front(c);
                full = true;
                break;
            }
        }
        // 2. Results and alerts; a large object goes in chunks, nothing between its chunks.
        while !full {
            if self.out_lo.is_some() {
                if let Some((c, last)) = self.next_chunk(&mut budget, id) {
                    sent_other = true;
                    cmds.push(c);
                    id += 1;
                    if last {
                        self.out_lo = None;
                        continue;
                    }
                }
                break;
            }
            let Some(mut c) = self.out_other.pop_front() else {
                break;
            };
            if let Some(x) = cmd_id_mut(&mut c) {
                *x = id;
            }
            if budget.try_add(&c, true) {
                cmds.push(c);
                sent_other = true;
                id += 1;
                continue;
            }
            match c {
                Command::Results(mut r) if r.items.len() > 1 => {
                    // Split the items over several Results for the same Get: as many as fit
                    // now, the rest later.
                    let rest = r.items.split_off(1);
                    let mut taken = 0;
                    while taken < rest.len() {
                        let mut attempt = r.clone();
                        attempt.items.extend(rest.iter().take(taken + 1).cloned());
                        if budget.clone().try_add(&Command::Results(attempt), true) {
                            taken += 1;
                        } else {
                            break;
                        }
                    }
                    let mut first = r.clone();
                    first.items.extend(rest.iter().take(taken).cloned());
                    let mut remainder = r;
                    remainder.items = rest.into_iter().skip(taken).collect();
                    self.out_other.push_front(Command::Results(remainder));
                    let first = Command::Results(first);
                    if budget.try_add(&first, true) {
                        cmds.push(first);
                        sent_other = true;
                        id += 1;
                        full = true;
                    } else {
                        // Not even one item fits: it goes alone next (in chunks if needed).
                        self.out_other.push_front(first);
                    }
                }
                Command::Results(r) if self.lo_supported() && r.items.len() == 1 => {
                    let Some(item) = r.items.into_iter().next() else {
                        break;
                    };
                    self.out_lo = Some(OutLo {
                        msg_ref: r.msg_ref.unwrap_or(0),
                        cmd_ref: r.cmd_ref,
                        source: item.source.map(|s| s.loc_uri).unwrap_or_default(),
                        meta: item.meta,
                        data: item.data.unwrap_or_default(),
                        offset: 0,
                    });
                }
                other if !sent_other => {
                    // Too big and not splittable: send it anyway rather than never.
                    budget.push(&other);
                    cmds.push(other);
                    sent_other = true;
                    id += 1;
                    full = true;
                }
                other => {
                    self.out_other.push_front(other);
                    full = true;
                }
            }
        }
        if let Some(mut n) = next {
            if let Some(x) = cmd_id_mut(&mut n) {
                *x = id;
            }
            cmds.push(n);
        }
        let final_ = self.out_status.is_empty()
            && self.out_other.is_empty()
            && self.out_lo.is_none()
            && !self.want_next;
        Message {
            header,
            body: Body {
                commands: cmds,
                final_,
            },
        }
    }

    /// The next chunk of the outgoing large object that fits `budget`; `true` when last.
    fn next_chunk(&mut self, budget: &mut MessageBudget, id: u32) -> Option<(Command, bool)> {
        let lo = self.out_lo.as_mut()?;
        let bytes = lo.data.as_bytes();
        let rest = bytes.len().saturating_sub(lo.offset);
        let first = lo.offset == 0;
        let make = |lo: &OutLo, n: usize, more: bool| -> Command {
            let data = lo.data.chunk(lo.offset, n);
            let mut meta = lo.meta.clone().unwrap_or_default();
            // Size only with the first chunk (DM Protocol §2.2).
            meta.size = (first && more).then_some(lo.data.len() as u64);
            Command::Results(Results {
                cmd_id: id,
                msg_ref: Some(lo.msg_ref),
                cmd_ref: lo.cmd_ref,
                items: vec![Item {
                    source: Some(Location::new(lo.source.clone())),
                    meta: (!meta.is_empty()).then_some(meta),
                    data: Some(data),
                    more_data: more,
                    ..Item::default()
                }],
                ..Results::default()
            })
        };
        let whole = make(lo, rest, false);
        if budget.try_add(&whole, true) {
            return Some((whole, true));
        }
        let boundary = |lo: &OutLo, n: usize| lo.data.chunk_len(lo.offset, n);
        // Largest n that fits, by bisection on the exact encoded size.
        let (mut lo_n, mut hi_n) = (0usize, rest);
        while lo_n < hi_n {
            let mid = boundary(lo, lo_n + (hi_n - lo_n).div_ceil(2));
            if mid <= lo_n {
                break;
            }
            if budget.clone().try_add(&make(lo, mid, true), false) {
                lo_n = mid;
            } else {
                hi_n = mid - 1;
            }
        }
        if lo_n == 0 {
            return None;
        }
        let c = make(lo, lo_n, true);
        budget.push(&c);
        lo.offset += lo_n;
        Some((c, false))
    }

    /// Handles the server's answer to the last message.
    pub fn handle_response(
        &mut self,
        body: &[u8],
        hmac_header: Option<&str>,
        tree: &mut dyn ManagementTree,
        now: Instant,
    ) -> Result<(), ClientError> {
        let _ = now;
        match self.state {
            State::Awaiting => {}
            State::Done => return Err(ClientError::Finished),
            _ => return Err(ClientError::NotAwaitingResponse),
        }
        self.deadline = None;
        let msg = match decode(body) {
            Ok(d) => d.message,
            Err(e) => {
                self.state = State::SendAbort(format!("undecodable server message: {e}"));
                return Err(ClientError::Decode(e));
            }
        };
        if msg.header.session_id != self.session_id {
            self.state = State::SendAbort("session id mismatch".into());
            return Err(ClientError::SessionMismatch {
                expected: self.session_id.clone(),
                got: msg.header.session_id,
            });
        }
        self.server_msg_id = msg.header.msg_id;
        if let Some(m) = &msg.header.meta {
            if let Some(x) = m.max_msg_size {
                self.server_max_msg = usize::try_from(x).ok();
            }
            if let Some(x) = m.max_obj_size {
                self.server_max_obj = usize::try_from(x).ok();
            }
        }
        if let Some(r) = msg.header.resp_uri.as_ref().filter(|r| !r.is_empty()) {
            self.resp_uri = Some(r.clone());
        }
        // 1. The server's verdict on our credentials (DM Protocol §2.4, DM Security §5).
        for c in &msg.body.commands {
            if let Command::Status(s) = c
                && s.cmd_ref == 0
                && s.cmd.eq_ignore_ascii_case("SyncHdr")
                && !self.on_header_status(s)
            {
                return Ok(());
            }
        }
        // 2. Our verdict on the server's credentials.
        let (code, chal) = self.check_server(&msg.header, hmac_header, body);
        let mut hdr_status = Status {
            chal,
            ..Status::for_header(&msg.header, code)
        };
        let server_asks_next = msg
            .body
            .commands
            .iter()
            .any(|c| matches!(c, Command::Alert(a) if a.code == AlertCode::NEXT_MESSAGE));
        self.want_next = !msg.body.final_ && !server_asks_next;
        if !code.is_success() {
            // Not authenticated: nothing is executed (DM Security §5.3); every command gets
            // the SyncHdr's code so that the server can tell why.
            hdr_status.code = code;
            self.out_status.push_back(Command::Status(hdr_status));
            for c in &msg.body.commands {
                if !matches!(c, Command::Status(_) | Command::Results(_)) {
                    let s = self.status_for(c.cmd_id(), c.name(), code, None, None);
                    self.out_status.push_back(s);
                }
            }
            self.server_auth_failures += 1;
            if self.server_auth_failures >= self.config.max_auth_attempts.max(1) {
                self.end_after_send = Some(SessionOutcome::ServerAuthFailed);
            }
            self.state = State::Respond;
            return Ok(());
        }
        self.out_status.push_back(Command::Status(hdr_status));
        // 3. Execute.
        let mut out = Out::default();
        let mut had_commands = false;
        let mut cancelled = false;
        let no_resp = msg.header.no_resp;
        for c in msg.body.commands {
            match c {
                Command::Status(s) => self.on_status(&s),
                Command::Results(_) => {}
                Command::Alert(a) if a.code == AlertCode::NEXT_MESSAGE => {
                    // Status MUST be sent in response to Alert (DM Protocol §2.1.1).
                    let s = self.status_for(a.cmd_id, "Alert", StatusCode::OK, None, None);
                    out.cmds.push(s);
                }
                Command::Alert(a) if a.code == AlertCode::SESSION_ABORT => {
                    self.finish(SessionOutcome::AbortedByServer);
                    return Ok(());
                }
                other => {
                    had_commands = true;
                    if cancelled {
                        self.skip(&other, &mut out);
                        continue;
                    }
                    self.check_lo_interrupted(&other, &mut out);
                    // NoResp (RepPro): no Status for this command (or for any, from the
                    // SyncHdr); Results are still sent.
                    let quiet = no_resp || no_resp_of(&other);
                    let (id, start) = (other.cmd_id(), out.cmds.len());
                    if self.execute(other, tree, &mut out, false) == Flow::Cancelled {
                        cancelled = true;
                    }
                    if quiet {
                        let mut i = 0;
                        out.cmds.retain(|c| {
                            i += 1;
                            i <= start || !matches!(c, Command::Status(s) if s.cmd_ref == id)
                        });
                    }
                }
            }
        }
        if msg.body.final_
            && let Some(lo) = self.in_lo.take()
        {
            out.cmds.push(Self::no_end_of_data(&lo.target));
        }
        // 4. Queue the response.
        for c in out.cmds {
            match c {
                Command::Status(_) => self.out_status.push_back(c),
                other => self.out_other.push_back(other),
            }
        }
        for a in out.alerts {
            match self.config.async_reports {
                AsyncReports::SameSession => self.out_other.push_back(generic_alert_command(&a)),
                AsyncReports::NextSession => {
                    self.events.push_back(ClientEvent::GenericAlertDeferred(a));
                }
            }
        }
        // 5. The end: a final message with nothing to answer (DM Protocol §2.3).
        let only_header = self.out_status.len() == 1;
        if msg.body.final_
            && !had_commands
            && only_header
            && self.out_other.is_empty()
            && self.out_lo.is_none()
        {
            self.finish(SessionOutcome::Completed);
            return Ok(());
        }
        self.state = State::Respond;
        Ok(())
    }

    /// Reads the server's status for our SyncHdr; `false` when the rest of the message must
    /// be ignored (package 1 resent after a challenge, or the session ended).
    fn on_header_status(&mut self, s: &Status) -> bool {
        let mut chal_type = None;
        if let Some(Chal { meta }) = &s.chal {
            chal_type = meta.type_.as_deref().and_then(AuthType::from_wire);
            if let Some(n) = meta
                .next_nonce
                .as_deref()
                .and_then(|n| Nonce::from_b64(n).ok())
            {
                self.client_nonce = n.clone();
                self.events.push_back(ClientEvent::NoncesChanged {
                    client_nonce: Some(n),
                    server_nonce: None,
                });
            }
            if let Some(t) = chal_type {
                self.client_auth = t;
            }
        }
        match s.code.0 {
            212 | 200 => {
                if !self.client_auth_reported {
                    self.client_auth_reported = true;
                    self.events
                        .push_back(ClientEvent::ClientAuthenticated { status: s.code });
                }
                // 212: no credentials needed for the rest of the session.
                if s.code.0 == 212 {
                    self.client_authenticated = true;
                }
                self.auth_attempts = 0;
                true
            }
            401 | 407 => {
                self.auth_attempts += 1;
                self.client_authenticated = false;
                if s.chal.is_some() && self.auth_attempts < self.config.max_auth_attempts.max(1) {
                    self.events.push_back(ClientEvent::Challenged {
                        auth_type: chal_type,
                        status: s.code,
                    });
                    self.out_status.clear();
                    self.out_other.clear();
                    self.state = State::SendPkg1;
                } else {
                    self.finish(SessionOutcome::ClientAuthFailed { status: s.code });
                }
                false
            }
            c if (200..300).contains(&c) => true,
            _ => {
                self.finish(SessionOutcome::Rejected { status: s.code });
                false
            }
        }
    }

    /// Verifies the server (DM Security §5.3; DM Protocol §2.4: the device may demand the
    /// server's credentials). Returns the SyncHdr status and, when due, our `Chal`.
    fn check_server(
        &mut self,
        header: &Header,
        hmac_header: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Option<Chal>) {
        // DM Security 1.2 §5.4 (HMAC): the MAC authenticates one message, so every server
        // message is checked, each one that passes gets 200 (212 "for the rest of the
        // session" only means something for Basic/MD5 `Cred`). Basic/MD5: once per session.
        let hmac = self.config.server_auth == Some(AuthType::Hmac)
            || (header.cred.is_none() && hmac_header.is_some());
        if self.server_authenticated && !hmac {
            return (StatusCode::OK, None);
        }
        let expected = &self.config.server_credentials;
        let result = if let Some(cred) = &header.cred {
            Some(verify_cred_element(cred, expected, &self.server_nonce))
        } else {
            hmac_header.map(|h| {
                HmacHeader::parse(h).and_then(|h| h.verify(expected, &self.server_nonce, body))
            })
        };
        let wanted = self.config.server_auth.unwrap_or(AuthType::Md5);
        match result {
            Some(Ok(v)) => {
                let first = !self.server_authenticated;
                self.server_authenticated = true;
                let code = if v.auth_type == AuthType::Hmac {
                    StatusCode::OK
                } else {
                    StatusCode::AUTHENTICATION_ACCEPTED
                };
                if !first {
                    // A later HMAC message: checked, nothing more to say.
                    return (code, None);
                }
                self.events.push_back(ClientEvent::ServerAuthenticated {
                    auth_type: v.auth_type,
                });
                // A new nonce for the server's next session, as libdmclient does (capture
                // pkg3): the old one must not be replayed.
                let chal = (v.auth_type != AuthType::Basic).then(|| self.issue_nonce(v.auth_type));
                (code, chal)
            }
            None if self.config.server_auth.is_none() => (StatusCode::OK, None),
            failed => {
                let code = match failed {
                    Some(Err(e)) => StatusCode(e.status_code()),
                    _ => StatusCode::MISSING_CREDENTIALS,
                };
                self.events
                    .push_back(ClientEvent::ServerAuthFailed { status: code });
                (code, Some(self.issue_nonce(wanted)))
            }
        }
    }

    fn issue_nonce(&mut self, t: AuthType) -> Chal {
        let n = self.fresh_nonce.clone();
        let with_nonce = t != AuthType::Basic;
        if with_nonce && self.server_nonce != n {
            self.pending_server_nonce = Some(n.clone());
        }
        Chal {
            meta: Meta {
                format: Some("b64".into()),
                type_: Some(t.wire_name().into()),
                next_nonce: with_nonce.then(|| n.to_b64()),
                ..Meta::default()
            },
        }
    }

    /// A status the server sent for one of our commands.
    fn on_status(&mut self, s: &Status) {
        if let Some(pos) = self
            .sent_alerts
            .iter()
            .position(|(m, c, _)| *m == s.msg_ref && *c == s.cmd_ref)
        {
            let (_, _, correlator) = self.sent_alerts.remove(pos);
            self.events.push_back(ClientEvent::GenericAlertDelivered {
                correlator,
                status: s.code,
            });
        }
    }

    fn status_for(
        &self,
        cmd_ref: u32,
        cmd: &str,
        code: StatusCode,
        target: Option<String>,
        source: Option<String>,
    ) -> Command {
        Command::Status(Status {
            cmd_id: 0,
            msg_ref: self.server_msg_id,
            cmd_ref,
            cmd: cmd.into(),
            target_refs: target.into_iter().collect(),
            source_refs: source.into_iter().collect(),
            cred: None,
            chal: None,
            code,
            items: Vec::new(),
        })
    }

    /// 215 for a command not executed (and, for containers, its children).
    fn skip(&self, c: &Command, out: &mut Out) {
        out.cmds
            .push(self.status_for(c.cmd_id(), c.name(), StatusCode::NOT_EXECUTED, None, None));
        if let Command::Atomic(x) | Command::Sequence(x) = c {
            for child in &x.commands {
                self.skip(child, out);
            }
        }
    }

    fn no_end_of_data(target: &str) -> Command {
        simple_alert(
            AlertCode::NO_END_OF_DATA,
            vec![Item::target(target.to_owned())],
        )
    }

    /// A new command while a large object is incomplete: Alert 1225, object dropped
    /// (DM Protocol §2.2).
    fn check_lo_interrupted(&mut self, c: &Command, out: &mut Out) {
        let Some(lo) = &self.in_lo else { return };
        let continues = match c {
            Command::Add(x) | Command::Replace(x) => {
                c.name() == lo.cmd
                    && x.items
                        .first()
                        .and_then(|i| i.target.as_ref())
                        .map(|t| &t.loc_uri)
                        == Some(&lo.target)
            }
            _ => false,
        };
        if !continues {
            let target = lo.target.clone();
            self.in_lo = None;
            out.cmds.push(Self::no_end_of_data(&target));
        }
    }

    /// Executes one command; statuses, results and alerts go to `out`.
    fn execute(
        &mut self,
        c: Command,
        tree: &mut dyn ManagementTree,
        out: &mut Out,
        in_atomic: bool,
    ) -> Flow {
        let sid = self.config.server_id.clone();
        match c {
            Command::Get(g) => {
                for item in &g.items {
                    let target = item.target.as_ref().map(|t| t.loc_uri.clone());
                    let max_obj = self.server_max_obj;
                    let r = parse_uri(item.target.as_ref())
                        .and_then(|u| tree.get(&sid, &u))
                        .and_then(|items| {
                            // The server's MaxObjSize MUST be respected (DM Protocol §2.2).
                            let too_big = items.iter().any(|i| {
                                max_obj
                                    .is_some_and(|m| i.data.as_ref().is_some_and(|d| d.len() > m))
                            });
                            if too_big {
                                Err(StatusCode::REQUEST_ENTITY_TOO_LARGE)
                            } else {
                                Ok(items)
                            }
                        });
                    let code = match r {
                        Ok(items) => {
                            out.cmds.push(self.status_for(
                                g.cmd_id,
                                "Get",
                                StatusCode::OK,
                                target.clone(),
                                None,
                            ));
                            out.cmds.push(Command::Results(Results {
                                cmd_id: 0,
                                msg_ref: Some(self.server_msg_id),
                                cmd_ref: g.cmd_id,
                                items: items
                                    .into_iter()
                                    .map(|n| Item {
                                        source: Some(Location::new(n.uri)),
                                        meta: Some(meta_of(n.format, n.mime.as_deref())),
                                        data: n.data,
                                        ..Item::default()
                                    })
                                    .collect(),
                                ..Results::default()
                            }));
                            StatusCode::OK
                        }
                        Err(code) => {
                            out.cmds.push(self.status_for(
                                g.cmd_id,
                                "Get",
                                code,
                                target.clone(),
                                None,
                            ));
                            code
                        }
                    };
                    self.executed("Get", target, code);
                }
                Flow::Continue
            }
            Command::Add(x) => self.add_replace("Add", x, tree, out),
            Command::Replace(x) => self.add_replace("Replace", x, tree, out),
            Command::Delete(x) => {
                for item in &x.items {
                    let target = item.target.as_ref().map(|t| t.loc_uri.clone());
                    let code =
                        match parse_uri(item.target.as_ref()).and_then(|u| tree.delete(&sid, &u)) {
                            Ok(()) => StatusCode::OK,
                            Err(c) => c,
                        };
                    out.cmds
                        .push(self.status_for(x.cmd_id, "Delete", code, target.clone(), None));
                    self.executed("Delete", target, code);
                }
                Flow::Continue
            }
            Command::Copy(x) => {
                for item in &x.items {
                    let target = item.target.as_ref().map(|t| t.loc_uri.clone());
                    let source = item.source.as_ref().map(|t| t.loc_uri.clone());
                    let code = match parse_uri(item.source.as_ref()).and_then(|from| {
                        parse_uri(item.target.as_ref()).and_then(|to| tree.copy(&sid, &from, &to))
                    }) {
                        Ok(()) => StatusCode::OK,
                        Err(c) => c,
                    };
                    out.cmds
                        .push(self.status_for(x.cmd_id, "Copy", code, target.clone(), source));
                    self.executed("Copy", target, code);
                }
                Flow::Continue
            }
            Command::Exec(e) => {
                let target = e.item.target.as_ref().map(|t| t.loc_uri.clone());
                let code = match parse_uri(e.item.target.as_ref()) {
                    Err(c) => c,
                    Ok(u) => {
                        let data = e.item.data.as_ref().and_then(|d| d.as_text());
                        match tree.exec(&sid, &u, data, e.correlator.as_deref()) {
                            ExecOutcome::Done(c) => c,
                            ExecOutcome::Accepted(alert) => {
                                out.alerts.extend(alert);
                                StatusCode::ACCEPTED_FOR_PROCESSING
                            }
                        }
                    }
                };
                out.cmds
                    .push(self.status_for(e.cmd_id, "Exec", code, target.clone(), None));
                self.executed("Exec", target, code);
                Flow::Continue
            }
            Command::Alert(a) if a.code.is_user_interaction() => self.ui_alert(a, out),
            Command::Alert(a) => {
                let code = if a.code == AlertCode::NO_END_OF_DATA {
                    // The server did not get all of our large object: drop it.
                    self.out_lo = None;
                    StatusCode::OK
                } else {
                    StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED
                };
                out.cmds
                    .push(self.status_for(a.cmd_id, "Alert", code, None, None));
                Flow::Continue
            }
            Command::Atomic(x) if in_atomic => {
                // Atomic inside Atomic is not allowed (RepPro Atomic).
                let s = self.status_for(x.cmd_id, "Atomic", StatusCode::COMMAND_FAILED, None, None);
                out.cmds.push(s);
                Flow::Continue
            }
            Command::Atomic(x) => self.atomic(x, tree, out),
            Command::Sequence(x) => self.sequence(x, tree, out, in_atomic),
            Command::Status(_) | Command::Results(_) => Flow::Continue,
        }
    }

    fn executed(&mut self, cmd: &'static str, uri: Option<String>, status: StatusCode) {
        self.events
            .push_back(ClientEvent::CommandExecuted { cmd, uri, status });
    }

    /// Add or Replace, item by item, with large-object reassembly (DM Protocol §2.2).
    fn add_replace(
        &mut self,
        name: &'static str,
        x: ItemCommand,
        tree: &mut dyn ManagementTree,
        out: &mut Out,
    ) -> Flow {
        let sid = self.config.server_id.clone();
        for item in &x.items {
            let target = item.target.as_ref().map(|t| t.loc_uri.clone());
            let (f, t) = item_meta(x.meta.as_ref(), item);
            let format = f.map(|f| f.parse::<Format>());
            let mut data = item.data.clone();
            let mut format_mime = (format.clone(), t.map(str::to_owned));
            // Large object: buffer chunks, answer 213 until the last one.
            let continuing = self
                .in_lo
                .as_ref()
                .is_some_and(|lo| lo.cmd == name && Some(&lo.target) == target.as_ref());
            if item.more_data || continuing {
                if !self.lo_supported() {
                    out.cmds.push(self.status_for(
                        x.cmd_id,
                        name,
                        StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED,
                        target.clone(),
                        None,
                    ));
                    continue;
                }
                if !continuing {
                    let size = item
                        .meta
                        .as_ref()
                        .and_then(|m| m.size)
                        .or_else(|| x.meta.as_ref().and_then(|m| m.size));
                    let too_big = size.is_some_and(|s| s > u64::from(self.config.max_obj_size));
                    self.in_lo = Some(InLo {
                        cmd: name,
                        target: target.clone().unwrap_or_default(),
                        format: match &format {
                            Some(Ok(f)) => *f,
                            _ => Format::Chr,
                        },
                        mime: t.map(str::to_owned),
                        size,
                        buf: Vec::new(),
                        opaque: false,
                        rejected: too_big.then_some(StatusCode::REQUEST_ENTITY_TOO_LARGE),
                    });
                }
                let Some(lo) = self.in_lo.as_mut() else {
                    continue;
                };
                if let Some(d) = &item.data
                    && lo.rejected.is_none()
                {
                    lo.buf.extend_from_slice(d.as_bytes());
                    lo.opaque |= matches!(d, Data::Opaque(_));
                    if lo.buf.len() as u64 > u64::from(self.config.max_obj_size) {
                        lo.rejected = Some(StatusCode::REQUEST_ENTITY_TOO_LARGE);
                        lo.buf.clear();
                    }
                }
                if item.more_data {
                    let code = lo.rejected.unwrap_or(StatusCode::CHUNKED_ITEM_ACCEPTED);
                    out.cmds
                        .push(self.status_for(x.cmd_id, name, code, target.clone(), None));
                    continue;
                }
                // Last chunk: reassemble and check the announced size.
                let Some(lo) = self.in_lo.take() else {
                    continue;
                };
                if let Some(code) = lo.rejected {
                    out.cmds
                        .push(self.status_for(x.cmd_id, name, code, target.clone(), None));
                    self.executed(name, target, code);
                    continue;
                }
                let size_ok = lo.size.is_none_or(|s| s == lo.buf.len() as u64);
                if !size_ok {
                    out.cmds.push(self.status_for(
                        x.cmd_id,
                        name,
                        StatusCode::SIZE_MISMATCH,
                        target.clone(),
                        None,
                    ));
                    self.executed(name, target, StatusCode::SIZE_MISMATCH);
                    continue;
                }
                data = Some(if lo.opaque {
                    Data::Opaque(lo.buf)
                } else {
                    match String::from_utf8(lo.buf) {
                        Ok(s) => Data::Text(s),
                        Err(e) => Data::Opaque(e.into_bytes()),
                    }
                });
                format_mime = (Some(Ok(lo.format)), lo.mime);
            }
            let code = match (parse_uri(item.target.as_ref()), format_mime.0) {
                (Err(c), _) => c,
                (_, Some(Err(_))) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                (Ok(u), f) => {
                    let f = f.and_then(Result::ok);
                    let mime = format_mime.1.as_deref();
                    let r = if name == "Add" {
                        tree.add(&sid, &u, f.unwrap_or(Format::Chr), mime, data)
                    } else {
                        tree.replace(&sid, &u, f, mime, data.unwrap_or_default())
                    };
                    match r {
                        Ok(()) => StatusCode::OK,
                        Err(c) => c,
                    }
                }
            };
            out.cmds
                .push(self.status_for(x.cmd_id, name, code, target.clone(), None));
            self.executed(name, target, code);
        }
        Flow::Continue
    }

    /// A user-interaction alert (DM Protocol §2.5).
    fn ui_alert(&mut self, a: Alert, out: &mut Out) -> Flow {
        if a.items.len() < 2 {
            out.cmds.push(self.status_for(
                a.cmd_id,
                "Alert",
                StatusCode::INCOMPLETE_COMMAND,
                None,
                None,
            ));
            return Flow::Continue;
        }
        let text_of = |i: &Item| {
            i.data
                .as_ref()
                .and_then(|d| d.as_text())
                .unwrap_or_default()
                .to_owned()
        };
        let prompt = UiPrompt {
            code: a.code,
            options: UiOptions::parse(&a.items.first().map(text_of).unwrap_or_default()),
            text: a.items.get(1).map(text_of).unwrap_or_default(),
            choices: a.items.iter().skip(2).map(text_of).collect(),
        };
        let ans = answer(&self.config.ui_policy, &prompt);
        let mut s = Status {
            cmd_id: 0,
            msg_ref: self.server_msg_id,
            cmd_ref: a.cmd_id,
            cmd: "Alert".into(),
            target_refs: Vec::new(),
            source_refs: Vec::new(),
            cred: None,
            chal: None,
            code: ans.status,
            items: Vec::new(),
        };
        s.items = ans
            .items
            .iter()
            .map(|t| Item {
                data: Some(Data::Text(t.clone())),
                ..Item::default()
            })
            .collect();
        out.cmds.push(Command::Status(s));
        let flow = if ans.cancelled() {
            Flow::Cancelled
        } else if ans.declined() {
            Flow::Declined
        } else {
            Flow::Continue
        };
        self.events.push_back(ClientEvent::UserPrompt {
            prompt,
            answer: ans,
        });
        flow
    }

    /// Atomic: all or nothing (RepPro Atomic): on any failure everything is rolled back,
    /// the Atomic gets 507 (516 if rollback failed), commands that had succeeded get 216,
    /// commands not reached get 215, and Results of the group are dropped.
    fn atomic(&mut self, x: Container, tree: &mut dyn ManagementTree, out: &mut Out) -> Flow {
        tree.begin_atomic();
        let mut inner = Out::default();
        let mut failed = false;
        let mut flow = Flow::Continue;
        for child in x.commands {
            if failed {
                self.skip(&child, &mut inner);
                continue;
            }
            let start = inner.cmds.len();
            let f = self.execute(child, tree, &mut inner, true);
            let bad = inner
                .cmds
                .iter()
                .skip(start)
                .any(|c| matches!(c, Command::Status(s) if !s.code.is_success()));
            if f != Flow::Continue || bad {
                failed = true;
                if f == Flow::Cancelled {
                    flow = Flow::Cancelled;
                }
            }
        }
        if failed {
            let rolled_back = tree.rollback_atomic();
            let code = if rolled_back {
                StatusCode::ATOMIC_FAILED
            } else {
                StatusCode::ATOMIC_ROLLBACK_FAILED
            };
            out.cmds
                .push(self.status_for(x.cmd_id, "Atomic", code, None, None));
            for c in inner.cmds {
                if let Command::Status(mut s) = c {
                    let executed_ok = s.code.is_success()
                        && s.code != StatusCode::NOT_EXECUTED
                        && s.code != StatusCode::OPERATION_CANCELLED;
                    if executed_ok && rolled_back && s.cmd != "Alert" {
                        s.code = StatusCode::ATOMIC_ROLLBACK_OK;
                    }
                    out.cmds.push(Command::Status(s));
                }
            }
        } else {
            tree.commit_atomic();
            out.cmds
                .push(self.status_for(x.cmd_id, "Atomic", StatusCode::OK, None, None));
            out.cmds.extend(inner.cmds);
            out.alerts.extend(inner.alerts);
        }
        flow
    }

    /// Sequence: in order; a declined confirmation skips the rest (215), a cancel stops the
    /// whole message (DM Protocol §2.5.2.2).
    fn sequence(
        &mut self,
        x: Container,
        tree: &mut dyn ManagementTree,
        out: &mut Out,
        in_atomic: bool,
    ) -> Flow {
        out.cmds
            .push(self.status_for(x.cmd_id, "Sequence", StatusCode::OK, None, None));
        let mut stop = None;
        for child in x.commands {
            if stop.is_some() {
                self.skip(&child, out);
                continue;
            }
            match self.execute(child, tree, out, in_atomic) {
                Flow::Continue => {}
                f => stop = Some(f),
            }
        }
        match stop {
            Some(Flow::Cancelled) => Flow::Cancelled,
            // A "No" inside a Sequence inside an Atomic still fails the Atomic.
            Some(Flow::Declined) if in_atomic => Flow::Declined,
            _ => Flow::Continue,
        }
    }
}
