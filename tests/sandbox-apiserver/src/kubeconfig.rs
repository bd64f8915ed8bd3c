//! Kubeconfig files pointing at a sandbox server.

use std::path::Path;

/// The bearer token written into kubeconfigs (the server accepts any).
pub const TOKEN: &str = "sandbox-token";

/// A kubeconfig (YAML) with one cluster, user and context named `sandbox`,
/// namespace `default`.
pub fn render(server_url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: {server_url}
contexts:
- name: sandbox
  context:
    cluster: sandbox
    user: sandbox
    namespace: default
current-context: sandbox
users:
- name: sandbox
  user:
    token: {TOKEN}
preferences: {{}}
"
    )
}

/// Writes [`render`] to `path`, creating parent directories.
pub fn write(path: &Path, server_url: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render(server_url))
}
