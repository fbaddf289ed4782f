//! Events → model: the structural half of decoding, shared by XML and WBXML.
//!
//! Liberal in what it accepts (GUIDE §3): elements in any order inside their parent, unknown
//! elements skipped with a warning, whitespace between elements ignored, numbers trimmed,
//! duplicated single elements — the last one wins, with a warning. Strict where meaning would
//! otherwise be guessed: a missing `CmdID`, `MsgID` or status code is an error.

use crate::codes::{AlertCode, StatusCode};
use crate::error::{DecodeError, DecodeErrorKind, Warning};
use crate::event::{Ev, Source};
use crate::model::*;
use crate::tag::Tag;

pub(crate) struct Parser<'a, S: Source<'a>> {
    src: S,
    pub(crate) warnings: Vec<Warning>,
    _input: std::marker::PhantomData<&'a ()>,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl<'a, S: Source<'a>> Parser<'a, S> {
    pub(crate) fn new(src: S) -> Self {
        Self {
            src,
            warnings: Vec::new(),
            _input: std::marker::PhantomData,
        }
    }

    fn err(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.src.offset())
    }

    fn warn(&mut self, message: String) {
        let offset = self.src.offset();
        self.warnings.push(Warning { offset, message });
    }

    fn next(&mut self, inside: &'static str) -> Result<Ev<'a>> {
        match self.src.next_event()? {
            Some(ev) => Ok(ev),
            None => Err(self.err(DecodeErrorKind::UnexpectedEof(inside))),
        }
    }

    /// The next known child element of `parent`, or `None` at `parent`'s end. Skips unknown
    /// elements and whitespace.
    fn child(&mut self, parent: Tag) -> Result<Option<Tag>> {
        loop {
            match self.next(parent.name())? {
                Ev::Start(tag) => return Ok(Some(tag)),
                Ev::End => return Ok(None),
                Ev::Unknown(name) => {
                    let name = name.into_owned();
                    self.skip(parent.name())?;
                    self.warn(format!(
                        "skipped unknown element <{name}> in <{}>",
                        parent.name()
                    ));
                }
                Ev::Text(t) => {
                    if !t.trim().is_empty() {
                        self.warn(format!(
                            "ignored text between elements of <{}>",
                            parent.name()
                        ));
                    }
                }
                Ev::Opaque(_) => {
                    self.warn(format!("ignored opaque data in <{}>", parent.name()));
                }
            }
        }
    }

    /// Skips the rest of the element whose start was just read.
    fn skip(&mut self, inside: &'static str) -> Result<()> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next(inside)? {
                Ev::Start(_) | Ev::Unknown(_) => depth += 1,
                Ev::End => depth -= 1,
                Ev::Text(_) | Ev::Opaque(_) => {}
            }
        }
        Ok(())
    }

    /// Skips a known element that does not belong where it is.
    fn unexpected(&mut self, tag: Tag, parent: Tag) -> Result<()> {
        self.skip(tag.name())?;
        self.warn(format!("skipped <{}> in <{}>", tag.name(), parent.name()));
        Ok(())
    }

    /// The text content of a simple element; nested elements are skipped with a warning.
    fn text(&mut self, tag: Tag) -> Result<String> {
        let mut out = String::new();
        loop {
            match self.next(tag.name())? {
                Ev::Text(t) => {
                    if out.is_empty() {
                        out = t.into_owned();
                    } else {
                        out.push_str(&t);
                    }
                }
                // A C string in OPAQUE brings its terminator (decision 71).
                Ev::Opaque(b) => {
                    out.push_str(&String::from_utf8_lossy(
                        crate::model::strip_nul_terminator(b),
                    ));
                }
                Ev::End => return Ok(out),
                Ev::Start(_) | Ev::Unknown(_) => {
                    self.skip(tag.name())?;
                    self.warn(format!("skipped markup inside <{}>", tag.name()));
                }
            }
        }
    }

    /// Trimmed text: identifiers and URIs never carry meaningful outer whitespace, and
    /// pretty-printed captures add it.
    fn trimmed(&mut self, tag: Tag) -> Result<String> {
        let t = self.text(tag)?;
        Ok(match t.trim() {
            trimmed if trimmed.len() == t.len() => t,
            trimmed => trimmed.to_owned(),
        })
    }

    fn number<N: std::str::FromStr>(&mut self, tag: Tag) -> Result<N> {
        let t = self.text(tag)?;
        t.trim().parse().map_err(|_| {
            self.err(DecodeErrorKind::InvalidNumber {
                element: tag.name(),
                value: t.chars().take(40).collect(),
            })
        })
    }

    /// An empty flag element such as `<Final/>`; content, if any, is ignored.
    fn flag(&mut self, tag: Tag) -> Result<bool> {
        self.skip(tag.name())?;
        Ok(true)
    }

    fn set_once<T>(&mut self, slot: &mut Option<T>, value: T, tag: Tag, parent: Tag) {
        if slot.is_some() {
            self.warn(format!(
                "duplicate <{}> in <{}>; the last one is used",
                tag.name(),
                parent.name()
            ));
        }
        *slot = Some(value);
    }

    fn require<T>(&self, value: Option<T>, element: Tag, parent: Tag) -> Result<T> {
        value.ok_or_else(|| {
            self.err(DecodeErrorKind::Missing {
                element: element.name(),
                parent: parent.name(),
            })
        })
    }

    pub(crate) fn message(&mut self) -> Result<Message> {
        loop {
            match self.src.next_event()? {
                Some(Ev::Start(Tag::SyncML)) => break,
                Some(Ev::Start(tag)) => {
                    return Err(self.err(DecodeErrorKind::NotSyncMl(tag.name().into())));
                }
                Some(Ev::Unknown(name)) => {
                    return Err(self.err(DecodeErrorKind::NotSyncMl(name.into_owned())));
                }
                Some(Ev::Text(_) | Ev::Opaque(_)) => {}
                Some(Ev::End) | None => return Err(self.err(DecodeErrorKind::NoElement)),
            }
        }
        let (mut header, mut body) = (None, None);
        while let Some(tag) = self.child(Tag::SyncML)? {
            match tag {
                Tag::SyncHdr => {
                    let h = self.header()?;
                    self.set_once(&mut header, h, tag, Tag::SyncML);
                }
                Tag::SyncBody => {
                    let b = self.body()?;
                    self.set_once(&mut body, b, tag, Tag::SyncML);
                }
                other => self.unexpected(other, Tag::SyncML)?,
            }
        }
        // Anything after the root is the source's business (it reports trailing garbage).
        Ok(Message {
            header: self.require(header, Tag::SyncHdr, Tag::SyncML)?,
            body: self.require(body, Tag::SyncBody, Tag::SyncML)?,
        })
    }

    fn header(&mut self) -> Result<Header> {
        let p = Tag::SyncHdr;
        let (mut ver_dtd, mut ver_proto, mut session_id, mut msg_id) = (None, None, None, None);
        let (mut target, mut source) = (None, None);
        let mut h = Header::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::VerDTD => {
                    let v = self.trimmed(tag)?;
                    self.set_once(&mut ver_dtd, v, tag, p);
                }
                Tag::VerProto => {
                    let v = self.trimmed(tag)?;
                    self.set_once(&mut ver_proto, v, tag, p);
                }
                Tag::SessionID => {
                    let v = self.trimmed(tag)?;
                    self.set_once(&mut session_id, v, tag, p);
                }
                Tag::MsgID => {
                    let v = self.number(tag)?;
                    self.set_once(&mut msg_id, v, tag, p);
                }
                Tag::Target => {
                    let v = self.location(tag)?;
                    self.set_once(&mut target, v, tag, p);
                }
                Tag::Source => {
                    let v = self.location(tag)?;
                    self.set_once(&mut source, v, tag, p);
                }
                Tag::RespURI => h.resp_uri = Some(self.trimmed(tag)?),
                Tag::NoResp => h.no_resp = self.flag(tag)?,
                Tag::Cred => h.cred = Some(self.cred()?),
                Tag::Meta => h.meta = Some(self.meta()?),
                other => self.unexpected(other, p)?,
            }
        }
        h.ver_dtd = self.require(ver_dtd, Tag::VerDTD, p)?;
        h.ver_proto = self.require(ver_proto, Tag::VerProto, p)?;
        h.session_id = self.require(session_id, Tag::SessionID, p)?;
        h.msg_id = self.require(msg_id, Tag::MsgID, p)?;
        h.target = self.require(target, Tag::Target, p)?;
        h.source = self.require(source, Tag::Source, p)?;
        Ok(h)
    }

    fn location(&mut self, p: Tag) -> Result<Location> {
        let (mut loc_uri, mut loc_name) = (None, None);
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::LocURI => {
                    let v = self.trimmed(tag)?;
                    self.set_once(&mut loc_uri, v, tag, p);
                }
                Tag::LocName => {
                    let v = self.trimmed(tag)?;
                    self.set_once(&mut loc_name, v, tag, p);
                }
                other => self.unexpected(other, p)?,
            }
        }
        Ok(Location {
            loc_uri: self.require(loc_uri, Tag::LocURI, p)?,
            loc_name,
        })
    }

    fn cred(&mut self) -> Result<Cred> {
        let p = Tag::Cred;
        let mut cred = Cred::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::Meta => cred.meta = Some(self.meta()?),
                Tag::Data => cred.data = self.src.read_data(&mut self.warnings)?,
                other => self.unexpected(other, p)?,
            }
        }
        Ok(cred)
    }

    fn meta(&mut self) -> Result<Meta> {
        let p = Tag::Meta;
        let mut m = Meta::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                // Some encoders wrap MetInf elements in an explicit <MetInf> element.
                Tag::MetInf => {
                    let inner = self.meta_elements(Tag::MetInf, Meta::default())?;
                    m = merge_meta(m, inner);
                }
                other => self.meta_element(other, &mut m, p)?,
            }
        }
        Ok(m)
    }

    fn meta_elements(&mut self, p: Tag, mut m: Meta) -> Result<Meta> {
        while let Some(tag) = self.child(p)? {
            self.meta_element(tag, &mut m, p)?;
        }
        Ok(m)
    }

    fn meta_element(&mut self, tag: Tag, m: &mut Meta, p: Tag) -> Result<()> {
        match tag {
            Tag::Format => m.format = Some(self.trimmed(tag)?),
            Tag::Type => m.type_ = Some(self.trimmed(tag)?),
            Tag::Mark => m.mark = Some(self.trimmed(tag)?),
            Tag::Size => m.size = Some(self.number(tag)?),
            Tag::NextNonce => m.next_nonce = Some(self.trimmed(tag)?),
            Tag::Version => m.version = Some(self.trimmed(tag)?),
            Tag::MaxMsgSize => m.max_msg_size = Some(self.number(tag)?),
            Tag::MaxObjSize => m.max_obj_size = Some(self.number(tag)?),
            Tag::EMI => {
                let v = self.text(tag)?;
                m.emi.push(v);
            }
            other => self.unexpected(other, p)?,
        }
        Ok(())
    }

    fn body(&mut self) -> Result<Body> {
        let p = Tag::SyncBody;
        let mut body = Body::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::Final => body.final_ = self.flag(tag)?,
                other => match self.command(other, p)? {
                    Some(cmd) => body.commands.push(cmd),
                    None => self.warn(format!("skipped <{}> in <SyncBody>", other.name())),
                },
            }
        }
        Ok(body)
    }

    /// A command element whose start was just read; `None` (already skipped) if `tag` is not
    /// an OMA DM command.
    fn command(&mut self, tag: Tag, parent: Tag) -> Result<Option<Command>> {
        Ok(Some(match tag {
            Tag::Add => Command::Add(self.item_command(tag)?),
            Tag::Copy => Command::Copy(self.item_command(tag)?),
            Tag::Delete => Command::Delete(self.item_command(tag)?),
            Tag::Get => Command::Get(self.item_command(tag)?),
            Tag::Replace => Command::Replace(self.item_command(tag)?),
            Tag::Alert => Command::Alert(self.alert()?),
            Tag::Exec => Command::Exec(self.exec()?),
            Tag::Atomic => Command::Atomic(self.container(tag)?),
            Tag::Sequence => Command::Sequence(self.container(tag)?),
            Tag::Results => Command::Results(self.results()?),
            Tag::Status => Command::Status(self.status()?),
            _ => {
                self.skip(parent.name())?;
                return Ok(None);
            }
        }))
    }

    fn item_command(&mut self, p: Tag) -> Result<ItemCommand> {
        let mut cmd_id = None;
        let mut c = ItemCommand::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::CmdID => cmd_id = Some(self.number(tag)?),
                Tag::NoResp => c.no_resp = self.flag(tag)?,
                Tag::Cred => c.cred = Some(self.cred()?),
                Tag::Meta => c.meta = Some(self.meta()?),
                Tag::Item => c.items.push(self.item()?),
                other => self.unexpected(other, p)?,
            }
        }
        c.cmd_id = self.require(cmd_id, Tag::CmdID, p)?;
        Ok(c)
    }

    fn alert(&mut self) -> Result<Alert> {
        let p = Tag::Alert;
        let (mut cmd_id, mut code) = (None, None);
        let (mut no_resp, mut cred, mut correlator, mut items) = (false, None, None, Vec::new());
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::CmdID => cmd_id = Some(self.number(tag)?),
                Tag::NoResp => no_resp = self.flag(tag)?,
                Tag::Cred => cred = Some(self.cred()?),
                Tag::Correlator => correlator = Some(self.trimmed(tag)?),
                Tag::Data => code = Some(AlertCode(self.number(tag)?)),
                Tag::Item => items.push(self.item()?),
                other => self.unexpected(other, p)?,
            }
        }
        Ok(Alert {
            cmd_id: self.require(cmd_id, Tag::CmdID, p)?,
            no_resp,
            cred,
            correlator,
            code: self.require(code, Tag::Data, p)?,
            items,
        })
    }

    fn exec(&mut self) -> Result<Exec> {
        let p = Tag::Exec;
        let (mut cmd_id, mut item) = (None, None);
        let mut e = Exec::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::CmdID => cmd_id = Some(self.number(tag)?),
                Tag::NoResp => e.no_resp = self.flag(tag)?,
                Tag::Cred => e.cred = Some(self.cred()?),
                Tag::Meta => e.meta = Some(self.meta()?),
                Tag::Correlator => e.correlator = Some(self.trimmed(tag)?),
                Tag::Item => {
                    let v = self.item()?;
                    self.set_once(&mut item, v, tag, p);
                }
                other => self.unexpected(other, p)?,
            }
        }
        e.cmd_id = self.require(cmd_id, Tag::CmdID, p)?;
        e.item = self.require(item, Tag::Item, p)?;
        Ok(e)
    }

    fn container(&mut self, p: Tag) -> Result<Container> {
        let mut cmd_id = None;
        let mut c = Container::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::CmdID => cmd_id = Some(self.number(tag)?),
                Tag::NoResp => c.no_resp = self.flag(tag)?,
                Tag::Meta => c.meta = Some(self.meta()?),
                other => match self.command(other, p)? {
                    Some(cmd) => c.commands.push(cmd),
                    None => self.warn(format!("skipped <{}> in <{}>", other.name(), p.name())),
                },
            }
        }
        c.cmd_id = self.require(cmd_id, Tag::CmdID, p)?;
        Ok(c)
    }

    fn results(&mut self) -> Result<Results> {
        let p = Tag::Results;
        let (mut cmd_id, mut cmd_ref) = (None, None);
        let mut r = Results::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::CmdID => cmd_id = Some(self.number(tag)?),
                Tag::MsgRef => r.msg_ref = Some(self.number(tag)?),
                Tag::CmdRef => cmd_ref = Some(self.number(tag)?),
                Tag::Meta => r.meta = Some(self.meta()?),
                Tag::TargetRef => r.target_refs.push(self.trimmed(tag)?),
                Tag::SourceRef => r.source_refs.push(self.trimmed(tag)?),
                Tag::Item => r.items.push(self.item()?),
                other => self.unexpected(other, p)?,
            }
        }
        r.cmd_id = self.require(cmd_id, Tag::CmdID, p)?;
        r.cmd_ref = self.require(cmd_ref, Tag::CmdRef, p)?;
        Ok(r)
    }

    fn status(&mut self) -> Result<Status> {
        let p = Tag::Status;
        let (mut cmd_id, mut msg_ref, mut cmd_ref, mut cmd, mut code) =
            (None, None, None, None, None);
        let (mut target_refs, mut source_refs, mut items) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cred, mut chal) = (None, None);
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::CmdID => cmd_id = Some(self.number(tag)?),
                Tag::MsgRef => msg_ref = Some(self.number(tag)?),
                Tag::CmdRef => cmd_ref = Some(self.number(tag)?),
                Tag::Cmd => cmd = Some(self.trimmed(tag)?),
                Tag::TargetRef => target_refs.push(self.trimmed(tag)?),
                Tag::SourceRef => source_refs.push(self.trimmed(tag)?),
                Tag::Cred => cred = Some(self.cred()?),
                Tag::Chal => chal = Some(self.chal()?),
                Tag::Data => code = Some(StatusCode(self.number(tag)?)),
                Tag::Item => items.push(self.item()?),
                other => self.unexpected(other, p)?,
            }
        }
        let msg_ref = match msg_ref {
            Some(m) => m,
            None => {
                // DM 1.2 makes MsgRef mandatory but some clients omit it; the peer's message
                // is then meant (Representation §6.6.7: "if not present, the MsgID of the
                // message being responded to").
                self.warn("Status without <MsgRef>; assuming 0 (the current message)".into());
                0
            }
        };
        Ok(Status {
            cmd_id: self.require(cmd_id, Tag::CmdID, p)?,
            msg_ref,
            cmd_ref: self.require(cmd_ref, Tag::CmdRef, p)?,
            cmd: self.require(cmd, Tag::Cmd, p)?,
            target_refs,
            source_refs,
            cred,
            chal,
            code: self.require(code, Tag::Data, p)?,
            items,
        })
    }

    fn chal(&mut self) -> Result<Chal> {
        let p = Tag::Chal;
        let mut chal = Chal::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::Meta => chal.meta = self.meta()?,
                other => self.unexpected(other, p)?,
            }
        }
        Ok(chal)
    }

    fn item(&mut self) -> Result<Item> {
        let p = Tag::Item;
        let mut item = Item::default();
        while let Some(tag) = self.child(p)? {
            match tag {
                Tag::Target => item.target = Some(self.location(tag)?),
                Tag::Source => item.source = Some(self.location(tag)?),
                Tag::Meta => item.meta = Some(self.meta()?),
                Tag::Data => item.data = Some(self.src.read_data(&mut self.warnings)?),
                Tag::MoreData => item.more_data = self.flag(tag)?,
                other => self.unexpected(other, p)?,
            }
        }
        Ok(item)
    }
}

/// Combines a `<Meta>`'s direct elements with those of a nested `<MetInf>`: set fields of
/// `inner` win.
fn merge_meta(outer: Meta, inner: Meta) -> Meta {
    let mut emi = outer.emi;
    emi.extend(inner.emi);
    Meta {
        format: inner.format.or(outer.format),
        type_: inner.type_.or(outer.type_),
        mark: inner.mark.or(outer.mark),
        size: inner.size.or(outer.size),
        next_nonce: inner.next_nonce.or(outer.next_nonce),
        version: inner.version.or(outer.version),
        max_msg_size: inner.max_msg_size.or(outer.max_msg_size),
        max_obj_size: inner.max_obj_size.or(outer.max_obj_size),
        emi,
    }
}
