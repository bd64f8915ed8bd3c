#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! Drift of every field the provider sets, not a hand-picked few: after an
//! apply of a configuration that sets everything, every path of every
//! object in the resource's `objects` attribute is changed out of band with
//! `kubectl patch` (to a value the API server accepts), and the plan must
//! show each one under its object with the live and the configured value;
//! apply must restore the objects, and the next plan must be empty. Both
//! modes, on every Terraform the suite runs (1.11.4 and 1.0).
//!
//! The only paths not changed are those no out-of-band edit can change to
//! another value; [`skip_reason`] says why for each, and the test checks
//! that changed + skipped covers every path.

use std::collections::BTreeMap;
use std::path::Path;

use beads_e2e::cluster::Cluster;
use beads_e2e::fields::{self, Objects, Step, leaf, locate};
use beads_e2e::terraform::{self, Workspace};
use serde_json::{Value, json};

/// One Terraform version against the real API server, in one namespace.
struct Case {
    cluster: Cluster,
    ws: Workspace,
    ns: String,
}

impl Case {
    async fn new(terraform: &Path, mode: &str) -> Case {
        let cluster = Cluster::real().unwrap();
        let ns = cluster.namespace("beads-drift").unwrap();
        let ws = Workspace::for_cluster(terraform, &cluster, &ns).unwrap();
        ws.write("main.tf", &config(mode)).unwrap();
        Case { cluster, ws, ns }
    }

    fn get(&self, object: &str) -> Value {
        let (kind, name) = object.split_once('/').unwrap();
        self.cluster
            .get_json(&self.ns, kind, name)
            .unwrap()
            .unwrap_or_else(|| panic!("{object} exists"))
    }
}

/// Every argument that renders a field set: a password Secret, an image
/// pull secret, a project id.
fn config(mode: &str) -> String {
    format!(
        r#"{}
variable "kubeconfig" {{ type = string }}
variable "namespace" {{ type = string }}

resource "beads_autodispatch" "this" {{
  namespace          = var.namespace
  mode               = "{mode}"
  image              = "ghcr.io/example/beads-runner"
  image_tag          = "0.1.0"
  beadboard_url      = "http://beadboard.beads-server.svc.cluster.local"
  image_pull_secrets = ["registry-credentials"]
  dolt {{
    host                 = "dolt.beads-server.svc.cluster.local"
    user                 = "beads"
    database             = "code"
    project_id           = "a8f8bae7-ce65-4145-a5db-a13d11d297da"
    password_secret_name = "dolt-beads"
    password_secret_key  = "password"
  }}
}}
"#,
        terraform::header("  config_path = var.kubeconfig")
    )
}

/// Why field `path` of `object` (`deployment/beads-runner`) cannot be
/// changed out of band, or `None` when it can. `live` is the object.
fn skip_reason(object: &str, path: &str, live: &Value) -> Option<&'static str> {
    let deployment = object.starts_with("deployment/");
    if path == "apiVersion" || path == "kind" {
        // The request URL names the type; a patch cannot make the object
        // another type (another type is another object).
        return Some("the object's type: fixed by the URL a patch is sent to");
    }
    if path == "metadata.name" || path == "metadata.namespace" {
        // A patch addresses the object by these; kube-apiserver refuses a
        // body naming another object ("the name of the object ... does not
        // match the name on the URL").
        return Some("the object's identity: fixed by the URL a patch is sent to");
    }
    if deployment && path.starts_with("spec.selector.") {
        // apps/v1 ValidateDeploymentUpdate: spec.selector "field is immutable".
        return Some("a Deployment's spec.selector is immutable");
    }
    if deployment
        && let [.., Step::Key(labels), Step::Bracket(key)] = fields::steps(path).ok()?.as_slice()
        && labels == "labels"
        && path.starts_with("spec.template.metadata.labels[")
        && live["spec"]["selector"]["matchLabels"].get(key).is_some()
    {
        // ValidateDeploymentSpec: "`selector` does not match template
        // `labels`", and the selector cannot change (above).
        return Some("a pod template label the immutable selector selects");
    }
    if deployment && path == "spec.template.spec.restartPolicy" {
        // ValidateDeploymentSpec accepts only Always ("Unsupported value"):
        // there is no other value to drift to.
        return Some("a Deployment's pods accept only restartPolicy Always");
    }
    if path.ends_with("[*]") {
        // The order of a keyed list's elements: autodispatch.rs
        // `removed_or_reordered_list_items_are_restored_in_order` reorders
        // a list out of band and checks the plan and the repair.
        return Some("a keyed list's order (reordered in autodispatch.rs)");
    }
    if fields::is_merge_key(path) {
        // The merge key names the list element: another value is another
        // element (the owned one then is missing, and the new one is the
        // other manager's), not a change of this field.
        return Some("a keyed list element's merge key");
    }
    None
}

