//! What a DM client executes commands against: the [`ManagementTree`] trait and an in-memory
//! implementation, [`MemoryTree`], with ACLs, formats, MIME types, `?list=` and `?prop=` Gets
//! and the device-side behaviour of FUMO and SCOMO Exec nodes.
//!
//! Rules followed (OMA-TS-DM_TND-V1_2 "TND", OMA-TS-DM_Protocol-V1_2 "DM Protocol"):
//! - ACL inheritance (TND §7.7.1): a node without an ACL value uses its parent's, up to the
//!   root, whose ACL always has a value. Add is checked on the (nearest existing) parent,
//!   every other command on the node itself. A denied command is status 425.
//! - Add of an existing node is 418; Add below a leaf is 405; missing interior nodes on the
//!   way are created (DM Protocol 1.2 §6.6.1 allows implicit creation of interior nodes).
//! - Replace or Exec of an interior node that does not support it is 405; Delete of the root
//!   is 405; Delete removes the whole subtree.
//! - `?list=Struct` / `StructData` (DM Protocol 1.2 §6.6.7 Get) return one item per node the
//!   server may Get, in pre-order, with `Format`, and values for `StructData`;
//!   `?list=TNDS` returns one `xml` item of type `application/vnd.syncml.dmtnds+xml` built
//!   with [`omnidm_tree::MgmtTree`].

use std::collections::BTreeMap;

use omnidm_syncml::{Data, StatusCode};
use omnidm_tree::{
    Acl, AclCommand, FlatEntry, Format, ListKind, MgmtTree, NodeType, NodeValue, Property,
    RtProperties, TreeUri, UriQuery,
};

/// The `server_id` the device itself uses for its own reads (package 1 DevInfo): ACLs are
/// not checked for it.
pub const DEVICE_SELF: &str = "";

/// MIME type of a TNDS document in a Get result (TNDS §7).
pub const TNDS_XML_TYPE: &str = "application/vnd.syncml.dmtnds+xml";

/// One node as a Get returns it: where it is, its format and MIME type, and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeItem {
    /// The node (for `?list=TNDS`, the URI as asked, query included).
    pub uri: String,
    /// The node's format (`node` for interior nodes).
    pub format: Format,
    /// The MIME type of a leaf, if it has one.
    pub mime: Option<String>,
    /// The value: leaf data, `/`-separated child names for an interior node, `None` for the
    /// structure-only listing `?list=Struct`.
    pub data: Option<Data>,
}

/// A Generic Alert (1226) the device must send to report the end of asynchronous work
/// (DM Protocol 1.2 Generic Alert; FUMO 1.0 and SCOMO 1.0 completion alerts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericAlert {
    /// The Exec's `Correlator`, echoed only when the server sent one.
    pub correlator: Option<String>,
    /// `Source/LocURI`: the node the alert is about (e.g. the executed FUMO node).
    pub source: Option<String>,
    /// `Meta/Type`, e.g. `org.openmobilealliance.dm.firmwareupdate.downloadandupdate`.
    pub type_: String,
    /// `Meta/Format`, e.g. `int`.
    pub format: String,
    /// `Meta/Mark` (`critical`, `informational`, …).
    pub mark: Option<String>,
    /// `Data`: for FUMO the result code.
    pub data: String,
}

/// What an Exec did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// Finished synchronously with this status.
    Done(StatusCode),
    /// Accepted for processing (202); the alert reports completion later.
    Accepted(Option<GenericAlert>),
}

/// A management tree a DM client executes server commands against. `server_id` is the
/// calling server's identifier, used for ACL checks ([`DEVICE_SELF`] bypasses them).
/// Errors are the SyncML status the server is told.
pub trait ManagementTree {
    /// Get a node, or a listing when the URI has a `?list=` / `?prop=` suffix.
    fn get(&self, server_id: &str, uri: &TreeUri) -> Result<Vec<NodeItem>, StatusCode>;
    /// Add a node: interior when `format` is `node`, else a leaf with `data`.
    fn add(
        &mut self,
        server_id: &str,
        uri: &TreeUri,
        format: Format,
        mime: Option<&str>,
        data: Option<Data>,
    ) -> Result<(), StatusCode>;
    /// Replace a leaf's value (and format/type when given), or a property with `?prop=`.
    fn replace(
        &mut self,
        server_id: &str,
        uri: &TreeUri,
        format: Option<Format>,
        mime: Option<&str>,
        data: Data,
    ) -> Result<(), StatusCode>;
    /// Delete a node and its subtree.
    fn delete(&mut self, server_id: &str, uri: &TreeUri) -> Result<(), StatusCode>;
    /// Copy `from` (with its subtree) to `to`.
    fn copy(&mut self, server_id: &str, from: &TreeUri, to: &TreeUri) -> Result<(), StatusCode>;
    /// Execute a node.
    fn exec(
        &mut self,
        server_id: &str,
        uri: &TreeUri,
        data: Option<&str>,
        correlator: Option<&str>,
    ) -> ExecOutcome;
    /// Start an all-or-nothing group (Atomic). Nested calls are not made by the engine.
    fn begin_atomic(&mut self);
    /// Keep everything done since [`begin_atomic`](Self::begin_atomic).
    fn commit_atomic(&mut self);
    /// Undo everything done since [`begin_atomic`](Self::begin_atomic); `false` when that
    /// was not possible (status 516).
    fn rollback_atomic(&mut self) -> bool;

