//! A ListenerSet's listener entry read as a Gateway listener. The two kinds
//! declare listeners with the same fields (name, hostname, port, protocol,
//! tls, allowedRoutes), generated as separate Rust types; copying an entry
//! field by field into the Gateway's type lets one validation serve both.
//!
//! In: a `ListenerSetListeners`. Out: the equal `GatewayListeners`.

use gateway_api::experimental::gateways::{
    GatewayListeners, GatewayListenersAllowedRoutes, GatewayListenersAllowedRoutesKinds,
    GatewayListenersAllowedRoutesNamespaces, GatewayListenersAllowedRoutesNamespacesFrom,
    GatewayListenersAllowedRoutesNamespacesSelector,
    GatewayListenersAllowedRoutesNamespacesSelectorMatchExpressions, GatewayListenersTls,
    GatewayListenersTlsCertificateRefs, GatewayListenersTlsMode,
};
use gateway_api::experimental::listenersets::{
    ListenerSetListeners, ListenerSetListenersAllowedRoutes,
    ListenerSetListenersAllowedRoutesNamespacesFrom, ListenerSetListenersTls,
    ListenerSetListenersTlsMode,
};

/// The entry as a Gateway listener with the same values.
pub fn as_listener(entry: &ListenerSetListeners) -> GatewayListeners {
    GatewayListeners {
        allowed_routes: entry.allowed_routes.as_ref().map(allowed_routes),
        hostname: entry.hostname.clone(),
        name: entry.name.clone(),
        port: entry.port,
        protocol: entry.protocol.clone(),
        tls: entry.tls.as_ref().map(tls),
    }
}

fn allowed_routes(a: &ListenerSetListenersAllowedRoutes) -> GatewayListenersAllowedRoutes {
    GatewayListenersAllowedRoutes {
        kinds: a.kinds.as_ref().map(|kinds| {
            kinds
                .iter()
                .map(|k| GatewayListenersAllowedRoutesKinds {
                    group: k.group.clone(),
                    kind: k.kind.clone(),
                })
                .collect()
        }),
        namespaces: a
            .namespaces
            .as_ref()
            .map(|n| GatewayListenersAllowedRoutesNamespaces {
                from: n.from.as_ref().map(|f| match f {
                    ListenerSetListenersAllowedRoutesNamespacesFrom::All => {
                        GatewayListenersAllowedRoutesNamespacesFrom::All
                    }
                    ListenerSetListenersAllowedRoutesNamespacesFrom::Selector => {
                        GatewayListenersAllowedRoutesNamespacesFrom::Selector
                    }
                    ListenerSetListenersAllowedRoutesNamespacesFrom::Same => {
                        GatewayListenersAllowedRoutesNamespacesFrom::Same
                    }
                }),
                selector: n.selector.as_ref().map(|s| {
                    GatewayListenersAllowedRoutesNamespacesSelector {
                        match_labels: s.match_labels.clone(),
                        match_expressions: s.match_expressions.as_ref().map(|list| {
                            list.iter()
                                .map(|e| {
                                    GatewayListenersAllowedRoutesNamespacesSelectorMatchExpressions {
                                        key: e.key.clone(),
                                        operator: e.operator.clone(),
                                        values: e.values.clone(),
                                    }
                                })
                                .collect()
                        }),
                    }
                }),
            }),
    }
}

fn tls(t: &ListenerSetListenersTls) -> GatewayListenersTls {
    GatewayListenersTls {
        certificate_refs: t.certificate_refs.as_ref().map(|refs| {
            refs.iter()
                .map(|r| GatewayListenersTlsCertificateRefs {
                    group: r.group.clone(),
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                    namespace: r.namespace.clone(),
                })
                .collect()
        }),
        mode: t.mode.as_ref().map(|m| match m {
            ListenerSetListenersTlsMode::Terminate => GatewayListenersTlsMode::Terminate,
            ListenerSetListenersTlsMode::Passthrough => GatewayListenersTlsMode::Passthrough,
        }),
        options: t.options.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field survives: the entry and the listener serialize alike.
    #[test]
    fn an_entry_reads_as_the_same_listener() {
        let json = serde_json::json!({
            "name": "https",
            "hostname": "*.example.com",
            "port": 443,
            "protocol": "HTTPS",
            "tls": {
                "mode": "Terminate",
                "certificateRefs": [{"group": "", "kind": "Secret", "name": "cert", "namespace": "certs"}],
                "options": {"k": "v"}
            },
            "allowedRoutes": {
                "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                "namespaces": {
                    "from": "Selector",
                    "selector": {
                        "matchLabels": {"team": "a"},
                        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]
                    }
                }
            }
        });
        let entry: ListenerSetListeners = serde_json::from_value(json.clone()).expect("entry");
        let listener = as_listener(&entry);
        assert_eq!(serde_json::to_value(&listener).expect("serializes"), json);
        for (from, passthrough) in [("All", false), ("Same", true)] {
            let entry: ListenerSetListeners = serde_json::from_value(serde_json::json!({
                "name": "tls", "port": 8443, "protocol": "TLS",
                "tls": {"mode": if passthrough { "Passthrough" } else { "Terminate" }},
                "allowedRoutes": {"namespaces": {"from": from}}
            }))
            .expect("entry");
            let value = serde_json::to_value(as_listener(&entry)).expect("serializes");
            assert_eq!(value["allowedRoutes"]["namespaces"]["from"], from);
        }
    }
}
