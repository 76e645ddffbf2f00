"""The objects a case creates, all in namespace `default`: Gateways of class
`portico` with one HTTP listener on port 80, one selector-less Service in
front of the backend, and HTTPRoutes with one hostname each, every rule
sending everything to that Service."""

NAMESPACE = "default"
SERVICE = "bench-backend"
DOMAIN = "bench.example"


def gateway_name(g, gateways):
    return "bench" if gateways == 1 else f"bench-{g:03d}"


def gateway(name):
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "gatewayClassName": "portico",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
        },
    }


def service():
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]},
    }


class Route:
    """One HTTPRoute of a case: its name, hostname and Gateway."""

    def __init__(self, name, hostname, gateway):
        self.name = name
        self.hostname = hostname
        self.gateway = gateway

    def manifest(self):
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": self.name, "namespace": NAMESPACE},
            "spec": {
                "parentRefs": [{"name": self.gateway}],
                "hostnames": [self.hostname],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": SERVICE, "port": 80}],
                }],
            },
        }


def burst(gateways, per_gateway):
    """The routes of the burst, interleaved over the Gateways (route i of
    every Gateway before route i + 1 of any)."""
    return [
        Route(f"r{i:05d}-g{g:03d}", f"r{i}.g{g}.{DOMAIN}", gateway_name(g, gateways))
        for i in range(per_gateway)
        for g in range(gateways)
    ]


def addition(k, gateways):
    """The k-th route added after the burst, on Gateway k mod `gateways`."""
    g = k % gateways
    return Route(f"add{k:03d}-g{g:03d}", f"add{k}.g{g}.{DOMAIN}", gateway_name(g, gateways))
