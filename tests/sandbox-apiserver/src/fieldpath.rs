//! Field paths and field sets as structured-merge-diff models them, with the
//! `FieldsV1` encoding used in `metadata.managedFields`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// A scalar used in a list-map key or a set value, ordered the way
/// structured-merge-diff orders values (by type, then value).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue(pub Value);

impl Eq for KeyValue {}

impl Ord for KeyValue {
    fn cmp(&self, other: &Self) -> Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) => 1,
                Value::Number(_) => 2,
                Value::String(_) => 3,
                _ => 4,
            }
        }
        match (&self.0, &other.0) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Number(a), Value::Number(b)) => {
                let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
            (Value::String(a), Value::String(b)) => a.cmp(b),
            (a, b) => rank(a)
                .cmp(&rank(b))
                .then_with(|| a.to_string().cmp(&b.to_string())),
        }
    }
}

impl PartialOrd for KeyValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One step of a field path. The variant order is the upstream sort order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// A list-map item: `k:{"name":"c"}` (fields sorted by name).
    Key(Vec<(String, KeyValue)>),
    /// A set item: `v:"x"`.
    Value(KeyValue),
    /// A list index: `i:0` (only in atomic-ish positions; rarely used).
    Index(usize),
}

impl PathElement {
    /// The `FieldsV1` key.
    pub fn fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Key(fields) => {
                let mut m = Map::new();
                for (k, v) in fields {
                    m.insert(k.clone(), v.0.clone());
                }
                format!("k:{}", Value::Object(m))
            }
            PathElement::Value(v) => format!("v:{}", v.0),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key.
    pub fn parse(key: &str) -> Option<PathElement> {
        let (prefix, rest) = key.split_once(':')?;
        match prefix {
            "f" => Some(PathElement::Field(rest.to_string())),
            "k" => {
                let v: Value = serde_json::from_str(rest).ok()?;
                let obj = v.as_object()?;
                let mut fields: Vec<(String, KeyValue)> = obj
                    .iter()
                    .map(|(k, v)| (k.clone(), KeyValue(v.clone())))
                    .collect();
                fields.sort();
                Some(PathElement::Key(fields))
            }
            "v" => Some(PathElement::Value(KeyValue(
                serde_json::from_str(rest).ok()?,
            ))),
            "i" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }
}

impl std::fmt::Display for PathElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> =
                    fields.iter().map(|(k, v)| format!("{k}={}", v.0)).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", v.0),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the object root.
pub type Path = Vec<PathElement>;

/// Renders a path as upstream does in conflict messages: `.spec.schedule`.
pub fn path_string(p: &[PathElement]) -> String {
    p.iter().map(ToString::to_string).collect()
}

/// A set of field paths (the members; a member may also have members below it).
pub type Set = BTreeSet<Path>;

/// Whether any member of `set` equals `prefix` or lies below it.
pub fn has_at_or_below(set: &Set, prefix: &[PathElement]) -> bool {
    set.range(prefix.to_vec()..)
        .next()
        .is_some_and(|p| p.starts_with(prefix))
}

#[derive(Default)]
struct Tree {
    member: bool,
    children: BTreeMap<PathElement, Tree>,
}

/// Encodes a set as `FieldsV1` JSON.
pub fn to_fields_v1(set: &Set) -> Value {
    let mut root = Tree::default();
    for path in set {
        let mut node = &mut root;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }
    fn render(t: &Tree) -> Value {
        let mut m = Map::new();
        if t.member && !t.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (pe, child) in &t.children {
            m.insert(pe.fields_v1_key(), render(child));
        }
        Value::Object(m)
    }
    render(&root)
}

/// Decodes `FieldsV1` JSON into a set. Unparseable keys are skipped.
pub fn from_fields_v1(v: &Value) -> Set {
    fn walk(v: &Value, prefix: &mut Path, out: &mut Set) {
        let Some(obj) = v.as_object() else { return };
        for (k, child) in obj {
            if k == "." {
                out.insert(prefix.clone());
                continue;
            }
            let Some(pe) = PathElement::parse(k) else {
                continue;
            };
            prefix.push(pe);
            if child.as_object().is_some_and(Map::is_empty) {
                out.insert(prefix.clone());
            } else {
                walk(child, prefix, out);
            }
            prefix.pop();
        }
    }
    let mut out = Set::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> PathElement {
        PathElement::Field(n.into())
    }

    #[test]
    fn round_trip_fields_v1() {
        let v = json!({"f:spec":{"f:schedule":{},"f:jobTemplate":{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}}}}}}}});
        let set = from_fields_v1(&v);
        assert_eq!(set.len(), 4);
        let back = to_fields_v1(&set);
        // Sorted: jobTemplate before schedule.
        assert_eq!(
            back.to_string(),
            r#"{"f:spec":{"f:jobTemplate":{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}}}}}},"f:schedule":{}}}"#
        );
    }

    #[test]
    fn path_display() {
        let p = vec![
            f("spec"),
            f("containers"),
            PathElement::Key(vec![("name".into(), KeyValue(json!("c")))]),
            f("image"),
        ];
        assert_eq!(path_string(&p), ".spec.containers[name=\"c\"].image");
    }

    #[test]
    fn prefix_query() {
        let mut s = Set::new();
        s.insert(vec![f("a"), f("b")]);
        assert!(has_at_or_below(&s, &[f("a")]));
        assert!(!has_at_or_below(&s, &[f("b")]));
    }
}
