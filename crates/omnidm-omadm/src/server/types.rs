//! The public vocabulary of the server engine: configuration, what the driver knows about the
//! device, the commands it queues, the events it gets back, and the errors.

use std::time::Duration;

use omnidm_syncml::auth::{AuthError, AuthType, DigestKey, Nonce, Verified};
use omnidm_syncml::{Data, DecodeError, Encoding, Limits, StatusCode};
use omnidm_tree::TreeUri;

/// An opaque identifier the driver gives each command it queues (for example the row id of a
/// durable operation command). Every event about a command carries it back.
pub type CommandTag = u64;

/// What this server is and what it accepts; shared by all sessions.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Our server identifier (`ServerID` of the device's DM account): the name in our `Cred`.
    pub server_id: String,
    /// Our `LocURI`, the `Source` of every server message and the base of `RespURI`.
    pub server_uri: String,
    /// The largest message we accept, announced in our SyncHdr `Meta/MaxMsgSize`.
    pub max_msg_size: u32,
    /// The largest object we accept (reassembled large object), announced as `MaxObjSize`.
    pub max_obj_size: u32,
    /// A session with no device message for this long ends with [`EndReason::TimedOut`].
    pub session_timeout: Duration,
    /// The device's `MaxMsgSize` when it announces none (and no quirk overrides it).
    pub default_device_max_msg_size: u32,
    /// How many failed client-authentication attempts end the session (DM Security leaves the
    /// bound to the server; each failure costs the device one round trip). Every failure, the
    /// last included, is still answered 401/407 with a Chal and a fresh nonce (decision 78).
    pub max_auth_attempts: u32,
    /// Decoder limits for device messages.
    pub limits: Limits,
}

impl ServerConfig {
    /// A configuration with defaults: accept 64 KiB messages and 1 MiB objects, 5 minute
    /// session timeout, assume 10,000 bytes for devices that announce no `MaxMsgSize`, three
    /// authentication attempts.
    pub fn new(server_id: impl Into<String>, server_uri: impl Into<String>) -> Self {
        Self {
            server_id: server_id.into(),
            server_uri: server_uri.into(),
            max_msg_size: 64 * 1024,
            max_obj_size: 1024 * 1024,
            session_timeout: Duration::from_secs(300),
            default_device_max_msg_size: 10_000,
            max_auth_attempts: 3,
            limits: Limits::default(),
        }
    }
}

/// Per-device work-arounds (GUIDE §3). The driver picks a profile, typically from DevInfo
/// `Man`/`Mod`/`DmV` learned in an earlier session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quirks {
    /// The device cannot receive a package split over several messages (Alert 1222): every
    /// server message carries `Final`, and commands that do not fit wait for the next package.
    pub no_multi_message: bool,
    /// The device cannot receive large objects (`MoreData`): an item that does not fit one
    /// message is failed locally with 413 instead of being chunked.
    pub no_large_object: bool,
    /// Use this `MaxMsgSize` instead of what the device announces (some ignore their own).
    pub max_msg_size_override: Option<u32>,
    /// Send our `Cred` in our first message, unasked (many devices require it). Default true.
    pub needs_server_cred_first: bool,
    /// The device crashes on `Sequence`: a queued Sequence is failed locally with 406.
    pub no_sequence: bool,
    /// The device never sends a Status for an `Atomic` itself: the container's status is
    /// derived from the inner ones as soon as they are all in (without waiting for the end
    /// of the device's package). Derivation also happens without this flag, at package end.
    pub atomic_without_status: bool,
    /// Answer the device's `Results` with a Status 200 (what the captured Funambol server did).
    /// DM Protocol 1.2 §6 (Multiple Messages in Package) says a Status MUST NOT be sent for
    /// Results, so this is off by default.
    pub status_for_results: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            no_multi_message: false,
            no_large_object: false,
            max_msg_size_override: None,
            needs_server_cred_first: true,
            no_sequence: false,
            atomic_without_status: false,
            status_for_results: false,
        }
    }
}

impl Quirks {
    /// The profile of the independently written client described in GUIDE §3: ignores
    /// `MaxMsgSize`, no multi-message packages, no large objects, no Sequence, no Atomic status.
    pub fn constrained_client() -> Self {
        Self {
            no_multi_message: true,
            no_large_object: true,
            no_sequence: true,
            atomic_without_status: true,
            ..Self::default()
        }
    }
}

