//! The Kubernetes side: connect as the provider block says, apply the
//! rendered objects with server-side apply, read them back, delete them.

use std::time::{Duration, Instant};

use base64::Engine;
use beads_contract::labels::k8s::MANAGER;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tfplugin::log::{micros, since_handshake_us};

use super::observe::Live;
use super::render::{Kind, Object, ObjectId};
use crate::names::Names;

/// How long a delete may take before the provider gives up waiting.
const DELETE_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of one API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The provider block's connection attributes (named as hashicorp/kubernetes names them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub config_path: Option<String>,
    pub config_context: Option<String>,
    pub host: Option<String>,
    pub token: Option<String>,
    pub cluster_ca_certificate: Option<String>,
    pub insecure: Option<bool>,
    pub client_certificate: Option<String>,
    pub client_key: Option<String>,
    /// Attributes whose values Terraform does not know yet (they come from
    /// resources not yet applied). The provider then never connects: no
    /// fallback to `KUBE_CONFIG_PATH` or the in-cluster account.
    pub unknown: Vec<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Connection")
            .field("config_path", &self.config_path)
            .field("config_context", &self.config_context)
            .field("host", &self.host)
            .field("token", &redacted(&self.token))
            .field("insecure", &self.insecure)
            .field("client_key", &redacted(&self.client_key))
            .field("unknown", &self.unknown)
            .finish_non_exhaustive()
    }
}

/// A failed Kubernetes operation, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("Kubernetes connection: {0}")]
    Connect(String),
    #[error("{verb} {kind} {object} on the API server {server}: {message}")]
    Object {
        verb: &'static str,
        kind: &'static str,
        /// `<namespace>/<name>`.
        object: String,
        server: String,
        message: String,
    },
}

impl Connection {
    /// Builds a client. Precedence: `host` (with token or client
    /// certificate), then `config_path` or `KUBE_CONFIG_PATH`, then the
    /// in-cluster service account.
    /// Also returns the API server's address, for messages.
    pub async fn client(&self) -> Result<(Client, String), KubeError> {
        let (at_us, started) = (since_handshake_us(), Instant::now());
        let mut config = self.config().await?;
        let configured = Instant::now();
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(REQUEST_TIMEOUT);
        // kube-rs builds a TLS configuration for every client; without a CA
        // in the configuration it loads the system's whole trust store
        // (rustls-platform-verifier: on Debian the bundle and every file of
        // /etc/ssl/certs, some 150 reads, each certificate parsed), in every
        // provider process that reads. A plain-HTTP API server never uses
        // it, and insecure-skip-tls-verify replaces its verifier, so those
        // two get an empty root store instead. An HTTPS server without a CA
        // still gets the system's roots.
        if config.root_cert.is_none()
            && (config.cluster_url.scheme_str() == Some("http") || config.accept_invalid_certs)
        {
            config.root_cert = Some(Vec::new());
        }
        let server = config.cluster_url.to_string();
        match Client::try_from(config) {
            Ok(client) => {
                // Timed for scripts/bench: the kubeconfig (read, parsed,
                // credentials loaded), then the client (TLS configuration).
                tracing::debug!(
                    at_us,
                    config_us = micros(configured.duration_since(started)),
                    client_us = micros(configured.elapsed()),
                    "Kubernetes client ready"
                );
                Ok((client, server))
            }
            Err(e) => Err(KubeError::Connect(format!("API server {server}: {e}"))),
        }
    }

