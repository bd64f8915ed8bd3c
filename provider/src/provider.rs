//! The provider block: Kubernetes connection settings, named like
//! hashicorp/kubernetes' so existing configurations read familiarly.

use std::sync::Arc;

use tfplugin::diag::Diagnostics;
use tfplugin::framework::attr::{Presence, attribute};
use tfplugin::framework::{DynResource, Obj, Provider};
use tfplugin::schema::{Attribute, Block};
use tfplugin::value::{Type, Value};

use crate::autodispatch::AutodispatchResource;
use crate::k8s::client::{Cluster, Connection};
use crate::types::HttpUrl;

/// The beads provider.
#[derive(Debug, Default)]
pub struct BeadsProvider {
    /// The cluster the provider block names; shared with the resources.
    pub cluster: Arc<Cluster>,
}

/// The provider block's schema.
pub fn schema() -> Block {
    let s = Type::String;
    Block::new("Connection to the Kubernetes cluster where beads auto-dispatch runs. Precedence: host (with token or client certificate), then config_path or KUBE_CONFIG_PATH, then the in-cluster service account. The provider connects only when an operation needs the cluster.")
        .attribute(Attribute::optional("config_path", s.clone()).description("Path to a kubeconfig file."))
        .attribute(Attribute::optional("config_context", s.clone()).description("Context to use from the kubeconfig file."))
        .attribute(attribute::<HttpUrl>("host", Presence::Optional).description("Kubernetes API server URL, e.g. \"https://10.0.0.1:6443\"."))
        .attribute(Attribute::optional("token", s.clone()).sensitive().description("Bearer token for the API server."))
        .attribute(
            Attribute::optional("cluster_ca_certificate", s.clone())
                .description("PEM-encoded CA certificate of the API server."),
        )
        .attribute(
            Attribute::optional("insecure", Type::Bool)
                .description("Skip verification of the API server's certificate (testing only)."),
        )
        .attribute(
            Attribute::optional("client_certificate", s.clone())
                .description("PEM-encoded client certificate for TLS client authentication."),
        )
        .attribute(
            Attribute::optional("client_key", s)
                .sensitive()
                .description("PEM-encoded private key of client_certificate."),
        )
        .required_together(&["client_certificate", "client_key"])
}

fn settings_from(config: &Value) -> Result<Connection, Diagnostics> {
    let o = Obj::new(config).map_err(|e| Diagnostics::from(e.into_diagnostic()))?;
    // Values from resources not yet applied arrive unknown during plan.
    // hashicorp/kubernetes' SDK resources read them as "" and so fall back
    // to KUBE_CONFIG_PATH or localhost (hashicorp/terraform-provider-
    // kubernetes#1546); its kubernetes_manifest defers the plan
    // (DeferredReasonProviderConfigUnknown) when Terraform allows deferral.
    // This provider remembers them and refuses to connect until they are
    // known; like hashicorp/kubernetes' classic resources it connects only
    // when an operation needs the cluster, so planning a create still works.
    let unknown: Vec<String> = schema()
        .attributes
        .iter()
        .filter(|a| o.raw(&a.name).is_unknown())
        .map(|a| a.name.clone())
        .collect();
    if !unknown.is_empty() {
        return Ok(Connection {
            unknown,
            ..Connection::default()
        });
    }
    let s = |n: &str| {
        o.opt_string(n)
            .map_err(|e| Diagnostics::from(e.into_diagnostic()))
    };
    Ok(Connection {
        config_path: s("config_path")?,
        config_context: s("config_context")?,
        host: s("host")?,
        token: s("token")?,
        cluster_ca_certificate: s("cluster_ca_certificate")?,
        insecure: o
            .bool_field("insecure")
            .map_err(|e| Diagnostics::from(e.into_diagnostic()))?
            .known(),
        client_certificate: s("client_certificate")?,
        client_key: s("client_key")?,
        unknown: Vec::new(),
    })
}

#[tfplugin::framework::async_trait]
impl Provider for BeadsProvider {
    fn schema(&self) -> Block {
        schema()
    }

    async fn configure(&self, terraform_version: &str, config: Value) -> Diagnostics {
        tracing::debug!(terraform_version, "configuring provider");
        match settings_from(&config) {
            Ok(connection) => {
                self.cluster.configure(connection);
                Diagnostics::new()
            }
            Err(d) => d,
        }
    }

    fn resources(&self) -> Vec<Arc<dyn DynResource>> {
        vec![Arc::new(AutodispatchResource::new(self.cluster.clone()))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfplugin::diag::AttributePath;

    #[test]
    fn schema_is_all_optional_with_sensitive_secrets() {
        let b = schema();
        assert!(b.check().is_empty());
        assert!(
            b.attributes
                .iter()
                .all(|a| a.optional && !a.required && !a.description.is_empty())
        );
        let sensitive: Vec<&str> = b
            .attributes
            .iter()
            .filter(|a| a.sensitive)
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(sensitive, vec!["token", "client_key"]);
    }

    #[test]
    fn validates_host_and_cert_pairs() {
        // The schema's validators, which the server runs on the provider
        // block (tfplugin's framework tests check that it does).
        let mut d = Diagnostics::new();
        schema().validate(
            &Value::object([
                ("host", Value::string("not a url")),
                ("client_key", Value::string("k")),
            ]),
            &AttributePath::default(),
            &mut d,
        );
        let paths: Vec<String> = d
            .iter()
            .filter_map(|d| d.path.as_ref().map(ToString::to_string))
            .collect();
        assert_eq!(paths, vec!["host", "client_key"]);
    }
}
