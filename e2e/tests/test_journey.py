"""End to end on a real API server: the seed journey, listeners and Service
ports, addresses from MetalLB, deletion, dangling and forbidden references,
an Envoy rejection, and a portico restart. Tests run in file order against
one World; each leaves the seed Gateway serving."""

import json
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

from e2e.harness.certs import Ca, tls_secret
from e2e.harness.cluster import REPO, condition, wait_for
from e2e.harness.network import ns_exec
from e2e.harness.portico_run import Operator
from e2e.harness.world import PORTICO

FLEET = "envoy-portico-gateway"


def listener_condition(world, gateway, listener, type_):
    """The condition `type_` of one listener in a Gateway's status."""
    gw = world.cluster.get("gateway", gateway, "default") or {}
    for l in gw.get("status", {}).get("listeners", []):
        if l["name"] == listener:
            return condition({"status": l}, type_)
    return None


def parent_condition(route, type_):
    for parent in (route or {}).get("status", {}).get("parents", []) or []:
        if parent.get("controllerName") == "portico.dev/gateway-controller":
            for c in parent.get("conditions", []):
                if c["type"] == type_:
                    return c
    return None


def test_seed_journey(world):
    table = world.cluster.kubectl("get", "gatewayclass,gateway,httproute", "-o", "wide").stdout
    print(table)
    lines = table.splitlines()
    assert any("portico" in l and "True" in l for l in lines if l.startswith("gatewayclass")), table
    gateway_line = next(l for l in lines if l.startswith("gateway.gateway"))
    assert world.seed_address in gateway_line and "True" in gateway_line, table
    assert '["httpd.example.com"]' in table
    code, body = world.curl(world.seed_address, "httpd.example.com")
    assert (code, "<h1>It works!</h1>" in body) == (200, True), body
    # Other hosts are not routed.
    assert world.curl(world.seed_address, "other.example.com")[0] == 404


def test_second_listener_adds_a_service_port(world):
    world.cluster.kubectl(
        "patch", "gateway", "portico-gateway", "--type=json", "-p",
        json.dumps([{"op": "add", "path": "/spec/listeners/-",
                     "value": {"name": "alt", "port": 8080, "protocol": "HTTP"}}]),
    )
    def ports():
        svc = world.cluster.get("service", FLEET, "default")
        return sorted((p["port"], p["targetPort"]) for p in svc["spec"]["ports"])
    wait_for("the Service to carry both listener ports", 30, lambda: ports() == [(80, 10080), (8080, 8080)])
    wait_for(
        "traffic on the new listener",
        60,
        lambda: world.curl(world.seed_address, "httpd.example.com", port=8080)[0] == 200,
    )
    gw = world.cluster.get("gateway", "portico-gateway", "default")
    listeners = {l["name"]: l["attachedRoutes"] for l in gw["status"]["listeners"]}
    assert listeners == {"http": 1, "alt": 1}, listeners


def test_spec_addresses_asks_metallb_for_that_address(world):
    world.cluster.apply(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: pinned, namespace: default}
spec:
  gatewayClassName: portico
  addresses: [{type: IPAddress, value: 10.211.0.77}]
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: pinned-route, namespace: default}
spec:
  parentRefs: [{name: pinned}]
  hostnames: [pinned.example.com]
  rules:
  - backendRefs: [{name: my-httpd, port: 80}]