/// What the driver loaded from its store for this device before feeding its first message.
#[derive(Debug, Clone)]
pub struct DeviceContext {
    /// The device id (`DevId`, the SyncHdr `Source/LocURI` of its messages).
    pub device_id: String,
    /// The authentication the device must use (Basic/MD5 in `Cred`, HMAC in the header).
    pub client_auth: AuthType,
    /// The device's name and `H(name:secret)` (its DM account `AAuthName`/`AAuthSecret`).
    pub client_key: DigestKey,
    /// How we authenticate to the device: MD5 `Cred` (default) or HMAC header. Basic is not
    /// possible from a [`DigestKey`] and is treated as MD5.
    pub server_auth: AuthType,
    /// Our server id and `H(server id:server secret)`, for our `Cred`/HMAC to the device.
    pub server_key: DigestKey,
    /// The nonce we issued to the device last session: its MD5/HMAC must use it now.
    pub client_nonce: Nonce,
    /// The nonce the device issued to us: our MD5/HMAC uses it.
    pub server_nonce: Nonce,
    /// Work-arounds for this device.
    pub quirks: Quirks,
}

/// Random bytes from the driver's RNG; the engine never draws randomness itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Randomness {
    /// The server session token carried in `RespURI` (`?s=<hex>`).
    pub session_token: [u8; 16],
    /// Seed from which this session's fresh nonces are derived (`MD5(seed ‖ counter)`), so
    /// that any number of challenges can be issued from one draw.
    pub nonce_seed: [u8; 16],
}

impl std::fmt::Debug for Randomness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Randomness(<redacted>)")
    }
}

/// One device message as it arrived over the transport.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The HTTP body.
    pub body: &'a [u8],
    /// The HTTP `Content-Type`, if any (else the encoding is sniffed).
    pub content_type: Option<&'a str>,
    /// The `x-syncml-hmac` header value, if any.
    pub hmac: Option<&'a str>,
}

impl<'a> Incoming<'a> {
    /// A body with no content type and no HMAC header.
    pub fn body(body: &'a [u8]) -> Self {
        Self {
            body,
            content_type: None,
            hmac: None,
        }
    }
}

/// One server message to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The encoded message.
    pub body: Vec<u8>,
    /// The media type to answer with: the device's own spelling when it used one we know
    /// (GUIDE §3: `application/vnd.syncml+xml`), else the DM media type of the encoding.
    pub content_type: String,
    /// The `x-syncml-hmac` header value when we authenticate with HMAC.
    pub hmac: Option<String>,
    /// Our `MsgID` of this message.
    pub msg_id: u32,
    /// Whether the message closes our package.
    pub final_: bool,
}

/// A node value to write (Add/Replace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeWrite {
    /// The node.
    pub uri: TreeUri,
    /// `Meta/Format` (`chr`, `int`, `b64`, `node`, …).
    pub format: Option<String>,
    /// `Meta/Type` (MIME type).
    pub mime_type: Option<String>,
    /// The value; empty for interior nodes (always written as `<Data/>`, GUIDE §3).
    pub data: Data,
}

impl NodeWrite {
    /// A `chr` leaf with text.
    pub fn text(uri: TreeUri, value: impl Into<String>) -> Self {
        Self {
            uri,
            format: Some("chr".into()),
            mime_type: None,
            data: Data::Text(value.into()),
        }
    }
}

/// The kind of user interaction (DM Protocol 1.2 §10.2, alert codes 1100–1104).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UiKind {
    /// 1100: show a text.
    Display,
    /// 1101: ask yes/no.
    Confirm,
    /// 1102: ask for a text.
    TextInput,
    /// 1103: pick one of the choices.
    SingleChoice,
    /// 1104: pick any of the choices.
    MultipleChoice,
}

/// `IT` option of a text-input alert (DM Protocol 1.2 §10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputType {
    /// `A`: alphanumeric (the default).
    Alphanumeric,
    /// `N`: numeric.
    Numeric,
    /// `D`: date `DDMMYYYY`.
    Date,
    /// `T`: time `hhmmss`.
    Time,
    /// `P`: phone number.
    Phone,
    /// `I`: IP address.
    Ip,
}

