//! The `beads_autodispatch` resource: schema, plan-time validation, typed
//! state, and the mapping between that state and the Kubernetes objects
//! (rendered and observed in [`crate::k8s`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use tfplugin::diag::{AttributePath, Diagnostic, Diagnostics};
use tfplugin::framework::{Ctx, Field, Model, ModelError, Obj, ObjBuilder, PlanContext, Resource};
use tfplugin::schema::{Attribute, Block, NestedBlock, Nesting, Schema};
use tfplugin::value::{Type, Value};

use beads_contract::{defaults, format_duration};

use crate::k8s::client::{Cluster, KubeError, Objects};
use crate::k8s::observe::{Live, instance_of, observe};
use crate::k8s::project::{Fields, flatten, project};
use crate::k8s::render::{self, INSTANCE_ANNOTATION, Mode, Names, ObjectId, Spec};
use crate::validate;

/// The resource type name.
pub const TYPE_NAME: &str = "beads_autodispatch";

/// Default `name`, the base of every object name.
pub const DEFAULT_NAME: &str = "beads";

/// Default `image_tag`: the provider's own version, so provider and runner
/// releases move together.
pub const DEFAULT_IMAGE_TAG: &str = env!("CARGO_PKG_VERSION");

/// The `dolt` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Dolt {
    pub host: String,
    pub port: i64,
    pub user: String,
    pub database: String,
    pub project_id: Option<String>,
    pub tls: bool,
    pub password_secret_name: Option<String>,
    pub password_secret_key: Option<String>,
}

/// One `beads_autodispatch` object, as planned or stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Autodispatch {
    pub id: Option<String>,
    pub namespace: String,
    pub name: String,
    pub enabled: bool,
    pub mode: Mode,
    pub image: String,
    pub image_tag: String,
    pub beadboard_url: String,
    pub assignee: String,
    pub dispatch_schedule: String,
    pub reap_schedule: String,
    pub stale_after: String,
    pub claim_timeout: String,
    pub max_in_flight: i64,
    /// Unique names; `[]` when not configured.
    pub image_pull_secrets: Vec<String>,
    pub dolt: Dolt,
    pub metadata_json: Option<String>,
    pub config_map_name: Option<String>,
    pub dispatcher_cron_job: Option<String>,
    pub reaper_cron_job: Option<String>,
    /// The id in every object's ownership annotation, made at create.
    pub instance_id: Option<String>,
    /// Per object this instance owns (`cronjob/beads-dispatcher`), the
    /// fields the provider sets: from the configuration in a plan, as they
    /// are live after a read.
    pub objects: Option<BTreeMap<String, Fields>>,
}

/// The state attribute names the provider computes (never configured).
const COMPUTED: [&str; 7] = [
    "id",
    "metadata_json",
    "config_map_name",
    "dispatcher_cron_job",
    "reaper_cron_job",
    "instance_id",
    "objects",
];

fn objects_from_value(v: &Value) -> Result<Option<BTreeMap<String, Fields>>, ModelError> {
    let bad = |message: &str| ModelError {
        path: AttributePath::attr("objects"),
        message: message.into(),
    };
    let Value::Map(outer) = v else {
        return match v {
            Value::Null | Value::Unknown => Ok(None),
            _ => Err(bad("expected a map")),
        };
    };
    let mut objects = BTreeMap::new();
    for (id, fields) in outer {
        let Value::Map(fields) = fields else {
            return Err(bad("expected a map of maps"));
        };
        let mut out = Fields::new();
        for (path, value) in fields {
            let value = value.as_str().ok_or_else(|| bad("expected strings"))?;
            out.insert(path.clone(), value.to_string());
        }
        objects.insert(id.clone(), out);
    }
    Ok(Some(objects))
}

fn objects_to_value(objects: &Option<BTreeMap<String, Fields>>) -> Value {
    objects.as_ref().map_or(Value::Null, |o| {
        Value::Map(
            o.iter()
                .map(|(id, fields)| {
                    let fields = fields
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::string(v.as_str())))
                        .collect();
                    (id.clone(), Value::Map(fields))
                })
                .collect(),
        )
    })
}

