//! Devices, their identity, reported information and DM account.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::path::NodePath;
use crate::time::Timestamp;

/// Longest accepted device id, in bytes (DevId values are short; the cap protects indexes).
pub const MAX_DEVICE_ID_LEN: usize = 256;

/// A device identifier as the device states it (OMA DM `DevId`, e.g. `IMEI:493005100592800`;
/// TR-069 `OUI-ProductClass-SerialNumber`; LwM2M endpoint name).
///
/// Validated on construction: 1..=256 bytes, no control characters, no surrounding white
/// space. Case is preserved and significant (DevIds are compared exactly).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

/// Why a string is not a [`DeviceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    /// Empty string.
    #[error("device id is empty")]
    Empty,
    /// Longer than [`MAX_DEVICE_ID_LEN`].
    #[error("device id is {0} bytes long (max {MAX_DEVICE_ID_LEN})")]
    TooLong(usize),
    /// Contains a control character or surrounding white space.
    #[error("device id contains control characters or surrounding white space")]
    BadChar,
}

impl DeviceId {
    /// Validates `s` as a device id.
    pub fn new(s: impl Into<String>) -> Result<DeviceId, DeviceIdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(DeviceIdError::Empty);
        }
        if s.len() > MAX_DEVICE_ID_LEN {
            return Err(DeviceIdError::TooLong(s.len()));
        }
        if s.chars().any(char::is_control) || s.trim() != s {
            return Err(DeviceIdError::BadChar);
        }
        Ok(DeviceId(s))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({:?})", self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceId::new(s)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = DeviceIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DeviceId::new(s)
    }
}

impl From<DeviceId> for String {
    fn from(d: DeviceId) -> String {
        d.0
    }
}

/// The management protocol a device speaks. Decides how its paths and values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OMA DM 1.2 (sessions opened by the device; package 0 to ask for one).
    OmaDm,
    /// TR-069 CWMP (sessions opened by the CPE; connection request to ask for one).
    Tr069,
    /// OMA LwM2M (registered devices are reachable while their registration lives).
    Lwm2m,
}

impl Protocol {
    /// Stable lowercase name, used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OmaDm => "oma_dm",
            Protocol::Tr069 => "tr069",
            Protocol::Lwm2m => "lwm2m",
        }
    }

    /// Inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Protocol> {
        [Protocol::OmaDm, Protocol::Tr069, Protocol::Lwm2m]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the device reports about itself (OMA DM DevInfo/DevDetail, TR-069 DeviceInfo,
/// LwM2M object 3). Every field is optional: devices report what they report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceInfo {
    /// `./DevInfo/Man`, `DeviceInfo.Manufacturer`, `/3/0/0`.
    pub manufacturer: Option<String>,
    /// `./DevInfo/Mod`, `DeviceInfo.ModelName`, `/3/0/1`.
    pub model: Option<String>,
    /// `./DevDetail/FwV` (or `SwV`), `DeviceInfo.SoftwareVersion`, `/3/0/3`.
    pub firmware_version: Option<String>,
    /// `./DevDetail/SwV`.
    pub software_version: Option<String>,
    /// `./DevDetail/HwV`, `DeviceInfo.HardwareVersion`, `/3/0/18`.
    pub hardware_version: Option<String>,
    /// `./DevInfo/DmV` (e.g. `1.2`); protocol version for other protocols.
    pub dm_version: Option<String>,
    /// `./DevInfo/Lang`.
    pub language: Option<String>,
    /// `./DevDetail/OEM`.
    pub oem: Option<String>,
    /// `./DevDetail/DevTyp`.
    pub device_type: Option<String>,
    /// Anything else worth keeping (vendor extensions), by name.
    pub extra: BTreeMap<String, String>,
}

impl DeviceInfo {
    /// Fields of `newer` that are set replace ours; the rest stay. A session that reports
    /// only `Man`/`Mod` must not wipe the firmware version learned earlier.
    pub fn merge(&mut self, newer: &DeviceInfo) {
        fn take(dst: &mut Option<String>, src: &Option<String>) {
            if src.is_some() {
                dst.clone_from(src);
            }
        }
        take(&mut self.manufacturer, &newer.manufacturer);
        take(&mut self.model, &newer.model);
        take(&mut self.firmware_version, &newer.firmware_version);
        take(&mut self.software_version, &newer.software_version);
        take(&mut self.hardware_version, &newer.hardware_version);
        take(&mut self.dm_version, &newer.dm_version);
        take(&mut self.language, &newer.language);
        take(&mut self.oem, &newer.oem);
        take(&mut self.device_type, &newer.device_type);
        for (k, v) in &newer.extra {
            self.extra.insert(k.clone(), v.clone());
        }
    }

