"""The API server without kubectl: HTTPS with the cluster's CA and its static
admin token (from the state directory `e2e/cluster/up.sh` writes), one
keep-alive connection per thread. Creates run concurrently on a thread pool;
a watch thread records when each HTTPRoute's status first says
Accepted=True for portico.
"""

import http.client
import json
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

CONTROLLER = "portico.dev/gateway-controller"
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes"


class ApiError(Exception):
    pass


class Api:
    def __init__(self, cluster):
        env = cluster.env()
        url = urlsplit(env["E2E_APISERVER"])
        self.host, self.port = url.hostname, url.port
        self.token = env["E2E_ADMIN_TOKEN"]
        self.tls = ssl.create_default_context(cafile=env["E2E_CA"])
        self.local = threading.local()

    def connection(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=timeout)

    def headers(self):
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                "Accept": "application/json"}

    def request(self, method, path, body=None):
        """One request on this thread's connection (opened again once if the
        server closed it). Returns (status, decoded JSON or None)."""
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = self.connection()
            try:
                conn.request(method, path, body=data, headers=self.headers())
                response = conn.getresponse()
                raw = response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                continue
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, None
        raise ApiError("unreachable")

    def create(self, obj, retries=5):
        """Creates one namespaced object; retries 429 and 5xx answers with
        back-off. Returns the number of retries it took; raises ApiError."""
        meta = obj["metadata"]
        path = collection(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        for attempt in range(retries + 1):
            status, answer = self.request("POST", path, obj)
            if status in (200, 201, 202):
                return attempt
            if status == 429 or status >= 500:
                time.sleep(0.05 * 2 ** attempt)
                continue
            raise ApiError(f"create {obj['kind']} {meta['name']}: {status} {message(answer)}")
        raise ApiError(f"create {obj['kind']} {meta['name']}: still {status} after {retries} retries")

    def create_all(self, objects, threads=16, on_created=None):
        """Creates `objects` concurrently. Returns (seconds, retries,
        errors); `on_created(obj)` runs right after each create returns."""
        errors = []
        retries = [0]
        lock = threading.Lock()

        def one(obj):
            try:
                n = self.create(obj)
            except (ApiError, OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(str(e))
                return
            if on_created:
                on_created(obj)
            with lock:
                retries[0] += n

        started = time.monotonic()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, objects))
        return time.monotonic() - started, retries[0], errors

    def list_version(self, path):
        status, answer = self.request("GET", f"{path}?limit=1")
        if status != 200:
            raise ApiError(f"list {path}: {status} {message(answer)}")
        return answer["metadata"]["resourceVersion"]


def collection(api_version, kind, namespace):
    group = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = kind.lower() + "s"
    return f"{group}/namespaces/{namespace}/{plural}" if namespace else f"{group}/{plural}"


def message(answer):
    return (answer or {}).get("message", "") if isinstance(answer, dict) else ""


def accepted(route):
    """True when portico's parent statuses of `route` all say Accepted=True."""
    parents = [p for p in (route.get("status") or {}).get("parents") or []
               if p.get("controllerName") == CONTROLLER]
    if not parents:
        return False
    return all(
        any(c.get("type") == "Accepted" and c.get("status") == "True" for c in p.get("conditions") or [])
        for p in parents
    )


class RouteStatuses:
    """Follows the HTTPRoutes of a namespace from now on (a watch from the
    current resourceVersion, resumed where it stopped): `accepted_at[name]`
    is the monotonic time the watch first saw the route Accepted=True."""

    def __init__(self, api, namespace="default"):
        self.api = api
        self.path = ROUTES.format(namespace=namespace)
        self.accepted_at = {}
        self.stopping = threading.Event()
        self.version = api.list_version(self.path)
        self.response = None
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping.is_set():
            conn = self.api.connection(timeout=None)
            try:
                conn.request("GET", f"{self.path}?watch=1&allowWatchBookmarks=true"
                             f"&resourceVersion={self.version}", headers=self.api.headers())
                self.response = conn.getresponse()
                if self.response.status != 200:
                    raise ApiError(f"watch: {self.response.status}")
                for line in self.response:
                    self.event(json.loads(line))
            except Exception as e:  # resumed; once stopping, `stop` closed the stream
                if self.stopping.is_set():
                    return
                print(f"bench: route watch: {e}; resuming", file=sys.stderr)
                time.sleep(0.5)
            finally:
                conn.close()

    def event(self, event):
        obj = event.get("object") or {}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if event.get("type") == "ERROR":
            # Too old a version: later events only (the burst is recorded).
            self.version = ""
            return
        if version:
            self.version = version
        if event.get("type") in ("ADDED", "MODIFIED") and accepted(obj):
            name = obj["metadata"]["name"]
            if name not in self.accepted_at:
                self.accepted_at[name] = time.monotonic()

    def wait(self, names, timeout):
        """Waits until every name in `names` is Accepted; returns the time
        the watch saw the last of them, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        missing = list(names)
        while True:
            missing = [n for n in missing if n not in self.accepted_at]
            if not missing:
                return max(self.accepted_at[n] for n in names)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def pending(self, names):
        return [n for n in names if n not in self.accepted_at]

    def stop(self):
        self.stopping.set()
        if self.response is not None:
            try:
                self.response.close()
            except OSError:
                pass
