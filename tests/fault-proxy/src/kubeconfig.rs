//! The kubeconfig of a proxy: plain HTTP on loopback and no credentials
//! (the proxy sends its own to the real server).

use std::path::Path;

/// A kubeconfig (YAML) with one cluster, user and context named
/// `fault-proxy`, namespace `default`.
pub fn render(server_url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fault-proxy
  cluster:
    server: {server_url}
contexts:
- name: fault-proxy
  context:
    cluster: fault-proxy
    user: fault-proxy
    namespace: default
current-context: fault-proxy
users:
- name: fault-proxy
  user: {{}}
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
