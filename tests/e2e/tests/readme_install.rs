#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The README's "Installing the provider" steps work as written: the build
//! command names a profile Cargo.toml defines, the `dev_overrides` path and
//! the copied file are that profile's output, and the filesystem-mirror
//! commands, run with a fresh `HOME`, leave a provider that `terraform init`
//! finds offline (no CLI configuration at all) and `terraform validate`
//! starts. The build itself is not rerun here (a second full build of the
//! workspace's dependencies); the test's own build of the provider stands in
//! for its output.

use std::path::Path;
use std::process::Command;

use beads_e2e::terraform::{binaries, text, version_of};
use beads_e2e::{bin_dir, repo_root};

/// The fenced code blocks (language, body) of the README section `heading`.
fn blocks(readme: &str, heading: &str) -> Vec<(String, String)> {
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README has a section {heading:?}"));
    let section = section.split("\n## ").next().unwrap();
    let mut out = Vec::new();
    let mut parts = section.split("```").skip(1).step_by(2);
    for block in parts.by_ref() {
        let (lang, body) = block.split_once('\n').unwrap();
        out.push((lang.trim().to_string(), body.to_string()));
    }
    out
}

#[test]
fn the_install_steps_work_as_written() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = blocks(&readme, "## Installing the provider");
    let sh = &blocks
        .iter()
        .find(|(lang, _)| lang == "sh")
        .expect("an sh block")
        .1;
    let lines: Vec<&str> = sh.lines().filter(|l| !l.trim().is_empty()).collect();

    // The build line names a profile that exists, and the rest uses its output.
    let build = lines[0];
    let profile = build
        .split_whitespace()
        .skip_while(|w| *w != "--profile")
        .nth(1)
        .unwrap_or_else(|| panic!("the build line names a profile: {build}"));
    assert!(build.starts_with("cargo build ") && build.contains("-p terraform-provider-beads"));
    let cargo_toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains(&format!("\n[profile.{profile}]\n")),
        "Cargo.toml defines no profile {profile:?}"
    );
    // "That profile builds the crypto library for speed; the release
    // profile builds it for size": aws-lc-sys defines OPENSSL_SMALL exactly
    // at opt-level "s" or "z" (its build script's `is_small()`).
    let small = |table: &str| {
        let opt = toml_table(&cargo_toml, table)
            .lines()
            .find_map(|l| l.strip_prefix("opt-level = "))
            .unwrap_or_else(|| panic!("{table} sets an opt-level"))
            .trim_matches('"')
            .to_string();
        opt == "s" || opt == "z"
    };
    assert!(small("[profile.release]"));
    assert!(!small(&format!("[profile.{profile}.package.aws-lc-sys]")));
    let output = format!("target/{profile}/terraform-provider-beads");
    assert!(sh.contains(&output), "the copy reads {output}: {sh}");
    let overrides = &blocks
        .iter()
        .find(|(_, body)| body.contains("dev_overrides"))
        .expect("a dev_overrides block")
        .1;
    assert!(
        overrides.contains(&format!("/path/to/repo/target/{profile}\"")),
        "dev_overrides points at target/{profile}: {overrides}"
    );
    let required = &blocks
        .iter()
        .find(|(_, body)| body.contains("required_providers"))
        .expect("a required_providers block")
        .1;

    let built = bin_dir().join("terraform-provider-beads");
    let script = lines[1..]
        .join("\n")
        .replace(&output, built.to_str().unwrap());
    for terraform in binaries() {
        let home = tempfile::tempdir().unwrap();
        let status = Command::new("bash")
            .args(["-euc", &script])
            .env("HOME", home.path())
            .status()
            .unwrap();
        assert!(status.success(), "the README's install commands failed");
        let work = home.path().join("work");
        std::fs::create_dir(&work).unwrap();
        std::fs::write(work.join("main.tf"), required).unwrap();
        let run = |args: &[&str]| {
            let out = terraform_command(&terraform, &work, home.path())
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "terraform {args:?} ({}) failed:\n{}",
                version_of(&terraform),
                text(&out)
            );
            text(&out)
        };
        let init = run(&["init", "-no-color"]);
        assert!(
            init.contains("Installing beads-autodispatch/beads v0.1.0"),
            "{init}"
        );
        run(&["validate", "-no-color"]);
    }
}

/// The body of the TOML table headed `header` (up to the next header).
fn toml_table<'a>(toml: &'a str, header: &str) -> &'a str {
    let body = toml
        .split(&format!("\n{header}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("Cargo.toml has no {header}"));
    body.split("\n[").next().unwrap()
}

/// Terraform with nothing but `HOME`: no CLI configuration file, so the
/// implicit local mirror (`~/.terraform.d/plugins`) is where it looks.
fn terraform_command(terraform: &Path, work: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(terraform);
    cmd.current_dir(work)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0");
    cmd
}