"""
    )
    assert world.gateway_address("pinned") == "10.211.0.77"
    world.programmed("pinned")
    wait_for(
        "traffic on the pinned address",
        60,
        lambda: world.curl("10.211.0.77", "pinned.example.com")[0] == 200,
    )


def test_a_fleet_scaled_by_hand_keeps_its_scale(world):
    """No GatewayParameters set replicas, so portico never applies the
    field: the scale someone else sets (kubectl scale, an autoscaler) stays
    across portico's re-apply of the drifted Deployment."""
    world.cluster.kubectl("scale", "deployment", FLEET, "--replicas=2")
    try:
        # The Deployment's spec changed: the leader's next round re-applies
        # it (drift), which before reverted the scale to 1.
        time.sleep(5)
        d = json.loads(world.cluster.kubectl(
            "get", "deployment", FLEET, "-o", "json", "--show-managed-fields").stdout)
        assert d["spec"]["replicas"] == 2
        owned = [json.dumps(m.get("fieldsV1", {})) for m in d["metadata"]["managedFields"] if m["manager"] == "portico"]
        assert owned and all("f:replicas" not in o for o in owned), owned
    finally:
        world.cluster.kubectl("scale", "deployment", FLEET, "--replicas=1")


def test_deleting_a_gateway_removes_its_objects(world):
    world.cluster.kubectl("delete", "gateway", "pinned")
    kinds = ["deployment", "service", "configmap", "secret", "serviceaccount"]

    def gone():
        return all(world.cluster.get(k, "envoy-pinned", "default") is None for k in kinds)

    wait_for("the fleet of the deleted Gateway to be garbage-collected", 60, gone)
    route = world.cluster.get("httproute", "pinned-route", "default")
    wait_for(
        "the orphaned route to lose portico's parent entry",
        30,
        lambda: parent_condition(world.cluster.get("httproute", "pinned-route", "default"), "Accepted")
        is None,
    )
    assert route is not None
    world.cluster.kubectl("delete", "httproute", "pinned-route")


def test_a_route_to_a_missing_service_answers_500(world):
    world.cluster.apply(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: dangling, namespace: default}
spec:
  parentRefs: [{name: portico-gateway}]
  hostnames: [dangling.example.com]
  rules:
  - backendRefs: [{name: no-such-service, port: 80}]
"""
    )

    def resolved():
        c = parent_condition(world.cluster.get("httproute", "dangling", "default"), "ResolvedRefs")
        return c if c and c["status"] == "False" else None

    c = wait_for("ResolvedRefs=False on the route", 30, resolved)
    assert c["reason"] == "BackendNotFound", c
    assert "no-such-service" in c["message"], c
    wait_for(
        "a 500 for the dangling backend",
        30,
        lambda: world.curl(world.seed_address, "dangling.example.com")[0] == 500,
    )
    # Everything else keeps working.
    assert world.curl(world.seed_address, "httpd.example.com")[0] == 200
    world.cluster.kubectl("delete", "httproute", "dangling")


def test_cross_namespace_backends_need_a_reference_grant(world):
    world.cluster.kubectl("create", "namespace", "shop")
    world.cluster.apply(
        """
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: shop}
spec:
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: default}
spec:
  parentRefs: [{name: portico-gateway}]
  hostnames: [shop.example.com]
  rules:
  - backendRefs: [{name: shop, namespace: shop, port: 80}]
"""
    )
    shop = world.backend("<h1>the shop</h1>\n")
    world.publish(shop, "shop", namespace="shop")

    def refs(status):
        def check():
            c = parent_condition(world.cluster.get("httproute", "shop", "default"), "ResolvedRefs")
            return c if c and c["status"] == status else None
        return check

    c = wait_for("RefNotPermitted without a grant", 30, refs("False"))
    assert c["reason"] == "RefNotPermitted", c
    wait_for("a 500 while not permitted", 30,
             lambda: world.curl(world.seed_address, "shop.example.com")[0] == 500)
    world.cluster.apply(
        """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: routes-from-default, namespace: shop}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
