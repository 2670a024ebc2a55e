//! bgplane's service load-balancing control plane (model, selection, Maglev, BPF maps) and
//! kernel plumbing (rtnetlink).
//!
//! `plan` is the boundary: the pure planner turns Kubernetes Service/EndpointSlice/Node objects
//! into `plan::ServicePlan`s; the kernel side writes those into BPF maps.

pub mod bpf_sys;
pub mod k8s;
pub mod loader;
pub mod maglev;
pub mod maps;
pub mod model;
pub mod plan;
pub mod planner;
pub mod select;
pub mod writer;
