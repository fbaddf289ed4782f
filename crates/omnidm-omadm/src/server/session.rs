//! The server session state machine.
//!
//! Input: [`ServerSession::handle`] (a device message), [`ServerSession::enqueue`] (commands),
//! [`ServerSession::handle_timeout`] (time). Output: [`ServerSession::poll_event`] and
//! [`ServerSession::poll_transmit`]. The response to a device message is built lazily in
//! `poll_transmit`, so that a driver reacting to [`SessionEvent::CommandsNeeded`] can still
//! enqueue into it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use md5::{Digest as _, Md5};
use omnidm_syncml::auth::{
    AuthError, AuthType, FORMAT_B64, HmacHeader, Nonce, Unsupported, Verified, make_cred_with_key,
    verify_cred_element_with_key,
};
use omnidm_syncml::{
    Alert, AlertCode, Chal, Command, Cred, Data, Decoded, Encoding, Header, Item, ItemCommand,
    Location, Message, MessageBudget, Meta, Results, Status, StatusCode, decode_with, encode,
};

use super::types::*;
use super::wire::{Sent, SentKind, hex, to_wire};

/// How many times the device may refuse our credentials before we give up.
const MAX_SERVER_CRED_REJECTIONS: u32 = 3;

/// What the response to the last device message must be; built in `poll_transmit`.
#[derive(Debug)]
struct Plan {
    /// Statuses for the device's SyncHdr and commands, CmdIDs assigned at build time.
    statuses: Vec<Status>,
    /// Other commands we must send whatever the mode (Alert 1225).
    extra: Vec<Command>,
    mode: Mode,
    /// The device message this answers (for replay).
    in_msg_id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// Authentication failed: 401/407 with Chal for the SyncHdr and every command, nothing
    /// else; end after it when `end` (decisions 77, 78).
    AuthChallenge { end: bool },
    /// The device is mid-package: statuses, Alert 1222, no new commands, no Final
    /// (DM Protocol 1.2 §6, "Next Message" response).
    NextMessage,
    /// Statuses, then queued commands (continuing our package or starting a new one).
    Package,
    /// Statuses only, Final, then the session ends.
    EndAfter(EndReason),
}

/// A large object we are sending in chunks (DM Protocol 1.2 §7).
#[derive(Debug)]
struct OutChunk {
    tag: CommandTag,
    original: DmCommand,
    add: bool,
    target: String,
    format: Option<String>,
    mime_type: Option<String>,
    data: Data,
    offset: usize,
}

/// A large object the device is sending us in chunks (Results of a Get).
#[derive(Debug)]
struct Reassembly {
    get: (u32, u32),
    tag: CommandTag,
    uri: String,
    format: Option<String>,
    mime_type: Option<String>,
    declared: Option<u64>,
    bytes: Vec<u8>,
    all_text: bool,
}

/// One OMA DM management session, server side. See the module documentation for the
/// driving loop.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    device: DeviceContext,
    random: Randomness,
    /// Counter for nonce derivation from `random.nonce_seed`.
    nonce_counter: u32,
    /// The device's SessionID, fixed by its first message.
    session_id: Option<String>,
    /// The MsgID of the last accepted device message.
    last_in_msg_id: Option<u32>,
    /// Our next MsgID.
    next_out_msg_id: u32,
    /// The device's encoding; we answer in it.
    encoding: Encoding,
    /// The media type we answer with.
    content_type: String,
    /// Package 1's session alert was seen.
    started: bool,
    /// The device authenticated in this session.
    client_authenticated: bool,
    /// Failed authentication attempts in this session.
    auth_failures: u32,
    /// The nonce the device authenticated with, still accepted for HMAC in this session.
    session_nonce: Option<Nonce>,
    /// Put our Cred into the next message.
    send_server_cred: bool,
    /// Times the device refused our credentials.
    server_rejections: u32,
    /// Our nonce was set by a `Chal` in a message that failed client authentication: our
    /// credentials are withheld until the device authenticates (decision 90).
    server_nonce_unverified: bool,
    /// The device's MaxMsgSize / MaxObjSize (SyncHdr Meta; the last one announced wins).
    device_max_msg: Option<u64>,
    device_max_obj: Option<u64>,
    /// Commands not sent yet.
    queue: VecDeque<(CommandTag, DmCommand)>,
    /// Commands sent, by (our MsgID, CmdID).
    sent: BTreeMap<(u32, u32), Sent>,
    /// Tags that already got their final status (guards "exactly one CommandStatus").
    done: std::collections::HashSet<CommandTag>,
    chunking: Option<OutChunk>,
    reassembly: Option<Reassembly>,
    /// A large object of the device's we refused (413, 424), by (Get, source URI): its further
    /// chunks get the same status and are dropped, never taken for a new object.
    refused_object: Option<((u32, u32), String)>,
    /// Successful statuses of Gets held back until their Results are in, so that Results
    /// refused later (413, 424) still decide the Get's one `CommandStatus` (decision 73).
    held_gets: BTreeMap<CommandTag, StatusCode>,
    /// Gets whose Results arrived (whole or refused) since their status was held.
    results_seen: std::collections::HashSet<CommandTag>,
    /// Gets whose Results were refused before their status arrived: the refusal is the status.
    refused_results: BTreeMap<CommandTag, StatusCode>,
    /// Our last message lacked Final: the next device message lets us continue the package.
    our_package_open: bool,
    /// Alerts the engine sent on its own (1225), by (our MsgID, CmdID): the device's Status
    /// for them still belongs to this session (DM Protocol 1.2 §7; issue 9 item 8).
    engine_alerts: std::collections::BTreeSet<(u32, u32)>,
    /// Answers (statuses, engine alerts) that did not fit our last message: they open the next.
    carry: VecDeque<Command>,
    /// Consecutive non-final messages that could place no command (spin guard).
    stalled: u32,
    pending: Option<Plan>,
    transmit: Option<Outgoing>,
    /// The last response, replayed when the device repeats its last message.
    last_response: Option<(u32, Outgoing)>,
    events: VecDeque<SessionEvent>,
    deadline: Instant,
    ended: bool,
}

impl ServerSession {
    /// A session for `device`, created when its first message arrives (after [`peek`]).
    ///
    /// [`peek`]: super::peek
    pub fn new(
        config: &ServerConfig,
        device: DeviceContext,
        random: Randomness,
        now: Instant,
    ) -> Self {
        let send_server_cred = device.quirks.needs_server_cred_first;
        Self {
            deadline: now + config.session_timeout,
            config: config.clone(),
            device,
            random,
            nonce_counter: 0,
            session_id: None,
            last_in_msg_id: None,
            next_out_msg_id: 1,
            encoding: Encoding::Xml,
            content_type: Encoding::Xml.content_type().to_string(),
            started: false,
            client_authenticated: false,
            auth_failures: 0,
            session_nonce: None,
            send_server_cred,
            server_rejections: 0,
            server_nonce_unverified: false,
            device_max_msg: None,
            engine_alerts: std::collections::BTreeSet::new(),
            carry: VecDeque::new(),
            device_max_obj: None,
            queue: VecDeque::new(),
            sent: BTreeMap::new(),
            done: Default::default(),
            chunking: None,
            reassembly: None,
            refused_object: None,
            held_gets: BTreeMap::new(),
            results_seen: Default::default(),
            refused_results: BTreeMap::new(),
            our_package_open: false,
            stalled: 0,
            pending: None,
            transmit: None,
            last_response: None,
            events: VecDeque::new(),
            ended: false,
        }
    }

    /// Queues a command for the device; it goes out in the next message(s) that have room.
    /// Fails only when the session has ended (the command was not taken: requeue it).
    pub fn enqueue(&mut self, tag: CommandTag, command: DmCommand) -> Result<(), SessionError> {
        if self.ended {
            return Err(SessionError::Finished);
        }
        self.queue.push_back((tag, command));
        Ok(())
    }