    /// The items package 1 reports as DevInfo (DM Protocol 1.2 §8.3, package 1): every node
    /// below `./DevInfo`, leaves with values, interior nodes with their child names.
    fn dev_info(&self) -> Vec<NodeItem> {
        let Ok(uri) = TreeUri::parse("./DevInfo?list=StructData") else {
            return Vec::new();
        };
        let mut items = self.get(DEVICE_SELF, &uri).unwrap_or_default();
        items.retain(|i| i.uri != "./DevInfo");
        items
    }
}

/// One node of a [`MemoryTree`].
#[derive(Debug, Clone, PartialEq)]
struct Node {
    /// `node` for interior nodes.
    format: Format,
    /// MIME type of a leaf.
    mime: Option<String>,
    /// Leaf value as it travels (text, or bytes from WBXML).
    value: Data,
    /// Child names in creation order (interior nodes).
    children: Vec<String>,
    /// The node's own ACL; `None` inherits (TND §7.7.1).
    acl: Option<Acl>,
    /// Exec is meaningful on this node (otherwise 405).
    executable: bool,
    /// Interior node `Type` (an MO identifier such as `urn:oma:mo:oma-fumo:1.0`).
    ddf_name: Option<String>,
}

impl Node {
    fn interior() -> Node {
        Node {
            format: Format::Node,
            mime: None,
            value: Data::default(),
            children: Vec::new(),
            acl: None,
            executable: false,
            ddf_name: None,
        }
    }

    fn leaf(format: Format, mime: Option<&str>, value: Data) -> Node {
        Node {
            format,
            mime: mime.map(str::to_owned),
            ..Node::interior()
        }
        .with_value(value)
    }

    fn with_value(mut self, value: Data) -> Node {
        self.value = value;
        self
    }

    fn is_interior(&self) -> bool {
        self.format == Format::Node
    }
}

/// The identity and settings a simulated device is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProfile {
    /// `./DevInfo/DevId`, e.g. `IMEI:493005100592800`; also the SyncHdr `Source`.
    pub dev_id: String,
    /// `./DevInfo/Man`.
    pub man: String,
    /// `./DevInfo/Mod`.
    pub model: String,
    /// `./DevInfo/Lang`.
    pub lang: String,
    /// `./DevDetail/FwV`.
    pub fw_version: String,
    /// `./DevDetail/SwV`.
    pub sw_version: String,
    /// `./DevDetail/HwV`.
    pub hw_version: String,
    /// `./DevDetail/DevTyp` (`phone`, `router`, …).
    pub dev_type: String,
    /// The DM account's `ServerID` (also what ACLs name).
    pub server_id: String,
    /// The DM account's `AppAddr/<x>/Addr`: the server URL.
    pub server_uri: String,
    /// `AAuthPref` and the client `AAuthType`: `BASIC`, `DIGEST` or `HMAC`.
    pub client_auth_type: String,
    /// Client credentials (`AppAuth/<client>/AAuthName`, `AAuthSecret`).
    pub client_name: String,
    /// Client secret.
    pub client_secret: String,
    /// Server secret (`AppAuth/<server>/AAuthSecret`; `AAuthName` is the server id).
    pub server_secret: String,
}

impl Default for DeviceProfile {
    fn default() -> Self {
        DeviceProfile {
            dev_id: "IMEI:004999010640000".into(),
            man: "omnidm".into(),
            model: "SimPhone 1".into(),
            lang: "en-US".into(),
            fw_version: "1.0.0".into(),
            sw_version: "1.0.0".into(),
            hw_version: "A1".into(),
            dev_type: "phone".into(),
            server_id: "omnidm".into(),
            server_uri: "http://127.0.0.1:8080/dm".into(),
            client_auth_type: "DIGEST".into(),
            client_name: "device".into(),
            client_secret: "devicesecret".into(),
            server_secret: "serversecret".into(),
        }
    }
}

/// An in-memory management tree with ACLs; implements [`ManagementTree`].
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryTree {
    /// Every node by URI (no query). The root `.` is always present.
    nodes: BTreeMap<TreeUri, Node>,
    /// Saved state while an Atomic runs.
    saved: Option<BTreeMap<TreeUri, Node>>,
}

impl Default for MemoryTree {
    fn default() -> Self {
        MemoryTree::new()
    }
}

fn uri(s: &str) -> Option<TreeUri> {
    TreeUri::parse(s).ok()
}

fn acl(s: &str) -> Option<Acl> {
    Acl::parse(s).ok()
}

