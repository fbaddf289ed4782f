//! Package 0: the General Notification Initiated Session Alert (OMA-TS-DM_Notification-V1_2,
//! "DM Notification", §6.2), the binary message a server pushes (WAP Push / SMS) to ask a device
//! to open a management session.
//!
//! Wire layout (§6.2.1, big-endian, MSB first):
//!
//! ```text
//! digest            128 bits   H(B64(H(server-identifier:password)):nonce:B64(H(trigger)))
//! trigger-hdr:
//!   version          10 bits   0000001011 (11) for DM 1.2, see [`Version::DM_1_2`]
//!   ui-mode           2 bits   00 not specified, 01 background, 10 informative, 11 user interaction
//!   initiator         1 bit    0 client (user), 1 server
//!   future-use       27 bits   MUST be 0 (accepted and preserved when not)
//!   sessionid        16 bits
//!   length-identifier 8 bits   length of server-identifier in bytes
//!   server-identifier  n bytes
//! trigger-body      rest       vendor specific
//! ```
//!
//! The digest (§6.2.2.2) is the DM Security HMAC construction over the trigger (header + body),
//! keyed by the *server's* credentials (server identifier and server password, i.e. the
//! device's `AppAuth` entry for server-to-client authentication) and the *server nonce* (the
//! nonce the device issued for authenticating the server).
//!
//! This module does no I/O and no randomness; it never panics on any input.

use std::fmt;

use subtle::ConstantTimeEq as _;

use crate::auth::{Credentials, DigestKey, Nonce, NonceForm, hmac_digest_with_key};

/// MIME type of package 0 (§6.2); its WSP content-type code is [`WSP_CONTENT_TYPE_CODE`].
pub const CONTENT_TYPE: &str = "application/vnd.syncml.notification";

/// WSP well-known content-type code of [`CONTENT_TYPE`] (§6.2).
pub const WSP_CONTENT_TYPE_CODE: u8 = 0x44;

/// Length of the digest field in bytes.
pub const DIGEST_LEN: usize = 16;

/// Length of the fixed part of the trigger header in bytes (10+2+1+27+16+8 bits).
pub const FIXED_HEADER_LEN: usize = 8;

/// Smallest possible package 0: digest + fixed header + empty server identifier.
pub const MIN_LEN: usize = DIGEST_LEN + FIXED_HEADER_LEN;

/// The 10-bit `version` field of the trigger header (§6.2.2.6).
///
/// DM Notification 1.2 prescribes the binary value `0000001011` (11) for a DM 1.2
/// notification: the field is *not* "version × 10". Clients written to the text check it
/// exactly (libdmclient accepts 11 and nothing else, `PRV_VERSION_MIN/MAX` in its
/// `package0.c`), so [`Version::DM_1_2`] is the default. Other values are kept representable
/// because the field is a per-device choice (decision 69): a device profile may need the
/// value 12 that some servers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(u16);

impl Version {
    /// The value DM Notification 1.2 prescribes for DM 1.2: binary `0000001011`, 11. The
    /// default.
    pub const DM_1_2: Version = Version(11);
    /// Field value 12 ("1.2" read as version × 10): not what the specification prescribes, but
    /// sent by some servers and expected by some devices; choose it per device profile.
    pub const TWELVE: Version = Version(12);
    /// Largest value representable in 10 bits.
    pub const MAX: u16 = 0x3ff;

    /// A version from its raw field value; `None` if it does not fit in 10 bits.
    pub const fn new(raw: u16) -> Option<Version> {
        if raw <= Version::MAX {
            Some(Version(raw))
        } else {
            None
        }
    }

    /// The raw 10-bit field value.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl Default for Version {
    /// [`Version::DM_1_2`], what the specification prescribes.
    fn default() -> Version {
        Version::DM_1_2
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Version::DM_1_2 {
            f.write_str("1.2")
        } else {
            write!(f, "non-standard ({})", self.0)
        }
    }
}

/// The server's recommendation for user interaction (§6.2.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UiMode {
    /// `00`: no recommendation.
    #[default]
    NotSpecified,
    /// `01`: run the session in the background.
    Background,
    /// `10`: inform the user (notification, beep).
    Informative,
    /// `11`: ask the user to accept the session first.
    UserInteraction,
}

impl UiMode {
    const fn bits(self) -> u64 {
        match self {
            UiMode::NotSpecified => 0,
            UiMode::Background => 1,
            UiMode::Informative => 2,
            UiMode::UserInteraction => 3,
        }
    }

