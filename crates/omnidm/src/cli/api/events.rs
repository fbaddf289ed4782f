//! `omnidm api events|webhooks`: the event log (listed or followed live over Server-Sent
//! Events) and webhook subscriptions.

use std::time::Duration;

use anyhow::Context as _;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::{Client, Query, print_done, print_items, print_json};

/// Event subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Lists events in order (all pages, or up to --limit).
    List {
        /// Only events after this id.
        #[arg(long, value_name = "ID")]
        after: Option<u64>,
        /// Only these types, e.g. command.result or operation.state_changed (comma-separated or repeated).
        #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
        types: Vec<String>,
        /// Only this device's.
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Follows the event stream: one line per event until interrupted (reconnects on its own).
    Tail {
        /// Start after this event id (default: only new events).
        #[arg(long, value_name = "ID")]
        after: Option<u64>,
        /// Only these types (comma-separated or repeated).
        #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
        types: Vec<String>,
        /// Only this device's.
        #[arg(long, value_name = "ID")]
        device: Option<String>,
    },
}

/// Webhook subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Subscribes a URL to events; prints the signing secret once.
    Create {
        /// Where deliveries are POSTed (http:// or https://). (Not named `url`: that id is
        /// the global `--url` of the API, which a positional of the same id would overwrite.)
        #[arg(value_name = "URL")]
        target: String,
        /// Only these event types (comma-separated or repeated; default: all).
        #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
        types: Vec<String>,
    },
    /// Lists subscriptions.
    List,
    /// Deletes a subscription.
    Delete {
        /// Subscription id.
        id: u64,
    },
    /// Enables a subscription again (after the receiver is fixed: it was disabled after
    /// repeated failures); deliveries resume from where they stopped.
    Enable {
        /// Subscription id.
        id: u64,
    },
    /// Disables a subscription: no deliveries until it is enabled.
    Disable {
        /// Subscription id.
        id: u64,
    },
    /// Lists the delivery attempts of a subscription (all pages).
    Deliveries {
        /// Subscription id.
        id: u64,
    },
}

/// One Server-Sent Event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:` (becomes `Last-Event-ID` on reconnection).
    pub id: Option<String>,
    /// `event:` (the type).
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental `text/event-stream` parser: feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// The events completed by `chunk`.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data {
                    out.push(std::mem::take(&mut self.current));
                } else {
                    self.current = SseEvent::default();
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment: keep-alive
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "id" => self.current.id = Some(value.to_owned()),
                "event" => self.current.event = Some(value.to_owned()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {} // `retry:` and unknown fields
            }
        }
        out
    }
}

/// One line for people: `id  at  type  device=… op=… path=… {data}`.
pub fn event_line(e: &Value) -> String {
    let mut parts = vec![
        super::cell(e, "id"),
        super::cell(e, "at"),
        super::cell(e, "type"),
    ];
    for (label, key) in [
        ("device", "device_id"),
        ("app", "app_id"),
        ("op", "operation_id"),
        ("device_op", "device_operation_id"),
        ("path", "path"),
    ] {
        if e.get(key).is_some_and(|v| !v.is_null()) {
            parts.push(format!("{label}={}", super::cell(e, key)));
        }
    }
    match e.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) if m.is_empty() => {}
        Some(d) => parts.push(d.to_string()),
    }
    parts.join("  ")
}

/// Runs an `api events` subcommand.
pub async fn run_events(client: &Client, cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List {
            after,
            types,
            device,
            limit,
        } => {
            let mut q = Query::new()
                .opt("after", after)
                .list("type", &types)
                .opt("device", device);
            // The event log always answers a `next_cursor` (it is a log that grows), and a
            // page may be empty although more follows (one call examines a bounded stretch of
            // the log): read until the cursor stops moving, i.e. the newest event is reached.
            let mut events = Vec::new();
            let mut cursor = after.unwrap_or(0).to_string();
            loop {
                // `--limit` bounds what is fetched, not only what is printed: each page asks
                // for what is still missing (the API serves at most 1,000 per page).
                if let Some(n) = limit {
                    let missing = n.saturating_sub(events.len()).clamp(1, 1000);
                    q = q.with("limit", &missing.to_string());
                }
                let page = client.get(&["events"], &q).await?;
                let (mut items, next) = super::split_page(page)?;
                events.append(&mut items);
                if limit.is_some_and(|n| events.len() >= n) {
                    break;
                }
                match next {
                    Some(next) if next != cursor => {
                        q = q.with("after", &next);
                        cursor = next;
                    }
                    _ => break,
                }
            }
            if let Some(n) = limit {
                events.truncate(n);
            }
            if client.json {
                return print_json(&Value::Array(events));
            }
            if events.is_empty() {
                eprintln!("no events");
                return Ok(());
            }
            let mut text = String::new();
            for e in &events {
                text.push_str(&event_line(e));
                text.push('\n');
            }
            super::super::io::write_stdout(text.as_bytes())
        }
        EventsCommand::Tail {
            after,
            types,
            device,
        } => tail(client, after, &types, device).await,
    }
}

