"""The kubelet of the kwok node, with real processes: every Pod scheduled to
the node runs as a local process in a network namespace of its own that
holds the Pod IP this kubelet assigns (from the node's pod CIDR), with the
container's command, args and env (`value`, `fieldRef`), its Secret and
ConfigMap volumes mounted at their mountPaths (a private mount namespace),
and its output in a log file per container (CRI format, served through the
API by kwok: `kubectl logs` works). The container image decides
the binary (`IMAGES`); an image this kubelet cannot run is reported as a Pod
event and in the container status (`ErrImagePull`-like waiting reason), never
skipped silently.

Status is honest: the Pod turns Ready only once its readiness probe passes
(httpGet, tcpSocket) or, without one, every declared container port
listens (TCP: a connection succeeds; UDP: a bound socket in the namespace), a process that exits is restarted (restart count and back-off),
and a deleted Pod gets SIGTERM, then SIGKILL after its grace period (at most
10 s), before the Pod object is removed. Pods are followed with one
`kubectl get --watch` stream, not polled.

kwok then manages only the node: the cluster is started with
`E2E_POD_STAGES=none`, which keeps kwok's own pod stages out.
"""

import base64
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from .network import ns_exec
from .watch import Follow

NODE = os.environ.get("E2E_NODE_NAME", "kwok-node-0")
POD_NET = "10.244.0"
NODE_IP = "127.0.0.1"
GRACE_MAX = 10.0


class Image:
    """How to run one container image here: the binary standing for its
    entrypoint, and how to prepare the Pod's files (for Envoy, the xDS
    address in the bootstrap). No binary: the harness runs that program on
    the host itself (MetalLB's controller, whose Pod object only has to
    exist and run), so the Pod is reported Running and Ready on the node's
    address."""

    def __init__(self, binary, prepare=None):
        self.binary = binary
        self.prepare = prepare


class PodRun:
    """One Pod (one container: the suite's and portico's Pods have one)."""

    def __init__(self, pod, ip, netns, workdir):
        self.key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.ip = ip
        self.netns = netns
        self.workdir = workdir
        self.process = None
        self.restarts = 0
        self.next_start = 0.0
        self.ready = False
        self.started_at = None
        self.failure = None
        self.mount_reported = False
        self.logs_named = False
        self.deleting = None


def field_ref(pod, ip, path):
    meta = pod["metadata"]
    return {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", NODE),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": ip,
        "status.hostIP": NODE_IP,
    }.get(path)


