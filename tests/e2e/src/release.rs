//! The release `scripts/release` writes: run it, or reuse the one
//! `scripts/test` wrote before the tests, and name its files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, ensure};

/// Names a release directory `scripts/release` already wrote from this
/// checkout (set by `scripts/test` right after running it), which tests
/// read and never change.
pub const DIST_VAR: &str = "BEADS_RELEASE_DIST";

/// The provider's name, the prefix of its release files.
pub const PROVIDER: &str = "terraform-provider-beads";

/// The platform the release is built for.
pub const PLATFORM: &str = "linux_amd64";

/// The provider's registry address, as the mirror serves it.
pub const ADDRESS: &str = "registry.terraform.io/beads-autodispatch/beads";

/// The release version: the workspace version, which this crate shares.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A directory of release files.
pub struct Release {
    /// The directory `scripts/release --out` wrote.
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Release {
    /// The release of [`DIST_VAR`] when set, else a fresh one written into a
    /// temporary directory (which builds the provider and the runner image
    /// when cargo has not yet).
    pub fn current() -> anyhow::Result<Self> {
        if let Ok(dir) = std::env::var(DIST_VAR)
            && !dir.is_empty()
        {
            let dir = PathBuf::from(dir);
            ensure!(
                dir.join(zip_name()).is_file(),
                "{DIST_VAR}={} holds no {}: run scripts/release",
                dir.display(),
                zip_name()
            );
            return Ok(Release { dir, _tmp: None });
        }
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("dist");
        let out = run(&dir, &[])?;
        ensure!(
            out.status.success(),
            "scripts/release failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Release {
            dir,
            _tmp: Some(tmp),
        })
    }

    /// The provider network mirror (`mirror/`).
    pub fn mirror(&self) -> PathBuf {
        self.dir.join("mirror")
    }

    /// The file `name` of the release, read.
    pub fn read(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.dir.join(name);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// `SHA256SUMS` as (file name, sha256 hex) pairs, in its order.
    pub fn sums(&self) -> anyhow::Result<Vec<(String, String)>> {
        let text = String::from_utf8(self.read(&sums_name())?)?;
        text.lines()
            .map(|line| {
                let (hex, name) = line
                    .split_once("  ")
                    .with_context(|| format!("SHA256SUMS line {line:?}"))?;
                Ok((name.to_string(), hex.to_string()))
            })
            .collect()
    }

    /// The hashes the mirror's `<version>.json` gives the archive.
    pub fn mirror_hashes(&self) -> anyhow::Result<Vec<String>> {
        let path = self.mirror().join(ADDRESS).join(format!("{VERSION}.json"));
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_slice(&text)?;
        json["archives"][PLATFORM]["hashes"]
            .as_array()
            .with_context(|| format!("{} has no archives.{PLATFORM}.hashes", path.display()))?
            .iter()
            .map(|h| {
                h.as_str()
                    .map(String::from)
                    .context("a hash that is not a string")
            })
            .collect()
    }
}

/// The `hashes` of the provider's entry in a `.terraform.lock.hcl`, empty
/// when it has none.
pub fn locked_hashes(lock: &str) -> BTreeSet<String> {
    let Some(entry) = lock.split(&format!("provider \"{ADDRESS}\" {{")).nth(1) else {
        return BTreeSet::new();
    };
    let entry = entry.split("\n}").next().unwrap_or_default();
    let Some(list) = entry
        .split("hashes = [")
        .nth(1)
        .and_then(|l| l.split(']').next())
    else {
        return BTreeSet::new();
    };
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// `terraform-provider-beads_<version>_linux_amd64.zip`
pub fn zip_name() -> String {
    format!("{PROVIDER}_{VERSION}_{PLATFORM}.zip")
}

/// `terraform-provider-beads_<version>_SHA256SUMS`
pub fn sums_name() -> String {
    format!("{PROVIDER}_{VERSION}_SHA256SUMS")
}

/// Runs `scripts/release --out out` with extra environment variables
/// (unsigned unless they name `BEADS_RELEASE_GPG_KEY`).
pub fn run(out: &Path, env: &[(&str, &str)]) -> anyhow::Result<Output> {
    let script = crate::repo_root().join("scripts/release");
    let mut cmd = Command::new(&script);
    // Signed only when a test asks for it, whatever the caller's shell says.
    cmd.arg("--out")
        .arg(out)
        .env_remove("BEADS_RELEASE_GPG_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .with_context(|| format!("running {}", script.display()))
}
