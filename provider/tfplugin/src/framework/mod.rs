//! A small provider framework: the [`Provider`] and [`Resource`] traits, and
//! [`ProviderService`], which implements the `tfplugin6.Provider` gRPC service
//! on top of them.
//!
//! Resources work with cty [`Value`]s and their own typed state (via
//! [`Model`]); they never see protobuf types. The protocol rules every
//! resource needs are implemented once in the server (see [`plan`] and
//! [`server`]):
//!
//! * planning: defaults, unknown computed attributes on create, planned ==
//!   prior when nothing changed, requires-replace paths, null on destroy;
//! * `private` bytes are echoed through read, plan and apply;
//! * UpgradeResourceState re-encodes same-version state and hands older
//!   versions to [`Resource::upgrade_state`];
//! * apply dispatches to create / update / delete and checks the result;
//! * StopProvider cancels work in flight.

pub mod attr;
mod model;
pub mod plan;
pub mod server;

use std::sync::Arc;

/// Shared cancellation flag (StopProvider, shutdown); clones observe the same state.
pub type CancelToken = tokio_util::sync::CancellationToken;
pub use model::{Field, Model, ModelError, Obj, ObjBuilder};
pub use plan::PlanContext;
pub use server::ProviderService;
/// The attribute macro for implementing [`Provider`] and [`Resource`]
/// (re-exported so providers need no direct dependency on it).
pub use tonic::async_trait;

use crate::diag::{Diagnostic, Diagnostics};
use crate::schema::{Block, Schema};
use crate::value::Value;

/// What every resource operation gets besides its values.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// Cancelled when Terraform calls StopProvider (the user pressed Ctrl-C).
    /// The framework abandons the operation then; long operations may also
    /// watch it to clean up.
    pub cancel: CancelToken,
    /// The state a create or update is writing towards, once the resource
    /// knows it (e.g. with an id it generated). After a failure the
    /// framework reads the remote object back starting from this state.
    in_flight: Arc<std::sync::Mutex<Option<Value>>>,
}

impl Ctx {
    /// A context cancelled by `cancel`.
    pub fn new(cancel: CancelToken) -> Ctx {
        Ctx {
            cancel,
            in_flight: Arc::default(),
        }
    }

    /// Records the state this create or update is writing towards: if the
    /// operation fails or is cancelled, the read-back after the failure
    /// starts from it (and, when even that read fails, it is saved: what
    /// may have been written is assumed to exist).
    pub fn writing<S: Model>(&self, state: &S) {
        if let Ok(mut slot) = self.in_flight.lock() {
            *slot = Some(state.to_value());
        }
    }

    /// The state recorded by [`Ctx::writing`], if any.
    pub fn written(&self) -> Option<Value> {
        self.in_flight.lock().ok().and_then(|slot| slot.clone())
    }
}

/// A provider: its configuration schema, configuration, and resources.
#[tonic::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The `provider "x" { ... }` block. May be empty, never absent.
    fn schema(&self) -> Block {
        Block::default()
    }

    /// Checks the provider configuration beyond what the schema's
    /// validators check (the server runs those first). Values may be
    /// unknown here.
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}

    /// Receives the provider configuration before any resource operation.
    async fn configure(&self, _terraform_version: &str, _config: Value) -> Diagnostics {
        Diagnostics::new()
    }

    /// The managed resource types. Called once when the server is built.
    fn resources(&self) -> Vec<Arc<dyn DynResource>>;
}

