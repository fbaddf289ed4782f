//! `Idempotency-Key` on POSTs that create: the first response to a (application, key) pair is
//! stored for 24 h and replayed for a repeat of the same request; the same key with a
//! different request is refused with 422. Two concurrent first attempts with one key may both
//! run (the first stored response wins); clients retry after a response or a timeout, which
//! this covers.
//!
//! A response that carries a key is stored without it ([`Reply::replayed_as`]): keys are shown
//! once, so a replay answers the same status and record with the key text withheld and a
//! `key_withheld` note saying why.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use omnidm_core::{IdempotentResponse, WsiStore};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::problem::{ApiError, ApiResult, Kind};
use crate::state::Api;
use crate::wire::{now, parse_json};

/// Longest accepted key.
const MAX_KEY: usize = 255;

/// The idempotency context of a request.
pub(crate) struct Idempotent {
    key: Option<String>,
    request_hash: String,
}

/// A JSON body with its idempotency context.
pub(crate) struct IdemJson<T>(pub Idempotent, pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for IdemJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let key = match req.headers().get("idempotency-key") {
            None => None,
            Some(v) => {
                let k = v
                    .to_str()
                    .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?;
                if k.is_empty() || k.len() > MAX_KEY {
                    return Err(ApiError::bad_request(
                        "Idempotency-Key must be 1 to 255 characters",
                    ));
                }
                Some(k.to_owned())
            }
        };
        let mut h = Sha256::new();
        h.update(req.method().as_str());
        h.update(b" ");
        h.update(req.uri().path());
        h.update(b"\n");
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json") || m.ends_with("+json")
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    Kind::PayloadTooLarge,
                    "the body exceeds the API limit (1 MiB)",
                )
            } else {
                ApiError::bad_request(format!("could not read the body: {}", e.body_text()))
            }
        })?;
        if !json_type {
            return Err(ApiError::new(
                Kind::UnsupportedMediaType,
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        h.update(&bytes);
        let value = parse_json(&bytes)?;
        Ok(IdemJson(
            Idempotent {
                key,
                request_hash: hex::encode(h.finalize()),
            },
            value,
        ))
    }
}

/// A response to store and send.
pub(crate) struct Reply {
    status: StatusCode,
    location: Option<String>,
    body: String,
    /// What a replay shows instead of `body`, when the body carries a secret that is shown
    /// once and must never be stored (API keys).
    stored: Option<String>,
}

impl Reply {
    /// Stores `body` for replays instead of the response's own body (which carries a secret).
    pub(crate) fn replayed_as<T: Serialize>(mut self, body: &T) -> Reply {
        self.stored = Some(serde_json::to_string(body).unwrap_or_default());
        self
    }
}

/// `201 Created` with `Location`.
pub(crate) fn created<T: Serialize>(location: &str, body: &T) -> Reply {
    reply(StatusCode::CREATED, Some(location), body)
}

/// Any status, optional `Location`.
pub(crate) fn reply<T: Serialize>(status: StatusCode, location: Option<&str>, body: &T) -> Reply {
    Reply {
        status,
        location: location.map(str::to_owned),
        body: serde_json::to_string(body).unwrap_or_default(),
        stored: None,
    }
}

fn respond(status: StatusCode, location: Option<&str>, body: String, replayed: bool) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert(header::LOCATION, l);
    }
    if replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

impl Idempotent {
    /// The stored response if this is a repeat; 422 if the key was used for another request.
    pub(crate) async fn replay<S: WsiStore>(
        &self,
        api: &Api<S>,
        caller: &Caller,
    ) -> ApiResult<Option<Response>> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        match api.store.get_idempotent(&caller.app.id, key, now()).await? {
            None => Ok(None),
            Some(stored) if stored.request_hash == self.request_hash => {
                let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
                Ok(Some(respond(
                    status,
                    stored.location.as_deref(),
                    stored.body,
                    true,
                )))
            }
            Some(_) => Err(ApiError::new(
                Kind::IdempotencyMismatch,
                "this Idempotency-Key was used for a different request in the last 24 h; use a new key",
            )),
        }
    }

    /// Stores `reply` under the key (if any) and sends it.
    pub(crate) async fn finish<S: WsiStore>(
        &self,
        api: &Api<S>,
        caller: &Caller,
        reply: Reply,
    ) -> ApiResult<Response> {
        if let Some(key) = &self.key {
            let stored = IdempotentResponse {
                request_hash: self.request_hash.clone(),
                status: reply.status.as_u16(),
                location: reply.location.clone(),
                body: reply.stored.clone().unwrap_or_else(|| reply.body.clone()),
                created_at: now(),
            };
            if let Err(e) = api.store.put_idempotent(&caller.app.id, key, &stored).await {
                // The work is done; failing the request now would invite a duplicate retry.
                tracing::error!(error = %e, "could not store an idempotent response");
            }
        }
        Ok(respond(
            reply.status,
            reply.location.as_deref(),
            reply.body,
            false,
        ))
    }
}
