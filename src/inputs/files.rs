//! The file source: YAML files (or a directory of them) into one `Inputs`.
//!
//! Each file may hold many `---`-separated documents. A document's
//! API group and `kind` pick one of the kinds `inputs::kinds` lists (any
//! version); kinds translation does not read are skipped with a debug log. Any malformed document fails the whole load with an error
//! naming the file, the document number and the field, so nothing partial is used.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{InputKind, InputObject, Inputs, InputsBuilder, Kind, Visit};

/// A load failure, precise enough to fix the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: document {document}: {message}")]
    Document {
        path: PathBuf,
        /// 1-based position of the document in its file.
        document: usize,
        message: String,
    },
}

/// Reads a file, or every `*.yaml`/`*.yml`/`*.json` file under a directory
/// (recursively, in path order), into one `Inputs`.
pub fn load(path: &Path) -> Result<Inputs, LoadError> {
    let mut builder = InputsBuilder::default();
    for file in yaml_files(path)? {
        let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Io {
            path: file.clone(),
            source,
        })?;
        for object in parse_documents(&file, &text)? {
            builder.insert(object);
        }
    }
    Ok(builder.build())
}

/// The files `load` reads, in the order it reads them.
pub fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let child = entry.path();
        if child.is_dir() {
            files.extend(yaml_files(&child)?);
        } else if matches!(
            child.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(child);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses every document of one file. `path` is only used in messages.
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<InputObject>, LoadError> {
    let mut objects = Vec::new();
    for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let fail = |message: String| LoadError::Document {
            path: path.to_path_buf(),
            document: index + 1,
            message,
        };
        let value = yaml_serde::Value::deserialize(document).map_err(|e| fail(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        if let Some(object) = parse_object(value).map_err(fail)? {
            objects.push(object);
        }
    }
    Ok(objects)
}

/// Kinds are matched on API group and kind; every served version is accepted.
fn parse_object(value: yaml_serde::Value) -> Result<Option<InputObject>, String> {
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .ok_or("missing string field `apiVersion`")?
        .to_string();
    let kind = value
        .get("kind")
        .and_then(|v| v.as_str())
        .ok_or("missing string field `kind`")?
        .to_string();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let known = Kind::ALL.iter().find(|k| {
        let resource = k.api_resource();
        resource.group == group && resource.kind == kind
    });
    let Some(known) = known else {
        tracing::debug!(%api_version, %kind, "skipping a kind translation does not read");
        return Ok(None);
    };
    known.visit(&mut Parse { value }).map(Some)
}

/// Reads one document as the kind it names.
struct Parse {
    value: yaml_serde::Value,
}

impl Visit for Parse {
    type Out = Result<InputObject, String>;

    fn kind<K: InputKind>(&mut self) -> Self::Out {
        let value = std::mem::take(&mut self.value);
        let mut object: K = typed(value, K::KIND.name())?;
        if K::NAMESPACED {
            namespaced(&mut object);
        }
        Ok(object.into_object())
    }
}

/// Deserializes into `T`, naming the failing field path on error.
fn typed<T: DeserializeOwned>(value: yaml_serde::Value, kind: &str) -> Result<T, String> {
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("<unnamed>")
        .to_string();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        format!("{kind} {name}: field `{field}`: {}", e.inner())
    })
}

/// Objects of namespaced kinds without a namespace land in `default`, as
/// `kubectl apply` would put them.
fn namespaced<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    if meta.namespace.is_none() {
        meta.namespace = Some("default".to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<InputObject>, LoadError> {
        parse_documents(Path::new("in.yaml"), text)
    }

    #[test]
    fn reads_known_kinds_and_skips_others() {
        let objects = parse(
            "apiVersion: v1\nkind: LimitRange\nmetadata: {name: x}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
             metadata: {name: portico}\nspec: {controllerName: portico.dev/gateway-controller}\n---\n",
        )
        .expect("valid input");
        assert_eq!(objects.len(), 1);
        assert!(matches!(objects[0], InputObject::GatewayClass(_)));
    }

    #[test]
    fn wrong_field_type_names_file_document_and_field() {
        let err = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n\
             spec:\n  gatewayClassName: portico\n  listeners:\n  - name: http\n    port: eighty\n    protocol: HTTP\n",
        )
        .expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.starts_with("in.yaml: document 2: Gateway g: field `spec.listeners[0].port`"),
            "{text}"
        );
    }

    #[test]
    fn malformed_yaml_is_an_error() {
        let err = parse("kind: [unclosed\n").expect_err("must fail");
        assert!(err.to_string().starts_with("in.yaml: document 1:"), "{err}");
    }

    #[test]
    fn missing_namespace_defaults_and_slices_group_by_service() {
        let objects = parse(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s1\n  labels: {kubernetes.io/service-name: web}\naddressType: IPv4\nendpoints: []\n",
        )
        .expect("valid input");
        let mut b = InputsBuilder::default();
        for o in objects {
            b.insert(o);
        }
        let inputs = b.build();
        let svc = super::super::ObjectKey::new("default", "web");
        assert_eq!(inputs.slices_of(&svc).count(), 1);
    }
}