impl MemoryTree {
    /// A tree holding only the root, whose ACL is `Add=*&Get=*` (TND §7.7.1.3: the root's
    /// ACL must have a value; servers may read the tree and add new subtrees).
    pub fn new() -> MemoryTree {
        let mut root = Node::interior();
        root.acl = acl("Add=*&Get=*");
        let mut nodes = BTreeMap::new();
        nodes.insert(TreeUri::root(), root);
        MemoryTree { nodes, saved: None }
    }

    /// A realistic DM 1.2 device: `./DevInfo`, `./DevDetail`, `./DMAcc/<x>` (DM 1.2 DMAcc),
    /// `./FUMO/fw1`, `./SCOMO`, `./DiagMon` and `./Vendor/omnidm`.
    pub fn standard_device(p: &DeviceProfile) -> MemoryTree {
        let mut t = MemoryTree::new();
        let sid = p.server_id.as_str();
        // DevInfo (DM StdObj 1.2 §5.1): readable by all, changeable by none.
        t.set_interior("./DevInfo", Some("Get=*"));
        t.set_chr("./DevInfo/DevId", &p.dev_id);
        t.set_chr("./DevInfo/Man", &p.man);
        t.set_chr("./DevInfo/Mod", &p.model);
        t.set_chr("./DevInfo/DmV", "1.2");
        t.set_chr("./DevInfo/Lang", &p.lang);
        t.set_interior("./DevInfo/Ext", None);
        t.set_chr("./DevInfo/Ext/Simulator", "omnidm-sim");
        // DevDetail (DM StdObj 1.2 §5.3).
        t.set_interior("./DevDetail", Some("Get=*"));
        t.set_chr("./DevDetail/DevTyp", &p.dev_type);
        t.set_chr("./DevDetail/OEM", &p.man);
        t.set_chr("./DevDetail/FwV", &p.fw_version);
        t.set_chr("./DevDetail/SwV", &p.sw_version);
        t.set_chr("./DevDetail/HwV", &p.hw_version);
        t.set_leaf("./DevDetail/LrgObj", Format::Bool, "true");
        t.set_interior("./DevDetail/URI", None);
        t.set_leaf("./DevDetail/URI/MaxDepth", Format::Int, "32");
        t.set_leaf("./DevDetail/URI/MaxTotLen", Format::Int, "1024");
        t.set_leaf("./DevDetail/URI/MaxSegLen", Format::Int, "64");
        t.set_interior("./DevDetail/Ext", None);
        // DMAcc (DM StdObj 1.2 §5.2, DM 1.2 account: AppID w7).
        let owner = format!("Get={sid}&Replace={sid}&Add={sid}&Delete={sid}");
        t.set_interior("./DMAcc", Some(&owner));
        let a = "./DMAcc/OMNIDM";
        t.set_interior(a, None);
        t.set_chr(&format!("{a}/AppID"), "w7");
        t.set_chr(&format!("{a}/ServerID"), sid);
        t.set_chr(&format!("{a}/Name"), "omnidm server");
        t.set_chr(&format!("{a}/PrefConRef"), "");
        t.set_interior(&format!("{a}/AppAddr"), None);
        t.set_interior(&format!("{a}/AppAddr/SRV"), None);
        t.set_chr(&format!("{a}/AppAddr/SRV/Addr"), &p.server_uri);
        t.set_chr(&format!("{a}/AppAddr/SRV/AddrType"), "URI");
        t.set_chr(&format!("{a}/AAuthPref"), &p.client_auth_type);
        t.set_interior(&format!("{a}/AppAuth"), None);
        for (x, level, name, secret) in [
            ("CLCRED", "CLCRED", p.client_name.as_str(), &p.client_secret),
            ("SRVCRED", "SRVCRED", sid, &p.server_secret),
        ] {
            let b = format!("{a}/AppAuth/{x}");
            t.set_interior(&b, None);
            t.set_chr(&format!("{b}/AAuthLevel"), level);
            t.set_chr(&format!("{b}/AAuthType"), &p.client_auth_type);
            t.set_chr(&format!("{b}/AAuthName"), name);
            t.set_chr(&format!("{b}/AAuthSecret"), secret);
            t.set_leaf(&format!("{b}/AAuthData"), Format::B64, "");
        }
        t.set_interior(&format!("{a}/Ext"), None);
        // FUMO 1.0 (urn:oma:mo:oma-fumo:1.0).
        t.set_interior("./FUMO", Some("Get=*&Add=*&Replace=*&Delete=*&Exec=*"));
        t.set_ddf("./FUMO", "urn:oma:mo:oma-fumo:1.0");
        let f = "./FUMO/fw1";
        t.set_interior(f, None);
        t.set_chr(&format!("{f}/PkgName"), "");
        t.set_chr(&format!("{f}/PkgVersion"), "");
        for op in ["Download", "Update", "DownloadAndUpdate"] {
            t.set_interior(&format!("{f}/{op}"), None);
            t.set_executable(&format!("{f}/{op}"));
        }
        t.set_chr(&format!("{f}/Download/PkgURL"), "");
        t.set_leaf(&format!("{f}/Update/PkgData"), Format::Bin, "");
        t.set_chr(&format!("{f}/DownloadAndUpdate/PkgURL"), "");
        t.set_leaf(&format!("{f}/State"), Format::Int, "10");
        t.set_interior(&format!("{f}/Ext"), None);
        // SCOMO 1.0 (urn:oma:mo:oma-scomo:1.0).
        t.set_interior("./SCOMO", Some("Get=*&Add=*&Replace=*&Delete=*&Exec=*"));
        t.set_ddf("./SCOMO", "urn:oma:mo:oma-scomo:1.0");
        t.set_interior("./SCOMO/Download", None);
        t.set_interior("./SCOMO/Inventory", None);
        t.set_interior("./SCOMO/Inventory/Delivered", None);
        t.set_interior("./SCOMO/Inventory/Deployed", None);
        let d = "./SCOMO/Inventory/Deployed/browser";
        t.set_interior(d, None);
        t.set_chr(&format!("{d}/ID"), "com.example.browser");
        t.set_chr(&format!("{d}/Name"), "Browser");
        t.set_chr(&format!("{d}/Version"), "3.2.1");
        t.set_leaf(&format!("{d}/State"), Format::Int, "20");
        t.set_interior(&format!("{d}/Operations"), None);
        for op in ["Activate", "Deactivate", "Remove"] {
            t.set_interior(&format!("{d}/Operations/{op}"), None);
            t.set_executable(&format!("{d}/Operations/{op}"));
        }
        // DiagMon (urn:oma:mo:oma-diagmon:1.0): one function with its config (the DiagMon
        // root layout is not confirmed, see specs/diagmon-dlota-parlay.md §1.3).
        t.set_interior("./DiagMon", Some("Get=*&Replace=*&Exec=*"));
        t.set_ddf("./DiagMon", "urn:oma:mo:oma-diagmon:1.0");
        let g = "./DiagMon/RadioStats";
        t.set_interior(g, None);
        t.set_chr(&format!("{g}/ServerID"), sid);
        t.set_interior(&format!("{g}/DiagMonConfig"), None);
        t.set_leaf(&format!("{g}/DiagMonConfig/SampIntrvl"), Format::Int, "60");
        t.set_leaf(
            &format!("{g}/DiagMonConfig/DefDuration"),
            Format::Int,
            "3600",
        );
        t.set_interior(&format!("{g}/Data"), None);
        t.set_leaf(&format!("{g}/Data/SignalStrength"), Format::Int, "-71");
        t.set_chr(&format!("{g}/Data/Bearer"), "LTE");
        t.set_interior(&format!("{g}/Operations"), None);
        t.set_interior(&format!("{g}/Operations/Collect"), None);
        t.set_executable(&format!("{g}/Operations/Collect"));
        // A vendor subtree: open to every server, with one node only another server may read.
        t.set_interior("./Vendor", Some("Get=*"));
        t.set_interior(
            "./Vendor/omnidm",
            Some("Get=*&Add=*&Replace=*&Delete=*&Exec=*"),
        );
        t.set_chr("./Vendor/omnidm/Greeting", "hello");
        t.set_leaf("./Vendor/omnidm/Counter", Format::Int, "0");
        t.set_leaf("./Vendor/omnidm/Enabled", Format::Bool, "true");
        t.set_chr("./Vendor/omnidm/Private", "secret");
        t.set_acl("./Vendor/omnidm/Private", "Get=otherserver");
        t
    }