    async fn config(&self) -> Result<Config, KubeError> {
        if !self.unknown.is_empty() {
            return Err(KubeError::Connect(not_known_yet(&self.unknown)));
        }
        let options = KubeConfigOptions {
            context: self.config_context.clone(),
            ..KubeConfigOptions::default()
        };
        if let Some(host) = self.host.as_deref().filter(|h| !h.is_empty()) {
            let kubeconfig = self.inline_kubeconfig(host)?;
            return Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| KubeError::Connect(format!("host {host}: {e}")));
        }
        let path = self
            .config_path
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| {
                std::env::var("KUBE_CONFIG_PATH")
                    .ok()
                    .filter(|p| !p.is_empty())
            });
        if let Some(path) = path {
            let path = expand_home(&path);
            let kubeconfig = Kubeconfig::read_from(&path)
                .map_err(|e| KubeError::Connect(format!("config_path {path}: {e}")))?;
            if let Some(wanted) = options.context.as_deref() {
                check_context(&kubeconfig, &path, wanted).map_err(KubeError::Connect)?;
            }
            return Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| KubeError::Connect(format!("config_path {path}: {e}")));
        }
        Config::incluster().map_err(|e| {
            KubeError::Connect(format!(
                "no cluster configured: set config_path (or KUBE_CONFIG_PATH), or host with credentials, or run inside a cluster ({e})"
            ))
        })
    }

    /// A kubeconfig holding just the attributes given, so kube-rs handles
    /// certificates and tokens exactly as it does for a file.
    fn inline_kubeconfig(&self, host: &str) -> Result<Kubeconfig, KubeError> {
        let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
        let mut cluster = serde_json::json!({ "server": host });
        if let Some(ca) = self
            .cluster_ca_certificate
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            cluster["certificate-authority-data"] = b64(ca).into();
        }
        if self.insecure == Some(true) {
            cluster["insecure-skip-tls-verify"] = true.into();
        }
        let mut user = serde_json::json!({});
        if let Some(token) = &self.token {
            user["token"] = token.clone().into();
        }
        if let Some(cert) = &self.client_certificate {
            user["client-certificate-data"] = b64(cert).into();
        }
        if let Some(key) = &self.client_key {
            user["client-key-data"] = b64(key).into();
        }
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "provider", "cluster": cluster}],
            "users": [{"name": "provider", "user": user}],
            "contexts": [{"name": "provider", "context": {"cluster": "provider", "user": "provider"}}],
            "current-context": "provider",
        });
        Kubeconfig::from_yaml(&doc.to_string()).map_err(|e| KubeError::Connect(e.to_string()))
    }
}

/// The cluster as the provider block describes it, connected on first use:
/// `terraform validate` and the plan of a new resource never reach it.
#[derive(Default)]
pub struct Cluster {
    connection: std::sync::RwLock<Option<Connection>>,
    client: tokio::sync::OnceCell<(Client, String)>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("connected", &self.client.initialized())
            .finish()
    }
}

impl Cluster {
    /// Records the provider block (ConfigureProvider).
    pub fn configure(&self, connection: Connection) {
        if let Ok(mut slot) = self.connection.write() {
            *slot = Some(connection);
        }
    }

    /// The client and the API server's address, connecting on first use.
    pub async fn client(&self) -> Result<(Client, String), KubeError> {
        let connection = self
            .connection
            .read()
            .map_err(|_| KubeError::Connect("provider configuration lock poisoned".into()))?
            .clone()
            .unwrap_or_default();
        self.client
            .get_or_try_init(|| async move { connection.client().await })
            .await
            .cloned()
    }

    /// The objects of one resource.
    pub async fn objects(&self, namespace: &str, name: &str) -> Result<Objects, KubeError> {
        let (client, server) = self.client().await?;
        Ok(Objects::new(client, server, namespace, name))
    }
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => path.to_string(),
    }
}

/// The error for a provider block with values Terraform does not know yet.
fn not_known_yet(unknown: &[String]) -> String {
    format!(
        "the provider configuration is not known yet: {} will be known only after apply. \
         The provider does not fall back to KUBE_CONFIG_PATH or another cluster; \
         apply the resources it depends on first (terraform apply -target=...), \
         or give the provider block values known at plan time",
        unknown.join(", ")
    )
}

/// Refuses a `config_context` the kubeconfig does not define, naming the
/// file and the contexts it has (kube-rs says only "failed to load current
/// context").
fn check_context(kubeconfig: &Kubeconfig, path: &str, wanted: &str) -> Result<(), String> {
    let names: Vec<&str> = kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if names.contains(&wanted) {
        return Ok(());
    }
    let available = if names.is_empty() {
        "it defines no contexts".to_string()
    } else {
        format!("its contexts are: {}", names.join(", "))
    };
    Err(format!(
        "config_context {wanted:?} is not a context in the kubeconfig {path}; {available}"
    ))
}

