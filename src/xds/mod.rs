//! xDS: what portico serves to Envoy. `cache` turns each Gateway's translated
//! resources into a versioned `Snapshot`; `hub` holds the current snapshots and
//! the ACK/NACK feedback; `delta` and `sotw` are the I/O-free state machines of
//! one ADS stream in each protocol variant, sharing `push` (push order and
//! cluster warming); `server` is the tonic shell that
//! drives them; `incoming` admits connections under the server's limits;
//! `tls` authenticates Envoys by client certificate; `metrics` counts what
//! happens.

pub mod cache;
pub mod delta;
pub mod hub;
pub mod incoming;
pub mod metrics;
pub mod push;
pub mod server;
pub mod sotw;
pub mod tls;
