//! The XML lexical codec: a [`Source`] over quick-xml events and a [`Sink`] that writes
//! SyncML XML directly into bytes.
//!
//! Reading is namespace-tolerant on purpose: elements are matched by local name, so
//! `SYNCML:SYNCML1.1`, `SYNCML:SYNCML1.2`, MetInf as a default namespace or under a prefix, and
//! no namespace at all are all read the same way. Entities and character references are
//! resolved, CDATA is text, and markup embedded in `<Data>` (some clients put a TNDS document
//! there unescaped) is kept as text exactly as it appears in the input.
//!
//! Writing is canonical: one fixed layout (MetInf elements carry `xmlns="syncml:metinf"`, as the
//! captured clients send it), no whitespace unless pretty-printing was asked for.

use crate::error::{DecodeError, DecodeErrorKind, Limits, Warning};
use crate::event::{Ev, Sink, Source};
use crate::model::Data;
use crate::tag::Tag;
use base64::Engine as _;
use quick_xml::events::Event;
use std::borrow::Cow;

/// Where encoded bytes go: a buffer, or only a running count (the size calculator).
pub(crate) trait Out {
    fn put(&mut self, bytes: &[u8]);
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts bytes instead of storing them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counter(pub(crate) usize);

impl Out for Counter {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// The XML declaration every encoded message starts with.
pub(crate) const DECLARATION: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// The SyncML namespace for a `VerDTD`.
pub(crate) fn namespace(ver_dtd: &str) -> &'static str {
    match ver_dtd {
        "1.0" => "SYNCML:SYNCML1.0",
        "1.1" => "SYNCML:SYNCML1.1",
        _ => "SYNCML:SYNCML1.2",
    }
}

/// Writes SyncML XML.
#[derive(Clone)]
pub(crate) struct XmlSink<O: Out> {
    pub(crate) out: O,
    namespace: &'static str,
    pretty: bool,
    depth: usize,
    /// The last thing written closed an element: the next end tag goes on its own line.
    after_child: bool,
    /// Something was written already: the next element starts a new line.
    started: bool,
}

impl<O: Out> XmlSink<O> {
    pub(crate) fn new(out: O, namespace: &'static str, pretty: bool) -> Self {
        Self {
            out,
            namespace,
            pretty,
            depth: 0,
            after_child: false,
            started: false,
        }
    }

    fn indent(&mut self) {
        if self.pretty && self.started {
            self.out.put(b"\n");
            for _ in 0..self.depth {
                self.out.put(b"  ");
            }
        }
    }

    fn open(&mut self, tag: Tag) {
        self.indent();
        self.started = true;
        self.out.put(b"<");
        self.out.put(tag.name().as_bytes());
        if tag == Tag::SyncML {
            self.out.put(b" xmlns=\"");
            self.out.put(self.namespace.as_bytes());
            self.out.put(b"\"");
        } else if tag.is_metinf() {
            self.out.put(b" xmlns=\"syncml:metinf\"");
        }
    }
}

impl<O: Out> Sink for XmlSink<O> {
    fn start(&mut self, tag: Tag) {
        self.open(tag);
        self.out.put(b">");
        self.depth += 1;
        self.after_child = false;
    }

    fn end(&mut self, tag: Tag) {
        self.depth = self.depth.saturating_sub(1);
        if self.after_child {
            self.indent();
        }
        self.out.put(b"</");
        self.out.put(tag.name().as_bytes());
        self.out.put(b">");
        self.after_child = true;
    }

    fn empty(&mut self, tag: Tag) {
        self.open(tag);
        self.out.put(b"/>");
        self.after_child = true;
    }

    fn text(&mut self, text: &str) {
        escape_into(&mut self.out, text);
        self.after_child = false;
    }

