//! placeholder
pub mod auth;
pub mod notification;
