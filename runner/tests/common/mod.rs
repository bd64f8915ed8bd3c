//! Runs the real `beads-runner` binary against a test database and a stub BeadBoard.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;

use beads_testkit::{BeadsDb, StubBeadBoard};

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
    pub async fn new() -> Self {
        let db = BeadsDb::create().await;
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
