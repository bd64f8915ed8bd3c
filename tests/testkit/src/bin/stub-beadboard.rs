//! A stand-in for BeadBoard on one machine, for the quickstart and the
//! benchmarks: every dispatch is accepted with a fresh job id.
//!
//!   stub-beadboard [--listen 127.0.0.1:0] [--busy]
//!
//! Prints `listening on http://ADDR` on stdout, then one line per request on
//! stderr, until SIGTERM or Ctrl-C.

use std::time::Duration;

use beads_testkit::{Reply, StubBeadBoard};
use clap::Parser;

#[derive(Parser)]
#[command(about = "A stand-in BeadBoard that accepts every dispatch")]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Report the agent as busy.
    #[arg(long)]
    busy: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let board = StubBeadBoard::start_on(&args.listen).await?;
    board.status_default(Reply::Busy(args.busy));
    println!("listening on {}", board.url());
    let mut seen = 0;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let requests = board.requests();
        for r in &requests[seen..] {
            eprintln!("stub-beadboard: {} {} {}", r.method, r.path, r.body);
        }
        seen = requests.len();
    }
    Ok(())
}
