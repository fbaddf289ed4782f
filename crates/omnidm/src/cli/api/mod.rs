//! `omnidm api …`: the Web Services Interface from the command line, over HTTP.
//!
//! Every command is one or a few calls to `/api/v1` on the server's API listener. Output is a
//! table for people by default and the API's own JSON with `--json`; listings follow
//! `next_cursor` to the last page. Errors are the API's problem details, printed as
//! `error: <detail> (HTTP <status>)`.

mod apps;
mod charging;
mod devices;
mod events;
mod groups;
mod ops;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap};
use reqwest::{Method, Url};
use serde_json::Value;

use super::Outcome;

/// Where the API key comes from when neither `--key`, `--key-file` nor `OMNIDM_API_KEY` says.
const DEFAULT_KEY_FILE: &str = "./omnidm-data/admin.key";
/// The API listener of `omnidm serve` when neither `--url` nor `OMNIDM_API_URL` says.
const DEFAULT_URL: &str = "http://127.0.0.1:8701";
/// Environment variable holding the API key.
const KEY_ENV: &str = "OMNIDM_API_KEY";

/// `omnidm api`: connection options and the resource to work on.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: ApiCommand,
}

/// How to reach and authenticate to the API (valid after any subcommand).
#[derive(Debug, Clone, clap::Args)]
struct Connection {
    /// Base URL of the server's API listener [default: http://127.0.0.1:8701].
    #[arg(long, value_name = "URL", env = "OMNIDM_API_URL", global = true)]
    url: Option<String>,
    /// API key (`omk_…`). Precedence: --key, then --key-file, then $OMNIDM_API_KEY, then the
    /// default key file.
    #[arg(long, value_name = "KEY", global = true, conflicts_with = "key_file")]
    key: Option<String>,
    /// File holding the API key [default when no key is given: ./omnidm-data/admin.key, which
    /// `omnidm serve` writes on first start].
    #[arg(long, value_name = "FILE", global = true)]
    key_file: Option<PathBuf>,
    /// Print the API's JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    json: bool,
}

/// Resources of the API.
#[derive(Debug, clap::Subcommand)]
enum ApiCommand {
    /// Applications (admin).
    #[command(subcommand)]
    Apps(apps::AppsCommand),
    /// API keys of an application (admin).
    #[command(subcommand)]
    Keys(apps::KeysCommand),
    /// Grants: which application may do what, where, on which devices (admin).
    #[command(subcommand)]
    Grants(apps::GrantsCommand),
    /// Device groups: static member lists or filters.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Devices and their cached management tree.
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// Operations: commands fanned out to devices, run as they call in.
    #[command(subcommand)]
    Ops(ops::OpsCommand),
    /// The event log: list it or follow it live.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Webhook subscriptions and their deliveries.
    #[command(subcommand)]
    Webhooks(events::WebhooksCommand),
    /// Charging records and totals.
    #[command(subcommand)]
    Charging(charging::ChargingCommand),
    /// The audit log of API calls.
    Audit(charging::AuditArgs),
    /// Who the key is: its application, role and grants (`GET /me`).
    Me,
}

/// Runs an `api` subcommand.
pub fn run(args: ApiArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            ApiCommand::Apps(cmd) => apps::run_apps(&client, cmd).await,
            ApiCommand::Keys(cmd) => apps::run_keys(&client, cmd).await,
            ApiCommand::Grants(cmd) => apps::run_grants(&client, cmd).await,
            ApiCommand::Groups(cmd) => groups::run(&client, cmd).await,
            ApiCommand::Devices(cmd) => devices::run(&client, cmd).await,
            ApiCommand::Ops(cmd) => ops::run(&client, cmd).await,
            ApiCommand::Events(cmd) => events::run_events(&client, cmd).await,
            ApiCommand::Webhooks(cmd) => events::run_webhooks(&client, cmd).await,
            ApiCommand::Charging(cmd) => charging::run_charging(&client, cmd).await,
            ApiCommand::Audit(args) => charging::run_audit(&client, args).await,
            ApiCommand::Me => print_object(&client, &client.get(&["me"], &Query::new()).await?),
        }
    })?;
    Ok(Outcome::Ok)
}

/// The key to send: `--key`, else `--key-file`, else `$OMNIDM_API_KEY`, else the default file.
fn resolve_key(conn: &Connection, env: Option<String>) -> anyhow::Result<String> {
    if let Some(key) = &conn.key {
        return Ok(key.trim().to_owned());
    }
    let file = match (&conn.key_file, env) {
        (Some(file), _) => file.clone(),
        (None, Some(key)) if !key.trim().is_empty() => return Ok(key.trim().to_owned()),
        (None, _) => PathBuf::from(DEFAULT_KEY_FILE),
    };
    read_key_file(&file, conn.key_file.is_none())
}

