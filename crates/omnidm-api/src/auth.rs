//! Authentication of API calls: `Authorization: Bearer omk_<key id>_<secret>`.
//!
//! Keys are shown once and stored as argon2id hashes. Verifying argon2 costs tens of
//! milliseconds and [`KEY_HASH_PARAMS`]' memory by design, so it is the thing an attacker
//! aims at. What keeps it cheap for honest callers and bounded for everyone else:
//!
//! - **Verified keys are remembered** by key id as the SHA-256 of their secret (compared in
//!   constant time). Within [`KEY_CACHE_TTL`] nothing is read; after it the key and its
//!   application are re-read from the store (revoked? expired? disabled?) but argon2 is not run
//!   again: a busy application pays argon2 once per node. Revoking a key or disabling an
//!   application through this node drops the entry at once; other nodes notice within the TTL.
//! - **Verification runs on a fixed pool** of [`Verifier`] threads (one per core), each with
//!   its own reused argon2 memory, behind a short bounded queue: memory never exceeds
//!   threads × `m_cost`, and when the queue is full the request gets 503 with `Retry-After`
//!   at once instead of piling up.
//! - **Failures are rate-limited** per key id and per client address (token buckets of
//!   failures, charged before argon2 runs and refunded on success) and **remembered** for
//!   [`FAILURE_CACHE_TTL`] as (key id, SHA-256 of the secret): a repeated wrong key costs a hash
//!   lookup, and a flood of different wrong secrets gets 429 after a handful of verifications.
//!   Callers whose key is already verified on this node are never throttled.
//! - **Equal work whether a key id exists or not**: an unknown (or revoked, or expired) key id
//!   is verified against a dummy hash with the same parameters, so response time does not tell
//!   which ids exist.
//!
//! Rate limits and quotas, which apply once a caller is authenticated, are in `limits`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use omnidm_core::{ApiKey, AppId, Application, KeyId, Timestamp, WsiStore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{oneshot, watch};

use crate::problem::{ApiError, Kind};

/// How long a verified key is trusted without re-reading the store.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// How long a failed (key id, secret) pair is answered 401 without verifying it again.
pub const FAILURE_CACHE_TTL: Duration = Duration::from_secs(60);

/// Prefix of every key, so leaked keys are recognisable by secret scanners.
pub const KEY_PREFIX: &str = "omk_";

/// argon2id parameters of new keys: OWASP's minimum (19 MiB, 2 passes, 1 lane). Keys carry
/// their parameters in their PHC string, so changing these never breaks existing keys.
/// The secrets are 256 random bits, so the cost only has to slow down offline guessing of a
/// stolen hash, not protect a weak password; what bounds the server's memory is the verifier
/// pool, not these numbers.
pub const KEY_HASH_PARAMS: (u32, u32, u32) = (19 * 1024, 2, 1);

/// Largest argon2 memory (KiB) a stored hash may ask the verifier for.
const MAX_VERIFY_M_COST: u32 = 256 * 1024;

/// Failed verifications allowed per key id: a burst of this many, then one per
/// [`KEY_FAILURE_EVERY`].
const KEY_FAILURE_BURST: f64 = 10.0;
const KEY_FAILURE_EVERY: Duration = Duration::from_secs(6);
/// Failed verifications allowed per client address (IPv6: per /64).
const ADDR_FAILURE_BURST: f64 = 30.0;
const ADDR_FAILURE_EVERY: Duration = Duration::from_secs(1);
/// Verifications waiting per verifier thread before new ones are refused with 503.
const QUEUE_PER_THREAD: usize = 8;
/// Most entries of each in-memory table (verified keys, failures, failure budgets).
const MAX_ENTRIES: usize = 10_000;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The application (as of the last cache refresh).
    pub app: Application,
    /// The key used.
    pub key_id: KeyId,
    /// When the key expires, if it does (self-created keys may not outlive it).
    pub key_expires_at: Option<Timestamp>,
}

