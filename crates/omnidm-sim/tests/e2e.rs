//! The simulator over real HTTP on 127.0.0.1 against a small axum server that wraps the
//! engine's real server side (`ServerSession`): sessions end to end, many devices at once,
//! HMAC + WBXML, package 0 through the push listener, trivial mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use omnidm_omadm::client::{DeviceProfile, Trigger};
use omnidm_omadm::server::{
    DeviceContext, DmCommand, EndReason, Incoming, NodeWrite, Quirks, Randomness, ServerConfig,
    ServerSession, SessionEvent, SessionKind, peek, token_from_uri,
};
use omnidm_sim::{
    AuthScheme, DeviceAccount, Fleet, FleetConfig, HttpClient, Schedule, SimDevice, random16,
};
use omnidm_syncml::auth::{AuthType, Credentials, DigestKey, Nonce};
use omnidm_syncml::notification::{self, Notification, ServerId};
use omnidm_syncml::{Encoding, Limits};
use omnidm_tree::TreeUri;

/// What the test server knows about one device.
struct Account {
    ctx: DeviceContext,
}

#[derive(Default)]
struct Record {
    ended: Vec<(String, EndReason)>,
    started: Vec<(String, SessionKind)>,
    results: Vec<(String, String)>,
    healthz: u64,
}

/// A real OMA DM server side (the engine) behind axum; every session gets a Get of
/// `./DevInfo/Mod` and a Replace of `./Vendor/omnidm/Greeting`.
struct TestServer {
    config: ServerConfig,
    accounts: Mutex<HashMap<String, Account>>,
    sessions: Mutex<HashMap<[u8; 16], ServerSession>>,
    record: Mutex<Record>,
}

fn context(a: &DeviceAccount) -> DeviceContext {
    let client_auth = match a.auth {
        AuthScheme::Basic => AuthType::Basic,
        AuthScheme::Md5 => AuthType::Md5,
        AuthScheme::Hmac => AuthType::Hmac,
    };
    DeviceContext {
        device_id: a.device_id.clone(),
        client_auth,
        client_key: DigestKey::from_credentials(&Credentials::new(
            &a.client_name,
            &a.client_secret,
        )),
        server_auth: if client_auth == AuthType::Hmac {
            AuthType::Hmac
        } else {
            AuthType::Md5
        },
        server_key: DigestKey::from_credentials(&Credentials::new(&a.server_id, &a.server_secret)),
        client_nonce: Nonce::default(),
        server_nonce: Nonce::default(),
        quirks: Quirks::default(),
    }
}

