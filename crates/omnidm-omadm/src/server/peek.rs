//! Reading a message's identity before any session exists for it.

use omnidm_syncml::{Decoded, Encoding, Limits, decode_with};

use super::types::{Peek, PeekError};
use super::wire::token_from_uri;

/// Reads the device id, SessionID, MsgID and (when the device addressed our `RespURI`) the
/// server session token, so the driver can load the device's [`DeviceContext`] or route the
/// message to its running session. `content_type` picks the encoding; without it the
/// encoding is sniffed. Decodes the whole message (bounded by `limits`); never panics.
///
/// The token normally comes from the URL the device posted to (the driver parses it with
/// [`token_from_uri`]); the SyncHdr `Target` is checked too because some devices echo it there.
///
/// [`DeviceContext`]: super::DeviceContext
pub fn peek(body: &[u8], content_type: Option<&str>, limits: Limits) -> Result<Peek, PeekError> {
    peek_decoded(body, content_type, limits).map(|(p, _)| p)
}

/// [`peek`], also returning the decoded message so that the driver can hand it to
/// [`ServerSession::handle_decoded`](super::ServerSession::handle_decoded) instead of having it
/// decoded twice.
pub fn peek_decoded(
    body: &[u8],
    content_type: Option<&str>,
    limits: Limits,
) -> Result<(Peek, Decoded), PeekError> {
    let encoding = match content_type {
        Some(ct) => Encoding::from_content_type(ct)
            .ok_or_else(|| PeekError::UnsupportedContentType(ct.chars().take(80).collect()))?,
        None => Encoding::sniff(body),
    };
    let decoded = decode_with(body, encoding, limits)?;
    let h = &decoded.message.header;
    if h.source.loc_uri.trim().is_empty() {
        return Err(PeekError::NoDeviceId);
    }
    let peek = Peek {
        session_token: token_from_uri(&h.target.loc_uri),
        device_id: h.source.loc_uri.clone(),
        session_id: h.session_id.clone(),
        msg_id: h.msg_id,
        encoding: decoded.encoding,
    };
    Ok((peek, decoded))
}
