//! The request semantics of the API server, independent of HTTP: create,
//! read, list, update, patch (including server-side apply) and delete, with
//! defaulting, validation, managed fields, resourceVersion and dry run.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::error::{ApiError, BadValue, Details, FieldError, details_json};
use crate::managed_fields::{self, Entry, Operation, Writer};
use crate::resources::{self, NAMESPACES, ResourceType};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::Store;
use crate::util::{canonicalize, meta_mut, meta_str, new_uid, now, random_suffix};
use crate::{defaults, kyverno, patch, ssa, validate};

/// Behaviour switches of a server instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// Emulate a Kyverno-like mutating webhook on CronJob/Deployment writes.
    pub mutate_like_kyverno: bool,
    /// How long a Foreground/Orphan-deleted object (or one with finalizers
    /// owned by the emulated garbage collector) lingers with a deletionTimestamp.
    pub foreground_delete_delay: Duration,
    /// How long a deleted namespace stays `Terminating`.
    pub namespace_delete_delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mutate_like_kyverno: false,
            foreground_delete_delay: Duration::from_millis(300),
            namespace_delete_delay: Duration::from_millis(200),
        }
    }
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// `User-Agent` header (fallback manager name).
    pub user_agent: String,
    /// `force` query parameter.
    pub force: Option<bool>,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
}

impl WriteOptions {
    /// The manager name: `fieldManager`, else the User-Agent up to the first
    /// `/`, else `unknown`.
    pub fn manager(&self) -> String {
        if let Some(m) = self.field_manager.as_deref().filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        let ua: String = self
            .user_agent
            .split('/')
            .next()
            .unwrap_or("")
            .chars()
            .take(128)
            .collect();
        if ua.is_empty() { "unknown".into() } else { ua }
    }

    fn sub(&self) -> &str {
        self.subresource.as_deref().unwrap_or("")
    }
}

/// Patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// From a Content-Type header.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `Background` (default), `Foreground` or `Orphan`.
    pub propagation_policy: Option<String>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
}

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit` (0 = all). Continue tokens are not supported: the first page
    /// is returned without `continue`.
    pub limit: usize,
}

/// A successful response: status code and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status code.
    pub code: u16,
    /// Body.
    pub body: Value,
}

fn reply(code: u16, body: Value) -> Result<Reply, ApiError> {
    Ok(Reply { code, body })
}

/// The API server state.
pub struct ApiServer {
    store: Mutex<Store>,
    /// Behaviour switches.
    pub options: Options,
}

/// Fields of `metadata` only the server sets.
const SYSTEM_META: [&str; 8] = [
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "resourceVersion",
    "selfLink",
    "managedFields",
];

fn qualify_kind(res: &ResourceType) -> String {
    crate::error::qualified(res.group, res.kind)
}

/// The empty object a create is compared against when recording managed
/// fields: the non-pointer structs a typed Go object always has.
fn skeleton(res: &ResourceType) -> Value {
    match res.kind {
        "CronJob" => {
            json!({"metadata":{},"spec":{"jobTemplate":{"metadata":{},"spec":{"template":{"metadata":{},"spec":{"containers":null}}}}},"status":{}})
        }
        "Deployment" => {
            json!({"metadata":{},"spec":{"template":{"metadata":{},"spec":{"containers":null}},"strategy":{}},"status":{}})
        }
        "Namespace" => json!({"metadata":{},"spec":{},"status":{}}),
        _ => json!({"metadata":{}}),
    }
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("managedFields");
    }
    v
}

/// Copies server-owned metadata from `old` (or removes it when there is none).
fn restore_system_meta(new: &mut Value, old: Option<&Value>) {
    let Some(meta) = meta_mut(new) else { return };
    for k in SYSTEM_META {
        match old.and_then(|o| o.get("metadata")).and_then(|m| m.get(k)) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.shift_remove(k);
            }
        }
    }
}

fn spec_changed(res: &ResourceType, old: &Value, new: &Value) -> bool {
    let norm = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
    let mut changed = norm(old.get("spec")) != norm(new.get("spec"));
    if res.kind == "Deployment" {
        changed |= norm(old.pointer("/metadata/annotations"))
            != norm(new.pointer("/metadata/annotations"));
    }
    changed
}

/// `stringData` is merged into base64 `data`; `data` must be valid base64.
fn secret_data(res: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    use base64::Engine as _;
    if res.kind != "Secret" {
        return Ok(());
    }
    let Some(m) = obj.as_object_mut() else {
        return Ok(());
    };
    if let Some(Value::Object(data)) = m.get("data") {
        for (k, v) in data {
            let s = v.as_str().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal {} into Go struct field Secret.data of type []uint8 (key {k:?})",
                    json_type(v)
                ))
            })?;
            if let Err(e) = base64::engine::general_purpose::STANDARD.decode(s) {
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: {}",
                    base64_error(&e)
                )));
            }
        }
    }
    if let Some(Value::Object(sd)) = m.shift_remove("stringData") {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if let Some(data) = data.as_object_mut() {
            for (k, v) in sd {
                let s = v.as_str().unwrap_or("");
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(s)),
                );
            }
        }
    }
    Ok(())
}

fn base64_error(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => {
            format!("illegal base64 data at input byte {i}")
        }
        other => format!("illegal base64 data: {other}"),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl ApiServer {
    /// A server with the `default`, `kube-system`, `kube-public` and
    /// `kube-node-lease` namespaces.
    pub fn new(options: Options) -> Self {
        let s = Self {
            store: Mutex::new(Store::new()),
            options,
        };
        {
            let mut store = s.lock();
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let mut obj = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":ns}});
                defaults::apply(&NAMESPACES, &mut obj);
                if let Some(m) = meta_mut(&mut obj) {
                    m.insert("uid".into(), json!(new_uid()));
                    m.insert("creationTimestamp".into(), json!(now()));
                }
                let mut entries = Vec::new();
                let w = Writer {
                    manager: "kube-apiserver",
                    api_version: "v1",
                    subresource: "",
                    now: &now(),
                    has_status: true,
                };
                managed_fields::update(
                    schema::for_resource(&NAMESPACES),
                    &skeleton(&NAMESPACES),
                    &obj,
                    &mut entries,
                    &w,
                );
                managed_fields::encode(&mut obj, entries);
                canonicalize(&mut obj);
                store.put(&NAMESPACES, "", ns, obj);
            }
        }
        s
    }

    /// Locks the store.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parses a request body and checks it against the URL: apiVersion,
    /// kind and namespace must match; they are filled in when absent.
    fn decode(&self, res: &ResourceType, ns: &str, body: &[u8]) -> Result<Value, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?;
        let Value::Object(mut m) = v else {
            return Err(ApiError::bad_request(
                "couldn't get version/kind; json parse error: expected an object",
            ));
        };
        let want_av = res.api_version();
        match m.get("apiVersion").and_then(Value::as_str) {
            Some(av) if av != want_av => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )));
            }
            _ => {
                m.insert("apiVersion".into(), json!(want_av));
            }
        }
        match m.get("kind").and_then(Value::as_str) {
            Some(k) if k != res.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    res.kind
                )));
            }
            _ => {
                m.insert("kind".into(), json!(res.kind));
            }
        }
        let mut obj = Value::Object(m);
        check_namespace_field(res, ns, &mut obj)?;
        Ok(obj)
    }

    fn check_namespace_exists(
        &self,
        store: &Store,
        res: &ResourceType,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if !res.namespaced {
            return Ok(());
        }
        match store.get(&NAMESPACES, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if !meta_str(n, "deletionTimestamp").is_empty() => Err(ApiError::forbidden(
                res.group,
                res.plural,
                name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    fn writer<'a>(
        res: &ResourceType,
        manager: &'a str,
        api_version: &'a str,
        o: &'a WriteOptions,
        now: &'a str,
    ) -> Writer<'a> {
        Writer {
            manager,
            api_version,
            subresource: o.sub(),
            now,
            has_status: res.has_status && o.sub() != "status",
        }
    }

    /// Applies the emulated mutating webhook and records its changes.
    fn admit(&self, res: &ResourceType, obj: &mut Value, entries: &mut Vec<Entry>, now: &str) {
        if !self.options.mutate_like_kyverno || !matches!(res.kind, "CronJob" | "Deployment") {
            return;
        }
        let before = obj.clone();
        kyverno::mutate(res, obj);
        let av = res.api_version();
        let w = Writer {
            manager: kyverno::MANAGER,
            api_version: &av,
            subresource: "",
            now,
            has_status: res.has_status,
        };
        managed_fields::update(schema::for_resource(res), &before, obj, entries, &w);
    }

    fn validate(res: &ResourceType, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let errs = validate::validate(res, obj, old);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                res.group,
                res.kind,
                meta_str(obj, "name"),
                &errs,
            ))
        }
    }

    /// GET one object.
    pub fn get(&self, res: &ResourceType, ns: &str, name: &str) -> Result<Reply, ApiError> {
        let store = self.lock();
        let obj = store
            .get(res, ns, name)
            .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        reply(200, obj.clone())
    }

    /// The objects a list request selects, and the list resourceVersion.
    pub fn select(
        &self,
        res: &ResourceType,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<(Vec<Value>, u64), ApiError> {
        let ls = match o.label_selector.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(LabelSelector::parse(s).map_err(ApiError::bad_request)?),
            None => None,
        };
        let fs = match o.field_selector.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(
                FieldSelector::parse(s, &["metadata.name", "metadata.namespace"])
                    .map_err(ApiError::bad_request)?,
            ),
            None => None,
        };
        let store = self.lock();
        let mut items: Vec<Value> = store
            .list(res, ns)
            .into_iter()
            .filter(|o| ls.as_ref().is_none_or(|s| s.matches(o)))
            .filter(|o| fs.as_ref().is_none_or(|s| s.matches(o)))
            .cloned()
            .collect();
        if o.limit > 0 {
            items.truncate(o.limit);
        }
        Ok((items, store.resource_version()))
    }

    /// LIST.
    pub fn list(
        &self,
        res: &ResourceType,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<Reply, ApiError> {
        let (items, rv) = self.select(res, ns, o)?;
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut i| {
                if let Some(m) = i.as_object_mut() {
                    m.shift_remove("apiVersion");
                    m.shift_remove("kind");
                }
                i
            })
            .collect();
        reply(
            200,
            json!({"kind": res.list_kind, "apiVersion": res.api_version(),
                "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        )
    }

    /// POST.
    pub fn create(
        self: &Arc<Self>,
        res: &ResourceType,
        ns: &str,
        body: &[u8],
        o: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let mut obj = self.decode(res, ns, body)?;
        if !meta_str(&obj, "resourceVersion").is_empty() {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let schema = schema::for_resource(res);
        ssa::normalize(schema, &mut obj);
        restore_system_meta(&mut obj, None);
        if res.has_status
            && let Some(m) = obj.as_object_mut()
        {
            m.insert("status".into(), json!({}));
        }
        secret_data(res, &mut obj)?;
        let mut store = self.lock();
        let mut name = meta_str(&obj, "name").to_string();
        let generate = meta_str(&obj, "generateName").to_string();
        if name.is_empty() && !generate.is_empty() {
            name = loop {
                let candidate = format!("{generate}{}", random_suffix());
                if store.get(res, ns, &candidate).is_none() {
                    break candidate;
                }
            };
            if let Some(m) = meta_mut(&mut obj) {
                m.insert("name".into(), json!(name));
            }
        }
        if res.kind == "Namespace" {
            ns_label(&mut obj);
        }
        defaults::apply(res, &mut obj);
        let now = now();
        let manager = o.manager();
        let av = res.api_version();
        let mut entries = Vec::new();
        managed_fields::update(
            schema,
            &skeleton(res),
            &obj,
            &mut entries,
            &Self::writer(res, &manager, &av, o, &now),
        );
        self.check_namespace_exists(&store, res, ns, &name)?;
        self.admit(res, &mut obj, &mut entries, &now);
        Self::validate(res, &obj, None)?;
        if store.get(res, ns, &name).is_some() {
            return Err(ApiError::already_exists(res.group, res.plural, &name));
        }
        Self::finish_create(&mut store, res, ns, &name, obj, entries, &now, o)
    }

    /// PUT (main resource or `status`).
    pub fn update(
        self: &Arc<Self>,
        res: &ResourceType,
        ns: &str,
        name: &str,
        body: &[u8],
        o: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let obj = self.decode(res, ns, body)?;
        check_name(&obj, name)?;
        let mut store = self.lock();
        let old = store
            .get(res, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        self.update_with(&mut store, res, ns, name, &old, obj, o)
    }

    /// PATCH (main resource or `status`), including server-side apply.
    pub fn patch(
        self: &Arc<Self>,
        res: &ResourceType,
        ns: &str,
        name: &str,
        ptype: PatchType,
        body: &[u8],
        o: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let mut errs = Vec::new();
        if ptype == PatchType::Apply {
            if o.field_manager.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(
                    "fieldManager",
                    "is required for apply patch",
                ));
            }
        } else if o.force.is_some() {
            errs.push(FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            ));
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid("meta.k8s.io", "PatchOptions", "", &errs));
        }
        if ptype == PatchType::Apply {
            return self.apply(res, ns, name, body, o);
        }
        let patch_doc: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let mut store = self.lock();
        let old = store
            .get(res, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        let patched = match ptype {
            PatchType::Merge => {
                if !patch_doc.is_object() {
                    return Err(ApiError::bad_request("merge patch must be a JSON object"));
                }
                patch::merge_patch(&old, &patch_doc)
            }
            PatchType::Json => patch::json_patch(&old, &patch_doc).map_err(|e| match e {
                patch::PatchError::Malformed(m) => ApiError::bad_request(m),
                patch::PatchError::Failed(m) => ApiError {
                    code: 422,
                    reason: "Invalid".into(),
                    message: m,
                    details: None,
                },
            })?,
            PatchType::Strategic => {
                patch::strategic_merge_patch(schema::for_resource(res), &old, &patch_doc)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            PatchType::Apply => unreachable!("handled above"),
        };
        let mut patched = patched;
        check_namespace_field(res, ns, &mut patched)?;
        check_name(&patched, name)?;
        self.update_with(&mut store, res, ns, name, &old, patched, o)
    }

    /// GET of a Deployment's `scale` subresource.
    pub fn get_scale(&self, res: &ResourceType, ns: &str, name: &str) -> Result<Reply, ApiError> {
        let store = self.lock();
        let obj = store
            .get(res, ns, name)
            .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        reply(200, scale_of(obj))
    }

    /// PUT (`ptype` None) or PATCH of a Deployment's `scale` subresource:
    /// only `spec.replicas` is taken.
    pub fn write_scale(
        self: &Arc<Self>,
        res: &ResourceType,
        ns: &str,
        name: &str,
        ptype: Option<PatchType>,
        body: &[u8],
        o: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let doc: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))?;
        let mut store = self.lock();
        let old = store
            .get(res, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        let current = scale_of(&old);
        let desired = match ptype {
            None => doc,
            Some(PatchType::Json) => patch::json_patch(&current, &doc)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            Some(_) => patch::merge_patch(&current, &doc),
        };
        let rv = meta_str(&desired, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::stale(res.group, res.plural, name));
        }
        let replicas = desired
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let mut new = old.clone();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("replicas".into(), json!(replicas));
        }
        let out = self.update_with(&mut store, res, ns, name, &old, new, o)?;
        reply(out.code, scale_of(&out.body))
    }

    /// The shared tail of PUT and non-apply PATCH.
    #[allow(clippy::too_many_arguments)]
    fn update_with(
        self: &Arc<Self>,
        store: &mut Store,
        res: &ResourceType,
        ns: &str,
        name: &str,
        old: &Value,
        mut new: Value,
        o: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let rv = meta_str(&new, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(old, "resourceVersion") {
            return Err(ApiError::stale(res.group, res.plural, name));
        }
        let schema = schema::for_resource(res);
        // Read before the server-owned metadata is restored from `old`; a
        // subresource write never sets them (upstream
        // `ignoreManagedFieldsFromRequestObject`).
        let requested = match o.sub() {
            "" => managed_fields::requested(&new),
            _ => managed_fields::Requested::Live,
        };
        set_type_meta(res, &mut new);
        ssa::normalize(schema, &mut new);
        restore_system_meta(&mut new, Some(old));
        if o.sub() == "status" {
            let status = new.get("status").cloned();
            new = old.clone();
            if let Some(m) = new.as_object_mut() {
                m.insert("status".into(), status.unwrap_or_else(|| json!({})));
            }
        } else if res.has_status
            && let Some(m) = new.as_object_mut()
        {
            m.insert(
                "status".into(),
                old.get("status").cloned().unwrap_or_else(|| json!({})),
            );
        }
        secret_data(res, &mut new)?;
        if res.kind == "Namespace" {
            ns_label(&mut new);
        }
        defaults::apply(res, &mut new);
        let now = now();
        let manager = o.manager();
        let av = res.api_version();
        let mut entries = match requested {
            managed_fields::Requested::Live => managed_fields::decode(old),
            managed_fields::Requested::Reset => Vec::new(),
            managed_fields::Requested::Entries(entries) => entries,
        };
        managed_fields::update(
            schema,
            &without_managed_fields(old),
            &without_managed_fields(&new),
            &mut entries,
            &Self::writer(res, &manager, &av, o, &now),
        );
        self.admit(res, &mut new, &mut entries, &now);
        Self::validate(res, &new, Some(old))?;
        self.finish_update(store, res, ns, name, old, new, entries, o)
    }

    /// Stamps a new object (uid, creationTimestamp, generation), records its
    /// managed fields and stores it, or only returns it on a dry run. Shared
    /// by POST and by an apply that creates.
    #[allow(clippy::too_many_arguments)]
    fn finish_create(
        store: &mut Store,
        res: &ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        entries: Vec<Entry>,
        now: &str,
        o: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        if let Some(m) = meta_mut(&mut obj) {
            m.insert("uid".into(), json!(new_uid()));
            m.insert("creationTimestamp".into(), json!(now));
            if res.has_generation {
                m.insert("generation".into(), json!(1));
            }
        }
        managed_fields::encode(&mut obj, entries);
        canonicalize(&mut obj);
        if o.dry_run {
            return reply(201, obj);
        }
        let stored = store.put(res, ns, name, obj);
        reply(201, stored)
    }

    /// Bumps generation, stores (unless no-op or dry run), and handles the
    /// last finalizer of a deleting object going away.
    #[allow(clippy::too_many_arguments)]
    fn finish_update(
        self: &Arc<Self>,
        store: &mut Store,
        res: &ResourceType,
        ns: &str,
        name: &str,
        old: &Value,
        mut new: Value,
        entries: Vec<Entry>,
        o: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        if res.has_generation
            && spec_changed(res, old, &new)
            && let Some(m) = meta_mut(&mut new)
        {
            let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
            m.insert("generation".into(), json!(g + 1));
        }
        managed_fields::encode(&mut new, entries);
        canonicalize(&mut new);
        if new == *old {
            return reply(200, old.clone());
        }
        if o.dry_run {
            return reply(200, new);
        }
        let deleting = !meta_str(&new, "deletionTimestamp").is_empty();
        let no_finalizers = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if deleting && no_finalizers {
            store.put(res, ns, name, new);
            let gone = store.remove(res, ns, name).unwrap_or(Value::Null);
            return reply(200, gone);
        }
        let stored = store.put(res, ns, name, new);
        reply(200, stored)
    }

    /// Server-side apply.
    fn apply(
        self: &Arc<Self>,
        res: &ResourceType,
        ns: &str,
        name: &str,
        body: &[u8],
        o: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let config: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error decoding YAML: error converting YAML to JSON: only JSON (a subset of YAML) is accepted by this server: {e}"
            ))
        })?;
        let Value::Object(_) = config else {
            return Err(ApiError::bad_request(
                "error decoding YAML: the apply configuration must be an object",
            ));
        };
        let want_av = res.api_version();
        let av = config
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if av != want_av {
            return Err(ApiError::bad_request(format!(
                "Incorrect version specified in apply patch. Specified patch version: {av}, expected: {want_av}"
            )));
        }
        let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != res.kind {
            return Err(ApiError::bad_request(format!(
                "Incorrect kind specified in apply patch. Specified patch kind: {kind}, expected: {}",
                res.kind
            )));
        }
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|v| !v.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let mut config = config;
        check_namespace_field(res, ns, &mut config)?;
        let cfg_name = meta_str(&config, "name");
        if !cfg_name.is_empty() && cfg_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({cfg_name}) does not match the name on the URL ({name})"
            )));
        }
        let schema = schema::for_resource(res);
        let mut store = self.lock();
        let old = store.get(res, ns, name).cloned();
        let created = old.is_none();
        if created {
            self.check_namespace_exists(&store, res, ns, name)?;
        }
        let rv = meta_str(&config, "resourceVersion");
        if let Some(old) = &old
            && !rv.is_empty()
            && rv != meta_str(old, "resourceVersion")
        {
            return Err(ApiError::stale(res.group, res.plural, name));
        }
        let live = match &old {
            Some(o) => without_managed_fields(o),
            None => {
                let mut l =
                    json!({"apiVersion": want_av, "kind": res.kind, "metadata": {"name": name}});
                if res.namespaced
                    && let Some(m) = meta_mut(&mut l)
                {
                    m.insert("namespace".into(), json!(ns));
                }
                l
            }
        };
        let entries = old.as_ref().map(managed_fields::decode).unwrap_or_default();
        let now = now();
        let manager = o.manager();
        let w = Self::writer(res, &manager, &want_av, o, &now);
        let applied =
            managed_fields::apply(schema, &live, &config, entries, &w, o.force == Some(true))?;
        let mut new = applied.object;
        let mut entries = applied.entries;
        set_type_meta(res, &mut new);
        if let Some(m) = meta_mut(&mut new) {
            m.insert("name".into(), json!(name));
            if res.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.shift_remove("namespace");
            }
        }
        restore_system_meta(&mut new, old.as_ref());
        if res.has_status
            && let Some(m) = new.as_object_mut()
        {
            let status = old
                .as_ref()
                .and_then(|o| o.get("status").cloned())
                .unwrap_or_else(|| json!({}));
            m.insert("status".into(), status);
        }
        secret_data(res, &mut new)?;
        if res.kind == "Namespace" {
            ns_label(&mut new);
        }
        defaults::apply(res, &mut new);
        self.admit(res, &mut new, &mut entries, &now);
        Self::validate(res, &new, old.as_ref())?;
        let content_changed = match &old {
            Some(o) => without_managed_fields(o) != without_managed_fields(&new),
            None => true,
        };
        if content_changed {
            managed_fields::touch(&mut entries, &manager, Operation::Apply, &now);
        }
        match &old {
            Some(old) => self.finish_update(&mut store, res, ns, name, old, new, entries, o),
            None => Self::finish_create(&mut store, res, ns, name, new, entries, &now, o),
        }
    }

    /// DELETE one object.
    pub fn delete(
        self: &Arc<Self>,
        res: &ResourceType,
        ns: &str,
        name: &str,
        o: &DeleteOptions,
    ) -> Result<Reply, ApiError> {
        let mut store = self.lock();
        let old = store
            .get(res, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        let uid = meta_str(&old, "uid").to_string();
        if let Some(want) = o.precondition_uid.as_deref().filter(|u| !u.is_empty())
            && want != uid
        {
            return Err(ApiError::conflict(
                res.group,
                res.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        let rv = meta_str(&old, "resourceVersion").to_string();
        if let Some(want) = o.precondition_rv.as_deref().filter(|r| !r.is_empty())
            && want != rv
        {
            return Err(ApiError::conflict(
                res.group,
                res.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
                ),
            ));
        }
        if res.kind == "Namespace" {
            return self.delete_namespace(&mut store, name, old, o);
        }
        let policy = o.propagation_policy.as_deref().unwrap_or("Background");
        let finalizer = match policy {
            "Foreground" => Some("foregroundDeletion"),
            "Orphan" => Some("orphan"),
            "Background" | "" => None,
            other => {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "DeleteOptions",
                    "",
                    &[FieldError::not_supported(
                        "propagationPolicy",
                        other,
                        &["Foreground", "Background", "Orphan"],
                    )],
                ));
            }
        };
        let user_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if finalizer.is_none() && !user_finalizers {
            if !o.dry_run {
                store.remove(res, ns, name);
            }
            let details = Details {
                name: name.into(),
                group: res.group.into(),
                kind: res.plural.into(),
                uid,
                ..Details::default()
            };
            return reply(
                200,
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details": details_json(&details)}),
            );
        }
        // Graceful: mark as deleting; the emulated garbage collector removes
        // its own finalizer after a delay.
        if !meta_str(&old, "deletionTimestamp").is_empty() {
            return reply(200, old);
        }
        let mut new = old.clone();
        if let Some(m) = meta_mut(&mut new) {
            if res.has_generation {
                let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
                m.insert("generation".into(), json!(g + 1));
            }
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if let Some(f) = finalizer {
                let list = m.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut()
                    && !list.contains(&json!(f))
                {
                    list.push(json!(f));
                }
            }
        }
        canonicalize(&mut new);
        if o.dry_run {
            return reply(200, new);
        }
        let stored = store.put(res, ns, name, new);
        if let Some(f) = finalizer {
            let this = Arc::clone(self);
            let (ns, name, f) = (ns.to_string(), name.to_string(), f.to_string());
            let res: &'static ResourceType =
                resources::lookup(res.group, res.version, res.plural).unwrap_or(&NAMESPACES);
            let delay = self.options.foreground_delete_delay;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                this.gc_finalizer(res, &ns, &name, &f);
            });
        }
        reply(200, stored)
    }

    /// The emulated garbage collector: drops its finalizer and removes the
    /// object when no finalizers remain.
    fn gc_finalizer(&self, res: &ResourceType, ns: &str, name: &str, finalizer: &str) {
        let mut store = self.lock();
        let Some(mut obj) = store.get(res, ns, name).cloned() else {
            return;
        };
        let mut remaining = 0;
        if let Some(list) = obj
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            list.retain(|f| f.as_str() != Some(finalizer));
            remaining = list.len();
            if list.is_empty()
                && let Some(m) = meta_mut(&mut obj)
            {
                m.shift_remove("finalizers");
            }
        }
        if remaining == 0 {
            store.put(res, ns, name, obj);
            store.remove(res, ns, name);
        } else {
            store.put(res, ns, name, obj);
        }
    }

    fn delete_namespace(
        self: &Arc<Self>,
        store: &mut Store,
        name: &str,
        old: Value,
        o: &DeleteOptions,
    ) -> Result<Reply, ApiError> {
        if matches!(name, "default" | "kube-system" | "kube-public") {
            return Err(ApiError::forbidden(
                "",
                "namespaces",
                name,
                "this namespace may not be deleted",
            ));
        }
        if !meta_str(&old, "deletionTimestamp").is_empty() {
            return reply(200, old);
        }
        let mut new = old;
        if let Some(m) = meta_mut(&mut new) {
            m.insert("deletionTimestamp".into(), json!(now()));
        }
        if let Some(st) = new.get_mut("status").and_then(Value::as_object_mut) {
            st.insert("phase".into(), json!("Terminating"));
        }
        if o.dry_run {
            return reply(200, new);
        }
        let stored = store.put(&NAMESPACES, "", name, new);
        let this = Arc::clone(self);
        let ns = name.to_string();
        let delay = self.options.namespace_delete_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut store = this.lock();
            for (qualified, obj_name) in store.in_namespace(&ns) {
                if let Some(r) = resources::ALL.iter().find(|r| r.qualified() == qualified) {
                    store.remove(r, &ns, &obj_name);
                }
            }
            store.remove(&NAMESPACES, "", &ns);
        });
        reply(200, stored)
    }

    /// DELETE a collection: deletes every selected object (Background).
    pub fn delete_collection(
        self: &Arc<Self>,
        res: &ResourceType,
        ns: Option<&str>,
        lo: &ListOptions,
        o: &DeleteOptions,
    ) -> Result<Reply, ApiError> {
        let (items, _) = self.select(res, ns, lo)?;
        let mut deleted = Vec::new();
        for item in items {
            let name = meta_str(&item, "name").to_string();
            let ns = meta_str(&item, "namespace").to_string();
            if self.delete(res, &ns, &name, o).is_ok() {
                let mut i = item;
                if let Some(m) = i.as_object_mut() {
                    m.shift_remove("apiVersion");
                    m.shift_remove("kind");
                }
                deleted.push(i);
            }
        }
        let rv = self.lock().resource_version();
        reply(
            200,
            json!({"kind": res.list_kind, "apiVersion": res.api_version(),
                "metadata": {"resourceVersion": rv.to_string()}, "items": deleted}),
        )
    }
}

/// The `autoscaling/v1` Scale view of a Deployment.
fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = |k: &str| {
        obj.pointer(&format!("/metadata/{k}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta("name"), "namespace": meta("namespace"), "uid": meta("uid"),
            "resourceVersion": meta("resourceVersion"), "creationTimestamp": meta("creationTimestamp")},
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector}
    })
}

fn set_type_meta(res: &ResourceType, obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(res.api_version()));
        m.insert("kind".into(), json!(res.kind));
    }
}

/// The namespace in the body must match the URL; it is filled in when absent.
fn check_namespace_field(res: &ResourceType, ns: &str, obj: &mut Value) -> Result<(), ApiError> {
    let body_ns = meta_str(obj, "namespace").to_string();
    let Some(m) = meta_mut(obj) else {
        return Err(ApiError::bad_request("object has no metadata"));
    };
    if res.namespaced {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        m.insert("namespace".into(), json!(ns));
    } else {
        m.shift_remove("namespace");
    }
    Ok(())
}

fn check_name(obj: &Value, name: &str) -> Result<(), ApiError> {
    let body_name = meta_str(obj, "name");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// Namespaces carry `kubernetes.io/metadata.name=<name>`.
fn ns_label(obj: &mut Value) {
    let name = meta_str(obj, "name").to_string();
    if name.is_empty() {
        return;
    }
    if let Some(m) = meta_mut(obj) {
        let labels = m
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
}

/// Used by the HTTP layer for `dryRun` values other than `All`.
pub fn invalid_dry_run(kind: &str, value: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        kind,
        "",
        &[FieldError {
            kind: crate::error::FieldErrorKind::NotSupported,
            field: "dryRun".into(),
            value: BadValue::Plain(format!("[]string{{{value:?}}}")),
            detail: "supported values: \"All\"".into(),
        }],
    )
}

/// The qualified kind, e.g. `CronJob.batch` (for messages).
pub fn qualified_kind(res: &ResourceType) -> String {
    qualify_kind(res)
}