"""
    )
    wait_for("ResolvedRefs=True with the grant", 30, refs("True"))
    wait_for(
        "the shop through the Gateway",
        30,
        lambda: world.curl(world.seed_address, "shop.example.com") == (200, "<h1>the shop</h1>\n"),
    )


def https_get(ca_pem, address, port, hostname, path="/"):
    """(status, body) of one HTTPS request that verifies the certificate
    against the test CA for `hostname` (also the SNI name); None if the
    connection or the verification fails."""
    context = ssl.create_default_context(cadata=ca_pem)
    try:
        with socket.create_connection((address, port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=hostname) as tls:
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
    except (OSError, ssl.SSLError):
        return None
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


def tcp_http(address, port, host):
    """An HTTP request written on a raw TCP connection: the status code."""
    try:
        with socket.create_connection((address, port), timeout=5) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(65536).decode(errors="replace")
        return int(data.split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_https_tcp_and_udp_listeners_on_the_real_api_server(world):
    ca = Ca()
    cert, key = ca.leaf("secure.example.com")
    world.cluster.apply(tls_secret("secure-cert", "default", cert, key))
    world.cluster.apply(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: portico
  listeners:
  - {name: https, port: 443, protocol: HTTPS, hostname: secure.example.com, tls: {certificateRefs: [{name: secure-cert}]}}
  - {name: broken, port: 443, protocol: HTTPS, hostname: broken.example.com, tls: {certificateRefs: [{name: no-such-secret}]}}
  - {name: raw, port: 5432, protocol: TCP}
  - {name: dns, port: 5353, protocol: UDP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: secure, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: https}]
  rules:
  - backendRefs: [{name: my-httpd, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /vault}}]
    backendRefs: [{name: vault, port: 443}]
---
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: default}
spec:
  ports: [{name: https, port: 443, protocol: TCP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: vault, namespace: default}
spec:
  targetRefs: [{group: "", kind: Service, name: vault}]
  validation:
    caCertificateRefs: [{group: "", kind: ConfigMap, name: vault-ca}]
    hostname: vault.internal
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: raw, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: raw}]
  rules:
  - backendRefs: [{name: my-httpd, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: {name: dns, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: dns}]
  rules:
  - backendRefs: [{name: my-httpd, port: 80}]
"""
    )
    address = world.gateway_address("edge")

    def ports():
        svc = world.cluster.get("service", "envoy-edge", "default")
        return sorted((p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"])
    wait_for("the Service ports of each protocol", 30,
             lambda: ports() == [(443, 10443, "TCP"), (5353, 5353, "UDP"), (5432, 5432, "TCP")])

    broken = wait_for("the broken listener's ResolvedRefs", 30,
                      lambda: (c := listener_condition(world, "edge", "broken", "ResolvedRefs")) and c["status"] == "False" and c)
    assert broken["reason"] == "InvalidCertificateRef", broken
    assert "no-such-secret" in broken["message"], broken

    expected = (200, "<html><body><h1>It works!</h1></body></html>\n")
    wait_for("HTTPS with the Secret's certificate", 60,
             lambda: https_get(ca.pem, address, 443, "secure.example.com") == expected)
    wait_for("HTTP over the TCP route", 60, lambda: tcp_http(address, 5432, "any") == 200)
    for kind, name in (("tcproute", "raw"), ("udproute", "dns"), ("httproute", "secure")):
        c = parent_condition(world.cluster.get(kind, name, "default"), "Accepted")
        assert c and c["status"] == "True", (kind, name, c)

    # The BackendTLSPolicy names a CA ConfigMap that does not exist: its
    # status says so under the Gateway, and its Service answers 500.
    def policy_accepted():
        policy = world.cluster.get("backendtlspolicy", "vault", "default") or {}
        for a in policy.get("status", {}).get("ancestors", []) or []:
            if a.get("controllerName") == "portico.dev/gateway-controller":
                assert a["ancestorRef"]["name"] == "edge", a
                return condition({"status": a}, "Accepted")
        return None
    c = wait_for("the BackendTLSPolicy status", 30, policy_accepted)
    assert (c["status"], c["reason"]) == ("False", "NoValidCACertificate"), c
    assert https_get(ca.pem, address, 443, "secure.example.com", "/vault")[0] == 500

    # A new certificate in the Secret reaches Envoy without a restart.
    cert2, key2 = ca.leaf("secure.example.com")
    world.cluster.apply(tls_secret("secure-cert", "default", cert2, key2))
    fingerprint = ssl.PEM_cert_to_DER_cert(cert2)

    def served():
        context = ssl.create_default_context(cafile=None)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((address, 443), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname="secure.example.com") as tls:
                    return tls.getpeercert(binary_form=True) == fingerprint
        except OSError:
            return False
    wait_for("the rotated certificate", 60, served)

    world.cluster.kubectl("delete", "gateway", "edge")
    world.cluster.kubectl("delete", "httproute", "secure")
    world.cluster.kubectl("delete", "tcproute", "raw")
    world.cluster.kubectl("delete", "udproute", "dns")
    world.cluster.kubectl("delete", "backendtlspolicy", "vault")
    world.cluster.kubectl("delete", "service", "vault")


def test_typos_and_hostile_regexes_never_stop_a_serving_gateway(world):
    """Keep last good on the real API server: a parametersRef typo and a deleted
    certificate Secret leave the fleet, its Service, its MetalLB address and its
    HTTPS traffic untouched while the conditions say what is wrong and that the
    last accepted configuration is still served; regexes Envoy's RE2 would
    refuse are reported on their route and the listener keeps taking updates."""
    ca = Ca()
    cert, key = ca.leaf("*.example.com")
    world.cluster.apply(tls_secret("steady-cert", "default", cert, key))
    world.cluster.apply(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: steady, namespace: default}
spec:
  gatewayClassName: portico
  listeners:
  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: steady-cert}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: steady, namespace: default}
