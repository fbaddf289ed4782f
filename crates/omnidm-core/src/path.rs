//! Protocol-tagged node paths.
//!
//! Paths are kept in each protocol's own shape, not translated into one string syntax
//! (specs/tr069.md §7): an OMA DM [`TreeUri`], a TR-069 dotted name, an LwM2M numeric
//! `/object/instance/resource/resource-instance`. Cross-protocol features (semantic aliases
//! such as `fw_version`) will sit on top of this, as a table, not inside it.
//!
//! The canonical text form tells the protocol by its first character, so a path survives a
//! round trip through JSON or a database column on its own:
//! `.` → OMA DM (`./DevInfo/Mod`, always with the `./` prefix), `/` → LwM2M (`/3/0/3`),
//! anything else → TR-069 (`Device.DeviceInfo.SoftwareVersion`).

use std::fmt;
use std::str::FromStr;

use omnidm_tree::{TreeUri, UriError};
use serde::{Deserialize, Serialize};

use crate::device::Protocol;

/// Largest LwM2M object/instance/resource id (65535 is reserved, LwM2M 1.1 §7.2).
pub const LWM2M_MAX_ID: u16 = 65534;

/// A node address in one protocol's tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum NodePath {
    /// OMA DM URI (may carry a `?list=`/`?prop=` query in a Get command).
    OmaDm(TreeUri),
    /// TR-069 parameter or object name, one segment per dot-separated part
    /// (`Device.DeviceInfo.` as an object is `["Device", "DeviceInfo"]`). Empty = root.
    Tr069(Vec<String>),
    /// LwM2M path: 0 to 4 numeric ids. Empty = root.
    Lwm2m(Vec<u16>),
}

/// Why text is not a [`NodePath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not a valid OMA DM URI.
    #[error("invalid OMA DM path: {0}")]
    Dm(#[from] UriError),
    /// Not a valid TR-069 name.
    #[error("invalid TR-069 path {0:?}")]
    Tr069(String),
    /// Not a valid LwM2M path.
    #[error("invalid LwM2M path {0:?}")]
    Lwm2m(String),
}

impl NodePath {
    /// Parses an OMA DM URI (relative forms such as `DevInfo/Mod` accepted).
    pub fn dm(s: &str) -> Result<NodePath, PathError> {
        Ok(NodePath::OmaDm(TreeUri::parse(s)?))
    }

    /// Parses `s` as a path of `protocol` (the liberal entry point for user input).
    pub fn parse_for(protocol: Protocol, s: &str) -> Result<NodePath, PathError> {
        match protocol {
            Protocol::OmaDm => NodePath::dm(s),
            Protocol::Tr069 => parse_tr069(s),
            Protocol::Lwm2m => parse_lwm2m(s),
        }
    }

    /// Parses the canonical form (see the module doc).
    pub fn parse(s: &str) -> Result<NodePath, PathError> {
        match s.as_bytes().first() {
            Some(b'.') => NodePath::dm(s),
            Some(b'/') => parse_lwm2m(s),
            _ => parse_tr069(s),
        }
    }

    /// The protocol this path belongs to.
    pub fn protocol(&self) -> Protocol {
        match self {
            NodePath::OmaDm(_) => Protocol::OmaDm,
            NodePath::Tr069(_) => Protocol::Tr069,
            NodePath::Lwm2m(_) => Protocol::Lwm2m,
        }
    }

    /// Number of segments below the root (the root is 0).
    pub fn depth(&self) -> usize {
        match self {
            NodePath::OmaDm(u) => u.depth(),
            NodePath::Tr069(s) => s.len(),
            NodePath::Lwm2m(s) => s.len(),
        }
    }

    /// The same path without an OMA DM query (the form the tree cache is keyed by).
    pub fn without_query(&self) -> NodePath {
        match self {
            NodePath::OmaDm(u) => NodePath::OmaDm(u.without_query()),
            p => p.clone(),
        }
    }

    /// The prefix shared by the canonical form of every strict descendant of this node and
    /// by nothing else. Stores use it for subtree range scans: descendants are the keys
    /// `k` with `prefix <= k < prefix_upper_bound`.
    pub fn descendant_prefix(&self) -> String {
        match self {
            NodePath::OmaDm(u) if u.is_root() => "./".to_owned(),
            NodePath::Lwm2m(s) if s.is_empty() => "/".to_owned(),
            NodePath::Tr069(s) if s.is_empty() => String::new(),
            NodePath::Tr069(_) => format!("{}.", self.without_query()),
            _ => format!("{}/", self.without_query()),
        }
    }

