//! The SyncML DM 1.2 message model (OMA DM Representation Protocol 1.2, the DTD in §6).
//!
//! The model is the wire structure, typed: identifiers and codes are numbers, flags are `bool`,
//! optional elements are `Option`, repeated ones `Vec`. Values whose meaning belongs to a higher
//! layer (LocURI, Format, Type, Data) stay strings so that a message survives decode → encode
//! unchanged even when a device sends something odd.

use crate::codes::{AlertCode, StatusCode};

/// A command identifier (`CmdID`), unique within a message. `0` appears only as the `CmdRef` of
/// a status for the SyncHdr.
pub type CmdId = u32;

/// A whole SyncML message: `<SyncML><SyncHdr/><SyncBody/></SyncML>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The message header: session, addressing and authentication.
    pub header: Header,
    /// The commands, in document order.
    pub body: Body,
}

/// `<SyncHdr>`: who talks to whom, in which session, and with what credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `VerDTD`, `1.2` for OMA DM 1.2 (`1.1` for DM 1.1.2); also selects the XML namespace.
    pub ver_dtd: String,
    /// `VerProto`, e.g. `DM/1.2`.
    pub ver_proto: String,
    /// `SessionID`, chosen by the device for client-initiated sessions (hex or decimal text).
    pub session_id: String,
    /// `MsgID`, increasing by one per message from each side.
    pub msg_id: u32,
    /// `Target`: the recipient (server URI or device id).
    pub target: Location,
    /// `Source`: the sender.
    pub source: Location,
    /// `RespURI`: where the peer must send its next message.
    pub resp_uri: Option<String>,
    /// `NoResp`: the sender wants no status for any command in this message.
    pub no_resp: bool,
    /// `Cred`: the sender's credentials.
    pub cred: Option<Cred>,
    /// `Meta`: the sender's `MaxMsgSize`/`MaxObjSize` and the like.
    pub meta: Option<Meta>,
}

impl Default for Header {
    fn default() -> Self {
        Self {
            ver_dtd: "1.2".into(),
            ver_proto: "DM/1.2".into(),
            session_id: String::new(),
            msg_id: 1,
            target: Location::default(),
            source: Location::default(),
            resp_uri: None,
            no_resp: false,
            cred: None,
            meta: None,
        }
    }
}

/// `<Target>` or `<Source>`: a `LocURI` and an optional `LocName`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// `LocURI`: a URI, a device id or a management-tree path.
    pub loc_uri: String,
    /// `LocName`: a display name or, in the SyncHdr `Source`, the user name.
    pub loc_name: Option<String>,
}

impl Location {
    /// A location with only a `LocURI`.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            loc_uri: uri.into(),
            loc_name: None,
        }
    }
}

/// `<Cred>`: credentials; `Meta` carries the auth type and encoding, `Data` the value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cred {
    /// `Type` (e.g. `syncml:auth-md5`) and `Format` (e.g. `b64`).
    pub meta: Option<Meta>,
    /// The credential: b64 text, or (WBXML from some devices) the raw digest as `OPAQUE`.
    pub data: Data,
}

/// `<Chal>`: a challenge, always with `Meta` (auth type, format and `NextNonce`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chal {
    /// `Type`, `Format` and `NextNonce`.
    pub meta: Meta,
}

/// `<Meta>` with the MetInf elements OMA DM uses (DM Representation 1.2 §6, SyncML MetInf 1.2).
/// Other MetInf elements (Anchor, Mem, …) belong to data synchronisation; they are skipped with a
/// warning when read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// `Format`: node format (`chr`, `int`, `b64`, `node`, …) or encoding of `Cred`/`Chal`.
    pub format: Option<String>,
    /// `Type`: MIME type, auth type or generic-alert type.
    pub type_: Option<String>,
    /// `Mark`.
    pub mark: Option<String>,
    /// `Size`: the total size of a large object (sent with its first chunk).
    pub size: Option<u64>,
    /// `NextNonce` (b64 text, as on the wire).
    pub next_nonce: Option<String>,
    /// `Version`.
    pub version: Option<String>,
    /// `MaxMsgSize`: the largest message the sender accepts.
    pub max_msg_size: Option<u64>,
    /// `MaxObjSize`: the largest object the sender accepts.
    pub max_obj_size: Option<u64>,
    /// `EMI`: extensions, repeated.
    pub emi: Vec<String>,
}

