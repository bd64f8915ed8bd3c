//! The sandbox API server driven by the real kubectl binary. Every test is
//! skipped (with a message) when kubectl is not installed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use beads_sandbox_apiserver::{Config, Handle, Options, spawn};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

/// `$KUBECTL`, else `/usr/bin/kubectl`.
fn kubectl_binary() -> Option<PathBuf> {
    let p = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    p.exists().then_some(p)
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("kubectl output is not JSON ({e}): {}", self.stdout))
    }
}

struct Kubectl {
    bin: PathBuf,
    dir: tempfile::TempDir,
    _server: Handle,
}

impl Kubectl {
    /// Starts a server and writes its kubeconfig; `None` when kubectl is missing.
    async fn start(options: Options) -> Option<Self> {
        let Some(bin) = kubectl_binary() else {
            eprintln!("skipping: kubectl not found at /usr/bin/kubectl (set KUBECTL to override)");
            return None;
        };
        let server = spawn(Config {
            options,
            ..Config::default()
        })
        .await
        .expect("server starts");
        let dir = tempfile::tempdir().expect("tempdir");
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .expect("kubeconfig written");
        Some(Self {
            bin,
            dir,
            _server: server,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(self.path("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .await
                .expect("stdin written");
            drop(pipe);
        }
        let out = child.wait_with_output().await.expect("kubectl finishes");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_stdin(args, None).await
    }

    /// Runs and requires success.
    async fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out
    }

    async fn apply_stdin(&self, extra: &[&str], manifest: &str) -> Out {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.run_stdin(&args, Some(manifest)).await
    }
}

fn cronjob_yaml(name: &str, ns: &str, image: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app: {name}
spec:
  schedule: \"*/5 * * * *\"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: {image}
            args: [\"echo\", \"hi\"]
"
    )
}

fn managed(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or("").to_string(),
                m["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn fields_of<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|l| l.iter().find(|m| m["manager"] == manager))
        .map(|m| &m["fieldsV1"])
        .unwrap_or(&Value::Null)
}

const IMAGE_PATH: &str = "{.spec.jobTemplate.spec.template.spec.containers[0].image}";

#[tokio::test(flavor = "multi_thread")]
async fn discovery_get_and_create_namespace() {
    let Some(k) = Kubectl::start(Options::default()).await else {
        return;
    };
    let v = k.ok(&["version"]).await;
    assert!(v.stdout.contains("Server Version: v1.33"), "{}", v.stdout);
    let ns = k.ok(&["get", "namespaces"]).await;
    assert!(
        ns.stdout.contains("default") && ns.stdout.contains("Active"),
        "{}",
        ns.stdout
    );
    let created = k.ok(&["create", "namespace", "team"]).await;
    assert_eq!(created.stdout.trim(), "namespace/team created");
    let phase = k
        .ok(&["get", "ns", "team", "-o", "jsonpath={.status.phase}"])
        .await;
    assert_eq!(phase.stdout, "Active");
    let ar = k.ok(&["api-resources"]).await;
    for r in [
        "cronjobs",
        "deployments",
        "configmaps",
        "secrets",
        "namespaces",
    ] {
        assert!(ar.stdout.contains(r), "{r} missing from:\n{}", ar.stdout);
    }
    let dup = k.run(&["create", "namespace", "team"]).await;
    assert!(!dup.ok);
    assert!(
        dup.stderr
            .contains("Error from server (AlreadyExists): namespaces \"team\" already exists"),
        "{}",
        dup.stderr
    );
    let gone = k.ok(&["delete", "namespace", "team"]).await;
    assert!(
        gone.stdout.contains("namespace \"team\" deleted"),
        "{}",
        gone.stdout
    );
    let after = k.run(&["get", "ns", "team"]).await;
    assert!(
        !after.ok && after.stderr.contains("namespaces \"team\" not found"),
        "{}",
        after.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_apply_then_set_image_and_get() {
    let Some(k) = Kubectl::start(Options::default()).await else {
        return;
    };
    let manifest = cronjob_yaml("reaper", "default", "busybox:1.36");
    let first = k.apply_stdin(&[], &manifest).await;
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(first.stdout.trim(), "cronjob.batch/reaper created");
    let second = k.apply_stdin(&[], &manifest).await;
    assert_eq!(second.stdout.trim(), "cronjob.batch/reaper unchanged");

    let table = k.ok(&["get", "cronjobs"]).await;
    assert!(table.stdout.starts_with("NAME"), "{}", table.stdout);
    assert!(
        table.stdout.contains("reaper") && table.stdout.contains("*/5 * * * *"),
        "{}",
        table.stdout
    );

    let set = k
        .ok(&["set", "image", "cronjob/reaper", "main=busybox:1.37"])
        .await;
    assert_eq!(set.stdout.trim(), "cronjob.batch/reaper image updated");
    let obj = k
        .ok(&[
            "get",
            "cronjob",
            "reaper",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await
        .json();
    assert_eq!(
        obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.37"
    );
    assert_eq!(obj["metadata"]["generation"], 2);
    assert!(
        managed(&obj).contains(&("kubectl-set".into(), "Update".into())),
        "{:?}",
        managed(&obj)
    );
    assert!(managed(&obj).contains(&("kubectl-client-side-apply".into(), "Update".into())));
    let set_fields = fields_of(&obj, "kubectl-set");
    let img = &set_fields["f:spec"]["f:jobTemplate"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
        ["k:{\"name\":\"main\"}"];
    assert!(img.get("f:image").is_some(), "{set_fields}");

    // Defaults are visible to kubectl.
    assert_eq!(obj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(
        obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_conflict_with_kubectl_set_and_force() {
    let Some(k) = Kubectl::start(Options::default()).await else {
        return;
    };
    let v1 = cronjob_yaml("ssa", "default", "busybox:1.36");
    let applied = k
        .apply_stdin(&["--server-side", "--field-manager=tf"], &v1)
        .await;
    assert!(applied.ok, "{}", applied.stderr);
    assert_eq!(
        applied.stdout.trim(),
        "cronjob.batch/ssa serverside-applied"
    );
    let rv = k
        .ok(&[
            "get",
            "cj",
            "ssa",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await
        .stdout;
    k.apply_stdin(&["--server-side", "--field-manager=tf"], &v1)
        .await;
    let rv2 = k
        .ok(&[
            "get",
            "cj",
            "ssa",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await
        .stdout;
    assert_eq!(rv, rv2, "identical re-apply keeps the resourceVersion");

    k.ok(&["set", "image", "cronjob/ssa", "main=busybox:1.37"])
        .await;
    let v2 = cronjob_yaml("ssa", "default", "busybox:1.38");
    let conflict = k
        .apply_stdin(&["--server-side", "--field-manager=tf"], &v2)
        .await;
    assert!(!conflict.ok);
    assert!(
        conflict
            .stderr
            .contains("Apply failed with 1 conflict: conflict with \"kubectl-set\" using batch/v1")
            && conflict
                .stderr
                .contains(".spec.jobTemplate.spec.template.spec.containers[name=\"main\"].image"),
        "{}",
        conflict.stderr
    );
    let forced = k
        .apply_stdin(
            &["--server-side", "--field-manager=tf", "--force-conflicts"],
            &v2,
        )
        .await;
    assert!(forced.ok, "{}", forced.stderr);
    let img = k
        .ok(&["get", "cj", "ssa", "-o", &format!("jsonpath={IMAGE_PATH}")])
        .await;
    assert_eq!(img.stdout, "busybox:1.38");
    let obj = k
        .ok(&["get", "cj", "ssa", "-o", "json", "--show-managed-fields"])
        .await
        .json();
    assert!(
        !managed(&obj).iter().any(|(m, _)| m == "kubectl-set"),
        "{:?}",
        managed(&obj)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_strategic_merge_and_json() {
    let Some(k) = Kubectl::start(Options::default()).await else {
        return;
    };
    k.apply_stdin(
        &["--server-side", "--field-manager=tf"],
        &cronjob_yaml("p", "default", "busybox:1.36"),
    )
    .await;
    let out = k
        .ok(&[
            "patch",
            "cronjob",
            "p",
            "-p",
            r#"{"spec":{"suspend":true}}"#,
        ])
        .await;
    assert_eq!(out.stdout.trim(), "cronjob.batch/p patched");
    k.ok(&[
        "patch",
        "cronjob",
        "p",
        "--type=merge",
        "-p",
        r#"{"spec":{"schedule":"0 * * * *"}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "cronjob",
        "p",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/successfulJobsHistoryLimit","value":5}]"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "cronjob",
        "p",
        "-p",
        r#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"busybox:2"}]}}}}}}"#,
    ])
    .await;
    let obj = k
        .ok(&["get", "cj", "p", "-o", "json", "--show-managed-fields"])
        .await
        .json();
    assert_eq!(obj["spec"]["suspend"], true);
    assert_eq!(obj["spec"]["schedule"], "0 * * * *");
    assert_eq!(obj["spec"]["successfulJobsHistoryLimit"], 5);
    let c = &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["image"].as_str(), c["args"][0].as_str()),
        (Some("busybox:2"), Some("echo"))
    );
    let patch_fields = fields_of(&obj, "kubectl-patch");
    for f in ["f:suspend", "f:schedule", "f:successfulJobsHistoryLimit"] {
        assert!(
            patch_fields["f:spec"].get(f).is_some(),
            "{f} not owned by kubectl-patch: {patch_fields}"
        );
    }
    let bad = k
        .run(&[
            "patch",
            "cronjob",
            "p",
            "--type=merge",
            "-p",
            r#"{"spec":{"schedule":"61 * * * *"}}"#,
        ])
        .await;
    assert!(!bad.ok);
    assert!(
        bad.stderr.contains("The CronJob \"p\" is invalid: spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"),
        "{}",
        bad.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_dry_run_and_delete() {
    let Some(k) = Kubectl::start(Options::default()).await else {
        return;
    };
    let missing = k.run(&["get", "cronjob", "nope"]).await;
    assert!(!missing.ok);
    assert!(
        missing
            .stderr
            .contains("Error from server (NotFound): cronjobs.batch \"nope\" not found"),
        "{}",
        missing.stderr
    );
    let wrong_ns = k
        .apply_stdin(&[], &cronjob_yaml("x", "absent", "busybox:1"))
        .await;
    assert!(
        !wrong_ns.ok && wrong_ns.stderr.contains("namespaces \"absent\" not found"),
        "{}",
        wrong_ns.stderr
    );

    let manifest = cronjob_yaml("dry", "default", "busybox:1.36");
    let dry = k.apply_stdin(&["--dry-run=server"], &manifest).await;
    assert!(dry.ok, "{}", dry.stderr);
    assert!(dry.stdout.contains("(server dry run)"), "{}", dry.stdout);
    assert!(
        !k.run(&["get", "cj", "dry"]).await.ok,
        "dry-run apply persisted the object"
    );

    k.apply_stdin(&[], &manifest).await;
    let dry_del = k.ok(&["delete", "cj", "dry", "--dry-run=server"]).await;
    assert!(
        dry_del.stdout.contains("(server dry run)"),
        "{}",
        dry_del.stdout
    );
    k.ok(&["get", "cj", "dry"]).await;
    let del = k.ok(&["delete", "cj", "dry"]).await;
    assert_eq!(del.stdout.trim(), "cronjob.batch \"dry\" deleted");
    assert!(!k.run(&["get", "cj", "dry"]).await.ok);

    // Foreground deletion waits until the object is gone.
    k.apply_stdin(&[], &manifest).await;
    k.ok(&["delete", "cj", "dry", "--cascade=foreground"]).await;
    assert!(!k.run(&["get", "cj", "dry"]).await.ok);

    let invalid = k
        .apply_stdin(&[], &cronjob_yaml("Bad_Name", "default", "busybox:1"))
        .await;
    assert!(!invalid.ok);
    assert!(
        invalid.stderr.contains(
            "The CronJob \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{}",
        invalid.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kyverno_mutation_produces_no_diff() {
    let Some(k) = Kubectl::start(Options {
        mutate_like_kyverno: true,
        ..Options::default()
    })
    .await
    else {
        return;
    };
    if !Path::new("/usr/bin/diff").exists() {
        eprintln!("skipping: /usr/bin/diff not found (kubectl diff needs it)");
        return;
    }
    let manifest = cronjob_yaml("mut", "default", "busybox:1.36");
    let applied = k
        .apply_stdin(&["--server-side", "--field-manager=tf"], &manifest)
        .await;
    assert!(applied.ok, "{}", applied.stderr);
    let obj = k
        .ok(&["get", "cj", "mut", "-o", "json", "--show-managed-fields"])
        .await
        .json();
    assert_eq!(
        obj["metadata"]["labels"]["policies.kyverno.io/mutated"],
        "true"
    );
    assert!(managed(&obj).contains(&("kyverno".into(), "Update".into())));
    let diff = k
        .run_stdin(
            &["diff", "--server-side", "--field-manager=tf", "-f", "-"],
            Some(&manifest),
        )
        .await;
    assert!(
        diff.ok,
        "expected no diff:\n{}\n{}",
        diff.stdout, diff.stderr
    );
    assert!(diff.stdout.is_empty(), "{}", diff.stdout);
}

/// kubectl's generators send protobuf bodies; every kind the sandbox serves
/// must come back as kubectl built it.
#[tokio::test(flavor = "multi_thread")]
async fn create_each_kind_with_kubectl_generators() {
    let Some(k) = Kubectl::start(Options::default()).await else {
        return;
    };
    let get = |kind: &'static str, name: &'static str| {
        let k = &k;
        async move { k.ok(&["get", kind, name, "-o", "json"]).await.json() }
    };

    let out = k
        .ok(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=b=two words",
        ])
        .await;
    assert_eq!(out.stdout.trim(), "configmap/cfg created");
    let cm = get("configmap", "cfg").await;
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "b": "two words"}));

    k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=password=hunter2",
    ])
    .await;
    let secret = get("secret", "s").await;
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");

    let out = k
        .ok(&[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox:1.36",
            "--schedule=*/5 * * * *",
            "--",
            "/bin/sh",
            "-c",
            "date",
        ])
        .await;
    assert_eq!(out.stdout.trim(), "cronjob.batch/nightly created");
    let cj = get("cronjob", "nightly").await;
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *");
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "OnFailure");
    assert_eq!(pod["containers"][0]["name"], "nightly");
    assert_eq!(pod["containers"][0]["image"], "busybox:1.36");
    assert_eq!(
        pod["containers"][0]["command"],
        serde_json::json!(["/bin/sh", "-c", "date"])
    );
    // Defaults are applied to the decoded object as to a JSON one.
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["suspend"], false);
    assert_eq!(
        pod["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );

    let out = k
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=0",
            "--port=8080",
        ])
        .await;
    assert_eq!(out.stdout.trim(), "deployment.apps/web created");
    let dep = get("deployment", "web").await;
    // A pointer set to 0 survives decoding (the default would be 1).
    assert_eq!(dep["spec"]["replicas"], 0);
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"],
        serde_json::json!({"app": "web"})
    );
    assert_eq!(
        dep["spec"]["template"]["metadata"]["labels"],
        serde_json::json!({"app": "web"})
    );
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.27");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(dep["spec"]["strategy"]["type"], "RollingUpdate");

    let listed = k.ok(&["get", "cronjobs,deployments", "-o", "name"]).await;
    assert_eq!(
        listed.stdout,
        "cronjob.batch/nightly\ndeployment.apps/web\n"
    );

    // Validation runs on decoded bodies: kube-apiserver's schedule grammar.
    let bad = k
        .run(&[
            "create",
            "cronjob",
            "sunday",
            "--image=busybox:1.36",
            "--schedule=0 0 * * 7",
        ])
        .await;
    assert!(!bad.ok);
    assert!(
        bad.stderr.contains(
            "error: failed to create cronjob: CronJob.batch \"sunday\" is invalid: spec.schedule: Invalid value: \"0 0 * * 7\": end of range (7) above maximum (6): 7"
        ),
        "{}",
        bad.stderr
    );
    let every = k
        .ok(&[
            "create",
            "cronjob",
            "hourly",
            "--image=busybox:1.36",
            "--schedule=@every 1h",
        ])
        .await;
    assert_eq!(every.stdout.trim(), "cronjob.batch/hourly created");
}
