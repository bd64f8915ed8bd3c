//! `metadata.managedFields`: per-manager field ownership, updated by
//! non-apply writes (`operation: Update`) and by server-side apply
//! (`operation: Apply`), with upstream conflict detection and pruning.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Cause};
use crate::fieldpath::{self, Path, PathElement, Set, has_at_or_below, path_string};
use crate::schema::Node;
use crate::ssa;

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry with its decoded field set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Manager name.
    pub manager: String,
    /// Operation.
    pub operation: Operation,
    /// apiVersion the fields were recorded in.
    pub api_version: String,
    /// RFC 3339 time of the last change.
    pub time: String,
    /// Subresource ("" or "status").
    pub subresource: String,
    /// Owned fields.
    pub set: Set,
}

impl Entry {
    /// Whether `other` is the same manager identity (upstream
    /// `BuildManagerIdentifier`: apiVersion counts only for Update).
    fn same_identity(&self, manager: &str, op: Operation, api_version: &str, sub: &str) -> bool {
        self.manager == manager
            && self.operation == op
            && self.subresource == sub
            && (op == Operation::Apply || self.api_version == api_version)
    }

    /// How upstream names this manager in conflict messages.
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == Operation::Update {
            s = if self.time.is_empty() {
                format!("{s} using {}", self.api_version)
            } else {
                format!("{s} using {} at {}", self.api_version, self.time)
            };
        }
        s
    }
}

/// Reads `metadata.managedFields` of an object. Malformed entries are dropped.
pub fn decode(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let operation = match e.get("operation")?.as_str()? {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return None,
            };
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            Some(Entry {
                manager: s("manager"),
                operation,
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                set: e
                    .get("fieldsV1")
                    .map(fieldpath::from_fields_v1)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// What a non-apply write (PUT, merge/JSON/strategic patch) asks of
/// `metadata.managedFields`, per upstream `decodeManagedFields`
/// (k8s.io/apimachinery `pkg/util/managedfields/internal/fieldmanager.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Absent, empty, or not decodable: keep the live object's entries, so a
    /// client that does not know the field never wipes it.
    Live,
    /// Exactly one empty entry (`[{}]`): clear them (`isResetManagedFields`).
    Reset,
    /// A valid list: it replaces the live entries (how client-go's
    /// `csaupgrade` moves ownership from one manager to another).
    Entries(Vec<Entry>),
}

/// Reads the `managedFields` a write carries. Any entry upstream refuses to
/// decode (operation not `Apply`/`Update`, empty apiVersion, fieldsType not
/// `FieldsV1`, fieldsV1 not an object) makes the whole list [`Requested::Live`].
pub fn requested(obj: &Value) -> Requested {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Requested::Live;
    };
    if list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty) {
        return Requested::Reset;
    }
    let valid = |e: &Value| {
        matches!(
            e.get("operation").and_then(Value::as_str),
            Some("Apply" | "Update")
        ) && e
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
            && e.get("fieldsType").and_then(Value::as_str) == Some("FieldsV1")
            && e.get("fieldsV1").is_none_or(Value::is_object)
    };
    if list.is_empty() || !list.iter().all(valid) {
        return Requested::Live;
    }
    Requested::Entries(decode(obj))
}

/// Writes entries into `metadata.managedFields`, sorted as upstream sorts
/// them (Apply first, then by time, manager, apiVersion).
pub fn encode(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation.as_str()));
            m.insert("apiVersion".into(), json!(e.api_version));
            if !e.time.is_empty() {
                m.insert("time".into(), json!(e.time));
            }
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), fieldpath::to_fields_v1(&e.set));
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), json!(e.subresource));
            }
            Value::Object(m)
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.shift_remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Who is writing: manager name, apiVersion, subresource and a timestamp.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// Field manager.
    pub manager: &'a str,
    /// apiVersion of the request.
    pub api_version: &'a str,
    /// "" or "status".
    pub subresource: &'a str,
    /// RFC 3339 now.
    pub now: &'a str,
    /// Whether `status` is a separate subresource (ignored on main writes).
    pub has_status: bool,
}

