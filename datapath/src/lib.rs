//! bgplane's service load-balancing control plane (model, selection, Maglev, BPF maps) and
//! kernel plumbing (rtnetlink). Filled in by the datapath issue.
