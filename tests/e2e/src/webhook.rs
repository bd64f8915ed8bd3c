//! A real mutating admission webhook, registered with the real
//! kube-apiserver, that mutates pod templates the way a Kyverno policy
//! does in the operators' cluster: it adds
//! `dnsConfig.options: [{name: ndots, value: "2"}]` and the label
//! `policies.kyverno.io/mutated=true` to CronJobs and Deployments. The API
//! server calls it over HTTPS ([`crate::https::Host`]: a throwaway CA,
//! handed over as the configuration's `caBundle`) and applies its JSON
//! patch, as it does for Kyverno.

use crate::cluster::Cluster;
use crate::https::Host;
use axum::Json;
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Value, json};

/// The label the mutation adds.
pub const LABEL: &str = "policies.kyverno.io/mutated";

/// A webhook served in the background and registered for one namespace;
/// dropping it stops serving (the registration stays, scoped to that
/// namespace, which is never reused).
pub struct KyvernoLike {
    _host: Host,
    /// The MutatingWebhookConfiguration's name.
    pub name: String,
}

impl KyvernoLike {
    /// Serves the webhook on a free loopback port and registers it for
    /// CronJobs and Deployments created or updated in `namespace`.
    pub async fn register(cluster: &Cluster, namespace: &str) -> anyhow::Result<Self> {
        let host = Host::serve(axum::Router::new().route("/mutate", post(review))).await?;
        let name = format!("kyverno-like-{namespace}");
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&host.ca_pem);
        let config = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "mutate.kyverno-like.beads.test",
                "clientConfig": {"url": format!("{}mutate", host.url), "caBundle": ca_bundle},
                "rules": [
                    {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["cronjobs"]},
                    {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]},
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
            }],
        });
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), config.to_string())?;
        cluster.kubectl_ok(&["apply", "-f", &file.path().display().to_string()])?;
        Ok(KyvernoLike { _host: host, name })
    }
}

/// Answers an `AdmissionReview` (admission.k8s.io/v1) with the JSON patch
/// of [`mutations`].
async fn review(Json(review): Json<Value>) -> Json<Value> {
    let request = &review["request"];
    let patch = mutations(&request["object"]);
    let mut response = json!({"uid": request["uid"], "allowed": true});
    if !patch.is_empty() {
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(
            base64::engine::general_purpose::STANDARD.encode(Value::Array(patch).to_string())
        );
    }
    Json(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
}

/// The JSON patch operations that give `object` the ndots option and the
/// label, whatever it already has.
pub fn mutations(object: &Value) -> Vec<Value> {
    let pod = match object["kind"].as_str() {
        Some("CronJob") => "/spec/jobTemplate/spec/template/spec",
        Some("Deployment") => "/spec/template/spec",
        _ => return Vec::new(),
    };
    let mut ops = Vec::new();
    match object.pointer(&format!("{pod}/dnsConfig/options")) {
        Some(Value::Array(options)) => {
            match options.iter().position(|o| o["name"] == "ndots") {
                Some(i) if options[i]["value"] == "2" => {}
                Some(i) => ops.push(json!({"op": "replace", "path": format!("{pod}/dnsConfig/options/{i}/value"), "value": "2"})),
                None => ops.push(json!({"op": "add", "path": format!("{pod}/dnsConfig/options/-"), "value": {"name": "ndots", "value": "2"}})),
            }
        }
        _ if object.pointer(&format!("{pod}/dnsConfig")).is_some() => ops.push(
            json!({"op": "add", "path": format!("{pod}/dnsConfig/options"), "value": [{"name": "ndots", "value": "2"}]}),
        ),
        _ => ops.push(
            json!({"op": "add", "path": format!("{pod}/dnsConfig"), "value": {"options": [{"name": "ndots", "value": "2"}]}}),
        ),
    }
    // RFC 6901: '/' in a key is written '~1'.
    let label = format!("/metadata/labels/{}", LABEL.replace('/', "~1"));
    match object.pointer("/metadata/labels") {
        Some(Value::Object(labels)) if labels.get(LABEL) == Some(&json!("true")) => {}
        Some(Value::Object(_)) => ops.push(json!({"op": "add", "path": label, "value": "true"})),
        _ => ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {LABEL: "true"}})),
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(mut doc: Value, ops: &[Value]) -> Value {
        for op in ops {
            let path = op["path"].as_str().unwrap_or_default();
            let (parent, key) = path.rsplit_once('/').unwrap_or_default();
            let key = key.replace("~1", "/");
            let target = doc.pointer_mut(parent).expect("parent exists");
            match target {
                Value::Array(a) if key == "-" => a.push(op["value"].clone()),
                Value::Array(a) => a[key.parse::<usize>().expect("index")] = op["value"].clone(),
                Value::Object(o) => {
                    o.insert(key, op["value"].clone());
                }
                _ => panic!("bad parent {parent}"),
            }
        }
        doc
    }

    #[test]
    fn mutating_twice_changes_nothing_more() {
        let cj = json!({"kind": "CronJob", "metadata": {"name": "x"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        let once = apply(cj.clone(), &mutations(&cj));
        assert_eq!(
            once.pointer("/spec/jobTemplate/spec/template/spec/dnsConfig/options/0"),
            Some(&json!({"name": "ndots", "value": "2"}))
        );
        assert_eq!(once["metadata"]["labels"][LABEL], "true");
        assert!(mutations(&once).is_empty());
    }
}