    // --- device-side construction (no ACL checks; paths are ours, errors ignored) ---

    fn ensure_parents(&mut self, u: &TreeUri) {
        let mut chain = Vec::new();
        let mut p = u.parent();
        while let Some(x) = p {
            if self.nodes.contains_key(&x) {
                break;
            }
            p = x.parent();
            chain.push(x);
        }
        for x in chain.into_iter().rev() {
            self.insert_node(&x, Node::interior());
        }
    }

    /// Inserts `node` at `u`, linking it into its parent's children (the parent must exist).
    fn insert_node(&mut self, u: &TreeUri, node: Node) {
        if let (Some(parent), Some(name)) = (u.parent(), u.name())
            && let Some(p) = self.nodes.get_mut(&parent)
            && !p.children.iter().any(|c| c == name)
        {
            p.children.push(name.to_owned());
        }
        self.nodes.insert(u.clone(), node);
    }

    /// Creates (or replaces) an interior node at `path`, with `acl` when given; ancestors
    /// are created as needed. Device-side: no ACL check.
    pub fn set_interior(&mut self, path: &str, acl_text: Option<&str>) {
        let Some(u) = uri(path) else { return };
        self.ensure_parents(&u);
        if !self.nodes.get(&u).is_some_and(Node::is_interior) {
            self.remove_subtree(&u);
            self.insert_node(&u, Node::interior());
        }
        if let Some(a) = acl_text {
            self.set_acl(path, a);
        }
    }