    fn opaque(&mut self, bytes: &[u8]) {
        // WBXML clients put plain strings in OPAQUE too (the captured client does): those stay
        // text. XML has no binary, so anything else is written base64-encoded, as DM carries
        // binary values in XML (format b64). A C string's NUL terminator is not part of the
        // text (decision 71); it would otherwise become U+FFFD.
        match std::str::from_utf8(crate::model::strip_nul_terminator(bytes)) {
            Ok(text) => escape_into(&mut self.out, text),
            Err(_) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                self.out.put(b64.as_bytes());
            }
        }
        self.after_child = false;
    }
}

/// Escapes character data. `\r` becomes `&#13;` so that it survives XML end-of-line
/// normalisation; characters XML 1.0 cannot carry at all become U+FFFD.
fn escape_into<O: Out>(out: &mut O, text: &str) {
    let bytes = text.as_bytes();
    let needs =
        |b: u8| matches!(b, b'&' | b'<' | b'>' | b'\r') || (b < 0x20 && b != b'\t' && b != b'\n');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs(b) {
            continue;
        }
        out.put(&bytes[start..i]);
        out.put(match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#13;",
            _ => "\u{FFFD}".as_bytes(),
        });
        start = i + 1;
    }
    out.put(&bytes[start..]);
}

/// Makes the input UTF-8 text: strips a BOM, and transcodes ISO-8859-1 when the declaration
/// says so (older handsets). Anything else that is not UTF-8 is an error with its offset.
pub(crate) fn to_text(input: &[u8]) -> Result<Cow<'_, str>, DecodeError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    match std::str::from_utf8(input) {
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(e) => {
            let head = &input[..input.len().min(100)];
            let head = String::from_utf8_lossy(head).to_ascii_lowercase();
            if head.starts_with("<?xml") && (head.contains("iso-8859-1") || head.contains("latin1"))
            {
                Ok(Cow::Owned(input.iter().map(|&b| b as char).collect()))
            } else {
                Err(DecodeError::new(
                    DecodeErrorKind::InvalidUtf8,
                    e.valid_up_to(),
                ))
            }
        }
    }
}

/// Reads SyncML XML.
pub(crate) struct XmlSource<'a> {
    reader: quick_xml::Reader<&'a [u8]>,
    input: &'a str,
    limits: Limits,
    depth: usize,
    elements: usize,
    done: bool,
}

impl<'a> XmlSource<'a> {
    pub(crate) fn new(input: &'a str, limits: Limits) -> Self {
        let mut reader = quick_xml::Reader::from_str(input);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.trim_text(false);
        Self {
            reader,
            input,
            limits,
            depth: 0,
            elements: 0,
            done: false,
        }
    }

    fn position(&self) -> usize {
        usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX)
    }

    fn syntax(&self, e: quick_xml::Error) -> DecodeError {
        let offset = usize::try_from(self.reader.error_position()).unwrap_or(usize::MAX);
        DecodeError::new(DecodeErrorKind::Xml(e.to_string()), offset)
    }

    /// One raw quick-xml event with limits applied; `Eof` inside the root is an error.
    fn raw(&mut self) -> Result<Event<'a>, DecodeError> {
        let ev = self.reader.read_event().map_err(|e| self.syntax(e))?;
        match &ev {
            Event::Start(_) => {
                self.depth += 1;
                self.elements += 1;
                if self.depth > self.limits.max_depth {
                    return Err(self.limit("max_depth", self.limits.max_depth));
                }
                if self.elements > self.limits.max_elements {
                    return Err(self.limit("max_elements", self.limits.max_elements));
                }
            }
            Event::End(_) => self.depth = self.depth.saturating_sub(1),
            Event::Eof if self.elements > 0 => {
                return Err(DecodeError::new(
                    DecodeErrorKind::UnexpectedEof("SyncML"),
                    self.position(),
                ));
            }
            _ => {}
        }
        Ok(ev)
    }

    fn limit(&self, name: &'static str, limit: usize) -> DecodeError {
        DecodeError::new(DecodeErrorKind::Limit { name, limit }, self.position())
    }
}

