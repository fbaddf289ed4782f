//! The OMA DM device endpoint (`POST /dm`): the I/O driver around the sans-IO session engine.
//!
//! One HTTP request is one device message. The first message of a session is peeked for the
//! device id, the device is loaded from the store, its queued operations are claimed, and a
//! [`ServerSession`] is created under a random token that travels in `RespURI` (`?s=<hex>`).
//! Later messages find their session by that token. When a session ends — completed, aborted,
//! timed out, or cut short by shutdown — everything it learned is written in one store
//! transaction ([`omnidm_core::Store::apply_session_outcome`]); operations it still holds go
//! through the recovery rule, so nothing is lost and nothing unsafe is sent twice.
//!
//! Bad input never crashes the server and never loses an operation: a body that cannot be read
//! is answered with HTTP 400 (or a SyncML status when the engine can still answer) and logged.

mod adapter;
mod auth_failures;
pub mod quirks;

pub use adapter::CorrelatorKey;

use crate::server::push::PushGateway;
use adapter::Ledger;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use omnidm_core::{
    AppId, ChargeKind, ClientAuth, DmAccount, EventKind, NewCharge, NewDevice, NewEvent, OpFilter,
    OpState, Operation, OperationId, Protocol, WsiStore as _,
};
use omnidm_core::{
    Device, DeviceId, RecoveryReport, SessionId, SessionOutcome, Store, StoreError, Timestamp,
};
use omnidm_omadm::server::{
    DeviceContext, Incoming, Peek, Randomness, ServerConfig, ServerSession, SessionEvent,
    peek_decoded, token_from_uri,
};
use omnidm_store::AnyStore;
use omnidm_syncml::auth::{AuthType, DigestKey, Nonce};
use omnidm_syncml::{Decoded, Limits};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::Instrument as _;

/// The HMAC header of DM Security 1.2 §5.4.
const HMAC_HEADER: &str = "x-syncml-hmac";

/// Shared state of the device endpoint.
#[derive(Clone)]
pub struct DmEndpoint {
    inner: Arc<Inner>,
}

struct Inner {
    store: AnyStore,
    /// Session outcomes go through group committers (one transaction for all the outcomes
    /// that arrive while the previous batch commits): one for SQLite (a single writer anyway),
    /// several for PostgreSQL so that its connections keep working in parallel; a device
    /// always goes to the same committer, so its outcomes stay in order.
    committers: Vec<mpsc::Sender<Pending>>,
    /// SQLite: claims of concurrent sessions go through one claimer, which makes one
    /// statement of all the claims waiting (the single writer would otherwise take them one
    /// by one). PostgreSQL claims directly, on its many connections.
    claimer: Option<mpsc::Sender<PendingClaim>>,
    /// SQLite: the same for the read at session start (one statement for all the devices
    /// that called in meanwhile, instead of a thread hand-off each).
    reader: Option<mpsc::Sender<PendingRead>>,
    config: ServerConfig,
    /// Prefix of every session id this process creates, so a restarting node recovers its own
    /// sessions only (several nodes may share one PostgreSQL database).
    node: String,
    sessions: std::sync::Mutex<HashMap<[u8; 16], Arc<Mutex<Live>>>>,
    /// Where package 0 goes for operations submitted with `notify`.
    push: Option<PushGateway>,
    /// Highest operation id whose device this process has notified: each sweep lists only
    /// newer operations with `notify`, so pending ones never starve newer ones and nothing is
    /// notified twice by one process (a restart notifies what is still queued once more).
    notified_up_to: std::sync::Mutex<Option<OperationId>>,
    /// Lab mode: unknown devices are registered on first contact with this shared secret.
    open_enrolment: Option<String>,
    /// Quirk profiles by what devices report about themselves.
    quirk_rules: Vec<quirks::QuirkRule>,
    /// Signs Exec correlators and checks the Generic Alerts that bring them back.
    correlator_key: CorrelatorKey,
    /// How long an Exec the device accepted (202) waits for its Generic Alert 1226.
    report_timeout: Duration,
    /// `auth.failure` events, one per device per window (issue 8 item 17).
    auth_failures: auth_failures::AuthFailures,
    /// Tokens of sessions in the order they started, while there may be unauthenticated ones
    /// among them — decoys (unknown ids) and sessions of known devices apart: beyond
    /// [`Inner::max_unauthenticated`] the oldest decoy, else the oldest still unauthenticated
    /// session, is dropped, so first messages from anyone cannot fill the memory until the
    /// session timeout, and a flood of unknown ids does not push out a real device that is
    /// answering its challenge.
    unauthenticated: std::sync::Mutex<Unauthenticated>,
    max_unauthenticated: usize,
}

/// Default bound on sessions that have not authenticated yet (a few KiB each).
pub const MAX_UNAUTHENTICATED_SESSIONS: usize = 10_000;

/// Session tokens by start order: decoys and sessions of known devices.
#[derive(Default)]
struct Unauthenticated {
    decoys: std::collections::VecDeque<[u8; 16]>,
    known: std::collections::VecDeque<[u8; 16]>,
}

