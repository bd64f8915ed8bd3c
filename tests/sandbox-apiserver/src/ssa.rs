//! Structured-merge-diff over JSON values, driven by [`crate::schema`]:
//! the field set of an applied configuration, comparison of two objects,
//! the apply merge, and removal of paths.

use serde_json::{Map, Value};

use crate::fieldpath::{KeyValue, Path, PathElement, Set};
use crate::schema::{ListType, Node, item_key};

/// Paths never recorded in managed fields (upstream "stripMeta" and reset
/// fields): removed exactly, not recursively, except `status` which is
/// removed with everything below it.
pub fn strip_ignored(set: &mut Set, has_status: bool) {
    let f = |n: &str| PathElement::Field(n.to_string());
    for p in [
        vec![f("apiVersion")],
        vec![f("kind")],
        vec![f("metadata")],
        vec![f("metadata"), f("name")],
        vec![f("metadata"), f("namespace")],
        vec![f("metadata"), f("creationTimestamp")],
        vec![f("metadata"), f("selfLink")],
        vec![f("metadata"), f("uid")],
        vec![f("metadata"), f("generation")],
        vec![f("metadata"), f("managedFields")],
        vec![f("metadata"), f("resourceVersion")],
        vec![f("metadata"), f("deletionTimestamp")],
        vec![f("metadata"), f("deletionGracePeriodSeconds")],
    ] {
        set.remove(&p);
    }
    if has_status {
        set.retain(|p| p.first() != Some(&f("status")));
    }
}

fn list_item_element(ssa: &ListType, item: &Value, index: usize) -> PathElement {
    match ssa {
        ListType::Map { .. } => match item_key(ssa, item) {
            Some(key) => PathElement::Key(key.into_iter().map(|(k, v)| (k, KeyValue(v))).collect()),
            None => PathElement::Index(index),
        },
        ListType::Set => PathElement::Value(KeyValue(item.clone())),
        ListType::Atomic => PathElement::Index(index),
    }
}

/// The field set of a value (upstream `ToFieldSet`), used for the set an
/// applier owns.
pub fn set_from_value(schema: &Node, value: &Value) -> Set {
    let mut out = Set::new();
    walk_set(schema, value, &mut Vec::new(), &mut out);
    out
}

fn walk_set(schema: &Node, value: &Value, path: &mut Path, out: &mut Set) {
    match (schema, value) {
        (Node::Leaf, _) => {
            out.insert(path.clone());
        }
        (Node::Struct(_) | Node::Map(_) | Node::Deduced, Value::Object(obj)) => {
            for (k, v) in obj {
                let (child, declared) = schema.field(k);
                path.push(PathElement::Field(k.clone()));
                walk_set(child, v, path, out);
                let empty = v.is_null() || v.as_object().is_some_and(Map::is_empty);
                if empty || !declared {
                    out.insert(path.clone());
                }
                path.pop();
            }
        }
        (Node::List { ssa, elem, .. }, Value::Array(items)) => {
            if *ssa == ListType::Atomic {
                out.insert(path.clone());
                return;
            }
            for (i, item) in items.iter().enumerate() {
                path.push(list_item_element(ssa, item, i));
                if matches!(ssa, ListType::Map { .. }) {
                    walk_set(elem, item, path, out);
                }
                out.insert(path.clone());
                path.pop();
            }
        }
        // Scalars (and type mismatches) are leaves.
        _ => {
            out.insert(path.clone());
        }
    }
}

/// Result of comparing two objects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Paths only in the new object.
    pub added: Set,
    /// Leaf paths whose value changed.
    pub modified: Set,
    /// Paths only in the old object.
    pub removed: Set,
}

