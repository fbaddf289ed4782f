//! OMA DM access control lists (TND §7.7.1).
//!
//! Grammar (TND §7.7.1.5):
//!
//! ```text
//! <acl>                ::= <acl-value> | "No value"
//! <acl-value>          ::= <acl-entry> | <acl-value> & <acl-entry>
//! <acl-entry>          ::= <command> = <server-identifiers>
//! <server-identifiers> ::= <server-identifier> | <server-identifier> + <server-identifiers>
//! <server-identifier>  ::= * | printable characters except '=', '&', '*', '+', white space
//! <command>            ::= Add | Delete | Exec | Get | Replace
//! ```
//!
//! There is no ACL entry for Copy (TND §7.7.1.5). ACL inheritance (a node without
//! an ACL uses its parent's, TND §7.7.1.2) is evaluated by the holder of the tree, not
//! here: [`Acl::is_empty`] tells it when to look upward.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::AclError;

/// A DM command that an ACL can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclCommand {
    /// Add
    Add,
    /// Delete
    Delete,
    /// Exec
    Exec,
    /// Get
    Get,
    /// Replace
    Replace,
}

impl AclCommand {
    /// All commands in canonical order.
    pub const ALL: [AclCommand; 5] = [
        AclCommand::Add,
        AclCommand::Delete,
        AclCommand::Exec,
        AclCommand::Get,
        AclCommand::Replace,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AclCommand::Add => "Add",
            AclCommand::Delete => "Delete",
            AclCommand::Exec => "Exec",
            AclCommand::Get => "Get",
            AclCommand::Replace => "Replace",
        }
    }
}

impl fmt::Display for AclCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AclCommand {
    type Err = AclError;
    /// Case-insensitive (liberal).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AclCommand::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| AclError::UnknownCommand(s.to_owned()))
    }
}

/// Who may perform one command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AclGrant {
    /// `*`: every server.
    Any,
    /// These server identifiers, in first-seen order, without duplicates; never empty.
    Servers(Vec<String>),
}

/// Is `id` a valid `<server-identifier>` (other than `*`)?
pub fn is_valid_server_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '=' | '&' | '*' | '+'))
}

/// An ACL: for each command, which servers may perform it.
///
/// Canonical text lists commands in the order Add, Delete, Exec, Get, Replace and
/// servers in first-seen order; the empty ACL is the empty string ("No value").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// Grants per command; a command absent from the map is granted to nobody.
    entries: BTreeMap<AclCommand, AclGrant>,
}

impl Acl {
    /// The empty ACL (no value).
    pub fn new() -> Acl {
        Acl::default()
    }

