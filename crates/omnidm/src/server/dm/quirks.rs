//! Quirk profiles: how the server copes with devices that deviate from OMA DM 1.2 (GUIDE §3).
//!
//! A device's profile is, in order: the one provisioned on it (`omnidm devices add --quirks`),
//! else the first configured rule matching what the device reported about itself in earlier
//! sessions (`./DevInfo/Man`, `Mod`, `DmV`), else the standard behaviour.

use omnidm_core::Device;
use omnidm_omadm::server::Quirks;
use serde::Deserialize;

/// Profile names an operator can use.
pub const PROFILES: &[&str] = &["standard", "constrained"];

/// The engine settings of a named profile; `None` for an unknown name.
pub fn profile(name: &str) -> Option<Quirks> {
    match name {
        "standard" => Some(Quirks::default()),
        // The independently written client of GUIDE §3: no multi-message packages, no large
        // objects, crashes on Sequence, answers Atomic without a status of its own.
        "constrained" => Some(Quirks::constrained_client()),
        _ => None,
    }
}

/// `[[dm.quirks]]` in `omnidm.toml`: a profile for devices whose self-description matches.
/// Each given field must match (case-insensitive; a trailing `*` matches any rest).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuirkRule {
    /// `./DevInfo/Man`.
    pub manufacturer: Option<String>,
    /// `./DevInfo/Mod`.
    pub model: Option<String>,
    /// `./DevInfo/DmV`.
    pub dm_version: Option<String>,
    /// The profile to apply.
    pub profile: String,
}

impl QuirkRule {
    fn matches(&self, device: &Device) -> bool {
        fn field(pattern: Option<&String>, value: Option<&String>) -> bool {
            let Some(pattern) = pattern else { return true };
            let Some(value) = value else { return false };
            let (pattern, value) = (pattern.to_lowercase(), value.to_lowercase());
            match pattern.strip_suffix('*') {
                Some(prefix) => value.starts_with(prefix),
                None => pattern == value,
            }
        }
        field(
            self.manufacturer.as_ref(),
            device.info.manufacturer.as_ref(),
        ) && field(self.model.as_ref(), device.info.model.as_ref())
            && field(self.dm_version.as_ref(), device.info.dm_version.as_ref())
    }
}

/// Checks the rules' profile names, so that a typo fails at start-up, not silently later.
pub fn validate(rules: &[QuirkRule]) -> Result<(), String> {
    match rules.iter().find(|r| profile(&r.profile).is_none()) {
        Some(r) => Err(format!(
            "quirk rule names unknown profile {:?}; known: {}",
            r.profile,
            PROFILES.join(", ")
        )),
        None => Ok(()),
    }
}

/// The engine settings for `device`.
pub fn for_device(device: &Device, rules: &[QuirkRule]) -> Quirks {
    let named = device.quirk_profile.as_deref().or_else(|| {
        rules
            .iter()
            .find(|r| r.matches(device))
            .map(|r| r.profile.as_str())
    });
    named.and_then(profile).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnidm_core::{DeviceId, NewDevice, Protocol, Timestamp};

    fn device(man: &str, model: &str, provisioned: Option<&str>) -> Device {
        let mut d = NewDevice::new(DeviceId::new("IMEI:1").unwrap(), Protocol::OmaDm);
        d.info.manufacturer = Some(man.into());
        d.info.model = Some(model.into());
        d.quirk_profile = provisioned.map(str::to_owned);
        d.into_device(Timestamp(0))
    }

    #[test]
    fn provisioned_profile_then_rules_then_standard() {
        let rules = vec![QuirkRule {
            manufacturer: Some("ACME".into()),
            model: Some("x1*".into()),
            dm_version: None,
            profile: "constrained".into(),
        }];
        let constrained = Quirks::constrained_client();
        assert_eq!(
            for_device(&device("acme", "X1-pro", None), &rules),
            constrained
        );
        assert_eq!(
            for_device(&device("acme", "Y2", None), &rules),
            Quirks::default()
        );
        assert_eq!(
            for_device(&device("acme", "X1", Some("standard")), &rules),
            Quirks::default()
        );
        assert_eq!(
            for_device(&device("other", "Z", Some("constrained")), &[]),
            constrained
        );
        assert!(validate(&rules).is_ok());
        let bad = vec![QuirkRule {
            profile: "nope".into(),
            ..rules[0].clone()
        }];
        assert!(validate(&bad).unwrap_err().contains("constrained"));
    }
}
