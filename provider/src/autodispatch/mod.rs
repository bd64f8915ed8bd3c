//! The `beads_autodispatch` resource: create, read, update, delete and
//! import over the typed state declared in [`model`], and the plan of the
//! computed attributes. The objects themselves are rendered and read in
//! [`crate::k8s`].

pub mod model;

use std::collections::BTreeMap;
use std::sync::Arc;

use tfplugin::diag::{AttributePath, Diagnostic, Diagnostics, PathStep};
use tfplugin::framework::{Ctx, Model, PlanContext, Resource};
use tfplugin::value::Value;

use crate::k8s::client::{Cluster, KubeError, Objects};
use crate::k8s::observe::{Live, instance_of, observe};
use crate::k8s::project::{Fields, flatten, project};
use crate::k8s::render::{self, INSTANCE_ANNOTATION, ObjectId};
use crate::names::Names;
use crate::types::Mode;
use crate::validate;
pub use model::Autodispatch;
use model::Dolt;

/// The resource type name.
pub const TYPE_NAME: &str = "beads_autodispatch";

/// The attributes the provider computes (never configured), as the model
/// declares them; read once, since every plan needs them.
fn computed_attributes() -> &'static [String] {
    static COMPUTED: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        Autodispatch::block()
            .attributes
            .into_iter()
            .filter(|a| a.computed && !a.optional)
            .map(|a| a.name)
            .collect()
    });
    &COMPUTED
}

impl Autodispatch {
    /// The names of this resource's objects.
    fn names(&self) -> Names {
        self.name.names()
    }

    /// Fills in every computed attribute from the configured ones.
    pub fn with_computed(mut self) -> Autodispatch {
        let names = self.names();
        self.id = Some(format!("{}/{}", self.namespace, self.name));
        self.config_map_name = Some(names.config_map);
        let cron = self.mode == Mode::CronJob;
        self.dispatcher_cron_job = cron.then_some(names.dispatcher);
        self.reaper_cron_job = cron.then_some(names.reaper);
        self.metadata_json = render::metadata_json(&self.dolt);
        self.objects = Some(
            render::objects(&self)
                .iter()
                .map(|o| (o.id().to_string(), flatten(&o.to_json())))
                .collect(),
        );
        self
    }
}

/// A Kubernetes failure as a diagnostic that names the object and the cause.
fn kube_diag(action: &str, e: KubeError) -> Diagnostics {
    Diagnostic::error(format!("Cannot {action} beads_autodispatch"), e.to_string()).into()
}

/// A fresh instance id: 128 bits from the standard library's randomly
/// seeded hasher keys (an identity, not a secret) and the clock.
fn new_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (0..2u64)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            h.write_u128(nanos);
            h.write_u32(std::process::id());
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// Whether live object `id` is `state`'s: its ownership annotation names the
/// state's instance; or it has none and the state records the object
/// (adopted by import); or the state predates instance ids altogether.
fn owns(state: &Autodispatch, id: &ObjectId, live: &serde_json::Value) -> bool {
    match instance_of(live) {
        Some(instance) => state.instance_id.as_deref() == Some(instance),
        None => match (&state.instance_id, &state.objects) {
            (None, None) => true,
            (Some(_), Some(recorded)) => recorded.contains_key(&id.to_string()),
            _ => false,
        },
    }
}

/// The refusal to touch a same-named object that is not this instance's.
fn foreign(action: &str, namespace: &str, id: &ObjectId, live: &serde_json::Value) -> Diagnostics {
    let whose = match instance_of(live) {
        Some(other) => format!(
            "it belongs to another beads_autodispatch instance ({INSTANCE_ANNOTATION}: {other}). \
             If this is a replacement with create_before_destroy: the object names are fixed by \
             namespace and name, so new objects cannot exist beside the old ones; remove \
             create_before_destroy from this resource"
        ),
        None => format!(
            "it has no {INSTANCE_ANNOTATION} annotation: it was not created by this resource"
        ),
    };
    let (kind, name) = (id.kind.as_str(), &id.name);
    let resource = name
        .rsplit_once('-')
        .map_or(name.as_str(), |(base, _)| base);
    Diagnostic::error(
        format!("Cannot {action} beads_autodispatch: {kind} {namespace}/{name} is not this resource's"),
        format!(
            "{kind} {namespace}/{name} already exists and {whose}. Nothing was written and it is left \
             untouched. To manage the existing objects with this resource, import them: \
             terraform import <address> {namespace}/{resource}"
        ),
    )
    .into()
}

