//! What the cluster should hold for one `beads_autodispatch`: the
//! metadata.json ConfigMap and, by mode, two CronJobs or one Deployment.
//! Plain functions from the resource's typed state ([`Autodispatch`], whose
//! values are valid by construction) to API objects; no I/O.
//!
//! A value the state lacks (see [`Autodispatch::missing`]) renders empty:
//! such a rendering only serves for the shape of the objects, i.e. which
//! fields the provider sets, and create and update refuse such a state.

use beads_contract::{Metadata, defaults, env, format_duration, labels::k8s as label};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

use crate::autodispatch::model::{Autodispatch, Dolt};
use crate::names::Names;
use crate::types::{CronSchedule, Mode};

/// The container's name in every pod template.
pub const CONTAINER: &str = "runner";
/// Port of `/healthz` and `/metrics` in deployment mode.
pub const METRICS_PORT: u16 = 9090;

// The names themselves are made in `crate::names`, below the value types
// and validation that use them too; which objects they name is said here,
// beside `Kind` and `ObjectId`.
impl Names {
    /// Every object a resource of this name may own, in apply order.
    pub fn all(&self) -> [ObjectId; 4] {
        [
            ObjectId::new(Kind::ConfigMap, &self.config_map),
            ObjectId::new(Kind::CronJob, &self.dispatcher),
            ObjectId::new(Kind::CronJob, &self.reaper),
            ObjectId::new(Kind::Deployment, &self.deployment),
        ]
    }

    /// The objects of `mode`, in apply order.
    pub fn of_mode(&self, mode: Mode) -> Vec<ObjectId> {
        let [cm, dispatcher, reaper, deployment] = self.all();
        match mode {
            Mode::CronJob => vec![cm, dispatcher, reaper],
            Mode::Deployment => vec![cm, deployment],
        }
    }
}

/// The kinds of object this resource manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ConfigMap,
    CronJob,
    Deployment,
}

impl Kind {
    /// The kind as the API names it (`CronJob`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::CronJob => "CronJob",
            Kind::Deployment => "Deployment",
        }
    }
}

/// One object of the resource: its kind and name (the namespace is the
/// resource's). Shown as `cronjob/beads-dispatcher`, as kubectl names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    pub kind: Kind,
    pub name: String,
}

impl ObjectId {
    /// The object `kind` named `name`.
    pub fn new(kind: Kind, name: &str) -> ObjectId {
        ObjectId {
            kind,
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str().to_lowercase(), self.name)
    }
}

/// A rendered object, typed by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    ConfigMap(Box<ConfigMap>),
    CronJob(Box<CronJob>),
    Deployment(Box<Deployment>),
}

impl Object {
    /// Which object this is.
    pub fn id(&self) -> ObjectId {
        let (kind, meta) = match self {
            Object::ConfigMap(o) => (Kind::ConfigMap, &o.metadata),
            Object::CronJob(o) => (Kind::CronJob, &o.metadata),
            Object::Deployment(o) => (Kind::Deployment, &o.metadata),
        };
        ObjectId::new(kind, meta.name.as_deref().unwrap_or_default())
    }

    /// The object as JSON, as it is sent.
    pub fn to_json(&self) -> Value {
        let json = match self {
            Object::ConfigMap(o) => serde_json::to_value(o),
            Object::CronJob(o) => serde_json::to_value(o),
            Object::Deployment(o) => serde_json::to_value(o),
        };
        // Serializing k8s-openapi types into a Value cannot fail.
        json.unwrap_or_default()
    }

    /// Marks the object as `instance`'s (the ownership annotation).
    pub fn with_instance(mut self, instance: &str) -> Object {
        let meta = match &mut self {
            Object::ConfigMap(o) => &mut o.metadata,
            Object::CronJob(o) => &mut o.metadata,
            Object::Deployment(o) => &mut o.metadata,
        };
        meta.annotations
            .get_or_insert_default()
            .insert(INSTANCE_ANNOTATION.to_string(), instance.to_string());
        self
    }
}

/// The annotation holding the id of the `beads_autodispatch` instance that
/// created an object (kept in the resource's state as `instance_id`).
/// Provider-only: the runner never reads it.
pub const INSTANCE_ANNOTATION: &str = "beads-autodispatch/instance-id";

/// The objects of `spec`'s mode, in apply order (the ConfigMap the pods
/// mount first), without the ownership annotation.
pub fn objects(spec: &Autodispatch) -> Vec<Object> {
    match spec.mode {
        Mode::CronJob => vec![
            Object::ConfigMap(Box::new(config_map(spec))),
            Object::CronJob(Box::new(dispatcher(spec))),
            Object::CronJob(Box::new(reaper(spec))),
        ],
        Mode::Deployment => vec![
            Object::ConfigMap(Box::new(config_map(spec))),
            Object::Deployment(Box::new(deployment(spec))),
        ],
    }
}

