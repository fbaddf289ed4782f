//! Small conversions shared by the handlers: RFC 3339 timestamps, opaque cursors, ETags and
//! JSON bodies that fail as problems.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use omnidm_core::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::problem::{ApiError, Kind};

/// RFC 3339 text of a timestamp (UTC, milliseconds).
pub fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.millis()) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.millis().to_string())
}

/// Optional RFC 3339 text.
pub fn rfc3339_opt(t: Option<Timestamp>) -> Option<String> {
    t.map(rfc3339)
}

/// Parses an RFC 3339 query parameter.
pub fn parse_rfc3339(name: &str, s: &str) -> Result<Timestamp, ApiError> {
    let d = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        ApiError::bad_request(format!(
            "{name}: {s:?} is not an RFC 3339 time ({e}); example: 2026-11-24T08:00:00Z"
        ))
    })?;
    let ms = d.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms)
        .map(Timestamp)
        .map_err(|_| ApiError::bad_request(format!("{name}: out of range")))
}

/// The clock, read in the I/O layer only.
pub fn now() -> Timestamp {
    let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Opaque cursor text for a key.
pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// Inverse of [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad_request("cursor is not one this server issued; pass next_cursor from the previous page unchanged"))
}

/// Key sealing cursors that mark a position the caller may not see (issue 8 review, item 1):
/// the device listing's cursor is the last device *examined*, which for an application may be
/// a device its grants do not cover. Derived from the installation's `cursor_key` server
/// secret, so every node opens every node's cursors.
pub struct CursorKey {
    /// Keystream key.
    enc: [u8; 32],
    /// Tag key.
    mac: [u8; 32],
}

/// Random bytes before the ciphertext of a sealed cursor.
const CURSOR_NONCE: usize = 16;
/// Bytes of the (truncated HMAC-SHA256) tag after the ciphertext.
const CURSOR_TAG: usize = 16;

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac_of(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::Mac as _;
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request(
        "cursor is not one this server issued; pass next_cursor from the previous page unchanged",
    )
}

impl CursorKey {
    /// The key derived from a server secret.
    pub fn new(secret: &[u8]) -> CursorKey {
        CursorKey {
            enc: hmac_of(secret, &[b"omnidm cursor encryption"]),
            mac: hmac_of(secret, &[b"omnidm cursor authentication"]),
        }
    }

    /// XORs `data` with HMAC-SHA256(enc, nonce || counter) blocks.
    fn apply_keystream(&self, nonce: &[u8], data: &mut [u8]) {
        for (i, chunk) in data.chunks_mut(32).enumerate() {
            let block = hmac_of(&self.enc, &[nonce, &(i as u64).to_be_bytes()]);
            for (b, k) in chunk.iter_mut().zip(block) {
                *b ^= k;
            }
        }
    }

    /// An opaque cursor for `key`: base64url of nonce || ciphertext || tag (encrypt, then
    /// MAC). A fresh nonce each time, so two cursors of one position do not match either.
    pub fn seal(&self, key: &str) -> Result<String, ApiError> {
        let mut nonce = [0u8; CURSOR_NONCE];
        getrandom::fill(&mut nonce)
            .map_err(|e| ApiError::new(Kind::Internal, format!("no randomness: {e}")))?;
        let mut body = key.as_bytes().to_vec();
        self.apply_keystream(&nonce, &mut body);
        let tag = hmac_of(&self.mac, &[&nonce, &body]);
        let mut out = Vec::with_capacity(CURSOR_NONCE + body.len() + CURSOR_TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag[..CURSOR_TAG]);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Inverse of [`seal`](Self::seal); a cursor this installation did not seal (or one
    /// altered) is a bad request.
    pub fn open(&self, cursor: &str) -> Result<String, ApiError> {
        use subtle::ConstantTimeEq as _;
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?;
        if raw.len() < CURSOR_NONCE + CURSOR_TAG {
            return Err(bad_cursor());
        }
        let (nonce, rest) = raw.split_at(CURSOR_NONCE);
        let (body, tag) = rest.split_at(rest.len() - CURSOR_TAG);
        let expected = hmac_of(&self.mac, &[nonce, body]);
        if !bool::from(expected[..CURSOR_TAG].ct_eq(tag)) {
            return Err(bad_cursor());
        }
        let mut body = body.to_vec();
        self.apply_keystream(nonce, &mut body);
        String::from_utf8(body).map_err(|_| bad_cursor())
    }
}

/// Decodes a numeric cursor.
pub fn decode_num_cursor(cursor: &str) -> Result<u64, ApiError> {
    decode_cursor(cursor)?
        .parse()
        .map_err(|_| ApiError::bad_request("cursor is not one this server issued; pass next_cursor from the previous page unchanged"))
}

/// Page size: default 100, at most 1000.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(0) => Err(ApiError::bad_request("limit must be between 1 and 1000")),
        Some(n) if n > 1000 => Err(ApiError::bad_request("limit must be between 1 and 1000")),
        Some(n) => Ok(n),
    }
}

