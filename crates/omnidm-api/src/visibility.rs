//! Who may see which event: one rule for the event list, the SSE stream and webhook
//! deliveries.
//!
//! Admins see every event. An application sees an event only if all of these hold:
//! - `operation.*`, `command.result` and `notification.sent` events: the application
//!   submitted the operation (the event's `app_id` is the application); a package 0 sent for
//!   another application's operation on a shared device tells of that application's activity;
//! - events about a device: some grant of the application covers the device (its group
//!   contains the device);
//! - events about a node (`path`: command results, generic alerts): some grant covering the
//!   device also covers the node, so alerts and results from other subtrees stay hidden;
//! - events about neither a device nor an application are for admins only;
//! - an event attributed to another application (its `app_id`) is never shown, whatever
//!   its kind.
//!
//! What a visible event shows is trimmed too ([`EventVisibility::view`]): a `correlator` in
//! an event's data (a generic alert answering an Exec) names the operation it answers, so
//! only the application whose event it is (and admins) see it.
//!
//! Grants are evaluated as they are when the event is read, not as they were when it was
//! written: a grant withdrawn hides the device's past events too, and the events of a deleted
//! device (its group memberships gone with it) are visible to admins only.

use std::collections::HashMap;
use std::sync::Arc;

use omnidm_core::{
    AppId, DeviceId, DeviceInfo, Event, EventKind, Grant, NewEvent, NodePath, Protocol, WsiStore,
};

use crate::access::{AppGrants, DeviceAccess, static_groups};
use crate::problem::ApiResult;
use crate::routes::events::EventView;
use crate::state::Api;

/// Does the kind concern one application's operation (visible to its submitter only)?
fn is_operation_kind(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::OperationSubmitted
            | EventKind::OperationStateChanged
            | EventKind::CommandResult
            | EventKind::NotificationSent
    )
}

/// The pure rule for a non-admin `app`. `covering` holds the grants of `app` whose group
/// contains the event's device (ignored for events without a device; empty when the device
/// is unknown).
pub(crate) fn app_may_see(app: &AppId, event: &NewEvent, covering: &[&Grant]) -> bool {
    if is_operation_kind(event.kind) && event.app_id.as_ref() != Some(app) {
        return false;
    }
    // Whatever its kind, an event attributed to another application tells of that
    // application's activity.
    if event.app_id.as_ref().is_some_and(|a| a != app) {
        return false;
    }
    if event.device_id.is_none() {
        // Only an application's own (device-less) events; none carry a path today.
        return event.app_id.as_ref() == Some(app) && event.path.is_none();
    }
    if covering.is_empty() {
        return false;
    }
    match &event.path {
        None => true,
        Some(path) => covering
            .iter()
            .any(|g| g.subtrees.iter().any(|s| s.covers(path))),
    }
}

/// The visibility of events to one caller, with a per-device decision cache: build one per
/// request or per batch (grants change; the cache must not outlive a batch by much).
pub(crate) struct EventVisibility {
    /// `None` for admins.
    app: Option<(AppId, Arc<AppGrants>)>,
    /// Indices into the grants covering each device seen so far, with its protocol.
    devices: HashMap<DeviceId, (Vec<usize>, Protocol)>,
}

impl EventVisibility {
    /// Everything visible.
    pub(crate) fn admin() -> EventVisibility {
        EventVisibility {
            app: None,
            devices: HashMap::new(),
        }
    }

    /// For application `app` (`admin` = its role is admin).
    pub(crate) async fn of<S: WsiStore>(
        api: &Api<S>,
        app: &AppId,
        admin: bool,
    ) -> ApiResult<EventVisibility> {
        if admin {
            return Ok(EventVisibility::admin());
        }
        let grants = api.shared.grants.grants_of(&api.store, app).await?;
        Ok(EventVisibility {
            app: Some((app.clone(), grants)),
            devices: HashMap::new(),
        })
    }

    /// `event` as the caller is shown it (call only for events it [`sees`](Self::sees)):
    /// values of nodes it may not read and another application's correlator are removed.
    pub(crate) fn view(&self, event: &Event) -> EventView {
        if self.app.is_none() {
            return EventView::from(event);
        }
        let mut view = EventView::from(&self.redact(event.clone()));
        if let Some((app, _)) = &self.app
            && event.event.app_id.as_ref() != Some(app)
            && let Some(data) = view.data.as_object_mut()
        {
            data.remove("correlator");
        }
        view
    }

