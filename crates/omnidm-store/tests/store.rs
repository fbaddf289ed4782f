//! One store test suite, run against every backend: SQLite in a temporary directory
//! always, PostgreSQL when `OMNIDM_TEST_PG_URL` is set (each test gets a fresh database
//! there). `OMNIDM_TEST_REQUIRE_PG=1` turns a missing PostgreSQL into a failure (CI).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::large_enum_variant
)]

use std::collections::BTreeSet;

use omnidm_core::{
    ClientAuth, CommandOutcome, Device, DeviceFilter, DeviceId, DeviceInfo, DmAccount, NewDevice,
    NewOperation, NodePath, NodeResult, Nonces, OpCommand, OpFilter, OpProgress, OpState,
    Operation, OperationId, Protocol, SessionId, SessionOutcome, Store, StoreError, Timestamp,
    TreeEntry, TypedValue, ValueType, status,
};
use omnidm_store::AnyStore;

// --- harness ---------------------------------------------------------------------------------

#[macro_use]
mod harness;
use harness::Backend;

suite!(
    device_crud,
    device_pagination_and_filters,
    tree_upsert_and_read,
    operation_lifecycle,
    claim_is_exclusive,
    expiry,
    crash_recovery,
    restart_loses_nothing,
    session_outcome_applies_everything,
    session_outcome_is_atomic,
    async_reports_amend_finished_operations,
    device_for_session_tells_whether_work_is_queued,
    claim_to_send_records_every_command_as_sent,
    claim_to_send_many_claims_each_device_once,
    session_outcomes_batch_equals_one_after_the_other,
    devices_for_session_answer_each_id_in_order,
    server_secrets_are_generated_once,
    commands_that_never_left_are_requeued,
    completions_commit_with_their_session,
    rule_fumo_10_2_result_code_410_fails_an_awaiting_operation,
    rule_fumo_10_2_deadline_fails_an_unreported_exec,
    awaiting_operations_can_be_cancelled,
);

// --- helpers -----------------------------------------------------------------------------------

const T0: i64 = 1_700_000_000_000;

fn t(ms: i64) -> Timestamp {
    Timestamp(T0 + ms)
}

