"""One case of the benchmark on a fresh e2e `World`:

1. set-up: the backend and its Service, the Gateways; wait until each is
   Programmed, has its MetalLB address and its Envoy answers; then the
   harness stops syncing fleets (nothing about them changes from here on);
2. the burst: every route of the case created concurrently through the API;
   timed from the last create until the watch has seen every route
   Accepted=True, and until each Gateway's Envoy serves its last route;
   then every hostname is checked once (retried until all answer 200);
3. the additions: routes added one at a time, each timed from its create
   call to its first 200 through Envoy (and to its Accepted status, waited
   for before the next), while the prober requests existing hostnames;
   portico's CPU time over the additions divided by their count.
"""

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from e2e.harness.cluster import KUBECTL, condition, wait_for
from e2e.harness.world import World

from . import objects, procfs, timeline, traffic
from .api import Api, ApiError, RouteStatuses
from .report import summary


class Case:
    """`gateways` Gateways with `per_gateway` routes each; written `N` (one
    Gateway) or `GxR`."""

    def __init__(self, label, gateways, per_gateway):
        self.label = label
        self.gateways = gateways
        self.per_gateway = per_gateway

    @property
    def routes(self):
        return self.gateways * self.per_gateway

    @classmethod
    def parse(cls, text):
        text = text.strip().lower()
        try:
            if "x" in text:
                g, r = (int(x) for x in text.split("x", 1))
            else:
                g, r = 1, int(text)
        except ValueError:
            raise ValueError(f"a size is N (routes on one Gateway) or GxR, not {text!r}") from None
        if g < 1 or r < 1 or g > 150:
            raise ValueError(f"{text!r}: 1 to 150 Gateways (MetalLB's pool), at least one route each")
        return cls(text, g, r)


class Settings:
    def __init__(self, additions=40, threads=16, probe_rate=100, create="api"):
        self.additions = additions
        self.threads = threads
        self.probe_rate = probe_rate
        self.create = create


def log(case, text):
    print(f"bench {case.label}: {text}", flush=True)


def run(case, state, settings):
    """Runs `case` on a World in `state`; returns its result (with `error`
    when it could not finish). The World is stopped whatever happens."""
    result = {"case": case.label, "gateways": case.gateways, "routes": case.routes,
              "routes_per_gateway": case.per_gateway}
    world = World(state)
    with procfs.inotify_instances(128 + 8 * case.gateways) as limit:
        result["inotify_max_user_instances"] = limit
        try:
            world.start()
            result["setup_seconds"] = {k: round(v, 1) for k, v in world.timings.items()}
            measure(world, case, settings, result)
        except Exception as e:  # the next case still runs; the result says why this one stopped
            result["error"] = f"{type(e).__name__}: {e}"
            log(case, f"failed: {result['error']}")
        finally:
            log(case, "stopping the cluster")
            world.stop()
    return result


def measure(world, case, settings, result):
    api = Api(world.cluster)
    started = time.monotonic()
    gateways = set_up(world, api, case)
    result["setup_seconds"]["backend, Gateways serving"] = round(time.monotonic() - started, 1)
    world.fleets.paused.set()
    portico = world.operator.process.pid
    envoys = {gw: envoy_pid(world, gw) for gw in gateways}

    statuses = RouteStatuses(api)
    try:
        routes = objects.burst(case.gateways, case.per_gateway)
        result["burst"] = burst(world, api, statuses, routes, gateways, case, settings)
        result["portico_after_burst"] = memory(portico)

        idle_before = procfs.cpu_seconds(portico)
        time.sleep(3)
        idle_cpu = procfs.cpu_seconds(portico) - idle_before

        targets = [(*gateways[r.gateway], r.hostname) for r in routes]
        prober = traffic.Prober(targets, rate=settings.probe_rate).start()
        try:
            cpu_before = procfs.cpu_seconds(portico)
            result["additions"] = additions(api, statuses, gateways, case, settings)
            cpu = procfs.cpu_seconds(portico) - cpu_before
        finally:
            result["prober"] = prober.stop()
    finally:
        statuses.stop()

    adds = result["additions"]
    adds["breakdown_ms"] = timeline.breakdown(adds["timed"], world.operator.log())
    log(case, "where the time goes (median ms): " + json.dumps(adds["breakdown_ms"]))
    count = adds["count"]
    rss, peak = procfs.memory_mib(portico)
    result["portico"] = {
        "rss_mib": round(rss, 1),
        "peak_rss_mib": round(peak, 1),
        "cpu_ms_per_change": round(cpu * 1000 / count, 1) if count else None,
        "idle_cpu_ms_per_s": round(idle_cpu * 1000 / 3, 1),
    }
    envoy_rss = [procfs.memory_mib(pid)[0] for pid in envoys.values() if pid]
    envoy_rss = [r for r in envoy_rss if r is not None]
    result["envoy"] = {
        "count": len(envoy_rss),
        "rss_mib_max": round(max(envoy_rss), 1) if envoy_rss else None,
        "rss_mib_total": round(sum(envoy_rss), 1) if envoy_rss else None,
    }
    adds = result["additions"]
    result["errors"] = (
        result["prober"]["errors"] + sum(adds["unexpected_answers"].values())
        + adds["failed"] + len(adds["create_errors"])
    )


