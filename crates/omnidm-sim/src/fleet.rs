//! Many simulated devices in one process: accounts derived from a seed, sessions run with
//! bounded concurrency on a schedule, statistics collected into a [`Summary`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};
use omnidm_omadm::client::{AsyncReports, DeviceProfile, Trigger, UiPolicy};
use omnidm_syncml::Encoding;
use omnidm_syncml::auth::Nonce;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, watch};

use crate::device::{Outcome, SessionReport, SimDevice, random16};
use crate::http::{HttpClient, PlainRequest};
use crate::stats::{PushSummary, Stats, Summary};

/// Client authentication of the simulated devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    /// Basic in `Cred` (the server still authenticates with MD5).
    Basic,
    /// MD5 digest in `Cred`, both ways.
    #[default]
    Md5,
    /// HMAC-MD5 in the `x-syncml-hmac` header, both ways.
    Hmac,
}

impl AuthScheme {
    /// The DMAcc `AAuthPref` value the engine's profile expects.
    pub fn profile_value(self) -> &'static str {
        match self {
            AuthScheme::Basic => "BASIC",
            AuthScheme::Md5 => "DIGEST",
            AuthScheme::Hmac => "HMAC",
        }
    }
}

/// One device's DM account, as the server must be provisioned with it
/// (`--print-provisioning` prints these as JSON lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceAccount {
    /// 0-based index in the fleet.
    pub index: u64,
    /// DevId (SyncHdr `Source`).
    pub device_id: String,
    /// Client authentication scheme.
    pub auth: AuthScheme,
    /// The device's `AAuthName`: its device id.
    pub client_name: String,
    /// The device's `AAuthSecret`.
    pub client_secret: String,
    /// The server id the device knows.
    pub server_id: String,
    /// The secret the server authenticates itself (and signs package 0) with.
    pub server_secret: String,
}

/// A secret derived from the seed, the device index and a role (`client`/`server`):
/// the first 20 hex digits of `MD5("omnidm-sim:{seed}:{index}:{role}")`. Predictable by
/// design, so that a provisioning step can create the same accounts; not for production.
pub fn derive_secret(seed: &str, index: u64, role: &str) -> String {
    let d = Md5::digest(format!("omnidm-sim:{seed}:{index}:{role}").as_bytes());
    d.iter().take(10).map(|b| format!("{b:02x}")).collect()
}

/// A device-id pattern: text with one placeholder `{}`, `{:N}` or `{:0N}` for the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPattern {
    /// Text before the placeholder.
    prefix: String,
    /// Text after it.
    suffix: String,
    /// Minimum width.
    width: usize,
    /// Pad with zeros (else spaces, which make odd ids but are what the pattern says).
    zero: bool,
}

/// Why a fleet could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The id pattern has no usable placeholder.
    #[error(
        "device id pattern {0:?} needs one placeholder for the index: `{{}}`, `{{:7}}` or `{{:07}}` (e.g. \"IMEI:35900000{{:07}}\")"
    )]
    BadPattern(String),
    /// Two devices would get the same id.
    #[error("device id pattern gives duplicate id {0:?}; widen the placeholder")]
    DuplicateId(String),
}

impl IdPattern {
    /// Parses a pattern such as `IMEI:35900000{:07}`.
    pub fn parse(p: &str) -> Result<IdPattern, FleetError> {
        let bad = || FleetError::BadPattern(p.to_owned());
        let open = p.find('{').ok_or_else(bad)?;
        let close = open + p[open..].find('}').ok_or_else(bad)?;
        let spec = &p[open + 1..close];
        let (width, zero) = match spec.strip_prefix(':') {
            None if spec.is_empty() => (0, false),
            None => return Err(bad()),
            Some(w) => {
                let zero = w.starts_with('0') && w.len() > 1;
                (w.parse::<usize>().map_err(|_| bad())?, zero)
            }
        };
        let suffix = &p[close + 1..];
        if suffix.contains('{') || width > 64 {
            return Err(bad());
        }
        Ok(IdPattern {
            prefix: p[..open].to_owned(),
            suffix: suffix.to_owned(),
            width,
            zero,
        })
    }

