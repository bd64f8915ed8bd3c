#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The real Terraform CLIs (1.11.4, and 1.0 when `BEADS_TERRAFORM_1_0` is
//! set) validate and plan `beads_autodispatch` without any cluster, and
//! report each invalid value at its attribute and line.

use std::path::Path;

use beads_e2e::terraform::{self, Workspace};

fn workspace(tf: &Path, main_tf: &str) -> Workspace {
    let ws = Workspace::new(tf, &beads_e2e::bin_dir()).unwrap();
    ws.write("main.tf", main_tf).unwrap();
    ws
}

fn version_of(tf: &Path) -> String {
    let o = std::process::Command::new(tf)
        .arg("version")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A valid resource; `extra` lines go right after `namespace` and
/// `dolt_extra` lines into the `dolt` block.
fn config(namespace: &str, extra: &str, dolt_extra: &str) -> String {
    let header = terraform::header("");
    format!(
        r#"{header}
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
    for tf in terraform::binaries() {
        let ws = workspace(&tf, &config("beads", "", ""));
        let o = ws.run(&["validate", "-no-color"]).unwrap();
        assert!(
            o.status.success(),
            "{}: validate failed:\n{}",
            version_of(&tf),
            terraform::text(&o)
        );
        assert!(
            terraform::text(&o).contains("The configuration is valid"),
            "{}",
            terraform::text(&o)
        );
    }
}

#[test]
fn plan_shows_defaults_and_computed_attributes_known_at_plan_time() {
    for tf in terraform::binaries() {
        let ws = workspace(&tf, &config("beads", "", ""));
        let o = ws.run(&["plan", "-no-color", "-input=false"]).unwrap();
        let out = terraform::text(&o);
        assert!(
            o.status.success(),
            "{}: plan failed:\n{out}",
            version_of(&tf)
        );
        assert!(
            out.contains("beads_autodispatch.main will be created"),
            "{out}"
        );
        // Only the instance id is made at apply; the rest follows from the
        // configuration and is shown in the plan.
        let after_apply: Vec<&str> = out
            .lines()
            .map(|l| l.trim_start().trim_start_matches('+').trim())
            .filter(|l| l.ends_with("= (known after apply)"))
            .collect();
        assert_eq!(after_apply.len(), 1, "{out}");
        assert!(after_apply[0].starts_with("instance_id"), "{out}");
        for known in [
            r#"config_map_name     = "beads-metadata""#,
            r#"dispatcher_cron_job = "beads-dispatcher""#,
            r#"metadata_json       = jsonencode("#,
            r#"+ "cronjob/beads-reaper""#,
            r#"+ "spec.suspend""#,
        ] {
            assert!(
                out.contains(known),
                "{}: {known:?} missing:\n{out}",
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
fn metadata_json_is_known_when_only_other_inputs_are_not() {
    // terraform_data (Terraform 1.4+) gives a value unknown until apply.
    let tf = terraform::binaries().remove(0);
    let main = config("beads", "  image_tag = terraform_data.tag.output", "")
        + "\nresource \"terraform_data\" \"tag\" {\n  input = \"0.1.0\"\n}\n";
    let ws = workspace(&tf, &main);
    let o = ws.run(&["plan", "-no-color", "-input=false"]).unwrap();
    let out = terraform::text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("metadata_json       = jsonencode("), "{out}");
    assert!(
        out.contains("objects             = (known after apply)"),
        "{out}"
    );
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
    for tf in terraform::binaries() {
        for case in &cases {
            let mut main_tf = config(case.namespace, case.extra, case.dolt_extra);
            if case.summary == "Invalid beadboard_url" {
                main_tf = main_tf.replace("https://beadboard.example.com", "beadboard.example.com");
            }
            let line = line_of(&main_tf, case.needle);
            let ws = workspace(&tf, &main_tf);
            for cmd in ["validate", "plan"] {
                let o = ws.run(&[cmd, "-no-color"]).unwrap();
                let out = terraform::text(&o);
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