/// Name of the volume a changed `volumeMounts[..].name` points at: added to
/// the pod in the same patch, since a mount must name a volume of the pod.
const HELPER_VOLUME: &str = "drift-helper";

/// A value the API server accepts for field `path`, other than `current`.
fn changed(path: &str, current: &Value) -> Value {
    let field = match fields::steps(path).unwrap().pop() {
        Some(Step::Key(k) | Step::Bracket(k)) => k,
        None => panic!("empty path"),
    };
    match current {
        Value::Bool(b) => json!(!b),
        // Every integer the provider sets accepts one more (limits, deadlines,
        // uid/gid, replicas, probe settings).
        Value::Number(n) => json!(n.as_i64().unwrap() + 1),
        // Names of real capabilities, not any string.
        Value::Array(_) if field == "drop" => {
            if current == &json!(["NET_RAW"]) {
                json!(["NET_ADMIN"])
            } else {
                json!(["NET_RAW"])
            }
        }
        // command, args: any strings.
        Value::Array(items) => items
            .iter()
            .map(|i| json!(format!("{}-drift", leaf(i))))
            .collect(),
        Value::String(s) => json!(changed_text(path, &field, s)),
        other => panic!("{path}: no other value for {other}"),
    }
}

fn changed_text(path: &str, field: &str, s: &str) -> String {
    let pick = |a: &str, b: &str| if s == a { b } else { a }.to_string();
    match field {
        "schedule" => pick("0 * * * *", "30 * * * *"),
        "concurrencyPolicy" => pick("Allow", "Replace"),
        // A Job's pods: Never or OnFailure (a Deployment's is skipped).
        "restartPolicy" => pick("OnFailure", "Never"),
        "type" if path.ends_with("seccompProfile.type") => pick("Unconfined", "RuntimeDefault"),
        "type" if path == "spec.strategy.type" => pick("RollingUpdate", "Recreate"),
        "protocol" => pick("UDP", "TCP"),
        // A port name and a probe's named port: IANA_SVC_NAME (at most 15
        // characters, lowercase letters, digits and single hyphens).
        "name" | "port" if path.contains(".ports[") || path.ends_with("httpGet.port") => {
            pick("metrics-drift", "metrics-other")
        }
        "name" if path.contains(".volumeMounts[") => HELPER_VOLUME.to_string(),
        "image" => pick(
            "ghcr.io/example/beads-runner:0.0.9",
            "ghcr.io/example/beads-runner:0.0.8",
        ),
        // Quantities doubled: requests stay within limits.
        "cpu" | "memory" => {
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            let n: u64 = digits.parse().unwrap();
            format!("{}{}", n * 2, &s[digits.len()..])
        }
        // metadata.json: every string in it changed, still JSON.
        _ if s.trim_start().starts_with('{') => {
            let mut doc: Value = serde_json::from_str(s).unwrap();
            for v in doc.as_object_mut().unwrap().values_mut() {
                if let Value::String(text) = v {
                    *v = json!(format!("{text}-drift"));
                }
            }
            serde_json::to_string_pretty(&doc).unwrap()
        }
        // Label values, env values, secret and ConfigMap names and keys,
        // paths: "-drift" keeps each valid.
        _ => format!("{s}-drift"),
    }
}

/// One out-of-band change: `path` of `object` is now `live`, configured
/// `configured`. `live` is `None` where the change was to the field's zero
/// value and kube-apiserver stores no such field (`omitempty` on a plain
/// Go `bool`, such as a volume mount's `readOnly: false`).
struct Change {
    object: String,
    path: String,
    live: Option<String>,
    configured: String,
    /// The value sent, to tell a zero value from a patch not taken.
    sent: Value,
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The proposed changes of a plan: Terraform 1.0 first prints what the
/// refresh found ("Objects have changed outside of Terraform"), configured
/// → live, which must not count.
fn proposed(plan: &str) -> String {
    let at = plan
        .rfind("Terraform will perform the following actions")
        .unwrap_or(0);
    squash(&plan[at..])
}

/// The part of `plan` (squashed) listing `object`'s fields in `~ objects`.
fn section<'a>(plan: &'a str, object: &str, objects: &Objects) -> Option<&'a str> {
    let header = |o: &str| format!("{} = {{", q(o));
    let start = plan.find(&header(object))?;
    let body = &plan[start..];
    let end = objects
        .keys()
        .filter(|o| *o != object)
        .filter_map(|o| body.find(&header(o)))
        .min()
        .unwrap_or(body.len());
    Some(&body[..end])
}

