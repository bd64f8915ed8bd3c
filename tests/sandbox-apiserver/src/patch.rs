//! Non-apply patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! strategic merge patch (list merge keys and `$patch`, `$retainKeys`,
//! `$setElementOrder`, `$deleteFromPrimitiveList` directives).

use serde_json::{Map, Value};

use crate::schema::{Node, PatchStrategy};

/// A patch that cannot be applied.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    /// The patch document is malformed.
    #[error("{0}")]
    Malformed(String),
    /// A JSON patch `test` operation failed or a path is missing.
    #[error("{0}")]
    Failed(String),
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match target {
                Value::Object(t) => t.clone(),
                _ => Map::new(),
            };
            for (k, v) in p {
                if v.is_null() {
                    out.shift_remove(k);
                } else {
                    let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        _ => patch.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PatchError::Malformed(format!(
            "invalid JSON pointer {path:?}: must start with '/'"
        )));
    };
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'a>(
    doc: &'a mut Value,
    tokens: &[String],
    path: &str,
) -> Result<&'a mut Value, PatchError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| PatchError::Failed(format!("doc is missing path: {path:?}")))?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let tokens = split_pointer(path)?;
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last.parse().map_err(|_| {
                PatchError::Failed(format!("invalid array index {last:?} in {path:?}"))
            })?;
            if i > a.len() {
                return Err(PatchError::Failed(format!(
                    "add operation does not apply: doc is missing path: {path:?}"
                )));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(PatchError::Failed(format!("doc is missing path: {path:?}"))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let tokens = split_pointer(path)?;
    let Some((last, parents)) = tokens.split_last() else {
        return Err(PatchError::Failed("cannot remove the document root".into()));
    };
    let missing = || {
        PatchError::Failed(format!(
            "remove operation does not apply: doc is missing path: {path:?}"
        ))
    };
    match parent_mut(doc, parents, path)? {
        Value::Object(m) => m.shift_remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

fn get<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, PatchError> {
    let tokens = split_pointer(path)?;
    let mut cur = doc;
    for t in &tokens {
        cur = match cur {
            Value::Object(m) => m.get(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| PatchError::Failed(format!("doc is missing path: {path:?}")))?;
    }
    Ok(cur)
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| PatchError::Malformed("json patch must be an array of operations".into()))?;
    let mut doc = target.clone();
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed("operation is missing \"op\"".into()))?;
        let path = op.get("path").and_then(Value::as_str).ok_or_else(|| {
            PatchError::Malformed(format!("{kind} operation is missing \"path\""))
        })?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                PatchError::Malformed(format!("{kind} operation is missing \"value\""))
            })
        };
        let from = || {
            op.get("from").and_then(Value::as_str).ok_or_else(|| {
                PatchError::Malformed(format!("{kind} operation is missing \"from\""))
            })
        };
        match kind {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                get(&doc, path).map_err(|_| {
                    PatchError::Failed(format!(
                        "replace operation does not apply: doc is missing key: {path}"
                    ))
                })?;
                remove(&mut doc, path).ok();
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = get(&doc, from()?)?.clone();
                add(&mut doc, path, v)?;
            }
            "test" => {
                let want = value()?;
                if get(&doc, path)? != &want {
                    return Err(PatchError::Failed(format!(
                        "testing value {path} failed: test failed"
                    )));
                }
            }
            other => {
                return Err(PatchError::Malformed(format!("Unexpected kind: {other}")));
            }
        }
    }
    Ok(doc)
}

/// Strategic merge patch of `patch` onto `target` with schema `schema`.
pub fn strategic_merge_patch(
    schema: &Node,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(p) = patch else {
        return Err(PatchError::Malformed(
            "strategic merge patch must be a JSON object".into(),
        ));
    };
    Ok(smp_object(schema, target.as_object(), p)?
        .map(Value::Object)
        .unwrap_or(Value::Null))
}

fn directive<'a>(p: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    p.get(name).and_then(Value::as_str)
}

/// Returns `None` when the object is deleted by `$patch: delete`.
fn smp_object(
    schema: &Node,
    target: Option<&Map<String, Value>>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match directive(patch, "$patch") {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut out = patch.clone();
            out.shift_remove("$patch");
            return Ok(Some(strip_directives(out)));
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::Malformed(format!(
                "Unknown patch type: {other}"
            )));
        }
    }
    let mut out = target.cloned().unwrap_or_default();
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Some(list) = v.as_array() {
                orders.push((field.to_string(), list.clone()));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = out.get_mut(field) {
                items.retain(|i| !drop.contains(i));
            }
            continue;
        }
        let (child, _) = schema.field(k);
        if v.is_null() {
            out.shift_remove(k);
            continue;
        }
        match v {
            Value::Object(pm) => {
                let cur = out.get(k).and_then(Value::as_object);
                match smp_object(child, cur, pm)? {
                    Some(m) => {
                        out.insert(k.clone(), Value::Object(m));
                    }
                    None => {
                        out.shift_remove(k);
                    }
                }
            }
            Value::Array(pl) => {
                let cur = out.get(k).and_then(Value::as_array);
                let merged = smp_list(child, cur, pl)?;
                out.insert(k.clone(), Value::Array(merged));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for (field, order) in orders {
        let (child, _) = schema.field(&field);
        if let Some(Value::Array(items)) = out.get_mut(&field) {
            reorder(child, items, &order);
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(out))
}

fn strip_directives(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|k, _| !k.starts_with('$'));
    for v in m.values_mut() {
        strip_value(v);
    }
    m
}

fn strip_value(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let taken = std::mem::take(m);
            *m = strip_directives(taken);
        }
        Value::Array(items) => {
            items.retain(|i| i.get("$patch").is_none());
            for i in items.iter_mut() {
                strip_value(i);
            }
        }
        _ => {}
    }
}

