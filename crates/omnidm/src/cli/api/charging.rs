//! `omnidm api charging|audit`: charging records for billing and the audit log of API calls.

use anyhow::Context as _;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, LINK};
use serde_json::Value;

use super::{Client, Query, print_items, spinner_for};

/// Time range and application of a charging query.
#[derive(Debug, clap::Args)]
pub struct ChargeFilter {
    /// At or after this time (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Only this application's.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
}

impl ChargeFilter {
    fn query(&self) -> Query {
        Query::new()
            .opt("from", self.from.as_ref())
            .opt("to", self.to.as_ref())
            .opt("application", self.app.as_ref())
    }
}

/// Charging subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ChargingCommand {
    /// Exports charging records (all pages): a table, JSON with --json, or the server's CSV.
    Export {
        #[command(flatten)]
        filter: ChargeFilter,
        /// CSV as the server writes it (one header line), for spreadsheets and billing.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Totals per application and kind.
    Totals {
        #[command(flatten)]
        filter: ChargeFilter,
    },
    /// The catalogue of chargeable events and their units.
    Catalogue,
}

/// `omnidm api audit`: who called what, and whether it was allowed.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only this application's calls.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Only this outcome: allowed, denied or error.
    #[arg(long)]
    outcome: Option<String>,
    /// At or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
}

/// The cursor of the next CSV page: an `X-Next-Cursor` header, or the `cursor` of a
/// `Link: <…>; rel="next"`.
fn next_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(c) = headers
        .get("x-next-cursor")
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.is_empty())
    {
        return Some(c.to_owned());
    }
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|link| link.contains("rel=\"next\"") || link.contains("rel=next"))
        .find_map(|link| {
            let target = link.split_once('<')?.1.split_once('>')?.0;
            let url = reqwest::Url::parse(target)
                .or_else(|_| reqwest::Url::parse("http://x/")?.join(target))
                .ok()?;
            url.query_pairs()
                .find(|(k, _)| k == "cursor")
                .map(|(_, v)| v.into_owned())
        })
}

/// Appends a CSV page, dropping its header line when one was written already.
fn append_csv(out: &mut String, page: &str, first: bool) {
    let body = if first {
        page
    } else {
        page.split_once('\n').map_or("", |(_, rest)| rest)
    };
    out.push_str(body);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Every CSV page of the charging records, concatenated under one header line.
async fn export_csv(client: &Client, query: Query) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut query = query.opt("format", Some("csv"));
    let spinner = spinner_for("charging records");
    let mut pages = 0_u32;
    loop {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/csv"));
        let resp = client
            .send(
                reqwest::Method::GET,
                &["charging", "records"],
                &query,
                None,
                headers,
            )
            .await?;
        let next = next_from_headers(resp.headers());
        let text = resp
            .text()
            .await
            .context("the connection broke while reading the records")?;
        append_csv(&mut out, &text, pages == 0);
        pages += 1;
        spinner.set_message(format!(
            "charging records: {} lines, {pages} page(s)",
            out.lines().count().saturating_sub(1)
        ));
        match next {
            Some(cursor) => query = query.with("cursor", &cursor),
            None => break,
        }
    }
    spinner.finish_and_clear();
    Ok(out)
}

/// Runs an `api charging` subcommand.
pub async fn run_charging(client: &Client, cmd: ChargingCommand) -> anyhow::Result<()> {
    match cmd {
        ChargingCommand::Export { filter, csv: true } => {
            let text = export_csv(client, filter.query()).await?;
            super::super::io::write_stdout(text.as_bytes())
        }
        ChargingCommand::Export { filter, csv: false } => {
            let records = client
                .get_all(
                    &["charging", "records"],
                    &filter.query(),
                    "cursor",
                    "charging records",
                )
                .await?;
            print_items(
                client,
                records,
                &[
                    ("ID", "id"),
                    ("AT", "at"),
                    ("APP", "app_id"),
                    ("APPLICATION", "application"),
                    ("KIND", "kind"),
                    ("QUANTITY", "quantity"),
                    ("UNIT", "unit"),
                    ("DEVICE", "device_id"),
                    ("OPERATION", "operation_id"),
                ],
                "no charging records in that range",
            )
        }
        ChargingCommand::Totals { filter } => {
            let totals = client.get(&["charging", "totals"], &filter.query()).await?;
            let items = match totals {
                Value::Object(mut o) if o.get("items").is_some_and(Value::is_array) => {
                    o.remove("items").unwrap_or_default()
                }
                other => other,
            };
            let items = match items {
                Value::Array(a) => a,
                other => return super::print_object(client, &other),
            };
            print_items(
                client,
                items,
                &[
                    ("APP", "app_id"),
                    ("APPLICATION", "application"),
                    ("KIND", "kind"),
                    ("QUANTITY", "quantity"),
                    ("UNIT", "unit"),
                    ("RECORDS", "records"),
                ],
                "nothing charged yet",
            )
        }
        ChargingCommand::Catalogue => {
            let cat = client
                .get(&["charging", "catalogue"], &Query::new())
                .await?;
            match cat {
                Value::Array(items) => print_items(
                    client,
                    items,
                    &[
                        ("KIND", "kind"),
                        ("NAME", "name"),
                        ("UNIT", "unit"),
                        ("DESCRIPTION", "description"),
                    ],
                    "the catalogue is empty",
                ),
                other => super::print_object(client, &other),
            }
        }
    }
}

/// Runs `api audit`.
pub async fn run_audit(client: &Client, args: AuditArgs) -> anyhow::Result<()> {
    let q = Query::new()
        .opt("application", args.app)
        .opt("outcome", args.outcome)
        .opt("from", args.from)
        .opt("to", args.to);
    let entries = client
        .get_all(&["audit"], &q, "cursor", "audit entries")
        .await?;
    print_items(
        client,
        entries,
        &[
            ("ID", "id"),
            ("AT", "at"),
            ("APP", "app_id"),
            ("KEY", "key_id"),
            ("METHOD", "method"),
            ("PATH", "path"),
            ("TARGET", "target"),
            ("STATUS", "status"),
            ("OUTCOME", "outcome"),
            ("RULE", "rule"),
        ],
        "no audit entries match",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_pages_share_one_header() {
        let mut out = String::new();
        append_csv(&mut out, "id,at\n1,a\n", true);
        append_csv(&mut out, "id,at\n2,b", false);
        append_csv(&mut out, "id,at\n", false);
        assert_eq!(out, "id,at\n1,a\n2,b\n");
    }

    #[test]
    fn next_cursor_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(next_from_headers(&h), None);
        h.insert(
            LINK,
            HeaderValue::from_static(
                "</api/v1/charging/records?cursor=abc%3D&format=csv>; rel=\"next\"",
            ),
        );
        assert_eq!(next_from_headers(&h).as_deref(), Some("abc="));
        h.insert("x-next-cursor", HeaderValue::from_static("xyz"));
        assert_eq!(next_from_headers(&h).as_deref(), Some("xyz"));
    }
}