    /// Parses an ACL string.
    ///
    /// Liberal: the empty string (or white space) is the empty ACL; empty entries
    /// (`&&`, a trailing `&`) and empty server lists (`Get=`) are ignored; repeated
    /// commands are merged; white space around tokens and command-name case are
    /// ignored. A `*` among other servers makes the command granted to all (the
    /// wildcard overrides, TND §7.7.1.5).
    pub fn parse(s: &str) -> Result<Acl, AclError> {
        let mut acl = Acl::new();
        for entry in s.split('&') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (cmd, servers) = entry
                .split_once('=')
                .ok_or_else(|| AclError::MissingEquals(entry.to_owned()))?;
            let cmd: AclCommand = cmd.trim().parse()?;
            for server in servers.split('+') {
                let server = server.trim();
                if server.is_empty() {
                    continue;
                }
                if server == "*" {
                    acl.grant_all(cmd);
                } else if is_valid_server_id(server) {
                    acl.grant(cmd, server)?;
                } else {
                    return Err(AclError::InvalidServerId(server.to_owned()));
                }
            }
        }
        Ok(acl)
    }

    /// True when no command is granted to anyone (the "No value" ACL).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Grants `cmd` to every server (`*`).
    pub fn grant_all(&mut self, cmd: AclCommand) {
        self.entries.insert(cmd, AclGrant::Any);
    }

    /// Grants `cmd` to `server_id` (no effect if already granted, or granted to all).
    pub fn grant(&mut self, cmd: AclCommand, server_id: &str) -> Result<(), AclError> {
        if !is_valid_server_id(server_id) {
            return Err(AclError::InvalidServerId(server_id.to_owned()));
        }
        match self.entries.get_mut(&cmd) {
            Some(AclGrant::Any) => {}
            Some(AclGrant::Servers(list)) => {
                if !list.iter().any(|s| s == server_id) {
                    list.push(server_id.to_owned());
                }
            }
            None => {
                self.entries
                    .insert(cmd, AclGrant::Servers(vec![server_id.to_owned()]));
            }
        }
        Ok(())
    }

    /// Removes every grant of `cmd`.
    pub fn revoke(&mut self, cmd: AclCommand) {
        self.entries.remove(&cmd);
    }

    /// Removes `server_id` from the grant of `cmd` (a `*` grant is left alone).
    pub fn revoke_server(&mut self, cmd: AclCommand, server_id: &str) {
        if let Some(AclGrant::Servers(list)) = self.entries.get_mut(&cmd) {
            list.retain(|s| s != server_id);
            if list.is_empty() {
                self.entries.remove(&cmd);
            }
        }
    }

    /// Who may perform `cmd`; `None` means nobody.
    pub fn grant_for(&self, cmd: AclCommand) -> Option<&AclGrant> {
        self.entries.get(&cmd)
    }

    /// The grants in canonical command order.
    pub fn entries(&self) -> impl Iterator<Item = (AclCommand, &AclGrant)> {
        self.entries.iter().map(|(c, g)| (*c, g))
    }

    /// May `server_id` perform `cmd` according to this ACL alone?
    pub fn permits(&self, cmd: AclCommand, server_id: &str) -> bool {
        match self.entries.get(&cmd) {
            Some(AclGrant::Any) => true,
            Some(AclGrant::Servers(list)) => list.iter().any(|s| s == server_id),
            None => false,
        }
    }
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (cmd, grant)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            write!(f, "{cmd}=")?;
            match grant {
                AclGrant::Any => f.write_str("*")?,
                AclGrant::Servers(list) => {
                    for (j, s) in list.iter().enumerate() {
                        if j > 0 {
                            f.write_str("+")?;
                        }
                        f.write_str(s)?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Acl {
    type Err = AclError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Acl::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        // TND §7.7.1.5 example ACL.
        let s = "Add=www.sonera.fi-8765&Delete=www.sonera.fi-8765&Replace=www.sonera.fi-8765+321_&Get=*";
        let acl = Acl::parse(s).unwrap();
        assert!(acl.permits(AclCommand::Get, "anyone"));
        assert!(acl.permits(AclCommand::Replace, "321_"));
        assert!(acl.permits(AclCommand::Add, "www.sonera.fi-8765"));
        assert!(!acl.permits(AclCommand::Add, "321_"));
        assert!(!acl.permits(AclCommand::Exec, "www.sonera.fi-8765"));
        assert_eq!(
            acl.to_string(),
            "Add=www.sonera.fi-8765&Delete=www.sonera.fi-8765&Get=*&Replace=www.sonera.fi-8765+321_"
        );
    }

    #[test]
    fn liberal_parsing() {
        assert!(Acl::parse("").unwrap().is_empty());
        assert!(Acl::parse("  ").unwrap().is_empty());
        let acl = Acl::parse("get=a&&Get=b+a&Exec=&Replace = c &").unwrap();
        assert_eq!(acl.to_string(), "Get=a+b&Replace=c");
        let wild = Acl::parse("Get=a+*+b").unwrap();
        assert_eq!(wild.grant_for(AclCommand::Get), Some(&AclGrant::Any));
        assert_eq!(wild.to_string(), "Get=*");
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Acl::parse("Copy=*"),
            Err(AclError::UnknownCommand(_))
        ));
        assert!(matches!(Acl::parse("Get"), Err(AclError::MissingEquals(_))));
        assert!(matches!(
            Acl::parse("Get=a b"),
            Err(AclError::InvalidServerId(_))
        ));
        assert!(matches!(
            Acl::parse("Get=a=b"),
            Err(AclError::InvalidServerId(_))
        ));
        let mut acl = Acl::new();
        assert!(acl.grant(AclCommand::Get, "x*").is_err());
    }

    #[test]
    fn editing() {
        let mut acl = Acl::new();
        acl.grant(AclCommand::Replace, "srv1").unwrap();
        acl.grant(AclCommand::Replace, "srv2").unwrap();
        acl.grant(AclCommand::Replace, "srv1").unwrap();
        acl.grant_all(AclCommand::Get);
        assert_eq!(acl.to_string(), "Get=*&Replace=srv1+srv2");
        acl.revoke_server(AclCommand::Replace, "srv1");
        assert_eq!(acl.to_string(), "Get=*&Replace=srv2");
        acl.revoke_server(AclCommand::Replace, "srv2");
        acl.revoke(AclCommand::Get);
        assert!(acl.is_empty());
        assert_eq!(acl.to_string(), "");
    }
}
