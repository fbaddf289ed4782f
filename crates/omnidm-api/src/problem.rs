//! RFC 9457 problem details: every error of the API is `application/problem+json` with a
//! stable `type` URI (`/api/v1/problems/<slug>`, served as a description), a title, the HTTP
//! status and a `detail` that says what to do next.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use omnidm_core::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable URI of the problem type (relative to the API root).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this request and what to do next.
    pub detail: String,
    /// For 403: the access rule that denied the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The problem types of the API. The slug is the stable part of the `type` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 400: the request is malformed (bad JSON, wrong types, unknown fields, bad paths).
    BadRequest,
    /// 401: no key, an unknown key, a revoked or expired key.
    Unauthenticated,
    /// 403: authenticated, but no grant or role allows this.
    Forbidden,
    /// 404: the resource does not exist (or the caller may not know it exists).
    NotFound,
    /// 405: the method is not allowed on this resource.
    MethodNotAllowed,
    /// 409: the resource exists already, or its state forbids the request.
    Conflict,
    /// 412: `If-Match` did not match the current ETag.
    PreconditionFailed,
    /// 413: the body is too large.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 422: an `Idempotency-Key` was reused with a different request.
    IdempotencyMismatch,
    /// 429: rate limit or daily quota exceeded.
    TooManyRequests,
    /// 500: a bug or the database failed; retry later.
    Internal,
    /// 503: the database is unavailable; retry later.
    Unavailable,
}

impl Kind {
    /// Every kind, for the documentation endpoint.
    pub const ALL: [Kind; 13] = [
        Kind::BadRequest,
        Kind::Unauthenticated,
        Kind::Forbidden,
        Kind::NotFound,
        Kind::MethodNotAllowed,
        Kind::Conflict,
        Kind::PreconditionFailed,
        Kind::PayloadTooLarge,
        Kind::UnsupportedMediaType,
        Kind::IdempotencyMismatch,
        Kind::TooManyRequests,
        Kind::Internal,
        Kind::Unavailable,
    ];

    /// Stable slug.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::BadRequest => "bad-request",
            Kind::Unauthenticated => "unauthenticated",
            Kind::Forbidden => "forbidden",
            Kind::NotFound => "not-found",
            Kind::MethodNotAllowed => "method-not-allowed",
            Kind::Conflict => "conflict",
            Kind::PreconditionFailed => "precondition-failed",
            Kind::PayloadTooLarge => "payload-too-large",
            Kind::UnsupportedMediaType => "unsupported-media-type",
            Kind::IdempotencyMismatch => "idempotency-key-reused",
            Kind::TooManyRequests => "too-many-requests",
            Kind::Internal => "internal",
            Kind::Unavailable => "unavailable",
        }
    }

    /// Short title.
    pub fn title(self) -> &'static str {
        match self {
            Kind::BadRequest => "Malformed request",
            Kind::Unauthenticated => "Authentication required",
            Kind::Forbidden => "Not allowed",
            Kind::NotFound => "Not found",
            Kind::MethodNotAllowed => "Method not allowed",
            Kind::Conflict => "Conflict",
            Kind::PreconditionFailed => "Precondition failed",
            Kind::PayloadTooLarge => "Request body too large",
            Kind::UnsupportedMediaType => "Unsupported media type",
            Kind::IdempotencyMismatch => "Idempotency key reused with a different request",
            Kind::TooManyRequests => "Too many requests",
            Kind::Internal => "Internal error",
            Kind::Unavailable => "Service unavailable",
        }
    }

    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Parses a slug.
    pub fn from_slug(slug: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.slug() == slug)
    }
}

/// An error answered as problem+json.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Problem type.
    pub kind: Kind,
    /// Detail for this request.
    pub detail: String,
    /// Denying rule (403; for a 404 from [`ApiError::hidden`], the rule is audited but not
    /// answered).
    pub rule: Option<String>,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
}

/// The rule of [`ApiError::admin_only`] denials.
pub const ADMIN_ONLY_RULE: &str = "this call needs the admin role";

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A problem of `kind` with `detail`.
    pub fn new(kind: Kind, detail: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            detail: detail.into(),
            rule: None,
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::BadRequest, detail)
    }

    /// 404.
    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            Kind::NotFound,
            format!("{what} does not exist (or is not visible to this application)"),
        )
    }

    /// The 404 of `what` for a resource that exists but the caller may not see: the answer is
    /// byte for byte that of [`ApiError::not_found`], so existence is not revealed; `rule`
    /// goes to the audit log only.
    pub fn hidden(what: impl std::fmt::Display, rule: impl Into<String>) -> ApiError {
        ApiError {
            rule: Some(rule.into()),
            ..ApiError::not_found(what)
        }
    }

    /// 403 with the denying rule.
    pub fn forbidden(rule: impl Into<String>) -> ApiError {
        let rule = rule.into();
        ApiError {
            kind: Kind::Forbidden,
            detail: format!("denied: {rule}; ask an administrator for a grant"),
            rule: Some(rule),
            retry_after: None,
        }
    }

    /// 403 for an admin-only call: no grant can help, so the detail does not suggest one.
    pub fn admin_only() -> ApiError {
        ApiError {
            detail: "denied: this call needs the admin role; no grant allows it, use an \
                     admin key"
                .into(),
            ..ApiError::forbidden(ADMIN_ONLY_RULE)
        }
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("/api/v1/problems/{}", self.kind.slug()),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            // A hidden denial (404) keeps its rule for the audit log only.
            rule: self.rule.clone().filter(|_| self.kind != Kind::NotFound),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(what) => {
                ApiError::new(Kind::Conflict, format!("{what} already exists"))
            }
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::IllegalTransition { id, source } => {
                ApiError::new(Kind::Conflict, format!("operation {id}: {source}"))
            }
            StoreError::WrongSession(id) => ApiError::new(
                Kind::Conflict,
                format!("operation {id} is held by a session"),
            ),
            StoreError::Invalid(why) => ApiError::bad_request(why),
            e @ StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "store returned corrupt data");
                ApiError::new(
                    Kind::Internal,
                    "stored data could not be read; the operator has been told (see the server log)",
                )
            }
            StoreError::Backend(e) => {
                tracing::error!(error = %e, "store unavailable");
                ApiError::new(
                    Kind::Unavailable,
                    "the database is unavailable; retry later",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (self.kind.status(), body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.kind == Kind::Unauthenticated {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"omnidm\""),
            );
        }
        // The audit layer reads the denying rule from here.
        resp.extensions_mut().insert(self);
        resp
    }
}