    /// Creates or overwrites a `chr` leaf (`text/plain`). Device-side: no ACL check.
    pub fn set_chr(&mut self, path: &str, value: &str) {
        self.set_leaf(path, Format::Chr, value);
    }

    /// Creates or overwrites a leaf of `format` with wire text `value`. Device-side.
    pub fn set_leaf(&mut self, path: &str, format: Format, value: &str) {
        let Some(u) = uri(path) else { return };
        self.ensure_parents(&u);
        let mime = match format {
            Format::Chr => Some("text/plain"),
            Format::Bin | Format::B64 => Some("application/octet-stream"),
            _ => None,
        };
        match self.nodes.get_mut(&u) {
            Some(n) if !n.is_interior() => {
                n.format = format;
                n.value = Data::Text(value.to_owned());
            }
            _ => {
                self.remove_subtree(&u);
                self.insert_node(&u, Node::leaf(format, mime, Data::Text(value.to_owned())));
            }
        }
    }

    /// Sets a node's ACL (empty text makes it inherit again).
    pub fn set_acl(&mut self, path: &str, acl_text: &str) {
        let a = acl(acl_text).filter(|a| !a.is_empty());
        if let Some(n) = uri(path).and_then(|u| self.nodes.get_mut(&u)) {
            n.acl = a;
        }
    }

    /// Marks a node as executable.
    pub fn set_executable(&mut self, path: &str) {
        if let Some(n) = uri(path).and_then(|u| self.nodes.get_mut(&u)) {
            n.executable = true;
        }
    }

    fn set_ddf(&mut self, path: &str, ddf: &str) {
        if let Some(n) = uri(path).and_then(|u| self.nodes.get_mut(&u)) {
            n.ddf_name = Some(ddf.to_owned());
        }
    }

    // --- inspection ---

    /// The value of a leaf as text, or the `/`-joined children of an interior node.
    pub fn value(&self, path: &str) -> Option<String> {
        let n = self.nodes.get(&uri(path)?)?;
        Some(if n.is_interior() {
            n.children.join("/")
        } else {
            n.value.as_text().map(str::to_owned).unwrap_or_default()
        })
    }

    /// The node's format.
    pub fn format(&self, path: &str) -> Option<Format> {
        Some(self.nodes.get(&uri(path)?)?.format)
    }

    /// The node's own ACL text (empty when it inherits).
    pub fn acl_text(&self, path: &str) -> Option<String> {
        let n = self.nodes.get(&uri(path)?)?;
        Some(n.acl.as_ref().map(ToString::to_string).unwrap_or_default())
    }

    /// True when a node exists at `path`.
    pub fn contains(&self, path: &str) -> bool {
        uri(path).is_some_and(|u| self.nodes.contains_key(&u))
    }

