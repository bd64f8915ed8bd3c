//! [`ProviderService`]: the `tfplugin6.Provider` gRPC service, translating
//! between protobuf messages and the [`Provider`] / [`DynResource`] traits.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::plan::plan;
use super::{CancelToken, Ctx, DynResource, Provider};
use crate::diag::{AttributePath, Diagnostic, Diagnostics};
use crate::proto::tfplugin6 as pb;
use crate::proto::tfplugin6::provider_server::Provider as ProviderRpc;
use crate::schema::Schema;
use crate::value::{JsonOptions, Type, Value, decode_json, decode_msgpack, encode_msgpack};

/// Maximum size of one gRPC message in either direction (terraform-plugin-go's value).
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;

struct Entry {
    resource: Arc<dyn DynResource>,
    schema: Schema,
    ty: Type,
}

/// The provider protocol service for one [`Provider`].
pub struct ProviderService {
    provider: Arc<dyn Provider>,
    provider_schema: Schema,
    provider_type: Type,
    resources: BTreeMap<String, Entry>,
    schema_problems: Vec<String>,
    cancel: CancelToken,
}

impl std::fmt::Debug for ProviderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderService")
            .field("resources", &self.resources.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ProviderService {
    /// Builds the service, collecting the provider's and resources' schemas once.
    pub fn new(provider: impl Provider) -> ProviderService {
        let provider: Arc<dyn Provider> = Arc::new(provider);
        let provider_schema = Schema::new(provider.schema());
        let mut schema_problems: Vec<String> = provider_schema
            .block
            .check()
            .into_iter()
            .map(|p| format!("provider: {p}"))
            .collect();
        let mut resources = BTreeMap::new();
        for resource in provider.resources() {
            let schema = resource.schema();
            let name = resource.type_name();
            schema_problems.extend(
                schema
                    .block
                    .check()
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            );
            if resources.contains_key(name) {
                schema_problems.push(format!("{name}: resource type declared twice"));
            }
            let ty = schema.implied_type();
            resources.insert(
                name.to_string(),
                Entry {
                    resource,
                    schema,
                    ty,
                },
            );
        }
        ProviderService {
            provider_type: provider_schema.implied_type(),
            provider_schema,
            provider,
            resources,
            schema_problems,
            cancel: CancelToken::new(),
        }
    }

    /// The token StopProvider cancels.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Problems found in the declared schemas (reported by GetProviderSchema).
    pub fn schema_problems(&self) -> &[String] {
        &self.schema_problems
    }

    fn ctx(&self) -> Ctx {
        Ctx::new(self.cancel.clone())
    }

    fn entry(&self, type_name: &str) -> Result<&Entry, Diagnostics> {
        self.resources.get(type_name).ok_or_else(|| {
            Diagnostic::error(
                "Unknown resource type",
                format!("This provider has no resource type {type_name:?}."),
            )
            .into()
        })
    }

    /// Runs `fut` unless StopProvider cancels it first.
    async fn guarded<T>(
        &self,
        fut: impl Future<Output = Result<T, Diagnostics>>,
    ) -> Result<T, Diagnostics> {
        tokio::select! {
            r = fut => r,
            _ = self.cancel.cancelled() => Err(Diagnostic::error(
                "Operation cancelled",
                "Terraform asked the provider to stop (StopProvider) before the operation finished.",
            ).into()),
        }
    }
}

/// Decodes a request value: msgpack if present, else JSON, else null.
fn decode(dv: Option<&pb::DynamicValue>, ty: &Type, what: &str) -> Result<Value, Diagnostics> {
    let res = match dv {
        Some(d) if !d.msgpack.is_empty() => decode_msgpack(&d.msgpack, ty),
        Some(d) if !d.json.is_empty() => decode_json(&d.json, ty, JsonOptions::default()),
        _ => Ok(Value::Null),
    };
    res.map_err(|e| {
        Diagnostic::error(
            "Invalid value from Terraform",
            format!(
                "The {what} could not be decoded: {e}. This is a bug in the provider or Terraform."
            ),
        )
        .into()
    })
}

/// Encodes a response value as msgpack.
fn encode(v: &Value, ty: &Type, what: &str) -> Result<pb::DynamicValue, Diagnostics> {
    encode_msgpack(v, ty)
        .map(|msgpack| pb::DynamicValue {
            msgpack,
            json: vec![],
        })
        .map_err(|e| {
            Diagnostic::error(
                "Provider produced an invalid value",
                format!("The {what} does not fit the schema: {e}. This is a bug in the provider."),
            )
            .into()
        })
}

/// Error paths where `new` differs from a known value in `planned`.
fn inconsistencies(
    planned: &Value,
    new: &Value,
    path: AttributePath,
    out: &mut Vec<AttributePath>,
) {
    match (planned, new) {
        (Value::Unknown, _) => {}
        (Value::Object(p), Value::Object(n)) => {
            for (k, pv) in p {
                let nv = n.get(k).unwrap_or(&Value::Null);
                inconsistencies(pv, nv, path.clone().and_attr(k), out);
            }
        }
        (Value::List(p), Value::List(n)) | (Value::Tuple(p), Value::Tuple(n))
            if p.len() == n.len() =>
        {
            for (i, (pv, nv)) in p.iter().zip(n).enumerate() {
                inconsistencies(pv, nv, path.clone().and_index(i as i64), out);
            }
        }
        (Value::Map(p), Value::Map(n)) if p.len() == n.len() && p.keys().eq(n.keys()) => {
            for (k, pv) in p {
                if let Some(nv) = n.get(k) {
                    inconsistencies(pv, nv, path.clone().and_key(k), out);
                }
            }
        }
        // Terraform only checks the element count of sets.
        (Value::Set(p), Value::Set(n)) => {
            if p.len() != n.len() {
                out.push(path);
            }
        }
        (p, n) => {
            if p != n {
                out.push(path);
            }
        }
    }
}

fn check_applied(planned: &Value, new: &Value, diags: &mut Diagnostics) {
    if !new.is_wholly_known() {
        diags.push(Diagnostic::error(
            "Provider returned unknown values after apply",
            "The new state still contains unknown values. This is a bug in the provider.",
        ));
    }
    let mut bad = Vec::new();
    inconsistencies(planned, new, AttributePath::default(), &mut bad);
    for p in bad {
        diags.push(
            Diagnostic::error(
                "Provider produced inconsistent result after apply",
                format!("The value of {p} differs from the plan. This is a bug in the provider."),
            )
            .at(p),
        );
    }
}

#[tonic::async_trait]
impl ProviderRpc for ProviderService {
    async fn get_metadata(
        &self,
        _req: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(server_capabilities()),
            diagnostics: schema_diagnostics(&self.schema_problems),
            data_sources: vec![],
            resources: self
                .resources
                .keys()
                .map(|k| pb::get_metadata::ResourceMetadata {
                    type_name: k.clone(),
                })
                .collect(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _req: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        tracing::debug!("GetProviderSchema");
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(self.provider_schema.to_proto()),
            resource_schemas: self
                .resources
                .iter()
                .map(|(k, e)| (k.clone(), e.schema.to_proto()))
                .collect(),
            data_source_schemas: Default::default(),
            diagnostics: schema_diagnostics(&self.schema_problems),
            provider_meta: None,
            server_capabilities: Some(server_capabilities()),
        }))
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        match decode(
            req.config.as_ref(),
            &self.provider_type,
            "provider configuration",
        ) {
            Ok(config) => {
                self.provider_schema
                    .block
                    .validate(&config, &AttributePath::default(), &mut diags);
                self.provider.validate(&config, &mut diags);
            }
            Err(d) => diags.extend(d),
        }
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics: diags.to_proto(),
        }))
    }

    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let req = req.into_inner();
        tracing::debug!(type_name = %req.type_name, "ValidateResourceConfig");
        let mut diags = Diagnostics::new();
        let result = self
            .entry(&req.type_name)
            .and_then(|e| Ok((e, decode(req.config.as_ref(), &e.ty, "configuration")?)));
        match result {
            Ok((e, config)) => {
                e.schema
                    .block
                    .validate(&config, &AttributePath::default(), &mut diags);
                e.resource.validate(&config, &mut diags);
            }
            Err(d) => diags.extend(d),
        }
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics: diags.to_proto(),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let req = req.into_inner();
        let d = Diagnostics::from(Diagnostic::error(
            "Unknown data source",
            format!("This provider has no data source {:?}.", req.type_name),
        ));
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: d.to_proto(),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let req = req.into_inner();
        tracing::debug!(type_name = %req.type_name, version = req.version, "UpgradeResourceState");
        let result = (|| {
            let e = self.entry(&req.type_name)?;
            let json = req
                .raw_state
                .as_ref()
                .map(|r| r.json.as_slice())
                .unwrap_or_default();
            if json.is_empty() {
                return Err(Diagnostic::error(
                    "Unsupported state format",
                    "The stored state has no JSON form (it was written by Terraform older than 0.12).",
                )
                .into());
            }
            let upgraded = if req.version == e.schema.version {
                let opts = JsonOptions {
                    ignore_unknown_attributes: true,
                };
                decode_json(json, &e.ty, opts).map_err(|err| {
                    Diagnostics::from(Diagnostic::error(
                        "Stored state does not match the schema",
                        format!("The stored state could not be read: {err}."),
                    ))
                })?
            } else if req.version > e.schema.version {
                return Err(Diagnostic::error(
                    "State written by a newer provider",
                    format!(
                        "The state has schema version {}, this provider knows up to {}.",
                        req.version, e.schema.version
                    ),
                )
                .into());
            } else {
                e.resource.upgrade_state(req.version, json)?
            };
            encode(&upgraded, &e.ty, "upgraded state")
        })();
        let (upgraded_state, diagnostics) = match result {
            Ok(v) => (Some(v), vec![]),
            Err(d) => (None, d.to_proto()),
        };
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state,
            diagnostics,
        }))
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let req = req.into_inner();
        tracing::debug!(terraform_version = %req.terraform_version, "ConfigureProvider");
        let diags = match decode(
            req.config.as_ref(),
            &self.provider_type,
            "provider configuration",
        ) {
            Ok(config) => self
                .guarded(async {
                    let d = self
                        .provider
                        .configure(&req.terraform_version, config)
                        .await;
                    Ok::<_, Diagnostics>(d)
                })
                .await
                .unwrap_or_else(|d| d),
            Err(d) => d,
        };
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics: diags.to_proto(),
        }))
    }

    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let req = req.into_inner();
        tracing::debug!(type_name = %req.type_name, "ReadResource");
        let result = async {
            let e = self.entry(&req.type_name)?;
            let current = decode(req.current_state.as_ref(), &e.ty, "current state")?;
            if current.is_null() {
                return Ok((current, e));
            }
            let new = self.guarded(e.resource.read(&self.ctx(), &current)).await?;
            if !new.is_wholly_known() {
                return Err(Diagnostic::error(
                    "Provider returned unknown values from read",
                    "The refreshed state contains unknown values. This is a bug in the provider.",
                )
                .into());
            }
            Ok((new, e))
        }
        .await;
        let (new_state, diagnostics) =
            match result.and_then(|(v, e)| encode(&v, &e.ty, "refreshed state")) {
                Ok(v) => (Some(v), vec![]),
                // On error, hand the current state back so nothing is lost.
                Err(d) => (req.current_state.clone(), d.to_proto()),
            };
        Ok(Response::new(pb::read_resource::Response {
            new_state,
            diagnostics,
            private: req.private,
        }))
    }

    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let req = req.into_inner();
        tracing::debug!(type_name = %req.type_name, "PlanResourceChange");
        let result = (|| {
            let e = self.entry(&req.type_name)?;
            let prior = decode(req.prior_state.as_ref(), &e.ty, "prior state")?;
            let proposed = decode(req.proposed_new_state.as_ref(), &e.ty, "proposed new state")?;
            let config = decode(req.config.as_ref(), &e.ty, "configuration")?;
            let outcome = plan(e.resource.as_ref(), &e.schema, &prior, &proposed, &config);
            if outcome.diags.has_errors() {
                return Err(outcome.diags);
            }
            let planned = encode(&outcome.planned, &e.ty, "planned state")?;
            Ok((planned, outcome.requires_replace, outcome.diags))
        })();
        Ok(Response::new(match result {
            Ok((planned, replace, diags)) => pb::plan_resource_change::Response {
                planned_state: Some(planned),
                requires_replace: replace.iter().map(AttributePath::to_proto).collect(),
                planned_private: req.prior_private,
                diagnostics: diags.to_proto(),
                legacy_type_system: false,
            },
            Err(d) => pb::plan_resource_change::Response {
                planned_state: None,
                requires_replace: vec![],
                planned_private: req.prior_private,
                diagnostics: d.to_proto(),
                legacy_type_system: false,
            },
        }))
    }

    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let req = req.into_inner();
        tracing::debug!(type_name = %req.type_name, "ApplyResourceChange");
        let (new_state, diags) = match self.entry(&req.type_name) {
            Err(d) => (None, d),
            Ok(e) => self.apply(e, &req).await,
        };
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state,
            private: req.planned_private,
            diagnostics: diags.to_proto(),
            legacy_type_system: false,
        }))
    }

    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let req = req.into_inner();
        tracing::debug!(type_name = %req.type_name, id = %req.id, "ImportResourceState");
        let result = async {
            let e = self.entry(&req.type_name)?;
            let state = self
                .guarded(e.resource.import(&self.ctx(), &req.id))
                .await?;
            if state.is_null() {
                return Err(Diagnostic::error(
                    "Cannot import non-existent remote object",
                    format!("No object with ID {:?} was found.", req.id),
                )
                .into());
            }
            encode(&state, &e.ty, "imported state")
        }
        .await;
        Ok(Response::new(match result {
            Ok(state) => pb::import_resource_state::Response {
                imported_resources: vec![pb::import_resource_state::ImportedResource {
                    type_name: req.type_name.clone(),
                    state: Some(state),
                    private: vec![],
                }],
                diagnostics: vec![],
            },
            Err(d) => pb::import_resource_state::Response {
                imported_resources: vec![],
                diagnostics: d.to_proto(),
            },
        }))
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let req = req.into_inner();
        let d = Diagnostics::from(Diagnostic::error(
            "Unknown data source",
            format!("This provider has no data source {:?}.", req.type_name),
        ));
        Ok(Response::new(pb::read_data_source::Response {
            state: None,
            diagnostics: d.to_proto(),
        }))
    }

    async fn stop_provider(
        &self,
        _req: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        tracing::info!("StopProvider: cancelling work in flight");
        self.cancel.cancel();
        Ok(Response::new(pb::stop_provider::Response {
            error: String::new(),
        }))
    }
}

