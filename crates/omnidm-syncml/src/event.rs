//! The seam between the two lexical codecs (XML, WBXML) and the one structural codec.
//!
//! A [`Source`] turns bytes into [`Ev`]ents; the parser turns events into the model. A [`Sink`]
//! takes element/text calls from the emitter and produces bytes (or only counts them). Keeping
//! the structure in one place means XML and WBXML can never disagree about what a message means.

use crate::error::{DecodeError, Warning};
use crate::model::Data;
use crate::tag::Tag;
use std::borrow::Cow;

/// One lexical event.
#[derive(Debug)]
pub(crate) enum Ev<'a> {
    /// Start of a known element (an empty element is `Start` then `End`).
    Start(Tag),
    /// Start of an element we do not know; the parser skips it up to its `End`.
    Unknown(Cow<'a, str>),
    /// End of the current element.
    End,
    /// Character data, entities already resolved.
    Text(Cow<'a, str>),
    /// WBXML `OPAQUE` bytes.
    Opaque(&'a [u8]),
}

/// Produces events from an encoded document.
pub(crate) trait Source<'a> {
    /// The next event; `Ok(None)` after the root element has ended.
    fn next_event(&mut self) -> Result<Option<Ev<'a>>, DecodeError>;
    /// Reads the content of a `<Data>` element whose start was just returned, up to and
    /// including its end. Sources differ: XML keeps embedded markup as text, WBXML has `OPAQUE`.
    fn read_data(&mut self, warnings: &mut Vec<Warning>) -> Result<Data, DecodeError>;
    /// Byte offset of the next unread input, for errors and warnings.
    fn offset(&self) -> usize;
}

/// Consumes element/text calls and encodes them.
pub(crate) trait Sink {
    /// Opens `tag` that has content.
    fn start(&mut self, tag: Tag);
    /// Closes `tag`.
    fn end(&mut self, tag: Tag);
    /// Writes `tag` with no content (`<Final/>`).
    fn empty(&mut self, tag: Tag);
    /// Writes character data inside the current element.
    fn text(&mut self, text: &str);
    /// Writes binary data inside the current element.
    fn opaque(&mut self, bytes: &[u8]);

    /// `<tag>text</tag>`; an empty text gives `<tag/>`.
    fn leaf(&mut self, tag: Tag, text: &str) {
        if text.is_empty() {
            self.empty(tag);
        } else {
            self.start(tag);
            self.text(text);
            self.end(tag);
        }
    }

    /// `<tag>n</tag>` for a number.
    fn number(&mut self, tag: Tag, n: u64) {
        let mut buf = itoa_buf::Buf::new();
        self.leaf(tag, buf.format(n));
    }
}

/// Integer formatting without allocation (the emitter writes many CmdIDs).
mod itoa_buf {
    pub(crate) struct Buf {
        bytes: [u8; 20],
    }

    impl Buf {
        pub(crate) fn new() -> Self {
            Self { bytes: [0; 20] }
        }

        pub(crate) fn format(&mut self, mut n: u64) -> &str {
            let mut i = self.bytes.len();
            loop {
                i -= 1;
                self.bytes[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            // Only ASCII digits were written.
            std::str::from_utf8(&self.bytes[i..]).unwrap_or("0")
        }
    }
}
