//! A small structural schema of the served kinds: just enough to drive
//! server-side apply (granular structs and maps, list-maps keyed by fields,
//! sets, atomic values) and strategic merge patch (patch merge keys).
//!
//! Fields that are not declared are "deduced" the way structured-merge-diff
//! does for untyped values: objects are granular maps, lists are atomic.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::resources::ResourceType;

/// How a list merges under server-side apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole, owned as one field.
    Atomic,
    /// List of scalars, each value owned separately (`v:"x"`).
    Set,
    /// List of objects identified by key fields (`k:{"name":"c"}`), with
    /// defaults for absent key fields.
    Map {
        /// Key field names, sorted.
        keys: Vec<&'static str>,
        /// Key field defaults, e.g. ports' `protocol: TCP`.
        defaults: Vec<(&'static str, &'static str)>,
    },
}

/// How a list merges under strategic merge patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchStrategy {
    /// The patch list replaces the live list.
    Replace,
    /// Items merged by this key.
    MergeKey(&'static str),
    /// Primitive list, union of values.
    MergePrimitive,
}

/// A schema node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A scalar, or an atomic struct/map/list: owned and replaced as a whole.
    Leaf,
    /// A struct with declared fields; undeclared fields are deduced.
    Struct(Vec<(&'static str, Node)>),
    /// A granular map with arbitrary keys (labels, annotations, data).
    Map(Box<Node>),
    /// A list.
    List {
        /// SSA list type.
        ssa: ListType,
        /// SMP strategy.
        smp: PatchStrategy,
        /// Element schema.
        elem: Box<Node>,
    },
    /// Untyped: objects are granular maps of deduced values, lists atomic.
    Deduced,
}

static DEDUCED: Node = Node::Deduced;

impl Node {
    /// The schema of child `name` of an object node, and whether it is a
    /// declared struct field.
    pub fn field(&self, name: &str) -> (&Node, bool) {
        match self {
            Node::Struct(fields) => match fields.iter().find(|(n, _)| *n == name) {
                Some((_, node)) => (node, true),
                None => (&DEDUCED, false),
            },
            Node::Map(elem) => (elem, false),
            _ => (&DEDUCED, false),
        }
    }

    /// Whether values of this node are granular objects (struct, map or deduced).
    pub fn is_granular_object(&self) -> bool {
        matches!(self, Node::Struct(_) | Node::Map(_) | Node::Deduced)
    }

    /// The list element schema (deduced if this is not a list).
    pub fn elem(&self) -> &Node {
        match self {
            Node::List { elem, .. } => elem,
            _ => &DEDUCED,
        }
    }
}

fn leaf() -> Node {
    Node::Leaf
}
fn open() -> Node {
    Node::Struct(Vec::new())
}
fn map_of_leaf() -> Node {
    Node::Map(Box::new(Node::Leaf))
}
fn atomic_list() -> Node {
    Node::List {
        ssa: ListType::Atomic,
        smp: PatchStrategy::Replace,
        elem: Box::new(Node::Deduced),
    }
}
fn list_map(keys: &[&'static str], smp_key: &'static str, elem: Node) -> Node {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    Node::List {
        ssa: ListType::Map {
            keys,
            defaults: Vec::new(),
        },
        smp: PatchStrategy::MergeKey(smp_key),
        elem: Box::new(elem),
    }
}
fn set_list() -> Node {
    Node::List {
        ssa: ListType::Set,
        smp: PatchStrategy::MergePrimitive,
        elem: Box::new(Node::Leaf),
    }
}

/// `metav1.ObjectMeta`.
fn object_meta() -> Node {
    Node::Struct(vec![
        ("name", leaf()),
        ("generateName", leaf()),
        ("namespace", leaf()),
        ("uid", leaf()),
        ("resourceVersion", leaf()),
        ("generation", leaf()),
        ("creationTimestamp", leaf()),
        ("deletionTimestamp", leaf()),
        ("deletionGracePeriodSeconds", leaf()),
        ("labels", map_of_leaf()),
        ("annotations", map_of_leaf()),
        ("ownerReferences", list_map(&["uid"], "uid", open())),
        ("finalizers", set_list()),
        ("managedFields", atomic_list()),
    ])
}

fn env_var() -> Node {
    Node::Struct(vec![
        ("name", leaf()),
        ("value", leaf()),
        ("valueFrom", open()),
    ])
}

fn container() -> Node {
    let ports = Node::List {
        ssa: ListType::Map {
            keys: vec!["containerPort", "protocol"],
            defaults: vec![("protocol", "TCP")],
        },
        smp: PatchStrategy::MergeKey("containerPort"),
        elem: Box::new(open()),
    };
    Node::Struct(vec![
        ("name", leaf()),
        ("image", leaf()),
        ("command", atomic_list()),
        ("args", atomic_list()),
        ("workingDir", leaf()),
        ("ports", ports),
        ("envFrom", atomic_list()),
        ("env", list_map(&["name"], "name", env_var())),
        (
            "resources",
            Node::Struct(vec![
                ("limits", map_of_leaf()),
                ("requests", map_of_leaf()),
                ("claims", list_map(&["name"], "name", open())),
            ]),
        ),
        ("resizePolicy", atomic_list()),
        ("restartPolicy", leaf()),
        (
            "volumeMounts",
            list_map(&["mountPath"], "mountPath", open()),
        ),
        (
            "volumeDevices",
            list_map(&["devicePath"], "devicePath", open()),
        ),
        ("livenessProbe", open()),
        ("readinessProbe", open()),
        ("startupProbe", open()),
        ("lifecycle", open()),
        ("terminationMessagePath", leaf()),
        ("terminationMessagePolicy", leaf()),
        ("imagePullPolicy", leaf()),
        ("securityContext", open()),
        ("stdin", leaf()),
        ("stdinOnce", leaf()),
        ("tty", leaf()),
    ])
}

fn pod_spec() -> Node {
    Node::Struct(vec![
        ("volumes", list_map(&["name"], "name", open())),
        ("initContainers", list_map(&["name"], "name", container())),
        ("containers", list_map(&["name"], "name", container())),
        (
            "ephemeralContainers",
            list_map(&["name"], "name", container()),
        ),
        ("restartPolicy", leaf()),
        ("terminationGracePeriodSeconds", leaf()),
        ("activeDeadlineSeconds", leaf()),
        ("dnsPolicy", leaf()),
        ("nodeSelector", map_of_leaf()),
        ("serviceAccountName", leaf()),
        ("serviceAccount", leaf()),
        ("automountServiceAccountToken", leaf()),
        ("nodeName", leaf()),
        ("hostNetwork", leaf()),
        ("hostPID", leaf()),
        ("hostIPC", leaf()),
        ("shareProcessNamespace", leaf()),
        ("securityContext", open()),
        ("imagePullSecrets", list_map(&["name"], "name", open())),
        ("hostname", leaf()),
        ("subdomain", leaf()),
        ("affinity", open()),
        ("schedulerName", leaf()),
        ("tolerations", atomic_list()),
        ("hostAliases", list_map(&["ip"], "ip", open())),
        ("priorityClassName", leaf()),
        ("priority", leaf()),
        (
            "dnsConfig",
            Node::Struct(vec![
                ("nameservers", atomic_list()),
                ("searches", atomic_list()),
                ("options", atomic_list()),
            ]),
        ),
        ("readinessGates", atomic_list()),
        ("runtimeClassName", leaf()),
        ("enableServiceLinks", leaf()),
        ("preemptionPolicy", leaf()),
        ("overhead", map_of_leaf()),
        (
            "topologySpreadConstraints",
            list_map(&["topologyKey", "whenUnsatisfiable"], "topologyKey", open()),
        ),
        ("setHostnameAsFQDN", leaf()),
        ("os", open()),
        ("hostUsers", leaf()),
        ("schedulingGates", list_map(&["name"], "name", open())),
        ("resourceClaims", list_map(&["name"], "name", open())),
    ])
}

fn pod_template() -> Node {
    Node::Struct(vec![("metadata", object_meta()), ("spec", pod_spec())])
}

fn root(extra: Vec<(&'static str, Node)>) -> Node {
    let mut fields = vec![
        ("apiVersion", leaf()),
        ("kind", leaf()),
        ("metadata", object_meta()),
    ];
    fields.extend(extra);
    Node::Struct(fields)
}

fn cronjob() -> Node {
    let job_spec = Node::Struct(vec![
        ("parallelism", leaf()),
        ("completions", leaf()),
        ("activeDeadlineSeconds", leaf()),
        ("backoffLimit", leaf()),
        ("selector", leaf()),
        ("manualSelector", leaf()),
        ("template", pod_template()),
        ("ttlSecondsAfterFinished", leaf()),
        ("podFailurePolicy", open()),
        ("successPolicy", open()),
    ]);
    root(vec![
        (
            "spec",
            Node::Struct(vec![
                ("schedule", leaf()),
                ("timeZone", leaf()),
                ("startingDeadlineSeconds", leaf()),
                ("concurrencyPolicy", leaf()),
                ("suspend", leaf()),
                (
                    "jobTemplate",
                    Node::Struct(vec![("metadata", object_meta()), ("spec", job_spec)]),
                ),
                ("successfulJobsHistoryLimit", leaf()),
                ("failedJobsHistoryLimit", leaf()),
            ]),
        ),
        ("status", open()),
    ])
}

fn deployment() -> Node {
    root(vec![
        (
            "spec",
            Node::Struct(vec![
                ("replicas", leaf()),
                ("selector", leaf()),
                ("template", pod_template()),
                (
                    "strategy",
                    Node::Struct(vec![("type", leaf()), ("rollingUpdate", open())]),
                ),
                ("minReadySeconds", leaf()),
                ("revisionHistoryLimit", leaf()),
                ("paused", leaf()),
                ("progressDeadlineSeconds", leaf()),
            ]),
        ),
        ("status", open()),
    ])
}

fn configmap() -> Node {
    root(vec![
        ("data", map_of_leaf()),
        ("binaryData", map_of_leaf()),
        ("immutable", leaf()),
    ])
}

fn secret() -> Node {
    root(vec![
        ("data", map_of_leaf()),
        ("stringData", map_of_leaf()),
        ("type", leaf()),
        ("immutable", leaf()),
    ])
}

fn namespace() -> Node {
    root(vec![
        ("spec", Node::Struct(vec![("finalizers", atomic_list())])),
        ("status", open()),
    ])
}

/// The schema of a resource type's objects.
pub fn for_resource(res: &ResourceType) -> &'static Node {
    static SCHEMAS: OnceLock<HashMap<&'static str, Node>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        HashMap::from([
            ("CronJob", cronjob()),
            ("Deployment", deployment()),
            ("ConfigMap", configmap()),
            ("Secret", secret()),
            ("Namespace", namespace()),
        ])
    });
    schemas.get(res.kind).unwrap_or(&DEDUCED)
}

