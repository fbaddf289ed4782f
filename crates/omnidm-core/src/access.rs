//! Access control of the Web Services Interface, in the spirit of OMA DM ACLs: a grant gives
//! one application a set of operations on a set of management-tree subtrees of a set of
//! devices (a group). No grant, no access.
//!
//! This module is the decision, as pure functions over data the caller loaded; it does not
//! load grants or resolve static group membership itself (the API layer does, through the
//! store), so the rule is testable without a database.

use std::fmt;

use omnidm_tree::UriPattern;
use serde::{Deserialize, Serialize};

use crate::app::{AppId, SlugError, check_slug};
use crate::device::Device;
use crate::operation::OpCommand;
use crate::path::NodePath;
use crate::time::Timestamp;

/// An operation an application may be granted (the OMA DM command set plus user
/// interaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read nodes: device Get and reads of the tree cache.
    Get,
    /// Replace node values.
    Replace,
    /// Add nodes.
    Add,
    /// Delete nodes.
    Delete,
    /// Execute nodes.
    Exec,
    /// Copy nodes (needs the permission on both the source and the target).
    Copy,
    /// Ask the device's user (display, confirm, input, choices).
    Ui,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 7] = [
        Permission::Get,
        Permission::Replace,
        Permission::Add,
        Permission::Delete,
        Permission::Exec,
        Permission::Copy,
        Permission::Ui,
    ];

    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Get => "get",
            Permission::Replace => "replace",
            Permission::Add => "add",
            Permission::Delete => "delete",
            Permission::Exec => "exec",
            Permission::Copy => "copy",
            Permission::Ui => "ui",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Group identifier: a slug like [`AppId`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupId(String);

impl GroupId {
    /// Validates `s` as a group id.
    pub fn new(s: impl Into<String>) -> Result<GroupId, SlugError> {
        let s = s.into();
        check_slug(&s)?;
        Ok(GroupId(s))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GroupId {
    type Error = SlugError;
    fn try_from(s: String) -> Result<GroupId, SlugError> {
        GroupId::new(s)
    }
}

impl From<GroupId> for String {
    fn from(id: GroupId) -> String {
        id.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which devices a filter-defined group holds: every set field must match (tags: the device
/// carries all of them). An empty filter matches every device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupFilter {
    /// Exact manufacturer (`./DevInfo/Man`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Exact model (`./DevInfo/Mod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Exact firmware version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// Tags the device must all carry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl GroupFilter {
    /// Does `device` belong?
    pub fn matches(&self, device: &Device) -> bool {
        fn eq(want: &Option<String>, have: &Option<String>) -> bool {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        }
        eq(&self.manufacturer, &device.info.manufacturer)
            && eq(&self.model, &device.info.model)
            && eq(&self.firmware_version, &device.info.firmware_version)
            && self
                .tags
                .iter()
                .all(|t| device.tags.binary_search(t).is_ok())
    }
}

/// How a group's members are defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupKind {
    /// Members are added and removed explicitly.
    Static,
    /// Members are the devices matching the filter, evaluated at each use.
    Filter {
        /// The filter.
        filter: GroupFilter,
    },
}

/// A set of devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Identity.
    pub id: GroupId,
    /// What it is for.
    pub description: String,
    /// Static or filter-defined.
    #[serde(flatten)]
    pub kind: GroupKind,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change (for ETags).
    pub updated_at: Timestamp,
}

/// Grant identifier, assigned by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrantId(pub u64);

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A subtree pattern of a grant, kept with its text so it prints as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubtreePattern {
    text: String,
    pattern: UriPattern,
}

impl SubtreePattern {
    /// Parses `./DevInfo/*`, `./Vendor/App42/**`, `./DevDetail/FwV`.
    pub fn parse(s: &str) -> Result<SubtreePattern, String> {
        let pattern =
            UriPattern::parse(s).map_err(|e| format!("invalid subtree pattern {s:?}: {e}"))?;
        Ok(SubtreePattern {
            text: pattern.to_string(),
            pattern,
        })
    }

    /// Does the pattern cover `path`? Only OMA DM paths are covered for now; TR-069 and
    /// LwM2M paths get their own pattern forms when those adapters land.
    pub fn covers(&self, path: &NodePath) -> bool {
        match path {
            NodePath::OmaDm(uri) => self.pattern.matches(uri),
            NodePath::Tr069(_) | NodePath::Lwm2m(_) => false,
        }
    }

    /// Does the pattern cover `path` and every node below it? A subtree listing
    /// (`?list=Struct|StructData|TNDS`) returns all of them, so it needs this.
    pub fn covers_subtree(&self, path: &NodePath) -> bool {
        match path {
            NodePath::OmaDm(uri) => self.pattern.matches_subtree(uri),
            NodePath::Tr069(_) | NodePath::Lwm2m(_) => false,
        }
    }

    /// Could any node at or below `root` be covered? (Decides whether a subtree read is
    /// refused outright or answered with the covered nodes only.)
    pub fn may_cover_below(&self, root: &NodePath) -> bool {
        let NodePath::OmaDm(root) = root else {
            return false;
        };
        let pattern: Vec<&str> = self.text_segments().collect();
        let (literal, subtree) = match pattern.split_last() {
            Some((&"**", rest)) => (rest, true),
            _ => (&pattern[..], false),
        };
        if root.depth() > literal.len() && !subtree {
            return false;
        }
        root.segments()
            .zip(literal.iter())
            .all(|(r, p)| *p == "*" || *p == r)
    }

    fn text_segments(&self) -> impl Iterator<Item = &str> {
        self.text
            .strip_prefix('.')
            .unwrap_or(&self.text)
            .split('/')
            .filter(|s| !s.is_empty())
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for SubtreePattern {
    type Error = String;
    fn try_from(s: String) -> Result<SubtreePattern, String> {
        SubtreePattern::parse(&s)
    }
}

impl From<SubtreePattern> for String {
    fn from(p: SubtreePattern) -> String {
        p.text
    }
}

impl fmt::Display for SubtreePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A grant: `app` may do `permissions` on `subtrees` of the devices in `group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Identity.
    pub id: GrantId,
    /// Who.
    pub app_id: AppId,
    /// What (at least one).
    pub permissions: Vec<Permission>,
    /// Where in the tree (at least one pattern).
    pub subtrees: Vec<SubtreePattern>,
    /// On which devices.
    pub group: GroupId,
    /// Creation time.
    pub created_at: Timestamp,
}

/// What the caller supplies to create a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGrant {
    /// Who.
    pub app_id: AppId,
    /// What.
    pub permissions: Vec<Permission>,
    /// Where.
    pub subtrees: Vec<SubtreePattern>,
    /// On which devices.
    pub group: GroupId,
}

/// Why a request was refused: the rule, in words an integrator can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{rule}")]
pub struct Denial {
    /// The rule that denied, e.g. `no grant of app-42 gives "exec" on ./FUMO/Pkg1/Update of
    /// device IMEI:1`.
    pub rule: String,
}

/// One permission needed on one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The permission.
    pub permission: Permission,
    /// The node; `None` for user interaction, which has no node (any grant with `ui` on the
    /// device allows it).
    pub path: Option<NodePath>,
    /// The need extends to every node below `path` (a Get with `?list=`, Delete, Copy: they
    /// act on the whole subtree, so a grant on the node or its direct children is not enough).
    pub subtree: bool,
}

/// Is `path` a listing of its subtree (`?list=Struct`, `StructData`, `TNDS…`)? DM Protocol
/// 1.2 §6.6.8 (Get) and TND 1.2 §8 (TNDS): such a Get returns every node below the target.
pub fn is_listing(path: &NodePath) -> bool {
    matches!(path, NodePath::OmaDm(uri) if matches!(uri.query(), Some(omnidm_tree::UriQuery::List(_))))
}

/// Refuses commands that would read a credential (see `NodePath::is_credential`): a Get of
/// a credential node, or a Copy from one (its value would land somewhere readable). Applies
/// to every caller, admins included. A listing whose subtree holds credentials is allowed:
/// their values are dropped where results enter the server.
pub fn refuse_credential_reads(commands: &[OpCommand]) -> Result<(), Denial> {
    for c in commands {
        let source = match c {
            OpCommand::Get { path } | OpCommand::Copy { from: path, .. } => Some(path),
            OpCommand::Atomic(cs) | OpCommand::Sequence(cs) => {
                refuse_credential_reads(cs)?;
                None
            }
            _ => None,
        };
        if let Some(path) = source.filter(|p| p.is_credential()) {
            return Err(Denial {
                rule: format!(
                    "{} holds a credential; credentials are never readable through the API",
                    path.without_query()
                ),
            });
        }
    }
    Ok(())
}

/// The permissions a command list needs (Copy needs `copy` on both ends; containers need
/// what their children need).
pub fn needs_of(commands: &[OpCommand]) -> Vec<Need> {
    fn walk(c: &OpCommand, out: &mut Vec<Need>) {
        let mut need = |permission, path: &NodePath, subtree| {
            out.push(Need {
                permission,
                path: Some(path.without_query()),
                subtree,
            })
        };
        // Commands that act on a whole subtree need the grant on all of it: a listing
        // returns every node below its target; Delete and Copy of an interior node delete or
        // copy its subtree (DM Protocol 1.2 §6.6.4, §6.6.3), and the server cannot know
        // beforehand whether a node is interior.
        match c {
            OpCommand::Get { path } => need(Permission::Get, path, is_listing(path)),
            OpCommand::Replace { path, .. } => need(Permission::Replace, path, false),
            OpCommand::Add { path, .. } => need(Permission::Add, path, false),
            OpCommand::Delete { path } => need(Permission::Delete, path, true),
            OpCommand::Exec { path, .. } => need(Permission::Exec, path, false),
            OpCommand::Copy { from, to } => {
                need(Permission::Copy, from, true);
                need(Permission::Copy, to, true);
            }
            OpCommand::Atomic(cs) | OpCommand::Sequence(cs) => cs.iter().for_each(|c| walk(c, out)),
            OpCommand::UserInteraction(_) => out.push(Need {
                permission: Permission::Ui,
                path: None,
                subtree: false,
            }),
        }
    }
    let mut out = Vec::new();
    commands.iter().for_each(|c| walk(c, &mut out));
    out
}

/// Does one grant allow `need`? (The caller has checked the device is in the grant's group.)
pub fn grant_allows(grant: &Grant, need: &Need) -> bool {
    grant.permissions.contains(&need.permission)
        && need.path.as_ref().is_none_or(|p| {
            grant.subtrees.iter().any(|s| {
                if need.subtree {
                    s.covers_subtree(p)
                } else {
                    s.covers(p)
                }
            })
        })
}

/// Decides `needs` on one device, given the grants of the application whose group contains
/// the device (`device_grants`). Every need must be allowed by some grant.
pub fn authorize(
    app: &AppId,
    device: &str,
    device_grants: &[&Grant],
    needs: &[Need],
) -> Result<(), Denial> {
    for need in needs {
        if !device_grants.iter().any(|g| grant_allows(g, need)) {
            let what = match &need.path {
                Some(p) if need.subtree => {
                    format!("\"{}\" on {p} and everything below it", need.permission)
                }
                Some(p) => format!("\"{}\" on {p}", need.permission),
                None => format!("\"{}\"", need.permission),
            };
            let rule = if device_grants.is_empty() {
                format!("no grant of {app} covers device {device}")
            } else {
                let ids: Vec<String> = device_grants.iter().map(|g| g.id.to_string()).collect();
                format!(
                    "no grant of {app} gives {what} on device {device} (grants on this device: {})",
                    ids.join(", ")
                )
            };
            return Err(Denial { rule });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceId, NewDevice, Protocol};

    fn grant(perms: &[Permission], subtrees: &[&str]) -> Grant {
        Grant {
            id: GrantId(7),
            app_id: AppId::new("app").unwrap(),
            permissions: perms.to_vec(),
            subtrees: subtrees
                .iter()
                .map(|s| SubtreePattern::parse(s).unwrap())
                .collect(),
            group: GroupId::new("g").unwrap(),
            created_at: Timestamp(0),
        }
    }

    fn get(p: &str) -> OpCommand {
        OpCommand::Get {
            path: NodePath::dm(p).unwrap(),
        }
    }

    #[test]
    fn grants_allow_only_their_operations_and_subtrees() {
        let app = AppId::new("app").unwrap();
        let g = grant(&[Permission::Get], &["./DevInfo/*", "./Vendor/App42/**"]);
        let ok = needs_of(&[
            get("./DevInfo/Mod"),
            get("./Vendor/App42/a/b"),
            get("./Vendor/App42"),
        ]);
        assert_eq!(authorize(&app, "d", &[&g], &ok), Ok(()));
        let deep = needs_of(&[get("./DevInfo/Ext/X")]);
        assert!(authorize(&app, "d", &[&g], &deep).is_err());
        let exec = needs_of(&[OpCommand::Exec {
            path: NodePath::dm("./Vendor/App42/Run").unwrap(),
            data: None,
            correlator: None,
        }]);
        let denial = authorize(&app, "d", &[&g], &exec).unwrap_err();
        assert!(denial.rule.contains("\"exec\""), "{denial}");
        assert!(
            authorize(&app, "d", &[], &ok)
                .unwrap_err()
                .rule
                .contains("no grant")
        );
    }

    #[test]
    fn containers_and_copy_need_every_part() {
        let app = AppId::new("app").unwrap();
        let g = grant(&[Permission::Get, Permission::Copy], &["./A/**"]);
        let atomic = needs_of(&[OpCommand::Atomic(vec![get("./A/x"), get("./B/y")])]);
        assert!(authorize(&app, "d", &[&g], &atomic).is_err());
        let copy = needs_of(&[OpCommand::Copy {
            from: NodePath::dm("./A/x").unwrap(),
            to: NodePath::dm("./B/x").unwrap(),
        }]);
        assert!(authorize(&app, "d", &[&g], &copy).is_err());
    }

    #[test]
    fn filter_groups_match_devices() {
        let mut d = NewDevice::new(DeviceId::new("IMEI:1").unwrap(), Protocol::OmaDm)
            .into_device(Timestamp(0));
        d.info.manufacturer = Some("Acme".into());
        d.tags = vec!["beta".into(), "eu".into()];
        let f = GroupFilter {
            manufacturer: Some("Acme".into()),
            tags: vec!["eu".into()],
            ..Default::default()
        };
        assert!(f.matches(&d));
        let f2 = GroupFilter {
            tags: vec!["us".into()],
            ..Default::default()
        };
        assert!(!f2.matches(&d));
        assert!(GroupFilter::default().matches(&d));
    }

    /// Issue 8 item 1: a listing returns the whole subtree, so a grant on the node's direct
    /// children does not allow it; credentials are never readable, even by a listing's root.
    #[test]
    fn listings_need_the_whole_subtree_and_credentials_are_never_read() {
        let app = AppId::new("app").unwrap();
        let children = grant(&[Permission::Get], &["./DevInfo/*", "./DMAcc/*"]);
        for listing in [
            "./DevInfo/Ext?list=StructData",
            "./DevInfo/Ext?list=Struct",
            "./DevInfo/Ext?list=TNDS+Value",
            "./DMAcc/srv1?list=StructData",
        ] {
            let needs = needs_of(&[get(listing)]);
            let denial = authorize(&app, "d", &[&children], &needs).unwrap_err();
            assert!(
                denial.rule.contains("everything below"),
                "{listing}: {denial}"
            );
        }
        assert_eq!(
            authorize(&app, "d", &[&children], &needs_of(&[get("./DevInfo/Ext")])),
            Ok(()),
            "a plain Get of the node itself is covered by ./DevInfo/*"
        );
        let delete = grant(&[Permission::Delete, Permission::Copy], &["./Vendor/*"]);
        for cmd in [
            OpCommand::Delete {
                path: NodePath::dm("./Vendor/Other").unwrap(),
            },
            OpCommand::Copy {
                from: NodePath::dm("./Vendor/Other").unwrap(),
                to: NodePath::dm("./Vendor/Mine").unwrap(),
            },
        ] {
            assert!(
                authorize(&app, "d", &[&delete], &needs_of(&[cmd])).is_err(),
                "Delete and Copy act on the whole subtree"
            );
        }
        let subtree = grant(&[Permission::Get], &["./DevInfo/**"]);
        let needs = needs_of(&[get("./DevInfo/Ext?list=StructData")]);
        assert_eq!(authorize(&app, "d", &[&subtree], &needs), Ok(()));

        let secret = "./DMAcc/srv1/AppAuth/SRVCRED/AAuthSecret";
        assert!(refuse_credential_reads(&[get(secret)]).is_err());
        assert!(
            refuse_credential_reads(&[OpCommand::Atomic(vec![OpCommand::Copy {
                from: NodePath::dm(secret).unwrap(),
                to: NodePath::dm("./Vendor/x").unwrap(),
            }])])
            .is_err()
        );
        assert!(refuse_credential_reads(&[get("./DMAcc/srv1?list=StructData")]).is_ok());
        assert!(
            refuse_credential_reads(&[OpCommand::Replace {
                path: NodePath::dm(secret).unwrap(),
                value: crate::TypedValue::string("new"),
            }])
            .is_ok(),
            "setting a credential is a write, not a read"
        );
    }

    #[test]
    fn subtree_reach() {
        let p = SubtreePattern::parse("./DevInfo/*").unwrap();
        assert!(p.may_cover_below(&NodePath::dm("./DevInfo").unwrap()));
        assert!(p.may_cover_below(&NodePath::dm(".").unwrap()));
        assert!(!p.may_cover_below(&NodePath::dm("./DevDetail").unwrap()));
        assert!(!p.may_cover_below(&NodePath::dm("./DevInfo/Mod/X").unwrap()));
        let s = SubtreePattern::parse("./Vendor/**").unwrap();
        assert!(s.may_cover_below(&NodePath::dm("./Vendor/a/b").unwrap()));
    }
}
