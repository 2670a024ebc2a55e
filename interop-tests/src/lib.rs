//! The network-namespace lab harness: real routers (FRR, BIRD, GoBGP, ExaBGP) in namespaces
//! that a test creates and always removes.
