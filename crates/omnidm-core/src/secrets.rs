//! Which nodes hold credentials: values no application ever reads through the WSI, not even
//! an admin (issue 8). The server keeps what it needs to authenticate a device (digest keys,
//! in the device's account); the device's own copy of a secret has no business leaving it.
//!
//! The rule is applied where values enter the server (session results, generic alerts, the
//! tree cache: a credential's value is dropped before it is stored) and where reads are asked
//! for (a Get of a credential node is refused before it is queued), so no later path — results,
//! events, webhooks, the cached tree — can carry one.
//!
//! This is a table per path syntax, not protocol logic; each entry names the specification
//! that defines the node.

use crate::path::NodePath;

/// OMA DM node names that hold secrets wherever they appear: DM 1.2 DMAcc
/// (`<x>/AppAuth/<x>/AAuthSecret`, `AAuthData`: the password and the nonce/key data, OMA DM
/// StdObj 1.2 §5.3.1), DM 1.1 DMAcc (`ClientPW`, `ServerPW`, `ClientNonce`, `ServerNonce`),
/// the Connectivity MO (`NAP/<x>/AuthInfo/AuthSecret`) and the usual Wi-Fi and vendor names
/// (`PreSharedKey`, `WEPKey`, `Password`, `Passphrase`). Matched anywhere in the tree,
/// because a device may keep an account under a vendor path.
const DM_SECRET_NAMES: [&str; 11] = [
    "AAuthSecret",
    "AAuthData",
    "ClientPW",
    "ServerPW",
    "ClientNonce",
    "ServerNonce",
    "AuthSecret",
    "PreSharedKey",
    "WEPKey",
    "Password",
    "Passphrase",
];

/// TR-069 parameter names that hold secrets (TR-069 Amendment 6 §A.3.2.1 reads them as empty
/// strings, TR-181 marks them "hidden"): `ManagementServer.Password`,
/// `ConnectionRequestPassword`, `STUNPassword`, `Users.User.{i}.Password`, Wi-Fi
/// `KeyPassphrase`, `PreSharedKey`, `WEPKey`, `SAEPassphrase`, `RadiusSecret`, …
fn tr069_is_secret(name: &str) -> bool {
    name.ends_with("Password")
        || name.ends_with("Passphrase")
        || name.ends_with("Secret")
        || matches!(name, "PreSharedKey" | "WEPKey" | "PSK" | "Key")
}

/// LwM2M resources that hold keys (LwM2M 1.1 Appendix E.1, object 0 "LwM2M Security":
/// 3 Public Key or Identity, 5 Secret Key, 8 SMS Binding Secret Key(s); object 21 "OSCORE":
/// 0 Master Secret).
fn lwm2m_is_secret(object: u16, resource: u16) -> bool {
    matches!((object, resource), (0, 3 | 5 | 8) | (21, 0))
}

impl NodePath {
    /// Does this node hold a credential (its value is never read through the WSI)?
    pub fn is_credential(&self) -> bool {
        match self {
            NodePath::OmaDm(uri) => uri
                .segments()
                .any(|s| DM_SECRET_NAMES.iter().any(|n| n.eq_ignore_ascii_case(s))),
            NodePath::Tr069(segments) => segments.last().is_some_and(|n| tr069_is_secret(n)),
            NodePath::Lwm2m(ids) => match ids.as_slice() {
                [object, _, resource, ..] => lwm2m_is_secret(*object, *resource),
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::path::NodePath;

    fn p(s: &str) -> NodePath {
        NodePath::parse(s).unwrap()
    }

    #[test]
    fn credentials_of_every_protocol_are_recognised() {
        for secret in [
            "./DMAcc/srv1/AppAuth/SRVCRED/AAuthSecret",
            "./DMAcc/srv1/AppAuth/CLCRED/AAuthData",
            "./DMAcc/srv1/AppAuth/CLCRED/aauthsecret",
            "./SyncML/DMAcc/1/ClientPW",
            "./Vendor/Acme/Accounts/x/AAuthSecret",
            "./NAP/x/AuthInfo/AuthSecret",
            "./Vendor/WLAN/1/PreSharedKey",
            "Device.ManagementServer.Password",
            "Device.ManagementServer.ConnectionRequestPassword",
            "Device.WiFi.AccessPoint.1.Security.KeyPassphrase",
            "Device.WiFi.AccessPoint.1.Security.PreSharedKey",
            "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.WEPKey.1.WEPKey",
            "/0/1/5",
            "/0/1/3",
            "/0/0/8/0",
            "/21/0/0",
        ] {
            assert!(p(secret).is_credential(), "{secret}");
        }
        for public in [
            "./DMAcc/srv1/AppAuth/SRVCRED/AAuthName",
            "./DMAcc/srv1/ServerID",
            "./DMAcc/srv1/AppAuth",
            "./DevInfo/Mod",
            "Device.ManagementServer.URL",
            "Device.ManagementServer.Username",
            "Device.DeviceInfo.SoftwareVersion",
            "/0/1/0",
            "/0/1",
            "/3/0/3",
            "/1/0/5",
        ] {
            assert!(!p(public).is_credential(), "{public}");
        }
    }
}
