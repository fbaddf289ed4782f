//! Shared plumbing of the commands that work on the server's store directly (`devices`, `ops`):
//! which store to open, a runtime to run it on, and human tables.
//!
//! Until the Web Services Interface lands, provisioning and operations go straight to the
//! store the server uses; SQLite in WAL mode and PostgreSQL both allow this while `omnidm
//! serve` runs.

use crate::server::config::{Config, Overrides};
use anyhow::Context as _;
use omnidm_store::AnyStore;
use std::path::PathBuf;

/// Where the store is: the same flags and configuration as `omnidm serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Configuration file (default: ./omnidm.toml if present).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Data directory of the embedded store [default: ./omnidm-data].
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Store URL: sqlite://PATH or postgres://… [default: SQLite in the data directory].
    #[arg(long, value_name = "URL", global = true)]
    database: Option<String>,
}

impl StoreArgs {
    /// Runs `f` with the store open, on a small runtime.
    pub fn with_store<T, F, Fut>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(AnyStore) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        self.with_store_in(|store, _| f(store))
    }

    /// Runs `f` with the store open and the data directory the configuration names.
    pub fn with_store_in<T, F, Fut>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(AnyStore, PathBuf) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let overrides = Overrides {
            config_file: self.config.clone(),
            data_dir: self.data_dir.clone(),
            database: self.database.clone(),
            ..Overrides::default()
        };
        let config = Config::load(&overrides, &|k| std::env::var(k).ok())?;
        crate::server::datadir::prepare(&config.data_dir, &config.database)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async {
            let store = AnyStore::connect(&config.database).await.with_context(|| {
                format!(
                    "cannot open the store {}; check --data-dir/--database (the same as for `omnidm serve`)",
                    config.database
                )
            })?;
            let result = f(store.clone(), config.data_dir.clone()).await;
            store.close().await;
            result
        })
    }
}

/// Prints rows as an aligned table with a header line.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // One write for the whole table: a reader that goes away is reported once.
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        while out.ends_with(' ') {
            out.pop();
        }
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    super::io::write_stdout(out.as_bytes())
}

/// A timestamp for people: RFC 3339 in UTC, or `-`.
pub fn when(ts: Option<omnidm_core::Timestamp>) -> String {
    ts.map_or_else(|| "-".into(), |t| rfc3339(t.millis()))
}

/// Milliseconds since the epoch as RFC 3339 UTC (civil-from-days, no date crate needed).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_478_400_000), "2026-11-24T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
