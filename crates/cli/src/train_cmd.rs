//! `mmgen train ...`: training commands.

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
use mmgen_train::planner::train_planner;
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

#[derive(Args)]
pub struct EditorArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// The trained tokenizer, copied into the editor folder (the planner's, so that its
    /// text encoder can start the editor's).
    #[arg(long, default_value = "models/grounded-planner/tokenizer.json")]
    tokenizer: PathBuf,
    /// A planner folder with the same tokenizer whose trained text encoder starts a new editor.
    #[arg(long)]
    text_from: Option<PathBuf>,
}

#[derive(Args)]
pub struct MusicPlannerArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// The trained tokenizer (`mmgen train tokenizer`), copied into the planner folder.
    #[arg(long, default_value = "models/grounded-planner/tokenizer.json")]
    tokenizer: PathBuf,
    /// Adds what new planners have to a resumed planner that lacks it: attention
    /// pooling (a learned query per attribute over the tokens) and the medium head
    /// (a still, a clip or sound alone).
    #[arg(long)]
    upgrade: bool,
}

#[derive(Args)]
pub struct PlannerArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// The trained tokenizer (`mmgen train tokenizer`), copied into the planner folder.
    #[arg(long, default_value = "models/hybrid-image/tokenizer.json")]
    tokenizer: PathBuf,
    /// A hybrid model folder with the same tokenizer whose trained text encoder starts the run.
    #[arg(long)]
    text_from: Option<PathBuf>,
    /// Offset bins per side of the relative centre grid (places an object beside the
    /// previous one); resuming a planner without one adds it [default: 24 for a new planner]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    relative_bins: Option<u32>,
}

#[derive(Args)]
pub struct RendererArgs {
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    denoiser: DenoiserArgs,
    /// Extra loss weight of the pixels near objects (they cover a tenth of the canvas).
    #[arg(long, default_value_t = 3.0)]
    object_weight: f64,
    /// Weight of the object fields' occupancy cross-entropy.
    #[arg(long, default_value_t = 0.1)]
    occupancy_weight: f64,
    /// What the network predicts [default: the config's, or the resumed folder's].
    /// Resuming with another target restarts the output layers at zero.
    #[arg(long, value_enum)]
    prediction: Option<PredictionArg>,
    /// How the network's output becomes the prediction (edm: Karras et al.'s skip and
    /// scalings, for --prediction sample) [default: the config's, or the resumed
    /// folder's]. Changing it on resume also restarts the output layers.
    #[arg(long, value_enum)]
    preconditioning: Option<PreconditioningArg>,
    /// Share of samples that are frames at random clip times (moving poses, the light
    /// of that moment) instead of stills, 0 to 1; above 0 the renderer learns to draw
    /// clips (it then reads each frame's clip time).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    clip_share: f64,
    /// Adds the pixel head (every trunk cell's map from the grounding channels to its
    /// pixels' colour, starting at zero) to a resumed renderer that lacks it; new
    /// renderers have it.
    #[arg(long)]
    pixel_head: bool,
}

/// `--preconditioning`'s values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PreconditioningArg {
    /// The output is the prediction.
    Plain,
    /// EDM's skip and scalings.
    Edm,
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
pub struct TextVideoArgs {
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    denoiser: DenoiserArgs,
    /// The trained text-to-image model folder to inflate (text encoder, VAE, DiT, tokenizer).
    #[arg(long, default_value = "models/hybrid-image")]
    image_model: PathBuf,
    /// Frames per training window (the span of temporal attention; longer clips are generated as overlapping windows).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=64))]
    window: u64,
    /// Frames of the world clips the windows are cut from (the clip length generation defaults to).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(2..=512))]
    clip_frames: u64,
    /// Frame rate recorded in the model.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=120))]
    fps: u32,
}

#[derive(Args)]
pub struct TextAudioArgs {
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    denoiser: DenoiserArgs,
    /// The trained tokenizer (`mmgen train tokenizer`).
    #[arg(long)]
    tokenizer: PathBuf,
    /// A hybrid model folder with the same tokenizer whose text encoder starts the run.
    #[arg(long)]
    text_from: Option<PathBuf>,
}

#[derive(Args)]
pub struct TokenizerArgs {
    /// Output file (tokenizer.json).
    #[arg(long)]
    out: PathBuf,
    /// Tokens in the vocabulary.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(300..=65_536))]
    vocab: u64,
    /// World scenes whose captions (2 languages x 3 media each) form the corpus.
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    scenes: u64,
    /// Seed of the corpus.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
pub struct VaeArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// Weight of the KL term per pixel.
    #[arg(long, default_value_t = 1e-5)]
    kl_weight: f64,
}

