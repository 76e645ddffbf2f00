//! xDS: what portico serves to Envoy. `cache` turns each Gateway's translated
//! resources into a versioned `Snapshot`; `delta` and `sotw` are the I/O-free
//! state machines of one ADS stream in each protocol variant (subscriptions,
//! nonces, ACK/NACK, push order). The gRPC server that drives them comes next.

pub mod cache;
pub mod delta;
pub mod sotw;
