//! The PostgreSQL backend, for operators who run several server nodes on one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Pool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres};

type Db = Postgres;
type ThisStore = PgStore;
/// Read-modify-write selects lock their rows until commit.
const FOR_UPDATE: &str = " FOR UPDATE";
/// Claims skip rows another node is claiming instead of waiting for them.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
/// `Operation::sent` is written by `save_op` after the claim.
const ALL_SENT: Option<&str> = None;
/// Taken by every transaction before it inserts events, held until it commits: event ids
/// (BIGSERIAL, assigned at insert) then increase in commit order, which readers rely on
/// when they use them as cursors. The key is an arbitrary constant private to omnidm.
const EVENT_ORDER_LOCK: &str = "SELECT pg_advisory_xact_lock(4711000001)";

/// PostgreSQL store: one pool, row locks for read-modify-write, `SKIP LOCKED` claims.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool<Postgres>,
}

impl PgStore {
    /// Connects to `postgres://…` and runs pending migrations.
    pub async fn connect(url: &str) -> Result<PgStore, omnidm_core::StoreError> {
        let opts = PgConnectOptions::from_str(url).map_err(db)?;
        PgStore::connect_with(opts, 16).await
    }

    /// Connects with explicit options and pool size, and runs pending migrations.
    pub async fn connect_with(
        opts: PgConnectOptions,
        max_connections: u32,
    ) -> Result<PgStore, omnidm_core::StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(db)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| omnidm_core::StoreError::Backend(Box::new(e)))?;
        Ok(PgStore { pool })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn writer(&self) -> &Pool<Postgres> {
        &self.pool
    }

    fn reader(&self) -> &Pool<Postgres> {
        &self.pool
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

include!("common.rs");
include!("wsi.rs");
