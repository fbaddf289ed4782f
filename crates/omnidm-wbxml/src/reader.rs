//! Pull reader: header parsing and a token-level event stream.

use crate::mb::read_mb_u_int32;
use crate::token::{
    END, ENTITY, EXT_0, EXT_2, EXT_I_0, EXT_I_2, EXT_T_0, EXT_T_2, LITERAL, LITERAL_A, LITERAL_AC,
    LITERAL_C, OPAQUE, PI, STR_I, STR_T, SWITCH_PAGE, TAG_ATTRIBUTES, TAG_CONTENT, TAG_MASK,
};
use crate::{Error, ErrorKind};

/// Resource limits applied by the [`Reader`]. Every limit is named in the error it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum element nesting depth (the root element is depth 1).
    pub max_depth: usize,
    /// Maximum size of the whole document in bytes.
    pub max_input: usize,
    /// Maximum number of tokens in the body, counting every token byte the reader consumes
    /// (tags, END, strings, attribute tokens, extensions, SWITCH_PAGE, …), skipped ones included.
    pub max_tokens: usize,
}

impl Default for Limits {
    /// Depth 64, input 16 MiB, 1 000 000 tokens.
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_input: 16 * 1024 * 1024,
            max_tokens: 1_000_000,
        }
    }
}

/// The document public identifier (WBXML 1.3 §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublicId {
    /// A registered public identifier (e.g. `0x1201` for "-//SYNCML//DTD SyncML 1.2//EN").
    Known(u32),
    /// The public identifier is a string in the string table, at this offset
    /// (see [`Header::public_id_literal`]).
    Literal(u32),
}

/// The parsed document header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// The version byte: `0x00` = WBXML 1.0, `0x01` = 1.1, `0x02` = 1.2, `0x03` = 1.3.
    pub version: u8,
    /// The document public identifier.
    pub public_id: PublicId,
    /// IANA MIBenum of the document charset (106 = UTF-8, 0 = unknown). WBXML 1.0 headers
    /// have no charset field; for them this is 0.
    pub charset: u32,
    /// The raw string table (NUL-separated strings), possibly empty.
    pub string_table: &'a [u8],
}

impl<'a> Header<'a> {
    /// The string starting at `offset` in the string table, up to (not including) the next NUL
    /// or the end of the table. `None` if `offset` is outside the table.
    pub fn string_at(&self, offset: u32) -> Option<&'a [u8]> {
        let table: &'a [u8] = self.string_table;
        let rest = table.get(usize::try_from(offset).ok()?..)?;
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        rest.get(..end)
    }

    /// The public identifier string for [`PublicId::Literal`]; `None` for known ids.
    pub fn public_id_literal(&self) -> Option<&'a [u8]> {
        match self.public_id {
            PublicId::Known(_) => None,
            PublicId::Literal(offset) => self.string_at(offset),
        }
    }
}

/// One item of the document body, as produced by [`Reader::next_event`].
///
/// Attributes, processing instructions and extension tokens are parsed and skipped; they
/// produce no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// An element with a tag token. Always followed, eventually, by a matching [`Event::End`]:
    /// for `has_content == false` the reader emits a synthetic `End` right after the `Start`.
    Start {
        /// The tag code page in effect (set by SWITCH_PAGE, initially 0).
        page: u8,
        /// The 6-bit tag identity (0x05..=0x3F), without the content/attribute flags.
        token: u8,
        /// Whether the tag byte had the content flag (0x40).
        has_content: bool,
    },
    /// An element whose name is a string table entry (LITERAL, LITERAL_A, LITERAL_C,
    /// LITERAL_AC). Followed by a matching `End` like [`Event::Start`].
    StartLiteral {
        /// The element name from the string table (without the terminating NUL).
        name: &'a [u8],
        /// Whether the element has content.
        has_content: bool,
    },
    /// Closes the innermost open element (a real END token or the synthetic one after a
    /// content-less start tag).
    End,
    /// Character data from STR_I (inline) or STR_T (resolved through the string table):
    /// raw bytes in the document charset, without the terminating NUL.
    Str(&'a [u8]),
    /// OPAQUE data.
    Opaque(&'a [u8]),
    /// A character entity (ENTITY): a UCS-4 character code.
    Entity(u32),
}

/// Where the reader is in the document grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Before the root element: only PI and SWITCH_PAGE may precede it.
    Prolog,
    /// Inside the root element.
    Content,
    /// The root element closed; trailing PIs/zero padding not yet checked.
    Epilog,
    /// Finished: `next_event` keeps returning `Ok(None)`.
    Done,
    /// An error occurred: `next_event` keeps returning it.
    Failed(Error),
}