fn did(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn path(s: &str) -> NodePath {
    NodePath::parse(s).unwrap()
}

fn get(p: &str) -> OpCommand {
    OpCommand::Get { path: path(p) }
}

fn exec(p: &str) -> OpCommand {
    OpCommand::Exec {
        path: path(p),
        data: None,
        correlator: Some("corr-1".into()),
    }
}

fn ok(i: u32, at: Timestamp) -> CommandOutcome {
    CommandOutcome::status(vec![i], 200, at)
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

async fn add_device(s: &AnyStore, id: &str) -> Device {
    let d = dm_device(id);
    s.create_device(&d).await.unwrap();
    d
}

async fn submit(s: &AnyStore, dev: &str, cmds: Vec<OpCommand>) -> Operation {
    s.submit(vec![NewOperation::new(did(dev), cmds)], t(0))
        .await
        .unwrap()
        .remove(0)
}

async fn op(s: &AnyStore, id: OperationId) -> Operation {
    s.get_operation(id).await.unwrap().unwrap()
}

fn sess(s: &str) -> SessionId {
    SessionId(s.to_owned())
}

fn entry(p: &str, v: &str, at: Timestamp) -> TreeEntry {
    TreeEntry {
        path: path(p),
        format: ValueType::String,
        mime_type: Some("text/plain".into()),
        value: Some(v.to_owned()),
        updated_at: at,
    }
}

// --- behaviours --------------------------------------------------------------------------------

async fn device_crud(b: &Backend) {
    let s = b.open().await;
    let mut d = add_device(&s, "IMEI:493005100592800").await;
    assert_eq!(s.get_device(&d.id).await.unwrap(), Some(d.clone()));
    assert!(matches!(
        s.create_device(&d).await,
        Err(StoreError::Conflict(_))
    ));

    d.tags = vec!["lab".into(), "beta".into()];
    d.quirk_profile = Some("old-c-client".into());
    d.info.manufacturer = Some("Acme".into());
    s.update_device(&d).await.unwrap();
    let got = s.get_device(&d.id).await.unwrap().unwrap();
    assert_eq!(
        got.tags,
        vec!["beta".to_string(), "lab".to_string()],
        "tags sorted"
    );
    assert_eq!(got.quirk_profile.as_deref(), Some("old-c-client"));
    assert_eq!(got.dm, d.dm);

    let info = DeviceInfo {
        model: Some("X1".into()),
        firmware_version: Some("1.2.3".into()),
        ..Default::default()
    };
    let after = s.record_contact(&d.id, &info, t(100)).await.unwrap();
    assert_eq!(after.session_count, 1);
    assert_eq!(after.first_seen, Some(t(100)));
    let after = s
        .record_contact(&d.id, &DeviceInfo::default(), t(200))
        .await
        .unwrap();
    assert_eq!(after.session_count, 2);
    assert_eq!(after.first_seen, Some(t(100)));
    assert_eq!(after.last_seen, Some(t(200)));
    assert_eq!(
        after.info.manufacturer.as_deref(),
        Some("Acme"),
        "merge keeps old fields"
    );
    assert_eq!(after.info.model.as_deref(), Some("X1"));
    assert_eq!(s.get_device(&d.id).await.unwrap().unwrap(), after);

    let nonces = Nonces {
        client_nonce: vec![1, 2, 3],
        server_nonce: vec![0, 255],
    };
    s.set_nonces(&d.id, &nonces).await.unwrap();
    let got = s.get_device(&d.id).await.unwrap().unwrap();
    assert_eq!(got.dm.unwrap().nonces(), nonces);

    // A device without a DM account (TR-069) has no nonces to set.
    let cpe = NewDevice::new(did("00D09E-IGD-1234"), Protocol::Tr069).into_device(t(0));
    s.create_device(&cpe).await.unwrap();
    assert!(matches!(
        s.set_nonces(&cpe.id, &nonces).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.get_device(&cpe.id).await.unwrap().unwrap().dm, None);

    let ghost = dm_device("IMEI:0");
    assert!(matches!(
        s.update_device(&ghost).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.record_contact(&ghost.id, &info, t(1)).await,
        Err(StoreError::NotFound(_))
    ));

    // Deleting a device removes its tree and operations too.
    s.upsert_tree(&d.id, &[entry("./DevInfo/Man", "Acme", t(1))])
        .await
        .unwrap();
    let o = submit(&s, d.id.as_str(), vec![get("./DevInfo/Mod")]).await;
    assert!(s.delete_device(&d.id).await.unwrap());
    assert!(!s.delete_device(&d.id).await.unwrap());
    assert_eq!(s.get_device(&d.id).await.unwrap(), None);
    assert_eq!(s.get_operation(o.id).await.unwrap(), None);
    s.create_device(&dm_device(d.id.as_str())).await.unwrap();
    assert!(
        s.read_tree(&d.id, &path("."), None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn device_pagination_and_filters(b: &Backend) {
    let s = b.open().await;
    let mut all = Vec::new();
    for i in 0..25 {
        let mut d = dm_device(&format!("IMEI:{:03}", i));
        d.info.manufacturer = Some(if i % 2 == 0 { "Acme" } else { "Globex" }.into());
        d.info.model = Some(format!("M{}", i % 3));
        d.info.firmware_version = Some(format!("fw{}", i % 5));
        if i % 4 == 0 {
            d.tags = vec!["pilot".into()];
        }
        if i == 7 {
            d.protocol = Protocol::Lwm2m;
        }
        s.create_device(&d).await.unwrap();
        all.push(d.id.clone());
    }
    let f = DeviceFilter::default();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = s.list_devices(&f, after.as_ref(), 10).await.unwrap();
        pages += 1;
        assert!(page.devices.len() <= 10);
        seen.extend(page.devices.iter().map(|d| d.id.clone()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all, "every device once, in id order");

    let count = |f: DeviceFilter| {
        let s = s.clone();
        async move { s.list_devices(&f, None, 100).await.unwrap().devices }
    };
    let acme = count(DeviceFilter {
        manufacturer: Some("Acme".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(acme.len(), 13);
    assert!(
        acme.iter()
            .all(|d| d.info.manufacturer.as_deref() == Some("Acme"))
    );
    let m1 = count(DeviceFilter {
        model: Some("M1".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(m1.len(), 8);
    let pilot = count(DeviceFilter {
        tag: Some("pilot".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(pilot.len(), 7);
    let combined = count(DeviceFilter {
        manufacturer: Some("Acme".into()),
        model: Some("M0".into()),
        tag: Some("pilot".into()),
        ..Default::default()
    })
    .await;
    // i even, i%3==0, i%4==0 → i%12==0 → 0, 12, 24
    assert_eq!(
        combined
            .iter()
            .map(|d| d.id.to_string())
            .collect::<Vec<_>>(),
        vec!["IMEI:000", "IMEI:012", "IMEI:024"]
    );
    let fw = count(DeviceFilter {
        firmware_version: Some("fw2".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(fw.len(), 5);
    let lw = count(DeviceFilter {
        protocol: Some(Protocol::Lwm2m),
        ..Default::default()
    })
    .await;
    assert_eq!(lw.len(), 1);
    let page = s
        .list_devices(&DeviceFilter::default(), None, 25)
        .await
        .unwrap();
    assert_eq!((page.devices.len(), page.next), (25, None));
}

async fn tree_upsert_and_read(b: &Backend) {
    let s = b.open().await;
    let d = add_device(&s, "IMEI:1").await.id;
    let entries = vec![
        TreeEntry {
            path: path("./DevInfo"),
            format: ValueType::Node,
            mime_type: None,
            value: Some("Man/Mod".into()),
            updated_at: t(1),
        },
        entry("./DevInfo/Man", "Acme", t(1)),
        entry("./DevInfo/Mod", "X1", t(1)),
        entry("./DevInfo/Ext/Deep", "x", t(1)),
        entry("./DevInfoX", "sibling sharing a prefix", t(1)),
        entry(
            "./DevInfo%2FNot/Child",
            "escaped slash is not a child",
            t(1),
        ),
        entry("./DevDetail/SwV", "1.0", t(1)),
        entry("./DevDetail/SwV?list=Struct", "query dropped", t(1)),
    ];
    s.upsert_tree(&d, &entries).await.unwrap();

    let paths = |v: Vec<TreeEntry>| {
        v.into_iter()
            .map(|e| e.path.to_string())
            .collect::<Vec<_>>()
    };
    let sub = s.read_tree(&d, &path("./DevInfo"), None).await.unwrap();
    assert_eq!(
        paths(sub.clone()),
        vec![
            "./DevInfo",
            "./DevInfo/Ext/Deep",
            "./DevInfo/Man",
            "./DevInfo/Mod"
        ]
    );
    assert_eq!(sub[0].format, ValueType::Node);
    assert_eq!(sub[2].mime_type.as_deref(), Some("text/plain"));
    assert_eq!(
        paths(s.read_tree(&d, &path("./DevInfo"), Some(1)).await.unwrap()),
        vec!["./DevInfo", "./DevInfo/Man", "./DevInfo/Mod"]
    );
    assert_eq!(
        paths(s.read_tree(&d, &path("./DevInfo"), Some(0)).await.unwrap()),
        vec!["./DevInfo"]
    );
    // Only cached nodes come back: ./DevDetail itself was never reported.
    assert_eq!(
        paths(s.read_tree(&d, &path("."), Some(1)).await.unwrap()),
        vec!["./DevInfo", "./DevInfoX"]
    );
    let swv = s
        .read_tree(&d, &path("./DevDetail/SwV"), None)
        .await
        .unwrap();
    assert_eq!(swv.len(), 1);
    assert_eq!(
        swv[0].value.as_deref(),
        Some("query dropped"),
        "last in batch wins"
    );
    assert_eq!(s.read_tree(&d, &path("."), None).await.unwrap().len(), 7);

    // Newer values replace, older ones are ignored.
    s.upsert_tree(
        &d,
        &[
            entry("./DevInfo/Mod", "X2", t(5)),
            entry("./DevInfo/Man", "Old", t(0)),
        ],
    )
    .await
    .unwrap();
    let sub = s.read_tree(&d, &path("./DevInfo"), Some(1)).await.unwrap();
    assert_eq!(sub[1].value.as_deref(), Some("Acme"));
    assert_eq!(sub[2].value.as_deref(), Some("X2"));
    assert_eq!(sub[2].updated_at, t(5));

    // Other protocols' paths.
    let lw = NewDevice::new(did("urn:imei:1"), Protocol::Lwm2m).into_device(t(0));
    s.create_device(&lw).await.unwrap();
    s.upsert_tree(
        &lw.id,
        &[
            entry("/3/0/3", "fw", t(1)),
            entry("/3/0/1", "model", t(1)),
            entry("/33/0/1", "no", t(1)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        paths(s.read_tree(&lw.id, &path("/3"), None).await.unwrap()),
        vec!["/3/0/1", "/3/0/3"]
    );
    let cpe = NewDevice::new(did("cpe-1"), Protocol::Tr069).into_device(t(0));
    s.create_device(&cpe).await.unwrap();
    s.upsert_tree(
        &cpe.id,
        &[
            entry("Device.DeviceInfo.SoftwareVersion", "1", t(1)),
            entry("Device.DeviceInfoX.A", "no", t(1)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        paths(
            s.read_tree(&cpe.id, &path("Device.DeviceInfo."), None)
                .await
                .unwrap()
        ),
        vec!["Device.DeviceInfo.SoftwareVersion"]
    );
    assert_eq!(
        s.read_tree(&cpe.id, &path(""), None).await.unwrap().len(),
        2
    );

    assert_eq!(s.delete_tree(&lw.id, &path("/3/0")).await.unwrap(), 2);
    assert_eq!(
        s.read_tree(&lw.id, &path("/"), None).await.unwrap().len(),
        1
    );

    assert!(matches!(
        s.upsert_tree(&did("nobody"), &[entry("./A", "x", t(1))])
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Many rows in one call (more than one multi-row INSERT chunk).
    let many: Vec<_> = (0..2500)
        .map(|i| entry(&format!("./Big/N{i:04}"), "v", t(1)))
        .collect();
    s.upsert_tree(&d, &many).await.unwrap();
    assert_eq!(
        s.read_tree(&d, &path("./Big"), None).await.unwrap().len(),
        2500
    );
}

async fn operation_lifecycle(b: &Backend) {
    let s = b.open().await;
    let dev = add_device(&s, "IMEI:1").await.id;
    add_device(&s, "IMEI:2").await;
    let ui = OpCommand::UserInteraction(omnidm_core::UiPrompt {
        kind: omnidm_core::UiKind::Confirm,
        text: "Update now?".into(),
        choices: vec![],
        min_display_time: None,
        max_display_time: Some(60),
        default_response: None,
        max_len: None,
        input_type: None,
        echo: None,
    });
    let cmds = vec![
        get("./DevInfo/Mod"),
        OpCommand::Replace {
            path: path("./Vendor/X"),
            value: TypedValue::int(3),
        },
        OpCommand::Atomic(vec![
            OpCommand::Add {
                path: path("./Vendor/Y"),
                value: None,
            },
            OpCommand::Copy {
                from: path("./Vendor/X"),
                to: path("./Vendor/Z"),
            },
            OpCommand::Delete {
                path: path("./Vendor/W"),
            },
        ]),
        ui,
    ];
    let mut new = NewOperation::new(dev.clone(), cmds.clone());
    new.notify = true;
    new.submitted_by = Some("app-42".into());
    new.expires_at = Some(t(1_000_000));
    let ops = s
        .submit(
            vec![new, NewOperation::new(did("IMEI:2"), vec![get("./A")])],
            t(0),
        )
        .await
        .unwrap();
    let (a, other) = (&ops[0], &ops[1]);
    assert!(other.id > a.id, "ids increase in submission order");
    assert_eq!(op(&s, a.id).await, *a);
    assert_eq!(a.state, OpState::Queued);
    assert_eq!(a.commands, cmds);
    assert!(a.notify);
    let b2 = submit(&s, "IMEI:1", vec![exec("./FUMO/fw/Update")]).await;
    assert_eq!(s.queue_depth(Some(&dev)).await.unwrap(), 2);
    assert_eq!(s.queue_depth(None).await.unwrap(), 3);

    let listed = s
        .list_operations(&OpFilter {
            device_id: Some(dev.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![a.id, b2.id]
    );
    let page = s
        .list_operations(&OpFilter {
            after: Some(a.id),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![other.id]
    );

    let s1 = sess("node1:1");
    let claimed = s.claim(&dev, &s1, t(10)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![a.id, b2.id]
    );
    assert!(claimed.iter().all(|o| o.state == OpState::InSession
        && o.attempts == 1
        && o.session.as_ref() == Some(&s1)));
    assert!(
        s.claim(&dev, &sess("node1:2"), t(11))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.queue_depth(Some(&dev)).await.unwrap(), 0);
    let in_session = s
        .list_operations(&OpFilter {
            state: Some(OpState::InSession),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(in_session.len(), 2);

    // In-session operations cannot be cancelled; others' sessions cannot touch them.
    assert!(matches!(
        s.cancel(a.id, t(12)).await,
        Err(StoreError::IllegalTransition { .. })
    ));
    assert!(matches!(
        s.complete(a.id, &sess("intruder"), vec![], t(12)).await,
        Err(StoreError::WrongSession(_))
    ));
    assert!(matches!(
        s.mark_sent(a.id, &s1, &[9], t(12)).await,
        Err(StoreError::Invalid(_))
    ));

    s.mark_sent(a.id, &s1, &[0, 1, 2, 3], t(12)).await.unwrap();
    assert_eq!(op(&s, a.id).await.sent, vec![true; 4]);
    let results = CommandOutcome {
        index: vec![0],
        status: 200,
        results: vec![NodeResult {
            path: path("./DevInfo/Mod"),
            value: Some(TypedValue::string("X1")),
        }],
        answer: None,
        reason: None,
        report_deadline: None,
        late_report: None,
        finished_at: t(13),
    };
    let mut answer = ok(3, t(13));
    answer.answer = Some(omnidm_core::UiAnswer::Confirmed(true));
    let done = s
        .complete(
            a.id,
            &s1,
            vec![
                results.clone(),
                ok(1, t(13)),
                ok(2, t(13)),
                CommandOutcome::status(vec![2, 0], 200, t(13)),
                answer,
            ],
            t(14),
        )
        .await
        .unwrap();
    assert_eq!(done.state, OpState::Succeeded);
    assert_eq!(done.session, None);
    assert_eq!(op(&s, a.id).await, done);
    assert_eq!(done.outcomes[0], results);
    assert_eq!(done.outcomes.len(), 5);
    assert!(matches!(
        s.complete(a.id, &s1, vec![], t(15)).await,
        Err(StoreError::IllegalTransition { .. })
    ));
    assert!(matches!(
        s.cancel(a.id, t(15)).await,
        Err(StoreError::IllegalTransition { .. })
    ));

    // A device fault is data: the operation fails, the status is kept.
    let failed = s
        .complete(
            b2.id,
            &s1,
            vec![CommandOutcome::status(vec![0], 405, t(16))],
            t(16),
        )
        .await
        .unwrap();
    assert_eq!(failed.state, OpState::Failed);
    assert_eq!(failed.outcomes[0].status, 405);

    // Cancel while queued.
    let c = submit(&s, "IMEI:1", vec![get("./A")]).await;
    let cancelled = s.cancel(c.id, t(20)).await.unwrap();
    assert_eq!(cancelled.state, OpState::Cancelled);
    assert!(
        s.claim(&dev, &sess("node1:3"), t(21))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.cancel(c.id, t(22)).await,
        Err(StoreError::IllegalTransition { .. })
    ));
    assert!(matches!(
        s.cancel(OperationId(999_999), t(22)).await,
        Err(StoreError::NotFound(_))
    ));

    // Submissions are validated, and all-or-nothing.
    assert!(matches!(
        s.submit(
            vec![NewOperation::new(did("nobody"), vec![get("./A")])],
            t(0)
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.submit(
            vec![
                NewOperation::new(dev.clone(), vec![get("./A")]),
                NewOperation::new(dev.clone(), vec![])
            ],
            t(0)
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.queue_depth(Some(&dev)).await.unwrap(), 0);
}

async fn claim_is_exclusive(b: &Backend) {
    let s = b.open().await;
    let devs: Vec<DeviceId> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(add_device(&s, &format!("IMEI:{i}")).await.id);
        }
        v
    };
    let mut submitted = BTreeSet::new();
    let mut claimed = BTreeSet::new();
    for round in 0..15 {
        let batch: Vec<NewOperation> = devs
            .iter()
            .flat_map(|d| (0..4).map(|_| NewOperation::new(d.clone(), vec![get("./A")])))
            .collect();
        for o in s.submit(batch, t(round)).await.unwrap() {
            submitted.insert(o.id);
        }
        let mut tasks = Vec::new();
        for k in 0..6 {
            let s = s.clone();
            let dev = devs[k % devs.len()].clone();
            tasks.push(tokio::spawn(async move {
                let session = SessionId(format!("r{round}-k{k}"));
                let ops = s.claim(&dev, &session, t(round)).await.unwrap();
                for o in &ops {
                    assert_eq!(o.session.as_ref(), Some(&session));
                    assert_eq!(o.device_id, dev);
                }
                ops.into_iter().map(|o| o.id).collect::<Vec<_>>()
            }));
        }
        for task in tasks {
            for id in task.await.unwrap() {
                assert!(claimed.insert(id), "operation {id} claimed twice");
            }
        }
    }
    assert_eq!(claimed, submitted, "every operation claimed exactly once");
    for id in claimed {
        assert_eq!(op(&s, id).await.attempts, 1);
    }
}

async fn expiry(b: &Backend) {
    let s = b.open().await;
    let dev = add_device(&s, "IMEI:1").await.id;
    let mut short = NewOperation::new(dev.clone(), vec![get("./A")]);
    short.expires_at = Some(t(10));
    let mut held = short.clone();
    held.expires_at = Some(t(15));
    let forever = NewOperation::new(dev.clone(), vec![get("./B")]);
    let ops = s.submit(vec![held], t(0)).await.unwrap();
    let held = ops[0].id;
    assert_eq!(s.claim(&dev, &sess("s1"), t(1)).await.unwrap().len(), 1);
    let ops = s.submit(vec![short, forever], t(0)).await.unwrap();
    let (short, forever) = (ops[0].id, ops[1].id);

    // A claim after the expiry does not take the expired operation.
    let claimed = s.claim(&dev, &sess("s2"), t(20)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![forever]
    );
    assert_eq!(s.expire_due(t(9)).await.unwrap(), vec![]);
    assert_eq!(s.expire_due(t(20)).await.unwrap(), vec![short]);
    assert_eq!(op(&s, short).await.state, OpState::Expired);
    assert_eq!(op(&s, short).await.updated_at, t(20));
    assert_eq!(s.expire_due(t(30)).await.unwrap(), vec![]);
    // In-session operations are the session's to finish, even past their expiry.
    assert_eq!(op(&s, held).await.state, OpState::InSession);
    assert!(matches!(
        s.cancel(short, t(31)).await,
        Err(StoreError::IllegalTransition { .. })
    ));
}

async fn crash_recovery(b: &Backend) {
    let dev = did("IMEI:1");
    let (get_op, exec_op, unsent_op, answered_op, other_node_op);
    {
        let s = b.open().await;
        add_device(&s, "IMEI:1").await;
        get_op = submit(&s, "IMEI:1", vec![get("./A"), get("./B")]).await.id;
        exec_op = submit(
            &s,
            "IMEI:1",
            vec![get("./A"), exec("./FUMO/fw/Update"), get("./C")],
        )
        .await
        .id;
        unsent_op = submit(&s, "IMEI:1", vec![exec("./X")]).await.id;
        answered_op = submit(&s, "IMEI:1", vec![exec("./Y")]).await.id;
        let s1 = sess("node1:7");
        assert_eq!(s.claim(&dev, &s1, t(1)).await.unwrap().len(), 4);
        s.mark_sent(get_op, &s1, &[0, 1], t(2)).await.unwrap();
        s.mark_sent(exec_op, &s1, &[0, 1], t(2)).await.unwrap();
        s.mark_sent(answered_op, &s1, &[0], t(2)).await.unwrap();
        s.apply_session_outcome(&SessionOutcome {
            device_id: dev.clone(),
            session: s1.clone(),
            now: t(3),
            contact: None,
            nonces: None,
            tree: vec![],
            tree_deleted: vec![],
            operations: vec![
                OpProgress {
                    id: get_op,
                    sent: vec![],
                    unsent: vec![],
                    outcomes: vec![ok(0, t(3))],
                    finished: false,
                },
                OpProgress {
                    id: exec_op,
                    sent: vec![],
                    unsent: vec![],
                    outcomes: vec![ok(0, t(3))],
                    finished: false,
                },
                OpProgress {
                    id: answered_op,
                    sent: vec![],
                    unsent: vec![],
                    outcomes: vec![CommandOutcome::status(vec![0], 202, t(3))],
                    finished: false,
                },
            ],
            reports: vec![],
            events: Vec::new(),
            ended: false,
        })
        .await
        .unwrap();
        // Another node's session, which recover_node must leave alone.
        add_device(&s, "IMEI:2").await;
        other_node_op = submit(&s, "IMEI:2", vec![exec("./Z")]).await.id;
        s.claim(&did("IMEI:2"), &sess("node2:1"), t(1))
            .await
            .unwrap();
        s.mark_sent(other_node_op, &sess("node2:1"), &[0], t(2))
            .await
            .unwrap();
        // Crash: the store goes away without anyone finishing the sessions.
        drop(s);
    }
    let s = b.open().await;
    let report = s.recover_node("node1:", t(100)).await.unwrap();
    assert_eq!(report.requeued, vec![get_op, unsent_op]);
    assert_eq!(report.failed, vec![exec_op]);
    assert_eq!(report.finished, vec![answered_op]);
    assert_eq!(op(&s, other_node_op).await.state, OpState::InSession);

    let g = op(&s, get_op).await;
    assert_eq!((g.state, g.session.clone()), (OpState::Queued, None));
    assert_eq!(g.sent, vec![true, false], "unanswered Get will be resent");
    assert_eq!(g.outcomes.len(), 1);
    let e = op(&s, exec_op).await;
    assert_eq!(e.state, OpState::Failed);
    assert_eq!(
        e.outcomes.iter().map(|o| o.status).collect::<Vec<_>>(),
        vec![200, status::INTERRUPTED, status::NOT_EXECUTED]
    );
    assert_eq!(op(&s, unsent_op).await.state, OpState::Queued);
    // Its Exec was accepted (202): finished by recovery, it waits for the device's report
    // (issue 9 item 5).
    let answered = op(&s, answered_op).await;
    assert_eq!(answered.state, OpState::AwaitingReport);
    assert!(answered.report_deadline.is_some());

    // The requeued operations are claimed again by the next session, oldest first.
    let again = s.claim(&dev, &sess("node1:8"), t(101)).await.unwrap();
    assert_eq!(
        again.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![get_op, unsent_op]
    );
    assert_eq!(again[0].attempts, 2);

    // Full recover takes everything left in session.
    let report = s.recover(t(200)).await.unwrap();
    assert_eq!(report.requeued, vec![get_op, unsent_op]);
    assert_eq!(report.failed, vec![other_node_op]);
    assert!(s.recover(t(300)).await.unwrap().is_empty());
}

async fn restart_loses_nothing(b: &Backend) {
    let (devices, ops, tree);
    {
        let s = b.open().await;
        let mut d1 = add_device(&s, "IMEI:1").await;
        d1.tags = vec!["t".into()];
        s.update_device(&d1).await.unwrap();
        add_device(&s, "IMEI:2").await;
        s.record_contact(
            &d1.id,
            &DeviceInfo {
                model: Some("M".into()),
                ..Default::default()
            },
            t(5),
        )
        .await
        .unwrap();
        s.upsert_tree(&d1.id, &[entry("./DevInfo/Mod", "M", t(5))])
            .await
            .unwrap();
        let q = submit(&s, "IMEI:1", vec![get("./A")]).await;
        let c = submit(&s, "IMEI:2", vec![get("./A")]).await;
        s.claim(&did("IMEI:2"), &sess("s"), t(6)).await.unwrap();
        s.complete(c.id, &sess("s"), vec![ok(0, t(7))], t(7))
            .await
            .unwrap();
        let x = submit(&s, "IMEI:2", vec![get("./B")]).await;
        s.cancel(x.id, t(8)).await.unwrap();
        devices = s
            .list_devices(&DeviceFilter::default(), None, 0)
            .await
            .unwrap()
            .devices;
        ops = s.list_operations(&OpFilter::default()).await.unwrap();
        tree = s.read_tree(&d1.id, &path("."), None).await.unwrap();
        assert_eq!(ops.len(), 3);
        let _ = q;
        s.close().await;
    }
    let s = b.open().await;
    assert_eq!(
        s.list_devices(&DeviceFilter::default(), None, 0)
            .await
            .unwrap()
            .devices,
        devices
    );
    assert_eq!(s.list_operations(&OpFilter::default()).await.unwrap(), ops);
    assert_eq!(
        s.read_tree(&did("IMEI:1"), &path("."), None).await.unwrap(),
        tree
    );
    // Ids keep increasing after a restart.
    let next = submit(&s, "IMEI:1", vec![get("./A")]).await;
    assert!(ops.iter().all(|o| o.id < next.id));
    // A third open of the same data (migrations already applied) works too.
    s.close().await;
    let s = b.open().await;
    assert_eq!(s.queue_depth(None).await.unwrap(), 2);
}

async fn session_outcome_applies_everything(b: &Backend) {
    let s = b.open().await;
    let dev = add_device(&s, "IMEI:1").await.id;
    let finished = submit(&s, "IMEI:1", vec![get("./DevInfo/Mod")]).await.id;
    let broken = submit(&s, "IMEI:1", vec![exec("./FUMO/fw/Update")])
        .await
        .id;
    let untouched = submit(&s, "IMEI:1", vec![get("./B")]).await.id;
    s.upsert_tree(
        &dev,
        &[
            entry("./Vendor/Gone", "x", t(1)),
            entry("./Vendor/Gone/Child", "x", t(1)),
            entry("./Vendor/Kept", "x", t(1)),
        ],
    )
    .await
    .unwrap();
    let s1 = sess("n:1");
    s.claim(&dev, &s1, t(1)).await.unwrap();
    let nonces = Nonces {
        client_nonce: b"next".to_vec(),
        server_nonce: b"theirs".to_vec(),
    };
    let report = s
        .apply_session_outcome(&SessionOutcome {
            device_id: dev.clone(),
            session: s1.clone(),
            now: t(9),
            contact: Some(DeviceInfo {
                manufacturer: Some("Acme".into()),
                dm_version: Some("1.2".into()),
                ..Default::default()
            }),
            nonces: Some(nonces.clone()),
            tree: vec![entry("./DevInfo/Mod", "X1", t(8))],
            tree_deleted: vec![path("./Vendor/Gone")],
            operations: vec![
                OpProgress {
                    id: finished,
                    sent: vec![0],
                    unsent: vec![],
                    outcomes: vec![ok(0, t(8))],
                    finished: true,
                },
                OpProgress {
                    id: broken,
                    sent: vec![0],
                    unsent: vec![],
                    outcomes: vec![],
                    finished: false,
                },
            ],
            reports: vec![],
            events: Vec::new(),
            ended: true,
        })
        .await
        .unwrap();
    assert_eq!(report.failed, vec![broken]);
    assert_eq!(report.requeued, vec![untouched]);
    let d = s.get_device(&dev).await.unwrap().unwrap();
    assert_eq!((d.session_count, d.last_seen), (1, Some(t(9))));
    assert_eq!(d.info.dm_version.as_deref(), Some("1.2"));
    assert_eq!(d.dm.unwrap().nonces(), nonces);
    assert_eq!(
        s.read_tree(&dev, &path("./DevInfo/Mod"), None)
            .await
            .unwrap()[0]
            .value
            .as_deref(),
        Some("X1")
    );
    assert_eq!(op(&s, finished).await.state, OpState::Succeeded);
    assert_eq!(op(&s, broken).await.outcomes[0].status, status::INTERRUPTED);
    assert_eq!(op(&s, untouched).await.state, OpState::Queued);
    let vendor = s.read_tree(&dev, &path("./Vendor"), None).await.unwrap();
    assert_eq!(vendor.len(), 1, "deleted subtree gone, sibling kept");
    assert_eq!(vendor[0].path, path("./Vendor/Kept"));
}

async fn session_outcome_is_atomic(b: &Backend) {
    let s = b.open().await;
    let dev = add_device(&s, "IMEI:1").await.id;
    add_device(&s, "IMEI:2").await;
    let o = submit(&s, "IMEI:1", vec![get("./A")]).await.id;
    s.claim(&dev, &sess("mine"), t(1)).await.unwrap();
    s.upsert_tree(&dev, &[entry("./Pre", "kept", t(1))])
        .await
        .unwrap();
    let good = SessionOutcome {
        device_id: did("IMEI:2"),
        session: sess("other"),
        now: t(5),
        contact: Some(DeviceInfo::default()),
        nonces: None,
        tree: vec![entry("./Good", "1", t(5))],
        tree_deleted: vec![],
        operations: vec![],
        reports: vec![],
        events: Vec::new(),
        ended: true,
    };
    let bad = SessionOutcome {
        device_id: dev.clone(),
        session: sess("not-mine"),
        now: t(5),
        contact: Some(DeviceInfo {
            model: Some("should not stick".into()),
            ..Default::default()
        }),
        nonces: Some(Nonces::default()),
        tree: vec![entry("./A", "should not stick", t(5))],
        tree_deleted: vec![path("./Pre")],
        operations: vec![OpProgress {
            id: o,
            sent: vec![0],
            unsent: vec![],
            outcomes: vec![ok(0, t(5))],
            finished: true,
        }],
        reports: vec![],
        events: Vec::new(),
        ended: true,
    };
    let err = s
        .apply_session_outcomes(&[good.clone(), bad])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongSession(_)), "{err:?}");
    for id in ["IMEI:1", "IMEI:2"] {
        let d = s.get_device(&did(id)).await.unwrap().unwrap();
        assert_eq!(d.session_count, 0, "{id}: contact rolled back");
        assert_eq!(d.info.model, None);
    }
    assert!(
        s.read_tree(&did("IMEI:2"), &path("."), None)
            .await
            .unwrap()
            .is_empty()
    );
    let kept = s.read_tree(&dev, &path("."), None).await.unwrap();
    assert_eq!(kept.len(), 1, "delete rolled back, insert rolled back");
    assert_eq!(kept[0].value.as_deref(), Some("kept"));
    let still = op(&s, o).await;
    assert_eq!(
        (still.state, still.sent.clone()),
        (OpState::InSession, vec![false])
    );
    // The good one alone goes through.
    s.apply_session_outcome(&good).await.unwrap();
    assert_eq!(
        s.get_device(&did("IMEI:2"))
            .await
            .unwrap()
            .unwrap()
            .session_count,
        1
    );
}

/// A Generic Alert answering an Exec arrives sessions later: the operation waited in
/// `awaiting_report` (issue 9 item 5, FUMO 1.0 §10.2: 202 is "accepted", not done) and the
/// report's result code settles it.
async fn async_reports_amend_finished_operations(b: &Backend) {
    let s = b.open().await;
    add_device(&s, "dev-a").await;
    let exec = OpCommand::Exec {
        path: path("./FUMO/fw1/Update"),
        data: None,
        correlator: None,
    };
    let o = submit(&s, "dev-a", vec![exec]).await;
    s.claim(&did("dev-a"), &sess("s1"), t(1)).await.unwrap();
    let done = s
        .complete(
            o.id,
            &sess("s1"),
            vec![CommandOutcome::status(vec![0], 202, t(2))],
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(done.state, omnidm_core::OpState::AwaitingReport);
    assert!(done.report_deadline.is_some_and(|d| d > t(2)));
    assert_eq!(
        op(&s, o.id).await.report_deadline,
        done.report_deadline,
        "stored"
    );
    // Issue 8 item 2: another device cannot amend it; nothing is written.
    add_device(&s, "dev-b").await;
    assert!(matches!(
        s.amend_outcomes(
            o.id,
            &did("dev-b"),
            vec![CommandOutcome::status(vec![0], 500, t(8))],
            t(8)
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(op(&s, o.id).await.outcomes[0].status, 202);
    let amended = s
        .amend_outcomes(
            o.id,
            &did("dev-a"),
            vec![CommandOutcome::status(vec![0], 200, t(9))],
            t(9),
        )
        .await
        .unwrap();
    assert_eq!(
        amended.state,
        omnidm_core::OpState::Succeeded,
        "the report's 200 settles it"
    );
    let stored = op(&s, o.id).await;
    assert_eq!(stored.outcomes.len(), 1);
    assert_eq!((stored.outcomes[0].status, stored.updated_at), (200, t(9)));
    assert_eq!(stored.report_deadline, None);
    assert!(matches!(
        s.amend_outcomes(OperationId(999_999), &did("dev-a"), Vec::new(), t(9))
            .await,
        Err(StoreError::NotFound(_))
    ));
    s.close().await;
}

/// One read at session start: the device and whether anything is queued for it.
async fn device_for_session_tells_whether_work_is_queued(b: &Backend) {
    let s = b.open().await;
    add_device(&s, "dev-a").await;
    add_device(&s, "dev-b").await;
    assert!(
        s.get_device_for_session(&did("nobody"))
            .await
            .unwrap()
            .is_none()
    );
    let (d, queued) = s
        .get_device_for_session(&did("dev-a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.id.as_str(), queued), ("dev-a", false));
    submit(
        &s,
        "dev-a",
        vec![OpCommand::Get {
            path: path("./DevInfo/Mod"),
        }],
    )
    .await;
    assert!(
        s.get_device_for_session(&did("dev-a"))
            .await
            .unwrap()
            .unwrap()
            .1
    );
    assert!(
        !s.get_device_for_session(&did("dev-b"))
            .await
            .unwrap()
            .unwrap()
            .1,
        "per device"
    );
    s.claim(&did("dev-a"), &sess("s1"), t(1)).await.unwrap();
    assert!(
        !s.get_device_for_session(&did("dev-a"))
            .await
            .unwrap()
            .unwrap()
            .1,
        "claimed is not queued"
    );
    s.close().await;
}

/// Claiming for sending marks every command sent in the same transaction, so a crash right
/// after never resends an Exec.
async fn claim_to_send_records_every_command_as_sent(b: &Backend) {
    let s = b.open().await;
    add_device(&s, "dev-a").await;
    let cmds = vec![
        OpCommand::Get {
            path: path("./DevInfo/Mod"),
        },
        OpCommand::Exec {
            path: path("./FUMO/fw1/Update"),
            data: None,
            correlator: None,
        },
    ];
    let o = submit(&s, "dev-a", cmds).await;
    let claimed = s
        .claim_to_send(&did("dev-a"), &sess("node1:s1"), t(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].sent, vec![true, true]);
    assert_eq!(
        op(&s, o.id).await.sent,
        vec![true, true],
        "stored, not only returned"
    );
    let report = s.recover(t(2)).await.unwrap();
    assert_eq!(
        report.failed,
        vec![o.id],
        "the sent Exec is reported, never resent"
    );
    assert!(
        s.claim_to_send(&did("dev-a"), &sess("node1:s2"), t(3))
            .await
            .unwrap()
            .is_empty()
    );
    s.close().await;
}

/// Claims of several sessions in one call: each device's operations go to its (first)
/// session, recorded as sent; a device with nothing queued gets nothing.
async fn claim_to_send_many_claims_each_device_once(b: &Backend) {
    let s = b.open().await;
    for d in ["dev-a", "dev-b", "dev-c"] {
        add_device(&s, d).await;
    }
    let get = || {
        vec![
            OpCommand::Get {
                path: path("./DevInfo/Mod"),
            },
            OpCommand::Get {
                path: path("./DevInfo/Man"),
            },
        ]
    };
    let a1 = submit(&s, "dev-a", get()).await;
    let a2 = submit(&s, "dev-a", get()).await;
    let b1 = submit(&s, "dev-b", get()).await;
    let claims = vec![
        (did("dev-b"), sess("node1:b")),
        (did("dev-c"), sess("node1:c")),
        (did("dev-a"), sess("node1:a")),
        (did("dev-a"), sess("node1:a2")),
    ];
    let got = s.claim_to_send_many(&claims, t(1)).await.unwrap();
    assert_eq!(got.len(), 4);
    let ids = |v: &Vec<Operation>| v.iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(ids(&got[0]), vec![b1.id]);
    assert!(got[1].is_empty());
    assert_eq!(ids(&got[2]), vec![a1.id, a2.id]);
    assert!(got[3].is_empty(), "a device is claimed once");
    for o in [a1.id, a2.id, b1.id] {
        let stored = op(&s, o).await;
        assert_eq!(stored.state, OpState::InSession);
        assert_eq!(stored.sent, vec![true, true]);
        assert_eq!(stored.attempts, 1);
    }
    assert_eq!(op(&s, a1.id).await.session, Some(sess("node1:a")));
    assert!(
        s.claim_to_send_many(&claims, t(2))
            .await
            .unwrap()
            .iter()
            .all(Vec::is_empty)
    );
    s.close().await;
}

/// A batch of outcomes (written with multi-row statements) ends as the same outcomes applied
/// one after the other: two sessions of one device count twice, the newer tree observation
/// wins, each session's operations finish or are released.
async fn session_outcomes_batch_equals_one_after_the_other(b: &Backend) {
    let s = b.open().await;
    let one = add_device(&s, "IMEI:1").await.id;
    let two = add_device(&s, "IMEI:2").await.id;
    let done = submit(&s, "IMEI:1", vec![get("./DevInfo/Mod")]).await.id;
    let left = submit(&s, "IMEI:2", vec![get("./DevInfo/Mod")]).await.id;
    s.claim(&one, &sess("n:a"), t(1)).await.unwrap();
    s.claim(&two, &sess("n:c"), t(1)).await.unwrap();
    let outcome = |dev: &DeviceId, session: &str, now: i64| SessionOutcome {
        device_id: dev.clone(),
        session: sess(session),
        now: t(now),
        contact: Some(DeviceInfo {
            model: Some(format!("M{now}")),
            ..Default::default()
        }),
        nonces: None,
        tree: vec![],
        tree_deleted: vec![],
        operations: vec![],
        reports: vec![],
        events: vec![],
        ended: true,
    };
    let mut a = outcome(&one, "n:a", 5);
    a.tree = vec![entry("./X", "new", t(5)), entry("./Y", "a", t(5))];
    a.operations = vec![OpProgress {
        id: done,
        sent: vec![0],
        unsent: vec![],
        outcomes: vec![ok(0, t(5))],
        finished: true,
    }];
    let mut b2 = outcome(&one, "n:b", 6);
    b2.tree = vec![entry("./X", "old", t(4))];
    b2.nonces = Some(Nonces {
        client_nonce: b"c".to_vec(),
        server_nonce: b"s".to_vec(),
    });
    let mut c = outcome(&two, "n:c", 7);
    c.tree = vec![entry("./X", "two", t(7))];
    let report = s.apply_session_outcomes(&[a, b2, c]).await.unwrap();
    assert_eq!(report.requeued, vec![left], "n:c ended holding it");
    let d1 = s.get_device(&one).await.unwrap().unwrap();
    assert_eq!((d1.session_count, d1.last_seen), (2, Some(t(6))));
    assert_eq!(d1.info.model.as_deref(), Some("M6"));
    assert_eq!(d1.dm.unwrap().client_nonce, b"c".to_vec());
    let d2 = s.get_device(&two).await.unwrap().unwrap();
    assert_eq!(d2.session_count, 1);
    let value = |v: Vec<TreeEntry>| v.first().and_then(|e| e.value.clone());
    let x1 = s.read_tree(&one, &path("./X"), Some(0)).await.unwrap();
    assert_eq!(
        value(x1).as_deref(),
        Some("new"),
        "an older observation never wins"
    );
    let x2 = s.read_tree(&two, &path("./X"), Some(0)).await.unwrap();
    assert_eq!(value(x2).as_deref(), Some("two"));
    assert_eq!(op(&s, done).await.state, OpState::Succeeded);
    assert_eq!(op(&s, left).await.state, OpState::Queued);
}

/// The batched session-start read: one answer per id, in order (unknown ones `None`, a
/// repeated id answered each time).
async fn devices_for_session_answer_each_id_in_order(b: &Backend) {
    let s = b.open().await;
    add_device(&s, "dev-a").await;
    add_device(&s, "dev-b").await;
    submit(&s, "dev-b", vec![get("./DevInfo/Mod")]).await;
    let ids = [did("dev-b"), did("nobody"), did("dev-a"), did("dev-b")];
    let got = s.get_devices_for_session(&ids).await.unwrap();
    let seen: Vec<Option<(String, bool)>> = got
        .into_iter()
        .map(|f| f.map(|(d, q)| (d.id.as_str().to_owned(), q)))
        .collect();
    assert_eq!(
        seen,
        vec![
            Some(("dev-b".to_owned(), true)),
            None,
            Some(("dev-a".to_owned(), false)),
            Some(("dev-b".to_owned(), true)),
        ]
    );
    assert!(s.get_devices_for_session(&[]).await.unwrap().is_empty());
}

/// Issue 8 item 2: the correlator key is stored once; later callers (other nodes, restarts)
/// get the stored one, not their own candidate.
async fn server_secrets_are_generated_once(b: &Backend) {
    let s = b.open().await;
    let first = s
        .server_secret("correlator_key", &[1, 2, 3, 255], t(1))
        .await
        .unwrap();
    assert_eq!(first, vec![1, 2, 3, 255]);
    let again = s
        .server_secret("correlator_key", &[9, 9], t(2))
        .await
        .unwrap();
    assert_eq!(again, first, "the first stored secret wins");
    let other = s.server_secret("other", &[7], t(3)).await.unwrap();
    assert_eq!(other, vec![7]);
    s.close().await;
}

/// Issue 8 item 1, for installations upgraded from a version that cached listings as the
/// value of the listed node (secrets inside) and credential nodes: migration 0005 drops those
/// rows. Run on SQLite by rolling the migration back by hand and opening the store again.
#[tokio::test]
async fn the_upgrade_drops_cached_listings_and_credentials() {
    let b = Backend::sqlite("upgrade");
    let Backend::Sqlite(dir) = &b else {
        unreachable!()
    };
    let s = b.open().await;
    let d = add_device(&s, "IMEI:1").await.id;
    let tnds = "<MgmtTree><Node><NodeName>srv1</NodeName><Node><NodeName>AAuthSecret</NodeName>\
                <Value>s3cret</Value></Node></Node></MgmtTree>";
    let mut listing = entry("./DMAcc/srv1", tnds, t(1));
    listing.format = ValueType::Xml;
    s.upsert_tree(
        &d,
        &[
            listing,
            entry("./DMAcc/srv1/AppAuth/SRV/AAuthSecret", "s3cret", t(1)),
            entry("./DMAcc/srv1/AppAuth/SRV/AAuthName", "omnidm", t(1)),
        ],
    )
    .await
    .unwrap();
    s.close().await;
    // What an older version left behind: the rows, and no migration 5 yet.
    let file = dir.join("omnidm.sqlite3");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        file.display()
    ))
    .await
    .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 5")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();

    let s = b.open().await;
    let left: Vec<String> = s
        .read_tree(&d, &path("./DMAcc"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(left, ["./DMAcc/srv1/AppAuth/SRV/AAuthName"]);
    s.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 9 item 11: a session that ended before sending a claimed command says so
/// (`OpProgress::unsent`); the command, recorded as sent when claimed, is then requeued by
/// the recovery rule, not reported "interrupted" (900), even when it is not idempotent.
async fn commands_that_never_left_are_requeued(b: &Backend) {
    let s = b.open().await;
    let dev = add_device(&s, "dev-a").await.id;
    let cmds = vec![
        OpCommand::Get {
            path: path("./DevInfo/Mod"),
        },
        OpCommand::Exec {
            path: path("./FUMO/fw1/Update"),
            data: None,
            correlator: None,
        },
    ];
    let o = submit(&s, "dev-a", cmds).await;
    let claimed = s
        .claim_to_send(&dev, &sess("node1:s1"), t(1))
        .await
        .unwrap();
    assert_eq!(claimed[0].sent, vec![true, true]);
    s.apply_session_outcome(&SessionOutcome {
        device_id: dev.clone(),
        session: sess("node1:s1"),
        now: t(2),
        contact: None,
        nonces: None,
        tree: vec![],
        tree_deleted: vec![],
        operations: vec![OpProgress {
            id: o.id,
            sent: vec![0],
            unsent: vec![1],
            outcomes: vec![ok(0, t(2))],
            finished: false,
        }],
        reports: vec![],
        events: Vec::new(),
        ended: true,
    })
    .await
    .unwrap();
    let after = op(&s, o.id).await;
    assert_eq!(after.state, OpState::Queued, "{after:?}");
    assert_eq!(after.sent, vec![true, false]);
    assert!(after.outcome_of(1).is_none(), "not reported as interrupted");
    let again = s
        .claim_to_send(&dev, &sess("node1:s2"), t(3))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the Exec goes out in the next session");
    s.close().await;
}

/// Issue 9 item 12: the asynchronous results a session's Generic Alerts bring are written in
/// the session's own transaction (one session, one transaction): the Exec answered 202 in
/// this session and completed by a report in the same session ends with the report's code,
/// and a report naming another device's operation changes nothing.
async fn completions_commit_with_their_session(b: &Backend) {
    let s = b.open().await;
    let dev = add_device(&s, "dev-a").await.id;
    add_device(&s, "dev-b").await;
    let exec = || {
        vec![OpCommand::Exec {
            path: path("./FUMO/fw1/Update"),
            data: None,
            correlator: None,
        }]
    };
    let mine = submit(&s, "dev-a", exec()).await;
    let theirs = submit(&s, "dev-b", exec()).await;
    s.claim_to_send(&dev, &sess("node1:s1"), t(1))
        .await
        .unwrap();
    let report = |code: u16| CommandOutcome {
        index: vec![0],
        status: code,
        results: vec![],
        answer: None,
        reason: None,
        report_deadline: None,
        late_report: None,
        finished_at: t(2),
    };
    s.apply_session_outcome(&SessionOutcome {
        device_id: dev.clone(),
        session: sess("node1:s1"),
        now: t(2),
        contact: None,
        nonces: None,
        tree: vec![],
        tree_deleted: vec![],
        operations: vec![OpProgress {
            id: mine.id,
            sent: vec![0],
            unsent: vec![],
            outcomes: vec![report(202)],
            finished: true,
        }],
        reports: vec![(mine.id, report(410)), (theirs.id, report(200))],
        events: Vec::new(),
        ended: true,
    })
    .await
    .unwrap();
    let settled = op(&s, mine.id).await;
    assert_eq!(settled.outcome_of(0).map(|o| o.status), Some(410));
    // Issue 9 item 5, same session: 202 then 1226 with 410 fails the operation.
    assert_eq!(settled.state, OpState::Failed, "{settled:?}");
    let other = op(&s, theirs.id).await;
    assert_eq!(other.state, OpState::Queued);
    assert!(
        other.outcome_of(0).is_none(),
        "another device's operation is untouched"
    );
    s.close().await;
}

/// Accepts an Exec (202) for `dev` in a session at t(2) with the report deadline `deadline`;
/// returns the operation, `awaiting_report`.
async fn accepted_exec(s: &AnyStore, dev: &str, session: &str, deadline: i64) -> Operation {
    let o = submit(s, dev, vec![exec("./FUMO/fw1/Update")]).await;
    s.claim(&did(dev), &sess(session), t(1)).await.unwrap();
    let mut accepted = CommandOutcome::status(vec![0], 202, t(2));
    accepted.report_deadline = Some(t(deadline));
    let done = s
        .complete(o.id, &sess(session), vec![accepted], t(2))
        .await
        .unwrap();
    assert_eq!(done.state, OpState::AwaitingReport);
    assert_eq!(done.report_deadline, Some(t(deadline)));
    done
}

/// Issue 9 item 5 / FUMO 1.0 §10.2: a later Generic Alert with ResultCode 410 "Firmware
/// Update Failed" fails the operation that waited for it (before: it stayed `succeeded`),
/// with the code and its name, a `command.result` and an `operation.state_changed` event.
async fn rule_fumo_10_2_result_code_410_fails_an_awaiting_operation(b: &Backend) {
    let s = b.open().await;
    add_device(&s, "dev-a").await;
    let o = accepted_exec(&s, "dev-a", "s1", 1_000).await;
    let awaiting = s
        .list_operations(&OpFilter {
            state: Some(OpState::AwaitingReport),
            ..OpFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(awaiting.iter().map(|o| o.id).collect::<Vec<_>>(), [o.id]);
    let mut report = CommandOutcome::status(vec![0], 410, t(5));
    report.reason = Some("Firmware Update Failed".into());
    let failed = s
        .amend_outcomes(o.id, &did("dev-a"), vec![report], t(5))
        .await
        .unwrap();
    assert_eq!(failed.state, OpState::Failed);
    let stored = op(&s, o.id).await;
    assert_eq!(stored.state, OpState::Failed);
    let outcome = stored.outcome_of(0).unwrap();
    assert_eq!(
        (outcome.status, outcome.reason.as_deref()),
        (410, Some("Firmware Update Failed"))
    );
    // A report for the finished operation is late: recorded, the state stays.
    let late = s
        .amend_outcomes(
            o.id,
            &did("dev-a"),
            vec![CommandOutcome::status(vec![0], 200, t(6))],
            t(6),
        )
        .await
        .unwrap();
    assert_eq!(late.state, OpState::Failed);
    let outcome = late.outcome_of(0).unwrap();
    assert_eq!(outcome.status, 410);
    assert_eq!(outcome.late_report.as_ref().map(|l| l.status), Some(200));
    s.close().await;
}

/// Issue 9 item 5, decision 87: a device that never reports: once the deadline passed, the
/// sweep's `fail_unreported_due` fails the Exec with 902 `report_timeout`, once; operations
/// whose deadline is still ahead wait on.
async fn rule_fumo_10_2_deadline_fails_an_unreported_exec(b: &Backend) {
    let s = b.open().await;
    add_device(&s, "dev-a").await;
    add_device(&s, "dev-b").await;
    let soon = accepted_exec(&s, "dev-a", "s1", 100).await;
    let later = accepted_exec(&s, "dev-b", "s2", 10_000).await;
    assert!(s.fail_unreported_due(t(99)).await.unwrap().is_empty());
    assert_eq!(s.fail_unreported_due(t(100)).await.unwrap(), [soon.id]);
    assert!(
        s.fail_unreported_due(t(101)).await.unwrap().is_empty(),
        "once"
    );
    let failed = op(&s, soon.id).await;
    assert_eq!(failed.state, OpState::Failed);
    assert_eq!(failed.report_deadline, None);
    let outcome = failed.outcome_of(0).unwrap();
    assert_eq!(
        (outcome.status, outcome.reason.as_deref()),
        (902, Some("report_timeout"))
    );
    assert_eq!(op(&s, later.id).await.state, OpState::AwaitingReport);
    s.close().await;
}

/// Decision 86: cancelling an operation awaiting its report stops the wait.
async fn awaiting_operations_can_be_cancelled(b: &Backend) {
    let s = b.open().await;
    add_device(&s, "dev-a").await;
    let o = accepted_exec(&s, "dev-a", "s1", 100).await;
    let cancelled = s.cancel(o.id, t(3)).await.unwrap();
    assert_eq!(cancelled.state, OpState::Cancelled);
    assert_eq!(cancelled.report_deadline, None);
    assert!(s.fail_unreported_due(t(200)).await.unwrap().is_empty());
    assert_eq!(op(&s, o.id).await.state, OpState::Cancelled);
    s.close().await;
}

/// Issue 9 item 5: a database made by the previous version (no migration 6, no
/// `report_deadline` column) migrates, and its operations read and work.
#[tokio::test]
async fn the_upgrade_adds_the_report_deadline() {
    let b = Backend::sqlite("upgrade6");
    let Backend::Sqlite(dir) = &b else {
        unreachable!()
    };
    let s = b.open().await;
    add_device(&s, "dev-a").await;
    let old = submit(&s, "dev-a", vec![exec("./FUMO/fw1/Update")]).await;
    s.close().await;
    let file = dir.join("omnidm.sqlite3");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        file.display()
    ))
    .await
    .unwrap();
    for undo in [
        "DROP INDEX operations_awaiting_report",
        "ALTER TABLE operations DROP COLUMN report_deadline",
        "DELETE FROM _sqlx_migrations WHERE version = 6",
    ] {
        sqlx::query(undo).execute(&mut conn).await.unwrap();
    }
    sqlx::Connection::close(conn).await.unwrap();

    let s = b.open().await;
    let read = op(&s, old.id).await;
    assert_eq!((read.state, read.report_deadline), (OpState::Queued, None));
    s.claim(&did("dev-a"), &sess("s1"), t(1)).await.unwrap();
    let done = s
        .complete(
            old.id,
            &sess("s1"),
            vec![CommandOutcome::status(vec![0], 202, t(2))],
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(done.state, OpState::AwaitingReport);
    assert_eq!(op(&s, old.id).await.report_deadline, done.report_deadline);
    s.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