impl Model for Autodispatch {
    fn from_value(v: &Value) -> Result<Autodispatch, ModelError> {
        let o = Obj::new(v)?;
        let dolt_path = o.path_of("dolt");
        let d = Obj::at(o.raw("dolt"), &dolt_path)?;
        let pull = o.strings("image_pull_secrets")?;
        Ok(Autodispatch {
            id: o.opt_string("id")?,
            namespace: o.string("namespace")?,
            name: o.string("name")?,
            enabled: o.bool("enabled")?,
            mode: {
                let text = o.string("mode")?;
                Mode::parse(&text).map_err(|message| ModelError {
                    path: o.path_of("mode"),
                    message,
                })?
            },
            image: o.string("image")?,
            image_tag: o.string("image_tag")?,
            beadboard_url: o.string("beadboard_url")?,
            assignee: o.string("assignee")?,
            dispatch_schedule: o.string("dispatch_schedule")?,
            reap_schedule: o.string("reap_schedule")?,
            stale_after: o.string("stale_after")?,
            claim_timeout: o.string("claim_timeout")?,
            max_in_flight: o.i64("max_in_flight")?,
            image_pull_secrets: pull,
            dolt: Dolt {
                host: d.string("host")?,
                port: d.i64("port")?,
                user: d.string("user")?,
                database: d.string("database")?,
                project_id: d.opt_string("project_id")?,
                tls: d.bool("tls")?,
                password_secret_name: d.opt_string("password_secret_name")?,
                password_secret_key: d.opt_string("password_secret_key")?,
            },
            metadata_json: o.opt_string("metadata_json")?,
            config_map_name: o.opt_string("config_map_name")?,
            dispatcher_cron_job: o.opt_string("dispatcher_cron_job")?,
            reaper_cron_job: o.opt_string("reaper_cron_job")?,
            instance_id: o.opt_string("instance_id")?,
            objects: objects_from_value(o.raw("objects"))?,
        })
    }

    fn to_value(&self) -> Value {
        let d = &self.dolt;
        let dolt = ObjBuilder::new()
            .set("host", d.host.as_str())
            .set("port", d.port)
            .set("user", d.user.as_str())
            .set("database", d.database.as_str())
            .set("project_id", d.project_id.clone())
            .set("tls", d.tls)
            .set("password_secret_name", d.password_secret_name.clone())
            .set("password_secret_key", d.password_secret_key.clone())
            .build();
        let pull = Value::List(
            self.image_pull_secrets
                .iter()
                .map(|s| Value::string(s.as_str()))
                .collect(),
        );
        ObjBuilder::new()
            .set("id", self.id.clone())
            .set("namespace", self.namespace.as_str())
            .set("name", self.name.as_str())
            .set("enabled", self.enabled)
            .set("mode", self.mode.as_str())
            .set("image", self.image.as_str())
            .set("image_tag", self.image_tag.as_str())
            .set("beadboard_url", self.beadboard_url.as_str())
            .set("assignee", self.assignee.as_str())
            .set("dispatch_schedule", self.dispatch_schedule.as_str())
            .set("reap_schedule", self.reap_schedule.as_str())
            .set("stale_after", self.stale_after.as_str())
            .set("claim_timeout", self.claim_timeout.as_str())
            .set("max_in_flight", self.max_in_flight)
            .set("image_pull_secrets", pull)
            .set("dolt", dolt)
            .set("metadata_json", self.metadata_json.clone())
            .set("config_map_name", self.config_map_name.clone())
            .set("dispatcher_cron_job", self.dispatcher_cron_job.clone())
            .set("reaper_cron_job", self.reaper_cron_job.clone())
            .set("instance_id", self.instance_id.clone())
            .set("objects", objects_to_value(&self.objects))
            .build()
    }
}

impl Autodispatch {
    /// Fills in every computed attribute from the configured ones.
    pub fn with_computed(mut self) -> Autodispatch {
        let names = Names::new(&self.name);
        self.id = Some(format!("{}/{}", self.namespace, self.name));
        self.config_map_name = Some(names.config_map);
        let cron = self.mode == Mode::CronJob;
        self.dispatcher_cron_job = cron.then_some(names.dispatcher);
        self.reaper_cron_job = cron.then_some(names.reaper);
        let spec = self.spec().ok();
        self.metadata_json = spec.as_ref().map(render::metadata_json);
        self.objects = spec.as_ref().map(|spec| {
            render::objects(spec)
                .iter()
                .map(|o| (o.id().to_string(), flatten(&o.to_json())))
                .collect()
        });
        self
    }

