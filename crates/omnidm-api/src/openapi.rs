//! The OpenAPI 3.1 document and the embedded docs page (Swagger UI, vendored: no CDN).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::problem::{ApiError, Kind};
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "omnidm Web Services Interface",
        description = "Manage devices (OMA DM today; TR-069 and LwM2M next) through one API: applications and keys, grants, groups, devices and their cached trees, asynchronous operations, events (list, SSE, webhooks), charging and audit. Errors are RFC 9457 problem+json. See docs/wsi.md.",
        version = "1.0.0"
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::problem::Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some("An API key: `omk_<id>_<secret>`".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// Every error response is `application/problem+json` with the `Problem` schema, and every
/// operation documents the errors any request can meet (authentication, limits, malformed
/// input, the database), so the document matches what the server does.
struct ProblemResponses;

impl ProblemResponses {
    fn problem(status: &str) -> Response {
        let kind = status
            .parse::<u16>()
            .ok()
            .and_then(|s| Kind::ALL.into_iter().find(|k| k.status().as_u16() == s));
        let description = kind.map_or("Error", Kind::title);
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build()
    }
}

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.delete, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
            ];
            for (op, has_body) in ops {
                let Some(op) = op.as_mut() else { continue };
                let responses = &mut op.responses.responses;
                // Documented problems: switch them to problem+json.
                for (status, resp) in responses.iter_mut() {
                    if status.starts_with('4') || status.starts_with('5') {
                        *resp = RefOr::T(ProblemResponses::problem(status));
                    }
                }
                let mut always = vec!["400", "401", "403", "404", "429", "500", "503"];
                if has_body {
                    always.extend(["409", "413", "415", "422"]);
                }
                for status in always {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::T(ProblemResponses::problem(status)));
                }
            }
        }
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in [
        routes::apps::Doc::openapi(),
        routes::groups::Doc::openapi(),
        routes::devices::Doc::openapi(),
        routes::operations::Doc::openapi(),
        routes::events::Doc::openapi(),
        routes::webhooks::Doc::openapi(),
        routes::charging::Doc::openapi(),
        routes::audit::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    // After the merge, so every module's operations get the problem responses.
    ProblemResponses.modify(&mut doc);
    doc
}

/// The Content-Security-Policy of the docs page. Swagger UI loads its scripts and styles from
/// its own files (no inline script), draws icons from `data:` URIs and sets inline styles;
/// "Try it out" calls the API on the same origin. Nothing else is allowed, and no page may
/// frame it (clickjacking).
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; manifest-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Security headers of the public pages (docs, OpenAPI document, problem descriptions).
async fn docs_headers(mut response: axum::response::Response) -> axum::response::Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Public routes: the document, the docs page, the problem type descriptions.
pub(crate) fn docs_router() -> Router {
    Router::new()
        .merge(SwaggerUi::new("/api/v1/docs").url("/api/v1/openapi.json", document()))
        .route("/api/v1/problems/{slug}", get(problem_page))
        .layer(axum::middleware::map_response(docs_headers))
}

async fn problem_page(Path(slug): Path<String>) -> axum::response::Response {
    match Kind::from_slug(&slug) {
        Some(k) => Html(format!(
            "<!doctype html><title>{t}</title><h1>{t}</h1><p>HTTP {s}. The <code>detail</code> member of the problem says what went wrong in this request and what to do next. See docs/wsi.md for the catalogue.</p>",
            t = k.title(),
            s = k.status().as_u16()
        ))
        .into_response(),
        None => ApiError::new(Kind::NotFound, format!("no problem type {slug:?}")).into_response(),
    }
}
