"""The real helm (helm.sh/helm/v3, built by e2e/helm/build.sh at the version
its go.mod pins) against the e2e cluster, with its cache, configuration and
data under the test's state directory instead of the user's home."""

import os
import subprocess
from pathlib import Path

from .cluster import E2E, REPO

CHART = REPO / "deploy" / "helm" / "portico"


def build():
    """The path of the pinned helm, built on first use (then cached)."""
    out = subprocess.run([str(E2E / "helm" / "build.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Helm:
    def __init__(self, cluster, home):
        self.binary = build()
        self.cluster = cluster
        self.home = Path(home)

    def __call__(self, *args, check=True, input=None):
        env = dict(
            os.environ,
            KUBECONFIG=str(self.cluster.kubeconfig),
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
        )
        result = subprocess.run([self.binary, *args], env=env, input=input, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
        return result
