//! Writer: appends WBXML tokens to a `Vec<u8>`, plus size calculators.

use crate::mb::{mb_u_int32_len, write_mb_u_int32};
use crate::token::{END, ENTITY, OPAQUE, STR_I, STR_T, SWITCH_PAGE, TAG_CONTENT, TAG_MASK};
use crate::{Error, ErrorKind, PublicId};

/// Encoded size of an inline string token for `s`: STR_I + `s` + NUL (`s.len() + 2`).
#[inline]
pub fn str_i_len(s: &[u8]) -> usize {
    s.len() + 2
}

/// Encoded size of an OPAQUE token carrying `n` bytes: `1 + mb_u_int32_len(n) + n`.
///
/// Lengths above `u32::MAX` cannot be encoded; for them the 5-byte length is assumed.
#[inline]
pub fn opaque_len(n: usize) -> usize {
    1 + u32::try_from(n).map_or(5, mb_u_int32_len) + n
}

/// Encoded size of the header [`Writer::with_string_table`] writes.
pub fn header_len(
    version: u8,
    public_id: PublicId,
    charset: u32,
    string_table_len: usize,
) -> usize {
    let id = match public_id {
        PublicId::Known(id) => mb_u_int32_len(id),
        PublicId::Literal(offset) => 1 + mb_u_int32_len(offset),
    };
    let charset = if version == 0 {
        0
    } else {
        mb_u_int32_len(charset)
    };
    let table = u32::try_from(string_table_len).map_or(5, mb_u_int32_len) + string_table_len;
    1 + id + charset + table
}

/// Streams a WBXML document into a growable buffer.
///
/// Sizes, for callers that budget a message before writing it:
/// a start tag is 1 byte, plus 2 when it needs a SWITCH_PAGE (its page differs from the
/// current tag page, see [`Writer::start_len`]); END is 1 byte; see [`str_i_len`],
/// [`opaque_len`], [`header_len`]. [`Writer::len`] is always the exact output size so far.
///
/// The writer checks only what it cannot leave to the caller cheaply (NUL in inline strings);
/// element balance and tag identities are the caller's responsibility and are checked by
/// `debug_assert!` only.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The document written so far.
    out: Vec<u8>,
    /// Current tag code page (the page the reader will be on), initially 0.
    page: u8,
    /// Number of open elements with content, to catch unbalanced `end` in debug builds.
    depth: usize,
}

impl Writer {
    /// Starts a document with an empty string table.
    ///
    /// `version` is the header version byte (`0x03` = WBXML 1.3; for `0x00` = 1.0 no charset
    /// is written). `charset` is an IANA MIBenum (106 = UTF-8). A [`PublicId::Literal`] needs
    /// a string table: use [`Writer::with_string_table`].
    pub fn new(version: u8, public_id: PublicId, charset: u32) -> Self {
        Self::with_string_table(version, public_id, charset, &[])
    }

    /// Starts a document whose header carries `string_table` (NUL-separated strings that
    /// [`Writer::str_t`] offsets and a [`PublicId::Literal`] refer to).
    pub fn with_string_table(
        version: u8,
        public_id: PublicId,
        charset: u32,
        string_table: &[u8],
    ) -> Self {
        let mut out = Vec::with_capacity(256 + string_table.len());
        out.push(version);
        match public_id {
            PublicId::Known(id) => write_mb_u_int32(&mut out, id),
            PublicId::Literal(offset) => {
                out.push(0);
                write_mb_u_int32(&mut out, offset);
            }
        }
        if version != 0 {
            write_mb_u_int32(&mut out, charset);
        }
        // A table longer than u32::MAX cannot be described; such a document is unusable
        // anyway, so the length saturates rather than panicking.
        write_mb_u_int32(
            &mut out,
            u32::try_from(string_table.len()).unwrap_or(u32::MAX),
        );
        out.extend_from_slice(string_table);
        Self {
            out,
            page: 0,
            depth: 0,
        }
    }

    /// Reserves room for at least `additional` more bytes, to avoid reallocations when the
    /// caller knows the approximate document size.
    pub fn reserve(&mut self, additional: usize) {
        self.out.reserve(additional);
    }