/// Strong ETag of a resource representation.
pub fn etag_of<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&json);
    format!("\"{}\"", hex::encode(&digest[..12]))
}

/// Checks `If-Match` against the current ETag (absent header = unconditional).
pub fn check_if_match(headers: &HeaderMap, current: &str) -> Result<(), ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("");
    if v.trim() == "*" || v.split(',').any(|t| t.trim() == current) {
        Ok(())
    } else {
        Err(ApiError::new(
            Kind::PreconditionFailed,
            format!(
                "If-Match {v} does not match the current ETag {current}; GET the resource again and retry"
            ),
        ))
    }
}

/// A JSON response carrying its strong ETag.
pub fn with_etag<T: Serialize>(view: &T) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (etag_header(&etag_of(view)), axum::Json(view)).into_response()
}

/// An ETag header value.
pub fn etag_header(etag: &str) -> [(header::HeaderName, HeaderValue); 1] {
    [(
        header::ETAG,
        HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"0\"")),
    )]
}

/// A JSON body extractor whose rejections are problem+json (axum's are text/plain).
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            Kind::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(e) => ApiError::bad_request(format!(
            "the JSON does not match the schema: {}",
            e.body_text()
        )),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::BytesRejection(e) => {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    Kind::PayloadTooLarge,
                    "the body exceeds the API limit (1 MiB)",
                )
            } else {
                ApiError::bad_request(format!("could not read the body: {}", e.body_text()))
            }
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

/// Parses a JSON body, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad_request(format!("the body is not valid JSON: {e}"))
        } else {
            ApiError::bad_request(format!("the JSON does not match the schema: {e}"))
        }
    })
}

/// Query-string extractor whose rejections are problem+json.
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "bad query string: {}",
                e.body_text()
            ))),
        }
    }
}

/// Path extractor whose rejections are problem+json.
pub struct Path<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "bad path parameter: {}",
                e.body_text()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = Timestamp(1_795_000_000_123);
        let s = rfc3339(t);
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(parse_rfc3339("t", &s).unwrap(), t);
        assert!(parse_rfc3339("t", "yesterday").is_err());
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor("IMEI:1")).unwrap(), "IMEI:1");
        assert!(decode_cursor("%%%").is_err());
    }

    /// Issue 8 review item 1: sealed cursors round-trip, hide the position, and refuse
    /// anything altered or sealed with another installation's key.
    #[test]
    fn sealed_cursors_round_trip_and_hide_the_position() {
        let k = CursorKey::new(&[7; 32]);
        let id = "IMEI:493005100592800-with-a-long-tail-beyond-one-block";
        let a = k.seal(id).unwrap();
        let b = k.seal(id).unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert_eq!(k.open(&a).unwrap(), id);
        let raw = URL_SAFE_NO_PAD.decode(&a).unwrap();
        assert!(
            !raw.windows(4).any(|w| w == b"IMEI"),
            "the id is not in clear"
        );
        assert!(
            k.open(&encode_cursor(id)).is_err(),
            "plain cursors are refused"
        );
        let mut tampered = raw.clone();
        tampered[CURSOR_NONCE] ^= 1;
        assert!(k.open(&URL_SAFE_NO_PAD.encode(&tampered)).is_err());
        assert!(CursorKey::new(&[8; 32]).open(&a).is_err());
        assert!(k.open("").is_err());
        assert!(k.open("%%%").is_err());
    }
}
