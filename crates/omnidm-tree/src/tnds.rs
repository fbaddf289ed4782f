//! TNDS: OMA DM Tree and Description Serialization 1.2 (`<MgmtTree>` XML).
//!
//! The reader is liberal (TNDS §9.2 lists what a decoder MUST understand): it ignores
//! namespaces and prefixes (`xmlns="syncml:dmddf1.2"`, `dm:Node`), accepts elements in
//! any order, accepts `<Format>chr</Format>` as well as `<Format><chr/></Format>` and a
//! bare `<Type>text/plain</Type>`, and skips unknown elements, recording each one as a
//! [`TndsWarning`]. It is bounded by [`TndsLimits`] and never recurses, so hostile
//! input can neither exhaust the stack nor run away with memory.
//!
//! The writer produces stable, byte-exact output: the same [`MgmtTree`] always gives
//! the same bytes, and `read(write(t)) == t` for every tree whose strings are valid
//! XML character data.

use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::acl::Acl;
use crate::error::{TndsError, TndsLimit, UriError};
use crate::format::Format;
use crate::uri::{Property, TreeUri, UriLimits};

/// The `Type` property (TND §7.7.7): a MIME type for leaves, a Management Object
/// identifier (DDF name) for interior nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeType {
    /// `<Type><MIME>text/plain</MIME></Type>`
    Mime(String),
    /// `<Type><DDFName>urn:oma:mo:oma-fumo:1.0</DDFName></Type>`
    DdfName(String),
}

impl NodeType {
    /// The type text, whichever kind it is.
    pub fn as_str(&self) -> &str {
        match self {
            NodeType::Mime(s) | NodeType::DdfName(s) => s,
        }
    }
}

/// Run-time properties of a node (TND §7.7; TNDS §9.2.1 lists those valid in a file).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RtProperties {
    /// `ACL`; `Some(empty)` for an explicitly empty ACL.
    pub acl: Option<Acl>,
    /// `Format`.
    pub format: Option<Format>,
    /// `Name` (normally equal to the node name).
    pub name: Option<String>,
    /// `Size`: value size in bytes, a 32-bit unsigned integer (TND §7.7.4).
    pub size: Option<u32>,
    /// `Title`.
    pub title: Option<String>,
    /// `TStamp`, kept as sent.
    pub tstamp: Option<String>,
    /// `Type`.
    pub type_: Option<NodeType>,
    /// `VerNo`, kept as sent.
    pub ver_no: Option<String>,
}

impl RtProperties {
    /// True if no property is set (such a node is written without `<RTProperties>`).
    pub fn is_empty(&self) -> bool {
        *self == RtProperties::default()
    }
}

/// One `<Node>` of a TNDS document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TndsNode {
    /// `NodeName`: the unescaped node name.
    pub name: String,
    /// `Path`: URI of the parent, normally only on top-level nodes.
    pub path: Option<String>,
    /// `RTProperties`.
    pub props: RtProperties,
    /// `Value`, verbatim (for `b64` still encoded); `None` when absent.
    pub value: Option<String>,
    /// Child `<Node>`s in document order.
    pub children: Vec<TndsNode>,
}

/// A `<MgmtTree>` document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MgmtTree {
    /// `VerDTD` (normally `1.2`); empty if the document had none.
    pub ver_dtd: String,
    /// `Man`: device manufacturer.
    pub man: Option<String>,
    /// `Mod`: device model.
    pub mod_: Option<String>,
    /// Top-level nodes.
    pub nodes: Vec<TndsNode>,
}

/// Bounds on the work the reader will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TndsLimits {
    /// Maximum input size in bytes.
    pub max_input_bytes: usize,
    /// Maximum XML element nesting depth (all elements, not only `<Node>`).
    pub max_depth: usize,
    /// Maximum number of `<Node>` elements.
    pub max_nodes: usize,
}

impl Default for TndsLimits {
    fn default() -> Self {
        TndsLimits {
            max_input_bytes: 16 * 1024 * 1024,
            max_depth: 128,
            max_nodes: 250_000,
        }
    }
}

/// Something the reader tolerated. Offsets are byte positions in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TndsWarning {
    /// An element the reader does not know, skipped with its content.
    UnknownElement {
        /// Local name of the element.
        name: String,
        /// Local name of its parent element (empty at document level).
        parent: &'static str,
        /// Where it ended.
        offset: u64,
    },
    /// An element that should appear once appeared again; the last one wins.
    DuplicateElement {
        /// Local name of the element.
        name: &'static str,
        /// Where it ended.
        offset: u64,
    },
    /// A property whose text could not be interpreted; the property is left unset.
    InvalidProperty {
        /// Which property.
        property: Property,
        /// The text found.
        value: String,
        /// Where it ended.
        offset: u64,
    },
    /// A `<Node>` without a (non-empty) `<NodeName>`.
    MissingNodeName {
        /// Where the node ended.
        offset: u64,
    },
    /// The document has no `<VerDTD>`.
    MissingVerDtd,
    /// An entity reference other than the five XML ones, kept literally.
    UnknownEntity {
        /// The entity name.
        name: String,
        /// Where it was.
        offset: u64,
    },
}