    /// Size of the start tag [`Writer::start`] would write now for `page`: 1, or 3 if a
    /// SWITCH_PAGE is needed.
    #[inline]
    pub fn start_len(&self, page: u8) -> usize {
        if page == self.page { 1 } else { 3 }
    }

    /// Writes a start tag (without attributes), preceded by SWITCH_PAGE when `page` differs
    /// from the current tag page.
    ///
    /// `token` is the 6-bit tag identity (`0x05..=0x3F`). With `has_content == false` the
    /// element is complete: do **not** call [`Writer::end`] for it (the reader, in contrast,
    /// reports a synthetic `End` for such elements). With `has_content == true` close it
    /// with [`Writer::end`].
    #[inline]
    pub fn start(&mut self, page: u8, token: u8, has_content: bool) {
        debug_assert!(
            (crate::token::TAG_MIN..=TAG_MASK).contains(&token),
            "tag token {token:#04x} outside 0x05..=0x3F"
        );
        let tag = (token & TAG_MASK) | if has_content { TAG_CONTENT } else { 0 };
        if page != self.page {
            self.out.extend_from_slice(&[SWITCH_PAGE, page, tag]);
            self.page = page;
        } else {
            self.out.push(tag);
        }
        if has_content {
            self.depth += 1;
        }
    }

    /// Writes END, closing the innermost element started with content.
    #[inline]
    pub fn end(&mut self) {
        debug_assert!(self.depth > 0, "Writer::end without an open element");
        self.depth = self.depth.saturating_sub(1);
        self.out.push(END);
    }

    /// Writes an inline string (STR_I). The bytes are written as they are (they should be in
    /// the document charset).
    ///
    /// # Errors
    /// [`ErrorKind::NulInString`] if `s` contains a NUL byte; nothing is written then.
    #[inline]
    pub fn str_i(&mut self, s: &[u8]) -> Result<(), Error> {
        if s.contains(&0) {
            return Err(Error::new(ErrorKind::NulInString, self.out.len()));
        }
        self.out.reserve(s.len() + 2);
        self.out.push(STR_I);
        self.out.extend_from_slice(s);
        self.out.push(0);
        Ok(())
    }

    /// Writes a string table reference (STR_T) to the string at `offset` of the table given to
    /// [`Writer::with_string_table`]. The offset is not checked.
    #[inline]
    pub fn str_t(&mut self, offset: u32) {
        self.out.push(STR_T);
        write_mb_u_int32(&mut self.out, offset);
    }

    /// Writes OPAQUE data. `data` longer than `u32::MAX` bytes cannot be encoded and is
    /// truncated to `u32::MAX` bytes.
    #[inline]
    pub fn opaque(&mut self, data: &[u8]) {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let data = data.get(..len as usize).unwrap_or(data);
        self.out.reserve(data.len() + 6);
        self.out.push(OPAQUE);
        write_mb_u_int32(&mut self.out, len);
        self.out.extend_from_slice(data);
    }

    /// Writes a character entity (ENTITY) for the UCS-4 code `code`.
    #[inline]
    pub fn entity(&mut self, code: u32) {
        self.out.push(ENTITY);
        write_mb_u_int32(&mut self.out, code);
    }

