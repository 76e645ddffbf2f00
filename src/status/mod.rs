//! The status sink: translation's statuses plus what only the running system
//! knows (addresses, available Envoys, Envoy's ACK or NACK), written to the
//! API server only when they changed. `gateway` decides addresses and
//! `Programmed` (pure), `listener_set` a ListenerSet's `Programmed` from its
//! Gateway's; `plan` finds the writes (pure), looking only at what `changes`
//! says may differ since the round before and skipping what `memo` (the
//! leader's memory between rounds) says already matched; `writer` sends them.

mod changes;
pub mod gateway;
pub mod listener_set;
pub mod memo;
pub mod plan;
pub mod writer;
