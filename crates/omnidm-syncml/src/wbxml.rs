//! The WBXML lexical codec for SyncML: maps [`omnidm_wbxml`] tokens to SyncML/MetInf [`Tag`]s
//! (code pages 0 and 1) and back.
//!
//! Encoding choices: WBXML 1.2 (what deployed DM clients send, see the captured fixtures), the
//! SyncML public id for the message's `VerDTD`, UTF-8, inline strings only (no string table).
//! Without a string table every element's size is independent of the others, which is what
//! lets [`crate::size`] compute sizes additively. Text containing NUL cannot be an inline
//! string and is written as `OPAQUE`.

use crate::error::{DecodeError, DecodeErrorKind, Limits, Warning};
use crate::event::{Ev, Sink, Source};
use crate::model::{Data, Header};
use crate::tag::Tag;
use omnidm_wbxml::{Event, PublicId, Reader, Writer, opaque_len, str_i_len};
use std::borrow::Cow;

/// WBXML version written: 1.2.
const VERSION: u8 = 0x02;
/// MIBenum of UTF-8.
const UTF8: u32 = 106;

/// The WBXML public id for a `VerDTD` ("-//SYNCML//DTD SyncML 1.2//EN" is 0x1201).
pub(crate) fn public_id(ver_dtd: &str) -> u32 {
    match ver_dtd {
        "1.0" => 0x0FD1,
        "1.1" => 0x0FD3,
        _ => 0x1201,
    }
}

/// Character sets we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
}

/// Reads SyncML WBXML.
pub(crate) struct WbxmlSource<'a> {
    reader: Reader<'a>,
    charset: Charset,
    done: bool,
}

fn wbxml_error(e: omnidm_wbxml::Error) -> DecodeError {
    use omnidm_wbxml::ErrorKind as K;
    let kind = match e.kind {
        K::DepthLimit { limit } => DecodeErrorKind::Limit {
            name: "max_depth",
            limit,
        },
        K::InputLimit { limit } => DecodeErrorKind::Limit {
            name: "max_input",
            limit,
        },
        K::TokenLimit { limit } => DecodeErrorKind::Limit {
            name: "max_elements",
            limit,
        },
        other => DecodeErrorKind::Wbxml(other.to_string()),
    };
    DecodeError::new(kind, e.offset)
}

impl<'a> WbxmlSource<'a> {
    pub(crate) fn new(input: &'a [u8], limits: Limits) -> Result<Self, DecodeError> {
        let wl = omnidm_wbxml::Limits {
            max_depth: limits.max_depth,
            max_input: limits.max_input,
            // Every element costs at least a start and an end token, plus its content.
            max_tokens: limits.max_elements.saturating_mul(3),
        };
        let reader = Reader::new(input, wl).map_err(wbxml_error)?;
        let charset = match reader.header().charset {
            // 0 = unknown: DM clients mean UTF-8.
            106 | 0 | 3 => Charset::Utf8,
            4 => Charset::Latin1,
            other => {
                return Err(DecodeError::new(
                    DecodeErrorKind::UnsupportedCharset(other),
                    reader.offset(),
                ));
            }
        };
        Ok(Self {
            reader,
            charset,
            done: false,
        })
    }

    fn text(&self, bytes: &'a [u8]) -> Cow<'a, str> {
        match self.charset {
            Charset::Utf8 => String::from_utf8_lossy(bytes),
            Charset::Latin1 => Cow::Owned(bytes.iter().map(|&b| b as char).collect()),
        }
    }

    fn next_raw(&mut self) -> Result<Option<Event<'a>>, DecodeError> {
        self.reader.next_event().map_err(wbxml_error)
    }
}

fn unknown_name(page: u8, token: u8) -> String {
    format!("token 0x{token:02X} on code page {page}")
}