/// `ET` option of a text-input alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EchoType {
    /// `T`: show the text (default).
    Text,
    /// `P`: mask it.
    Password,
}

/// A user-interaction alert (DM Protocol 1.2 §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiAlert {
    /// Which alert.
    pub kind: UiKind,
    /// The text shown (second Item).
    pub text: String,
    /// Choices for single/multiple choice (Items 3…, numbered from 1 in answers).
    pub choices: Vec<String>,
    /// `MINDT`, seconds.
    pub min_display_time: Option<u32>,
    /// `MAXDT`, seconds.
    pub max_display_time: Option<u32>,
    /// `DR`: confirm `0`/`1`, text default, choice index, or `-`-separated indexes.
    pub default_response: Option<String>,
    /// `MAXLEN` for text input.
    pub max_len: Option<u32>,
    /// `IT` for text input.
    pub input_type: Option<InputType>,
    /// `ET` for text input.
    pub echo_type: Option<EchoType>,
}

impl UiAlert {
    /// An alert of `kind` with `text` and no options.
    pub fn new(kind: UiKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
            choices: Vec::new(),
            min_display_time: None,
            max_display_time: None,
            default_response: None,
            max_len: None,
            input_type: None,
            echo_type: None,
        }
    }
}

/// A command the driver wants executed on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmCommand {
    /// Read a node (its value comes back as [`SessionEvent::CommandResults`]).
    Get {
        /// The node, optionally with `?list=`/`?prop=`.
        uri: TreeUri,
    },
    /// Create nodes.
    Add {
        /// The nodes and values.
        items: Vec<NodeWrite>,
    },
    /// Change node values.
    Replace {
        /// The nodes and values.
        items: Vec<NodeWrite>,
    },
    /// Delete a node.
    Delete {
        /// The node.
        uri: TreeUri,
    },
    /// Execute a node; with a correlator, completion comes later as Generic Alert 1226.
    Exec {
        /// The node.
        uri: TreeUri,
        /// Optional data for the Exec item.
        data: Option<String>,
        /// Echoed by the device's Generic Alert.
        correlator: Option<String>,
    },
    /// Copy a node.
    Copy {
        /// Source node.
        from: TreeUri,
        /// Target node.
        to: TreeUri,
    },
    /// All or none of the inner commands (each inner command has its own tag).
    Atomic(Vec<(CommandTag, DmCommand)>),
    /// The inner commands in order.
    Sequence(Vec<(CommandTag, DmCommand)>),
    /// Ask the user something (alerts 1100–1104).
    UserInteraction(UiAlert),
}

/// A node as the device reported it (DevInfo in package 1, Results of a Get). The path stays
/// the device's text: it is data to store, and a device's odd path must not lose the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The node path (`Source/LocURI`, or `Target/LocURI` when there is no source).
    pub uri: String,
    /// `Meta/Format`.
    pub format: Option<String>,
    /// `Meta/Type`.
    pub mime_type: Option<String>,
    /// The value; `None` when the device sent no `<Data>`.
    pub data: Option<Data>,
}

/// One item of a Generic Alert 1226.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericAlertItem {
    /// `Source/LocURI`: the management object the alert is about.
    pub source: Option<String>,
    /// `Target/LocURI` (Windows Mobile FUMO sends one).
    pub target: Option<String>,
    /// `Meta/Type`: the alert type, e.g. `org.openmobilealliance.dm.firmwareupdate.download`.
    pub type_: Option<String>,
    /// `Meta/Format`.
    pub format: Option<String>,
    /// `Meta/Mark`: severity.
    pub mark: Option<String>,
    /// `Data`, e.g. a FUMO result code.
    pub data: Option<Data>,
}

/// How the session was started (package 1 alert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// Alert 1201.
    ClientInitiated,
    /// Alert 1200 (after a package 0).
    ServerInitiated,
    /// Package 1 carried neither (tolerated).
    Unspecified,
}

/// The user's answer to a user-interaction alert, from the device's Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiAnswer {
    /// Display acknowledged (200).
    Acknowledged,
    /// Confirm: yes (200).
    Accepted,
    /// Confirm: no (304).
    Rejected,
    /// Text input (200 with the text in an Item).
    Text(String),
    /// Choice indexes, from 1 (200 with one Item per selected index).
    Selected(Vec<u32>),
    /// The user cancelled (214).
    Cancelled,
    /// Not executed (215).
    NotExecuted,
    /// No answer within `MAXDT` (408).
    TimedOut,
    /// Any other status (406 no UI, 500, …).
    Failed,
}

