//! `omnidm syncml inspect`: a summary of one message for a person reading captured traffic,
//! as text or JSON, with an optional check of the header credentials.
//!
//! Secrets: a Basic credential shows its user name only; MD5 digests are shown as "digest".
//! The JSON carries full item values (for scripts), the text truncates them.

use std::fmt::Write as _;

use anyhow::Context as _;
use base64::Engine as _;
use omnidm_syncml::auth::{
    AuthError, AuthType, Credentials, DigestEncoding, Nonce, NonceForm, Verified, basic_decode,
    verify_cred_element,
};
use omnidm_syncml::{Command, Cred, Data, Decoded, Encoding, Header, Item, Location, Meta};
use serde_json::{Value, json};

use super::Outcome;
use super::io::{to_hex, write_stdout};
use super::syncml::{InspectArgs, decode_input, encoding_name};

/// Longest value shown in the text summary, in characters.
const MAX_VALUE_CHARS: usize = 48;

/// Runs `syncml inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<Outcome> {
    let input = super::io::read_input(&args.file)?;
    let decoded = decode_input(&input)?;
    let check = match (&args.user, &args.password) {
        (Some(user), Some(password)) => {
            let nonce = match args.nonce.as_deref() {
                None => Nonce::default(),
                Some(b64) => Nonce::from_b64(b64)
                    .with_context(|| format!("--nonce {b64:?} is not valid base64"))?,
            };
            Some(check_cred(
                &decoded.message.header,
                &Credentials::new(user.as_str(), password.as_str()),
                &nonce,
            ))
        }
        _ => None,
    };
    let out = if args.json {
        let mut s = serde_json::to_string_pretty(&to_json(
            &input.name,
            input.bytes.len(),
            &decoded,
            check.as_ref(),
        ))
        .context("cannot serialise the summary as JSON")?;
        s.push('\n');
        s
    } else {
        to_text(&input.name, input.bytes.len(), &decoded, check.as_ref())
    };
    write_stdout(out.as_bytes())?;
    Ok(match check {
        Some(CredCheck { result: Err(_), .. }) => Outcome::NotVerified,
        _ => Outcome::Ok,
    })
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

/// The result of checking the header `Cred` against credentials given on the command line.
struct CredCheck {
    /// The scheme named by the `Cred` (Basic when it names none, the SyncML default).
    auth_type: Option<AuthType>,
    /// Verified, or why not (in words; never containing a secret).
    result: Result<Verified, String>,
}

/// What the text of a `Cred` is on the wire. WBXML devices may send an MD5 digest as raw
/// `OPAQUE` bytes; `verify_cred` wants the base64 text, so such bytes are re-encoded.
fn cred_wire_text(data: &Data) -> String {
    match data {
        Data::Text(s) => s.clone(),
        Data::Opaque(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => base64::engine::general_purpose::STANDARD.encode(b),
        },
    }
}

fn cred_type(cred: &Cred) -> Option<&str> {
    cred.meta.as_ref().and_then(|m| m.type_.as_deref())
}

fn cred_format(cred: &Cred) -> Option<&str> {
    cred.meta.as_ref().and_then(|m| m.format.as_deref())
}

fn check_cred(header: &Header, expected: &Credentials, nonce: &Nonce) -> CredCheck {
    let Some(cred) = &header.cred else {
        return CredCheck {
            auth_type: None,
            result: Err("the header has no Cred".into()),
        };
    };
    let auth_type = match cred_type(cred) {
        None => AuthType::Basic,
        Some(t) => match AuthType::from_wire(t) {
            Some(a) => a,
            None => {
                return CredCheck {
                    auth_type: None,
                    result: Err(format!("unknown authentication type {t:?}")),
                };
            }
        },
    };
    let result = verify_cred_element(cred, expected, nonce).map_err(|e| match e {
        AuthError::Rejected => match auth_type {
            AuthType::Md5 => "invalid credentials (wrong name, secret or nonce)".to_string(),
            _ => "invalid credentials (wrong name or password)".to_string(),
        },
        other => other.to_string(),
    });
    CredCheck {
        auth_type: Some(auth_type),
        result,
    }
}

fn nonce_form_name(f: NonceForm) -> &'static str {
    match f {
        NonceForm::Raw => "raw",
        NonceForm::B64Text => "b64-text",
    }
}