impl ProviderService {
    /// ApplyResourceChange: create, update or delete, then check the result.
    async fn apply(
        &self,
        e: &Entry,
        req: &pb::apply_resource_change::Request,
    ) -> (Option<pb::DynamicValue>, Diagnostics) {
        let decoded = (|| {
            Ok::<_, Diagnostics>((
                decode(req.prior_state.as_ref(), &e.ty, "prior state")?,
                decode(req.planned_state.as_ref(), &e.ty, "planned state")?,
            ))
        })();
        let (prior, planned) = match decoded {
            Ok(v) => v,
            Err(d) => return (req.prior_state.clone(), d),
        };
        let ctx = self.ctx();
        if planned.is_null() {
            // Delete: the new state is null; on failure, what is left.
            return match self.guarded(e.resource.delete(&ctx, &prior)).await {
                Ok(()) => (None, Diagnostics::new()),
                Err(d) => self.after_failed_apply(e, &ctx, req, &prior, d).await,
            };
        }
        let result = if prior.is_null() {
            self.guarded(e.resource.create(&ctx, &planned)).await
        } else {
            self.guarded(e.resource.update(&ctx, &prior, &planned))
                .await
        };
        let new = match result {
            Ok(v) => v,
            Err(d) => return self.after_failed_apply(e, &ctx, req, &planned, d).await,
        };
        let mut diags = Diagnostics::new();
        if new.is_null() {
            diags.push(Diagnostic::error(
                "Provider returned a null object after apply",
                "Create and update must return the new object. This is a bug in the provider.",
            ));
            return (req.prior_state.clone(), diags);
        }
        check_applied(&planned, &new, &mut diags);
        match encode(&new, &e.ty, "new state") {
            Ok(v) => (Some(v), diags),
            Err(d) => {
                diags.extend(d);
                (req.prior_state.clone(), diags)
            }
        }
    }
}

