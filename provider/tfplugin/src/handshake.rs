//! go-plugin's launch handshake: the magic cookie, protocol version
//! negotiation, the socket location and the one line printed on stdout.

use std::path::{Path, PathBuf};

use base64::Engine;

/// Environment variable holding the magic cookie.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// The cookie value every protocol-6 Terraform sends.
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 6;
/// go-plugin's core protocol version (first handshake field).
pub const CORE_PROTOCOL_VERSION: u32 = 1;

/// Why the process cannot serve Terraform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Started by a person or another program, not by Terraform.
    #[error(
        "This binary is a plugin for Terraform. It is not meant to be run directly: \
         Terraform starts it when a configuration uses the provider. \
         (Run it with --debug to start it for debugging.)"
    )]
    NotLaunchedByTerraform,
    /// Terraform offers no protocol version this provider speaks.
    #[error(
        "Terraform offered plugin protocol versions {offered:?}, but this provider speaks only \
         version 6; use Terraform 1.0 or later"
    )]
    NoCommonVersion { offered: String },
}

/// The parts of the environment the handshake reads.
#[derive(Debug, Clone, Default)]
pub struct LaunchEnv {
    /// `TF_PLUGIN_MAGIC_COOKIE`.
    pub magic_cookie: Option<String>,
    /// `PLUGIN_PROTOCOL_VERSIONS`, e.g. `5,6`.
    pub protocol_versions: Option<String>,
    /// `PLUGIN_CLIENT_CERT`: Terraform's PEM certificate (AutoMTLS).
    pub client_cert: Option<String>,
    /// `PLUGIN_UNIX_SOCKET_DIR`: where to create the socket.
    pub socket_dir: Option<PathBuf>,
}

impl LaunchEnv {
    /// Reads the process environment.
    pub fn from_process() -> LaunchEnv {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        LaunchEnv {
            magic_cookie: get(MAGIC_COOKIE_KEY),
            protocol_versions: get("PLUGIN_PROTOCOL_VERSIONS"),
            client_cert: get("PLUGIN_CLIENT_CERT"),
            socket_dir: get("PLUGIN_UNIX_SOCKET_DIR").map(PathBuf::from),
        }
    }

    /// Checks the magic cookie.
    pub fn check_magic_cookie(&self) -> Result<(), HandshakeError> {
        match self.magic_cookie.as_deref() {
            Some(MAGIC_COOKIE_VALUE) => Ok(()),
            _ => Err(HandshakeError::NotLaunchedByTerraform),
        }
    }

    /// Picks protocol 6 if Terraform offers it (or offers nothing, as
    /// go-plugin then uses the plugin's own version).
    pub fn negotiate_version(&self) -> Result<u32, HandshakeError> {
        let Some(offered) = self.protocol_versions.as_deref() else {
            return Ok(PROTOCOL_VERSION);
        };
        let speaks_6 = offered
            .split(',')
            .filter_map(|v| v.trim().parse::<u32>().ok())
            .any(|v| v == PROTOCOL_VERSION);
        if speaks_6 {
            Ok(PROTOCOL_VERSION)
        } else {
            Err(HandshakeError::NoCommonVersion {
                offered: offered.to_string(),
            })
        }
    }
}

/// A private directory holding the plugin's unix socket; removed on drop.
#[derive(Debug)]
pub struct SocketDir {
    dir: PathBuf,
    socket: PathBuf,
}

impl SocketDir {
    /// Creates a new directory (mode 0700) under `parent` (or the system
    /// temp directory) with a unique name, and plans the socket inside it.
    pub fn create(parent: Option<&Path>) -> std::io::Result<SocketDir> {
        use std::os::unix::fs::DirBuilderExt;
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let pid = std::process::id();
        for attempt in 0u32..100 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let dir = parent.join(format!("tfplugin-{pid}-{nanos:08x}{attempt}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    remove_stale(&parent, pid);
                    let socket = dir.join("provider.sock");
                    return Ok(SocketDir { dir, socket });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "no free socket directory name",
        ))
    }