/// The `metadata.json` the runner reads: connection facts only, never a
/// secret. `None` when the state lacks the host or database.
pub fn metadata_json(d: &Dolt) -> Option<String> {
    Some(
        Metadata::for_server(
            d.host.as_ref()?.as_str(),
            d.port.port(),
            d.user.as_str(),
            d.database.as_ref()?.as_str(),
            d.project_id.as_deref(),
            Some(d.tls),
        )
        .to_json(),
    )
}

/// An attribute's text, or empty when the state lacks it.
fn text<T: std::fmt::Display>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The provider's version, for the `app.kubernetes.io/version` label.
const PROVIDER_VERSION: &str = env!("CARGO_PKG_VERSION");

fn labels(spec: &Autodispatch, component: &str) -> Value {
    json!({
        label::NAME: label::APP,
        label::INSTANCE: spec.name.as_str(),
        label::COMPONENT: component,
        label::PART_OF: label::APP,
        label::MANAGED_BY: label::MANAGER,
        label::VERSION: PROVIDER_VERSION,
    })
}

fn selector_labels(spec: &Autodispatch, component: &str) -> Value {
    json!({ label::NAME: label::APP, label::INSTANCE: spec.name.as_str(), label::COMPONENT: component })
}

/// The ConfigMap holding `metadata.json`.
pub fn config_map(spec: &Autodispatch) -> ConfigMap {
    typed(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": spec.name.names().config_map,
            "namespace": spec.namespace.as_str(),
            "labels": labels(spec, "config"),
        },
        "data": { defaults::METADATA_FILE: metadata_json(&spec.dolt).unwrap_or_default() },
    }))
}

fn env_vars(spec: &Autodispatch) -> Vec<Value> {
    let mut vars = vec![
        json!({"name": env::BEADBOARD_URL, "value": text(&spec.beadboard_url)}),
        json!({"name": env::AGENT_ASSIGNEE, "value": spec.assignee.as_str()}),
        json!({"name": env::REAP_STALE_AFTER, "value": spec.stale_after.as_str()}),
        json!({"name": env::CLAIM_TIMEOUT, "value": spec.claim_timeout.as_str()}),
        json!({"name": env::MAX_IN_FLIGHT, "value": spec.max_in_flight.to_string()}),
        json!({"name": env::LOG_FORMAT, "value": "json"}),
    ];
    if spec.mode == Mode::Deployment {
        vars.push(
            json!({"name": env::RUN_INTERVAL, "value": format_duration(defaults::RUN_INTERVAL)}),
        );
        vars.push(json!({"name": env::LISTEN, "value": format!("0.0.0.0:{METRICS_PORT}")}));
    }
    if let Some((secret, key)) = spec.dolt.password_secret() {
        vars.push(json!({
            "name": env::DOLT_PASSWORD,
            "valueFrom": {"secretKeyRef": {"name": secret.as_str(), "key": key.as_str()}},
        }));
    }
    vars
}

/// The pod spec shared by every mode: one hardened container running `subcommand`.
fn pod_spec(spec: &Autodispatch, subcommand: &str, restart_policy: &str) -> Value {
    let mut container = json!({
        "name": CONTAINER,
        "image": spec.image.as_ref().map(|i| spec.image_tag.reference(i)).unwrap_or_default(),
        "command": [defaults::RUNNER_IMAGE_PATH],
        "args": [subcommand],
        "env": env_vars(spec),
        "volumeMounts": [{
            "name": "beads-metadata",
            "mountPath": defaults::METADATA_DIR,
            "readOnly": true,
        }],
        // A static binary idles at a few MiB; the limits leave headroom for a busy tick.
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "200m", "memory": "64Mi"},
        },
        "securityContext": {
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
        },
    });
    if subcommand == defaults::subcommand::RUN {
        container["ports"] =
            json!([{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]);
        container["livenessProbe"] = json!({
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 30,
            "failureThreshold": 4,
        });
    }
    let mut pod = json!({
        "restartPolicy": restart_policy,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{
            "name": "beads-metadata",
            "configMap": {"name": spec.name.names().config_map},
        }],
    });
    if !spec.image_pull_secrets.is_empty() {
        pod["imagePullSecrets"] = spec
            .image_pull_secrets
            .names()
            .map(|s| json!({"name": s}))
            .collect();
    }
    pod
}

/// A CronJob running one tick per schedule.
fn cron_job(
    spec: &Autodispatch,
    name: &str,
    component: &str,
    schedule: &CronSchedule,
    subcommand: &str,
) -> CronJob {
    typed(json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": spec.namespace.as_str(), "labels": labels(spec, component)},
        "spec": {
            "schedule": schedule.as_str(),
            // Sent on every apply, so an out-of-band suspend shows as drift.
            "suspend": !spec.enabled,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "startingDeadlineSeconds": 60,
            "jobTemplate": {
                "metadata": {"labels": labels(spec, component)},
                "spec": {
                    "backoffLimit": 0,
                    // The runner's own tick deadline is shorter; this stops a hung pod.
                    "activeDeadlineSeconds": defaults::JOB_ACTIVE_DEADLINE.as_secs(),
                    "ttlSecondsAfterFinished": 600,
                    "template": {
                        "metadata": {"labels": labels(spec, component)},
                        "spec": pod_spec(spec, subcommand, "Never"),
                    },
                },
            },
        },
    }))
}

