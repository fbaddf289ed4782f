//! Model → sink calls: the structural half of encoding, shared by XML, WBXML and the size
//! calculator. Element order follows the DM Representation 1.2 DTD exactly, so output is
//! canonical and stable.
//!
//! Device-friendly choices (GUIDE §3): `MsgRef` and `CmdRef` are always written, and an Item
//! of Add/Replace always carries `<Data/>` even when empty, because some clients crash without.

use crate::event::Sink;
use crate::model::*;
use crate::tag::Tag;

/// Writes a whole message.
pub(crate) fn message<S: Sink + ?Sized>(s: &mut S, m: &Message) {
    s.start(Tag::SyncML);
    header(s, &m.header);
    body_start(s);
    for c in &m.body.commands {
        command(s, c);
    }
    body_end(s, m.body.final_);
    s.end(Tag::SyncML);
}

pub(crate) fn body_start<S: Sink + ?Sized>(s: &mut S) {
    s.start(Tag::SyncBody);
}

pub(crate) fn body_end<S: Sink + ?Sized>(s: &mut S, final_: bool) {
    if final_ {
        s.empty(Tag::Final);
    }
    s.end(Tag::SyncBody);
}

pub(crate) fn header<S: Sink + ?Sized>(s: &mut S, h: &Header) {
    s.start(Tag::SyncHdr);
    s.leaf(Tag::VerDTD, &h.ver_dtd);
    s.leaf(Tag::VerProto, &h.ver_proto);
    s.leaf(Tag::SessionID, &h.session_id);
    s.number(Tag::MsgID, h.msg_id.into());
    location(s, Tag::Target, &h.target);
    location(s, Tag::Source, &h.source);
    if let Some(r) = &h.resp_uri {
        s.leaf(Tag::RespURI, r);
    }
    flag(s, Tag::NoResp, h.no_resp);
    if let Some(c) = &h.cred {
        cred(s, c);
    }
    meta(s, h.meta.as_ref());
    s.end(Tag::SyncHdr);
}

fn flag<S: Sink + ?Sized>(s: &mut S, tag: Tag, set: bool) {
    if set {
        s.empty(tag);
    }
}

fn location<S: Sink + ?Sized>(s: &mut S, tag: Tag, l: &Location) {
    s.start(tag);
    s.leaf(Tag::LocURI, &l.loc_uri);
    if let Some(n) = &l.loc_name {
        s.leaf(Tag::LocName, n);
    }
    s.end(tag);
}

fn cred<S: Sink + ?Sized>(s: &mut S, c: &Cred) {
    s.start(Tag::Cred);
    meta(s, c.meta.as_ref());
    data(s, &c.data);
    s.end(Tag::Cred);
}

fn data<S: Sink + ?Sized>(s: &mut S, d: &Data) {
    match d {
        Data::Text(t) => s.leaf(Tag::Data, t),
        Data::Opaque(b) if b.is_empty() => s.empty(Tag::Data),
        Data::Opaque(b) => {
            s.start(Tag::Data);
            s.opaque(b);
            s.end(Tag::Data);
        }
    }
}

fn meta<S: Sink + ?Sized>(s: &mut S, m: Option<&Meta>) {
    let Some(m) = m else { return };
    s.start(Tag::Meta);
    // MetInf 1.2 DTD order: Format, Type, Mark, Size, Anchor, Version, NextNonce, MaxMsgSize,
    // MaxObjSize, EMI, Mem.
    if let Some(v) = &m.format {
        s.leaf(Tag::Format, v);
    }
    if let Some(v) = &m.type_ {
        s.leaf(Tag::Type, v);
    }
    if let Some(v) = &m.mark {
        s.leaf(Tag::Mark, v);
    }
    if let Some(v) = m.size {
        s.number(Tag::Size, v);
    }
    if let Some(v) = &m.version {
        s.leaf(Tag::Version, v);
    }
    if let Some(v) = &m.next_nonce {
        s.leaf(Tag::NextNonce, v);
    }
    if let Some(v) = m.max_msg_size {
        s.number(Tag::MaxMsgSize, v);
    }
    if let Some(v) = m.max_obj_size {
        s.number(Tag::MaxObjSize, v);
    }
    for e in &m.emi {
        s.leaf(Tag::EMI, e);
    }
    s.end(Tag::Meta);
}

/// Writes one command (recursively for Atomic and Sequence).
pub(crate) fn command<S: Sink + ?Sized>(s: &mut S, c: &Command) {
    match c {
        Command::Add(c) => item_command(s, Tag::Add, c, true),
        Command::Replace(c) => item_command(s, Tag::Replace, c, true),
        Command::Copy(c) => item_command(s, Tag::Copy, c, false),
        Command::Delete(c) => item_command(s, Tag::Delete, c, false),
        Command::Get(c) => item_command(s, Tag::Get, c, false),
        Command::Alert(a) => alert(s, a),
        Command::Exec(e) => exec(s, e),
        Command::Atomic(c) => container(s, Tag::Atomic, c),
        Command::Sequence(c) => container(s, Tag::Sequence, c),
        Command::Results(r) => results(s, r),
        Command::Status(st) => status(s, st),
    }
}

