//! The one declaration of `beads_autodispatch`'s attributes. Each field is
//! an attribute: its type is its grammar ([`crate::types`]), its doc comment
//! is its description, `#[tf(...)]` its presence, default and plan rules.
//! The schema, plan-time validation, the state ⇄ value mapping
//! (`#[derive(Model)]`), the rendered objects ([`crate::k8s::render`] reads
//! this struct) and the argument tables in docs/resources/autodispatch.md
//! ([`crate::docs`]) all follow from it.
//!
//! The four required attributes without a default are `Option`s: the
//! configuration always sets them, but a state may lack one when an import
//! found objects that do not say it (e.g. a ConfigMap without
//! metadata.json). The plan then shows the value arriving, and nothing is
//! made up in the meantime.

use std::collections::BTreeMap;

use beads_contract::defaults;
use tfplugin::Model;

use crate::k8s::project::Fields;
use crate::types::{
    CronSchedule, DatabaseName, Duration, HttpUrl, ImageRepository, ImageTag, MaxInFlight, Mode,
    Namespace, NonBlank, Port, PullSecrets, ResourceName, SecretKey, SecretName,
};

/// Default `name`, the base of every object name.
pub const DEFAULT_NAME: &str = "beads";

/// Runs beads auto-dispatch in a Kubernetes namespace: a dispatcher that
/// hands ready beads to the agent through BeadBoard, and a reaper that
/// releases stale claims.
#[derive(Debug, Clone, PartialEq, Model)]
pub struct Autodispatch {
    /// Identifier, "<namespace>/<name>".
    #[tf(computed, stable)]
    pub id: Option<String>,
    /// Namespace of the objects (DNS-1123 label). Changing it replaces the
    /// resource.
    #[tf(requires_replace)]
    pub namespace: Namespace,
    /// Base name of the objects (DNS-1123 label, at most 41 characters, so
    /// that "<name>-dispatcher" fits the 52-character CronJob name limit).
    /// Changing it replaces the resource.
    #[tf(default = ResourceName::known_valid(DEFAULT_NAME), requires_replace)]
    pub name: ResourceName,
    /// The kill switch: false sets spec.suspend on both CronJobs, or scales
    /// the Deployment to 0.
    #[tf(default = true)]
    pub enabled: bool,
    /// "cronjob" (a dispatch CronJob and a reap CronJob) or "deployment"
    /// (one long-running runner). Changing it creates the new mode's
    /// objects and deletes the other mode's, in one apply.
    #[tf(default = Mode::CronJob)]
    pub mode: Mode,
    /// Runner image repository without tag or digest, e.g.
    /// "ghcr.io/acme/beads-runner".
    #[tf(required)]
    pub image: Option<ImageRepository>,
    /// A tag ("0.1.0") or a digest ("sha256:" and 64 hex digits).
    #[tf(default = ImageTag::provider_version(), default_doc = "the provider's version")]
    pub image_tag: ImageTag,
    /// BeadBoard base URL (http or https) the dispatcher sends beads to.
    #[tf(required)]
    pub beadboard_url: Option<HttpUrl>,
    /// The sentinel assignee whose ready beads are dispatched.
    #[tf(default = NonBlank::known_valid(defaults::ASSIGNEE))]
    pub assignee: NonBlank,
    /// Dispatcher CronJob schedule, in the grammar kube-apiserver validates
    /// (robfig/cron ParseStandard: 5 fields with names, ranges and steps,
    /// day of week 0-6; "@hourly"-style descriptors; "@every 1h"; no TZ=).
    #[tf(default = CronSchedule::known_valid(defaults::DISPATCH_SCHEDULE))]
    pub dispatch_schedule: CronSchedule,
    /// Reaper CronJob schedule (same grammar).
    #[tf(default = CronSchedule::known_valid(defaults::REAP_SCHEDULE))]
    pub reap_schedule: CronSchedule,
    /// How long an in-progress bead may go without an update before the
    /// reaper blocks it, e.g. "30m", "1h30m" (BEADS_REAP_STALE_AFTER).
    #[tf(default = Duration::from(defaults::STALE_AFTER))]
    pub stale_after: Duration,
    /// How long a claim may wait for its dispatch before the reaper acts
    /// (BEADS_CLAIM_TIMEOUT).
    #[tf(default = Duration::from(defaults::CLAIM_TIMEOUT))]
    pub claim_timeout: Duration,
    /// Beads of the assignee that may be in progress before a tick stops
    /// dispatching (1-100).
    #[tf(default = MaxInFlight::known_valid(defaults::MAX_IN_FLIGHT as i64))]
    pub max_in_flight: MaxInFlight,
    /// Secrets used to pull the image (DNS-1123 subdomains), each name at
    /// most once (a duplicate is refused at validate). Not set and [] mean
    /// the same: none.
    #[tf(default = PullSecrets::default())]
    pub image_pull_secrets: PullSecrets,
    /// Connection to the Dolt SQL server that holds the beads database.
    #[tf(block)]
    pub dolt: Dolt,
    /// The metadata.json in the ConfigMap. Known at plan time whenever the
    /// dolt block is.
    #[tf(computed, stable)]
    pub metadata_json: Option<String>,
    /// Name of the ConfigMap holding metadata.json, "<name>-metadata".
    #[tf(computed, stable)]
    pub config_map_name: Option<String>,
    /// Name of the dispatch CronJob; null in deployment mode.
    #[tf(computed, stable)]
    pub dispatcher_cron_job: Option<String>,
    /// Name of the reap CronJob; null in deployment mode.
    #[tf(computed, stable)]
    pub reaper_cron_job: Option<String>,
    /// This resource's identity, made at create; every object it writes
    /// carries it as the beads-autodispatch/instance-id annotation, and
    /// objects without it are never changed or deleted.
    #[tf(computed, stable)]
    pub instance_id: Option<String>,
    /// Per object this resource owns ("configmap/beads-metadata",
    /// "cronjob/beads-dispatcher", ...), every field the provider sets, by
    /// path ("spec.suspend", ...) and value: planned from the
    /// configuration, read from the cluster. A difference is drift in that
    /// object and field; apply restores it.
    #[tf(computed, stable)]
    pub objects: Option<BTreeMap<String, Fields>>,
}