/// An error's message followed by each of its sources, skipping repeats
/// (hyper's "client error (Connect)" says little without its cause).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Why a request got no answer, without the wrappers' own words
/// ("ServiceError", hyper's "client error (Connect)"): e.g. "tcp connect
/// error: Connection refused (os error 111)".
fn transport_cause(e: &kube::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        with_causes(e)
    } else {
        parts.join(": ")
    }
}

/// The cause of a failed request; [`KubeError::Object`] adds the verb, the
/// object and the API server's address.
fn describe(e: kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let mut message = format!("{} ({} {})", status.message, status.code, status.reason);
            if status.code == 409 && status.reason == "Conflict" {
                message.push_str("; another field manager owns a field this resource sets");
            }
            message
        }
        // The request never got an answer: say so, and why.
        other @ (kube::Error::Service(_) | kube::Error::HyperError(_)) => {
            format!("no answer: {}", transport_cause(&other))
        }
        other => with_causes(&other),
    }
}

/// Whether a Deployment has `spec.strategy.rollingUpdate`.
fn has_rolling_update(deployment: Option<&Deployment>) -> bool {
    deployment
        .and_then(|d| d.spec.as_ref()?.strategy.as_ref()?.rolling_update.as_ref())
        .is_some()
}

/// The objects of one resource in the cluster.
pub struct Objects {
    client: Client,
    server: String,
    namespace: String,
    names: Names,
    seen: std::sync::Mutex<Seen>,
}

/// What [`Objects::read`] found, kept for the writes of the same operation
/// so they need not GET each object again: per object (`kind/name`) its
/// metadata, `None` when it did not exist, which adoption needs; and whether
/// the Deployment has a `strategy.rollingUpdate`. Each entry is used once;
/// a stale one costs a retry (adoption's patch carries the
/// `resourceVersion`), never a wrong write.
#[derive(Default)]
struct Seen {
    meta: std::collections::BTreeMap<ObjectId, Option<ObjectMeta>>,
    rolling_update: Option<bool>,
}

impl Seen {
    fn record<K: Resource>(&mut self, kind: Kind, name: &str, object: Option<&K>) {
        self.meta
            .insert(ObjectId::new(kind, name), object.map(|o| o.meta().clone()));
    }
}

