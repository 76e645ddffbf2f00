"""kube-proxy's part for LoadBalancer Services, with real processes: for
each such Service with an address from MetalLB, a network namespace holding
that address runs `lb_forward.py`, which forwards every Service port (TCP
and UDP) to the Service's ready endpoints. Services and EndpointSlices are
followed with watch streams; a change rewrites the forwarder's table (and
restarts it only when the ports change). An address MetalLB gives back
leaves with its namespace, so addresses are reused.
"""

import json
import subprocess
import sys
import threading
from pathlib import Path

from .network import ns_exec
from .pods import stop
from .watch import Follow

HARNESS = Path(__file__).resolve().parent


class Balancer:
    def __init__(self, netns, table):
        self.netns = netns
        self.table = table
        self.addresses = set()
        self.ports = None
        self.process = None
        # The table last written, so an unrelated event rewrites nothing.
        self.written = None


class KubeProxy:
    def __init__(self, cluster, network, workdir):
        self.cluster = cluster
        self.network = network
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.services = {}
        self.slices = {}
        self.balancers = {}
        self.lock = threading.Lock()
        self.follows = []

    def start(self):
        self.follows = [
            Follow(self.cluster, ["services", "-A"], lambda e: self.on_event(self.services, e, key_of)),
            Follow(self.cluster, ["endpointslices", "-A"], lambda e: self.on_event(self.slices, e, key_of)),
        ]

    def shutdown(self):
        for f in self.follows:
            f.stop()
        with self.lock:
            for key in list(self.balancers):
                self.remove(key)

    def on_event(self, store, event, key):
        obj = event.get("object") or {}
        with self.lock:
            if event.get("type") == "DELETED":
                store.pop(key(obj), None)
            else:
                store[key(obj)] = obj
            self.sync()

    def sync(self):
        wanted = {}
        for key, svc in self.services.items():
            if svc.get("spec", {}).get("type") != "LoadBalancer":
                continue
            ips = {i["ip"] for i in (svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []) if i.get("ip")}
            if ips:
                wanted[key] = (svc, ips)
        for key in list(self.balancers):
            if key not in wanted:
                self.remove(key)
        for key, (svc, ips) in wanted.items():
            self.reconcile(key, svc, ips)

    def reconcile(self, key, svc, ips):
        b = self.balancers.get(key)
        if b is None:
            netns = self.network.namespace("lb", None)
            b = Balancer(netns, self.workdir / f"{key[0]}_{key[1]}.json")
            self.balancers[key] = b
        for ip in ips - b.addresses:
            self.network.add_address(b.netns, ip)
        for ip in b.addresses - ips:
            subprocess.run([*ns_exec(b.netns), "ip", "addr", "del", f"{ip}/32", "dev", "eth0"], check=False)
        b.addresses = set(ips)
        table = {"tcp": {}, "udp": {}}
        ports = []
        for p in svc["spec"].get("ports") or []:
            protocol = p.get("protocol", "TCP").lower()
            ports.append(f"{protocol}/{p['port']}")
            table[protocol][str(p["port"])] = self.endpoints(key, p)
        text = json.dumps(table)
        if text != b.written:
            tmp = b.table.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(b.table)
            b.written = text
        ports.sort()
        if ports != b.ports or b.process is None or b.process.poll() is not None:
            stop(b.process)
            b.process = subprocess.Popen(
                [*ns_exec(b.netns), sys.executable, str(HARNESS / "lb_forward.py"), str(b.table), *ports],
                stdout=subprocess.DEVNULL,
                stderr=open(self.workdir / f"{key[0]}_{key[1]}.log", "a"),
            )
            b.ports = ports

    def endpoints(self, key, port):
        """Ready (address, target port) pairs for one Service port."""
        out = []
        for (ns, _), s in self.slices.items():
            labels = s.get("metadata", {}).get("labels", {})
            if ns != key[0] or labels.get("kubernetes.io/service-name") != key[1]:
                continue
            number = next(
                (sp["port"] for sp in s.get("ports") or []
                 if (sp.get("name") or "") == (port.get("name") or "")
                 and sp.get("protocol", "TCP") == port.get("protocol", "TCP")),
                None,
            )
            if number is None:
                continue
            for e in s.get("endpoints") or []:
                if (e.get("conditions") or {}).get("ready") is False:
                    continue
                out.extend([a, number] for a in e.get("addresses") or [])
        return out

    def remove(self, key):
        b = self.balancers.pop(key)
        stop(b.process)
        self.network.delete(b.netns)


def key_of(obj):
    meta = obj.get("metadata", {})
    return (meta.get("namespace"), meta.get("name"))
