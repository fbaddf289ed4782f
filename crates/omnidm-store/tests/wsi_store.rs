//! The WSI store suite ([`omnidm_core::WsiStore`] and the events and charges the `Store`
//! transactions derive), run like `tests/store.rs`: SQLite always, PostgreSQL when
//! `OMNIDM_TEST_PG_URL` is set (`OMNIDM_TEST_REQUIRE_PG=1` makes it mandatory).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::large_enum_variant
)]

use std::time::Instant;

use omnidm_core::{
    ApiKey, AppId, Application, AuditFilter, ChargeFilter, ChargeKind, ClientAuth, CommandOutcome,
    Delivery, DeliveryProgress, Device, DeviceId, DeviceInfo, DmAccount, EventFilter, EventId,
    EventKind, GrantId, Group, GroupFilter, GroupId, GroupKind, IdempotentResponse, JobId,
    JobTarget, KeyId, NewAudit, NewCharge, NewDevice, NewEvent, NewGrant, NewJob, NewSubscription,
    NodePath, OpCommand, OpProgress, OpState, Permission, Protocol, Role, SessionId,
    SessionOutcome, Store, StoreError, SubscriptionId, SubtreePattern, Timestamp, TypedValue,
    WsiStore, status,
};
use omnidm_store::AnyStore;

// --- harness ---------------------------------------------------------------------------------

#[macro_use]
mod harness;
use harness::Backend;

suite!(
    apps_and_keys,
    groups_and_members,
    grants_cascade,
    job_fan_out_counts_paging_and_cancel,
    job_submission_is_checked_and_atomic,
    session_outcomes_derive_events_and_charges,
    recovery_expiry_cancel_and_amend_derive_events,
    event_cursor_and_filters,
    charge_listing_and_totals,
    subscriptions_and_deliveries,
    audit_paging,
    idempotency_records_expire,
    event_ids_follow_commit_order,
);

// --- helpers -----------------------------------------------------------------------------------

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 24 * 60 * 60 * 1000;

fn t(ms: i64) -> Timestamp {
    Timestamp(T0 + ms)
}

fn did(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn aid(s: &str) -> AppId {
    AppId::new(s).unwrap()
}

fn gid(s: &str) -> GroupId {
    GroupId::new(s).unwrap()
}

fn path(s: &str) -> NodePath {
    NodePath::parse(s).unwrap()
}

fn get(p: &str) -> OpCommand {
    OpCommand::Get { path: path(p) }
}

fn dm_device(id: &str) -> Device {
    let mut n = NewDevice::new(did(id), Protocol::OmaDm);
    n.dm = Some(DmAccount::from_secrets(
        ClientAuth::Md5,
        id,
        "client-secret",
        "omnidm",
        "server-secret",
    ));
    n.into_device(t(0))
}

async fn add_devices(s: &AnyStore, prefix: &str, n: usize) -> Vec<DeviceId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let d = dm_device(&format!("{prefix}{i:05}"));
        s.create_device(&d).await.unwrap();
        ids.push(d.id);
    }
    ids
}

fn app(id: &str) -> Application {
    Application {
        id: aid(id),
        description: format!("app {id}"),
        role: Role::Application,
        rate_limit: Some(50),
        daily_quota: Some(10_000),
        disabled: false,
        created_at: t(0),
        updated_at: t(0),
    }
}

fn key(id: &str, app: &str, created: i64, expires: Option<i64>) -> ApiKey {
    ApiKey {
        id: KeyId(id.into()),
        app_id: aid(app),
        hash: format!("$argon2id$v=19${id}"),
        created_at: t(created),
        expires_at: expires.map(t),
        revoked_at: None,
    }
}

fn static_group(id: &str) -> Group {
    Group {
        id: gid(id),
        description: format!("group {id}"),
        kind: GroupKind::Static,
        created_at: t(0),
        updated_at: t(0),
    }
}

fn new_grant(app: &str, group: &str) -> NewGrant {
    NewGrant {
        app_id: aid(app),
        permissions: vec![Permission::Get, Permission::Replace],
        subtrees: vec![SubtreePattern::parse("./DevInfo/**").unwrap()],
        group: gid(group),
    }
}

fn job(app: &str, devices: &[DeviceId], commands: Vec<OpCommand>) -> NewJob {
    NewJob {
        app_id: aid(app),
        target: JobTarget::Devices(devices.to_vec()),
        commands,
        expires_at: None,
        notify: true,
    }
}

fn sess(s: &str) -> SessionId {
    SessionId(s.to_owned())
}

fn outcome(device: &DeviceId, session: &str, now: Timestamp) -> SessionOutcome {
    SessionOutcome {
        device_id: device.clone(),
        session: sess(session),
        now,
        contact: None,
        nonces: None,
        tree: Vec::new(),
        tree_deleted: Vec::new(),
        operations: Vec::new(),
        reports: vec![],
        events: Vec::new(),
        ended: false,
    }
}

async fn events(s: &AnyStore, after: EventId, filter: &EventFilter) -> Vec<omnidm_core::Event> {
    s.list_events(after, filter, 10_000).await.unwrap()
}

fn kinds(evs: &[omnidm_core::Event]) -> Vec<EventKind> {
    evs.iter().map(|e| e.event.kind).collect()
}

fn only(kind: EventKind) -> EventFilter {
    EventFilter {
        kinds: vec![kind],
        ..Default::default()
    }
}

// --- behaviours --------------------------------------------------------------------------------