/// A sans-IO pull reader over a complete WBXML document held in memory.
///
/// It never panics and never allocates per event; events borrow from the input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    /// The whole document.
    input: &'a [u8],
    /// Offset of the next unread byte.
    pos: usize,
    /// Parsed header (its string table borrows from `input`).
    header: Header<'a>,
    /// Limits checked while reading.
    limits: Limits,
    /// Current code page of the tag code space.
    tag_page: u8,
    /// Current code page of the attribute code space (kept for correctness of the state
    /// machine even though attributes are not reported).
    attr_page: u8,
    /// Number of open elements, including a content-less one whose synthetic End is pending.
    depth: usize,
    /// Number of body tokens consumed so far (for `Limits::max_tokens`).
    tokens: usize,
    /// A content-less start tag was just reported: the next event is its synthetic End.
    pending_end: bool,
    /// Grammar position.
    state: State,
}

/// MIBenums of charsets whose string terminator is not a single NUL byte.
const WIDE_CHARSETS: &[u32] = &[1000, 1001, 1013, 1014, 1015, 1017, 1018, 1019];

impl<'a> Reader<'a> {
    /// Parses the header of `input` and returns a reader positioned at the start of the body.
    ///
    /// # Errors
    /// [`ErrorKind::InputLimit`] if `input` exceeds `limits.max_input`; header errors
    /// (`UnexpectedEof`, `BadMbUint`, `UnsupportedVersion`, `UnsupportedCharset`,
    /// `StringTableLength`, `StringTableOffset` for a literal public id out of range).
    pub fn new(input: &'a [u8], limits: Limits) -> Result<Self, Error> {
        if input.len() > limits.max_input {
            return Err(Error::new(
                ErrorKind::InputLimit {
                    limit: limits.max_input,
                },
                limits.max_input,
            ));
        }
        let mut r = Reader {
            input,
            pos: 0,
            header: Header {
                version: 0,
                public_id: PublicId::Known(0),
                charset: 0,
                string_table: &[],
            },
            limits,
            tag_page: 0,
            attr_page: 0,
            depth: 0,
            tokens: 0,
            pending_end: false,
            state: State::Prolog,
        };
        let version = r.byte()?;
        if version > 0x03 {
            return Err(Error::new(ErrorKind::UnsupportedVersion { version }, 0));
        }
        let public_id = match r.mb()? {
            0 => PublicId::Literal(r.mb()?),
            id => PublicId::Known(id),
        };
        let charset = if version == 0x00 {
            0
        } else {
            let at = r.pos;
            let charset = r.mb()?;
            if WIDE_CHARSETS.contains(&charset) {
                return Err(Error::new(ErrorKind::UnsupportedCharset { charset }, at));
            }
            charset
        };
        let at = r.pos;
        let length = r.mb()?;
        let table = usize::try_from(length)
            .ok()
            .and_then(|len| r.input.get(r.pos..)?.get(..len))
            .ok_or(Error::new(ErrorKind::StringTableLength { length }, at))?;
        r.pos += table.len();
        r.header = Header {
            version,
            public_id,
            charset,
            string_table: table,
        };
        if let PublicId::Literal(offset) = public_id
            && r.header.string_at(offset).is_none()
        {
            return Err(Error::new(ErrorKind::StringTableOffset { offset }, 1));
        }
        Ok(r)
    }