impl Caller {
    /// True for the admin role.
    pub fn is_admin(&self) -> bool {
        self.app.role == omnidm_core::Role::Admin
    }

    /// Refuses non-admins.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::admin_only())
        }
    }
}

/// A newly minted key: the text goes to the client once; the record goes to the store.
pub struct MintedKey {
    /// `omk_<id>_<secret>`.
    pub text: String,
    /// The stored record (hash only).
    pub record: ApiKey,
}

fn hasher() -> Result<Argon2<'static>, ApiError> {
    let (m, t, p) = KEY_HASH_PARAMS;
    let params = Params::new(m, t, p, None)
        .map_err(|e| ApiError::new(Kind::Internal, format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| ApiError::new(Kind::Internal, format!("no randomness: {e}")))?;
    Ok(buf)
}

/// The PHC string of `secret` with [`KEY_HASH_PARAMS`] and a random salt.
fn hash_secret(secret: &str) -> Result<String, ApiError> {
    let salt = SaltString::encode_b64(&random::<16>()?)
        .map_err(|e| ApiError::new(Kind::Internal, e.to_string()))?;
    Ok(hasher()?
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| ApiError::new(Kind::Internal, format!("hashing the key: {e}")))?
        .to_string())
}

/// Mints a key for `app`. Hashing is slow on purpose: call from a blocking thread.
pub fn mint_key(
    app: &AppId,
    now: Timestamp,
    expires_at: Option<Timestamp>,
) -> Result<MintedKey, ApiError> {
    let id = URL_SAFE_NO_PAD
        .encode(random::<9>()?)
        .replace(['-', '_'], "x");
    let secret = URL_SAFE_NO_PAD.encode(random::<32>()?);
    let hash = hash_secret(&secret)?;
    Ok(MintedKey {
        text: format!("{KEY_PREFIX}{id}_{secret}"),
        record: ApiKey {
            id: KeyId(id),
            app_id: app.clone(),
            hash,
            created_at: now,
            expires_at,
            revoked_at: None,
        },
    })
}

/// Splits `omk_<id>_<secret>`.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty() && id.len() <= 32 && secret.len() <= 128)
        .then_some((id, secret))
}

/// Verifies `secret` against a PHC string, reusing `memory` for argon2's blocks. Any
/// algorithm, version and parameters the string names (up to [`MAX_VERIFY_M_COST`]).
fn verify_phc(phc: &str, secret: &[u8], memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let Some(mem) = memory.get_mut(..blocks) else {
        return false;
    };
    let ok = Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(secret, salt, &mut out, mem)
        .is_ok()
        && bool::from(out.ct_eq(expected.as_bytes()));
    // Keep what current keys need, not what the largest old hash once asked for.
    let usual = Params::new(
        KEY_HASH_PARAMS.0,
        KEY_HASH_PARAMS.1,
        KEY_HASH_PARAMS.2,
        None,
    )
    .map_or(0, |p| p.block_count());
    if memory.len() > usual {
        memory.truncate(usual);
        memory.shrink_to_fit();
    }
    ok
}

/// The hash unknown key ids are verified against: a random secret with [`KEY_HASH_PARAMS`].
fn dummy_hash(cell: &OnceLock<String>) -> &str {
    cell.get_or_init(|| {
        let secret = URL_SAFE_NO_PAD.encode(random::<32>().unwrap_or([7; 32]));
        hash_secret(&secret).unwrap_or_default()
    })
}

/// One verification for the pool: `None` verifies against the dummy hash.
struct Job {
    phc: Option<String>,
    secret: String,
    reply: oneshot::Sender<bool>,
}

/// Why a verification did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyRefused {
    /// Every verifier is busy and the queue is full.
    Busy,
    /// The pool is gone (the server is stopping).
    Stopped,
}

