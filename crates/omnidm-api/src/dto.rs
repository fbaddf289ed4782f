//! Request and response bodies of the API (the OpenAPI schemas). Kept apart from the core
//! types so the wire format is designed for integrators (RFC 3339 times, flat command
//! objects, write-only secrets) and can evolve without touching the store.

use omnidm_core::{
    Application, Device, Grant, Group, GroupFilter, GroupKind, NodePath, OpCommand, Permission,
    Role, TreeEntry, TypedValue, UiKind, UiPrompt, ValueType,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::wire::{rfc3339, rfc3339_opt};

/// A page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Role of an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleDto {
    /// Manages applications, keys, grants, groups and devices.
    Admin,
    /// Reaches devices through its grants.
    Application,
}

impl From<Role> for RoleDto {
    fn from(r: Role) -> RoleDto {
        match r {
            Role::Admin => RoleDto::Admin,
            Role::Application => RoleDto::Application,
        }
    }
}

impl From<RoleDto> for Role {
    fn from(r: RoleDto) -> Role {
        match r {
            RoleDto::Admin => Role::Admin,
            RoleDto::Application => Role::Application,
        }
    }
}

/// An application.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppView {
    /// Id (slug).
    pub id: String,
    /// Description.
    pub description: String,
    /// Role.
    pub role: RoleDto,
    /// Requests per second, if limited.
    pub rate_limit: Option<u32>,
    /// Requests per UTC day, if limited.
    pub daily_quota: Option<u64>,
    /// Disabled applications cannot call the API.
    pub disabled: bool,
    /// Creation time.
    pub created_at: String,
}

impl From<&Application> for AppView {
    fn from(a: &Application) -> AppView {
        AppView {
            id: a.id.to_string(),
            description: a.description.clone(),
            role: a.role.into(),
            rate_limit: a.rate_limit,
            daily_quota: a.daily_quota,
            disabled: a.disabled,
            created_at: rfc3339(a.created_at),
        }
    }
}

/// Creates an application (and its first key).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Id: 1–64 of `a-z 0-9 - _`.
    #[schema(example = "customer-care")]
    pub id: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Role (default `application`).
    #[serde(default)]
    pub role: Option<RoleDto>,
    /// Requests per second.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub rate_limit: Option<u32>,
    /// Requests per UTC day.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub daily_quota: Option<u64>,
    /// Expiry of the first key, in seconds from now.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub key_expires_in: Option<u64>,
}

/// Edits an application.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchApp {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New rate limit (`null` = unlimited).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub rate_limit: Option<Option<u32>>,
    /// New daily quota (`null` = unlimited).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u64>, minimum = 1)]
    pub daily_quota: Option<Option<u64>>,
    /// Disable or enable.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// An API key as listed (never the secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    /// Public id (the part after `omk_`).
    pub id: String,
    /// Owner.
    pub app_id: String,
    /// Creation time.
    pub created_at: String,
    /// Expiry, if any.
    pub expires_at: Option<String>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
}

impl From<&omnidm_core::ApiKey> for KeyView {
    fn from(k: &omnidm_core::ApiKey) -> KeyView {
        KeyView {
            id: k.id.0.clone(),
            app_id: k.app_id.to_string(),
            created_at: rfc3339(k.created_at),
            expires_at: rfc3339_opt(k.expires_at),
            revoked_at: rfc3339_opt(k.revoked_at),
        }
    }
}

/// A new key: `key` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyView {
    /// The key record.
    #[serde(flatten)]
    pub info: KeyView,
    /// The key itself: send as `Authorization: Bearer <key>`. Shown once: absent when the
    /// response is a replay of an earlier request with the same `Idempotency-Key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Only in a replay: why `key` is absent (keys are shown once and never stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_withheld: Option<String>,
}

impl NewKeyView {
    /// The same record without the key text, as stored for `Idempotency-Key` replays.
    pub fn withheld(&self) -> NewKeyView {
        NewKeyView {
            info: self.info.clone(),
            key: None,
            key_withheld: Some(format!(
                "this is a replay of an earlier request with the same Idempotency-Key: the key was shown once, in the first response, and is not stored; if it was lost, revoke key {} and create another",
                self.info.id
            )),
        }
    }
}

/// Creates a key.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Expiry in seconds from now.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub expires_in: Option<u64>,
}