fn read_key_file(file: &Path, defaulted: bool) -> anyhow::Result<String> {
    match std::fs::read_to_string(file) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Ok(_) => bail!("{}: the key file is empty", file.display()),
        Err(e) if defaulted && e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no API key: pass --key KEY, set {KEY_ENV}, or --key-file FILE (the default, {}, \
             is written by `omnidm serve` on first start; run this from the directory above \
             the server's data directory or point --key-file at <data-dir>/admin.key)",
            file.display()
        ),
        // The cause inline, not chained: the generic "not found" hint (stdin) does not apply.
        Err(e) => bail!("{}: cannot read the key file: {e}", file.display()),
    }
}

/// An API error: the problem details the server answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: u16,
    /// Short summary of the problem type.
    pub title: String,
    /// What went wrong and what to do next.
    pub detail: String,
    /// The access rule that denied the request (403).
    pub rule: Option<String>,
}

impl Problem {
    /// The problem in a response body; a body that is not problem+json (a proxy's error page,
    /// an older server) still gives a readable message.
    fn parse(status: u16, body: &[u8]) -> Problem {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let text = |key: &str| {
            json.as_ref()
                .and_then(|j| j.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_owned();
        let title = text("title").unwrap_or_else(|| reason.clone());
        let detail = text("detail").unwrap_or_else(|| {
            let body = String::from_utf8_lossy(body);
            let body = body.trim();
            if body.is_empty() || json.is_some() {
                title.clone()
            } else {
                body.chars().take(200).collect()
            }
        });
        Problem {
            status,
            title,
            detail,
            rule: text("rule"),
        }
    }

    /// A next step for the person at the terminal.
    pub fn hint(&self) -> Option<&'static str> {
        match self.status {
            401 => Some(
                "pass a valid key with --key, OMNIDM_API_KEY or --key-file (the admin key is in \
                 <data-dir>/admin.key); keys are created with `omnidm api keys create APP`",
            ),
            403 if self.rule.as_deref() == Some(omnidm_api::problem::ADMIN_ONLY_RULE) => Some(
                "only an admin key can do this (the admin key is in <data-dir>/admin.key); no \
                 grant helps",
            ),
            403 => Some(
                "the key's application lacks a grant for this; an admin can add one with \
                 `omnidm api grants create`",
            ),
            404 if self.detail.starts_with("no such endpoint") => Some(
                "the server does not offer this endpoint; it may run an older omnidm than this \
                 CLI (`omnidm --version` on both)",
            ),
            429 => Some("rate limit or daily quota reached; retry later"),
            500.. => Some("a server-side failure; check the server log and retry"),
            _ => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {})", self.detail, self.status)?;
        if let Some(rule) = &self.rule {
            write!(f, "\nrule: {rule}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// Query parameters of a call; `None` values are left out.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(&'static str, String)>);

impl Query {
    /// An empty query.
    pub fn new() -> Query {
        Query::default()
    }

    /// Adds `name=value` when `value` is set.
    pub fn opt(mut self, name: &'static str, value: Option<impl ToString>) -> Query {
        if let Some(v) = value {
            self.0.push((name, v.to_string()));
        }
        self
    }

    /// Adds `name=a,b,…` when `values` is not empty.
    pub fn list(self, name: &'static str, values: &[String]) -> Query {
        let joined = (!values.is_empty()).then(|| values.join(","));
        self.opt(name, joined)
    }

    /// A copy with `name` set to `value` (replacing it).
    fn with(&self, name: &'static str, value: &str) -> Query {
        let mut q = self.clone();
        q.0.retain(|(n, _)| *n != name);
        q.0.push((name, value.to_owned()));
        q
    }
}

/// An HTTP client of the API.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: String,
    /// `--json`: print the API's JSON.
    pub json: bool,
}

impl Client {
    fn new(conn: &Connection) -> anyhow::Result<Client> {
        let url = conn.url.as_deref().unwrap_or(DEFAULT_URL);
        let base = Url::parse(url)
            .with_context(|| format!("--url {url:?}: expected a URL such as {DEFAULT_URL}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!("--url {url:?}: use an http:// or https:// URL");
        }
        // The API's own prefix is added to every call; a URL pasted with it (from docs/wsi.md's
        // `$API`) means the same server.
        let mut base = base;
        let trimmed = base.path().trim_end_matches('/');
        if let Some(root) = trimmed.strip_suffix("/api/v1") {
            let root = if root.is_empty() { "/" } else { root }.to_owned();
            base.set_path(&root);
        }
        let key = resolve_key(conn, std::env::var(KEY_ENV).ok())?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("omnidm-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Client {
            http,
            base,
            key,
            json: conn.json,
        })
    }

    /// `<base>/api/v1/<segments…>`, each segment percent-encoded (device ids contain `:`).
    fn endpoint(&self, segments: &[&str], query: &Query) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url.set_query(None);
        if !query.0.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &query.0 {
                pairs.append_pair(name, value);
            }
        }
        url
    }

    /// Sends a request and returns the response when it succeeded; an error status becomes a
    /// [`Problem`].
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &Query,
        body: Option<&Value>,
        headers: HeaderMap,
    ) -> anyhow::Result<reqwest::Response> {
        let url = self.endpoint(segments, query);
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, format!("Bearer {}", self.key))
            .headers(headers);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach the API at {}; is `omnidm serve` running there? (set --url or \
                 OMNIDM_API_URL)",
                self.base
            )
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        Err(Problem::parse(status.as_u16(), &bytes).into())
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &Query,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        let resp = self.send(method, segments, query, body, headers).await?;
        let bytes = resp
            .bytes()
            .await
            .context("the connection broke while reading the answer")?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).context("the API answered with something that is not JSON")
    }

    /// `GET`.
    pub async fn get(&self, segments: &[&str], query: &Query) -> anyhow::Result<Value> {
        self.call(Method::GET, segments, query, None).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, segments, &Query::new(), Some(body))
            .await
    }

    /// `PATCH` with a JSON body.
    pub async fn patch(&self, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
        self.call(Method::PATCH, segments, &Query::new(), Some(body))
            .await
    }

    /// `DELETE`; the answer is `null` for 204.
    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<Value> {
        self.call(Method::DELETE, segments, &Query::new(), None)
            .await
    }

    /// Every item of a paged listing, following `next_cursor` (sent back as `cursor_param`),
    /// with a spinner on stderr once there is more than one page.
    pub async fn get_all(
        &self,
        segments: &[&str],
        query: &Query,
        cursor_param: &'static str,
        what: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut query = query.clone();
        let mut spinner: Option<indicatif::ProgressBar> = None;
        loop {
            let page = self.get(segments, &query).await?;
            let (mut page_items, next) = split_page(page)?;
            items.append(&mut page_items);
            match next {
                Some(cursor) => {
                    let s = spinner.get_or_insert_with(|| spinner_for(what));
                    s.set_message(format!("{what}: {} so far", items.len()));
                    query = query.with(cursor_param, &cursor);
                }
                None => break,
            }
        }
        if let Some(s) = spinner {
            s.finish_and_clear();
        }
        Ok(items)
    }
}