    /// Number of nodes, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: the root exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Checks the structural invariants: every non-root node has an existing interior parent
    /// that lists it exactly once, every listed child exists, leaves have no children.
    pub fn check_consistency(&self) -> Result<(), String> {
        if !self.nodes.contains_key(&TreeUri::root()) {
            return Err("root missing".into());
        }
        for (u, n) in &self.nodes {
            if !n.is_interior() && !n.children.is_empty() {
                return Err(format!("leaf {u} has children"));
            }
            for c in &n.children {
                let cu = u.join(c.as_str()).map_err(|e| e.to_string())?;
                if !self.nodes.contains_key(&cu) {
                    return Err(format!("{u} lists missing child {c}"));
                }
                if n.children.iter().filter(|x| *x == c).count() != 1 {
                    return Err(format!("{u} lists {c} twice"));
                }
            }
            if let (Some(p), Some(name)) = (u.parent(), u.name()) {
                match self.nodes.get(&p) {
                    None => return Err(format!("{u} has no parent")),
                    Some(pn) if !pn.is_interior() => return Err(format!("{u} under a leaf")),
                    Some(pn) if !pn.children.iter().any(|c| c == name) => {
                        return Err(format!("{p} does not list {name}"));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    // --- helpers ---

    /// The ACL that applies to `u`: its own, else the nearest ancestor's (TND §7.7.1).
    fn permits(&self, server_id: &str, u: &TreeUri, cmd: AclCommand) -> bool {
        if server_id == DEVICE_SELF {
            return true;
        }
        let mut cur = Some(u.without_query());
        while let Some(x) = cur {
            if let Some(a) = self.nodes.get(&x).and_then(|n| n.acl.as_ref()) {
                return a.permits(cmd, server_id);
            }
            cur = x.parent();
        }
        false
    }

    fn remove_subtree(&mut self, u: &TreeUri) {
        let doomed: Vec<TreeUri> = self
            .nodes
            .range(u.clone()..)
            .take_while(|(k, _)| k.starts_with(u))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
        if let (Some(p), Some(name)) = (u.parent(), u.name())
            && let Some(pn) = self.nodes.get_mut(&p)
        {
            pn.children.retain(|c| c != name);
        }
    }

    /// Pre-order walk of the subtree at `u` following children order.
    fn walk(&self, u: &TreeUri) -> Vec<(TreeUri, &Node)> {
        let mut out = Vec::new();
        let mut stack = vec![u.clone()];
        while let Some(x) = stack.pop() {
            let Some(n) = self.nodes.get(&x) else {
                continue;
            };
            for c in n.children.iter().rev() {
                if let Ok(cu) = x.join(c.as_str()) {
                    stack.push(cu);
                }
            }
            out.push((x, n));
        }
        out
    }

    fn item_for(u: &TreeUri, n: &Node, with_data: bool) -> NodeItem {
        NodeItem {
            uri: u.to_string(),
            format: n.format,
            mime: n.mime.clone(),
            data: if !with_data {
                None
            } else if n.is_interior() {
                Some(Data::Text(n.children.join("/")))
            } else {
                Some(n.value.clone())
            },
        }
    }

    fn prop(u: &TreeUri, n: &Node, p: Property) -> Result<NodeItem, StatusCode> {
        let text = match p {
            Property::Acl => n.acl.as_ref().map(ToString::to_string).unwrap_or_default(),
            Property::Format => n.format.to_string(),
            Property::Name => u.name().unwrap_or(".").to_owned(),
            Property::Size if !n.is_interior() => n.value.len().to_string(),
            Property::Type => n
                .mime
                .clone()
                .or_else(|| n.ddf_name.clone())
                .unwrap_or_default(),
            _ => return Err(StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED),
        };
        let format = if p == Property::Size {
            Format::Int
        } else {
            Format::Chr
        };
        Ok(NodeItem {
            uri: format!("{}?prop={}", u, p),
            format,
            mime: Some("text/plain".into()),
            data: Some(Data::Text(text)),
        })
    }

    fn tnds(&self, server_id: &str, u: &TreeUri) -> MgmtTree {
        let entries = self
            .walk(u)
            .into_iter()
            .filter(|(x, _)| !x.is_root() && self.permits(server_id, x, AclCommand::Get))
            .map(|(x, n)| FlatEntry {
                uri: x,
                props: RtProperties {
                    acl: n.acl.clone(),
                    format: Some(n.format),
                    type_: n
                        .mime
                        .clone()
                        .map(NodeType::Mime)
                        .or_else(|| n.ddf_name.clone().map(NodeType::DdfName)),
                    ..RtProperties::default()
                },
                value: (!n.is_interior()).then(|| {
                    n.value.as_text().map(str::to_owned).unwrap_or_else(|| {
                        NodeValue::B64(n.value.as_bytes().to_vec())
                            .to_wire()
                            .into_owned()
                    })
                }),
            });
        MgmtTree::from_flat("1.2", entries)
    }

    /// Checks that wire text is valid for `format` (a device rejects `abc` for an `int`).
    fn valid_value(format: Format, data: &Data) -> bool {
        match format {
            Format::Int | Format::Bool | Format::Float | Format::Date | Format::Time => data
                .as_text()
                .is_some_and(|t| t.is_empty() || NodeValue::parse(format, t).is_ok()),
            _ => true,
        }
    }

    // --- FUMO / SCOMO / DiagMon behaviour ---

    fn fumo_exec(&mut self, u: &TreeUri, op: &str, correlator: Option<&str>) -> ExecOutcome {
        let Some(root) = u.parent() else {
            return ExecOutcome::Done(StatusCode::COMMAND_FAILED);
        };
        let r = root.to_string();
        let get = |t: &Self, leaf: &str| t.value(&format!("{r}/{leaf}")).unwrap_or_default();
        // FUMO 1.0 result codes: 200 success, 410 update failed, 411 bad URL.
        let (state, result) = match op {
            "Download" if get(self, "Download/PkgURL").is_empty() => ("20", "411"),
            "Download" => ("40", "200"),
            "DownloadAndUpdate" if get(self, "DownloadAndUpdate/PkgURL").is_empty() => {
                ("20", "411")
            }
            "DownloadAndUpdate" => ("100", "200"),
            _ => {
                let st = get(self, "State");
                if st == "40" || st == "50" || !get(self, "Update/PkgData").is_empty() {
                    ("100", "200")
                } else {
                    ("80", "410")
                }
            }
        };
        self.set_leaf(&format!("{r}/State"), Format::Int, state);
        if state == "100" {
            let v = get(self, "PkgVersion");
            if !v.is_empty() {
                self.set_chr("./DevDetail/FwV", &v);
            }
        }
        ExecOutcome::Accepted(Some(GenericAlert {
            correlator: correlator.map(str::to_owned),
            source: Some(u.to_string()),
            type_: format!(
                "org.openmobilealliance.dm.firmwareupdate.{}",
                op.to_ascii_lowercase()
            ),
            format: "int".into(),
            mark: (result != "200").then(|| "critical".into()),
            data: result.into(),
        }))
    }

    fn scomo_exec(&mut self, u: &TreeUri, op: &str, correlator: Option<&str>) -> ExecOutcome {
        // u = ./SCOMO/Inventory/Deployed/<x>/Operations/<op>
        let Some(comp) = u.parent().and_then(|p| p.parent()) else {
            return ExecOutcome::Done(StatusCode::COMMAND_FAILED);
        };
        let c = comp.to_string();
        match op {
            "Activate" => self.set_leaf(&format!("{c}/State"), Format::Int, "20"),
            "Deactivate" => self.set_leaf(&format!("{c}/State"), Format::Int, "10"),
            _ => self.remove_subtree(&comp),
        }
        ExecOutcome::Accepted(Some(GenericAlert {
            correlator: correlator.map(str::to_owned),
            source: Some(u.to_string()),
            type_: "org.openmobilealliance.dm.softwarecomponent.OperationComplete".into(),
            format: "int".into(),
            mark: None,
            // SCOMO 1.0 result code 1200: successful.
            data: "1200".into(),
        }))
    }
}

impl ManagementTree for MemoryTree {
    fn get(&self, server_id: &str, u: &TreeUri) -> Result<Vec<NodeItem>, StatusCode> {
        let base = u.without_query();
        let n = self.nodes.get(&base).ok_or(StatusCode::NOT_FOUND)?;
        if !self.permits(server_id, &base, AclCommand::Get) {
            return Err(StatusCode::PERMISSION_DENIED);
        }
        match u.query() {
            None => Ok(vec![Self::item_for(&base, n, true)]),
            Some(UriQuery::Prop(p)) => Ok(vec![Self::prop(&base, n, *p)?]),
            Some(UriQuery::List(ListKind::Struct)) | Some(UriQuery::List(ListKind::StructData)) => {
                let with_data = matches!(u.query(), Some(UriQuery::List(ListKind::StructData)));
                Ok(self
                    .walk(&base)
                    .into_iter()
                    .filter(|(x, _)| self.permits(server_id, x, AclCommand::Get))
                    .map(|(x, n)| Self::item_for(&x, n, with_data && !n.is_interior()))
                    .map(|mut i| {
                        // Interior nodes in StructData carry their child list, as in package 1.
                        if with_data && i.format == Format::Node {
                            i.data = self.value(&i.uri).map(Data::Text);
                        }
                        i
                    })
                    .collect())
            }
            Some(UriQuery::List(ListKind::Tnds(_))) => Ok(vec![NodeItem {
                uri: u.to_string(),
                format: Format::Xml,
                mime: Some(TNDS_XML_TYPE.into()),
                data: Some(Data::Text(self.tnds(server_id, &base).write())),
            }]),
        }
    }

    fn add(
        &mut self,
        server_id: &str,
        u: &TreeUri,
        format: Format,
        mime: Option<&str>,
        data: Option<Data>,
    ) -> Result<(), StatusCode> {
        if u.query().is_some() {
            return Err(StatusCode::COMMAND_NOT_ALLOWED);
        }
        if self.nodes.contains_key(u) {
            return Err(StatusCode::ALREADY_EXISTS);
        }
        // Nearest existing ancestor: must be interior, and grant Add.
        let mut anc = u.parent();
        while let Some(a) = &anc {
            if self.nodes.contains_key(a) {
                break;
            }
            anc = a.parent();
        }
        let anc = anc.unwrap_or_default();
        if !self.nodes.get(&anc).is_some_and(Node::is_interior) {
            return Err(StatusCode::COMMAND_NOT_ALLOWED);
        }
        if !self.permits(server_id, &anc, AclCommand::Add) {
            return Err(StatusCode::PERMISSION_DENIED);
        }
        let node = if format == Format::Node {
            Node::interior()
        } else {
            let data = data.unwrap_or_default();
            if !Self::valid_value(format, &data) {
                return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            Node::leaf(format, mime, data)
        };
        self.ensure_parents(u);
        self.insert_node(u, node);
        Ok(())
    }

    fn replace(
        &mut self,
        server_id: &str,
        u: &TreeUri,
        format: Option<Format>,
        mime: Option<&str>,
        data: Data,
    ) -> Result<(), StatusCode> {
        let base = u.without_query();
        if !self.nodes.contains_key(&base) {
            return Err(StatusCode::NOT_FOUND);
        }
        if !self.permits(server_id, &base, AclCommand::Replace) {
            return Err(StatusCode::PERMISSION_DENIED);
        }
        let Some(n) = self.nodes.get_mut(&base) else {
            return Err(StatusCode::NOT_FOUND);
        };
        match u.query() {
            Some(UriQuery::Prop(Property::Acl)) => {
                let a = Acl::parse(data.as_text().unwrap_or_default())
                    .map_err(|_| StatusCode::BAD_REQUEST)?;
                n.acl = (!a.is_empty()).then_some(a);
                Ok(())
            }
            Some(_) => Err(StatusCode::COMMAND_NOT_ALLOWED),
            None if n.is_interior() => Err(StatusCode::COMMAND_NOT_ALLOWED),
            None => {
                let f = match format {
                    Some(Format::Node) => return Err(StatusCode::COMMAND_NOT_ALLOWED),
                    Some(f) => f,
                    None => n.format,
                };
                if !Self::valid_value(f, &data) {
                    return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
                }
                n.format = f;
                if let Some(m) = mime {
                    n.mime = Some(m.to_owned());
                }
                n.value = data;
                Ok(())
            }
        }
    }

    fn delete(&mut self, server_id: &str, u: &TreeUri) -> Result<(), StatusCode> {
        if u.query().is_some() || u.is_root() {
            return Err(StatusCode::COMMAND_NOT_ALLOWED);
        }
        if !self.nodes.contains_key(u) {
            return Err(StatusCode::NOT_FOUND);
        }
        if !self.permits(server_id, u, AclCommand::Delete) {
            return Err(StatusCode::PERMISSION_DENIED);
        }
        self.remove_subtree(u);
        Ok(())
    }

    fn copy(&mut self, server_id: &str, from: &TreeUri, to: &TreeUri) -> Result<(), StatusCode> {
        if from.query().is_some() || to.query().is_some() {
            return Err(StatusCode::COMMAND_NOT_ALLOWED);
        }
        if !self.nodes.contains_key(from) {
            return Err(StatusCode::NOT_FOUND);
        }
        if to.starts_with(from) {
            return Err(StatusCode::COMMAND_NOT_ALLOWED);
        }
        if !self.permits(server_id, from, AclCommand::Get) {
            return Err(StatusCode::PERMISSION_DENIED);
        }
        let src: Vec<(TreeUri, Node)> = self
            .walk(from)
            .into_iter()
            .map(|(u, n)| (u, n.clone()))
            .collect();
        if let Some(existing) = self.nodes.get(to) {
            // DM Protocol 1.2 Copy: an existing leaf target gets the source value (Replace).
            let (Some((_, sn)), false) = (src.first(), existing.is_interior()) else {
                return Err(StatusCode::ALREADY_EXISTS);
            };
            if sn.is_interior() {
                return Err(StatusCode::COMMAND_NOT_ALLOWED);
            }
            let (f, m, v) = (sn.format, sn.mime.clone(), sn.value.clone());
            return self.replace(server_id, to, Some(f), m.as_deref(), v);
        }
        let Some((_, top)) = src.first() else {
            return Err(StatusCode::NOT_FOUND);
        };
        let data = (!top.is_interior()).then(|| top.value.clone());
        self.add(server_id, to, top.format, top.mime.clone().as_deref(), data)?;
        for (u, n) in src.iter().skip(1) {
            let rel: Vec<&str> = u.segments().skip(from.depth()).collect();
            let mut target = to.clone();
            for s in rel {
                target = target.join(s).map_err(|_| StatusCode::URI_TOO_LONG)?;
            }
            let mut copy = n.clone();
            copy.children.clear();
            self.insert_node(&target, copy);
        }
        Ok(())
    }

    fn exec(
        &mut self,
        server_id: &str,
        u: &TreeUri,
        _data: Option<&str>,
        correlator: Option<&str>,
    ) -> ExecOutcome {
        let Some(n) = self.nodes.get(u) else {
            return ExecOutcome::Done(StatusCode::NOT_FOUND);
        };
        if !self.permits(server_id, u, AclCommand::Exec) {
            return ExecOutcome::Done(StatusCode::PERMISSION_DENIED);
        }
        if !n.executable {
            return ExecOutcome::Done(StatusCode::COMMAND_NOT_ALLOWED);
        }
        let segs: Vec<&str> = u.segments().collect();
        match segs.as_slice() {
            [
                "FUMO",
                _,
                op @ ("Download" | "Update" | "DownloadAndUpdate"),
            ] => {
                let op = (*op).to_owned();
                self.fumo_exec(u, &op, correlator)
            }
            ["SCOMO", "Inventory", "Deployed", _, "Operations", op] => {
                let op = (*op).to_owned();
                self.scomo_exec(u, &op, correlator)
            }
            ["DiagMon", _, "Operations", "Collect"] => ExecOutcome::Accepted(Some(GenericAlert {
                correlator: correlator.map(str::to_owned),
                source: u.parent().and_then(|p| p.parent()).map(|p| p.to_string()),
                type_: "urn:oma:at:diagmon:1.0:CollectedSimpleDataReport".into(),
                format: "chr".into(),
                mark: None,
                data: "SignalStrength=-71&Bearer=LTE".into(),
            })),
            _ => ExecOutcome::Done(StatusCode::OK),
        }
    }

    fn begin_atomic(&mut self) {
        self.saved = Some(self.nodes.clone());
    }

    fn commit_atomic(&mut self) {
        self.saved = None;
    }

    fn rollback_atomic(&mut self) -> bool {
        match self.saved.take() {
            Some(s) => {
                self.nodes = s;
                true
            }
            None => false,
        }
    }
}