    /// The parsed header.
    pub fn header(&self) -> &Header<'a> {
        &self.header
    }

    /// Byte offset of the next unread byte (after the last event returned).
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Number of currently open elements (0 before the root element and after it closed).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The current tag code page.
    pub fn tag_page(&self) -> u8 {
        self.tag_page
    }

    /// The current attribute code page.
    pub fn attr_page(&self) -> u8 {
        self.attr_page
    }

    /// Returns the next event, or `Ok(None)` once the root element has closed and only
    /// processing instructions and/or zero padding follow it.
    ///
    /// After `Ok(None)` every further call returns `Ok(None)`; after an error every further
    /// call returns the same error.
    ///
    /// # Errors
    /// Any [`ErrorKind`] describing malformed input or an exceeded [`Limits`] value; notably
    /// [`ErrorKind::TrailingData`] for non-zero bytes after the root element and
    /// [`ErrorKind::UnexpectedEof`] if the input ends before the root element closes.
    pub fn next_event(&mut self) -> Result<Option<Event<'a>>, Error> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Done => return Ok(None),
            _ => {}
        }
        match self.step() {
            Ok(ev) => Ok(ev),
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// One step of the body state machine.
    fn step(&mut self) -> Result<Option<Event<'a>>, Error> {
        if self.pending_end {
            self.pending_end = false;
            return Ok(Some(self.close()));
        }
        loop {
            match self.state {
                State::Prolog | State::Content => {}
                State::Epilog => {
                    self.epilog()?;
                    self.state = State::Done;
                    return Ok(None);
                }
                State::Done | State::Failed(_) => return Ok(None),
            }
            let at = self.pos;
            let tok = self.token()?;
            let in_content = self.state == State::Content;
            match tok {
                SWITCH_PAGE => self.tag_page = self.byte()?,
                PI => self.skip_attributes()?,
                LITERAL | LITERAL_A | LITERAL_C | LITERAL_AC => {
                    let offset = self.mb()?;
                    let name = self.table_string(offset, at)?;
                    let has_content = self.open(tok, at)?;
                    return Ok(Some(Event::StartLiteral { name, has_content }));
                }
                END if !in_content => {
                    return Err(Error::new(ErrorKind::UnbalancedEnd, at));
                }
                _ if !in_content => {
                    // Only PIs, SWITCH_PAGE and a start tag may precede the root element.
                    if is_global(tok) {
                        return Err(Error::new(ErrorKind::UnexpectedToken { token: tok }, at));
                    }
                    let page = self.tag_page;
                    let has_content = self.open(tok, at)?;
                    return Ok(Some(Event::Start {
                        page,
                        token: tok & TAG_MASK,
                        has_content,
                    }));
                }
                END => return Ok(Some(self.close())),
                ENTITY => return Ok(Some(Event::Entity(self.mb()?))),
                STR_I => return Ok(Some(Event::Str(self.termstr()?))),
                STR_T => {
                    let offset = self.mb()?;
                    return Ok(Some(Event::Str(self.table_string(offset, at)?)));
                }
                OPAQUE => return Ok(Some(Event::Opaque(self.opaque()?))),
                EXT_I_0..=EXT_I_2 => {
                    self.termstr()?;
                }
                EXT_T_0..=EXT_T_2 => {
                    self.mb()?;
                }
                EXT_0..=EXT_2 => {}
                _ => {
                    let page = self.tag_page;
                    let has_content = self.open(tok, at)?;
                    return Ok(Some(Event::Start {
                        page,
                        token: tok & TAG_MASK,
                        has_content,
                    }));
                }
            }
        }
    }

    /// Handles a start tag byte (tag or LITERAL*): depth check, attribute list, End bookkeeping.
    /// Returns `has_content`.
    fn open(&mut self, tok: u8, at: usize) -> Result<bool, Error> {
        if self.depth >= self.limits.max_depth {
            return Err(Error::new(
                ErrorKind::DepthLimit {
                    limit: self.limits.max_depth,
                },
                at,
            ));
        }
        if tok & TAG_ATTRIBUTES != 0 {
            self.skip_attributes()?;
        }
        let has_content = tok & TAG_CONTENT != 0;
        self.depth += 1;
        self.state = State::Content;
        self.pending_end = !has_content;
        Ok(has_content)
    }

    /// Closes the innermost element (real or synthetic END). Only called with `depth > 0`:
    /// in the prolog END is rejected before reaching here, and in content `depth >= 1`.
    fn close(&mut self) -> Event<'a> {
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.state = State::Epilog;
        }
        Event::End
    }

    /// Skips an attribute list (after a tag with the 0x80 flag) or the body of a PI, up to and
    /// including its END token. Tokens are interpreted in the attribute code space.
    fn skip_attributes(&mut self) -> Result<(), Error> {
        loop {
            let at = self.pos;
            let tok = self.token()?;
            match tok {
                SWITCH_PAGE => self.attr_page = self.byte()?,
                END => return Ok(()),
                ENTITY | EXT_T_0..=EXT_T_2 => {
                    self.mb()?;
                }
                STR_I | EXT_I_0..=EXT_I_2 => {
                    self.termstr()?;
                }
                LITERAL | STR_T => {
                    let offset = self.mb()?;
                    self.table_string(offset, at)?;
                }
                OPAQUE => {
                    self.opaque()?;
                }
                EXT_0..=EXT_2 => {}
                PI | LITERAL_A | LITERAL_C | LITERAL_AC => {
                    return Err(Error::new(ErrorKind::UnexpectedToken { token: tok }, at));
                }
                // ATTRSTART (< 0x80) or ATTRVALUE (>= 0x80): no payload.
                _ => {}
            }
        }
    }

    /// After the root element: processing instructions may follow, then optional zero
    /// padding; anything else is trailing data.
    fn epilog(&mut self) -> Result<(), Error> {
        while let Some(&b) = self.input.get(self.pos) {
            if b == PI {
                self.token()?;
                self.skip_attributes()?;
            } else if self.rest().iter().all(|&b| b == 0) {
                self.pos = self.input.len();
            } else {
                return Err(Error::new(ErrorKind::TrailingData, self.pos));
            }
        }
        Ok(())
    }

    /// The unread part of the input.
    fn rest(&self) -> &'a [u8] {
        let input: &'a [u8] = self.input;
        input.get(self.pos..).unwrap_or(&[])
    }

    /// An error of `kind` at the current position.
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.pos)
    }

    /// Reads one raw byte.
    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self
            .input
            .get(self.pos)
            .ok_or_else(|| self.err(ErrorKind::UnexpectedEof))?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads one token byte, counting it against `Limits::max_tokens`.
    fn token(&mut self) -> Result<u8, Error> {
        if self.tokens >= self.limits.max_tokens {
            return Err(self.err(ErrorKind::TokenLimit {
                limit: self.limits.max_tokens,
            }));
        }
        let b = self.byte()?;
        self.tokens += 1;
        Ok(b)
    }

    /// Reads an `mb_u_int32`.
    fn mb(&mut self) -> Result<u32, Error> {
        let (v, n) = read_mb_u_int32(self.rest()).map_err(|kind| self.err(kind))?;
        self.pos += n;
        Ok(v)
    }

    /// Reads a NUL-terminated string and returns it without the NUL.
    fn termstr(&mut self) -> Result<&'a [u8], Error> {
        let rest = self.rest();
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            return Err(Error::new(ErrorKind::UnexpectedEof, self.input.len()));
        };
        self.pos += len + 1;
        Ok(rest.get(..len).unwrap_or(&[]))
    }

    /// Reads an OPAQUE payload (length + bytes).
    fn opaque(&mut self) -> Result<&'a [u8], Error> {
        let len = self.mb()?;
        let data = usize::try_from(len)
            .ok()
            .and_then(|len| self.rest().get(..len))
            .ok_or(Error::new(ErrorKind::UnexpectedEof, self.input.len()))?;
        self.pos += data.len();
        Ok(data)
    }

    /// Resolves a string table reference; the error points at the referring token (`at`).
    fn table_string(&self, offset: u32, at: usize) -> Result<&'a [u8], Error> {
        self.header
            .string_at(offset)
            .ok_or(Error::new(ErrorKind::StringTableOffset { offset }, at))
    }
}