async fn apps_and_keys(b: &Backend) {
    let s = b.open().await;
    assert!(!s.has_apps().await.unwrap());
    let mut a = app("acme");
    s.create_app(&a).await.unwrap();
    assert!(s.has_apps().await.unwrap());
    assert!(matches!(
        s.create_app(&a).await,
        Err(StoreError::Conflict(_))
    ));
    s.create_app(&app("beta")).await.unwrap();
    assert_eq!(s.get_app(&aid("acme")).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_app(&aid("nope")).await.unwrap(), None);

    a.description = "renamed".into();
    a.disabled = true;
    a.rate_limit = None;
    a.updated_at = t(5);
    s.update_app(&a).await.unwrap();
    assert_eq!(s.get_app(&a.id).await.unwrap(), Some(a.clone()));
    assert!(matches!(
        s.update_app(&app("ghost")).await,
        Err(StoreError::NotFound(_))
    ));
    let ids: Vec<_> = s
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec![aid("acme"), aid("beta")]);

    let k1 = key("k1", "acme", 1, None);
    let k2 = key("k2", "acme", 2, Some(100));
    s.create_key(&k1).await.unwrap();
    s.create_key(&k2).await.unwrap();
    s.create_key(&key("k3", "beta", 3, None)).await.unwrap();
    assert!(matches!(
        s.create_key(&k1).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_key(&key("k4", "ghost", 1, None)).await,
        Err(StoreError::NotFound(_))
    ));
    let listed: Vec<_> = s.list_keys(&aid("acme")).await.unwrap();
    assert_eq!(listed, vec![k2.clone(), k1.clone()], "newest first");
    let got = s.get_key(&KeyId("k2".into())).await.unwrap().unwrap();
    assert!(got.is_active(t(99)));
    assert!(!got.is_active(t(100)), "expired");

    let revoked = s.revoke_key(&KeyId("k1".into()), t(10)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(t(10)));
    let again = s.revoke_key(&KeyId("k1".into()), t(20)).await.unwrap();
    assert_eq!(again.revoked_at, Some(t(10)), "revocation is idempotent");
    assert!(!again.is_active(t(11)));
    assert!(matches!(
        s.revoke_key(&KeyId("zz".into()), t(1)).await,
        Err(StoreError::NotFound(_))
    ));

    assert!(s.delete_app(&aid("acme"), t(30)).await.unwrap());
    assert!(!s.delete_app(&aid("acme"), t(30)).await.unwrap());
    // Issue 8 item 12: a deleted application's id is never reused.
    assert!(matches!(
        s.create_app(&app("acme")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.get_key(&KeyId("k2".into())).await.unwrap(),
        None,
        "keys cascade"
    );
    assert!(s.get_key(&KeyId("k3".into())).await.unwrap().is_some());
    s.close().await;
}

async fn groups_and_members(b: &Backend) {
    let s = b.open().await;
    let devs = add_devices(&s, "IMEI:1", 5).await;
    s.create_group(&static_group("lab")).await.unwrap();
    assert!(matches!(
        s.create_group(&static_group("lab")).await,
        Err(StoreError::Conflict(_))
    ));
    let filter = Group {
        kind: GroupKind::Filter {
            filter: GroupFilter {
                model: Some("X1".into()),
                tags: vec!["beta".into()],
                ..Default::default()
            },
        },
        ..static_group("x1")
    };
    s.create_group(&filter).await.unwrap();
    assert_eq!(s.get_group(&gid("x1")).await.unwrap(), Some(filter.clone()));
    let ids: Vec<_> = s
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, vec![gid("lab"), gid("x1")]);

    // Duplicates (in the call and already present) are ignored.
    s.add_group_members(
        &gid("lab"),
        &[devs[3].clone(), devs[0].clone(), devs[3].clone()],
    )
    .await
    .unwrap();
    s.add_group_members(&gid("lab"), &devs[..3]).await.unwrap();
    assert!(matches!(
        s.add_group_members(&gid("lab"), &[devs[4].clone(), did("IMEI:nope")])
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        !s.is_group_member(&gid("lab"), &devs[4]).await.unwrap(),
        "atomic"
    );
    assert!(matches!(
        s.add_group_members(&gid("ghost"), &devs[..1]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_group_members(&gid("x1"), &devs[..1]).await,
        Err(StoreError::Invalid(_))
    ));

    let page1 = s.list_group_members(&gid("lab"), None, 2).await.unwrap();
    assert_eq!(page1, devs[..2].to_vec());
    let page2 = s
        .list_group_members(&gid("lab"), page1.last(), 2)
        .await
        .unwrap();
    assert_eq!(page2, devs[2..4].to_vec());
    assert!(s.is_group_member(&gid("lab"), &devs[1]).await.unwrap());
    assert_eq!(
        s.static_groups_of(&devs[1]).await.unwrap(),
        vec![gid("lab")]
    );
    assert_eq!(s.static_groups_of(&devs[4]).await.unwrap(), vec![]);

    let removed = s
        .remove_group_members(&gid("lab"), &[devs[1].clone(), devs[4].clone()])
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(s.delete_device(&devs[2]).await.unwrap());
    let left = s.list_group_members(&gid("lab"), None, 0).await.unwrap();
    assert_eq!(
        left,
        vec![devs[0].clone(), devs[3].clone()],
        "device deletion cascades"
    );

    // Becoming a filter group drops the members.
    let mut g = static_group("lab");
    g.kind = filter.kind.clone();
    g.description = "now a filter".into();
    g.updated_at = t(9);
    s.update_group(&g).await.unwrap();
    assert_eq!(s.get_group(&gid("lab")).await.unwrap(), Some(g));
    assert!(
        s.list_group_members(&gid("lab"), None, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.update_group(&static_group("ghost")).await,
        Err(StoreError::NotFound(_))
    ));

    assert!(s.delete_group(&gid("x1")).await.unwrap());
    assert!(!s.delete_group(&gid("x1")).await.unwrap());
    s.close().await;
}

async fn grants_cascade(b: &Backend) {
    let s = b.open().await;
    s.create_app(&app("acme")).await.unwrap();
    s.create_app(&app("beta")).await.unwrap();
    s.create_group(&static_group("lab")).await.unwrap();
    s.create_group(&static_group("all")).await.unwrap();

    let g1 = s
        .create_grant(&new_grant("acme", "lab"), t(1))
        .await
        .unwrap();
    let g2 = s
        .create_grant(&new_grant("acme", "all"), t(2))
        .await
        .unwrap();
    let g3 = s
        .create_grant(&new_grant("beta", "lab"), t(3))
        .await
        .unwrap();
    assert_eq!(s.get_grant(g1.id).await.unwrap(), Some(g1.clone()));
    assert!(matches!(
        s.create_grant(&new_grant("acme", "ghost"), t(4)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_grant(&new_grant("ghost", "lab"), t(4)).await,
        Err(StoreError::NotFound(_))
    ));
    let mut empty = new_grant("acme", "lab");
    empty.permissions.clear();
    assert!(matches!(
        s.create_grant(&empty, t(4)).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.list_grants(Some(&aid("acme"))).await.unwrap(),
        vec![g1.clone(), g2.clone()]
    );
    assert_eq!(s.list_grants(None).await.unwrap().len(), 3);

    assert!(s.delete_group(&gid("lab")).await.unwrap());
    assert_eq!(
        s.get_grant(g1.id).await.unwrap(),
        None,
        "group deletion cascades"
    );
    assert_eq!(s.get_grant(g3.id).await.unwrap(), None);
    assert!(s.delete_app(&aid("acme"), t(30)).await.unwrap());
    assert_eq!(
        s.get_grant(g2.id).await.unwrap(),
        None,
        "app deletion cascades"
    );
    assert!(s.list_grants(None).await.unwrap().is_empty());
    let g4 = s
        .create_grant(&new_grant("beta", "all"), t(5))
        .await
        .unwrap();
    assert!(s.delete_grant(g4.id).await.unwrap());
    assert!(!s.delete_grant(g4.id).await.unwrap());
    assert!(!s.delete_grant(GrantId(9999)).await.unwrap());
    s.close().await;
}

async fn job_fan_out_counts_paging_and_cancel(b: &Backend) {
    let s = b.open().await;
    s.create_app(&app("acme")).await.unwrap();
    // More devices than one INSERT chunk.
    let devs = add_devices(&s, "IMEI:2", 1203).await;
    let before = s.last_event_id().await.unwrap();
    let mut spec = job("acme", &devs, vec![get("./DevInfo/Mod")]);
    spec.expires_at = Some(t(DAY));
    let j = s.submit_job(&spec, &devs, t(10)).await.unwrap();
    assert_eq!(j.device_count, 1203);
    assert_eq!(j.app_id, aid("acme"));
    assert_eq!(s.get_job(j.id).await.unwrap(), Some(j.clone()));
    let counts = s.job_counts(j.id).await.unwrap();
    assert_eq!(counts.queued, 1203);
    assert_eq!(counts.total(), 1203);
    assert!(matches!(
        s.job_counts(JobId(9999)).await,
        Err(StoreError::NotFound(_))
    ));

    // The operations carry the job's submitter, id, expiry and notify flag.
    let first = s.job_operations(j.id, None, None, 500).await.unwrap();
    assert_eq!(first.len(), 500);
    assert_eq!(first[0].device_id, devs[0]);
    let op0 = &first[0];
    assert_eq!(op0.job_id, Some(j.id));
    assert_eq!(op0.submitted_by.as_deref(), Some("acme"));
    assert_eq!(op0.expires_at, Some(t(DAY)));
    assert!(op0.notify);
    assert_eq!(op0.state, OpState::Queued);
    assert_eq!(op0.sent, vec![false]);
    assert_eq!(s.get_operation(op0.id).await.unwrap().as_ref(), Some(op0));
    let mut all = first.clone();
    let mut after = first.last().map(|o| o.device_id.clone());
    loop {
        let page = s
            .job_operations(j.id, None, after.as_ref(), 500)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|o| o.device_id.clone());
        all.extend(page);
    }
    let got: Vec<_> = all.iter().map(|o| o.device_id.clone()).collect();
    assert_eq!(got, devs, "every device once, by id");

    // One submission event and one charge for the whole fan-out.
    let evs = events(&s, before, &EventFilter::default()).await;
    assert_eq!(kinds(&evs), vec![EventKind::OperationSubmitted]);
    assert_eq!(evs[0].event.job_id, Some(j.id));
    assert_eq!(evs[0].event.app_id, Some(aid("acme")));
    assert_eq!(evs[0].event.data["device_count"], 1203);
    let totals = s.charge_totals(&ChargeFilter::default()).await.unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].kind, ChargeKind::OperationSubmitted);
    assert_eq!(totals[0].quantity, 1203);
    assert_eq!(totals[0].records, 1);

    // Two devices start their session; cancelling the job leaves them alone.
    let claimed = s.claim(&devs[0], &sess("s0"), t(20)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    s.claim(&devs[1], &sess("s1"), t(20)).await.unwrap();
    let mark = s.last_event_id().await.unwrap();
    assert_eq!(s.cancel_job(j.id, t(30)).await.unwrap(), 1201);
    assert_eq!(s.cancel_job(j.id, t(31)).await.unwrap(), 0);
    assert!(matches!(
        s.cancel_job(JobId(9999), t(31)).await,
        Err(StoreError::NotFound(_))
    ));
    let counts = s.job_counts(j.id).await.unwrap();
    assert_eq!((counts.in_session, counts.cancelled), (2, 1201));
    assert!(!counts.is_done());
    let changed = events(&s, mark, &only(EventKind::OperationStateChanged)).await;
    assert_eq!(changed.len(), 1201);
    assert_eq!(changed[0].event.data["from"], "queued");
    assert_eq!(changed[0].event.data["to"], "cancelled");
    assert_eq!(changed[0].event.job_id, Some(j.id));
    assert_eq!(changed[0].event.app_id, Some(aid("acme")));
    assert_eq!(changed[0].event.device_id, Some(devs[2].clone()));
    let in_session = s
        .job_operations(j.id, Some(OpState::InSession), None, 0)
        .await
        .unwrap();
    assert_eq!(in_session.len(), 2);

    // Jobs list newest first, per application.
    let j2 = s
        .submit_job(
            &job("acme", &devs[..1], vec![get("./a")]),
            &devs[..1],
            t(40),
        )
        .await
        .unwrap();
    let listed: Vec<_> = s
        .list_jobs(Some(&aid("acme")), None, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, vec![j2.id, j.id]);
    let older: Vec<_> = s
        .list_jobs(None, Some(j2.id), 0)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(older, vec![j.id]);
    assert!(
        s.list_jobs(Some(&aid("beta")), None, 0)
            .await
            .unwrap()
            .is_empty()
    );
    s.close().await;
}

async fn job_submission_is_checked_and_atomic(b: &Backend) {
    let s = b.open().await;
    s.create_app(&app("acme")).await.unwrap();
    let devs = add_devices(&s, "IMEI:3", 3).await;
    let before = s.last_event_id().await.unwrap();
    let mut with_ghost = devs.clone();
    with_ghost.push(did("IMEI:ghost"));
    match s
        .submit_job(
            &job("acme", &with_ghost, vec![get("./a")]),
            &with_ghost,
            t(1),
        )
        .await
    {
        Err(StoreError::NotFound(m)) => assert!(m.contains("IMEI:ghost"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        s.submit_job(&job("acme", &[], vec![get("./a")]), &[], t(1))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.submit_job(&job("acme", &devs, vec![]), &devs, t(1)).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(s.list_jobs(None, None, 0).await.unwrap().is_empty());
    assert_eq!(s.queue_depth(None).await.unwrap(), 0);
    assert_eq!(s.last_event_id().await.unwrap(), before);

    // Duplicate targets fan out once.
    let dup = vec![devs[1].clone(), devs[0].clone(), devs[1].clone()];
    let j = s
        .submit_job(&job("acme", &dup, vec![get("./a")]), &dup, t(2))
        .await
        .unwrap();
    assert_eq!(j.device_count, 2);
    assert_eq!(s.queue_depth(None).await.unwrap(), 2);
    s.close().await;
}

async fn session_outcomes_derive_events_and_charges(b: &Backend) {
    let s = b.open().await;
    s.create_app(&app("acme")).await.unwrap();
    let devs = add_devices(&s, "IMEI:4", 1).await;
    let dev = &devs[0];
    let cmds = vec![
        OpCommand::Replace {
            path: path("./Vendor/Greeting"),
            value: TypedValue::string("hello"),
        },
        get("./DevInfo/Mod"),
        OpCommand::Exec {
            path: path("./FwUpdate/Update"),
            data: Some("xyz".into()),
            correlator: None,
        },
        OpCommand::Exec {
            path: path("./Vendor/Reboot"),
            data: Some("1234567".into()),
            correlator: None,
        },
    ];
    let j = s
        .submit_job(&job("acme", &devs, cmds), &devs, t(1))
        .await
        .unwrap();
    let op = s.claim(dev, &sess("s1"), t(2)).await.unwrap().remove(0);
    let mark = s.last_event_id().await.unwrap();

    let mut o = outcome(dev, "s1", t(3));
    o.contact = Some(DeviceInfo {
        model: Some("X1".into()),
        ..Default::default()
    });
    let started = NewEvent::device(EventKind::SessionStarted, t(2), dev, serde_json::json!({}));
    let ended = NewEvent::device(EventKind::SessionEnded, t(3), dev, serde_json::json!({}));
    o.events = vec![ended.clone(), started.clone()];
    o.operations = vec![OpProgress {
        id: op.id,
        sent: vec![0, 1, 2],
        unsent: vec![],
        outcomes: vec![
            CommandOutcome::status(vec![0], 200, t(3)),
            CommandOutcome::status(vec![1], 200, t(3)),
            CommandOutcome::status(vec![2], 500, t(3)),
        ],
        finished: true,
    }];
    o.ended = true;
    s.apply_session_outcomes(&[o]).await.unwrap();

    let evs = events(&s, mark, &EventFilter::default()).await;
    assert_eq!(
        kinds(&evs),
        vec![
            EventKind::SessionStarted,
            EventKind::DeviceSeen,
            EventKind::CommandResult,
            EventKind::CommandResult,
            EventKind::CommandResult,
            EventKind::OperationStateChanged,
            EventKind::SessionEnded,
        ]
    );
    assert!(evs.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(evs[0].event, started);
    assert_eq!(evs[6].event, ended);
    assert_eq!(evs[1].event.device_id.as_ref(), Some(dev));
    assert_eq!(evs[1].event.data["model"], "X1");
    let results = &evs[2..5];
    assert_eq!(results[0].event.path, Some(path("./Vendor/Greeting")));
    assert_eq!(results[1].event.path, Some(path("./DevInfo/Mod")));
    assert_eq!(results[2].event.path, Some(path("./FwUpdate/Update")));
    assert_eq!(results[2].event.data["status"], 500);
    assert_eq!(results[0].event.operation_id, Some(op.id));
    assert_eq!(results[0].event.job_id, Some(j.id));
    assert_eq!(results[0].event.app_id, Some(aid("acme")));
    assert_eq!(evs[5].event.data["from"], "in_session");
    assert_eq!(evs[5].event.data["to"], "failed");

    // Charges: 3 executed (the fourth, never sent, got 901), 5 accepted bytes ("hello";
    // the failed Exec delivered nothing).
    let totals = s
        .charge_totals(&ChargeFilter {
            app_id: Some(aid("acme")),
            ..Default::default()
        })
        .await
        .unwrap();
    let q = |k: ChargeKind| {
        totals
            .iter()
            .find(|t| t.kind == k)
            .map_or(0, |t| t.quantity)
    };
    assert_eq!(q(ChargeKind::CommandExecuted), 3);
    assert_eq!(q(ChargeKind::BytesDelivered), 5);
    assert_eq!(q(ChargeKind::OperationSubmitted), 1);
    let finished = s.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!(finished.outcome_of(3).unwrap().status, status::NOT_EXECUTED);

    // A contact-only session writes exactly one event.
    let mark = s.last_event_id().await.unwrap();
    let mut o = outcome(dev, "s2", t(10));
    o.contact = Some(DeviceInfo::default());
    o.ended = true;
    s.apply_session_outcomes(&[o]).await.unwrap();
    let evs = events(&s, mark, &EventFilter::default()).await;
    assert_eq!(kinds(&evs), vec![EventKind::DeviceSeen]);

    // CLI operations (no submitter) produce events but no charges.
    let plain = s
        .submit(
            vec![omnidm_core::NewOperation::new(
                dev.clone(),
                vec![get("./a")],
            )],
            t(11),
        )
        .await
        .unwrap()
        .remove(0);
    s.claim(dev, &sess("s3"), t(12)).await.unwrap();
    let mut o = outcome(dev, "s3", t(13));
    o.operations = vec![OpProgress {
        id: plain.id,
        sent: vec![0],
        unsent: vec![],
        outcomes: vec![CommandOutcome::status(vec![0], 200, t(13))],
        finished: true,
    }];
    let mark = s.last_event_id().await.unwrap();
    s.apply_session_outcomes(&[o]).await.unwrap();
    let evs = events(&s, mark, &EventFilter::default()).await;
    assert_eq!(
        kinds(&evs),
        vec![EventKind::CommandResult, EventKind::OperationStateChanged]
    );
    assert_eq!(evs[0].event.app_id, None);
    let records = s
        .list_charges(&ChargeFilter::default(), 0, 0)
        .await
        .unwrap();
    assert_eq!(records.len(), 3, "submitted, executed, bytes");
    s.close().await;
}

async fn recovery_expiry_cancel_and_amend_derive_events(b: &Backend) {
    let s = b.open().await;
    s.create_app(&app("acme")).await.unwrap();
    let devs = add_devices(&s, "IMEI:5", 3).await;
    let reg = events(&s, EventId(0), &only(EventKind::DeviceRegistered)).await;
    assert_eq!(reg.len(), 3);
    assert_eq!(reg[0].event.device_id, Some(devs[0].clone()));

    let mut spec = job("acme", &devs, vec![get("./a")]);
    spec.expires_at = Some(t(100));
    let j = s.submit_job(&spec, &devs, t(1)).await.unwrap();

    // A broken session: its operation goes back to the queue.
    let op0 = s
        .claim(&devs[0], &sess("node-a/1"), t(2))
        .await
        .unwrap()
        .remove(0);
    let mark = s.last_event_id().await.unwrap();
    let report = s.release_session(&sess("node-a/1"), t(3)).await.unwrap();
    assert_eq!(report.requeued, vec![op0.id]);
    let evs = events(&s, mark, &EventFilter::default()).await;
    assert_eq!(kinds(&evs), vec![EventKind::OperationStateChanged]);
    assert_eq!(evs[0].event.data["to"], "queued");
    assert_eq!(evs[0].event.operation_id, Some(op0.id));
    assert_eq!(evs[0].event.job_id, Some(j.id));

    // Node recovery and a session outcome that ends holding an operation.
    s.claim(&devs[0], &sess("node-a/2"), t(4)).await.unwrap();
    let op1 = s
        .claim(&devs[1], &sess("node-b/1"), t(4))
        .await
        .unwrap()
        .remove(0);
    let mark = s.last_event_id().await.unwrap();
    s.recover_node("node-a/", t(5)).await.unwrap();
    let mut o = outcome(&devs[1], "node-b/1", t(6));
    o.ended = true;
    let report = s.apply_session_outcomes(&[o]).await.unwrap();
    assert_eq!(report.requeued, vec![op1.id]);
    let evs = events(&s, mark, &only(EventKind::OperationStateChanged)).await;
    let ops: Vec<_> = evs.iter().map(|e| e.event.operation_id).collect();
    assert_eq!(ops, vec![Some(op0.id), Some(op1.id)]);

    // Cancel one, expire the rest.
    let ops = s.job_operations(j.id, None, None, 0).await.unwrap();
    let mark = s.last_event_id().await.unwrap();
    s.cancel(ops[2].id, t(7)).await.unwrap();
    let expired = s.expire_due(t(100)).await.unwrap();
    assert_eq!(expired, vec![ops[0].id, ops[1].id]);
    let evs = events(&s, mark, &EventFilter::default()).await;
    let tos: Vec<_> = evs.iter().map(|e| e.event.data["to"].clone()).collect();
    assert_eq!(tos, vec!["cancelled", "expired", "expired"]);

    // Amended outcomes (asynchronous reports) are command results, not charged again.
    let charges_before = s
        .list_charges(&ChargeFilter::default(), 0, 0)
        .await
        .unwrap();
    let mark = s.last_event_id().await.unwrap();
    s.amend_outcomes(
        ops[0].id,
        &ops[0].device_id,
        vec![CommandOutcome::status(vec![0], 200, t(120))],
        t(120),
    )
    .await
    .unwrap();
    let evs = events(&s, mark, &EventFilter::default()).await;
    assert_eq!(kinds(&evs), vec![EventKind::CommandResult]);
    assert_eq!(evs[0].event.path, Some(path("./a")));
    assert_eq!(
        s.list_charges(&ChargeFilter::default(), 0, 0)
            .await
            .unwrap(),
        charges_before
    );

    // Deleting a device is logged; deleting an absent one is not.
    let mark = s.last_event_id().await.unwrap();
    assert!(s.delete_device(&devs[2]).await.unwrap());
    assert!(!s.delete_device(&devs[2]).await.unwrap());
    let evs = events(&s, mark, &EventFilter::default()).await;
    assert_eq!(kinds(&evs), vec![EventKind::DeviceDeleted]);
    assert_eq!(evs[0].event.device_id, Some(devs[2].clone()));
    s.close().await;
}

async fn event_cursor_and_filters(b: &Backend) {
    let s = b.open().await;
    assert_eq!(s.last_event_id().await.unwrap(), EventId(0));
    assert!(
        events(&s, EventId(0), &EventFilter::default())
            .await
            .is_empty()
    );
    s.create_app(&app("acme")).await.unwrap();
    let devs = add_devices(&s, "IMEI:6", 2).await;
    let j = s
        .submit_job(&job("acme", &devs[..1], vec![get("./a")]), &devs[..1], t(1))
        .await
        .unwrap();
    let alert = NewEvent {
        kind: EventKind::GenericAlert,
        at: t(2),
        device_id: Some(devs[1].clone()),
        app_id: None,
        job_id: None,
        operation_id: None,
        path: Some(path("./FwUpdate/Update")),
        data: serde_json::json!({"type": "org.openmobilealliance.dm.firmwareupdate", "data": [1, 2]}),
    };
    let auth = NewEvent::device(
        EventKind::AuthFailure,
        t(3),
        &devs[0],
        serde_json::json!({"reason": "bad digest"}),
    );
    s.append_events(&[alert.clone(), auth.clone()], &[])
        .await
        .unwrap();
    s.append_events(&[], &[]).await.unwrap();

    let all = events(&s, EventId(0), &EventFilter::default()).await;
    assert_eq!(
        kinds(&all),
        vec![
            EventKind::DeviceRegistered,
            EventKind::DeviceRegistered,
            EventKind::OperationSubmitted,
            EventKind::GenericAlert,
            EventKind::AuthFailure,
        ]
    );
    assert_eq!(s.last_event_id().await.unwrap(), all[4].id);
    assert_eq!(all[3].event, alert, "round trip");

    // Cursor paging.
    let p1 = s
        .list_events(EventId(0), &EventFilter::default(), 2)
        .await
        .unwrap();
    let p2 = s
        .list_events(p1[1].id, &EventFilter::default(), 2)
        .await
        .unwrap();
    let p3 = s
        .list_events(p2[1].id, &EventFilter::default(), 2)
        .await
        .unwrap();
    assert_eq!(p1.len() + p2.len() + p3.len(), 5);
    assert_eq!(p3[0].id, all[4].id);

    // Filters.
    let f = EventFilter {
        kinds: vec![EventKind::AuthFailure, EventKind::DeviceRegistered],
        device_id: Some(devs[0].clone()),
        job_id: None,
    };
    assert_eq!(
        kinds(&events(&s, EventId(0), &f).await),
        vec![EventKind::DeviceRegistered, EventKind::AuthFailure]
    );
    let by_job = EventFilter {
        job_id: Some(j.id),
        ..Default::default()
    };
    assert_eq!(
        kinds(&events(&s, EventId(0), &by_job).await),
        vec![EventKind::OperationSubmitted]
    );
    let by_dev = EventFilter {
        device_id: Some(devs[1].clone()),
        ..Default::default()
    };
    assert_eq!(events(&s, EventId(0), &by_dev).await.len(), 2);
    s.close().await;
}

async fn charge_listing_and_totals(b: &Backend) {
    let s = b.open().await;
    let c = |at: i64, app: &str, kind: ChargeKind, q: u64| NewCharge {
        at: t(at),
        app_id: aid(app),
        kind,
        quantity: q,
        device_id: None,
        job_id: None,
        operation_id: None,
    };
    let charges = vec![
        c(1, "acme", ChargeKind::CommandExecuted, 2),
        c(2, "acme", ChargeKind::CommandExecuted, 3),
        c(3, "beta", ChargeKind::NotificationSent, 1),
        c(4, "acme", ChargeKind::BytesDelivered, 1000),
        c(5, "acme", ChargeKind::CommandExecuted, 10),
    ];
    // Charges need no application row (logs outlive applications).
    s.append_events(&[], &charges).await.unwrap();
    let all = s
        .list_charges(&ChargeFilter::default(), 0, 0)
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].charge, charges[0]);
    let page = s
        .list_charges(&ChargeFilter::default(), all[1].id, 2)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![all[2].id, all[3].id]
    );

    let window = ChargeFilter {
        from: Some(t(2)),
        to: Some(t(5)),
        app_id: None,
    };
    let totals = s.charge_totals(&window).await.unwrap();
    let rows: Vec<_> = totals
        .iter()
        .map(|t| (t.app_id.as_str().to_owned(), t.kind, t.quantity, t.records))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("acme".into(), ChargeKind::BytesDelivered, 1000, 1),
            ("acme".into(), ChargeKind::CommandExecuted, 3, 1),
            ("beta".into(), ChargeKind::NotificationSent, 1, 1),
        ]
    );
    let acme = s
        .charge_totals(&ChargeFilter {
            app_id: Some(aid("acme")),
            ..Default::default()
        })
        .await
        .unwrap();
    let executed = acme
        .iter()
        .find(|t| t.kind == ChargeKind::CommandExecuted)
        .unwrap();
    assert_eq!((executed.quantity, executed.records), (15, 3));
    assert_eq!(
        s.list_charges(&window, 0, 0).await.unwrap().len(),
        3,
        "from inclusive, to exclusive"
    );
    s.close().await;
}

async fn subscriptions_and_deliveries(b: &Backend) {
    let s = b.open().await;
    s.create_app(&app("acme")).await.unwrap();
    let spec = NewSubscription {
        app_id: aid("acme"),
        url: "https://hooks.example/omnidm".into(),
        secret: "whsec".into(),
        event_types: vec![EventKind::CommandResult, EventKind::DeviceSeen],
        devices: vec![did("IMEI:1")],
        group: Some(gid("lab")),
        cursor: EventId(7),
    };
    let sub = s.create_subscription(&spec, t(1)).await.unwrap();
    assert!(sub.enabled);
    assert_eq!(sub.failures, 0);
    assert_eq!(s.get_subscription(sub.id).await.unwrap(), Some(sub.clone()));
    assert_eq!(s.get_subscription(SubscriptionId(999)).await.unwrap(), None);
    let mut ghost = spec.clone();
    ghost.app_id = aid("ghost");
    assert!(matches!(
        s.create_subscription(&ghost, t(1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.list_subscriptions(Some(&aid("acme"))).await.unwrap(),
        vec![sub.clone()]
    );
    assert!(
        s.list_subscriptions(Some(&aid("beta")))
            .await
            .unwrap()
            .is_empty()
    );

    let attempt = |n: u32, status: Option<u16>| Delivery {
        subscription_id: sub.id,
        event_id: EventId(8),
        attempt: n,
        at: t(10 + i64::from(n)),
        status,
        error: status.is_none().then(|| "connection refused".to_owned()),
        duration_ms: 12,
    };
    let failed = DeliveryProgress {
        cursor: EventId(7),
        failures: 1,
        next_attempt_at: t(1011),
        disable: None,
    };
    s.record_delivery(sub.id, Some(&attempt(1, None)), &failed)
        .await
        .unwrap();
    let ok = DeliveryProgress {
        cursor: EventId(8),
        failures: 0,
        next_attempt_at: t(12),
        disable: None,
    };
    s.record_delivery(sub.id, Some(&attempt(2, Some(204))), &ok)
        .await
        .unwrap();
    // Filtered-out events advance the cursor without an attempt.
    let skip = DeliveryProgress {
        cursor: EventId(20),
        ..ok.clone()
    };
    s.record_delivery(sub.id, None, &skip).await.unwrap();
    let got = s.get_subscription(sub.id).await.unwrap().unwrap();
    assert_eq!((got.spec.cursor, got.failures), (EventId(20), 0));
    let log = s.list_deliveries(sub.id, 0).await.unwrap();
    assert_eq!(
        log,
        vec![attempt(2, Some(204)), attempt(1, None)],
        "newest first"
    );
    assert_eq!(s.list_deliveries(sub.id, 1).await.unwrap().len(), 1);

    let give_up = DeliveryProgress {
        cursor: EventId(20),
        failures: 10,
        next_attempt_at: t(99),
        disable: Some("10 consecutive failures".into()),
    };
    s.record_delivery(sub.id, Some(&attempt(3, Some(500))), &give_up)
        .await
        .unwrap();
    let got = s.get_subscription(sub.id).await.unwrap().unwrap();
    assert!(!got.enabled);
    assert_eq!(
        got.disabled_reason.as_deref(),
        Some("10 consecutive failures")
    );
    assert!(matches!(
        s.record_delivery(SubscriptionId(999), None, &ok).await,
        Err(StoreError::NotFound(_))
    ));

    let on = s
        .set_subscription_enabled(sub.id, true, None)
        .await
        .unwrap();
    assert!(on.enabled);
    assert_eq!((on.failures, on.disabled_reason.clone()), (0, None));
    assert!(on.next_attempt_at <= t(0));
    let off = s
        .set_subscription_enabled(sub.id, false, Some("paused"))
        .await
        .unwrap();
    assert!(!off.enabled);
    assert_eq!(off.disabled_reason.as_deref(), Some("paused"));
    assert!(matches!(
        s.set_subscription_enabled(SubscriptionId(999), true, None)
            .await,
        Err(StoreError::NotFound(_))
    ));

    assert!(s.delete_subscription(sub.id).await.unwrap());
    assert!(!s.delete_subscription(sub.id).await.unwrap());
    assert!(s.list_deliveries(sub.id, 0).await.unwrap().is_empty());
    let again = s.create_subscription(&spec, t(2)).await.unwrap();
    assert!(s.delete_app(&aid("acme"), t(30)).await.unwrap());
    assert_eq!(s.get_subscription(again.id).await.unwrap(), None, "cascade");
    s.close().await;
}

async fn audit_paging(b: &Backend) {
    let s = b.open().await;
    let entry = |at: i64, app: Option<&str>, outcome: &str| NewAudit {
        at: t(at),
        app_id: app.map(aid),
        key_id: app.map(|a| format!("{a}-key")),
        method: "POST".into(),
        path: "/v1/operations".into(),
        target: Some("device IMEI:1".into()),
        status: if outcome == "allowed" { 201 } else { 403 },
        outcome: outcome.into(),
        rule: (outcome == "denied").then(|| "no grant".to_owned()),
    };
    let entries: Vec<_> = (0..7)
        .map(|i| {
            entry(
                i,
                Some(if i % 2 == 0 { "acme" } else { "beta" }),
                if i % 3 == 0 { "denied" } else { "allowed" },
            )
        })
        .chain([entry(7, None, "denied")])
        .collect();
    s.append_audit(&entries).await.unwrap();
    s.append_audit(&[]).await.unwrap();

    let all = s
        .list_audit(&AuditFilter::default(), None, 0)
        .await
        .unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(all[0].entry, entries[7], "newest first");
    assert_eq!(all[7].entry, entries[0]);
    let p1 = s
        .list_audit(&AuditFilter::default(), None, 3)
        .await
        .unwrap();
    let p2 = s
        .list_audit(&AuditFilter::default(), Some(p1[2].id), 3)
        .await
        .unwrap();
    assert_eq!(p2[0].id, all[3].id);

    let acme_denied = AuditFilter {
        app_id: Some(aid("acme")),
        outcome: Some("denied".into()),
        ..Default::default()
    };
    let got: Vec<_> = s
        .list_audit(&acme_denied, None, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.entry.at)
        .collect();
    assert_eq!(got, vec![t(6), t(0)]);
    let window = AuditFilter {
        from: Some(t(2)),
        to: Some(t(4)),
        ..Default::default()
    };
    assert_eq!(s.list_audit(&window, None, 0).await.unwrap().len(), 2);

    // Issue 8 item 14: the day's admitted requests of an application (429s do not count).
    let mut throttled = entry(8, Some("acme"), "denied");
    throttled.status = 429;
    s.append_audit(&[throttled]).await.unwrap();
    assert_eq!(
        s.count_admitted_requests(&aid("acme"), t(2)).await.unwrap(),
        3
    );
    assert_eq!(
        s.count_admitted_requests(&aid("acme"), t(0)).await.unwrap(),
        4
    );
    assert_eq!(
        s.count_admitted_requests(&aid("beta"), t(0)).await.unwrap(),
        3
    );
    assert_eq!(
        s.count_admitted_requests(&aid("acme"), t(100))
            .await
            .unwrap(),
        0
    );
    s.close().await;
}

async fn idempotency_records_expire(b: &Backend) {
    let s = b.open().await;
    s.create_app(&app("acme")).await.unwrap();
    let resp = |hash: &str, at: i64| IdempotentResponse {
        request_hash: hash.into(),
        status: 202,
        location: Some("/v1/operations/1".into()),
        body: "{\"id\":1}".into(),
        created_at: t(at),
    };
    let a = aid("acme");
    assert_eq!(s.get_idempotent(&a, "k1", t(0)).await.unwrap(), None);
    s.put_idempotent(&a, "k1", &resp("h1", 0)).await.unwrap();
    s.put_idempotent(&a, "k1", &resp("h2", 5)).await.unwrap();
    assert_eq!(
        s.get_idempotent(&a, "k1", t(DAY - 1)).await.unwrap(),
        Some(resp("h1", 0)),
        "first writer wins"
    );
    assert_eq!(
        s.get_idempotent(&a, "k1", t(DAY)).await.unwrap(),
        None,
        "24 h"
    );
    // After expiry the key is free again.
    s.put_idempotent(&a, "k1", &resp("h3", DAY)).await.unwrap();
    assert_eq!(
        s.get_idempotent(&a, "k1", t(DAY + 1)).await.unwrap(),
        Some(resp("h3", DAY))
    );
    assert!(matches!(
        s.put_idempotent(&aid("ghost"), "k1", &resp("h", 0)).await,
        Err(StoreError::NotFound(_))
    ));
    s.close().await;
}

/// A reader following the log by cursor while many writers append never skips an event
/// (on PostgreSQL this needs the advisory lock: sequence values are taken in insert order,
/// commits happen in any order).
async fn event_ids_follow_commit_order(b: &Backend) {
    let s = b.open().await;
    let dev = did("IMEI:7");
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let s = s.clone();
            let dev = dev.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let e = NewEvent::device(
                        EventKind::GenericAlert,
                        t(i),
                        &dev,
                        serde_json::json!({ "w": w, "i": i }),
                    );
                    s.append_events(&[e.clone(), e], &[]).await.unwrap();
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    let mut cursor = EventId(0);
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let page = s
            .list_events(cursor, &EventFilter::default(), 1000)
            .await
            .unwrap();
        if let Some(last) = page.last() {
            cursor = last.id;
        }
        seen.extend(page.into_iter().map(|e| e.id));
        if done && seen.len() >= 480 {
            break;
        }
        if done {
            // One more pass after the writers finished picks up the rest.
            let rest = s
                .list_events(cursor, &EventFilter::default(), 1000)
                .await
                .unwrap();
            seen.extend(rest.iter().map(|e| e.id));
            break;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let all: Vec<_> = events(&s, EventId(0), &EventFilter::default())
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len(), 480);
    assert_eq!(seen, all, "the cursor reader saw every event, in order");
    s.close().await;
}

// --- fan-out speed (SQLite) ----------------------------------------------------------------------

/// A job for 10,000 devices is a handful of statements: well under a second on SQLite in a
/// release build (`cargo test --release`); the bound here is loose for debug builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fan_out_to_10000_devices_is_fast() {
    let b = Backend::sqlite("fan_out_speed");
    let s = b.open().await;
    s.create_app(&app("acme")).await.unwrap();
    let devs = add_devices(&s, "IMEI:9", 10_000).await;
    let started = Instant::now();
    let j = s
        .submit_job(&job("acme", &devs, vec![get("./DevInfo/Mod")]), &devs, t(1))
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("submit_job to 10,000 devices: {took:?}");
    assert_eq!(j.device_count, 10_000);
    assert_eq!(s.job_counts(j.id).await.unwrap().queued, 10_000);
    let started = Instant::now();
    assert_eq!(s.cancel_job(j.id, t(2)).await.unwrap(), 10_000);
    eprintln!("cancel_job of 10,000 operations: {:?}", started.elapsed());
    assert!(took.as_secs_f64() < 3.0, "fan-out took {took:?}");
    s.close().await;
    b.cleanup().await;
}
