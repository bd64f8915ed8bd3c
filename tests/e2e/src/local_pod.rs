//! Runs a rendered pod's container as a local process: its command and args
//! (the image's runner path mapped to the built binary), its env (Secret
//! references resolved from a map), and its ConfigMap volumes written to a
//! temp dir, with the runner's default metadata path pointed there.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// The first container of a CronJob's pod template.
pub fn cron_job_container(cron_job: &Value) -> &Value {
    &cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
}

/// The pod spec of a CronJob.
pub fn cron_job_pod(cron_job: &Value) -> &Value {
    &cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
}

/// What a local run of the container produced.
#[derive(Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// How to run a pod's container on this machine.
///
/// `binary` stands in for the image's runner at
/// [`beads_contract::defaults::RUNNER_IMAGE_PATH`].
pub struct Local<'a> {
    pub binary: &'a Path,
    /// ConfigMap name → its JSON.
    pub config_maps: &'a BTreeMap<String, Value>,
    /// `secret-name/key` → value.
    pub secrets: &'a BTreeMap<String, String>,
    /// Where mounted volumes are written.
    pub scratch: &'a Path,
    /// Appended to the container's args (e.g. `--dry-run`).
    pub extra_args: &'a [&'a str],
    /// Set on top of the container's env (e.g. a password for a real database).
    pub extra_env: &'a [(&'a str, String)],
}

/// A rendered pod's first container with its references resolved: what any
/// runtime (a local process here, `runc` in [`crate::runc`]) needs to run it.
#[derive(Debug, Clone)]
pub struct Container {
    /// The container's `command` (the image's entrypoint is never used: the
    /// provider always sets one).
    pub command: Vec<String>,
    /// The container's `args`.
    pub args: Vec<String>,
    /// `env`, with `secretKeyRef`s resolved, in the pod spec's order.
    pub env: Vec<(String, String)>,
    /// ConfigMap volumes, each with its files.
    pub mounts: Vec<ConfigMapMount>,
}

/// A ConfigMap volume mounted into the container.
#[derive(Debug, Clone)]
pub struct ConfigMapMount {
    /// `mountPath` in the container.
    pub path: String,
    /// The mount's `readOnly`.
    pub read_only: bool,
    /// File name (the ConfigMap key) → contents.
    pub files: BTreeMap<String, String>,
}

impl ConfigMapMount {
    /// Writes the files into `dir` (created), as the kubelet projects them.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (key, value) in &self.files {
            std::fs::write(dir.join(key), value)?;
        }
        Ok(())
    }
}

/// Resolves the first container of `pod`: its command (which must be the
/// image's runner), args, env (Secret references from `secrets`) and
/// ConfigMap volumes (from `config_maps`).
pub fn resolve(
    pod: &Value,
    config_maps: &BTreeMap<String, Value>,
    secrets: &BTreeMap<String, String>,
) -> anyhow::Result<Container> {
    let image_binary_path = beads_contract::defaults::RUNNER_IMAGE_PATH;
    let container = &pod["containers"][0];
    let command: Vec<String> = strings(&container["command"]);
    let args: Vec<String> = strings(&container["args"]);
    let Some(program) = command.first() else {
        bail!("the container has no command; the provider must set one");
    };
    if program != image_binary_path {
        bail!("the container runs {program}, not the image's runner at {image_binary_path}");
    }

    let mut env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().context("env var without a name")?;
        if let Some(value) = var["value"].as_str() {
            env.push((name.to_string(), value.to_string()));
        } else if let Some(r) = var["valueFrom"]["secretKeyRef"].as_object() {
            let key = format!(
                "{}/{}",
                r["name"].as_str().unwrap_or_default(),
                r["key"].as_str().unwrap_or_default()
            );
            let value = secrets
                .get(&key)
                .with_context(|| format!("no secret {key} for env {name}"))?;
            env.push((name.to_string(), value.clone()));
        }
    }

    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?, v)))
        .collect();
    let mut mounts = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let mount_path = mount["mountPath"]
            .as_str()
            .context("mount without mountPath")?;
        let volume = volumes
            .get(mount["name"].as_str().unwrap_or_default())
            .context("volumeMount names no volume")?;
        let cm_name = volume["configMap"]["name"]
            .as_str()
            .context("only ConfigMap volumes are supported")?;
        let cm = config_maps
            .get(cm_name)
            .with_context(|| format!("ConfigMap {cm_name} not found"))?;
        let files = cm["data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        mounts.push(ConfigMapMount {
            path: mount_path.to_string(),
            read_only: mount["readOnly"].as_bool().unwrap_or(false),
            files,
        });
    }
    Ok(Container {
        command,
        args,
        env,
        mounts,
    })
}

/// Runs the first container of `pod` locally.
pub fn run(pod: &Value, local: &Local<'_>) -> anyhow::Result<Exit> {
    let Local {
        binary,
        config_maps,
        secrets,
        scratch,
        extra_args,
        extra_env,
    } = *local;
    let container = resolve(pod, config_maps, secrets)?;
    let mut cmd = std::process::Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(&container.command[1..])
        .args(&container.args)
        .envs(container.env.iter().map(|(k, v)| (k, v)));

    // Volumes: ConfigMaps written as files under scratch/<mountPath>.
    for mount in &container.mounts {
        let dir = scratch.join(mount.path.trim_start_matches('/'));
        mount.write_to(&dir)?;
        // The runner reads metadata.json from its default path inside the
        // mount; a local process reaches the same file through BEADS_METADATA.
        if beads_contract::defaults::METADATA_DIR == mount.path {
            cmd.env(
                beads_contract::env::METADATA,
                dir.join(beads_contract::defaults::METADATA_FILE),
            );
        }
    }
    cmd.args(extra_args);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    Ok(Exit {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}