/// Whether `tok` is a global token (its low 6 bits are 0..=4) rather than a tag.
fn is_global(tok: u8) -> bool {
    tok & TAG_MASK < crate::token::TAG_MIN
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::token::*;

    /// WBXML 1.3, unknown public id 1, UTF-8, empty string table, then `body`.
    fn doc(body: &[u8]) -> Vec<u8> {
        let mut d = vec![0x03, 0x01, 0x6A, 0x00];
        d.extend_from_slice(body);
        d
    }

    /// WBXML 1.3 with string table `table`, then `body`.
    fn doc_st(table: &[u8], body: &[u8]) -> Vec<u8> {
        let mut d = vec![0x03, 0x01, 0x6A, table.len() as u8];
        d.extend_from_slice(table);
        d.extend_from_slice(body);
        d
    }

    fn read_all(input: &[u8], limits: Limits) -> Result<Vec<Event<'_>>, Error> {
        let mut r = Reader::new(input, limits)?;
        let mut out = Vec::new();
        while let Some(ev) = r.next_event()? {
            out.push(ev);
        }
        Ok(out)
    }

    fn events(input: &[u8]) -> Result<Vec<Event<'_>>, Error> {
        read_all(input, Limits::default())
    }

    fn err_kind(input: &[u8]) -> ErrorKind {
        events(input).unwrap_err().kind
    }

    fn start(page: u8, token: u8, has_content: bool) -> Event<'static> {
        Event::Start {
            page,
            token,
            has_content,
        }
    }

    // ---- header ----

    #[test]
    fn header_versions_and_known_public_ids() {
        // (version byte, public id bytes, public id)
        let cases: &[(u8, &[u8], u32)] = &[
            (0x01, &[0x9F, 0x53], 0x0FD3), // SyncML 1.1
            (0x02, &[0xA4, 0x01], 0x1201), // SyncML 1.2
            (0x03, &[0x9F, 0x51], 0x0FD1), // SyncML 1.0
            (0x03, &[0x0A], 0x0A),         // WML 1.3
        ];
        for &(version, id, want) in cases {
            let mut d = vec![version];
            d.extend_from_slice(id);
            d.extend_from_slice(&[0x6A, 0x00, 0x45, 0x01]);
            let r = Reader::new(&d, Limits::default()).unwrap();
            assert_eq!(
                r.header(),
                &Header {
                    version,
                    public_id: PublicId::Known(want),
                    charset: 106,
                    string_table: &[],
                }
            );
            assert_eq!(r.offset(), d.len() - 2);
            assert_eq!(events(&d).unwrap(), vec![start(0, 5, true), Event::End]);
        }
    }

    #[test]
    fn header_literal_public_id() {
        let table = b"-//SYNCML//DTD SyncML 1.2//EN\0";
        let mut d = vec![0x03, 0x00, 0x00, 0x6A, table.len() as u8];
        d.extend_from_slice(table);
        d.push(0x05);
        let r = Reader::new(&d, Limits::default()).unwrap();
        assert_eq!(r.header().public_id, PublicId::Literal(0));
        assert_eq!(
            r.header().public_id_literal(),
            Some(&b"-//SYNCML//DTD SyncML 1.2//EN"[..])
        );
        assert_eq!(r.header().string_table, table);
        // Out of range.
        let mut d = vec![0x03, 0x00, 0x40, 0x6A, 0x02, b'a', 0];
        d.push(0x05);
        assert_eq!(
            Reader::new(&d, Limits::default()).unwrap_err().kind,
            ErrorKind::StringTableOffset { offset: 0x40 }
        );
    }

    #[test]
    fn header_wbxml_1_0_has_no_charset() {
        let d = [0x00, 0x01, 0x00, 0x05];
        let r = Reader::new(&d, Limits::default()).unwrap();
        assert_eq!(r.header().version, 0);
        assert_eq!(r.header().charset, 0);
        assert_eq!(events(&d).unwrap(), vec![start(0, 5, false), Event::End]);
    }

    #[test]
    fn header_multibyte_charset() {
        // ISO-8859-1 = 4, Shift_JIS = 17, big5 = 2026 (0x7EA -> 0x8F 0x6A)
        let d = [0x03, 0x01, 0x8F, 0x6A, 0x00, 0x05];
        assert_eq!(
            Reader::new(&d, Limits::default()).unwrap().header().charset,
            2026
        );
    }

    #[test]
    fn header_errors() {
        let l = Limits::default();
        assert_eq!(
            Reader::new(&[], l).unwrap_err(),
            Error::new(ErrorKind::UnexpectedEof, 0)
        );
        assert_eq!(
            Reader::new(&[0x04, 0x01, 0x6A, 0x00], l).unwrap_err(),
            Error::new(ErrorKind::UnsupportedVersion { version: 4 }, 0)
        );
        assert_eq!(
            Reader::new(&[0x03, 0x01, 0x87, 0x77, 0x00], l).unwrap_err(),
            Error::new(ErrorKind::UnsupportedCharset { charset: 1015 }, 2)
        );
        assert_eq!(
            Reader::new(&[0x03, 0x01, 0x6A, 0x05, b'a'], l).unwrap_err(),
            Error::new(ErrorKind::StringTableLength { length: 5 }, 3)
        );
        assert_eq!(
            Reader::new(&[0x03, 0x81], l).unwrap_err(),
            Error::new(ErrorKind::UnexpectedEof, 1)
        );
        assert_eq!(
            Reader::new(&[0x03, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], l)
                .unwrap_err()
                .kind,
            ErrorKind::BadMbUint
        );
    }

    #[test]
    fn empty_body_is_eof() {
        assert_eq!(
            events(&doc(&[])).unwrap_err(),
            Error::new(ErrorKind::UnexpectedEof, 4)
        );
    }

    // ---- tokens ----

    #[test]
    fn nesting_and_synthetic_end() {
        // <A><B/><C>x</C></A>
        let d = doc(&[0x45, 0x06, 0x47, STR_I, b'x', 0, END, END]);
        assert_eq!(
            events(&d).unwrap(),
            vec![
                start(0, 5, true),
                start(0, 6, false),
                Event::End,
                start(0, 7, true),
                Event::Str(b"x"),
                Event::End,
                Event::End,
            ]
        );
    }

    #[test]
    fn depth_is_tracked() {
        let d = doc(&[0x45, 0x06, END]);
        let mut r = Reader::new(&d, Limits::default()).unwrap();
        assert_eq!(r.depth(), 0);
        r.next_event().unwrap();
        assert_eq!(r.depth(), 1);
        r.next_event().unwrap();
        assert_eq!(r.depth(), 2);
        r.next_event().unwrap(); // synthetic End
        assert_eq!(r.depth(), 1);
        r.next_event().unwrap();
        assert_eq!(r.depth(), 0);
        assert_eq!(r.next_event().unwrap(), None);
        assert_eq!(r.next_event().unwrap(), None);
    }

    #[test]
    fn str_i_str_t_entity_opaque() {
        let d = doc_st(
            b"abc\0def\0",
            &[
                0x45, STR_I, b'h', b'i', 0, STR_T, 0x04, STR_T, 0x01, STR_T, 0x03, ENTITY, 0x81,
                0x00, OPAQUE, 0x03, 0, 1, 2, OPAQUE, 0x00, STR_I, 0, END,
            ],
        );
        assert_eq!(
            events(&d).unwrap(),
            vec![
                start(0, 5, true),
                Event::Str(b"hi"),
                Event::Str(b"def"),
                Event::Str(b"bc"),
                Event::Str(b""),
                Event::Entity(0x80),
                Event::Opaque(&[0, 1, 2]),
                Event::Opaque(&[]),
                Event::Str(b""),
                Event::End,
            ]
        );
    }

    #[test]
    fn string_table_without_final_nul_is_accepted() {
        let d = doc_st(b"ab\0cd", &[0x45, STR_T, 0x03, END]);
        assert_eq!(
            events(&d).unwrap(),
            vec![start(0, 5, true), Event::Str(b"cd"), Event::End]
        );
    }

    #[test]
    fn str_t_out_of_range() {
        let d = doc_st(b"ab\0", &[0x45, STR_T, 0x03, END]);
        assert_eq!(
            events(&d).unwrap_err(),
            Error::new(ErrorKind::StringTableOffset { offset: 3 }, 8)
        );
        let d = doc(&[0x45, STR_T, 0x00, END]);
        assert_eq!(err_kind(&d), ErrorKind::StringTableOffset { offset: 0 });
    }

    #[test]
    fn literal_tags() {
        let d = doc_st(
            b"root\0leaf\0",
            &[
                LITERAL_C, 0x00, LITERAL, 0x05, LITERAL_AC, 0x05, 0x50, STR_I, b'v', 0, END, END,
                END,
            ],
        );
        assert_eq!(
            events(&d).unwrap(),
            vec![
                Event::StartLiteral {
                    name: b"root",
                    has_content: true
                },
                Event::StartLiteral {
                    name: b"leaf",
                    has_content: false
                },
                Event::End,
                Event::StartLiteral {
                    name: b"leaf",
                    has_content: true
                },
                Event::End,
                Event::End,
            ]
        );
        // LITERAL_A: attributes, no content.
        let d = doc_st(b"x\0", &[LITERAL_A, 0x00, 0x50, END]);
        assert_eq!(
            events(&d).unwrap(),
            vec![
                Event::StartLiteral {
                    name: b"x",
                    has_content: false
                },
                Event::End
            ]
        );
    }

    #[test]
    fn switch_page() {
        let d = doc(&[
            SWITCH_PAGE,
            0x01,
            0x45,
            0x46,
            SWITCH_PAGE,
            0x00,
            0x46,
            END,
            SWITCH_PAGE,
            0x02,
            0x07,
            END,
            END,
        ]);
        assert_eq!(
            events(&d).unwrap(),
            vec![
                start(1, 5, true),
                start(1, 6, true),
                start(0, 6, true),
                Event::End,
                start(2, 7, false),
                Event::End,
                Event::End,
                Event::End,
            ]
        );
        let mut r = Reader::new(&d, Limits::default()).unwrap();
        while r.next_event().unwrap().is_some() {}
        assert_eq!(r.tag_page(), 2);
    }

    #[test]
    fn attributes_are_skipped() {
        // Tag 0x05 with attributes and content; the attribute list uses every allowed token.
        let d = doc_st(
            b"name\0val\0",
            &[
                0xC5, // tag 5, attributes + content
                0x05, // ATTRSTART
                STR_I,
                b'a',
                0,    // value
                0x85, // ATTRVALUE
                STR_T,
                0x05, // value from table
                ENTITY,
                0x20, // entity
                EXT_I_0,
                b'e',
                0,
                EXT_T_1,
                0x81,
                0x01,
                EXT_2, // extensions
                OPAQUE,
                0x02,
                0xAA,
                0xBB, // opaque
                SWITCH_PAGE,
                0x03, // attribute page
                LITERAL,
                0x00, // literal attribute name
                0x06, // ATTRSTART (page 3)
                END,  // end of attributes
                0x86, // tag 6 with attributes, no content
                0x05,
                END, // attribute list
                STR_I,
                b'c',
                0,
                END,
            ],
        );
        let mut r = Reader::new(&d, Limits::default()).unwrap();
        let mut evs = Vec::new();
        while let Some(ev) = r.next_event().unwrap() {
            evs.push(ev);
        }
        assert_eq!(
            evs,
            vec![
                start(0, 5, true),
                start(0, 6, false),
                Event::End,
                Event::Str(b"c"),
                Event::End,
            ]
        );
        assert_eq!(r.attr_page(), 3);
        assert_eq!(r.tag_page(), 0);
    }

    #[test]
    fn bad_tokens_in_attributes() {
        for tok in [PI, LITERAL_A, LITERAL_C, LITERAL_AC] {
            let d = doc(&[0xC5, 0x05, tok, 0x00, END, END]);
            assert_eq!(
                events(&d).unwrap_err(),
                Error::new(ErrorKind::UnexpectedToken { token: tok }, 6)
            );
        }
        // Attribute STR_T out of range.
        let d = doc(&[0x85, 0x05, STR_T, 0x00, END]);
        assert_eq!(err_kind(&d), ErrorKind::StringTableOffset { offset: 0 });
        // Unterminated attribute list.
        let d = doc(&[0x85, 0x05, STR_I, b'a', 0]);
        assert_eq!(err_kind(&d), ErrorKind::UnexpectedEof);
    }

    #[test]
    fn extensions_are_skipped_in_content() {
        let d = doc(&[
            0x45, EXT_I_0, b'a', 0, EXT_I_1, 0, EXT_I_2, b'b', b'c', 0, EXT_T_0, 0x05, EXT_T_1,
            0x81, 0x00, EXT_T_2, 0x00, EXT_0, EXT_1, EXT_2, STR_I, b'z', 0, END,
        ]);
        assert_eq!(
            events(&d).unwrap(),
            vec![start(0, 5, true), Event::Str(b"z"), Event::End]
        );
    }

    #[test]
    fn processing_instructions_are_skipped() {
        // PI before the root, inside content, after the root.
        let pi = [PI, 0x05, STR_I, b'x', 0, 0x85, END];
        let mut body = Vec::new();
        body.extend_from_slice(&pi);
        body.push(0x45);
        body.extend_from_slice(&pi);
        body.push(END);
        body.extend_from_slice(&pi);
        body.extend_from_slice(&pi);
        assert_eq!(
            events(&doc(&body)).unwrap(),
            vec![start(0, 5, true), Event::End]
        );
    }

    #[test]
    fn switch_page_before_root() {
        let d = doc(&[SWITCH_PAGE, 0x07, 0x05]);
        assert_eq!(events(&d).unwrap(), vec![start(7, 5, false), Event::End]);
    }

    #[test]
    fn content_tokens_before_root_are_rejected() {
        for tok in [STR_I, ENTITY, OPAQUE, STR_T, EXT_0, EXT_I_0, EXT_T_0] {
            assert_eq!(
                events(&doc(&[tok, 0, 0x05])).unwrap_err(),
                Error::new(ErrorKind::UnexpectedToken { token: tok }, 4)
            );
        }
        assert_eq!(
            events(&doc(&[END])).unwrap_err(),
            Error::new(ErrorKind::UnbalancedEnd, 4)
        );
    }

    #[test]
    fn trailing_data() {
        // Zero padding is fine.
        assert!(events(&doc(&[0x45, END, 0, 0, 0])).is_ok());
        assert!(events(&doc(&[0x05, 0])).is_ok());
        // Anything else is not.
        assert_eq!(
            events(&doc(&[0x45, END, END])).unwrap_err(),
            Error::new(ErrorKind::TrailingData, 6)
        );
        assert_eq!(
            events(&doc(&[0x45, END, 0x45, END])).unwrap_err(),
            Error::new(ErrorKind::TrailingData, 6)
        );
        assert_eq!(
            events(&doc(&[0x45, END, 0, 0x05])).unwrap_err(),
            Error::new(ErrorKind::TrailingData, 6)
        );
        // Trailing data is reported after the root's End, instead of None.
        let d = doc(&[0x05, 0x07]);
        let mut r = Reader::new(&d, Limits::default()).unwrap();
        assert_eq!(r.next_event().unwrap(), Some(start(0, 5, false)));
        assert_eq!(r.next_event().unwrap(), Some(Event::End));
        assert_eq!(r.next_event().unwrap_err().kind, ErrorKind::TrailingData);
    }

    #[test]
    fn truncation_is_eof() {
        let full = doc(&[
            0x45,
            STR_I,
            b'a',
            0,
            OPAQUE,
            0x02,
            1,
            2,
            ENTITY,
            0x81,
            0x00,
            SWITCH_PAGE,
            1,
            0x46,
            END,
            END,
        ]);
        for cut in 4..full.len() {
            assert_eq!(
                err_kind(&full[..cut]),
                ErrorKind::UnexpectedEof,
                "cut at {cut}"
            );
        }
        assert!(events(&full).is_ok());
    }

    #[test]
    fn errors_are_sticky() {
        let d = doc(&[0x45, STR_T, 0x09]);
        let mut r = Reader::new(&d, Limits::default()).unwrap();
        r.next_event().unwrap();
        let e = r.next_event().unwrap_err();
        assert_eq!(r.next_event().unwrap_err(), e);
    }

    #[test]
    fn bad_mb_in_content() {
        let d = doc(&[0x45, ENTITY, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, END]);
        assert_eq!(events(&d).unwrap_err(), Error::new(ErrorKind::BadMbUint, 6));
        let d = doc(&[0x45, OPAQUE, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F, END]);
        assert_eq!(err_kind(&d), ErrorKind::UnexpectedEof);
    }

    // ---- limits ----

    #[test]
    fn depth_limit() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        // Depth 3, innermost without content: fine.
        assert!(read_all(&doc(&[0x45, 0x45, 0x05, END, END]), limits).is_ok());
        // Depth 4.
        assert_eq!(
            read_all(&doc(&[0x45, 0x45, 0x45, 0x05, END, END, END]), limits).unwrap_err(),
            Error::new(ErrorKind::DepthLimit { limit: 3 }, 7)
        );
    }

    #[test]
    fn input_limit() {
        let d = doc(&[0x05]);
        let limits = Limits {
            max_input: 4,
            ..Limits::default()
        };
        assert_eq!(
            Reader::new(&d, limits).unwrap_err().kind,
            ErrorKind::InputLimit { limit: 4 }
        );
        let limits = Limits {
            max_input: 5,
            ..Limits::default()
        };
        assert!(read_all(&d, limits).is_ok());
    }

    #[test]
    fn token_limit_counts_skipped_tokens() {
        // 0x45, PI, 0x05, END(pi), END: 5 tokens.
        let d = doc(&[0x45, PI, 0x05, END, END]);
        let at = |n| Limits {
            max_tokens: n,
            ..Limits::default()
        };
        assert!(read_all(&d, at(5)).is_ok());
        assert_eq!(
            read_all(&d, at(4)).unwrap_err(),
            Error::new(ErrorKind::TokenLimit { limit: 4 }, 8)
        );
    }

    #[test]
    fn display_names_offset_and_limit() {
        let e = Error::new(ErrorKind::DepthLimit { limit: 64 }, 17);
        assert_eq!(
            e.to_string(),
            "element nesting deeper than the limit of 64 at byte 17"
        );
        let e = Error::new(ErrorKind::UnexpectedToken { token: 0x44 }, 3);
        assert_eq!(e.to_string(), "unexpected token 0x44 at byte 3");
    }
}
