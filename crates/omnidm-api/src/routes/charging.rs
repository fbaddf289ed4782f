//! Charging: the records (JSON pages or CSV), totals per application and kind, and the
//! catalogue of chargeable events. Applications see their own records; admins everyone's.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use omnidm_core::{AppId, ChargeFilter, ChargeKind, ChargeRecord, ChargeTotal, WsiStore};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::Caller;
use crate::dto::Page;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::apps::app_id;
use crate::state::Api;
use crate::wire::{Query, decode_num_cursor, encode_cursor, page_limit, parse_rfc3339, rfc3339};

pub(crate) fn routes<S: WsiStore>() -> Router<Api<S>> {
    Router::new()
        .route("/api/v1/charging/records", get(list_records::<S>))
        .route("/api/v1/charging/totals", get(totals::<S>))
        .route("/api/v1/charging/catalogue", get(catalogue))
}

#[derive(OpenApi)]
#[openapi(
    paths(list_records, totals, catalogue),
    components(schemas(ChargeView, ChargeTotalView, ChargeKindView))
)]
pub(crate) struct Doc;

/// Header of the CSV export (and the order of its columns).
pub(crate) const CSV_HEADER: &str =
    "id,at,application,kind,quantity,unit,device_id,operation_id,device_operation_id";

/// Response header carrying the next cursor of a CSV page.
pub(crate) const NEXT_CURSOR_HEADER: &str = "omnidm-next-cursor";

/// A charging record (CDR).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeView {
    /// Sequence number.
    pub id: u64,
    /// When (RFC 3339).
    pub at: String,
    /// The application charged.
    pub application: String,
    /// What (see `/charging/catalogue`).
    pub kind: String,
    /// How much, in `unit`.
    pub quantity: u64,
    /// Unit of `quantity`.
    pub unit: String,
    /// The device concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The operation concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<u64>,
    /// The device operation concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_operation_id: Option<u64>,
}

impl From<&ChargeRecord> for ChargeView {
    fn from(r: &ChargeRecord) -> ChargeView {
        let c = &r.charge;
        ChargeView {
            id: r.id,
            at: rfc3339(c.at),
            application: c.app_id.as_str().to_owned(),
            kind: c.kind.as_str().to_owned(),
            quantity: c.quantity,
            unit: c.kind.unit().to_owned(),
            device_id: c.device_id.as_ref().map(|d| d.as_str().to_owned()),
            operation_id: c.job_id.map(|j| j.0),
            device_operation_id: c.operation_id.map(|o| o.0),
        }
    }
}

/// Total of one kind for one application.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeTotalView {
    /// The application.
    pub application: String,
    /// What.
    pub kind: String,
    /// Sum of the quantities.
    pub quantity: u64,
    /// Unit of `quantity`.
    pub unit: String,
    /// Number of records summed.
    pub records: u64,
}

impl From<&ChargeTotal> for ChargeTotalView {
    fn from(t: &ChargeTotal) -> ChargeTotalView {
        ChargeTotalView {
            application: t.app_id.as_str().to_owned(),
            kind: t.kind.as_str().to_owned(),
            quantity: t.quantity,
            unit: t.kind.unit().to_owned(),
            records: t.records,
        }
    }
}

/// One chargeable kind of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeKindView {
    /// Stable name (the `kind` of records).
    pub name: String,
    /// Unit of the quantity.
    pub unit: String,
    /// When it is recorded.
    pub description: String,
}

/// Query of the record listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RecordsQuery {
    /// At or after this time (RFC 3339).
    from: Option<String>,
    /// Before this time (RFC 3339).
    to: Option<String>,
    /// Only this application (an application may only name itself; the default).
    application: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    limit: Option<u32>,
    /// `csv` for CSV (same as `Accept: text/csv`), `json` (default).
    format: Option<String>,
}

/// Query of the totals.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TotalsQuery {
    /// At or after this time (RFC 3339).
    from: Option<String>,
    /// Before this time (RFC 3339).
    to: Option<String>,
    /// Only this application (an application may only name itself; the default).
    application: Option<String>,
}

/// The filter for `caller`: applications are confined to their own records.
fn charge_filter(
    caller: &Caller,
    from: Option<&str>,
    to: Option<&str>,
    application: Option<&str>,
) -> ApiResult<ChargeFilter> {
    let app_id = scoped_app(caller.is_admin(), &caller.app.id, application)?;
    let from = from.map(|s| parse_rfc3339("from", s)).transpose()?;
    let to = to.map(|s| parse_rfc3339("to", s)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(ApiError::bad_request("to must not be before from"));
    }
    Ok(ChargeFilter { from, to, app_id })
}

/// Which application's records a caller reads: admins any (or all), applications their own.
fn scoped_app(admin: bool, me: &AppId, asked: Option<&str>) -> ApiResult<Option<AppId>> {
    match (asked, admin) {
        (Some(a), true) => Ok(Some(app_id(a)?)),
        (None, true) => Ok(None),
        (Some(a), false) if a != me.as_str() => Err(ApiError::forbidden(format!(
            "application {me} may only read its own charging records"
        ))),
        (_, false) => Ok(Some(me.clone())),
    }
}

/// Does the request ask for CSV?
fn wants_csv(format: Option<&str>, headers: &HeaderMap) -> ApiResult<bool> {
    match format {
        Some("csv") => return Ok(true),
        Some("json") => return Ok(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?}: use csv or json"
            )));
        }
        None => {}
    }
    Ok(headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"))
        }))
}

