//! The omnidm Web Services Interface (WSI): the REST/JSON API under `/api/v1` through which
//! external applications manage devices.
//!
//! What this crate does:
//! - authenticates every call with an API key (argon2-hashed, cached once verified) and
//!   enforces roles, grants (operations × subtrees × device groups), rate limits and quotas;
//! - serves applications, keys, grants, groups, devices and their tree cache, operations
//!   (asynchronous, fanned out to many devices, with long-poll `wait`), the event log (list
//!   and Server-Sent Events), webhook subscriptions with signed deliveries, charging records
//!   and the audit log;
//! - describes itself in an OpenAPI 3.1 document with an embedded docs page;
//! - answers every error as RFC 9457 problem+json.
//!
//! What it does not do: it never talks to devices (operations are queued in the store and the
//! protocol adapters run them), knows no SQL (everything goes through
//! [`omnidm_core::WsiStore`]), and binds no socket (the binary mounts [`Api::router`]).

pub mod access;
mod audit;
pub mod auth;
pub mod bootstrap;
mod dto;
mod limits;
mod openapi;
pub mod problem;
mod routes;
pub mod signing;
mod state;
mod visibility;
pub mod wire;

pub use state::{Api, ApiOptions};

/// Parses a JSON command list as `POST /operations` does (schema, paths, formats, nesting):
/// the entry point of the `wsi_commands` fuzz target.
pub fn parse_commands(json: &[u8]) -> Result<Vec<omnidm_core::OpCommand>, problem::ApiError> {
    let commands: Vec<dto::CommandDto> = wire::parse_json(json)?;
    commands.iter().map(|c| c.to_core(0)).collect()
}

/// The API's JSON form of a core command (inverse of [`parse_commands`] for one command).
pub fn render_command(command: &omnidm_core::OpCommand) -> impl serde::Serialize + use<> {
    dto::CommandDto::from_core(command)
}
