//! The suite's own device side, written from the OMA texts and not from our engine: a SyncML
//! message builder (XML strings put together by hand), the DM Security 1.2 credential formulas
//! (Basic, MD5 digest, HMAC-MD5), a response parser (quick-xml into a small element tree), a
//! raw HTTP/1.1 POST with the `x-syncml-hmac` header, and a test bench (one real
//! `omnidm serve` per test, devices imported through the CLI, operations queued and read
//! through the WSI).
//!
//! Nothing here uses `omnidm-omadm` or the simulator: what the server is checked against is
//! what this file says the specification says.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::{Digest as _, Md5};
use serde_json::{Value, json};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::wsi::Api;
use crate::support::{DataDir, Server, ok, omnidm};

// ---------------------------------------------------------------------------------------------
// Credentials (OMA-TS-DM_Security-V1_2 §5.3 and §5.4)
// ---------------------------------------------------------------------------------------------

/// `H(x)`: MD5.
pub fn h(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// `B64(x)`.
pub fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

/// Basic (DM Security 1.2 §5.3.1): `B64(username:password)`.
pub fn basic_cred(user: &str, secret: &str) -> String {
    b64(format!("{user}:{secret}").as_bytes())
}

/// MD5 digest (DM Security 1.2 §5.3.2): `B64(H(B64(H(username:password)):nonce))`.
pub fn md5_cred(user: &str, secret: &str, nonce: &[u8]) -> String {
    let mut inner = b64(&h(format!("{user}:{secret}").as_bytes())).into_bytes();
    inner.push(b':');
    inner.extend_from_slice(nonce);
    b64(&h(&inner))
}

/// HMAC-MD5 (DM Security 1.2 §5.4): `B64(H(B64(H(username:password)):nonce:B64(H(body))))`.
pub fn hmac_mac(user: &str, secret: &str, nonce: &[u8], body: &[u8]) -> String {
    let mut inner = b64(&h(format!("{user}:{secret}").as_bytes())).into_bytes();
    inner.push(b':');
    inner.extend_from_slice(nonce);
    inner.push(b':');
    inner.extend_from_slice(b64(&h(body)).as_bytes());
    b64(&h(&inner))
}

/// The `x-syncml-hmac` header value (DM Security 1.2 §5.4.3).
pub fn hmac_header(user: &str, secret: &str, nonce: &[u8], body: &[u8]) -> String {
    format!(
        "algorithm=MD5, username=\"{user}\", mac={}",
        hmac_mac(user, secret, nonce, body)
    )
}

/// The `mac` parameter of an `x-syncml-hmac` header value.
pub fn hmac_param(value: &str, name: &str) -> Option<String> {
    value.split(',').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

// ---------------------------------------------------------------------------------------------
// Message builder (SyncML RepPro 1.2 / DM RepPro 1.2 element order)
// ---------------------------------------------------------------------------------------------

const METINF: &str = "xmlns='syncml:metinf'";

/// A device message: SyncHdr fields and body commands as XML fragments.
#[derive(Clone, Debug)]
pub struct Msg {
    pub ver_dtd: String,
    pub ver_proto: String,
    pub session_id: String,
    pub msg_id: u32,
    pub target: String,
    pub source: String,
    /// `<Cred>…</Cred>`, whole.
    pub cred: Option<String>,
    pub max_msg_size: Option<u32>,
    pub commands: Vec<String>,
    pub final_: bool,
}

impl Msg {
    pub fn xml(&self) -> String {
        let mut s = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr>",
        );
        s += &format!(
            "<VerDTD>{}</VerDTD><VerProto>{}</VerProto><SessionID>{}</SessionID>\
             <MsgID>{}</MsgID><Target><LocURI>{}</LocURI></Target>\
             <Source><LocURI>{}</LocURI></Source>",
            self.ver_dtd, self.ver_proto, self.session_id, self.msg_id, self.target, self.source
        );
        if let Some(c) = &self.cred {
            s += c;
        }
        if let Some(m) = self.max_msg_size {
            s += &format!("<Meta><MaxMsgSize {METINF}>{m}</MaxMsgSize></Meta>");
        }
        s += "</SyncHdr><SyncBody>";
        for c in &self.commands {
            s += c;
        }
        if self.final_ {
            s += "<Final/>";
        }
        s += "</SyncBody></SyncML>";
        s
    }
}

/// `<Cred>` for `auth_type` (`syncml:auth-basic` / `syncml:auth-md5`), b64 data.
pub fn cred_xml(auth_type: &str, data: &str) -> String {
    format!(
        "<Cred><Meta><Format {METINF}>b64</Format><Type {METINF}>{auth_type}</Type></Meta>\
         <Data>{data}</Data></Cred>"
    )
}

/// `<Alert>` with a code and no items.
pub fn alert(cmd_id: u32, code: u32) -> String {
    format!("<Alert><CmdID>{cmd_id}</CmdID><Data>{code}</Data></Alert>")
}

/// The DevInfo Replace of package 1 (DM Protocol 1.2 §8.3, package 1).
pub fn devinfo(cmd_id: u32, dev_id: &str) -> String {
    let item = |uri: &str, v: &str| {
        format!(
            "<Item><Source><LocURI>./DevInfo/{uri}</LocURI></Source>\
             <Meta><Format {METINF}>chr</Format></Meta><Data>{v}</Data></Item>"
        )
    };
    format!(
        "<Replace><CmdID>{cmd_id}</CmdID>{}{}{}{}{}</Replace>",
        item("DevId", dev_id),
        item("Man", "Conformance"),
        item("Mod", "HandBuilt"),
        item("DmV", "1.2"),
        item("Lang", "en")
    )
}

/// A `<Status>` answering command `cmd_ref` (`cmd` its name) of message `msg_ref`; `extra` is
/// put after `Data` (Items, Chal…) — SyncML RepPro 1.2 Status content order is
/// `CmdID, MsgRef, CmdRef, Cmd, TargetRef*, SourceRef*, Cred?, Chal?, Data, Item*`, so a Chal
/// goes into `pre` (before Data).
pub fn status(cmd_id: u32, msg_ref: u32, cmd_ref: u32, cmd: &str, code: u16) -> String {
    status_full(cmd_id, msg_ref, cmd_ref, cmd, code, "", "")
}

pub fn status_full(
    cmd_id: u32,
    msg_ref: u32,
    cmd_ref: u32,
    cmd: &str,
    code: u16,
    pre: &str,
    items: &str,
) -> String {
    format!(
        "<Status><CmdID>{cmd_id}</CmdID><MsgRef>{msg_ref}</MsgRef><CmdRef>{cmd_ref}</CmdRef>\
         <Cmd>{cmd}</Cmd>{pre}<Data>{code}</Data>{items}</Status>"
    )
}

/// A `<Chal>` of `auth_type` with `nonce` (DM Security 1.2 §5).
pub fn chal_xml(auth_type: &str, nonce: &[u8]) -> String {
    format!(
        "<Chal><Meta><Format {METINF}>b64</Format><Type {METINF}>{auth_type}</Type>\
         <NextNonce {METINF}>{}</NextNonce></Meta></Chal>",
        b64(nonce)
    )
}

/// `<Results>` for a Get, one item.
pub fn results(cmd_id: u32, msg_ref: u32, cmd_ref: u32, uri: &str, item_extra: &str) -> String {
    format!(
        "<Results><CmdID>{cmd_id}</CmdID><MsgRef>{msg_ref}</MsgRef><CmdRef>{cmd_ref}</CmdRef>\
         <Item><Source><LocURI>{uri}</LocURI></Source>{item_extra}</Item></Results>"
    )
}

/// `<Meta><Format>chr</Format>…` + `<Data>` for a Results item.
pub fn chr_data(value: &str) -> String {
    format!("<Meta><Format {METINF}>chr</Format></Meta><Data>{value}</Data>")
}

// ---------------------------------------------------------------------------------------------
// Response parser
// ---------------------------------------------------------------------------------------------

/// One XML element: local name, text, children.
#[derive(Clone, Debug, Default)]
pub struct El {
    pub name: String,
    pub text: String,
    pub children: Vec<El>,
}

impl El {
    pub fn child(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn all(&self, name: &str) -> Vec<&El> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
    /// The element at a `/`-separated path of child names.
    pub fn at(&self, path: &str) -> Option<&El> {
        path.split('/').try_fold(self, |e, n| e.child(n))
    }
    pub fn text_at(&self, path: &str) -> Option<String> {
        self.at(path).map(|e| e.text.trim().to_owned())
    }
}

/// Parses XML into an element tree (local names, namespaces ignored).
pub fn parse_xml(bytes: &[u8]) -> El {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut stack: Vec<El> = vec![El::default()];
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => stack.push(El {
                name: e.local_name().as_ref().to_owned(),
                ..El::default()
            }),
            Ok(Event::Empty(e)) => {
                let el = El {
                    name: e.local_name().as_ref().to_owned(),
                    ..El::default()
                };
                stack.last_mut().unwrap().children.push(el);
            }
            Ok(Event::End(_)) => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(el);
            }
            Ok(Event::Text(t)) => {
                stack.last_mut().unwrap().text.push_str(&t.xml10_content());
            }
            Ok(Event::CData(t)) => {
                stack.last_mut().unwrap().text.push_str(&t.xml10_content());
            }
            Ok(Event::GeneralRef(r)) => {
                let name = r.xml10_content().into_owned();
                let ch = match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                };
                stack.last_mut().unwrap().text.push_str(ch);
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "unreadable XML from the server: {e}\n{}",
                String::from_utf8_lossy(bytes)
            ),
        }
        buf.clear();
    }
    let mut root = stack.pop().unwrap();
    root.children
        .pop()
        .unwrap_or_else(|| panic!("no element in {}", String::from_utf8_lossy(bytes)))
}