    /// The id for `index`.
    pub fn format(&self, index: u64) -> String {
        let n = if self.zero {
            format!("{index:0w$}", w = self.width)
        } else {
            format!("{index:w$}", w = self.width)
        };
        format!("{}{n}{}", self.prefix, self.suffix)
    }
}

/// When sessions run.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Client-initiated sessions per device (trivial mode: requests per worker). `None` with
    /// a `duration`: as many as fit; `None` without: one.
    pub sessions_per_device: Option<u64>,
    /// Stop starting sessions after this long (in-flight ones finish).
    pub duration: Option<Duration>,
    /// Pause between a device's sessions; the first session is then staggered randomly
    /// within one interval so that devices do not all call at once. `None`: back to back.
    pub interval: Option<Duration>,
    /// Relative jitter on the interval: 0.1 is ±10 %.
    pub jitter: f64,
    /// After the scheduled sessions, keep running (serving package 0) until
    /// [`Fleet::stop`] or the duration ends.
    pub wait_for_stop: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            sessions_per_device: None,
            duration: None,
            interval: None,
            jitter: 0.1,
            wait_for_stop: false,
        }
    }
}

/// Everything a fleet is built from.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Number of devices.
    pub devices: usize,
    /// Profile every device starts from: model, firmware, server id and URI…
    pub template: DeviceProfile,
    /// Device ids, e.g. `IMEI:35900000{:07}`.
    pub id_pattern: String,
    /// Seed for the per-device secrets ([`derive_secret`]).
    pub secret_seed: String,
    /// Client authentication.
    pub auth: AuthScheme,
    /// XML or WBXML.
    pub encoding: Encoding,
    /// The devices' MaxMsgSize (`None`: the engine's default, 16 KiB).
    pub max_msg_size: Option<u32>,
    /// The simulated users.
    pub ui_policy: UiPolicy,
    /// When Exec completions are reported.
    pub async_reports: AsyncReports,
    /// At most this many sessions (or trivial requests) in flight.
    pub concurrency: usize,
    /// When sessions run.
    pub schedule: Schedule,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

impl FleetConfig {
    /// `devices` devices from `template`, ids from `id_pattern`, other settings defaulted:
    /// MD5, XML, concurrency = number of devices (at most 1000), one session each.
    pub fn new(
        devices: usize,
        template: DeviceProfile,
        id_pattern: impl Into<String>,
    ) -> FleetConfig {
        FleetConfig {
            devices,
            template,
            id_pattern: id_pattern.into(),
            secret_seed: "omnidm".into(),
            auth: AuthScheme::Md5,
            encoding: Encoding::Xml,
            max_msg_size: None,
            ui_policy: UiPolicy::default(),
            async_reports: AsyncReports::SameSession,
            concurrency: devices.clamp(1, 1000),
            schedule: Schedule::default(),
            progress: false,
        }
    }
}

/// One device of the fleet and what the push listener may read while it is in a session.
struct FleetDevice {
    /// Credentials, for package 0 verification and provisioning output.
    account: DeviceAccount,
    /// The nonce the device gave the server, copied after each session, so a package 0 can
    /// be verified without waiting for a running session to end.
    server_nonce: std::sync::Mutex<Nonce>,
    /// The device; one session at a time.
    device: tokio::sync::Mutex<SimDevice>,
}

/// Live counters for the progress bar.
#[derive(Default)]
struct Live {
    /// Sessions finished.
    done: AtomicU64,
    /// Of which failed.
    failed: AtomicU64,
}

/// Package 0 counters.
#[derive(Default)]
struct PushCounters {
    /// POSTs received.
    received: AtomicU64,
    /// Verified and turned into a session.
    accepted: AtomicU64,
    /// Refused (unknown device, bad digest, undecodable).
    rejected: AtomicU64,
}