/// A spinner on stderr (hidden when stderr is not a terminal).
pub fn spinner_for(what: &str) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The items and next cursor of a page (`{items, next_cursor}`); a bare array is one page.
fn split_page(page: Value) -> anyhow::Result<(Vec<Value>, Option<String>)> {
    match page {
        Value::Array(items) => Ok((items, None)),
        Value::Object(mut obj) => {
            let items = match obj.remove("items") {
                Some(Value::Array(items)) => items,
                _ => bail!("the API answered with a page without `items`"),
            };
            let next = match obj.remove("next_cursor") {
                Some(Value::String(s)) if !s.is_empty() => Some(s),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            Ok((items, next))
        }
        _ => bail!("the API answered with something that is not a listing"),
    }
}

/// Prints JSON for scripts (pretty, one document).
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot format JSON")?;
    text.push('\n');
    super::io::write_stdout(text.as_bytes())
}

/// A field of a JSON object as a table cell: strings as is, `null`/absent as `-`, arrays
/// joined with `,`, anything else as compact JSON.
pub fn cell(item: &Value, key: &str) -> String {
    render(item.get(key).unwrap_or(&Value::Null))
}

fn render(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            if a.is_empty() {
                "-".into()
            } else {
                a.iter().map(render).collect::<Vec<_>>().join(",")
            }
        }
        other => other.to_string(),
    }
}

/// Table rows: the `columns` of each item.
pub fn rows(items: &[Value], columns: &[&str]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|item| columns.iter().map(|c| cell(item, c)).collect())
        .collect()
}

/// Prints items as a table with `(HEADER, key)` columns, or as JSON with `--json`. Columns
/// absent from every item are dropped, so a table stays readable if the API changes.
pub fn print_items(
    client: &Client,
    items: Vec<Value>,
    columns: &[(&str, &str)],
    empty: &str,
) -> anyhow::Result<()> {
    if client.json {
        return print_json(&Value::Array(items));
    }
    if items.is_empty() {
        eprintln!("{empty}");
        return Ok(());
    }
    let (headers, keys) = table_columns(&items, columns);
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    super::local::print_table(&headers, &rows(&items, &keys))?;
    Ok(())
}

