//! The resource's `objects` attribute (object → field path → value) as the
//! tests read it, and the way back from a field path to the field in a live
//! object, so a test can change exactly that field with a JSON patch.
//!
//! The path grammar is the provider's (provider/src/k8s/project.rs): `a.b`
//! for plain keys, `a[app.kubernetes.io/name]` for other map keys,
//! `list[key=value]` for an element of a keyed list (matched by its merge
//! key, as server-side apply does); atomic lists are one field, their value
//! JSON.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde_json::Value;

/// Object id (`cronjob/beads-dispatcher`) → field path → value.
pub type Objects = BTreeMap<String, BTreeMap<String, String>>;

/// The `objects` attribute of the one `beads_autodispatch` in a state read
/// with `terraform show -json`.
pub fn objects_in_state(state: &Value) -> anyhow::Result<Objects> {
    let resources = state
        .pointer("/values/root_module/resources")
        .and_then(Value::as_array)
        .context("the state has no resources")?;
    let found: Vec<&Value> = resources
        .iter()
        .filter(|r| r["type"] == "beads_autodispatch")
        .collect();
    let [resource] = found.as_slice() else {
        bail!("expected one beads_autodispatch, found {}", found.len());
    };
    serde_json::from_value(resource["values"]["objects"].clone())
        .context("objects is a map of maps of strings")
}

/// A field's value as `objects` shows it: strings as they are, anything
/// else as JSON.
pub fn leaf(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.key` (or the first key).
    Key(String),
    /// `[...]`: a map key, or `merge-key=value` of a keyed list element;
    /// which one depends on what the object holds there.
    Bracket(String),
}

/// The steps of `path`.
pub fn steps(path: &str) -> anyhow::Result<Vec<Step>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            // No key or merge-key value this provider renders holds `]`.
            let end = inner
                .find(']')
                .with_context(|| format!("unclosed [ in {path}"))?;
            out.push(Step::Bracket(inner[..end].to_string()));
            rest = &inner[end + 1..];
        } else {
            let body = if out.is_empty() {
                rest
            } else {
                rest.strip_prefix('.')
                    .with_context(|| format!("expected . or [ at {rest:?} in {path}"))?
            };
            let end = body.find(['.', '[']).unwrap_or(body.len());
            if end == 0 {
                bail!("empty key at {rest:?} in {path}");
            }
            out.push(Step::Key(body[..end].to_string()));
            rest = &body[end..];
        }
    }
    Ok(out)
}

/// Whether `path` is a keyed list element's own merge key
/// (`containers[name=runner].name`).
pub fn is_merge_key(path: &str) -> bool {
    let Ok(steps) = steps(path) else {
        return false;
    };
    match steps.as_slice() {
        [.., Step::Bracket(element), Step::Key(key)] => element
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .any(|(merge_key, _)| merge_key == key),
        _ => false,
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The JSON pointer (RFC 6901) of field `path` in `live`, and the value
/// there. List elements are found by their merge key in `live`, so the
/// pointer holds the element's index in this object.
pub fn locate<'a>(live: &'a Value, path: &str) -> anyhow::Result<(String, &'a Value)> {
    let mut pointer = String::new();
    let mut at = live;
    for step in steps(path)? {
        match (step, at) {
            (Step::Key(key) | Step::Bracket(key), Value::Object(map)) => {
                at = map
                    .get(&key)
                    .with_context(|| format!("{path}: no {key:?} at {pointer:?}"))?;
                pointer.push('/');
                pointer.push_str(&escape(&key));
            }
            (Step::Bracket(element), Value::Array(items)) => {
                // `[key=value]`, or `[k1=v1,k2=v2]` for a list keyed by several fields.
                let wanted = element
                    .split(',')
                    .map(|pair| pair.split_once('='))
                    .collect::<Option<Vec<_>>>()
                    .with_context(|| format!("{path}: [{element}] in a list has no key=value"))?;
                let (index, item) = items
                    .iter()
                    .enumerate()
                    .find(|(_, item)| {
                        wanted
                            .iter()
                            .all(|(key, want)| item.get(*key).is_some_and(|v| leaf(v) == *want))
                    })
                    .with_context(|| format!("{path}: no element with {element} at {pointer:?}"))?;
                at = item;
                pointer.push_str(&format!("/{index}"));
            }
            (step, other) => bail!("{path}: {step:?} cannot step into {other} at {pointer:?}"),
        }
    }
    Ok((pointer, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Value {
        json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "beads"}},
            "data": {"metadata.json": "{}"},
            "spec": {"containers": [
                {"name": "sidecar"},
                {"name": "runner", "args": ["reap"],
                 "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                 "ports": [{"containerPort": 9090, "protocol": "TCP", "name": "metrics"}],
                 "volumeMounts": [{"name": "m", "mountPath": "/etc/beads-metadata"}]},
            ]},
        })
    }

    #[test]
    fn paths_become_pointers_through_merge_keys() {
        let l = live();
        for (path, pointer, value) in [
            (
                "metadata.labels[app.kubernetes.io/name]",
                "/metadata/labels/app.kubernetes.io~1name",
                json!("beads"),
            ),
            ("data[metadata.json]", "/data/metadata.json", json!("{}")),
            (
                "spec.containers[name=runner].args",
                "/spec/containers/1/args",
                json!(["reap"]),
            ),
            (
                "spec.containers[name=runner].env[name=A].value",
                "/spec/containers/1/env/1/value",
                json!("1"),
            ),
            (
                "spec.containers[name=runner].ports[containerPort=9090,protocol=TCP].name",
                "/spec/containers/1/ports/0/name",
                json!("metrics"),
            ),
            (
                "spec.containers[name=runner].volumeMounts[mountPath=/etc/beads-metadata].name",
                "/spec/containers/1/volumeMounts/0/name",
                json!("m"),
            ),
        ] {
            let (p, v) = locate(&l, path).unwrap();
            assert_eq!((p.as_str(), v), (pointer, &value), "{path}");
            assert_eq!(l.pointer(&p), Some(&value));
        }
        assert!(locate(&l, "spec.containers[name=other].args").is_err());
        assert!(locate(&l, "spec.missing").is_err());
        assert!(locate(&l, "spec.containers[runner]").is_err());
    }

    #[test]
    fn merge_keys_are_recognised() {
        assert!(is_merge_key("spec.containers[name=runner].name"));
        assert!(is_merge_key(
            "a.ports[containerPort=9090,protocol=TCP].containerPort"
        ));
        assert!(is_merge_key(
            "a.ports[containerPort=9090,protocol=TCP].protocol"
        ));
        assert!(!is_merge_key(
            "a.ports[containerPort=9090,protocol=TCP].name"
        ));
        assert!(!is_merge_key("a.volumeMounts[mountPath=/x].name"));
        assert!(!is_merge_key("metadata.name"));
        assert!(!is_merge_key("metadata.labels[name]"));
    }

    #[test]
    fn objects_are_read_from_the_state() {
        let state = json!({"values": {"root_module": {"resources": [
            {"type": "beads_autodispatch", "values": {"objects": {"cronjob/x": {"spec.suspend": "false"}}}}
        ]}}});
        let objects = objects_in_state(&state).unwrap();
        assert_eq!(objects["cronjob/x"]["spec.suspend"], "false");
        assert!(objects_in_state(&json!({})).is_err());
    }
}