/// Resolves an entity or character reference; an unknown entity is kept literally.
fn resolve_ref(name: &str, warnings: Option<(&mut Vec<Warning>, usize)>) -> Cow<'static, str> {
    if let Some(text) = quick_xml::escape::resolve_predefined_entity(name) {
        return Cow::Borrowed(text);
    }
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse().ok(),
        };
        if let Some(c) = code.and_then(char::from_u32) {
            return Cow::Owned(c.to_string());
        }
    }
    if let Some((w, offset)) = warnings {
        w.push(Warning {
            offset,
            message: format!("unknown entity &{name}; kept as text"),
        });
    }
    Cow::Owned(format!("&{name};"))
}

impl<'a> Source<'a> for XmlSource<'a> {
    fn next_event(&mut self) -> Result<Option<Ev<'a>>, DecodeError> {
        loop {
            if self.done {
                // Whatever follows the root element (padding, a second document) is ignored.
                return Ok(None);
            }
            return Ok(Some(match self.raw()? {
                Event::Start(e) => match Tag::from_name(e.local_name().as_ref().as_bytes()) {
                    Some(tag) => Ev::Start(tag),
                    None => Ev::Unknown(Cow::Owned(e.local_name().as_ref().to_owned())),
                },
                Event::End(_) => {
                    if self.depth == 0 {
                        self.done = true;
                    }
                    Ev::End
                }
                Event::Text(t) => Ev::Text(t.xml10_content()),
                Event::CData(c) => Ev::Text(c.xml10_content()),
                Event::GeneralRef(r) => Ev::Text(resolve_ref(&r, None)),
                Event::Eof => return Ok(None),
                Event::Empty(_)
                | Event::Comment(_)
                | Event::Decl(_)
                | Event::PI(_)
                | Event::DocType(_) => continue,
            }));
        }
    }

    fn read_data(&mut self, warnings: &mut Vec<Warning>) -> Result<Data, DecodeError> {
        let content_start = self.position();
        let base = self.depth;
        let mut text = String::new();
        let mut markup = false;
        loop {
            let before = self.position();
            match self.raw()? {
                Event::Text(t) => text.push_str(&t.xml10_content()),
                Event::CData(c) => text.push_str(&c.xml10_content()),
                Event::GeneralRef(r) => text.push_str(&resolve_ref(&r, Some((warnings, before)))),
                Event::Start(_) => markup = true,
                Event::End(_) if self.depth < base => {
                    if markup {
                        // Keep embedded markup exactly as sent (escaped form and all): it is a
                        // document of its own, e.g. TNDS, for a higher layer to parse.
                        let raw = self.input.get(content_start..before).unwrap_or_default();
                        warnings.push(Warning {
                            offset: content_start,
                            message: "markup inside <Data> kept as text".into(),
                        });
                        return Ok(Data::Text(raw.to_owned()));
                    }
                    return Ok(Data::Text(text));
                }
                _ => {}
            }
        }
    }

    fn offset(&self) -> usize {
        self.position()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut v = Vec::new();
        escape_into(&mut v, s);
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn escapes_markup_and_carriage_returns() {
        assert_eq!(escaped("a<b>&c\r\nd"), "a&lt;b&gt;&amp;c&#13;\nd");
        assert_eq!(escaped("plain"), "plain");
        assert_eq!(escaped("\u{1}x"), "\u{FFFD}x");
    }

    #[test]
    fn counter_matches_buffer() {
        let mut c = Counter::default();
        escape_into(&mut c, "a<b>&c\r\nd\u{2}");
        let mut v = Vec::new();
        escape_into(&mut v, "a<b>&c\r\nd\u{2}");
        assert_eq!(c.0, v.len());
    }

    #[test]
    fn latin1_is_transcoded_when_declared() {
        let input = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xE9</a>";
        assert!(to_text(input).is_ok_and(|t| t.contains('\u{e9}')));
        let err = to_text(b"<a>\xE9</a>").err();
        assert_eq!(err.map(|e| e.offset), Some(3));
    }
}
