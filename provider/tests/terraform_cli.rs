//! End to end: the real Terraform CLI drives the provider binary.
//!
//! Terraform 1.11.4 (`terraform` on PATH, as the machine image ships it) is
//! always used; Terraform 1.0.3, the oldest protocol-6 client, too when
//! `BEADS_TERRAFORM_1_0` names its binary (`scripts/setup` installs it).
//! The provider is found through a `dev_overrides` CLI configuration, so no
//! `terraform init` (and no network) is needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PROVIDER_BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-beads");
const MAGIC_COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// The Terraform binaries to run every case with.
fn terraforms() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let path_tf = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("terraform"))
                .find(|p| p.is_file())
        })
        .or_else(|| Some(PathBuf::from("/usr/local/bin/terraform")).filter(|p| p.is_file()));
    match path_tf {
        Some(p) => out.push(p),
        None => panic!(
            "terraform (1.11.4) is not on PATH; the machine image ships it at /usr/local/bin/terraform"
        ),
    }
    if let Some(p) = std::env::var_os("BEADS_TERRAFORM_1_0").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "BEADS_TERRAFORM_1_0={} does not exist",
            p.display()
        );
        out.push(p);
    } else {
        eprintln!("BEADS_TERRAFORM_1_0 is not set: testing with Terraform 1.11.4 only");
    }
    out
}