/// The `dolt` block: where the runner finds the beads database.
#[derive(Debug, Clone, PartialEq, Model)]
#[tf(required_together(password_secret_name, password_secret_key))]
pub struct Dolt {
    /// Dolt SQL server host, as seen from the pods.
    #[tf(required)]
    pub host: Option<NonBlank>,
    /// Port (1-65535).
    #[tf(default = Port::known_valid(defaults::DOLT_PORT as i64))]
    pub port: Port,
    /// SQL user (bd's default).
    #[tf(default = NonBlank::known_valid(defaults::DOLT_USER))]
    pub user: NonBlank,
    /// beads database name.
    #[tf(required)]
    pub database: Option<DatabaseName>,
    /// beads project id; the runner refuses a database whose
    /// metadata._project_id differs.
    pub project_id: Option<String>,
    /// Connect with TLS.
    #[tf(default = false)]
    pub tls: bool,
    /// Secret holding the password; set together with password_secret_key.
    /// The password reaches the runner as BEADS_DOLT_PASSWORD from the
    /// Secret; it is never in the ConfigMap, the state or the plan.
    pub password_secret_name: Option<SecretName>,
    /// Key of the password inside password_secret_name; set together with
    /// it.
    pub password_secret_key: Option<SecretKey>,
}

impl Autodispatch {
    /// The required attributes this state lacks (after a partial import),
    /// by path; empty for any state planned from a configuration.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("image", self.image.is_none()),
            ("beadboard_url", self.beadboard_url.is_none()),
            ("dolt.host", self.dolt.host.is_none()),
            ("dolt.database", self.dolt.database.is_none()),
        ]
        .into_iter()
        .filter_map(|(path, missing)| missing.then_some(path))
        .collect()
    }
}

impl Dolt {
    /// The Secret and key holding the password, when configured.
    pub fn password_secret(&self) -> Option<(&SecretName, &SecretKey)> {
        self.password_secret_name
            .as_ref()
            .zip(self.password_secret_key.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfplugin::diag::{AttributePath, Diagnostics};
    use tfplugin::framework::Model as _;

    #[test]
    fn every_default_passes_its_own_validator() {
        let block = Autodispatch::block();
        assert!(block.check().is_empty(), "{:?}", block.check());
        let mut diags = Diagnostics::new();
        block.validate(&block.defaults(), &AttributePath::default(), &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        let mut checked = 0;
        for a in block.attributes.iter().chain(
            &block
                .get_block("dolt")
                .map(|b| b.block.attributes.clone())
                .unwrap_or_default(),
        ) {
            if let (Some(d), Some(check)) = (&a.default, a.validator) {
                assert_eq!(check(d), Ok(()), "default of {}", a.name);
                checked += 1;
            }
        }
        assert_eq!(checked, 14);
    }
}