impl Meta {
    /// True when no element is set (such a `Meta` is not written).
    pub fn is_empty(&self) -> bool {
        *self == Meta::default()
    }

    /// A `Meta` carrying only a `Format`.
    pub fn with_format(format: impl Into<String>) -> Self {
        Self {
            format: Some(format.into()),
            ..Self::default()
        }
    }

    /// Sets the `Type` and returns `self`.
    pub fn and_type(mut self, type_: impl Into<String>) -> Self {
        self.type_ = Some(type_.into());
        self
    }
}

/// The content of `<Data>`: text, or raw bytes (WBXML `OPAQUE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Character data (in XML: text, escaped or CDATA, or embedded markup kept as text).
    Text(String),
    /// Bytes carried as WBXML `OPAQUE`, kept exactly. XML has no binary: the XML writer emits
    /// UTF-8 bytes as text (without a trailing NUL terminator, [`strip_nul_terminator`]) and
    /// anything else base64-encoded (the DM convention for `b64` format); either reads back as
    /// `Text`.
    Opaque(Vec<u8>),
}

impl Default for Data {
    fn default() -> Self {
        Data::Text(String::new())
    }
}

/// `bytes` without the NUL bytes at its end.
///
/// Clients built on C SyncML toolkits put a C string into WBXML `OPAQUE` with its terminator
/// (libdmclient sends `chr\0`); WBXML's own inline strings (`STR_I`) are NUL-terminated by
/// the format (WBXML 1.3 §5.8.4.1) and never carry one in their content. A trailing NUL is
/// therefore read as a terminator wherever opaque bytes are read as *text* (decision 71);
/// the bytes themselves ([`Data::as_bytes`]) are kept exactly, binary values may end in 0.
pub fn strip_nul_terminator(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

impl Data {
    /// The text, or the bytes if they are valid UTF-8 once a trailing NUL terminator is
    /// removed ([`strip_nul_terminator`]).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Data::Text(s) => Some(s),
            Data::Opaque(b) => std::str::from_utf8(strip_nul_terminator(b)).ok(),
        }
    }

    /// The raw bytes of either form.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Data::Text(s) => s.as_bytes(),
            Data::Opaque(b) => b,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest length ≤ `len` of a chunk starting at byte `offset` that does not cut a
    /// character of text data in two (opaque data is cut anywhere).
    pub fn chunk_len(&self, offset: usize, len: usize) -> usize {
        let end = offset.saturating_add(len).min(self.len());
        match self {
            Data::Opaque(_) => end.saturating_sub(offset),
            Data::Text(s) => {
                let mut end = end;
                while end > offset && !s.is_char_boundary(end) {
                    end -= 1;
                }
                end.saturating_sub(offset)
            }
        }
    }

    /// Bytes `offset..offset + len` as a chunk of a large object (DM Protocol 1.2, large
    /// object handling), `len` first rounded with [`Data::chunk_len`].
    pub fn chunk(&self, offset: usize, len: usize) -> Data {
        let end = offset + self.chunk_len(offset, len);
        match self {
            Data::Text(s) => Data::Text(s.get(offset..end).unwrap_or_default().to_owned()),
            Data::Opaque(b) => Data::Opaque(b.get(offset..end).unwrap_or_default().to_vec()),
        }
    }
}

impl From<&str> for Data {
    fn from(s: &str) -> Self {
        Data::Text(s.to_owned())
    }
}

impl From<String> for Data {
    fn from(s: String) -> Self {
        Data::Text(s)
    }
}

