//! The data directory holds secrets (issue 8 item 4): the SQLite store with device digest keys
//! (enough to log in as the device), webhook signing secrets and the correlator key, and the
//! first start's `admin.key`. Only the user the server runs as may read it.
//!
//! [`prepare`] runs before anything is opened:
//! - the process umask becomes 077, so every file and directory the process creates from then
//!   on (the SQLite database and its `-wal`/`-shm` files, `admin.key`) is private to its owner;
//! - a missing data directory is created with mode 0700;
//! - an existing one must belong to this user and grant nothing to group or others, otherwise
//!   the server refuses to start and says how to fix it (`chmod 700 DIR`);
//! - SQLite files left readable by others by an earlier version are tightened to 0600.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// Makes the process's new files private and checks or creates `data_dir`; tightens the
/// SQLite files of `database` when it is `sqlite://…`.
pub fn prepare(data_dir: &Path, database: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use rustix::fs::Mode;
        rustix::process::umask(Mode::from_raw_mode(0o077));
    }
    if data_dir.exists() {
        check_private(data_dir)?;
    } else {
        create_private(data_dir)?;
    }
    for file in sqlite_files(database) {
        tighten(&file)?;
    }
    Ok(())
}

fn create_private(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}

/// The directory must be ours and closed to group and others.
fn check_private(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("reading the data directory {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("data directory {} is not a directory", dir.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            bail!(
                "data directory {} belongs to user id {}, not to this user (id {me}); it holds \
                 device keys and secrets, so omnidm uses only a directory of its own: `chown` it \
                 to this user or choose another --data-dir",
                dir.display(),
                meta.uid()
            );
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "data directory {} is accessible by other users (mode {mode:04o}); it holds \
                 device keys and secrets. Run `chmod 700 {}` and start again",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// The SQLite database file and its WAL and shared-memory files.
fn sqlite_files(database: &str) -> Vec<PathBuf> {
    let Some(path) = database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))
    else {
        return Vec::new();
    };
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Vec::new();
    }
    // A URL naming a directory opens the default file inside it (as the store does).
    let file = if path.ends_with('/') || Path::new(path).is_dir() {
        Path::new(path).join(omnidm_store::DB_FILE)
    } else {
        PathBuf::from(path)
    };
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut name = file.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        })
        .collect()
}

/// An existing file readable by others becomes 0600 (earlier versions created 0644).
fn tighten(file: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(meta) = std::fs::symlink_metadata(file) else {
            return Ok(());
        };
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_file() && mode & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).with_context(
                || {
                    format!(
                        "{} is readable by other users (mode {mode:04o}) and cannot be made \
                         private; run `chmod 600 {}`",
                        file.display(),
                        file.display()
                    )
                },
            )?;
            tracing::warn!(file = %file.display(), was = %format!("{mode:04o}"), "made a store file private (0600)");
        }
    }
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn sqlite_urls_name_three_files() {
        assert_eq!(
            sqlite_files("sqlite:///var/lib/omnidm/omnidm.sqlite3"),
            vec![
                PathBuf::from("/var/lib/omnidm/omnidm.sqlite3"),
                PathBuf::from("/var/lib/omnidm/omnidm.sqlite3-wal"),
                PathBuf::from("/var/lib/omnidm/omnidm.sqlite3-shm"),
            ]
        );
        assert!(sqlite_files("postgres://db/omnidm").is_empty());
        assert_eq!(
            sqlite_files("sqlite:///var/lib/omnidm/")[0],
            PathBuf::from("/var/lib/omnidm").join(omnidm_store::DB_FILE)
        );
    }

    #[test]
    fn open_directories_are_refused_and_old_files_tightened() {
        let base = std::env::temp_dir().join(format!("omnidm-datadir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_private(&base).unwrap_err().to_string();
        assert!(err.contains("chmod 700"), "{err}");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
        check_private(&base).unwrap();
        let db = base.join("omnidm.sqlite3");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        tighten(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        let fresh = base.join("a/b");
        create_private(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
