//! The sandbox API server driven by kube-rs, checked against documented
//! kube-apiserver behaviour.

use std::time::Duration;

use beads_sandbox_apiserver::{Config, Fault, Handle, Options, spawn};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Error};
use serde_json::{Value, json};

async fn start(options: Options) -> (Handle, Client) {
    let handle = spawn(Config {
        options,
        ..Config::default()
    })
    .await
    .expect("server starts");
    let kc = Kubeconfig::from_yaml(&handle.kubeconfig()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    let client = Client::try_from(config).expect("client");
    (handle, client)
}

fn cronjob(name: &str, schedule: &str, image: &str) -> CronJob {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": image}]
        }}}}}
    }))
    .expect("valid CronJob")
}

fn configmap(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"labels":{"app":"a"}},"data":data}))
        .expect("valid ConfigMap")
}

fn api_error(e: Error) -> kube::core::Status {
    match e {
        Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn pp(manager: &str) -> PostParams {
    PostParams {
        field_manager: Some(manager.into()),
        ..PostParams::default()
    }
}

fn managers(obj: &impl kube::Resource) -> Vec<(String, String)> {
    obj.meta()
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect()
}

fn fields_of(obj: &impl kube::Resource, manager: &str) -> Value {
    let mf = obj.meta().managed_fields.clone().unwrap_or_default();
    let entry = mf
        .into_iter()
        .find(|m| m.manager.as_deref() == Some(manager))
        .unwrap_or_else(|| panic!("no managedFields entry for {manager}"));
    serde_json::to_value(entry.fields_v1).expect("fieldsV1 serialises")
}

#[tokio::test]
async fn create_get_list_replace_and_conflicts() {
    let (_h, client) = start(Options::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let created = cms
        .create(&pp("test"), &configmap("c1", json!({"k":"v"})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    let rv1: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    assert_eq!(managers(&created), vec![("test".into(), "Update".into())]);
    assert_eq!(
        fields_of(&created, "test"),
        json!({"f:data":{".":{},"f:k":{}},"f:metadata":{"f:labels":{".":{},"f:app":{}}}})
    );

    // Duplicate create.
    let dup = api_error(
        cms.create(&pp("test"), &configmap("c1", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"c1\" already exists");
    let d = dup.details.unwrap();
    assert_eq!(
        (d.name.as_str(), d.group.as_str(), d.kind.as_str()),
        ("c1", "", "configmaps")
    );

    // Get and list with selectors.
    assert_eq!(cms.get("c1").await.unwrap().data.unwrap()["k"], "v");
    cms.create(&pp("test"), &configmap("c2", json!({})))
        .await
        .unwrap();
    let by_label = cms
        .list(&ListParams::default().labels("app=a"))
        .await
        .unwrap();
    assert_eq!(by_label.items.len(), 2);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=c2"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    assert!(
        cms.list(&ListParams::default().labels("app=b"))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Replace with the current resourceVersion bumps it.
    let mut cur = cms.get("c1").await.unwrap();
    cur.data = Some([("k".to_string(), "w".to_string())].into());
    let replaced = cms.replace("c1", &pp("test"), &cur).await.unwrap();
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);

    // Replace with the stale one conflicts.
    let stale = api_error(cms.replace("c1", &pp("test"), &cur).await.unwrap_err());
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        stale.message,
        "Operation cannot be fulfilled on configmaps \"c1\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Without a resourceVersion the update is unconditional.
    cur.metadata.resource_version = None;
    cur.data = Some([("k".to_string(), "x".to_string())].into());
    cms.replace("c1", &pp("test"), &cur).await.unwrap();

    // A no-op replace keeps the resourceVersion.
    let live = cms.get("c1").await.unwrap();
    let again = cms.replace("c1", &pp("test"), &live).await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        live.metadata.resource_version
    );
}

#[tokio::test]
async fn not_found_and_missing_namespace() {
    let (_h, client) = start(Options::default()).await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let st = api_error(cjs.get("x").await.unwrap_err());
    assert_eq!(st.code, 404);
    assert_eq!(st.reason, "NotFound");
    assert_eq!(st.message, "cronjobs.batch \"x\" not found");
    let d = st.details.unwrap();
    assert_eq!(
        (d.name.as_str(), d.group.as_str(), d.kind.as_str()),
        ("x", "batch", "cronjobs")
    );
    assert!(cjs.get_opt("x").await.unwrap().is_none());
    let del = api_error(cjs.delete("x", &DeleteParams::default()).await.unwrap_err());
    assert_eq!(del.code, 404);

    let elsewhere: Api<CronJob> = Api::namespaced(client, "nope");
    let st = api_error(
        elsewhere
            .create(&pp("t"), &cronjob("x", "@hourly", "a:1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code, st.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
    let st = api_error(
        elsewhere
            .patch(
                "x",
                &PatchParams::apply("t"),
                &Patch::Apply(cronjob("x", "@hourly", "a:1")),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 404);
}

#[tokio::test]
async fn invalid_objects_get_422_with_causes() {
    let (_h, client) = start(Options::default()).await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let mut bad = cronjob("bad", "not a cron", "a:1");
    if let Some(spec) = bad.spec.as_mut() {
        let pod = spec
            .job_template
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap();
        pod.containers.clear();
        pod.restart_policy = None;
    }
    let st = api_error(cjs.create(&pp("t"), &bad).await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (422, "Invalid"));
    assert!(
        st.message
            .starts_with("CronJob.batch \"bad\" is invalid: ["),
        "{}",
        st.message
    );
    let d = st.details.unwrap();
    assert_eq!(
        (d.name.as_str(), d.group.as_str(), d.kind.as_str()),
        ("bad", "batch", "CronJob")
    );
    let causes: Vec<(String, String)> = d
        .causes
        .iter()
        .map(|c| (c.reason.clone(), c.field.clone()))
        .collect();
    assert_eq!(
        causes,
        vec![
            ("FieldValueInvalid".into(), "spec.schedule".into()),
            (
                "FieldValueRequired".into(),
                "spec.jobTemplate.spec.template.spec.containers".into()
            ),
            (
                "FieldValueNotSupported".into(),
                "spec.jobTemplate.spec.template.spec.restartPolicy".into()
            ),
        ]
    );
    assert_eq!(
        d.causes[0].message,
        "Invalid value: \"not a cron\": expected exactly 5 fields, found 3: [not a cron]"
    );
    assert_eq!(
        d.causes[2].message,
        "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
    );

    // Name rules.
    let st = api_error(
        cjs.create(&pp("t"), &cronjob("Bad_Name", "@daily", "a:1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert_eq!(st.details.unwrap().causes[0].field, "metadata.name");
    let long = "a".repeat(53);
    let st = api_error(
        cjs.create(&pp("t"), &cronjob(&long, "@daily", "a:1"))
            .await
            .unwrap_err(),
    );
    assert!(
        st.message.ends_with("must be no more than 52 characters"),
        "{}",
        st.message
    );

    // ConfigMap keys.
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let st = api_error(
        cms.create(&pp("t"), &configmap("c", json!({"bad key": "v"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert_eq!(st.details.unwrap().causes[0].field, "data[bad key]");
}

#[tokio::test]
async fn defaults_are_applied() {
    let (_h, client) = start(Options::default()).await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let cj = cjs
        .create(&pp("t"), &cronjob("d", "@hourly", "busybox"))
        .await
        .unwrap();
    let v = serde_json::to_value(&cj).unwrap();
    assert_eq!(v["metadata"]["generation"], 1);
    let spec = &v["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["securityContext"], json!({}));
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let c = &pod["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert!(spec["jobTemplate"]["spec"].get("backoffLimit").is_none());

    let deps: Api<Deployment> = Api::namespaced(client, "default");
    let d: Deployment = serde_json::from_value(json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
        "spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
        "spec":{"containers":[{"name":"n","image":"nginx:1.27","ports":[{"containerPort":80}]}]}}}}))
    .unwrap();
    let d = serde_json::to_value(deps.create(&pp("t"), &d).await.unwrap()).unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}})
    );
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
}

#[tokio::test]
async fn server_side_apply_conflicts_force_and_removal() {
    let (_h, client) = start(Options::default()).await;
    let cjs: Api<CronJob> = Api::namespaced(client, "default");
    let tf = PatchParams::apply("tf");
    let mut desired = cronjob("app", "*/5 * * * *", "busybox:1.36");
    desired.spec.as_mut().unwrap().suspend = Some(true);
    let first = cjs
        .patch("app", &tf, &Patch::Apply(&desired))
        .await
        .unwrap();
    assert_eq!(managers(&first), vec![("tf".into(), "Apply".into())]);
    assert_eq!(
        fields_of(&first, "tf"),
        json!({"f:spec":{"f:jobTemplate":{"f:spec":{"f:template":{"f:spec":{
            "f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}},
            "f:restartPolicy":{}}}}},"f:schedule":{},"f:suspend":{}}})
    );

    // Re-applying the same configuration is a no-op.
    let again = cjs
        .patch("app", &tf, &Patch::Apply(&desired))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );

    // Another applier with a different value conflicts...
    let other = PatchParams::apply("other");
    let theirs = cronjob("app", "0 * * * *", "busybox:1.36");
    let st = api_error(
        cjs.patch("app", &other, &Patch::Apply(&theirs))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        st.message,
        "Apply failed with 1 conflict: conflict with \"tf\": .spec.schedule"
    );
    let cause = &st.details.unwrap().causes[0];
    assert_eq!(
        (
            cause.reason.as_str(),
            cause.field.as_str(),
            cause.message.as_str()
        ),
        (
            "FieldManagerConflict",
            ".spec.schedule",
            "conflict with \"tf\""
        )
    );

    // ...with the same value it shares ownership.
    let same = cronjob("app", "*/5 * * * *", "busybox:1.36");
    let shared = cjs
        .patch("app", &other, &Patch::Apply(&same))
        .await
        .unwrap();
    assert!(
        fields_of(&shared, "other")["f:spec"]
            .get("f:schedule")
            .is_some()
    );
    assert!(
        fields_of(&shared, "tf")["f:spec"]
            .get("f:schedule")
            .is_some()
    );

    // A non-apply write takes ownership; the next apply conflicts with it.
    let mp = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    cjs.patch(
        "app",
        &mp,
        &Patch::Merge(json!({"spec":{"failedJobsHistoryLimit":2,"suspend":false}})),
    )
    .await
    .unwrap();
    let st = api_error(
        cjs.patch("app", &tf, &Patch::Apply(&desired))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 409);
    assert!(
        st.message.starts_with(
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using batch/v1 at "
        ),
        "{}",
        st.message
    );
    assert!(st.message.ends_with(": .spec.suspend"), "{}", st.message);

    // Force takes it back.
    let forced = cjs
        .patch("app", &tf.clone().force(), &Patch::Apply(&desired))
        .await
        .unwrap();
    assert_eq!(forced.spec.as_ref().unwrap().suspend, Some(true));
    assert!(
        fields_of(&forced, "kubectl-edit")["f:spec"]
            .get("f:suspend")
            .is_none()
    );

    // Dropping suspend from tf's config resets it to the default (no one else owns it).
    let mut without = desired.clone();
    without.spec.as_mut().unwrap().suspend = None;
    let pruned = cjs
        .patch("app", &tf, &Patch::Apply(&without))
        .await
        .unwrap();
    assert_eq!(pruned.spec.as_ref().unwrap().suspend, Some(false));

    // Apply without fieldManager is rejected.
    let no_manager = PatchParams::default();
    let st = api_error(
        cjs.patch("app", &no_manager, &Patch::Apply(&without))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert_eq!(
        st.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
}

#[tokio::test]
async fn ssa_keeps_other_managers_list_items_and_labels() {
    let (_h, client) = start(Options::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let a = PatchParams::apply("a");
    let b = PatchParams::apply("b");
    let cfg = |data: Value, labels: Value| json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m","labels":labels},"data":data});
    cms.patch(
        "m",
        &a,
        &Patch::Apply(cfg(json!({"x":"1","y":"1"}), json!({"l1":"a","l2":"a"}))),
    )
    .await
    .unwrap();
    cms.patch(
        "m",
        &b,
        &Patch::Apply(cfg(json!({"z":"2"}), json!({"l2":"a"}))),
    )
    .await
    .unwrap();
    // a drops y and both labels: y and l1 go, l2 stays (b owns it).
    let out = cms
        .patch("m", &a, &Patch::Apply(cfg(json!({"x":"1"}), json!({}))))
        .await
        .unwrap();
    let data = out.data.unwrap();
    assert_eq!(data.keys().cloned().collect::<Vec<_>>(), vec!["x", "z"]);
    let labels = out.metadata.labels.unwrap();
    assert_eq!(labels.keys().cloned().collect::<Vec<_>>(), vec!["l2"]);
}

#[tokio::test]
async fn dry_run_persists_nothing() {
    let (_h, client) = start(Options::default()).await;
    let cjs: Api<CronJob> = Api::namespaced(client, "default");
    let dry = PostParams {
        dry_run: true,
        field_manager: Some("t".into()),
    };
    let out = cjs
        .create(&dry, &cronjob("d", "@hourly", "a:1"))
        .await
        .unwrap();
    assert!(out.metadata.uid.is_some());
    assert_eq!(
        out.spec.as_ref().unwrap().concurrency_policy.as_deref(),
        Some("Allow")
    );
    assert!(cjs.get_opt("d").await.unwrap().is_none());

    let applied = cjs
        .patch(
            "d",
            &PatchParams::apply("t").dry_run(),
            &Patch::Apply(cronjob("d", "@hourly", "a:1")),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.name.as_deref(), Some("d"));
    assert!(cjs.get_opt("d").await.unwrap().is_none());

    let live = cjs
        .create(&pp("t"), &cronjob("d", "@hourly", "a:1"))
        .await
        .unwrap();
    let patched = cjs
        .patch(
            "d",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec":{"suspend":true}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.as_ref().unwrap().suspend, Some(true));
    let after = cjs.get("d").await.unwrap();
    assert_eq!(after.spec.as_ref().unwrap().suspend, Some(false));
    assert_eq!(
        after.metadata.resource_version,
        live.metadata.resource_version
    );

    cjs.delete("d", &DeleteParams::default().dry_run())
        .await
        .unwrap();
    assert!(cjs.get_opt("d").await.unwrap().is_some());
}

#[tokio::test]
async fn delete_background_and_foreground() {
    let (_h, client) = start(Options {
        foreground_delete_delay: Duration::from_millis(200),
        ..Options::default()
    })
    .await;
    let cjs: Api<CronJob> = Api::namespaced(client, "default");
    let created = cjs
        .create(&pp("t"), &cronjob("bg", "@hourly", "a:1"))
        .await
        .unwrap();
    let res = cjs.delete("bg", &DeleteParams::background()).await.unwrap();
    let status = res.right().expect("Background delete returns a Status");
    assert_eq!(
        status.details.as_ref().unwrap().uid,
        created.metadata.uid.unwrap()
    );
    assert!(cjs.get_opt("bg").await.unwrap().is_none());

    cjs.create(&pp("t"), &cronjob("fg", "@hourly", "a:1"))
        .await
        .unwrap();
    let res = cjs.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let obj = res.left().expect("Foreground delete returns the object");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert_eq!(
        obj.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert!(cjs.get_opt("fg").await.unwrap().is_some());
    let mut gone = false;
    for _ in 0..50 {
        if cjs.get_opt("fg").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "foreground-deleted object is removed after the delay");
}

#[tokio::test]
async fn fault_injection_fails_the_next_matching_request() {
    let (h, client) = start(Options::default()).await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    h.inject_fault(Fault {
        verb: Some("PATCH".into()),
        resource: Some("cronjobs".into()),
        name: Some("beads-reaper".into()),
        status: 500,
        times: 1,
        ..Fault::default()
    });
    let params = PatchParams::apply("t");
    let patch = Patch::Apply(cronjob("beads-reaper", "@hourly", "a:1"));
    let st = api_error(
        cjs.patch("beads-reaper", &params, &patch)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (500, "InternalError"));
    cjs.patch("beads-reaper", &params, &patch).await.unwrap();

    // The same through the admin endpoint.
    let body =
        serde_json::to_vec(&json!({"verb":"get","resource":"cronjobs","status":500,"times":2}))
            .unwrap();
    let req = http::Request::post("/_sandbox/faults")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    client.request_text(req).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            api_error(cjs.get("beads-reaper").await.unwrap_err()).code,
            500
        );
    }
    cjs.get("beads-reaper").await.unwrap();
}

#[tokio::test]
async fn a_die_fault_kills_the_server_mid_request_and_restart_serves_the_same_objects() {
    let (mut h, client) = start(Options::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cjs: Api<CronJob> = Api::namespaced(client, "default");
    let params = PatchParams::apply("t");
    cms.patch(
        "kept",
        &params,
        &Patch::Apply(configmap("kept", json!({"k": "v"}))),
    )
    .await
    .unwrap();
    h.inject_fault(Fault {
        verb: Some("apply".into()),
        resource: Some("cronjobs".into()),
        times: 1,
        die: true,
        ..Fault::default()
    });
    assert!(!h.is_dead());
    let patch = Patch::Apply(cronjob("c", "@hourly", "a:1"));
    // No answer at all, not an error Status: the connection is closed.
    let died = cjs.patch("c", &params, &patch).await.unwrap_err();
    assert!(!matches!(died, Error::Api(_)), "{died:?}");
    assert!(h.is_dead());
    assert!(h.armed_faults().is_empty());
    // Dead for every request, not only the one that met the fault.
    let refused = cms.get("kept").await.unwrap_err();
    assert!(!matches!(refused, Error::Api(_)), "{refused:?}");

    let addr = h.addr();
    h.restart().await.unwrap();
    assert!(!h.is_dead());
    assert_eq!(h.addr(), addr);
    let kept = cms.get("kept").await.unwrap();
    assert_eq!(kept.data.unwrap()["k"], "v");
    // The request the server died on was never carried out.
    assert_eq!(api_error(cjs.get("c").await.unwrap_err()).code, 404);
    cjs.patch("c", &params, &patch).await.unwrap();
}

#[tokio::test]
async fn kyverno_like_mutation_is_owned_by_kyverno_and_stable() {
    let (_h, client) = start(Options {
        mutate_like_kyverno: true,
        ..Options::default()
    })
    .await;
    let cjs: Api<CronJob> = Api::namespaced(client, "default");
    let tf = PatchParams::apply("tf");
    let desired = cronjob("k", "@hourly", "a:1");
    let first = cjs.patch("k", &tf, &Patch::Apply(&desired)).await.unwrap();
    let v = serde_json::to_value(&first).unwrap();
    assert_eq!(
        v["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsConfig"]["options"],
        json!([{"name":"ndots","value":"2"}])
    );
    assert_eq!(
        v["metadata"]["labels"]["policies.kyverno.io/mutated"],
        "true"
    );
    let kv = fields_of(&first, "kyverno");
    assert_eq!(
        kv["f:metadata"]["f:labels"],
        json!({".":{},"f:policies.kyverno.io/mutated":{}})
    );
    assert!(fields_of(&first, "tf")["f:metadata"].is_null());
    let again = cjs.patch("k", &tf, &Patch::Apply(&desired)).await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn watch_and_generate_name() {
    let (_h, client) = start(Options::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = configmap("", json!({"a":"b"}));
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let created = cms.create(&pp("t"), &cm).await.unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    use futures::StreamExt as _;
    let rv = created.metadata.resource_version.clone().unwrap();
    let stream = cms
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap();
    let mut stream = Box::pin(stream);
    cms.delete(&name, &DeleteParams::default()).await.unwrap();
    match stream.next().await {
        Some(Ok(WatchEvent::Deleted(obj))) => assert_eq!(obj.metadata.name, Some(name)),
        other => panic!("expected a DELETED event, got {other:?}"),
    }
    let nss: Api<Namespace> = Api::all(client);
    assert!(nss.get("default").await.is_ok());
}

#[tokio::test]
async fn status_subresource_and_secret_string_data() {
    let (_h, client) = start(Options::default()).await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    cjs.create(&pp("t"), &cronjob("s", "@hourly", "a:1"))
        .await
        .unwrap();
    // Status in a main-resource write is ignored...
    let main = cjs
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status":{"lastScheduleTime":"2024-01-01T00:00:00Z"}})),
        )
        .await
        .unwrap();
    assert!(main.status.unwrap().last_schedule_time.is_none());
    // ...and taken through /status, without a generation bump.
    let st = cjs
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status":{"lastScheduleTime":"2024-01-01T00:00:00Z"}})),
        )
        .await
        .unwrap();
    assert!(st.status.unwrap().last_schedule_time.is_some());
    assert_eq!(st.metadata.generation, Some(1));

    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "apiVersion":"v1","kind":"Secret","metadata":{"name":"sec"},"stringData":{"token":"abc"}}))
    .unwrap();
    let created = secrets
        .patch("sec", &PatchParams::apply("t"), &Patch::Apply(&s))
        .await
        .unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert_eq!(created.data.unwrap()["token"].0, b"abc".to_vec());
    assert!(created.string_data.is_none());
    let again = secrets
        .patch("sec", &PatchParams::apply("t"), &Patch::Apply(&s))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );
    let bad = serde_json::to_vec(&json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"},"data":{"k":"not base64!"}})).unwrap();
    let req = http::Request::post("/api/v1/namespaces/default/secrets")
        .header("content-type", "application/json")
        .body(bad)
        .unwrap();
    let err = api_error(secrets.into_client().request_text(req).await.unwrap_err());
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn create_records_upstream_shaped_update_fields_and_scale_works() {
    let (_h, client) = start(Options::default()).await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let created = cjs
        .create(&pp("kubectl-create"), &cronjob("m", "@hourly", "a:1"))
        .await
        .unwrap();
    let f = fields_of(&created, "kubectl-create");
    let containers =
        &f["f:spec"]["f:jobTemplate"]["f:spec"]["f:template"]["f:spec"]["f:containers"];
    // Like upstream: `containers` itself is not owned (Go always serialises it), its item is.
    assert!(containers.get(".").is_none(), "{containers}");
    assert_eq!(
        containers["k:{\"name\":\"c\"}"],
        json!({".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},
            "f:terminationMessagePath":{},"f:terminationMessagePolicy":{}})
    );

    let deps: Api<Deployment> = Api::namespaced(client, "default");
    let d: Deployment = serde_json::from_value(json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
        "spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
        "spec":{"containers":[{"name":"n","image":"nginx:1.27"}]}}}}))
    .unwrap();
    deps.create(&pp("t"), &d).await.unwrap();
    let scale = deps
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec":{"replicas":4}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(4));
    let d = deps.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(4));
    assert_eq!(
        deps.get_scale("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .selector
            .as_deref(),
        Some("app=web")
    );
}
