//! From the live objects back to the resource's attributes, reading only the
//! fields the resource owns. Whatever admission webhooks add (dnsConfig,
//! labels, defaulted fields) is never looked at, so it never shows as a diff.

use beads_contract::{Metadata, env};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};

use tfplugin::value::Value;

use super::render::{CONTAINER, INSTANCE_ANNOTATION, Kind, ObjectId};
use crate::names::Names;
use crate::types::{ImageTag, Mode};

/// The objects of one `beads_autodispatch` as the cluster holds them.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub config_map: Option<ConfigMap>,
    pub dispatcher: Option<CronJob>,
    pub reaper: Option<CronJob>,
    pub deployment: Option<Deployment>,
}

impl Live {
    /// Object `id` as JSON, if it exists (`names` are the resource's).
    pub fn json(&self, names: &Names, id: &ObjectId) -> Option<serde_json::Value> {
        let json = match id.kind {
            Kind::ConfigMap if id.name == names.config_map => {
                serde_json::to_value(self.config_map.as_ref()?)
            }
            Kind::CronJob if id.name == names.dispatcher => {
                serde_json::to_value(self.dispatcher.as_ref()?)
            }
            Kind::CronJob if id.name == names.reaper => serde_json::to_value(self.reaper.as_ref()?),
            Kind::Deployment if id.name == names.deployment => {
                serde_json::to_value(self.deployment.as_ref()?)
            }
            _ => return None,
        };
        json.ok()
    }
}

/// The instance id an object's ownership annotation names, if any.
pub fn instance_of(object: &serde_json::Value) -> Option<&str> {
    object["metadata"]["annotations"][INSTANCE_ANNOTATION].as_str()
}

fn cron_pod(cj: &CronJob) -> Option<&PodSpec> {
    cj.spec
        .as_ref()?
        .job_template
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()
}

fn cron_container(cj: &CronJob) -> Option<&Container> {
    cron_pod(cj)?
        .containers
        .iter()
        .find(|c| c.name == CONTAINER)
}

fn deployment_container(d: &Deployment) -> Option<&Container> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == CONTAINER)
}

fn env_value(c: &Container, name: &str) -> Option<String> {
    c.env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

/// Sets attribute `path` of the object value `state` (nested blocks by
/// name), when the path exists.
fn set(state: &mut Value, path: &[&str], value: Value) {
    let mut slot = Some(state);
    for step in path {
        slot = slot.and_then(|v| v.get_attr_mut(step));
    }
    if let Some(slot) = slot {
        *slot = value;
    }
}

fn set_str(state: &mut Value, path: &[&str], value: Option<String>) {
    if let Some(v) = value {
        set(state, path, Value::string(v));
    }
}

/// Writes into `state` (a value of the resource's schema, e.g. its
/// defaults) the attributes the cluster's objects of `mode` show, for
/// import: the objects say what the configuration was. Values are written
/// as the cluster holds them; parsing the result into the typed state
/// judges them. Where an object is missing or unreadable, `state` keeps
/// its value. Returns false when no object of the mode exists.
pub fn observe(state: &mut Value, mode: Mode, live: &Live) -> bool {
    let objects_of_mode = match mode {
        Mode::CronJob => {
            live.config_map.is_some() || live.dispatcher.is_some() || live.reaper.is_some()
        }
        Mode::Deployment => live.config_map.is_some() || live.deployment.is_some(),
    };
    if !objects_of_mode {
        return false;
    }
    if let Some(cm) = &live.config_map {
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(beads_contract::defaults::METADATA_FILE));
        if let Some(Ok(meta)) = text.map(|t| Metadata::parse(t)) {
            set(state, &["dolt", "host"], Value::string(meta.host()));
            set(state, &["dolt", "port"], Value::int(i64::from(meta.port())));
            set(state, &["dolt", "user"], Value::string(meta.user()));
            set(
                state,
                &["dolt", "database"],
                Value::string(meta.database_name()),
            );
            let project = meta.project_id.clone().filter(|p| !p.is_empty());
            set(
                state,
                &["dolt", "project_id"],
                project.map_or(Value::Null, Value::string),
            );
            set(
                state,
                &["dolt", "tls"],
                Value::Bool(meta.dolt_server_tls.unwrap_or(false)),
            );
        }
    }
    match mode {
        Mode::CronJob => {
            let d = live.dispatcher.as_ref();
            let r = live.reaper.as_ref();
            let schedule =
                |cj: Option<&CronJob>| cj.and_then(|c| c.spec.as_ref()).map(|s| s.schedule.clone());
            set_str(state, &["dispatch_schedule"], schedule(d));
            set_str(state, &["reap_schedule"], schedule(r));
            // The dispatcher decides where the CronJobs disagree: it is the
            // one the kill switch is about.
            let running = |cj: Option<&CronJob>| {
                cj.and_then(|c| c.spec.as_ref())
                    .map(|s| !s.suspend.unwrap_or(false))
            };
            if let Some(enabled) = running(d).or(running(r)) {
                set(state, &["enabled"], Value::Bool(enabled));
            }
            if let Some(cj) = d.filter(|c| cron_container(c).is_some()).or(r)
                && let Some(c) = cron_container(cj)
            {
                read_pod(state, cron_pod(cj), c);
            }
        }
        Mode::Deployment => {
            if let Some(dep) = &live.deployment {
                let replicas = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                set(state, &["enabled"], Value::Bool(replicas > 0));
                if let Some(c) = deployment_container(dep) {
                    read_pod(
                        state,
                        dep.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                        c,
                    );
                }
            }
        }
    }
    true
}