    /// May the caller see `event`? Reads the device (and its static groups) once per device.
    pub(crate) async fn sees<S: WsiStore>(&mut self, store: &S, event: &Event) -> ApiResult<bool> {
        let Some((app, grants)) = &self.app else {
            return Ok(true);
        };
        let e = &event.event;
        // Cheap refusals first: no device read for other applications' operations.
        if (is_operation_kind(e.kind) && e.app_id.as_ref() != Some(app))
            || e.app_id.as_ref().is_some_and(|a| a != app)
        {
            return Ok(false);
        }
        let Some(device_id) = &e.device_id else {
            return Ok(app_may_see(app, e, &[]));
        };
        if grants.grants.is_empty() {
            return Ok(false); // no grant covers any device: no need to read it
        }
        if !self.devices.contains_key(device_id) {
            let known = match store.get_device(device_id).await? {
                None => (Vec::new(), Protocol::OmaDm),
                Some(device) => {
                    let member_of = static_groups(store, grants, device_id).await?;
                    let covering = grants.for_device(&device, &member_of);
                    let indices = grants
                        .grants
                        .iter()
                        .enumerate()
                        .filter(|(_, g)| covering.iter().any(|c| std::ptr::eq(*c, *g)))
                        .map(|(i, _)| i)
                        .collect();
                    (indices, device.protocol)
                }
            };
            self.devices.insert(device_id.clone(), known);
        }
        Ok(app_may_see(app, e, &self.covering(device_id)))
    }

    /// The caller's grants covering `device` (as loaded by [`Self::sees`]).
    fn covering(&self, device: &DeviceId) -> Vec<&Grant> {
        let Some((_, grants)) = &self.app else {
            return Vec::new();
        };
        self.devices
            .get(device)
            .map(|(ix, _)| ix.iter().filter_map(|i| grants.grants.get(*i)).collect())
            .unwrap_or_default()
    }

    /// The event with what the caller may not read removed; after [`Self::sees`] said yes. Values of
    /// nodes no `get` grant covers are removed (issue 8 items 1 and 19): device-summary
    /// fields of `device.seen`, node results of `command.result`, items of `generic.alert`.
    /// Grants are evaluated as they are now, like visibility itself.
    fn redact(&self, mut event: Event) -> Event {
        if self.app.is_none() {
            return event;
        }
        let Some(device) = event.event.device_id.clone() else {
            return event;
        };
        let access = DeviceAccess {
            admin: false,
            grants: self.covering(&device),
        };
        let readable = |p: &NodePath| access.may_read(p);
        let data = &mut event.event.data;
        match event.event.kind {
            EventKind::DeviceSeen => {
                let protocol = self.devices.get(&device).map_or(Protocol::OmaDm, |d| d.1);
                let mut info: DeviceInfo = serde_json::from_value(data.take()).unwrap_or_default();
                info.redact(protocol, readable);
                *data = serde_json::to_value(info).unwrap_or_default();
            }
            EventKind::CommandResult => {
                if let Some(results) = data.get_mut("results").and_then(|r| r.as_array_mut()) {
                    results.retain(|r| node_readable(r.get("path"), &readable));
                }
            }
            EventKind::GenericAlert => {
                if let Some(items) = data.get_mut("items").and_then(|r| r.as_array_mut()) {
                    items.retain(|i| node_readable(i.get("source"), &readable));
                }
            }
            _ => {}
        }
        event
    }
}