/// The result of reading a TNDS document: the tree and what was tolerated.
#[derive(Debug, Clone, PartialEq)]
pub struct TndsRead {
    /// The tree.
    pub tree: MgmtTree,
    /// Everything skipped or repaired, in document order.
    pub warnings: Vec<TndsWarning>,
}

// ---------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------

/// Text-only elements and where their content goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextField {
    VerDtd,
    Man,
    Mod,
    NodeName,
    Path,
    Value,
    Acl,
    Name,
    Size,
    Title,
    TStamp,
    VerNo,
    Mime,
    DdfName,
}

impl TextField {
    fn element(self) -> &'static str {
        match self {
            TextField::VerDtd => "VerDTD",
            TextField::Man => "Man",
            TextField::Mod => "Mod",
            TextField::NodeName => "NodeName",
            TextField::Path => "Path",
            TextField::Value => "Value",
            TextField::Acl => "ACL",
            TextField::Name => "Name",
            TextField::Size => "Size",
            TextField::Title => "Title",
            TextField::TStamp => "TStamp",
            TextField::VerNo => "VerNo",
            TextField::Mime => "MIME",
            TextField::DdfName => "DDFName",
        }
    }
}

/// One open element on the reader's explicit stack.
// The stack is only as deep as the document; boxing `Node` would cost an
// allocation per node for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Frame {
    MgmtTree,
    Node(TndsNode),
    RtProps,
    /// Inside `<Format>`: waiting for `<chr/>` or text.
    Format,
    /// Inside `<Type>`: waiting for `<MIME>`/`<DDFName>` or text.
    Type,
    Text(TextField),
    /// Inside an unknown element (or a known one's unexpected content).
    Skip,
}

impl Frame {
    fn element(&self) -> &'static str {
        match self {
            Frame::MgmtTree => "MgmtTree",
            Frame::Node(_) => "Node",
            Frame::RtProps => "RTProperties",
            Frame::Format => "Format",
            Frame::Type => "Type",
            Frame::Text(f) => f.element(),
            Frame::Skip => "",
        }
    }
}

struct Parser {
    limits: TndsLimits,
    stack: Vec<Frame>,
    tree: MgmtTree,
    saw_tree: bool,
    saw_ver_dtd: bool,
    node_count: usize,
    /// Character data of the innermost text-collecting element.
    text: String,
    warnings: Vec<TndsWarning>,
    offset: u64,
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    name: &'static str,
    offset: u64,
    warnings: &mut Vec<TndsWarning>,
) {
    if slot.is_some() {
        warnings.push(TndsWarning::DuplicateElement { name, offset });
    }
    *slot = Some(value);
}

/// `s` without surrounding white space, reusing the allocation when nothing changes.
fn trimmed(s: String) -> String {
    let t = s.trim();
    if t.len() == s.len() { s } else { t.to_owned() }
}

impl Parser {
    fn nearest_node(&mut self) -> Option<&mut TndsNode> {
        self.stack.iter_mut().rev().find_map(|f| match f {
            Frame::Node(n) => Some(n),
            _ => None,
        })
    }

    fn unknown(&mut self, name: &str, parent: &'static str) -> Frame {
        self.warnings.push(TndsWarning::UnknownElement {
            name: name.to_owned(),
            parent,
            offset: self.offset,
        });
        Frame::Skip
    }

