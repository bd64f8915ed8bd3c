//! What the cluster should hold for one `beads_autodispatch`: the
//! metadata.json ConfigMap and, by mode, two CronJobs or one Deployment.
//! Plain functions from a [`Spec`] to API objects; no I/O.

use beads_contract::{Metadata, defaults, env, labels::k8s as label};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

/// The container's name in every pod template.
pub const CONTAINER: &str = "runner";
/// Port of `/healthz` and `/metrics` in deployment mode.
pub const METRICS_PORT: u16 = 9090;

/// How the runner is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Two CronJobs, one pod per tick.
    CronJob,
    /// One long-lived Deployment running `beads-runner run`.
    Deployment,
}

impl Mode {
    /// The mode the `mode` attribute names (the one grammar of it: schema
    /// validation and the typed state both use this).
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "cronjob" => Ok(Mode::CronJob),
            "deployment" => Ok(Mode::Deployment),
            _ => Err(format!(
                "{s:?} is not a mode; use \"cronjob\" or \"deployment\""
            )),
        }
    }

    /// The other mode.
    pub fn other(self) -> Mode {
        match self {
            Mode::CronJob => Mode::Deployment,
            Mode::Deployment => Mode::CronJob,
        }
    }

    /// The mode as the `mode` attribute spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::CronJob => "cronjob",
            Mode::Deployment => "deployment",
        }
    }
}

/// The Dolt connection, as the resource's `dolt` block holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dolt {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub project_id: Option<String>,
    pub tls: bool,
    /// `(secret name, key)` holding the password.
    pub password_secret: Option<(String, String)>,
}

/// Everything the objects are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub namespace: String,
    pub name: String,
    pub mode: Mode,
    pub enabled: bool,
    pub image: String,
    /// A tag (`0.1.0`) or a digest (`sha256:...`).
    pub image_tag: String,
    pub beadboard_url: String,
    pub assignee: String,
    pub dispatch_schedule: String,
    pub reap_schedule: String,
    pub stale_after: String,
    pub claim_timeout: String,
    pub max_in_flight: u32,
    pub run_interval: String,
    pub image_pull_secrets: Vec<String>,
    pub dolt: Dolt,
    /// The provider's version, for the `app.kubernetes.io/version` label.
    pub provider_version: String,
}

/// Object names, derived from the resource name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub config_map: String,
    pub dispatcher: String,
    pub reaper: String,
    pub deployment: String,
}

impl Names {
    /// The names rendered for resource name `name`.
    pub fn new(name: &str) -> Self {
        Names {
            config_map: format!("{name}-metadata"),
            dispatcher: format!("{name}-dispatcher"),
            reaper: format!("{name}-reaper"),
            deployment: format!("{name}-runner"),
        }
    }
}

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
pub fn objects(spec: &Spec) -> Vec<Object> {
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

/// `image:tag`, or `image@sha256:...` for a digest.
pub fn image_ref(image: &str, tag: &str) -> String {
    if tag.contains(':') {
        format!("{image}@{tag}")
    } else {
        format!("{image}:{tag}")
    }
}

/// Splits a container image back into `(image, tag or digest)`.
pub fn split_image_ref(reference: &str) -> (String, String) {
    if let Some((image, digest)) = reference.split_once('@') {
        return (image.to_string(), digest.to_string());
    }
    // A colon after the last slash is a tag; one before it is a registry port.
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => {
            (reference[..i].to_string(), reference[i + 1..].to_string())
        }
        _ => (reference.to_string(), "latest".to_string()),
    }
}

/// The `metadata.json` the runner reads: connection facts only, never a secret.
pub fn metadata_json(spec: &Spec) -> String {
    dolt_metadata_json(&spec.dolt)
}

/// The `metadata.json` of one Dolt connection.
pub fn dolt_metadata_json(d: &Dolt) -> String {
    Metadata::for_server(
        &d.host,
        d.port,
        &d.user,
        &d.database,
        d.project_id.as_deref(),
        Some(d.tls),
    )
    .to_json()
}

fn labels(spec: &Spec, component: &str) -> Value {
    json!({
        label::NAME: label::APP,
        label::INSTANCE: spec.name,
        label::COMPONENT: component,
        label::PART_OF: label::APP,
        label::MANAGED_BY: label::MANAGER,
        label::VERSION: spec.provider_version,
    })
}

fn selector_labels(spec: &Spec, component: &str) -> Value {
    json!({ label::NAME: label::APP, label::INSTANCE: spec.name, label::COMPONENT: component })
}

/// The ConfigMap holding `metadata.json`.
pub fn config_map(spec: &Spec) -> ConfigMap {
    typed(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": Names::new(&spec.name).config_map,
            "namespace": spec.namespace,
            "labels": labels(spec, "config"),
        },
        "data": { defaults::METADATA_FILE: metadata_json(spec) },
    }))
}