/// An application with its first key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApp {
    /// The application.
    pub app: AppView,
    /// Its first key (shown once).
    pub key: NewKeyView,
}

/// The caller: its application and grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// The application.
    pub app: AppView,
    /// The key used for this call.
    pub key_id: String,
    /// Its grants.
    pub grants: Vec<GrantView>,
}

/// A permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PermissionDto {
    /// Read nodes (device Get and tree-cache reads).
    Get,
    /// Replace.
    Replace,
    /// Add.
    Add,
    /// Delete.
    Delete,
    /// Exec.
    Exec,
    /// Copy (needed on both ends).
    Copy,
    /// User interaction.
    Ui,
}

impl From<PermissionDto> for Permission {
    fn from(p: PermissionDto) -> Permission {
        match p {
            PermissionDto::Get => Permission::Get,
            PermissionDto::Replace => Permission::Replace,
            PermissionDto::Add => Permission::Add,
            PermissionDto::Delete => Permission::Delete,
            PermissionDto::Exec => Permission::Exec,
            PermissionDto::Copy => Permission::Copy,
            PermissionDto::Ui => Permission::Ui,
        }
    }
}

impl From<Permission> for PermissionDto {
    fn from(p: Permission) -> PermissionDto {
        match p {
            Permission::Get => PermissionDto::Get,
            Permission::Replace => PermissionDto::Replace,
            Permission::Add => PermissionDto::Add,
            Permission::Delete => PermissionDto::Delete,
            Permission::Exec => PermissionDto::Exec,
            Permission::Copy => PermissionDto::Copy,
            Permission::Ui => PermissionDto::Ui,
        }
    }
}

/// A grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    /// Id.
    pub id: u64,
    /// Who.
    pub app_id: String,
    /// What.
    pub permissions: Vec<PermissionDto>,
    /// Where (URI patterns: `*` one segment, `**` a whole subtree).
    pub subtrees: Vec<String>,
    /// On which devices.
    pub group: String,
    /// Creation time.
    pub created_at: String,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> GrantView {
        GrantView {
            id: g.id.0,
            app_id: g.app_id.to_string(),
            permissions: g.permissions.iter().map(|p| (*p).into()).collect(),
            subtrees: g.subtrees.iter().map(|s| s.as_str().to_owned()).collect(),
            group: g.group.to_string(),
            created_at: rfc3339(g.created_at),
        }
    }
}

/// Creates a grant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    /// Who.
    pub app_id: String,
    /// What (at least one).
    #[schema(min_items = 1)]
    pub permissions: Vec<PermissionDto>,
    /// Where (at least one pattern), e.g. `./DevInfo/*`, `./Vendor/App42/**`.
    #[schema(min_items = 1)]
    pub subtrees: Vec<String>,
    /// On which devices (a group id).
    pub group: String,
}

/// A device filter (all set fields must match).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterDto {
    /// Exact manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Exact model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Exact firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// Tags the device must all carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl From<FilterDto> for GroupFilter {
    fn from(f: FilterDto) -> GroupFilter {
        GroupFilter {
            manufacturer: f.manufacturer,
            model: f.model,
            firmware_version: f.firmware_version,
            tags: f.tags,
        }
    }
}

impl From<&GroupFilter> for FilterDto {
    fn from(f: &GroupFilter) -> FilterDto {
        FilterDto {
            manufacturer: f.manufacturer.clone(),
            model: f.model.clone(),
            firmware_version: f.firmware_version.clone(),
            tags: f.tags.clone(),
        }
    }
}

/// Kind of group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupKindDto {
    /// Members added and removed explicitly.
    Static,
    /// Members are the devices matching `filter`.
    Filter,
}

/// A group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// Id (slug).
    pub id: String,
    /// Description.
    pub description: String,
    /// Static or filter-defined.
    pub kind: GroupKindDto,
    /// The filter (filter groups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterDto>,
    /// Creation time.
    pub created_at: String,
}

impl From<&Group> for GroupView {
    fn from(g: &Group) -> GroupView {
        let (kind, filter) = match &g.kind {
            GroupKind::Static => (GroupKindDto::Static, None),
            GroupKind::Filter { filter } => (GroupKindDto::Filter, Some(filter.into())),
        };
        GroupView {
            id: g.id.to_string(),
            description: g.description.clone(),
            kind,
            filter,
            created_at: rfc3339(g.created_at),
        }
    }
}

