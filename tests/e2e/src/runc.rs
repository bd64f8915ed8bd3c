//! Runs a rendered pod's container inside the runner image with `runc`, the
//! way a kubelet and containerd would: the image's root filesystem, the
//! container's command, args and env, its ConfigMap volumes bind-mounted
//! read-only at their mount paths, and the pod's and container's
//! `securityContext` (user and group, read-only root filesystem, dropped
//! capabilities, no privilege escalation) and resource limits.
//!
//! Two differences from a cluster, both deliberate: the container shares the
//! host's network namespace (so it reaches MariaDB and the stub BeadBoard on
//! loopback), and `seccompProfile: RuntimeDefault` is not applied (runc takes
//! a profile, not the name of the runtime's default one).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::local_pod::{Container, Exit};

/// containerd's default `PATH`, set when neither the image nor the
/// container sets one (containerd `oci.WithDefaultPathEnv`).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The image unpacked once, run as many times as needed.
pub struct Runtime {
    rootfs: PathBuf,
    image_config: Value,
    dir: tempfile::TempDir,
    runs: AtomicUsize,
}

impl Runtime {
    /// Unpacks the OCI layout at `layout` (see [`crate::image::unpack`]).
    pub fn new(layout: &Path) -> anyhow::Result<Self> {
        crate::image::require_tools()?;
        let dir = tempfile::tempdir()?;
        let rootfs = crate::image::unpack(layout, &dir.path().join("image"))?;
        let image_config = crate::image::config(layout)?["config"].clone();
        Ok(Runtime {
            rootfs,
            image_config,
            dir,
            runs: AtomicUsize::new(0),
        })
    }

