#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! `scripts/release` ships the provider as the registry does, and the
//! README's promises about it hold: `terraform init` (1.11.4, and 1.0 when
//! `BEADS_TERRAFORM_1_0` is set), configured with the README's
//! `network_mirror` block and nothing else, installs the provider from
//! `mirror/` served over HTTPS on loopback, records the mirror's `h1:` and
//! `zh:` hashes in `.terraform.lock.hcl`, and plans with it; a mirror whose
//! zip does not match its hashes fails `init`; two runs write the same
//! zips; a named GPG key signs SHA256SUMS, and one gpg does not have stops
//! the release with nothing written.
//!
//! The release is the one `scripts/test` wrote before the tests
//! (`BEADS_RELEASE_DIST`), or a fresh run of `scripts/release`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use beads_e2e::https::StaticHttps;
use beads_e2e::release::{self, ADDRESS, PLATFORM, PROVIDER, Release, VERSION, locked_hashes};
use beads_e2e::repo_root;
use beads_e2e::terraform::{self, Workspace, version_of};

/// The README's `network_mirror` block, pointed at `url`.
fn readme_network_mirror(url: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = readme
        .split("```hcl\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("network_mirror"))
        .expect("the README shows a network_mirror block");
    assert!(!block.contains("dev_overrides") && !block.contains("direct"));
    let example = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("url = "))
        .expect("the block has a url")
        .trim_matches('"');
    assert!(example.starts_with("https://"), "{example}");
    block.replace(example, url)
}

/// A configuration with one `beads_autodispatch` that plans without a cluster.
fn main_tf() -> String {
    format!(
        r#"{}
resource "beads_autodispatch" "main" {{
  namespace     = "beads"
  image         = "ghcr.io/acme/beads-runner"
  beadboard_url = "https://beadboard.example.com"

  dolt {{
    host     = "dolt.beads-server.svc.cluster.local"
    database = "beads"
  }}
}}
"#,
        terraform::header("")
    )
}

/// A workspace whose only provider source is the mirror at `server`.
fn mirror_workspace(tf: &Path, server: &StaticHttps) -> Workspace {
    let mut ws = Workspace::with_cli_config(tf, &readme_network_mirror(&server.url)).unwrap();
    ws.env("SSL_CERT_FILE", server.ca_file.to_str().unwrap());
    ws.write("main.tf", &main_tf()).unwrap();
    ws
}

