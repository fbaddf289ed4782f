//! Applications of the Web Services Interface and their API keys.
//!
//! An application is an external system (customer-care tool, provisioning system,
//! third-party provider) that calls the WSI. It authenticates with API keys; a key is
//! shown once at creation and stored only as an argon2 hash (the hashing itself is the API
//! crate's job: the core holds the PHC string and never a key).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Application identifier: a short slug chosen at creation (`customer-care`,
/// `acme-provisioning`). Lowercase letters, digits, `-` and `_`, 1 to 64 characters, so it
/// is readable in audit logs and charging records and safe in URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(String);

/// Why text is not a valid [`AppId`] / [`GroupId`](crate::GroupId) slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid id: use 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit"
)]
pub struct SlugError(pub String);

/// Checks the slug rule shared by application and group ids.
pub(crate) fn check_slug(s: &str) -> Result<(), SlugError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(SlugError(s.to_owned()))
    }
}

impl AppId {
    /// The application the server creates on first start.
    pub const ADMIN: &'static str = "admin";

    /// Validates `s` as an application id.
    pub fn new(s: impl Into<String>) -> Result<AppId, SlugError> {
        let s = s.into();
        check_slug(&s)?;
        Ok(AppId(s))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AppId {
    type Error = SlugError;
    fn try_from(s: String) -> Result<AppId, SlugError> {
        AppId::new(s)
    }
}

impl From<AppId> for String {
    fn from(id: AppId) -> String {
        id.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an application may do beyond its grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages applications, keys, grants, groups and devices; sees everything; not limited by
    /// grants.
    Admin,
    /// Reaches devices only through its grants.
    Application,
}

impl Role {
    /// Stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Application => "application",
        }
    }

    /// Inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "application" => Some(Role::Application),
            _ => None,
        }
    }
}

/// A registered application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Identity.
    pub id: AppId,
    /// Human description (who runs it, what for).
    pub description: String,
    /// Admin or plain application.
    pub role: Role,
    /// Requests per second allowed (token bucket, burst = 2 s worth); `None` = unlimited.
    pub rate_limit: Option<u32>,
    /// Requests per UTC day allowed; `None` = unlimited.
    pub daily_quota: Option<u64>,
    /// A disabled application's keys are refused.
    pub disabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change (for ETags).
    pub updated_at: Timestamp,
}

/// Public identifier of an API key: the part of the key before the secret, used to find its
/// hash without scanning (`omk_<key id>_<secret>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored API key: its hash, never the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public part.
    pub id: KeyId,
    /// Owner.
    pub app_id: AppId,
    /// argon2id PHC string of the secret part.
    pub hash: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// The key stops working at this time, if set.
    pub expires_at: Option<Timestamp>,
    /// Set when revoked; a revoked key never works again.
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Usable at `now`: not revoked, not expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(AppId::new("customer-care").is_ok());
        assert!(AppId::new("a_1").is_ok());
        assert!(AppId::new("").is_err());
        assert!(AppId::new("-x").is_err());
        assert!(AppId::new("Upper").is_err());
        assert!(AppId::new("x".repeat(65)).is_err());
        assert!(serde_json::from_str::<AppId>("\"a b\"").is_err());
    }

    #[test]
    fn key_activity() {
        let k = ApiKey {
            id: KeyId("k1".into()),
            app_id: AppId::new("a").unwrap(),
            hash: "$argon2id$secret".into(),
            created_at: Timestamp(0),
            expires_at: Some(Timestamp(10)),
            revoked_at: None,
        };
        assert!(k.is_active(Timestamp(9)));
        assert!(!k.is_active(Timestamp(10)));
        assert!(!format!("{k:?}").contains("argon2id"));
        let revoked = ApiKey {
            revoked_at: Some(Timestamp(1)),
            expires_at: None,
            ..k
        };
        assert!(!revoked.is_active(Timestamp(0)));
    }
}