/// Optional behaviours of the endpoint, fixed when it is created.
#[derive(Clone, Default)]
pub struct EndpointOptions {
    /// Sends package 0 here for operations submitted with `notify`.
    pub push: Option<PushGateway>,
    /// Lab mode: registers unknown devices on first contact with this shared secret.
    pub open_enrolment: Option<String>,
    /// Quirk profiles for devices without a provisioned one.
    pub quirk_rules: Vec<quirks::QuirkRule>,
    /// The installation's correlator key ([`correlator_key`]); without one, a random key for
    /// this process only (reports across a restart or from another node are then refused).
    pub correlator_key: Option<CorrelatorKey>,
    /// At most one `auth.failure` event per device per this long (default: one minute).
    pub auth_failure_window: Option<Duration>,
    /// At most this many sessions that have not authenticated yet (default
    /// [`MAX_UNAUTHENTICATED_SESSIONS`]); the oldest is dropped for a new one.
    pub max_unauthenticated_sessions: Option<usize>,
    /// How long an accepted Exec waits for its asynchronous report (default 24 h).
    pub report_timeout: Option<Duration>,
}

/// Name of the correlator key among the store's server secrets.
const CORRELATOR_KEY: &str = "correlator_key";

/// The installation's correlator key: generated by the first node that starts, then read
/// from the store by every node and every restart.
pub async fn correlator_key(store: &AnyStore) -> Result<CorrelatorKey, StoreError> {
    let key = store
        .server_secret(CORRELATOR_KEY, &random32(), now_ts())
        .await?;
    Ok(CorrelatorKey::new(&key))
}

/// 32 random bytes (a key).
fn random32() -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(&random16());
    k[16..].copy_from_slice(&random16());
    k
}

/// An outcome waiting for the group committer, and who to tell when it is durable.
type Pending = (
    SessionOutcome,
    oneshot::Sender<Result<RecoveryReport, StoreError>>,
);

/// A claim waiting for the claimer.
type PendingClaim = (
    (DeviceId, SessionId, Timestamp),
    oneshot::Sender<Result<Vec<Operation>, StoreError>>,
);

/// Group claim: takes every claim waiting (up to [`MAX_BATCH`]) and makes them in one store
/// call ([`Store::claim_to_send_many`]); the latest timestamp of the batch stands for all
/// (they were taken within one batch's wait). If the batch fails, its claims are retried one
/// by one.
async fn group_claim(store: AnyStore, mut rx: mpsc::Receiver<PendingClaim>) {
    let mut batch: Vec<PendingClaim> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (claims, waiters): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let now = claims.iter().map(|c| c.2).max().unwrap_or_else(now_ts);
        let pairs: Vec<(DeviceId, SessionId)> = claims
            .iter()
            .map(|(d, s, _)| (d.clone(), s.clone()))
            .collect();
        match store.claim_to_send_many(&pairs, now).await {
            Ok(results) => {
                for (tx, ops) in waiters.into_iter().zip(results) {
                    let _ = tx.send(Ok(ops));
                }
            }
            Err(_) => {
                for ((device, session, stamp), tx) in claims.into_iter().zip(waiters) {
                    let _ = tx.send(store.claim_to_send(&device, &session, stamp).await);
                }
            }
        }
    }
}

/// A session start waiting for the group reader.
type PendingRead = (
    DeviceId,
    oneshot::Sender<Result<Option<(Device, bool)>, StoreError>>,
);

/// Group read: every session start waiting (up to [`MAX_BATCH`]) in one store call
/// ([`Store::get_devices_for_session`]); if it fails, one by one.
async fn group_read(store: AnyStore, mut rx: mpsc::Receiver<PendingRead>) {
    let mut batch: Vec<PendingRead> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (ids, waiters): (Vec<DeviceId>, Vec<_>) = batch.drain(..).unzip();
        match store.get_devices_for_session(&ids).await {
            Ok(found) => {
                for (tx, f) in waiters.into_iter().zip(found) {
                    let _ = tx.send(Ok(f));
                }
            }
            Err(_) => {
                for (id, tx) in ids.iter().zip(waiters) {
                    let _ = tx.send(store.get_device_for_session(id).await);
                }
            }
        }
    }
}

/// Most outcomes written in one transaction.
const MAX_BATCH: usize = 256;

/// Group committers on PostgreSQL (its pool has 16 connections; claims, reads and
/// `mark_sent` need the others).
const POSTGRES_COMMITTERS: usize = 8;

/// Group commit: takes every outcome waiting (up to [`MAX_BATCH`]) and writes them in ONE
/// store transaction; while it commits, the next batch accumulates. No timer: a lone session
/// is written at once, so latency at low load is unchanged. If a batch fails, its outcomes are
/// retried one by one so that one bad outcome fails only its own session.
async fn group_commit(store: AnyStore, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (outcomes, waiters): (Vec<SessionOutcome>, Vec<_>) = batch.drain(..).unzip();
        metrics::histogram!("omnidm_store_commit_batch").record(outcomes.len() as f64);
        match store.apply_session_outcomes(&outcomes).await {
            Ok(report) => {
                // One report for the whole batch: the first waiter logs it.
                let mut report = Some(report);
                for tx in waiters {
                    let _ = tx.send(Ok(report.take().unwrap_or_default()));
                }
            }
            Err(e) if outcomes.len() == 1 => {
                if let Some(tx) = waiters.into_iter().next() {
                    let _ = tx.send(Err(e));
                }
            }
            Err(_) => {
                for (o, tx) in outcomes.iter().zip(waiters) {
                    let _ = tx.send(store.apply_session_outcome(o).await);
                }
            }
        }
    }
}

