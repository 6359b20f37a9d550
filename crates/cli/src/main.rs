//! `mmgen`: the command-line entry to mmgen.

mod bench;
mod bench_memory;
mod bench_sound;
mod choices;
mod device;
mod edit_cmd;
mod eval_cmd;
mod generate_cmd;
mod model_args;
mod plan_cmd;
mod sampling;
mod serve_cmd;
mod train_cmd;
mod world_cmd;

use clap::{Parser, Subcommand};

// candle's CPU backend allocates a fresh buffer for every op; with glibc's malloc each
// buffer over 128 KiB is a new mmap whose pages fault in on first touch, which made
// probe training 2-3x slower than with an allocator that reuses memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Train models and probes.
    #[command(subcommand)]
    Train(train_cmd::TrainCommand),
    /// Generate a package from a prompt with the grounded models: a still or a clip
    /// (planner, renderer, trajectory model), music (music planner, note model,
    /// synthesiser: WAV, MIDI and the MP4's soundtrack), caption and meta.json.
    Generate(Box<generate_cmd::GenerateArgs>),
    /// Print the scene plan the grounded planner makes of a prompt (JSON).
    Plan(plan_cmd::PlanArgs),
    /// The grounded planner alone: its plans of world prompts against what each asks
    /// for (globals, count, objects, positions and relations on the sampled poses).
    EvalPlanner(plan_cmd::EvalPlannerArgs),
    /// Change a scene plan by an instruction ("make the star blue", "把星星移到左边")
    /// with the scene editor: prints the new plan (JSON) for `generate --plan`.
    Edit(edit_cmd::EditArgs),
    /// The scene editor alone on the world's edit pairs: the share of edits applied,
    /// and of edits that left everything else unchanged.
    EvalEditor(edit_cmd::EvalEditorArgs),
    /// GenEval-style alignment and world-FD of a generator on world prompts.
    Eval(eval_cmd::EvalArgs),
    /// A probe's own accuracy on fresh renders of both splits.
    EvalProbe(eval_cmd::EvalProbeArgs),
    /// Choose the image probe's detection threshold on fresh train-split renders, write
    /// it into the probe folder and re-measure its accuracy (training does this at its
    /// end; this is for folders trained before, or to recalibrate on more renders).
    CalibrateProbe(eval_cmd::CalibrateProbeArgs),
    /// A VAE's reconstructions of fresh renders: PSNR and a contact sheet.
    EvalVae(eval_cmd::EvalVaeArgs),
    /// What the audio probe still hears after log-mel -> Griffin-Lim (the vocoder
    /// baseline of mel-spectrogram audio decoders).
    EvalVocoder(eval_cmd::EvalVocoderArgs),
    /// The content studio: an HTTP API (jobs, progress events, sessions of turns,
    /// feedback, OpenAI-style images) and its web page at /, over the generate models.
    Serve(Box<serve_cmd::ServeArgs>),
    /// Benchmarks (speed is measured here, never in tests).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, v2), which the -sys crate does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// candle sizes its thread pool by the machine's cores, not by the CPUs this process
/// may run on: under `taskset -c 0` its two workers spin against each other on one
/// core, many times slower than one thread. Its pools (and rayon's, which its matrix
/// products use) are sized to the CPU set unless CANDLE_NUM_THREADS or
/// RAYON_NUM_THREADS says otherwise.
fn match_threads_to_cpu_set() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_some() || std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    if let Ok(cpus) = std::thread::available_parallelism() {
        // Set before any thread is started (edition 2021: safe, but only sound here).
        std::env::set_var("CANDLE_NUM_THREADS", cpus.get().to_string());
        std::env::set_var("RAYON_NUM_THREADS", cpus.get().to_string());
    }
}

fn main() {
    // By default mimalloc returns freed memory to the OS after 10 ms, and candle frees
    // and reallocates buffers of tens of MB every op: the pages then fault in and are
    // zeroed again, a third of the renderer's training time. -1: never purge.
    // SAFETY: sets a plain option before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    match_threads_to_cpu_set();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::World(cmd) => world_cmd::run(cmd),
        Command::Train(cmd) => train_cmd::run(cmd),
        Command::Generate(args) => generate_cmd::run(*args),
        Command::Plan(args) => plan_cmd::run(args),
        Command::EvalPlanner(args) => plan_cmd::run_eval(args),
        Command::Edit(args) => edit_cmd::run(args),
        Command::EvalEditor(args) => edit_cmd::run_eval(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::EvalProbe(args) => eval_cmd::run_probe(args),
        Command::CalibrateProbe(args) => eval_cmd::run_calibrate_probe(args),
        Command::EvalVae(args) => eval_cmd::run_vae(args),
        Command::EvalVocoder(args) => eval_cmd::run_vocoder(args),
        Command::Serve(args) => serve_cmd::run(*args),
        Command::Bench(cmd) => bench::run(cmd),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
