//! Authentication of API calls: `Authorization: Bearer omk_<key id>_<secret>`.
//!
//! Keys are shown once and stored as argon2id hashes. Verifying argon2 costs tens of
//! milliseconds by design, so a verified key is remembered for [`KEY_CACHE_TTL`] as the
//! SHA-256 of its secret (compared in constant time): a busy application pays argon2 once per
//! TTL, not per request. Revoking a key or disabling an application through this server drops
//! the cache entry at once; with several server nodes, other nodes notice within the TTL.
//!
//! Per-application rate limits (token bucket, burst = 2 s worth) and daily quotas (UTC days)
//! are enforced here too, in memory, per server node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use omnidm_core::{ApiKey, AppId, Application, KeyId, Timestamp, WsiStore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::{ApiError, Kind};

/// How long a verified key is trusted without re-reading the store.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// Prefix of every key, so leaked keys are recognisable by secret scanners.
pub const KEY_PREFIX: &str = "omk_";

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The application (as of the last cache refresh).
    pub app: Application,
    /// The key used.
    pub key_id: KeyId,
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

    /// Refuses callers other than `app` and admins.
    pub fn require_self_or_admin(&self, app: &AppId) -> Result<(), ApiError> {
        if self.is_admin() || &self.app.id == app {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "application {} may only manage itself",
                self.app.id
            )))
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

/// Mints a key for `app`. Hashing is slow on purpose: call from a blocking thread.
pub fn mint_key(
    app: &AppId,
    now: Timestamp,
    expires_at: Option<Timestamp>,
) -> Result<MintedKey, ApiError> {
    let mut id_bytes = [0u8; 9];
    let mut secret = [0u8; 32];
    let mut salt = [0u8; 16];
    for buf in [&mut id_bytes[..], &mut secret[..], &mut salt[..]] {
        getrandom::fill(buf)
            .map_err(|e| ApiError::new(Kind::Internal, format!("no randomness: {e}")))?;
    }
    let id = URL_SAFE_NO_PAD.encode(id_bytes).replace(['-', '_'], "x");
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| ApiError::new(Kind::Internal, e.to_string()))?;
    let hash = Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| ApiError::new(Kind::Internal, format!("hashing the key: {e}")))?
        .to_string();
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

struct CachedKey {
    secret_sha: [u8; 32],
    app: Application,
    expires_at: Option<Timestamp>,
    loaded: Instant,
}

/// Verified keys, by key id.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<KeyId, CachedKey>>,
}

impl KeyCache {
    /// Forgets a key (revoked).
    pub fn forget_key(&self, id: &KeyId) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(id);
        }
    }

    /// Forgets every key of an application (disabled, changed, deleted).
    pub fn forget_app(&self, app: &AppId) {
        if let Ok(mut m) = self.entries.lock() {
            m.retain(|_, v| &v.app.id != app);
        }
    }

    /// Authenticates the `Authorization` header value.
    pub async fn authenticate<S: WsiStore>(
        &self,
        store: &S,
        header: Option<&str>,
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

        if let Ok(m) = self.entries.lock()
            && let Some(c) = m.get(&key_id)
            && c.loaded.elapsed() < KEY_CACHE_TTL
        {
            let same: bool = c.secret_sha.ct_eq(&sha).into();
            if !same {
                return Err(bad());
            }
            if c.expires_at.is_some_and(|e| now >= e) {
                return Err(bad());
            }
            return Ok(Caller {
                app: c.app.clone(),
                key_id,
            });
        }

        let key = store
            .get_key(&key_id)
            .await
            .map_err(|e| (ApiError::from(e), Some(key_id.clone())))?;
        let Some(key) = key.filter(|k| k.is_active(now)) else {
            return Err(bad());
        };
        let hash = key.hash.clone();
        let secret = secret.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(secret.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if !ok {
            return Err(bad());
        }
        let app = store
            .get_app(&key.app_id)
            .await
            .map_err(|e| (ApiError::from(e), Some(key_id.clone())))?;
        let Some(app) = app else { return Err(bad()) };
        if app.disabled {
            return Err((
                unauth(&format!("application {} is disabled", app.id)),
                Some(key_id),
            ));
        }
        if let Ok(mut m) = self.entries.lock() {
            m.insert(
                key_id.clone(),
                CachedKey {
                    secret_sha: sha,
                    app: app.clone(),
                    expires_at: key.expires_at,
                    loaded: Instant::now(),
                },
            );
        }
        Ok(Caller { app, key_id })
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
    day: i64,
    used_today: u64,
}

/// Rate limits and daily quotas per application.
#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<AppId, Bucket>>,
}

impl Limiter {
    /// Takes one request from `app`'s allowance.
    pub fn admit(&self, app: &Application, now: Timestamp) -> Result<(), ApiError> {
        if app.rate_limit.is_none() && app.daily_quota.is_none() {
            return Ok(());
        }
        let day = now.millis().div_euclid(86_400_000);
        let Ok(mut m) = self.buckets.lock() else {
            return Ok(());
        };
        let rate = f64::from(app.rate_limit.unwrap_or(u32::MAX));
        let b = m.entry(app.id.clone()).or_insert(Bucket {
            tokens: rate * 2.0,
            last: Instant::now(),
            day,
            used_today: 0,
        });
        if b.day != day {
            b.day = day;
            b.used_today = 0;
        }
        if let Some(q) = app.daily_quota
            && b.used_today >= q
        {
            let secs_left = 86_400 - now.millis().rem_euclid(86_400_000) / 1000;
            let mut e = ApiError::new(
                Kind::TooManyRequests,
                format!("daily quota of {q} requests used up; it resets at 00:00 UTC"),
            );
            e.retry_after = u64::try_from(secs_left).ok();
            return Err(e);
        }
        if app.rate_limit.is_some() {
            let elapsed = b.last.elapsed().as_secs_f64();
            b.last = Instant::now();
            b.tokens = (b.tokens + elapsed * rate).min(rate * 2.0);
            if b.tokens < 1.0 {
                let mut e = ApiError::new(
                    Kind::TooManyRequests,
                    format!("rate limit of {rate} requests/s exceeded; slow down"),
                );
                e.retry_after = Some(1);
                return Err(e);
            }
            b.tokens -= 1.0;
        }
        b.used_today += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_split_and_verify() {
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
        assert!(split_key("omk_").is_none());
        assert!(split_key("bearer").is_none());
    }

    #[test]
    fn limiter_enforces_rate_and_quota() {
        let mut app = Application {
            id: AppId::new("a").unwrap(),
            description: String::new(),
            role: omnidm_core::Role::Application,
            rate_limit: Some(1),
            daily_quota: None,
            disabled: false,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let l = Limiter::default();
        assert!(l.admit(&app, Timestamp(0)).is_ok());
        assert!(l.admit(&app, Timestamp(0)).is_ok());
        assert_eq!(
            l.admit(&app, Timestamp(0)).unwrap_err().kind,
            Kind::TooManyRequests
        );
        app.id = AppId::new("b").unwrap();
        app.rate_limit = None;
        app.daily_quota = Some(2);
        assert!(l.admit(&app, Timestamp(0)).is_ok());
        assert!(l.admit(&app, Timestamp(0)).is_ok());
        assert!(l.admit(&app, Timestamp(1)).is_err());
        assert!(
            l.admit(&app, Timestamp(86_400_000)).is_ok(),
            "a new UTC day resets the quota"
        );
    }
}
