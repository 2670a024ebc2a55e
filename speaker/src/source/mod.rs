//! Where the agent's cluster state (Nodes, Services, EndpointSlices) comes from. Until the
//! Kubernetes watchers exist, the only source is the standalone one: [`files::ObjectsFiles`],
//! a file or directory of objects as `kubectl get -o yaml` prints them, re-read when it changes.

pub mod files;

pub use files::{Fingerprint, ObjectsFiles};
