"""The Helm chart deploy/helm/portico on the real control plane, with the
real helm (e2e/helm, pinned): `helm install`, the seed journey, the chart
rendered under other values accepted by the API server's dry run, `helm
upgrade` with changed values applied, and `helm uninstall` leaving only what
a user expects. Runs on a control plane of its own (before test_journey's,
never beside it: they share the e2e network), in file order.

How the release maps onto the harness: the e2e cluster's node is kwok, which
runs no containers; as for the Envoy fleets (whose Pods kwok marks Ready
while `pods.Fleets` runs the real Envoys from their Deployments), the chart
is installed whole, operator Deployment included, kwok marks its Pods Ready
(so `helm install --wait` and `helm upgrade --wait` wait for real rollouts of
the API objects), and the harness runs the one real `portico run` from that
Deployment as the API server holds it: its container's args and env (fieldRefs
resolved), authenticated with a token of the chart's ServiceAccount, so the
chart's flags, log settings and RBAC are what runs; only the listen addresses
are the harness's. A `helm upgrade` that changes the Pod template is a
rollout: the harness restarts portico from the new Deployment. No value of
the chart exists for the test's sake.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from e2e.harness.cluster import condition, wait_for
from e2e.harness.helm import CHART, Helm
from e2e.harness.portico_run import Operator
from e2e.harness.world import PORTICO, World

NS = "portico-system"
FLEET = "envoy-portico-gateway"


@pytest.fixture(scope="module")
def release():
    state = os.environ.get("E2E_HELM_STATE", str(Path(__file__).resolve().parents[1] / ".run" / "helm"))
    world = World(state)
    world.helm = Helm(world.cluster, world.state / "helm")
    try:
        world.up()
        yield world
    finally:
        world.stop()
        for what, seconds in world.timings.items():
            print(f"e2e helm timing: {what}: {seconds:.1f} s")


def operator_deployment(world):
    return world.cluster.get("deployment", "portico", NS)


def run_from_deployment(world, revision):
    """Starts portico as the current operator Deployment runs it, in place of
    the one running (same ports: the fleets stay connected)."""
    previous = world.operator
    if previous:
        previous.stop()
    operator = Operator.from_deployment(
        world.cluster, PORTICO, world.workdir / f"portico-rev{revision}", operator_deployment(world),
        pod_name=f"portico-helm-rev{revision}", like=previous,
    )
    if previous:
        world.operator = operator
        operator.start()
    else:
        world.run_portico(operator)
    return operator


def log_lines(operator):
    return [json.loads(line) for line in operator.log().splitlines() if line.strip()]


def test_helm_install_runs_the_seed_journey(release):
    world = release
    started = time.monotonic()
    out = world.helm("install", "portico", str(CHART), "--namespace", NS, "--create-namespace",
                     "--wait", "--timeout", "90s")
    assert "STATUS: deployed" in out.stdout, out.stdout
    world.timings["helm install --wait"] = time.monotonic() - started
    deployment = operator_deployment(world)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"].get("readyReplicas") == 2, deployment["status"]
    assert world.cluster.get("poddisruptionbudget", "portico", NS)["spec"]["minAvailable"] == 1
    crd = world.cluster.get("crd", "gatewayparameters.portico.dev")
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == "portico"

    operator = run_from_deployment(world, 1)
    assert "--log-format=json" in operator.flags and operator.env["RUST_LOG"] == "info"
    world.seed_address = world.seed_journey()
    accepted = condition(world.cluster.get("gatewayclass", "portico"), "Accepted")
    assert accepted and accepted["status"] == "True", accepted
    code, body = world.curl(world.seed_address, "httpd.example.com")
    assert (code, "<h1>It works!</h1>" in body) == (200, True), body
    # The Deployment's --log-format and RUST_LOG are what runs.
    lines = log_lines(operator)
    assert lines and {line["level"] for line in lines} <= {"INFO", "WARN", "ERROR"}, lines[-5:]
    world.timings["helm install to first 200"] = time.monotonic() - started


def test_the_chart_under_other_values_passes_the_api_servers_dry_run(release):
    """`helm template … | kubectl apply --dry-run=server`: every object the
    chart renders under these values is admitted by the real API server,
    schemas and CEL included (the ServiceMonitor is not: the e2e cluster has
    no Prometheus Operator CRDs; deploy/helm/tests renders it)."""
    world = release
    # Other releases in namespaces of their own: their objects are created,
    # not merged into the installed release's (a client-side apply would
    # merge container port lists by port number).
    for namespace in ("alt", "gateways"):
        world.cluster.kubectl("create", "namespace", namespace)
    for release_name, namespace, values in (
        # The defaults, as deploy/ holds them, over the installed release.
        ("portico", NS, ["namespace.create=true"]),
        ("alt", "alt", [
            "replicas=3,logFormat=plain,logLevel=debug,xds.port=18443,admin.port=9443",
            "podDisruptionBudget.minAvailable=2,podAnnotations.team=edge,podLabels.tier=system",
            "image.repository=registry.example/portico,image.tag=dev,envoy.image=registry.example/envoy:v1",
            "nodeSelector.pool=system,tolerations[0].key=dedicated,tolerations[0].operator=Exists",
            "gatewayClass.name=alt,gatewayClass.parameters.replicas=2",
            "gatewayClass.parameters.service.type=NodePort,gatewayClass.parameters.envoy.logLevel=debug",
        ]),
        ("edge", "gateways", [
            "crds.install=false,networkPolicy.enabled=false,podDisruptionBudget.enabled=false",
            "gatewayClass.create=false",
        ]),
    ):
        args = ["template", release_name, str(CHART), "--namespace", namespace]
        for v in values:
            args += ["--set", v]
        rendered = world.helm(*args).stdout
        out = world.cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
        assert out.returncode == 0, (values, out.stderr)
        assert "(server dry run)" in out.stdout, out.stdout
    for namespace in ("alt", "gateways"):
        world.cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_helm_upgrade_applies_changed_values(release):
    world = release
    started = time.monotonic()
    out = world.helm("upgrade", "portico", str(CHART), "--namespace", NS, "--reuse-values",
                     "--set", "replicas=1,logLevel=debug,gatewayClass.parameters.replicas=2",
                     "--wait", "--timeout", "90s")
    assert "REVISION: 2" in out.stdout, out.stdout
    deployment = operator_deployment(world)
    assert deployment["spec"]["replicas"] == 1
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RUST_LOG"] == "debug"
    # One replica: no PodDisruptionBudget (it would block every drain).
    wait_for("the PodDisruptionBudget removed", 30,
             lambda: world.cluster.get("poddisruptionbudget", "portico", NS) is None)

    # The rollout: portico restarted from the new Pod template logs at debug.
    operator = run_from_deployment(world, 2)
    wait_for("debug logs", 30, lambda: any(line["level"] == "DEBUG" for line in log_lines(operator)))

    # The class's default GatewayParameters reach the seed Gateway's fleet.
    params = world.cluster.get("gatewayparameters", "portico", NS)
    assert params["spec"] == {"replicas": 2}
    ref = world.cluster.get("gatewayclass", "portico")["spec"]["parametersRef"]
    assert ref == {"group": "portico.dev", "kind": "GatewayParameters", "name": "portico", "namespace": NS}
    wait_for("the fleet scaled by the class parameters", 60,
             lambda: world.cluster.get("deployment", FLEET, "default")["spec"]["replicas"] == 2)
    world.programmed("portico-gateway")
    assert world.curl(world.seed_address, "httpd.example.com")[0] == 200
    world.timings["helm upgrade applied"] = time.monotonic() - started


# What portico creates at run time (the xDS CA, the leader Lease) and what
# Kubernetes puts in every namespace: all that stays in the namespace, which
# helm does not delete either.
LEFT_IN_NAMESPACE = {
    ("Secret", "portico-xds-ca"),
    ("Lease", "portico-leader"),
    ("ServiceAccount", "default"),
    ("ConfigMap", "kube-root-ca.crt"),
}


def namespaced_objects(world, namespace):
    kinds = world.cluster.kubectl("api-resources", "--namespaced=true", "--verbs=list", "-o", "name").stdout.split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]
    items = world.cluster.get(",".join(kinds), namespace=namespace)["items"]
    return {(i["kind"], i["metadata"]["name"]) for i in items}


def test_helm_uninstall_leaves_only_what_a_user_expects(release):
    world = release
    started = time.monotonic()
    # Gateways go first, while portico runs: their fleets go with them. (The
    # GatewayClass is the release's.)
    world.cluster.kubectl("delete", "gateway/portico-gateway", "httproute/foo-route", "service/my-httpd")
    wait_for("the seed fleet garbage-collected", 60,
             lambda: world.cluster.get("deployment", FLEET, "default") is None)
    world.operator.stop()  # its Pods go with the Deployment
    out = world.helm("uninstall", "portico", "--namespace", NS, "--wait", "--timeout", "90s")
    assert "kept due to the resource policy" in out.stdout + out.stderr, (out.stdout, out.stderr)
    assert world.helm("list", "--all-namespaces", "-q").stdout.strip() == ""

    # The CRD stays (and with it every GatewayParameters a user made).
    assert world.cluster.get("crd", "gatewayparameters.portico.dev") is not None
    # Everything cluster-scoped of the release is gone.
    assert world.cluster.get("gatewayclass", "portico") is None
    for kind in ("clusterroles", "clusterrolebindings", "validatingadmissionpolicies",
                 "validatingadmissionpolicybindings"):
        left = world.cluster.get(kind)["items"]
        assert not [i["metadata"]["name"] for i in left if "portico" in i["metadata"]["name"]], kind
    # In the namespace, once the garbage collector has removed the ReplicaSets,
    # Pods and EndpointSlices of the deleted Deployment and Services.
    left = wait_for("only the expected objects in portico-system", 60,
                    lambda: (objects := namespaced_objects(world, NS)) <= LEFT_IN_NAMESPACE and objects)
    assert left == LEFT_IN_NAMESPACE, left
    world.timings["helm uninstall, checked"] = time.monotonic() - started
