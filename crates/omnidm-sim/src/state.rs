//! What simulated devices keep between runs of the simulator: the nonces of each device's DM
//! account and its session counter, in a JSON file (issue 10, "What a new user met" item 2).
//!
//! A real device keeps its nonces in its DM account across sessions and power cycles (DM
//! Security 1.2 §5: the nonce one side issues is the one the other side's next credentials
//! use). A simulator that forgot them on exit met the server with empty nonces on every new
//! run: each session began with a challenge both ways. With this file a later run
//! authenticates at first try; a file that is missing, stale or for another server only
//! costs the challenge (the server and the device resynchronise through `Chal`).
//!
//! What it does not keep: the tree and deferred Generic Alerts (a run starts from the
//! standard tree), or anything secret (secrets are derived from the seed).
//!
//! The file is written whole to a temporary file beside it and renamed over it, so a crash
//! never leaves half a file; an unreadable file is reported, never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use omnidm_syncml::auth::Nonce;
use serde::{Deserialize, Serialize};

/// Format version of the file.
const VERSION: u32 = 1;

/// The kept state of a fleet, by device id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetState {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Per device id.
    pub devices: BTreeMap<String, DeviceState>,
}

/// What one device keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The server URI the nonces belong to: they are restored only for the same server.
    pub server: String,
    /// The nonce the server gave the device (for the device's credentials), base64.
    pub client_nonce: String,
    /// The nonce the device gave the server (to check the server), base64.
    pub server_nonce: String,
    /// Sessions started so far (the next SessionID follows on).
    pub sessions: u64,
}

impl DeviceState {
    /// The state of a device now.
    pub fn new(server: &str, client_nonce: &Nonce, server_nonce: &Nonce, sessions: u64) -> Self {
        DeviceState {
            server: server.to_owned(),
            client_nonce: client_nonce.to_b64(),
            server_nonce: server_nonce.to_b64(),
            sessions,
        }
    }

    /// The nonces, `None` when the file holds something that is not base64.
    pub fn nonces(&self) -> Option<(Nonce, Nonce)> {
        Some((
            Nonce::from_b64(&self.client_nonce).ok()?,
            Nonce::from_b64(&self.server_nonce).ok()?,
        ))
    }
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a state file of this version.
    #[error("{path} is not a simulator state file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl FleetState {
    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<FleetState, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FleetState::default()),
            Err(source) => {
                return Err(StateError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let state: FleetState =
            serde_json::from_slice(&bytes).map_err(|e| StateError::Invalid {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        if state.version != VERSION {
            return Err(StateError::Invalid {
                path: path.to_owned(),
                reason: format!("version {} (expected {VERSION})", state.version),
            });
        }
        Ok(state)
    }

    /// Writes the state to `path` (a temporary file renamed over it; the directory is
    /// created if needed; owner-only permissions where the platform has them).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut state = self.clone();
        state.version = VERSION;
        let bytes = serde_json::to_vec_pretty(&state).map_err(|e| StateError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(io)?;
            std::io::Write::write_all(&mut f, &bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("omnidm-sim-state-{}", std::process::id()));
        let path = dir.join("nested").join("state.json");
        assert_eq!(FleetState::load(&path).unwrap(), FleetState::default());
        let mut s = FleetState::default();
        s.devices.insert(
            "IMEI:1".into(),
            DeviceState::new(
                "http://127.0.0.1:1/dm",
                &Nonce::from_bytes(b"c".to_vec()),
                &Nonce::from_bytes(b"s".to_vec()),
                3,
            ),
        );
        s.save(&path).unwrap();
        let back = FleetState::load(&path).unwrap();
        assert_eq!(back.devices, s.devices);
        assert_eq!(
            back.devices["IMEI:1"].nonces(),
            Some((
                Nonce::from_bytes(b"c".to_vec()),
                Nonce::from_bytes(b"s".to_vec())
            ))
        );
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            FleetState::load(&path),
            Err(StateError::Invalid { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