/// Who produced a command status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusSource {
    /// The device sent it.
    Device,
    /// Derived from the inner statuses (an Atomic/Sequence the device sent no Status for).
    Derived,
    /// The engine decided: without sending (too large for the device, refused by a quirk…),
    /// or against the device's success (a Get whose Results we refused, 413/424).
    Engine,
}

/// Something odd the device did that the engine tolerated; for logs and quirk learning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// A Status whose MsgRef/CmdRef matches nothing we sent.
    UnknownStatusRef {
        /// `MsgRef`.
        msg_ref: u32,
        /// `CmdRef`.
        cmd_ref: u32,
        /// `Cmd`.
        cmd: String,
    },
    /// A second Status for a command that already had its final one.
    DuplicateStatus {
        /// The command.
        tag: CommandTag,
    },
    /// Results whose MsgRef/CmdRef matches no Get we sent.
    UnknownResultsRef {
        /// `MsgRef`.
        msg_ref: u32,
        /// `CmdRef`.
        cmd_ref: u32,
    },
    /// A command a device should not send to a server (answered 406).
    UnexpectedCommand {
        /// Its element name.
        name: &'static str,
    },
    /// An alert code we do not handle from a device (answered 406).
    UnexpectedAlert {
        /// The code.
        code: u16,
    },
    /// A chunked Results was abandoned: new data arrived before its last chunk (answered with
    /// Alert 1225), it grew beyond our `MaxObjSize` (413) or did not match its `Size` (424).
    LargeObjectDropped {
        /// The Get it answered, if known.
        tag: Option<CommandTag>,
        /// The status or alert code we answered.
        code: u16,
    },
    /// The decoder skipped things (unknown elements, …).
    DecodeWarnings(Vec<String>),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// Our last message carried only statuses: the normal end (DM Protocol 1.2 §8).
    Completed,
    /// The device sent Alert 1223.
    Aborted,
    /// No device message within `session_timeout`.
    TimedOut,
    /// The device failed authentication `max_auth_attempts` times.
    AuthFailed,
    /// The device rejected our credentials repeatedly.
    ServerAuthRejected,
    /// The device broke the protocol in a way the session cannot survive.
    ProtocolError(ProtocolError),
}

/// What the engine tells the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Package 1 was accepted (after authentication).
    Started {
        /// 1201 or 1200.
        kind: SessionKind,
        /// The device's `SessionID`.
        session_id: String,
    },
    /// DevInfo (or any Replace the device sent): items in the device's order, interior
    /// nodes included.
    DeviceInfo(Vec<NodeReport>),
    /// The device authenticated.
    Authenticated(Verified),
    /// The device's authentication failed; it was challenged (a Chal with a fresh nonce, on
    /// the SyncHdr and every command: decisions 77, 78), and the session ends after this reply
    /// when `final_attempt`. Nothing in that message was executed.
    AuthFailed {
        /// Why.
        error: AuthError,
        /// What the device was told (401 or 407).
        status: StatusCode,
        /// Attempts so far in this session.
        attempts: u32,
        /// True when this failure ends the session.
        final_attempt: bool,
    },
    /// The device rejected our credentials (status 401/407 for our SyncHdr); we resend.
    ServerCredRejected {
        /// The device's status.
        status: StatusCode,
    },
    /// The nonces changed: the driver MUST persist both for the next session.
    NoncesChanged {
        /// The nonce the device must use with us next.
        client_nonce: Nonce,
        /// The nonce we must use with the device next.
        server_nonce: Nonce,
    },
    /// The final status of a queued command (exactly one per tag).
    CommandStatus {
        /// The command.
        tag: CommandTag,
        /// Its status.
        status: StatusCode,
        /// Who produced it.
        source: StatusSource,
    },
    /// The Results of a Get (a chunked large object is reassembled first).
    CommandResults {
        /// The Get.
        tag: CommandTag,
        /// The values.
        items: Vec<NodeReport>,
    },
    /// The answer to a user-interaction alert (followed by its `CommandStatus`).
    UserResponse {
        /// The alert.
        tag: CommandTag,
        /// The device's status.
        status: StatusCode,
        /// The answer.
        answer: UiAnswer,
    },
    /// A Generic Alert 1226 (answered 200). No state about correlators is kept here: the driver
    /// matches `correlator` with the Exec it sent, possibly sessions ago.
    GenericAlert {
        /// The `Correlator` of the Alert.
        correlator: Option<String>,
        /// Its items.
        items: Vec<GenericAlertItem>,
    },
    /// The engine is about to build a new package and nothing is queued: the driver may
    /// [`enqueue`](super::ServerSession::enqueue) now, before calling `poll_transmit`.
    CommandsNeeded,
    /// Something odd was tolerated.
    Anomaly(Anomaly),
    /// The session is over. No command is lost: each tag got a `CommandStatus` or is listed here.
    Ended {
        /// Why.
        reason: EndReason,
        /// Queued and never sent: safe to requeue. (Inner tags of an unsent Atomic/Sequence
        /// are not listed: they go with their container.)
        unsent: Vec<CommandTag>,
        /// Sent but without a final status: the device may or may not have executed them.
        unanswered: Vec<CommandTag>,
    },
}

