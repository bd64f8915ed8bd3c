//! The fields this provider sets on an object, as a flat map from field path
//! to value: the rendered object's own fields (what server-side apply records
//! for the `terraform-provider-beads` manager), read from any object.
//!
//! Plan flattens the object rendered from the configuration; read projects
//! the live object onto the paths the rendered one has. A field the provider
//! does not render is never looked at, so what other managers add (labels,
//! annotations, `dnsConfig`, extra env vars or pull secrets) never shows,
//! and a rendered field that is changed or gone shows by its path.
//!
//! Lists of objects are matched by their merge key, as server-side apply
//! does (`containers[name=runner]`, `volumeMounts[mountPath=/etc/x]`); other
//! lists are atomic and compared whole. The order of a keyed list's
//! rendered elements is a field too (`env[*]`: their keys in order, other
//! managers' elements left out), since order matters (`$(VAR)` references
//! an earlier env var only) and an apply restores it.

use std::collections::BTreeMap;

use serde_json::Value;

/// Field path → value (strings as they are, anything else as JSON).
pub type Fields = BTreeMap<String, String>;

/// The fields of `rendered`, with their rendered values.
pub fn flatten(rendered: &Value) -> Fields {
    project(rendered, Some(rendered))
}

/// The fields of `rendered`, with their values in `live`. A field missing
/// from `live` is missing from the result.
pub fn project(rendered: &Value, live: Option<&Value>) -> Fields {
    let mut out = Fields::new();
    walk(rendered, live, String::new(), &mut out);
    out
}

/// The keys of list `field`'s elements (the list-map keys server-side
/// apply matches elements by, from k8s.io/api's `+listMapKey` markers, for
/// the lists this provider renders), or `None` for an atomic list.
/// `ports` is keyed by port *and* protocol (core/v1 `Container.Ports`:
/// `+listMapKey=containerPort`, `+listMapKey=protocol`): a port whose
/// protocol changed is another element.
fn merge_keys(field: &str, items: &[Value]) -> Option<&'static [&'static str]> {
    let first = items.first()?.as_object()?;
    let keys: &'static [&'static str] = match field {
        "volumeMounts" => &["mountPath"],
        "ports" => &["containerPort", "protocol"],
        _ => &["name"],
    };
    keys.iter().all(|k| first.contains_key(*k)).then_some(keys)
}

/// `a.b` for plain keys, `a[app.kubernetes.io/name]` for the rest (no
/// quotes: Terraform quotes map keys already, and escaped quotes inside
/// them are hard to read).
fn child_path(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (prefix.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{prefix}.{key}"),
        (_, false) => format!("{prefix}[{key}]"),
    }
}