/// Creates a group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Id: 1–64 of `a-z 0-9 - _`.
    #[schema(example = "beta-testers")]
    pub id: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Static or filter.
    pub kind: GroupKindDto,
    /// Required for filter groups.
    #[serde(default)]
    pub filter: Option<FilterDto>,
    /// Initial members of a static group.
    #[serde(default)]
    pub members: Vec<String>,
}

/// Edits a group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchGroup {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New filter (filter groups only).
    #[serde(default)]
    pub filter: Option<FilterDto>,
}

/// Device ids to add to a static group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Members {
    /// Device ids.
    #[schema(min_items = 1)]
    pub devices: Vec<String>,
}

/// Client authentication scheme of a DM account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthDto {
    /// `syncml:auth-basic`.
    Basic,
    /// `syncml:auth-md5`.
    Md5,
    /// `syncml:auth-MAC` (HMAC-MD5).
    Hmac,
}

impl From<AuthDto> for omnidm_core::ClientAuth {
    fn from(a: AuthDto) -> Self {
        match a {
            AuthDto::Basic => omnidm_core::ClientAuth::Basic,
            AuthDto::Md5 => omnidm_core::ClientAuth::Md5,
            AuthDto::Hmac => omnidm_core::ClientAuth::Hmac,
        }
    }
}

impl From<omnidm_core::ClientAuth> for AuthDto {
    fn from(a: omnidm_core::ClientAuth) -> Self {
        match a {
            omnidm_core::ClientAuth::Basic => AuthDto::Basic,
            omnidm_core::ClientAuth::Md5 => AuthDto::Md5,
            omnidm_core::ClientAuth::Hmac => AuthDto::Hmac,
        }
    }
}

/// A DM account as provisioned. Secrets are write-only: the server keeps digests.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DmAccountInput {
    /// How the device authenticates (default md5).
    #[serde(default)]
    pub auth: Option<AuthDto>,
    /// The device's user name (default: the device id).
    #[serde(default)]
    pub client_name: Option<String>,
    /// The device's secret.
    pub client_secret: String,
    /// Our server id as the device knows it (default: the server's configured id).
    #[serde(default)]
    pub server_id: Option<String>,
    /// The secret we authenticate to the device with.
    pub server_secret: String,
}

/// A DM account as shown (no secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct DmAccountView {
    /// Client authentication.
    pub auth: AuthDto,
    /// The device's user name.
    pub client_name: String,
    /// Our server id.
    pub server_id: String,
}

/// Protocol a device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolDto {
    /// OMA DM 1.2.
    OmaDm,
    /// TR-069.
    Tr069,
    /// LwM2M.
    Lwm2m,
}

impl From<omnidm_core::Protocol> for ProtocolDto {
    fn from(p: omnidm_core::Protocol) -> Self {
        match p {
            omnidm_core::Protocol::OmaDm => ProtocolDto::OmaDm,
            omnidm_core::Protocol::Tr069 => ProtocolDto::Tr069,
            omnidm_core::Protocol::Lwm2m => ProtocolDto::Lwm2m,
        }
    }
}

impl From<ProtocolDto> for omnidm_core::Protocol {
    fn from(p: ProtocolDto) -> Self {
        match p {
            ProtocolDto::OmaDm => omnidm_core::Protocol::OmaDm,
            ProtocolDto::Tr069 => omnidm_core::Protocol::Tr069,
            ProtocolDto::Lwm2m => omnidm_core::Protocol::Lwm2m,
        }
    }
}

/// What the device reported about itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceInfoView {
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Firmware version.
    pub firmware_version: Option<String>,
    /// Software version.
    pub software_version: Option<String>,
    /// Hardware version.
    pub hardware_version: Option<String>,
    /// Protocol version (DM `DmV`).
    pub dm_version: Option<String>,
    /// Language.
    pub language: Option<String>,
    /// OEM.
    pub oem: Option<String>,
    /// Device type.
    pub device_type: Option<String>,
}

