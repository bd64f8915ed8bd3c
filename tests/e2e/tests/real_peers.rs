#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The cluster every provider test runs on is the real kube-apiserver that
//! scripts/setup built from the Go module proxy, and a test that needs it
//! fails with a message saying how to start it when it is missing, never
//! falling back to anything else.

use beads_e2e::cluster::{self, Cluster};
use serde_json::Value;

#[test]
fn the_cluster_is_kube_apiserver_1_37_built_here() {
    let c = Cluster::real().unwrap();
    let out = c.kubectl_ok(&["version", "-o", "json"]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let server = &v["serverVersion"];
    assert_eq!(server["gitVersion"], "v1.37.2", "{v}");
    assert_eq!(server["major"], "1", "{v}");
    assert_eq!(server["minor"], "37", "{v}");
    // Built here by scripts/peers/build, with this machine's Go (upstream
    // release binaries of 1.37 are built with the Go of their release).
    let go = String::from_utf8(
        std::process::Command::new("go")
            .arg("env")
            .arg("GOVERSION")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(server["goVersion"], go.trim(), "{v}");
}

#[test]
fn without_the_server_a_test_says_how_to_start_it() {
    let missing = cluster::kube_dir_from(None).unwrap_err().to_string();
    assert!(
        missing.contains(cluster::KUBE_DIR_VAR)
            && missing.contains("scripts/kube-throwaway start")
            && missing.contains("scripts/test"),
        "{missing}"
    );
    let empty = tempfile::tempdir().unwrap();
    let stale = cluster::kube_dir_from(Some(empty.path().into()))
        .unwrap_err()
        .to_string();
    assert!(stale.contains("holds no kubeconfig"), "{stale}");
}
