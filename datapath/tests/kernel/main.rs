//! Kernel tests of the BPF datapath (one binary): BPF_PROG_TEST_RUN on crafted packets, and
//! real packets through network namespaces. Needs root (it is root on every machine of this
//! kind: see /work/shared/LAB.md).

mod ct;
mod env;
mod netns;
mod pkt;
mod prog_run;
mod reject;
mod scale;
mod upgrade;