/// Per object `state` owns in the cluster, the fields the provider sets as
/// they are live. Objects of the other mode are included when they are
/// this instance's (e.g. left over by a failed mode switch), so the plan
/// shows them going.
fn owned_fields(
    state: &Autodispatch,
    live: &Live,
) -> Result<BTreeMap<String, Fields>, Diagnostics> {
    let names = state.names();
    let mut out = BTreeMap::new();
    for mode in [state.mode, state.mode.other()] {
        let of_mode = Autodispatch {
            mode,
            ..state.clone()
        };
        for object in render::objects(&of_mode) {
            let id = object.id();
            let key = id.to_string();
            if out.contains_key(&key) {
                continue;
            }
            if let Some(l) = live.json(&names, &id)
                && owns(state, &id, &l)
            {
                out.insert(key, project(&object.to_json(), Some(&l)));
            }
        }
    }
    Ok(out)
}

/// The resource implementation.
#[derive(Debug)]
pub struct AutodispatchResource {
    cluster: Arc<Cluster>,
}

impl AutodispatchResource {
    /// The resource, talking to the provider's cluster.
    pub fn new(cluster: Arc<Cluster>) -> Self {
        AutodispatchResource { cluster }
    }

    /// The resource `namespace`/`name`'s objects in the cluster, read.
    async fn objects(
        &self,
        action: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(Objects, Live), Diagnostics> {
        let objects = self
            .cluster
            .objects(namespace, name)
            .await
            .map_err(|e| kube_diag(action, e))?;
        let live = objects.read().await.map_err(|e| kube_diag(action, e))?;
        Ok((objects, live))
    }

    /// [`Self::objects`] of the resource `state` describes.
    async fn objects_of(
        &self,
        action: &str,
        state: &Autodispatch,
    ) -> Result<(Objects, Live), Diagnostics> {
        self.objects(action, state.namespace.as_str(), state.name.as_str())
            .await
    }

    /// Writes `state`'s objects, then deletes the other mode's objects that
    /// `prior` owns. Refuses before writing anything when an object to be
    /// written exists and `prior` does not own it (`prior` is `None` on
    /// create: then every existing object is refused).
    async fn write(
        &self,
        ctx: &Ctx,
        action: &str,
        prior: Option<&Autodispatch>,
        state: &Autodispatch,
    ) -> Result<(), Diagnostics> {
        let missing = state.missing();
        if !missing.is_empty() {
            // A plan from a configuration always has them; this is a bug.
            return Err(Diagnostic::error(
                format!("Cannot {action} beads_autodispatch"),
                format!(
                    "The planned state lacks {}; nothing was written.",
                    missing.join(", ")
                ),
            )
            .into());
        }
        let names = state.names();
        let instance = state.instance_id.clone().unwrap_or_default();
        // What a read-back after a failure starts from: this instance, with
        // only the objects the prior state records (never a same-named
        // object this apply refused or did not get to).
        ctx.writing(&Autodispatch {
            objects: prior.and_then(|p| p.objects.clone()),
            ..state.clone()
        });
        let (objects, live) = self.objects_of(action, state).await?;
        let rendered = render::objects(state);
        for object in &rendered {
            let id = object.id();
            if let Some(l) = live.json(&names, &id)
                && !prior.is_some_and(|p| owns(p, &id, &l))
            {
                return Err(foreign(action, state.namespace.as_str(), &id, &l));
            }
        }
        for object in rendered {
            objects
                .apply(&object.with_instance(&instance))
                .await
                .map_err(|e| kube_diag(action, e))?;
        }
        if let Some(prior) = prior {
            for id in names.of_mode(state.mode.other()) {
                if names.of_mode(state.mode).contains(&id) {
                    continue;
                }
                if let Some(l) = live.json(&names, &id)
                    && owns(prior, &id, &l)
                {
                    objects
                        .delete(&id)
                        .await
                        .map_err(|e| kube_diag(action, e))?;
                }
            }
        }
        Ok(())
    }
}

#[tfplugin::framework::async_trait]
impl Resource for AutodispatchResource {
    type State = Autodispatch;

    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn modify_plan(&self, plan: &mut PlanContext<'_>) {
        plan_computed(plan);
    }