impl<'a> Source<'a> for WbxmlSource<'a> {
    fn next_event(&mut self) -> Result<Option<Ev<'a>>, DecodeError> {
        if self.done {
            return Ok(None);
        }
        let Some(ev) = self.next_raw()? else {
            self.done = true;
            return Ok(None);
        };
        Ok(Some(match ev {
            Event::Start { page, token, .. } => match Tag::from_wbxml(page, token) {
                Some(tag) => Ev::Start(tag),
                None => Ev::Unknown(Cow::Owned(unknown_name(page, token))),
            },
            Event::StartLiteral { name, .. } => match Tag::from_name(name) {
                Some(tag) => Ev::Start(tag),
                None => Ev::Unknown(String::from_utf8_lossy(name)),
            },
            Event::End => Ev::End,
            Event::Str(s) => Ev::Text(self.text(s)),
            Event::Opaque(b) => Ev::Opaque(b),
            Event::Entity(code) => Ev::Text(Cow::Owned(
                char::from_u32(code).unwrap_or('\u{FFFD}').to_string(),
            )),
        }))
    }

    fn read_data(&mut self, warnings: &mut Vec<Warning>) -> Result<Data, DecodeError> {
        let mut text: Option<String> = None;
        let mut opaque: Option<Vec<u8>> = None;
        let mut depth = 0usize;
        loop {
            let offset = self.reader.offset();
            let Some(ev) = self.next_raw()? else {
                return Err(DecodeError::new(
                    DecodeErrorKind::UnexpectedEof("Data"),
                    offset,
                ));
            };
            match ev {
                Event::Start { .. } | Event::StartLiteral { .. } => {
                    if depth == 0 {
                        warnings.push(Warning {
                            offset,
                            message: "skipped markup inside <Data>".into(),
                        });
                    }
                    depth += 1;
                }
                Event::End if depth > 0 => depth -= 1,
                Event::End => break,
                _ if depth > 0 => {}
                Event::Str(s) => text.get_or_insert_default().push_str(&self.text(s)),
                Event::Entity(code) => text
                    .get_or_insert_default()
                    .push(char::from_u32(code).unwrap_or('\u{FFFD}')),
                Event::Opaque(b) => opaque.get_or_insert_default().extend_from_slice(b),
            }
        }
        Ok(match (text, opaque) {
            (None, Some(bytes)) => Data::Opaque(bytes),
            (Some(t), None) => Data::Text(t),
            (None, None) => Data::Text(String::new()),
            // Mixed strings and opaque: rare and odd; keep everything as text.
            (Some(mut t), Some(bytes)) => {
                t.push_str(&String::from_utf8_lossy(
                    crate::model::strip_nul_terminator(&bytes),
                ));
                Data::Text(t)
            }
        })
    }

    fn offset(&self) -> usize {
        self.reader.offset()
    }
}

/// Writes SyncML WBXML.
pub(crate) struct WbxmlSink {
    writer: Writer,
}

impl WbxmlSink {
    pub(crate) fn new(buffer_hint: Vec<u8>, header: &Header) -> Self {
        let mut writer = Writer::new(VERSION, PublicId::Known(public_id(&header.ver_dtd)), UTF8);
        writer.reserve(buffer_hint.capacity());
        Self { writer }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.writer.finish()
    }
}

impl Sink for WbxmlSink {
    fn start(&mut self, tag: Tag) {
        let (page, token) = tag.wbxml();
        self.writer.start(page, token, true);
    }

    fn end(&mut self, _tag: Tag) {
        self.writer.end();
    }

    fn empty(&mut self, tag: Tag) {
        let (page, token) = tag.wbxml();
        self.writer.start(page, token, false);
    }

    fn text(&mut self, text: &str) {
        if self.writer.str_i(text.as_bytes()).is_err() {
            // Only a NUL inside the text can make an inline string fail.
            self.writer.opaque(text.as_bytes());
        }
    }

    fn opaque(&mut self, bytes: &[u8]) {
        self.writer.opaque(bytes);
    }
}

/// Counts the bytes [`WbxmlSink`] would write, tracking the code page as the writer does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WbxmlCounter {
    pub(crate) page: u8,
    pub(crate) len: usize,
}

impl WbxmlCounter {
    /// A counter at the start of the body of a document (tag page 0).
    pub(crate) fn new() -> Self {
        Self { page: 0, len: 0 }
    }

    fn tag(&mut self, tag: Tag) {
        let (page, _) = tag.wbxml();
        if page != self.page {
            self.len += 2; // SWITCH_PAGE, page
            self.page = page;
        }
        self.len += 1;
    }
}

impl Sink for WbxmlCounter {
    fn start(&mut self, tag: Tag) {
        self.tag(tag);
    }

    fn end(&mut self, _tag: Tag) {
        self.len += 1;
    }

    fn empty(&mut self, tag: Tag) {
        self.tag(tag);
    }

    fn text(&mut self, text: &str) {
        self.len += if text.as_bytes().contains(&0) {
            opaque_len(text.len())
        } else {
            str_i_len(text.as_bytes())
        };
    }

    fn opaque(&mut self, bytes: &[u8]) {
        self.len += opaque_len(bytes.len());
    }
}

/// Length of the WBXML document header written for `header`.
pub(crate) fn header_len(header: &Header) -> usize {
    omnidm_wbxml::header_len(
        VERSION,
        PublicId::Known(public_id(&header.ver_dtd)),
        UTF8,
        0,
    )
}