fn digest_encoding_name(e: DigestEncoding) -> &'static str {
    match e {
        DigestEncoding::Raw => "raw",
        DigestEncoding::Hex => "hex",
    }
}

/// The header `Cred` described without its secret: Basic shows the user name, MD5 "digest".
fn describe_cred(cred: &Cred) -> (String, Value) {
    let type_ = cred_type(cred);
    let format = cred_format(cred);
    let mut text = type_.unwrap_or("no type (Basic by default)").to_string();
    if let Some(f) = format {
        let _ = write!(text, " ({f})");
    }
    let mut json = json!({ "type": type_, "format": format });
    match type_.map_or(Some(AuthType::Basic), AuthType::from_wire) {
        Some(AuthType::Basic) => match basic_decode(&cred_wire_text(&cred.data)) {
            Ok(c) => {
                let _ = write!(text, ", user {:?} (password not shown)", c.username);
                json["user"] = json!(c.username);
            }
            Err(e) => {
                let _ = write!(text, ", undecodable: {e}");
                json["error"] = json!(e.to_string());
            }
        },
        Some(AuthType::Md5 | AuthType::Hmac) => {
            text.push_str(", digest");
            json["digest"] = json!(true);
        }
        None => {
            let _ = write!(text, ", {} bytes of data", cred.data.len());
        }
    }
    (text, json)
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

fn other(e: Encoding) -> Encoding {
    match e {
        Encoding::Xml => Encoding::Wbxml,
        Encoding::Wbxml => Encoding::Xml,
    }
}

fn location(l: &Location) -> String {
    match &l.loc_name {
        Some(name) => format!("{} ({name})", l.loc_uri),
        None => l.loc_uri.clone(),
    }
}

fn to_text(name: &str, size: usize, d: &Decoded, check: Option<&CredCheck>) -> String {
    let m = &d.message;
    let h = &m.header;
    let mut s = String::new();
    let alt = other(d.encoding);
    let _ = writeln!(s, "file       {name}");
    let _ = writeln!(
        s,
        "encoding   {}, {size} bytes (re-encoded as {}: {} bytes)",
        encoding_name(d.encoding),
        encoding_name(alt),
        omnidm_syncml::encoded_size(m, alt)
    );
    let _ = writeln!(
        s,
        "version    VerDTD {}, VerProto {}",
        h.ver_dtd, h.ver_proto
    );
    let _ = writeln!(
        s,
        "session    SessionID {}, MsgID {}",
        h.session_id, h.msg_id
    );
    let _ = writeln!(
        s,
        "route      {} → {}",
        location(&h.source),
        location(&h.target)
    );
    if let Some(uri) = &h.resp_uri {
        let _ = writeln!(s, "RespURI    {uri}");
    }
    if let Some(meta) = &h.meta {
        let mut limits = Vec::new();
        if let Some(v) = meta.max_msg_size {
            limits.push(format!("MaxMsgSize {v}"));
        }
        if let Some(v) = meta.max_obj_size {
            limits.push(format!("MaxObjSize {v}"));
        }
        if !limits.is_empty() {
            let _ = writeln!(s, "limits     {}", limits.join(", "));
        }
    }
    if h.no_resp {
        let _ = writeln!(s, "NoResp     yes: no status wanted for any command");
    }
    match &h.cred {
        Some(cred) => {
            let _ = writeln!(s, "auth       {}", describe_cred(cred).0);
        }
        None => {
            let _ = writeln!(s, "auth       none");
        }
    }
    let _ = writeln!(s, "commands   {}", m.body.commands.len());
    for c in &m.body.commands {
        command_text(&mut s, c, 1);
    }
    let _ = writeln!(
        s,
        "Final      {}",
        if m.body.final_ {
            "yes: last message of the package"
        } else {
            "no: more messages of this package follow"
        }
    );
    if !d.warnings.is_empty() {
        let _ = writeln!(s, "warnings   {} (printed above)", d.warnings.len());
    }
    if let Some(c) = check {
        let _ = match &c.result {
            Ok(v) => writeln!(
                s,
                "auth check verified: {} as {:?}{}",
                v.auth_type,
                v.username,
                quirks(v)
            ),
            Err(e) => writeln!(s, "auth check FAILED: {e}"),
        };
    }
    s
}

/// Non-standard forms that matched, worth knowing when debugging a device.
fn quirks(v: &Verified) -> String {
    let mut q = Vec::new();
    if v.nonce_form == NonceForm::B64Text {
        q.push("nonce hashed as its base64 text (client quirk)");
    }
    if v.digest_encoding == DigestEncoding::Hex {
        q.push("digest sent as hex text (quirk)");
    }
    if q.is_empty() {
        String::new()
    } else {
        format!(" [{}]", q.join("; "))
    }
}

fn meta_text(meta: Option<&Meta>) -> String {
    let Some(m) = meta else {
        return String::new();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(f) = &m.format {
        parts.push(f.clone());
    }
    if let Some(t) = &m.type_ {
        parts.push(t.clone());
    }
    if let Some(sz) = m.size {
        parts.push(format!("size {sz}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// A value, quoted and cut to [`MAX_VALUE_CHARS`]; binary shown as a hex prefix.
fn value_text(data: &Data) -> String {
    match data.as_text() {
        Some(t) => {
            let count = t.chars().count();
            if count > MAX_VALUE_CHARS {
                let cut: String = t.chars().take(MAX_VALUE_CHARS).collect();
                format!("{cut:?}… ({count} chars)")
            } else {
                format!("{t:?}")
            }
        }
        None => {
            let bytes = data.as_bytes();
            let shown = bytes.get(..16).unwrap_or(bytes);
            let more = if bytes.len() > shown.len() { "…" } else { "" };
            format!("<{} bytes binary: {}{more}>", bytes.len(), to_hex(shown))
        }
    }
}

fn item_text(item: &Item) -> String {
    let mut s = String::new();
    match (&item.source, &item.target) {
        (Some(src), Some(tgt)) => {
            let _ = write!(s, "{} → {}", location(src), location(tgt));
        }
        (Some(src), None) => {
            let _ = write!(s, "source {}", location(src));
        }
        (None, Some(tgt)) => {
            let _ = write!(s, "target {}", location(tgt));
        }
        (None, None) => {}
    }
    s.push_str(&meta_text(item.meta.as_ref()));
    if let Some(data) = &item.data {
        // Alert items (options, texts) have no address: the value alone is the item.
        let sep = if s.is_empty() { "" } else { " = " };
        let _ = write!(s, "{sep}{}", value_text(data));
    }
    if s.is_empty() {
        s.push_str("(empty item)");
    }
    if item.more_data {
        s.push_str(" [MoreData]");
    }
    s
}

/// Appends the lines of one command at nesting `depth` (1 = directly in the body).
fn command_text(s: &mut String, c: &Command, depth: usize) {
    let pad = "  ".repeat(depth);
    let sub = format!("{pad}{:14}", "");
    let mut head = format!("{pad}{:>3}  {:<9}", c.cmd_id(), c.name());
    let mut items: &[Item] = &[];
    let mut children: &[Command] = &[];
    let mut extra: Vec<String> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    match c {
        Command::Status(st) => {
            let _ = write!(
                head,
                "MsgRef/CmdRef {}/{} {} → {} ({})",
                st.msg_ref,
                st.cmd_ref,
                st.cmd,
                st.code,
                st.code.reason()
            );
            for t in &st.target_refs {
                let _ = write!(head, "  TargetRef {t}");
            }
            for t in &st.source_refs {
                let _ = write!(head, "  SourceRef {t}");
            }
            if let Some(chal) = &st.chal {
                extra.push(chal_text(&chal.meta));
            }
            if let Some(cred) = &st.cred {
                extra.push(format!("Cred {}", describe_cred(cred).0));
            }
            items = &st.items;
        }
        Command::Alert(a) => {
            let _ = write!(head, "{} ({})", a.code, a.code.name());
            if let Some(corr) = &a.correlator {
                let _ = write!(head, "  Correlator {corr}");
            }
            if a.no_resp {
                flags.push("NoResp".into());
            }
            if let Some(cred) = &a.cred {
                flags.push(format!("Cred {}", cred_type(cred).unwrap_or("basic")));
            }
            items = &a.items;
        }
        Command::Add(ic)
        | Command::Copy(ic)
        | Command::Delete(ic)
        | Command::Get(ic)
        | Command::Replace(ic) => {
            head.push_str(&items_head(&ic.items, ic.meta.as_ref()));
            if ic.items.len() != 1 {
                items = &ic.items;
            }
            if ic.no_resp {
                flags.push("NoResp".into());
            }
            if let Some(cred) = &ic.cred {
                flags.push(format!("Cred {}", cred_type(cred).unwrap_or("basic")));
            }
        }
        Command::Exec(e) => {
            head.push_str(&item_text(&e.item));
            head.push_str(&meta_text(e.meta.as_ref()));
            if let Some(corr) = &e.correlator {
                let _ = write!(head, "  Correlator {corr}");
            }
            if e.no_resp {
                flags.push("NoResp".into());
            }
        }
        Command::Results(r) => {
            match r.msg_ref {
                Some(m) => {
                    let _ = write!(head, "MsgRef/CmdRef {m}/{}", r.cmd_ref);
                }
                None => {
                    let _ = write!(head, "CmdRef {}", r.cmd_ref);
                }
            }
            head.push_str(&meta_text(r.meta.as_ref()));
            if r.items.len() == 1 {
                if let Some(i) = r.items.first() {
                    let _ = write!(head, ": {}", item_text(i));
                }
            } else {
                let _ = write!(head, ": {} items", r.items.len());
                items = &r.items;
            }
        }
        Command::Atomic(ct) | Command::Sequence(ct) => {
            let _ = write!(head, "{} commands", ct.commands.len());
            head.push_str(&meta_text(ct.meta.as_ref()));
            if ct.no_resp {
                flags.push("NoResp".into());
            }
            children = &ct.commands;
        }
    }
    if !flags.is_empty() {
        let _ = write!(head, " [{}]", flags.join(", "));
    }
    let _ = writeln!(s, "{}", head.trim_end());
    for e in extra {
        let _ = writeln!(s, "{sub}{e}");
    }
    for i in items {
        let _ = writeln!(s, "{sub}{}", item_text(i));
    }
    for child in children {
        command_text(s, child, depth + 2);
    }
}

/// The head of an item command: its single item inline, or the item count.
fn items_head(items: &[Item], meta: Option<&Meta>) -> String {
    let m = meta_text(meta);
    match items {
        [one] => format!("{}{m}", item_text(one)),
        many => format!("{} items{m}", many.len()),
    }
}

fn chal_text(meta: &Meta) -> String {
    let mut s = format!(
        "Chal {}",
        meta.type_
            .as_deref()
            .unwrap_or("(no type: Basic by default)")
    );
    if let Some(f) = &meta.format {
        let _ = write!(s, " ({f})");
    }
    if let Some(n) = &meta.next_nonce {
        let _ = write!(s, ", NextNonce {n}");
        match Nonce::from_b64(n) {
            Ok(nonce) => {
                let _ = write!(s, " = {}", nonce_bytes_text(nonce.as_bytes()));
            }
            Err(_) => s.push_str(" (not valid base64)"),
        }
    }
    s
}

/// Decoded nonce bytes: quoted when printable ASCII (devices often use text nonces, which is
/// exactly when the base64-text quirk bites), hex otherwise.
fn nonce_bytes_text(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        format!("{:?} ({} bytes)", String::from_utf8_lossy(b), b.len())
    } else {
        format!("hex {} ({} bytes)", to_hex(b), b.len())
    }
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

fn encoding_key(e: Encoding) -> &'static str {
    match e {
        Encoding::Xml => "xml",
        Encoding::Wbxml => "wbxml",
    }
}

fn location_json(l: &Location) -> Value {
    json!({ "loc_uri": l.loc_uri, "loc_name": l.loc_name })
}

/// A `Meta` as an object holding only the elements present.
fn meta_json(m: Option<&Meta>) -> Value {
    let Some(m) = m else {
        return Value::Null;
    };
    let mut o = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            o.insert(k.to_string(), v);
        }
    };
    put("format", json!(m.format));
    put("type", json!(m.type_));
    put("mark", json!(m.mark));
    put("size", json!(m.size));
    put("next_nonce", json!(m.next_nonce));
    put("version", json!(m.version));
    put("max_msg_size", json!(m.max_msg_size));
    put("max_obj_size", json!(m.max_obj_size));
    if !m.emi.is_empty() {
        put("emi", json!(m.emi));
    }
    Value::Object(o)
}

fn data_json(d: &Data) -> Value {
    match d.as_text() {
        Some(t) => json!({ "text": t }),
        None => json!({ "hex": to_hex(d.as_bytes()) }),
    }
}

fn item_json(i: &Item) -> Value {
    json!({
        "target": i.target.as_ref().map(location_json),
        "source": i.source.as_ref().map(location_json),
        "meta": meta_json(i.meta.as_ref()),
        "data": i.data.as_ref().map(data_json),
        "more_data": i.more_data,
    })
}

fn items_json(items: &[Item]) -> Value {
    Value::Array(items.iter().map(item_json).collect())
}

fn command_json(c: &Command) -> Value {
    let mut v = json!({ "cmd_id": c.cmd_id(), "name": c.name() });
    let fields = match c {
        Command::Status(st) => json!({
            "msg_ref": st.msg_ref,
            "cmd_ref": st.cmd_ref,
            "cmd": st.cmd,
            "code": st.code.0,
            "reason": st.code.reason(),
            "target_refs": st.target_refs,
            "source_refs": st.source_refs,
            "chal": st.chal.as_ref().map(|ch| meta_json(Some(&ch.meta))),
            "cred": st.cred.as_ref().map(|cr| describe_cred(cr).1),
            "items": items_json(&st.items),
        }),
        Command::Alert(a) => json!({
            "code": a.code.0,
            "alert": a.code.name(),
            "correlator": a.correlator,
            "no_resp": a.no_resp,
            "cred": a.cred.as_ref().map(|cr| describe_cred(cr).1),
            "items": items_json(&a.items),
        }),
        Command::Add(ic)
        | Command::Copy(ic)
        | Command::Delete(ic)
        | Command::Get(ic)
        | Command::Replace(ic) => json!({
            "no_resp": ic.no_resp,
            "cred": ic.cred.as_ref().map(|cr| describe_cred(cr).1),
            "meta": meta_json(ic.meta.as_ref()),
            "items": items_json(&ic.items),
        }),
        Command::Exec(e) => json!({
            "no_resp": e.no_resp,
            "cred": e.cred.as_ref().map(|cr| describe_cred(cr).1),
            "meta": meta_json(e.meta.as_ref()),
            "correlator": e.correlator,
            "items": items_json(std::slice::from_ref(&e.item)),
        }),
        Command::Results(r) => json!({
            "msg_ref": r.msg_ref,
            "cmd_ref": r.cmd_ref,
            "meta": meta_json(r.meta.as_ref()),
            "target_refs": r.target_refs,
            "source_refs": r.source_refs,
            "items": items_json(&r.items),
        }),
        Command::Atomic(ct) | Command::Sequence(ct) => json!({
            "no_resp": ct.no_resp,
            "meta": meta_json(ct.meta.as_ref()),
            "commands": ct.commands.iter().map(command_json).collect::<Vec<_>>(),
        }),
    };
    if let (Value::Object(dst), Value::Object(src)) = (&mut v, fields) {
        dst.extend(src);
    }
    v
}

fn to_json(name: &str, size: usize, d: &Decoded, check: Option<&CredCheck>) -> Value {
    let m = &d.message;
    let h = &m.header;
    let alt = other(d.encoding);
    let check = check.map(|c| match &c.result {
        Ok(v) => json!({
            "verified": true,
            "auth_type": v.auth_type.wire_name(),
            "user": v.username,
            "nonce_form": nonce_form_name(v.nonce_form),
            "digest_encoding": digest_encoding_name(v.digest_encoding),
        }),
        Err(e) => json!({
            "verified": false,
            "auth_type": c.auth_type.map(AuthType::wire_name),
            "error": e,
        }),
    });
    json!({
        "file": name,
        "encoding": encoding_key(d.encoding),
        "size": size,
        "size_as_other_encoding": { encoding_key(alt): omnidm_syncml::encoded_size(m, alt) },
        "header": {
            "ver_dtd": h.ver_dtd,
            "ver_proto": h.ver_proto,
            "session_id": h.session_id,
            "msg_id": h.msg_id,
            "source": location_json(&h.source),
            "target": location_json(&h.target),
            "resp_uri": h.resp_uri,
            "no_resp": h.no_resp,
            "meta": meta_json(h.meta.as_ref()),
        },
        "auth": h.cred.as_ref().map(|c| describe_cred(c).1),
        "commands": m.body.commands.iter().map(command_json).collect::<Vec<_>>(),
        "final": m.body.final_,
        "warnings": d.warnings.iter().map(|w| json!({ "offset": w.offset, "message": w.message })).collect::<Vec<_>>(),
        "auth_check": check,
    })
}