/// The key of a list-map item as (field, value) pairs in key order; absent
/// key fields take their default (or are left out when there is none).
pub fn item_key(ssa: &ListType, item: &Value) -> Option<Vec<(String, Value)>> {
    let ListType::Map { keys, defaults } = ssa else {
        return None;
    };
    let obj = item.as_object()?;
    let mut out = Vec::new();
    for k in keys {
        match obj.get(*k) {
            Some(v) if !v.is_null() => out.push(((*k).to_string(), v.clone())),
            _ => {
                if let Some((_, d)) = defaults.iter().find(|(n, _)| n == k) {
                    out.push(((*k).to_string(), Value::String((*d).to_string())));
                }
            }
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::CRONJOBS;

    #[test]
    fn container_ports_keyed_with_default_protocol() {
        let s = for_resource(&CRONJOBS);
        let (spec, _) = s.field("spec");
        let (jt, _) = spec.field("jobTemplate");
        let (js, _) = jt.field("spec");
        let (t, _) = js.field("template");
        let (ps, _) = t.field("spec");
        let (c, declared) = ps.field("containers");
        assert!(declared);
        let (ports, _) = c.elem().field("ports");
        let Node::List { ssa, .. } = ports else {
            panic!("ports is a list")
        };
        let key = item_key(ssa, &serde_json::json!({"containerPort": 80})).unwrap();
        assert_eq!(
            key,
            vec![
                ("containerPort".to_string(), serde_json::json!(80)),
                ("protocol".to_string(), serde_json::json!("TCP"))
            ]
        );
    }
}
