//! bgplane's agent and CLI as a library, so the binary and the integration tests share it.

pub mod config;
