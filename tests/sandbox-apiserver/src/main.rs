//! CLI for the sandbox API server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

use beads_sandbox_apiserver::{Config, FAULTS_ENV, Options, parse_faults, spawn};

/// A stand-in Kubernetes API server (namespaces, configmaps, secrets,
/// cronjobs, deployments) for tests and local use with kubectl.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for this server to PATH.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Emulate a Kyverno-like mutating webhook on CronJob/Deployment writes.
    #[arg(long)]
    mutate_pods_like_kyverno: bool,
    /// Milliseconds a Foreground/Orphan-deleted object lingers before removal.
    #[arg(long, default_value_t = 300)]
    foreground_delete_delay_ms: u64,
    /// Faults to arm at start (JSON object or array).
    #[arg(long, env = FAULTS_ENV)]
    faults: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let faults = match cli.faults.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => parse_faults(s).context("parsing faults")?,
        None => Vec::new(),
    };
    let handle = spawn(Config {
        listen: cli.listen,
        options: Options {
            mutate_like_kyverno: cli.mutate_pods_like_kyverno,
            foreground_delete_delay: Duration::from_millis(cli.foreground_delete_delay_ms),
            ..Options::default()
        },
        faults,
    })
    .await
    .with_context(|| format!("binding {}", cli.listen))?;
    println!("listening on {}", handle.url());
    if let Some(path) = &cli.kubeconfig {
        handle
            .write_kubeconfig(path)
            .with_context(|| format!("writing kubeconfig {}", path.display()))?;
        println!("kubeconfig written to {}", path.display());
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    handle.shutdown().await;
    Ok(())
}
