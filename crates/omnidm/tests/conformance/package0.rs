//! Package 0 (OMA-TS-DM_Notification-V1_2 §6: the notification message; §6.2.1 layout,
//! §6.2.2.2 digest, §6.2.2.6 version, §6.2.2.8 initiator). The server pushes it through its
//! push gateway (`crates/omnidm/src/server/push.rs`); here the gateway is a loopback listener
//! of the test, and the package is read bit by bit by hand.

use crate::wire::*;
use serde_json::json;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

/// A push gateway on loopback: every POST body, with its content type.
fn gateway() -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/push/{{device_id}}",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut len, mut ct, mut line) = (0usize, String::new(), String::new());
            reader.read_line(&mut line).unwrap_or(0);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        "content-type" => ct = v.trim().to_owned(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tx.send((ct, body));
        }
    });
    (url, rx)
}

/// The fields of a package 0, read by hand from §6.2.1.
struct Pkg0 {
    digest: Vec<u8>,
    version: u16,
    ui_mode: u8,
    initiator: u8,
    future: u32,
    session_id: u16,
    server_id: String,
    trigger: Vec<u8>,
}

fn read(p: &[u8]) -> Pkg0 {
    assert!(p.len() >= 24, "{} bytes", p.len());
    let hdr = &p[16..];
    // 48 bits: version 10, ui-mode 2, initiator 1, future 27, then sessionid 16 in bytes 5..7.
    let top = u64::from_be_bytes([0, 0, 0, hdr[0], hdr[1], hdr[2], hdr[3], hdr[4]]);
    let version = (top >> 30) as u16;
    let ui_mode = ((top >> 28) & 0b11) as u8;
    let initiator = ((top >> 27) & 1) as u8;
    let future = (top & ((1 << 27) - 1)) as u32;
    let session_id = u16::from_be_bytes([hdr[5], hdr[6]]);
    let len = usize::from(hdr[7]);
    Pkg0 {
        digest: p[..16].to_vec(),
        version,
        ui_mode,
        initiator,
        future,
        session_id,
        server_id: String::from_utf8(hdr[8..8 + len].to_vec()).unwrap(),
        trigger: p[16..].to_vec(),
    }
}

/// §6.2.2.2: `digest = H(B64(H(server-identifier:password)):nonce:B64(H(trigger)))`, keyed by
/// the server's credentials and the nonce the device gave the server.
fn digest_ok(dev: &Dev, p: &Pkg0) -> bool {
    let mut inner = b64(&h(
        format!("{}:{}", dev.server_id, dev.server_secret).as_bytes()
    ))
    .into_bytes();
    inner.push(b':');
    inner.extend_from_slice(&dev.server_nonce);
    inner.push(b':');
    inner.extend_from_slice(b64(&h(&p.trigger)).as_bytes());
    h(&inner).to_vec() == p.digest
}

fn notify(b: &Bench, dev: &Dev) -> String {
    let r = b.api.admin(
        "POST",
        &format!("/api/v1/devices/{}/operations", dev.id),
        Some(json!({"notify": true, "commands": [{"type": "get", "path": "./DevInfo/Mod"}]})),
    );
    assert_eq!(r.status, 202, "{}", r.raw);
    r.headers["location"].clone()
}

/// §6.2: a server-initiated session starts with package 0 — media type
/// `application/vnd.syncml.notification`, version field 0000001011 (11) for DM 1.2 (issue 9
/// item 7), initiator 1 (server), future-use bits 0, the server identifier, and a digest the
/// device can check with the server's credentials and its server nonce; the device then
/// calls in with Alert 1200 and gets the queued command. After the device gave the server a
/// new nonce, the next package 0's digest uses it.
#[test]
fn package0_is_version_11_server_initiated_and_digested() {
    let (url, rx) = gateway();
    let b = Bench::start_with("pkg0", &["--push-gateway", &url], "");
    let mut dev = b.device(Auth::Md5);
    let loc = notify(&b, &dev);
    let (ct, body) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a package 0");
    assert_eq!(ct, "application/vnd.syncml.notification");
    let p = read(&body);
    assert_eq!(p.version, 11, "§6.2.2.6: 0000001011");
    assert_eq!(p.initiator, 1, "server initiated");
    assert_eq!(p.future, 0);
    assert!(p.ui_mode <= 3);
    assert_eq!(p.server_id, "omnidm");
    assert!(
        digest_ok(&dev, &p),
        "digest over the trigger with the empty server nonce"
    );

    // Package 1 of a server-initiated session (Alert 1200), SessionID from package 0.
    dev.new_session(&p.session_id.to_string());
    let id = dev.id.clone();
    let reply = dev.send_cmds(vec![alert(1, 1200), devinfo(2, &id)], true);
    assert_eq!(reply.hdr_status().code, 212, "{}", reply.text());
    assert_eq!(target(&reply.command("Get")), "./DevInfo/Mod");
    // The device gives the server a new nonce with its 212.
    let mut ans = answer_ok(&dev, &reply, Some("pushed"));
    ans[0] = status_full(
        1,
        reply.msg_id(),
        0,
        "SyncHdr",
        212,
        &chal_xml("syncml:auth-md5", b"pkg0-nonce"),
        "",
    );
    dev.send_plain(ans, true);
    dev.server_nonce = b"pkg0-nonce".to_vec();
    assert_eq!(b.outcome(&loc).0, "succeeded");

    notify(&b, &dev);
    let (_, body) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a second package 0");
    let p = read(&body);
    assert!(
        digest_ok(&dev, &p),
        "digest over the device's new server nonce"
    );
}
