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
    let mut cmd = std::process::Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(&command[1..])
        .args(&args);

    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().context("env var without a name")?;
        if let Some(value) = var["value"].as_str() {
            cmd.env(name, value);
        } else if let Some(r) = var["valueFrom"]["secretKeyRef"].as_object() {
            let key = format!(
                "{}/{}",
                r["name"].as_str().unwrap_or_default(),
                r["key"].as_str().unwrap_or_default()
            );
            let value = secrets
                .get(&key)
                .with_context(|| format!("no secret {key} for env {name}"))?;
            cmd.env(name, value);
        }
    }

    // Volumes: ConfigMaps written as files under scratch/<mountPath>.
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?, v)))
        .collect();
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
        let dir = scratch.join(mount_path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir)?;
        for (key, value) in cm["data"].as_object().into_iter().flatten() {
            std::fs::write(dir.join(key), value.as_str().unwrap_or_default())?;
        }
        // The runner reads metadata.json from its default path inside the
        // mount; a local process reaches the same file through BEADS_METADATA.
        if beads_contract::defaults::METADATA_DIR == mount_path {
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
