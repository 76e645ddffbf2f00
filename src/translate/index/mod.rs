//! Stage 1, index: GatewayClasses, Gateways and ListenerSets read into a
//! `GatewayIndex` (`gateways`), every listener validated (`listeners`), with
//! its certificates (`certificates`), client validation (`client_validation`)
//! and the Gateway's parameters (`infra`). Later stages read the index; none
//! changes it.

pub mod certificates;
pub mod client_validation;
pub mod gateways;
pub mod infra;
pub mod listener_sets;
pub mod listeners;
pub mod model;

pub use self::model::{
    ClassModel, GatewayIndex, GatewayModel, ListenerModel, NamespacePolicy, Protocol, ReservedPort,
    TlsMode, container_port,
};