    /// Keeps only the fields whose source node `readable` allows (issue 8: a device summary
    /// must not show what a Get of the same node would refuse). Fields without a known source
    /// node in the device's protocol, and vendor extras, are dropped.
    pub fn redact(&mut self, protocol: Protocol, readable: impl Fn(&NodePath) -> bool) {
        let fields: [(&mut Option<String>, [&str; 3]); 9] = [
            (
                &mut self.manufacturer,
                ["./DevInfo/Man", "Device.DeviceInfo.Manufacturer", "/3/0/0"],
            ),
            (
                &mut self.model,
                ["./DevInfo/Mod", "Device.DeviceInfo.ModelName", "/3/0/1"],
            ),
            (
                &mut self.firmware_version,
                [
                    "./DevDetail/FwV",
                    "Device.DeviceInfo.SoftwareVersion",
                    "/3/0/3",
                ],
            ),
            (
                &mut self.software_version,
                [
                    "./DevDetail/SwV",
                    "Device.DeviceInfo.SoftwareVersion",
                    "/3/0/19",
                ],
            ),
            (
                &mut self.hardware_version,
                [
                    "./DevDetail/HwV",
                    "Device.DeviceInfo.HardwareVersion",
                    "/3/0/18",
                ],
            ),
            (&mut self.dm_version, ["./DevInfo/DmV", "", ""]),
            (&mut self.language, ["./DevInfo/Lang", "", ""]),
            (
                &mut self.oem,
                ["./DevDetail/OEM", "Device.DeviceInfo.ManufacturerOUI", ""],
            ),
            (
                &mut self.device_type,
                [
                    "./DevDetail/DevTyp",
                    "Device.DeviceInfo.ProductClass",
                    "/3/0/17",
                ],
            ),
        ];
        let column = match protocol {
            Protocol::OmaDm => 0,
            Protocol::Tr069 => 1,
            Protocol::Lwm2m => 2,
        };
        for (field, sources) in fields {
            let source = sources[column];
            let allowed = !source.is_empty()
                && NodePath::parse_for(protocol, source).is_ok_and(|p| readable(&p));
            if !allowed {
                *field = None;
            }
        }
        self.extra.clear();
    }
}

/// How the device must authenticate to the server (DM Security 1.2 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `syncml:auth-basic`: the device sends `b64(name:secret)`; we check it against the key.
    Basic,
    /// `syncml:auth-md5`: MD5 digest with a nonce.
    Md5,
    /// `syncml:auth-MAC`: HMAC-MD5 in the `x-syncml-hmac` HTTP header.
    Hmac,
}

impl ClientAuth {
    /// Stable lowercase name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Basic => "basic",
            ClientAuth::Md5 => "md5",
            ClientAuth::Hmac => "hmac",
        }
    }

    /// Inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<ClientAuth> {
        [ClientAuth::Basic, ClientAuth::Md5, ClientAuth::Hmac]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// `b64(md5(name ":" secret))`, the value every DM 1.2 digest is built from
/// (DM Security 1.2 §5.3.2: `H(B64(H(username:password)):nonce)`; the HMAC form uses the
/// same inner term). Holding this instead of the secret is enough for MD5, HMAC, Basic
/// verification and package-0 digests, and a leaked database does not reveal the secret.
pub fn dm_key(name: &str, secret: &str) -> String {
    let mut h = Md5::new();
    h.update(name.as_bytes());
    h.update(b":");
    h.update(secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// The nonces of one device, as they must be used in its next session.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nonces {
    /// The nonce we expect the device to use in its next `Cred` (we sent it as `NextNonce`).
    pub client_nonce: Vec<u8>,
    /// The nonce the device gave us for our next `Cred`.
    pub server_nonce: Vec<u8>,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("client_nonce_len", &self.client_nonce.len())
            .field("server_nonce_len", &self.server_nonce.len())
            .finish()
    }
}

/// The OMA DM account of a device: both directions of authentication. Keys are
/// `b64(md5(id:secret))` digests (see [`dm_key`]), never plaintext secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmAccount {
    /// The scheme the device must use.
    pub client_auth: ClientAuth,
    /// The device's user name in `Cred` (often the DevId).
    pub client_name: String,
    /// `b64(md5(client_name:client_secret))`.
    pub client_key: String,
    /// Our `ServerID` as the device knows it.
    pub server_id: String,
    /// `b64(md5(server_id:server_secret))`.
    pub server_key: String,
    /// The next nonce we expect the device to use.
    pub client_nonce: Vec<u8>,
    /// The nonce the device gave us.
    pub server_nonce: Vec<u8>,
}