/// One CSV field, quoted per RFC 4180 when it holds a comma, quote, CR or LF.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The records as CSV (header row first, CRLF line ends as RFC 4180 says).
pub(crate) fn to_csv(records: &[ChargeView]) -> String {
    let mut out = String::with_capacity(64 * (records.len() + 1));
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    let opt = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    for r in records {
        let fields = [
            r.id.to_string(),
            r.at.clone(),
            r.application.clone(),
            r.kind.clone(),
            r.quantity.to_string(),
            r.unit.clone(),
            r.device_id.clone().unwrap_or_default(),
            opt(r.operation_id),
            opt(r.device_operation_id),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Charging records, oldest first, as JSON pages or CSV.
///
/// CSV (`Accept: text/csv` or `format=csv`) has a header row
/// (`id,at,application,kind,quantity,unit,device_id,operation_id,device_operation_id`), RFC
/// 4180 quoting and CRLF line ends; the next page's cursor is in the `omnidm-next-cursor`
/// response header (absent on the last page). Applications see their own records only.
#[utoipa::path(get, path = "/api/v1/charging/records", tag = "charging", params(RecordsQuery),
    responses(
        (status = 200, description = "A page of records", content(
            (Page<ChargeView> = "application/json"),
            (String = "text/csv")),
            headers(("omnidm-next-cursor" = String, description = "CSV only: cursor of the next page"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_records<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<RecordsQuery>,
) -> ApiResult<Response> {
    let csv = wants_csv(q.format.as_deref(), &headers)?;
    let filter = charge_filter(
        &caller,
        q.from.as_deref(),
        q.to.as_deref(),
        q.application.as_deref(),
    )?;
    let limit = page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(decode_num_cursor).transpose()?;
    let records = api
        .store
        .list_charges(&filter, after.unwrap_or(0), limit)
        .await?;
    let next_cursor = (records.len() >= limit as usize)
        .then(|| records.last().map(|r| encode_cursor(&r.id.to_string())))
        .flatten();
    let items: Vec<ChargeView> = records.iter().map(ChargeView::from).collect();
    if csv {
        let mut resp = to_csv(&items).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
        );
        if let Some(c) = next_cursor.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(NEXT_CURSOR_HEADER, c);
        }
        return Ok(resp);
    }
    Ok(axum::Json(Page { items, next_cursor }).into_response())
}

/// Totals per application and kind (applications: their own).
#[utoipa::path(get, path = "/api/v1/charging/totals", tag = "charging", params(TotalsQuery),
    responses((status = 200, body = Vec<ChargeTotalView>), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn totals<S: WsiStore>(
    State(api): State<Api<S>>,
    caller: Caller,
    Query(q): Query<TotalsQuery>,
) -> ApiResult<axum::Json<Vec<ChargeTotalView>>> {
    let filter = charge_filter(
        &caller,
        q.from.as_deref(),
        q.to.as_deref(),
        q.application.as_deref(),
    )?;
    Ok(axum::Json(
        api.store
            .charge_totals(&filter)
            .await?
            .iter()
            .map(ChargeTotalView::from)
            .collect(),
    ))
}

/// The catalogue of chargeable events.
#[utoipa::path(get, path = "/api/v1/charging/catalogue", tag = "charging",
    responses((status = 200, body = Vec<ChargeKindView>), (status = 401, body = Problem)))]
async fn catalogue(_caller: Caller) -> axum::Json<Vec<ChargeKindView>> {
    axum::Json(
        ChargeKind::ALL
            .iter()
            .map(|k| ChargeKindView {
                name: k.as_str().to_owned(),
                unit: k.unit().to_owned(),
                description: k.description().to_owned(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_per_rfc_4180() {
        assert_eq!(csv_field("IMEI:1"), "IMEI:1");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_record() {
        let r = ChargeView {
            id: 7,
            at: "2026-11-24T08:00:00Z".into(),
            application: "care".into(),
            kind: "operation.submitted".into(),
            quantity: 50,
            unit: "device".into(),
            device_id: Some("weird,\"id\"".into()),
            operation_id: Some(3),
            device_operation_id: None,
        };
        let csv = to_csv(&[r]);
        assert_eq!(
            csv,
            format!(
                "{CSV_HEADER}\r\n7,2026-11-24T08:00:00Z,care,operation.submitted,50,device,\"weird,\"\"id\"\"\",3,\r\n"
            )
        );
        assert_eq!(to_csv(&[]), format!("{CSV_HEADER}\r\n"));
    }

    #[test]
    fn csv_is_chosen_by_format_or_accept() {
        let mut h = HeaderMap::new();
        assert!(!wants_csv(None, &h).unwrap());
        assert!(wants_csv(Some("csv"), &h).unwrap());
        assert!(wants_csv(Some("xml"), &h).is_err());
        h.insert(
            header::ACCEPT,
            "application/json;q=0.5, text/csv".parse().unwrap(),
        );
        assert!(wants_csv(None, &h).unwrap());
        assert!(!wants_csv(Some("json"), &h).unwrap());
    }

    #[test]
    fn applications_read_only_their_own_records() {
        let me = AppId::new("care").unwrap();
        assert_eq!(scoped_app(false, &me, None).unwrap(), Some(me.clone()));
        assert_eq!(
            scoped_app(false, &me, Some("care")).unwrap(),
            Some(me.clone())
        );
        assert!(scoped_app(false, &me, Some("other")).is_err());
        assert_eq!(scoped_app(true, &me, None).unwrap(), None);
        assert_eq!(
            scoped_app(true, &me, Some("other")).unwrap(),
            Some(AppId::new("other").unwrap())
        );
    }
}
