//! A stand-in for the hashicorp/kubernetes provider, just enough to hold
//! today's stack in a Terraform state: `kubernetes_config_map` and
//! `kubernetes_cron_job_v1` with `namespace` and `name` (the real schema's
//! `metadata` block flattened), importable as `<namespace>/<name>`. The real
//! provider is not on this machine and there is no network, yet `removed`
//! blocks need a state that holds those resources and a provider that can
//! read it.
//!
//! Destroy deletes the object with `kubectl` (kubeconfig from `KUBECONFIG`),
//! as the real provider would: a migration step that destroyed instead of
//! forgetting shows up as a new UID or a missing object. It creates nothing.

use std::process::ExitCode;
use std::sync::Arc;

use tfplugin::Model;
use tfplugin::diag::{Diagnostic, Diagnostics};
use tfplugin::framework::{Ctx, DynResource, Provider, Resource};
use tfplugin::schema::{Attribute, Block};
use tfplugin::value::Type;

/// The source address today's stack names (`hashicorp/kubernetes`).
const SOURCE_ADDRESS: &str = "registry.terraform.io/hashicorp/kubernetes";

struct Stack;

#[tfplugin::framework::async_trait]
impl Provider for Stack {
    fn schema(&self) -> Block {
        Block::new("Stand-in for hashicorp/kubernetes (tests only).")
            .attribute(Attribute::optional("config_path", Type::String).description("Ignored."))
    }

    fn resources(&self) -> Vec<Arc<dyn DynResource>> {
        vec![
            Arc::new(Object {
                type_name: "kubernetes_config_map",
                kind: "configmap",
            }),
            Arc::new(Object {
                type_name: "kubernetes_cron_job_v1",
                kind: "cronjob",
            }),
        ]
    }
}

struct Object {
    type_name: &'static str,
    kind: &'static str,
}

/// An object of today's stack.
#[derive(Model)]
struct State {
    /// <namespace>/<name>
    #[tf(computed)]
    id: Option<String>,
    /// metadata.namespace
    #[tf(requires_replace)]
    namespace: String,
    /// metadata.name
    #[tf(requires_replace)]
    name: String,
}

fn error(summary: &str, detail: impl Into<String>) -> Diagnostics {
    Diagnostic::error(summary, detail).into()
}

#[tfplugin::framework::async_trait]
impl Resource for Object {
    type State = State;

    fn type_name(&self) -> &'static str {
        self.type_name
    }

    async fn create(&self, _ctx: &Ctx, _planned: State) -> Result<State, Diagnostics> {
        Err(error(
            "Not supported",
            "the stand-in creates nothing: build the objects with kubectl",
        ))
    }

    async fn read(&self, _ctx: &Ctx, current: State) -> Result<Option<State>, Diagnostics> {
        Ok(Some(current))
    }

    async fn update(
        &self,
        _ctx: &Ctx,
        _prior: State,
        planned: State,
    ) -> Result<State, Diagnostics> {
        Ok(planned)
    }

    async fn delete(&self, _ctx: &Ctx, prior: State) -> Result<(), Diagnostics> {
        let out = std::process::Command::new("kubectl")
            .args(["delete", self.kind, &prior.name, "-n", &prior.namespace])
            .output()
            .map_err(|e| error("kubectl", e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(error(
                "kubectl delete",
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }

    async fn import(&self, _ctx: &Ctx, id: &str) -> Result<State, Diagnostics> {
        let Some((namespace, name)) = id.split_once('/') else {
            return Err(error(
                "Invalid import ID",
                format!("{id:?} is not <namespace>/<name>"),
            ));
        };
        Ok(State {
            id: Some(id.to_string()),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

fn main() -> ExitCode {
    tfplugin::serve::main(
        Stack,
        tfplugin::serve::ServeConfig {
            provider_address: SOURCE_ADDRESS.to_string(),
            log_module: "provider.terraform-provider-kubernetes".to_string(),
        },
    )
}