impl DmAccount {
    /// Builds an account from plaintext secrets; only their digests are kept. Nonces start
    /// empty (the first session resynchronises them with a challenge).
    pub fn from_secrets(
        client_auth: ClientAuth,
        client_name: impl Into<String>,
        client_secret: &str,
        server_id: impl Into<String>,
        server_secret: &str,
    ) -> DmAccount {
        let client_name = client_name.into();
        let server_id = server_id.into();
        DmAccount {
            client_auth,
            client_key: dm_key(&client_name, client_secret),
            server_key: dm_key(&server_id, server_secret),
            client_name,
            server_id,
            client_nonce: Vec::new(),
            server_nonce: Vec::new(),
        }
    }

    /// Replaces the client secret (rotation); the key is recomputed.
    pub fn set_client_secret(&mut self, secret: &str) {
        self.client_key = dm_key(&self.client_name, secret);
    }

    /// Replaces the server secret (rotation); the key is recomputed.
    pub fn set_server_secret(&mut self, secret: &str) {
        self.server_key = dm_key(&self.server_id, secret);
    }

    /// True if `secret` is the client's secret (for Basic authentication). Constant-time
    /// comparison is the verifier's job where timing matters; this is for provisioning checks.
    pub fn client_secret_matches(&self, secret: &str) -> bool {
        dm_key(&self.client_name, secret) == self.client_key
    }

    /// The nonces as one value.
    pub fn nonces(&self) -> Nonces {
        Nonces {
            client_nonce: self.client_nonce.clone(),
            server_nonce: self.server_nonce.clone(),
        }
    }
}

impl fmt::Debug for DmAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmAccount")
            .field("client_auth", &self.client_auth)
            .field("client_name", &self.client_name)
            .field("client_key", &"<hidden>")
            .field("server_id", &self.server_id)
            .field("server_key", &"<hidden>")
            .field("client_nonce", &"<hidden>")
            .field("server_nonce", &"<hidden>")
            .finish()
    }
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Identity (primary key).
    pub id: DeviceId,
    /// The protocol it speaks.
    pub protocol: Protocol,
    /// OMA DM account; `None` for other protocols or devices enrolled without one.
    pub dm: Option<DmAccount>,
    /// What it reported last (merged over sessions).
    pub info: DeviceInfo,
    /// Free-form labels for grouping (sorted, unique).
    pub tags: Vec<String>,
    /// Name of the quirk profile the adapter applies (learned from Man/Mod/DmV or set).
    pub quirk_profile: Option<String>,
    /// First session; `None` until the device has called in.
    pub first_seen: Option<Timestamp>,
    /// Latest session start.
    pub last_seen: Option<Timestamp>,
    /// Sessions so far.
    pub session_count: u64,
    /// When the registry learned about it.
    pub created_at: Timestamp,
}

/// What the caller supplies to register a device (provisioning or first contact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDevice {
    /// Identity.
    pub id: DeviceId,
    /// Protocol.
    pub protocol: Protocol,
    /// DM account, if provisioned with one.
    pub dm: Option<DmAccount>,
    /// Known information (often empty when provisioned ahead).
    pub info: DeviceInfo,
    /// Labels.
    pub tags: Vec<String>,
    /// Quirk profile.
    pub quirk_profile: Option<String>,
}

impl NewDevice {
    /// A provisioned device with nothing but an id and a protocol.
    pub fn new(id: DeviceId, protocol: Protocol) -> NewDevice {
        NewDevice {
            id,
            protocol,
            dm: None,
            info: DeviceInfo::default(),
            tags: Vec::new(),
            quirk_profile: None,
        }
    }

    /// The device record as created at `now` (not yet seen).
    pub fn into_device(self, now: Timestamp) -> Device {
        let mut tags = self.tags;
        tags.sort();
        tags.dedup();
        Device {
            id: self.id,
            protocol: self.protocol,
            dm: self.dm,
            info: self.info,
            tags,
            quirk_profile: self.quirk_profile,
            first_seen: None,
            last_seen: None,
            session_count: 0,
            created_at: now,
        }
    }
}

impl Device {
    /// A device created from its first contact (open enrolment): seen once, now.
    pub fn from_first_contact(
        id: DeviceId,
        protocol: Protocol,
        dm: Option<DmAccount>,
        info: DeviceInfo,
        now: Timestamp,
    ) -> Device {
        Device {
            id,
            protocol,
            dm,
            info,
            tags: Vec::new(),
            quirk_profile: None,
            first_seen: Some(now),
            last_seen: Some(now),
            session_count: 1,
            created_at: now,
        }
    }