    fn start(&mut self, name: &str) -> Result<(), TndsError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(TndsError::LimitExceeded {
                limit: TndsLimit::Depth,
                max: self.limits.max_depth,
            });
        }
        let frame = match self.stack.last() {
            None => {
                if self.saw_tree {
                    self.unknown(name, "")
                } else if name == "MgmtTree" {
                    self.saw_tree = true;
                    Frame::MgmtTree
                } else {
                    return Err(TndsError::UnexpectedRoot(name.to_owned()));
                }
            }
            Some(Frame::MgmtTree) => match name {
                "VerDTD" => Frame::Text(TextField::VerDtd),
                "Man" => Frame::Text(TextField::Man),
                "Mod" => Frame::Text(TextField::Mod),
                "Node" => self.new_node()?,
                _ => self.unknown(name, "MgmtTree"),
            },
            Some(Frame::Node(_)) => match name {
                "NodeName" => Frame::Text(TextField::NodeName),
                "Path" => Frame::Text(TextField::Path),
                "Value" => Frame::Text(TextField::Value),
                "RTProperties" => Frame::RtProps,
                "Node" => self.new_node()?,
                _ => self.unknown(name, "Node"),
            },
            Some(Frame::RtProps) => match name {
                "ACL" => Frame::Text(TextField::Acl),
                "Format" => Frame::Format,
                "Name" => Frame::Text(TextField::Name),
                "Size" => Frame::Text(TextField::Size),
                "Title" => Frame::Text(TextField::Title),
                "TStamp" => Frame::Text(TextField::TStamp),
                "Type" => Frame::Type,
                "VerNo" => Frame::Text(TextField::VerNo),
                _ => self.unknown(name, "RTProperties"),
            },
            Some(Frame::Format) => {
                // `<Format><chr/></Format>`: the element name is the format.
                let offset = self.offset;
                match name.parse::<Format>() {
                    Ok(f) => {
                        let warnings = &mut self.warnings;
                        if let Some(node) = self.stack.iter_mut().rev().find_map(|fr| match fr {
                            Frame::Node(n) => Some(n),
                            _ => None,
                        }) {
                            set_once(&mut node.props.format, f, "Format", offset, warnings);
                        }
                    }
                    Err(_) => self.warnings.push(TndsWarning::InvalidProperty {
                        property: Property::Format,
                        value: name.to_owned(),
                        offset,
                    }),
                }
                Frame::Skip
            }
            Some(Frame::Type) => match name {
                "MIME" => Frame::Text(TextField::Mime),
                "DDFName" => Frame::Text(TextField::DdfName),
                _ => self.unknown(name, "Type"),
            },
            Some(f @ Frame::Text(_)) => {
                let parent = f.element();
                self.unknown(name, parent)
            }
            Some(Frame::Skip) => Frame::Skip,
        };
        if matches!(frame, Frame::Text(_) | Frame::Format | Frame::Type) {
            self.text.clear();
        }
        self.stack.push(frame);
        Ok(())
    }

    fn new_node(&mut self) -> Result<Frame, TndsError> {
        self.node_count += 1;
        if self.node_count > self.limits.max_nodes {
            return Err(TndsError::LimitExceeded {
                limit: TndsLimit::Nodes,
                max: self.limits.max_nodes,
            });
        }
        Ok(Frame::Node(TndsNode::default()))
    }

    fn collecting(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Text(_) | Frame::Format | Frame::Type)
        )
    }

    fn end(&mut self) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let offset = self.offset;
        match frame {
            Frame::Text(field) => {
                let text = std::mem::take(&mut self.text);
                self.finish_text(field, text, offset);
            }
            Frame::Format => {
                let text = std::mem::take(&mut self.text);
                let t = text.trim();
                if !t.is_empty() {
                    match t.parse::<Format>() {
                        Ok(f) => {
                            if let Some(node) = self.nearest_node() {
                                node.props.format = Some(f);
                            }
                        }
                        Err(_) => self.warnings.push(TndsWarning::InvalidProperty {
                            property: Property::Format,
                            value: t.to_owned(),
                            offset,
                        }),
                    }
                }
            }
            Frame::Type => {
                let text = trimmed(std::mem::take(&mut self.text));
                if !text.is_empty() {
                    // Liberal: `<Type>text/plain</Type>` without `<MIME>`.
                    if let Some(node) = self.nearest_node() {
                        node.props.type_ = Some(NodeType::Mime(text));
                    }
                }
            }
            Frame::Node(node) => {
                if node.name.is_empty() {
                    self.warnings.push(TndsWarning::MissingNodeName { offset });
                }
                match self.nearest_node() {
                    Some(parent) => parent.children.push(node),
                    None => self.tree.nodes.push(node),
                }
            }
            Frame::MgmtTree | Frame::RtProps | Frame::Skip => {}
        }
    }

    fn finish_text(&mut self, field: TextField, text: String, offset: u64) {
        let warnings = &mut self.warnings;
        let name = field.element();
        match field {
            TextField::VerDtd => {
                if self.saw_ver_dtd {
                    warnings.push(TndsWarning::DuplicateElement { name, offset });
                }
                self.saw_ver_dtd = true;
                self.tree.ver_dtd = trimmed(text);
            }
            TextField::Man => set_once(&mut self.tree.man, trimmed(text), name, offset, warnings),
            TextField::Mod => set_once(&mut self.tree.mod_, trimmed(text), name, offset, warnings),
            _ => {
                let Some(node) = self.stack.iter_mut().rev().find_map(|f| match f {
                    Frame::Node(n) => Some(n),
                    _ => None,
                }) else {
                    return;
                };
                let props = &mut node.props;
                match field {
                    TextField::NodeName => {
                        if !node.name.is_empty() {
                            warnings.push(TndsWarning::DuplicateElement { name, offset });
                        }
                        node.name = trimmed(text);
                    }
                    TextField::Path => {
                        set_once(&mut node.path, trimmed(text), name, offset, warnings)
                    }
                    // Values are significant to the byte: never trimmed.
                    TextField::Value => set_once(&mut node.value, text, name, offset, warnings),
                    TextField::Acl => match Acl::parse(&text) {
                        Ok(acl) => set_once(&mut props.acl, acl, name, offset, warnings),
                        Err(_) => warnings.push(TndsWarning::InvalidProperty {
                            property: Property::Acl,
                            value: text,
                            offset,
                        }),
                    },
                    TextField::Size => match text.trim().parse::<u32>() {
                        Ok(n) => set_once(&mut props.size, n, name, offset, warnings),
                        Err(_) => warnings.push(TndsWarning::InvalidProperty {
                            property: Property::Size,
                            value: text,
                            offset,
                        }),
                    },
                    TextField::Name => {
                        set_once(&mut props.name, trimmed(text), name, offset, warnings)
                    }
                    TextField::Title => set_once(&mut props.title, text, name, offset, warnings),
                    TextField::TStamp => {
                        set_once(&mut props.tstamp, trimmed(text), name, offset, warnings)
                    }
                    TextField::VerNo => {
                        set_once(&mut props.ver_no, trimmed(text), name, offset, warnings)
                    }
                    TextField::Mime => set_once(
                        &mut props.type_,
                        NodeType::Mime(trimmed(text)),
                        "Type",
                        offset,
                        warnings,
                    ),
                    TextField::DdfName => set_once(
                        &mut props.type_,
                        NodeType::DdfName(trimmed(text)),
                        "Type",
                        offset,
                        warnings,
                    ),
                    TextField::VerDtd | TextField::Man | TextField::Mod => {}
                }
            }
        }
    }

    fn general_ref(&mut self, name: &str, resolved: Option<char>) {
        if !self.collecting() {
            return;
        }
        if let Some(c) = resolved {
            self.text.push(c);
            return;
        }
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => {
                self.warnings.push(TndsWarning::UnknownEntity {
                    name: name.to_owned(),
                    offset: self.offset,
                });
                self.text.push('&');
                self.text.push_str(name);
                self.text.push(';');
                return;
            }
        };
        self.text.push(c);
    }
}