/// Follows `/events/stream`, reconnecting with `Last-Event-ID` when the connection drops.
async fn tail(
    client: &Client,
    after: Option<u64>,
    types: &[String],
    device: Option<String>,
) -> anyhow::Result<()> {
    let q = Query::new().list("type", types).opt("device", device);
    let mut last_id = after.map(|a| a.to_string());
    let mut connected_once = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(id) = &last_id
            && let Ok(v) = HeaderValue::from_str(id)
        {
            headers.insert("last-event-id", v);
        }
        let resp = match client
            .send(
                reqwest::Method::GET,
                &["events", "stream"],
                &q,
                None,
                headers,
            )
            .await
        {
            Ok(resp) => resp,
            // A refusal (bad key, no such filter) will not fix itself; a lost server might.
            Err(e) if !connected_once || e.downcast_ref::<super::Problem>().is_some() => {
                return Err(e);
            }
            Err(e) => {
                eprintln!("{e:#}; retrying in {} s", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        if !connected_once {
            eprintln!("following events (Ctrl-C to stop)");
        }
        connected_once = true;
        backoff = Duration::from_secs(1);
        let mut resp = resp;
        let mut parser = SseParser::default();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("the event stream broke ({e}); reconnecting");
                    break;
                }
            };
            let mut text = String::new();
            for ev in parser.push(&chunk) {
                if ev.id.is_some() {
                    last_id.clone_from(&ev.id);
                }
                if client.json {
                    text.push_str(&ev.data);
                } else {
                    match serde_json::from_str::<Value>(&ev.data) {
                        Ok(v) => text.push_str(&event_line(&v)),
                        Err(_) => text.push_str(&format!(
                            "{}  {}  {}",
                            ev.id.as_deref().unwrap_or("-"),
                            ev.event.as_deref().unwrap_or("message"),
                            ev.data
                        )),
                    }
                }
                text.push('\n');
            }
            if !text.is_empty() {
                super::super::io::write_stdout(text.as_bytes())?;
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Runs an `api webhooks` subcommand.
pub async fn run_webhooks(client: &Client, cmd: WebhooksCommand) -> anyhow::Result<()> {
    match cmd {
        WebhooksCommand::Create { target, types } => {
            let mut body = json!({"url": target});
            if !types.is_empty()
                && let Some(obj) = body.as_object_mut()
            {
                obj.insert("event_types".into(), json!(types));
            }
            let answer = client.post(&["webhooks"], &body).await?;
            if client.json {
                return print_json(&answer);
            }
            let secret = answer
                .get("secret")
                .and_then(Value::as_str)
                .context("the API answered without the signing secret")?;
            outln!(
                "created webhook {} → {target}; signing secret:",
                super::cell(&answer, "id")
            );
            outln!();
            outln!("    {secret}");
            outln!();
            outln!("The secret is shown only now: store it with the receiver, which uses it");
            outln!("to verify each delivery's signature.");
            Ok(())
        }
        WebhooksCommand::List => {
            let hooks = client
                .get_all(&["webhooks"], &Query::new(), "cursor", "webhooks")
                .await?;
            print_items(
                client,
                hooks,
                &[
                    ("ID", "id"),
                    ("APP", "app_id"),
                    ("URL", "url"),
                    ("TYPES", "event_types"),
                    ("ENABLED", "enabled"),
                    ("FAILURES", "failures"),
                    ("DISABLED REASON", "disabled_reason"),
                    ("CREATED", "created_at"),
                ],
                "no webhooks; subscribe with `omnidm api webhooks create URL`",
            )
        }
        WebhooksCommand::Enable { id } | WebhooksCommand::Disable { id } => {
            let enabled = matches!(cmd, WebhooksCommand::Enable { .. });
            let answer = client
                .patch(&["webhooks", &id.to_string()], &json!({"enabled": enabled}))
                .await?;
            let what = if enabled { "enabled" } else { "disabled" };
            print_done(client, &answer, &format!("{what} webhook {id}"))
        }
        WebhooksCommand::Delete { id } => {
            let answer = client.delete(&["webhooks", &id.to_string()]).await?;
            print_done(client, &answer, &format!("deleted webhook {id}"))
        }
        WebhooksCommand::Deliveries { id } => {
            let deliveries = client
                .get_all(
                    &["webhooks", &id.to_string(), "deliveries"],
                    &Query::new(),
                    "cursor",
                    "deliveries",
                )
                .await?;
            print_items(
                client,
                deliveries,
                &[
                    ("AT", "at"),
                    ("EVENT", "event_id"),
                    ("ATTEMPT", "attempt"),
                    ("STATUS", "status"),
                    ("MS", "duration_ms"),
                    ("ERROR", "error"),
                ],
                "no deliveries yet",
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_across_chunks() {
        let mut p = SseParser::default();
        assert!(
            p.push(b": keep-alive\n\nid: 7\r\nevent: device.reg")
                .is_empty()
        );
        let evs = p.push(b"istered\ndata: {\"id\":7,\ndata: \"x\":1}\n\nretry: 5\nda");
        assert_eq!(
            evs,
            vec![SseEvent {
                id: Some("7".into()),
                event: Some("device.registered".into()),
                data: "{\"id\":7,\n\"x\":1}".into(),
            }]
        );
        let evs = p.push(b"ta:{}\n\n");
        assert_eq!(evs.len(), 1);
        assert_eq!((evs[0].id.as_deref(), evs[0].data.as_str()), (None, "{}"));
        // An event without data is dropped.
        assert!(p.push(b"id: 9\n\n").is_empty());
    }

    #[test]
    fn event_lines() {
        let e = json!({"id":12,"type":"operation.state_changed","at":"2026-01-01T00:00:00Z",
            "device_id":"IMEI:1","app_id":null,"operation_id":3,"data":{"state":"succeeded"}});
        assert_eq!(
            event_line(&e),
            "12  2026-01-01T00:00:00Z  operation.state_changed  device=IMEI:1  op=3  {\"state\":\"succeeded\"}"
        );
    }
}
