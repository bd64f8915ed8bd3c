//! A stand-in for BeadBoard on one machine, for the quickstart and the
//! benchmarks: every dispatch is accepted with a fresh job id.
//!
//!   stub-beadboard [--listen 127.0.0.1:0] [--busy] [--down-while PATH] [--flaky PERCENT]
//!
//! Prints `listening on http://ADDR` on stdout, then one line per request
//! and one `accepted <taskId> <job>` line per job on stderr, until SIGTERM
//! or Ctrl-C.

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
    /// While this file exists, answer every dispatch 502 `fetch failed`, as
    /// BeadBoard does with the agent service down.
    #[arg(long, value_name = "PATH")]
    down_while: Option<std::path::PathBuf>,
    /// Fail this percentage of dispatches (500, 502, reset, 429, late answer).
    #[arg(long, value_name = "PERCENT")]
    flaky: Option<u32>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let board = StubBeadBoard::start_on(&args.listen).await?;
    board.status_default(Reply::Busy(args.busy));
    let normal = match args.flaky {
        Some(fail_percent) => Reply::Flaky { fail_percent },
        None => Reply::Job(None),
    };
    board.dispatch_default(normal.clone());
    println!("listening on {}", board.url());
    let mut seen = 0;
    let mut seen_accepted = 0;
    let mut down = false;
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
        let accepted = board.accepted();
        for (task, job) in &accepted[seen_accepted..] {
            eprintln!("stub-beadboard: accepted {task} {job}");
        }
        seen_accepted = accepted.len();
        if let Some(path) = &args.down_while {
            let now_down = path.exists();
            if now_down != down {
                board.dispatch_default(if now_down {
                    Reply::json(502, r#"{"error":"fetch failed"}"#)
                } else {
                    normal.clone()
                });
                down = now_down;
            }
        }
    }
    Ok(())
}