    /// What the Kubernetes objects are rendered from. Validation has run by
    /// now, so a failure here means a value slipped past it.
    pub fn spec(&self) -> Result<Spec, Diagnostics> {
        let bad = |what: &str, value: String| -> Diagnostics {
            Diagnostic::error(format!("Invalid {what}"), value).into()
        };
        let d = &self.dolt;
        Ok(Spec {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            mode: self.mode,
            enabled: self.enabled,
            image: self.image.clone(),
            image_tag: self.image_tag.clone(),
            beadboard_url: self.beadboard_url.clone(),
            assignee: self.assignee.clone(),
            dispatch_schedule: self.dispatch_schedule.clone(),
            reap_schedule: self.reap_schedule.clone(),
            stale_after: self.stale_after.clone(),
            claim_timeout: self.claim_timeout.clone(),
            max_in_flight: u32::try_from(self.max_in_flight)
                .map_err(|_| bad("max_in_flight", self.max_in_flight.to_string()))?,
            run_interval: format_duration(defaults::RUN_INTERVAL),
            image_pull_secrets: self.image_pull_secrets.clone(),
            dolt: render::Dolt {
                host: d.host.clone(),
                port: u16::try_from(d.port).map_err(|_| bad("dolt.port", d.port.to_string()))?,
                user: d.user.clone(),
                database: d.database.clone(),
                project_id: d.project_id.clone(),
                tls: d.tls,
                password_secret: d
                    .password_secret_name
                    .clone()
                    .zip(d.password_secret_key.clone()),
            },
            provider_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// This state with the attributes the cluster shows (for import).
    fn with_observed(mut self, seen: Spec) -> Autodispatch {
        self.mode = seen.mode;
        self.enabled = seen.enabled;
        self.image = seen.image;
        self.image_tag = seen.image_tag;
        self.beadboard_url = seen.beadboard_url;
        self.assignee = seen.assignee;
        self.dispatch_schedule = seen.dispatch_schedule;
        self.reap_schedule = seen.reap_schedule;
        self.stale_after = seen.stale_after;
        self.claim_timeout = seen.claim_timeout;
        self.max_in_flight = i64::from(seen.max_in_flight);
        self.image_pull_secrets = seen.image_pull_secrets;
        let (secret_name, secret_key) = seen.dolt.password_secret.unzip();
        self.dolt = Dolt {
            host: seen.dolt.host,
            port: i64::from(seen.dolt.port),
            user: seen.dolt.user,
            database: seen.dolt.database,
            project_id: seen.dolt.project_id,
            tls: seen.dolt.tls,
            password_secret_name: secret_name,
            password_secret_key: secret_key,
        };
        self.with_computed()
    }

    /// A state to start an import from: the defaults, with the mode the
    /// cluster's objects show. Read then fills in everything else.
    fn skeleton(namespace: &str, name: &str, mode: Mode) -> Autodispatch {
        Autodispatch {
            id: None,
            namespace: namespace.to_string(),
            name: name.to_string(),
            enabled: true,
            mode,
            image: String::new(),
            image_tag: DEFAULT_IMAGE_TAG.to_string(),
            beadboard_url: String::new(),
            assignee: defaults::ASSIGNEE.to_string(),
            dispatch_schedule: defaults::DISPATCH_SCHEDULE.to_string(),
            reap_schedule: defaults::REAP_SCHEDULE.to_string(),
            stale_after: format_duration(defaults::STALE_AFTER),
            claim_timeout: format_duration(defaults::CLAIM_TIMEOUT),
            max_in_flight: i64::from(defaults::MAX_IN_FLIGHT),
            image_pull_secrets: Vec::new(),
            dolt: Dolt {
                host: String::new(),
                port: i64::from(defaults::DOLT_PORT),
                user: defaults::DOLT_USER.to_string(),
                database: String::new(),
                project_id: None,
                tls: false,
                password_secret_name: None,
                password_secret_key: None,
            },
            metadata_json: None,
            config_map_name: None,
            dispatcher_cron_job: None,
            reaper_cron_job: None,
            instance_id: None,
            objects: None,
        }
        .with_computed()
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
    let spec = state.spec()?;
    let names = Names::new(&state.name);
    let mut out = BTreeMap::new();
    for mode in [spec.mode, spec.mode.other()] {
        let of_mode = Spec {
            mode,
            ..spec.clone()
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

    async fn objects(
        &self,
        action: &str,
        state: &Autodispatch,
    ) -> Result<(Objects, Live), Diagnostics> {
        let objects = self
            .cluster
            .objects(&state.namespace, &state.name)
            .await
            .map_err(|e| kube_diag(action, e))?;
        let live = objects.read().await.map_err(|e| kube_diag(action, e))?;
        Ok((objects, live))
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
        let spec = state.spec()?;
        let names = Names::new(&state.name);
        let instance = state.instance_id.clone().unwrap_or_default();
        // What a read-back after a failure starts from: this instance, with
        // only the objects the prior state records (never a same-named
        // object this apply refused or did not get to).
        ctx.writing(&Autodispatch {
            objects: prior.and_then(|p| p.objects.clone()),
            ..state.clone()
        });
        let (objects, live) = self.objects(action, state).await?;
        let rendered = render::objects(&spec);
        for object in &rendered {
            let id = object.id();
            if let Some(l) = live.json(&names, &id)
                && !prior.is_some_and(|p| owns(p, &id, &l))
            {
                return Err(foreign(action, &state.namespace, &id, &l));
            }
        }
        for object in rendered {
            objects
                .apply(&object.with_instance(&instance))
                .await
                .map_err(|e| kube_diag(action, e))?;
        }
        if let Some(prior) = prior {
            for id in names.of_mode(spec.mode.other()) {
                if names.of_mode(spec.mode).contains(&id) {
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

/// The resource schema.
pub fn schema() -> Schema {
    let s = Type::String;
    let dolt = Block::new("Connection to the Dolt SQL server that holds the beads database.")
        .attribute(
            Attribute::required("host", s.clone())
                .description("Host name or IP address of the Dolt SQL server, as seen from inside the cluster."),
        )
        .attribute(
            Attribute::optional("port", Type::Number)
                .default_value(i64::from(defaults::DOLT_PORT))
                .description("TCP port of the Dolt SQL server (1-65535). Default 3306."),
        )
        .attribute(
            Attribute::optional("user", s.clone())
                .default_value(defaults::DOLT_USER)
                .description("SQL user the runner connects as. Default \"root\"."),
        )
        .attribute(
            Attribute::required("database", s.clone())
                .description("Name of the beads database on the Dolt server."),
        )
        .attribute(
            Attribute::optional("project_id", s.clone())
                .description("beads project ID written to metadata.json (optional)."),
        )
        .attribute(
            Attribute::optional("tls", Type::Bool)
                .default_value(false)
                .description("Connect to the Dolt server with TLS. Default false."),
        )
        .attribute(Attribute::optional("password_secret_name", s.clone()).description(
            "Name of a Secret in the namespace holding the database password. Set together with password_secret_key.",
        ))
        .attribute(
            Attribute::optional("password_secret_key", s.clone())
                .description("Key of the password inside password_secret_name. Set together with password_secret_name."),
        );
    Schema::new(
        Block::new("Runs beads auto-dispatch in a Kubernetes namespace: a dispatcher that hands ready beads to the agent through BeadBoard, and a reaper that releases stale claims.")
            .attribute(Attribute::computed("id", s.clone()).stable().description("Identifier, \"<namespace>/<name>\"."))
            .attribute(
                Attribute::required("namespace", s.clone())
                    .requires_replace()
                    .description("Kubernetes namespace to deploy into (DNS-1123 label). Changing it replaces the deployment."),
            )
            .attribute(
                Attribute::optional("name", s.clone())
                    .default_value(DEFAULT_NAME)
                    .requires_replace()
                    .description("Base name of the Kubernetes objects (DNS-1123 label, at most 41 characters, so that \"<name>-dispatcher\" fits the 52-character CronJob name limit). Default \"beads\". Changing it replaces the deployment."),
            )
            .attribute(
                Attribute::optional("enabled", Type::Bool)
                    .default_value(true)
                    .description("Whether dispatching runs; false suspends the CronJobs (or scales the Deployment to zero). Default true."),
            )
            .attribute(
                Attribute::optional("mode", s.clone())
                    .default_value(Mode::CronJob.as_str())
                    .description("\"cronjob\" (a dispatch CronJob and a reap CronJob) or \"deployment\" (one long-running runner). Default \"cronjob\"."),
            )
            .attribute(
                Attribute::required("image", s.clone())
                    .description("Container image repository of beads-runner, without tag or digest, e.g. \"ghcr.io/acme/beads-runner\"."),
            )
            .attribute(
                Attribute::optional("image_tag", s.clone())
                    .default_value(DEFAULT_IMAGE_TAG)
                    .description("Image tag, or a digest \"sha256:<64 hex>\". Default: the provider's version."),
            )
            .attribute(
                Attribute::required("beadboard_url", s.clone())
                    .description("Base URL of BeadBoard (http or https) the dispatcher sends beads to."),
            )
            .attribute(
                Attribute::optional("assignee", s.clone())
                    .default_value(defaults::ASSIGNEE)
                    .description("Assignee whose ready beads are dispatched. Default \"agent\"."),
            )
            .attribute(
                Attribute::optional("dispatch_schedule", s.clone())
                    .default_value(defaults::DISPATCH_SCHEDULE)
                    .description("Cron schedule (5 fields) of the dispatch CronJob. Default \"*/2 * * * *\"."),
            )
            .attribute(
                Attribute::optional("reap_schedule", s.clone())
                    .default_value(defaults::REAP_SCHEDULE)
                    .description("Cron schedule (5 fields) of the reap CronJob. Default \"*/10 * * * *\"."),
            )
            .attribute(
                Attribute::optional("stale_after", s.clone())
                    .default_value(format_duration(defaults::STALE_AFTER).as_str())
                    .description("How long an in-progress bead may go without update before the reaper blocks it, e.g. \"30m\", \"1h30m\". Default \"30m\"."),
            )
            .attribute(
                Attribute::optional("claim_timeout", s.clone())
                    .default_value(format_duration(defaults::CLAIM_TIMEOUT).as_str())
                    .description("How long a claimed bead may wait for its dispatch note before it returns to open, e.g. \"5m\". Default \"5m\"."),
            )
            .attribute(
                Attribute::optional("max_in_flight", Type::Number)
                    .default_value(i64::from(defaults::MAX_IN_FLIGHT))
                    .description("How many of the assignee's beads may be in progress before dispatching pauses (1-100). Default 1."),
            )
            .attribute(
                Attribute::optional("image_pull_secrets", Type::list(s.clone()))
                    .default_value(Value::List(Vec::new()))
                    .description("Names of Secrets (DNS-1123 subdomains, each at most once) used to pull the image. Not set and [] are the same: none."),
            )
            .attribute(
                Attribute::computed("metadata_json", s.clone())
                    .stable()
                    .description("The metadata.json rendered into the ConfigMap for the runner."),
            )
            .attribute(Attribute::computed("config_map_name", s.clone()).stable().description("Name of the ConfigMap holding metadata.json."))
            .attribute(
                Attribute::computed("dispatcher_cron_job", s.clone())
                    .stable()
                    .description("Name of the dispatch CronJob (null in deployment mode)."),
            )
            .attribute(
                Attribute::computed("reaper_cron_job", s.clone())
                    .stable()
                    .description("Name of the reap CronJob (null in deployment mode)."),
            )
            .attribute(
                Attribute::computed("instance_id", s.clone())
                    .stable()
                    .description(format!("Identity of this resource, made at create and written to every object it owns as the {INSTANCE_ANNOTATION} annotation. Objects without it are never changed or deleted.")),
            )
            .attribute(
                Attribute::computed("objects", Type::map(Type::map(s)))
                    .stable()
                    .description("Per object this resource owns (e.g. \"cronjob/beads-dispatcher\"), the fields the provider sets, by path (e.g. \"spec.suspend\"): planned from the configuration, read from the cluster. A difference is drift in that object and field; apply restores it."),
            )
            .block(NestedBlock::new("dolt", Nesting::Single, dolt).required()),
    )
}

/// Checks one known string attribute with `check`, reporting at `path`.
fn check_str(
    diags: &mut Diagnostics,
    o: &Obj<'_>,
    name: &str,
    summary: &str,
    check: fn(&str) -> Result<(), String>,
) {
    match o.string_field(name) {
        Ok(Field::Known(v)) => {
            if let Err(e) = check(v) {
                diags.error_at(o.path_of(name), summary, e);
            }
        }
        Ok(_) => {}
        Err(e) => diags.push(e.into_diagnostic()),
    }
}

fn check_int(diags: &mut Diagnostics, o: &Obj<'_>, name: &str, summary: &str, min: i64, max: i64) {
    match o.i64_field(name) {
        Ok(Field::Known(n)) => {
            if let Err(e) = validate::int_range(n, min, max) {
                diags.error_at(o.path_of(name), summary, e);
            }
        }
        Ok(_) => {}
        Err(e) => diags.error_at(o.path_of(name), summary, e.message),
    }
}

/// Validates a configuration (plan-time rules; unknown values are skipped).
pub fn validate_config(config: &Value, diags: &mut Diagnostics) {
    let o = match Obj::new(config) {
        Ok(o) => o,
        Err(e) => return diags.push(e.into_diagnostic()),
    };
    check_str(
        diags,
        &o,
        "namespace",
        "Invalid namespace",
        validate::dns1123_label,
    );
    check_str(diags, &o, "name", "Invalid name", validate::object_name);
    check_str(diags, &o, "mode", "Invalid mode", validate::mode);
    check_str(
        diags,
        &o,
        "image",
        "Invalid image",
        validate::image_repository,
    );
    check_str(
        diags,
        &o,
        "image_tag",
        "Invalid image_tag",
        validate::image_tag,
    );
    check_str(
        diags,
        &o,
        "beadboard_url",
        "Invalid beadboard_url",
        validate::http_url,
    );
    check_str(
        diags,
        &o,
        "assignee",
        "Invalid assignee",
        validate::non_empty,
    );
    check_str(
        diags,
        &o,
        "dispatch_schedule",
        "Invalid dispatch_schedule",
        validate::cron_schedule,
    );
    check_str(
        diags,
        &o,
        "reap_schedule",
        "Invalid reap_schedule",
        validate::cron_schedule,
    );
    check_str(
        diags,
        &o,
        "stale_after",
        "Invalid stale_after",
        validate::duration,
    );
    check_str(
        diags,
        &o,
        "claim_timeout",
        "Invalid claim_timeout",
        validate::duration,
    );
    check_int(diags, &o, "max_in_flight", "Invalid max_in_flight", 1, 100);
    if let Some(items) = o.raw("image_pull_secrets").as_elements() {
        for (i, item) in items.iter().enumerate() {
            if item.as_str().is_some() && items[..i].contains(item) {
                diags.error_at(
                    o.path_of("image_pull_secrets").and_index(i as i64),
                    "Invalid image_pull_secrets",
                    format!(
                        "{:?} is listed twice; each secret name may appear once",
                        item.as_str().unwrap_or_default()
                    ),
                );
                continue;
            }
            if let Some(s) = item.as_str()
                && let Err(e) = validate::dns1123_subdomain(s)
            {
                diags.error_at(
                    o.path_of("image_pull_secrets").and_index(i as i64),
                    "Invalid image_pull_secrets",
                    e,
                );
            } else if item.is_null() {
                diags.error_at(
                    o.path_of("image_pull_secrets").and_index(i as i64),
                    "Invalid image_pull_secrets",
                    "secret names must not be null",
                );
            }
        }
    }
    let dolt_path = o.path_of("dolt");
    let Ok(d) = Obj::at(o.raw("dolt"), &dolt_path) else {
        diags.push(
            Diagnostic::error("Invalid dolt block", "dolt must be a block").at(dolt_path.clone()),
        );
        return;
    };
    check_str(diags, &d, "host", "Invalid dolt.host", validate::non_empty);
    check_int(diags, &d, "port", "Invalid dolt.port", 1, 65535);
    check_str(diags, &d, "user", "Invalid dolt.user", validate::non_empty);
    check_str(
        diags,
        &d,
        "database",
        "Invalid dolt.database",
        validate::database_name,
    );
    check_str(
        diags,
        &d,
        "password_secret_name",
        "Invalid dolt.password_secret_name",
        validate::dns1123_subdomain,
    );
    check_str(
        diags,
        &d,
        "password_secret_key",
        "Invalid dolt.password_secret_key",
        validate::secret_key,
    );
    let secret_name = d.raw("password_secret_name");
    let secret_key = d.raw("password_secret_key");
    let both_or_neither = |set: &Value,
                           missing: &Value,
                           missing_name: &str,
                           set_name: &str,
                           diags: &mut Diagnostics| {
        if !set.is_null() && missing.is_null() {
            diags.push(
                Diagnostic::error(
                    format!("Missing dolt.{missing_name}"),
                    format!("dolt.{set_name} is set, so dolt.{missing_name} must be set too (both or neither)."),
                )
                .at(AttributePath::attr("dolt").and_attr(set_name)),
            );
        }
    };
    both_or_neither(
        secret_name,
        secret_key,
        "password_secret_key",
        "password_secret_name",
        diags,
    );
    both_or_neither(
        secret_key,
        secret_name,
        "password_secret_name",
        "password_secret_key",
        diags,
    );
}

#[tfplugin::framework::async_trait]
impl Resource for AutodispatchResource {
    type State = Autodispatch;

    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_config(config, diags);
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
        let (_, live) = self.objects("read", &current).await?;
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
        let (objects, live) = self.objects("delete", &prior).await?;
        let names = Names::new(&prior.name);
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
        let skeleton = Autodispatch::skeleton(namespace, name, Mode::CronJob);
        let (_, live) = self.objects("import", &skeleton).await?;
        let mode =
            if live.deployment.is_some() && live.dispatcher.is_none() && live.reaper.is_none() {
                Mode::Deployment
            } else {
                Mode::CronJob
            };
        let skeleton = Autodispatch::skeleton(namespace, name, mode);
        let prior = skeleton.spec()?;
        let Some(seen) = observe(&prior, &live) else {
            return Err(Diagnostic::error(
                "Cannot import beads_autodispatch",
                format!(
                    "No ConfigMap {name}-metadata, CronJobs {name}-dispatcher/{name}-reaper or Deployment {name}-runner in namespace {namespace}."
                ),
            )
            .into());
        };
        // Import adopts what exists, whoever made it: the objects of the
        // mode are recorded as this instance's; an instance id already on
        // them is kept, so re-importing a lost state keeps the identity.
        let mut state = skeleton.with_observed(seen);
        let names = Names::new(name);
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
        let spec = state.spec()?;
        state.objects = Some(
            render::objects(&spec)
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

/// Plans the computed attributes from the configuration: the object fields,
/// `metadata_json` and the names are known whenever their inputs are, so
/// the plan compares the configuration's fields with the live ones (a saved
/// refresh cannot hide drift: the plan recomputes them every time).
fn plan_computed(plan: &mut PlanContext<'_>) {
    let mut inputs = plan.planned.clone();
    for name in COMPUTED {
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
        if let Ok(state) = Autodispatch::from_value(&inputs) {
            let computed = state.with_computed().to_value();
            for name in COMPUTED {
                if name == "instance_id" {
                    continue;
                }
                if let (Some(slot), Some(v)) =
                    (plan.planned.get_attr_mut(name), computed.get_attr(name))
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
        && let Ok(d) = dolt_from_value(dolt)
        && let Some(v) = plan.planned.get_attr_mut("metadata_json")
    {
        *v = Value::string(render::dolt_metadata_json(&d));
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

/// The `dolt` block as rendered, when it is wholly known and valid.
fn dolt_from_value(v: &Value) -> Result<render::Dolt, ModelError> {
    let path = AttributePath::attr("dolt");
    let d = Obj::at(v, &path)?;
    let port = d.i64("port")?;
    Ok(render::Dolt {
        host: d.string("host")?,
        port: u16::try_from(port).map_err(|_| ModelError {
            path: d.path_of("port"),
            message: format!("{port} is not a port"),
        })?,
        user: d.string("user")?,
        database: d.string("database")?,
        project_id: d.opt_string("project_id")?,
        tls: d.bool("tls")?,
        password_secret: d
            .opt_string("password_secret_name")?
            .zip(d.opt_string("password_secret_key")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfplugin::value::{JsonOptions, decode_json};

    fn cfg(json: &str) -> Value {
        decode_json(
            json.as_bytes(),
            &schema().implied_type(),
            JsonOptions::default(),
        )
        .expect("config json")
    }

    const VALID: &str = r#"{"namespace":"beads","image":"ghcr.io/acme/beads-runner","beadboard_url":"https://bb.example.com",
        "dolt":{"host":"dolt.svc","database":"beads"}}"#;

    fn errors_at(json: &str) -> Vec<String> {
        let mut d = Diagnostics::new();
        validate_config(&cfg(json), &mut d);
        d.iter()
            .map(|d| d.path.as_ref().map(ToString::to_string).unwrap_or_default())
            .collect()
    }

    #[test]
    fn schema_is_well_formed_and_described() {
        let s = schema();
        assert!(s.block.check().is_empty(), "{:?}", s.block.check());
        for a in s
            .block
            .attributes
            .iter()
            .chain(&s.block.blocks[0].block.attributes)
        {
            assert!(!a.description.is_empty(), "{} has no description", a.name);
        }
        let replace: Vec<String> = s
            .block
            .requires_replace_paths()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(replace, vec!["namespace", "name"]);
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
            (
                r#""image_pull_secrets":["ok","Not_OK"]"#,
                "image_pull_secrets[1]",
            ),
        ];
        for (field, path) in cases {
            let json = VALID.replacen('{', &format!("{{{field},"), 1);
            assert_eq!(errors_at(&json), vec![path.to_string()], "{field}");
        }
        assert_eq!(
            errors_at(&VALID.replace("\"beads\",\"image\"", "\"Beads\",\"image\"")),
            vec!["namespace"]
        );
        assert_eq!(
            errors_at(&VALID.replace("https://bb.example.com", "bb.example.com")),
            vec!["beadboard_url"]
        );
        assert_eq!(
            errors_at(&VALID.replace("beads-runner\"", "beads-runner:v1\"")),
            vec!["image"]
        );
        assert_eq!(
            errors_at(&VALID.replace("\"dolt.svc\"", "\"dolt.svc\",\"port\":70000")),
            vec!["dolt.port"]
        );
        assert_eq!(
            errors_at(&VALID.replace(
                "\"dolt.svc\"",
                "\"dolt.svc\",\"password_secret_name\":\"pw\""
            )),
            vec!["dolt.password_secret_name"]
        );
    }

    #[test]
    fn unknown_values_are_not_judged() {
        let mut v = cfg(VALID);
        *v.get_attr_mut("dispatch_schedule").expect("attr") = Value::Unknown;
        let mut d = Diagnostics::new();
        validate_config(&v, &mut d);
        assert!(d.is_empty());
    }

    #[test]
    fn computed_values_follow_config() {
        let mut planned = cfg(VALID);
        tfplugin::framework::plan::apply_defaults(&schema().block, &cfg(VALID), &mut planned);
        let a = Autodispatch::from_value(&planned)
            .expect("model")
            .with_computed();
        assert_eq!(a.id.as_deref(), Some("beads/beads"));
        assert_eq!(a.image_tag, DEFAULT_IMAGE_TAG);
        assert_eq!(a.dolt.port, 3306);
        assert_eq!(a.dispatcher_cron_job.as_deref(), Some("beads-dispatcher"));
        assert_eq!(a.config_map_name.as_deref(), Some("beads-metadata"));
        let meta = beads_contract::Metadata::parse(a.metadata_json.as_deref().expect("json"))
            .expect("valid metadata");
        assert_eq!(meta.port(), 3306);
        assert_eq!(Autodispatch::from_value(&a.to_value()), Ok(a));
    }
}