fn comparison(schema: &Node, old: &Value, new: &Value, w: &Writer) -> ssa::Comparison {
    let mut c = ssa::compare(schema, old, new);
    for s in [&mut c.added, &mut c.modified, &mut c.removed] {
        ssa::strip_ignored(s, w.has_status);
    }
    c
}

/// Records a non-apply write (upstream `Updater.Update` plus the
/// managed-fields timestamp updater): the writer takes every added or changed
/// field from everyone else; removed fields leave every set. A write that
/// changes nothing leaves the entries untouched.
pub fn update(schema: &Node, old: &Value, new: &Value, entries: &mut Vec<Entry>, w: &Writer) {
    let c = comparison(schema, old, new, w);
    if c.is_empty() {
        return;
    }
    let taken: Set = c.added.union(&c.modified).cloned().collect();
    for e in entries.iter_mut() {
        if e.same_identity(w.manager, Operation::Update, w.api_version, w.subresource) {
            continue;
        }
        e.set
            .retain(|p| !taken.contains(p) && !c.removed.contains(p));
    }
    let idx = match entries
        .iter()
        .position(|e| e.same_identity(w.manager, Operation::Update, w.api_version, w.subresource))
    {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: w.manager.to_string(),
                operation: Operation::Update,
                api_version: w.api_version.to_string(),
                time: String::new(),
                subresource: w.subresource.to_string(),
                set: Set::new(),
            });
            entries.len() - 1
        }
    };
    let e = &mut entries[idx];
    e.set.retain(|p| !c.removed.contains(p));
    e.set.extend(taken);
    e.time = w.now.to_string();
    entries.retain(|e| !e.set.is_empty());
}

/// Result of an apply: the merged and pruned object (before defaulting) and
/// the new entries. `changed_owner` says whether the applier's entry differs.
pub struct Applied {
    /// The merged object.
    pub object: Value,
    /// The new managed fields.
    pub entries: Vec<Entry>,
}

/// Server-side apply (upstream `Updater.Apply`): merges `config` into `live`,
/// prunes fields the applier dropped and nobody else owns, and fails with a
/// 409 listing conflicts unless `force`.
pub fn apply(
    schema: &Node,
    live: &Value,
    config: &Value,
    mut entries: Vec<Entry>,
    w: &Writer,
    force: bool,
) -> Result<Applied, ApiError> {
    let mut new_set = ssa::set_from_value(schema, config);
    ssa::strip_ignored(&mut new_set, w.has_status);

    let me = entries
        .iter()
        .position(|e| e.same_identity(w.manager, Operation::Apply, w.api_version, w.subresource));
    let last_set = me.map(|i| entries[i].set.clone()).unwrap_or_default();

    let mut merged = ssa::merge(schema, Some(live), config);

    // Prune what the applier owned before, no longer applies, and no one else
    // owns (at or below the path).
    let others: Set = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != me)
        .flat_map(|(_, e)| e.set.iter().cloned())
        .collect();
    let mut to_remove: Vec<&Path> = last_set
        .iter()
        .filter(|p| {
            !has_at_or_below(&new_set, p) && !has_at_or_below(&others, p) && !is_item_key(p)
        })
        .collect();
    to_remove.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in to_remove {
        ssa::remove_path(schema, &mut merged, p);
    }
    ssa::normalize(schema, &mut merged);

    // Conflicts with everyone else.
    let c = comparison(schema, live, &merged, w);
    let changed: Set = c.added.union(&c.modified).cloned().collect();
    let mut conflicts: Vec<(usize, Path)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == me {
            continue;
        }
        for p in e.set.intersection(&changed) {
            conflicts.push((i, p.clone()));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&entries, &conflicts));
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) == me {
            continue;
        }
        e.set
            .retain(|p| !changed.contains(p) && !c.removed.contains(p));
    }
    match me {
        Some(i) => {
            let e = &mut entries[i];
            e.set = new_set;
            e.api_version = w.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: w.manager.to_string(),
            operation: Operation::Apply,
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            subresource: w.subresource.to_string(),
            set: new_set,
        }),
    }
    entries.retain(|e| !e.set.is_empty());
    Ok(Applied {
        object: merged,
        entries,
    })
}