def set_up(world, api, case):
    """The backend, its Service and the Gateways; returns {Gateway name:
    (address, port Envoy listens on)} once each Envoy answers 404 for an
    unknown host."""
    api.create(objects.service())
    world.publish(world.backend("bench\n"), objects.SERVICE)
    names = [objects.gateway_name(g, case.gateways) for g in range(case.gateways)]
    _, _, errors = api.create_all([objects.gateway(n) for n in names], threads=8)
    if errors:
        raise ApiError(f"creating Gateways: {errors[0]}")
    log(case, f"{case.gateways} Gateway(s) created; waiting for their Envoys")

    def programmed():
        status, listed = api.request("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/"
                                     f"{objects.NAMESPACE}/gateways")
        ready = {}
        for gw in (listed or {}).get("items", []):
            c = condition(gw, "Programmed")
            addresses = gw.get("status", {}).get("addresses") or []
            if c and c["status"] == "True" and addresses:
                ready[gw["metadata"]["name"]] = addresses[0]["value"]
        return ready if len(ready) == len(names) else None

    addresses = wait_for("every Gateway Programmed with an address", 120 + 3 * case.gateways,
                         programmed, interval=1)
    gateways = {}
    for name in names:
        status, svc = api.request("GET", f"/api/v1/namespaces/{objects.NAMESPACE}/services/envoy-{name}")
        port = next(p for p in svc["spec"]["ports"] if p["port"] == 80)
        gateways[name] = (addresses[name], int(port.get("targetPort", 80)))
    for name, (address, port) in gateways.items():
        wait_for(f"the Envoy of {name} answering", 120,
                 lambda: traffic.outcome(address, port, f"none.{objects.DOMAIN}") == 404)
    return gateways


def envoy_pid(world, gateway):
    pod = world.fleets.pods.get((objects.NAMESPACE, f"envoy-{gateway}"))
    return procfs.find(pod.envoy.pid, "envoy") if pod and pod.envoy else None


def memory(pid):
    rss, peak = procfs.memory_mib(pid)
    return {"rss_mib": round(rss, 1), "peak_rss_mib": round(peak, 1)}