/// A fixed pool of argon2 verifier threads behind a bounded queue.
pub struct Verifier {
    tx: std::sync::mpsc::SyncSender<Job>,
}

impl Verifier {
    /// Starts `threads` verifier threads.
    pub fn new(threads: usize) -> Verifier {
        let threads = threads.max(1);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(threads * QUEUE_PER_THREAD);
        let rx = Arc::new(Mutex::new(rx));
        let dummy: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
        for i in 0..threads {
            let rx = rx.clone();
            let dummy = dummy.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    if i == 0 {
                        // Ready before the first unknown key id arrives, so that one costs the
                        // same as the others.
                        dummy_hash(&dummy);
                    }
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let phc = match &job.phc {
                            Some(p) => p.as_str(),
                            None => dummy_hash(&dummy),
                        };
                        let ok = verify_phc(phc, job.secret.as_bytes(), &mut memory)
                            && job.phc.is_some();
                        metrics::counter!("omnidm_api_key_verifications_total").increment(1);
                        let _ = job.reply.send(ok);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an argon2 verifier thread");
            }
        }
        Verifier { tx }
    }

    /// Verifies `secret` against `phc` (the dummy hash when `None`: same work, always false).
    pub async fn verify(&self, phc: Option<String>, secret: &str) -> Result<bool, VerifyRefused> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            phc,
            secret: secret.to_owned(),
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => answer.await.map_err(|_| VerifyRefused::Stopped),
            Err(std::sync::mpsc::TrySendError::Full(_)) => Err(VerifyRefused::Busy),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(VerifyRefused::Stopped),
        }
    }
}

impl Default for Verifier {
    /// One thread per core.
    fn default() -> Verifier {
        Verifier::new(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

struct CachedKey {
    secret_sha: [u8; 32],
    /// The PHC string that was verified (a changed hash means a different key).
    hash: String,
    app: Application,
    expires_at: Option<Timestamp>,
    loaded: Instant,
}

/// A token bucket of allowed failures.
struct FailureBudget {
    tokens: f64,
    last: Instant,
}

impl FailureBudget {
    /// Takes one token; `Err(seconds until one is back)` when empty.
    fn take(&mut self, burst: f64, every: Duration) -> Result<(), u64> {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() / every.as_secs_f64();
        self.tokens = (self.tokens + refill).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) * every.as_secs_f64();
            Err(wait.ceil().max(1.0) as u64)
        }
    }

    fn refund(&mut self, burst: f64) {
        self.tokens = (self.tokens + 1.0).min(burst);
    }

    /// When the budget is full again (refilled to `burst`) if nothing more is taken.
    fn full_at(&self, burst: f64, every: Duration) -> Instant {
        let missing = (burst - self.tokens).max(0.0);
        let wait = Duration::try_from_secs_f64(missing * every.as_secs_f64()).unwrap_or_default();
        self.last.checked_add(wait).unwrap_or(self.last)
    }
}

/// Where a client's failures are counted: its IPv4 address or its IPv6 /64.
fn addr_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                for s in seg.iter_mut().skip(4) {
                    *s = 0;
                }
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// Makes room in a full `map` (issue 8 review item 3): drops the entries whose relevance
/// has ended (`until` is past: a cache entry expired, a failure budget full again), then, if
/// that is not enough, the tenth whose relevance ends soonest. Never the whole table: spraying
/// fresh key ids or addresses must not reset the budgets of the ones being throttled (a
/// budget that is nearly empty stays relevant longer than a fresh one, whatever its age).
fn make_room<K: Clone + Eq + Hash, V>(map: &mut HashMap<K, V>, until: impl Fn(&V) -> Instant) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    let now = Instant::now();
    map.retain(|_, v| until(v) > now);
    if map.len() < MAX_ENTRIES {
        return;
    }
    let mut ends: Vec<(Instant, K)> = map.iter().map(|(k, v)| (until(v), k.clone())).collect();
    let evict = MAX_ENTRIES / 10;
    ends.select_nth_unstable_by_key(evict - 1, |(t, _)| *t);
    for (_, k) in &ends[..evict] {
        map.remove(k);
    }
}

