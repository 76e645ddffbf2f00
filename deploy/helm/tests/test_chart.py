"""The chart deploy/helm/portico rendered by the real helm (`helm template`,
the pinned build of e2e/helm) under values other than the defaults: every
value reaches the objects that use it, and the objects that must agree (the
operator's flags, its Role, Services, NetworkPolicy, admission policy,
monitors) still agree. `make chart` runs these; the defaults are deploy/
itself (`make deploy-check`), and e2e/tests/test_helm.py installs the chart
on a real API server.
"""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "portico"
OPERATOR = {"app.kubernetes.io/name": "portico", "app.kubernetes.io/component": "operator"}
# The labels every Envoy fleet pod carries, whatever its GatewayParameters say
# (tests/network_policy.rs checks them against the provisioner).
FLEET_POD = {
    "app.kubernetes.io/name": "envoy",
    "app.kubernetes.io/instance": "web",
    "gateway.networking.k8s.io/gateway-name": "web",
    "app.kubernetes.io/managed-by": "portico",
}


@pytest.fixture(scope="session")
def helm():
    out = subprocess.run([str(REPO / "e2e" / "helm" / "build.sh")], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def render(helm):
    """Objects of `helm template RELEASE` in NAMESPACE with `--set` values,
    by (kind, name)."""

    def run(*sets, release="portico", namespace="portico-system"):
        args = [helm, "template", release, str(CHART), "--namespace", namespace]
        for s in sets:
            args += ["--set", s]
        out = subprocess.run(args, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        objects = {}
        for doc in yaml.safe_load_all(out.stdout):
            if doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in objects, f"{key} rendered twice"
                objects[key] = doc
        return objects

    return run


def kinds(objects):
    return sorted({kind for kind, _ in objects})


def selects(selector, labels):
    ok = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for e in selector.get("matchExpressions", []):
        assert e["operator"] == "Exists", e
        ok = ok and e["key"] in labels
    return ok


def deployment(objects):
    (d,) = [o for (kind, _), o in objects.items() if kind == "Deployment"]
    return d


def container(objects):
    return deployment(objects)["spec"]["template"]["spec"]["containers"][0]


def flags(objects):
    args = container(objects)["args"]
    assert args[0] == "run"
    return dict(a[2:].split("=", 1) for a in args[1:])


def test_defaults_are_what_deploy_holds(render):
    objects = render()
    assert kinds(objects) == [
        "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Deployment",
        "GatewayClass", "NetworkPolicy", "PodDisruptionBudget", "Role", "RoleBinding",
        "Service", "ServiceAccount", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    ]
    # The namespace comes from `helm install --create-namespace`; deploy/
    # renders it with namespace.create=true.
    assert ("Namespace", "portico-system") not in objects
    assert ("Namespace", "portico-system") in render("namespace.create=true")
    crd = objects[("CustomResourceDefinition", "gatewayparameters.portico.dev")]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert container(objects)["image"] == "ghcr.io/portico-dev/portico:0.1.0"


def test_names_follow_the_release_and_agree_with_each_other(render):
    objects = render(release="edge", namespace="gateways")
    name = "edge-portico"
    assert ("ServiceAccount", name) in objects
    f = flags(objects)
    assert f["ca-secret"] == f"{name}-xds-ca" and f["lease"] == f"{name}-leader"
    assert f["xds-host"] == f"{name}-xds.gateways.svc"
    assert objects[("Service", f"{name}-xds")]["metadata"]["namespace"] == "gateways"
    role = objects[("Role", name)]
    named = {r["resources"][0]: r["resourceNames"] for r in role["rules"] if "resourceNames" in r}
    assert named == {"leases": [f["lease"]], "secrets": [f["ca-secret"]]}
    spec = deployment(objects)["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == name
    for binding in (objects[("ClusterRoleBinding", name)], objects[("RoleBinding", name)]):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "gateways"}]
    policy = objects[("ValidatingAdmissionPolicy", f"{name}-operator-scope")]
    assert f"'system:serviceaccount:gateways:{name}'" in policy["spec"]["matchConditions"][0]["expression"]
    own_ca = next(v for v in policy["spec"]["variables"] if v["name"] == "ownCa")["expression"]
    assert "'gateways'" in own_ca and f"'{name}-xds-ca'" in own_ca
    assert objects[("ValidatingAdmissionPolicyBinding", f"{name}-operator-scope")]["spec"]["policyName"] == \
        policy["metadata"]["name"]
    # A release named like the chart keeps the plain name; fullnameOverride wins.
    assert ("Deployment", "portico") in render()
    assert ("Deployment", "gw") in render("fullnameOverride=gw", release="edge")


def test_ports_reach_the_flags_probes_services_and_network_policy(render):
    objects = render("xds.port=18443", "admin.port=9443")
    f = flags(objects)
    assert (f["xds-listen"], f["admin-listen"], f["xds-port"]) == ("0.0.0.0:18443", "0.0.0.0:9443", "18443")
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    assert ports == {"xds": 18443, "admin": 9443}
    assert container(objects)["readinessProbe"]["httpGet"]["port"] == "admin"
    xds = objects[("Service", "portico-xds")]["spec"]["ports"][0]
    assert (xds["port"], xds["targetPort"]) == (18443, "xds")
    metrics = objects[("Service", "portico-metrics")]["spec"]["ports"][0]
    assert (metrics["port"], metrics["targetPort"]) == (9443, "admin")
    policy = objects[("NetworkPolicy", "portico")]["spec"]
    assert sorted(r["ports"][0]["port"] for r in policy["ingress"]) == [9443, 18443]
    assert selects(policy["podSelector"], deployment(objects)["spec"]["template"]["metadata"]["labels"])


def test_operator_values(render):
    objects = render(
        "replicas=3", "logFormat=plain", "logLevel=info\\,portico::xds=debug",
        "image.repository=registry.example/portico", "image.tag=dev", "image.pullPolicy=Always",
        "envoy.image=registry.example/envoy:v1.40.1", "podAnnotations.team=edge",
        "podLabels.cost-center=ops", "resources.limits.memory=1Gi",
        "nodeSelector.pool=system", "imagePullSecrets[0].name=pull",
    )
    d = deployment(objects)
    assert d["spec"]["replicas"] == 3
    template = d["spec"]["template"]
    assert template["metadata"]["annotations"] == {"team": "edge"}
    assert template["metadata"]["labels"] == {**OPERATOR, "cost-center": "ops"}
    assert template["spec"]["nodeSelector"] == {"pool": "system"}
    assert template["spec"]["imagePullSecrets"] == [{"name": "pull"}]
    c = container(objects)
    assert (c["image"], c["imagePullPolicy"]) == ("registry.example/portico:dev", "Always")
    assert c["resources"]["limits"]["memory"] == "1Gi"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["RUST_LOG"] == "info,portico::xds=debug"
    f = flags(objects)
    assert (f["log-format"], f["envoy-image"]) == ("plain", "registry.example/envoy:v1.40.1")


def test_pod_disruption_budget_only_with_more_than_one_replica(render):
    assert objects_of(render(), "PodDisruptionBudget")[0]["spec"]["minAvailable"] == 1
    pdb = objects_of(render("replicas=3", "podDisruptionBudget.minAvailable=2"), "PodDisruptionBudget")[0]
    assert pdb["spec"]["minAvailable"] == 2
    assert selects(pdb["spec"]["selector"], OPERATOR)
    assert objects_of(render("replicas=1"), "PodDisruptionBudget") == []
    assert objects_of(render("podDisruptionBudget.enabled=false"), "PodDisruptionBudget") == []


def objects_of(objects, kind):
    return [o for (k, _), o in objects.items() if k == kind]


def test_toggles(render):
    off = render("crds.install=false", "networkPolicy.enabled=false", "admissionPolicy.enabled=false",
                 "gatewayClass.create=false")
    for kind in ("CustomResourceDefinition", "NetworkPolicy", "ValidatingAdmissionPolicy",
                 "ValidatingAdmissionPolicyBinding", "GatewayClass", "GatewayParameters"):
        assert objects_of(off, kind) == [], kind
    assert ("Deployment", "portico") in off


def test_gateway_class_and_its_default_parameters(render):
    plain = render("gatewayClass.name=edge")
    assert "parametersRef" not in plain[("GatewayClass", "edge")]["spec"]
    assert objects_of(plain, "GatewayParameters") == []
    objects = render("gatewayClass.name=edge", "gatewayClass.parameters.replicas=3",
                     "gatewayClass.parameters.service.type=NodePort",
                     "gatewayClass.parameters.envoy.logLevel=debug")
    cls = objects[("GatewayClass", "edge")]
    assert cls["spec"]["controllerName"] == "portico.dev/gateway-controller"
    ref = cls["spec"]["parametersRef"]
    assert ref == {"group": "portico.dev", "kind": "GatewayParameters", "name": "edge", "namespace": "portico-system"}
    params = objects[("GatewayParameters", "edge")]
    assert params["apiVersion"] == "portico.dev/v1alpha1"
    assert params["metadata"]["namespace"] == "portico-system"
    assert params["spec"] == {"replicas": 3, "service": {"type": "NodePort"}, "envoy": {"logLevel": "debug"}}


def test_service_monitor_and_fleet_pod_monitor(render):
    assert objects_of(render(), "ServiceMonitor") == [] and objects_of(render(), "PodMonitor") == []
    objects = render("serviceMonitor.enabled=true", "serviceMonitor.interval=15s",
                     "serviceMonitor.labels.release=prometheus", "admin.port=9443")
    (monitor,) = objects_of(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["portico-system"]}
    # It selects the metrics Service by its labels, and its named port.
    service = objects[("Service", "portico-metrics")]
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": service["spec"]["ports"][0]["name"], "path": "/metrics", "interval": "15s"}
    assert service["spec"]["ports"][0]["port"] == 9443
    # The xDS Service has the same labels but no port of that name: no target.
    xds_ports = [p["name"] for p in objects[("Service", "portico-xds")]["spec"]["ports"]]
    assert endpoint["port"] not in xds_ports
    (pods,) = objects_of(objects, "PodMonitor")
    assert pods["spec"]["namespaceSelector"] == {"any": True}
    assert selects(pods["spec"]["selector"], FLEET_POD)
    assert not selects(pods["spec"]["selector"], {"app.kubernetes.io/name": "envoy"})
    assert pods["spec"]["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/stats/prometheus", "interval": "15s"}]
    no_fleets = render("serviceMonitor.enabled=true", "serviceMonitor.fleets.enabled=false")
    assert objects_of(no_fleets, "PodMonitor") == [] and len(objects_of(no_fleets, "ServiceMonitor")) == 1


