"""The control plane of the e2e tests: start, stop and talk to it.

`Cluster.up` runs e2e/cluster/up.sh (etcd, kube-apiserver, controller-manager,
scheduler, kwok with one fake node), e2e/metallb/up.sh (the MetalLB controller
and an address pool) and e2e/gateway-api/apply-crds.sh. Everything runs on
127.0.0.1; `down` stops it by PID.
"""

import json
import os
import subprocess
import time
from pathlib import Path

E2E = Path(__file__).resolve().parent.parent
REPO = E2E.parent
KUBECTL = os.environ.get("KUBECTL", str(REPO / ".venv" / "bin" / "kubectl"))
# MetalLB hands out addresses from this range; the harness routes it only
# into network namespaces it creates.
LB_POOL = "10.211.0.10-10.211.0.199"


def wait_for(what, timeout, check, interval=0.2):
    """Polls `check` until it returns something truthy; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (subprocess.CalledProcessError, KeyError, IndexError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Cluster:
    def __init__(self, state):
        self.state = Path(state).resolve()
        self.kubeconfig = self.state / "kubeconfig"

    def up(self):
        env = dict(os.environ, KUBECTL=KUBECTL, E2E_LB_POOL=LB_POOL)
        started = time.monotonic()
        subprocess.run([str(E2E / "cluster" / "up.sh"), str(self.state)], check=True, env=env)
        subprocess.run([str(E2E / "metallb" / "up.sh"), str(self.state)], check=True, env=env)
        subprocess.run(
            [str(E2E / "gateway-api" / "apply-crds.sh"), str(self.state)], check=True, env=env
        )
        return time.monotonic() - started

    def down(self):
        subprocess.run([str(E2E / "cluster" / "down.sh"), str(self.state)], check=False)

    def env(self):
        out = {}
        for line in (self.state / "env").read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                key, value = line[len("export "):].split("=", 1)
                out[key] = value
        return out

    def kubectl(self, *args, input=None, check=True, kubeconfig=None):
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply(self, yaml_text):
        return self.kubectl("apply", "-f", "-", input=yaml_text).stdout

    def get(self, kind, name=None, namespace=None):
        args = ["get", kind, "-o", "json"]
        if name:
            args.insert(2, name)
        if namespace:
            args += ["-n", namespace]
        result = self.kubectl(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return json.loads(result.stdout)

    def token_kubeconfig(self, namespace, service_account, path):
        """A kubeconfig authenticating as a ServiceAccount (token request)."""
        token = self.kubectl(
            "create", "token", service_account, "-n", namespace, "--duration", "4h"
        ).stdout.strip()
        env = self.env()
        path = Path(path)
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "e2e",
                            "cluster": {
                                "server": env["E2E_APISERVER"],
                                "certificate-authority": env["E2E_CA"],
                            },
                        }
                    ],
                    "users": [{"name": service_account, "user": {"token": token}}],
                    "contexts": [
                        {"name": "e2e", "context": {"cluster": "e2e", "user": service_account}}
                    ],
                    "current-context": "e2e",
                }
            )
        )
        return path


def condition(obj, type_):
    for c in (obj or {}).get("status", {}).get("conditions", []) or []:
        if c.get("type") == type_:
            return c
    return None