fn leaf(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn walk(rendered: &Value, live: Option<&Value>, path: String, out: &mut Fields) {
    walk_field("", rendered, live, path, out);
}

fn walk_field(field: &str, rendered: &Value, live: Option<&Value>, path: String, out: &mut Fields) {
    match rendered {
        Value::Object(fields) if !fields.is_empty() => {
            for (k, r) in fields {
                let l = live.and_then(|l| l.get(k));
                walk_field(k, r, l, child_path(&path, k), out);
            }
        }
        Value::Array(items) => match merge_keys(field, items) {
            Some(keys) => {
                let live_items = live.and_then(Value::as_array);
                let id = |item: &Value| -> String {
                    keys.iter()
                        .map(|k| format!("{k}={}", leaf(&item[*k])))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let ids: Vec<String> = items.iter().map(id).collect();
                for (item, item_id) in items.iter().zip(&ids) {
                    let same = |l: &&Value| keys.iter().all(|k| l[*k] == item[*k]);
                    let l = live_items.and_then(|ls| ls.iter().find(same));
                    walk_field("", item, l, format!("{path}[{item_id}]"), out);
                }
                if let (true, Some(live_items)) = (ids.len() > 1, live_items) {
                    let order: Vec<String> = live_items
                        .iter()
                        .map(id)
                        .filter(|found| ids.contains(found))
                        .collect();
                    out.insert(format!("{path}[*]"), order.join(" "));
                }
            }
            None => {
                if let Some(l) = live.filter(|l| !l.is_null()) {
                    out.insert(path, leaf(l));
                }
            }
        },
        _ => {
            if let Some(l) = live.filter(|l| !l.is_null()) {
                out.insert(path, leaf(l));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered() -> Value {
        json!({
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "beads"}},
            "spec": {
                "suspend": false,
                "containers": [{
                    "name": "runner",
                    "args": ["dispatch"],
                    "volumeMounts": [{"name": "m", "mountPath": "/m"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "Z", "value": "26"}],
                }],
                "imagePullSecrets": [{"name": "reg"}],
            },
        })
    }

    #[test]
    fn flatten_names_each_field_by_path() {
        let f = flatten(&rendered());
        assert_eq!(f["metadata.labels[app.kubernetes.io/name]"], "beads");
        assert_eq!(f["spec.suspend"], "false");
        assert_eq!(f["spec.containers[name=runner].args"], "[\"dispatch\"]");
        assert_eq!(f["spec.containers[name=runner].env[name=A].value"], "1");
        assert_eq!(f["spec.containers[name=runner].env[*]"], "name=A name=Z");
        assert_eq!(f["spec.imagePullSecrets[name=reg].name"], "reg");
        assert_eq!(
            f["spec.containers[name=runner].volumeMounts[mountPath=/m].name"],
            "m"
        );
        assert_eq!(f.len(), 13);
    }

    #[test]
    fn other_managers_additions_are_not_read() {
        let mut live = rendered();
        live["metadata"]["labels"]["kyverno"] = json!("yes");
        live["metadata"]["annotations"] = json!({"a": "b"});
        live["spec"]["dnsConfig"] = json!({"options": []});
        live["spec"]["imagePullSecrets"] = json!([{"name": "other"}, {"name": "reg"}]);
        live["spec"]["containers"][0]["env"] = json!([{"name": "B", "value": "2"},
            {"name": "A", "value": "1"}, {"name": "C", "value": "3"}, {"name": "Z", "value": "26"}]);
        live["spec"]["containers"].as_array_mut().unwrap().insert(
            0,
            json!({"name": "sidecar", "env": [{"name": "C", "value": "3"}]}),
        );
        assert_eq!(project(&rendered(), Some(&live)), flatten(&rendered()));
    }

    #[test]
    fn a_reordered_list_shows_by_its_order() {
        let mut live = rendered();
        live["spec"]["containers"][0]["env"] =
            json!([{"name": "Z", "value": "26"}, {"name": "A", "value": "1"}]);
        let p = project(&rendered(), Some(&live));
        assert_eq!(p["spec.containers[name=runner].env[*]"], "name=Z name=A");
        // One element removed: the order lists what is left.
        live["spec"]["containers"][0]["env"] = json!([{"name": "Z", "value": "26"}]);
        let p = project(&rendered(), Some(&live));
        assert_eq!(p["spec.containers[name=runner].env[*]"], "name=Z");
    }

    #[test]
    fn ports_are_keyed_by_port_and_protocol() {
        let rendered =
            json!({"ports": [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]});
        let f = flatten(&rendered);
        assert_eq!(f["ports[containerPort=9090,protocol=TCP].name"], "metrics");
        // Another protocol on the same port is another element: the
        // rendered one is missing (and apply adds it back).
        let live = json!({"ports": [{"name": "m", "containerPort": 9090, "protocol": "UDP"}]});
        assert!(project(&rendered, Some(&live)).is_empty());
    }

    #[test]
    fn changed_and_removed_fields_show_by_path() {
        let mut live = rendered();
        live["spec"]["suspend"] = json!(true);
        live["spec"]["containers"][0]["args"] = json!(["reap"]);
        live["spec"]["containers"][0]["env"] = json!([]);
        let p = project(&rendered(), Some(&live));
        assert_eq!(p["spec.suspend"], "true");
        assert_eq!(p["spec.containers[name=runner].args"], "[\"reap\"]");
        assert!(!p.contains_key("spec.containers[name=runner].env[name=A].value"));
        assert!(project(&rendered(), None).is_empty());
    }

    /// Every leaf of `v`, changed one at a time.
    fn each_leaf_changed(v: &Value) -> Vec<Value> {
        fn paths(v: &Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
            match v {
                Value::Object(m) if !m.is_empty() => {
                    for (k, x) in m {
                        let mut p = at.clone();
                        p.push(k.clone());
                        paths(x, p, out);
                    }
                }
                Value::Array(xs) if xs.iter().all(Value::is_object) && !xs.is_empty() => {
                    for (i, x) in xs.iter().enumerate() {
                        let mut p = at.clone();
                        p.push(i.to_string());
                        paths(x, p, out);
                    }
                }
                _ => out.push(at),
            }
        }
        let mut all = Vec::new();
        paths(v, Vec::new(), &mut all);
        all.into_iter()
            .map(|p| {
                let mut changed = v.clone();
                let pointer = p
                    .iter()
                    .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
                    .collect::<String>();
                let slot = changed.pointer_mut(&pointer).unwrap();
                *slot = match slot {
                    Value::String(s) => Value::String(format!("{s}-changed")),
                    Value::Bool(b) => Value::Bool(!*b),
                    Value::Number(n) => json!(n.as_i64().unwrap_or_default() + 1),
                    _ => json!(["changed"]),
                };
                changed
            })
            .collect()
    }

    #[test]
    fn a_change_to_any_field_the_provider_renders_shows() {
        use crate::k8s::render::{self, tests::spec};
        use crate::types::Mode;
        for mode in [Mode::CronJob, Mode::Deployment] {
            let s = crate::autodispatch::Autodispatch { mode, ..spec() };
            for object in render::objects(&s) {
                let rendered = object.to_json();
                let want = flatten(&rendered);
                let changes = each_leaf_changed(&rendered);
                assert!(changes.len() > 5, "{}", object.id());
                for live in changes {
                    let seen = project(&rendered, Some(&live));
                    assert_ne!(
                        seen,
                        want,
                        "{}: a change is invisible in {live}",
                        object.id()
                    );
                }
            }
        }
    }
}
