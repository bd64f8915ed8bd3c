//! The runner image as `scripts/image` builds it: build it, read its OCI
//! layout (index → manifest → config), unpack it with `umoci`.
//!
//! Building, unpacking and running need root, `runc`, `umoci`, `skopeo`,
//! `musl-tools` and the Rust musl target; [`require_tools`] fails with what
//! to install when one is missing, so the tests never skip silently.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

/// The Rust target the image's binary is built for.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// An image `scripts/image` wrote.
#[derive(Debug, Clone)]
pub struct Built {
    /// The OCI image layout directory.
    pub layout: PathBuf,
    /// The `docker load`-able archive.
    pub archive: PathBuf,
    /// The manifest digest `scripts/image` printed (`sha256:…`).
    pub digest: String,
}

/// Fails, naming what to install, unless this machine can build and run the
/// image: root, `runc`, `umoci`, `skopeo`, `musl-gcc`, the musl target.
pub fn require_tools() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !is_root()? {
        missing.push("root (runc runs the image's container as root here)".to_string());
    }
    for (tool, package) in [
        ("runc", "runc"),
        ("umoci", "umoci"),
        ("skopeo", "skopeo"),
        ("musl-gcc", "musl-tools"),
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            missing.push(format!("{tool} (apt-get install {package})"));
        }
    }
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !targets.lines().any(|t| t == MUSL_TARGET) {
        missing.push(format!(
            "the Rust target {MUSL_TARGET} (rustup target add {MUSL_TARGET})"
        ));
    }
    if !missing.is_empty() {
        bail!(
            "this machine cannot build or run the runner image; missing: {}. \
             scripts/setup installs them.",
            missing.join("; ")
        );
    }
    Ok(())
}

fn is_root() -> anyhow::Result<bool> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no effective uid in /proc/self/status")?;
    Ok(uid == "0")
}

/// Runs `scripts/image --out out`. cargo rebuilds the musl binary only when
/// the runner changed; `scripts/test` builds it once before the tests, so
/// here it is a quick repack.
pub fn build(out: &Path) -> anyhow::Result<Built> {
    require_tools()?;
    let script = crate::repo_root().join("scripts/image");
    let output = Command::new(&script)
        .arg("--out")
        .arg(out)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "scripts/image failed ({}): {stderr}",
        output.status
    );
    let digest = String::from_utf8_lossy(&output.stdout).trim().to_string();
    ensure!(
        digest.starts_with("sha256:"),
        "scripts/image printed {digest:?}, not a digest; stderr: {stderr}"
    );
    Ok(Built {
        layout: out.join("oci"),
        archive: out.join("beads-runner.tar"),
        digest,
    })
}

/// A blob of the layout, by digest.
pub fn blob(layout: &Path, digest: &str) -> anyhow::Result<Vec<u8>> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("{digest} is not a sha256 digest"))?;
    let path = layout.join("blobs/sha256").join(hex);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn json_file(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The layout's only manifest: its entry in `index.json` and the manifest.
pub fn manifest(layout: &Path) -> anyhow::Result<(Value, Value)> {
    let index = json_file(&layout.join("index.json"))?;
    let entries = index["manifests"]
        .as_array()
        .context("index.json has no manifests")?;
    ensure!(
        entries.len() == 1,
        "index.json lists {} manifests",
        entries.len()
    );
    let entry = entries[0].clone();
    let digest = entry["digest"]
        .as_str()
        .context("manifest without digest")?;
    let manifest = serde_json::from_slice(&blob(layout, digest)?)?;
    Ok((entry, manifest))
}

/// The tag (`org.opencontainers.image.ref.name`) of the layout's manifest.
pub fn tag(layout: &Path) -> anyhow::Result<String> {
    let (entry, _) = manifest(layout)?;
    entry["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .map(String::from)
        .context("the manifest has no ref.name annotation")
}

/// The image configuration (`config` of the config blob: User, Entrypoint…)
/// and the whole config blob.
pub fn config(layout: &Path) -> anyhow::Result<Value> {
    let (_, manifest) = manifest(layout)?;
    let digest = manifest["config"]["digest"]
        .as_str()
        .context("manifest without config")?;
    Ok(serde_json::from_slice(&blob(layout, digest)?)?)
}

/// Unpacks the image into `bundle` (which must not exist) with `umoci`, an
/// independent reader of the layout; returns the root filesystem's path.
pub fn unpack(layout: &Path, bundle: &Path) -> anyhow::Result<PathBuf> {
    let image = format!("{}:{}", layout.display(), tag(layout)?);
    let out = Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(bundle)
        .output()
        .context("running umoci")?;
    ensure!(
        out.status.success(),
        "umoci unpack {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(bundle.join("rootfs"))
}

/// Every path under `root`, relative and sorted (directories end in `/`).
pub fn tree(root: &Path) -> anyhow::Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let rel = path
                .strip_prefix(root)?
                .to_str()
                .context("non-UTF-8 path")?
                .to_string();
            if entry.file_type()?.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out)?;
            } else {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort();
    Ok(out)
}
