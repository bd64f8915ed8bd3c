use clap::Parser;

fn main() -> std::process::ExitCode {
    beads_runner::app::main(beads_runner::cli::Cli::parse())
}