    /// Number of bytes written so far, header included.
    #[inline]
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Always `false`: the header is written on construction.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Number of elements with content that are still open.
    #[inline]
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The bytes written so far.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.out
    }

    /// Returns the document. Open elements are not closed automatically.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Event, Limits, Reader};

    #[test]
    fn header_bytes() {
        let w = Writer::new(0x02, PublicId::Known(0x1201), 106);
        assert_eq!(w.as_bytes(), &[0x02, 0xA4, 0x01, 0x6A, 0x00]);
        assert_eq!(w.len(), 5);
        assert_eq!(header_len(0x02, PublicId::Known(0x1201), 106, 0), 5);
        assert!(!w.is_empty());

        let w = Writer::new(0x01, PublicId::Known(0x0FD3), 106);
        assert_eq!(w.finish(), vec![0x01, 0x9F, 0x53, 0x6A, 0x00]);

        // WBXML 1.0: no charset.
        let w = Writer::new(0x00, PublicId::Known(1), 106);
        assert_eq!(w.finish(), vec![0x00, 0x01, 0x00]);
        assert_eq!(header_len(0x00, PublicId::Known(1), 106, 0), 3);

        let table = b"-//X//Y//EN\0";
        let w = Writer::with_string_table(0x03, PublicId::Literal(0), 4, table);
        let mut want = vec![0x03, 0x00, 0x00, 0x04, table.len() as u8];
        want.extend_from_slice(table);
        assert_eq!(w.len(), want.len());
        assert_eq!(
            header_len(0x03, PublicId::Literal(0), 4, table.len()),
            want.len()
        );
        let doc = w.finish();
        assert_eq!(doc, want);
        let mut doc = doc;
        doc.push(0x05);
        let r = Reader::new(&doc, Limits::default()).unwrap();
        assert_eq!(r.header().public_id_literal(), Some(&b"-//X//Y//EN"[..]));
    }

    #[test]
    fn tokens_and_switch_page() {
        let mut w = Writer::new(0x03, PublicId::Known(1), 106);
        assert_eq!(w.start_len(0), 1);
        assert_eq!(w.start_len(1), 3);
        w.start(0, 0x2D, true);
        w.start(1, 0x07, true);
        w.str_i(b"b64").unwrap();
        w.end();
        w.start(1, 0x13, false);
        w.start(0, 0x0F, true);
        w.opaque(&[1, 2, 3]);
        w.entity(0x3C);
        w.str_t(0x81);
        w.end();
        assert_eq!(w.depth(), 1);
        w.end();
        assert_eq!(w.depth(), 0);
        let doc = w.finish();
        assert_eq!(
            &doc[4..],
            &[
                0x6D, 0x00, 0x01, 0x47, 0x03, b'b', b'6', b'4', 0x00, 0x01, 0x13, 0x00, 0x00, 0x4F,
                0xC3, 0x03, 1, 2, 3, 0x02, 0x3C, 0x83, 0x81, 0x01, 0x01, 0x01,
            ]
        );
    }

    #[test]
    fn str_i_rejects_nul() {
        let mut w = Writer::new(0x03, PublicId::Known(1), 106);
        w.start(0, 5, true);
        let before = w.len();
        assert_eq!(
            w.str_i(b"a\0b").unwrap_err(),
            Error::new(ErrorKind::NulInString, before)
        );
        assert_eq!(w.len(), before);
    }

    #[test]
    fn size_calculators() {
        assert_eq!(str_i_len(b""), 2);
        assert_eq!(str_i_len(b"abc"), 5);
        assert_eq!(opaque_len(0), 2);
        assert_eq!(opaque_len(127), 129);
        assert_eq!(opaque_len(128), 131);
        for n in [0usize, 1, 127, 128, 300, 20_000] {
            let mut w = Writer::new(0x03, PublicId::Known(1), 106);
            let before = w.len();
            w.opaque(&vec![7u8; n]);
            assert_eq!(w.len() - before, opaque_len(n));
            let before = w.len();
            let s = vec![b'x'; n];
            w.str_i(&s).unwrap();
            assert_eq!(w.len() - before, str_i_len(&s));
        }
    }

    #[test]
    fn round_trip_simple() {
        let mut w = Writer::new(0x03, PublicId::Known(1), 106);
        w.start(2, 0x3F, true);
        w.start(2, 0x05, false);
        w.str_i(b"x").unwrap();
        w.end();
        let doc = w.finish();
        let mut r = Reader::new(&doc, Limits::default()).unwrap();
        let mut evs = Vec::new();
        while let Some(ev) = r.next_event().unwrap() {
            evs.push(ev);
        }
        assert_eq!(
            evs,
            vec![
                Event::Start {
                    page: 2,
                    token: 0x3F,
                    has_content: true
                },
                Event::Start {
                    page: 2,
                    token: 0x05,
                    has_content: false
                },
                Event::End,
                Event::Str(b"x"),
                Event::End,
            ]
        );
    }
}
