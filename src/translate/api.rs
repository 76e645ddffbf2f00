//! The Gateway API names translation compares objects against: the API
//! group of Gateways and routes, and the controller name portico answers to.

/// The controller name portico answers to.
pub const CONTROLLER_NAME: &str = "portico.dev/gateway-controller";
/// The API group of Gateways, ListenerSets and routes.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