/// Whether `p` is a key field of a list-map item (`...[name="c"].name`):
/// such fields go only with their item, never on their own.
fn is_item_key(p: &[PathElement]) -> bool {
    match p {
        [.., PathElement::Key(fields), PathElement::Field(f)] => fields.iter().any(|(k, _)| k == f),
        _ => false,
    }
}

/// Sets the applier's timestamp (called when the apply changed the object).
pub fn touch(entries: &mut [Entry], manager: &str, op: Operation, now: &str) {
    for e in entries.iter_mut() {
        if e.manager == manager && e.operation == op {
            e.time = now.to_string();
        }
    }
}

fn conflict_error(entries: &[Entry], conflicts: &[(usize, Path)]) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(i, p)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {}", entries[*i].describe()),
            field: path_string(p),
        })
        .collect();
    let message = if conflicts.len() == 1 {
        let (i, p) = &conflicts[0];
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            entries[*i].describe(),
            path_string(p)
        )
    } else {
        let mut by_manager: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::new();
        for (i, p) in conflicts {
            by_manager
                .entry(entries[*i].describe())
                .or_default()
                .push(path_string(p));
        }
        let mut lines = Vec::new();
        for (m, paths) in by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::apply_conflict(message, causes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::CONFIGMAPS;
    use crate::schema::for_resource;

    fn w<'a>(m: &'a str) -> Writer<'a> {
        Writer {
            manager: m,
            api_version: "v1",
            subresource: "",
            now: "2024-01-01T00:00:00Z",
            has_status: false,
        }
    }

    #[test]
    fn apply_conflict_then_force_then_prune() {
        let s = for_resource(&CONFIGMAPS);
        let empty = json!({"metadata":{"name":"c"}});
        let a = apply(
            s,
            &empty,
            &json!({"metadata":{"name":"c"},"data":{"k":"1","j":"1"}}),
            vec![],
            &w("a"),
            false,
        )
        .unwrap();
        let live = a.object;
        // Same value by b: shared, no conflict.
        let b = apply(
            s,
            &live,
            &json!({"data":{"k":"1"}}),
            a.entries.clone(),
            &w("b"),
            false,
        )
        .unwrap();
        assert_eq!(b.entries.len(), 2);
        // Different value by c: conflict.
        let err = apply(
            s,
            &live,
            &json!({"data":{"k":"2"}}),
            b.entries.clone(),
            &w("c"),
            false,
        )
        .err()
        .unwrap();
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .starts_with("Apply failed with 1 conflict: conflict with \"a\": .data.k")
                || err.message.starts_with("Apply failed with 2 conflicts"),
            "{}",
            err.message
        );
        // a drops j: removed (no other owner); drops k: kept (b owns it).
        let a2 = apply(
            s,
            &b.object,
            &json!({"data":{}}),
            b.entries.clone(),
            &w("a"),
            false,
        )
        .unwrap();
        assert_eq!(a2.object["data"], json!({"k":"1"}));
    }

    #[test]
    fn dropped_item_with_foreign_fields_keeps_its_key() {
        let s = crate::schema::for_resource(&crate::resources::CRONJOBS);
        let cj = |containers: Value| {
            json!({"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"x"},"spec":{"schedule":"@daily",
                "jobTemplate":{"spec":{"template":{"spec":{"containers":containers}}}}}})
        };
        let live = json!({"metadata":{"name":"x"}});
        let a = apply(
            s,
            &live,
            &cj(json!([{"name":"a","image":"1"},{"name":"b","image":"1"}])),
            vec![],
            &w("tf"),
            false,
        )
        .unwrap();
        // kubectl-set changes b's image.
        let mut changed = a.object.clone();
        changed["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][1]["image"] =
            json!("2");
        let mut entries = a.entries.clone();
        update(s, &a.object, &changed, &mut entries, &w("kubectl-set"));
        // tf drops b: b stays (kubectl-set owns its image) and keeps its name.
        let out = apply(
            s,
            &changed,
            &cj(json!([{"name":"a","image":"1"}])),
            entries,
            &w("tf"),
            false,
        )
        .unwrap();
        let cs = &out.object["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[1], json!({"name":"b","image":"2"}));
    }
}