impl Objects {
    /// The objects of resource `name` in `namespace`, through `client`
    /// (connected to the API server at `server`).
    pub fn new(client: Client, server: String, namespace: &str, name: &str) -> Self {
        Objects {
            client,
            server,
            namespace: namespace.to_string(),
            names: Names::new(name),
            seen: std::sync::Mutex::new(Seen::default()),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn error(
        &self,
        verb: &'static str,
        kind: &'static str,
        name: &str,
        e: kube::Error,
    ) -> KubeError {
        KubeError::Object {
            verb,
            kind,
            object: format!("{}/{name}", self.namespace),
            server: self.server.clone(),
            message: describe(e),
        }
    }

    async fn get<K>(&self, kind: &'static str, name: &str) -> Result<Option<K>, KubeError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let (at_us, started) = (since_handshake_us(), Instant::now());
        let got = self
            .api::<K>()
            .get_opt(name)
            .await
            .map_err(|e| self.error("reading", kind, name, e));
        tracing::debug!(
            kind,
            name,
            at_us,
            duration_us = micros(started.elapsed()),
            "GET"
        );
        got
    }

    /// Reads every object the resource may own, the four requests at once.
    pub async fn read(&self) -> Result<Live, KubeError> {
        let (at_us, started) = (since_handshake_us(), Instant::now());
        let (config_map, dispatcher, reaper, deployment) = futures::try_join!(
            self.get("ConfigMap", &self.names.config_map),
            self.get("CronJob", &self.names.dispatcher),
            self.get("CronJob", &self.names.reaper),
            self.get("Deployment", &self.names.deployment),
        )?;
        tracing::debug!(
            at_us,
            duration_us = micros(started.elapsed()),
            "read the objects"
        );
        if let Ok(mut seen) = self.seen.lock() {
            let names = &self.names;
            seen.record(Kind::ConfigMap, &names.config_map, config_map.as_ref());
            seen.record(Kind::CronJob, &names.dispatcher, dispatcher.as_ref());
            seen.record(Kind::CronJob, &names.reaper, reaper.as_ref());
            seen.record(Kind::Deployment, &names.deployment, deployment.as_ref());
            seen.rolling_update = Some(has_rolling_update(deployment.as_ref()));
        }
        Ok(Live {
            config_map,
            dispatcher,
            reaper,
            deployment,
        })
    }

    async fn apply_one<K>(&self, id: &ObjectId, object: &K) -> Result<(), KubeError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        // force: the resource owns these fields; taking them back from
        // whoever changed them out of band is what "apply restores it" means.
        let params = PatchParams::apply(MANAGER).force();
        let (kind, name) = (id.kind.as_str(), id.name.as_str());
        // Fields a client-side writer (today's stack) owns become ours first,
        // so this apply removes what it no longer renders.
        let seen = self.seen.lock().ok().and_then(|mut s| s.meta.remove(id));
        super::adopt::adopt(&self.api::<K>(), name, MANAGER, seen)
            .await
            .map_err(|e| self.error("adopting", kind, name, e))?;
        self.api::<K>()
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map(|_| ())
            .map_err(|e| self.error("applying", kind, name, e))
    }

    /// Applies one object (server-side apply, field manager
    /// `terraform-provider-beads`): the single write path of every object.
    pub async fn apply(&self, object: &Object) -> Result<(), KubeError> {
        let id = object.id();
        match object {
            Object::ConfigMap(o) => self.apply_one(&id, o.as_ref()).await,
            Object::CronJob(o) => self.apply_one(&id, o.as_ref()).await,
            Object::Deployment(o) => {
                self.clear_rolling_update(&id.name).await?;
                self.apply_one(&id, o.as_ref()).await
            }
        }
    }

    /// A Deployment switched to `RollingUpdate` out of band gets
    /// `strategy.rollingUpdate` defaulted, owned by whoever switched it; an
    /// apply of `type: Recreate` alone is then refused (kube-apiserver's
    /// `ValidateDeploymentStrategy`: rollingUpdate "may not be specified when
    /// strategy `type` is 'Recreate'"). A merge patch removes both together.
    async fn clear_rolling_update(&self, name: &str) -> Result<(), KubeError> {
        let seen = match self.seen.lock() {
            Ok(mut s) if name == self.names.deployment => s.rolling_update.take(),
            _ => None,
        };
        let has = match seen {
            Some(has) => has,
            None => has_rolling_update(self.get::<Deployment>("Deployment", name).await?.as_ref()),
        };
        if !has {
            return Ok(());
        }
        let patch = serde_json::json!({
            "spec": {"strategy": {"type": "Recreate", "rollingUpdate": null}}
        });
        self.api::<Deployment>()
            .patch(name, &PatchParams::apply(MANAGER), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| self.error("applying", "Deployment", name, e))?;
        // The patch made a new resourceVersion: adoption reads it afresh
        // rather than retrying on a 409.
        if let Ok(mut s) = self.seen.lock() {
            s.meta.remove(&ObjectId::new(Kind::Deployment, name));
        }
        Ok(())
    }

    /// Deletes one object and waits until it is gone.
    pub async fn delete(&self, id: &ObjectId) -> Result<(), KubeError> {
        match id.kind {
            Kind::ConfigMap => self.delete_one::<ConfigMap>("ConfigMap", &id.name).await,
            Kind::CronJob => self.delete_one::<CronJob>("CronJob", &id.name).await,
            Kind::Deployment => self.delete_one::<Deployment>("Deployment", &id.name).await,
        }
    }

    async fn delete_one<K>(&self, kind: &'static str, name: &str) -> Result<(), KubeError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        match self
            .api::<K>()
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(self.error("deleting", kind, name, e)),
        }
        let deadline = tokio::time::Instant::now() + DELETE_TIMEOUT;
        while self.get::<K>(kind, name).await?.is_some() {
            if tokio::time::Instant::now() > deadline {
                return Err(KubeError::Object {
                    verb: "deleting",
                    kind,
                    object: format!("{}/{name}", self.namespace),
                    server: self.server.clone(),
                    message: format!("still present after {}s", DELETE_TIMEOUT.as_secs()),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }
}
