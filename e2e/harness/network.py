"""The e2e network: a bridge on this machine carrying 10.211.0.0/24 (MetalLB's
addresses, one network namespace per Gateway), 10.212.0.0/24 (backends, one
network namespace each) and 10.244.0.0/24 (Pods run by the e2e kubelet, one
network namespace each). Traffic goes only to loopback and to addresses inside
these namespaces; `teardown` removes everything it created.

The bridge holds 10.211.0.1: the address portico's xDS server listens on, the
one address Envoys in the namespaces reach portico by.
"""

import subprocess

BRIDGE = "ptc-e2e0"
HOST = "10.211.0.1"
# Gateways (MetalLB), backends, Pods of the e2e kubelet.
SUBNETS = ["10.211.0.0/24", "10.212.0.0/24", "10.244.0.0/24"]


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def ns_exec(namespace):
    return ["ip", "netns", "exec", namespace]


class Network:
    def __init__(self, prefix="ptc"):
        self.prefix = prefix
        self.namespaces = []
        self.count = 0

    def setup(self):
        self.teardown_stale()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{HOST}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        # Backends live in 10.212.0.0/24 on the same bridge, Pods the e2e
        # kubelet runs in 10.244.0.0/24 (the kwok node's pod CIDR).
        for subnet in SUBNETS[1:]:
            sh("ip", "route", "add", subnet, "dev", BRIDGE)

    def teardown_stale(self):
        for ns in sh("ip", "netns", "list").stdout.split("\n"):
            name = ns.split(" ")[0]
            if name.startswith(f"{self.prefix}-"):
                sh("ip", "netns", "delete", name, check=False)
        sh("ip", "link", "delete", BRIDGE, check=False)

    def namespace(self, kind, address):
        """A new namespace attached to the bridge, holding `address`/24."""
        self.count += 1
        name = f"{self.prefix}-{kind}{self.count}"
        host_end = f"{self.prefix}{self.count}h"
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "link", "set", host_end, "master", BRIDGE)
        sh("ip", "link", "set", host_end, "up")
        sh(*ns_exec(name), "ip", "link", "set", "lo", "up")
        sh(*ns_exec(name), "ip", "link", "set", "eth0", "up")
        if address:
            self.add_address(name, address)
        # Every subnet is on the bridge's segment.
        for subnet in SUBNETS:
            sh(*ns_exec(name), "ip", "route", "replace", subnet, "dev", "eth0")
        self.namespaces.append(name)
        return name

    def add_address(self, namespace, address):
        sh(*ns_exec(namespace), "ip", "addr", "replace", f"{address}/32", "dev", "eth0")
        # An address that moved (MetalLB hands a freed one out again) must not
        # stay bound to the old namespace's MAC in the host's neighbour cache.
        sh("ip", "neigh", "flush", "to", address, check=False)

    def delete(self, namespace):
        sh("ip", "netns", "delete", namespace, check=False)
        if namespace in self.namespaces:
            self.namespaces.remove(namespace)

    def teardown(self):
        for ns in list(self.namespaces):
            self.delete(ns)
        sh("ip", "link", "delete", BRIDGE, check=False)
