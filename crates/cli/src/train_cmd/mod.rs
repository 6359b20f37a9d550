//! `mmgen train ...`: training commands. The grounded family's trainers are in
//! `grounded.rs`, the hybrid family's and the tokenizer's in `hybrid.rs`, the probes'
//! here with the flags every trainer shares.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mmgen_models::grounded::editor::EditorConfig;
use mmgen_models::grounded::music::{MusicPlannerConfig, NoteModelConfig, SynthConfig};
use mmgen_models::grounded::planner::PlannerConfig;
use mmgen_models::grounded::{GroundedRendererConfig, Preconditioning, TrajectoryConfig};
use mmgen_models::hybrid_audio::HybridAudioConfig;
use mmgen_models::hybrid_image::HybridImageConfig;
use mmgen_models::tokenizer::TextTokenizer;
use mmgen_models::vae::VaeConfig;
use mmgen_train::corpus::train_tokenizer;
use mmgen_train::denoiser::DenoiserOptions;
use mmgen_train::editor::train_editor;
use mmgen_train::music::{train_notes, train_synth, world_score_vocab, world_timbres};
use mmgen_train::music_planner::{train_music_planner, world_music_vocab, world_tempo_range};
use mmgen_train::planner::{train_planner, PlannerOptions};
use mmgen_train::renderer::{train_renderer, world_vocab, RendererOptions};
use mmgen_train::text_audio::train_text_audio;
use mmgen_train::text_image::{train_text_image, TrainedVae};
use mmgen_train::text_video::{train_text_video, TextVideoOptions};
use mmgen_train::trajectory::{train_trajectory, world_motions};
use mmgen_train::vae::train_vae;

use crate::device::DeviceArg;
use indicatif::{ProgressBar, ProgressStyle};
use mmgen_eval::probe::audio::AudioProbeConfig;
use mmgen_eval::probe::image::ImageProbeConfig;
use mmgen_eval::probe::shape::ShapeProbeConfig;
use mmgen_eval::probe::video::VideoProbeConfig;
use mmgen_train::fit::{FitOptions, RunInfo, StepReport};
use mmgen_train::probe_data::{StreamFocus, StyleShare};
use mmgen_train::probes::{train_audio_probe, train_image_probe, train_shape_probe, train_video_probe};
use mmgen_world::Style;

mod grounded;
mod hybrid;

use grounded::*;
use hybrid::*;

// The variant names are the subcommand names (`probe-image`, `text-image`, ...).
#[derive(Subcommand)]
pub enum TrainCommand {
    /// Train the image probe (objects, count, position, background, style) on world renders.
    ProbeImage(TrainArgs),
    /// Train the shape probe (the image reading's second stage: an object's shape from a
    /// crop around it) on world renders; `--batch` counts images.
    ProbeShape(TrainArgs),
    /// Train the audio probe (instrument, mood) on world clips.
    ProbeAudio(TrainArgs),
    /// Train the video probe (per-object motion) on world clips.
    ProbeVideo(TrainArgs),
    /// Train the byte-level BPE tokenizer on world captions (English and Chinese).
    Tokenizer(TokenizerArgs),
    /// Train the image autoencoder (64x64x3 <-> 16x16x4) of the hybrid family.
    Vae(VaeArgs),
    /// Train the hybrid text-to-image model (text encoder + DiT) on a trained VAE.
    TextImage(TextImageArgs),
    /// Train the hybrid text-to-video model: a trained text-to-image model's DiT inflated with temporal attention.
    TextVideo(TextVideoArgs),
    /// Train the hybrid text-to-audio model (text encoder + mel DiT; Griffin-Lim vocoder).
    TextAudio(TextAudioArgs),
    /// Train the grounded renderer (plan -> image diffusion) on world renders and their true layouts.
    Renderer(RendererArgs),
    /// Train the scene planner (prompt -> plan) on world captions, specs and layouts.
    Planner(PlannerArgs),
    /// Train the trajectory model (plan pose, motion, clip time -> pose) on the world's poses over time.
    Trajectory(TrainArgs),
    /// Train the note model (instrument, mood -> score tokens) on the world's scores.
    Notes(TrainArgs),
    /// Train the neural synthesiser (note controls -> harmonics + filtered noise) on world notes.
    Synth(TrainArgs),
    /// Train the music planner (prompt -> instrument, mood, tempo, ambience) on world captions and specs.
    MusicPlanner(MusicPlannerArgs),
    /// Train the scene editor (plan + instruction -> the edit) on the world's edit pairs.
    Editor(EditorArgs),
}

