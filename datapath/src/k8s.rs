//! Reading Kubernetes objects as `kubectl get -o yaml` prints them: a file or a directory of
//! YAML files, each with one or more documents (`---`) and `kind: List` documents, into typed
//! k8s-openapi `Service`, `EndpointSlice` (discovery.k8s.io/v1) and `Node` objects. Owns the
//! file walking (the only I/O in the planner half) and the errors that point at a file, a
//! document, an object and a field. Other kinds are skipped with a note, never an error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::Value;

/// The typed objects found, in file then document order.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub nodes: Vec<Node>,
    /// Documents that were not one of the three kinds above.
    pub skipped: Vec<Skipped>,
}

/// Where a document came from: file, 1-based document number, and index in a List's `items`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file.display(), self.document)?;
        if let Some(i) = self.item {
            write!(f, ", items[{i}]")?;
        }
        Ok(())
    }
}

/// A document of a kind the planner does not use (ConfigMap, Pod, Endpoints...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub origin: Origin,
    pub api_version: String,
    pub kind: String,
    /// `namespace/name` or `name`.
    pub name: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: skipped {} {} ({}): not used by the service planner",
            self.origin, self.kind, self.name, self.api_version
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: document {document}: not valid YAML: {message}", file.display())]
    Yaml {
        file: PathBuf,
        document: usize,
        message: String,
    },
    /// The document is YAML but not a Kubernetes object (no apiVersion/kind, not a mapping).
    #[error("{origin}: not a Kubernetes object: {message}")]
    NotAnObject {
        origin: Box<Origin>,
        message: String,
    },
    /// A Service / EndpointSlice / Node whose content does not match the API schema.
    #[error("{origin}: {kind} {name}: field {field}: {message}")]
    Field {
        origin: Box<Origin>,
        kind: String,
        name: String,
        /// Dotted path inside the object, e.g. `spec.ports[0].port` (`.` for the object).
        field: String,
        message: String,
    },
    #[error("{kind} {name} appears twice: {first} and {second}")]
    Duplicate {
        kind: String,
        name: String,
        first: Box<Origin>,
        second: Box<Origin>,
    },
}

/// Reads `path`: a YAML file, or a directory whose `*.yaml` / `*.yml` / `*.json` files are read
/// recursively in name order. Names starting with `.` are ignored (editor files, and the
/// `..data` links of a mounted ConfigMap, which would otherwise be read twice).
pub fn load(path: &Path) -> Result<Objects, LoadError> {
    let mut files = Vec::new();
    collect_files(path, true, &mut files)?;
    let mut loader = Loader::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Io {
            path: file.clone(),
            source,
        })?;
        loader.add_text(&file, &text)?;
    }
    Ok(loader.objects)
}

/// Parses one file's text; `file` is only used to name the source in errors and notes.
pub fn parse_str(file: &Path, text: &str) -> Result<Objects, LoadError> {
    let mut loader = Loader::default();
    loader.add_text(file, text)?;
    Ok(loader.objects)
}

fn collect_files(path: &Path, top: bool, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        // A file named explicitly is read whatever its extension; inside a directory only
        // YAML/JSON files are.
        let wanted = top
            || path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if wanted {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden {
            collect_files(&entry, false, out)?;
        }
    }
    Ok(())
}

#[derive(Default)]
struct Loader {
    objects: Objects,
    /// (kind, namespace/name) -> where it was first seen.
    seen: BTreeMap<(String, String), Origin>,
}

