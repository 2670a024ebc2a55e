//! The two input forms: the config YAML itself (what a ConfigMap's `config` / `config.yaml`
//! key holds), or a ConfigMap manifest (possibly one document of several) whose data holds it.
//! For a manifest, positions inside the embedded text are mapped back to the file's lines when
//! the text is a block literal (`config: |`), the way such ConfigMaps are written.

use serde::Deserialize;
use serde_yaml::Value;

use super::error::{Diagnostic, FieldPath, Location};
use super::types::ConfigSource;

/// MetalLB reads the `config` key; `config.yaml` is what `kubectl create configmap
/// --from-file=config.yaml` makes.
pub const DATA_KEYS: [&str; 2] = ["config", "config.yaml"];

/// The config text to parse and how to report positions in it.
#[derive(Debug)]
pub struct Document {
    pub text: String,
    pub source: ConfigSource,
    offset: Offset,
}

#[derive(Debug)]
enum Offset {
    /// Positions in `text` are positions in the file.
    Same,
    /// `text` is a block literal whose line 1 is file line `first_line` (1-based), indented.
    Block { first_line: usize, indent: usize },
    /// `text` is embedded in some other way: positions are relative to it.
    Relative { key: String },
}

impl Document {
    /// Put a position found in `self.text` onto a diagnostic, mapped to the file.
    pub fn place(&self, d: &mut Diagnostic, loc: Option<Location>) {
        let Some(loc) = loc else { return };
        match &self.offset {
            Offset::Same => d.location = Some(loc),
            Offset::Block { first_line, indent } => {
                d.location = Some(Location {
                    line: first_line + loc.line - 1,
                    column: indent + loc.column,
                })
            }
            Offset::Relative { key } => {
                d.message = format!(
                    "{} (line {}, column {} of data[{key:?}])",
                    d.message, loc.line, loc.column
                );
            }
        }
    }
}

fn yaml_error(e: &serde_yaml::Error, context: &str) -> Diagnostic {
    let mut msg = e.to_string();
    if let Some(loc) = e.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(stripped) = msg.strip_suffix(&suffix) {
            msg = stripped.to_string();
        }
    }
    let mut d = Diagnostic::new(FieldPath::root(), format!("{context}: {msg}"));
    d.location = e.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    });
    d
}

