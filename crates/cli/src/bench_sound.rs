//! `mmgen bench sound`: how fast the grounded sound is made, as a real-time factor
//! (seconds of work per second of audio), split into the music planner, the note
//! model and the synthesiser. Run it under `taskset -c 0` for the one-core figure.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use mmgen_models::grounded::music::{compose, render_score, MusicPlanner, NoteModel, SoundSettings, Synth};

use crate::device::DeviceArg;

#[derive(Args)]
pub struct SoundBenchArgs {
    /// The request.
    #[arg(long, default_value = "calm piano music at 90 bpm")]
    prompt: String,
    /// Seconds of audio per run.
    #[arg(long, default_value_t = 60.0, value_parser = crate::sampling::seconds_value)]
    seconds: f64,
    /// The music planner folder.
    #[arg(long, default_value = "models/grounded-music-planner")]
    music_planner: PathBuf,
    /// The note model folder.
    #[arg(long, default_value = "models/grounded-notes")]
    notes: PathBuf,
    /// The synthesiser folder.
    #[arg(long, default_value = "models/grounded-synth")]
    synth: PathBuf,
    /// Timed runs (medians are reported) after one warm-up, each with its own seed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    iters: u32,
    /// Where to run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
    /// Print JSON instead of lines.
    #[arg(long)]
    json: bool,
}

/// Seconds of each stage of one run.
#[derive(Clone, Copy, Default)]
struct Stages {
    plan: f64,
    notes: f64,
    synth: f64,
}

pub fn run(args: SoundBenchArgs) -> Result<()> {
    let device = args.device.open()?;
    let planner = MusicPlanner::load(&args.music_planner, &device)
        .with_context(|| format!("--music-planner {}", args.music_planner.display()))?;
    let notes = NoteModel::load(&args.notes, &device).with_context(|| format!("--notes {}", args.notes.display()))?;
    let synth = Synth::load(&args.synth, &device).with_context(|| format!("--synth {}", args.synth.display()))?;
    let settings = SoundSettings::new(args.seconds as f32);
    let mut runs = Vec::new();
    let mut written = 0usize;
    // Seed 0 is the warm-up.
    for seed in 0..=args.iters as u64 {
        let start = Instant::now();
        let plan = planner.plan_music(&[(args.prompt.as_str(), seed)])?.remove(0);
        let planned = Instant::now();
        let score = compose(&notes, &plan, seed, &settings)?;
        let composed = Instant::now();
        written = 0;
        render_score(&synth, &plan, score.as_ref(), seed, &settings, |block| {
            written += block.len();
            Ok(())
        })?;
        let stages = Stages {
            plan: (planned - start).as_secs_f64(),
            notes: (composed - planned).as_secs_f64(),
            synth: composed.elapsed().as_secs_f64(),
        };
        if seed > 0 {
            runs.push(stages);
        }
    }
    let median = |f: fn(&Stages) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(|a, b| a.total_cmp(b));
        values[values.len() / 2]
    };
    let (plan, notes_s, synth_s) = (median(|s| s.plan), median(|s| s.notes), median(|s| s.synth));
    let total = median(|s| s.plan + s.notes + s.synth);
    let threads = candle_core::utils::barrier_pool().n_workers() + 1;
    let affinity = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if args.json {
        let report = serde_json::json!({
            "prompt": args.prompt,
            "seconds": args.seconds,
            "samples": written,
            "iters": args.iters,
            "device": args.device.to_string(),
            "threads": threads,
            "cores_available": affinity,
            "median_seconds": {"plan": plan, "notes": notes_s, "synth": synth_s, "total": total},
            "real_time_factor": total / args.seconds,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} s of \"{}\": {total:.3} s (real-time factor {:.4}); plan {:.1} ms, notes {:.3} s, synthesiser {:.3} s \
             (median of {} on {}, {threads} threads, {affinity} cores available)",
            args.seconds,
            args.prompt,
            total / args.seconds,
            plan * 1e3,
            notes_s,
            synth_s,
            args.iters,
            args.device,
        );
    }
    Ok(())
}
