//! Adopting objects that a client-side writer created: today's stack
//! (hashicorp/kubernetes typed resources) or `kubectl apply`.
//!
//! A forced server-side apply takes only the fields it sends; fields owned by
//! an `Update` manager that the apply omits stay, so the old `dispatcher`
//! container would keep running beside `runner`. client-go's
//! `util/csaupgrade` is the upstream cure, reproduced here: before applying,
//! the legacy managers' field sets are moved into this provider's `Apply`
//! entry, so the apply that follows removes whatever it no longer renders.
//! Fields of every other manager (a webhook's `dnsConfig`) are not touched.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The client-side managers whose fields this provider takes over, in the
/// order they are merged.
///
/// - `HashiCorp`: hashicorp/kubernetes typed resources send no
///   `fieldManager`, so kube-apiserver names the manager after their
///   User-Agent `HashiCorp/1.0 Terraform/<version>` (the prefix before the
///   first `/`, `prefixFromUserAgent` in k8s.io/apiserver).
/// - `kubectl-client-side-apply`, `before-first-apply`: what `kubectl apply`
///   itself upgrades (kubectl's apply command passes both to csaupgrade).
pub const LEGACY_MANAGERS: [&str; 3] = [
    "HashiCorp",
    "kubectl-client-side-apply",
    "before-first-apply",
];

/// How many times a transfer is retried when the object changed between
/// reading it and patching it.
const ATTEMPTS: usize = 3;

/// A `managedFields` entry this provider cannot read.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("managedFields entry of {manager:?}: fieldsV1 is not a field set")]
    Malformed { manager: String },
}

/// Whether an entry is `manager`'s on the main resource with `operation`.
fn is(entry: &ManagedFieldsEntry, manager: &str, operation: &str) -> bool {
    entry.manager.as_deref() == Some(manager)
        && entry.operation.as_deref() == Some(operation)
        && entry.subresource.as_deref().unwrap_or("").is_empty()
}

/// The `managedFields` after moving the `legacy` managers' `Update` field
/// sets into `ssa_manager`'s `Apply` entry (client-go
/// `csaupgrade.UpgradeManagedFields`), or `None` when there is nothing to
/// move. Per legacy manager, as upstream does it: if the apply entry exists,
/// the legacy entry of the same apiVersion is merged into it; otherwise the
/// first legacy entry becomes the apply entry. Every `Update` entry of that
/// manager is then dropped. Other entries are kept as they are.
pub fn upgrade(
    entries: &[ManagedFieldsEntry],
    legacy: &[&str],
    ssa_manager: &str,
) -> Result<Option<Vec<ManagedFieldsEntry>>, AdoptError> {
    let mut out = entries.to_vec();
    for csa in legacy {
        let target = match out.iter().position(|e| is(e, ssa_manager, "Apply")) {
            Some(i) => i,
            None => match out.iter().position(|e| is(e, csa, "Update")) {
                Some(i) => {
                    out[i].manager = Some(ssa_manager.to_string());
                    out[i].operation = Some("Apply".to_string());
                    i
                }
                None => continue,
            },
        };
        let api_version = out[target].api_version.clone();
        if let Some(source) = out
            .iter()
            .find(|e| is(e, csa, "Update") && e.api_version == api_version)
        {
            let merged = union(&fields(&out[target])?, &fields(source)?);
            out[target].fields_v1 = Some(FieldsV1(merged));
            out[target].fields_type = Some("FieldsV1".into());
        }
        out.retain(|e| !is(e, csa, "Update"));
    }
    Ok((out != entries).then_some(out))
}

fn fields(entry: &ManagedFieldsEntry) -> Result<Value, AdoptError> {
    match entry.fields_v1.as_ref().map(|f| &f.0) {
        None => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(AdoptError::Malformed {
            manager: entry.manager.clone().unwrap_or_default(),
        }),
    }
}

/// The union of two `FieldsV1` sets. In that encoding a node is a member of
/// the set when it is an empty object (a leaf) or holds the key `"."`; its
/// other keys are its children (structured-merge-diff `fieldpath.Set`
/// `FromJSON`). Merging the JSON objects key by key alone would lose a
/// leaf's membership when the other set has children below it.
fn union(a: &Value, b: &Value) -> Value {
    let member = |v: &Value| {
        v.as_object()
            .is_none_or(|m| m.is_empty() || m.contains_key("."))
    };
    let children = |v: &Value| -> BTreeMap<String, Value> {
        v.as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != ".")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut kids = children(a);
    for (k, v) in children(b) {
        let merged = match kids.get(&k) {
            Some(mine) => union(mine, &v),
            None => v,
        };
        kids.insert(k, merged);
    }
    let mut out = Map::new();
    if !kids.is_empty() && (member(a) || member(b)) {
        out.insert(".".into(), Value::Object(Map::new()));
    }
    out.extend(kids);
    Value::Object(out)
}

