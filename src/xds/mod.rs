//! xDS: what portico serves to Envoy. `cache` turns each Gateway's translated
//! resources into a versioned `Snapshot`; `delta` is the I/O-free state machine
//! of one delta ADS stream (subscriptions, nonces, ACK/NACK, push order). The
//! gRPC server that drives them comes next.

pub mod cache;
pub mod delta;