    /// True once [`SessionEvent::Ended`] was emitted.
    pub fn is_finished(&self) -> bool {
        self.ended
    }

    /// The next event, if any. Drain after `handle`, `poll_transmit` and `handle_timeout`.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`ServerSession::handle_timeout`] must be called if no message arrives.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.ended).then_some(self.deadline)
    }

    /// Ends the session with [`EndReason::TimedOut`] if its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.ended && now >= self.deadline {
            self.pending = None;
            self.end(EndReason::TimedOut);
        }
    }

    /// The message to send in answer to the last device message, built now from what is
    /// queued. `None` when there is nothing to send.
    pub fn poll_transmit(&mut self, _now: Instant) -> Option<Outgoing> {
        if let Some(t) = self.transmit.take() {
            return Some(t);
        }
        let plan = self.pending.take()?;
        let in_msg_id = plan.in_msg_id;
        let out = self.build(plan);
        self.last_response = Some((in_msg_id, out.clone()));
        Some(out)
    }

    /// Feeds one device message. On `Ok`, drain events and call `poll_transmit` for the
    /// answer. On `Err`, the message was not accepted; the session goes on unless the error
    /// ended it (an undecodable first message, an out-of-order MsgID): then an
    /// [`SessionEvent::Ended`] lists every command back.
    pub fn handle(&mut self, incoming: Incoming<'_>, now: Instant) -> Result<(), SessionError> {
        if self.ended {
            return Err(SessionError::Finished);
        }
        let first = self.last_in_msg_id.is_none();
        let encoding = match incoming.content_type {
            Some(ct) => match Encoding::from_content_type(ct) {
                Some(e) => e,
                None => {
                    let err = SessionError::UnsupportedContentType(ct.chars().take(80).collect());
                    if first {
                        self.end(EndReason::ProtocolError(
                            ProtocolError::UndecodableFirstMessage,
                        ));
                    }
                    return Err(err);
                }
            },
            None => Encoding::sniff(incoming.body),
        };
        let decoded = match decode_with(incoming.body, encoding, self.config.limits) {
            Ok(d) => d,
            Err(e) => {
                if first {
                    self.end(EndReason::ProtocolError(
                        ProtocolError::UndecodableFirstMessage,
                    ));
                }
                return Err(SessionError::Decode(e));
            }
        };
        self.accept(decoded, incoming, now)
    }

    /// [`handle`](Self::handle) for a message the driver already decoded (with
    /// [`peek_decoded`](super::peek_decoded), to route the first message of a session):
    /// the same checks and effects, without decoding the body a second time. `incoming` still
    /// carries the raw body, which an HMAC is computed over.
    pub fn handle_decoded(
        &mut self,
        incoming: Incoming<'_>,
        decoded: Decoded,
        now: Instant,
    ) -> Result<(), SessionError> {
        if self.ended {
            return Err(SessionError::Finished);
        }
        self.accept(decoded, incoming, now)
    }

    /// Checks a decoded device message against the session (device, SessionID, MsgID order)
    /// and processes it.
    fn accept(
        &mut self,
        decoded: Decoded,
        incoming: Incoming<'_>,
        now: Instant,
    ) -> Result<(), SessionError> {
        let first = self.last_in_msg_id.is_none();
        let msg = decoded.message;
        if msg.header.source.loc_uri != self.device.device_id {
            return Err(ProtocolError::DeviceMismatch {
                expected: self.device.device_id.clone(),
                got: msg.header.source.loc_uri.chars().take(200).collect(),
            }
            .into());
        }
        if let Some(sid) = &self.session_id
            && msg.header.session_id != *sid
        {
            return Err(ProtocolError::SessionIdMismatch {
                expected: sid.clone(),
                got: msg.header.session_id.chars().take(200).collect(),
            }
            .into());
        }
        if let Some(last) = self.last_in_msg_id {
            if msg.header.msg_id == last {
                // An HTTP retry of the last message: answer it again, change nothing.
                if let Some((id, out)) = &self.last_response
                    && *id == last
                    && self.pending.is_none()
                {
                    self.transmit = Some(out.clone());
                }
                self.deadline = now + self.config.session_timeout;
                return Ok(());
            }
            let expected = last.saturating_add(1);
            if msg.header.msg_id != expected {
                let err = ProtocolError::MsgIdOutOfOrder {
                    expected,
                    got: msg.header.msg_id,
                };
                self.pending = None;
                self.end(EndReason::ProtocolError(err.clone()));
                return Err(err.into());
            }
        }
        // Accepted.
        self.last_in_msg_id = Some(msg.header.msg_id);
        self.deadline = now + self.config.session_timeout;
        if first {
            self.session_id = Some(msg.header.session_id.clone());
            self.encoding = decoded.encoding;
            self.content_type = incoming
                .content_type
                .and_then(|ct| ct.split(';').next())
                .map(|ct| ct.trim().to_ascii_lowercase())
                .filter(|ct| Encoding::from_content_type(ct) == Some(decoded.encoding))
                .unwrap_or_else(|| decoded.encoding.content_type().to_string());
        }
        if !decoded.warnings.is_empty() {
            self.events
                .push_back(SessionEvent::Anomaly(Anomaly::DecodeWarnings(
                    decoded.warnings.iter().map(|w| w.to_string()).collect(),
                )));
        }
        if let Some(meta) = &msg.header.meta {
            if meta.max_msg_size.is_some() {
                self.device_max_msg = meta.max_msg_size;
            }
            if meta.max_obj_size.is_some() {
                self.device_max_obj = meta.max_obj_size;
            }
        }
        if let Some(code) = unsupported_version(&msg.header) {
            self.refuse_version(&msg, code);
            return Ok(());
        }
        self.process(&msg, incoming);
        Ok(())
    }

    /// Answers a message in a version we do not speak: the SyncHdr and every command get
    /// `code` (505 or 513), nothing is executed — no authentication, so no
    /// [`SessionEvent::Authenticated`], no `Started`, no DevInfo, no statuses or results taken
    /// for our commands — and the session ends after this reply (decision 72). Our reply
    /// carries VerDTD 1.2 / VerProto DM/1.2, which tells the device what we do speak.
    fn refuse_version(&mut self, msg: &Message, code: StatusCode) {
        let in_msg = msg.header.msg_id;
        let mut statuses = vec![Status::for_header(&msg.header, code)];
        statuses.extend(command_statuses(msg, code));
        let reason = EndReason::ProtocolError(ProtocolError::UnsupportedVersion {
            ver_dtd: msg.header.ver_dtd.chars().take(40).collect(),
            ver_proto: msg.header.ver_proto.chars().take(40).collect(),
        });
        self.pending = Some(Plan {
            statuses,
            extra: Vec::new(),
            mode: Mode::EndAfter(reason),
            in_msg_id: in_msg,
        });
    }

    // -----------------------------------------------------------------------------------------
    // Processing a device message
    // -----------------------------------------------------------------------------------------

    fn process(&mut self, msg: &Message, incoming: Incoming<'_>) {
        let in_msg = msg.header.msg_id;
        let mut header_status = Status::for_header(&msg.header, StatusCode::OK);

        // The device's challenge to us is read first, from any message — the first of a
        // session included, and one that fails client authentication (issue 9 item 13,
        // decision 90): its NextNonce is "the nonce to be used in any subsequent
        // communication" (SyncML Meta-Information, NextNonce; DM Security 1.2 §5), so our
        // next message, in this session or the next, must use it. A device that carried
        // on a session we had already closed reaches us here as the first message of a
        // new one, and its nonce must not be lost with it.
        let chal_changed_nonce = self.take_device_chal(msg);

        // Client authentication (DM Security 1.2 §5; DM Protocol 1.2 §9 Authentication).
        match self.check_client(msg, incoming) {
            Ok(verified) => {
                let hmac = self.device.client_auth == AuthType::Hmac;
                let first = verified.is_some();
                if let Some(verified) = verified {
                    self.client_authenticated = true;
                    // The device proved who it is: a nonce its message set is its own.
                    self.server_nonce_unverified = false;
                    // DM Security 1.2 §5.4 (HMAC): the MAC is checked on every message, so
                    // each one that passes gets 200, never 212 ("authenticated for the rest
                    // of the session" is what 212 means, and only Basic/MD5 work that way).
                    header_status.code = if hmac {
                        StatusCode::OK
                    } else {
                        StatusCode::AUTHENTICATION_ACCEPTED
                    };
                    self.events.push_back(SessionEvent::Authenticated(verified));
                }
                // A fresh nonce (DM Security 1.2 §5: the server may send a NextNonce with any
                // status). MD5: once, for the next session. HMAC: with every message, for
                // the device's next message — the closing one included, so the next session
                // starts from a nonce the device has (§5.4). Basic uses no nonce.
                if (first && self.device.client_auth != AuthType::Basic) || hmac {
                    let next = self.fresh_nonce();
                    self.session_nonce = Some(std::mem::replace(
                        &mut self.device.client_nonce,
                        next.clone(),
                    ));
                    header_status.chal = Some(self.client_chal(&next));
                    self.nonces_changed();
                }
            }
            Err(error) => {
                self.auth_failures += 1;
                if chal_changed_nonce {
                    // Anyone can send a Chal in a message that fails authentication: the
                    // nonce is kept (the real device may need it to resynchronise), but our
                    // credentials are not computed over it until the device authenticates,
                    // so that the endpoint cannot be used as an oracle signing nonces of an
                    // outsider's choice (decision 90).
                    self.server_nonce_unverified = true;
                }
                // Brute force is bounded without breaking the rule that every 401/407 carries
                // a Chal (DM Security 1.2 §5; DM Protocol 1.2 §9, decision 78): every failed
                // attempt, the last included, is answered with a fresh nonce, and the session
                // ends after `max_auth_attempts` failures, so one session tries at most that
                // many guesses, each against a new nonce.
                let final_attempt = self.auth_failures >= self.config.max_auth_attempts;
                let status = StatusCode(error.status_code());
                header_status.code = status;
                let next = self.fresh_nonce();
                self.device.client_nonce = next.clone();
                let chal = self.client_chal(&next);
                header_status.chal = Some(chal.clone());
                self.nonces_changed();
                self.events.push_back(SessionEvent::AuthFailed {
                    error,
                    status,
                    attempts: self.auth_failures,
                    final_attempt,
                });
                // DM Protocol 1.2 §9 (decision 77): a message that fails authentication gets a
                // Status for every command in it, not only for the SyncHdr, each with the
                // same 401/407 and the Chal, so the device resends exactly those commands
                // (libdmclient resends package 1 only for commands that came back 401/407).
                // Nothing in it runs. Status and Results are answers, not commands: they get
                // none (as in `process` below); they are read again when the device resends.
                let mut statuses = vec![header_status];
                statuses.extend(command_statuses(msg, status).map(|mut st| {
                    st.chal = Some(chal.clone());
                    st
                }));
                self.pending = Some(Plan {
                    statuses,
                    extra: Vec::new(),
                    mode: Mode::AuthChallenge { end: final_attempt },
                    in_msg_id: in_msg,
                });
                return;
            }
        }

        let mut statuses = Vec::new();
        if !msg.header.no_resp {
            statuses.push(header_status);
        }
        let mut extra = Vec::new();
        let mut end: Option<EndReason> = None;

        // The status for our SyncHdr first: it decides whether our commands were refused.
        let mut rejected_msg = None;
        for c in &msg.body.commands {
            if let Command::Status(st) = c
                && st.cmd_ref == 0
                && let Some(r) = self.on_header_status(st)
            {
                rejected_msg = Some(r);
            }
        }
        if self.server_rejections >= MAX_SERVER_CRED_REJECTIONS {
            end = Some(EndReason::ServerAuthRejected);
        }

        for c in &msg.body.commands {
            let mut code = Some(StatusCode::OK);
            let mut no_resp = false;
            match c {
                Command::Status(st) => {
                    code = None;
                    if st.cmd_ref != 0 {
                        self.on_status(st, rejected_msg);
                    }
                }
                Command::Results(r) => {
                    code = None;
                    self.on_results(r, in_msg, &mut statuses, &mut extra);
                }
                Command::Alert(a) => {
                    no_resp = a.no_resp;
                    code = Some(self.on_alert(a, msg, &mut end));
                }
                Command::Replace(rc) => {
                    no_resp = rc.no_resp;
                    let reports = rc
                        .items
                        .iter()
                        .map(|i| report(i, rc.meta.as_ref()))
                        .collect();
                    self.events.push_back(SessionEvent::DeviceInfo(reports));
                }
                other => {
                    self.events
                        .push_back(SessionEvent::Anomaly(Anomaly::UnexpectedCommand {
                            name: other.name(),
                        }));
                    code = Some(StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED);
                }
            }
            if let Some(code) = code
                && !no_resp
                && !msg.header.no_resp
            {
                statuses.push(status_for(in_msg, c, code));
            }
        }
        if !self.started {
            self.started = true;
            self.events.push_back(SessionEvent::Started {
                kind: SessionKind::Unspecified,
                session_id: msg.header.session_id.clone(),
            });
        }
        if let Some(m) = rejected_msg {
            self.requeue_refused(m);
        }
        self.release_gets(msg.body.final_);
        if self.device.quirks.atomic_without_status || msg.body.final_ {
            self.derive_containers();
        }

        let mode = if let Some(reason) = end {
            Mode::EndAfter(reason)
        } else if self.our_package_open {
            Mode::Package
        } else if !msg.body.final_ {
            Mode::NextMessage
        } else {
            if self.queue.is_empty() && self.chunking.is_none() {
                self.events.push_back(SessionEvent::CommandsNeeded);
            }
            Mode::Package
        };
        self.pending = Some(Plan {
            statuses,
            extra,
            mode,
            in_msg_id: in_msg,
        });
    }

    /// Checks the device's credentials. `Ok(Some)` on (first) success, `Ok(None)` when nothing
    /// needed checking (already authenticated with Basic/MD5: DM Security, 212 covers the
    /// session).
    fn check_client(
        &self,
        msg: &Message,
        incoming: Incoming<'_>,
    ) -> Result<Option<Verified>, AuthError> {
        let key = &self.device.client_key;
        if self.device.client_auth == AuthType::Hmac {
            // HMAC authenticates every message (DM Security §5.4).
            let value = incoming.hmac.ok_or(AuthError::Missing)?;
            let header = HmacHeader::parse(value)?;
            let result = header.verify_with_key(key, &self.device.client_nonce, incoming.body);
            let result = match (result, &self.session_nonce) {
                (Err(_), Some(prev)) if self.client_authenticated => {
                    header.verify_with_key(key, prev, incoming.body)
                }
                (r, _) => r,
            };
            let v = result?;
            return Ok((!self.client_authenticated).then_some(v));
        }
        if self.client_authenticated {
            return Ok(None);
        }
        let cred = msg.header.cred.as_ref().ok_or(AuthError::Missing)?;
        let v = verify_cred_element_with_key(cred, key, &self.device.client_nonce)?;
        if self.device.client_auth == AuthType::Md5 && v.auth_type == AuthType::Basic {
            // Never let a device downgrade to a weaker scheme than its policy.
            return Err(AuthError::Unsupported(Unsupported::AuthType(
                AuthType::Basic.wire_name().into(),
            )));
        }
        Ok(Some(v))
    }

    fn client_chal(&self, next: &Nonce) -> Chal {
        Chal {
            meta: Meta {
                format: Some(FORMAT_B64.into()),
                type_: Some(self.device.client_auth.wire_name().into()),
                next_nonce: Some(next.to_b64()),
                ..Meta::default()
            },
        }
    }

    /// The device's status for our SyncHdr (DM Security §5: 212 accepted for the session,
    /// 401/407 refused with a Chal). Returns the MsgID whose commands were refused.
    /// Takes the scheme and NextNonce of the device's `Chal` on its Status for our SyncHdr
    /// (read before anything else in `process`). True when our nonce changed.
    fn take_device_chal(&mut self, msg: &Message) -> bool {
        let chal = msg.body.commands.iter().find_map(|c| match c {
            Command::Status(st) if st.cmd_ref == 0 => st.chal.as_ref(),
            _ => None,
        });
        let Some(chal) = chal else {
            return false;
        };
        if let Some(t) = chal.meta.type_.as_deref().and_then(AuthType::from_wire)
            && t != AuthType::Basic
        {
            self.device.server_auth = t;
        }
        if let Some(nn) = chal.meta.next_nonce.as_deref()
            && let Ok(n) = Nonce::from_b64(nn)
            && n != self.device.server_nonce
        {
            self.device.server_nonce = n;
            self.nonces_changed();
            return true;
        }
        false
    }

    fn on_header_status(&mut self, st: &Status) -> Option<u32> {
        // Its Chal was taken already (`take_device_chal`).
        match st.code.0 {
            212 => {
                self.send_server_cred = false;
                None
            }
            401 | 407 => {
                self.server_rejections += 1;
                self.send_server_cred = true;
                self.events
                    .push_back(SessionEvent::ServerCredRejected { status: st.code });
                Some(st.msg_ref)
            }
            _ => None,
        }
    }

    fn on_status(&mut self, st: &Status, rejected_msg: Option<u32>) {
        let key = (st.msg_ref, st.cmd_ref);
        if self.engine_alerts.remove(&key) {
            // The device's answer to our Alert 1225: nothing waits on it.
            return;
        }
        let Some(sent) = self.sent.get_mut(&key) else {
            self.events
                .push_back(SessionEvent::Anomaly(Anomaly::UnknownStatusRef {
                    msg_ref: st.msg_ref,
                    cmd_ref: st.cmd_ref,
                    cmd: st.cmd.chars().take(40).collect(),
                }));
            return;
        };
        if rejected_msg == Some(st.msg_ref) && matches!(st.code.0, 0 | 401 | 407) {
            // Not executed because our credentials were refused: requeued below.
            return;
        }
        let tag = sent.tag;
        if sent.resolved {
            self.events
                .push_back(SessionEvent::Anomaly(Anomaly::DuplicateStatus { tag }));
            return;
        }
        sent.resolved = true;
        sent.status = Some(st.code);
        let kind = sent.kind.clone();
        match kind {
            SentKind::Chunk => {
                if st.code.is_success() {
                    return; // 213: keep sending.
                }
                // The device refused a chunk: the object is dead (DM Protocol 1.2 §7).
                if self.chunking.as_ref().is_some_and(|c| c.tag == tag) {
                    self.chunking = None;
                    self.our_package_open = !self.queue.is_empty();
                }
                self.final_status(tag, st.code, StatusSource::Device);
            }
            SentKind::Ui(kind) => {
                let answer = ui_answer(kind, st);
                if !self.done.contains(&tag) {
                    self.events.push_back(SessionEvent::UserResponse {
                        tag,
                        status: st.code,
                        answer,
                    });
                }
                self.final_status(tag, st.code, StatusSource::Device);
            }
            SentKind::Get if st.code.is_success() => match self.refused_results.remove(&tag) {
                Some(code) => {
                    if let Some(s) = self.sent.get_mut(&key) {
                        s.status = Some(code);
                    }
                    self.final_status(tag, code, StatusSource::Engine);
                }
                // Held until its Results are in (released in `release_gets`).
                None => {
                    self.held_gets.insert(tag, st.code);
                }
            },
            _ => self.final_status(tag, st.code, StatusSource::Device),
        }
    }

    /// Results for the Get `key` were refused with `code` (413 too large, 424 size
    /// mismatch): the value is lost, so the Get fails with that code — a Get whose only
    /// purpose is its value cannot be a success without it (issue 9 item 9, decision 73).
    fn refuse_results(&mut self, key: (u32, u32), tag: CommandTag, code: StatusCode) {
        self.results_seen.insert(tag);
        if self.held_gets.remove(&tag).is_some() {
            if let Some(s) = self.sent.get_mut(&key) {
                s.status = Some(code);
            }
            self.final_status(tag, code, StatusSource::Engine);
        } else if !self.done.contains(&tag) {
            self.refused_results.insert(tag, code);
        }
        // Otherwise the Get's status went out before its Results began (a device that sent
        // them a package later): the `LargeObjectDropped` anomaly is all that can be said.
    }

    /// Releases the held Get statuses whose Results are in (or that can expect none any more:
    /// the device's package is over) and are not being reassembled.
    fn release_gets(&mut self, package_over: bool) {
        let ready: Vec<CommandTag> = self
            .held_gets
            .keys()
            .copied()
            .filter(|t| {
                self.reassembly.as_ref().is_none_or(|ra| ra.tag != *t)
                    && (package_over || self.results_seen.contains(t))
            })
            .collect();
        for tag in ready {
            self.results_seen.remove(&tag);
            if let Some(code) = self.held_gets.remove(&tag) {
                self.final_status(tag, code, StatusSource::Device);
            }
        }
    }

    fn final_status(&mut self, tag: CommandTag, status: StatusCode, source: StatusSource) {
        if self.done.insert(tag) {
            self.events.push_back(SessionEvent::CommandStatus {
                tag,
                status,
                source,
            });
        } else {
            self.events
                .push_back(SessionEvent::Anomaly(Anomaly::DuplicateStatus { tag }));
        }
    }

    /// Containers the device sent no Status for get one derived from their inner statuses
    /// (GUIDE §3: a real client answers Atomic without a Status for the Atomic itself).
    fn derive_containers(&mut self) {
        let mut derived = Vec::new();
        for (key, s) in &self.sent {
            if s.resolved {
                continue;
            }
            if let SentKind::Container { atomic, inner } = &s.kind {
                let inner_status: Option<Vec<StatusCode>> = inner
                    .iter()
                    .map(|k| self.sent.get(k).and_then(|i| i.status))
                    .collect();
                if let Some(codes) = inner_status {
                    let code = if !*atomic || codes.iter().all(|c| c.is_success()) {
                        StatusCode::OK
                    } else {
                        StatusCode::ATOMIC_FAILED
                    };
                    derived.push((*key, s.tag, code));
                }
            }
        }
        for (key, tag, code) in derived {
            if let Some(s) = self.sent.get_mut(&key) {
                s.resolved = true;
                s.status = Some(code);
            }
            self.final_status(tag, code, StatusSource::Derived);
        }
    }

    /// The device refused our credentials for message `m`: what it did not execute goes back
    /// to the front of the queue, so it is sent again — never lost, never run twice.
    fn requeue_refused(&mut self, m: u32) {
        let keys: Vec<(u32, u32)> = self
            .sent
            .range((m, 0)..=(m, u32::MAX))
            .filter(|(_, s)| !s.resolved)
            .map(|(k, _)| *k)
            .collect();
        let mut back = Vec::new();
        for k in keys {
            if let Some(s) = self.sent.remove(&k)
                && let Some(orig) = s.original
                && !self.done.contains(&s.tag)
            {
                back.push((s.tag, orig));
            }
        }
        // Inner commands of requeued containers are dropped with them above (no `original`);
        // a chunked object restarts from its first chunk.
        if let Some(ch) = self.chunking.take() {
            back.push((ch.tag, ch.original));
        }
        for item in back.into_iter().rev() {
            self.queue.push_front(item);
        }
        if !self.queue.is_empty() {
            self.our_package_open = true;
        }
    }

    fn on_alert(&mut self, a: &Alert, msg: &Message, end: &mut Option<EndReason>) -> StatusCode {
        match a.code {
            AlertCode::CLIENT_INITIATED_MGMT | AlertCode::SERVER_INITIATED_MGMT => {
                if !self.started {
                    self.started = true;
                    let kind = if a.code == AlertCode::CLIENT_INITIATED_MGMT {
                        SessionKind::ClientInitiated
                    } else {
                        SessionKind::ServerInitiated
                    };
                    self.events.push_back(SessionEvent::Started {
                        kind,
                        session_id: msg.header.session_id.clone(),
                    });
                }
                StatusCode::OK
            }
            AlertCode::NEXT_MESSAGE | AlertCode::CLIENT_EVENT => StatusCode::OK,
            AlertCode::SESSION_ABORT => {
                *end = Some(EndReason::Aborted);
                StatusCode::OK
            }
            AlertCode::GENERIC_ALERT => {
                let items = a
                    .items
                    .iter()
                    .map(|i| {
                        let meta = i.meta.as_ref();
                        GenericAlertItem {
                            source: i.source.as_ref().map(|l| l.loc_uri.clone()),
                            target: i.target.as_ref().map(|l| l.loc_uri.clone()),
                            type_: meta.and_then(|m| m.type_.clone()),
                            format: meta.and_then(|m| m.format.clone()),
                            mark: meta.and_then(|m| m.mark.clone()),
                            data: i.data.clone(),
                        }
                    })
                    .collect();
                self.events.push_back(SessionEvent::GenericAlert {
                    correlator: a.correlator.clone(),
                    items,
                });
                StatusCode::OK
            }
            AlertCode::NO_END_OF_DATA => {
                // The device lost our large object (DM Protocol 1.2 §7).
                if let Some(ch) = self.chunking.take() {
                    self.final_status(
                        ch.tag,
                        StatusCode::INCOMPLETE_COMMAND,
                        StatusSource::Derived,
                    );
                    self.our_package_open = !self.queue.is_empty();
                }
                StatusCode::OK
            }
            other => {
                self.events
                    .push_back(SessionEvent::Anomaly(Anomaly::UnexpectedAlert {
                        code: other.0,
                    }));
                StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED
            }
        }
    }

    fn on_results(
        &mut self,
        r: &Results,
        in_msg: u32,
        statuses: &mut Vec<Status>,
        extra: &mut Vec<Command>,
    ) {
        // A Results without MsgRef refers to our latest message with that CmdID.
        let key = match r.msg_ref {
            Some(m) => Some((m, r.cmd_ref)),
            None => self
                .sent
                .iter()
                .rev()
                .find(|((_, c), s)| *c == r.cmd_ref && matches!(s.kind, SentKind::Get))
                .map(|(k, _)| *k),
        };
        let tag = key
            .and_then(|k| self.sent.get(&k))
            .filter(|s| matches!(s.kind, SentKind::Get))
            .map(|s| s.tag);
        let (Some(key), Some(tag)) = (key, tag) else {
            self.events
                .push_back(SessionEvent::Anomaly(Anomaly::UnknownResultsRef {
                    msg_ref: r.msg_ref.unwrap_or(0),
                    cmd_ref: r.cmd_ref,
                }));
            return;
        };
        self.results_seen.insert(tag);
        let mut reports = Vec::new();
        let mut result_status = None;
        for item in &r.items {
            let rep = report(item, r.meta.as_ref());
            if let Some((k, u)) = &self.refused_object
                && *k == key
                && *u == rep.uri
            {
                // A further chunk of an object we refused: same answer, dropped.
                if !item.more_data {
                    self.refused_object = None;
                }
                result_status = result_status.or(Some(StatusCode::REQUEST_ENTITY_TOO_LARGE));
                continue;
            }
            let continuing = self
                .reassembly
                .as_ref()
                .is_some_and(|ra| ra.get == key && ra.uri == rep.uri);
            if !continuing && let Some(old) = self.reassembly.take() {
                // New data before the last chunk: DM Protocol 1.2 §7 asks for Alert 1225.
                self.events
                    .push_back(SessionEvent::Anomaly(Anomaly::LargeObjectDropped {
                        tag: Some(old.tag),
                        code: AlertCode::NO_END_OF_DATA.0,
                    }));
                extra.push(Command::Alert(Alert {
                    cmd_id: 0,
                    no_resp: false,
                    cred: None,
                    correlator: None,
                    code: AlertCode::NO_END_OF_DATA,
                    items: vec![Item {
                        source: Some(Location::new(old.uri)),
                        ..Item::default()
                    }],
                }));
            }
            if !item.more_data && !continuing {
                reports.push(rep);
                continue;
            }
            let ra = self.reassembly.get_or_insert_with(|| Reassembly {
                get: key,
                tag,
                uri: rep.uri.clone(),
                format: rep.format.clone(),
                mime_type: rep.mime_type.clone(),
                declared: item.meta.as_ref().and_then(|m| m.size),
                bytes: Vec::new(),
                all_text: true,
            });
            if let Some(d) = &item.data {
                ra.all_text &= matches!(d, Data::Text(_));
                ra.bytes.extend_from_slice(d.as_bytes());
            }
            if ra.bytes.len() as u64 > u64::from(self.config.max_obj_size) {
                self.reassembly = None;
                if item.more_data {
                    self.refused_object = Some((key, rep.uri.clone()));
                }
                self.events
                    .push_back(SessionEvent::Anomaly(Anomaly::LargeObjectDropped {
                        tag: Some(tag),
                        code: 413,
                    }));
                result_status = Some(StatusCode::REQUEST_ENTITY_TOO_LARGE);
                self.refuse_results(key, tag, StatusCode::REQUEST_ENTITY_TOO_LARGE);
                continue;
            }
            if item.more_data {
                result_status = Some(StatusCode::CHUNKED_ITEM_ACCEPTED);
                continue;
            }
            // Last chunk: reassemble and check the announced Size (424 on mismatch).
            let Some(ra) = self.reassembly.take() else {
                continue;
            };
            if ra.declared.is_some_and(|n| n != ra.bytes.len() as u64) {
                self.events
                    .push_back(SessionEvent::Anomaly(Anomaly::LargeObjectDropped {
                        tag: Some(tag),
                        code: 424,
                    }));
                result_status = Some(StatusCode::SIZE_MISMATCH);
                self.refuse_results(key, tag, StatusCode::SIZE_MISMATCH);
                continue;
            }
            let data = if ra.all_text {
                match String::from_utf8(ra.bytes) {
                    Ok(s) => Data::Text(s),
                    Err(e) => Data::Opaque(e.into_bytes()),
                }
            } else {
                Data::Opaque(ra.bytes)
            };
            reports.push(NodeReport {
                uri: ra.uri,
                format: ra.format,
                mime_type: ra.mime_type,
                data: Some(data),
            });
        }
        if !reports.is_empty() {
            self.events.push_back(SessionEvent::CommandResults {
                tag,
                items: reports,
            });
        }
        let code = result_status.or(self
            .device
            .quirks
            .status_for_results
            .then_some(StatusCode::OK));
        if let Some(code) = code {
            statuses.push(status_for(in_msg, &Command::Results(r.clone()), code));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Building our message
    // -----------------------------------------------------------------------------------------

    fn header(&mut self, msg_id: u32) -> Header {
        let sep = if self.config.server_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let cred = if self.send_server_cred
            && !self.server_nonce_unverified
            && self.device.server_auth != AuthType::Hmac
        {
            make_cred_with_key(
                AuthType::Md5,
                &self.device.server_key,
                &self.device.server_nonce,
            )
            .map(Cred::from)
        } else {
            None
        };
        Header {
            session_id: self.session_id.clone().unwrap_or_default(),
            msg_id,
            target: Location::new(self.device.device_id.clone()),
            source: Location::new(self.config.server_uri.clone()),
            resp_uri: Some(format!(
                "{}{sep}s={}",
                self.config.server_uri,
                hex(&self.random.session_token)
            )),
            cred,
            meta: Some(Meta {
                max_msg_size: Some(u64::from(self.config.max_msg_size)),
                max_obj_size: Some(u64::from(self.config.max_obj_size)),
                ..Meta::default()
            }),
            ..Header::default()
        }
    }

    /// The device's effective MaxMsgSize.
    fn msg_limit(&self) -> usize {
        let v = match self.device.quirks.max_msg_size_override {
            Some(v) => u64::from(v),
            None => self
                .device_max_msg
                .unwrap_or(u64::from(self.config.default_device_max_msg_size)),
        };
        usize::try_from(v).unwrap_or(usize::MAX)
    }

    fn build(&mut self, plan: Plan) -> Outgoing {
        let msg_id = self.next_out_msg_id;
        self.next_out_msg_id = self.next_out_msg_id.saturating_add(1);
        let mut header = self.header(msg_id);
        let limit = self.msg_limit();
        let mut commands = Vec::new();
        let mut next_id = 1u32;
        // Every server message respects the device's MaxMsgSize (DM RepPro 1.2 MaxMsgSize;
        // DM Protocol 1.2, multiple messages in a package), this one included. Mandatory:
        // the header and the Status for the device's SyncHdr (with its Chal). The other
        // answers (statuses, the engine's own alerts, older ones carried first) go in order
        // while they fit; the rest are carried to our next message of the package.
        let mut answers: Vec<Command> = Vec::new();
        let mut newer = Vec::new();
        for st in plan.statuses {
            if answers.is_empty() && st.cmd_ref == 0 && st.cmd == "SyncHdr" {
                answers.push(Command::Status(st));
            } else {
                newer.push(Command::Status(st));
            }
        }
        answers.extend(self.carry.drain(..));
        answers.extend(newer);
        answers.extend(plan.extra);
        // A continuation ("Next Message") response must still hold its Alert 1222.
        let reserve = matches!(plan.mode, Mode::NextMessage).then(|| next_message_alert(99_999));
        // Our MaxMsgSize/MaxObjSize in the header are informative (SyncHdr Meta is optional):
        // given in our first message and whenever nothing waits to be sent, left out when the
        // answers would not all fit with them (decision 81).
        let work_waiting = !self.queue.is_empty() || self.chunking.is_some();
        if msg_id > 1 && work_waiting {
            header.meta = None;
        }
        if header.meta.is_some() {
            let (_, placed) = self.pack(&header, limit, &answers, reserve.as_ref());
            if placed < answers.len() {
                header.meta = None;
            }
        }
        let (mut budget, placed) = self.pack(&header, limit, &answers, reserve.as_ref());
        // The SyncHdr status is never carried; if even it does not fit, the message cannot be
        // made smaller within the protocol and goes over the limit (decision 81). At least one
        // answer per message keeps a carry from spinning.
        let placed = if answers.is_empty() { 0 } else { placed.max(1) };
        let mut answers = answers.into_iter();
        for mut c in answers.by_ref().take(placed) {
            set_cmd_id(&mut c, next_id);
            if matches!(c, Command::Alert(_)) {
                self.engine_alerts.insert((msg_id, next_id));
            }
            next_id += 1;
            budget.push(&c);
            commands.push(c);
        }
        self.carry = answers.collect();
        // Commands of the engine's own (Alert 1225) expect a Status from the device: the
        // message carrying them cannot close the session (DM Protocol 1.2 §7).
        let expects_answer = commands.iter().any(|c| matches!(c, Command::Alert(_)));
        if matches!(plan.mode, Mode::AuthChallenge { .. } | Mode::EndAfter(_)) {
            // A closing message has no next message to carry to: the rest goes now
            // (decision 81). A refused message answers every command 401/407 (decision 77);
            // where the Chal of each would not fit the device's MaxMsgSize, a command's Status
            // goes without it — the Status for the SyncHdr, always first, carries the
            // challenge for the whole message (decision 84).
            for mut c in std::mem::take(&mut self.carry) {
                set_cmd_id(&mut c, next_id);
                next_id += 1;
                if !budget.try_add(&c, true) {
                    if let Command::Status(st) = &mut c {
                        st.chal = None;
                    }
                    budget.push(&c);
                }
                commands.push(c);
            }
        }
        let mut end = None;
        let final_ = match plan.mode {
            Mode::AuthChallenge { end: e } => {
                if e {
                    end = Some(EndReason::AuthFailed);
                }
                true
            }
            Mode::EndAfter(reason) => {
                end = Some(reason);
                true
            }
            Mode::NextMessage => {
                commands.push(next_message_alert(next_id));
                false
            }
            Mode::Package if !self.carry.is_empty() => {
                // Answers left for the next message: our package goes on (no Final), the
                // device's Alert 1222 asks for the rest.
                self.our_package_open = true;
                false
            }
            Mode::Package => {
                let (final_, added) =
                    self.fill(&header, &mut budget, &mut commands, &mut next_id, msg_id);
                self.our_package_open = !final_;
                if final_ && !added && !expects_answer {
                    // Statuses only: the session is over (DM Protocol 1.2 §8).
                    end = Some(EndReason::Completed);
                }
                final_
            }
        };
        let message = Message {
            header,
            body: omnidm_syncml::Body { commands, final_ },
        };
        let body = encode(&message, self.encoding);
        let hmac = (self.device.server_auth == AuthType::Hmac && !self.server_nonce_unverified)
            .then(|| {
                HmacHeader::compute_with_key(
                    &self.device.server_key,
                    &self.device.server_nonce,
                    &body,
                )
                .to_header_value()
            });
        if let Some(reason) = end {
            self.end(reason);
        }
        Outgoing {
            body,
            content_type: self.content_type.clone(),
            hmac,
            msg_id,
            final_,
        }
    }

    /// How many of `answers` (in order, numbered from CmdID 1) fit in a message with `header`
    /// next to `reserve`, and the budget holding them (without `reserve`).
    fn pack(
        &self,
        header: &Header,
        limit: usize,
        answers: &[Command],
        reserve: Option<&Command>,
    ) -> (MessageBudget, usize) {
        let mut budget = MessageBudget::new(header, self.encoding, limit);
        let mut placed = 0;
        for (i, c) in answers.iter().enumerate() {
            let mut c = c.clone();
            set_cmd_id(&mut c, u32::try_from(i + 1).unwrap_or(u32::MAX));
            let mut attempt = budget.clone();
            if !attempt.try_add(&c, true) {
                break;
            }
            if let Some(r) = reserve
                && !attempt.clone().try_add(r, true)
            {
                break;
            }
            budget = attempt;
            placed += 1;
        }
        // `budget` counted the placed answers; the caller re-counts them with their real
        // CmdIDs, so start again from the bare header.
        (MessageBudget::new(header, self.encoding, limit), placed)
    }

    /// Adds the next chunk and queued commands that fit. Returns (Final?, any command added).
    fn fill(
        &mut self,
        header: &Header,
        budget: &mut MessageBudget,
        commands: &mut Vec<Command>,
        next_id: &mut u32,
        msg_id: u32,
    ) -> (bool, bool) {
        let limit = self.msg_limit();
        // The smallest message that can carry a command: a continuation, which still holds
        // the Status for the device's SyncHdr and for its Alert 1222. A command that does not
        // fit even there can never be sent whole.
        // Our Cred is left out: it normally stops after the device's first 212. Should it
        // still be needed, the `stalled` guard below keeps the session from spinning.
        let bare = Header {
            cred: None,
            meta: None,
            ..header.clone()
        };
        let mut empty = MessageBudget::new(&bare, self.encoding, limit);
        let mut hdr = status_for(
            in_msg_placeholder(),
            &Command::Status(placeholder_status()),
            StatusCode::OK,
        );
        hdr.cmd_id = 99;
        hdr.cmd_ref = 0;
        hdr.cmd = "SyncHdr".into();
        hdr.target_refs = vec![self.config.server_uri.clone()];
        hdr.source_refs = vec![self.device.device_id.clone()];
        empty.push(&Command::Status(hdr));
        let mut alert_status = status_for(
            in_msg_placeholder(),
            &Command::Status(placeholder_status()),
            StatusCode::OK,
        );
        alert_status.cmd_id = 99;
        alert_status.cmd_ref = 99;
        alert_status.cmd = "Alert".into();
        empty.push(&Command::Status(alert_status));
        let mut added = false;
        let large_ok = !self.device.quirks.no_large_object && !self.device.quirks.no_multi_message;

        if let Some(mut ch) = self.chunking.take() {
            match self.next_chunk(&mut ch, budget, commands, next_id, msg_id) {
                Some(true) => added = true,
                Some(false) => {
                    self.chunking = Some(ch);
                    return (false, true);
                }
                None => {
                    // Not even one byte fits next to the statuses: try next message.
                    self.chunking = Some(ch);
                    return (false, added);
                }
            }
        }

        while let Some((tag, cmd)) = self.queue.pop_front() {
            if self.device.quirks.no_sequence && contains_sequence(&cmd) {
                self.fail_local(tag, &cmd, StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED);
                continue;
            }
            if let Some(max) = self.device_max_obj
                && max_item_len(&cmd) as u64 > max
            {
                self.fail_local(tag, &cmd, StatusCode::REQUEST_ENTITY_TOO_LARGE);
                continue;
            }
            let mut id = *next_id;
            let mut recs = Vec::new();
            let wire = to_wire(tag, &cmd, true, msg_id, &mut id, &mut recs);
            if budget.try_add(&wire, true) {
                commands.push(wire);
                *next_id = id;
                for (cid, s) in recs {
                    self.sent.insert((msg_id, cid), s);
                }
                added = true;
                continue;
            }
            if empty.clone().try_add(&wire, true) && self.stalled < 2 {
                // Fits a message of its own: next message (or next package).
                self.queue.push_front((tag, cmd));
                break;
            }
            // Larger than any message: a large object if it is one item and the device
            // can take one (DM Protocol 1.2 §7), else refused here.
            if large_ok && let Some(mut ch) = start_chunk(tag, &cmd) {
                match self.next_chunk(&mut ch, budget, commands, next_id, msg_id) {
                    Some(true) => {
                        added = true;
                        continue;
                    }
                    Some(false) => {
                        self.chunking = Some(ch);
                        return (false, true);
                    }
                    None => {
                        let probe = chunk_command(&ch, 99, ch.boundary(1), true);
                        if empty.clone().try_add(&probe, true) && self.stalled < 2 {
                            // Room for a chunk in a fresh continuation message.
                            self.queue.push_front((tag, cmd));
                            break;
                        }
                    }
                }
            }
            self.fail_local(tag, &cmd, StatusCode::REQUEST_ENTITY_TOO_LARGE);
        }
        // DM Protocol 1.2 §8.1 (multiple messages): "A server MUST send the Final flag in
        // every message, when possible" — the exceptions are a large object in progress
        // (returned above) and the "Next Message" response. So a message that carries commands
        // closes our package even when more are queued: they go in the next package, after
        // the device's statuses. Only a message that could place no command at all stays open
        // (continued on the device's Alert 1222), or the session would end with work queued.
        let final_ = self.queue.is_empty() || added || self.device.quirks.no_multi_message;
        // Two continuation messages in a row that could place nothing: the head command will
        // never fit; it is refused (413) next time instead of spinning forever.
        if added || final_ {
            self.stalled = 0;
        } else {
            self.stalled += 1;
        }
        (final_, added)
    }

    /// Places the next chunk of `ch`. `Some(true)`: the last chunk went out; `Some(false)`:
    /// a chunk went out and more follow; `None`: no room for even one byte.
    fn next_chunk(
        &mut self,
        ch: &mut OutChunk,
        budget: &mut MessageBudget,
        commands: &mut Vec<Command>,
        next_id: &mut u32,
        msg_id: u32,
    ) -> Option<bool> {
        let total = ch.data.len();
        let rest = total - ch.offset.min(total);
        let cmd_id = *next_id;
        // The whole rest as the last chunk?
        let last = chunk_command(ch, cmd_id, rest, false);
        if budget.try_add(&last, true) {
            self.commit_chunk(ch.tag, last, commands, next_id, msg_id, false);
            ch.offset = total;
            return Some(true);
        }
        // Binary search the largest chunk that fits with MoreData.
        let (mut lo, mut hi) = (0usize, rest);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            let n = ch.boundary(mid);
            if n > 0
                && budget
                    .clone()
                    .try_add(&chunk_command(ch, cmd_id, n, true), true)
            {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let n = ch.boundary(lo);
        if n == 0 {
            return None;
        }
        let c = chunk_command(ch, cmd_id, n, true);
        if !budget.try_add(&c, true) {
            return None;
        }
        self.commit_chunk(ch.tag, c, commands, next_id, msg_id, true);
        ch.offset += n;
        Some(false)
    }

    fn commit_chunk(
        &mut self,
        tag: CommandTag,
        c: Command,
        commands: &mut Vec<Command>,
        next_id: &mut u32,
        msg_id: u32,
        more: bool,
    ) {
        self.sent.insert(
            (msg_id, *next_id),
            Sent {
                tag,
                kind: if more {
                    SentKind::Chunk
                } else {
                    SentKind::Plain
                },
                original: None,
                resolved: false,
                status: None,
            },
        );
        *next_id += 1;
        commands.push(c);
    }

    /// Refuses a command without sending it: a status for it and every inner command.
    fn fail_local(&mut self, tag: CommandTag, cmd: &DmCommand, code: StatusCode) {
        self.final_status(tag, code, StatusSource::Engine);
        if let DmCommand::Atomic(inner) | DmCommand::Sequence(inner) = cmd {
            for (t, c) in inner {
                self.fail_local(*t, c, code);
            }
        }
    }

    /// Random-looking, unpredictable nonces from the driver's seed: `MD5(seed ‖ counter)`.
    fn fresh_nonce(&mut self) -> Nonce {
        self.nonce_counter = self.nonce_counter.wrapping_add(1);
        let mut h = Md5::new();
        h.update(self.random.nonce_seed);
        h.update(self.nonce_counter.to_le_bytes());
        let out: [u8; 16] = h.finalize().into();
        Nonce::from_random(out)
    }

    fn nonces_changed(&mut self) {
        self.events.push_back(SessionEvent::NoncesChanged {
            client_nonce: self.device.client_nonce.clone(),
            server_nonce: self.device.server_nonce.clone(),
        });
    }

    /// Ends the session, listing every command that did not get a final status.
    fn end(&mut self, reason: EndReason) {
        if self.ended {
            return;
        }
        self.derive_containers();
        self.ended = true;
        let chunk_tag = self.chunking.as_ref().map(|c| c.tag);
        let mut unsent: Vec<CommandTag> = self.queue.drain(..).map(|(t, _)| t).collect();
        if let Some(t) = chunk_tag {
            // The last chunk never went out, so the device cannot have committed it.
            unsent.push(t);
        }
        let mut unanswered = Vec::new();
        // A Get whose Results were still arriving has no value and no final status: it is
        // unanswered (idempotent, the driver may send it again). Other held statuses stand.
        for (tag, code) in std::mem::take(&mut self.held_gets) {
            if self.reassembly.as_ref().is_some_and(|ra| ra.tag == tag) {
                unanswered.push(tag);
            } else {
                self.final_status(tag, code, StatusSource::Device);
            }
        }
        for s in self.sent.values() {
            if s.resolved
                || matches!(s.kind, SentKind::Chunk)
                || Some(s.tag) == chunk_tag
                || self.done.contains(&s.tag)
                || unanswered.contains(&s.tag)
            {
                continue;
            }
            unanswered.push(s.tag);
        }
        self.events.push_back(SessionEvent::Ended {
            reason,
            unsent,
            unanswered,
        });
    }
}

impl OutChunk {
    /// The largest chunk length ≤ `n` that ends on a character boundary (text data).
    fn boundary(&self, n: usize) -> usize {
        self.data.chunk_len(self.offset, n)
    }
}

fn start_chunk(tag: CommandTag, cmd: &DmCommand) -> Option<OutChunk> {
    let (add, items) = match cmd {
        DmCommand::Add { items } => (true, items),
        DmCommand::Replace { items } => (false, items),
        _ => return None,
    };
    let [w] = items.as_slice() else {
        return None;
    };
    Some(OutChunk {
        tag,
        original: cmd.clone(),
        add,
        target: w.uri.to_string(),
        format: w.format.clone(),
        mime_type: w.mime_type.clone(),
        data: w.data.clone(),
        offset: 0,
    })
}

/// The Add/Replace carrying `n` bytes of `ch` from its offset. `Meta/Size` only on the first
/// chunk; Format/Type repeated on each (DM Protocol 1.2 §7).
fn chunk_command(ch: &OutChunk, cmd_id: u32, n: usize, more: bool) -> Command {
    let data = ch.data.chunk(ch.offset, n);
    let meta = Meta {
        format: ch.format.clone(),
        type_: ch.mime_type.clone(),
        size: (ch.offset == 0 && more).then_some(ch.data.len() as u64),
        ..Meta::default()
    };
    let ic = ItemCommand {
        cmd_id,
        items: vec![Item {
            target: Some(Location::new(ch.target.clone())),
            meta: (!meta.is_empty()).then_some(meta),
            data: Some(data),
            more_data: more,
            ..Item::default()
        }],
        ..ItemCommand::default()
    };
    if ch.add {
        Command::Add(ic)
    } else {
        Command::Replace(ic)
    }
}

fn contains_sequence(cmd: &DmCommand) -> bool {
    match cmd {
        DmCommand::Sequence(_) => true,
        DmCommand::Atomic(inner) => inner.iter().any(|(_, c)| contains_sequence(c)),
        _ => false,
    }
}

fn max_item_len(cmd: &DmCommand) -> usize {
    match cmd {
        DmCommand::Add { items } | DmCommand::Replace { items } => {
            items.iter().map(|w| w.data.len()).max().unwrap_or(0)
        }
        DmCommand::Atomic(inner) | DmCommand::Sequence(inner) => inner
            .iter()
            .map(|(_, c)| max_item_len(c))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

/// A MsgRef as wide as any the session will see, for size estimates.
/// Alert 1222 "Next Message" (DM Protocol 1.2, multiple messages in a package).
fn next_message_alert(cmd_id: u32) -> Command {
    Command::Alert(Alert {
        cmd_id,
        no_resp: false,
        cred: None,
        correlator: None,
        code: AlertCode::NEXT_MESSAGE,
        items: Vec::new(),
    })
}

fn set_cmd_id(c: &mut Command, id: u32) {
    match c {
        Command::Status(s) => s.cmd_id = id,
        Command::Alert(a) => a.cmd_id = id,
        _ => {}
    }
}

fn in_msg_placeholder() -> u32 {
    99_999
}

fn placeholder_status() -> Status {
    Status {
        cmd_id: 0,
        msg_ref: 0,
        cmd_ref: 0,
        cmd: String::new(),
        target_refs: Vec::new(),
        source_refs: Vec::new(),
        cred: None,
        chal: None,
        code: StatusCode::OK,
        items: Vec::new(),
    }
}

/// A Status answering the device's command `c` of message `msg_ref`.
/// SyncML RepPro 1.2, response status codes: 505 "DTD Version not supported" (the
/// recipient does not support the version of the SyncML DTD, i.e. `VerDTD`) and 513
/// "Protocol Version not supported" (the version of the protocol, i.e. `VerProto`).
const DTD_VERSION_NOT_SUPPORTED: StatusCode = StatusCode(505);
const PROTOCOL_VERSION_NOT_SUPPORTED: StatusCode = StatusCode(513);

/// The status a message in an unsupported version gets, `None` for DM 1.2.
///
/// DM RepPro 1.2 §6.1 (VerDTD, VerProto): a DM 1.2 message has VerDTD `1.2` and VerProto
/// `DM/1.2`. The decoder already trims surrounding whitespace; `DM` is compared without
/// regard to case (a quirk tolerated, not a version). VerDTD is checked first: a message
/// whose representation we do not speak is not read for its protocol (decision 72).
fn unsupported_version(h: &Header) -> Option<StatusCode> {
    if h.ver_dtd.trim() != "1.2" {
        return Some(DTD_VERSION_NOT_SUPPORTED);
    }
    let proto = h.ver_proto.trim();
    let dm_1_2 = proto.len() == 6
        && proto.is_char_boundary(3)
        && proto[..3].eq_ignore_ascii_case("DM/")
        && &proto[3..] == "1.2";
    (!dm_1_2).then_some(PROTOCOL_VERSION_NOT_SUPPORTED)
}

fn status_for(msg_ref: u32, c: &Command, code: StatusCode) -> Status {
    Status {
        cmd_id: 0,
        msg_ref,
        cmd_ref: c.cmd_id(),
        cmd: c.name().into(),
        target_refs: Vec::new(),
        source_refs: Vec::new(),
        cred: None,
        chal: None,
        code,
        items: Vec::new(),
    }
}

fn report(item: &Item, cmd_meta: Option<&Meta>) -> NodeReport {
    let meta = item.meta.as_ref();
    NodeReport {
        uri: item
            .source
            .as_ref()
            .or(item.target.as_ref())
            .map(|l| l.loc_uri.clone())
            .unwrap_or_default(),
        format: meta
            .and_then(|m| m.format.clone())
            .or_else(|| cmd_meta.and_then(|m| m.format.clone())),
        mime_type: meta
            .and_then(|m| m.type_.clone())
            .or_else(|| cmd_meta.and_then(|m| m.type_.clone())),
        data: item.data.clone(),
    }
}

/// `code` for every command of `msg` (a refused message: wrong version, failed
/// authentication). Status and Results are answers, not commands: they get none.
fn command_statuses(msg: &Message, code: StatusCode) -> impl Iterator<Item = Status> + '_ {
    msg.body
        .commands
        .iter()
        .filter(|c| !matches!(c, Command::Status(_) | Command::Results(_)))
        .map(move |c| status_for(msg.header.msg_id, c, code))
}

/// The user's answer from the device's Status for a UI alert (DM Protocol 1.2 §10.2).
fn ui_answer(kind: UiKind, st: &Status) -> UiAnswer {
    let texts = || {
        st.items
            .iter()
            .filter_map(|i| i.data.as_ref().and_then(|d| d.as_text()))
            .map(|s| s.trim().to_string())
    };
    match st.code.0 {
        200 => match kind {
            UiKind::Display => UiAnswer::Acknowledged,
            UiKind::Confirm => UiAnswer::Accepted,
            UiKind::TextInput => UiAnswer::Text(
                st.items
                    .iter()
                    .find_map(|i| i.data.as_ref().and_then(|d| d.as_text()))
                    .unwrap_or_default()
                    .to_string(),
            ),
            UiKind::SingleChoice | UiKind::MultipleChoice => UiAnswer::Selected(
                texts()
                    .flat_map(|t| {
                        // Tolerate "1-3" or "1,3" in one item as well as one item per index.
                        t.split(['-', ',', ' '])
                            .filter_map(|p| p.trim().parse::<u32>().ok())
                            .collect::<Vec<_>>()
                    })
                    .collect(),
            ),
        },
        304 => UiAnswer::Rejected,
        214 => UiAnswer::Cancelled,
        215 => UiAnswer::NotExecuted,
        408 => UiAnswer::TimedOut,
        _ => UiAnswer::Failed,
    }
}