/// A Status of the server's message, read.
#[derive(Clone, Debug)]
pub struct St {
    pub msg_ref: Option<u32>,
    pub cmd_ref: u32,
    pub cmd: String,
    pub code: u16,
    pub chal: Option<El>,
    pub el: El,
}

impl St {
    pub fn chal_type(&self) -> Option<String> {
        self.chal.as_ref()?.text_at("Meta/Type")
    }
    pub fn next_nonce(&self) -> Option<Vec<u8>> {
        let t = self.chal.as_ref()?.text_at("Meta/NextNonce")?;
        Some(B64.decode(t).expect("NextNonce is base64"))
    }
}

/// One HTTP answer of the server.
#[derive(Clone, Debug)]
pub struct Reply {
    pub http: u16,
    pub content_type: String,
    pub hmac: Option<String>,
    pub body: Vec<u8>,
    /// The SyncML message (`None` when the body is not SyncML).
    pub root: Option<El>,
}

impl Reply {
    pub fn root(&self) -> &El {
        self.root.as_ref().unwrap_or_else(|| {
            panic!(
                "HTTP {}: not a SyncML message: {}",
                self.http,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn hdr(&self, path: &str) -> Option<String> {
        self.root().text_at(&format!("SyncHdr/{path}"))
    }
    pub fn msg_id(&self) -> u32 {
        self.hdr("MsgID").unwrap().parse().unwrap()
    }
    pub fn is_final(&self) -> bool {
        self.root().at("SyncBody/Final").is_some()
    }
    pub fn statuses(&self) -> Vec<St> {
        let body = self.root().child("SyncBody").expect("SyncBody");
        body.all("Status")
            .into_iter()
            .map(|s| St {
                msg_ref: s.text_at("MsgRef").map(|m| m.parse().unwrap()),
                cmd_ref: s.text_at("CmdRef").unwrap().parse().unwrap(),
                cmd: s.text_at("Cmd").unwrap_or_default(),
                code: s.text_at("Data").unwrap().parse().unwrap(),
                chal: s.child("Chal").cloned(),
                el: s.clone(),
            })
            .collect()
    }
    /// The Status for the device's SyncHdr.
    pub fn hdr_status(&self) -> St {
        self.statuses()
            .into_iter()
            .find(|s| s.cmd_ref == 0 && s.cmd == "SyncHdr")
            .unwrap_or_else(|| panic!("no SyncHdr status: {}", self.text()))
    }
    /// The Status for the device's command `cmd_ref` of message `msg_ref`.
    pub fn status_for(&self, msg_ref: u32, cmd_ref: u32) -> Option<St> {
        self.statuses()
            .into_iter()
            .find(|s| s.cmd_ref == cmd_ref && s.msg_ref == Some(msg_ref) && s.cmd != "SyncHdr")
    }
    /// The commands of the body other than Status (Get, Replace, Alert, Atomic…), in order.
    pub fn commands(&self) -> Vec<El> {
        self.root()
            .child("SyncBody")
            .expect("SyncBody")
            .children
            .iter()
            .filter(|c| c.name != "Status" && c.name != "Final")
            .cloned()
            .collect()
    }
    pub fn command(&self, name: &str) -> El {
        self.commands()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} in {}", self.text()))
    }
}

/// `<CmdID>` of a command element.
pub fn cmd_id(c: &El) -> u32 {
    c.text_at("CmdID").unwrap().parse().unwrap()
}

/// Target LocURI of a command's first Item.
pub fn target(c: &El) -> String {
    c.text_at("Item/Target/LocURI").unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// A raw HTTP/1.1 POST with optional extra headers.
pub fn post_raw(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let http = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let content_type = header("content-type").unwrap_or_default();
    let hmac = header("x-syncml-hmac");
    let body = raw[split + 4..].to_vec();
    let root = if content_type.contains("wbxml") {
        Some(parse_xml(&wbxml_to_xml(&body)))
    } else if content_type.contains("syncml") {
        Some(parse_xml(&body))
    } else {
        None
    };
    Reply {
        http,
        content_type,
        hmac,
        body,
        root,
    }
}

/// Runs one of Debian's libwbxml tools (an implementation independent of ours) on `input`.
fn libwbxml(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!(
        "omnidm-conf-wbxml-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (inp, out) = (dir.join("in"), dir.join("out"));
    std::fs::write(&inp, input).unwrap();
    let _ = std::fs::remove_file(&out);
    let run = std::process::Command::new(format!("/usr/bin/{tool}"))
        .args(args)
        .arg("-o")
        .arg(&out)
        .arg(&inp)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install Debian's libwbxml2-utils)"));
    assert!(
        run.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// XML → WBXML with libwbxml's `xml2wbxml` (no string table).
pub fn xml_to_wbxml(xml: &str) -> Vec<u8> {
    libwbxml("xml2wbxml", &["-n"], xml.as_bytes())
}

/// WBXML → XML with libwbxml's `wbxml2xml`.
pub fn wbxml_to_xml(wbxml: &[u8]) -> Vec<u8> {
    libwbxml("wbxml2xml", &["-m", "0"], wbxml)
}

pub fn libwbxml_installed() -> bool {
    std::path::Path::new("/usr/bin/xml2wbxml").exists()
        && std::path::Path::new("/usr/bin/wbxml2xml").exists()
}

// ---------------------------------------------------------------------------------------------
// The hand-built device
// ---------------------------------------------------------------------------------------------

/// Client authentication scheme of a device (DM Security 1.2 §5.3, §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    Basic,
    Md5,
    Hmac,
}

impl Auth {
    pub fn name(self) -> &'static str {
        match self {
            Auth::Basic => "basic",
            Auth::Md5 => "md5",
            Auth::Hmac => "hmac",
        }
    }
}

pub const XML: &str = "application/vnd.syncml.dm+xml";
pub const WBXML: &str = "application/vnd.syncml.dm+wbxml";

/// A device written by hand: its DM account, its nonces and the state of its session.
#[derive(Clone, Debug)]
pub struct Dev {
    pub addr: SocketAddr,
    pub server_url: String,
    pub id: String,
    pub auth: Auth,
    pub client_name: String,
    pub client_secret: String,
    pub server_id: String,
    pub server_secret: String,
    /// The nonce the server gave us for our credentials (empty for a new account).
    pub client_nonce: Vec<u8>,
    /// The nonce we gave the server for its credentials (empty for a new account).
    pub server_nonce: Vec<u8>,
    pub session_id: String,
    /// Our next MsgID.
    pub msg_id: u32,
    /// Where the next message goes (the server's RespURI once it gave one).
    pub path: String,
    pub max_msg_size: Option<u32>,
    pub wbxml: bool,
}

impl Dev {
    /// A message of ours with the header filled in (MsgID not yet consumed).
    pub fn msg(&self, commands: Vec<String>, final_: bool) -> Msg {
        Msg {
            ver_dtd: "1.2".into(),
            ver_proto: "DM/1.2".into(),
            session_id: self.session_id.clone(),
            msg_id: self.msg_id,
            target: self.server_url.clone(),
            source: self.id.clone(),
            cred: None,
            max_msg_size: self.max_msg_size,
            commands,
            final_,
        }
    }

    /// Our credentials for the current client nonce (none for HMAC: it goes in the header).
    pub fn cred(&self) -> Option<String> {
        match self.auth {
            Auth::Basic => Some(cred_xml(
                "syncml:auth-basic",
                &basic_cred(&self.client_name, &self.client_secret),
            )),
            Auth::Md5 => Some(cred_xml(
                "syncml:auth-md5",
                &md5_cred(&self.client_name, &self.client_secret, &self.client_nonce),
            )),
            Auth::Hmac => None,
        }
    }

    /// Starts a new session: SessionID `sid`, MsgID 1, back to the server's base URL.
    pub fn new_session(&mut self, sid: &str) {
        self.session_id = sid.into();
        self.msg_id = 1;
        self.path = "/dm".into();
    }

    /// Sends `m` as is (no credentials added), to the current path, and learns from the
    /// reply: RespURI (DM Protocol 1.2: later messages go there) and the NextNonce of the
    /// Status for our SyncHdr (DM Security 1.2 §5: the nonce for our next credentials).
    pub fn send(&mut self, m: &Msg) -> Reply {
        let xml = m.xml();
        let body = if self.wbxml {
            xml_to_wbxml(&xml)
        } else {
            xml.into_bytes()
        };
        let mac = (self.auth == Auth::Hmac).then(|| {
            hmac_header(
                &self.client_name,
                &self.client_secret,
                &self.client_nonce,
                &body,
            )
        });
        let headers: Vec<(&str, &str)> = mac
            .as_deref()
            .map(|m| vec![("x-syncml-hmac", m)])
            .unwrap_or_default();
        let ct = if self.wbxml { WBXML } else { XML };
        let reply = post_raw(self.addr, &self.path, ct, &headers, &body);
        self.msg_id = m.msg_id + 1;
        if reply.root.is_some() {
            if let Some(uri) = reply.hdr("RespURI") {
                let path = uri
                    .split_once("://")
                    .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
                    .unwrap_or(uri);
                self.path = path;
            }
            if let Some(n) = reply
                .statuses()
                .into_iter()
                .find(|s| s.cmd_ref == 0)
                .and_then(|s| s.next_nonce())
            {
                self.client_nonce = n;
            }
        }
        reply
    }

    /// Sends `commands` with our credentials in the header (Basic/MD5) or the HMAC header.
    pub fn send_cmds(&mut self, commands: Vec<String>, final_: bool) -> Reply {
        let mut m = self.msg(commands, final_);
        m.cred = self.cred();
        self.send(&m)
    }

    /// Sends `commands` without credentials (a message after the server's 212).
    pub fn send_plain(&mut self, commands: Vec<String>, final_: bool) -> Reply {
        let m = self.msg(commands, final_);
        self.send(&m)
    }

    /// Package 1 of a client-initiated session (Alert 1201 + DevInfo), authenticated.
    pub fn package1(&mut self, sid: &str) -> Reply {
        self.new_session(sid);
        let id = self.id.clone();
        self.send_cmds(vec![alert(1, 1201), devinfo(2, &id)], true)
    }

    /// Package 1 again after the server challenged us in `challenged` (DM Protocol 1.2,
    /// authentication: same SessionID, to the RespURI, "MUST contain a Status for the
    /// SyncHdr"; Alert and DevInfo resent with the credentials asked for).
    pub fn resend_package1(&mut self, challenged: &Reply) -> Reply {
        let id = self.id.clone();
        let hdr = self.hdr_ok(challenged, 1);
        self.send_cmds(vec![hdr, alert(2, 1201), devinfo(3, &id)], true)
    }

    /// The credentials the server must present to us (DM Security 1.2 §5.3.2), for our
    /// current server nonce.
    pub fn expected_server_md5(&self) -> String {
        md5_cred(&self.server_id, &self.server_secret, &self.server_nonce)
    }

    /// Checks the server's HMAC over `reply` with our current server nonce.
    pub fn server_hmac_ok(&self, reply: &Reply) -> bool {
        let Some(v) = &reply.hmac else { return false };
        hmac_param(v, "mac").as_deref()
            == Some(&hmac_mac(
                &self.server_id,
                &self.server_secret,
                &self.server_nonce,
                &reply.body,
            ))
            && hmac_param(v, "username").as_deref() == Some(self.server_id.as_str())
    }

    /// The Status for the server's SyncHdr that accepts it: 212 for Basic/MD5 sessions, 200
    /// with HMAC (DM Security 1.2 §5.4).
    pub fn hdr_ok(&self, reply: &Reply, cmd_id: u32) -> String {
        let code = if self.auth == Auth::Hmac { 200 } else { 212 };
        status(cmd_id, reply.msg_id(), 0, "SyncHdr", code)
    }
}

// ---------------------------------------------------------------------------------------------
// The bench: a real server, devices, the WSI
// ---------------------------------------------------------------------------------------------

/// One running server with its data directory and WSI handle.
pub struct Bench {
    pub data: DataDir,
    pub server: Server,
    pub api: Api,
    next_device: std::cell::Cell<u32>,
    name: String,
}

impl Bench {
    pub fn start(name: &str) -> Bench {
        Bench::start_with(name, &[], "")
    }

    /// A server with extra flags and an `omnidm.toml` (empty: none).
    pub fn start_with(name: &str, flags: &[&str], config: &str) -> Bench {
        let data = DataDir::new(&format!("conf-{name}"));
        let mut args: Vec<String> = flags.iter().map(|s| (*s).to_owned()).collect();
        if !config.is_empty() {
            let file = data.0.join("omnidm.toml");
            std::fs::write(&file, config).unwrap();
            args.push("--config".into());
            args.push(file.to_str().unwrap().to_owned());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start_with(&data, &refs);
        let api = Api::new(&server, &data);
        Bench {
            data,
            server,
            api,
            next_device: std::cell::Cell::new(0),
            name: name.to_owned(),
        }
    }

    /// Provisions a new device with `auth` (imported through `omnidm devices import`, as an
    /// operator would) and returns its hand-built side.
    pub fn device(&self, auth: Auth) -> Dev {
        let n = self.next_device.get();
        self.next_device.set(n + 1);
        let id = format!("IMEI:35{:013}", u64::from(n) + 1000 * hash(&self.name));
        let line = json!({
            "device_id": id,
            "auth": auth.name(),
            "client_name": id,
            "client_secret": format!("client-secret-{n}"),
            "server_id": "omnidm",
            "server_secret": format!("server-secret-{n}"),
        });
        let file = self.data.0.join(format!("dev-{n}.jsonl"));
        std::fs::write(&file, format!("{line}\n")).unwrap();
        ok(omnidm(
            &self.data,
            &["devices", "import", file.to_str().unwrap()],
        ));
        Dev {
            addr: self.server.dm,
            server_url: self.server.dm_url(),
            id: id.clone(),
            auth,
            client_name: id,
            client_secret: format!("client-secret-{n}"),
            server_id: "omnidm".into(),
            server_secret: format!("server-secret-{n}"),
            client_nonce: Vec::new(),
            server_nonce: Vec::new(),
            session_id: "1".into(),
            msg_id: 1,
            path: "/dm".into(),
            max_msg_size: Some(16384),
            wbxml: false,
        }
    }

    /// Queues an operation for `dev` through the WSI; returns its location.
    pub fn queue(&self, dev: &Dev, commands: Value) -> String {
        let r = self.api.admin(
            "POST",
            &format!("/api/v1/devices/{}/operations", dev.id),
            Some(json!({ "commands": commands })),
        );
        assert_eq!(r.status, 202, "{}", r.raw);
        r.headers["location"].clone()
    }

    /// The device operation of `location` once final: (state, results per command).
    pub fn outcome(&self, location: &str) -> (String, Vec<Value>) {
        let op = self.api.admin("GET", &format!("{location}?wait=10"), None);
        assert_eq!(op.status, 200, "{}", op.raw);
        let r = self.api.admin("GET", &format!("{location}/devices"), None);
        assert_eq!(r.status, 200, "{}", r.raw);
        let item = &r.body["items"][0];
        (
            item["state"].as_str().unwrap_or_default().to_owned(),
            item["results"].as_array().cloned().unwrap_or_default(),
        )
    }
}

/// A small stable number from a test name, so that device ids differ between tests.
fn hash(s: &str) -> u64 {
    s.bytes()
        .fold(7u64, |a, b| (a.wrapping_mul(31) + u64::from(b)) % 9_000_000)
}

/// The result of command `index` (top level) in a device operation's results.
pub fn result_at(results: &[Value], index: &[u64]) -> Value {
    let want = json!(index);
    results
        .iter()
        .find(|r| r["index"] == want)
        .cloned()
        .unwrap_or_else(|| panic!("no result at {index:?}: {results:#?}"))
}

/// Runs package 1 and answers every challenge until the server accepts us (at most 3 tries);
/// returns the accepting reply.
pub fn authenticated(dev: &mut Dev, sid: &str) -> Reply {
    let mut reply = dev.package1(sid);
    for _ in 0..2 {
        if matches!(reply.hdr_status().code, 401 | 407) {
            reply = dev.resend_package1(&reply);
        }
    }
    let code = reply.hdr_status().code;
    assert!(
        matches!(code, 200 | 212),
        "authenticated: {code}\n{}",
        reply.text()
    );
    reply
}

/// Our answer to a server message: the Status for its SyncHdr (accepting it), then one Status
/// per command (inner commands of Atomic/Sequence too, after their container), coded by
/// `code`, and a Results for each Get with `value` (chr) when its code is 200. CmdIDs from 1.
pub fn answer(
    dev: &Dev,
    reply: &Reply,
    code: &dyn Fn(&El) -> u16,
    value: Option<&str>,
) -> Vec<String> {
    let msg = reply.msg_id();
    let mut out = vec![dev.hdr_ok(reply, 1)];
    let mut next = 2;
    let mut results = Vec::new();
    fn walk(cmds: &[El], out: &mut Vec<El>) {
        for c in cmds {
            out.push(c.clone());
            if matches!(c.name.as_str(), "Atomic" | "Sequence") {
                let inner: Vec<El> = c
                    .children
                    .iter()
                    .filter(|e| !matches!(e.name.as_str(), "CmdID" | "Meta" | "NoResp"))
                    .cloned()
                    .collect();
                walk(&inner, out);
            }
        }
    }
    let mut flat = Vec::new();
    walk(&reply.commands(), &mut flat);
    for c in &flat {
        let k = code(c);
        out.push(status(next, msg, cmd_id(c), &c.name, k));
        next += 1;
        if c.name == "Get"
            && k == 200
            && let Some(v) = value
        {
            results.push((cmd_id(c), target(c), v.to_owned()));
        }
    }
    for (cid, uri, v) in results {
        out.push(self::results(next, msg, cid, &uri, &chr_data(&v)));
        next += 1;
    }
    out
}

/// Every command 200, Gets answered with `value`.
pub fn answer_ok(dev: &Dev, reply: &Reply, value: Option<&str>) -> Vec<String> {
    answer(dev, reply, &|_| 200, value)
}