    async fn create(&self, ctx: &Ctx, planned: Autodispatch) -> Result<Autodispatch, Diagnostics> {
        let mut state = planned.with_computed();
        state.instance_id = Some(new_instance_id());
        self.write(ctx, "create", None, &state).await?;
        Ok(state)
    }

    async fn read(
        &self,
        _ctx: &Ctx,
        current: Autodispatch,
    ) -> Result<Option<Autodispatch>, Diagnostics> {
        let (_, live) = self.objects_of("read", &current).await?;
        let owned = owned_fields(&current, &live)?;
        if owned.is_empty() {
            return Ok(None);
        }
        Ok(Some(Autodispatch {
            objects: Some(owned),
            ..current
        }))
    }

    async fn update(
        &self,
        ctx: &Ctx,
        prior: Autodispatch,
        planned: Autodispatch,
    ) -> Result<Autodispatch, Diagnostics> {
        let mut state = planned.with_computed();
        state.instance_id = prior
            .instance_id
            .clone()
            .or_else(|| Some(new_instance_id()));
        self.write(ctx, "update", Some(&prior), &state).await?;
        Ok(state)
    }

    async fn delete(&self, _ctx: &Ctx, prior: Autodispatch) -> Result<(), Diagnostics> {
        let (objects, live) = self.objects_of("delete", &prior).await?;
        let names = prior.names();
        // Workloads first, the ConfigMap they mount last; only this instance's.
        let [config_map, dispatcher, reaper, deployment] = names.all();
        for id in [dispatcher, reaper, deployment, config_map] {
            if let Some(l) = live.json(&names, &id)
                && owns(&prior, &id, &l)
            {
                objects
                    .delete(&id)
                    .await
                    .map_err(|e| kube_diag("delete", e))?;
            }
        }
        Ok(())
    }