    const fn from_bits(b: u64) -> UiMode {
        match b & 3 {
            0 => UiMode::NotSpecified,
            1 => UiMode::Background,
            2 => UiMode::Informative,
            _ => UiMode::UserInteraction,
        }
    }
}

/// Who caused the session (§6.2.2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Initiator {
    /// `0`: the end user asked for it.
    Client,
    /// `1`: the server (operator) has management actions to perform.
    #[default]
    Server,
}

/// A server identifier of at most 255 bytes, the limit of the 8-bit length field (§6.2.2.11).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ServerId(String);

impl ServerId {
    /// Largest server identifier length in bytes.
    pub const MAX_LEN: usize = 255;

    /// Checks the length; fails with [`NotificationError::ServerIdTooLong`].
    pub fn new(id: impl Into<String>) -> Result<ServerId, NotificationError> {
        let id = id.into();
        if id.len() > ServerId::MAX_LEN {
            Err(NotificationError::ServerIdTooLong { len: id.len() })
        } else {
            Ok(ServerId(id))
        }
    }

    /// The identifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The content of a package 0, without its digest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notification {
    /// The `version` field (10 bits); [`Version::DM_1_2`] (11) unless a device profile needs
    /// another value.
    pub version: Version,
    /// User-interaction recommendation.
    pub ui_mode: UiMode,
    /// Who caused the session.
    pub initiator: Initiator,
    /// The session id the device must use in package 1 (as upper-case hex without leading
    /// zeros, §6.2.2.10).
    pub session_id: u16,
    /// The server identifier (the device looks up its DM account by it).
    pub server_id: ServerId,
    /// Optional vendor-specific trigger body (§6.2.2.13).
    pub vendor_specific: Vec<u8>,
}

/// A decoded package 0: the notification, its digest and the raw trigger the digest covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedNotification {
    /// The decoded fields.
    pub notification: Notification,
    /// The 27 `future-use` bits as received (the spec requires 0; a non-zero value is kept so
    /// the caller can log it, and does not affect digest verification).
    pub future_use: u32,
    /// The received digest.
    pub digest: [u8; DIGEST_LEN],
    /// The exact trigger bytes (header + body) the digest was computed over.
    pub trigger: Vec<u8>,
}

/// Errors decoding or building a package 0. Offsets are byte offsets into the whole message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotificationError {
    /// The message ends before a field: `needed` bytes were required at least, `got` present.
    #[error("package 0 truncated at offset {offset}: need {needed} bytes, got {got}")]
    Truncated {
        /// Offset of the field that does not fit.
        offset: usize,
        /// Minimum total length required to hold it.
        needed: usize,
        /// Actual message length.
        got: usize,
    },
    /// The server identifier is not UTF-8.
    #[error("server identifier at offset {offset} is not UTF-8")]
    ServerIdNotUtf8 {
        /// Offset of the server identifier.
        offset: usize,
    },
    /// A server identifier longer than 255 bytes.
    #[error("server identifier is {len} bytes, at most 255 allowed")]
    ServerIdTooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// Builds the trigger (header + body) bytes of a notification.
fn encode_trigger(n: &Notification) -> Vec<u8> {
    let id = n.server_id.as_str().as_bytes();
    let mut out = Vec::with_capacity(FIXED_HEADER_LEN + id.len() + n.vendor_specific.len());
    // 64-bit fixed header: version(10) ui(2) initiator(1) future(27) session(16) len(8).
    let initiator = match n.initiator {
        Initiator::Client => 0u64,
        Initiator::Server => 1u64,
    };
    // `ServerId` guarantees len <= 255, so the cast cannot truncate.
    let id_len = u64::try_from(id.len()).unwrap_or(0) & 0xff;
    let word = (u64::from(n.version.get()) & 0x3ff) << 54
        | n.ui_mode.bits() << 52
        | initiator << 51
        | u64::from(n.session_id) << 8
        | id_len;
    out.extend_from_slice(&word.to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&n.vendor_specific);
    out
}

/// The package 0 digest over `trigger` (§6.2.2.2).
fn trigger_digest(trigger: &[u8], server: &DigestKey, nonce: &Nonce) -> [u8; DIGEST_LEN] {
    hmac_digest_with_key(server, nonce, NonceForm::Raw, trigger)
}

/// Encodes a package 0, computing the digest with the server's credentials (server
/// identifier and server password as the device knows them) and the server nonce.
///
/// `server.username` is used for the digest and should equal `n.server_id`; it is not forced so
/// that a test can build a deliberately inconsistent message.
pub fn encode(n: &Notification, server: &Credentials, nonce: &Nonce) -> Vec<u8> {
    encode_with_key(n, &DigestKey::from_credentials(server), nonce)
}

