//! Stage 7, report: what translation decided, as the statuses it wants on
//! each object (`statuses` holds their types): GatewayClasses (`classes`),
//! Gateways, their listeners and ListenerSets (`gateways`), routes
//! (`routes`), BackendTLSPolicies (`policies`); and what each Gateway's
//! routes reference (`references`), for the source to know which changes
//! matter.

pub mod classes;
pub mod gateways;
pub mod policies;
pub mod references;
pub mod routes;
pub mod statuses;

pub use self::classes::classes;
pub use self::policies::policies;
pub use self::references::{References, references};
pub use self::routes::routes;
pub use self::statuses::{
    GatewayClassStatus, GatewayStatus, ListenerSetStatus, ListenerStatus, ParentRef,
    PolicyAncestorStatus, PolicyStatus, RouteGroupKind, RouteParentStatus, RouteStatus,
    SupportedFeature,
};
