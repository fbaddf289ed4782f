//! The public entry points: decode bytes of either encoding into a [`Message`], encode a
//! [`Message`] as XML or WBXML.

use crate::emit;
use crate::error::{DecodeError, DecodeErrorKind, Limits, Warning};
use crate::event::Sink;
use crate::model::Message;
use crate::parse::Parser;
use crate::wbxml::{WbxmlSink, WbxmlSource};
use crate::xml::{self, XmlSink, XmlSource};

/// The two SyncML encodings (DM Representation 1.2 §5; media types from DM Protocol 1.2 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `application/vnd.syncml.dm+xml`.
    Xml,
    /// `application/vnd.syncml.dm+wbxml`.
    Wbxml,
}

impl Encoding {
    /// The OMA DM media type for this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Xml => "application/vnd.syncml.dm+xml",
            Encoding::Wbxml => "application/vnd.syncml.dm+wbxml",
        }
    }

    /// The encoding named by an HTTP `Content-Type`. Liberal (GUIDE §3): the DS-style
    /// `application/vnd.syncml+xml` and `+wbxml`, any case, and parameters are accepted.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/vnd.syncml.dm+xml" | "application/vnd.syncml+xml" => Some(Encoding::Xml),
            "application/vnd.syncml.dm+wbxml" | "application/vnd.syncml+wbxml" => {
                Some(Encoding::Wbxml)
            }
            _ => None,
        }
    }

    /// Guesses the encoding from the first bytes: XML starts with `<`, a BOM or whitespace;
    /// WBXML with its version byte (0x01–0x03).
    pub fn sniff(bytes: &[u8]) -> Self {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(0x00..=0x03) => Encoding::Wbxml,
            _ => Encoding::Xml,
        }
    }
}

/// A decoded message with what the decoder noticed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The message.
    pub message: Message,
    /// The encoding it came in; a server answers in the same one.
    pub encoding: Encoding,
    /// Things accepted but worth a log line (unknown elements skipped, …).
    pub warnings: Vec<Warning>,
}

/// Decodes a message, detecting its encoding, with default [`Limits`].
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    decode_with(bytes, Encoding::sniff(bytes), Limits::default())
}

/// Decodes a message in a known encoding with explicit limits.
pub fn decode_with(
    bytes: &[u8],
    encoding: Encoding,
    limits: Limits,
) -> Result<Decoded, DecodeError> {
    if bytes.len() > limits.max_input {
        return Err(DecodeError::new(
            DecodeErrorKind::Limit {
                name: "max_input",
                limit: limits.max_input,
            },
            limits.max_input,
        ));
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DecodeError::new(DecodeErrorKind::Empty, 0));
    }
    match encoding {
        Encoding::Xml => {
            let text = xml::to_text(bytes)?;
            let mut parser = Parser::new(XmlSource::new(&text, limits));
            let message = parser.message()?;
            Ok(Decoded {
                message,
                encoding,
                warnings: parser.warnings,
            })
        }
        Encoding::Wbxml => {
            let mut parser = Parser::new(WbxmlSource::new(bytes, limits)?);
            let message = parser.message()?;
            Ok(Decoded {
                message,
                encoding,
                warnings: parser.warnings,
            })
        }
    }
}

/// Encodes a message. Output is canonical: the same message always gives the same bytes.
pub fn encode(message: &Message, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Xml => {
            let mut out = Vec::with_capacity(estimate(message));
            out.extend_from_slice(xml::DECLARATION);
            let mut sink = XmlSink::new(out, xml::namespace(&message.header.ver_dtd), false);
            emit::message(&mut sink, message);
            sink.out
        }
        Encoding::Wbxml => {
            let mut sink = WbxmlSink::new(Vec::with_capacity(estimate(message)), &message.header);
            emit::message(&mut sink, message);
            sink.finish()
        }
    }
}

/// The message as indented XML, for people (`omnidm syncml decode`). Indentation is added only
/// between elements, never inside text, so values are unchanged.
pub fn to_pretty_xml(message: &Message) -> String {
    let mut out = xml::DECLARATION.to_vec();
    out.push(b'\n');
    let mut sink = XmlSink::new(out, xml::namespace(&message.header.ver_dtd), true);
    emit::message(&mut sink, message);
    sink.text("\n");
    String::from_utf8_lossy(&sink.out).into_owned()
}

/// A capacity guess that avoids most reallocations: command count × typical command size
/// plus the data carried.
fn estimate(message: &Message) -> usize {
    512 + message.body.commands.len() * 160
}