/// `<Item>`: the unit commands act on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    /// `Target`: the node acted on (Add, Replace, Get, Delete, Exec, Copy).
    pub target: Option<Location>,
    /// `Source`: the node a value comes from (Results, Replace in package 1, Copy, alerts).
    pub source: Option<Location>,
    /// `Meta`: format, type and, for large objects, size.
    pub meta: Option<Meta>,
    /// `Data`: the value. `None` means the element was absent; `Some(Text(""))` is `<Data/>`.
    pub data: Option<Data>,
    /// `MoreData`: this is a chunk of a large object and more follow.
    pub more_data: bool,
}

impl Item {
    /// An item addressing `target` with no data.
    pub fn target(uri: impl Into<String>) -> Self {
        Self {
            target: Some(Location::new(uri)),
            ..Self::default()
        }
    }

    /// An item from `source` carrying `data`.
    pub fn source(uri: impl Into<String>, data: impl Into<Data>) -> Self {
        Self {
            source: Some(Location::new(uri)),
            data: Some(data.into()),
            ..Self::default()
        }
    }
}

/// `<SyncBody>`: the commands and whether this message ends the package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Body {
    /// Commands, in document order.
    pub commands: Vec<Command>,
    /// `Final`: this message is the last of its package.
    pub final_: bool,
}

/// Every command an OMA DM 1.2 message can carry.
// Variants differ in size (Status carries a challenge inline); commands live briefly in a
// Vec while a message is built or read, so boxing would cost more than it saves.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `Add` a node.
    Add(ItemCommand),
    /// `Alert`: session control, user interaction, generic alerts.
    Alert(Alert),
    /// `Atomic`: all or none of the contained commands.
    Atomic(Container),
    /// `Copy` a node.
    Copy(ItemCommand),
    /// `Delete` a node.
    Delete(ItemCommand),
    /// `Exec` a node.
    Exec(Exec),
    /// `Get` a node's value or properties.
    Get(ItemCommand),
    /// `Replace` a node's value (also how a device sends DevInfo in package 1).
    Replace(ItemCommand),
    /// `Sequence`: the contained commands in order.
    Sequence(Container),
    /// `Results` of a `Get`.
    Results(Results),
    /// `Status` of a command or of the SyncHdr.
    Status(Status),
}

impl Command {
    /// The element name (`Add`, `Status`, …), as `Status/Cmd` refers to it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Add(_) => "Add",
            Command::Alert(_) => "Alert",
            Command::Atomic(_) => "Atomic",
            Command::Copy(_) => "Copy",
            Command::Delete(_) => "Delete",
            Command::Exec(_) => "Exec",
            Command::Get(_) => "Get",
            Command::Replace(_) => "Replace",
            Command::Sequence(_) => "Sequence",
            Command::Results(_) => "Results",
            Command::Status(_) => "Status",
        }
    }

    /// The command's `CmdID`.
    pub fn cmd_id(&self) -> CmdId {
        match self {
            Command::Add(c)
            | Command::Copy(c)
            | Command::Delete(c)
            | Command::Get(c)
            | Command::Replace(c) => c.cmd_id,
            Command::Alert(c) => c.cmd_id,
            Command::Atomic(c) | Command::Sequence(c) => c.cmd_id,
            Command::Exec(c) => c.cmd_id,
            Command::Results(c) => c.cmd_id,
            Command::Status(c) => c.cmd_id,
        }
    }
}

/// Add, Copy, Delete, Get and Replace: `(CmdID, NoResp?, Cred?, Meta?, Item+)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemCommand {
    /// `CmdID`.
    pub cmd_id: CmdId,
    /// `NoResp`: no status wanted.
    pub no_resp: bool,
    /// `Cred`: per-command credentials (rare).
    pub cred: Option<Cred>,
    /// `Meta` applying to every item.
    pub meta: Option<Meta>,
    /// The items acted on.
    pub items: Vec<Item>,
}

/// `<Alert>`: `(CmdID, NoResp?, Cred?, Data?, Correlator?, Item*)` (SyncML RepPro 1.2 DTD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// `CmdID`.
    pub cmd_id: CmdId,
    /// `NoResp`.
    pub no_resp: bool,
    /// `Cred`.
    pub cred: Option<Cred>,
    /// `Correlator`: ties a generic alert to the Exec that started the work (DM 1.2).
    pub correlator: Option<String>,
    /// The alert code.
    pub code: AlertCode,
    /// Items: options and texts for user interaction, the payload of a generic alert.
    pub items: Vec<Item>,
}

