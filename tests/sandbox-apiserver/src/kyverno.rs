//! Emulation of a mutating admission webhook (a Kyverno policy) that adds
//! `dnsConfig.options: [{name: ndots, value: "2"}]` to pod templates and the
//! label `policies.kyverno.io/mutated=true`. Its changes are recorded under
//! the field manager `kyverno`.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// The field manager the mutations are attributed to.
pub const MANAGER: &str = "kyverno";
/// The label the mutation adds.
pub const LABEL: &str = "policies.kyverno.io/mutated";

/// Mutates a CronJob or Deployment in place; other kinds are left alone.
pub fn mutate(res: &ResourceType, obj: &mut Value) {
    let pointer = match res.kind {
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        "Deployment" => "/spec/template/spec",
        _ => return,
    };
    if let Some(pod) = obj.pointer_mut(pointer).and_then(Value::as_object_mut) {
        let dns = pod.entry("dnsConfig").or_insert_with(|| json!({}));
        if let Some(dns) = dns.as_object_mut() {
            let opts = dns.entry("options").or_insert_with(|| json!([]));
            if let Some(list) = opts.as_array_mut() {
                match list
                    .iter_mut()
                    .find(|o| o.get("name") == Some(&json!("ndots")))
                {
                    Some(o) => {
                        if let Some(o) = o.as_object_mut() {
                            o.insert("value".into(), json!("2"));
                        }
                    }
                    None => list.push(json!({"name": "ndots", "value": "2"})),
                }
            }
        }
    }
    if let Some(meta) = crate::util::meta_mut(obj) {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert(LABEL.into(), json!("true"));
        }
    }
}