async fn dm(
    State(st): State<Arc<TestServer>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let ct = h("content-type");
    let hmac = h("x-syncml-hmac");
    let Ok(p) = peek(&body, ct, Limits::default()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let token = token_from_uri(&uri.to_string()).or(p.session_token);
    let now = Instant::now();
    let mut sessions = st.sessions.lock().unwrap();
    let (token, mut session) = match token.and_then(|t| sessions.remove(&t).map(|s| (t, s))) {
        Some(x) => x,
        None => {
            let accounts = st.accounts.lock().unwrap();
            let Some(acc) = accounts.get(&p.device_id) else {
                return StatusCode::FORBIDDEN.into_response();
            };
            let r = Randomness {
                session_token: random16(),
                nonce_seed: random16(),
            };
            let token = r.session_token;
            let mut s = ServerSession::new(&st.config, acc.ctx.clone(), r, now);
            s.enqueue(
                1,
                DmCommand::Get {
                    uri: TreeUri::parse("./DevInfo/Mod").unwrap(),
                },
            )
            .unwrap();
            s.enqueue(
                2,
                DmCommand::Replace {
                    items: vec![NodeWrite::text(
                        TreeUri::parse("./Vendor/omnidm/Greeting").unwrap(),
                        "hello",
                    )],
                },
            )
            .unwrap();
            (token, s)
        }
    };
    if session
        .handle(
            Incoming {
                body: &body,
                content_type: ct,
                hmac,
            },
            now,
        )
        .is_err()
    {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let mut events: Vec<SessionEvent> = std::iter::from_fn(|| session.poll_event()).collect();
    let out = session.poll_transmit(now);
    events.extend(std::iter::from_fn(|| session.poll_event()));
    {
        let mut rec = st.record.lock().unwrap();
        let mut accounts = st.accounts.lock().unwrap();
        for e in events {
            match e {
                SessionEvent::NoncesChanged {
                    client_nonce,
                    server_nonce,
                } => {
                    if let Some(a) = accounts.get_mut(&p.device_id) {
                        a.ctx.client_nonce = client_nonce;
                        a.ctx.server_nonce = server_nonce;
                    }
                }
                SessionEvent::Started { kind, .. } => rec.started.push((p.device_id.clone(), kind)),
                SessionEvent::CommandResults { items, .. } => {
                    for i in items {
                        let v = i
                            .data
                            .as_ref()
                            .and_then(|d| d.as_text())
                            .unwrap_or_default()
                            .to_owned();
                        rec.results.push((p.device_id.clone(), v));
                    }
                }
                SessionEvent::Ended { reason, .. } => rec.ended.push((p.device_id.clone(), reason)),
                _ => {}
            }
        }
    }
    let Some(out) = out else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !session.is_finished() {
        sessions.insert(token, session);
    }
    let mut resp = (StatusCode::OK, out.body).into_response();
    resp.headers_mut()
        .insert("content-type", out.content_type.parse().unwrap());
    if let Some(h) = out.hmac {
        resp.headers_mut()
            .insert("x-syncml-hmac", h.parse().unwrap());
    }
    resp
}

async fn healthz(State(st): State<Arc<TestServer>>) -> &'static str {
    st.record.lock().unwrap().healthz += 1;
    "ok"
}

/// Starts the server on 127.0.0.1:0 with `accounts` provisioned; returns it and `/dm`'s URL.
async fn start_server(accounts: Vec<DeviceAccount>) -> (Arc<TestServer>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/dm");
    let st = Arc::new(TestServer {
        config: ServerConfig::new("omnidm", &url),
        accounts: Mutex::new(
            accounts
                .iter()
                .map(|a| (a.device_id.clone(), Account { ctx: context(a) }))
                .collect(),
        ),
        sessions: Mutex::new(HashMap::new()),
        record: Mutex::new(Record::default()),
    });
    let app = Router::new()
        .route("/dm", post(dm))
        .route("/healthz", get(healthz))
        .with_state(st.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (st, url)
}

/// A fleet whose accounts are known before the server starts (the URL is patched in after).
fn fleet_config(n: usize, auth: AuthScheme, url: &str) -> FleetConfig {
    let template = DeviceProfile {
        server_id: "omnidm".into(),
        server_uri: url.into(),
        ..DeviceProfile::default()
    };
    let mut c = FleetConfig::new(n, template, "IMEI:35900000{:07}");
    c.auth = auth;
    c.secret_seed = "test-seed".into();
    c
}

/// Builds the fleet, provisions its accounts on a fresh server, and returns both.
async fn fleet_and_server(
    n: usize,
    auth: AuthScheme,
    tweak: impl FnOnce(&mut FleetConfig),
) -> (Fleet, Arc<TestServer>, String) {
    // Accounts do not depend on the URL: derive them first, then point the fleet at it.
    let probe = Fleet::new(fleet_config(n, auth, "http://unused/")).unwrap();
    let accounts: Vec<DeviceAccount> = probe.accounts().cloned().collect();
    let (st, url) = start_server(accounts).await;
    let mut c = fleet_config(n, auth, &url);
    tweak(&mut c);
    (Fleet::new(c).unwrap(), st, url)
}

fn http() -> HttpClient {
    HttpClient::new(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_md5_session_end_to_end_then_nonces_carry_over() {
    let probe = Fleet::new(fleet_config(1, AuthScheme::Md5, "http://unused/")).unwrap();
    let account = probe.accounts().next().unwrap().clone();
    let (st, url) = start_server(vec![account.clone()]).await;
    let profile = DeviceProfile {
        dev_id: account.device_id.clone(),
        server_id: "omnidm".into(),
        server_uri: url,
        client_auth_type: "DIGEST".into(),
        client_name: account.client_name.clone(),
        client_secret: account.client_secret.clone(),
        server_secret: account.server_secret.clone(),
        ..DeviceProfile::default()
    };
    let mut dev = SimDevice::new(profile.clone());
    let http = http();

    let r = dev
        .run_session(&http, Trigger::ClientInitiated, Instant::now)
        .await;
    assert!(r.outcome.is_success(), "{}", r.outcome);
    // Package 1 and package 3 at least.
    assert!(r.messages >= 2, "{r:?}");
    assert_eq!(r.commands_executed, 2, "{r:?}");
    assert_eq!(
        dev.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("hello")
    );
    assert!(!dev.client_nonce.as_bytes().is_empty());
    assert!(!dev.server_nonce.as_bytes().is_empty());

    // Second session: the nonces the server handed out in the first authenticate it, and
    // are replaced by new ones.
    let first_nonce = dev.client_nonce.clone();
    let r2 = dev
        .run_session(&http, Trigger::ClientInitiated, Instant::now)
        .await;
    assert!(r2.outcome.is_success(), "{}", r2.outcome);
    assert_eq!(r2.messages, r.messages, "{r:?} then {r2:?}");
    assert_ne!(dev.client_nonce.as_bytes(), first_nonce.as_bytes());
    assert_eq!(dev.sessions, 2);

    let rec = st.record.lock().unwrap();
    assert_eq!(rec.ended.len(), 2);
    assert!(rec.ended.iter().all(|(_, e)| *e == EndReason::Completed));
    assert!(rec.results.iter().all(|(_, v)| v == &profile.model));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_devices_concurrently_two_sessions_each() {
    let (fleet, st, _) = fleet_and_server(50, AuthScheme::Md5, |c| {
        c.concurrency = 50;
        c.schedule = Schedule {
            sessions_per_device: Some(2),
            ..Schedule::default()
        };
    })
    .await;
    let s = fleet.run(&http()).await;
    assert_eq!(s.sessions, 100, "{s}");
    assert_eq!(s.failed, 0, "{s}");
    assert_eq!(s.succeeded, 100);
    assert_eq!(s.commands_executed, 200);
    assert!(s.latency_ms.p50 > 0.0 && s.latency_ms.max >= s.latency_ms.p99);
    let rec = st.record.lock().unwrap();
    assert_eq!(rec.ended.len(), 100);
    assert!(rec.ended.iter().all(|(_, e)| *e == EndReason::Completed));
    let devices: std::collections::HashSet<_> = rec.ended.iter().map(|(d, _)| d).collect();
    assert_eq!(devices.len(), 50);
    // The summary prints and serialises.
    let text = s.to_string();
    assert!(text.contains("latency (ms)"), "{text}");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["sessions"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_and_wbxml_with_small_messages() {
    let (fleet, st, _) = fleet_and_server(3, AuthScheme::Hmac, |c| {
        c.encoding = Encoding::Wbxml;
        c.max_msg_size = Some(2000);
    })
    .await;
    let s = fleet.run(&http()).await;
    assert_eq!(s.failed, 0, "{s}");
    assert_eq!(s.succeeded, 3);
    assert!(
        st.record
            .lock()
            .unwrap()
            .ended
            .iter()
            .all(|(_, e)| *e == EndReason::Completed)
    );
    let d = fleet.device(0).await.unwrap();
    assert_eq!(
        d.tree.value("./Vendor/omnidm/Greeting").as_deref(),
        Some("hello")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_a_counted_auth_failure() {
    let (fleet, st, _) = fleet_and_server(2, AuthScheme::Md5, |c| {
        c.secret_seed = "not-the-server's-seed".into();
    })
    .await;
    let s = fleet.run(&http()).await;
    assert_eq!(s.succeeded, 0, "{s}");
    assert_eq!(s.failed, 2);
    assert_eq!(s.failures.len(), 1, "{s}");
    assert!(
        s.failures[0].reason.starts_with("client_auth_failed"),
        "{s}"
    );
    assert!(
        st.record
            .lock()
            .unwrap()
            .ended
            .iter()
            .all(|(_, e)| *e == EndReason::AuthFailed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_0_through_the_push_listener_starts_a_server_initiated_session() {
    let (fleet, st, _) = fleet_and_server(2, AuthScheme::Md5, |c| {
        c.schedule = Schedule {
            sessions_per_device: Some(0),
            wait_for_stop: true,
            ..Schedule::default()
        };
    })
    .await;
    let http = http();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let push_addr = listener.local_addr().unwrap();
    let _push = fleet.serve_push(listener, &http);
    let run = tokio::spawn({
        let fleet = fleet.clone();
        let http = http.clone();
        async move { fleet.run(&http).await }
    });

    let account = fleet.accounts().nth(1).unwrap().clone();
    let creds = Credentials::new(&account.server_id, &account.server_secret);
    let n = Notification {
        session_id: 0x2a,
        server_id: ServerId::new("omnidm").unwrap(),
        ..Notification::default()
    };
    let pkg0 = notification::encode(&n, &creds, &Nonce::default());
    let push_url = format!("http://{push_addr}/push/{}", account.device_id);
    let r = http
        .post(&push_url, "application/vnd.syncml.notification", None, pkg0)
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{:?}", r.body);

    // A forged one (wrong secret) and an unknown device are refused.
    let forged = notification::encode(&n, &Credentials::new("omnidm", "guess"), &Nonce::default());
    let r = http
        .post(
            &push_url,
            "application/vnd.syncml.notification",
            None,
            forged,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = http
        .post(
            &format!("http://{push_addr}/push/IMEI:000"),
            "application/octet-stream",
            None,
            vec![0; 40],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Wait for the triggered session, then stop the fleet.
    let deadline = Instant::now() + Duration::from_secs(5);
    while st.record.lock().unwrap().ended.is_empty() {
        assert!(Instant::now() < deadline, "no session after package 0");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fleet.stop();
    let s = run.await.unwrap();
    assert_eq!(s.sessions, 1, "{s}");
    assert_eq!(s.succeeded, 1, "{s}");
    assert_eq!(s.server_initiated, 1);
    let p = s.push.unwrap();
    assert_eq!((p.received, p.accepted, p.rejected), (3, 1, 2));
    let rec = st.record.lock().unwrap();
    assert_eq!(
        rec.started,
        vec![(account.device_id.clone(), SessionKind::ServerInitiated)]
    );
    assert_eq!(rec.ended[0].1, EndReason::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trivial_mode_counts_requests_with_the_same_machinery() {
    let (fleet, st, url) = fleet_and_server(4, AuthScheme::Md5, |c| {
        c.concurrency = 4;
        c.schedule = Schedule {
            sessions_per_device: Some(25),
            ..Schedule::default()
        };
    })
    .await;
    let healthz = url.replace("/dm", "/healthz");
    let s = fleet
        .run_trivial(&http(), &omnidm_sim::PlainRequest::get(&healthz))
        .await;
    assert_eq!(s.mode, "trivial");
    assert_eq!(s.sessions, 100, "{s}");
    assert_eq!(s.failed, 0, "{s}");
    assert!(s.per_sec > 0.0);
    assert_eq!(st.record.lock().unwrap().healthz, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_connect_failure() {
    // Bind and drop: a port that refuses connections.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let fleet = Fleet::new(fleet_config(
        1,
        AuthScheme::Md5,
        &format!("http://{addr}/dm"),
    ))
    .unwrap();
    let s = fleet.run(&http()).await;
    assert_eq!(s.failed, 1);
    assert_eq!(s.failures[0].reason, "connect", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_with_interval_runs_repeated_sessions_then_stops() {
    let (fleet, _st, _) = fleet_and_server(5, AuthScheme::Basic, |c| {
        c.schedule = Schedule {
            duration: Some(Duration::from_millis(400)),
            interval: Some(Duration::from_millis(50)),
            jitter: 0.2,
            ..Schedule::default()
        };
    })
    .await;
    let t0 = Instant::now();
    let s = fleet.run(&http()).await;
    let took = t0.elapsed();
    assert_eq!(s.failed, 0, "{s}");
    // ~8 sessions per device at most; several each at least (staggered start, jitter).
    assert!(s.sessions >= 15 && s.sessions <= 50, "{s}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Nonces rotate and persist across the sessions: every session authenticated.
    let d = fleet.device(0).await.unwrap();
    assert!(d.sessions >= 3, "{}", d.sessions);
}
