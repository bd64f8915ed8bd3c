//! In-memory object storage with a single global resourceVersion counter and
//! a bounded event history for watches.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::resources::ResourceType;

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change to one object.
#[derive(Debug, Clone)]
pub struct Event {
    /// Type.
    pub kind: EventType,
    /// `cronjobs.batch` etc.
    pub resource: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// resourceVersion of the change.
    pub rv: u64,
    /// The object after the change (before removal for `Deleted`).
    pub object: Value,
}

type Key = (String, String, String);

/// The object store.
pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Event>,
    events: broadcast::Sender<Event>,
}

const HISTORY: usize = 2000;

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            events,
        }
    }

    fn key(res: &ResourceType, ns: &str, name: &str) -> Key {
        (res.qualified(), ns.to_string(), name.to_string())
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Reads one object.
    pub fn get(&self, res: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&Self::key(res, ns, name))
    }

    /// Lists objects of a type, in one namespace or all (`None`), sorted by
    /// namespace and name.
    pub fn list(&self, res: &ResourceType, ns: Option<&str>) -> Vec<&Value> {
        let q = res.qualified();
        self.objects
            .iter()
            .filter(|((r, n, _), _)| *r == q && ns.is_none_or(|want| want == n))
            .map(|(_, v)| v)
            .collect()
    }

    /// Stores an object, assigning the next resourceVersion. Returns the stored object.
    pub fn put(&mut self, res: &ResourceType, ns: &str, name: &str, mut obj: Value) -> Value {
        self.rv += 1;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        }
        let key = Self::key(res, ns, name);
        let kind = if self.objects.contains_key(&key) {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.objects.insert(key, obj.clone());
        self.publish(kind, res, ns, obj.clone());
        obj
    }

    /// Removes an object (the removal gets its own resourceVersion).
    pub fn remove(&mut self, res: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self.objects.remove(&Self::key(res, ns, name))?;
        self.rv += 1;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        }
        self.publish(EventType::Deleted, res, ns, obj.clone());
        Some(obj)
    }

    /// Names of every object in a namespace, as (resource type index, name).
    pub fn in_namespace(&self, ns: &str) -> Vec<(String, String)> {
        self.objects
            .keys()
            .filter(|(_, n, _)| n == ns)
            .map(|(r, _, name)| (r.clone(), name.clone()))
            .collect()
    }

    fn publish(&mut self, kind: EventType, res: &ResourceType, ns: &str, object: Value) {
        let ev = Event {
            kind,
            resource: res.qualified(),
            namespace: ns.to_string(),
            rv: self.rv,
            object,
        };
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        // No receivers is fine.
        let _ = self.events.send(ev);
    }

    /// Subscribes to future events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Events after `rv`, or `None` if the history no longer reaches back that far.
    pub fn events_since(&self, rv: u64) -> Option<Vec<Event>> {
        if rv >= self.rv {
            return Some(Vec::new());
        }
        let oldest = self.history.front().map_or(self.rv + 1, |e| e.rv);
        if rv + 1 < oldest {
            return None;
        }
        Some(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::CONFIGMAPS;

    #[test]
    fn rv_is_global_and_monotonic() {
        let mut s = Store::new();
        let a = s.put(
            &CONFIGMAPS,
            "default",
            "a",
            json!({"metadata":{"name":"a"}}),
        );
        let b = s.put(
            &CONFIGMAPS,
            "default",
            "b",
            json!({"metadata":{"name":"b"}}),
        );
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert_eq!(b["metadata"]["resourceVersion"], "2");
        s.remove(&CONFIGMAPS, "default", "a");
        assert_eq!(s.resource_version(), 3);
        assert_eq!(s.events_since(1).unwrap().len(), 2);
        assert_eq!(s.list(&CONFIGMAPS, Some("default")).len(), 1);
    }
}
