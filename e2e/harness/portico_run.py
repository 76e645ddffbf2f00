"""portico under its real identity: `deploy/` checked by the API server
(`kubectl apply --dry-run=server`), its namespace, CRD, RBAC and GatewayClass
applied, and `portico run` started as a local process authenticated as the
`deploy/` ServiceAccount through a token request, so a missing permission
fails the tests.
"""

import os
import socket
import subprocess
import urllib.request
from pathlib import Path

from .cluster import REPO, wait_for
from .network import HOST

DEPLOY = REPO / "deploy"
# The operator Deployment itself is only dry-run: the harness runs portico as
# a local process instead of a pod.
APPLIED = ["00-namespace.yaml", "10-crds.yaml", "20-rbac.yaml", "25-admission-policy.yaml", "40-gatewayclass.yaml"]


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def install(cluster):
    # The namespace and the CRD first: a server-side dry run of objects in a
    # namespace (or of a kind) that does not exist yet cannot pass.
    for name in APPLIED[:2]:
        cluster.kubectl("apply", "-f", str(DEPLOY / name))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/gatewayparameters.portico.dev",
    )
    cluster.kubectl("apply", "--dry-run=server", "-f", str(DEPLOY))
    for name in APPLIED[2:]:
        cluster.kubectl("apply", "-f", str(DEPLOY / name))


class Operator:
    def __init__(self, cluster, binary, workdir, pod_name="portico-e2e"):
        self.cluster = cluster
        self.pod_name = pod_name
        self.binary = binary
        self.workdir = Path(workdir)
        self.xds_port = free_port()
        self.admin_port = free_port()
        self.process = None
        self.kubeconfig = None

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = self.cluster.token_kubeconfig(
            "portico-system", "portico", self.workdir / "portico.kubeconfig"
        )
        log = open(self.workdir / "portico.log", "a")
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), RUST_LOG=os.environ.get("PORTICO_E2E_LOG", "info"))
        self.process = subprocess.Popen(
            [
                self.binary, "run",
                "--namespace", "portico-system",
                "--pod-name", self.pod_name,
                "--xds-listen", f"{HOST}:{self.xds_port}",
                "--admin-listen", f"127.0.0.1:{self.admin_port}",
            ],
            env=env,
            stdout=log,
            stderr=log,
        )
        wait_for("portico /readyz", 60, self.ready)

    def ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"portico exited: see {self.workdir / 'portico.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=2) as r:
            return r.read().decode()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self):
        path = self.workdir / "portico.log"
        return path.read_text() if path.exists() else ""
