//! placeholder: the sans-IO OMA DM 1.2 session engine (server side in `server`, client side in
//! `client`).
pub mod client;
pub mod server;
