//! Small helpers: timestamps, random identifiers, object metadata access.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// Now as RFC 3339 with second precision, as metav1.Time serialises.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random u64 (std's per-process random hasher keys plus a counter).
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A random version-4 UUID.
pub fn new_uid() -> String {
    let a = random_u64();
    let b = random_u64();
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        8 | (b >> 60 & 0x3),
        &hex[17..20],
        &hex[20..32]
    )
}

/// Five random characters for `generateName`, from upstream's alphabet.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// `metadata` of an object, created if missing.
pub fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let m = obj.as_object_mut()?;
    let meta = m
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// A string in `metadata`.
pub fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Reorders keys: `first` in that order, then the rest in their order, then `last`.
pub fn reorder(m: &mut Map<String, Value>, first: &[&str], last: &[&str]) {
    let mut old = std::mem::take(m);
    for k in first {
        if let Some(v) = old.shift_remove(*k) {
            m.insert((*k).to_string(), v);
        }
    }
    let tail: Vec<(String, Value)> = last
        .iter()
        .filter_map(|k| old.shift_remove(*k).map(|v| ((*k).to_string(), v)))
        .collect();
    for (k, v) in old {
        m.insert(k, v);
    }
    for (k, v) in tail {
        m.insert(k, v);
    }
}

/// Puts an object's keys in upstream order (apiVersion, kind, metadata, ...,
/// status; metadata members as in ObjectMeta).
pub fn canonicalize(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    reorder(m, &["apiVersion", "kind", "metadata"], &["status"]);
    if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        reorder(
            meta,
            &[
                "name",
                "generateName",
                "namespace",
                "selfLink",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "labels",
                "annotations",
                "ownerReferences",
                "finalizers",
                "managedFields",
            ],
            &[],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_shape() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(new_uid(), u);
        assert_eq!(random_suffix().len(), 5);
    }
}