impl ProviderService {
    /// A create, update or delete that failed halfway may have changed
    /// part of the remote object. The state must say what exists, so the
    /// object is read back, starting from the state the resource said it was
    /// writing ([`Ctx::writing`]) or else the plan (unknowns as nulls).
    /// The read runs under its own deadline, never the cancelled context:
    /// a StopProvider must not lose what was written. Whatever read reports
    /// is saved along with the error (nothing, when it finds nothing), and
    /// the next plan shows the difference. When the read fails too, nobody
    /// knows what was written, so it is assumed written: the state being
    /// written is saved if there is one, else the prior state is kept. The
    /// operation's own error is the one diagnostic; the read's is logged.
    async fn after_failed_apply(
        &self,
        e: &Entry,
        ctx: &Ctx,
        req: &pb::apply_resource_change::Request,
        planned: &Value,
        diags: Diagnostics,
    ) -> (Option<pb::DynamicValue>, Diagnostics) {
        let prior = req
            .prior_state
            .as_ref()
            .filter(|p| !p.msgpack.is_empty() || !p.json.is_empty())
            .cloned();
        let written = ctx.written();
        let probe = written.clone().unwrap_or_else(|| unknowns_to_null(planned));
        let fresh = Ctx::new(CancelToken::new());
        let read = tokio::time::timeout(READ_BACK_DEADLINE, e.resource.read(&fresh, &probe)).await;
        let keep =
            |v: &Value, diags: Diagnostics| match encode(v, &e.ty, "state after a failed apply") {
                Ok(dv) => (Some(dv), diags),
                Err(mut d) => {
                    d.extend(diags);
                    (prior.clone(), d)
                }
            };
        match read {
            Ok(Ok(v)) if v.is_null() => (None, diags),
            Ok(Ok(v)) => keep(&v, diags),
            Ok(Err(read_error)) => {
                tracing::warn!(?read_error, "read-back after a failed apply failed");
                match written {
                    Some(w) => keep(&w, diags),
                    None => (prior, diags),
                }
            }
            Err(_) => {
                tracing::warn!("read-back after a failed apply timed out");
                match written {
                    Some(w) => keep(&w, diags),
                    None => (prior, diags),
                }
            }
        }
    }
}

