//! Package 0 delivery through an operator's push gateway (OMA DM Notification 1.2).
//!
//! An operation submitted with `notify` asks the device to call in now instead of at its next
//! scheduled session. The server builds the package 0 (digest from the stored server key and
//! the device's server nonce) and POSTs the binary message to the configured gateway URL, with
//! `{device_id}` replaced by the URL-encoded device id, as `application/vnd.syncml.notification`.
//! The gateway (an SMSC / WAP-push front end, or `omnidm sim --push-listen`) takes it from
//! there. Without a gateway, operations simply wait for the device's next session.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use omnidm_core::Device;
use omnidm_syncml::auth::{DigestKey, Nonce};
use omnidm_syncml::notification::{self, Initiator, Notification, ServerId, UiMode, Version};
use std::time::Duration;

/// Posts package 0 messages to a gateway.
#[derive(Clone)]
pub struct PushGateway {
    url_template: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl PushGateway {
    /// A gateway at `url_template` (must contain `{device_id}`, or the id is sent in the
    /// `X-Device-Id` header only).
    pub fn new(url_template: impl Into<String>) -> Self {
        Self {
            url_template: url_template.into(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Builds and sends a package 0 asking `device` to start a server-initiated session.
    pub async fn notify(&self, device: &Device, session_id: u16) -> anyhow::Result<()> {
        let body = package0(device, session_id)?;
        let url = self
            .url_template
            .replace("{device_id}", &url_encode(device.id.as_str()));
        let request = hyper::Request::post(&url)
            .header(hyper::header::CONTENT_TYPE, notification::CONTENT_TYPE)
            .header("x-device-id", device.id.as_str())
            .body(Full::new(Bytes::from(body)))
            .with_context(|| format!("push gateway URL {url:?}"))?;
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .with_context(|| format!("push gateway {url} did not answer within 10 s"))?
            .with_context(|| format!("cannot reach the push gateway at {url}"))?;
        let status = response.status();
        // Drain the body so the connection can be reused.
        let _ = response.into_body().collect().await;
        anyhow::ensure!(status.is_success(), "push gateway {url} answered {status}");
        Ok(())
    }
}

/// The package 0 for `device` (DM Notification 1.2 §6).
pub fn package0(device: &Device, session_id: u16) -> anyhow::Result<Vec<u8>> {
    let dm = device.dm.as_ref().context("device has no DM account")?;
    let key = DigestKey::from_b64(dm.server_id.clone(), &dm.server_key)
        .map_err(|e| anyhow::anyhow!("stored server key unusable: {e}"))?;
    let n = Notification {
        // DM Notification 1.2 §6.2.2.6: 0000001011 (decision 69).
        version: Version::DM_1_2,
        ui_mode: UiMode::NotSpecified,
        initiator: Initiator::Server,
        session_id,
        server_id: ServerId::new(dm.server_id.clone())
            .context("server id too long for package 0")?,
        vendor_specific: Vec::new(),
    };
    Ok(notification::encode_with_key(
        &n,
        &key,
        &Nonce::from_bytes(dm.server_nonce.clone()),
    ))
}

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnidm_core::{ClientAuth, DeviceId, DmAccount, NewDevice, Protocol, Timestamp};
    use omnidm_syncml::auth::Credentials;

    #[test]
    fn package0_verifies_with_the_devices_server_credentials() {
        let mut d = NewDevice::new(DeviceId::new("IMEI:1").unwrap(), Protocol::OmaDm);
        let mut account =
            DmAccount::from_secrets(ClientAuth::Md5, "dev", "c", "omnidm", "srv-secret");
        account.server_nonce = b"nonce-1".to_vec();
        d.dm = Some(account);
        let device = d.into_device(Timestamp(0));
        let bytes = package0(&device, 42).unwrap();
        let decoded = notification::decode(&bytes).unwrap();
        assert_eq!(decoded.notification.session_id, 42);
        assert_eq!(decoded.notification.initiator, Initiator::Server);
        // DM Notification 1.2 §6.2.2.6: the first 10 header bits are 0000001011 (decision 69).
        assert_eq!(bytes[16], 0b0000_0010, "version bits 9..2");
        assert_eq!(bytes[17] >> 6, 0b11, "version bits 1..0");
        let creds = Credentials::new("omnidm", "srv-secret");
        assert!(notification::verify_digest(
            &decoded,
            &creds,
            &Nonce::from_bytes(b"nonce-1".to_vec())
        ));
        assert!(!notification::verify_digest(
            &decoded,
            &creds,
            &Nonce::from_bytes(b"other".to_vec())
        ));
    }

    #[test]
    fn device_ids_are_url_encoded() {
        assert_eq!(url_encode("IMEI:35 9/x"), "IMEI%3A35%209%2Fx");
    }
}