    /// True if `other` is this node or below it (queries ignored).
    pub fn contains(&self, other: &NodePath) -> bool {
        match (self, other) {
            (NodePath::OmaDm(a), NodePath::OmaDm(b)) => b.starts_with(a),
            (NodePath::Tr069(a), NodePath::Tr069(b)) => b.starts_with(a),
            (NodePath::Lwm2m(a), NodePath::Lwm2m(b)) => b.starts_with(a),
            _ => false,
        }
    }
}

fn parse_tr069(s: &str) -> Result<NodePath, PathError> {
    let body = s.strip_suffix('.').unwrap_or(s);
    if body.is_empty() {
        return Ok(NodePath::Tr069(Vec::new()));
    }
    let segs: Vec<String> = body.split('.').map(str::to_owned).collect();
    let ok = segs.iter().all(|seg| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    if !ok || s.len() > 1024 {
        return Err(PathError::Tr069(s.to_owned()));
    }
    Ok(NodePath::Tr069(segs))
}

fn parse_lwm2m(s: &str) -> Result<NodePath, PathError> {
    let err = || PathError::Lwm2m(s.to_owned());
    let body = s.strip_prefix('/').ok_or_else(err)?;
    let body = body.strip_suffix('/').unwrap_or(body);
    if body.is_empty() {
        return Ok(NodePath::Lwm2m(Vec::new()));
    }
    let ids = body
        .split('/')
        .map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse::<u16>().ok().filter(|v| *v <= LWM2M_MAX_ID)
        })
        .collect::<Option<Vec<u16>>>()
        .ok_or_else(err)?;
    if ids.len() > 4 {
        return Err(err());
    }
    Ok(NodePath::Lwm2m(ids))
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodePath::OmaDm(u) => write!(f, "{u}"),
            NodePath::Tr069(s) => f.write_str(&s.join(".")),
            NodePath::Lwm2m(s) if s.is_empty() => f.write_str("/"),
            NodePath::Lwm2m(s) => {
                for id in s {
                    write!(f, "/{id}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for NodePath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodePath::parse(s)
    }
}

impl TryFrom<String> for NodePath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodePath::parse(&s)
    }
}

impl From<NodePath> for String {
    fn from(p: NodePath) -> String {
        p.to_string()
    }
}

impl From<TreeUri> for NodePath {
    fn from(u: TreeUri) -> NodePath {
        NodePath::OmaDm(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trips() {
        for s in [
            ".",
            "./DevInfo/Mod",
            "./A%2FB/C",
            "./Vendor?list=Struct",
            "/",
            "/3/0/3",
            "Device.DeviceInfo.SoftwareVersion",
            "",
        ] {
            let p = NodePath::parse(s).unwrap();
            assert_eq!(p.to_string(), s, "{s}");
            assert_eq!(NodePath::parse(&p.to_string()).unwrap(), p);
        }
        assert_eq!(
            NodePath::dm("DevInfo/Mod").unwrap().to_string(),
            "./DevInfo/Mod"
        );
        assert_eq!(
            NodePath::parse("Device.DeviceInfo.").unwrap(),
            NodePath::Tr069(vec!["Device".into(), "DeviceInfo".into()])
        );
        assert!(NodePath::parse("/3/0/3/1/2").is_err());
        assert!(NodePath::parse("/65535").is_err());
        assert!(NodePath::parse("Device..X").is_err());
    }

    #[test]
    fn descendant_prefix_selects_subtrees_only() {
        let dm = NodePath::dm("./DevInfo").unwrap();
        assert_eq!(dm.descendant_prefix(), "./DevInfo/");
        assert!(
            "./DevInfoX/a" < dm.descendant_prefix().as_str()
                || !"./DevInfoX/a".starts_with(&dm.descendant_prefix())
        );
        assert_eq!(NodePath::dm(".").unwrap().descendant_prefix(), "./");
        assert_eq!(NodePath::parse("/3").unwrap().descendant_prefix(), "/3/");
        assert_eq!(
            NodePath::parse("Device.DeviceInfo")
                .unwrap()
                .descendant_prefix(),
            "Device.DeviceInfo."
        );
        assert!(dm.contains(&NodePath::dm("./DevInfo/Mod").unwrap()));
        assert!(!dm.contains(&NodePath::dm("./DevInfoX").unwrap()));
    }

    #[test]
    fn serde_as_string() {
        let p = NodePath::dm("./FUMO/fw1/State").unwrap();
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(j, "\"./FUMO/fw1/State\"");
        assert_eq!(serde_json::from_str::<NodePath>(&j).unwrap(), p);
    }
}
