//! `mmgen`: the command-line entry to mmgen.

mod bench;
mod world_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mmgen",
    version,
    about = "Multimodal generation engine: text, images, video and audio from one request"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The procedural world: sample, render and caption training data.
    #[command(subcommand)]
    World(world_cmd::WorldCommand),
    /// Benchmarks (speed is measured here, never in tests).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::World(cmd) => world_cmd::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
