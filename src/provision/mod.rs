//! Provisioning: the Kubernetes objects each Gateway's Envoy fleet needs
//! (ServiceAccount, bootstrap ConfigMap, Deployment, LoadBalancer Service),
//! computed purely from the Gateway and its `Infra` (`desired`), and applied with
//! server-side apply (`apply`).

pub mod apply;
pub mod desired;
pub mod names;
