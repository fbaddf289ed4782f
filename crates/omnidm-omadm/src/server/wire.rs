//! Turning queued [`DmCommand`]s into SyncML commands, and small helpers (UI alert options,
//! session-token text, nonce derivation).

use omnidm_syncml::{
    Alert, AlertCode, Command, Container, Data, Exec, Item, ItemCommand, Location, Meta,
};

use super::types::{CommandTag, DmCommand, EchoType, InputType, NodeWrite, UiAlert, UiKind};

/// What a wire command sent in one of our messages stands for.
#[derive(Debug, Clone)]
pub(crate) enum SentKind {
    /// Add/Replace/Delete/Exec/Copy.
    Plain,
    /// A Get: Results are expected too.
    Get,
    /// A user-interaction alert.
    Ui(UiKind),
    /// An Atomic (`true`) or Sequence (`false`) with the refs of its inner commands.
    Container {
        atomic: bool,
        inner: Vec<(u32, u32)>,
    },
    /// A non-final chunk of a large object: expect 213.
    Chunk,
}

/// One wire command we sent, waiting for its status.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub tag: CommandTag,
    pub kind: SentKind,
    /// The command as queued, for top-level commands: requeued when the device refused our
    /// credentials and so executed nothing.
    pub original: Option<DmCommand>,
    /// Set once the final status was reported (or, for a chunk, the 213 arrived).
    pub resolved: bool,
    /// Final status of an inner command, for deriving its container's status.
    pub status: Option<omnidm_syncml::StatusCode>,
}

/// Builds the wire form of `cmd` with CmdIDs from `next_id`, recording what each wire command
/// stands for in `sent` (keyed by CmdID; the caller adds the MsgID).
pub(crate) fn to_wire(
    tag: CommandTag,
    cmd: &DmCommand,
    top_level: bool,
    msg_id: u32,
    next_id: &mut u32,
    sent: &mut Vec<(u32, Sent)>,
) -> Command {
    let cmd_id = *next_id;
    *next_id = next_id.saturating_add(1);
    let original = top_level.then(|| cmd.clone());
    let record = |kind: SentKind, sent: &mut Vec<(u32, Sent)>| {
        sent.push((
            cmd_id,
            Sent {
                tag,
                kind,
                original: original.clone(),
                resolved: false,
                status: None,
            },
        ))
    };
    match cmd {
        DmCommand::Get { uri } => {
            record(SentKind::Get, sent);
            Command::Get(ItemCommand {
                cmd_id,
                items: vec![Item::target(uri.to_string())],
                ..ItemCommand::default()
            })
        }
        DmCommand::Add { items } | DmCommand::Replace { items } => {
            record(SentKind::Plain, sent);
            let ic = ItemCommand {
                cmd_id,
                items: items.iter().map(write_item).collect(),
                ..ItemCommand::default()
            };
            if matches!(cmd, DmCommand::Add { .. }) {
                Command::Add(ic)
            } else {
                Command::Replace(ic)
            }
        }
        DmCommand::Delete { uri } => {
            record(SentKind::Plain, sent);
            Command::Delete(ItemCommand {
                cmd_id,
                items: vec![Item::target(uri.to_string())],
                ..ItemCommand::default()
            })
        }
        DmCommand::Exec {
            uri,
            data,
            correlator,
        } => {
            record(SentKind::Plain, sent);
            let mut item = Item::target(uri.to_string());
            item.data = data.clone().map(Data::Text);
            Command::Exec(Exec {
                cmd_id,
                correlator: correlator.clone(),
                item,
                ..Exec::default()
            })
        }
        DmCommand::Copy { from, to } => {
            record(SentKind::Plain, sent);
            Command::Copy(ItemCommand {
                cmd_id,
                items: vec![Item {
                    target: Some(Location::new(to.to_string())),
                    source: Some(Location::new(from.to_string())),
                    ..Item::default()
                }],
                ..ItemCommand::default()
            })
        }
        DmCommand::Atomic(inner) | DmCommand::Sequence(inner) => {
            let atomic = matches!(cmd, DmCommand::Atomic(_));
            let start = sent.len();
            sent.push((
                cmd_id,
                Sent {
                    tag,
                    kind: SentKind::Container {
                        atomic,
                        inner: Vec::new(),
                    },
                    original: original.clone(),
                    resolved: false,
                    status: None,
                },
            ));
            let commands: Vec<Command> = inner
                .iter()
                .map(|(t, c)| to_wire(*t, c, false, msg_id, next_id, sent))
                .collect();
            let refs: Vec<(u32, u32)> = commands.iter().map(|c| (msg_id, c.cmd_id())).collect();
            if let Some((_, s)) = sent.get_mut(start) {
                s.kind = SentKind::Container {
                    atomic,
                    inner: refs,
                };
            }
            let c = Container {
                cmd_id,
                commands,
                ..Container::default()
            };
            if atomic {
                Command::Atomic(c)
            } else {
                Command::Sequence(c)
            }
        }
        DmCommand::UserInteraction(ui) => {
            record(SentKind::Ui(ui.kind), sent);
            Command::Alert(ui_alert(cmd_id, ui))
        }
    }
}

