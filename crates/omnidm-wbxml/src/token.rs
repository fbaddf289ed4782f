//! Global token values (WBXML 1.3 §7.1) and tag-byte flags.
//!
//! Global tokens are the same on every code page. Tag and attribute tokens are the remaining
//! byte values and are defined by the document type, which this crate does not know.

/// Change the code page of the current token state; followed by a one-byte page index.
pub const SWITCH_PAGE: u8 = 0x00;
/// Ends an attribute list or an element.
pub const END: u8 = 0x01;
/// Character entity; followed by an `mb_u_int32` UCS-4 character code.
pub const ENTITY: u8 = 0x02;
/// Inline string; followed by a NUL-terminated string.
pub const STR_I: u8 = 0x03;
/// Unknown tag or attribute name; followed by an `mb_u_int32` string table offset.
pub const LITERAL: u8 = 0x04;
/// Inline string extension 0 (`EXT_I_1`, `EXT_I_2` follow).
pub const EXT_I_0: u8 = 0x40;
/// Inline string extension 1.
pub const EXT_I_1: u8 = 0x41;
/// Inline string extension 2.
pub const EXT_I_2: u8 = 0x42;
/// Processing instruction.
pub const PI: u8 = 0x43;
/// Unknown tag with content.
pub const LITERAL_C: u8 = 0x44;
/// Inline integer extension 0; followed by an `mb_u_int32`.
pub const EXT_T_0: u8 = 0x80;
/// Inline integer extension 1.
pub const EXT_T_1: u8 = 0x81;
/// Inline integer extension 2.
pub const EXT_T_2: u8 = 0x82;
/// String table reference; followed by an `mb_u_int32` offset into the string table.
pub const STR_T: u8 = 0x83;
/// Unknown tag with attributes.
pub const LITERAL_A: u8 = 0x84;
/// Single-byte extension 0 (no payload).
pub const EXT_0: u8 = 0xC0;
/// Single-byte extension 1.
pub const EXT_1: u8 = 0xC1;
/// Single-byte extension 2.
pub const EXT_2: u8 = 0xC2;
/// Opaque data; followed by an `mb_u_int32` length and that many bytes.
pub const OPAQUE: u8 = 0xC3;
/// Unknown tag with content and attributes.
pub const LITERAL_AC: u8 = 0xC4;

/// Tag-byte flag: the element has content (and is closed by END).
pub const TAG_CONTENT: u8 = 0x40;
/// Tag-byte flag: the element has an attribute list (closed by END).
pub const TAG_ATTRIBUTES: u8 = 0x80;
/// Mask of the tag identity in a tag byte.
pub const TAG_MASK: u8 = 0x3F;
/// Smallest tag identity that is not a global token (`0x05`).
pub const TAG_MIN: u8 = 0x05;