impl MgmtTree {
    /// Reads a TNDS document with [`TndsLimits::default`].
    pub fn read(input: &[u8]) -> Result<TndsRead, TndsError> {
        MgmtTree::read_with(input, &TndsLimits::default())
    }

    /// Reads a TNDS document (UTF-8 XML) under `limits`.
    pub fn read_with(input: &[u8], limits: &TndsLimits) -> Result<TndsRead, TndsError> {
        if input.len() > limits.max_input_bytes {
            return Err(TndsError::LimitExceeded {
                limit: TndsLimit::InputBytes,
                max: limits.max_input_bytes,
            });
        }
        let text = std::str::from_utf8(input).map_err(|e| TndsError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = Reader::from_str(text);
        let mut p = Parser {
            limits: *limits,
            stack: Vec::with_capacity(16),
            tree: MgmtTree::default(),
            saw_tree: false,
            saw_ver_dtd: false,
            node_count: 0,
            text: String::new(),
            warnings: Vec::new(),
            offset: 0,
        };
        loop {
            let event = reader.read_event().map_err(|e| TndsError::Xml {
                offset: reader.error_position(),
                message: e.to_string(),
            })?;
            p.offset = reader.buffer_position();
            match event {
                Event::Start(e) => p.start(e.local_name().as_ref())?,
                Event::Empty(e) => {
                    p.start(e.local_name().as_ref())?;
                    p.end();
                }
                Event::End(_) => p.end(),
                Event::Text(t) => {
                    if p.collecting() {
                        p.text.push_str(&t.xml10_content());
                    }
                }
                Event::CData(t) => {
                    if p.collecting() {
                        p.text.push_str(&t.xml10_content());
                    }
                }
                Event::GeneralRef(r) => {
                    // An invalid character reference (`&#0;`) becomes U+FFFD.
                    let resolved = if r.is_char_ref() {
                        Some(r.resolve_char_ref().ok().flatten().unwrap_or('\u{fffd}'))
                    } else {
                        None
                    };
                    p.general_ref(&r, resolved);
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if let Some(open) = p.stack.last() {
            return Err(TndsError::Xml {
                offset: p.offset,
                message: format!("unexpected end of input inside <{}>", open.element()),
            });
        }
        if !p.saw_tree {
            return Err(TndsError::MissingMgmtTree);
        }
        if !p.saw_ver_dtd {
            p.warnings.insert(0, TndsWarning::MissingVerDtd);
        }
        Ok(TndsRead {
            tree: p.tree,
            warnings: p.warnings,
        })
    }
}

// ---------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------

/// Appends `s` as XML character data. `\r` and other control characters become
/// character references so that they survive XML end-of-line normalization; NUL,
/// which XML cannot carry at all, becomes U+FFFD (as the reader does for `&#0;`).
fn push_escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\t' | b'\n' => continue,
            0 => "\u{fffd}",
            1..=0x1f => {
                out.push_str(&s[start..i]);
                out.push_str("&#");
                out.push_str(&b.to_string());
                out.push(';');
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(esc);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

const SPACES: &str = "                                                                ";

fn indent(out: &mut String, level: usize) {
    let mut n = level * 2;
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push_str(&SPACES[..k]);
        n -= k;
    }
}

fn text_element(out: &mut String, level: usize, name: &str, value: &str) {
    indent(out, level);
    out.push('<');
    out.push_str(name);
    out.push('>');
    push_escaped(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

fn write_props(out: &mut String, level: usize, p: &RtProperties) {
    indent(out, level);
    out.push_str("<RTProperties>\n");
    let l = level + 1;
    if let Some(acl) = &p.acl {
        text_element(out, l, "ACL", &acl.to_string());
    }
    if let Some(f) = p.format {
        indent(out, l);
        out.push_str("<Format><");
        out.push_str(f.as_str());
        out.push_str("/></Format>\n");
    }
    if let Some(v) = &p.name {
        text_element(out, l, "Name", v);
    }
    if let Some(v) = p.size {
        text_element(out, l, "Size", &v.to_string());
    }
    if let Some(v) = &p.title {
        text_element(out, l, "Title", v);
    }
    if let Some(v) = &p.tstamp {
        text_element(out, l, "TStamp", v);
    }
    if let Some(t) = &p.type_ {
        let (tag, v) = match t {
            NodeType::Mime(v) => ("MIME", v),
            NodeType::DdfName(v) => ("DDFName", v),
        };
        indent(out, l);
        out.push_str("<Type>");
        out.push('<');
        out.push_str(tag);
        out.push('>');
        push_escaped(out, v);
        out.push_str("</");
        out.push_str(tag);
        out.push_str("></Type>\n");
    }
    if let Some(v) = &p.ver_no {
        text_element(out, l, "VerNo", v);
    }
    indent(out, level);
    out.push_str("</RTProperties>\n");
}

/// Writes one node's own elements (not its children) and opens it.
fn open_node(out: &mut String, level: usize, n: &TndsNode) {
    indent(out, level);
    out.push_str("<Node>\n");
    let l = level + 1;
    text_element(out, l, "NodeName", &n.name);
    if let Some(p) = &n.path {
        text_element(out, l, "Path", p);
    }
    if !n.props.is_empty() {
        write_props(out, l, &n.props);
    }
    if let Some(v) = &n.value {
        text_element(out, l, "Value", v);
    }
}

impl MgmtTree {
    /// The document as XML text (no XML declaration, two-space indentation).
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(256 + self.nodes.len() * 128);
        self.write_into(&mut out);
        out
    }

    /// Appends the document to `out`. Iterative: any nesting depth is safe.
    pub fn write_into(&self, out: &mut String) {
        out.push_str("<MgmtTree xmlns=\"syncml:dmddf1.2\">\n");
        text_element(out, 1, "VerDTD", &self.ver_dtd);
        if let Some(v) = &self.man {
            text_element(out, 1, "Man", v);
        }
        if let Some(v) = &self.mod_ {
            text_element(out, 1, "Mod", v);
        }
        // Stack of (children still to write, nesting level of those children).
        let mut stack: Vec<(std::slice::Iter<'_, TndsNode>, usize)> = vec![(self.nodes.iter(), 1)];
        while let Some((iter, level)) = stack.last_mut() {
            let level = *level;
            match iter.next() {
                Some(node) => {
                    open_node(out, level, node);
                    stack.push((node.children.iter(), level + 1));
                }
                None => {
                    stack.pop();
                    if !stack.is_empty() {
                        indent(out, level - 1);
                        out.push_str("</Node>\n");
                    }
                }
            }
        }
        out.push_str("</MgmtTree>\n");
    }
}

// ---------------------------------------------------------------------------------
// Flat view
// ---------------------------------------------------------------------------------

/// One node of a [`MgmtTree`] with its full URI, as produced by [`MgmtTree::flatten`].
#[derive(Debug, Clone, PartialEq)]
pub struct FlatNode<'a> {
    /// The node's URI.
    pub uri: TreeUri,
    /// The effective format: the `Format` property, else `node` for a node with
    /// children, else `chr` (the SyncML default format).
    pub format: Format,
    /// The value text, verbatim.
    pub value: Option<&'a str>,
    /// All run-time properties.
    pub props: &'a RtProperties,
}

/// Pre-order iterator over a tree's nodes; see [`MgmtTree::flatten`].
#[derive(Debug)]
pub struct Flatten<'a> {
    limits: UriLimits,
    /// Nodes still to visit with the URI of their parent (reverse order).
    stack: Vec<(&'a TndsNode, TreeUri)>,
}

fn node_uri(node: &TndsNode, parent: &TreeUri, limits: &UriLimits) -> Result<TreeUri, UriError> {
    let base = match &node.path {
        Some(p) => TreeUri::parse_with(p, limits)?.without_query(),
        None => parent.clone(),
    };
    if node.name.is_empty() {
        Ok(base)
    } else {
        base.join_with(node.name.as_str(), limits)
    }
}

impl<'a> Iterator for Flatten<'a> {
    type Item = Result<FlatNode<'a>, UriError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (node, parent) = self.stack.pop()?;
        let uri = match node_uri(node, &parent, &self.limits) {
            Ok(u) => u,
            // The subtree cannot be addressed; report it once and skip it.
            Err(e) => return Some(Err(e)),
        };
        for child in node.children.iter().rev() {
            self.stack.push((child, uri.clone()));
        }
        let format = node.props.format.unwrap_or(if node.children.is_empty() {
            Format::Chr
        } else {
            Format::Node
        });
        Some(Ok(FlatNode {
            uri,
            format,
            value: node.value.as_deref(),
            props: &node.props,
        }))
    }
}

/// One row for [`MgmtTree::from_flat`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlatEntry {
    /// Where the node lives.
    pub uri: TreeUri,
    /// Its run-time properties.
    pub props: RtProperties,
    /// Its value text.
    pub value: Option<String>,
}

impl MgmtTree {
    /// Every node in pre-order with its URI, under [`UriLimits::default`].
    ///
    /// A top-level node's URI is its `Path` (default `.`) joined with its name; a
    /// nested node's is its parent's URI joined with its name (or its own `Path`, if
    /// it has one). A node whose URI is invalid yields one `Err` and its subtree is
    /// skipped.
    pub fn flatten(&self) -> Flatten<'_> {
        self.flatten_with(&UriLimits::default())
    }

    /// Like [`flatten`](Self::flatten) with explicit URI limits.
    pub fn flatten_with(&self, limits: &UriLimits) -> Flatten<'_> {
        Flatten {
            limits: *limits,
            stack: self
                .nodes
                .iter()
                .rev()
                .map(|n| (n, TreeUri::root()))
                .collect(),
        }
    }

    /// Builds a tree from flat rows (in any order). Missing ancestors are created
    /// without properties; a repeated URI replaces the earlier row's properties and
    /// value; rows for the root `.` are ignored (the root is not a `<Node>`). Children
    /// keep first-seen order; top-level nodes get `Path` `.`.
    pub fn from_flat<I>(ver_dtd: &str, entries: I) -> MgmtTree
    where
        I: IntoIterator<Item = FlatEntry>,
    {
        // Arena: a node's index is always greater than its parent's.
        struct Slot {
            node: TndsNode,
            children: Vec<usize>,
        }
        let mut arena: Vec<Slot> = Vec::new();
        let mut top: Vec<usize> = Vec::new();
        let mut index: HashMap<(usize, String), usize> = HashMap::new();
        const ROOT: usize = usize::MAX;
        for entry in entries {
            let mut parent = ROOT;
            for seg in entry.uri.segments() {
                let key = (parent, seg.to_owned());
                let idx = match index.get(&key) {
                    Some(&i) => i,
                    None => {
                        let i = arena.len();
                        arena.push(Slot {
                            node: TndsNode {
                                name: seg.to_owned(),
                                path: (parent == ROOT).then(|| ".".to_owned()),
                                ..TndsNode::default()
                            },
                            children: Vec::new(),
                        });
                        match arena.get_mut(parent) {
                            Some(p) => p.children.push(i),
                            None => top.push(i),
                        }
                        index.insert(key, i);
                        i
                    }
                };
                parent = idx;
            }
            if let Some(slot) = arena.get_mut(parent) {
                slot.node.props = entry.props;
                slot.node.value = entry.value;
            }
        }
        // Assemble bottom-up: children have larger indices, so they are finished first.
        let mut built: Vec<Option<TndsNode>> = Vec::with_capacity(arena.len());
        let mut child_lists: Vec<Vec<usize>> = Vec::with_capacity(arena.len());
        for slot in arena {
            built.push(Some(slot.node));
            child_lists.push(slot.children);
        }
        for i in (0..built.len()).rev() {
            let kids: Vec<TndsNode> = child_lists
                .get(i)
                .map(|c| {
                    c.iter()
                        .filter_map(|&k| built.get_mut(k).and_then(Option::take))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Some(n)) = built.get_mut(i) {
                n.children = kids;
            }
        }
        MgmtTree {
            ver_dtd: ver_dtd.to_owned(),
            man: None,
            mod_: None,
            nodes: top
                .into_iter()
                .filter_map(|i| built.get_mut(i).and_then(Option::take))
                .collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::acl::AclCommand;

    fn read(s: &str) -> TndsRead {
        MgmtTree::read(s.as_bytes()).unwrap()
    }

    #[test]
    fn minimal_devinfo() {
        let r = read(
            "<MgmtTree><VerDTD>1.2</VerDTD><Node><NodeName>DevInfo</NodeName>\
             <Node><NodeName>Mod</NodeName><RTProperties><Format><chr/></Format>\
             </RTProperties><Value>AM-200</Value></Node></Node></MgmtTree>",
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let flat: Vec<_> = r.tree.flatten().map(Result::unwrap).collect();
        assert_eq!(flat.len(), 2);
        assert_eq!(flat[0].uri.to_string(), "./DevInfo");
        assert_eq!(flat[0].format, Format::Node);
        assert_eq!(flat[1].uri.to_string(), "./DevInfo/Mod");
        assert_eq!(flat[1].format, Format::Chr);
        assert_eq!(flat[1].value, Some("AM-200"));
    }

    #[test]
    fn namespaces_prefixes_and_liberal_forms() {
        let r = read(
            "<?xml version='1.0'?>\n<!DOCTYPE MgmtTree>\
             <dm:MgmtTree xmlns:dm='syncml:dmddf1.2'><dm:VerDTD>1.2</dm:VerDTD>\
             <dm:Node><dm:NodeName> FUMO </dm:NodeName><dm:Path>./Vendor/</dm:Path>\
             <dm:RTProperties><dm:Format> node </dm:Format>\
             <dm:Type>text/plain</dm:Type><dm:Size>12</dm:Size></dm:RTProperties>\
             <dm:Value><![CDATA[<a>&</a>]]> &amp;&#65;&#x42;</dm:Value>\
             </dm:Node></dm:MgmtTree>",
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let n = &r.tree.nodes[0];
        assert_eq!(n.name, "FUMO");
        assert_eq!(n.props.format, Some(Format::Node));
        assert_eq!(n.props.type_, Some(NodeType::Mime("text/plain".into())));
        assert_eq!(n.props.size, Some(12));
        assert_eq!(n.value.as_deref(), Some("<a>&</a> &AB"));
        let flat: Vec<_> = r.tree.flatten().collect();
        assert_eq!(flat[0].as_ref().unwrap().uri.to_string(), "./Vendor/FUMO");
    }

    #[test]
    fn unknown_elements_are_warnings() {
        let r = read(
            "<MgmtTree><VerDTD>1.2</VerDTD><Extra><Node><NodeName>X</NodeName></Node></Extra>\
             <Node><NodeName>A</NodeName><DFProperties><AccessType/></DFProperties>\
             <RTProperties><Owner>me</Owner><Size>big</Size><ACL>Copy=*</ACL>\
             <Format><mchr/></Format></RTProperties><Value>v<b>x</b></Value></Node>\
             <Node/></MgmtTree><Trailing/>",
        );
        let t = &r.tree;
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.nodes[0].name, "A");
        assert_eq!(t.nodes[0].value.as_deref(), Some("v"));
        let unknown: Vec<_> = r
            .warnings
            .iter()
            .filter_map(|w| match w {
                TndsWarning::UnknownElement { name, parent, .. } => Some((name.as_str(), *parent)),
                _ => None,
            })
            .collect();
        assert_eq!(
            unknown,
            [
                ("Extra", "MgmtTree"),
                ("DFProperties", "Node"),
                ("Owner", "RTProperties"),
                ("b", "Value"),
                ("Trailing", "")
            ]
        );
        let invalid: Vec<_> = r
            .warnings
            .iter()
            .filter_map(|w| match w {
                TndsWarning::InvalidProperty { property, .. } => Some(*property),
                _ => None,
            })
            .collect();
        assert_eq!(invalid, [Property::Size, Property::Acl, Property::Format]);
        assert!(
            r.warnings
                .iter()
                .any(|w| matches!(w, TndsWarning::MissingNodeName { .. }))
        );
    }

    #[test]
    fn structural_errors() {
        assert!(matches!(
            MgmtTree::read(b"<SyncML/>"),
            Err(TndsError::UnexpectedRoot(r)) if r == "SyncML"
        ));
        assert_eq!(MgmtTree::read(b""), Err(TndsError::MissingMgmtTree));
        assert!(matches!(
            MgmtTree::read(b"<MgmtTree><Node>"),
            Err(TndsError::Xml { .. })
        ));
        assert!(matches!(
            MgmtTree::read(b"<MgmtTree></Node>"),
            Err(TndsError::Xml { .. })
        ));
        assert!(matches!(
            MgmtTree::read(b"<MgmtTree>\xff</MgmtTree>"),
            Err(TndsError::NotUtf8 { offset: 10 })
        ));
        let r = read("<MgmtTree/>");
        assert_eq!(r.warnings, [TndsWarning::MissingVerDtd]);
    }

    #[test]
    fn limits_are_named() {
        let limits = TndsLimits {
            max_input_bytes: 1000,
            max_depth: 4,
            max_nodes: 2,
        };
        let deep = "<MgmtTree><Node><Node><Node><Node></Node></Node></Node></Node></MgmtTree>";
        assert_eq!(
            MgmtTree::read_with(
                deep.as_bytes(),
                &TndsLimits {
                    max_nodes: 10,
                    ..limits
                }
            ),
            Err(TndsError::LimitExceeded {
                limit: TndsLimit::Depth,
                max: 4
            })
        );
        let many = "<MgmtTree><Node/><Node/><Node/></MgmtTree>";
        let err = MgmtTree::read_with(many.as_bytes(), &limits).unwrap_err();
        assert_eq!(
            err,
            TndsError::LimitExceeded {
                limit: TndsLimit::Nodes,
                max: 2
            }
        );
        assert!(err.to_string().contains("max_nodes"));
        let big = vec![b' '; 1001];
        assert!(matches!(
            MgmtTree::read_with(&big, &limits),
            Err(TndsError::LimitExceeded {
                limit: TndsLimit::InputBytes,
                ..
            })
        ));
    }

    fn sample_tree() -> MgmtTree {
        let mut acl = Acl::new();
        acl.grant_all(AclCommand::Get);
        acl.grant(AclCommand::Replace, "dm.example.com").unwrap();
        MgmtTree {
            ver_dtd: "1.2".into(),
            man: Some("Acme & Co".into()),
            mod_: None,
            nodes: vec![TndsNode {
                name: "FUMO".into(),
                path: Some(".".into()),
                props: RtProperties {
                    acl: Some(acl),
                    format: Some(Format::Node),
                    type_: Some(NodeType::DdfName("urn:oma:mo:oma-fumo:1.0".into())),
                    ..RtProperties::default()
                },
                value: None,
                children: vec![TndsNode {
                    name: "State".into(),
                    props: RtProperties {
                        format: Some(Format::Int),
                        size: Some(2),
                        ..RtProperties::default()
                    },
                    value: Some("10".into()),
                    ..TndsNode::default()
                }],
            }],
        }
    }

    #[test]
    fn writer_is_byte_exact() {
        let expected = "<MgmtTree xmlns=\"syncml:dmddf1.2\">
  <VerDTD>1.2</VerDTD>
  <Man>Acme &amp; Co</Man>
  <Node>
    <NodeName>FUMO</NodeName>
    <Path>.</Path>
    <RTProperties>
      <ACL>Get=*&amp;Replace=dm.example.com</ACL>
      <Format><node/></Format>
      <Type><DDFName>urn:oma:mo:oma-fumo:1.0</DDFName></Type>
    </RTProperties>
    <Node>
      <NodeName>State</NodeName>
      <RTProperties>
        <Format><int/></Format>
        <Size>2</Size>
      </RTProperties>
      <Value>10</Value>
    </Node>
  </Node>
</MgmtTree>
";
        let tree = sample_tree();
        assert_eq!(tree.write(), expected);
        let back = read(expected);
        assert!(back.warnings.is_empty());
        assert_eq!(back.tree, tree);
    }

    #[test]
    fn control_characters_survive() {
        let mut tree = sample_tree();
        tree.nodes[0].children[0].value = Some("a\r\nb\tc\u{1}<>&\"'".into());
        let text = tree.write();
        assert!(text.contains("a&#13;\nb\tc&#1;&lt;&gt;&amp;\"'"));
        assert_eq!(read(&text).tree, tree);
    }

    #[test]
    fn flat_round_trip() {
        let tree = sample_tree();
        let entries: Vec<FlatEntry> = tree
            .flatten()
            .map(Result::unwrap)
            .map(|f| FlatEntry {
                uri: f.uri,
                props: f.props.clone(),
                value: f.value.map(str::to_owned),
            })
            .collect();
        let mut rebuilt = MgmtTree::from_flat("1.2", entries);
        rebuilt.man = tree.man.clone();
        assert_eq!(rebuilt, tree);
    }

    #[test]
    fn from_flat_creates_ancestors() {
        let uri = |s: &str| TreeUri::parse(s).unwrap();
        let rows = vec![
            FlatEntry {
                uri: uri("./DMAcc/xyzInc/Addr"),
                value: Some("https://dm.example.com".into()),
                ..FlatEntry::default()
            },
            FlatEntry {
                uri: uri("./DevInfo/Mod"),
                value: Some("AM-200".into()),
                ..FlatEntry::default()
            },
            FlatEntry {
                uri: uri("./DMAcc/xyzInc/ServerID"),
                value: Some("dm.example.com".into()),
                ..FlatEntry::default()
            },
            FlatEntry {
                uri: TreeUri::root(),
                ..FlatEntry::default()
            },
        ];
        let t = MgmtTree::from_flat("1.2", rows);
        let uris: Vec<String> = t.flatten().map(|f| f.unwrap().uri.to_string()).collect();
        assert_eq!(
            uris,
            [
                "./DMAcc",
                "./DMAcc/xyzInc",
                "./DMAcc/xyzInc/Addr",
                "./DMAcc/xyzInc/ServerID",
                "./DevInfo",
                "./DevInfo/Mod"
            ]
        );
    }

    #[test]
    fn flatten_reports_bad_names_and_skips_subtree() {
        let t = MgmtTree {
            nodes: vec![
                TndsNode {
                    name: "..".into(),
                    children: vec![TndsNode {
                        name: "x".into(),
                        ..TndsNode::default()
                    }],
                    ..TndsNode::default()
                },
                TndsNode {
                    name: "ok".into(),
                    ..TndsNode::default()
                },
            ],
            ..MgmtTree::default()
        };
        let out: Vec<_> = t.flatten().collect();
        assert_eq!(out.len(), 2);
        assert!(out[0].is_err());
        assert_eq!(out[1].as_ref().unwrap().uri.to_string(), "./ok");
    }
}