impl Loader {
    fn add_text(&mut self, file: &Path, text: &str) -> Result<(), LoadError> {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let document = i + 1;
            let value = Value::deserialize(doc).map_err(|e| LoadError::Yaml {
                file: file.to_path_buf(),
                document,
                message: e.to_string(),
            })?;
            let origin = Origin {
                file: file.to_path_buf(),
                document,
                item: None,
            };
            self.add_value(origin, value)?;
        }
        Ok(())
    }

    fn add_value(&mut self, origin: Origin, value: Value) -> Result<(), LoadError> {
        // An empty document (a trailing `---`, a comment-only file) holds nothing.
        if value.is_null() {
            return Ok(());
        }
        let not_object = |message: &str| LoadError::NotAnObject {
            origin: Box::new(origin.clone()),
            message: message.to_string(),
        };
        let Some(map) = value.as_mapping() else {
            return Err(not_object("the document is not a mapping"));
        };
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
        let kind = text("kind").ok_or_else(|| not_object("no `kind`"))?;
        let api_version = text("apiVersion").ok_or_else(|| not_object("no `apiVersion`"))?;
        let name = display_name(&value);

        if kind == "List" || kind.ends_with("List") && map.contains_key("items") {
            let items = match map.get("items") {
                None | Some(Value::Null) => return Ok(()),
                Some(Value::Sequence(items)) => items.clone(),
                Some(_) => {
                    return Err(LoadError::Field {
                        origin: Box::new(origin),
                        kind,
                        name,
                        field: "items".into(),
                        message: "expected a sequence".into(),
                    })
                }
            };
            if origin.item.is_some() {
                return Err(not_object("a List inside a List"));
            }
            for (i, item) in items.into_iter().enumerate() {
                let item_origin = Origin {
                    item: Some(i),
                    ..origin.clone()
                };
                self.add_value(item_origin, item)?;
            }
            return Ok(());
        }

        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Service") => {
                let o: Service = typed(&origin, &kind, &name, value)?;
                self.note_unique(&kind, &name, &origin)?;
                self.objects.services.push(o);
            }
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                let o: EndpointSlice = typed(&origin, &kind, &name, value)?;
                self.note_unique(&kind, &name, &origin)?;
                self.objects.endpoint_slices.push(o);
            }
            ("v1", "Node") => {
                let o: Node = typed(&origin, &kind, &name, value)?;
                self.note_unique(&kind, &name, &origin)?;
                self.objects.nodes.push(o);
            }
            _ => self.objects.skipped.push(Skipped {
                origin,
                api_version,
                kind,
                name,
            }),
        }
        Ok(())
    }

    fn note_unique(&mut self, kind: &str, name: &str, origin: &Origin) -> Result<(), LoadError> {
        let key = (kind.to_string(), name.to_string());
        if let Some(first) = self.seen.get(&key) {
            return Err(LoadError::Duplicate {
                kind: kind.to_string(),
                name: name.to_string(),
                first: Box::new(first.clone()),
                second: Box::new(origin.clone()),
            });
        }
        self.seen.insert(key, origin.clone());
        Ok(())
    }
}

/// `namespace/name`, `name`, or `<unnamed>` from the raw document, for messages.
fn display_name(value: &Value) -> String {
    let meta = value.get("metadata");
    let field = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    match (field("namespace"), field("name")) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.to_string(),
        _ => "<unnamed>".to_string(),
    }
}