/// JSON documents (lists, metadata.json) Terraform shows as `jsonencode(...)`.
fn json_doc(s: &str) -> Option<Value> {
    let t = s.trim_start();
    (t.starts_with('{') || t.starts_with('['))
        .then(|| serde_json::from_str(s).ok())
        .flatten()
}

/// One changed leaf inside a JSON value: its member name (none in a list),
/// the value before and after.
type LeafDiff = (Option<String>, Value, Value);

/// The leaves that differ between `a` and `b` (same shape).
fn leaf_diffs(key: Option<&str>, a: &Value, b: &Value, out: &mut Vec<LeafDiff>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => leaf_diffs(Some(k), v, w, out),
                    None => out.push((key.map(Into::into), a.clone(), b.clone())),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (v, w) in x.iter().zip(y) {
                leaf_diffs(None, v, w, out);
            }
        }
        _ if a != b => out.push((key.map(Into::into), a.clone(), b.clone())),
        _ => {}
    }
}

/// Whether the object's plan section shows `change`: `"<path>" = "<live>"
/// -> "<configured>"`, or for a JSON value a `jsonencode(...)` diff with
/// each changed element, under its member name in an object (Terraform 1.0
/// shows a changed list element as a removal and an addition).
fn shows(section: &str, change: &Change) -> bool {
    let key = q(&change.path);
    let Some(live) = &change.live else {
        // Gone from the live object: the plan adds it back.
        return section.contains(&format!("+ {key} = {}", q(&change.configured)));
    };
    match (json_doc(live), json_doc(&change.configured)) {
        (Some(live), Some(configured)) => {
            let Some(start) = section.find(&format!("{key} = jsonencode(")) else {
                return false;
            };
            let block = &section[start..];
            let block = &block[..block.find(" )").unwrap_or(block.len())];
            let mut diffs = Vec::new();
            leaf_diffs(None, &live, &configured, &mut diffs);
            !diffs.is_empty()
                && diffs.iter().all(|(member, from, to)| match member {
                    // Terraform quotes a member name only when it is not an identifier.
                    Some(m) => [m.clone(), q(m)]
                        .iter()
                        .any(|m| block.contains(&format!("{m} = {from} -> {to}"))),
                    None => {
                        block.contains(&format!("{from} -> {to}"))
                            || (block.contains(&format!("- {from}"))
                                && block.contains(&format!("+ {to}")))
                    }
                })
        }
        _ => section.contains(&format!("{key} = {} -> {}", q(live), q(&change.configured))),
    }
}

/// What an apply must restore: the object's `spec` (or `data`) and labels.
fn restorable(object: &Value) -> Value {
    json!({
        "spec": object["spec"],
        "data": object["data"],
        "labels": object["metadata"]["labels"],
    })
}

/// Where `a` and `b` differ, by JSON pointer (a list whose length differs
/// is one difference).
fn differences(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let null = Value::Null;
                let (v, w) = (x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null));
                differences(
                    v,
                    w,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, format!("{at}/{i}"), out);
            }
        }
        _ if a != b => out.push(format!("{at}: was {a}, now {b}")),
        _ => {}
    }
}

