//! The real Terraform CLI with the provider under test installed through
//! `dev_overrides` (no `terraform init`, no network), or through a CLI
//! configuration of the caller's (a mirror, installed at `terraform init`).

use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, bail};

/// The provider's source address.
pub const SOURCE: &str = "beads-autodispatch/beads";
/// The `terraform { required_providers }` block for this provider and a
/// `provider "beads"` block holding `provider_body` (HCL, may be empty).
pub fn header(provider_body: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    beads = {{ source = \"{SOURCE}\" }}\n  }}\n}}\n\nprovider \"beads\" {{\n{provider_body}\n}}\n"
    )
}

/// Names a Terraform 1.0.x binary (set by scripts/test).
pub const TERRAFORM_1_0_VAR: &str = "BEADS_TERRAFORM_1_0";

/// The Terraform binaries to test with: `terraform` on PATH (1.11.4 on the
/// machine image) and the 1.0 binary from [`TERRAFORM_1_0_VAR`] when set.
pub fn binaries() -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("terraform")];
    if let Ok(old) = std::env::var(TERRAFORM_1_0_VAR)
        && !old.is_empty()
    {
        found.push(PathBuf::from(old));
    } else {
        eprintln!(
            "{TERRAFORM_1_0_VAR} is not set: Terraform 1.0 runs skipped (scripts/test sets it)"
        );
    }
    found
}

/// A working directory with a configuration and a CLI config that points
/// Terraform at the provider binary built by cargo.
pub struct Workspace {
    pub terraform: PathBuf,
    /// The configuration directory (`main.tf`, `terraform.tfstate`).
    pub work: PathBuf,
    /// Holds the CLI config, the provider link and `work`; removed on drop.
    _dir: tempfile::TempDir,
    cli_config: PathBuf,
    env: Vec<(String, String)>,
}

impl Workspace {
    /// A workspace for `terraform`, with the provider built in `bin_dir`.
    pub fn new(terraform: &Path, bin_dir: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // A directory holding only the provider: target/debug also has files
        // like terraform-provider-beads.d that Terraform could pick up.
        let provider_dir = dir.path().join("plugins");
        std::fs::create_dir(&provider_dir)?;
        std::os::unix::fs::symlink(
            bin_dir.join("terraform-provider-beads"),
            provider_dir.join("terraform-provider-beads"),
        )?;
        let cli_config = format!(
            "provider_installation {{\n  dev_overrides {{\n    \"{SOURCE}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            provider_dir.display()
        );
        Self::in_dir(terraform, dir, &cli_config)
    }

    /// A workspace for `terraform` whose CLI configuration is `cli_config`
    /// (e.g. a `provider_installation` block naming a mirror): the provider
    /// is whatever that configuration installs at `terraform init`.
    pub fn with_cli_config(terraform: &Path, cli_config: &str) -> anyhow::Result<Self> {
        Self::in_dir(terraform, tempfile::tempdir()?, cli_config)
    }

    fn in_dir(terraform: &Path, dir: tempfile::TempDir, cli_config: &str) -> anyhow::Result<Self> {
        let cli_config_file = dir.path().join("terraform.rc");
        std::fs::write(&cli_config_file, cli_config)?;
        let work = dir.path().join("work");
        std::fs::create_dir(&work)?;
        Ok(Workspace {
            terraform: terraform.to_path_buf(),
            work,
            _dir: dir,
            cli_config: cli_config_file,
            env: Vec::new(),
        })
    }

    /// A workspace for `terraform` with the provider of this build, whose
    /// configurations get the cluster's kubeconfig and `namespace` as
    /// `var.kubeconfig` and `var.namespace`.
    pub fn for_cluster(
        terraform: &Path,
        cluster: &crate::cluster::Cluster,
        namespace: &str,
    ) -> anyhow::Result<Self> {
        let mut ws = Workspace::new(terraform, &crate::bin_dir())?;
        ws.env(
            "TF_VAR_kubeconfig",
            &cluster.kubeconfig.display().to_string(),
        )
        .env("TF_VAR_namespace", namespace);
        Ok(ws)
    }

    /// Sets an environment variable for every command.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes `main.tf` (or any file).
    pub fn write(&self, name: &str, text: &str) -> anyhow::Result<()> {
        std::fs::write(self.work.join(name), text).with_context(|| format!("writing {name}"))
    }

    /// Copies every `.tf` file of a directory (an example or a stack) in.
    pub fn copy_from(&self, src: &Path) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(src)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tf") {
                std::fs::copy(&path, self.work.join(path.file_name().unwrap_or_default()))?;
            }
        }
        Ok(())
    }

    /// `terraform <args>`, configured (CLI config, env, no prompts), not started.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.terraform);
        cmd.current_dir(&self.work)
            .args(args)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_INPUT", "0")
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PROVIDER")
            .env_remove("TF_REATTACH_PROVIDERS")
            // A shared plugin cache would let `init` skip the installation
            // source under test.
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .stdin(std::process::Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `terraform <args>`.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.command(args)
            .output()
            .with_context(|| format!("running {} {}", self.terraform.display(), args.join(" ")))
    }

    /// Runs and fails with Terraform's output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args)?;
        let text = text(&out);
        if !out.status.success() {
            bail!("terraform {} failed:\n{text}", args.join(" "));
        }
        Ok(text)
    }

    /// `terraform apply -auto-approve -no-color <extra>`.
    pub fn apply(&self, extra: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["apply", "-auto-approve", "-no-color"];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    /// `terraform plan -detailed-exitcode`: `(changes pending, output)`.
    pub fn plan(&self, extra: &[&str]) -> anyhow::Result<(bool, String)> {
        let mut args = vec!["plan", "-no-color", "-detailed-exitcode"];
        args.extend_from_slice(extra);
        let out = self.run(&args)?;
        let text = text(&out);
        match out.status.code() {
            Some(0) => Ok((false, text)),
            Some(2) => Ok((true, text)),
            _ => bail!("terraform plan failed:\n{text}"),
        }
    }

    /// The state as `terraform show -json`.
    pub fn state_json(&self) -> anyhow::Result<serde_json::Value> {
        let out = self.ok(&["show", "-json"])?;
        Ok(serde_json::from_str(&out)?)
    }
}

/// stdout and stderr of a Terraform run, together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The first line of `terraform version` (e.g. `Terraform v1.0.3`), or
/// empty when it cannot run.
pub fn version_of(terraform: &Path) -> String {
    std::process::Command::new(terraform)
        .arg("version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}