impl Comparison {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// Compares `old` with `new` (upstream `TypedValue.Compare`).
pub fn compare(schema: &Node, old: &Value, new: &Value) -> Comparison {
    let mut c = Comparison::default();
    walk_compare(schema, Some(old), Some(new), &mut Vec::new(), &mut c);
    c
}

fn non_null(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn walk_compare(
    schema: &Node,
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut Path,
    c: &mut Comparison,
) {
    // A null on the old side (only the create skeleton has them, e.g. Go's
    // non-omitempty `containers: null`) counts as present but empty.
    let new = non_null(new);
    let is_root = path.is_empty();
    match (schema, old, new) {
        (_, None, None) => {}
        (Node::Struct(_) | Node::Map(_) | Node::Deduced, o, n)
            if o.is_none_or(|v| v.is_object() || v.is_null()) && n.is_none_or(Value::is_object) =>
        {
            let empty = Map::new();
            let om = o.and_then(Value::as_object).unwrap_or(&empty);
            let nm = n.and_then(Value::as_object).unwrap_or(&empty);
            let mut keys: Vec<&String> = om.keys().collect();
            keys.extend(nm.keys().filter(|k| !om.contains_key(*k)));
            for k in keys {
                let (child, _) = schema.field(k);
                path.push(PathElement::Field(k.clone()));
                walk_compare(child, om.get(k), nm.get(k), path, c);
                path.pop();
            }
            if !is_root {
                if o.is_none() {
                    c.added.insert(path.clone());
                } else if n.is_none() {
                    c.removed.insert(path.clone());
                }
            }
        }
        (Node::List { ssa, elem, .. }, o, n)
            if *ssa != ListType::Atomic
                && o.is_none_or(|v| v.is_array() || v.is_null())
                && n.is_none_or(Value::is_array) =>
        {
            let empty = Vec::new();
            let ol = o.and_then(Value::as_array).unwrap_or(&empty);
            let nl = n.and_then(Value::as_array).unwrap_or(&empty);
            let keyed = |l: &Vec<Value>| -> Vec<(PathElement, Value)> {
                l.iter()
                    .enumerate()
                    .map(|(i, v)| (list_item_element(ssa, v, i), v.clone()))
                    .collect()
            };
            let (ok, nk) = (keyed(ol), keyed(nl));
            let mut seen: Vec<&PathElement> = Vec::new();
            for (pe, _) in ok.iter().chain(nk.iter()) {
                if seen.contains(&pe) {
                    continue;
                }
                seen.push(pe);
                let ov = ok.iter().find(|(p, _)| p == pe).map(|(_, v)| v);
                let nv = nk.iter().find(|(p, _)| p == pe).map(|(_, v)| v);
                path.push(pe.clone());
                if matches!(ssa, ListType::Map { .. }) {
                    walk_compare(elem, ov, nv, path, c);
                    // walk_compare records added/removed items for objects;
                    // make sure scalar-ish items are recorded too.
                    if ov.is_none() {
                        c.added.insert(path.clone());
                    } else if nv.is_none() {
                        c.removed.insert(path.clone());
                    }
                } else if ov.is_none() {
                    c.added.insert(path.clone());
                } else if nv.is_none() {
                    c.removed.insert(path.clone());
                }
                path.pop();
            }
            if !is_root {
                if o.is_none() {
                    c.added.insert(path.clone());
                } else if n.is_none() {
                    c.removed.insert(path.clone());
                }
            }
        }
        // Leaves: scalars, atomic values, type changes.
        (_, None, Some(_)) => {
            c.added.insert(path.clone());
        }
        (_, Some(_), None) => {
            c.removed.insert(path.clone());
        }
        (_, Some(Value::Null), Some(_)) => {
            c.added.insert(path.clone());
        }
        (_, Some(a), Some(b)) => {
            if a != b {
                c.modified.insert(path.clone());
            }
        }
    }
}

/// Merges an applied configuration into the live object (upstream
/// `TypedValue.Merge`): granular objects merge key by key, list-maps item by
/// key (live order kept, new items appended), sets by value; everything else
/// is replaced by the configuration.
pub fn merge(schema: &Node, live: Option<&Value>, config: &Value) -> Value {
    match (schema, config) {
        (Node::Struct(_) | Node::Map(_) | Node::Deduced, Value::Object(cfg)) => {
            let mut out = match live {
                Some(Value::Object(l)) => l.clone(),
                _ => Map::new(),
            };
            for (k, v) in cfg {
                let (child, _) = schema.field(k);
                let merged = merge(child, out.get(k), v);
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Node::List { ssa, elem, .. }, Value::Array(cfg)) if *ssa != ListType::Atomic => {
            let mut out: Vec<Value> = match live {
                Some(Value::Array(l)) => l.clone(),
                _ => Vec::new(),
            };
            for (i, item) in cfg.iter().enumerate() {
                let pe = list_item_element(ssa, item, i);
                let pos = out
                    .iter()
                    .enumerate()
                    .position(|(j, v)| list_item_element(ssa, v, j) == pe);
                match (ssa, pos) {
                    (ListType::Map { .. }, Some(p)) => {
                        let merged = merge(elem, out.get(p), item);
                        out[p] = merged;
                    }
                    (_, Some(_)) => {}
                    (_, None) => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

/// Removes the value at `path` (and everything below it). Missing paths are ignored.
pub fn remove_path(schema: &Node, value: &mut Value, path: &[PathElement]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (first, value) {
        (PathElement::Field(name), Value::Object(obj)) => {
            if rest.is_empty() {
                obj.shift_remove(name);
            } else if let Some(child) = obj.get_mut(name) {
                let (node, _) = schema.field(name);
                remove_path(node, child, rest);
            }
        }
        (pe, Value::Array(items)) => {
            let Node::List { ssa, elem, .. } = schema else {
                return;
            };
            let pos = items
                .iter()
                .enumerate()
                .position(|(i, v)| list_item_element(ssa, v, i) == *pe);
            if let Some(p) = pos {
                if rest.is_empty() {
                    items.remove(p);
                } else {
                    remove_path(elem, &mut items[p], rest);
                }
            }
        }
        _ => {}
    }
}

/// Drops `null` members, and empty granular maps and lists (as Go's
/// `omitempty` does for maps and slices after a round trip).
pub fn normalize(schema: &Node, value: &mut Value) {
    match value {
        Value::Object(obj) => {
            let keys: Vec<String> = obj.keys().cloned().collect();
            for k in keys {
                let (child, declared) = schema.field(&k);
                let Some(v) = obj.get_mut(&k) else { continue };
                normalize(child, v);
                let drop = v.is_null()
                    || (declared
                        && matches!(child, Node::Map(_))
                        && v.as_object().is_some_and(Map::is_empty))
                    || (matches!(child, Node::List { .. })
                        && v.as_array().is_some_and(Vec::is_empty));
                if drop {
                    obj.shift_remove(&k);
                }
            }
        }
        Value::Array(items) => {
            let elem = schema.elem();
            for item in items.iter_mut() {
                normalize(elem, item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldpath::to_fields_v1;
    use crate::resources::{CONFIGMAPS, CRONJOBS};
    use crate::schema::for_resource;
    use serde_json::json;

    fn cj(image: &str) -> Value {
        json!({"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"x"},
            "spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":{
                "containers":[{"name":"c","image":image}],"restartPolicy":"Never"}}}}}})
    }

    #[test]
    fn apply_set_matches_upstream_shape() {
        let mut set = set_from_value(for_resource(&CRONJOBS), &cj("busybox"));
        strip_ignored(&mut set, true);
        assert_eq!(
            to_fields_v1(&set),
            json!({"f:spec":{"f:jobTemplate":{"f:spec":{"f:template":{"f:spec":{
                "f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}},
                "f:restartPolicy":{}}}}},"f:schedule":{}}})
        );
    }

    #[test]
    fn labels_are_granular() {
        let v = json!({"metadata":{"labels":{"a":"1"}},"data":{"k":"v"}});
        let mut set = set_from_value(for_resource(&CONFIGMAPS), &v);
        strip_ignored(&mut set, false);
        assert_eq!(
            to_fields_v1(&set),
            json!({"f:data":{"f:k":{}},"f:metadata":{"f:labels":{"f:a":{}}}})
        );
    }

    #[test]
    fn compare_detects_image_change() {
        let c = compare(for_resource(&CRONJOBS), &cj("a"), &cj("b"));
        assert!(c.added.is_empty() && c.removed.is_empty());
        assert_eq!(c.modified.len(), 1);
        let p = c.modified.iter().next().unwrap();
        assert_eq!(
            crate::fieldpath::path_string(p),
            ".spec.jobTemplate.spec.template.spec.containers[name=\"c\"].image"
        );
    }

    #[test]
    fn merge_keeps_other_containers() {
        let live = json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{
            "containers":[{"name":"a","image":"1","env":[{"name":"X","value":"1"}]},{"name":"b","image":"2"}]}}}}}});
        let cfg = json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{
            "containers":[{"name":"a","image":"3"}]}}}}}});
        let m = merge(for_resource(&CRONJOBS), Some(&live), &cfg);
        let cs = &m["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "3");
        assert_eq!(cs[0]["env"][0]["name"], "X");
        assert_eq!(cs[1]["name"], "b");
    }
}