/// A device.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    /// Id, e.g. `IMEI:493005100592800`.
    pub id: String,
    /// Protocol.
    pub protocol: ProtocolDto,
    /// DM account (no secrets).
    pub dm: Option<DmAccountView>,
    /// What it reported.
    pub info: DeviceInfoView,
    /// Labels.
    pub tags: Vec<String>,
    /// Quirk profile applied.
    pub quirk_profile: Option<String>,
    /// First session.
    pub first_seen: Option<String>,
    /// Latest session.
    pub last_seen: Option<String>,
    /// Sessions so far.
    pub session_count: u64,
    /// Registration time.
    pub created_at: String,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> DeviceView {
        let i = &d.info;
        DeviceView {
            id: d.id.as_str().to_owned(),
            protocol: d.protocol.into(),
            dm: d.dm.as_ref().map(|a| DmAccountView {
                auth: a.client_auth.into(),
                client_name: a.client_name.clone(),
                server_id: a.server_id.clone(),
            }),
            info: DeviceInfoView {
                manufacturer: i.manufacturer.clone(),
                model: i.model.clone(),
                firmware_version: i.firmware_version.clone(),
                software_version: i.software_version.clone(),
                hardware_version: i.hardware_version.clone(),
                dm_version: i.dm_version.clone(),
                language: i.language.clone(),
                oem: i.oem.clone(),
                device_type: i.device_type.clone(),
            },
            tags: d.tags.clone(),
            quirk_profile: d.quirk_profile.clone(),
            first_seen: rfc3339_opt(d.first_seen),
            last_seen: rfc3339_opt(d.last_seen),
            session_count: d.session_count,
            created_at: rfc3339(d.created_at),
        }
    }
}

/// Provisions a device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    /// Id, e.g. `IMEI:493005100592800`.
    pub id: String,
    /// Protocol (default `oma_dm`).
    #[serde(default)]
    pub protocol: Option<ProtocolDto>,
    /// DM account.
    #[serde(default)]
    pub dm: Option<DmAccountInput>,
    /// Labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Quirk profile.
    #[serde(default)]
    pub quirk_profile: Option<String>,
}

/// Edits a device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDevice {
    /// Replaces the labels.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Sets the quirk profile (`null` clears).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub quirk_profile: Option<Option<String>>,
    /// Replaces the DM account (secrets write-only).
    #[serde(default)]
    pub dm: Option<DmAccountInput>,
}

/// One cached node.
#[derive(Debug, Serialize, ToSchema)]
pub struct TreeNodeView {
    /// The node.
    pub path: String,
    /// Value type.
    pub format: String,
    /// MIME type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Last known value (wire text); absent for interior or unknown nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When the server learned it.
    pub updated_at: String,
    /// Age of the value in seconds at the time of the response.
    pub age_seconds: f64,
}

impl TreeNodeView {
    /// The view of `e` at `now`.
    pub fn of(e: &TreeEntry, now: omnidm_core::Timestamp) -> TreeNodeView {
        TreeNodeView {
            path: e.path.to_string(),
            format: e.format.as_str().to_owned(),
            mime_type: e.mime_type.clone(),
            value: e.value.clone(),
            updated_at: rfc3339(e.updated_at),
            age_seconds: (now.millis() - e.updated_at.millis()).max(0) as f64 / 1000.0,
        }
    }
}

/// The cached tree below a node.
#[derive(Debug, Serialize, ToSchema)]
pub struct TreeView {
    /// The device.
    pub device_id: String,
    /// The requested root.
    pub path: String,
    /// Nodes (only those the caller may read), in path order.
    pub nodes: Vec<TreeNodeView>,
}