def test_dashboards_are_config_maps_for_the_grafana_sidecar(render):
    def dashboards(objects):
        return [o for o in objects_of(objects, "ConfigMap")
                if "grafana_dashboard" in o["metadata"].get("labels", {})
                or "team-dashboards" in o["metadata"].get("labels", {})]
    assert dashboards(render()) == []
    shipped = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    found = dashboards(render("dashboards.enabled=true"))
    assert sorted(k for o in found for k in o["data"]) == shipped
    for o in found:
        assert o["metadata"]["labels"]["grafana_dashboard"] == "1"
        (text,) = o["data"].values()
        assert json.loads(text)["panels"], o["metadata"]["name"]
    relabelled = dashboards(render("dashboards.enabled=true", "dashboards.label=team-dashboards"))
    assert all(o["metadata"]["labels"]["team-dashboards"] == "1" for o in relabelled)


def test_the_schema_refuses_bad_values(helm):
    for bad in ("logFormat=xml", "xds.port=0", "replicas=-1", "image.pullPolicy=Sometimes",
                "gatewayClass.name=Not_A_Name", "typo=1"):
        out = subprocess.run([helm, "template", "portico", str(CHART), "--set", bad],
                             capture_output=True, text=True)
        assert out.returncode != 0, bad
        assert "values don't meet the specifications of the schema" in out.stderr, (bad, out.stderr)
