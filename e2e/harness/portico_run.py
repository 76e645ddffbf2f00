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
    """`portico run` as a local process, authenticated as `service_account`
    of `namespace`. `flags`: its flags but the listen addresses, which the
    harness picks (xDS on the e2e network's host address, admin on
    loopback; kept across restarts); `env`: added to its environment."""

    def __init__(self, cluster, binary, workdir, pod_name="portico-e2e", namespace="portico-system",
                 service_account="portico", flags=None, env=None):
        self.cluster = cluster
        self.pod_name = pod_name
        self.binary = binary
        self.workdir = Path(workdir)
        self.namespace = namespace
        self.service_account = service_account
        self.flags = flags if flags is not None else ["--namespace", namespace, "--pod-name", pod_name]
        self.env = dict(env or {})
        self.xds_port = free_port()
        self.admin_port = free_port()
        self.process = None
        self.kubeconfig = None

    @classmethod
    def from_deployment(cls, cluster, binary, workdir, deployment, pod_name, like=None):
        """portico as one replica of `deployment` would run: its container's
        args (`run` and `--flag=value`s) and env (values, and the fieldRefs
        resolved for a Pod named `pod_name`), under its ServiceAccount. Only
        the listen addresses are the harness's. `like`: an Operator whose
        ports to keep (a rollout of the same Deployment)."""
        meta = deployment["metadata"]
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        args = container.get("args", [])
        if container.get("command") or args[:1] != ["run"]:
            raise AssertionError(f"not `portico run`: {container.get('command')} {args}")
        flags = []
        for arg in args[1:]:
            if not (arg.startswith("--") and "=" in arg):
                raise AssertionError(f"expected --flag=value arguments, got {arg!r}")
            if arg.split("=", 1)[0] not in ("--xds-listen", "--admin-listen"):
                flags.append(arg)
        fields = {"metadata.name": pod_name, "metadata.namespace": meta["namespace"]}
        env = {}
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            else:
                env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        operator = cls(cluster, binary, workdir, pod_name=pod_name, namespace=meta["namespace"],
                       service_account=spec["serviceAccountName"], flags=flags, env=env)
        if like is not None:
            operator.xds_port, operator.admin_port = like.xds_port, like.admin_port
        return operator

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = self.cluster.token_kubeconfig(
            self.namespace, self.service_account, self.workdir / "portico.kubeconfig"
        )
        log = open(self.workdir / "portico.log", "a")
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), RUST_LOG=os.environ.get("PORTICO_E2E_LOG", "info"))
        env.update(self.env)
        self.process = subprocess.Popen(
            [
                self.binary, "run", *self.flags,
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