/// Decide which form `file` is in and extract the config text.
pub fn open(file: &str) -> Result<Document, Diagnostic> {
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(file) {
        match Value::deserialize(de) {
            Ok(v) => docs.push(v),
            Err(e) => return Err(yaml_error(&e, "not valid YAML")),
        }
    }
    let is_manifest = |v: &Value| {
        v.as_mapping()
            .is_some_and(|m| m.contains_key("kind") || m.contains_key("apiVersion"))
    };
    if docs.len() <= 1 && !docs.first().is_some_and(is_manifest) {
        return Ok(Document {
            text: file.to_string(),
            source: ConfigSource::Bare,
            offset: Offset::Same,
        });
    }

    // A manifest: find the ConfigMap(s) that carry a config.
    let mut found: Vec<(Option<String>, Option<String>, String, String)> = Vec::new();
    let mut kinds = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let Some(m) = doc.as_mapping() else {
            if doc.is_null() {
                continue; // an empty document between `---` separators
            }
            return Err(Diagnostic::new(
                FieldPath::root(),
                format!(
                    "document {} is not a mapping: expected a ConfigMap manifest or the config YAML itself",
                    i + 1
                ),
            ));
        };
        if !is_manifest(doc) {
            return Err(Diagnostic::new(
                FieldPath::root(),
                format!(
                    "document {} has no kind/apiVersion: a file with several documents must hold Kubernetes manifests",
                    i + 1
                ),
            ));
        }
        let kind = m.get("kind").and_then(Value::as_str).unwrap_or("");
        kinds.push(kind.to_string());
        if kind != "ConfigMap" {
            continue;
        }
        let meta = m.get("metadata").and_then(Value::as_mapping);
        let meta_str = |k: &str| {
            meta.and_then(|mm| mm.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let data = m.get("data").and_then(Value::as_mapping);
        let present: Vec<&str> = DATA_KEYS
            .iter()
            .copied()
            .filter(|k| data.is_some_and(|d| d.contains_key(*k)))
            .collect();
        match present.as_slice() {
            [] => continue,
            [key] => {
                let Some(text) = data.and_then(|d| d.get(*key)).and_then(Value::as_str) else {
                    return Err(Diagnostic::new(
                        FieldPath::root().key("data").key(key),
                        "ConfigMap data values must be strings (write `config: |` and the YAML below it)",
                    ));
                };
                found.push((
                    meta_str("namespace"),
                    meta_str("name"),
                    key.to_string(),
                    text.to_string(),
                ));
            }
            _ => {
                return Err(Diagnostic::new(
                    FieldPath::root().key("data"),
                    "both \"config\" and \"config.yaml\" are set: keep one",
                ))
            }
        }
    }
    let (namespace, name, key, text) = match found.len() {
        1 => found.remove(0),
        0 if kinds.iter().any(|k| k == "ConfigMap") => {
            return Err(Diagnostic::new(
                FieldPath::root().key("data"),
                "this ConfigMap has no \"config\" (or \"config.yaml\") key holding the bgplane/MetalLB config",
            ))
        }
        0 => {
            return Err(Diagnostic::new(
                FieldPath::root(),
                format!(
                    "no ConfigMap found (kinds here: {}): expected a ConfigMap manifest or the config YAML itself",
                    kinds.join(", ")
                ),
            ))
        }
        n => {
            return Err(Diagnostic::new(
                FieldPath::root(),
                format!("{n} ConfigMaps here carry a config: keep one per file"),
            ))
        }
    };
    let offset = match locate_block(file, &text) {
        Some((first_line, indent)) => Offset::Block { first_line, indent },
        None => Offset::Relative { key: key.clone() },
    };
    Ok(Document {
        text,
        source: ConfigSource::ConfigMap {
            namespace,
            name,
            key,
        },
        offset,
    })
}

/// Find a block literal (`key: |`) in `file` whose content is exactly `content`. Returns the
/// 1-based file line of the content's first line and the block's indentation.
fn locate_block(file: &str, content: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = file.lines().collect();
    let want: Vec<&str> = content.lines().collect();
    if want.is_empty() {
        return None;
    }
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_end();
        let is_block_header = t.ends_with('|')
            || t.ends_with("|-")
            || t.ends_with("|+")
            || t.rsplit_once(':')
                .is_some_and(|(_, after)| after.trim().starts_with('|'));
        if !is_block_header {
            continue;
        }
        let start = i + 1;
        let Some(indent) = lines[start.min(lines.len())..]
            .iter()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start_matches(' ').len())
        else {
            continue;
        };
        if indent == 0 || start + want.len() > lines.len() {
            continue;
        }
        let matches = want.iter().enumerate().all(|(k, w)| {
            let fl = lines[start + k];
            if w.is_empty() {
                fl.trim().is_empty()
            } else {
                fl.len() >= indent && fl[..indent].bytes().all(|b| b == b' ') && &fl[indent..] == *w
            }
        });
        if matches {
            return Some((start + 1, indent));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_config_is_taken_as_is() {
        let d = open("peers: []\n").unwrap();
        assert_eq!(d.source, ConfigSource::Bare);
        assert_eq!(d.text, "peers: []\n");
    }

    #[test]
    fn configmap_block_maps_lines_back_to_the_file() {
        let file = "\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    peers:
    - peer-address: 10.0.0.1
";
        let d = open(file).unwrap();
        assert_eq!(
            d.source,
            ConfigSource::ConfigMap {
                namespace: Some("metallb-system".into()),
                name: Some("config".into()),
                key: "config".into()
            }
        );
        assert_eq!(d.text, "peers:\n- peer-address: 10.0.0.1\n");
        let mut diag = Diagnostic::new(FieldPath::root(), "x");
        d.place(
            &mut diag,
            Some(Location {
                line: 2,
                column: 17,
            }),
        );
        assert_eq!(
            diag.location,
            Some(Location {
                line: 9,
                column: 21
            })
        );
    }

    #[test]
    fn configmap_with_config_yaml_key_among_other_documents() {
        let file = "\
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: ConfigMap
data:
  config.yaml: \"peers: []\"
";
        let d = open(file).unwrap();
        assert!(
            matches!(d.source, ConfigSource::ConfigMap { ref key, .. } if key == "config.yaml")
        );
        let mut diag = Diagnostic::new(FieldPath::root(), "bad");
        d.place(&mut diag, Some(Location { line: 1, column: 8 }));
        assert_eq!(diag.location, None);
        assert_eq!(
            diag.message,
            "bad (line 1, column 8 of data[\"config.yaml\"])"
        );
    }

    #[test]
    fn manifest_errors_say_what_is_missing() {
        let no_key = "apiVersion: v1\nkind: ConfigMap\ndata:\n  other: x\n";
        assert!(open(no_key).unwrap_err().message.contains("no \"config\""));
        let both = "kind: ConfigMap\ndata:\n  config: a\n  config.yaml: b\n";
        assert!(open(both).unwrap_err().message.contains("both"));
        let other = "apiVersion: apps/v1\nkind: DaemonSet\n";
        assert!(open(other)
            .unwrap_err()
            .message
            .contains("no ConfigMap found (kinds here: DaemonSet)"));
        let not_string = "kind: ConfigMap\ndata:\n  config: {peers: []}\n";
        assert_eq!(
            open(not_string).unwrap_err().path.to_string(),
            "data.config"
        );
        let bad_yaml = "peers: [\n";
        let e = open(bad_yaml).unwrap_err();
        assert!(e.message.starts_with("not valid YAML"), "{e}");
        assert!(e.location.is_some());
    }
}