/// `<Exec>`: `(CmdID, NoResp?, Cred?, Meta?, Correlator?, Item)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exec {
    /// `CmdID`.
    pub cmd_id: CmdId,
    /// `NoResp`.
    pub no_resp: bool,
    /// `Cred`.
    pub cred: Option<Cred>,
    /// `Meta`.
    pub meta: Option<Meta>,
    /// `Correlator`: echoed in the generic alert that reports completion.
    pub correlator: Option<String>,
    /// The node to execute, with optional data.
    pub item: Item,
}

/// Atomic and Sequence: `(CmdID, NoResp?, Meta?, commands+)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    /// `CmdID`.
    pub cmd_id: CmdId,
    /// `NoResp`.
    pub no_resp: bool,
    /// `Meta`.
    pub meta: Option<Meta>,
    /// The contained commands.
    pub commands: Vec<Command>,
}

/// `<Results>`: `(CmdID, MsgRef?, CmdRef, Meta?, TargetRef*, SourceRef*, Item+)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Results {
    /// `CmdID`.
    pub cmd_id: CmdId,
    /// `MsgRef`: the message holding the Get.
    pub msg_ref: Option<u32>,
    /// `CmdRef`: the Get's `CmdID`.
    pub cmd_ref: CmdId,
    /// `Meta`.
    pub meta: Option<Meta>,
    /// `TargetRef`s.
    pub target_refs: Vec<String>,
    /// `SourceRef`s.
    pub source_refs: Vec<String>,
    /// The values.
    pub items: Vec<Item>,
}

/// `<Status>`: `(CmdID, MsgRef, CmdRef, Cmd, TargetRef*, SourceRef*, Cred?, Chal?, Data, Item*)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `CmdID`.
    pub cmd_id: CmdId,
    /// `MsgRef`: the message holding the command. Always written (some devices crash without).
    pub msg_ref: u32,
    /// `CmdRef`: the command's `CmdID`, `0` for the SyncHdr.
    pub cmd_ref: CmdId,
    /// `Cmd`: the command's element name (`SyncHdr`, `Get`, …).
    pub cmd: String,
    /// `TargetRef`s.
    pub target_refs: Vec<String>,
    /// `SourceRef`s.
    pub source_refs: Vec<String>,
    /// `Cred`.
    pub cred: Option<Cred>,
    /// `Chal`: an authentication challenge.
    pub chal: Option<Chal>,
    /// The status code.
    pub code: StatusCode,
    /// Items: e.g. the user's answer to a text-input or choice alert.
    pub items: Vec<Item>,
}

impl Status {
    /// The Status answering the SyncHdr of message `header` (`CmdRef` 0, the header's
    /// Target and Source as references), with `code` and nothing else.
    pub fn for_header(header: &Header, code: StatusCode) -> Status {
        Status {
            cmd_id: 0,
            msg_ref: header.msg_id,
            cmd_ref: 0,
            cmd: "SyncHdr".into(),
            target_refs: vec![header.target.loc_uri.clone()],
            source_refs: vec![header.source.loc_uri.clone()],
            cred: None,
            chal: None,
            code,
            items: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Data;

    #[test]
    fn chunks_never_cut_a_character() {
        let d = Data::Text("aé€b".into()); // 1 + 2 + 3 + 1 bytes
        assert_eq!(d.chunk_len(0, 2), 1, "é would be cut");
        assert_eq!(d.chunk(0, 3), Data::Text("aé".into()));
        assert_eq!(d.chunk(3, 3), Data::Text("€".into()));
        assert_eq!(d.chunk(6, 100), Data::Text("b".into()));
        assert_eq!(d.chunk_len(7, 10), 0, "past the end");
        let o = Data::Opaque(vec![1, 2, 3, 4]);
        assert_eq!(o.chunk(1, 2), Data::Opaque(vec![2, 3]));
        assert_eq!(o.chunk_len(3, 9), 1);
    }
}
