//! `mmgen eval`: GenEval-style alignment and world-FD of a generator. The probes'
//! own commands (`eval-probe`, `calibrate-probe`) and the VAE's and vocoder's are in
//! `probes.rs`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mmgen_eval::generator::{Generator, MorphingClip, Oracle, RandomScene};
use mmgen_eval::grounded::TrueLayoutGenerator;
use mmgen_eval::grounded_sound::TrueMusicGenerator;
use mmgen_eval::probe::audio_data::audio_probe_accuracy;
use mmgen_eval::probe::image_data::{clip_frame_accuracy, image_probe_accuracy, CLIP_FRAMES};
use mmgen_eval::probe::measure::{accuracy_by_split, recalibrate_image_probe};
use mmgen_eval::probe::video_data::video_probe_accuracy;
use mmgen_eval::probes::{load_audio_probe, load_image_probe, load_video_probe, Probes};
use mmgen_eval::run::{evaluate, MediaOptions, Prompts};
use mmgen_eval::shipped::ShippedGenerator;
use mmgen_models::grounded::music::{NoteModel, Synth};
use mmgen_models::grounded::{GroundedRenderer, TrajectoryNet};
use mmgen_models::hybrid_image::{images_to_tensor, tensor_to_images};
use mmgen_models::vae::{psnr, Vae};
use mmgen_pipeline::{Modality, Pipeline, Request, MAX_PROMPT_CHARS};
use mmgen_train::text_image::TrainedVae;
use mmgen_world::Split;

use crate::choices::{LangArg, MediumArg, SourceArg, SplitArg};
use crate::device::DeviceArg;
use crate::sampling::SamplingArgs;

mod probes;

pub use probes::*;

#[derive(Args)]
pub struct EvalArgs {
    /// What to evaluate.
    #[arg(long, value_enum, default_value_t = MediumArg::Image)]
    task: MediumArg,
    /// The generator.
    #[arg(long, value_enum, default_value_t = SourceArg::Oracle)]
    source: SourceArg,
    /// The planner folder of --source grounded.
    #[arg(long, default_value = "models/grounded-planner")]
    planner: PathBuf,
    /// The renderer folder of --source grounded and grounded-layout.
    #[arg(long, default_value = "models/grounded-renderer")]
    renderer: PathBuf,
    /// The trajectory model folder of --source grounded and grounded-layout, --task video.
    #[arg(long, default_value = "models/grounded-trajectory")]
    trajectory: PathBuf,
    /// The music planner folder of --source grounded, --task audio.
    #[arg(long, default_value = "models/grounded-music-planner")]
    music_planner: PathBuf,
    /// The note model folder of --source grounded and grounded-layout, --task audio.
    #[arg(long, default_value = "models/grounded-notes")]
    notes: PathBuf,
    /// The synthesiser folder of --source grounded and grounded-layout, --task audio.
    #[arg(long, default_value = "models/grounded-synth")]
    synth: PathBuf,
    /// The model folder of --source hybrid [default: models/hybrid-image, -video or
    /// -audio by --task].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Sampling of a model source.
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Prompts drawn from the world [default: 200]; with --prompts, the first N of the
    /// file [default: all].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    n: Option<u64>,
    /// Which side of the compositional split the prompts come from.
    #[arg(long, value_enum, default_value_t = SplitArg::Heldout)]
    split: SplitArg,
    /// Prompt language.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    lang: LangArg,
    /// Free prompts instead, one per line (blank lines and lines starting with # skipped).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Seed of prompts and generation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder holding the probes (probe-image/, ...).
    #[arg(long, default_value = "models")]
    probes: PathBuf,
    /// Frames per clip (video task).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(2..=240))]
    frames: u32,
    /// Seconds per clip (audio task).
    #[arg(long, default_value_t = 4.0)]
    seconds: f32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write every prompt's result to this file, one JSON object per line: its
    /// checks and what the probes read (which object failed, in which frames).
    #[arg(long)]
    per_prompt: Option<PathBuf>,
    /// Where the probes (and generators) run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceArg,
}