#[derive(Args)]
pub struct TextImageArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// The trained VAE folder (`mmgen train vae`).
    #[arg(long)]
    vae: PathBuf,
    /// The trained tokenizer (`mmgen train tokenizer`).
    #[arg(long)]
    tokenizer: PathBuf,
    #[command(flatten)]
    denoiser: DenoiserArgs,
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

fn tokenizer(args: TokenizerArgs) -> Result<()> {
    let start = std::time::Instant::now();
    eprintln!(
        "training a {}-token BPE on the captions of {} world scenes ...",
        args.vocab, args.scenes
    );
    let tok = train_tokenizer(args.scenes as usize, args.vocab as usize, args.seed)?;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    tok.save(&args.out)?;
    let sample = "生成一段描述海边日落的短视频,配乐为钢琴曲";
    let ids = tok.encode(sample, 1000)?;
    eprintln!(
        "wrote {} ({} tokens, {:.1} s); {sample:?} is {} tokens ({} bytes)",
        args.out.display(),
        tok.vocab_size(),
        start.elapsed().as_secs_f64(),
        ids.len(),
        sample.len()
    );
    Ok(())
}

fn vae(args: VaeArgs) -> Result<()> {
    let config = if args.train.tiny {
        VaeConfig::tiny()
    } else {
        VaeConfig::base()
    };
    let options = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let metrics = train_vae(
        &config,
        args.kl_weight,
        &options,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "psnr_db": metrics["psnr_db"],
            "latent_scale": metrics["latent_scale"],
            "final_loss": metrics["final_loss"],
        }))?
    );
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}

