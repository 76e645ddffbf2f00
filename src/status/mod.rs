//! The status sink: translation's statuses plus what only the running system
//! knows (addresses, available Envoys, Envoy's ACK or NACK), written to the
//! API server only when they changed. `gateway` decides addresses and
//! `Programmed` (pure); `writer` plans and sends the writes.

pub mod gateway;
pub mod writer;