/// The provider binary `init` installed, if any.
fn installed(ws: &Workspace) -> std::path::PathBuf {
    ws.work
        .join(".terraform/providers")
        .join(ADDRESS)
        .join(VERSION)
        .join(PLATFORM)
        .join(format!("{PROVIDER}_v{VERSION}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_init_installs_from_the_mirror_records_its_hashes_and_plans() {
    let release = Release::current().unwrap();
    let hashes = release.mirror_hashes().unwrap();
    let zip_sum = release
        .sums()
        .unwrap()
        .into_iter()
        .find(|(name, _)| *name == release::zip_name())
        .expect("SHA256SUMS lists the zip")
        .1;
    let h1 = hashes
        .iter()
        .find(|h| h.starts_with("h1:"))
        .expect("the mirror gives an h1: hash")
        .clone();
    let zh = format!("zh:{zip_sum}");
    assert!(hashes.contains(&zh), "{hashes:?} lacks {zh}");
    let server = StaticHttps::serve(&release.mirror()).await.unwrap();

    for tf in terraform::binaries() {
        let version = version_of(&tf);
        let ws = mirror_workspace(&tf, &server);
        let init = ws.ok(&["init", "-no-color"]).unwrap();
        assert!(
            init.contains(&format!("Installing beads-autodispatch/beads v{VERSION}")),
            "{version}: {init}"
        );
        let lock_file = ws.work.join(".terraform.lock.hcl");
        let lock = std::fs::read_to_string(&lock_file).unwrap();
        // Terraform records the h1: it computed over what it unpacked (a
        // mirror's hashes are not signed, so it records no zh:): equal to
        // the mirror's, the release hashed the archive as Terraform does.
        assert_eq!(
            locked_hashes(&lock),
            BTreeSet::from([h1.clone()]),
            "{version}: {lock}"
        );
        assert!(installed(&ws).is_file(), "{version}: nothing installed");

        // A lock holding only the zip's zh: from SHA256SUMS (as an install
        // from a registry records it) is checked against the mirror's zip
        // and kept, with the h1: added.
        std::fs::remove_dir_all(ws.work.join(".terraform")).unwrap();
        std::fs::write(&lock_file, lock.replace(&h1, &zh)).unwrap();
        ws.ok(&["init", "-no-color"]).unwrap();
        let lock = std::fs::read_to_string(&lock_file).unwrap();
        assert_eq!(
            locked_hashes(&lock),
            BTreeSet::from([h1.clone(), zh.clone()]),
            "{version}: {lock}"
        );

        let (changes, plan) = ws.plan(&[]).unwrap();
        assert!(changes, "{version}: {plan}");
        assert!(
            plan.contains("beads_autodispatch.main will be created"),
            "{version}: {plan}"
        );
        // `image_tag` defaults to the release's version.
        assert!(
            plan.contains(&format!("image_tag           = \"{VERSION}\"")),
            "{version}: {plan}"
        );
    }
    let fetched: BTreeSet<String> = server
        .served()
        .into_iter()
        .filter(|s| s.status == 200)
        .map(|s| s.path)
        .collect();
    for file in [
        "index.json".to_string(),
        format!("{VERSION}.json"),
        release::zip_name(),
    ] {
        let path = format!("/{ADDRESS}/{file}");
        assert!(fetched.contains(&path), "{path} not fetched: {fetched:?}");
    }
}

/// Rewrites the zip `argv[1]` as `argv[2]`: the same entry, one byte longer.
const TAMPER: &str = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    entry = z.infolist()[0]
    data = z.read(entry) + b"\0"
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr(entry, data)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_whose_zip_does_not_match_its_hashes_fails_init() {
    let release = Release::current().unwrap();
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&release.mirror(), copy.path());
    // The same provider, one byte longer: it would install and run, so
    // only the hash check can refuse it.
    let zip = copy.path().join(ADDRESS).join(release::zip_name());
    let tampered = zip.with_extension("zip.new");
    let status = Command::new("python3")
        .args(["-c", TAMPER])
        .arg(&zip)
        .arg(&tampered)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::rename(&tampered, &zip).unwrap();
    assert_ne!(
        std::fs::read(&zip).unwrap(),
        release.read(&release::zip_name()).unwrap()
    );
    let server = StaticHttps::serve(copy.path()).await.unwrap();

    for tf in terraform::binaries() {
        let version = version_of(&tf);
        let ws = mirror_workspace(&tf, &server);
        let out = ws.run(&["init", "-no-color"]).unwrap();
        let text = terraform::text(&out);
        assert!(!out.status.success(), "{version}: init succeeded:\n{text}");
        assert!(text.contains("checksum"), "{version}: {text}");
        assert!(!installed(&ws).exists(), "{version}: installed anyway");
    }
    let zip_path = format!("/{ADDRESS}/{}", release::zip_name());
    assert!(
        server.served().iter().any(|s| s.path == zip_path),
        "the tampered zip was never fetched: {:?}",
        server.served()
    );
}

/// "from any static HTTPS host that sends `.json` files as
/// `application/json` (Terraform refuses the mirror otherwise)"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_sends_json_as_another_type_fails_init() {
    let release = Release::current().unwrap();
    let server = StaticHttps::serve_json_as(&release.mirror(), "text/plain; charset=utf-8")
        .await
        .unwrap();
    for tf in terraform::binaries() {
        let version = version_of(&tf);
        let ws = mirror_workspace(&tf, &server);
        let out = ws.run(&["init", "-no-color"]).unwrap();
        let text = terraform::text(&out);
        assert!(!out.status.success(), "{version}: init succeeded:\n{text}");
        assert!(
            text.contains("invalid Content-Type: must be application/json"),
            "{version}: {text}"
        );
        assert!(!installed(&ws).exists(), "{version}: installed anyway");
    }
}