/// Verified keys, failures, failure budgets and the verifier pool.
pub struct KeyCache {
    entries: Mutex<HashMap<KeyId, CachedKey>>,
    failures: Mutex<HashMap<(KeyId, [u8; 32]), Instant>>,
    key_budgets: Mutex<HashMap<KeyId, FailureBudget>>,
    addr_budgets: Mutex<HashMap<IpAddr, FailureBudget>>,
    verifier: Verifier,
    /// Bumped whenever a key is revoked or an application changes on this node: open event
    /// streams re-check their key at once.
    changes: watch::Sender<u64>,
}

impl Default for KeyCache {
    fn default() -> KeyCache {
        KeyCache::new(Verifier::default())
    }
}

impl KeyCache {
    /// A cache over `verifier`.
    pub fn new(verifier: Verifier) -> KeyCache {
        KeyCache {
            entries: Mutex::default(),
            failures: Mutex::default(),
            key_budgets: Mutex::default(),
            addr_budgets: Mutex::default(),
            verifier,
            changes: watch::channel(0).0,
        }
    }

    /// A receiver that changes whenever a key is revoked or an application changes here.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Forgets a key (revoked).
    pub fn forget_key(&self, id: &KeyId) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(id);
        }
        self.changed();
    }

    /// Forgets every key of an application (disabled, changed, deleted).
    pub fn forget_app(&self, app: &AppId) {
        if let Ok(mut m) = self.entries.lock() {
            m.retain(|_, v| &v.app.id != app);
        }
        self.changed();
    }

    /// Whether `caller`'s key still works at `now` (not revoked, not expired, its application
    /// present and enabled), read from the store. `None` when the store cannot tell.
    pub async fn still_valid<S: WsiStore>(
        &self,
        store: &S,
        caller: &Caller,
        now: Timestamp,
    ) -> Option<bool> {
        let key = store.get_key(&caller.key_id).await.ok()?;
        let Some(key) = key.filter(|k| k.is_active(now) && k.app_id == caller.app.id) else {
            return Some(false);
        };
        let app = store.get_app(&key.app_id).await.ok()?;
        Some(app.is_some_and(|a| !a.disabled))
    }

    /// Authenticates the `Authorization` header value of a request from `client`.
    pub async fn authenticate<S: WsiStore>(
        &self,
        store: &S,
        header: Option<&str>,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Caller, (ApiError, Option<KeyId>)> {
        let unauth = |d: &str| ApiError::new(Kind::Unauthenticated, d.to_owned());
        let Some(header) = header else {
            return Err((
                unauth("send your API key as `Authorization: Bearer omk_…`"),
                None,
            ));
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                (
                    unauth("the Authorization header must be `Bearer omk_…`"),
                    None,
                )
            })?;
        let (id, secret) = split_key(token).ok_or_else(|| {
            (
                unauth("that is not an omnidm API key (they look like omk_<id>_<secret>)"),
                None,
            )
        })?;
        let key_id = KeyId(id.to_owned());
        let sha: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let bad = || {
            (
                unauth(
                    "the API key is unknown, revoked or expired; ask an administrator for a new one",
                ),
                Some(key_id.clone()),
            )
        };
        let disabled = |app: &AppId| {
            (
                unauth(&format!("application {app} is disabled")),
                Some(key_id.clone()),
            )
        };

        // 1. A key verified on this node: no argon2, a store read once per TTL.
        let known = self.entries.lock().ok().and_then(|m| {
            m.get(&key_id).and_then(|c| {
                bool::from(c.secret_sha.ct_eq(&sha)).then(|| {
                    (
                        c.loaded.elapsed() < KEY_CACHE_TTL,
                        c.hash.clone(),
                        c.app.clone(),
                        c.expires_at,
                    )
                })
            })
        });
        if let Some((fresh, hash, app, expires_at)) = known {
            if fresh {
                if expires_at.is_some_and(|e| now >= e) {
                    return Err(bad());
                }
                return Ok(Caller {
                    app,
                    key_id,
                    key_expires_at: expires_at,
                });
            }
            let reload = async {
                let key = store.get_key(&key_id).await?;
                let app = match &key {
                    Some(k) => store.get_app(&k.app_id).await?,
                    None => None,
                };
                Ok::<_, omnidm_core::StoreError>((key, app))
            };
            let (key, app) = reload
                .await
                .map_err(|e| (ApiError::from(e), Some(key_id.clone())))?;
            let usable = key
                .as_ref()
                .filter(|k| k.hash == hash && k.is_active(now))
                .zip(app);
            let Some((key, app)) = usable else {
                self.forget_key(&key_id);
                return Err(bad());
            };
            if app.disabled {
                self.forget_key(&key_id);
                return Err(disabled(&app.id));
            }
            self.remember(&key_id, sha, key, &app);
            return Ok(Caller {
                app,
                key_id,
                key_expires_at: key.expires_at,
            });
        }

        // 2. A pair that failed recently.
        if let Ok(f) = self.failures.lock()
            && f.get(&(key_id.clone(), sha))
                .is_some_and(|t| t.elapsed() < FAILURE_CACHE_TTL)
        {
            return Err(bad());
        }

        // 3. Failure budgets, charged before argon2 runs (refunded on success).
        let client = client.map(addr_bucket);
        if let Err(wait) = self.charge(&key_id, client) {
            metrics::counter!("omnidm_api_auth_refused_total", "reason" => "throttled")
                .increment(1);
            let mut e = ApiError::new(
                Kind::TooManyRequests,
                "too many failed authentications for this key or from this address; wait and retry with a valid key",
            );
            e.retry_after = Some(wait);
            return Err((e, Some(key_id)));
        }

        // 4. The same work whether the key exists or not.
        let key = match store.get_key(&key_id).await {
            Ok(key) => key,
            Err(e) => {
                self.refund(&key_id, client);
                return Err((ApiError::from(e), Some(key_id)));
            }
        };
        let verified = self
            .verifier
            .verify(key.as_ref().map(|k| k.hash.clone()), secret)
            .await;
        let ok = match verified {
            Ok(ok) => ok,
            Err(refused) => {
                self.refund(&key_id, client);
                metrics::counter!("omnidm_api_auth_refused_total", "reason" => "busy").increment(1);
                let mut e = ApiError::new(
                    Kind::Unavailable,
                    match refused {
                        VerifyRefused::Busy => {
                            "too many key verifications in progress; retry shortly"
                        }
                        VerifyRefused::Stopped => "the server is stopping; retry shortly",
                    },
                );
                e.retry_after = Some(1);
                return Err((e, Some(key_id)));
            }
        };
        let Some(key) = key.filter(|k| ok && k.is_active(now)) else {
            if let Ok(mut f) = self.failures.lock() {
                make_room(&mut f, |t| *t + FAILURE_CACHE_TTL);
                f.insert((key_id.clone(), sha), Instant::now());
            }
            return Err(bad());
        };
        self.refund(&key_id, client);
        let app = store
            .get_app(&key.app_id)
            .await
            .map_err(|e| (ApiError::from(e), Some(key_id.clone())))?;
        let Some(app) = app else { return Err(bad()) };
        if app.disabled {
            return Err(disabled(&app.id));
        }
        self.remember(&key_id, sha, &key, &app);
        Ok(Caller {
            app,
            key_id,
            key_expires_at: key.expires_at,
        })
    }

    fn remember(&self, key_id: &KeyId, sha: [u8; 32], key: &ApiKey, app: &Application) {
        if let Ok(mut m) = self.entries.lock() {
            make_room(&mut m, |c| c.loaded + KEY_CACHE_TTL);
            m.insert(
                key_id.clone(),
                CachedKey {
                    secret_sha: sha,
                    hash: key.hash.clone(),
                    app: app.clone(),
                    expires_at: key.expires_at,
                    loaded: Instant::now(),
                },
            );
        }
    }

    /// Takes a failure token for the key id and the client; `Err(retry after)` when either
    /// budget is empty (neither is charged then).
    fn charge(&self, key_id: &KeyId, client: Option<IpAddr>) -> Result<(), u64> {
        let fresh = || FailureBudget {
            tokens: 0.0,
            last: Instant::now(),
        };
        let (Ok(mut keys), Ok(mut addrs)) = (self.key_budgets.lock(), self.addr_budgets.lock())
        else {
            return Ok(());
        };
        make_room(&mut keys, |b| {
            b.full_at(KEY_FAILURE_BURST, KEY_FAILURE_EVERY)
        });
        make_room(&mut addrs, |b| {
            b.full_at(ADDR_FAILURE_BURST, ADDR_FAILURE_EVERY)
        });
        let key_budget = keys.entry(key_id.clone()).or_insert_with(|| FailureBudget {
            tokens: KEY_FAILURE_BURST,
            ..fresh()
        });
        key_budget.take(KEY_FAILURE_BURST, KEY_FAILURE_EVERY)?;
        if let Some(ip) = client {
            let addr_budget = addrs.entry(ip).or_insert_with(|| FailureBudget {
                tokens: ADDR_FAILURE_BURST,
                ..fresh()
            });
            if let Err(wait) = addr_budget.take(ADDR_FAILURE_BURST, ADDR_FAILURE_EVERY) {
                key_budget.refund(KEY_FAILURE_BURST);
                return Err(wait);
            }
        }
        Ok(())
    }

    fn refund(&self, key_id: &KeyId, client: Option<IpAddr>) {
        if let Ok(mut keys) = self.key_budgets.lock()
            && let Some(b) = keys.get_mut(key_id)
        {
            b.refund(KEY_FAILURE_BURST);
        }
        if let Some(ip) = client
            && let Ok(mut addrs) = self.addr_budgets.lock()
            && let Some(b) = addrs.get_mut(&ip)
        {
            b.refund(ADDR_FAILURE_BURST);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_split_and_verify() {
        use argon2::password_hash::PasswordVerifier;
        let app = AppId::new("a").unwrap();
        let k = mint_key(&app, Timestamp(0), None).unwrap();
        let (id, secret) = split_key(&k.text).unwrap();
        assert_eq!(id, k.record.id.0);
        let h = PasswordHash::new(&k.record.hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        );
        assert!(Argon2::default().verify_password(b"nope", &h).is_err());
        assert!(!k.record.hash.contains(secret));
        assert!(k.record.hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(split_key("omk_").is_none());
        assert!(split_key("bearer").is_none());
    }

    /// Issue 8 item 6: the pool's verification (reused memory) agrees with argon2's own for
    /// the hashes keys carry, whatever parameters they were made with.
    #[test]
    fn the_verifier_checks_any_stored_parameters_with_reused_memory() {
        let mut memory = Vec::new();
        for params in [
            Params::new(19 * 1024, 2, 1, None).unwrap(),
            Params::new(4096, 3, 1, None).unwrap(),
            Params::new(8192, 1, 2, Some(32)).unwrap(),
        ] {
            let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
            let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"s3cret", &salt)
                .unwrap()
                .to_string();
            assert!(verify_phc(&phc, b"s3cret", &mut memory), "{phc}");
            assert!(!verify_phc(&phc, b"s3cres", &mut memory), "{phc}");
        }
        assert!(!verify_phc("not a phc string", b"x", &mut memory));
        assert!(
            !verify_phc(
                "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
                b"x",
                &mut memory
            ),
            "too much memory asked"
        );
    }

    /// Issue 8 item 7: an unknown key id is verified against the dummy hash (never true).
    #[tokio::test]
    async fn the_pool_verifies_and_refuses_when_full() {
        let app = AppId::new("a").unwrap();
        let k = mint_key(&app, Timestamp(0), None).unwrap();
        let (_, secret) = split_key(&k.text).unwrap();
        let v = Verifier::new(1);
        assert_eq!(
            v.verify(Some(k.record.hash.clone()), secret).await,
            Ok(true)
        );
        assert_eq!(
            v.verify(Some(k.record.hash.clone()), "nope").await,
            Ok(false)
        );
        assert_eq!(v.verify(None, secret).await, Ok(false));
        // A full queue answers at once.
        let pending: Vec<_> = (0..QUEUE_PER_THREAD + 4)
            .map(|_| v.verify(None, "x"))
            .collect();
        let results = futures_util::future::join_all(pending).await;
        assert!(results.contains(&Err(VerifyRefused::Busy)), "{results:?}");
        assert!(results.contains(&Ok(false)));
    }

    #[test]
    fn failure_budgets_empty_and_refill() {
        let mut b = FailureBudget {
            tokens: 2.0,
            last: Instant::now(),
        };
        let every = Duration::from_secs(60);
        assert!(b.take(2.0, every).is_ok());
        assert!(b.take(2.0, every).is_ok());
        assert_eq!(b.take(2.0, every), Err(60));
        b.refund(2.0);
        assert!(b.take(2.0, every).is_ok());
        assert!(b.full_at(2.0, every) > Instant::now());
        assert_eq!(
            addr_bucket("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            addr_bucket("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    /// Issue 8 review item 3: a full failure-budget table evicts the budgets that matter
    /// least; it no longer empties, so spraying fresh key ids does not reset the throttle of
    /// the key being attacked (older or newer than the spray).
    #[test]
    fn a_full_budget_table_keeps_the_throttled_entries() {
        let cache = KeyCache::default();
        let target = KeyId("target".into());
        let mut throttled = false;
        for _ in 0..=KEY_FAILURE_BURST as usize {
            throttled = cache.charge(&target, None).is_err();
        }
        assert!(throttled, "the target's budget is empty");
        // Spray enough fresh key ids to fill the table (and more).
        for i in 0..MAX_ENTRIES + 500 {
            let k = KeyId(format!("spray{i}"));
            assert!(cache.charge(&k, None).is_ok());
        }
        assert!(
            cache.charge(&target, None).is_err(),
            "the target is still throttled"
        );
        let newest = KeyId(format!("spray{}", MAX_ENTRIES + 499));
        {
            let keys = cache.key_budgets.lock().unwrap();
            assert!(keys.len() < MAX_ENTRIES, "bounded: {}", keys.len());
            assert!(keys.len() > MAX_ENTRIES / 2, "not emptied: {}", keys.len());
            assert!(keys.contains_key(&newest), "the most recent entry is kept");
            assert!(
                !keys.contains_key(&KeyId("spray0".into())),
                "the oldest spray entry went"
            );
        }

        // Plain caches (expiry = insertion time + TTL) drop the oldest first.
        let mut m: HashMap<u32, Instant> = HashMap::new();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES as u32 {
            m.insert(i, t0 + Duration::from_millis(u64::from(i)));
        }
        make_room(&mut m, |t| *t + FAILURE_CACHE_TTL);
        assert_eq!(m.len(), MAX_ENTRIES - MAX_ENTRIES / 10);
        assert!(!m.contains_key(&0));
        assert!(m.contains_key(&(MAX_ENTRIES as u32 - 1)));
        assert!(m.contains_key(&(MAX_ENTRIES as u32 / 10)));
    }
}
