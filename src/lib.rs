//! portico: a Kubernetes Gateway API implementation for Envoy.
//!
//! The pipeline: `inputs` (a snapshot of the world) → `translate` (pure) →
//! `render` (Envoy's own JSON/YAML form and statuses, for the `render` command)
//! and `xds` (versioned snapshots and the ADS stream state machine);
//! `translator` is the loop between them that `runtime` and `standalone` drive.
#![forbid(unsafe_code)]

pub mod accept;
pub mod admin;
pub mod bootstrap;
pub mod cli;
pub mod events;
pub mod identity;
pub mod inputs;
pub mod leader;
pub mod metrics;
pub mod pki;
pub mod provision;
pub mod render;
pub mod replicas;
pub mod runtime;
pub mod standalone;
pub mod status;
pub mod translate;
pub mod translator;
pub mod xds;