/// Which shape probe reads the image probe's objects' shapes.
#[derive(Args)]
pub struct ShapeProbeArgs {
    /// The shape probe folder (second stage of image reading). Default: `probe-shape`
    /// beside the image probe folder, when it holds a trained probe.
    #[arg(long)]
    shape_probe: Option<PathBuf>,
    /// Read shapes with the image probe's own dense head, without a shape probe.
    #[arg(long, conflicts_with = "shape_probe")]
    no_shape_probe: bool,
}

/// The probe folders in use, as flags (for error context).
fn probe_flags(image_probe: &std::path::Path, shape_probe: Option<&std::path::Path>) -> String {
    match shape_probe {
        Some(dir) => format!("--probe {} --shape-probe {}", image_probe.display(), dir.display()),
        None => format!("--probe {}", image_probe.display()),
    }
}

impl ShapeProbeArgs {
    /// The shape probe folder to use with the image probe in `image_probe`, if any.
    fn resolve(&self, image_probe: &std::path::Path) -> Option<PathBuf> {
        if self.no_shape_probe {
            return None;
        }
        self.shape_probe.clone().or_else(|| {
            let beside = image_probe
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("probe-shape");
            beside.join("model.safetensors").exists().then_some(beside)
        })
    }
}

/// Clips per split whose every frame `eval-probe --task image` reads by default: about
/// two minutes on two cores.
const DEFAULT_CLIPS: u64 = 200;

fn generator(args: &EvalArgs, device: &Device) -> Result<Box<dyn Generator>> {
    match args.source {
        SourceArg::Oracle => Ok(Box::new(Oracle)),
        SourceArg::Random => Ok(Box::new(RandomScene)),
        // Its stills and audio are the oracle's: only a clip can show it.
        SourceArg::Morph if args.task != MediumArg::Video => bail!(
            "--source morph is a control for --task video (an object changes identity halfway through each clip; its stills and audio are the oracle's); --task is {}",
            args.task
        ),
        SourceArg::Morph => Ok(Box::new(MorphingClip)),
        SourceArg::Hybrid => {
            let dir = args
                .model
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("models/hybrid-{}", args.task)));
            let cannot = || format!("--model {}: cannot load the hybrid {} model", dir.display(), args.task);
            // The pipeline always holds a still model; clips and sound add theirs.
            let still = PathBuf::from("models/hybrid-image");
            let load_still = || {
                Pipeline::load(&still, device)
                    .with_context(|| format!("{}: cannot load the hybrid image model", still.display()))
            };
            let (pipeline, modality) = match args.task {
                MediumArg::Image => (Pipeline::load(&dir, device).with_context(cannot)?, Modality::Image),
                MediumArg::Video => (load_still()?.with_video(&dir, device).with_context(cannot)?, Modality::Video),
                MediumArg::Audio => (load_still()?.with_audio(&dir, device).with_context(cannot)?, Modality::Audio),
            };
            Ok(Box::new(ShippedGenerator::new("hybrid", pipeline, modality, sampled(args))))
        }
        SourceArg::Grounded => {
            let pipeline = Pipeline::grounded(&args.planner, &args.renderer, device).with_context(|| {
                format!(
                    "--planner {} / --renderer {}: cannot load the grounded model",
                    args.planner.display(),
                    args.renderer.display()
                )
            })?;
            let (pipeline, modality) = match args.task {
                MediumArg::Image => (pipeline, Modality::Image),
                MediumArg::Video => (
                    pipeline.with_grounded_video(&args.trajectory, device).with_context(|| {
                        format!(
                            "--trajectory {}: cannot load the trajectory model (`mmgen train trajectory`)",
                            args.trajectory.display()
                        )
                    })?,
                    Modality::Video,
                ),
                MediumArg::Audio => (
                    pipeline
                        .with_grounded_audio(&args.music_planner, &args.notes, &args.synth, device)
                        .with_context(|| {
                            format!(
                                "--music-planner {} / --notes {} / --synth {}: cannot load the grounded sound models (`mmgen train music-planner`, `notes`, `synth`)",
                                args.music_planner.display(),
                                args.notes.display(),
                                args.synth.display()
                            )
                        })?,
                    Modality::Audio,
                ),
            };
            Ok(Box::new(ShippedGenerator::new("grounded", pipeline, modality, sampled(args))))
        }
        SourceArg::GroundedLayout if args.task == MediumArg::Audio => {
            let notes = NoteModel::load(&args.notes, device).with_context(|| {
                format!("--notes {}: cannot load the note model (`mmgen train notes`)", args.notes.display())
            })?;
            let synth = Synth::load(&args.synth, device).with_context(|| {
                format!("--synth {}: cannot load the synthesiser (`mmgen train synth`)", args.synth.display())
            })?;
            Ok(Box::new(TrueMusicGenerator::new(notes, synth)))
        }
        SourceArg::GroundedLayout => {
            let settings = args.sampling.grounded_settings();
            settings.check()?;
            let renderer = GroundedRenderer::load(&args.renderer, device)
                .with_context(|| format!("--renderer {}: cannot load the grounded renderer", args.renderer.display()))?;
            let trajectory = match args.task {
                MediumArg::Video => Some(TrajectoryNet::load(&args.trajectory, device).with_context(|| {
                    format!(
                        "--trajectory {}: cannot load the trajectory model (`mmgen train trajectory`)",
                        args.trajectory.display()
                    )
                })?),
                _ => None,
            };
            Ok(Box::new(TrueLayoutGenerator::new(renderer, trajectory, settings)))
        }
    }
}

