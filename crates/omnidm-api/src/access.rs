//! Authorization of device access: loads an application's grants (cached briefly) and
//! decides with the pure rule in `omnidm_core::authorize`.
//!
//! Grant and group changes made through this server clear the cache at once; other nodes
//! sharing a PostgreSQL database see them within [`GRANT_CACHE_TTL`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnidm_core::{
    AppId, Device, DeviceId, Grant, Group, GroupId, GroupKind, Permission, WsiStore,
};

use crate::auth::Caller;
use crate::problem::ApiError;

/// How long an application's grants are trusted without re-reading the store.
pub const GRANT_CACHE_TTL: Duration = Duration::from_secs(5);

/// An application's grants with the groups they name.
#[derive(Debug, Default)]
pub struct AppGrants {
    /// The grants.
    pub grants: Vec<Grant>,
    /// Their groups, by id (a grant on a deleted group is gone with it).
    pub groups: HashMap<GroupId, Group>,
    /// Static-group memberships looked up while these grants are cached (the same TTL, and
    /// dropped with them when a group or its members change): a busy application reading one
    /// device's tree pays the membership query once per TTL, not per request.
    memberships: Mutex<HashMap<DeviceId, HashSet<GroupId>>>,
}

/// Most memberships remembered per application (beyond it, lookups are not cached).
const MAX_MEMBERSHIPS: usize = 50_000;

impl AppGrants {
    /// True if some grant names a static group (membership needs a store read).
    fn needs_membership(&self) -> bool {
        self.groups.values().any(|g| g.kind == GroupKind::Static)
    }

    /// Grants whose group contains `device`; `static_groups` are the static groups the
    /// device belongs to.
    pub fn for_device<'a>(
        &'a self,
        device: &Device,
        static_groups: &HashSet<GroupId>,
    ) -> Vec<&'a Grant> {
        self.grants
            .iter()
            .filter(|g| match self.groups.get(&g.group).map(|gr| &gr.kind) {
                Some(GroupKind::Static) => static_groups.contains(&g.group),
                Some(GroupKind::Filter { filter }) => filter.matches(device),
                None => false,
            })
            .collect()
    }
}

struct Cached {
    grants: Arc<AppGrants>,
    loaded: Instant,
}

/// Grants by application.
#[derive(Default)]
pub struct GrantCache {
    entries: Mutex<HashMap<AppId, Cached>>,
}

impl GrantCache {
    /// Drops everything (a grant or group changed).
    pub fn clear(&self) {
        if let Ok(mut m) = self.entries.lock() {
            m.clear();
        }
    }

    /// The grants of `app`.
    pub async fn grants_of<S: WsiStore>(
        &self,
        store: &S,
        app: &AppId,
    ) -> Result<Arc<AppGrants>, ApiError> {
        if let Ok(m) = self.entries.lock()
            && let Some(c) = m.get(app).filter(|c| c.loaded.elapsed() < GRANT_CACHE_TTL)
        {
            return Ok(c.grants.clone());
        }
        let grants = store.list_grants(Some(app)).await?;
        let mut groups = HashMap::new();
        for g in &grants {
            if !groups.contains_key(&g.group)
                && let Some(group) = store.get_group(&g.group).await?
            {
                groups.insert(g.group.clone(), group);
            }
        }
        let loaded = Arc::new(AppGrants {
            grants,
            groups,
            memberships: Mutex::default(),
        });
        if let Ok(mut m) = self.entries.lock() {
            m.insert(
                app.clone(),
                Cached {
                    grants: loaded.clone(),
                    loaded: Instant::now(),
                },
            );
        }
        Ok(loaded)
    }
}

/// What a caller may do on one device.
pub struct DeviceAccess<'a> {
    /// The caller is an admin: everything.
    pub admin: bool,
    /// Grants covering the device (empty for admins).
    pub grants: Vec<&'a Grant>,
}

impl DeviceAccess<'_> {
    /// May the caller see the device at all (any grant covers it)?
    pub fn visible(&self) -> bool {
        self.admin || !self.grants.is_empty()
    }

    /// May the caller read `path` (a `get` grant covers it)?
    pub fn may_read(&self, path: &omnidm_core::NodePath) -> bool {
        self.admin
            || self.grants.iter().any(|g| {
                g.permissions.contains(&Permission::Get)
                    && g.subtrees.iter().any(|s| s.covers(path))
            })
    }
}

/// Loads the static-group memberships needed to decide on `device` for `grants`.
pub async fn static_groups<S: WsiStore>(
    store: &S,
    grants: &AppGrants,
    device: &DeviceId,
) -> Result<HashSet<GroupId>, ApiError> {
    if !grants.needs_membership() {
        return Ok(HashSet::new());
    }
    if let Some(known) = grants
        .memberships
        .lock()
        .ok()
        .and_then(|m| m.get(device).cloned())
    {
        return Ok(known);
    }
    let groups: HashSet<GroupId> = store.static_groups_of(device).await?.into_iter().collect();
    if let Ok(mut m) = grants.memberships.lock()
        && m.len() < MAX_MEMBERSHIPS
    {
        m.insert(device.clone(), groups.clone());
    }
    Ok(groups)
}

/// The grants of `caller` on `device` (nothing to load for admins).
pub async fn device_access<'a, S: WsiStore>(
    store: &S,
    caller: &Caller,
    grants: &'a AppGrants,
    device: &Device,
) -> Result<DeviceAccess<'a>, ApiError> {
    if caller.is_admin() {
        return Ok(DeviceAccess {
            admin: true,
            grants: Vec::new(),
        });
    }
    let member_of = static_groups(store, grants, &device.id).await?;
    Ok(DeviceAccess {
        admin: false,
        grants: grants.for_device(device, &member_of),
    })
}