    /// Applies a contact at `now`: merges `info`, bumps the counters.
    pub fn record_contact(&mut self, info: &DeviceInfo, now: Timestamp) {
        self.info.merge(info);
        self.first_seen.get_or_insert(now);
        self.last_seen = Some(self.last_seen.map_or(now, |l| l.max(now)));
        self.session_count = self.session_count.saturating_add(1);
    }
}

/// Which devices a listing returns. Unset fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceFilter {
    /// Exact manufacturer.
    pub manufacturer: Option<String>,
    /// Exact model.
    pub model: Option<String>,
    /// Exact firmware version.
    pub firmware_version: Option<String>,
    /// Carries this tag.
    pub tag: Option<String>,
    /// Speaks this protocol.
    pub protocol: Option<Protocol>,
}

/// One page of a device listing, in device-id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePage {
    /// The devices.
    pub devices: Vec<Device>,
    /// Pass as `after` to get the next page; `None` when this was the last.
    pub next: Option<DeviceId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 8 item 19: a summary shows only the fields whose source node is readable.
    #[test]
    fn redaction_follows_the_source_nodes() {
        let mut info = DeviceInfo {
            manufacturer: Some("Acme".into()),
            model: Some("M1".into()),
            firmware_version: Some("1.0".into()),
            language: Some("en".into()),
            ..DeviceInfo::default()
        };
        info.extra.insert("x".into(), "y".into());
        let mut dm = info.clone();
        dm.redact(Protocol::OmaDm, |p| {
            p.to_string().starts_with("./DevInfo/M")
        });
        assert_eq!(dm.manufacturer.as_deref(), Some("Acme"));
        assert_eq!(dm.model.as_deref(), Some("M1"));
        assert_eq!((dm.firmware_version, dm.language), (None, None));
        assert!(dm.extra.is_empty());
        let mut lw = info.clone();
        lw.redact(Protocol::Lwm2m, |p| p.to_string() == "/3/0/3");
        assert_eq!(
            (lw.manufacturer, lw.firmware_version.as_deref()),
            (None, Some("1.0"))
        );
        let mut all = info;
        all.redact(Protocol::OmaDm, |_| true);
        assert!(all.extra.is_empty() && all.language.is_some());
    }

    #[test]
    fn device_id_validation() {
        assert!(DeviceId::new("IMEI:493005100592800").is_ok());
        assert_eq!(DeviceId::new(""), Err(DeviceIdError::Empty));
        assert_eq!(DeviceId::new(" x"), Err(DeviceIdError::BadChar));
        assert_eq!(DeviceId::new("a\nb"), Err(DeviceIdError::BadChar));
        assert!(matches!(
            DeviceId::new("x".repeat(300)),
            Err(DeviceIdError::TooLong(300))
        ));
        let json = serde_json::to_string(&DeviceId::new("IMEI:1").unwrap()).unwrap();
        assert_eq!(json, "\"IMEI:1\"");
        assert!(serde_json::from_str::<DeviceId>("\"\"").is_err());
    }

    #[test]
    fn key_is_b64_md5_of_name_colon_secret() {
        // checked against `printf user:pass | md5sum | xxd -r -p | base64`
        assert_eq!(dm_key("user", "pass"), "IaOShYhKJo1kWOP96wi+rA==");
        let acc = DmAccount::from_secrets(ClientAuth::Md5, "dev", "s3cret", "srv", "other");
        assert!(acc.client_secret_matches("s3cret"));
        assert!(!acc.client_secret_matches("wrong"));
        let dbg = format!("{acc:?}");
        assert!(!dbg.contains(&acc.client_key) && !dbg.contains(&acc.server_key));
        assert!(!dbg.contains("s3cret"));
    }

    #[test]
    fn contact_merges_and_counts() {
        let id = DeviceId::new("IMEI:1").unwrap();
        let mut d = NewDevice::new(id, Protocol::OmaDm).into_device(Timestamp(1));
        let info = DeviceInfo {
            firmware_version: Some("1.0".into()),
            ..Default::default()
        };
        d.record_contact(&info, Timestamp(10));
        let info2 = DeviceInfo {
            model: Some("M".into()),
            ..Default::default()
        };
        d.record_contact(&info2, Timestamp(20));
        assert_eq!(d.first_seen, Some(Timestamp(10)));
        assert_eq!(d.last_seen, Some(Timestamp(20)));
        assert_eq!(d.session_count, 2);
        assert_eq!(d.info.firmware_version.as_deref(), Some("1.0"));
        assert_eq!(d.info.model.as_deref(), Some("M"));
    }
}
