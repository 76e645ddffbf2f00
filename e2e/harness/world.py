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
from .kube_proxy import KubeProxy
from .kubelet import Image, Kubelet
from .network import HOST, Network
from .portico_run import Operator, install
from .pods import XDS_NAME, Backend, Fleets

PORTICO = os.environ.get("PORTICO_BIN", str(REPO / "target" / "release" / "portico"))
ENVOY = os.environ.get("PORTICO_ENVOY", str(REPO / ".venv" / "bin" / "envoy"))
SEED = REPO / "examples" / "seed.yaml"


class World:
    """`images`: when given (image prefix -> local binary), every Pod of the
    kwok node runs through the e2e kubelet and LoadBalancer Services through
    its kube-proxy (portico's Envoy image included); otherwise the Envoy
    fleets run from their Deployments (`pods.Fleets`) and kwok makes Pods
    Ready by itself."""

    # The World started and not stopped yet: one at a time (one e2e network).
    running = None

    def __init__(self, state, images=None):
        self.state = Path(state).resolve()
        self.workdir = self.state / "work"
        self.cluster = Cluster(self.state)
        self.network = Network()
        self.operator = None
        self.fleets = None
        self.kubelet = None
        self.kube_proxy = None
        self.images = images
        self.backends = []
        self.timings = {}

    def start(self):
        """Everything, portico installed from `deploy/` with kubectl."""
        self.up()
        started = time.monotonic()
        install(self.cluster)
        self.run_portico(Operator(self.cluster, PORTICO, self.workdir))
        self.timings["deploy/, portico ready"] = time.monotonic() - started

    def up(self):
        """The control plane (with MetalLB and the Gateway API CRDs) and the
        e2e network, nothing of portico yet."""
        if World.running is not None and World.running is not self:
            raise RuntimeError(f"another World ({World.running.state}) is running: they share the e2e network")
        World.running = self
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.images is not None:
            os.environ["E2E_POD_STAGES"] = "none"
        self.timings["control plane, MetalLB, CRDs"] = self.cluster.up()
        self.network.setup()

    def run_portico(self, operator):
        """Starts `operator` (an `Operator`, installed already) and whatever
        runs the Pods of its Envoy fleets."""
        self.operator = operator
        self.operator.start()
        if self.images is None:
            self.fleets = Fleets(
                self.cluster, self.network, ENVOY, self.operator.xds_port, self.workdir / "pods"
            )
            self.fleets.start()
        else:
            images = dict(self.images)
            images["envoyproxy/envoy:"] = Image(ENVOY, envoy_pod(self.operator.xds_port))
            images["placeholder.invalid/"] = Image(None)
            self.kubelet = Kubelet(self.cluster, self.network, images, self.workdir / "pods")
            self.kubelet.start()
            self.kube_proxy = KubeProxy(self.cluster, self.network, self.workdir / "lb")
            self.kube_proxy.start()

    def stop(self):
        if self.kube_proxy:
            self.kube_proxy.shutdown()
        if self.kubelet:
            self.kubelet.shutdown()
        if self.fleets:
            self.fleets.shutdown()
        for b in self.backends:
            b.close()
        if self.operator:
            self.operator.stop()
        self.network.teardown()
        self.cluster.down()
        if World.running is self:
            World.running = None

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


def envoy_pod(xds_port):
    """Prepares an Envoy Pod of portico's: its bootstrap names the xDS
    Service, which has no cluster DNS here; the copy mounted into the Pod
    names the address portico listens on instead."""

    def prepare(run, volumes):
        for _, directory in volumes:
            bootstrap = directory / "bootstrap.yaml"
            if bootstrap.exists():
                text = bootstrap.read_text()
                if XDS_NAME not in text:
                    raise RuntimeError("the bootstrap does not name the xDS Service as expected")
                bootstrap.write_text(text.replace(XDS_NAME, f'"{HOST}", port_value: {xds_port}'))

    return prepare