/// The dispatcher CronJob.
pub fn dispatcher(spec: &Autodispatch) -> CronJob {
    cron_job(
        spec,
        &spec.name.names().dispatcher,
        "dispatcher",
        &spec.dispatch_schedule,
        defaults::subcommand::DISPATCH,
    )
}

/// The reaper CronJob.
pub fn reaper(spec: &Autodispatch) -> CronJob {
    cron_job(
        spec,
        &spec.name.names().reaper,
        "reaper",
        &spec.reap_schedule,
        defaults::subcommand::REAP,
    )
}

/// The Deployment of `mode = "deployment"`: one replica, or none when disabled.
pub fn deployment(spec: &Autodispatch) -> Deployment {
    typed(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": spec.name.names().deployment,
            "namespace": spec.namespace.as_str(),
            "labels": labels(spec, "runner"),
        },
        "spec": {
            "replicas": if spec.enabled { 1 } else { 0 },
            // Never two runners at once, even during a rollout.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(spec, "runner")},
            "template": {
                "metadata": {"labels": labels(spec, "runner")},
                "spec": pod_spec(spec, defaults::subcommand::RUN, "Always"),
            },
        },
    }))
}

/// The environment of the rendered runner container, as name → value
/// (secret references shown as `secret:<name>/<key>`).
#[cfg(test)]
pub fn env_map(spec: &Autodispatch) -> std::collections::BTreeMap<String, String> {
    env_vars(spec)
        .into_iter()
        .filter_map(|v| {
            let name = v["name"].as_str()?.to_string();
            let value = match v.get("value") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    let r = &v["valueFrom"]["secretKeyRef"];
                    format!("secret:{}/{}", r["name"].as_str()?, r["key"].as_str()?)
                }
            };
            Some((name, value))
        })
        .collect()
}

/// Builds a typed object from JSON written in this module. The JSON is a
/// constant shape filled with checked values, so a failure is a bug here.
fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
    match serde_json::from_value(value) {
        Ok(v) => v,
        Err(e) => panic!("render.rs builds a malformed object: {e}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fully configured state, as Terraform would plan it.
    pub fn spec() -> Autodispatch {
        crate::autodispatch::tests::planned(
            r#"{"namespace":"beads-server","image":"ghcr.io/example/beads-runner","image_tag":"0.1.0",
            "beadboard_url":"http://beadboard.beads-server.svc.cluster.local",
            "image_pull_secrets":["registry-credentials"],
            "dolt":{"host":"dolt.beads-server.svc.cluster.local","user":"beads","database":"code",
            "project_id":"a8f8bae7-ce65-4145-a5db-a13d11d297da",
            "password_secret_name":"dolt-beads","password_secret_key":"password"}}"#,
        )
    }

    #[test]
    fn cron_jobs_carry_the_contract() {
        let s = spec();
        let cj = serde_json::to_value(dispatcher(&s)).unwrap();
        let spec_json = &cj["spec"];
        assert_eq!(cj["metadata"]["name"], "beads-dispatcher");
        assert_eq!(spec_json["suspend"], false);
        assert_eq!(spec_json["concurrencyPolicy"], "Forbid");
        assert_eq!(spec_json["startingDeadlineSeconds"], 60);
        let job = &spec_json["jobTemplate"]["spec"];
        assert_eq!(job["backoffLimit"], 0);
        assert_eq!(job["activeDeadlineSeconds"], 120);
        assert_eq!(job["ttlSecondsAfterFinished"], 600);
        let pod = &job["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "ghcr.io/example/beads-runner:0.1.0");
        assert_eq!(c["args"], json!(["dispatch"]));
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/etc/beads-metadata");
        assert_eq!(
            pod["imagePullSecrets"],
            json!([{"name": "registry-credentials"}])
        );
        let envs = env_map(&s);
        assert_eq!(envs["BEADS_DOLT_PASSWORD"], "secret:dolt-beads/password");
        assert_eq!(envs["BEADBOARD_URL"], text(&s.beadboard_url));
        let reaper = serde_json::to_value(reaper(&s)).unwrap();
        assert_eq!(
            reaper["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["reap"])
        );
    }

    #[test]
    fn disabled_suspends_and_scales_to_zero() {
        let mut s = spec();
        s.enabled = false;
        assert_eq!(dispatcher(&s).spec.unwrap().suspend, Some(true));
        assert_eq!(reaper(&s).spec.unwrap().suspend, Some(true));
        s.mode = Mode::Deployment;
        let d = deployment(&s).spec.unwrap();
        assert_eq!(d.replicas, Some(0));
        assert_eq!(d.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    }

    #[test]
    fn config_map_holds_no_secret() {
        let s = spec();
        let cm = config_map(&s);
        assert_eq!(s.dolt.port.port(), 3306);
        let text = &cm.data.unwrap()["metadata.json"];
        let meta = Metadata::parse(text).unwrap();
        assert_eq!(meta.database_name(), "code");
        assert_eq!(meta.port(), 3306);
        assert!(!text.contains("password"));
    }
}