fn text_image(args: TextImageArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let vae = TrainedVae::load(&args.vae).with_context(|| "--vae: train one with `mmgen train vae --out DIR`")?;
    let mut config = if args.train.tiny {
        HybridImageConfig::tiny(tokenizer.vocab_size())
    } else {
        HybridImageConfig::base(tokenizer.vocab_size())
    };
    config.vae = vae.config.clone();
    let extra = args.denoiser.options();
    let options = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let metrics = train_text_image(
        &config,
        &tokenizer,
        &vae,
        &extra,
        &options,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    finish_denoiser(bar, &metrics, &args.train.out, "image")
}

fn text_video(args: TextVideoArgs) -> Result<()> {
    if args.train.tiny {
        anyhow::bail!("--tiny: a video model takes its shape from --image-model (inflate a tiny image model instead)");
    }
    let extra = TextVideoOptions {
        denoiser: args.denoiser.options(),
        window: args.window as usize,
        clip_frames: args.clip_frames as usize,
        fps: args.fps,
    };
    let options = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let metrics = train_text_video(
        &args.image_model,
        &extra,
        &options,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )
    .with_context(|| format!("--image-model {}", args.image_model.display()))?;
    finish_denoiser(bar, &metrics, &args.train.out, "video")
}

fn text_audio(args: TextAudioArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let config = if args.train.tiny {
        HybridAudioConfig::tiny(tokenizer.vocab_size())
    } else {
        HybridAudioConfig::base(tokenizer.vocab_size())
    };
    let options = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let metrics = train_text_audio(
        &config,
        &tokenizer,
        args.text_from.as_deref(),
        &args.denoiser.options(),
        &options,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    finish_denoiser(bar, &metrics, &args.train.out, "audio")
}

fn planner(args: PlannerArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let config = if args.train.tiny {
        PlannerConfig::tiny(world_vocab(), tokenizer.vocab_size())
    } else {
        PlannerConfig::base(world_vocab(), tokenizer.vocab_size())
    };
    let fit = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let record = train_planner(
        &config,
        &tokenizer,
        args.text_from.as_deref(),
        args.relative_bins.map(|n| n as usize),
        &fit,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!("{}", serde_json::to_string_pretty(&record["accuracy"]["by_split"])?);
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}

fn music_planner(args: MusicPlannerArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let (vocab, range) = (world_music_vocab(), world_tempo_range());
    let config = if args.train.tiny {
        MusicPlannerConfig::tiny(vocab, tokenizer.vocab_size(), range)
    } else {
        MusicPlannerConfig::base(vocab, tokenizer.vocab_size(), range)
    };
    let fit = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let record = train_music_planner(
        &config,
        &args.tokenizer,
        args.upgrade,
        &fit,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!("{}", serde_json::to_string_pretty(&record["accuracy"]["final"])?);
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}

fn editor(args: EditorArgs) -> Result<()> {
    let tokenizer = TextTokenizer::load(&args.tokenizer)
        .with_context(|| "--tokenizer: train one with `mmgen train tokenizer --out FILE`")?;
    let config = if args.train.tiny {
        EditorConfig::tiny(world_vocab(), tokenizer.vocab_size())
    } else {
        EditorConfig::base(world_vocab(), tokenizer.vocab_size())
    };
    let fit = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let record = train_editor(
        &config,
        &tokenizer,
        args.text_from.as_deref(),
        &fit,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!("{}", serde_json::to_string_pretty(&record["accuracy"]["final"])?);
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}

/// A model trained by `train(config, fit, run, device, progress)` on TrainArgs alone:
/// the run's `shown` record is printed when it ends.
type Trainer<C> = fn(
    &C,
    &FitOptions,
    &RunInfo,
    &candle_core::Device,
    &mut dyn FnMut(&StepReport),
) -> mmgen_train::Result<serde_json::Value>;

fn train_simple<C>(args: TrainArgs, config: C, train: Trainer<C>, shown: &[&str]) -> Result<()> {
    let fit = fit_options(&args)?;
    let bar = bar(&args);
    let mut progress = |r: &StepReport| report(&bar, r, args.max_minutes.is_some());
    let record = train(&config, &fit, &run_info(&args), &args.device.open()?, &mut progress)?;
    bar.finish();
    let shown = shown.iter().fold(&record, |value, key| &value[key]);
    println!("{}", serde_json::to_string_pretty(shown)?);
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn trajectory(args: TrainArgs) -> Result<()> {
    let motions = world_motions();
    let config = match args.tiny {
        true => TrajectoryConfig::tiny(motions),
        false => TrajectoryConfig::base(motions),
    };
    train_simple(
        args,
        config,
        |c, f, r, d, p| train_trajectory(c, f, r, d, p),
        &["error", "final"],
    )
}

fn notes(args: TrainArgs) -> Result<()> {
    let vocab = world_score_vocab();
    let config = match args.tiny {
        true => NoteModelConfig::tiny(vocab),
        false => NoteModelConfig::base(vocab),
    };
    train_simple(args, config, |c, f, r, d, p| train_notes(c, f, r, d, p), &["scores"])
}

fn synth(args: TrainArgs) -> Result<()> {
    let timbres = world_timbres();
    let config = match args.tiny {
        true => SynthConfig::tiny(timbres),
        false => SynthConfig::base(timbres),
    };
    train_simple(
        args,
        config,
        |c, f, r, d, p| train_synth(c, f, r, d, p),
        &["stft_loss", "final"],
    )
}

fn renderer(args: RendererArgs) -> Result<()> {
    let vocab = world_vocab();
    let config = if args.train.tiny {
        GroundedRendererConfig::tiny(vocab)
    } else {
        GroundedRendererConfig::base(vocab)
    };
    for (flag, value) in [
        ("--object-weight", args.object_weight),
        ("--occupancy-weight", args.occupancy_weight),
    ] {
        if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
            anyhow::bail!("{flag} {value} is out of range; allowed 0 to 100");
        }
    }
    let options = RendererOptions {
        p_uncond: args.denoiser.p_uncond,
        ema_decay: args.denoiser.ema_decay,
        object_weight: args.object_weight,
        occupancy_weight: args.occupancy_weight,
        prediction: args.prediction.map(Into::into),
        preconditioning: args.preconditioning.map(|p| match p {
            PreconditioningArg::Plain => Preconditioning::Plain,
            PreconditioningArg::Edm => Preconditioning::Edm,
        }),
        clip_share: args.clip_share,
        pixel_head: args.pixel_head,
        ..RendererOptions::default()
    };
    let fit = fit_options(&args.train)?;
    let bar = bar(&args.train);
    let record = train_renderer(
        &config,
        &options,
        &fit,
        &run_info(&args.train),
        &args.train.device.open()?,
        |r| report(&bar, r, args.train.max_minutes.is_some()),
    )?;
    bar.finish();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "validation": record["validation"],
            "samples_per_s": record["samples_per_s"],
            "steps_done": record["steps_done"],
        }))?
    );
    eprintln!("wrote {}", args.train.out.display());
    Ok(())
}

/// Prints a diffusion run's summary and how to evaluate what it wrote.
fn finish_denoiser(bar: ProgressBar, metrics: &serde_json::Value, out: &std::path::Path, task: &str) -> Result<()> {
    bar.finish();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "first_loss": metrics["first_loss"],
            "final_loss": metrics["final_loss"],
            "validation_loss": metrics["validation_loss"],
            "samples_per_s": metrics["samples_per_s"],
            "steps_done": metrics["steps_done"],
        }))?
    );
    eprintln!(
        "wrote {}; evaluate with `mmgen eval --task {task} --source hybrid --model {}`",
        out.display(),
        out.display()
    );
    Ok(())
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
