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
) -> Result<Option<PathBuf>, BootstrapError> {
    if store.has_apps().await? {
        return Ok(None);
    }
    let t = now();
    let id = AppId::new(AppId::ADMIN).map_err(|e| BootstrapError(e.to_string()))?;
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
        .map_err(|e| BootstrapError(e.to_string()))?
        .map_err(|e| BootstrapError(e.detail))?;
    let path = data_dir.join(ADMIN_KEY_FILE);
    write_private(&path, &format!("{}\n", key.text))
        .map_err(|e| BootstrapError(format!("writing {}: {e}", path.display())))?;
    store.create_app(&app).await?;
    store.create_key(&key.record).await?;
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

/// Why the bootstrap failed, in words for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BootstrapError(String);

impl From<omnidm_core::StoreError> for BootstrapError {
    fn from(e: omnidm_core::StoreError) -> BootstrapError {
        BootstrapError(e.to_string())
    }
}
