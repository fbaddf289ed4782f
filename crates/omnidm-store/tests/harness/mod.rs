//! The store-suite harness shared by `store.rs` and `wsi_store.rs`: every test runs on SQLite,
//! and on PostgreSQL when `OMNIDM_TEST_PG_URL` is set (`OMNIDM_TEST_REQUIRE_PG=1` makes it
//! mandatory), each in a fresh database.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use omnidm_store::{AnyStore, PgStore, SqliteStore};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Where one test's store lives.
pub enum Backend {
    Sqlite(PathBuf),
    Pg { admin: PgConnectOptions, db: String },
}

impl Backend {
    pub fn sqlite(name: &str) -> Backend {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "omnidm-store-test-{}-{name}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Backend::Sqlite(dir)
    }

    pub async fn postgres(name: &str) -> Option<Backend> {
        let url = match std::env::var("OMNIDM_TEST_PG_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                let required = std::env::var("OMNIDM_TEST_REQUIRE_PG").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "OMNIDM_TEST_REQUIRE_PG=1 but OMNIDM_TEST_PG_URL is unset"
                );
                eprintln!("skipped: OMNIDM_TEST_PG_URL is unset");
                return None;
            }
        };
        let admin = PgConnectOptions::from_str(&url).expect("OMNIDM_TEST_PG_URL");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let db = format!(
            "omnidm_t_{}_{}_{n}",
            name.to_lowercase(),
            std::process::id()
        );
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .expect("connect to PG");
        sqlx::query(&format!("CREATE DATABASE \"{db}\""))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        Some(Backend::Pg { admin, db })
    }

    pub async fn open(&self) -> AnyStore {
        match self {
            Backend::Sqlite(dir) => SqliteStore::open_dir(dir)
                .await
                .expect("open sqlite")
                .into(),
            Backend::Pg { admin, db } => PgStore::connect_with(admin.clone().database(db), 8)
                .await
                .expect("open pg")
                .into(),
        }
    }

    pub async fn cleanup(&self) {
        match self {
            Backend::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Backend::Pg { admin, db } => {
                if let Ok(mut c) = PgConnection::connect_with(admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            }
        }
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = crate::Backend::sqlite(stringify!($name));
                    super::$name(&b).await;
                    b.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(b) = crate::Backend::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&b).await;
                    b.cleanup().await;
                }
            )*
        }
    };
}
