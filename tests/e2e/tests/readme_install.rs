#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The README's "Installing the provider" steps work as written: the
//! development build names a profile Cargo.toml defines (the one
//! `scripts/release` builds with) and `dev_overrides` points at its output,
//! and the filesystem-mirror commands, run with a fresh `HOME`, leave a
//! provider that `terraform init` finds offline (no CLI configuration at
//! all), locks with the mirror's `h1:` hash, and `terraform validate`
//! starts. `scripts/release` is not rerun here: the release `scripts/test`
//! wrote stands in for its output (or one fresh run, outside it). The
//! network mirror is tests/release_mirror.rs.

use std::path::Path;
use std::process::Command;

use beads_e2e::release::{Release, VERSION, locked_hashes};
use beads_e2e::repo_root;
use beads_e2e::terraform::{binaries, text, version_of};

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

/// The `sh` block of the section whose first line starts with `first`.
fn sh_block<'a>(blocks: &'a [(String, String)], first: &str) -> &'a str {
    &blocks
        .iter()
        .find(|(lang, body)| lang == "sh" && body.starts_with(first))
        .unwrap_or_else(|| panic!("an sh block starting with {first:?}"))
        .1
}

#[test]
fn the_development_build_and_dev_overrides_use_the_providers_profile() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = blocks(&readme, "## Installing the provider");
    let build = sh_block(&blocks, "cargo build ").trim();

    // The build line names a profile that exists, and dev_overrides uses its output.
    assert!(!build.contains('\n'), "one build command: {build}");
    let profile = build
        .split_whitespace()
        .skip_while(|w| *w != "--profile")
        .nth(1)
        .unwrap_or_else(|| panic!("the build line names a profile: {build}"));
    assert!(build.contains("-p terraform-provider-beads"), "{build}");
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
    let overrides = &blocks
        .iter()
        .find(|(_, body)| body.contains("dev_overrides"))
        .expect("a dev_overrides block")
        .1;
    assert!(
        overrides.contains(&format!("/path/to/repo/target/{profile}\"")),
        "dev_overrides points at target/{profile}: {overrides}"
    );
    // scripts/release builds the zip with the same profile.
    let script = std::fs::read_to_string(root.join("scripts/release")).unwrap();
    assert!(
        script.contains(&format!("cargo build --profile {profile} ")),
        "scripts/release builds with --profile {profile}"
    );
}

#[test]
fn the_filesystem_mirror_steps_work_as_written() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = blocks(&readme, "## Installing the provider");
    let sh = sh_block(&blocks, "scripts/release\n");
    let required = &blocks
        .iter()
        .find(|(_, body)| body.contains("required_providers"))
        .expect("a required_providers block")
        .1;
    // The release is built once for the suite; the rest of the block runs
    // as written, reading it where it is.
    let release = Release::current().unwrap();
    let h1 = release
        .mirror_hashes()
        .unwrap()
        .into_iter()
        .find(|h| h.starts_with("h1:"))
        .expect("the mirror gives an h1: hash");
    let script = sh
        .lines()
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n")
        .replace("target/dist", release.dir.to_str().unwrap());
    assert!(script.contains(release.dir.to_str().unwrap()), "{sh}");

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
            init.contains(&format!("Installing beads-autodispatch/beads v{VERSION}")),
            "{init}"
        );
        let lock = std::fs::read_to_string(work.join(".terraform.lock.hcl")).unwrap();
        assert!(
            locked_hashes(&lock).contains(&h1),
            "{}: the lock lacks the mirror's {h1}:\n{lock}",
            version_of(&terraform)
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