/// Before this provider's server-side apply of `name`: when the live object
/// carries fields of a [`LEGACY_MANAGERS`] manager, moves them to
/// `ssa_manager` with a patch of `metadata.managedFields` that carries the
/// `resourceVersion` it was computed from, so a concurrent write makes it
/// fail (409) instead of overwriting newer ownership; it is then recomputed.
/// Returns whether ownership was moved. A missing object is nothing to adopt.
///
/// `seen` is the object's metadata as the caller just read it (`Some(None)`:
/// it did not exist), which saves a GET; `None` reads it here. A stale
/// `seen` costs nothing but a retry: its `resourceVersion` makes the patch
/// fail with 409, and the next attempt reads the object afresh.
pub async fn adopt<K>(
    api: &Api<K>,
    name: &str,
    ssa_manager: &str,
    seen: Option<Option<ObjectMeta>>,
) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut attempt = 0;
    let mut seen = seen;
    loop {
        attempt += 1;
        let live = match seen.take() {
            Some(meta) => meta,
            None => api.get_opt(name).await?.map(|o| o.meta().clone()),
        };
        let Some(meta) = live else {
            return Ok(false);
        };
        let entries = meta.managed_fields.clone().unwrap_or_default();
        let upgraded = match upgrade(&entries, &LEGACY_MANAGERS, ssa_manager) {
            Ok(Some(list)) => list,
            Ok(None) => return Ok(false),
            Err(e) => {
                return Err(kube::Error::Service(Box::new(e)));
            }
        };
        // A merge patch replaces the list whole, like csaupgrade's JSON patch
        // `replace /metadata/managedFields`; the resourceVersion in the body
        // is a precondition in both.
        let body = serde_json::json!({
            "metadata": {
                "managedFields": upgraded,
                "resourceVersion": meta.resource_version,
            }
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                tracing::info!(
                    object = name,
                    managers = ?LEGACY_MANAGERS,
                    "took over the fields of client-side managers"
                );
                return Ok(true);
            }
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `metadata.managedFields` of `beads-dispatcher` as the old stack leaves
    /// it: created by hashicorp/kubernetes (manager `HashiCorp`, Update), the
    /// kill switch flipped by a later `terraform apply` (same manager), and
    /// Kyverno's `dnsConfig` mutation recorded under its own manager.
    fn old_stack() -> Vec<ManagedFieldsEntry> {
        serde_json::from_value(json!([
          {"manager":"HashiCorp","operation":"Update","apiVersion":"batch/v1","time":"2026-04-18T10:00:00Z","fieldsType":"FieldsV1",
           "fieldsV1":{"f:spec":{"f:concurrencyPolicy":{},"f:schedule":{},"f:suspend":{},
             "f:jobTemplate":{"f:spec":{"f:backoffLimit":{},"f:template":{
               "f:metadata":{"f:labels":{".":{},"f:app":{}}},
               "f:spec":{"f:containers":{"k:{\"name\":\"dispatcher\"}":{".":{},"f:command":{},"f:image":{},"f:name":{},
                 "f:env":{".":{},"k:{\"name\":\"API_BEARER_TOKEN\"}":{".":{},"f:name":{},"f:valueFrom":{".":{},"f:secretKeyRef":{}}},
                                 "k:{\"name\":\"HOME\"}":{".":{},"f:name":{},"f:value":{}}}}},
                 "f:imagePullSecrets":{},"f:restartPolicy":{}}}}}}}},
          {"manager":"kyverno","operation":"Update","apiVersion":"batch/v1","time":"2026-04-18T10:00:01Z","fieldsType":"FieldsV1",
           "fieldsV1":{"f:spec":{"f:jobTemplate":{"f:spec":{"f:template":{"f:spec":{"f:dnsConfig":{".":{},"f:options":{}}}}}}}}}
        ]))
        .unwrap()
    }

    fn fields_of(list: &[ManagedFieldsEntry], manager: &str) -> Value {
        list.iter()
            .find(|e| e.manager.as_deref() == Some(manager))
            .map(|e| e.fields_v1.clone().unwrap().0)
            .unwrap()
    }

    #[test]
    fn without_an_apply_entry_the_legacy_entry_becomes_it() {
        let before = old_stack();
        let after = upgrade(&before, &LEGACY_MANAGERS, "terraform-provider-beads")
            .unwrap()
            .unwrap();
        assert_eq!(after.len(), 2);
        assert_eq!(
            after[0].manager.as_deref(),
            Some("terraform-provider-beads")
        );
        assert_eq!(after[0].operation.as_deref(), Some("Apply"));
        assert_eq!(after[0].fields_v1, before[0].fields_v1);
        // The webhook's entry is left exactly as it was.
        assert_eq!(after[1], before[1]);
    }

    #[test]
    fn with_an_apply_entry_the_sets_are_unioned_and_the_legacy_entry_dropped() {
        let mut before = old_stack();
        before.insert(
            0,
            serde_json::from_value(json!(
              {"manager":"terraform-provider-beads","operation":"Apply","apiVersion":"batch/v1","time":"2026-12-01T10:00:00Z","fieldsType":"FieldsV1",
               "fieldsV1":{"f:spec":{"f:schedule":{},"f:jobTemplate":{"f:spec":{"f:template":{"f:spec":{
                 "f:containers":{"k:{\"name\":\"runner\"}":{".":{},"f:name":{},"f:image":{}}}}}}}}}}
            ))
            .unwrap(),
        );
        let after = upgrade(&before, &LEGACY_MANAGERS, "terraform-provider-beads")
            .unwrap()
            .unwrap();
        let managers: Vec<_> = after.iter().map(|e| e.manager.clone().unwrap()).collect();
        assert_eq!(managers, ["terraform-provider-beads", "kyverno"]);
        let set = fields_of(&after, "terraform-provider-beads");
        let containers =
            &set["f:spec"]["f:jobTemplate"]["f:spec"]["f:template"]["f:spec"]["f:containers"];
        assert!(containers.get("k:{\"name\":\"runner\"}").is_some(), "{set}");
        assert!(
            containers.get("k:{\"name\":\"dispatcher\"}").is_some(),
            "{set}"
        );
        assert_eq!(set["f:spec"]["f:suspend"], json!({}));
        assert_eq!(set["f:spec"]["f:schedule"], json!({}));
    }

    #[test]
    fn nothing_to_move_is_none() {
        let kyverno_only = old_stack()[1..].to_vec();
        assert!(
            upgrade(&kyverno_only, &LEGACY_MANAGERS, "terraform-provider-beads")
                .unwrap()
                .is_none()
        );
        assert!(
            upgrade(&[], &LEGACY_MANAGERS, "terraform-provider-beads")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_apply_entry_of_another_manager_or_a_status_update_is_not_legacy() {
        let list: Vec<ManagedFieldsEntry> = serde_json::from_value(json!([
          {"manager":"HashiCorp","operation":"Apply","apiVersion":"batch/v1","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:schedule":{}}}},
          {"manager":"HashiCorp","operation":"Update","apiVersion":"batch/v1","subresource":"status","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:active":{}}}}
        ]))
        .unwrap();
        assert!(
            upgrade(&list, &LEGACY_MANAGERS, "terraform-provider-beads")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn kubectl_client_side_apply_entries_are_merged_too() {
        let mut before = old_stack();
        before.push(
            serde_json::from_value(json!(
              {"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"batch/v1","fieldsType":"FieldsV1",
               "fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}}
            ))
            .unwrap(),
        );
        let after = upgrade(&before, &LEGACY_MANAGERS, "terraform-provider-beads")
            .unwrap()
            .unwrap();
        assert_eq!(after.len(), 2);
        let set = fields_of(&after, "terraform-provider-beads");
        assert!(
            set["f:metadata"]["f:annotations"]
                .get("f:kubectl.kubernetes.io/last-applied-configuration")
                .is_some()
        );
        assert!(set["f:spec"].get("f:jobTemplate").is_some());
    }

    #[test]
    fn union_keeps_a_leaf_member_that_the_other_set_has_children_under() {
        let leaf = json!({"f:spec":{"f:dnsConfig":{}}});
        let below = json!({"f:spec":{"f:dnsConfig":{"f:options":{}}}});
        assert_eq!(
            union(&leaf, &below),
            json!({"f:spec":{"f:dnsConfig":{".":{},"f:options":{}}}})
        );
        assert_eq!(union(&below, &below), below);
    }

    #[test]
    fn a_malformed_field_set_is_an_error_not_a_guess() {
        let mut before = old_stack();
        before.insert(
            0,
            serde_json::from_value(json!(
              {"manager":"terraform-provider-beads","operation":"Apply","apiVersion":"batch/v1","fieldsType":"FieldsV1","fieldsV1":"f:spec"}
            ))
            .unwrap(),
        );
        assert!(upgrade(&before, &LEGACY_MANAGERS, "terraform-provider-beads").is_err());
    }
}

/// `adopt` against the test run's real kube-apiserver
/// (`scripts/kube-throwaway`), through a fault proxy for the one answer it
/// cannot be made to give on demand (a 409 on the next patch).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod against_kube_apiserver {
    use super::*;
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::PostParams;
    use kube::config::{KubeConfigOptions, Kubeconfig};
    use serde_json::json;

    const NEW: &str = "terraform-provider-beads";

    /// The proxy, a client through it, and CronJobs in a fresh namespace.
    async fn start() -> (beads_fault_proxy::Handle, Api<CronJob>) {
        let dir = std::env::var_os("BEADS_TEST_KUBE_DIR").expect(
            "BEADS_TEST_KUBE_DIR is not set: this test needs the real kube-apiserver \
             (run scripts/test, or eval \"$(scripts/kube-throwaway start)\")",
        );
        let upstream = beads_fault_proxy::Upstream::from_kube_dir(dir.as_ref()).unwrap();
        let proxy = beads_fault_proxy::spawn(upstream).await.unwrap();
        let kc =
            Kubeconfig::from_yaml(&beads_fault_proxy::kubeconfig::render(&proxy.url())).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "adopt-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        (proxy, Api::namespaced(client, &name))
    }

    /// The metadata `Objects::read` hands over saves the GET; metadata gone
    /// stale (the object changed since) costs one 409 and a fresh read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uses_the_metadata_it_is_given_and_rereads_when_it_is_stale() {
        let (_proxy, api) = start().await;
        let old = PostParams {
            field_manager: Some("HashiCorp".into()),
            ..PostParams::default()
        };
        let created = api.create(&old, &cron_job("dispatcher")).await.unwrap();

        // Told the object does not exist, adopt believes it: no request, and
        // the old manager's fields stay where they are.
        assert!(
            !adopt(&api, "beads-dispatcher", NEW, Some(None))
                .await
                .unwrap()
        );
        let live = api.get("beads-dispatcher").await.unwrap();
        assert_eq!(managers(&live), [pair("HashiCorp", "Update")]);

        // A webhook writes after the read: the metadata handed over is stale,
        // the patch made from it is refused, the retry reads afresh and keeps
        // the webhook's entry.
        webhook_adds_dns_config(&api).await;
        let stale = created.metadata.clone();
        assert!(
            adopt(&api, "beads-dispatcher", NEW, Some(Some(stale)))
                .await
                .unwrap()
        );
        let live = api.get("beads-dispatcher").await.unwrap();
        assert_eq!(
            managers(&live),
            [pair(NEW, "Apply"), pair("kyverno", "Update")]
        );

        // Fresh metadata is used as it is: nothing left to move.
        assert!(
            !adopt(&api, "beads-dispatcher", NEW, Some(Some(live.metadata)))
                .await
                .unwrap()
        );
    }

    /// What a Kyverno policy does: another field manager adds `dnsConfig`.
    async fn webhook_adds_dns_config(api: &Api<CronJob>) {
        let dns = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}}}}}}});
        let webhook = PatchParams {
            field_manager: Some("kyverno".into()),
            ..PatchParams::default()
        };
        api.patch("beads-dispatcher", &webhook, &Patch::Merge(&dns))
            .await
            .unwrap();
    }

    fn cron_job(container: &str) -> CronJob {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "beads-dispatcher"},
            "spec": {"schedule": "*/2 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": container, "image": "img:1"}]}}}}}
        }))
        .unwrap()
    }

    fn managers(cj: &CronJob) -> Vec<(String, String)> {
        cj.metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|e| (e.manager.clone().unwrap(), e.operation.clone().unwrap()))
            .collect()
    }

    fn pair(m: &str, op: &str) -> (String, String) {
        (m.into(), op.into())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moves_the_old_managers_fields_once_retrying_a_conflict() {
        let (proxy, api) = start().await;
        assert!(
            !adopt(&api, "beads-dispatcher", NEW, None).await.unwrap(),
            "nothing to adopt"
        );

        let old = PostParams {
            field_manager: Some("HashiCorp".into()),
            ..PostParams::default()
        };
        api.create(&old, &cron_job("dispatcher")).await.unwrap();
        webhook_adds_dns_config(&api).await;

        // The first patch answers 409, as when the object changed since it
        // was read: adopt reads again and succeeds.
        proxy.inject_fault(
            serde_json::from_value(
                json!({"verb": "patch", "resource": "cronjobs", "status": 409, "times": 1}),
            )
            .unwrap(),
        );
        assert!(adopt(&api, "beads-dispatcher", NEW, None).await.unwrap());
        let live = api.get("beads-dispatcher").await.unwrap();
        assert_eq!(
            managers(&live),
            [pair(NEW, "Apply"), pair("kyverno", "Update")]
        );
        assert!(
            !adopt(&api, "beads-dispatcher", NEW, None).await.unwrap(),
            "already ours"
        );

        // The forced apply that follows drops the old container, keeps dnsConfig.
        api.patch(
            "beads-dispatcher",
            &PatchParams::apply(NEW).force(),
            &Patch::Apply(cron_job("runner")),
        )
        .await
        .unwrap();
        let pod = api
            .get("beads-dispatcher")
            .await
            .unwrap()
            .spec
            .unwrap()
            .job_template
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["runner"]);
        assert!(pod.dns_config.is_some());
    }
}