def burst(world, api, statuses, routes, gateways, case, settings):
    names = [r.name for r in routes]
    log(case, f"creating {len(routes)} routes ({settings.create})")
    created_at = {}
    if settings.create == "kubectl":
        seconds, retries, errors = create_with_kubectl(world.cluster.kubeconfig, routes)
        last_create = time.monotonic()
    else:
        def on_created(obj):
            created_at[obj["metadata"]["name"]] = time.monotonic()

        seconds, retries, errors = api.create_all(
            [r.manifest() for r in routes], threads=settings.threads, on_created=on_created)
        last_create = max(created_at.values()) if created_at else time.monotonic()
    out = {
        "method": settings.create,
        "create_seconds": round(seconds, 2),
        "creates_per_second": round(len(routes) / seconds, 1),
        "create_retries": retries,
        "create_errors": len(errors),
        "create_error_examples": errors[:5],
    }
    log(case, f"created in {seconds:.1f} s ({len(errors)} errors); waiting for Envoy and statuses")

    # Each Gateway serves its routes once it serves the one created last.
    last = {}
    for r in routes:
        if r.gateway not in last or created_at.get(r.name, 0) >= created_at.get(last[r.gateway].name, 0):
            last[r.gateway] = r
    timeout = 120 + len(routes) * 0.05
    serving = {}
    deadline = last_create + timeout
    while len(serving) < len(last) and time.monotonic() < deadline:
        for gw, r in last.items():
            if gw not in serving and traffic.outcome(*gateways[gw], r.hostname) == 200:
                serving[gw] = time.monotonic()
        time.sleep(0.005)
    out["serving_seconds"] = round(max(serving.values()) - last_create, 2) if len(serving) == len(last) else None

    accepted = statuses.wait(names, max(1.0, deadline - time.monotonic()))
    out["statuses_seconds"] = round(accepted - last_create, 2) if accepted else None
    out["statuses_pending"] = len(statuses.pending(names))
    log(case, f"Envoy serving after {out['serving_seconds']} s, statuses written after "
              f"{out['statuses_seconds']} s (from the last create)")
    out["sweep"] = sweep(routes, gateways)
    return out


def create_with_kubectl(kubeconfig, routes):
    """`kubectl create -f` of one List holding every route (compared with
    the concurrent API calls; those were quicker)."""
    path = kubeconfig.parent / "bench-routes.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                "items": [r.manifest() for r in routes]}))
    started = time.monotonic()
    done = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "create", "-f", str(path)],
                          capture_output=True, text=True)
    seconds = time.monotonic() - started
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    return seconds, 0, errors


def sweep(routes, gateways, timeout=120):
    """Every hostname of the burst once through its Gateway; the ones not
    answering 200 again until they do (or `timeout`)."""
    started = time.monotonic()
    pending = list(routes)
    first_pass = None
    while pending and time.monotonic() - started < timeout:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda r: traffic.outcome(*gateways[r.gateway], r.hostname), pending))
        pending = [r for r, a in zip(pending, answers) if a != 200]
        if first_pass is None:
            first_pass = len(pending)
        if pending:
            time.sleep(0.5)
    if pending:
        raise AssertionError(f"{len(pending)} hostnames of the burst still not answering 200, "
                             f"e.g. {pending[0].hostname}")
    return {"hosts": len(routes), "not_200_first_pass": first_pass,
            "seconds": round(time.monotonic() - started, 1)}


def additions(api, statuses, gateways, case, settings):
    latencies, status_latencies, create_errors = [], [], []
    unexpected = {}
    failed = 0
    log(case, f"adding {settings.additions} routes one at a time")
    timed = []
    for k in range(settings.additions):
        route = objects.addition(k, case.gateways)
        address, port = gateways[route.gateway]
        started, sent = time.monotonic(), time.time()
        try:
            api.create(route.manifest())
        except (ApiError, OSError) as e:
            create_errors.append(str(e))
            continue
        answered = sent + time.monotonic() - started
        latency, bad = traffic.first_200(address, port, route.hostname, started, timeout=60)
        for answer, n in bad.items():
            unexpected[answer] = unexpected.get(answer, 0) + n
        if latency is None:
            failed += 1
        else:
            latencies.append(latency)
            timed.append({"gateway": f"{objects.NAMESPACE}/{route.gateway}", "sent": sent,
                          "answered": answered, "first_200": sent + latency})
        accepted = statuses.wait([route.name], 60)
        if accepted is not None:
            status_latencies.append(accepted - started)
    out = {
        "count": len(latencies) + failed,
        "latency_ms": summary(latencies),
        "status_ms": summary(status_latencies),
        "failed": failed,
        "unexpected_answers": unexpected,
        "create_errors": create_errors,
        "timed": timed,
    }
    log(case, "additions: " + json.dumps(out["latency_ms"]))
    return out