def expand(text, env):
    """Kubernetes' `$(VAR)` expansion in command and args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Kubelet:
    def __init__(self, cluster, network, images, workdir):
        self.cluster = cluster
        self.network = network
        self.images = images
        self.workdir = Path(workdir)
        self.runs = {}
        self.free = [f"{POD_NET}.{i}" for i in range(10, 251)]
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watcher = None
        self.tender = None

    # ------------------------------------------------------------ lifecycle

    def start(self):
        self.watcher = Follow(
            self.cluster, ["pods", "-A", "--field-selector", f"spec.nodeName={NODE}"], self.on_event
        )
        self.tender = threading.Thread(target=self.tend, daemon=True)
        self.tender.start()

    def shutdown(self):
        self.stopping.set()
        if self.watcher:
            self.watcher.stop()
        if self.tender:
            self.tender.join(timeout=5)
        with self.lock:
            for run in list(self.runs.values()):
                self.stop(run, grace=2)

    # ---------------------------------------------------------------- watch

    def on_event(self, event):
        pod = event.get("object") or {}
        meta = pod.get("metadata", {})
        key = (meta.get("namespace"), meta.get("name"))
        with self.lock:
            run = self.runs.get(key)
            if run and run.uid != meta.get("uid"):
                self.stop(run, grace=0)
                run = None
            if event.get("type") == "DELETED":
                if run:
                    self.stop(run, grace=0)
                return
            if meta.get("deletionTimestamp"):
                if run and run.deleting is None:
                    grace = min(float(meta.get("deletionGracePeriodSeconds") or 30), GRACE_MAX)
                    run.deleting = time.monotonic() + grace
                    if run.process and run.process.poll() is None:
                        run.process.send_signal(signal.SIGTERM)
                elif run is None:
                    self.finalize(key)
                return
            if run is None:
                self.admit(pod)
            else:
                run.pod = pod

    # ------------------------------------------------------------- running

    def admit(self, pod):
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        image = self.image_for(pod["spec"]["containers"][0].get("image", ""))
        if image is not None and image.binary is None:
            run = PodRun(pod, NODE_IP, None, self.workdir)
            run.ready = True
            run.started_at = now()
            self.runs[key] = run
            self.write_status(run)
            return
        if not self.free:
            raise RuntimeError("no free Pod IP left")
        ip = self.free.pop(0)
        netns = self.network.namespace("pod", ip)
        workdir = self.workdir / f"{key[0]}_{key[1]}_{pod['metadata']['uid'][:8]}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        run = PodRun(pod, ip, netns, workdir)
        self.runs[key] = run
        self.launch(run)

    def image_for(self, image):
        for prefix, runner in self.images.items():
            if image.startswith(prefix):
                return runner
        return None

    def launch(self, run):
        container = run.pod["spec"]["containers"][0]
        image = self.image_for(container.get("image", ""))
        if image is None:
            run.failure = f"image {container.get('image')!r} has no local binary in the e2e kubelet"
            self.event(run, "Warning", "ImageUnknown", run.failure)
            self.write_status(run)
            return
        try:
            volumes = self.volumes(run, container)
            if image.prepare:
                image.prepare(run, volumes)
        except Exception as e:
            # A Secret or ConfigMap created after its Pod: tried again.
            if not run.mount_reported:
                self.event(run, "Warning", "FailedMount", str(e))
                run.mount_reported = True
                self.write_status(run)
            run.process = None
            run.next_start = time.monotonic() + 1
            return
        env = {"HOME": "/root", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = expand(str(e["value"]), env)
            elif (e.get("valueFrom") or {}).get("fieldRef"):
                value = field_ref(run.pod, run.ip, e["valueFrom"]["fieldRef"]["fieldPath"])
                if value is not None:
                    env[e["name"]] = value
        command = container.get("command") or []
        args = [expand(a, env) for a in (command[1:] + (container.get("args") or []))]
        # The binary is opened before the volumes are mounted (a mount may
        # hide its path: the suite mounts a ConfigMap over /root) and run
        # through that descriptor.
        script = " && ".join(
            ['exec 9< "$1"', "shift"]
            + [f"mkdir -p {shlex.quote(path)} && mount --bind {shlex.quote(str(source))} {shlex.quote(path)}"
               for path, source in volumes]
            + ['exec /proc/self/fd/9 "$@"']
        )
        log = run.workdir / f"{container['name']}.log"
        run.process = subprocess.Popen(
            [*ns_exec(run.netns), "unshare", "--mount", "--ipc", "sh", "-c", script,
             "pod", str(image.binary), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(run.workdir),
        )
        threading.Thread(target=cri_log, args=(run.process.stdout, log), daemon=True).start()
        if not run.logs_named:
            self.name_logs(run, container["name"], log)
            run.logs_named = True
        run.started_at = now()
        run.ready = False
        self.write_status(run)

    def volumes(self, run, container):
        """(mountPath, host directory) for each Secret and ConfigMap mount."""
        namespace = run.key[0]
        sources = {}
        for v in run.pod["spec"].get("volumes") or []:
            target = run.workdir / "volumes" / v["name"]
            if "secret" in v:
                obj = self.cluster.get("secret", v["secret"]["secretName"], namespace)
                if obj is None:
                    raise RuntimeError(f"Secret {namespace}/{v['secret']['secretName']} not found")
                data = {k: base64.b64decode(b) for k, b in (obj.get("data") or {}).items()}
                items = v["secret"].get("items")
            elif "configMap" in v:
                obj = self.cluster.get("configmap", v["configMap"]["name"], namespace)
                if obj is None:
                    raise RuntimeError(f"ConfigMap {namespace}/{v['configMap']['name']} not found")
                data = {k: t.encode() for k, t in (obj.get("data") or {}).items()}
                items = v["configMap"].get("items")
            else:
                continue
            target.mkdir(parents=True, exist_ok=True)
            for key, content in data.items():
                path = key
                if items is not None:
                    path = next((i["path"] for i in items if i["key"] == key), None)
                    if path is None:
                        continue
                (target / path).parent.mkdir(parents=True, exist_ok=True)
                (target / path).write_bytes(content)
            sources[v["name"]] = target
        return [(m["mountPath"], sources[m["name"]])
                for m in container.get("volumeMounts") or [] if m["name"] in sources]

    # --------------------------------------------------------------- tending

    def tend(self):
        while not self.stopping.wait(0.2):
            with self.lock:
                for run in list(self.runs.values()):
                    try:
                        self.tend_one(run)
                    except Exception as e:
                        print(f"kubelet: {run.key}: {e}", file=sys.stderr)

    def tend_one(self, run):
        if run.deleting is not None:
            if run.process is None or run.process.poll() is not None or time.monotonic() > run.deleting:
                self.stop(run, grace=0)
                self.finalize(run.key)
            return
        if run.netns is None or run.failure:
            return
        if run.process is None:
            if time.monotonic() >= run.next_start:
                self.launch(run)
            return
        if run.process.poll() is not None:
            if run.next_start == 0.0:
                run.restarts += 1
                run.ready = False
                delay = min(10 * 2 ** (run.restarts - 1), 300) if run.restarts > 1 else 1
                run.next_start = time.monotonic() + delay
                self.write_status(run)
            elif time.monotonic() >= run.next_start:
                run.next_start = 0.0
                self.launch(run)
            return
        if not run.ready and self.listening(run):
            run.ready = True
            self.write_status(run)

    def listening(self, run):
        """The container's readiness probe (httpGet or tcpSocket) passes, or
        without one, every declared port listens."""
        container = run.pod["spec"]["containers"][0]
        probe = container.get("readinessProbe") or {}
        ports = container.get("ports") or []

        def number(port):
            if isinstance(port, int):
                return port
            return next((p["containerPort"] for p in ports if p.get("name") == port), None)

        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://{run.ip}:{number(get.get('port'))}{get.get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    return 200 <= r.status < 400
            except (OSError, ValueError):
                return False
        if "tcpSocket" in probe:
            return self.connects(run.ip, number(probe["tcpSocket"].get("port")))
        for p in ports:
            if p.get("protocol", "TCP") == "UDP":
                out = subprocess.run(
                    [*ns_exec(run.netns), "ss", "-H", "-uln", f"sport = :{p['containerPort']}"],
                    capture_output=True, text=True,
                ).stdout
                if not out.strip():
                    return False
            elif not self.connects(run.ip, p["containerPort"]):
                return False
        return True

    @staticmethod
    def connects(ip, port):
        try:
            with socket.create_connection((ip, port), timeout=0.5):
                return True
        except (OSError, TypeError):
            return False

    def stop(self, run, grace):
        p = run.process
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if run.netns is not None:
            self.network.delete(run.netns)
            if run.ip not in self.free:
                self.free.append(run.ip)
        self.runs.pop(run.key, None)

    def finalize(self, key):
        self.cluster.kubectl("delete", "pod", key[1], "-n", key[0], "--grace-period=0",
                             "--force", "--wait=false", check=False)

    # ---------------------------------------------------------------- status

    def write_status(self, run):
        container = run.pod["spec"]["containers"][0]
        ready = "True" if run.ready else "False"
        running = run.netns is None or (run.process is not None and run.process.poll() is None)
        if run.failure:
            state = {"waiting": {"reason": "ErrImageNeverPull", "message": run.failure}}
        elif running:
            state = {"running": {"startedAt": run.started_at}}
        elif run.process is None:
            state = {"waiting": {"reason": "ContainerCreating", "message": "waiting for its volumes"}}
        else:
            state = {"waiting": {"reason": "CrashLoopBackOff", "message": "restarting"}}
        status = {
            "phase": "Running" if running else "Pending",
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "podIP": run.ip,
            "podIPs": [{"ip": run.ip}],
            "startTime": run.started_at or now(),
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now()},
                {"type": "Ready", "status": ready, "lastTransitionTime": now()},
            ],
            "containerStatuses": [{
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "ready": run.ready,
                "started": running,
                "restartCount": run.restarts,
                "state": state,
            }],
        }
        self.cluster.kubectl("patch", "pod", run.key[1], "-n", run.key[0], "--subresource=status",
                             "--type=merge", "-p", json.dumps({"status": status}), check=False)

    def name_logs(self, run, container, path):
        """A kwok `Logs` object naming the container's log file, owned by
        the Pod (so it goes with it), for `kubectl logs` through the API."""
        self.cluster.kubectl("apply", "-f", "-", check=False, input=json.dumps({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
            "metadata": {
                "name": run.key[1], "namespace": run.key[0],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": run.key[1],
                                     "uid": run.uid}],
            },
            "spec": {"logs": [{"containers": [container], "logsFile": str(path), "follow": True}]},
        }))

    def event(self, run, type_, reason, message):
        print(f"kubelet: {run.key[0]}/{run.key[1]}: {reason}: {message}", file=sys.stderr)
        self.cluster.apply(json.dumps({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{run.key[1]}.", "namespace": run.key[0],
                         "name": f"{run.key[1]}.{int(time.time() * 1000)}"},
            "involvedObject": {"kind": "Pod", "namespace": run.key[0], "name": run.key[1],
                               "uid": run.uid},
            "type": type_, "reason": reason, "message": message,
            "source": {"component": "e2e-kubelet", "host": NODE},
            "firstTimestamp": now(), "lastTimestamp": now(), "count": 1,
        }))



def cri_log(stream, path):
    """Copies a container's output into `path` in the CRI log format
    (`<RFC 3339 time> stdout F <line>`), which `kubectl logs` reads."""
    with open(path, "ab", buffering=0) as out:
        for line in iter(stream.readline, b""):
            ns = time.time_ns()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9))
            out.write(f"{stamp}.{ns % 10**9:09d}Z stdout F ".encode() + line.rstrip(b"\n") + b"\n")
