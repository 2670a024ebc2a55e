//! Node selectors (`node-selectors` of a peer): Kubernetes label-selector semantics, as MetalLB
//! v0.12 applies them. A node matches one selector when every `match-labels` pair and every
//! `match-expressions` requirement holds; a peer applies to a node when any of its selectors
//! matches; no selectors (or an empty one) select every node.

use std::collections::BTreeMap;

/// The operator of one `match-expressions` requirement (Kubernetes spelling, case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl SelectorOp {
    pub fn parse(s: &str) -> Option<SelectorOp> {
        Some(match s {
            "In" => SelectorOp::In,
            "NotIn" => SelectorOp::NotIn,
            "Exists" => SelectorOp::Exists,
            "DoesNotExist" => SelectorOp::DoesNotExist,
            _ => return None,
        })
    }
}

/// One `match-expressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: SelectorOp,
    pub values: Vec<String>,
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            SelectorOp::In => v.is_some_and(|v| self.values.contains(v)),
            // Kubernetes: NotIn matches when the label is absent too.
            SelectorOp::NotIn => v.is_none_or(|v| !self.values.contains(v)),
            SelectorOp::Exists => v.is_some(),
            SelectorOp::DoesNotExist => v.is_none(),
        }
    }
}

/// One entry of `node-selectors`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

impl NodeSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

/// Whether a node with `labels` is selected by `selectors` (empty = every node).
pub fn selects(selectors: &[NodeSelector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// Check a label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters of `[A-Za-z0-9_.-]` that starts and ends alphanumeric (Kubernetes'
/// IsQualifiedName). Returns why it is invalid.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 {
            return Err(format!(
                "label key {key:?}: the prefix before '/' must be a DNS subdomain of 1 to 253 characters"
            ));
        }
        let ok = p.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if !ok {
            return Err(format!(
                "label key {key:?}: the prefix {p:?} is not a lowercase DNS subdomain"
            ));
        }
    }
    if name.is_empty() {
        return Err(format!("label key {key:?}: the name part is empty"));
    }
    check_label_name(name).map_err(|why| format!("label key {key:?}: {why}"))
}

/// Check a label value: empty, or at most 63 characters like a key's name part.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_name(value).map_err(|why| format!("label value {value:?}: {why}"))
}

fn check_label_name(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err("must be at most 63 characters".to_string());
    }
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    if !bytes
        .iter()
        .all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("may contain only letters, digits, '-', '_' and '.'".to_string());
    }
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return Err("must start and end with a letter or digit".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: SelectorOp, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn operators_follow_kubernetes_semantics() {
        let node = labels(&[("rack", "r1"), ("speed", "fast")]);
        let cases = [
            (req("rack", SelectorOp::In, &["r1", "r2"]), true),
            (req("rack", SelectorOp::In, &["r2"]), false),
            (req("zone", SelectorOp::In, &["a"]), false),
            (req("rack", SelectorOp::NotIn, &["r1"]), false),
            (req("speed", SelectorOp::NotIn, &["slow"]), true),
            (req("zone", SelectorOp::NotIn, &["a"]), true),
            (req("rack", SelectorOp::Exists, &[]), true),
            (req("zone", SelectorOp::Exists, &[]), false),
            (req("zone", SelectorOp::DoesNotExist, &[]), true),
            (req("rack", SelectorOp::DoesNotExist, &[]), false),
        ];
        for (r, want) in cases {
            assert_eq!(r.matches(&node), want, "{r:?}");
        }
    }

    #[test]
    fn selectors_and_within_or_across() {
        let node = labels(&[("rack", "r1"), ("kubernetes.io/hostname", "n1")]);
        let both = NodeSelector {
            match_labels: labels(&[("rack", "r1")]),
            match_expressions: vec![req("kubernetes.io/hostname", SelectorOp::In, &["n2"])],
        };
        assert!(
            !both.matches(&node),
            "all requirements of one selector must hold"
        );
        let other = NodeSelector {
            match_labels: labels(&[("kubernetes.io/hostname", "n1")]),
            match_expressions: vec![],
        };
        assert!(
            selects(&[both.clone(), other], &node),
            "any selector may match"
        );
        assert!(!selects(std::slice::from_ref(&both), &node));
        assert!(selects(&[], &node), "no selectors select every node");
        assert!(
            selects(&[NodeSelector::default()], &node),
            "an empty selector matches"
        );
    }

    #[test]
    fn label_keys_and_values_are_checked() {
        assert!(check_label_key("kubernetes.io/hostname").is_ok());
        assert!(check_label_key("rack").is_ok());
        assert!(check_label_key("a_b.c-d").is_ok());
        assert!(check_label_key("Example.com/x").is_err());
        assert!(check_label_key("/x").is_err());
        assert!(check_label_key("x/").is_err());
        assert!(check_label_key("-x").is_err());
        assert!(check_label_key(&"x".repeat(64)).is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("amd64").is_ok());
        assert!(check_label_value("has space").is_err());
    }
}
