//! A small in-memory stand-in for the Kubernetes API server, for reconcile
//! scenarios without a cluster: objects stored by path (with `resourceVersion`
//! and a `generation` that counts spec changes), server-side apply and
//! merge patches (status too, with `resourceVersion` preconditions), GET,
//! DELETE and POST, and a log of every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
    version: u64,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn plural(kind: &str) -> String {
    match kind {
        "GatewayClass" => "gatewayclasses".into(),
        "HTTPRoute" => "httproutes".into(),
        "GatewayParameters" => "gatewayparameters".into(),
        "EndpointSlice" => "endpointslices".into(),
        k => format!("{}s", k.to_ascii_lowercase()),
    }
}

/// The API path of an object.
pub fn path_of(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{}/{name}", plural(kind)),
        None => format!("{prefix}/{}/{name}", plural(kind)),
    }
}

fn without_version(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

fn reply(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .expect("response")
}

fn failure(code: u16, reason: &str) -> Response<Body> {
    reply(
        StatusCode::from_u16(code).expect("code"),
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": reason, "code": code, "message": reason}),
    )
}

impl FakeApi {
    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let api = api.clone();
            async move { Ok::<_, std::convert::Infallible>(api.handle(req).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Stores objects (YAML, several documents) as if created with kubectl.
    pub fn seed(&self, yaml: &str) {
        use serde::Deserialize;
        for doc in yaml_serde::Deserializer::from_str(yaml) {
            let mut v: Value = Value::deserialize(doc).expect("seed YAML");
            if v.is_null() {
                continue;
            }
            let mut s = self.lock();
            s.version += 1;
            v["metadata"]["resourceVersion"] = json!(s.version.to_string());
            if v["metadata"]["uid"].is_null() {
                v["metadata"]["uid"] = json!(format!("uid-{}", s.version));
            }
            let path = path_of(&v);
            s.objects.insert(path, v);
        }
    }

    /// Changes a stored object in place (a user's `kubectl edit`).
    pub fn edit(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut s = self.lock();
        s.version += 1;
        let version = s.version.to_string();
        let object = s.objects.get_mut(path).expect("object to edit");
        let spec = object["spec"].clone();
        f(object);
        object["metadata"]["resourceVersion"] = json!(version);
        if object["spec"] != spec {
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
            object["metadata"]["generation"] = json!(generation + 1);
        }
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.lock().objects.get(path).cloned()
    }

    pub fn remove(&self, path: &str) {
        self.lock().objects.remove(path);
    }

    /// Every stored object, as a YAML stream portico's file source reads.
    pub fn as_yaml(&self) -> String {
        self.lock()
            .objects
            .values()
            .map(|v| serde_json::to_string(v).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or_default().to_string();
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut s = self.lock();
        s.calls.push(Call {
            method: parts.method.clone(),
            path: path.clone(),
            query,
        });
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match parts.method {
            Method::GET => match s.objects.get(&path) {
                Some(v) => reply(StatusCode::OK, v),
                None => failure(404, "NotFound"),
            },
            Method::DELETE => match s.objects.remove(&path) {
                Some(v) => reply(StatusCode::OK, &v),
                None => failure(404, "NotFound"),
            },
            Method::POST => {
                s.version += 1;
                let mut v = body;
                v["metadata"]["resourceVersion"] = json!(s.version.to_string());
                let name = v["metadata"]["name"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("generated-{}", s.version));
                s.objects.insert(format!("{path}/{name}"), v.clone());
                reply(StatusCode::CREATED, &v)
            }
            Method::PATCH => {
                if let Some(object_path) = path.strip_suffix("/status") {
                    let Some(current) = s.objects.get(object_path).cloned() else {
                        return failure(404, "NotFound");
                    };
                    let expected = &body["metadata"]["resourceVersion"];
                    if !content_type.contains("apply")
                        && !expected.is_null()
                        && *expected != current["metadata"]["resourceVersion"]
                    {
                        return failure(409, "Conflict");
                    }
                    let mut next = current.clone();
                    next["status"] = body["status"].clone();
                    if next != current {
                        s.version += 1;
                        next["metadata"]["resourceVersion"] = json!(s.version.to_string());
                    }
                    s.objects.insert(object_path.to_string(), next.clone());
                    return reply(StatusCode::OK, &next);
                }
                let current = s.objects.get(&path).cloned();
                let mut next = body;
                // Like server-side apply: a field the applier leaves out and
                // another manager set (here, a Deployment's scale) stays.
                if let Some(replicas) = current.as_ref().map(|c| c["spec"]["replicas"].clone())
                    && !replicas.is_null()
                    && next["spec"].is_object()
                    && next["spec"]["replicas"].is_null()
                {
                    next["spec"]["replicas"] = replicas;
                }
                if let Some(status) = current.as_ref().map(|c| c["status"].clone())
                    && !status.is_null()
                {
                    next["status"] = status;
                }
                // Like the API server: generation counts spec changes.
                let generation = match &current {
                    Some(c) if c["spec"] == next["spec"] => c["metadata"]["generation"].clone(),
                    Some(c) => json!(c["metadata"]["generation"].as_i64().unwrap_or(0) + 1),
                    None => json!(1),
                };
                if !next["spec"].is_null() {
                    next["metadata"]["generation"] = generation;
                }
                let unchanged = current
                    .as_ref()
                    .is_some_and(|c| without_version(c) == without_version(&next));
                let version = match (&current, unchanged) {
                    (Some(c), true) => c["metadata"]["resourceVersion"].clone(),
                    _ => {
                        s.version += 1;
                        json!(s.version.to_string())
                    }
                };
                next["metadata"]["resourceVersion"] = version;
                s.objects.insert(path, next.clone());
                reply(StatusCode::OK, &next)
            }
            _ => failure(405, "MethodNotAllowed"),
        }
    }
}
