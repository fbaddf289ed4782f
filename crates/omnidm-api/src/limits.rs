//! Per-application rate limits and daily quotas (issue 4; issue 8 item 14).
//!
//! Rate limits are a token bucket per application (burst = 2 s worth), per server node, in
//! memory: behind a balancer with N nodes an application can reach N times its rate. Daily
//! quotas (UTC days) start from the day's admitted requests in the audit log — which survives
//! restarts and is shared by the nodes — and are re-synchronised every [`QUOTA_SYNC`], one
//! request per application at a time doing the count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use omnidm_core::{AppId, Application, Timestamp, WsiStore};

use crate::problem::{ApiError, Kind};

/// How often a day's quota count is re-read from the audit log (other nodes' requests).
pub const QUOTA_SYNC: Duration = Duration::from_secs(60);

struct Bucket {
    tokens: f64,
    last: Instant,
    day: i64,
    used_today: u64,
    /// When a request last claimed the reconciliation of `used_today` with the audit log
    /// (set before the query runs, so that only one runs at a time).
    synced: Option<Instant>,
}

impl Bucket {
    fn new(app: &Application, day: i64) -> Bucket {
        Bucket {
            tokens: f64::from(app.rate_limit.unwrap_or(u32::MAX)) * 2.0,
            last: Instant::now(),
            day,
            used_today: 0,
            synced: None,
        }
    }
}

/// `app`'s bucket, moved to the UTC day of `now` (the day's count starts again); true when
/// it was moved.
fn today<'a>(
    buckets: &'a mut HashMap<AppId, Bucket>,
    app: &Application,
    now: Timestamp,
) -> (&'a mut Bucket, bool) {
    let day = now.millis().div_euclid(86_400_000);
    let b = buckets
        .entry(app.id.clone())
        .or_insert_with(|| Bucket::new(app, day));
    let new_day = b.day != day;
    if new_day {
        b.day = day;
        b.used_today = 0;
    }
    (b, new_day)
}

/// Start of the UTC day of `now`, in milliseconds.
fn day_start(now: Timestamp) -> i64 {
    now.millis().div_euclid(86_400_000) * 86_400_000
}

/// Rate limits and daily quotas per application.
#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<AppId, Bucket>>,
}

impl Limiter {
    /// Takes one request from `app`'s allowance. The day's quota count starts from (and is
    /// re-synchronised every [`QUOTA_SYNC`] with) the requests of that day in the audit log,
    /// so a restart does not reset it and other nodes' requests count too.
    pub async fn admit<S: WsiStore>(
        &self,
        store: &S,
        app: &Application,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        if app.rate_limit.is_none() && app.daily_quota.is_none() {
            return Ok(());
        }
        let count = || store.count_admitted_requests(&app.id, Timestamp(day_start(now)));
        self.admit_with(app, now, count).await
    }

    /// [`admit`](Self::admit) with the audit log's count as a future: run by at most one
    /// request per application per [`QUOTA_SYNC`] (issue 8 review item 2). The one that
    /// claims the sync marks the bucket synced *before* the query, so requests arriving while
    /// it runs count locally instead of piling up their own COUNTs (every minute and at UTC
    /// midnight). A failed or abandoned sync is retried at the next interval.
    async fn admit_with<F, Fut>(
        &self,
        app: &Application,
        now: Timestamp,
        count: F,
    ) -> Result<(), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<u64, omnidm_core::StoreError>>,
    {
        let audited = if app.daily_quota.is_some() && self.claim_sync(app, now) {
            match count().await {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(error = %e, app = %app.id, "cannot read the day's requests from the audit log; counting locally");
                    None
                }
            }
        } else {
            None
        };
        self.admit_counted(app, now, audited)
    }

    /// True when the caller is to re-read the day's count: the bucket is new, of another day,
    /// or last synced [`QUOTA_SYNC`] ago. It is marked synced (and moved to today) at once,
    /// under the lock, so concurrent requests do not claim it too.
    fn claim_sync(&self, app: &Application, now: Timestamp) -> bool {
        let Ok(mut m) = self.buckets.lock() else {
            return false;
        };
        let (b, new_day) = today(&mut m, app, now);
        if !new_day && b.synced.is_some_and(|t| t.elapsed() < QUOTA_SYNC) {
            return false;
        }
        b.synced = Some(Instant::now());
        true
    }

    /// [`admit`](Self::admit) with the audit log's count of the day's admitted requests, when
    /// it was read.
    fn admit_counted(
        &self,
        app: &Application,
        now: Timestamp,
        audited: Option<u64>,
    ) -> Result<(), ApiError> {
        let Ok(mut m) = self.buckets.lock() else {
            return Ok(());
        };
        let rate = f64::from(app.rate_limit.unwrap_or(u32::MAX));
        let (b, _) = today(&mut m, app, now);
        if let Some(n) = audited {
            b.used_today = b.used_today.max(n);
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
        assert!(l.admit_counted(&app, Timestamp(0), None).is_ok());
        assert!(l.admit_counted(&app, Timestamp(0), None).is_ok());
        assert_eq!(
            l.admit_counted(&app, Timestamp(0), None).unwrap_err().kind,
            Kind::TooManyRequests
        );
        app.id = AppId::new("b").unwrap();
        app.rate_limit = None;
        app.daily_quota = Some(2);
        assert!(l.admit_counted(&app, Timestamp(0), None).is_ok());
        assert!(l.admit_counted(&app, Timestamp(0), None).is_ok());
        assert!(l.admit_counted(&app, Timestamp(1), None).is_err());
        assert!(
            l.admit_counted(&app, Timestamp(86_400_000), None).is_ok(),
            "a new UTC day resets the quota"
        );
        // Issue 8 item 14: the audit log's count (a restart, other nodes) is the floor.
        app.id = AppId::new("c").unwrap();
        assert!(l.admit_counted(&app, Timestamp(0), Some(2)).is_err());
        app.id = AppId::new("d").unwrap();
        assert!(l.admit_counted(&app, Timestamp(0), Some(1)).is_ok());
        assert!(
            l.admit_counted(&app, Timestamp(0), Some(0)).is_err(),
            "the local count is kept"
        );
    }

    /// Issue 8 review item 2: requests arriving while the day's count is read from the audit
    /// log count locally; only one of them runs the COUNT.
    #[tokio::test]
    async fn only_one_quota_sync_runs_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let app = Application {
            id: AppId::new("q").unwrap(),
            description: String::new(),
            role: omnidm_core::Role::Application,
            rate_limit: None,
            daily_quota: Some(1_000),
            disabled: false,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let l = Limiter::default();
        let calls = AtomicUsize::new(0);
        let release = tokio::sync::Notify::new();
        let count = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            Ok::<u64, omnidm_core::StoreError>(5)
        };
        let pending: Vec<_> = (0..20)
            .map(|_| l.admit_with(&app, Timestamp(1_000), count))
            .collect();
        let all = futures_util::future::join_all(pending);
        tokio::pin!(all);
        // Let every request reach (or skip) the COUNT, then let the COUNT finish.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut all)
                .await
                .is_err()
        );
        release.notify_waiters();
        let results = all.await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one COUNT, not one per request"
        );
        // 19 counted locally while the COUNT ran; its 5 is a floor below that; then its own.
        let used = l.buckets.lock().unwrap()[&app.id].used_today;
        assert_eq!(used, 20);
        // Within the interval nobody syncs again; a new UTC day does.
        assert!(l.admit_with(&app, Timestamp(2_000), count).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let next_day = l.admit_with(&app, Timestamp(86_400_000), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<u64, omnidm_core::StoreError>(0)
        });
        assert!(next_day.await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
