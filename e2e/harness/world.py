"""Everything the e2e tests and `make demo` run, started and stopped together:
the control plane with MetalLB and the Gateway API CRDs, the e2e network,
portico under its `deploy/` identity, the Envoy fleets and backends.
"""

import json
import os
import subprocess
import time
from pathlib import Path

from .cluster import REPO, Cluster, condition, wait_for
from .network import Network
from .portico_run import Operator, install
from .pods import Backend, Fleets

PORTICO = os.environ.get("PORTICO_BIN", str(REPO / "target" / "release" / "portico"))
ENVOY = os.environ.get("PORTICO_ENVOY", str(REPO / ".venv" / "bin" / "envoy"))
SEED = REPO / "examples" / "seed.yaml"


class World:
    def __init__(self, state):
        self.state = Path(state).resolve()
        self.workdir = self.state / "work"
        self.cluster = Cluster(self.state)
        self.network = Network()
        self.operator = None
        self.fleets = None
        self.backends = []
        self.timings = {}

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.timings["control plane, MetalLB, CRDs"] = self.cluster.up()
        started = time.monotonic()
        self.network.setup()
        install(self.cluster)
        self.operator = Operator(self.cluster, PORTICO, self.workdir)
        self.operator.start()
        self.fleets = Fleets(
            self.cluster, self.network, ENVOY, self.operator.xds_port, self.workdir / "pods"
        )
        self.fleets.start()
        self.timings["network, deploy/, portico ready"] = time.monotonic() - started

    def stop(self):
        if self.fleets:
            self.fleets.shutdown()
        for b in self.backends:
            b.close()
        if self.operator:
            self.operator.stop()
        self.network.teardown()
        self.cluster.down()

    def backend(self, body):
        b = Backend(self.network, self.workdir, body)
        self.backends.append(b)
        return b

    def publish(self, backend, service, namespace="default", port=80):
        """Points a Service at a backend: no selector, one ready endpoint."""
        svc = self.cluster.get("service", service, namespace)
        if svc and svc["spec"].get("selector"):
            self.cluster.kubectl(
                "patch", "service", service, "-n", namespace, "--type=json",
                "-p", '[{"op": "remove", "path": "/spec/selector"}]',
            )
        self.cluster.apply(
            json.dumps(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": f"{service}-e2e",
                        "namespace": namespace,
                        "labels": {
                            "kubernetes.io/service-name": service,
                            "endpointslice.kubernetes.io/managed-by": "e2e.portico.dev",
                        },
                    },
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                    "endpoints": [
                        {"addresses": [backend.address], "conditions": {"ready": True}}
                    ],
                }
            )
        )

    def gateway_address(self, name, namespace="default", timeout=90):
        def assigned():
            gw = self.cluster.get("gateway", name, namespace)
            addresses = (gw or {}).get("status", {}).get("addresses") or []
            return addresses[0]["value"] if addresses else None

        return wait_for(f"an address on Gateway {namespace}/{name}", timeout, assigned)

    def programmed(self, name, namespace="default", timeout=90):
        def check():
            c = condition(self.cluster.get("gateway", name, namespace), "Programmed")
            return c if c and c["status"] == "True" else None

        return wait_for(f"Gateway {namespace}/{name} Programmed=True", timeout, check)

    def curl(self, address, host, path="/", port=80):
        result = subprocess.run(
            ["curl", "-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}",
             "-H", f"Host: {host}", f"http://{address}:{port}{path}"],
            capture_output=True, text=True,
        )
        body, _, code = result.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body

    def seed_journey(self):
        """The user's journey: seed.yaml applied, the Gateway gets an address,
        Programmed turns True, and curl reaches the backend. Returns the
        address and timings."""
        started = time.monotonic()
        self.cluster.kubectl("apply", "-f", str(SEED))
        backend = self.backend("<html><body><h1>It works!</h1></body></html>\n")
        self.publish(backend, "my-httpd")
        address = self.gateway_address("portico-gateway")
        address_at = time.monotonic() - started
        self.programmed("portico-gateway")
        programmed_at = time.monotonic() - started
        wait_for(
            "curl through the Gateway",
            60,
            lambda: self.curl(address, "httpd.example.com")[0] == 200,
        )
        self.timings["seed: address"] = address_at
        self.timings["seed: Programmed"] = programmed_at
        self.timings["seed: first 200"] = time.monotonic() - started
        return address