/// The pipeline request the evaluation's sampler options make (each prompt, seed,
/// frame count and length are the evaluation's).
fn sampled(args: &EvalArgs) -> Request {
    let s = &args.sampling;
    Request::new("", 0).with_sampling(s.steps.map(|n| n as usize), s.guidance, &s.sampler, "")
}

pub fn run(args: EvalArgs) -> Result<()> {
    let task = args.task.task();
    let device = args.device.open()?;
    let mut generator = generator(&args, &device)?;
    let prompts = match &args.prompts {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read prompts file {}", path.display()))?;
            let mut list = Vec::new();
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                let Ok(line) = std::str::from_utf8(line) else {
                    bail!(
                        "prompts file {} line {}: not UTF-8 text; save the file as UTF-8",
                        path.display(),
                        i + 1
                    );
                };
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let chars = line.chars().count();
                if chars > MAX_PROMPT_CHARS {
                    bail!(
                        "prompts file {} line {}: the prompt is {chars} characters long; at most {MAX_PROMPT_CHARS} are allowed",
                        path.display(),
                        i + 1
                    );
                }
                list.push(line.to_string());
            }
            if list.is_empty() {
                bail!("prompts file {} holds no prompts", path.display());
            }
            list.truncate(args.n.map_or(usize::MAX, |n| n as usize));
            Prompts::Given(list)
        }
        None => Prompts::World {
            n: args.n.unwrap_or(200) as usize,
            split: args.split.into(),
            lang: args.lang.into(),
        },
    };
    let probes = Probes::load(&args.probes, &device).with_context(|| {
        format!(
            "cannot load the probes from {} (train them with `mmgen train probe-image|probe-shape|probe-video|probe-audio`)",
            args.probes.display()
        )
    })?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} eval [{bar:30}] {pos}/{len} prompts ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !(args.seconds > 0.0 && args.seconds <= 60.0) {
        bail!(
            "--seconds {} is out of range; allowed more than 0, up to 60",
            args.seconds
        );
    }
    let media = MediaOptions {
        frames: args.frames,
        seconds: args.seconds,
    };
    // Opened before the evaluation, so that a bad path fails now, not after it; each
    // prompt's line is written as it is scored, so an interrupted run keeps its lines.
    let mut per_prompt = args
        .per_prompt
        .as_ref()
        .map(|path| {
            std::fs::File::create(path).with_context(|| format!("--per-prompt: cannot create {}", path.display()))
        })
        .transpose()?;
    let mut write_error = None;
    let report = evaluate(
        generator.as_mut(),
        &probes,
        task,
        &prompts,
        args.seed,
        media,
        per_prompt.is_some(),
        |done, total, result| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            if let (Some(file), None) = (per_prompt.as_mut(), &write_error) {
                let line = serde_json::to_string(result).map(|json| json + "\n");
                write_error = line
                    .map_err(std::io::Error::from)
                    .and_then(|l| file.write_all(l.as_bytes()))
                    .err();
            }
        },
    )?;
    bar.finish_and_clear();
    if let (Some(error), Some(path)) = (write_error, &args.per_prompt) {
        return Err(error).with_context(|| format!("--per-prompt: cannot write {}", path.display()));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