/// A working directory with a CLI configuration that points
/// `beads-autodispatch/beads` at the binary under test.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(main_tf: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory holding only the provider binary: target/debug also has
        // files like terraform-provider-beads.d that Terraform could pick up.
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).expect("plugins dir");
        std::os::unix::fs::symlink(PROVIDER_BIN, plugins.join("terraform-provider-beads"))
            .expect("symlink");
        let cli = format!(
            "provider_installation {{\n  dev_overrides {{\n    \"beads-autodispatch/beads\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            plugins.display()
        );
        std::fs::write(dir.path().join("cli.tfrc"), cli).expect("cli config");
        std::fs::create_dir(dir.path().join("work")).expect("work dir");
        std::fs::write(dir.path().join("work/main.tf"), main_tf).expect("main.tf");
        Workspace { dir }
    }

    fn run(&self, tf: &Path, args: &[&str]) -> Output {
        Command::new(tf)
            .args(args)
            .current_dir(self.dir.path().join("work"))
            .env("TF_CLI_CONFIG_FILE", self.dir.path().join("cli.tfrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PROVIDER")
            .env_remove("TF_REATTACH_PROVIDERS")
            .env_remove("TF_DISABLE_PLUGIN_TLS")
            .stdin(Stdio::null())
            .output()
            .expect("terraform runs")
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn version_of(tf: &Path) -> String {
    let o = Command::new(tf)
        .arg("version")
        .output()
        .expect("terraform version");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

const HEADER: &str = r#"terraform {
  required_providers {
    beads = {
      source = "beads-autodispatch/beads"
    }
  }
}

provider "beads" {}
"#;

/// A valid resource; `extra` lines go right after `namespace` and
/// `dolt_extra` lines into the `dolt` block.
fn config(namespace: &str, extra: &str, dolt_extra: &str) -> String {
    format!(
        r#"{HEADER}
resource "beads_autodispatch" "main" {{
  namespace     = "{namespace}"
{extra}
  image         = "ghcr.io/acme/beads-runner"
  beadboard_url = "https://beadboard.example.com"

  dolt {{
    host     = "dolt.beads-server.svc.cluster.local"
    database = "beads"
{dolt_extra}
  }}
}}
"#
    )
}

/// 1-based line number of the first line of `tf` containing `needle`.
fn line_of(tf: &str, needle: &str) -> usize {
    tf.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .expect("needle in config")
}

#[test]
fn validate_accepts_a_valid_configuration() {
    for tf in terraforms() {
        let ws = Workspace::new(&config("beads", "", ""));
        let o = ws.run(&tf, &["validate", "-no-color"]);
        assert!(
            o.status.success(),
            "{}: validate failed:\n{}",
            version_of(&tf),
            text(&o)
        );
        assert!(
            text(&o).contains("The configuration is valid"),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn plan_shows_defaults_and_computed_attributes_known_after_apply() {
    for tf in terraforms() {
        let ws = Workspace::new(&config("beads", "", ""));
        let o = ws.run(&tf, &["plan", "-no-color", "-input=false"]);
        let out = text(&o);
        assert!(
            o.status.success(),
            "{}: plan failed:\n{out}",
            version_of(&tf)
        );
        assert!(
            out.contains("beads_autodispatch.main will be created"),
            "{out}"
        );
        for computed in [
            "id",
            "metadata_json",
            "config_map_name",
            "dispatcher_cron_job",
            "reaper_cron_job",
        ] {
            let shown = out.lines().any(|l| {
                let l = l.trim_start().trim_start_matches('+').trim();
                l.starts_with(computed) && l.ends_with("= (known after apply)")
            });
            assert!(
                shown,
                "{}: {computed} not shown as (known after apply):\n{out}",
                version_of(&tf)
            );
        }
        for default in [
            r#"image_tag           = "0.1.0""#,
            r#"dispatch_schedule   = "*/2 * * * *""#,
            r#"name                = "beads""#,
            "port     = 3306",
        ] {
            assert!(
                out.contains(default),
                "{}: default {default:?} missing:\n{out}",
                version_of(&tf)
            );
        }
        assert!(
            out.contains("Plan: 1 to add, 0 to change, 0 to destroy."),
            "{out}"
        );
    }
}

#[test]
fn invalid_values_fail_with_the_attribute_and_its_line() {
    struct Case {
        summary: &'static str,
        namespace: &'static str,
        extra: &'static str,
        dolt_extra: &'static str,
        needle: &'static str,
    }
    let cases = [
        Case {
            summary: "Invalid dispatch_schedule",
            namespace: "beads",
            extra: r#"  dispatch_schedule = "*/2 * * *""#,
            dolt_extra: "",
            needle: "dispatch_schedule",
        },
        Case {
            summary: "Invalid stale_after",
            namespace: "beads",
            extra: r#"  stale_after = "30 minutes""#,
            dolt_extra: "",
            needle: "stale_after",
        },
        Case {
            summary: "Invalid namespace",
            namespace: "Beads_NS",
            extra: "",
            dolt_extra: "",
            needle: "namespace",
        },
        Case {
            summary: "Invalid image_tag",
            namespace: "beads",
            extra: r#"  image_tag = "sha256:1234""#,
            dolt_extra: "",
            needle: "image_tag",
        },
        Case {
            summary: "Invalid beadboard_url",
            namespace: "beads",
            extra: "",
            dolt_extra: "",
            needle: "beadboard_url",
        },
        Case {
            summary: "Invalid dolt.port",
            namespace: "beads",
            extra: "",
            dolt_extra: "    port = 70000",
            needle: "port = 70000",
        },
    ];
    for tf in terraforms() {
        for case in &cases {
            let mut main_tf = config(case.namespace, case.extra, case.dolt_extra);
            if case.summary == "Invalid beadboard_url" {
                main_tf = main_tf.replace("https://beadboard.example.com", "beadboard.example.com");
            }
            let line = line_of(&main_tf, case.needle);
            let ws = Workspace::new(&main_tf);
            for cmd in ["validate", "plan"] {
                let o = ws.run(&tf, &[cmd, "-no-color"]);
                let out = text(&o);
                let v = version_of(&tf);
                assert!(
                    !o.status.success(),
                    "{v}: {cmd} accepted {:?}:\n{out}",
                    case.summary
                );
                assert!(
                    out.contains(&format!("Error: {}", case.summary)),
                    "{v}: {cmd}: no {:?}:\n{out}",
                    case.summary
                );
                assert!(
                    out.contains(&format!(
                        "on main.tf line {line}, in resource \"beads_autodispatch\" \"main\""
                    )),
                    "{v}: {cmd}: {:?} does not point at line {line}:\n{out}",
                    case.summary
                );
                assert_eq!(
                    out.matches("Error: ").count(),
                    1,
                    "{v}: exactly one error expected:\n{out}"
                );
            }
        }
    }
}

#[test]
fn apply_then_plan_shows_no_changes_and_destroy_works() {
    for tf in terraforms() {
        let ws = Workspace::new(&config("beads", "", ""));
        let v = version_of(&tf);
        let o = ws.run(
            &tf,
            &["apply", "-auto-approve", "-no-color", "-input=false"],
        );
        assert!(o.status.success(), "{v}: apply failed:\n{}", text(&o));
        assert!(text(&o).contains("[id=beads/beads]"), "{}", text(&o));
        let o = ws.run(
            &tf,
            &["plan", "-detailed-exitcode", "-no-color", "-input=false"],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{v}: plan after apply is not empty:\n{}",
            text(&o)
        );
        let o = ws.run(
            &tf,
            &["destroy", "-auto-approve", "-no-color", "-input=false"],
        );
        assert!(o.status.success(), "{v}: destroy failed:\n{}", text(&o));
        assert!(text(&o).contains("1 destroyed"), "{}", text(&o));
    }
}

#[test]
fn run_directly_it_explains_it_is_a_plugin() {
    let o = Command::new(PROVIDER_BIN)
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "nothing on stdout");
    assert!(String::from_utf8_lossy(&o.stderr).contains("This binary is a plugin for Terraform"));
}

#[test]
fn handshake_line_comes_first_and_fast() {
    use std::io::BufRead;
    let sockets = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut child = Command::new(PROVIDER_BIN)
        .env("TF_PLUGIN_MAGIC_COOKIE", MAGIC_COOKIE)
        .env("PLUGIN_UNIX_SOCKET_DIR", sockets.path())
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env_remove("PLUGIN_CLIENT_CERT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("handshake line");
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let fields: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(fields.len(), 6, "{line:?}");
    assert_eq!(&fields[..3], &["1", "6", "unix"]);
    assert!(
        fields[3].starts_with(&*sockets.path().to_string_lossy()),
        "honours PLUGIN_UNIX_SOCKET_DIR: {line:?}"
    );
    assert!(fields[3].ends_with(".sock"), "{line:?}");
    assert_eq!(fields[4], "grpc");
    eprintln!("provider start to handshake: {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(5),
        "handshake took {elapsed:?}"
    );
}
