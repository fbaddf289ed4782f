//! WBXML multi-byte unsigned integers (`mb_u_int32`, WBXML 1.3 §5.1).
//!
//! Big-endian groups of 7 bits; every byte but the last has the continuation bit 0x80 set.
//! At most 5 bytes are accepted (35 bits of payload), and the value must fit in a `u32`.
//! Redundant leading `0x80` bytes are accepted as long as the total stays within 5 bytes.

use crate::ErrorKind;

/// Maximum encoded length of an `mb_u_int32`.
pub const MB_U_INT32_MAX_LEN: usize = 5;

/// Number of bytes [`write_mb_u_int32`] emits for `v` (1 to 5).
#[inline]
pub fn mb_u_int32_len(v: u32) -> usize {
    match v {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        0x20_0000..=0x0FFF_FFFF => 4,
        _ => 5,
    }
}

/// Appends the shortest `mb_u_int32` encoding of `v` to `out`.
#[inline]
pub fn write_mb_u_int32(out: &mut Vec<u8>, v: u32) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    let len = mb_u_int32_len(v);
    let mut buf = [0u8; MB_U_INT32_MAX_LEN];
    for (i, slot) in buf[..len].iter_mut().enumerate() {
        let shift = 7 * (len - 1 - i);
        let cont = if i + 1 < len { 0x80 } else { 0 };
        *slot = ((v >> shift) & 0x7F) as u8 | cont;
    }
    out.extend_from_slice(&buf[..len]);
}

/// Decodes an `mb_u_int32` from the start of `input`.
///
/// Returns the value and the number of bytes consumed.
///
/// # Errors
/// [`ErrorKind::UnexpectedEof`] if `input` ends before the last byte (one without the
/// continuation bit); [`ErrorKind::BadMbUint`] if the encoding is longer than 5 bytes or the
/// value exceeds `u32::MAX`.
#[inline]
pub fn read_mb_u_int32(input: &[u8]) -> Result<(u32, usize), ErrorKind> {
    let mut v: u32 = 0;
    for (i, &b) in input.iter().enumerate() {
        if i >= MB_U_INT32_MAX_LEN || v > (u32::MAX >> 7) {
            return Err(ErrorKind::BadMbUint);
        }
        v = (v << 7) | u32::from(b & 0x7F);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    if input.len() >= MB_U_INT32_MAX_LEN {
        Err(ErrorKind::BadMbUint)
    } else {
        Err(ErrorKind::UnexpectedEof)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn known_encodings() {
        let cases: &[(u32, &[u8])] = &[
            (0, &[0x00]),
            (0x7F, &[0x7F]),
            (0x80, &[0x81, 0x00]),
            (0xA0, &[0x81, 0x20]),
            (0x1201, &[0xA4, 0x01]),
            (0x3FFF, &[0xFF, 0x7F]),
            (0x4000, &[0x81, 0x80, 0x00]),
            (u32::MAX, &[0x8F, 0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(v, enc) in cases {
            let mut out = Vec::new();
            write_mb_u_int32(&mut out, v);
            assert_eq!(out, enc, "encode {v:#x}");
            assert_eq!(mb_u_int32_len(v), enc.len());
            assert_eq!(read_mb_u_int32(enc).unwrap(), (v, enc.len()));
        }
    }

    #[test]
    fn trailing_bytes_are_not_consumed() {
        assert_eq!(read_mb_u_int32(&[0x81, 0x00, 0x55]).unwrap(), (0x80, 2));
    }

    #[test]
    fn redundant_leading_zero_groups_accepted() {
        assert_eq!(read_mb_u_int32(&[0x80, 0x80, 0x05]).unwrap(), (5, 3));
    }

    #[test]
    fn overflow_and_length() {
        // 2^32 needs bit 32: first byte payload 0x10.
        assert_eq!(
            read_mb_u_int32(&[0x90, 0x80, 0x80, 0x80, 0x00]),
            Err(ErrorKind::BadMbUint)
        );
        // Six bytes, even if the value is small.
        assert_eq!(
            read_mb_u_int32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(ErrorKind::BadMbUint)
        );
        assert_eq!(
            read_mb_u_int32(&[0x80, 0x80, 0x80, 0x80, 0x80]),
            Err(ErrorKind::BadMbUint)
        );
    }

    #[test]
    fn eof() {
        assert_eq!(read_mb_u_int32(&[]), Err(ErrorKind::UnexpectedEof));
        assert_eq!(read_mb_u_int32(&[0x81]), Err(ErrorKind::UnexpectedEof));
        assert_eq!(
            read_mb_u_int32(&[0x81, 0x81, 0x81, 0x81]),
            Err(ErrorKind::UnexpectedEof)
        );
    }
}
