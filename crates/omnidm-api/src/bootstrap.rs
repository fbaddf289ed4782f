//! First start: with no application in the store, create `admin` and write its key to
//! `<data-dir>/admin.key` (mode 0600), so an operator can start using the API at once.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use omnidm_core::{AppId, Application, Role, WsiStore};

use crate::auth::mint_key;
use crate::wire::now;

/// File name of the bootstrap key inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// Creates the admin application and its key file if the store has no application.
/// Returns the file written, if any.
pub async fn ensure_admin<S: WsiStore>(
    store: &S,
    data_dir: &Path,
) -> anyhow_free::Result<Option<PathBuf>> {
    if store.has_apps().await.map_err(anyhow_free::Error::store)? {
        return Ok(None);
    }
    let t = now();
    let id = AppId::new(AppId::ADMIN).map_err(|e| anyhow_free::Error(e.to_string()))?;
    let app = Application {
        id: id.clone(),
        description: "Created on first start; its key is in admin.key".into(),
        role: Role::Admin,
        rate_limit: None,
        daily_quota: None,
        disabled: false,
        created_at: t,
        updated_at: t,
    };
    let key = tokio::task::spawn_blocking(move || mint_key(&id, t, None))
        .await
        .map_err(|e| anyhow_free::Error(e.to_string()))?
        .map_err(|e| anyhow_free::Error(e.detail))?;
    let path = data_dir.join(ADMIN_KEY_FILE);
    write_private(&path, &format!("{}\n", key.text))
        .map_err(|e| anyhow_free::Error(format!("writing {}: {e}", path.display())))?;
    store
        .create_app(&app)
        .await
        .map_err(anyhow_free::Error::store)?;
    store
        .create_key(&key.record)
        .await
        .map_err(anyhow_free::Error::store)?;
    Ok(Some(path))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// A minimal error type so this crate needs no `anyhow`.
pub mod anyhow_free {
    /// Bootstrap failure, as text for the operator.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct Error(pub String);

    impl Error {
        pub(crate) fn store(e: omnidm_core::StoreError) -> Error {
            Error(e.to_string())
        }
    }

    /// Result of the bootstrap.
    pub type Result<T> = std::result::Result<T, Error>;
}