/// How long the read-back after a failed apply may take.
const READ_BACK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The value with every unknown replaced by null.
fn unknowns_to_null(v: &Value) -> Value {
    match v {
        Value::Unknown => Value::Null,
        Value::List(xs) => Value::List(xs.iter().map(unknowns_to_null).collect()),
        Value::Set(xs) => Value::Set(xs.iter().map(unknowns_to_null).collect()),
        Value::Tuple(xs) => Value::Tuple(xs.iter().map(unknowns_to_null).collect()),
        Value::Map(m) => Value::Map(
            m.iter()
                .map(|(k, x)| (k.clone(), unknowns_to_null(x)))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), unknowns_to_null(x)))
                .collect(),
        ),
        Value::Dynamic(t, x) => Value::Dynamic(t.clone(), Box::new(unknowns_to_null(x))),
        other => other.clone(),
    }
}

fn server_capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: false,
        // Nothing here needs a GetProviderSchema call first, so Terraform 1.6+
        // may reuse the schema it has instead of asking every provider start.
        get_provider_schema_optional: true,
        move_resource_state: false,
    }
}

fn schema_diagnostics(problems: &[String]) -> Vec<pb::Diagnostic> {
    problems
        .iter()
        .map(|p| {
            Diagnostic::error(
                "Invalid provider schema",
                format!("{p}. This is a bug in the provider."),
            )
            .to_proto()
        })
        .collect()
}