/// A session in progress.
struct Live {
    session: ServerSession,
    ledger: Ledger,
    device_id: DeviceId,
    session_id: SessionId,
    started: Instant,
    /// The device proved who it is; only then are its operations claimed.
    authenticated: bool,
    /// Its queued operations were claimed (once per session; not at all when the session
    /// started with nothing queued, which saves the claim for most sessions).
    claimed: bool,
    /// The outcome was written; the entry is about to leave the table.
    closed: bool,
    /// A stand-in for a device id the store does not know (or that has no DM account): it is
    /// answered exactly like a known device with wrong credentials, so the endpoint reveals
    /// nothing about which ids exist (issue 8 item 13); it can never authenticate, and
    /// nothing of it is ever written.
    decoy: bool,
    /// Events to write at once (aggregated auth failures), not with the session outcome.
    outbox: Vec<NewEvent>,
    /// The status of a first failed authentication that is still only a challenge: the
    /// normal first contact of a device with a stale or no nonce, which answers with the
    /// Chal's nonce and authenticates. Reported as a failure only if it stays unanswered
    /// (the session ends, times out or is dropped first) or a second attempt fails too
    /// (issue 10 item 2, decision 91).
    challenge: Option<u16>,
    /// The nonces last written for this session outside its outcome ([`DmEndpoint::save_nonces`]).
    saved_nonces: Option<omnidm_core::Nonces>,
    /// One span per device session: every log line of its messages carries device and session.
    span: tracing::Span,
}

/// Wall-clock time for the store (the engine gets `Instant`s).
pub fn now_ts() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(ms)
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut b) {
        // The OS RNG failing is not recoverable in any meaningful way for nonces and tokens;
        // fall back to time-derived bytes only to keep serving, and say so loudly.
        tracing::error!(error = %e, "OS random source failed");
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b.copy_from_slice(&t.to_le_bytes());
    }
    b
}

impl DmEndpoint {
    /// An endpoint over `store`; `node` prefixes session ids (see [`Inner::node`]). Must be
    /// called inside a Tokio runtime (it spawns the group committers).
    pub fn new(
        store: AnyStore,
        config: ServerConfig,
        node: impl Into<String>,
        options: EndpointOptions,
    ) -> Self {
        let lanes = match &store {
            AnyStore::Sqlite(_) => 1,
            AnyStore::Postgres(_) => POSTGRES_COMMITTERS,
        };
        let committers = (0..lanes)
            .map(|_| {
                let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
                tokio::spawn(group_commit(store.clone(), rx));
                tx
            })
            .collect();
        let claimer = matches!(store, AnyStore::Sqlite(_)).then(|| {
            let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
            tokio::spawn(group_claim(store.clone(), rx));
            tx
        });
        let reader = matches!(store, AnyStore::Sqlite(_)).then(|| {
            let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
            tokio::spawn(group_read(store.clone(), rx));
            tx
        });
        Self {
            inner: Arc::new(Inner {
                store,
                committers,
                claimer,
                reader,
                config,
                node: node.into(),
                sessions: std::sync::Mutex::new(HashMap::new()),
                push: options.push,
                notified_up_to: std::sync::Mutex::new(None),
                open_enrolment: options.open_enrolment,
                quirk_rules: options.quirk_rules,
                correlator_key: options.correlator_key.unwrap_or_else(|| {
                    tracing::warn!("no stored correlator key: using one for this process only");
                    CorrelatorKey::new(&random32())
                }),
                report_timeout: options.report_timeout.unwrap_or(Duration::from_millis(
                    u64::try_from(omnidm_core::DEFAULT_REPORT_TIMEOUT_MS).unwrap_or(u64::MAX),
                )),
                auth_failures: auth_failures::AuthFailures::new(
                    options.auth_failure_window.unwrap_or(auth_failures::WINDOW),
                ),
                unauthenticated: std::sync::Mutex::default(),
                max_unauthenticated: options
                    .max_unauthenticated_sessions
                    .unwrap_or(MAX_UNAUTHENTICATED_SESSIONS)
                    .max(1),
            }),
        }
    }

    /// Number of sessions in progress.
    pub fn active(&self) -> usize {
        self.inner.sessions.lock().map_or(0, |s| s.len())
    }

    fn live(&self, token: &[u8; 16]) -> Option<Arc<Mutex<Live>>> {
        self.inner.sessions.lock().ok()?.get(token).cloned()
    }

    fn insert(&self, token: [u8; 16], live: Arc<Mutex<Live>>, decoy: bool) {
        if let Ok(mut s) = self.inner.sessions.lock() {
            s.insert(token, live);
        }
        self.bound_unauthenticated(token, decoy);
    }