/// `--prediction`'s values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PredictionArg {
    /// The clean image (x0).
    Sample,
    /// v = sqrt(abar) eps - sqrt(1 - abar) x0.
    V,
    /// The added noise.
    Epsilon,
}

impl From<PredictionArg> for mmgen_diffusion::Prediction {
    fn from(p: PredictionArg) -> mmgen_diffusion::Prediction {
        match p {
            PredictionArg::Sample => mmgen_diffusion::Prediction::Sample,
            PredictionArg::V => mmgen_diffusion::Prediction::V,
            PredictionArg::Epsilon => mmgen_diffusion::Prediction::Epsilon,
        }
    }
}

#[derive(Args)]
pub struct DenoiserArgs {
    /// Share of captions replaced by the empty prompt (for classifier-free guidance).
    #[arg(long, default_value_t = 0.1)]
    p_uncond: f64,
    /// EMA decay of the saved weights.
    #[arg(long, default_value_t = 0.999)]
    ema_decay: f64,
}

impl DenoiserArgs {
    fn options(&self) -> DenoiserOptions {
        DenoiserOptions {
            p_uncond: self.p_uncond,
            ema_decay: self.ema_decay,
        }
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Optimiser steps.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    steps: u64,
    /// Samples per step.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch: u64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Seed of the training data and of the initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (config.json, model.safetensors, metrics.json).
    #[arg(long)]
    out: PathBuf,
    /// Fresh renders per split for the final measurement (probe accuracy, VAE PSNR).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    eval_samples: u64,
    /// Data worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    workers: u64,
    /// Use the tiny test configuration.
    #[arg(long)]
    tiny: bool,
    /// Continue from the weights in this probe folder (its config must match; a shape
    /// probe trained without a box head gains one, started fresh).
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
    /// probe-image and probe-shape only: draw this share of the training scenes in
    /// one style, as STYLE=SHARE (e.g. pixel_art=0.5), to train a probe further where
    /// it reads worst. The others keep the world's mix.
    #[arg(long, value_parser = parse_style_share)]
    style_share: Option<StyleShare>,
    /// probe-image and probe-shape only: show this share of the training scenes
    /// (from 0 to 1) turned, half their objects spinning at a random clip time, so
    /// that the probe sees every shape at every angle as the world draws it (pixel-art
    /// sprites on their fixed grid, large crosses on their side).
    #[arg(long, value_parser = parse_share)]
    spin_share: Option<f64>,
}

impl TrainArgs {
    /// Where the probe's training stream dwells (`--style-share`, `--spin-share`).
    fn stream_focus(&self) -> StreamFocus {
        StreamFocus {
            style: self.style_share,
            spin: self.spin_share.unwrap_or(0.0),
        }
    }
}

/// Parses a share in [0, 1].
fn parse_share(text: &str) -> std::result::Result<f64, String> {
    let share: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number; allowed 0 to 1"))?;
    if !(0.0..=1.0).contains(&share) {
        return Err(format!("{share} is out of range; allowed 0 to 1"));
    }
    Ok(share)
}

/// Parses `--style-share STYLE=SHARE`.
fn parse_style_share(text: &str) -> std::result::Result<StyleShare, String> {
    let (style, share) = text
        .split_once('=')
        .ok_or_else(|| format!("expected STYLE=SHARE (e.g. pixel_art=0.5), got {text:?}"))?;
    let style: Style = style
        .trim()
        .parse()
        .map_err(|e: mmgen_world::WorldError| e.to_string())?;
    let share = parse_share(share).map_err(|e| format!("SHARE {e}"))?;
    Ok(StyleShare { style, share })
}

pub fn run(cmd: TrainCommand) -> Result<()> {
    // Only the image and shape probes' streams can redraw styles or turn scenes.
    let without_focus = match &cmd {
        TrainCommand::ProbeAudio(a) | TrainCommand::ProbeVideo(a) => Some(a),
        TrainCommand::Vae(a) => Some(&a.train),
        TrainCommand::TextImage(a) => Some(&a.train),
        TrainCommand::TextVideo(a) => Some(&a.train),
        TrainCommand::TextAudio(a) => Some(&a.train),
        TrainCommand::Renderer(a) => Some(&a.train),
        TrainCommand::Planner(a) => Some(&a.train),
        TrainCommand::MusicPlanner(a) => Some(&a.train),
        TrainCommand::Editor(a) => Some(&a.train),
        TrainCommand::Trajectory(a) | TrainCommand::Notes(a) | TrainCommand::Synth(a) => Some(a),
        TrainCommand::ProbeImage(_) | TrainCommand::ProbeShape(_) | TrainCommand::Tokenizer(_) => None,
    };
    if let Some(args) = without_focus {
        for (flag, given) in [
            ("--style-share", args.style_share.is_some()),
            ("--spin-share", args.spin_share.is_some()),
        ] {
            if given {
                anyhow::bail!("{flag} applies to `train probe-image` and `train probe-shape` only");
            }
        }
    }
    match cmd {
        TrainCommand::ProbeImage(args) => probe_image(args),
        TrainCommand::ProbeShape(args) => probe_shape(args),
        TrainCommand::ProbeAudio(args) => probe_audio(args),
        TrainCommand::ProbeVideo(args) => probe_video(args),
        TrainCommand::Tokenizer(args) => tokenizer(args),
        TrainCommand::Vae(args) => vae(args),
        TrainCommand::TextImage(args) => text_image(args),
        TrainCommand::TextVideo(args) => text_video(args),
        TrainCommand::TextAudio(args) => text_audio(args),
        TrainCommand::Renderer(args) => renderer(args),
        TrainCommand::Planner(args) => planner(args),
        TrainCommand::Trajectory(args) => trajectory(args),
        TrainCommand::Notes(args) => notes(args),
        TrainCommand::Synth(args) => synth(args),
        TrainCommand::MusicPlanner(args) => music_planner(args),
        TrainCommand::Editor(args) => editor(args),
    }
}

/// A bar over steps, or over seconds when a time budget ends the run first.
fn bar(args: &TrainArgs) -> ProgressBar {
    let (len, unit) = match args.max_minutes {
        Some(m) => ((m * 60.0).ceil() as u64, "s"),
        None => (args.steps, "steps"),
    };
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} train [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{eta}} left)"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

