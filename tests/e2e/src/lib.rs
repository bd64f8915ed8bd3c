//! End-to-end drivers: the real Terraform CLIs, the real kube-apiserver (a
//! fault proxy in front of it where a test needs failures, a real admission
//! webhook where it needs mutations), the real `kubectl`, and ways to run a
//! rendered pod spec: as a local process, or inside the runner image with
//! `runc`; the release `scripts/release` writes, and a static HTTPS host
//! to serve its provider mirror.

pub mod cluster;
pub mod deployed;
pub mod fields;
pub mod https;
pub mod image;
pub mod local_pod;
pub mod release;
pub mod runc;
pub mod terraform;
pub mod webhook;

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/e2e sits two levels below the root")
        .to_path_buf()
}

/// Directory of the workspace's built binaries (`target/debug`). The tests
/// run `beads-runner` and `terraform-provider-beads` from there, which cargo
/// does not rebuild for this crate: `scripts/test` builds the whole
/// workspace first (`cargo build --workspace --all-targets`).
pub fn bin_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test> or target/debug/<bin>
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}