    /// Remembers a new (unauthenticated) session and drops the oldest sessions that are still
    /// unauthenticated beyond the bound, decoys first. A dropped session holds nothing
    /// (operations are claimed only after authentication) and writes nothing; its device
    /// starts again.
    fn bound_unauthenticated(&self, token: [u8; 16], decoy: bool) {
        let mut evicted = 0u64;
        if let Ok(mut order) = self.inner.unauthenticated.lock() {
            if decoy {
                order.decoys.push_back(token);
            } else {
                order.known.push_back(token);
            }
            // Sessions that ended or authenticated since leave the fronts first, so that a
            // flood of decoys does not evict itself while known devices' old tokens linger.
            let settled = |t: &[u8; 16]| {
                self.live(t)
                    .is_none_or(|l| l.try_lock().is_ok_and(|l| l.authenticated))
            };
            while order.known.front().is_some_and(settled) {
                order.known.pop_front();
            }
            while order.decoys.front().is_some_and(settled) {
                order.decoys.pop_front();
            }
            while order.decoys.len() + order.known.len() > self.inner.max_unauthenticated {
                let Some(oldest) = order.decoys.pop_front().or_else(|| order.known.pop_front())
                else {
                    break;
                };
                let Some(live) = self.live(&oldest) else {
                    continue; // ended already
                };
                // A session busy with a message right now is in use: leave it.
                let drop_it = match live.try_lock() {
                    Ok(mut l) if !l.authenticated => {
                        // Its unanswered challenge is a failure after all (decision 91).
                        if let Some(status) = l.challenge.take()
                            && !l.decoy
                        {
                            self.inner.auth_failures.count_later(
                                &l.device_id,
                                status,
                                Instant::now(),
                            );
                        }
                        true
                    }
                    _ => false,
                };
                if drop_it {
                    self.remove(&oldest);
                    evicted += 1;
                }
            }
        }
        if evicted > 0 {
            metrics::counter!("omnidm_dm_unauthenticated_sessions_dropped_total")
                .increment(evicted);
            tracing::warn!(
                evicted,
                bound = self.inner.max_unauthenticated,
                "too many sessions without authentication: the oldest were dropped"
            );
        }
    }

    fn remove(&self, token: &[u8; 16]) {
        if let Ok(mut s) = self.inner.sessions.lock() {
            s.remove(token);
        }
    }

    /// Handles one device message.
    pub async fn handle(&self, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
        let now = Instant::now();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let hmac = headers.get(HMAC_HEADER).and_then(|v| v.to_str().ok());
        metrics::counter!("omnidm_dm_messages_total").increment(1);

        let token = token_from_uri(&uri.to_string());
        // A new session's first message was decoded to find its device; it is not decoded
        // again.
        let (token, live, decoded) = match token.and_then(|t| self.live(&t).map(|l| (t, l))) {
            Some((t, l)) => (t, l, None),
            None => match self.start(body, content_type, now).await {
                Ok((t, l, d)) => (t, l, Some(d)),
                Err(response) => return response,
            },
        };

        let mut live = live.lock().await;
        if live.closed {
            return problem(StatusCode::GONE, "the session has ended; start a new one");
        }
        let incoming = Incoming {
            body,
            content_type,
            hmac,
        };
        let span = live.span.clone();
        self.exchange(token, &mut live, incoming, decoded, now)
            .instrument(span)
            .await
    }

    /// One message of a live session: feed it, apply what happened, answer.
    async fn exchange(
        &self,
        token: [u8; 16],
        live: &mut Live,
        incoming: Incoming<'_>,
        decoded: Option<Decoded>,
        now: Instant,
    ) -> Response {
        let handled = match decoded {
            Some(d) => live.session.handle_decoded(incoming, d, now),
            None => live.session.handle(incoming, now),
        };
        if let Err(e) = handled {
            tracing::warn!(device = %live.device_id, error = %e, "device message refused");
            metrics::counter!("omnidm_dm_bad_messages_total").increment(1);
        }
        let mut ended = self.drain(live);
        if live.authenticated && !live.claimed && !ended && !live.decoy {
            live.claimed = true;
            self.claim(live).await;
        }
        let reply = live.session.poll_transmit(now);
        ended |= self.drain(live);
        self.send_outbox(live).await;
        if !ended && !live.session.is_finished() {
            self.save_nonces(live).await;
        }

        if ended || live.session.is_finished() {
            self.close(live).await;
            self.remove(&token);
        }
        match reply {
            Some(out) => {
                let mut response = out.body.into_response();
                let h = response.headers_mut();
                if let Ok(v) = HeaderValue::from_str(&out.content_type) {
                    h.insert(header::CONTENT_TYPE, v);
                }
                if let Some(mac) = out.hmac.and_then(|m| HeaderValue::from_str(&m).ok()) {
                    h.insert(HMAC_HEADER, mac);
                }
                response
            }
            None => problem(
                StatusCode::BAD_REQUEST,
                "the message could not be processed",
            ),
        }
    }

