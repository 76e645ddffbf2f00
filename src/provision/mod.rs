//! Provisioning: the Kubernetes objects each Gateway's Envoy fleet needs
//! (ServiceAccount, bootstrap ConfigMap, Deployment, LoadBalancer Service),
//! computed purely from the Gateway and its validated listeners. Applying them
//! with server-side apply comes with the operator runtime.

pub mod desired;
pub mod names;
