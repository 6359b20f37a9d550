//! `mmgen train ...`: training commands.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::device::DeviceArg;
use indicatif::{ProgressBar, ProgressStyle};
use mmgen_eval::probe::audio::AudioProbeConfig;
use mmgen_eval::probe::fit::{FitOptions, StepReport};
use mmgen_eval::probe::image::ImageProbeConfig;
use mmgen_eval::probe::train::{train_audio_probe, train_image_probe, train_video_probe, RunInfo};
use mmgen_eval::probe::video::VideoProbeConfig;

// The variant names are the subcommand names (`probe-image`, ...); the model
// families' commands (`text-image`, ...) join them later.
#[allow(clippy::enum_variant_names)]
#[derive(Subcommand)]
pub enum TrainCommand {
    /// Train the image probe (objects, count, position, background, style) on world renders.
    ProbeImage(ProbeArgs),
    /// Train the audio probe (instrument, mood) on world clips.
    ProbeAudio(ProbeArgs),
    /// Train the video probe (per-object motion) on world clips.
    ProbeVideo(ProbeArgs),
}

#[derive(Args)]
pub struct ProbeArgs {
    /// Optimiser steps.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    steps: u64,
    /// Samples per step.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch: u64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Seed of the training data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (config.json, model.safetensors, metrics.json).
    #[arg(long)]
    out: PathBuf,
    /// Fresh renders per split for the final accuracy.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    eval_samples: u64,
    /// Data worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    workers: u64,
    /// Use the tiny test configuration.
    #[arg(long)]
    tiny: bool,
    /// Continue from the weights in this probe folder (its config must match).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Where to train: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
    /// Stop after this many minutes of training even if steps remain; the learning-rate
    /// schedule follows whichever budget ends first. A checkpoint is saved every two
    /// minutes meanwhile.
    #[arg(long)]
    max_minutes: Option<f64>,
}

pub fn run(cmd: TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::ProbeImage(args) => probe_image(args),
        TrainCommand::ProbeAudio(args) => probe_audio(args),
        TrainCommand::ProbeVideo(args) => probe_video(args),
    }
}

fn bar(steps: u64) -> ProgressBar {
    ProgressBar::new(steps).with_style(
        ProgressStyle::with_template("{spinner} train [{bar:30}] {pos}/{len} {msg} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

fn report(bar: &ProgressBar, r: &StepReport) {
    bar.set_position(r.step as u64);
    let Some(loss) = r.loss else { return };
    bar.set_message(format!("loss {loss:.4} | {:.0} samples/s", r.samples_per_s));
    if r.step.is_multiple_of(100) || r.step == 1 {
        let parts: Vec<String> = r.parts.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        let line = format!(
            "step {:>6}  loss {loss:.4}  lr {:.2e}  {:.0} samples/s  {:.0} s  {}",
            r.step,
            r.lr,
            r.samples_per_s,
            r.elapsed_s,
            parts.join("  ")
        );
        // Without a terminal the bar is hidden: log plain lines instead.
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    }
}

fn fit_options(args: &ProbeArgs) -> Result<FitOptions> {
    if !(args.lr > 0.0 && args.lr < 1.0) {
        anyhow::bail!("--lr {} is out of range; allowed more than 0, less than 1", args.lr);
    }
    if let Some(m) = args
        .max_minutes
        .filter(|m| !(m.is_finite() && *m > 0.0 && *m <= 10_000.0))
    {
        anyhow::bail!("--max-minutes {m} is out of range; allowed more than 0, at most 10000");
    }
    Ok(FitOptions {
        workers: args.workers as usize,
        max_seconds: args.max_minutes.map(|m| m * 60.0),
        ..FitOptions::new(args.steps as usize, args.batch as usize, args.lr, args.seed)
    })
}

fn run_info(args: &ProbeArgs) -> RunInfo<'_> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    RunInfo {
        out: &args.out,
        command,
        eval_samples: args.eval_samples as usize,
        checkpoint_every: 500,
        resume: args.resume.as_deref(),
    }
}

fn finish(bar: ProgressBar, metrics: &serde_json::Value, out: &std::path::Path) -> Result<()> {
    bar.finish();
    println!("{}", serde_json::to_string_pretty(&metrics["accuracy"])?);
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn probe_image(args: ProbeArgs) -> Result<()> {
    let config = if args.tiny {
        ImageProbeConfig::tiny()
    } else {
        ImageProbeConfig::base()
    };
    let options = fit_options(&args)?;
    let bar = bar(args.steps);
    let metrics = train_image_probe(&config, &options, &run_info(&args), &args.device.open()?, |r| {
        report(&bar, r)
    })?;
    finish(bar, &metrics, &args.out)
}

fn probe_audio(args: ProbeArgs) -> Result<()> {
    let config = if args.tiny {
        AudioProbeConfig::tiny()
    } else {
        AudioProbeConfig::base()
    };
    let options = fit_options(&args)?;
    let bar = bar(args.steps);
    let metrics = train_audio_probe(&config, &options, &run_info(&args), &args.device.open()?, |r| {
        report(&bar, r)
    })?;
    finish(bar, &metrics, &args.out)
}

fn probe_video(args: ProbeArgs) -> Result<()> {
    let config = if args.tiny {
        VideoProbeConfig::tiny()
    } else {
        VideoProbeConfig::base()
    };
    let options = fit_options(&args)?;
    let bar = bar(args.steps);
    let metrics = train_video_probe(&config, &options, &run_info(&args), &args.device.open()?, |r| {
        report(&bar, r)
    })?;
    finish(bar, &metrics, &args.out)
}
