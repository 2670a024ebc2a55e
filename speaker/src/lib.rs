//! bgplane's agent and CLI as a library, so the binary and the integration tests share it.

pub mod agent;
pub mod api;
pub mod cli;
pub mod config;
pub mod session;
pub mod source;