/// The `(HEADER, key)` columns present in some item; when none is (an API newer than this
/// CLI), every top-level field of the first item, so the table is never empty.
fn table_columns(items: &[Value], columns: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let present: Vec<(String, String)> = columns
        .iter()
        .filter(|(_, key)| items.iter().any(|i| i.get(key).is_some()))
        .map(|(h, k)| ((*h).to_owned(), (*k).to_owned()))
        .collect();
    let present = if present.is_empty() {
        items
            .first()
            .and_then(Value::as_object)
            .map(|o| o.keys().map(|k| (k.to_uppercase(), k.clone())).collect())
            .unwrap_or_default()
    } else {
        present
    };
    present.into_iter().unzip()
}

/// `key: value` lines of an object, nested objects as `outer.inner`.
pub fn object_lines(value: &Value) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => out.push(format!("{prefix}: {}", render(other)).trim_end().to_owned()),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

/// Prints one resource: JSON with `--json`, else `key: value` lines.
pub fn print_object(client: &Client, value: &Value) -> anyhow::Result<()> {
    if client.json {
        return print_json(value);
    }
    let mut text = object_lines(value).join("\n");
    text.push('\n');
    super::io::write_stdout(text.as_bytes())
}

/// Prints a confirmation for people, or the API's answer with `--json` (`{}` for 204).
pub fn print_done(client: &Client, answer: &Value, message: &str) -> anyhow::Result<()> {
    if client.json {
        let v = if answer.is_null() {
            Value::Object(serde_json::Map::new())
        } else {
            answer.clone()
        };
        return print_json(&v);
    }
    outln!("{message}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conn(key: Option<&str>, key_file: Option<&str>) -> Connection {
        Connection {
            url: None,
            key: key.map(str::to_owned),
            key_file: key_file.map(PathBuf::from),
            json: false,
        }
    }

    #[test]
    fn problems_print_detail_status_and_rule() {
        let body = br#"{"type":"/api/v1/problems/forbidden","title":"Forbidden","status":403,
            "detail":"no grant allows replace on ./Vendor/X","rule":"grant 4: get only"}"#;
        let p = Problem::parse(403, body);
        assert_eq!(
            p.to_string(),
            "no grant allows replace on ./Vendor/X (HTTP 403)\nrule: grant 4: get only"
        );
        assert!(p.hint().unwrap().contains("grants create"));
        let p = Problem::parse(
            404,
            br#"{"title":"Not Found","status":404,"detail":"device x"}"#,
        );
        assert_eq!(p.to_string(), "device x (HTTP 404)");
        assert_eq!(p.rule, None);
        // Not problem+json: the body, or the reason phrase when there is none.
        assert_eq!(
            Problem::parse(502, b"Bad gateway from proxy").to_string(),
            "Bad gateway from proxy (HTTP 502)"
        );
        assert_eq!(
            Problem::parse(503, b"").to_string(),
            "Service Unavailable (HTTP 503)"
        );
        let chained = anyhow::Error::from(Problem::parse(401, b"{}"));
        assert_eq!(format!("{chained:#}"), "Unauthorized (HTTP 401)");
    }

    #[test]
    fn endpoints_encode_segments_and_queries() {
        let c = Client {
            http: reqwest::Client::new(),
            base: Url::parse("http://h:1/prefix/").unwrap(),
            key: "k".into(),
            json: false,
        };
        let q = Query::new()
            .opt("path", Some("./DevInfo"))
            .opt("depth", None::<u32>)
            .list("type", &["a.b".into(), "c".into()]);
        assert_eq!(
            c.endpoint(&["devices", "IMEI:1/2", "tree"], &q).as_str(),
            "http://h:1/prefix/api/v1/devices/IMEI:1%2F2/tree?path=.%2FDevInfo&type=a.b%2Cc"
        );
        assert_eq!(
            c.endpoint(
                &["apps"],
                &Query::new().with("cursor", "x").with("cursor", "y")
            )
            .as_str(),
            "http://h:1/prefix/api/v1/apps?cursor=y"
        );
    }

    /// A `--url` pasted with the API prefix (`$API` of docs/wsi.md) reaches the same endpoints,
    /// instead of `/api/v1/api/v1/…` and a misleading "older server" hint.
    #[test]
    fn a_url_with_the_api_prefix_means_the_server() {
        for url in [
            "http://h:1",
            "http://h:1/",
            "http://h:1/api/v1",
            "http://h:1/api/v1/",
        ] {
            let mut c = conn(Some("k"), None);
            c.url = Some(url.into());
            let client = Client::new(&c).unwrap();
            assert_eq!(
                client.endpoint(&["apps"], &Query::new()).as_str(),
                "http://h:1/api/v1/apps",
                "{url}"
            );
        }
    }

    /// An admin-only denial does not send the user looking for a grant that cannot help.
    #[test]
    fn admin_only_denials_say_no_grant_helps() {
        let body =
            serde_json::to_vec(&omnidm_api::problem::ApiError::admin_only().problem()).unwrap();
        let p = Problem::parse(403, &body);
        let hint = p.hint().unwrap();
        assert!(
            hint.contains("admin key") && !hint.contains("grants create"),
            "{hint}"
        );
        assert!(
            !p.detail.contains("ask an administrator for a grant"),
            "{}",
            p.detail
        );
    }

    #[test]
    fn pages_split_into_items_and_cursor() {
        let (items, next) = split_page(json!({"items":[1,2],"next_cursor":"abc"})).unwrap();
        assert_eq!((items.len(), next.as_deref()), (2, Some("abc")));
        let (items, next) = split_page(json!({"items":[]})).unwrap();
        assert!(items.is_empty() && next.is_none());
        let (items, next) = split_page(json!([1])).unwrap();
        assert_eq!((items.len(), next), (1, None));
        assert!(split_page(json!({"x":1})).is_err());
    }

    #[test]
    fn cells_and_object_lines() {
        let v = json!({"id":"a","tags":["x","y"],"n":3,"none":null,"info":{"model":"M"}});
        assert_eq!(cell(&v, "tags"), "x,y");
        assert_eq!(cell(&v, "n"), "3");
        assert_eq!(cell(&v, "none"), "-");
        assert_eq!(cell(&v, "missing"), "-");
        assert_eq!(
            rows(std::slice::from_ref(&v), &["id", "n"]),
            vec![vec!["a".to_owned(), "3".to_owned()]]
        );
        assert_eq!(
            object_lines(&v),
            vec!["id: a", "info.model: M", "n: 3", "none: -", "tags: x,y"]
        );
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::{CommandFactory as _, Parser as _};
        crate::cli::Cli::command().debug_assert();
        let parse = |args: &str| {
            crate::cli::Cli::try_parse_from(std::iter::once("omnidm").chain(args.split(' ')))
        };
        // Connection options go anywhere after `api`.
        assert!(parse("api apps list --json --url http://h:1 --key omk_x").is_ok());
        assert!(parse("api --json ops show 3 --wait 5").is_ok());
        // Usage errors (exit code 2 from clap).
        for bad in [
            "api apps list --key k --key-file f",
            "api charging export --csv --json",
            "api ops submit get:./X",
            "api ops submit --device d --group g get:./X",
            "api grants create app --group g --allow frob --subtree ./X",
            "api grants create app --group g --allow get",
            "api devices add d --auth md5",
        ] {
            let err = parse(bad).err();
            assert!(
                err.as_ref().is_some_and(|e| e.exit_code() == 2),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn table_columns_fall_back_to_fields() {
        let items = [json!({"id":1,"url":"u"}), json!({"id":2})];
        let (h, k) = table_columns(&items, &[("ID", "id"), ("URL", "url"), ("X", "x")]);
        assert_eq!(
            (h, k),
            (
                vec!["ID".into(), "URL".into()],
                vec!["id".into(), "url".into()]
            )
        );
        let (h, k) = table_columns(&items, &[("X", "x")]);
        assert_eq!(
            (h, k),
            (
                vec!["ID".into(), "URL".into()],
                vec!["id".into(), "url".into()]
            )
        );
    }

    #[test]
    fn keys_resolve_in_order() {
        let dir = std::env::temp_dir().join(format!("omnidm-cli-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("admin.key");
        std::fs::write(&file, "omk_fromfile\n").unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(
            resolve_key(&conn(Some("omk_flag"), None), Some("omk_env".into())).unwrap(),
            "omk_flag"
        );
        assert_eq!(
            resolve_key(&conn(None, Some(f)), Some("omk_env".into())).unwrap(),
            "omk_fromfile"
        );
        assert_eq!(
            resolve_key(&conn(None, None), Some("omk_env".into())).unwrap(),
            "omk_env"
        );
        let missing = dir.join("nope.key");
        let err = resolve_key(&conn(None, missing.to_str()), None).unwrap_err();
        assert!(format!("{err:#}").contains("cannot read the key file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
