//! From the live objects back to the resource's attributes, reading only the
//! fields the resource owns. Whatever admission webhooks add (dnsConfig,
//! labels, defaulted fields) is never looked at, so it never shows as a diff.

use beads_contract::{Metadata, env};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};

use super::render::{
    CONTAINER, INSTANCE_ANNOTATION, Kind, Mode, Names, ObjectId, Spec, split_image_ref,
};

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

/// The resource's attributes as the cluster's objects show them, starting
/// from `prior` (for import: the objects say what the configuration was).
/// Where an object is missing or unreadable, `prior`'s value stays. `None`
/// when no object of the mode exists.
pub fn observe(prior: &Spec, live: &Live) -> Option<Spec> {
    let objects_of_mode = match prior.mode {
        Mode::CronJob => {
            live.config_map.is_some() || live.dispatcher.is_some() || live.reaper.is_some()
        }
        Mode::Deployment => live.config_map.is_some() || live.deployment.is_some(),
    };
    if !objects_of_mode {
        return None;
    }
    let mut seen = prior.clone();

    // Missing or unreadable: the prior values stay; the projection of the
    // ConfigMap's data shows the difference.
    if let Some(cm) = &live.config_map {
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(beads_contract::defaults::METADATA_FILE));
        if let Some(Ok(meta)) = text.map(|t| Metadata::parse(t)) {
            seen.dolt.host = meta.host().to_string();
            seen.dolt.port = meta.port();
            seen.dolt.user = meta.user().to_string();
            seen.dolt.database = meta.database_name().to_string();
            seen.dolt.project_id = meta.project_id.clone().filter(|p| !p.is_empty());
            seen.dolt.tls = meta.dolt_server_tls.unwrap_or(false);
        }
    }

    match prior.mode {
        Mode::CronJob => {
            let d = live.dispatcher.as_ref();
            let r = live.reaper.as_ref();
            let schedule =
                |cj: Option<&CronJob>| cj.and_then(|c| c.spec.as_ref()).map(|s| s.schedule.clone());
            if let Some(s) = schedule(d) {
                seen.dispatch_schedule = s;
            }
            if let Some(s) = schedule(r) {
                seen.reap_schedule = s;
            }
            // The dispatcher decides where the CronJobs disagree: it is the
            // one the kill switch is about.
            let running = |cj: Option<&CronJob>| {
                cj.and_then(|c| c.spec.as_ref())
                    .map(|s| !s.suspend.unwrap_or(false))
            };
            if let Some(enabled) = running(d).or(running(r)) {
                seen.enabled = enabled;
            }
            let image = |cj: Option<&CronJob>| {
                cj.and_then(cron_container)
                    .and_then(|c| c.image.as_deref())
                    .map(split_image_ref)
            };
            if let Some((repository, tag)) = image(d).or(image(r)) {
                (seen.image, seen.image_tag) = (repository, tag);
            }
            if let Some(cj) = d.filter(|c| cron_container(c).is_some()).or(r)
                && let Some(c) = cron_container(cj)
            {
                read_pod(&mut seen, cron_pod(cj), c);
            }
        }
        Mode::Deployment => {
            if let Some(dep) = &live.deployment {
                let replicas = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                seen.enabled = replicas > 0;
                if let Some(c) = deployment_container(dep) {
                    if let Some(reference) = &c.image {
                        (seen.image, seen.image_tag) = split_image_ref(reference);
                    }
                    read_pod(
                        &mut seen,
                        dep.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                        c,
                    );
                    if let Some(v) = env_value(c, env::RUN_INTERVAL) {
                        seen.run_interval = v;
                    }
                }
            }
        }
    }
    Some(seen)
}

/// Pull secrets and the password reference live in the pod spec and env.
fn read_pod(seen: &mut Spec, pod: Option<&PodSpec>, c: &Container) {
    seen.image_pull_secrets = pod
        .and_then(|p| p.image_pull_secrets.as_ref())
        .map(|list| list.iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default();
    seen.dolt.password_secret = c
        .env
        .as_ref()
        .and_then(|vars| vars.iter().find(|e| e.name == env::DOLT_PASSWORD))
        .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| (r.name.clone(), r.key.clone()));
    read_env(seen, c);
}

fn read_env(seen: &mut Spec, c: &Container) {
    if let Some(v) = env_value(c, env::BEADBOARD_URL) {
        seen.beadboard_url = v;
    }
    if let Some(v) = env_value(c, env::AGENT_ASSIGNEE) {
        seen.assignee = v;
    }
    if let Some(v) = env_value(c, env::REAP_STALE_AFTER) {
        seen.stale_after = v;
    }
    if let Some(v) = env_value(c, env::CLAIM_TIMEOUT) {
        seen.claim_timeout = v;
    }
    if let Some(v) = env_value(c, env::MAX_IN_FLIGHT).and_then(|v| v.parse().ok()) {
        seen.max_in_flight = v;
    }
}

#[cfg(test)]
mod tests {
    use super::super::render::{self, tests::spec};
    use super::*;

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

    fn live(s: &Spec) -> Live {
        Live {
            config_map: Some(render::config_map(s)),
            dispatcher: Some(render::dispatcher(s)),
            reaper: Some(render::reaper(s)),
            deployment: None,
        }
    }

    #[test]
    fn rendered_objects_observe_as_the_spec() {
        let s = spec();
        assert_eq!(observe(&s, &live(&s)), Some(s));
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
        assert_eq!(observe(&s, &l), Some(s));
    }

    #[test]
    fn the_dispatcher_decides_and_missing_objects_keep_the_prior() {
        let s = spec();
        let mut l = live(&s);
        let pod = pod_mut(l.reaper.as_mut().unwrap());
        pod.containers[0].image = Some("ghcr.io/example/beads-runner:0.0.9".into());
        assert_eq!(observe(&s, &l).unwrap().image_tag, "0.1.0");
        l.dispatcher
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .suspend = Some(true);
        assert!(!observe(&s, &l).unwrap().enabled);
        l.reaper = None;
        l.config_map = None;
        let seen = observe(&s, &l).unwrap();
        assert_eq!(seen.reap_schedule, s.reap_schedule);
        assert_eq!(seen.dolt, s.dolt);
        assert_eq!(observe(&s, &Live::default()), None);
    }
}