fn smp_list(
    schema: &Node,
    target: Option<&Vec<Value>>,
    patch: &[Value],
) -> Result<Vec<Value>, PatchError> {
    let strategy = match schema {
        Node::List { smp, .. } => smp.clone(),
        _ => PatchStrategy::Replace,
    };
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let mut out: Vec<Value> = patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        out.iter_mut().for_each(strip_value);
        return Ok(out);
    }
    match strategy {
        PatchStrategy::Replace => {
            let mut out = patch.to_vec();
            out.iter_mut().for_each(strip_value);
            Ok(out)
        }
        PatchStrategy::MergePrimitive => {
            let mut out = target.cloned().unwrap_or_default();
            for v in patch {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(out)
        }
        PatchStrategy::MergeKey(key) => {
            let elem = schema.elem();
            let mut out = target.cloned().unwrap_or_default();
            for item in patch {
                let Some(pm) = item.as_object() else {
                    return Err(PatchError::Malformed(format!(
                        "unable to find merge key {key:?} in a non-object list item"
                    )));
                };
                let Some(kv) = pm.get(key) else {
                    return Err(PatchError::Malformed(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    )));
                };
                let pos = out.iter().position(|o| o.get(key) == Some(kv));
                match directive(pm, "$patch") {
                    Some("delete") => {
                        if let Some(p) = pos {
                            out.remove(p);
                        }
                        continue;
                    }
                    Some("replace") => {
                        let mut m = pm.clone();
                        m.shift_remove("$patch");
                        let v = Value::Object(strip_directives(m));
                        match pos {
                            Some(p) => out[p] = v,
                            None => out.push(v),
                        }
                        continue;
                    }
                    _ => {}
                }
                match pos {
                    Some(p) => {
                        let merged = smp_object(elem, out[p].as_object(), pm)?;
                        match merged {
                            Some(m) => out[p] = Value::Object(m),
                            None => {
                                out.remove(p);
                            }
                        }
                    }
                    None => {
                        if let Some(m) = smp_object(elem, None, pm)? {
                            out.push(Value::Object(m));
                        }
                    }
                }
            }
            Ok(out)
        }
    }
}

/// `$setElementOrder`: items named in `order` come first in that order; the
/// others keep their relative order after them.
fn reorder(schema: &Node, items: &mut Vec<Value>, order: &[Value]) {
    let key = match schema {
        Node::List {
            smp: PatchStrategy::MergeKey(k),
            ..
        } => Some(*k),
        _ => None,
    };
    let rank = |v: &Value| -> usize {
        order
            .iter()
            .position(|o| match key {
                Some(k) => o.get(k).is_some() && o.get(k) == v.get(k),
                None => o == v,
            })
            .unwrap_or(usize::MAX)
    };
    let mut ranked: Vec<(usize, usize, Value)> = items
        .drain(..)
        .enumerate()
        .map(|(i, v)| (rank(&v), i, v))
        .collect();
    ranked.sort_by_key(|(r, i, _)| (*r, *i));
    items.extend(ranked.into_iter().map(|(_, _, v)| v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::CRONJOBS;
    use crate::schema::for_resource;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls() {
        let t = json!({"a":1,"b":{"c":2,"d":3}});
        let p = json!({"a":null,"b":{"c":5}});
        assert_eq!(merge_patch(&t, &p), json!({"b":{"c":5,"d":3}}));
    }

    #[test]
    fn json_patch_ops() {
        let t = json!({"spec":{"suspend":false,"list":[1,2]}});
        let p = json!([
            {"op":"replace","path":"/spec/suspend","value":true},
            {"op":"add","path":"/spec/list/-","value":3},
            {"op":"test","path":"/spec/list/0","value":1},
            {"op":"remove","path":"/spec/list/1"}
        ]);
        assert_eq!(
            json_patch(&t, &p).unwrap(),
            json!({"spec":{"suspend":true,"list":[1,3]}})
        );
        let bad = json!([{"op":"test","path":"/spec/suspend","value":true}]);
        assert!(json_patch(&t, &bad).is_err());
    }

    #[test]
    fn smp_containers_by_name() {
        let s = for_resource(&CRONJOBS);
        let t = json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[
            {"name":"a","image":"1","args":["x"]},{"name":"b","image":"2"}]}}}}}});
        let p = json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[
            {"name":"b","image":"3"}]}}}}}});
        let out = strategic_merge_patch(s, &t, &p).unwrap();
        let cs = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0], json!({"name":"a","image":"1","args":["x"]}));
        assert_eq!(cs[1], json!({"name":"b","image":"3"}));
        let del = json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[
            {"name":"a","$patch":"delete"}]}}}}}});
        let out = strategic_merge_patch(s, &t, &del).unwrap();
        let cs = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs.as_array().unwrap().len(), 1);
    }
}