/// Protocol violations that end or refuse a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The message's `SessionID` is not this session's.
    #[error("SessionID {got:?} does not match the session's {expected:?}")]
    SessionIdMismatch {
        /// This session's id.
        expected: String,
        /// What came.
        got: String,
    },
    /// The message's device id is not this session's device.
    #[error("device {got:?} is not the session's device {expected:?}")]
    DeviceMismatch {
        /// This session's device.
        expected: String,
        /// What came.
        got: String,
    },
    /// A `MsgID` that is neither the next one nor a replay of the last one.
    #[error("MsgID {got} out of order (expected {expected})")]
    MsgIdOutOfOrder {
        /// The next expected `MsgID`.
        expected: u32,
        /// What came.
        got: u32,
    },
    /// The first message of the session could not be decoded.
    #[error("first message undecodable")]
    UndecodableFirstMessage,
    /// The message is not OMA DM 1.2 (VerDTD `1.2`, VerProto `DM/1.2`): answered 505 or 513
    /// and the session ended (SyncML RepPro 1.2 response codes; decision 72).
    #[error("unsupported version: VerDTD {ver_dtd:?}, VerProto {ver_proto:?}")]
    UnsupportedVersion {
        /// The message's VerDTD (at most 40 characters).
        ver_dtd: String,
        /// The message's VerProto (at most 40 characters).
        ver_proto: String,
    },
}

/// Why [`ServerSession::handle`](super::ServerSession::handle) refused a message. Grouped by
/// cause; [`SessionError::status`] says what the device is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The body is not a SyncML message (HTTP 400, or the decoder's status).
    #[error("undecodable message: {0}")]
    Decode(#[from] DecodeError),
    /// The content type names no SyncML encoding.
    #[error("unsupported content type {0:?}")]
    UnsupportedContentType(String),
    /// The message breaks the session protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The session already ended.
    #[error("session already ended")]
    Finished,
}

impl SessionError {
    /// The SyncML status matching the error (for a driver that can still answer in SyncML).
    pub fn status(&self) -> StatusCode {
        match self {
            SessionError::Decode(e) => e.status(),
            SessionError::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            SessionError::Protocol(_) | SessionError::Finished => StatusCode::BAD_REQUEST,
        }
    }
}

/// Why [`peek`](super::peek) could not identify a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeekError {
    /// The body is not a SyncML message.
    #[error("undecodable message: {0}")]
    Decode(#[from] DecodeError),
    /// The content type names no SyncML encoding.
    #[error("unsupported content type {0:?}")]
    UnsupportedContentType(String),
    /// The SyncHdr carries no device id.
    #[error("SyncHdr Source/LocURI is empty")]
    NoDeviceId,
}

/// What [`peek`](super::peek) read from a message's header, so that the driver can load the
/// device or route to its running session before feeding the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peek {
    /// SyncHdr `Source/LocURI`.
    pub device_id: String,
    /// SyncHdr `SessionID`.
    pub session_id: String,
    /// SyncHdr `MsgID`.
    pub msg_id: u32,
    /// The server session token, when the device addressed our `RespURI` in its `Target`.
    pub session_token: Option<[u8; 16]>,
    /// The encoding of the body.
    pub encoding: Encoding,
}