#[test]
fn two_runs_write_identical_zips_and_a_named_key_signs_the_sums() {
    let first = Release::current().unwrap();
    let gnupg = GnuPg::new();
    let key = "beads release test <release-test@example.invalid>";
    gnupg.run(&[
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--quick-generate-key",
        key,
        "ed25519",
        "sign",
        "never",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let second = tmp.path().join("dist");
    let out = release::run(
        &second,
        &[
            ("BEADS_RELEASE_GPG_KEY", key),
            ("GNUPGHOME", gnupg.path().to_str().unwrap()),
        ],
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("signed"), "{stderr}");

    let zip = release::zip_name();
    // Not assert_eq: a failure would print megabytes.
    assert!(
        std::fs::read(second.join(&zip)).unwrap() == first.read(&zip).unwrap(),
        "two runs wrote different zips: {} and {} (was {} written at this commit?)",
        first.dir.join(&zip).display(),
        second.join(&zip).display(),
        release::DIST_VAR
    );
    // Every artifact is reproducible, so the sums are the same bytes too.
    let sums = release::sums_name();
    assert_eq!(
        std::fs::read_to_string(second.join(&sums)).unwrap(),
        String::from_utf8(first.read(&sums).unwrap()).unwrap()
    );
    let verify = Command::new("gpg")
        .env("GNUPGHOME", gnupg.path())
        .args(["--batch", "--verify"])
        .arg(second.join(format!("{sums}.sig")))
        .arg(second.join(&sums))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stderr).contains("Good signature"));
}

/// Every file the README's table names is in the release, nothing else is,
/// SHA256SUMS holds the right sum of each artifact, and the manifest names
/// the protocol the provider speaks.
#[test]
fn the_release_holds_what_the_readme_lists() {
    let release = Release::current().unwrap();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let table = readme
        .split("## Installing the provider")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .find(|p| p.starts_with("| file |"))
        .expect("a table of the release's files");
    let listed: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.split('`').next().unwrap().replace("0.1.0", VERSION))
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    let sig = format!("{}.sig", release::sums_name());
    let present: BTreeSet<String> = std::fs::read_dir(&release.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut expected = listed.clone();
    // The signature exists only for a signed release (scripts/test's is not).
    if !present.contains(&sig) {
        expected.remove(&sig);
    }
    assert_eq!(present, expected);

    // The sums are right and cover every artifact but the sums themselves.
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", &release::sums_name()])
        .current_dir(&release.dir)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", terraform::text(&check));
    let summed: BTreeSet<String> = release
        .sums()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let artifacts: BTreeSet<String> = present
        .iter()
        .filter(|n| release.dir.join(n).is_file() && !n.contains("SHA256SUMS"))
        .cloned()
        .collect();
    assert_eq!(summed, artifacts);

    let manifest: serde_json::Value = serde_json::from_slice(
        &release
            .read(&format!("{PROVIDER}_{VERSION}_manifest.json"))
            .unwrap(),
    )
    .unwrap();
    let protocol = format!("{}.0", tfplugin::handshake::PROTOCOL_VERSION);
    assert_eq!(
        manifest,
        serde_json::json!({"version": 1, "metadata": {"protocol_versions": [protocol]}})
    );
}

#[test]
fn a_gpg_key_that_does_not_exist_fails_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let gnupg = GnuPg::new();
    let out = tmp.path().join("dist");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("earlier-release"), "kept").unwrap();
    let key = "nobody@example.invalid";
    let run = release::run(
        &out,
        &[
            ("BEADS_RELEASE_GPG_KEY", key),
            ("GNUPGHOME", gnupg.path().to_str().unwrap()),
        ],
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("BEADS_RELEASE_GPG_KEY={key}"))
            && stderr.contains("no secret key"),
        "{stderr}"
    );
    assert!(!stderr.contains("building"), "it built first: {stderr}");
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["dist"]);
    let kept: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(kept, ["earlier-release"]);
}

/// A throwaway gpg home; its agent is stopped when dropped.
struct GnuPg(tempfile::TempDir);

impl GnuPg {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        GnuPg(home)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Runs `gpg --batch <args>` with this home.
    fn run(&self, args: &[&str]) {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.path())
            .arg("--batch")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for GnuPg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