    /// Path of the socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }
}

/// Removes socket directories left by provider processes that no longer
/// exist (Terraform SIGKILLs a provider that does not exit in time, and a
/// killed process cannot clean up). Only effective where `/proc` exists.
fn remove_stale(parent: &Path, own_pid: u32) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("tfplugin-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own_pid || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        let _ = std::fs::remove_file(dir.join("provider.sock"));
        // Fails (and keeps the directory) if anything else is inside.
        let _ = std::fs::remove_dir(&dir);
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The handshake line (without newline):
/// `1|6|unix|/path/provider.sock|grpc|<server cert DER, base64 without padding>`.
/// Without TLS the last field is empty, as go-plugin prints it.
pub fn handshake_line(version: u32, socket: &Path, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!(
        "{CORE_PROTOCOL_VERSION}|{version}|unix|{}|grpc|{cert}",
        socket.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_must_match() {
        let mut env = LaunchEnv::default();
        assert_eq!(
            env.check_magic_cookie(),
            Err(HandshakeError::NotLaunchedByTerraform)
        );
        env.magic_cookie = Some("nope".into());
        assert!(env.check_magic_cookie().is_err());
        env.magic_cookie = Some(MAGIC_COOKIE_VALUE.into());
        assert_eq!(env.check_magic_cookie(), Ok(()));
        assert!(
            HandshakeError::NotLaunchedByTerraform
                .to_string()
                .contains("plugin for Terraform")
        );
    }

    #[test]
    fn negotiates_six() {
        let env = |v: Option<&str>| LaunchEnv {
            protocol_versions: v.map(String::from),
            ..LaunchEnv::default()
        };
        assert_eq!(env(Some("5,6")).negotiate_version(), Ok(6));
        assert_eq!(env(Some("6,5")).negotiate_version(), Ok(6));
        assert_eq!(env(None).negotiate_version(), Ok(6));
        assert!(matches!(
            env(Some("5")).negotiate_version(),
            Err(HandshakeError::NoCommonVersion { .. })
        ));
        assert!(env(Some("x,y")).negotiate_version().is_err());
    }

    #[test]
    fn line_has_six_fields_and_unpadded_base64() {
        // 4 bytes encode to 6 base64 characters plus "==" padding, which must be left out.
        let line = handshake_line(6, Path::new("/tmp/x/provider.sock"), Some(&[1, 2, 3, 4]));
        assert_eq!(line, "1|6|unix|/tmp/x/provider.sock|grpc|AQIDBA");
        let plain = handshake_line(6, Path::new("/s"), None);
        assert_eq!(plain, "1|6|unix|/s|grpc|");
        assert_eq!(plain.split('|').count(), 6);
    }

    #[test]
    fn socket_dir_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().expect("tempdir");
        let sd = SocketDir::create(Some(parent.path())).expect("create");
        let dir = sd.socket_path().parent().expect("parent").to_path_buf();
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let other = SocketDir::create(Some(parent.path())).expect("second");
        assert_ne!(other.socket_path(), sd.socket_path());
        drop(sd);
        assert!(!dir.exists());
    }

    #[test]
    fn stale_directories_of_dead_processes_are_removed() {
        let parent = tempfile::tempdir().expect("tempdir");
        // PID 0x7fffffff cannot be a live process; PID 1 always is.
        let dead = parent.path().join(format!("tfplugin-{}-abc", i32::MAX));
        let alive = parent.path().join("tfplugin-1-abc");
        let unrelated = parent.path().join("tfplugin-notapid");
        for d in [&dead, &alive, &unrelated] {
            std::fs::create_dir(d).expect("mkdir");
        }
        std::fs::write(dead.join("provider.sock"), b"").expect("stale socket");
        let _sd = SocketDir::create(Some(parent.path())).expect("create");
        assert!(!dead.exists(), "stale directory removed");
        assert!(alive.exists() && unrelated.exists(), "others kept");
    }
}