/// Changes every path of `mode`'s objects out of band and repairs them with
/// `terraform` (run against the real kube-apiserver, in a fresh namespace). Returns what the provider
/// got wrong: changes the plan does not show, and what the repair left
/// different; panics on anything else (a refused patch, a failed command).
async fn every_field_drifts_shows_and_is_repaired(tf: &Path, mode: &str) -> Vec<String> {
    eprintln!("--- {mode} mode with {}", tf.display());
    let c = Case::new(tf, mode).await;
    c.ws.apply(&[]).unwrap();
    let objects = fields::objects_in_state(&c.ws.state_json().unwrap()).unwrap();
    let expected: &[&str] = match mode {
        "cronjob" => &[
            "configmap/beads-metadata",
            "cronjob/beads-dispatcher",
            "cronjob/beads-reaper",
        ],
        _ => &["configmap/beads-metadata", "deployment/beads-runner"],
    };
    assert_eq!(
        objects.keys().collect::<Vec<_>>(),
        expected.iter().collect::<Vec<_>>()
    );

    let mut changes: Vec<Change> = Vec::new();
    let mut skipped: Vec<(String, String, &str)> = Vec::new();
    let mut before = BTreeMap::new();
    // Where the helper volume went, per object: removed from the comparison
    // after the repair (another manager's volume, which apply keeps).
    let mut helper_volumes = BTreeMap::new();
    for (object, paths) in &objects {
        let live = c.get(object);
        before.insert(object.clone(), restorable(&live));
        let mut ops = Vec::new();
        for (path, value) in paths {
            if let Some(reason) = skip_reason(object, path, &live) {
                skipped.push((object.clone(), path.clone(), reason));
                continue;
            }
            let (pointer, current) =
                locate(&live, path).unwrap_or_else(|e| panic!("{object}: {e:#}"));
            assert_eq!(&leaf(current), value, "{object} {path} ({pointer})");
            let new = changed(path, current);
            assert_ne!(&new, current, "{object} {path}");
            if path.contains(".volumeMounts[") && path.ends_with("].name") {
                let pod = &pointer[..pointer.find("/containers/").unwrap()];
                ops.push(json!({"op": "add", "path": format!("{pod}/volumes/-"),
                    "value": {"name": HELPER_VOLUME, "emptyDir": {}}}));
                helper_volumes.insert(object.clone(), format!("{pod}/volumes"));
            }
            ops.push(json!({"op": "replace", "path": pointer, "value": new}));
            changes.push(Change {
                object: object.clone(),
                path: path.clone(),
                live: Some(leaf(&new)),
                configured: value.clone(),
                sent: new,
            });
        }
        c.cluster
            .kubectl_ok(&[
                "patch",
                object,
                "-n",
                &c.ns,
                "--type=json",
                "-p",
                &Value::Array(ops).to_string(),
            ])
            .unwrap();
    }
    let total: usize = objects.values().map(BTreeMap::len).sum();
    eprintln!(
        "{mode}: {} paths in objects: {} changed out of band, {} skipped",
        total,
        changes.len(),
        skipped.len()
    );
    for (object, path, reason) in &skipped {
        eprintln!("  skipped {object} {path}: {reason}");
    }
    assert_eq!(
        changes.len() + skipped.len(),
        total,
        "every path is changed or skipped"
    );

    // The patches took: each field now holds the changed value.
    let mut not_taken = Vec::new();
    for ch in &mut changes {
        let live = c.get(&ch.object);
        let zero = matches!(&ch.sent, Value::Bool(false)) || ch.sent == json!(0);
        match locate(&live, &ch.path) {
            Ok((_, v)) if Some(leaf(v)) == ch.live => {}
            Ok((_, v)) => not_taken.push(format!(
                "{} {}: {} not {:?}",
                ch.object,
                ch.path,
                leaf(v),
                ch.live
            )),
            Err(_) if zero => ch.live = None,
            Err(e) => not_taken.push(format!("{}: {e:#}", ch.object)),
        }
    }
    assert!(
        not_taken.is_empty(),
        "patches not applied:\n{}",
        not_taken.join("\n")
    );

    let (pending, plan) = c.ws.plan(&[]).unwrap();
    assert!(pending && plan.contains("1 to change"), "{plan}");
    assert!(!plan.contains("must be replaced"), "{plan}");
    // The user's own attributes keep their configured meaning.
    assert!(
        !plan.contains("~ image_tag") && !plan.contains("~ enabled") && !plan.contains("~ mode"),
        "{plan}"
    );
    let actions = proposed(&plan);
    let mut unseen = Vec::new();
    for ch in &changes {
        let seen = section(&actions, &ch.object, &objects).is_some_and(|s| shows(s, ch));
        if !seen {
            unseen.push(format!(
                "{} {}: {:?} -> {:?}",
                ch.object, ch.path, ch.live, ch.configured
            ));
        }
    }
    let mut problems = Vec::new();
    if !unseen.is_empty() {
        problems.push(format!(
            "{} of {} changes do not show in the plan:\n{}\n\n{plan}",
            unseen.len(),
            changes.len(),
            unseen.join("\n")
        ));
    }

    c.ws.apply(&[]).unwrap();
    let mut not_restored = Vec::new();
    for (object, was) in &before {
        let mut now = c.get(object);
        if let Some(volumes) = helper_volumes.get(object)
            && let Some(Value::Array(list)) = now.pointer_mut(volumes)
        {
            list.retain(|v| v["name"] != HELPER_VOLUME);
        }
        differences(was, &restorable(&now), object.clone(), &mut not_restored);
    }
    let after = fields::objects_in_state(&c.ws.state_json().unwrap()).unwrap();
    let (pending, plan) = c.ws.plan(&[]).unwrap();
    if !not_restored.is_empty() {
        problems.push(format!(
            "apply did not restore:\n{}",
            not_restored.join("\n")
        ));
    }
    if after != objects {
        problems.push("the state's objects after the repair differ from before the drift".into());
    }
    if pending {
        problems.push(format!("the plan after the repair is not empty:\n{plan}"));
    }
    problems
}