fn write_item(w: &NodeWrite) -> Item {
    let meta = Meta {
        format: w.format.clone(),
        type_: w.mime_type.clone(),
        ..Meta::default()
    };
    Item {
        target: Some(Location::new(w.uri.to_string())),
        meta: (!meta.is_empty()).then_some(meta),
        data: Some(w.data.clone()),
        ..Item::default()
    }
}

/// The alert code of a UI kind.
pub(crate) fn ui_code(kind: UiKind) -> AlertCode {
    match kind {
        UiKind::Display => AlertCode::DISPLAY,
        UiKind::Confirm => AlertCode::CONFIRM_OR_REJECT,
        UiKind::TextInput => AlertCode::TEXT_INPUT,
        UiKind::SingleChoice => AlertCode::SINGLE_CHOICE,
        UiKind::MultipleChoice => AlertCode::MULTIPLE_CHOICE,
    }
}

/// A user-interaction Alert (DM Protocol 1.2 §10.2): Item 1 the options (an empty item when
/// there are none), Item 2 the text, Items 3… the choices.
pub(crate) fn ui_alert(cmd_id: u32, ui: &UiAlert) -> Alert {
    let mut items = vec![
        Item {
            data: Some(Data::Text(ui_options(ui))),
            ..Item::default()
        },
        Item {
            data: Some(Data::Text(ui.text.clone())),
            ..Item::default()
        },
    ];
    if matches!(ui.kind, UiKind::SingleChoice | UiKind::MultipleChoice) {
        items.extend(ui.choices.iter().map(|c| Item {
            data: Some(Data::Text(c.clone())),
            ..Item::default()
        }));
    }
    Alert {
        cmd_id,
        no_resp: false,
        cred: None,
        correlator: None,
        code: ui_code(ui.kind),
        items,
    }
}

/// The options string of DM Protocol 1.2 §10.3: `MINDT=..&MAXDT=..&DR=..&MAXLEN=..&IT=..&ET=..`,
/// values URL-encoded (RFC 2396; a space as `+`, as in the spec's `DR=John+Doe`).
pub(crate) fn ui_options(ui: &UiAlert) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(v) = ui.min_display_time {
        parts.push(format!("MINDT={v}"));
    }
    if let Some(v) = ui.max_display_time {
        parts.push(format!("MAXDT={v}"));
    }
    if let Some(v) = &ui.default_response {
        parts.push(format!("DR={}", url_encode(v)));
    }
    if ui.kind == UiKind::TextInput {
        if let Some(v) = ui.max_len {
            parts.push(format!("MAXLEN={v}"));
        }
        if let Some(it) = ui.input_type {
            let c = match it {
                InputType::Alphanumeric => 'A',
                InputType::Numeric => 'N',
                InputType::Date => 'D',
                InputType::Time => 'T',
                InputType::Phone => 'P',
                InputType::Ip => 'I',
            };
            parts.push(format!("IT={c}"));
        }
        if let Some(et) = ui.echo_type {
            let c = match et {
                EchoType::Text => 'T',
                EchoType::Password => 'P',
            };
            parts.push(format!("ET={c}"));
        }
    }
    parts.join("&")
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Lower-case hex of the session token.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 32 hex digits.
pub(crate) fn unhex16(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// The session token in a URI's `s=` query parameter, as our `RespURI` carries it.
pub fn token_from_uri(uri: &str) -> Option<[u8; 16]> {
    let (_, query) = uri.split_once('?')?;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("s="))
        .and_then(unhex16)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn options_string() {
        let mut ui = UiAlert::new(UiKind::TextInput, "Name?");
        ui.min_display_time = Some(5);
        ui.max_display_time = Some(30);
        ui.default_response = Some("John Doe".into());
        ui.max_len = Some(20);
        ui.input_type = Some(InputType::Alphanumeric);
        ui.echo_type = Some(EchoType::Password);
        assert_eq!(
            ui_options(&ui),
            "MINDT=5&MAXDT=30&DR=John+Doe&MAXLEN=20&IT=A&ET=P"
        );
        let c = UiAlert::new(UiKind::Confirm, "ok?");
        assert_eq!(ui_options(&c), "");
    }

    #[test]
    fn token_round_trip() {
        let t = [0xab; 16];
        let uri = format!("http://x/dm?s={}", hex(&t));
        assert_eq!(token_from_uri(&uri), Some(t));
        assert_eq!(token_from_uri("http://x/dm?s=zz"), None);
        assert_eq!(token_from_uri("http://x/dm"), None);
    }
}