fn item_command<S: Sink + ?Sized>(s: &mut S, tag: Tag, c: &ItemCommand, always_data: bool) {
    s.start(tag);
    s.number(Tag::CmdID, c.cmd_id.into());
    flag(s, Tag::NoResp, c.no_resp);
    if let Some(cr) = &c.cred {
        cred(s, cr);
    }
    meta(s, c.meta.as_ref());
    for i in &c.items {
        item(s, i, always_data);
    }
    s.end(tag);
}

fn item<S: Sink + ?Sized>(s: &mut S, i: &Item, always_data: bool) {
    s.start(Tag::Item);
    if let Some(t) = &i.target {
        location(s, Tag::Target, t);
    }
    if let Some(src) = &i.source {
        location(s, Tag::Source, src);
    }
    meta(s, i.meta.as_ref());
    match &i.data {
        Some(d) => data(s, d),
        None if always_data => s.empty(Tag::Data),
        None => {}
    }
    flag(s, Tag::MoreData, i.more_data);
    s.end(Tag::Item);
}

fn alert<S: Sink + ?Sized>(s: &mut S, a: &Alert) {
    s.start(Tag::Alert);
    s.number(Tag::CmdID, a.cmd_id.into());
    flag(s, Tag::NoResp, a.no_resp);
    if let Some(c) = &a.cred {
        cred(s, c);
    }
    // SyncML RepPro 1.2 DTD: Alert (CmdID, NoResp?, Cred?, Data?, Correlator?, Item*) —
    // the alert code comes before the correlator.
    s.number(Tag::Data, a.code.0.into());
    if let Some(c) = &a.correlator {
        s.leaf(Tag::Correlator, c);
    }
    for i in &a.items {
        item(s, i, false);
    }
    s.end(Tag::Alert);
}

fn exec<S: Sink + ?Sized>(s: &mut S, e: &Exec) {
    s.start(Tag::Exec);
    s.number(Tag::CmdID, e.cmd_id.into());
    flag(s, Tag::NoResp, e.no_resp);
    if let Some(c) = &e.cred {
        cred(s, c);
    }
    meta(s, e.meta.as_ref());
    if let Some(c) = &e.correlator {
        s.leaf(Tag::Correlator, c);
    }
    item(s, &e.item, false);
    s.end(Tag::Exec);
}

fn container<S: Sink + ?Sized>(s: &mut S, tag: Tag, c: &Container) {
    s.start(tag);
    s.number(Tag::CmdID, c.cmd_id.into());
    flag(s, Tag::NoResp, c.no_resp);
    meta(s, c.meta.as_ref());
    for inner in &c.commands {
        command(s, inner);
    }
    s.end(tag);
}

fn refs<S: Sink + ?Sized>(s: &mut S, target_refs: &[String], source_refs: &[String]) {
    for r in target_refs {
        s.leaf(Tag::TargetRef, r);
    }
    for r in source_refs {
        s.leaf(Tag::SourceRef, r);
    }
}

fn results<S: Sink + ?Sized>(s: &mut S, r: &Results) {
    s.start(Tag::Results);
    s.number(Tag::CmdID, r.cmd_id.into());
    if let Some(m) = r.msg_ref {
        s.number(Tag::MsgRef, m.into());
    }
    s.number(Tag::CmdRef, r.cmd_ref.into());
    meta(s, r.meta.as_ref());
    refs(s, &r.target_refs, &r.source_refs);
    for i in &r.items {
        item(s, i, false);
    }
    s.end(Tag::Results);
}

fn status<S: Sink + ?Sized>(s: &mut S, st: &Status) {
    s.start(Tag::Status);
    s.number(Tag::CmdID, st.cmd_id.into());
    s.number(Tag::MsgRef, st.msg_ref.into());
    s.number(Tag::CmdRef, st.cmd_ref.into());
    s.leaf(Tag::Cmd, &st.cmd);
    refs(s, &st.target_refs, &st.source_refs);
    if let Some(c) = &st.cred {
        cred(s, c);
    }
    if let Some(ch) = &st.chal {
        s.start(Tag::Chal);
        meta(s, Some(&ch.meta));
        s.end(Tag::Chal);
    }
    s.number(Tag::Data, st.code.0.into());
    for i in &st.items {
        item(s, i, false);
    }
    s.end(Tag::Status);
}