spec:
  parentRefs: [{name: steady}]
  hostnames: [steady.example.com]
  rules:
  - backendRefs: [{name: my-httpd, port: 80}]
"""
    )
    address = world.gateway_address("steady")
    expected = (200, "<html><body><h1>It works!</h1></body></html>\n")
    wait_for("HTTPS on the steady Gateway", 60,
             lambda: https_get(ca.pem, address, 443, "steady.example.com") == expected)
    service_uid = world.cluster.get("service", "envoy-steady", "default")["metadata"]["uid"]
    deployment_uid = world.cluster.get("deployment", "envoy-steady", "default")["metadata"]["uid"]

    def accepted():
        return condition(world.cluster.get("gateway", "steady", "default"), "Accepted")

    def untouched(what):
        for _ in range(5):
            assert https_get(ca.pem, address, 443, "steady.example.com") == expected, what
            time.sleep(0.5)
        assert world.cluster.get("service", "envoy-steady", "default")["metadata"]["uid"] == service_uid, what
        assert world.cluster.get("deployment", "envoy-steady", "default")["metadata"]["uid"] == deployment_uid, what
        assert world.gateway_address("steady") == address, what

    # Hostile regexes on the serving listener: refused on their route with
    # the field and the reason; a route added afterwards is still served.
    world.cluster.apply(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hostile, namespace: default}
spec:
  parentRefs: [{name: steady}]
  hostnames: [steady.example.com]
  rules:
  - matches: [{path: {type: RegularExpression, value: "(?x) /a | /b"}}]
    backendRefs: [{name: my-httpd, port: 80}]
  - matches: [{path: {type: RegularExpression, value: "(?:(?:(?:a{1000}){1000}){1000})"}}]
    backendRefs: [{name: my-httpd, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: fresh, namespace: default}
spec:
  parentRefs: [{name: steady}]
  hostnames: [fresh.example.com]
  rules:
  - backendRefs: [{name: my-httpd, port: 80}]
"""
    )
    hostile = wait_for("the hostile route's verdict", 30, lambda: (
        c := parent_condition(world.cluster.get("httproute", "hostile", "default"), "Accepted"))
        and c["status"] == "False" and c)
    assert "spec.rules[0].matches[0].path.value" in hostile["message"], hostile
    assert "spec.rules[1].matches[0].path.value" in hostile["message"], hostile
    wait_for("a route added after the hostile one", 60,
             lambda: https_get(ca.pem, address, 443, "fresh.example.com") == expected)
    untouched("hostile regexes")

    # A parametersRef typo: Accepted=False naming it, nothing else changes.
    world.cluster.kubectl(
        "patch", "gateway", "steady", "--type=merge", "-p",
        json.dumps({"spec": {"infrastructure": {"parametersRef": {
            "group": "portico.dev", "kind": "GatewayParameters", "name": "typo"}}}}),
    )
    c = wait_for("the typo reported", 30, lambda: (c := accepted()) and c["status"] == "False" and c)
    assert c["reason"] == "InvalidParameters" and "typo" in c["message"], c
    assert "keeps serving the last accepted configuration" in c["message"], c
    untouched("a parametersRef typo")
    world.cluster.kubectl("patch", "gateway", "steady", "--type=json", "-p",
                          json.dumps([{"op": "remove", "path": "/spec/infrastructure"}]))
    wait_for("the Gateway accepted again", 30, lambda: (c := accepted()) and c["status"] == "True")

    # The only listener's certificate Secret is deleted: the last valid
    # certificate keeps being served, and the listener says why.
    world.cluster.kubectl("delete", "secret", "steady-cert")
    c = wait_for("the missing certificate reported", 30, lambda: (
        c := listener_condition(world, "steady", "https", "ResolvedRefs")) and c["status"] == "False" and c)
    assert c["reason"] == "InvalidCertificateRef", c
    assert "steady-cert does not exist" in c["message"], c
    assert "the last valid certificate is still served" in c["message"], c
    untouched("a deleted certificate Secret")

    for kind, name in (("gateway", "steady"), ("httproute", "steady"), ("httproute", "hostile"),
                       ("httproute", "fresh")):
        world.cluster.kubectl("delete", kind, name)


