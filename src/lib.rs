//! portico: a Kubernetes Gateway API implementation for Envoy.
//!
//! The pipeline: `inputs` (a snapshot of the world: watches, or files) →
//! `translate` (pure: statuses and Envoy resources) → `xds` (versioned
//! snapshots served over ADS), `provision` (each Gateway's Envoy fleet) and
//! `status` (what is written back to the API server). `translator` is the
//! loop between snapshots and translations that `runtime` (the operator) and
//! `standalone` (files, no Kubernetes) both drive; `render` prints a
//! translation for the `render` command; `identity` holds the names every
//! stage shares; `delta` finds what changed between two versions of a map. ARCHITECTURE.md has the stages and their borders.
#![forbid(unsafe_code)]

pub mod accept;
pub mod admin;
pub mod bootstrap;
pub mod cli;
pub mod delta;
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