    async fn import(&self, _ctx: &Ctx, id: &str) -> Result<Autodispatch, Diagnostics> {
        let (namespace, name) = match id.split_once('/') {
            Some((ns, name))
                if validate::dns1123_label(ns).is_ok() && validate::object_name(name).is_ok() =>
            {
                (ns, name)
            }
            _ => {
                return Err(Diagnostic::error(
                    "Invalid import ID",
                    format!("{id:?} is not \"<namespace>/<name>\", e.g. \"beads-server/beads\"."),
                )
                .into());
            }
        };
        let names = Names::new(name);
        let (_, live) = self.objects("import", namespace, name).await?;
        let mode =
            if live.deployment.is_some() && live.dispatcher.is_none() && live.reaper.is_none() {
                Mode::Deployment
            } else {
                Mode::CronJob
            };
        // The schema's defaults, overwritten with what the objects show;
        // parsing judges every value the cluster gave.
        let defaults = Autodispatch::block().defaults();
        let mut value = defaults.clone();
        for (attr, v) in [
            ("namespace", namespace),
            ("name", name),
            ("mode", mode.as_str()),
        ] {
            if let Some(slot) = value.get_attr_mut(attr) {
                *slot = Value::string(v);
            }
        }
        if !observe(&mut value, mode, &live) {
            return Err(Diagnostic::error(
                "Cannot import beads_autodispatch",
                format!(
                    "No ConfigMap {}, CronJobs {}/{} or Deployment {} in namespace {namespace}.",
                    names.config_map, names.dispatcher, names.reaper, names.deployment
                ),
            )
            .into());
        }
        let mut state = import_state(value, &defaults)
            .map_err(|e| {
                Diagnostic::error(
                    "Cannot import beads_autodispatch",
                    format!("{}: {}", e.path, e.message),
                )
            })?
            .with_computed();
        // Import adopts what exists, whoever made it: the objects of the
        // mode are recorded as this instance's; an instance id already on
        // them is kept, so re-importing a lost state keeps the identity.
        let existing: Vec<(ObjectId, serde_json::Value)> = names
            .of_mode(mode)
            .into_iter()
            .filter_map(|id| live.json(&names, &id).map(|l| (id, l)))
            .collect();
        state.instance_id = Some(
            existing
                .iter()
                .find_map(|(_, l)| instance_of(l).map(str::to_string))
                .unwrap_or_else(new_instance_id),
        );
        state.objects = Some(
            render::objects(&state)
                .iter()
                .filter_map(|o| {
                    let id = o.id();
                    let (_, l) = existing.iter().find(|(e, _)| *e == id)?;
                    Some((id.to_string(), project(&o.to_json(), Some(l))))
                })
                .collect(),
        );
        Ok(state)
    }
}

/// The typed state of an import's `value` (the schema's `defaults` with
/// what the objects show written over them). A value the cluster holds that is
/// not valid for its attribute (e.g. an env var edited by hand) is not
/// taken: the attribute keeps its default, or null, and the plan shows
/// both the configured value arriving and the live field's drift.
fn import_state(
    mut value: Value,
    defaults: &Value,
) -> Result<Autodispatch, tfplugin::framework::ModelError> {
    loop {
        match Autodispatch::from_value(&value) {
            Ok(state) => return Ok(state),
            Err(e) => {
                tracing::warn!(path = %e.path, message = %e.message, "import: the cluster's value is not taken");
                // The attribute itself, not the list element inside it.
                let names: Vec<&str> = e
                    .path
                    .0
                    .iter()
                    .map_while(|s| match s {
                        PathStep::Attribute(n) => Some(n.as_str()),
                        _ => None,
                    })
                    .collect();
                let fallback = names
                    .iter()
                    .try_fold(defaults, |v, n| v.get_attr(n))
                    .cloned()
                    .unwrap_or(Value::Null);
                let slot = names.iter().try_fold(&mut value, |v, n| v.get_attr_mut(n));
                match slot {
                    // Each attribute is replaced at most once (by its
                    // default, which parses: model.rs's tests check it),
                    // so this ends.
                    Some(slot) if *slot != fallback => *slot = fallback,
                    _ => return Err(e),
                }
            }
        }
    }
}

/// Plans the computed attributes from the configuration: the object fields,
/// `metadata_json` and the names are known whenever their inputs are, so
/// the plan compares the configuration's fields with the live ones (a saved
/// refresh cannot hide drift: the plan recomputes them every time).
fn plan_computed(plan: &mut PlanContext<'_>) {
    let computed = computed_attributes();
    let mut inputs = plan.planned.clone();
    for name in computed {
        if let Some(v) = inputs.get_attr_mut(name) {
            *v = Value::Null;
        }
    }
    if !plan.is_create()
        && plan
            .prior()
            .get_attr("instance_id")
            .is_none_or(Value::is_null)
    {
        // A state from before instance ids: update makes one.
        plan.set_unknown("instance_id");
    }
    if inputs.is_wholly_known() {
        // (Invalid inputs were refused by validation, which Terraform runs
        // again once every value is known.)
        if let Ok(state) = Autodispatch::from_value(&inputs) {
            let values = state.with_computed().to_value();
            for name in computed {
                if name == "instance_id" {
                    continue;
                }
                if let (Some(slot), Some(v)) =
                    (plan.planned.get_attr_mut(name), values.get_attr(name))
                {
                    *slot = v.clone();
                }
            }
        }
        return;
    }
    // Some input is not known yet: whatever depends on it is not either.
    plan.set_unknown("objects");
    let known = |name: &str| inputs.get_attr(name).is_some_and(Value::is_wholly_known);
    if !known("dolt") {
        plan.set_unknown("metadata_json");
    } else if let Some(dolt) = inputs.get_attr("dolt")
        && let Ok(d) = Dolt::from_value_at(dolt, &AttributePath::attr("dolt"))
        && let Some(v) = plan.planned.get_attr_mut("metadata_json")
    {
        *v = render::metadata_json(&d).map_or(Value::Null, Value::string);
    }
    if !known("namespace") || !known("name") {
        plan.set_unknown("id");
    }
    if !known("name") {
        plan.set_unknown("config_map_name");
    }
    if !known("name") || !known("mode") {
        plan.set_unknown("dispatcher_cron_job");
        plan.set_unknown("reaper_cron_job");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tfplugin::value::{JsonOptions, decode_json};

    fn cfg(json: &str) -> Value {
        decode_json(
            json.as_bytes(),
            &Autodispatch::block().implied_type(),
            JsonOptions::default(),
        )
        .expect("config json")
    }

    /// The state Terraform plans for configuration `json` (defaults filled in).
    pub(crate) fn planned(json: &str) -> Autodispatch {
        let config = cfg(json);
        let mut planned = config.clone();
        tfplugin::framework::plan::apply_defaults(&Autodispatch::block(), &config, &mut planned);
        Autodispatch::from_value(&planned).expect("valid configuration")
    }

    const VALID: &str = r#"{"namespace":"beads","image":"ghcr.io/acme/beads-runner","beadboard_url":"https://bb.example.com",
        "dolt":{"host":"dolt.svc","database":"beads"}}"#;

    fn resource() -> AutodispatchResource {
        AutodispatchResource::new(Arc::default())
    }

    /// Validation as the server runs it: the schema's validators, then
    /// the resource's own rules.
    fn validate(config: &Value) -> Diagnostics {
        let mut d = Diagnostics::new();
        let schema = Resource::schema(&resource());
        schema
            .block
            .validate(config, &AttributePath::default(), &mut d);
        Resource::validate(&resource(), config, &mut d);
        d
    }

    /// Where validation reports problems with configuration `json`.
    fn errors_at(json: &str) -> Vec<String> {
        let d = validate(&cfg(json));
        d.iter()
            .map(|d| d.path.as_ref().map(ToString::to_string).unwrap_or_default())
            .collect()
    }

    #[test]
    fn schema_is_well_formed_and_described() {
        let s = Resource::schema(&resource());
        assert!(s.block.check().is_empty(), "{:?}", s.block.check());
        for a in s
            .block
            .attributes
            .iter()
            .chain(&s.block.blocks[0].block.attributes)
        {
            assert!(!a.description.is_empty(), "{} has no description", a.name);
            assert!(
                a.computed && !a.optional || a.validator.is_some(),
                "{} is configurable but has no validator",
                a.name
            );
        }
        let replace: Vec<String> = s
            .block
            .requires_replace_paths()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(replace, vec!["namespace", "name"]);
        assert_eq!(
            computed_attributes(),
            [
                "id",
                "metadata_json",
                "config_map_name",
                "dispatcher_cron_job",
                "reaper_cron_job",
                "instance_id",
                "objects"
            ]
        );
    }

    #[test]
    fn valid_config_passes() {
        assert_eq!(errors_at(VALID), Vec::<String>::new());
    }

    #[test]
    fn each_invalid_value_names_its_attribute() {
        let cases = [
            (r#""dispatch_schedule":"every minute""#, "dispatch_schedule"),
            (r#""reap_schedule":"* * * *""#, "reap_schedule"),
            (r#""stale_after":"30""#, "stale_after"),
            (r#""claim_timeout":"5 minutes""#, "claim_timeout"),
            (r#""name":"Beads""#, "name"),
            (r#""image_tag":"v1 2""#, "image_tag"),
            (r#""mode":"daemonset""#, "mode"),
            (r#""max_in_flight":0"#, "max_in_flight"),
            (r#""max_in_flight":1.5"#, "max_in_flight"),
            (r#""assignee":"  ""#, "assignee"),
            (
                r#""image_pull_secrets":["ok","Not_OK"]"#,
                "image_pull_secrets[1]",
            ),
            (
                r#""image_pull_secrets":["a","b","a"]"#,
                "image_pull_secrets[2]",
            ),
        ];
        for (field, path) in cases {
            let json = VALID.replacen('{', &format!("{{{field},"), 1);
            assert_eq!(errors_at(&json), vec![path.to_string()], "{field}");
        }
        // Values inside VALID, replaced.
        for (from, to, path) in [
            ("\"beads\",\"image\"", "\"Beads\",\"image\"", "namespace"),
            ("https://bb.example.com", "bb.example.com", "beadboard_url"),
            ("beads-runner\"", "beads-runner:v1\"", "image"),
            ("\"dolt.svc\"", "\"dolt.svc\",\"port\":70000", "dolt.port"),
            (
                "\"dolt.svc\"",
                "\"dolt.svc\",\"password_secret_name\":\"pw\"",
                "dolt.password_secret_name",
            ),
        ] {
            assert_eq!(errors_at(&VALID.replace(from, to)), vec![path], "{to}");
        }
    }

    #[test]
    fn summaries_name_the_attribute() {
        let json = VALID.replace(
            "\"dolt.svc\"",
            "\"dolt.svc\",\"password_secret_key\":\"k\",\"port\":0",
        );
        let d = validate(&cfg(&json));
        let summaries: Vec<&str> = d.iter().map(|d| d.summary.as_str()).collect();
        assert_eq!(
            summaries,
            vec!["Invalid dolt.port", "Missing dolt.password_secret_name"]
        );
    }

    #[test]
    fn unknown_values_are_not_judged() {
        let mut v = cfg(VALID);
        *v.get_attr_mut("dispatch_schedule").expect("attr") = Value::Unknown;
        assert!(validate(&v).is_empty());
    }

    #[test]
    fn import_takes_only_valid_values_from_the_cluster() {
        let mut v = Autodispatch::block().defaults();
        for (attr, value) in [
            ("namespace", Value::string("ns")),
            ("stale_after", Value::string("thirty minutes")),
            ("image", Value::string("Not A Repository")),
            ("beadboard_url", Value::string("http://bb")),
            (
                "image_pull_secrets",
                Value::List(vec![Value::string("a"), Value::string("a")]),
            ),
        ] {
            *v.get_attr_mut(attr).expect(attr) = value;
        }
        let defaults = Autodispatch::block().defaults();
        let s = import_state(v, &defaults).expect("imports");
        assert_eq!(s.stale_after.as_str(), "30m");
        assert_eq!(s.image, None);
        assert_eq!(
            s.beadboard_url.as_ref().map(|u| u.to_string()).as_deref(),
            Some("http://bb")
        );
        assert!(s.image_pull_secrets.is_empty());
        assert_eq!(s.dolt.host, None);
        assert_eq!(s.clone().with_computed().metadata_json, None);
        assert_eq!(
            import_state(defaults.clone(), &defaults)
                .expect_err("no namespace")
                .path
                .to_string(),
            "namespace"
        );
    }

    #[test]
    fn computed_values_follow_config() {
        let a = planned(VALID).with_computed();
        assert_eq!(a.id.as_deref(), Some("beads/beads"));
        assert_eq!(a.image_tag.as_str(), env!("CARGO_PKG_VERSION"));
        assert_eq!(a.dolt.port.port(), 3306);
        assert_eq!(a.dispatcher_cron_job.as_deref(), Some("beads-dispatcher"));
        assert_eq!(a.config_map_name.as_deref(), Some("beads-metadata"));
        let meta = beads_contract::Metadata::parse(a.metadata_json.as_deref().expect("json"))
            .expect("valid metadata");
        assert_eq!(meta.port(), 3306);
        assert_eq!(Autodispatch::from_value(&a.to_value()), Ok(a));
    }
}