def test_the_admission_policy_keeps_portico_to_its_own_objects(world):
    """deploy/'s ValidatingAdmissionPolicy on the real API server: RBAC lets
    portico's ServiceAccount patch any Deployment, but the policy denies it
    every object it does not manage, while its own fleets keep being applied
    (the seed Gateway serves)."""
    world.cluster.apply(
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: envoy-foreign, namespace: default, labels: {app: foreign}}
spec:
  replicas: 1
  selector: {matchLabels: {app: foreign}}
  template:
    metadata: {labels: {app: foreign}}
    spec: {containers: [{name: app, image: example.com/foreign}]}
"""
    )
    as_portico = world.operator.kubeconfig
    for attempt in (
        ("label", "deployment", "envoy-foreign", "taken=over"),
        ("label", "deployment", "envoy-foreign", "app.kubernetes.io/managed-by=portico"),
        ("delete", "deployment", "envoy-foreign"),
    ):
        out = world.cluster.kubectl(*attempt, check=False, kubeconfig=as_portico)
        assert out.returncode != 0, (attempt, out.stdout)
        assert "portico may change only the envoy- objects it manages" in out.stderr, (attempt, out.stderr)
    live = world.cluster.get("deployment", "envoy-foreign", "default")
    assert live and "taken" not in live["metadata"].get("labels", {}), live
    # portico's own fleet is still its to change.
    out = world.cluster.kubectl("annotate", "--overwrite", "deployment", FLEET, "e2e/checked=yes",
                                check=False, kubeconfig=as_portico)
    assert out.returncode == 0, out.stderr
    assert world.curl(world.seed_address, "httpd.example.com")[0] == 200
    world.cluster.kubectl("delete", "deployment", "envoy-foreign")


def test_an_envoy_rejection_turns_programmed_false_with_its_message(world):
    # Something in the Envoy pod's network namespace holds port 9099, so
    # Envoy cannot bind a listener there and rejects the configuration.
    pod = world.fleets.pods[("default", FLEET)]
    squatter = subprocess.Popen(
        [*ns_exec(pod.namespace), "python3", "-c",
         "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 9099)); s.listen(); time.sleep(600)"],
    )
    try:
        time.sleep(0.5)
        world.cluster.kubectl(
            "patch", "gateway", "portico-gateway", "--type=json", "-p",
            json.dumps([{"op": "add", "path": "/spec/listeners/-",
                         "value": {"name": "blocked", "port": 9099, "protocol": "HTTP"}}]),
        )

        def rejected():
            c = condition(world.cluster.get("gateway", "portico-gateway", "default"), "Programmed")
            return c if c and c["status"] == "False" and c["reason"] == "Invalid" else None

        c = wait_for("Programmed=False/Invalid after Envoy's NACK", 60, rejected)
        assert "Envoy rejected configuration version" in c["message"], c
        assert "9099" in c["message"], c

        def event():
            events = world.cluster.get("events.events.k8s.io", namespace="default")
            return [e for e in events["items"] if e.get("reason") == "ConfigurationRejected"
                    and e["regarding"]["name"] == "portico-gateway"]

        assert "9099" in wait_for("a ConfigurationRejected Event", 30, event)[0]["note"]
        # The previous configuration keeps serving.
        assert world.curl(world.seed_address, "httpd.example.com")[0] == 200
    finally:
        world.cluster.kubectl(
            "patch", "gateway", "portico-gateway", "--type=json", "-p",
            json.dumps([{"op": "remove", "path": "/spec/listeners/2"}]),
        )
        squatter.kill()
        squatter.wait()
    world.programmed("portico-gateway")


def envoy_versions(world):
    """The version of every dynamic resource the seed Gateway's Envoy holds."""
    pod = world.fleets.pods[("default", FLEET)]
    dump = json.loads(subprocess.run(
        [*ns_exec(pod.namespace), "curl", "-s", "127.0.0.1:19000/config_dump"],
        capture_output=True, text=True, check=True,
    ).stdout)
    versions = {}
    for config in dump["configs"]:
        for key, value in config.items():
            if not key.startswith("dynamic_"):
                continue
            for item in value if isinstance(value, list) else []:
                inner = item.get("route_config") or item.get("cluster") or \
                    (item.get("active_state") or {}).get("listener") or {}
                name = inner.get("name")
                version = item.get("version_info") or (item.get("active_state") or {}).get("version_info")
                if name:
                    versions[f"{key}/{name}"] = version
    return versions


