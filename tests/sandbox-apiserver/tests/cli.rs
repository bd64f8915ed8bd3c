//! The `beads-sandbox-apiserver` binary: first stdout line, kubeconfig file,
//! faults from the environment.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connects");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response read");
    out
}

#[test]
fn prints_address_writes_kubeconfig_and_arms_env_faults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("nested/kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_beads-sandbox-apiserver"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kc)
        .env(
            "SANDBOX_APISERVER_FAULTS",
            r#"{"verb":"get","resource":"namespaces","name":"default","status":503}"#,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    lines.read_line(&mut first).expect("first line");
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let addr = url
        .strip_prefix("http://127.0.0.1:")
        .map(|p| format!("127.0.0.1:{p}"))
        .expect("loopback URL");
    let mut second = String::new();
    lines.read_line(&mut second).expect("second line");
    assert!(second.starts_with("kubeconfig written to "), "{second:?}");

    let config = std::fs::read_to_string(&kc).expect("kubeconfig exists");
    assert!(config.contains(&format!("server: {url}")), "{config}");
    assert!(config.contains("current-context: sandbox"), "{config}");

    let version = http_get(&addr, "/version");
    assert!(version.starts_with("HTTP/1.1 200"), "{version}");
    assert!(
        version.contains("\"gitVersion\":\"v1.33.0-sandbox\""),
        "{version}"
    );
    let faulted = http_get(&addr, "/api/v1/namespaces/default");
    assert!(faulted.starts_with("HTTP/1.1 503"), "{faulted}");
    assert!(
        faulted.contains("\"reason\":\"ServiceUnavailable\""),
        "{faulted}"
    );
    let ok = http_get(&addr, "/api/v1/namespaces/default");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let watch = http_get(
        &addr,
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
    );
    assert!(watch.starts_with("HTTP/1.1 200"), "{watch}");

    child.kill().expect("stopped");
    child.wait().expect("reaped");
}