/// A command of an operation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CommandDto {
    /// Read a node.
    Get {
        /// Node (OMA DM URI, may carry `?list=…`).
        #[schema(example = "./DevInfo/Mod")]
        path: String,
    },
    /// Replace a node's value.
    Replace {
        /// Node.
        path: String,
        /// Value as text (base64 for `base64`).
        value: String,
        /// Value type (default `string`): string, int, unsigned_int, bool, float, base64, xml, date, time, date_time, node, null.
        #[serde(default)]
        format: Option<String>,
        /// MIME type.
        #[serde(default)]
        mime_type: Option<String>,
    },
    /// Add a node (interior when `value` is absent and format is `node`).
    Add {
        /// Node.
        path: String,
        /// Value.
        #[serde(default)]
        value: Option<String>,
        /// Value type.
        #[serde(default)]
        format: Option<String>,
        /// MIME type.
        #[serde(default)]
        mime_type: Option<String>,
    },
    /// Delete a node and its subtree.
    Delete {
        /// Node.
        path: String,
    },
    /// Execute a node.
    Exec {
        /// Node.
        path: String,
        /// Argument.
        #[serde(default)]
        data: Option<String>,
        /// Correlator for a later asynchronous report.
        #[serde(default)]
        correlator: Option<String>,
    },
    /// Copy a node.
    Copy {
        /// Source.
        from: String,
        /// Target.
        to: String,
    },
    /// All or nothing.
    Atomic {
        /// The commands.
        #[schema(no_recursion)]
        commands: Vec<CommandDto>,
    },
    /// In order.
    Sequence {
        /// The commands.
        #[schema(no_recursion)]
        commands: Vec<CommandDto>,
    },
    /// Ask the user: show a message.
    Display(UiDto),
    /// Ask the user: yes or no.
    Confirm(UiDto),
    /// Ask the user: free text.
    TextInput(UiDto),
    /// Ask the user: one choice.
    SingleChoice(UiDto),
    /// Ask the user: several choices.
    MultipleChoice(UiDto),
}

/// A user-interaction prompt (DM 1.2 alerts 1100–1104 and their options).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UiDto {
    /// The text shown.
    pub text: String,
    /// Choices (single/multiple choice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// MINDT, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_display_time: Option<u32>,
    /// MAXDT, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_display_time: Option<u32>,
    /// DR: default response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_response: Option<String>,
    /// MAXLEN of text input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u32>,
    /// IT: input type (A, N, D, T, P, I).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_type: Option<String>,
    /// ET: echo type (T, P).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<String>,
}

fn path(p: &str) -> Result<NodePath, ApiError> {
    let path = NodePath::dm(p).map_err(|e| ApiError::bad_request(format!("path {p:?}: {e}")))?;
    // A node name holding `/` or `?` travels escaped (`%2F`, `%3F`) and is checked against
    // the grants as one name, but a device that unescapes it would see other nodes or a
    // listing query (`./Vendor/x%2F..%2FDMAcc`, `./A/x%3Flist=TNDS`): refused (issue 8).
    if let NodePath::OmaDm(uri) = &path
        && uri.segments().any(|s| s.contains(['/', '?']))
    {
        return Err(ApiError::bad_request(format!(
            "path {p:?}: node names containing an escaped '/' or '?' (%2F, %3F) are not accepted"
        )));
    }
    Ok(path)
}

fn value(
    v: String,
    format: Option<&str>,
    mime_type: Option<String>,
) -> Result<TypedValue, ApiError> {
    let value_type = match format {
        None => ValueType::String,
        Some(f) => ValueType::parse(f).ok_or_else(|| ApiError::bad_request(format!("unknown format {f:?}; use string, int, unsigned_int, bool, float, base64, xml, date, time, date_time, node or null")))?,
    };
    let tv = TypedValue {
        value_type,
        data: v,
        mime_type,
    };
    tv.to_dm()
        .map_err(|e| ApiError::bad_request(format!("value does not fit its format: {e}")))?;
    Ok(tv)
}