/// Runs `mode` on every Terraform, then fails with every problem found.
async fn on_every_terraform(mode: &str) {
    let mut problems = Vec::new();
    for tf in terraform::binaries() {
        for p in every_field_drifts_shows_and_is_repaired(&tf, mode).await {
            problems.push(format!("[{mode} mode, {}] {p}", terraform::version_of(&tf)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_the_config_map_and_cron_jobs_drifts_shows_and_is_repaired() {
    on_every_terraform("cronjob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_the_config_map_and_deployment_drifts_shows_and_is_repaired() {
    on_every_terraform("deployment").await;
}

/// The plan checks find a change only in the proposed actions, under its
/// own object, with the live and the configured value in that order.
#[test]
fn the_plan_checks_are_not_vacuous() {
    let objects: Objects = ["configmap/beads-metadata", "cronjob/beads-reaper"]
        .into_iter()
        .map(|o| (o.to_string(), BTreeMap::new()))
        .collect();
    // Terraform 1.0: the refresh's view (configured -> live) comes first.
    let plan = r#"
Note: Objects have changed outside of Terraform
      ~ objects             = {
          ~ "cronjob/beads-reaper"     = {
              ~ "spec.schedule"   = "*/10 * * * *" -> "0 * * * *"
              ~ "a.args"          = jsonencode(
                  ~ [
                      - "reap",
                      + "reap-drift",
                    ]
                )
            }
        }
Terraform will perform the following actions:
      ~ objects             = {
          ~ "configmap/beads-metadata" = {
              ~ "data[metadata.json]" = jsonencode(
                  ~ {
                      ~ backend          = "dolt-drift" -> "dolt"
                        # (1 unchanged attribute hidden)
                    }
                )
              ~ "spec.suspend"   = "true" -> "false"
            }
          ~ "cronjob/beads-reaper"     = {
              ~ "spec.schedule"   = "0 * * * *" -> "*/10 * * * *"
              ~ "a.args"          = jsonencode(
                  ~ [
                      - "reap-drift",
                      + "reap",
                    ]
                )
            }
        }
"#;
    let actions = proposed(plan);
    let check = |object: &str, path: &str, live: &str, configured: &str| {
        let ch = Change {
            object: object.into(),
            path: path.into(),
            live: Some(live.into()),
            configured: configured.into(),
            sent: Value::Null,
        };
        section(&actions, object, &objects).is_some_and(|s| shows(s, &ch))
    };
    // A field the server dropped must show as added back, not as changed.
    let gone = |object: &str, path: &str, configured: &str| Change {
        object: object.into(),
        path: path.into(),
        live: None,
        configured: configured.into(),
        sent: json!(false),
    };
    let r_section = section(&actions, "cronjob/beads-reaper", &objects).unwrap();
    assert!(!shows(
        r_section,
        &gone("cronjob/beads-reaper", "spec.schedule", "*/10 * * * *")
    ));
    let r = "cronjob/beads-reaper";
    let cm = "configmap/beads-metadata";
    assert!(check(r, "spec.schedule", "0 * * * *", "*/10 * * * *"));
    assert!(!check(r, "spec.schedule", "*/10 * * * *", "0 * * * *"));
    assert!(check(r, "a.args", r#"["reap-drift"]"#, r#"["reap"]"#));
    assert!(!check(r, "a.args", r#"["reap"]"#, r#"["reap-drift"]"#));
    assert!(check(cm, "spec.suspend", "true", "false"));
    assert!(!check(r, "spec.suspend", "true", "false"));
    assert!(check(
        cm,
        "data[metadata.json]",
        r#"{"backend": "dolt-drift", "database": "dolt"}"#,
        r#"{"backend": "dolt", "database": "dolt"}"#
    ));
    assert!(!check(
        cm,
        "data[metadata.json]",
        r#"{"backend": "dolt-drift", "database": "dolt-drift"}"#,
        r#"{"backend": "dolt", "database": "dolt"}"#
    ));
}