/// [`encode`] from the stored key `H(server id:server password)`: what a server that keeps no
/// plaintext secrets has.
pub fn encode_with_key(n: &Notification, server: &DigestKey, nonce: &Nonce) -> Vec<u8> {
    let trigger = encode_trigger(n);
    let mut out = Vec::with_capacity(DIGEST_LEN + trigger.len());
    out.extend_from_slice(&trigger_digest(&trigger, server, nonce));
    out.extend_from_slice(&trigger);
    out
}

/// Decodes a package 0. Liberal: any version and non-zero `future-use` bits are accepted (and
/// reported); everything after the server identifier is the vendor-specific body.
pub fn decode(data: &[u8]) -> Result<DecodedNotification, NotificationError> {
    let truncated = |offset: usize, needed: usize| NotificationError::Truncated {
        offset,
        needed,
        got: data.len(),
    };
    let digest: [u8; DIGEST_LEN] = data
        .get(..DIGEST_LEN)
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| truncated(0, MIN_LEN))?;
    let header: [u8; FIXED_HEADER_LEN] = data
        .get(DIGEST_LEN..MIN_LEN)
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| truncated(DIGEST_LEN, MIN_LEN))?;
    let word = u64::from_be_bytes(header);
    let raw_version = ((word >> 54) & 0x3ff) as u16;
    let ui_mode = UiMode::from_bits(word >> 52);
    let initiator = if (word >> 51) & 1 == 1 {
        Initiator::Server
    } else {
        Initiator::Client
    };
    let future_use = ((word >> 24) & 0x7ff_ffff) as u32;
    let session_id = ((word >> 8) & 0xffff) as u16;
    let id_len = usize::from(header[FIXED_HEADER_LEN - 1]);
    let id_end = MIN_LEN + id_len;
    let id_bytes = data
        .get(MIN_LEN..id_end)
        .ok_or_else(|| truncated(MIN_LEN, id_end))?;
    let id = std::str::from_utf8(id_bytes)
        .map_err(|_| NotificationError::ServerIdNotUtf8 { offset: MIN_LEN })?;
    let vendor_specific = data.get(id_end..).unwrap_or_default().to_vec();
    let trigger = data.get(DIGEST_LEN..).unwrap_or_default().to_vec();
    Ok(DecodedNotification {
        notification: Notification {
            // 10 bits by the mask above, and at most 255 bytes by the 8-bit length.
            version: Version(raw_version),
            ui_mode,
            initiator,
            session_id,
            server_id: ServerId(id.to_string()),
            vendor_specific,
        },
        future_use,
        digest,
        trigger,
    })
}

/// Checks the digest of a decoded package 0 against the server credentials and nonce, in
/// constant time. A device whose check fails with its stored nonce may retry with
/// [`Nonce::resync_candidates`] (DM Notification 1.2 nonce resynchronisation).
pub fn verify_digest(decoded: &DecodedNotification, server: &Credentials, nonce: &Nonce) -> bool {
    let expected = trigger_digest(
        &decoded.trigger,
        &DigestKey::from_credentials(server),
        nonce,
    );
    expected.ct_eq(&decoded.digest).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn server_id_limit() {
        assert!(ServerId::new("a".repeat(255)).is_ok());
        assert_eq!(
            ServerId::new("a".repeat(256)),
            Err(NotificationError::ServerIdTooLong { len: 256 })
        );
    }

    #[test]
    fn version_limits_and_display() {
        assert_eq!(Version::new(1024), None);
        assert_eq!(Version::new(1023).map(Version::get), Some(1023));
        assert_eq!(Version::DM_1_2.to_string(), "1.2");
        assert_eq!(Version::TWELVE.to_string(), "non-standard (12)");
    }

    #[test]
    fn truncation_offsets() {
        assert_eq!(
            decode(&[0; 10]),
            Err(NotificationError::Truncated {
                offset: 0,
                needed: 24,
                got: 10
            })
        );
        assert_eq!(
            decode(&[0; 20]),
            Err(NotificationError::Truncated {
                offset: 16,
                needed: 24,
                got: 20
            })
        );
        let mut m = vec![0; 24];
        m[23] = 3;
        m.push(b'a');
        assert_eq!(
            decode(&m),
            Err(NotificationError::Truncated {
                offset: 24,
                needed: 27,
                got: 25
            })
        );
    }
}