fn typed<T: DeserializeOwned>(
    origin: &Origin,
    kind: &str,
    name: &str,
    value: Value,
) -> Result<T, LoadError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        LoadError::Field {
            origin: Box::new(origin.clone()),
            kind: kind.to_string(),
            name: name.to_string(),
            field: path,
            message: e.into_inner().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Objects, LoadError> {
        parse_str(Path::new("objs.yaml"), text)
    }

    const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: 8080
";

    #[test]
    fn multi_document_file_yields_typed_objects_in_order() {
        let text = format!(
            "{SERVICE}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: [10.0.1.5]
  conditions: {{ready: true}}
ports:
- name: http
  port: 8080
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels:
    topology.kubernetes.io/zone: zone-a
---
"
        );
        let o = parse(&text).unwrap();
        assert_eq!(o.services.len(), 1);
        let svc = &o.services[0];
        assert_eq!(svc.metadata.name.as_deref(), Some("web"));
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        assert_eq!(spec.ports.as_ref().unwrap()[0].port, 80);
        assert_eq!(o.endpoint_slices.len(), 1);
        assert_eq!(
            o.endpoint_slices[0].endpoints[0].addresses,
            vec!["10.0.1.5"]
        );
        assert_eq!(o.nodes[0].metadata.name.as_deref(), Some("node-a"));
        assert!(o.skipped.is_empty());
    }

    #[test]
    fn kind_list_items_are_unpacked_and_unknown_kinds_skipped_with_a_note() {
        let text = "apiVersion: v1
kind: List
metadata:
  resourceVersion: \"\"
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: config, namespace: metallb-system}
  data: {config: x}
- apiVersion: v1
  kind: Service
  metadata: {name: a, namespace: default}
  spec: {clusterIP: 10.96.0.1, ports: [{port: 443}]}
- apiVersion: discovery.k8s.io/v1beta1
  kind: EndpointSlice
  metadata: {name: old, namespace: default}
";
        let o = parse(text).unwrap();
        assert_eq!(o.services.len(), 1);
        assert_eq!(o.skipped.len(), 2);
        assert_eq!(o.skipped[0].kind, "ConfigMap");
        assert_eq!(o.skipped[0].name, "metallb-system/config");
        assert_eq!(o.skipped[0].origin.item, Some(0));
        assert_eq!(
            o.skipped[1].to_string(),
            "objs.yaml: document 1, items[2]: skipped EndpointSlice default/old \
             (discovery.k8s.io/v1beta1): not used by the service planner"
        );
    }

    #[test]
    fn field_error_names_file_document_object_and_field() {
        let text = format!(
            "{SERVICE}---
apiVersion: v1
kind: Service
metadata: {{name: bad, namespace: shop}}
spec:
  ports:
  - port: eighty
"
        );
        let err = parse(&text).unwrap_err();
        match &err {
            LoadError::Field {
                origin,
                kind,
                name,
                field,
                ..
            } => {
                assert_eq!(origin.document, 2);
                assert_eq!(kind, "Service");
                assert_eq!(name, "shop/bad");
                assert_eq!(field, "spec.ports[0].port");
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with("objs.yaml: document 2: Service shop/bad: field spec.ports[0].port:"),
            "{msg}"
        );
    }

    #[test]
    fn list_item_errors_name_the_item() {
        let text = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: n1}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: s, namespace: d}
  addressType: IPv4
  endpoints:
  - addresses: [10.0.0.1]
    conditions: {ready: maybe}
";
        let msg = parse(text).unwrap_err().to_string();
        assert!(
            msg.starts_with(
                "objs.yaml: document 1, items[1]: EndpointSlice d/s: field endpoints[0].conditions.ready:"
            ),
            "{msg}"
        );
    }

    #[test]
    fn syntax_errors_and_non_objects_are_errors_naming_the_document() {
        let err = parse("apiVersion: v1\nkind: Node\nmetadata: {name: n}\n---\nfoo: [unclosed\n")
            .unwrap_err();
        assert!(
            matches!(err, LoadError::Yaml { document: 2, .. }),
            "{err:?}"
        );
        let err = parse("- just\n- a list\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("document 1: not a Kubernetes object: the document is not a mapping"),
            "{err}"
        );
        let err = parse("apiVersion: v1\nmetadata: {name: x}\n").unwrap_err();
        assert!(err.to_string().contains("no `kind`"), "{err}");
        // Wrong apiVersion for a known kind is skipped, not misparsed.
        let o = parse("apiVersion: v2\nkind: Service\nmetadata: {name: x}\n").unwrap();
        assert_eq!(o.skipped.len(), 1);
    }

    #[test]
    fn duplicate_objects_are_an_error_naming_both_places() {
        let text = format!("{SERVICE}---\n{SERVICE}");
        let err = parse(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Service shop/web appears twice: objs.yaml: document 1 and objs.yaml: document 2"
        );
    }

    #[test]
    fn directory_is_read_recursively_in_name_order_skipping_hidden_and_non_yaml() {
        let dir = std::env::temp_dir().join(format!("bgplane-k8s-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        struct Cleanup(PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _cleanup = Cleanup(dir.clone());
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::create_dir_all(dir.join("..data")).unwrap();
        let node = |n: &str| format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\n");
        std::fs::write(dir.join("b.yaml"), node("b")).unwrap();
        std::fs::write(dir.join("a.yml"), node("a")).unwrap();
        std::fs::write(
            dir.join("sub/c.json"),
            "{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": \"c\"}}",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "not yaml: [").unwrap();
        std::fs::write(dir.join("..data/a.yml"), node("a")).unwrap();
        std::fs::write(dir.join(".swp.yaml"), "garbage: [").unwrap();
        let o = load(&dir).unwrap();
        let names: Vec<_> = o
            .nodes
            .iter()
            .map(|n| n.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, vec!["a", "b", "c"]);

        let err = load(&dir.join("missing")).unwrap_err();
        assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
    }
}