pub(crate) struct Inner {
    /// The configuration the fleet was built from.
    config: FleetConfig,
    /// The devices, by index.
    devices: Vec<FleetDevice>,
    /// Device id → index, for package 0.
    by_id: HashMap<String, usize>,
    /// Bounds sessions in flight, scheduled and push-triggered alike.
    permits: Semaphore,
    /// Set to true to stop starting sessions.
    stop: watch::Sender<bool>,
    /// Progress counters.
    live: Live,
    /// Statistics of push-triggered sessions.
    push_stats: std::sync::Mutex<Stats>,
    /// Package 0 counters.
    push: PushCounters,
    /// Push-triggered sessions in flight, and a wake-up when it drops to zero.
    in_flight: AtomicUsize,
    /// Notified when `in_flight` drops.
    idle: Notify,
}

/// A fleet of simulated devices. Cheap to clone (shared).
#[derive(Clone)]
pub struct Fleet {
    /// Shared with the workers and the push listener.
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("devices", &self.inner.devices.len())
            .finish_non_exhaustive()
    }
}

type Job = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = SessionReport> + Send>> + Send + Sync>;

impl Fleet {
    /// Builds the devices: ids from the pattern, secrets from the seed.
    pub fn new(config: FleetConfig) -> Result<Fleet, FleetError> {
        let pattern = IdPattern::parse(&config.id_pattern)?;
        let mut devices = Vec::with_capacity(config.devices);
        let mut by_id = HashMap::with_capacity(config.devices);
        for i in 0..config.devices {
            let index = i as u64;
            let id = pattern.format(index);
            if by_id.insert(id.clone(), i).is_some() {
                return Err(FleetError::DuplicateId(id));
            }
            let account = DeviceAccount {
                index,
                device_id: id.clone(),
                auth: config.auth,
                client_name: id.clone(),
                client_secret: derive_secret(&config.secret_seed, index, "client"),
                server_id: config.template.server_id.clone(),
                server_secret: derive_secret(&config.secret_seed, index, "server"),
            };
            let profile = DeviceProfile {
                dev_id: id,
                client_auth_type: config.auth.profile_value().into(),
                client_name: account.client_name.clone(),
                client_secret: account.client_secret.clone(),
                server_secret: account.server_secret.clone(),
                ..config.template.clone()
            };
            let mut device = SimDevice::new(profile);
            device.config.encoding = config.encoding;
            if let Some(m) = config.max_msg_size {
                device.config.max_msg_size = m;
            }
            device.config.ui_policy = config.ui_policy.clone();
            device.config.async_reports = config.async_reports;
            devices.push(FleetDevice {
                account,
                server_nonce: std::sync::Mutex::new(Nonce::default()),
                device: tokio::sync::Mutex::new(device),
            });
        }
        let permits = Semaphore::new(config.concurrency.max(1));
        Ok(Fleet {
            inner: Arc::new(Inner {
                config,
                devices,
                by_id,
                permits,
                stop: watch::channel(false).0,
                live: Live::default(),
                push_stats: std::sync::Mutex::new(Stats::new()),
                push: PushCounters::default(),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        })
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.inner.devices.len()
    }

    /// True for an empty fleet.
    pub fn is_empty(&self) -> bool {
        self.inner.devices.is_empty()
    }

    /// The accounts to provision on the server, in index order.
    pub fn accounts(&self) -> impl Iterator<Item = &DeviceAccount> {
        self.inner.devices.iter().map(|d| &d.account)
    }

    /// A copy of device `index` as it is now (tree, nonces…), waiting for its session to end.
    pub async fn device(&self, index: usize) -> Option<SimDevice> {
        let d = self.inner.devices.get(index)?;
        Some(d.device.lock().await.clone())
    }

    /// Restores the nonces and session counters kept by an earlier run ([`FleetState`]) for
    /// the devices of this fleet whose entry names the same server; returns how many were
    /// restored. Call before [`Fleet::run`].
    pub async fn restore(&self, state: &crate::FleetState) -> usize {
        let mut restored = 0;
        for d in &self.inner.devices {
            let Some(kept) = state.devices.get(&d.account.device_id) else {
                continue;
            };
            let mut device = d.device.lock().await;
            if kept.server != device.profile.server_uri {
                continue;
            }
            let Some((client_nonce, server_nonce)) = kept.nonces() else {
                continue;
            };
            if let Ok(mut n) = d.server_nonce.lock() {
                n.clone_from(&server_nonce);
            }
            device.client_nonce = client_nonce;
            device.server_nonce = server_nonce;
            device.sessions = device.sessions.max(kept.sessions);
            restored += 1;
        }
        restored
    }

    /// The nonces and session counters of every device now, merged into `previous` (devices
    /// of other fleets kept in the same file stay as they were).
    pub async fn snapshot(&self, previous: crate::FleetState) -> crate::FleetState {
        let mut state = previous;
        for d in &self.inner.devices {
            let device = d.device.lock().await;
            state.devices.insert(
                d.account.device_id.clone(),
                crate::DeviceState::new(
                    &device.profile.server_uri,
                    &device.client_nonce,
                    &device.server_nonce,
                    device.sessions,
                ),
            );
        }
        state
    }

    /// Stops starting sessions; running ones finish, and [`Fleet::run`] returns. Idempotent;
    /// the next run starts afresh.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Runs the scheduled client-initiated sessions, then (with
    /// [`Schedule::wait_for_stop`]) waits for [`Fleet::stop`], then for push-triggered
    /// sessions in flight; returns the statistics of all sessions.
    pub async fn run(&self, http: &HttpClient) -> Summary {
        let inner = self.inner.clone();
        let http = http.clone();
        let job: Job = Arc::new(move |i| {
            let inner = inner.clone();
            let http = http.clone();
            Box::pin(async move { inner.session(i, &http, Trigger::ClientInitiated).await })
        });
        let target = self.inner.config.template.server_uri.clone();
        let mut summary = self.drive(job, "sessions", target).await;
        let push = &self.inner.push;
        let received = push.received.load(Ordering::Relaxed);
        if received > 0 || self.inner.config.schedule.wait_for_stop {
            summary.push = Some(PushSummary {
                received,
                accepted: push.accepted.load(Ordering::Relaxed),
                rejected: push.rejected.load(Ordering::Relaxed),
            });
        }
        summary
    }

    /// The trivial benchmark: the same workers, semaphore, schedule and HTTP client as
    /// [`Fleet::run`], but each "session" is one `request` (success = any 2xx).
    pub async fn run_trivial(&self, http: &HttpClient, request: &PlainRequest) -> Summary {
        let http = http.clone();
        let request = Arc::new(request.clone());
        let target = request.url.clone();
        let job: Job = Arc::new(move |_| {
            let http = http.clone();
            let request = request.clone();
            Box::pin(async move {
                let started = Instant::now();
                let r = http.request(&request).await;
                let (outcome, bytes_received) = match r {
                    Ok(resp) if (200..300).contains(&resp.status) => (
                        Outcome::Session(omnidm_omadm::client::SessionOutcome::Completed),
                        resp.body.len() as u64,
                    ),
                    Ok(resp) => (Outcome::HttpStatus(resp.status), resp.body.len() as u64),
                    Err(e) => (Outcome::Http(e), 0),
                };
                SessionReport {
                    outcome,
                    server_initiated: false,
                    messages: 1,
                    bytes_sent: 0,
                    bytes_received,
                    latency: started.elapsed(),
                    commands_executed: 0,
                    session_id: String::new(),
                }
            })
        });
        self.drive(job, "trivial", target).await
    }

    /// The shared load-generation machinery: one worker per device, bounded by the
    /// semaphore, on the schedule; statistics merged at the end.
    async fn drive(&self, job: Job, mode: &'static str, target: String) -> Summary {
        let inner = &self.inner;
        let sched = inner.config.schedule.clone();
        let per_device = match (sched.sessions_per_device, sched.duration) {
            (Some(k), _) => Some(k),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        let started = Instant::now();
        // A fleet can run again after a stop; a stop from before this run is forgotten.
        inner.stop.send_replace(false);
        let timer = sched.duration.map(|d| {
            let inner = self.inner.clone();
            tokio::spawn(async move {
                let mut rx = inner.stop.subscribe();
                tokio::select! {
                    _ = tokio::time::sleep(d) => { inner.stop.send_replace(true); }
                    _ = rx.wait_for(|s| *s) => {}
                }
            })
        });
        let total = per_device.map(|k| k * inner.devices.len() as u64);
        let bar = if inner.config.progress {
            Some(crate::stats::progress_bar(
                total,
                sched.duration,
                self.inner.clone(),
            ))
        } else {
            None
        };
        let mut workers = tokio::task::JoinSet::new();
        if per_device != Some(0) {
            for i in 0..inner.devices.len() {
                let inner = self.inner.clone();
                let job = job.clone();
                let sched = sched.clone();
                workers.spawn(async move { worker(inner, i, job, per_device, sched).await });
            }
        }
        let mut stats = Stats::new();
        while let Some(r) = workers.join_next().await {
            match r {
                Ok(s) => stats.merge(&s),
                Err(e) => tracing::error!("simulator worker failed: {e}"),
            }
        }
        if sched.wait_for_stop {
            let mut rx = inner.stop.subscribe();
            let _ = rx.wait_for(|s| *s).await;
        }
        // Push-triggered sessions still running are waited for.
        loop {
            let notified = inner.idle.notified();
            if inner.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            notified.await;
        }
        let elapsed = started.elapsed();
        if let Some(t) = timer {
            t.abort();
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if let Ok(p) = inner.push_stats.lock() {
            stats.merge(&p);
        }
        stats.summary(
            mode,
            target,
            inner.devices.len(),
            inner.config.concurrency,
            elapsed,
        )
    }

    /// Serves package 0 on `listener` until [`Fleet::stop`]: `POST /push/{device_id}` (the
    /// id percent-encoded as needed) or `POST /push` with an `X-Device-Id` header; the body is
    /// the binary package 0. Answers 202 (verified, session started), 400 (undecodable or no
    /// device id), 403 (wrong server id or bad digest), 404 (unknown device).
    pub fn serve_push(
        &self,
        listener: tokio::net::TcpListener,
        http: &HttpClient,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        crate::push::serve(self.inner.clone(), listener, http.clone())
    }
}

impl Inner {
    pub(crate) fn stop_receiver(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    pub(crate) fn progress_counts(&self) -> (u64, u64) {
        (
            self.live.done.load(Ordering::Relaxed),
            self.live.failed.load(Ordering::Relaxed),
        )
    }

    /// One session of device `i`, under a permit.
    async fn session(&self, i: usize, http: &HttpClient, trigger: Trigger) -> SessionReport {
        let d = &self.devices[i];
        let mut dev = d.device.lock().await;
        let report = dev.run_session(http, trigger, Instant::now).await;
        if let Ok(mut n) = d.server_nonce.lock() {
            *n = dev.server_nonce.clone();
        }
        report
    }

    fn count(&self, r: &SessionReport) {
        self.live.done.fetch_add(1, Ordering::Relaxed);
        if !r.outcome.is_success() {
            self.live.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Package 0 for `device_id`: verified now, session started in the background.
    pub(crate) fn push(
        self: &Arc<Self>,
        device_id: &str,
        body: &[u8],
        http: &HttpClient,
    ) -> Result<(), crate::push::PushRefused> {
        use crate::push::PushRefused;
        self.push.received.fetch_add(1, Ordering::Relaxed);
        let refuse = |r: PushRefused| {
            self.push.rejected.fetch_add(1, Ordering::Relaxed);
            Err(r)
        };
        let Some(&i) = self.by_id.get(device_id) else {
            return refuse(PushRefused::UnknownDevice(device_id.to_owned()));
        };
        let d = &self.devices[i];
        let creds =
            omnidm_syncml::auth::Credentials::new(&d.account.server_id, &d.account.server_secret);
        let nonce = d.server_nonce.lock().map(|n| n.clone()).unwrap_or_default();
        let trigger = match omnidm_omadm::client::trigger_from_notification(body, &creds, &nonce) {
            Ok(t) => t,
            Err(e) => return refuse(PushRefused::Trigger(e)),
        };
        self.push.accepted.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let inner = self.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let report = match inner.permits.acquire().await {
                Ok(_permit) => Some(inner.session(i, &http, trigger).await),
                Err(_) => None,
            };
            if let Some(r) = report {
                inner.count(&r);
                if let Ok(mut s) = inner.push_stats.lock() {
                    s.record(&r);
                }
            }
            inner.in_flight.fetch_sub(1, Ordering::AcqRel);
            inner.idle.notify_waiters();
        });
        Ok(())
    }
}

/// A small xorshift generator for schedule jitter (no need for cryptographic randomness).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let b = random16();
        let mut s = [0u8; 8];
        s.copy_from_slice(&b[..8]);
        Jitter(u64::from_le_bytes(s) | 1)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Sleeps `d` unless stopped first; false when stopped.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    let slept = tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.wait_for(|s| *s) => false,
    };
    slept && !*stop.borrow()
}

/// One device's (or trivial worker's) loop.
async fn worker(
    inner: Arc<Inner>,
    i: usize,
    job: Job,
    per_device: Option<u64>,
    sched: Schedule,
) -> Stats {
    let mut stats = Stats::new();
    let mut stop = inner.stop_receiver();
    let mut rng = Jitter::new();
    if let Some(iv) = sched.interval
        && !pause(iv.mul_f64(rng.next_f64()), &mut stop).await
    {
        return stats;
    }
    let mut n = 0u64;
    while per_device.is_none_or(|k| n < k) && !*stop.borrow() {
        let permit = tokio::select! {
            p = inner.permits.acquire() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.wait_for(|s| *s) => break,
        };
        let report = job(i).await;
        drop(permit);
        inner.count(&report);
        stats.record(&report);
        n += 1;
        if let Some(iv) = sched.interval {
            let j = sched.jitter.clamp(0.0, 1.0);
            let factor = 1.0 + j * (2.0 * rng.next_f64() - 1.0);
            if !pause(iv.mul_f64(factor), &mut stop).await {
                break;
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn id_patterns() {
        let p = IdPattern::parse("IMEI:35900000{:07}").unwrap();
        assert_eq!(p.format(42), "IMEI:359000000000042");
        assert_eq!(IdPattern::parse("dev-{}").unwrap().format(7), "dev-7");
        assert_eq!(IdPattern::parse("{:3}x").unwrap().format(7), "  7x");
        for bad in ["IMEI:1", "a{", "a{x}", "a{}{}", "a{:z}"] {
            assert!(IdPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_predictable_and_distinct() {
        assert_eq!(
            derive_secret("s", 1, "client"),
            derive_secret("s", 1, "client")
        );
        assert_eq!(derive_secret("s", 1, "client").len(), 20);
        assert_ne!(
            derive_secret("s", 1, "client"),
            derive_secret("s", 2, "client")
        );
        assert_ne!(
            derive_secret("s", 1, "client"),
            derive_secret("s", 1, "server")
        );
        assert_ne!(
            derive_secret("s", 1, "client"),
            derive_secret("t", 1, "client")
        );
    }

    #[test]
    fn fleet_accounts_match_the_devices() {
        let mut c = FleetConfig::new(3, DeviceProfile::default(), "IMEI:{:03}");
        c.auth = AuthScheme::Hmac;
        let f = Fleet::new(c).unwrap();
        let a: Vec<_> = f.accounts().cloned().collect();
        assert_eq!(a[2].device_id, "IMEI:002");
        assert_eq!(a[2].auth, AuthScheme::Hmac);
        assert_eq!(a[2].client_secret, derive_secret("omnidm", 2, "client"));
        let dup = FleetConfig::new(11, DeviceProfile::default(), "IMEI:{}x{:1}");
        assert!(Fleet::new(dup).is_err());
    }
}