impl CommandDto {
    /// The core command, validated (paths, formats, nesting).
    pub fn to_core(&self, depth: usize) -> Result<OpCommand, ApiError> {
        if depth > 8 {
            return Err(ApiError::bad_request(
                "atomic/sequence nested deeper than 8",
            ));
        }
        let ui = |kind: UiKind, u: &UiDto| -> Result<OpCommand, ApiError> {
            if matches!(kind, UiKind::SingleChoice | UiKind::MultipleChoice) && u.choices.is_empty()
            {
                return Err(ApiError::bad_request(
                    "a choice prompt needs at least one choice",
                ));
            }
            Ok(OpCommand::UserInteraction(UiPrompt {
                kind,
                text: u.text.clone(),
                choices: u.choices.clone(),
                min_display_time: u.min_display_time,
                max_display_time: u.max_display_time,
                default_response: u.default_response.clone(),
                max_len: u.max_len,
                input_type: u.input_type.clone(),
                echo: u.echo.clone(),
            }))
        };
        let list = |cs: &[CommandDto]| -> Result<Vec<OpCommand>, ApiError> {
            if cs.is_empty() {
                return Err(ApiError::bad_request(
                    "atomic/sequence needs at least one command",
                ));
            }
            cs.iter().map(|c| c.to_core(depth + 1)).collect()
        };
        Ok(match self {
            CommandDto::Get { path: p } => OpCommand::Get { path: path(p)? },
            CommandDto::Replace {
                path: p,
                value: v,
                format,
                mime_type,
            } => OpCommand::Replace {
                path: path(p)?,
                value: value(v.clone(), format.as_deref(), mime_type.clone())?,
            },
            CommandDto::Add {
                path: p,
                value: v,
                format,
                mime_type,
            } => OpCommand::Add {
                path: path(p)?,
                value: match (v, format.as_deref()) {
                    (None, None) => None,
                    (None, Some(f)) => Some(value(String::new(), Some(f), mime_type.clone())?),
                    (Some(v), f) => Some(value(v.clone(), f, mime_type.clone())?),
                },
            },
            CommandDto::Delete { path: p } => OpCommand::Delete { path: path(p)? },
            CommandDto::Exec {
                path: p,
                data,
                correlator,
            } => OpCommand::Exec {
                path: path(p)?,
                data: data.clone(),
                correlator: correlator.clone(),
            },
            CommandDto::Copy { from, to } => OpCommand::Copy {
                from: path(from)?,
                to: path(to)?,
            },
            CommandDto::Atomic { commands } => OpCommand::Atomic(list(commands)?),
            CommandDto::Sequence { commands } => OpCommand::Sequence(list(commands)?),
            CommandDto::Display(u) => ui(UiKind::Display, u)?,
            CommandDto::Confirm(u) => ui(UiKind::Confirm, u)?,
            CommandDto::TextInput(u) => ui(UiKind::TextInput, u)?,
            CommandDto::SingleChoice(u) => ui(UiKind::SingleChoice, u)?,
            CommandDto::MultipleChoice(u) => ui(UiKind::MultipleChoice, u)?,
        })
    }

    /// The API form of a core command.
    pub fn from_core(c: &OpCommand) -> CommandDto {
        let ui = |u: &UiPrompt| UiDto {
            text: u.text.clone(),
            choices: u.choices.clone(),
            min_display_time: u.min_display_time,
            max_display_time: u.max_display_time,
            default_response: u.default_response.clone(),
            max_len: u.max_len,
            input_type: u.input_type.clone(),
            echo: u.echo.clone(),
        };
        match c {
            OpCommand::Get { path } => CommandDto::Get {
                path: path.to_string(),
            },
            OpCommand::Replace { path, value } => CommandDto::Replace {
                path: path.to_string(),
                value: value.data.clone(),
                format: Some(value.value_type.as_str().to_owned()),
                mime_type: value.mime_type.clone(),
            },
            OpCommand::Add { path, value } => CommandDto::Add {
                path: path.to_string(),
                value: value.as_ref().map(|v| v.data.clone()),
                format: value.as_ref().map(|v| v.value_type.as_str().to_owned()),
                mime_type: value.as_ref().and_then(|v| v.mime_type.clone()),
            },
            OpCommand::Delete { path } => CommandDto::Delete {
                path: path.to_string(),
            },
            OpCommand::Exec {
                path,
                data,
                correlator,
            } => CommandDto::Exec {
                path: path.to_string(),
                data: data.clone(),
                correlator: correlator.clone(),
            },
            OpCommand::Copy { from, to } => CommandDto::Copy {
                from: from.to_string(),
                to: to.to_string(),
            },
            OpCommand::Atomic(cs) => CommandDto::Atomic {
                commands: cs.iter().map(CommandDto::from_core).collect(),
            },
            OpCommand::Sequence(cs) => CommandDto::Sequence {
                commands: cs.iter().map(CommandDto::from_core).collect(),
            },
            OpCommand::UserInteraction(u) => match u.kind {
                UiKind::Display => CommandDto::Display(ui(u)),
                UiKind::Confirm => CommandDto::Confirm(ui(u)),
                UiKind::TextInput => CommandDto::TextInput(ui(u)),
                UiKind::SingleChoice => CommandDto::SingleChoice(ui(u)),
                UiKind::MultipleChoice => CommandDto::MultipleChoice(ui(u)),
            },
        }
    }
}