def scrape(address, path="/stats/prometheus"):
    """(status, body) of a GET to a fleet pod's metrics port."""
    try:
        with urllib.request.urlopen(f"http://{address}:19002{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def downstream_requests(metrics, listener):
    prefix = f'envoy_http_downstream_rq_total{{envoy_http_conn_manager_prefix="{listener}"}} '
    values = [int(l[len(prefix):]) for l in metrics.splitlines() if l.startswith(prefix)]
    assert values, f"no request counter for {listener}"
    return values[0]


def test_fleet_metrics_are_scraped_from_the_pods_metrics_port(world):
    world.programmed("portico-gateway")
    deployment = world.cluster.get("deployment", FLEET, "default")
    template = deployment["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    port = int(annotations["prometheus.io/port"])
    named = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    assert named["metrics"] == port == 19002
    pod = world.fleets.pods[("default", FLEET)]
    # From outside the pod, as a scraper on another node would.
    status, before = scrape(pod.ip, annotations["prometheus.io/path"])
    assert status == 200 and "# TYPE envoy_http_downstream_rq_total counter" in before
    for _ in range(3):
        assert world.curl(world.seed_address, "httpd.example.com")[0] == 200
    _, after = scrape(pod.ip)
    assert downstream_requests(after, "http-80") >= downstream_requests(before, "http-80") + 3
    # Only the metrics page: the rest of the admin interface stays on loopback.
    assert scrape(pod.ip, "/config_dump")[0] == 404
    assert scrape(pod.ip, "/quitquitquit")[0] == 404


def metric(text, name):
    """The value of the series `name` (with its labels) in an exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    return None


def test_operator_metrics_show_translations_objects_statuses_and_envoy_answers(world):
    world.programmed("portico-gateway")
    text = world.operator.metrics()
    gw = 'gateway="default/portico-gateway"'
    assert metric(text, "portico_leader") == 1
    assert metric(text, 'portico_translations_total{kind="full"}') >= 1
    assert metric(text, 'portico_objects_accepted{kind="Gateway",accepted="true"}') >= 1
    assert metric(text, 'portico_objects{kind="HTTPRoute"}') >= 1
    assert metric(text, 'portico_status_writes_total{kind="Gateway",result="written"}') >= 1
    assert metric(text, f"portico_xds_gateway_acks_total{{{gw}}}") >= 1
    assert metric(text, f'portico_xds_snapshot_resources{{{gw},resource_type="listener"}}') >= 1
    assert metric(text, f"portico_xds_snapshot_bytes{{{gw}}}") > 0


def dashboard_metrics(path):
    """The metric names every panel of a Grafana dashboard queries."""
    names = set()
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r"by \([^)]*\)", "", target["expr"])
            expr = re.sub(r"\{[^}]*\}", "", expr)
            names.update(re.findall(r"\b(?:portico|envoy)_[a-z0-9_]+", expr))
    return names


def test_every_dashboard_panel_queries_an_exported_metric(world):
    world.programmed("portico-gateway")
    for _ in range(3):
        assert world.curl(world.seed_address, "httpd.example.com")[0] == 200
    pod = world.fleets.pods[("default", FLEET)]
    exported = world.operator.metrics() + scrape(pod.ip)[1]
    series = {re.split(r"[{ ]", l, maxsplit=1)[0] for l in exported.splitlines() if l and l[0] != "#"}
    dashboards = sorted((REPO / "deploy" / "helm" / "portico" / "dashboards").glob("*.json"))
    assert len(dashboards) == 2
    for dashboard in dashboards:
        wanted = dashboard_metrics(dashboard)
        assert len(wanted) >= 8, dashboard
        missing = sorted(wanted - series)
        assert not missing, f"{dashboard.name} queries metrics nobody exports: {missing}"


def test_restarting_portico_changes_no_status_and_no_xds_version(world):
    world.programmed("portico-gateway")
    time.sleep(3)  # let the last writes land
    held = envoy_versions(world)
    assert any(k.startswith("dynamic_route_configs/") for k in held), held

    def versions():
        return {
            kind: world.cluster.get(kind, name, ns)["metadata"]["resourceVersion"]
            for kind, name, ns in [
                ("gatewayclass", "portico", None),
                ("gateway", "portico-gateway", "default"),
                ("httproute", "foo-route", "default"),
                ("httproute", "shop", "default"),
            ]
        }

    before = versions()
    world.operator.stop()
    world.operator.start()

    def reconnected():
        m = world.operator.metrics()
        return 'portico_xds_streams{gateway="default/portico-gateway"} 1' in m and m

    metrics = wait_for("the Envoy to reconnect to the new portico", 60, reconnected)
    time.sleep(5)  # a full leader round: lease, provisioning check, status plan
    assert envoy_versions(world) == held
    metrics = world.operator.metrics()
    pushes = [l for l in metrics.splitlines() if l.startswith("portico_xds_pushes_total")]
    assert all(l.endswith(" 0") for l in pushes), pushes
    assert versions() == before
    assert world.curl(world.seed_address, "httpd.example.com")[0] == 200


def test_envoys_on_a_replica_that_does_not_lead_program_their_gateway(world):
    """Only the leader writes statuses, but Envoys report to whichever
    replica they reach: the standby shares what its Envoys ACKed in its own
    Lease, and the leader reads it."""
    standby = Operator(world.cluster, PORTICO, world.workdir / "standby", pod_name="portico-e2e-2")
    standby.start()
    leader_xds = world.fleets.xds_port
    world.fleets.xds_port = standby.xds_port  # new Envoy pods reach the standby
    try:
        world.cluster.apply(
            """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: elsewhere, namespace: default}
spec:
  gatewayClassName: portico
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: default}
spec:
  parentRefs: [{name: elsewhere}]
  hostnames: [elsewhere.example.com]
  rules:
  - backendRefs: [{name: my-httpd, port: 80}]