/// A managed resource type, over typed state.
///
/// Implement this; the server talks to it through [`DynResource`], which
/// every `Resource` implements. Values handed to `create`/`update` are the
/// planned state: computed attributes still unknown there arrive as absent
/// in the typed state and must be filled in.
#[tonic::async_trait]
pub trait Resource: Send + Sync + 'static {
    /// The typed state (one value of this resource's schema).
    type State: Model + Send + Sync;

    /// The resource type name, e.g. `beads_autodispatch`.
    fn type_name(&self) -> &'static str;

    /// The schema: by default the block `State` declares, at version 0.
    /// Called once when the server is built.
    fn schema(&self) -> Schema {
        Schema::new(Self::State::block())
    }

    /// Checks a configuration beyond what the schema's validators check
    /// (they run first). Values may be unknown or null; report problems
    /// with attribute paths so Terraform can show the line.
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}

    /// Adjusts a plan after the generic rules ran (e.g. mark a computed
    /// attribute unknown because an input changed).
    fn modify_plan(&self, _plan: &mut PlanContext<'_>) {}

    /// Creates the object. Returns the complete new state.
    async fn create(&self, ctx: &Ctx, planned: Self::State) -> Result<Self::State, Diagnostics>;

    /// Reads the live object. `Ok(None)` means it is gone.
    async fn read(
        &self,
        ctx: &Ctx,
        current: Self::State,
    ) -> Result<Option<Self::State>, Diagnostics>;

    /// Updates the object in place. Returns the complete new state.
    async fn update(
        &self,
        ctx: &Ctx,
        prior: Self::State,
        planned: Self::State,
    ) -> Result<Self::State, Diagnostics>;

    /// Deletes the object.
    async fn delete(&self, ctx: &Ctx, prior: Self::State) -> Result<(), Diagnostics>;

    /// Builds a state from an import ID; Terraform then calls `read`.
    async fn import(&self, _ctx: &Ctx, id: &str) -> Result<Self::State, Diagnostics> {
        Err(Diagnostic::error(
            "Import not supported",
            format!("{} does not support import (ID {id:?}).", self.type_name()),
        )
        .into())
    }

    /// Converts state stored by an older schema version (`raw_json` is the
    /// JSON Terraform stored) straight to the current version.
    fn upgrade_state(&self, version: i64, _raw_json: &[u8]) -> Result<Self::State, Diagnostics> {
        Err(Diagnostic::error(
            "Unsupported state version",
            format!(
                "{} cannot upgrade state from schema version {version}; \
                 upgrade through an intermediate provider release.",
                self.type_name()
            ),
        )
        .into())
    }
}

/// The object-safe, value-level view of a [`Resource`] the server uses.
/// Implemented for every [`Resource`].
#[tonic::async_trait]
pub trait DynResource: Send + Sync + 'static {
    /// See [`Resource::type_name`].
    fn type_name(&self) -> &'static str;
    /// See [`Resource::schema`].
    fn schema(&self) -> Schema;
    /// See [`Resource::validate`] (the server runs the schema's validators
    /// first, with the schema it built once).
    fn validate(&self, config: &Value, diags: &mut Diagnostics);
    /// See [`Resource::modify_plan`].
    fn modify_plan(&self, plan: &mut PlanContext<'_>);
    /// Creates from a planned value.
    async fn create(&self, ctx: &Ctx, planned: &Value) -> Result<Value, Diagnostics>;
    /// Reads; `Value::Null` means gone.
    async fn read(&self, ctx: &Ctx, current: &Value) -> Result<Value, Diagnostics>;
    /// Updates.
    async fn update(&self, ctx: &Ctx, prior: &Value, planned: &Value)
    -> Result<Value, Diagnostics>;
    /// Deletes.
    async fn delete(&self, ctx: &Ctx, prior: &Value) -> Result<(), Diagnostics>;
    /// Imports.
    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Value, Diagnostics>;
    /// Upgrades state of an older version.
    fn upgrade_state(&self, version: i64, raw_json: &[u8]) -> Result<Value, Diagnostics>;
}

fn decode_state<S: Model>(v: &Value) -> Result<S, Diagnostics> {
    S::from_value(v).map_err(|e| Diagnostics::from(e.into_diagnostic()))
}

#[tonic::async_trait]
impl<R: Resource> DynResource for R {
    fn type_name(&self) -> &'static str {
        Resource::type_name(self)
    }
    fn schema(&self) -> Schema {
        Resource::schema(self)
    }
    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        Resource::validate(self, config, diags)
    }
    fn modify_plan(&self, plan: &mut PlanContext<'_>) {
        Resource::modify_plan(self, plan)
    }
    async fn create(&self, ctx: &Ctx, planned: &Value) -> Result<Value, Diagnostics> {
        let s = decode_state::<R::State>(planned)?;
        Ok(Resource::create(self, ctx, s).await?.to_value())
    }
    async fn read(&self, ctx: &Ctx, current: &Value) -> Result<Value, Diagnostics> {
        let s = decode_state::<R::State>(current)?;
        Ok(Resource::read(self, ctx, s)
            .await?
            .map_or(Value::Null, |s| s.to_value()))
    }
    async fn update(
        &self,
        ctx: &Ctx,
        prior: &Value,
        planned: &Value,
    ) -> Result<Value, Diagnostics> {
        let p = decode_state::<R::State>(prior)?;
        let n = decode_state::<R::State>(planned)?;
        Ok(Resource::update(self, ctx, p, n).await?.to_value())
    }
    async fn delete(&self, ctx: &Ctx, prior: &Value) -> Result<(), Diagnostics> {
        let p = decode_state::<R::State>(prior)?;
        Resource::delete(self, ctx, p).await
    }
    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Value, Diagnostics> {
        Ok(Resource::import(self, ctx, id).await?.to_value())
    }
    fn upgrade_state(&self, version: i64, raw_json: &[u8]) -> Result<Value, Diagnostics> {
        Ok(Resource::upgrade_state(self, version, raw_json)?.to_value())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod derive_tests;