    /// The unpacked root filesystem.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Runs the first container of `pod` in the image, to its exit.
    pub fn run(&self, pod: &Value, container: &Container) -> anyhow::Result<Exit> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let bundle = self.dir.path().join(format!("run-{n}"));
        std::fs::create_dir_all(&bundle)?;
        let mut volumes = Vec::new();
        for (i, mount) in container.mounts.iter().enumerate() {
            let host = bundle.join(format!("volume-{i}"));
            mount.write_to(&host)?;
            volumes.push((mount.path.clone(), host));
        }
        let spec = runtime_spec(pod, container, &self.image_config, &self.rootfs, &volumes)?;
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec)?,
        )?;

        let id = format!("beads-e2e-{}-{n}", std::process::id());
        let out = Command::new("runc")
            .arg("--root")
            .arg(self.dir.path().join("state"))
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&id)
            .output()
            .context("running runc")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // runc's own failures (not the runner's) mean this machine cannot
        // run containers: say so rather than report a failed tick.
        if stderr.contains("runc run failed") {
            bail!(
                "runc could not start the container: {stderr}\nThe image tests need a working \
                 container runtime: root, cgroups and runc (apt-get install runc; scripts/setup \
                 installs it)."
            );
        }
        Ok(Exit {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The OCI runtime configuration (`config.json`) for `container` of `pod`
/// in an image with `image_config` unpacked at `rootfs`; `volumes` maps
/// each mount path to the host directory holding its files.
pub fn runtime_spec(
    pod: &Value,
    container: &Container,
    image_config: &Value,
    rootfs: &Path,
    volumes: &[(String, PathBuf)],
) -> anyhow::Result<Value> {
    let pod_sc = &pod["securityContext"];
    let sc = &pod["containers"][0]["securityContext"];
    let (image_uid, image_gid) = image_user(image_config)?;
    // The container's securityContext wins over the pod's, which wins over
    // the image's USER (Kubernetes SecurityContext precedence).
    let uid = sc["runAsUser"]
        .as_u64()
        .or(pod_sc["runAsUser"].as_u64())
        .or(image_uid)
        .unwrap_or(0);
    let gid = sc["runAsGroup"]
        .as_u64()
        .or(pod_sc["runAsGroup"].as_u64())
        .or(image_gid)
        .unwrap_or(0);
    let non_root = sc["runAsNonRoot"]
        .as_bool()
        .or(pod_sc["runAsNonRoot"].as_bool())
        .unwrap_or(false);
    ensure!(
        !(non_root && uid == 0),
        "runAsNonRoot is set but the container would run as uid 0 (the kubelet refuses to start it)"
    );
    let drop: Vec<&str> = sc["capabilities"]["drop"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let add: Vec<String> = sc["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|c| format!("CAP_{c}"))
        .collect();
    if !drop.contains(&"ALL") {
        bail!(
            "the container keeps the runtime's default capabilities; only `drop: [ALL]` is modelled here"
        );
    }

    let mut env: Vec<String> = container
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let image_env = image_config["Env"].as_array().cloned().unwrap_or_default();
    for e in image_env.iter().filter_map(Value::as_str).rev() {
        let name = e.split('=').next().unwrap_or_default();
        if !container.env.iter().any(|(k, _)| k == name) {
            env.insert(0, e.to_string());
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        // A host-network container cannot mount a new sysfs; containerd
        // binds the host's read-only, as here.
        json!({"destination": "/sys", "type": "bind", "source": "/sys",
               "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
        // The kubelet mounts /etc/hosts into every pod, and the runtime a
        // resolv.conf; a host-network pod gets the host's.
        json!({"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts",
               "options": ["bind", "ro"]}),
        json!({"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf",
               "options": ["bind", "ro"]}),
    ];
    for (path, host) in volumes {
        // The kubelet mounts ConfigMap volumes read-only whatever readOnly says.
        mounts.push(json!({"destination": path, "type": "bind", "source": host,
                           "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}));
    }

    let mut resources = json!({});
    let limits = &pod["containers"][0]["resources"]["limits"];
    if let Some(memory) = limits["memory"].as_str() {
        resources["memory"] = json!({"limit": memory_bytes(memory)?});
    }
    if let Some(cpu) = limits["cpu"].as_str() {
        // CFS quota per 100 ms period, as the kubelet sets it.
        resources["cpu"] = json!({"quota": cpu_millis(cpu)? * 100, "period": 100_000});
    }

    let mut args = container.command.clone();
    args.extend(container.args.iter().cloned());
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": env,
            "cwd": image_config["WorkingDir"].as_str().filter(|w| !w.is_empty()).unwrap_or("/"),
            "capabilities": {
                "bounding": add, "effective": add, "permitted": add,
                "inheritable": [], "ambient": [],
            },
            "noNewPrivileges": sc["allowPrivilegeEscalation"].as_bool() == Some(false),
        },
        "root": {
            "path": rootfs,
            "readonly": sc["readOnlyRootFilesystem"].as_bool().unwrap_or(false),
        },
        "hostname": "beads-runner",
        "mounts": mounts,
        "linux": {
            // No network namespace: the host's network.
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "resources": resources,
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                            "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                              "/proc/sys", "/proc/sysrq-trigger"],
        },
    }))
}

/// The numeric uid and gid of the image's `User` (`uid[:gid]`).
fn image_user(config: &Value) -> anyhow::Result<(Option<u64>, Option<u64>)> {
    let Some(user) = config["User"].as_str().filter(|u| !u.is_empty()) else {
        return Ok((None, None));
    };
    let mut parts = user.splitn(2, ':');
    let uid = parts
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("image user {user:?} is not numeric"))?;
    let gid = match parts.next() {
        Some(g) => Some(
            g.parse()
                .with_context(|| format!("image group in {user:?} is not numeric"))?,
        ),
        None => None,
    };
    Ok((Some(uid), gid))
}

/// Bytes of a memory quantity (`64Mi`, `1Gi`, `500M`, `1048576`).
pub fn memory_bytes(q: &str) -> anyhow::Result<u64> {
    let units: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return Ok(n.parse::<u64>().with_context(|| format!("quantity {q}"))? * factor);
        }
    }
    q.parse().with_context(|| format!("quantity {q}"))
}

/// Millicores of a CPU quantity (`200m`, `1`).
pub fn cpu_millis(q: &str) -> anyhow::Result<u64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse().with_context(|| format!("quantity {q}")),
        None => Ok(q.parse::<u64>().with_context(|| format!("quantity {q}"))? * 1000),
    }
}