"""
        )

        def programmed():
            gw = world.cluster.get("gateway", "elsewhere", "default") or {}
            c = condition(gw, "Programmed")
            return gw if c and c["status"] == "True" else None

        gw = wait_for("the Gateway served by the standby to be programmed", 60, programmed)
        address = gw["status"]["addresses"][0]["value"]
        assert world.curl(address, "elsewhere.example.com")[0] == 200
        streams = 'portico_xds_streams{gateway="default/elsewhere"} 1'
        assert streams in standby.metrics(), "its Envoy is the standby's"
        assert streams not in world.operator.metrics(), "and not the leader's"
        lease = world.cluster.get("lease", "portico-leader.portico-e2e-2", "portico-system")
        report = json.loads(lease["metadata"]["annotations"]["portico.dev/envoy-feedback"])
        assert report["default/elsewhere"]["streams"] == 1

        # A change the standby's Envoys ACK moves Programmed's version too.
        version = condition(gw, "Programmed")["message"]
        world.cluster.kubectl(
            "patch", "httproute", "elsewhere", "--type=merge", "-p",
            json.dumps({"spec": {"hostnames": ["elsewhere.example.com", "also.example.com"]}}),
        )

        def moved():
            c = condition(world.cluster.get("gateway", "elsewhere", "default") or {}, "Programmed")
            return c if c and c["status"] == "True" and c["message"] != version else None

        wait_for("Programmed to name the new version the standby's Envoy ACKed", 30, moved)
        assert world.curl(address, "also.example.com")[0] == 200
    finally:
        world.fleets.xds_port = leader_xds
        world.cluster.kubectl("delete", "gateway,httproute", "elsewhere", "--ignore-not-found")
        standby.stop()
    wait_for(
        "the stopped replica's Lease to be deleted",
        15,
        lambda: world.cluster.get("lease", "portico-leader.portico-e2e-2", "portico-system") is None,
    )


def test_a_second_replica_takes_over_when_the_leader_stops(world):
    def holder():
        lease = world.cluster.get("lease", "portico-leader", "portico-system")
        return (lease or {}).get("spec", {}).get("holderIdentity")

    assert holder() == "portico-e2e"
    standby = Operator(world.cluster, PORTICO, world.workdir / "standby", pod_name="portico-e2e-2")
    standby.start()  # ready: it translates and serves xDS while the other leads
    try:
        time.sleep(3)
        assert holder() == "portico-e2e", "the standby does not take a held Lease"
        world.operator.stop()  # gives the Lease up on SIGTERM
        wait_for("the standby to lead", 20, lambda: holder() == "portico-e2e-2")
        world.cluster.apply(
            """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: after-failover, namespace: default}
spec:
  parentRefs: [{name: portico-gateway}]
  hostnames: [failover.example.com]
  rules:
  - backendRefs: [{name: my-httpd, port: 80}]
"""
        )

        def accepted():
            c = parent_condition(world.cluster.get("httproute", "after-failover", "default"), "Accepted")
            return c if c and c["status"] == "True" else None

        wait_for("the new leader to write the route's status", 30, accepted)
    finally:
        standby.stop()
