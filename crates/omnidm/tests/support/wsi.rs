//! The WSI from outside: a raw HTTP/1.1 client, an API handle holding the admin key, and a
//! webhook receiver on loopback. Shared by every end-to-end test of the WSI.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{DataDir, Server};

/// One HTTP response.
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub raw: String,
}

/// A raw HTTP/1.1 request with `Connection: close`.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Resp {
    call_h(addr, method, path, key, &[], body)
}

/// A raw HTTP/1.1 request with extra headers (`Connection: close`).
pub fn call_h(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(70))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw_body = String::from_utf8_lossy(&raw[split + 4..]).into_owned();
    let body = serde_json::from_str(&raw_body).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        raw: raw_body,
    }
}

/// One Prometheus metric from `/metrics` on the API address (summed over its label sets; 0
/// when absent).
pub fn metric(addr: SocketAddr, name: &str) -> f64 {
    let r = call(addr, "GET", "/metrics", None, None);
    r.raw
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub struct Api {
    pub addr: SocketAddr,
    pub admin: String,
}

impl Api {
    pub fn new(server: &Server, data: &DataDir) -> Api {
        let admin = std::fs::read_to_string(data.0.join("admin.key"))
            .unwrap()
            .trim()
            .to_owned();
        Api {
            addr: server.api,
            admin,
        }
    }

    pub fn as_(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
        call(self.addr, method, path, Some(key), body.as_ref())
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.as_(&self.admin, method, path, body)
    }

    /// Creates an application; returns its key. A 503 ("retry later") is retried as a client
    /// should: two servers on one SQLite file (tests of cross-node behaviour) can refuse a
    /// write transaction whose snapshot the other node's commit invalidated.
    pub fn app(&self, id: &str) -> String {
        let create = || {
            self.admin(
                "POST",
                "/api/v1/apps",
                Some(json!({"id": id, "description": "test"})),
            )
        };
        let mut r = create();
        for _ in 0..3 {
            if r.status != 503 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            r = create();
        }
        assert_eq!(r.status, 201, "{}", r.raw);
        r.body["key"]["key"].as_str().unwrap().to_owned()
    }
}

/// Webhook deliveries received.
#[derive(Default, Clone)]
pub struct Inbox(pub Arc<Mutex<Vec<Delivery>>>);

/// Headers and body of one delivery.
pub type Delivery = (HashMap<String, String>, String);

/// A webhook receiver answering 200 to everything.
pub fn receiver() -> (SocketAddr, Inbox) {
    receiver_with(Arc::new(Mutex::new(200)))
}

/// A webhook receiver answering with the status in `answer` (changeable while it runs).
pub fn receiver_with(answer: Arc<Mutex<u16>>) -> (SocketAddr, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let inbox = Inbox::default();
    let sink = inbox.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = HashMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap_or(0);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let status = *answer.lock().unwrap();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            sink.0
                .lock()
                .unwrap()
                .push((headers, String::from_utf8(body).unwrap()));
        }
    });
    (addr, inbox)
}

pub fn signature_ok(secret: &str, headers: &HashMap<String, String>, body: &str) -> bool {
    let ts = &headers["omnidm-timestamp"];
    let sig = headers["omnidm-signature"].strip_prefix("v1=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes()) == sig
}
