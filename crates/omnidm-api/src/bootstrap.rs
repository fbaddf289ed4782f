//! First start: with no application in the store, create `admin` and write its key to
//! `<data-dir>/admin.key` (mode 0600), so an operator can start using the API at once.
//! The file is created exclusively: an `admin.key` that already exists (planted by someone
//! else, or a symbolic link) makes the first start fail rather than write the key into it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use omnidm_core::{AppId, Application, Role, Timestamp, WsiStore};

use crate::auth::{MintedKey, mint_key};
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
    let key = mint_admin_key(id, t).await?;
    let path = data_dir.join(ADMIN_KEY_FILE);
    write_private(&path, &format!("{}\n", key.text))?;
    store.create_app(&app).await?;
    store.create_key(&key.record).await?;
    Ok(Some(path))
}

/// What [`reset_admin_key`] did.
#[derive(Debug)]
pub struct AdminKeyReset {
    /// The new key's file.
    pub path: PathBuf,
    /// How many keys of the admin application were revoked.
    pub revoked: usize,
    /// True when the admin application was disabled and has been enabled again.
    pub reenabled: bool,
}

/// Recovers a lost admin key on the server host (`omnidm admin reset-key`): revokes every key
/// of the `admin` application (a lost key may have been found by someone else), enables the
/// application if it was disabled, mints a new key and writes it to `<data-dir>/admin.key`
/// exactly as first start does. Whoever can run this can already read the data directory,
/// so it gives nobody more than they have. An existing `admin.key` is never overwritten.
pub async fn reset_admin_key<S: WsiStore>(
    store: &S,
    data_dir: &Path,
) -> Result<AdminKeyReset, BootstrapError> {
    let t = now();
    let id = AppId::new(AppId::ADMIN).map_err(|e| BootstrapError(e.to_string()))?;
    let Some(mut app) = store.get_app(&id).await? else {
        return Err(BootstrapError(
            "there is no `admin` application in this store; `omnidm serve` creates it on first \
             start (check --data-dir/--database)"
                .into(),
        ));
    };
    let path = data_dir.join(ADMIN_KEY_FILE);
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(BootstrapError(format!(
            "{} exists; if its key no longer works, move it away and run this again",
            path.display()
        )));
    }
    let minted = mint_admin_key(id.clone(), t).await?;
    // The file, then the new key, then the revocations: whatever fails part way, the key in
    // the file works or nothing has changed.
    write_private(&path, &format!("{}\n", minted.text))?;
    store.create_key(&minted.record).await?;
    let mut revoked = 0;
    for key in store.list_keys(&id).await? {
        if key.revoked_at.is_none() && key.id != minted.record.id {
            store.revoke_key(&key.id, t).await?;
            revoked += 1;
        }
    }
    let reenabled = app.disabled;
    if reenabled {
        app.disabled = false;
        app.updated_at = t;
        store.update_app(&app).await?;
    }
    Ok(AdminKeyReset {
        path,
        revoked,
        reenabled,
    })
}

/// A new key for the admin application, hashed off the async runtime (argon2 is slow).
async fn mint_admin_key(id: AppId, t: Timestamp) -> Result<MintedKey, BootstrapError> {
    tokio::task::spawn_blocking(move || mint_key(&id, t, None))
        .await
        .map_err(|e| BootstrapError(e.to_string()))?
        .map_err(|e| BootstrapError(e.detail))
}

/// Creates `path` for the key: exclusively (`O_CREAT|O_EXCL`: never an existing file, never
/// through a symbolic link, which `O_EXCL` refuses too; `O_NOFOLLOW` on top), mode 0600 from
/// the start, so the key is never readable by anyone else even for an instant (issue 8 item 8).
fn write_private(path: &Path, text: &str) -> Result<(), BootstrapError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            BootstrapError(format!(
                "{} already exists; first start writes the new admin key there and never into \
                 a file (or link) it did not create itself. Check who created it, remove it, \
                 and start again",
                path.display()
            ))
        } else {
            BootstrapError(format!("creating {}: {e}", path.display()))
        }
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| BootstrapError(format!("writing {}: {e}", path.display())))
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