    /// Creates a session for the first message of a device.
    async fn start(
        &self,
        body: &[u8],
        content_type: Option<&str>,
        now: Instant,
    ) -> Result<([u8; 16], Arc<Mutex<Live>>, Decoded), Response> {
        let (Peek { device_id, .. }, decoded) = peek_decoded(body, content_type, Limits::default())
            .map_err(|e| {
                tracing::warn!(error = %e, "unreadable message from a device");
                metrics::counter!("omnidm_dm_bad_messages_total").increment(1);
                problem(
                    StatusCode::BAD_REQUEST,
                    &format!("not a SyncML DM message: {e}"),
                )
            })?;
        let id = DeviceId::new(device_id.clone()).map_err(|e| {
            problem(
                StatusCode::BAD_REQUEST,
                &format!("device id {device_id:?}: {e}"),
            )
        })?;
        let (device, has_queued) = match self.device_for_session(&id).await {
            Ok(Some(found)) => (Some(found.0), found.1),
            Ok(None) if self.inner.open_enrolment.is_some() => {
                (Some(self.enrol(&id).await?), false)
            }
            Ok(None) => {
                tracing::warn!(device = %id, "unknown device; provision it with `omnidm devices add`");
                metrics::counter!("omnidm_dm_auth_failures_total", "reason" => "unknown_device")
                    .increment(1);
                (None, false)
            }
            Err(e) => {
                tracing::error!(device = %id, error = %e, "store unavailable");
                return Err(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store unavailable, retry later",
                ));
            }
        };
        let known = device
            .as_ref()
            .and_then(|d| device_context(d, &self.inner.quirk_rules));
        if device.is_some() && known.is_none() {
            tracing::warn!(device = %id, "device has no usable DM account");
        }
        // An unknown id gets the same answer as a known device with wrong credentials: a
        // session against random keys, which nothing can authenticate to (issue 8 item 13).
        let decoy = known.is_none();
        let context = match known {
            Some(c) => c,
            None => self
                .decoy_context(&id)
                .ok_or_else(|| problem(StatusCode::SERVICE_UNAVAILABLE, "retry later"))?,
        };
        let token = random16();
        let session_id = SessionId(format!(
            "{}:{}",
            self.inner.node,
            crate::cli::to_hex(&token)
        ));
        let random = Randomness {
            session_token: token,
            nonce_seed: random16(),
        };
        let session = ServerSession::new(&self.inner.config, context, random, now);
        let ledger = Ledger::new(id.clone(), session_id.clone(), Vec::new())
            .with_correlator_key(self.inner.correlator_key.clone())
            .with_report_timeout(self.inner.report_timeout);
        metrics::counter!("omnidm_dm_sessions_total").increment(1);
        tracing::info!(device = %id, session = %session_id.0, "session started");
        let span = tracing::info_span!("dm_session", device = %id, session = %session_id.0);
        let live = Arc::new(Mutex::new(Live {
            span,
            session,
            ledger,
            device_id: id,
            session_id,
            started: now,
            authenticated: false,
            claimed: !has_queued,
            closed: false,
            decoy,
            outbox: Vec::new(),
            challenge: None,
            saved_nonces: None,
        }));
        self.insert(token, live.clone(), decoy);
        Ok((token, live, decoded))
    }

    /// The engine's view of a device that does not exist: MD5 (the usual configuration) with
    /// random secrets and nonces, built the way a stored account is.
    fn decoy_context(&self, id: &DeviceId) -> Option<DeviceContext> {
        let secret = |b: [u8; 16]| crate::cli::to_hex(&b);
        let mut new = NewDevice::new(id.clone(), Protocol::OmaDm);
        let mut dm = DmAccount::from_secrets(
            ClientAuth::Md5,
            id.as_str(),
            &secret(random16()),
            self.inner.config.server_id.clone(),
            &secret(random16()),
        );
        dm.client_nonce = random16().to_vec();
        dm.server_nonce = random16().to_vec();
        new.dm = Some(dm);
        device_context(&new.into_device(now_ts()), &self.inner.quirk_rules)
    }

    /// Writes the events waiting in the session's outbox.
    async fn send_outbox(&self, live: &mut Live) {
        if live.outbox.is_empty() {
            return;
        }
        let events = std::mem::take(&mut live.outbox);
        if let Err(e) = self.inner.store.append_events(&events, &[]).await {
            tracing::warn!(device = %live.device_id, error = %e, "cannot record auth failures");
        }
    }

    /// Writes the nonces of a session that has not authenticated (yet) at once, before its
    /// reply leaves, when they changed: the nonce a device's Chal gave us (it may come in the
    /// first message of a session, even one that fails authentication: a device carrying on
    /// a session we had closed) and the nonce our challenge gave the device. Such a session
    /// may never end normally — the device gives up, it is dropped for newer ones, or it
    /// waits for its timeout while the device starts another — and the device's next
    /// session must find them (issue 9 item 13, decision 91). An authenticated session
    /// writes its nonces with its outcome, in the same transaction as everything else.
    async fn save_nonces(&self, live: &mut Live) {
        if live.decoy || live.authenticated {
            return;
        }
        let Some(nonces) = live.ledger.nonces() else {
            return;
        };
        if live.saved_nonces.as_ref() == Some(nonces) {
            return;
        }
        let nonces = nonces.clone();
        match self.inner.store.set_nonces(&live.device_id, &nonces).await {
            Ok(()) => live.saved_nonces = Some(nonces),
            Err(e) => {
                tracing::warn!(device = %live.device_id, error = %e, "cannot store the device's nonces")
            }
        }
    }

    /// Counts an authentication failure (log, metric, aggregated `auth.failure` event).
    fn auth_failure(&self, live: &mut Live, status: u16, what: &str) {
        tracing::warn!(device = %live.device_id, status, "device authentication failed: {what}");
        metrics::counter!("omnidm_dm_auth_failures_total", "reason" => "credentials").increment(1);
        let event =
            self.inner
                .auth_failures
                .record(&live.device_id, status, Instant::now(), now_ts());
        live.outbox.extend(event);
    }

    /// Open enrolment: registers an unknown device with the shared secret (MD5 both ways, its
    /// device id as its DM user name).
    async fn enrol(&self, id: &DeviceId) -> Result<Device, Response> {
        let secret = self.inner.open_enrolment.as_deref().unwrap_or_default();
        let mut new = NewDevice::new(id.clone(), Protocol::OmaDm);
        new.dm = Some(DmAccount::from_secrets(
            ClientAuth::Md5,
            id.as_str(),
            secret,
            self.inner.config.server_id.clone(),
            secret,
        ));
        new.tags = vec!["enrolled".into()];
        let device = new.into_device(now_ts());
        match self.inner.store.create_device(&device).await {
            Ok(()) | Err(omnidm_core::StoreError::Conflict(_)) => {
                tracing::info!(device = %id, "device enrolled on first contact");
                Ok(device)
            }
            Err(e) => {
                tracing::error!(device = %id, error = %e, "cannot enrol device");
                Err(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store unavailable, retry later",
                ))
            }
        }
    }

    /// Sends package 0 for queued operations submitted with `notify` since the last sweep,
    /// once per device, and records each notification (event and charge) for the submitter.
    async fn notify_pending(&self) {
        let Some(push) = &self.inner.push else { return };
        let after = self.inner.notified_up_to.lock().ok().and_then(|n| *n);
        let filter = OpFilter {
            state: Some(OpState::Queued),
            notify: Some(true),
            after,
            limit: 1000,
            ..OpFilter::default()
        };
        let queued = match self.inner.store.list_operations(&filter).await {
            Ok(ops) => ops,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list operations to notify");
                return;
            }
        };
        if let (Some(last), Ok(mut n)) = (queued.last(), self.inner.notified_up_to.lock()) {
            *n = Some(last.id);
        }
        let mut woken = HashSet::new();
        for op in queued {
            if !woken.insert(op.device_id.clone()) {
                continue;
            }
            let device = match self.inner.store.get_device(&op.device_id).await {
                Ok(Some(d)) => d,
                _ => continue,
            };
            let [a, b, ..] = random16();
            let session_id = u16::from_le_bytes([a, b]);
            match push.notify(&device, session_id).await {
                Ok(()) => {
                    metrics::counter!("omnidm_notifications_sent_total").increment(1);
                    tracing::info!(device = %device.id, operation = op.id.0, "package 0 sent");
                    self.record_notification(&op).await;
                }
                Err(e) => {
                    metrics::counter!("omnidm_notifications_failed_total").increment(1);
                    tracing::warn!(device = %device.id, error = %e, "package 0 not delivered; the operation waits for the next session");
                }
            }
        }
    }

    /// The `notification.sent` event and its charge to the operation's submitter.
    async fn record_notification(&self, op: &omnidm_core::Operation) {
        let now = now_ts();
        let app = op.submitted_by.as_deref().and_then(|a| AppId::new(a).ok());
        let mut event = NewEvent::device(
            EventKind::NotificationSent,
            now,
            &op.device_id,
            serde_json::json!({ "via": "package0" }),
        );
        event.app_id.clone_from(&app);
        event.job_id = op.job_id;
        event.operation_id = Some(op.id);
        let charge = app.map(|app_id| NewCharge {
            at: now,
            app_id,
            kind: ChargeKind::NotificationSent,
            quantity: 1,
            device_id: Some(op.device_id.clone()),
            job_id: op.job_id,
            operation_id: Some(op.id),
        });
        let charges: Vec<NewCharge> = charge.into_iter().collect();
        if let Err(e) = self.inner.store.append_events(&[event], &charges).await {
            tracing::warn!(error = %e, "cannot record a notification");
        }
    }

    /// Claims the device's queued operations and hands their commands to the engine.
    async fn claim(&self, live: &mut Live) {
        let stamp = now_ts();
        // The claimed commands all go into the next reply: recorded as sent in the claim's own
        // transaction, before that reply leaves (nothing unsafe is ever sent twice).
        match self
            .claim_to_send(&live.device_id, &live.session_id, stamp)
            .await
        {
            Ok(ops) => live.ledger.hold(ops),
            Err(e) => {
                tracing::error!(device = %live.device_id, error = %e, "cannot claim operations")
            }
        }
        for (tag, command) in live.ledger.commands(stamp) {
            if let Err(e) = live.session.enqueue(tag, command) {
                tracing::error!(device = %live.device_id, error = %e, "cannot enqueue a command");
            }
        }
    }

    /// The session-start read, through the group reader when there is one.
    async fn device_for_session(
        &self,
        id: &DeviceId,
    ) -> Result<Option<(Device, bool)>, StoreError> {
        if let Some(reader) = &self.inner.reader {
            let (tx, rx) = oneshot::channel();
            // If the reader is gone (shutdown), read directly.
            if reader.send((id.clone(), tx)).await.is_ok() {
                return rx.await.unwrap_or_else(|_| {
                    Err(StoreError::Backend("the group reader stopped".into()))
                });
            }
        }
        self.inner.store.get_device_for_session(id).await
    }

    /// Claims through the claimer when there is one.
    async fn claim_to_send(
        &self,
        device: &DeviceId,
        session: &SessionId,
        stamp: Timestamp,
    ) -> Result<Vec<Operation>, StoreError> {
        if let Some(claimer) = &self.inner.claimer {
            let (tx, rx) = oneshot::channel();
            let request = ((device.clone(), session.clone(), stamp), tx);
            // If the claimer is gone (shutdown), claim directly.
            if claimer.send(request).await.is_ok() {
                return rx.await.unwrap_or_else(|_| {
                    Err(StoreError::Backend("the group claimer stopped".into()))
                });
            }
        }
        self.inner.store.claim_to_send(device, session, stamp).await
    }

    /// Applies pending engine events to the ledger; true when the session ended.
    fn drain(&self, live: &mut Live) -> bool {
        let stamp = now_ts();
        let mut ended = false;
        while let Some(event) = live.session.poll_event() {
            match &event {
                SessionEvent::Authenticated(_) => {
                    live.authenticated = true;
                    if let Some(status) = live.challenge.take() {
                        tracing::debug!(device = %live.device_id, status, "challenge answered");
                    }
                }
                SessionEvent::AuthFailed { status, .. } if live.decoy => {
                    tracing::debug!(device = %live.device_id, %status, "unknown device: challenged");
                }
                // DM Security 1.2 §5: a device without the current nonce (a first contact, a
                // nonce lost on either side) is challenged and answers with the Chal's nonce.
                // That first 401/407 is the protocol working, not an attack: nothing is
                // logged above debug and no `auth.failure` is written unless the challenge
                // stays unanswered (decision 91).
                SessionEvent::AuthFailed {
                    status,
                    attempts: 1,
                    final_attempt: false,
                    ..
                } => {
                    tracing::debug!(device = %live.device_id, %status, "device challenged");
                    live.challenge = Some(status.0);
                }
                SessionEvent::AuthFailed { status, .. } => {
                    if let Some(first) = live.challenge.take() {
                        self.auth_failure(live, first, "challenge not met");
                    }
                    self.auth_failure(live, status.0, "wrong or missing credentials");
                }
                SessionEvent::Ended {
                    reason,
                    unsent,
                    unanswered,
                } => {
                    tracing::info!(
                        device = %live.device_id,
                        ?reason,
                        unsent = unsent.len(),
                        unanswered = unanswered.len(),
                        "session ended"
                    );
                }
                SessionEvent::CommandStatus { status, .. } => {
                    let class = match status.0 {
                        200..=299 => "success",
                        400..=499 => "client_error",
                        _ => "other",
                    };
                    metrics::counter!("omnidm_dm_commands_total", "result" => class).increment(1);
                }
                SessionEvent::GenericAlert { correlator, .. } => {
                    tracing::info!(device = %live.device_id, ?correlator, "generic alert");
                }
                _ => {}
            }
            ended |= live.ledger.apply(&event, stamp);
        }
        ended
    }

    /// Writes what the session learned; operations it still holds are recovered.
    async fn close(&self, live: &mut Live) {
        if live.closed {
            return;
        }
        live.closed = true;
        if live.decoy {
            // Nothing to write: the device does not exist.
            return;
        }
        if let Some(status) = live.challenge.take() {
            self.auth_failure(live, status, "the challenge was never answered");
        }
        self.send_outbox(live).await;
        let stamp = now_ts();
        let mut outcome = live.ledger.outcome(stamp, true);
        // A session that never authenticated is not a session of the device, only an attempt:
        // no session.started/ended for it (issue 8 item 17: an outsider must not be able to
        // fill the event log; its failures are counted by `auth_failures`).
        let authenticated = live.authenticated;
        if !authenticated && outcome.nonces.is_some() && outcome.nonces == live.saved_nonces {
            // Written already (`save_nonces`); writing them again at a late timeout could
            // undo what a newer session of the device stored meanwhile.
            outcome.nonces = None;
        }
        outcome.events.retain(|e| {
            authenticated || !matches!(e.kind, EventKind::SessionStarted | EventKind::SessionEnded)
        });
        match self.commit(&live.device_id, outcome).await {
            Ok(report) if !report.is_empty() => {
                tracing::info!(device = %live.device_id, ?report, "operations recovered at session end");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(device = %live.device_id, error = %e, "cannot store the session outcome")
            }
        }
        metrics::histogram!("omnidm_dm_session_seconds")
            .record(live.started.elapsed().as_secs_f64());
    }

    /// Writes a session outcome through the device's group committer and waits until it is
    /// durable.
    async fn commit(
        &self,
        device: &DeviceId,
        outcome: SessionOutcome,
    ) -> Result<RecoveryReport, StoreError> {
        let lanes = self.inner.committers.len().max(1);
        let lane = {
            use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
            let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(device.as_str());
            usize::try_from(h % lanes as u64).unwrap_or(0)
        };
        let (tx, rx) = oneshot::channel();
        let Some(committer) = self.inner.committers.get(lane) else {
            return self.inner.store.apply_session_outcome(&outcome).await;
        };
        match committer.send((outcome, tx)).await {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| Err(StoreError::Backend("the group committer stopped".into()))),
            // The committer is gone (shutdown): write directly.
            Err(mpsc::error::SendError((outcome, _))) => {
                self.inner.store.apply_session_outcome(&outcome).await
            }
        }
    }

    /// Ends sessions whose device went quiet, expires operations past their deadline, and fails
    /// operations whose asynchronous report is overdue.
    pub async fn sweep(&self) {
        let now = Instant::now();
        let due: Vec<([u8; 16], Arc<Mutex<Live>>)> = match self.inner.sessions.lock() {
            Ok(s) => s.iter().map(|(t, l)| (*t, l.clone())).collect(),
            Err(_) => Vec::new(),
        };
        for (token, live) in due {
            let mut live = live.lock().await;
            if live.session.poll_timeout().is_some_and(|t| t <= now) {
                live.session.handle_timeout(now);
                self.drain(&mut live);
                self.close(&mut live).await;
                self.remove(&token);
            }
        }
        let due = self.inner.auth_failures.due(now, now_ts());
        if !due.is_empty()
            && let Err(e) = self.inner.store.append_events(&due, &[]).await
        {
            tracing::warn!(error = %e, "cannot record auth failures");
        }
        self.notify_pending().await;
        match self.inner.store.expire_due(now_ts()).await {
            Ok(expired) if !expired.is_empty() => {
                tracing::info!(count = expired.len(), "operations expired")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot expire operations"),
        }
        // Accepted Execs whose Generic Alert 1226 never came (issue 9 item 5): the deadline is
        // in the store, so a restart or another node's sweep fails them just the same.
        match self.inner.store.fail_unreported_due(now_ts()).await {
            Ok(failed) if !failed.is_empty() => {
                tracing::warn!(
                    count = failed.len(),
                    "operations failed: no asynchronous report before the deadline"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot fail unreported operations"),
        }
        metrics::gauge!("omnidm_dm_sessions_active").set(self.active() as f64);
        if let Ok(depth) = self.inner.store.queue_depth(None).await {
            metrics::gauge!("omnidm_queue_depth").set(depth as f64);
        }
    }

    /// Shutdown: ends every live session, writing what each learned.
    pub async fn park_all(&self) {
        let all: Vec<([u8; 16], Arc<Mutex<Live>>)> = match self.inner.sessions.lock() {
            Ok(mut s) => s.drain().collect(),
            Err(_) => Vec::new(),
        };
        for (_, live) in all {
            let mut live = live.lock().await;
            self.close(&mut live).await;
        }
    }

    /// Startup: operations left `in_session` by a previous run of this node go through the
    /// recovery rule.
    pub async fn recover(&self) -> anyhow::Result<()> {
        let report = self
            .inner
            .store
            .recover_node(&format!("{}:", self.inner.node), now_ts())
            .await?;
        if !report.is_empty() {
            tracing::warn!(
                ?report,
                "recovered operations of sessions cut short by the last stop"
            );
        }
        Ok(())
    }
}

/// The engine's view of a device's DM account.
fn device_context(device: &Device, rules: &[quirks::QuirkRule]) -> Option<DeviceContext> {
    let dm = device.dm.as_ref()?;
    let client_auth = match dm.client_auth {
        omnidm_core::ClientAuth::Basic => AuthType::Basic,
        omnidm_core::ClientAuth::Md5 => AuthType::Md5,
        omnidm_core::ClientAuth::Hmac => AuthType::Hmac,
    };
    Some(DeviceContext {
        device_id: device.id.as_str().to_owned(),
        client_auth,
        client_key: DigestKey::from_b64(dm.client_name.clone(), &dm.client_key).ok()?,
        server_auth: if client_auth == AuthType::Hmac {
            AuthType::Hmac
        } else {
            AuthType::Md5
        },
        server_key: DigestKey::from_b64(dm.server_id.clone(), &dm.server_key).ok()?,
        client_nonce: Nonce::from_bytes(dm.client_nonce.clone()),
        server_nonce: Nonce::from_bytes(dm.server_nonce.clone()),
        quirks: quirks::for_device(device, rules),
    })
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{detail}\n"),
    )
        .into_response()
}

/// `POST /dm`.
pub async fn post_dm(
    State(ep): State<DmEndpoint>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ep.handle(&uri, &headers, &body).await
}

/// The period of [`DmEndpoint::sweep`].
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