/// Is the node named by a JSON path value readable? Unnamed or unparseable nodes are not.
fn node_readable(path: Option<&serde_json::Value>, readable: &impl Fn(&NodePath) -> bool) -> bool {
    path.and_then(|p| p.as_str())
        .and_then(|p| NodePath::parse(p).ok())
        .is_some_and(|p| readable(&p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnidm_core::{GrantId, GroupId, JobId, NodePath, Permission, SubtreePattern, Timestamp};

    fn grant(app: &str, subtrees: &[&str]) -> Grant {
        Grant {
            id: GrantId(1),
            app_id: AppId::new(app).unwrap(),
            permissions: vec![Permission::Get],
            subtrees: subtrees
                .iter()
                .map(|s| SubtreePattern::parse(s).unwrap())
                .collect(),
            group: GroupId::new("g").unwrap(),
            created_at: Timestamp(0),
        }
    }

    fn event(kind: EventKind, app: Option<&str>, device: bool, path: Option<&str>) -> NewEvent {
        NewEvent {
            kind,
            at: Timestamp(0),
            device_id: device.then(|| DeviceId::new("IMEI:1").unwrap()),
            app_id: app.map(|a| AppId::new(a).unwrap()),
            job_id: app.map(|_| JobId(1)),
            operation_id: None,
            path: path.map(|p| NodePath::parse(p).unwrap()),
            data: serde_json::Value::Null,
        }
    }

    #[test]
    fn device_events_need_a_covering_grant() {
        let care = AppId::new("care").unwrap();
        let g = grant("care", &["./DevInfo/**"]);
        let seen = event(EventKind::DeviceSeen, None, true, None);
        assert!(app_may_see(&care, &seen, &[&g]));
        assert!(
            !app_may_see(&care, &seen, &[]),
            "no grant covers the device"
        );
    }

    #[test]
    fn operation_events_are_for_their_submitter() {
        let care = AppId::new("care").unwrap();
        let g = grant("care", &["./**"]);
        for kind in [
            EventKind::OperationSubmitted,
            EventKind::OperationStateChanged,
            EventKind::CommandResult,
            // Issue 8 item 10: a package 0 for another application's operation.
            EventKind::NotificationSent,
        ] {
            assert!(app_may_see(
                &care,
                &event(kind, Some("care"), true, None),
                &[&g]
            ));
            assert!(
                !app_may_see(&care, &event(kind, Some("other"), true, None), &[&g]),
                "{kind}: another application's operation"
            );
            assert!(!app_may_see(&care, &event(kind, None, true, None), &[&g]));
        }
    }

    #[test]
    fn node_events_need_a_grant_on_the_node() {
        let care = AppId::new("care").unwrap();
        let info = grant("care", &["./DevInfo/**"]);
        let fumo = grant("care", &["./FUMO/**"]);
        let alert = event(EventKind::GenericAlert, None, true, Some("./FUMO/Pkg1"));
        assert!(!app_may_see(&care, &alert, &[&info]));
        assert!(app_may_see(&care, &alert, &[&info, &fumo]));
        let result = event(
            EventKind::CommandResult,
            Some("care"),
            true,
            Some("./DevDetail/FwV"),
        );
        assert!(!app_may_see(&care, &result, &[&info, &fumo]));
    }

    #[test]
    fn events_without_a_device_are_their_applications_or_admin_only() {
        let care = AppId::new("care").unwrap();
        assert!(!app_may_see(
            &care,
            &event(EventKind::AuthFailure, None, false, None),
            &[]
        ));
        assert!(app_may_see(
            &care,
            &event(EventKind::OperationSubmitted, Some("care"), false, None),
            &[]
        ));
        assert!(!app_may_see(
            &care,
            &event(EventKind::OperationSubmitted, Some("other"), false, None),
            &[]
        ));
    }

    /// Issue 8 item 10: every kind an application can be shown is either one of its own
    /// operation's events or an event about a device it covers; an event naming another
    /// application is never shown to a third one, whatever its kind.
    #[test]
    fn no_kind_shows_another_applications_activity() {
        let care = AppId::new("care").unwrap();
        let g = grant("care", &["./**"]);
        for kind in EventKind::ALL {
            let theirs = event(*kind, Some("other"), true, None);
            assert!(
                !app_may_see(&care, &theirs, &[&g]),
                "{kind} of another application's operation is hidden"
            );
        }
    }

    #[test]
    fn correlators_are_shown_to_their_application_only() {
        let e = Event {
            id: omnidm_core::EventId(7),
            event: NewEvent {
                data: serde_json::json!({"correlator": "omnidm:12:0", "items": []}),
                ..event(EventKind::GenericAlert, None, true, Some("./FUMO/Pkg1"))
            },
        };
        let admin = EventVisibility::admin();
        assert_eq!(admin.view(&e).data["correlator"], "omnidm:12:0");
        let care = EventVisibility {
            app: Some((AppId::new("care").unwrap(), Arc::new(AppGrants::default()))),
            devices: HashMap::new(),
        };
        let shown = care.view(&e);
        assert!(shown.data.get("correlator").is_none(), "{:?}", shown.data);
        assert!(shown.data.get("items").is_some());
    }
}