fn env_vars(spec: &Spec) -> Vec<Value> {
    let mut vars = vec![
        json!({"name": env::BEADBOARD_URL, "value": spec.beadboard_url}),
        json!({"name": env::AGENT_ASSIGNEE, "value": spec.assignee}),
        json!({"name": env::REAP_STALE_AFTER, "value": spec.stale_after}),
        json!({"name": env::CLAIM_TIMEOUT, "value": spec.claim_timeout}),
        json!({"name": env::MAX_IN_FLIGHT, "value": spec.max_in_flight.to_string()}),
        json!({"name": env::LOG_FORMAT, "value": "json"}),
    ];
    if spec.mode == Mode::Deployment {
        vars.push(json!({"name": env::RUN_INTERVAL, "value": spec.run_interval}));
        vars.push(json!({"name": env::LISTEN, "value": format!("0.0.0.0:{METRICS_PORT}")}));
    }
    if let Some((secret, key)) = &spec.dolt.password_secret {
        vars.push(json!({
            "name": env::DOLT_PASSWORD,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": key}},
        }));
    }
    vars
}

/// The pod spec shared by every mode: one hardened container running `subcommand`.
fn pod_spec(spec: &Spec, subcommand: &str, restart_policy: &str) -> Value {
    let mut container = json!({
        "name": CONTAINER,
        "image": image_ref(&spec.image, &spec.image_tag),
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
            "configMap": {"name": Names::new(&spec.name).config_map},
        }],
    });
    if !spec.image_pull_secrets.is_empty() {
        pod["imagePullSecrets"] = spec
            .image_pull_secrets
            .iter()
            .map(|s| json!({"name": s}))
            .collect();
    }
    pod
}

/// A CronJob running one tick per schedule.
fn cron_job(spec: &Spec, name: &str, component: &str, schedule: &str, subcommand: &str) -> CronJob {
    typed(json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": labels(spec, component)},
        "spec": {
            "schedule": schedule,
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
pub fn dispatcher(spec: &Spec) -> CronJob {
    cron_job(
        spec,
        &Names::new(&spec.name).dispatcher,
        "dispatcher",
        &spec.dispatch_schedule,
        defaults::subcommand::DISPATCH,
    )
}

/// The reaper CronJob.
pub fn reaper(spec: &Spec) -> CronJob {
    cron_job(
        spec,
        &Names::new(&spec.name).reaper,
        "reaper",
        &spec.reap_schedule,
        defaults::subcommand::REAP,
    )
}

/// The Deployment of `mode = "deployment"`: one replica, or none when disabled.
pub fn deployment(spec: &Spec) -> Deployment {
    typed(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": Names::new(&spec.name).deployment,
            "namespace": spec.namespace,
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
pub fn env_map(spec: &Spec) -> std::collections::BTreeMap<String, String> {
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

    pub fn spec() -> Spec {
        Spec {
            namespace: "beads-server".into(),
            name: "beads".into(),
            mode: Mode::CronJob,
            enabled: true,
            image: "ghcr.io/example/beads-runner".into(),
            image_tag: "0.1.0".into(),
            beadboard_url: "http://beadboard.beads-server.svc.cluster.local".into(),
            assignee: "agent".into(),
            dispatch_schedule: "*/2 * * * *".into(),
            reap_schedule: "*/10 * * * *".into(),
            stale_after: "30m".into(),
            claim_timeout: "5m".into(),
            max_in_flight: 1,
            run_interval: "30s".into(),
            image_pull_secrets: vec!["registry-credentials".into()],
            dolt: Dolt {
                host: "dolt.beads-server.svc.cluster.local".into(),
                port: 3306,
                user: "beads".into(),
                database: "code".into(),
                project_id: Some("a8f8bae7-ce65-4145-a5db-a13d11d297da".into()),
                tls: false,
                password_secret: Some(("dolt-beads".into(), "password".into())),
            },
            provider_version: "0.1.0".into(),
        }
    }

    #[test]
    fn image_refs_round_trip() {
        for (image, tag) in [
            ("ghcr.io/example/beads-runner", "0.1.0"),
            ("registry:5000/x/y", "v2"),
            (
                "r/x",
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ] {
            assert_eq!(
                split_image_ref(&image_ref(image, tag)),
                (image.into(), tag.into())
            );
        }
        assert_eq!(
            split_image_ref("registry:5000/x"),
            ("registry:5000/x".into(), "latest".into())
        );
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
        assert_eq!(envs["BEADBOARD_URL"], s.beadboard_url);
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
        let text = &cm.data.unwrap()["metadata.json"];
        let meta = Metadata::parse(text).unwrap();
        assert_eq!(meta.database_name(), "code");
        assert_eq!(meta.port(), 3306);
        assert!(!text.contains("password"));
    }
}