fn report(bar: &ProgressBar, r: &StepReport, by_time: bool) {
    bar.set_position(if by_time { r.elapsed_s as u64 } else { r.step as u64 });
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

fn fit_options(args: &TrainArgs) -> Result<FitOptions> {
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

fn run_info(args: &TrainArgs) -> RunInfo<'_> {
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

fn probe_image(args: TrainArgs) -> Result<()> {
    let config = if args.tiny {
        ImageProbeConfig::tiny()
    } else {
        ImageProbeConfig::base()
    };
    let options = fit_options(&args)?;
    let bar = bar(&args);
    let metrics = train_image_probe(
        &config,
        &options,
        args.stream_focus(),
        &run_info(&args),
        &args.device.open()?,
        |r| report(&bar, r, args.max_minutes.is_some()),
    )?;
    finish(bar, &metrics, &args.out)
}

fn probe_shape(args: TrainArgs) -> Result<()> {
    let config = if args.tiny {
        ShapeProbeConfig::tiny()
    } else {
        ShapeProbeConfig::base()
    };
    let options = fit_options(&args)?;
    let bar = bar(&args);
    let metrics = train_shape_probe(
        &config,
        &options,
        args.stream_focus(),
        &run_info(&args),
        &args.device.open()?,
        |r| report(&bar, r, args.max_minutes.is_some()),
    )?;
    finish(bar, &metrics, &args.out)
}

fn probe_audio(args: TrainArgs) -> Result<()> {
    let config = if args.tiny {
        AudioProbeConfig::tiny()
    } else {
        AudioProbeConfig::base()
    };
    let options = fit_options(&args)?;
    let bar = bar(&args);
    let metrics = train_audio_probe(&config, &options, &run_info(&args), &args.device.open()?, |r| {
        report(&bar, r, args.max_minutes.is_some())
    })?;
    finish(bar, &metrics, &args.out)
}

fn probe_video(args: TrainArgs) -> Result<()> {
    let config = if args.tiny {
        VideoProbeConfig::tiny()
    } else {
        VideoProbeConfig::base()
    };
    let options = fit_options(&args)?;
    let bar = bar(&args);
    let metrics = train_video_probe(&config, &options, &run_info(&args), &args.device.open()?, |r| {
        report(&bar, r, args.max_minutes.is_some())
    })?;
    finish(bar, &metrics, &args.out)
}
