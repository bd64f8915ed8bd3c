//! The provider binary on its own: what a person running it by hand sees,
//! and the go-plugin handshake line Terraform reads.

use std::process::{Command, Stdio};
use std::time::Instant;

const PROVIDER_BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-beads");
const MAGIC_COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

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
    // A figure, not a target: scripts/bench measures it properly.
    eprintln!("provider start to handshake: {elapsed:?}");
}