/// The image, pull secrets, password reference and settings live in the
/// pod spec, its container and the container's env.
fn read_pod(state: &mut Value, pod: Option<&PodSpec>, c: &Container) {
    if let Some(reference) = &c.image {
        // Split only where it parses; otherwise the typed state reports
        // the attribute the reference would have given.
        let (image, tag) = match ImageTag::split(reference) {
            Ok((image, tag)) => (image.to_string(), tag.as_str().to_string()),
            Err(_) => (reference.clone(), String::new()),
        };
        set(state, &["image"], Value::string(image));
        set(state, &["image_tag"], Value::string(tag));
    }
    let secrets = pod
        .and_then(|p| p.image_pull_secrets.as_ref())
        .map(|list| {
            list.iter()
                .map(|r| Value::string(r.name.as_str()))
                .collect()
        })
        .unwrap_or_default();
    set(state, &["image_pull_secrets"], Value::List(secrets));
    let password = c
        .env
        .as_ref()
        .and_then(|vars| vars.iter().find(|e| e.name == env::DOLT_PASSWORD))
        .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref());
    set_str(
        state,
        &["dolt", "password_secret_name"],
        password.map(|r| r.name.clone()),
    );
    set_str(
        state,
        &["dolt", "password_secret_key"],
        password.map(|r| r.key.clone()),
    );
    set_str(state, &["beadboard_url"], env_value(c, env::BEADBOARD_URL));
    set_str(state, &["assignee"], env_value(c, env::AGENT_ASSIGNEE));
    set_str(state, &["stale_after"], env_value(c, env::REAP_STALE_AFTER));
    set_str(state, &["claim_timeout"], env_value(c, env::CLAIM_TIMEOUT));
    if let Some(n) = env_value(c, env::MAX_IN_FLIGHT).and_then(|v| v.parse::<i64>().ok()) {
        set(state, &["max_in_flight"], Value::int(n));
    }
}

#[cfg(test)]
mod tests {
    use super::super::render::{self, tests::spec};
    use super::*;
    use crate::autodispatch::model::Autodispatch;
    use tfplugin::framework::Model;

    fn pod_mut(cj: &mut CronJob) -> &mut PodSpec {
        let job = cj
            .spec
            .as_mut()
            .unwrap()
            .job_template
            .spec
            .as_mut()
            .unwrap();
        job.template.spec.as_mut().unwrap()
    }

    fn live(s: &Autodispatch) -> Live {
        Live {
            config_map: Some(render::config_map(s)),
            dispatcher: Some(render::dispatcher(s)),
            reaper: Some(render::reaper(s)),
            deployment: None,
        }
    }

    /// What import reads from `live`, starting from the schema's defaults
    /// with the namespace and name set.
    fn imported(s: &Autodispatch, live: &Live) -> Option<Autodispatch> {
        let mut v = Autodispatch::block().defaults();
        set(&mut v, &["namespace"], Value::string(s.namespace.as_str()));
        set(&mut v, &["name"], Value::string(s.name.as_str()));
        observe(&mut v, s.mode, live).then(|| Autodispatch::from_value(&v).unwrap())
    }

    #[test]
    fn rendered_objects_observe_as_the_configuration() {
        let s = spec();
        assert_eq!(imported(&s, &live(&s)), Some(s));
    }

    #[test]
    fn webhook_additions_are_ignored() {
        let s = spec();
        let mut l = live(&s);
        let cj = l.dispatcher.as_mut().unwrap();
        cj.metadata
            .labels
            .get_or_insert_default()
            .insert("policies.kyverno.io/mutated".into(), "true".into());
        let pod = pod_mut(cj);
        pod.dns_config = Some(
            serde_json::from_value(
                serde_json::json!({"options": [{"name": "ndots", "value": "2"}]}),
            )
            .unwrap(),
        );
        pod.containers[0].image_pull_policy = Some("IfNotPresent".into());
        pod.containers[0].termination_message_path = Some("/dev/termination-log".into());
        assert_eq!(imported(&s, &l), Some(s));
    }

    #[test]
    fn the_dispatcher_decides_and_missing_objects_keep_the_defaults() {
        let s = spec();
        let mut l = live(&s);
        let pod = pod_mut(l.reaper.as_mut().unwrap());
        pod.containers[0].image = Some("ghcr.io/example/beads-runner:0.0.9".into());
        assert_eq!(imported(&s, &l).unwrap().image_tag.as_str(), "0.1.0");
        l.dispatcher
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .suspend = Some(true);
        assert!(!imported(&s, &l).unwrap().enabled);
        l.reaper = None;
        let seen = imported(&s, &l).unwrap();
        assert_eq!(seen.reap_schedule.as_str(), "*/10 * * * *");
        assert_eq!(imported(&s, &Live::default()), None);
        // Without the ConfigMap the database is unknown: nothing is made up.
        l.config_map = None;
        let seen = imported(&s, &l).unwrap();
        assert_eq!((seen.dolt.host, seen.dolt.database), (None, None));
        assert!(seen.image.is_some());
    }
}
