//! Webhook signing secrets and signatures.
//!
//! Every delivery carries `omnidm-timestamp: <unix seconds>` and
//! `omnidm-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, where the key is
//! the whole secret text as shown at subscription (`whsec_…`, its UTF-8 bytes) and `<body>` is
//! the raw request body, byte for byte.
//!
//! **Verifying a delivery (receiver side):**
//! 1. read the raw body before any JSON parsing (re-serialising changes bytes);
//! 2. compute `HMAC-SHA256(secret, timestamp + "." + body)` and hex-encode it;
//! 3. compare it with the `v1=` value in constant time (the header may carry several
//!    comma-separated `v1=` values during a secret rotation: accept if any matches);
//! 4. refuse the delivery if the timestamp is more than 5 minutes away from your clock, so a
//!    captured request cannot be replayed later; within the window, de-duplicate on
//!    `omnidm-event-id` (deliveries are at least once: a retry after a lost answer repeats
//!    an event).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::problem::{ApiError, Kind};

/// Prefix of webhook secrets (recognisable by secret scanners).
pub const SECRET_PREFIX: &str = "whsec_";

/// Replay window a receiver should allow around its clock, in seconds.
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// A new signing secret: `whsec_` + 32 random bytes, base64url without padding.
pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::new(Kind::Internal, format!("no randomness: {e}")))?;
    Ok(format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return Vec::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The `omnidm-signature` header value: `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1={}", hex::encode(mac(secret, timestamp, body)))
}

/// What a receiver does (see the module documentation): true if one `v1=` value of `header`
/// is the signature of `body` at `timestamp` and `timestamp` is within
/// [`REPLAY_WINDOW_SECS`] of `now_secs`.
pub fn verify(secret: &str, timestamp: i64, body: &[u8], header: &str, now_secs: i64) -> bool {
    if (now_secs - timestamp).abs() > REPLAY_WINDOW_SECS {
        return false;
    }
    let expected = mac(secret, timestamp, body);
    header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|h| hex::decode(h).ok())
        .any(|given| bool::from(given.ct_eq(&expected)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_fixed_vector() {
        // Independently computed:
        //   printf '1795000000.{"id":1}' | openssl dgst -sha256 -hmac 'whsec_test'
        assert_eq!(
            signature("whsec_test", 1_795_000_000, br#"{"id":1}"#),
            "v1=e79655c9f4d57b171e6500ec3c7e77d212e9d28f56058d634a0a748916261596"
        );
    }

    #[test]
    fn verification_checks_signature_and_window() {
        let body = br#"{"id":7,"type":"device.seen"}"#;
        let sig = signature("whsec_k", 1000, body);
        assert!(verify("whsec_k", 1000, body, &sig, 1000 + 299));
        assert!(!verify("whsec_k", 1000, body, &sig, 1000 + 301), "replay");
        assert!(!verify("whsec_other", 1000, body, &sig, 1000));
        assert!(
            !verify("whsec_k", 1001, body, &sig, 1001),
            "timestamp is signed"
        );
        assert!(
            !verify("whsec_k", 1000, b"{}", &sig, 1000),
            "body is signed"
        );
        assert!(verify(
            "whsec_k",
            1000,
            body,
            &format!("v1=00, {sig}"),
            1000
        ));
    }

    #[test]
    fn secrets_are_prefixed_and_random() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 43);
        assert_ne!(a, b);
    }
}
