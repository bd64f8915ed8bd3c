//! Runs the real `beads-runner` binary against a test database and a stub BeadBoard.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;

pub use beads_testkit::Backend;
use beads_testkit::{BeadsDb, StubBeadBoard};

/// For each `async fn name(b: Backend)` listed, a test `mariadb::name` on
/// the suite's MariaDB and a test `dolt::name` on the suite's Dolt server:
/// the same body, the same assertions, against both.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod mariadb {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::MariaDb).await
                }
            )*
        }
        mod dolt {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Dolt).await
                }
            )*
        }
    };
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A database, a stub BeadBoard and a metadata.json pointing at the database.
pub struct World {
    pub db: BeadsDb,
    pub board: StubBeadBoard,
    pub dir: tempfile::TempDir,
    pub metadata: PathBuf,
}

impl World {
    /// A fresh database on the suite's server of `backend`.
    pub async fn new(backend: Backend) -> Self {
        let db = BeadsDb::create_for(backend).await;
        let board = StubBeadBoard::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let metadata = dir.path().join("metadata.json");
        std::fs::write(&metadata, db.metadata_json(None)).expect("write metadata.json");
        World {
            db,
            board,
            dir,
            metadata,
        }
    }

    /// The runner command with this world's configuration and a clean environment.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_beads-runner"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BEADS_METADATA", &self.metadata)
            .env("BEADBOARD_URL", self.board.url())
            .env("BEADS_HTTP_TIMEOUT", "2s")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs the runner to completion.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[]).await
    }

    /// Runs the runner with extra environment variables.
    pub async fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().await.expect("run beads-runner");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }
}

/// A runner started in the background, its stderr read line by line.
pub struct Running {
    pub child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(mut cmd: tokio::process::Command) -> Self {
        let mut child = cmd.spawn().expect("spawn beads-runner");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to 20 s) for a stderr line containing `text`; returns it.
    pub async fn wait_for(&mut self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Ok(None) => panic!("runner exited before {text:?}; stderr: {:#?}", self.seen),
                Err(_) => panic!("no {text:?} within 20s; stderr: {:#?}", self.seen),
            }
        }
    }

    /// Waits for exit, reading every stderr line; returns the exit code
    /// (None when killed by a signal) and all lines seen.
    pub async fn finish(&mut self) -> (Option<i32>, Vec<String>) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            self.seen.push(line);
        }
        let code = self.exit_code().await;
        (code, self.seen.clone())
    }

    /// Sends a signal with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill(1)");
        assert!(status.success());
    }

    /// Waits for exit and returns the code (None when killed by a signal).
    pub async fn exit_code(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait())
            .await
            .expect("runner did not exit within 30s")
            .expect("wait");
        status.code()
    }
}
