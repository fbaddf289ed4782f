//! The embedded SQLite backend.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::Pool;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

type Db = Sqlite;
type ThisStore = SqliteStore;
/// SQLite has no row locks; the single writer connection serialises every writer.
const FOR_UPDATE: &str = "";
const SKIP_LOCKED: &str = "";
/// All commands of a claimed operation marked sent, computed in the claim's own UPDATE (the
/// JSON of `Operation::sent` with every entry `true`): the claim is one statement.
const ALL_SENT: Option<&str> =
    Some("(SELECT json_group_array(json('true')) FROM json_each(commands))");
/// Event ids follow commit order already: the single writer connection commits in the order
/// it assigns them.
const EVENT_ORDER_LOCK: &str = "";

/// File name of the database inside a data directory.
pub const DB_FILE: &str = "omnidm.sqlite3";

/// SQLite store: one file, WAL journal, `synchronous=NORMAL` (a crash of the process
/// loses nothing; a power loss may lose the last commits but never corrupts), one writer
/// connection (SQLite allows one writer at a time anyway; a pool of one turns lock
/// contention into a queue) and a pool of readers that never block it.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Pool<Sqlite>,
    reader: Pool<Sqlite>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) `<dir>/omnidm.sqlite3`, creating `dir` too.
    pub async fn open_dir(dir: &Path) -> Result<SqliteStore, omnidm_core::StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| omnidm_core::StoreError::Backend(Box::new(e)))?;
        SqliteStore::open_file(&dir.join(DB_FILE)).await
    }

    /// Opens (creating if needed) the database file `path` and runs pending migrations.
    pub async fn open_file(path: &Path) -> Result<SqliteStore, omnidm_core::StoreError> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        SqliteStore::open_with(base, path.to_owned()).await
    }

    /// Opens `sqlite://PATH` (a file, or a directory holding `omnidm.sqlite3`).
    pub async fn connect(url: &str) -> Result<SqliteStore, omnidm_core::StoreError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| omnidm_core::StoreError::Invalid(format!("not a sqlite URL: {url}")))?;
        let rest = rest.split('?').next().unwrap_or(rest);
        let p = Path::new(rest);
        if p.is_dir() || rest.ends_with('/') {
            SqliteStore::open_dir(p).await
        } else {
            SqliteStore::open_file(p).await
        }
    }

    async fn open_with(
        base: SqliteConnectOptions,
        path: PathBuf,
    ) -> Result<SqliteStore, omnidm_core::StoreError> {
        // No ping before each acquire: the database is a local file, and with sqlx's SQLite
        // driver every statement (a ping too) is a hand-off to the connection's worker thread
        // and back, the dominant cost of a session.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(base.clone().create_if_missing(true))
            .await
            .map_err(db)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| omnidm_core::StoreError::Backend(Box::new(e)))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(base.read_only(true))
            .await
            .map_err(db)?;
        Ok(SqliteStore {
            writer,
            reader,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes both pools (waits for connections to be returned).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    fn writer(&self) -> &Pool<Sqlite> {
        &self.writer
    }

    fn reader(&self) -> &Pool<Sqlite> {
        &self.reader
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

include!("common.rs");
include!("wsi.rs");
